"""The driver: ``samplers.sample(logdensity, init_position, ...)`` and its :class:`Result`.

``sample`` builds a kernel by name (:data:`samplers.registry.KERNELS`), runs a warmup
strategy (:data:`samplers.registry.ADAPTATIONS`; Stan's windows by default, see
:mod:`samplers.strategies`) and then ``n_samples * thin`` transitions of every
chain at once with the tuned :class:`~samplers.base.KernelParams`, keeping every
``thin``-th. Draws and per-transition
statistics are stored in preallocated arrays of the positions' array module
(NumPy or CuPy) and returned chain-major: ``draws[n_chains, n_samples, dim]``,
``stats[key][n_chains, n_samples]``.
"""
import sys
import time
import warnings

import numpy as np

from .base import STAT_KEYS, StatsRecorder, array_module, as_generator, default_module
from .checkpoint import Checkpoint
from .store import MemorySink, ZarrSink, ZarrStats, default_chunk, new_store
from .registry import KERNELS, get_adaptation, get_kernel
from .strategies import NoAdaptation, run_warmup, step

__all__ = ["sample", "Result", "KERNELS", "DivergenceWarning", "InterruptedWarning",
           "NonFiniteWarning",
           "STAT_KEYS"]

_INITS = ("uniform", "zeros")


class DivergenceWarning(RuntimeWarning):
    """Some transitions after warmup were divergent: the draws may be biased."""


class NonFiniteWarning(RuntimeWarning):
    """Some chains reached a non-finite position or log density (inf/NaN draws): the run
    diverged and those chains' draws are unusable."""


class InterruptedWarning(RuntimeWarning):
    """Sampling was interrupted (Ctrl-C): the Result holds the draws completed so far."""


class Result:
    """Draws and statistics of :func:`sample`.

    Attributes
    ----------
    draws : array, shape [n_chains, n_samples, dim]
    logdensity : array, shape [n_chains, n_samples], or None
        Log density at each draw (None for SG-MCMC, whose states have none).
    stats : dict of str to array, shape [n_chains, n_samples]
        ``acceptance``, ``divergent``, ``step_size``, ``tree_depth`` (0 for
        kernels without a tree), ``n_grad_evals``, ``energy``; for SG-MCMC
        ``step_size`` (the schedule's value) and ``grad_norm``.
    warmup_stats : dict of str to array, shape [n_chains, n_warmup]
        The same statistics during warmup.
    step_size : array, shape [n_chains], or None
        Step size (RWMH: proposal scale) used after warmup (None for SG-MCMC).
    inverse_mass : array, shape [dim], [dim, dim] or [n_chains, dim], or None
        Inverse mass matrix used after warmup (None for SG-MCMC).
    kernel : object
        The kernel (with its adapted parameters as defaults) that produced the draws.
    state : NamedTuple
        The last state, to continue sampling with ``kernel.step(state, rng, params)``.
    params : KernelParams
        The parameters after warmup (step sizes, mass, trajectory length, ...).
    n_divergent : int
        Divergent transitions after warmup.
    n_nonfinite : int
        Draws after warmup at a non-finite position or log density (see
        :meth:`nonfinite_chains`).
    """

    def __init__(self, draws, logdensity, stats, warmup_stats, step_size, inverse_mass,
                 kernel, state, params=None):
        self.params = params
        self.draws = draws
        self.logdensity = logdensity
        self.stats = stats
        self.warmup_stats = warmup_stats
        self.step_size = step_size
        self.inverse_mass = inverse_mass
        self.kernel = kernel
        self.state = state
        div = stats.get("divergent")
        self.n_divergent = 0 if div is None else _count(div)
        bad = stats.get("nonfinite")
        self.n_nonfinite = 0 if bad is None else _count(bad)

    @property
    def n_chains(self):
        return self.draws.shape[0]

    def __repr__(self):
        c, n, d = self.draws.shape
        return (f"Result({type(self.kernel).__name__}: {c} chains x {n} draws of dim {d}, "
                f"{self.n_divergent} divergent)")

    def summary(self, names=None, quantiles=(0.05, 0.5, 0.95), print_table=True):
        """Print and return the table of posterior summaries per coordinate.

        Columns: mean, sd, MCSE of the mean, the ``quantiles``, ESS bulk and
        tail and rank-normalized split R-hat (Vehtari et al. 2021), computed
        by :func:`samplers.diagnostics.summary`.

        Parameters
        ----------
        names : list of str, optional
            One name per coordinate (``x[0]``, ``x[1]``, ... by default).
        quantiles : tuple of float
        print_table : bool
            Print the table (default True).
        """
        from . import diagnostics
        table = diagnostics.summary(_host(self.draws), names=names, quantiles=quantiles)
        if print_table:
            print(table)
            stuck = self.stuck_chains()
            if len(stuck):
                print(f"{len(stuck)} of {self.n_chains} chains look stuck (no move, or mean "
                      f"acceptance below 0.05): chains {', '.join(map(str, stuck[:16]))}"
                      f"{' ...' if len(stuck) > 16 else ''}")
            if self.n_divergent:
                print(f"{self.n_divergent} divergent transitions after warmup")
            if self.n_nonfinite:
                print(_nonfinite_message(self))
        return table

    def nonfinite_chains(self):
        """Indices of the chains with at least one non-finite draw (position or log
        density inf/NaN) after warmup."""
        bad = self.stats.get("nonfinite")
        if bad is None or not self.n_nonfinite:
            return np.zeros(0, dtype=np.int64)
        step = max(1, getattr(bad, "chunks", (0, bad.shape[1]))[1])
        rows = np.zeros(bad.shape[0], dtype=bool)
        for a in range(0, bad.shape[1], step):
            rows |= _host(bad[:, a:a + step]).any(axis=1)
        return np.flatnonzero(rows)

    def stuck_chains(self):
        """Indices of the chains that did not move after warmup (see
        :func:`samplers.diagnostics.stuck_chains`)."""
        from . import diagnostics
        return diagnostics.stuck_chains(self.draws, self.stats.get("acceptance"))

    def to_arviz(self, var_name="x"):
        """An ``arviz.InferenceData`` with the draws and the sampler statistics.

        Raises
        ------
        ImportError
            When ArviZ is not installed (``pip install arviz``).
        """
        try:
            import arviz as az
        except ImportError:
            raise ImportError("Result.to_arviz() needs ArviZ, which is not installed: "
                              "pip install arviz") from None
        names = {"acceptance": "acceptance_rate", "divergent": "diverging",
                 "n_grad_evals": "n_steps"}          # ArviZ's names for Stan's statistics
        sample_stats = {names.get(k, k): _host(v) for k, v in self.stats.items()}
        if self.logdensity is not None:
            sample_stats["lp"] = _host(self.logdensity)
        return az.from_dict(posterior={var_name: _host(self.draws)}, sample_stats=sample_stats)


def _seed_print(rng, gen):
    """What a checkpoint records of the run's randomness: the int seed, or for a
    generator given by the caller a hash of its state where the checkpoint is made (a
    function of its starting state: two generators seeded alike agree, others differ)."""
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return int(rng)
    import hashlib
    state = repr(sorted(gen.bit_generator.state.items()))
    return "generator " + hashlib.sha256(state.encode()).hexdigest()[:16]


def _check_built(kernel, logdensity, grad_fn, options):
    """A kernel object passed to sample() holds its target and its options."""
    if not (hasattr(kernel, "init") and hasattr(kernel, "step")):
        raise TypeError(f"kernel: expected a name, a kernel class or a kernel object with "
                        f"init and step, got {type(kernel).__name__}")
    given = [n for n, v in (("logdensity", logdensity), ("grad_fn", grad_fn)) if v is not None]
    given += sorted(options)
    if given:
        raise TypeError(f"sample(kernel=<{type(kernel).__name__} object>): the kernel object "
                        f"already holds its target and options; got {given} as well (pass "
                        f"None as logdensity, and options to the kernel's constructor)")


def _init_state(kernel, q, rng):
    """``kernel.init(q)``, or ``kernel.init(q, rng=rng)`` for kernels whose state holds
    random variables (GHMC's momentum and slice variable)."""
    import inspect
    if "rng" in inspect.signature(kernel.init).parameters:
        return kernel.init(q, rng=rng)
    return kernel.init(q)


def _result(draws, logp, stats, warmup_stats, params, kernel, state):
    """The :class:`Result` from chain-major ``draws [C, n, D]``, ``logp [C, n]``."""
    return Result(draws, logp, stats, warmup_stats,
                  None if params is None else params.step_size,
                  None if params is None else params.inverse_mass,
                  kernel if params is None else _tuned(kernel, params), state, params)


def _tuned(kernel, params):
    """``kernel`` with ``params`` as its defaults (what ``Result.kernel`` holds), when it
    can take them (a kernel whose defaults cannot hold them is returned as it is)."""
    extra = {f: getattr(params, f) for f in getattr(kernel, "extra_params", {})}
    try:
        return kernel.with_params(step_size=params.step_size,
                                  inverse_mass=params.inverse_mass, **extra)
    except (AttributeError, TypeError, ValueError):
        return kernel


def _nonfinite_message(res):
    chains = res.nonfinite_chains()
    shown = ", ".join(map(str, chains[:16])) + (" ..." if len(chains) > 16 else "")
    return (f"{len(chains)} of {res.n_chains} chains reached a non-finite position or log "
            f"density after warmup ({res.n_nonfinite} draws; chains {shown}): the run "
            f"diverged there and those draws are unusable. Lower the step size (SG-MCMC: "
            f"the step-size schedule) or check the model for overflow.")


def _warn_failures(res, n_total):
    """The warnings every finished run gives: divergences and non-finite chains."""
    if res.n_divergent:
        warnings.warn(f"{res.n_divergent} of {n_total} transitions after warmup were "
                      "divergent; the draws may be biased. Raise target_accept (smaller "
                      "steps) or reparameterize the model.", DivergenceWarning, stacklevel=3)
    if res.n_nonfinite:
        warnings.warn(_nonfinite_message(res), NonFiniteWarning, stacklevel=3)


def _host(x):
    return x.get() if type(x).__module__.startswith("cupy") else np.asarray(x)


def _count(flags):
    """Number of True values of ``flags [C, n]`` (a zarr array is read a chunk at a time)."""
    if hasattr(flags, "sum"):
        return int(flags.sum())
    step = max(1, flags.chunks[1])
    return sum(int(np.asarray(flags[:, a:a + step]).sum())
               for a in range(0, flags.shape[1], step))


class _Progress:
    """tqdm bar with it/s, divergences so far and the current step size; or nothing.

    Off when ``enabled`` is False, when stderr is not a terminal, or when tqdm
    is not installed. The postfix is refreshed at most twice a second (it
    reads device arrays).
    """

    def __init__(self, total, enabled):
        self.bar = None
        if not enabled or not sys.stderr.isatty():
            return
        try:
            from tqdm import tqdm
        except ImportError:
            return
        self.bar = tqdm(total=total, unit="it", desc="warmup", dynamic_ncols=True)
        self._next = 0.0
        self.phase = "warmup"

    divergent = 0

    def update(self, phase, info, step_size):
        bar = self.bar
        if bar is None:
            return
        # Divergences during warmup are expected (huge trial steps); count after.
        div = getattr(info, "is_divergent", None)
        if phase != "warmup" and div is not None:
            self.divergent += int(div.sum())
        if step_size is None:
            step_size = getattr(info, "step_size", 0.0)
        bar.update(1)
        now = time.monotonic()
        if phase != self.phase or now >= self._next:
            self._next = now + 0.5
            if phase != self.phase:
                self.phase = phase
                bar.set_description(phase, refresh=False)
            eps = float(np.mean(_host(step_size)))
            bar.set_postfix(divergent=self.divergent, step_size=f"{eps:.3g}", refresh=False)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _initial_positions(init_position, n_chains, dim, init, rng, xp):
    if init_position is None:
        if n_chains is None or dim is None:
            raise ValueError("init_position: None needs n_chains= and dim= to draw "
                             f"initial positions (got n_chains={n_chains!r}, dim={dim!r})")
        if init not in _INITS:
            raise ValueError(f"init: unknown initialization {init!r}; valid: {list(_INITS)}")
        for name, v in (("n_chains", n_chains), ("dim", dim)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name}: expected a positive int, got {v!r}")
        shape = (int(n_chains), int(dim))
        dtype = np.float64 if xp is np else np.float32      # float32 on the GPU
        if init == "zeros":
            return xp.zeros(shape, dtype)
        # Stan's default: uniform(-2, 2) on the unconstrained space.
        return rng.uniform(-2.0, 2.0, size=shape).astype(dtype, copy=False)
    q = init_position
    if not hasattr(q, "ndim"):
        q = np.asarray(q, dtype=float)
    if q.ndim != 2:
        raise ValueError("init_position: expected shape [n_chains, dim], got shape "
                         f"{tuple(q.shape)}")
    if n_chains is not None and q.shape[0] != n_chains:
        raise ValueError(f"n_chains={n_chains} does not match init_position of shape "
                         f"{tuple(q.shape)} (n_chains, dim)")
    if dim is not None and q.shape[1] != dim:
        raise ValueError(f"dim={dim} does not match init_position of shape "
                         f"{tuple(q.shape)} (n_chains, dim)")
    if q.shape[0] < 1 or q.shape[1] < 1:
        raise ValueError(f"init_position: expected at least one chain and one dimension "
                         f"(shape [n_chains, dim]), got shape {tuple(q.shape)}")
    if q.dtype.kind != "f":
        q = q.astype(np.float64)
    return q.copy()


#: Draws per chain from uniform(-2, 2) before giving up on a finite start (Stan: 100).
INIT_TRIES = 100


def _finite_inits(kernel, q, rng):
    """Redraw, chain by chain, the uniform(-2, 2) starts whose log density (or gradient)
    is not finite, up to :data:`INIT_TRIES` draws per chain (Stan's rule); a chain that
    never gets a finite start is an error naming it."""
    xp = array_module(q)
    ld = kernel.logdensity
    needs_grad = getattr(kernel, "needs_grad", True)
    tries = np.ones(q.shape[0], dtype=np.int64)
    while True:
        if needs_grad:
            lp, g = ld(q)
            bad = ~xp.isfinite(lp) | ~xp.isfinite(g).all(axis=1)
        else:
            lp = ld.value(q)
            bad = ~xp.isfinite(lp)
        idx = np.nonzero(_host(bad))[0]
        if not len(idx):
            return q
        if (tries[idx] >= INIT_TRIES).any():
            worst = idx[tries[idx] >= INIT_TRIES]
            raise ValueError(f"init: no finite log density{' and gradient' if needs_grad else ''} "
                             f"in {INIT_TRIES} draws from uniform(-2, 2) for "
                             f"{len(worst)} chain(s): chains {', '.join(map(str, worst[:8]))}"
                             f"{' ...' if len(worst) > 8 else ''}; give init_position (a "
                             f"point where the density is finite) or check the model's "
                             f"support")
        tries[idx] += 1
        q = q.copy()
        q[xp.asarray(idx)] = rng.uniform(-2.0, 2.0, size=(len(idx), q.shape[1])).astype(
            q.dtype, copy=False)


def _check_options(cls, kernel, opts):
    """A clear error for keyword arguments that neither sample() nor the kernel takes."""
    import inspect
    params = inspect.signature(cls.__init__).parameters
    taken = {n for n, p in params.items() if n not in ("self", "logdensity")
             and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    unknown = sorted(set(opts) - taken)
    if unknown:
        own = [n for n, p in inspect.signature(sample).parameters.items()
               if p.kind is not p.VAR_KEYWORD and n != "logdensity" and n[0] != "_"]
        raise TypeError(f"sample(kernel={kernel!r}): unknown option(s) {unknown}; valid: "
                        f"{own + sorted(taken - set(own))}")


def _kernel_and_strategy(kernel, adaptation, logdensity, grad_fn, target_accept, dense_mass,
                         kernel_options):
    """``(kernel class, strategy object, built, kernel)`` for :func:`sample`'s arguments
    (``kernel`` becomes the default name when None)."""
    strategy = None if adaptation is None else _strategy(adaptation, target_accept, dense_mass)
    built = kernel is not None and not isinstance(kernel, (str, type))
    if built:
        _check_built(kernel, logdensity, grad_fn, kernel_options)
    elif kernel is None:
        kernel = getattr(strategy, "default_kernel", "nuts")
    cls = type(kernel) if built else get_kernel(kernel)
    if strategy is None:
        default = getattr(cls, "adaptation", "stan") if hasattr(cls, "params") else "none"
        strategy = _strategy(default, target_accept, dense_mass)
    if not hasattr(cls, "params") and not isinstance(strategy, NoAdaptation):
        raise ValueError(f"adaptation: the kernel {cls.__name__} has no parameters to tune "
                         f"(no params method); use adaptation='none' (its warmup is burn-in)")
    return cls, strategy, built, kernel


def _build_kernel(cls, kernel, logdensity, grad_fn, compile, kernel_options):
    """The kernel object of class ``cls`` from :func:`sample`'s options."""
    opts = dict(kernel_options)
    size_name = getattr(cls, "step_size_name", "step_size")
    step_size = opts.pop(size_name, opts.pop("step_size", 1.0))
    inverse_mass = opts.pop("inverse_mass", None)
    for key, value in getattr(cls, "sample_defaults", {}).items():
        opts.setdefault(key, value)
    _check_options(cls, kernel, opts)
    return cls(logdensity, **{size_name: step_size}, inverse_mass=inverse_mass,
               grad_fn=grad_fn, compile=compile, **opts)


def _strategy(adaptation, target_accept, dense_mass):
    """The warmup strategy object for ``sample(adaptation=...)``: a registered name or a
    class (built with the ``target_accept`` / ``dense_mass`` given), or an object."""
    if not isinstance(adaptation, (str, type)):
        if not all(hasattr(adaptation, m) for m in ("init", "update", "final")):
            raise TypeError(f"adaptation: expected a name, a strategy class or an object with "
                            f"init, update and final, got {type(adaptation).__name__}")
        if target_accept is not None or dense_mass:
            raise TypeError("target_accept / dense_mass: give them to the strategy object "
                            "passed as adaptation=, not to sample()")
        return adaptation
    import inspect
    cls = get_adaptation(adaptation)
    takes = inspect.signature(cls).parameters
    kwargs = {}
    for name, value, default in (("target_accept", target_accept, None),
                                 ("dense_mass", dense_mass, False)):
        if name in takes:
            kwargs[name] = value
        elif value is not default:
            raise ValueError(f"{name}: adaptation {adaptation!r} does not take it "
                             f"({cls.__name__} tunes {'its own target' if name == 'target_accept' else 'a diagonal mass'})")
    return cls(**kwargs)


def sample(logdensity, init_position=None, n_samples=1000, n_warmup=1000, kernel=None,
           rng=0, progress=True, thin=1, dense_mass=False, target_accept=None, grad_fn=None,
           n_chains=None, init="uniform", *, dim=None, compile=True, adaptation=None,
           checkpoint=None, checkpoint_every=100, executor=None, n_shards=None,
           store=None, store_chunk=None, store_dtype=None, shard_adaptation="per_shard",
           _warm=None, **kernel_options):
    """Sample ``n_chains`` chains at once with warmup; return a :class:`Result`.

    Parameters
    ----------
    logdensity : callable
        ``logdensity(position [n_chains, dim]) -> [n_chains]``, written with
        autodiff ops (or plain array code with ``grad_fn``).
    init_position : array, shape [n_chains, dim], optional
        Starting points (NumPy or CuPy: the sampler runs on that module).
        None draws them as ``init`` says, and then needs ``n_chains`` and ``dim``.
    n_samples : int
        Draws kept per chain.
    n_warmup : int
        Warmup (adaptation) transitions per chain; 0 keeps the given
        ``step_size`` and ``inverse_mass``.
    kernel : str or class or kernel object, optional
        A name of :data:`samplers.registry.KERNELS`: ``"nuts"`` (the default, unless
        the strategy has its own: ``"hmc"`` for ChEES, ``"ghmc"`` for MEADS),
        ``"hmc"``, ``"mala"``, ``"rwmh"``, ``"ghmc"``; a kernel class; or a kernel
        object already built (``logdensity`` None), e.g. an SG-MCMC kernel
        (``samplers.SGLD(grad_estimator, 1e-3)``), whose warmup is burn-in.
    rng : int or numpy.random.Generator or cupy.random.Generator
        Seed or generator (never a global seed).
    progress : bool
        tqdm progress bar (only when stderr is a terminal and tqdm installed).
    thin : int
        Keep every ``thin``-th transition.
    dense_mass : bool
        Adapt a dense rather than a diagonal inverse mass matrix (``"stan"``).
    target_accept : float, optional
        Target acceptance rate of step-size adaptation; None means the kernel's
        (0.8 for NUTS and HMC, 0.574 for MALA, 0.234 for RWMH) under ``"stan"`` and
        ``"fisher"``, and 0.651 (harmonic mean over chains) under ``"chees"``.
    grad_fn : callable, optional
        ``grad_fn(position) -> [n_chains, dim]`` instead of autodiff.
    n_chains : int, optional
        Number of chains (needed when ``init_position`` is None).
    init : str
        ``"uniform"`` (Stan's uniform(-2, 2), default: a chain whose start has a
        non-finite log density or gradient draws again, up to 100 times, as in
        Stan) or ``"zeros"``.
    dim : int, optional
        Dimension (needed when ``init_position`` is None).
    compile : bool
        Compile the log density with :func:`autodiff.compile` (default): it is recorded
        at the first call, checked against the tape on the next ones and then runs as
        one compiled program per gradient. False evaluates it on the tape. A function
        that cannot be compiled falls back with a warning.
    adaptation : str or class or object, optional
        Warmup strategy (:mod:`samplers.strategies`): ``"stan"`` (windowed step size
        and mass, the default for NUTS, HMC, MALA, RWMH), ``"fisher"`` (nutpie-style
        mass from draws and gradients), ``"chees"`` (ChEES-HMC: step size, jittered
        trajectory length and mass, pooled over many chains), ``"meads"`` (GHMC),
        ``"none"``, a registered name, or a strategy class or object.
    checkpoint : str or os.PathLike, optional
        A file to save the run to every ``checkpoint_every`` transitions and when it is
        interrupted (:mod:`samplers.checkpoint`); if it exists, the run resumes from it
        and repeats the uninterrupted run's draws exactly. NumPy generators only.
    checkpoint_every : int
        Transitions between two checkpoints (100).
    executor : concurrent.futures.Executor or dask.distributed.Client, optional
        Run the chains as ``n_shards`` batched shards through ``executor.submit`` and
        merge them (:mod:`samplers.shards`): each shard adapts on its own and has its own
        seed stream, so the draws do not depend on the number of workers. The log
        density must be picklable for process pools (a module-level function).
    n_shards : int, optional
        Number of shards with an executor (default: one chain per shard).
    shard_adaptation : str
        With an executor: ``"per_shard"`` (default: each shard tunes its own step size
        and mass) or ``"pooled"``: the shards stop at each slow window's end and send
        their adaptation statistics (Welford mass estimates, dual averaging state; never
        draws), which are pooled into one mass and one step size for all chains
        (``adaptation="stan"`` only; see :mod:`samplers.shards`).
    store : str or os.PathLike, optional
        A zarr group (created, overwritten) to stream the draws, log densities and
        statistics to, ``store_chunk`` draws at a time (:mod:`samplers.store`), and the
        warmup statistics during warmup; the Result then holds the zarr arrays (its
        ``warmup_stats`` too). Needs zarr.
    store_chunk : int, optional
        Draws (and warmup transitions) per chunk of the store (default: about 32 MiB of
        draws).
    store_dtype : str or numpy.dtype, optional
        The draws' dtype in the store (default the positions' dtype; ``"float32"``
        halves a float64 run's store). Log densities and statistics keep theirs.
    **kernel_options
        Passed to the kernel: ``step_size`` (initial; default 1, RWMH
        ``scale``), ``inverse_mass`` (initial), ``n_leapfrogs`` (HMC, default
        10), ``max_tree_depth`` (NUTS), ``integrator``, ``divergence_threshold``.

    Returns
    -------
    Result

    Warns
    -----
    DivergenceWarning
        When any transition after warmup diverged (the count is given).
    NonFiniteWarning
        When chains reached a non-finite position or log density (the chains are
        named; ``Result.nonfinite_chains()``).
    InterruptedWarning
        On Ctrl-C during sampling: the Result holds the draws completed so far (Ctrl-C
        during warmup raises ``KeyboardInterrupt`` saying where it stopped).
    """
    if target_accept is not None and not 0.0 < target_accept < 1.0:
        raise ValueError(f"target_accept: expected a value in (0, 1), got {target_accept!r}")
    if store_dtype is not None and store is None:
        raise ValueError("store_dtype: only with a store (store=...)")
    # _warm=(state, params): start sampling from a warmup done elsewhere (the shards of
    # a pooled run, samplers.shards); private
    if _warm is not None and n_warmup:
        raise ValueError("_warm: a state after warmup needs n_warmup=0")
    if executor is not None:
        if store is not None:
            raise ValueError("store: not supported with an executor yet (each shard would "
                             "need its own store); give each shard's run a checkpoint "
                             "instead, or run without executor=")
        from .shards import sample_sharded
        res = sample_sharded(executor, n_shards, logdensity, init_position, n_chains, dim, rng,
                             checkpoint, shard_adaptation, dict(
                                 n_samples=n_samples, n_warmup=n_warmup, kernel=kernel,
                                 thin=thin, dense_mass=dense_mass, target_accept=target_accept,
                                 grad_fn=grad_fn, init=init, compile=compile,
                                 adaptation=adaptation, checkpoint_every=checkpoint_every,
                                 **kernel_options))
        _warn_failures(res, res.draws.shape[0] * n_samples)
        return res
    if n_shards is not None:
        raise ValueError("n_shards: only with an executor (executor=...)")
    if shard_adaptation != "per_shard":
        raise ValueError("shard_adaptation: only with an executor (executor=...)")
    cls, strategy, built, kernel = _kernel_and_strategy(kernel, adaptation, logdensity, grad_fn,
                                                        target_accept, dense_mass,
                                                        kernel_options)
    for name, v, lo in (("n_samples", n_samples, 1), ("n_warmup", n_warmup, 0),
                        ("thin", thin, 1)):
        if int(v) != v or v < lo:
            raise ValueError(f"{name}: expected an integer >= {lo}, got {v!r}")

    xp = array_module(init_position) if init_position is not None else default_module()
    gen = as_generator(rng, xp)
    q0 = _initial_positions(init_position, n_chains, dim, init, gen, xp)

    k = kernel if built else _build_kernel(cls, kernel, logdensity, grad_fn, compile,
                                           kernel_options)
    if hasattr(strategy, "check_kernel"):
        strategy.check_kernel(k)
    c, d = q0.shape
    ckpt = None
    if checkpoint is not None:
        if not isinstance(gen, np.random.Generator):
            raise ValueError("checkpoint: needs a NumPy generator (a CuPy generator's state "
                             "cannot be saved yet)")
        ckpt = Checkpoint(checkpoint, checkpoint_every, {
            "n_chains": c, "dim": d, "n_warmup": int(n_warmup), "n_samples": int(n_samples),
            "thin": int(thin), "kernel": cls.__qualname__,
            "adaptation": type(strategy).__qualname__, "dtype": str(q0.dtype),
            "seed": _seed_print(rng, gen)})
    saved = None if ckpt is None else ckpt.load()
    if store is not None:
        draws_dtype = np.dtype(q0.dtype if store_dtype is None else store_dtype)
        if draws_dtype.kind != "f":
            raise ValueError(f"store_dtype: expected a floating dtype, got {store_dtype!r}")
        chunk = default_chunk(store_chunk, c, d, draws_dtype)
        if saved is None:
            new_store(store)
    if saved is None and _warm is not None:
        state = _warm[0]                    # pooled warmup done (samplers.shards)
    elif saved is None:
        if init_position is None and init == "uniform" and hasattr(k, "logdensity"):
            q0 = _finite_inits(k, q0, gen)
        state = _init_state(k, q0, gen)
    else:
        state = saved["state"]
        gen.bit_generator.state = saved["rng"]
    total = n_warmup + n_samples * thin
    snap = {}                       # the last consistent point of the run

    def keep(**point):
        """After every transition: remember it (interrupts), save it when due."""
        point["rng"] = None if ckpt is None else gen.bit_generator.state
        snap.clear()
        snap.update(point)
        if ckpt is not None and ckpt.due(point["n_done"]):
            ckpt.save(**point)

    bar = _Progress(total, progress)
    phase, resumed = "warmup", saved is not None and saved["phase"] == "sampling"
    try:
        if resumed:
            params, warmup_stats = saved["params"], saved["warmup_stats"]
        else:
            params = k.params(state.position) if hasattr(k, "params") else None
            if _warm is not None:
                params = _warm[1]
            if n_warmup > 0:
                recorder = None if store is None or saved is not None else \
                    ZarrStats(store, "warmup_stats", n_warmup, c, chunk)
                state, params, warmup_stats = run_warmup(
                    k, strategy, state, gen, n_warmup, params,
                    callback=lambda info, eps: bar.update("warmup", info, eps),
                    resume=None if saved is None else (saved["i"], saved["astate"],
                                                       saved["recorder"]),
                    on_iteration=lambda n, st, ast, rec: keep(
                        phase="warmup", n_done=n, i=n, state=st, astate=ast, recorder=rec),
                    recorder=recorder)
            else:
                warmup_stats = StatsRecorder(0, c, xp).result()
        phase = "sampling"
        eps_c = None if params is None else params.step_size
        if resumed:
            i0, sink = saved["i"], saved["sink"]
        else:
            i0, has_lp = 0, hasattr(state, "logdensity")
            sink = (MemorySink(n_samples, c, d, q0.dtype, xp, has_lp) if store is None else
                    ZarrSink(store, n_samples, c, d, draws_dtype, has_lp, chunk, q0.dtype))
        for i in range(i0, n_samples * thin):
            state, info = step(k, state, gen, params)
            bar.update("sampling", info, eps_c)
            if (i + 1) % thin == 0:
                sink.write((i + 1) // thin - 1, state, info, eps_c)
            keep(phase="sampling", n_done=n_warmup + i + 1, i=i + 1, state=state,
                 params=params, warmup_stats=warmup_stats, sink=sink)
    except KeyboardInterrupt:
        bar.close()
        if ckpt is not None and snap:
            ckpt.save(**snap)
        where = (f"; checkpoint saved to {ckpt.path!r}: the same call resumes"
                 if ckpt is not None and snap else "")
        n_kept = snap.get("i", 0) // thin if snap.get("phase") == "sampling" else 0
        if n_kept == 0:
            done = snap.get("i", 0) if snap.get("phase") == "warmup" else n_warmup
            if store is not None and snap.get("phase") == "warmup":
                snap["recorder"].result(done)     # the store keeps the warmup done
                where += f"; the store {str(store)!r} holds its warmup statistics"
            raise KeyboardInterrupt(f"samplers.sample interrupted "
                                    f"{'during warmup' if phase == 'warmup' else 'after warmup'}"
                                    f", after {done} of {n_warmup} warmup transitions and no "
                                    f"draw{where}") from None
        warnings.warn(f"sampling interrupted after {n_kept} of {n_samples} draws per chain; "
                      f"the Result holds those {n_kept}{where}", InterruptedWarning,
                      stacklevel=2)
        return _result(*sink.arrays(n_kept), warmup_stats, params, k, snap["state"])
    finally:
        bar.close()
    if ckpt is not None and not (snap and ckpt.due(snap["n_done"])):
        # the finished run: calling again with this path returns its result at once
        ckpt.save(**(snap or dict(phase="sampling", n_done=total, i=n_samples * thin,
                                  state=state, params=params, warmup_stats=warmup_stats,
                                  sink=sink, rng=gen.bit_generator.state)))
    res = _result(*sink.arrays(), warmup_stats, params, k, state)
    _warn_failures(res, c * n_samples)
    return res
