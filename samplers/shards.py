"""Chains split into shards run by an executor, merged into one Result.

``samplers.sample(..., executor=ex, n_shards=k)`` splits the chains into ``k`` contiguous
shards; each shard is one ordinary batched :func:`samplers.sample` call, submitted with
``ex.submit`` (any :class:`concurrent.futures.Executor`: a thread or process pool, Ray's
executor; or a ``dask.distributed.Client``, whose ``submit`` also takes ``retries``).
Each shard gets its own stream from ``numpy.random.SeedSequence(seed).spawn(k)``, so the
draws depend on the seed, the chain count and ``k`` only, never on how many workers run
the shards. The merged :class:`~samplers.driver.Result` keeps the chain order;
``result.shards`` lists each shard's ``(first chain, last chain + 1)``.

Warmup, ``shard_adaptation=``:

``"per_shard"`` (default)
    Each shard adapts on its own (its own step size and mass: with one chain per shard
    this is Stan's per-chain adaptation); ``inverse_mass`` and the parameters become per
    chain (``[C, ...]``).
``"pooled"``
    One step size and one mass for all chains, estimated from all of them, with only
    adaptation statistics crossing the wire (``adaptation="stan"``; other strategies
    raise). Warmup runs in phases between the strategy's sync points (each slow
    window's end, and the end of warmup); :func:`pooled_phase` is one phase of one shard:

    1. ``start``: each shard draws its initial positions and runs the step-size heuristic
       on its chains; it returns the step size found (one float).
    2. ``run``: dual averaging restarts at the pooled step size and the shard runs its
       transitions to the next sync point (its own dual averaging in between); it returns
       its Welford state (count, mean ``[D]``, M2 ``[D]`` or ``[D, D]``), its dual
       averaging state (five numbers) and the phase's warmup statistics
       (``{name: [C_s, n]}``, each transition's sent once).
    3. The caller pools them in shard order: the Welford states merged exactly (the
       all-chain estimate up to summation order), the dual averaging states averaged with
       the chain counts as weights (the dual averaging of the all-chain mean acceptance,
       which it is linear in); at a window's end the pooled mass goes back (``window``)
       with the pooled step size, each shard re-runs the heuristic under the new metric
       and returns its step size, whose chain-weighted geometric mean restarts the next
       ``run``.

    After warmup every shard samples with the pooled step size and mass
    (``result.inverse_mass`` is one ``[D]`` or ``[D, D]``). The shard's kernel state
    (``[C_s, D]`` positions and gradients, ``[C_s]`` log densities), its generator and
    the strategy's state travel between the phases: with Dask they stay on the workers
    (each phase's task takes the previous one's future); other executors send them back
    and forth (``2 x C_s x D`` floats and a few hundred bytes, per phase). Draws never
    cross during warmup. The number of shards fixes the pooling, the workers only where
    the shards run, so the draws do not depend on the number of workers; with one shard
    the pooled run is the one-process run bit for bit.

With a Dask client the log density (and ``grad_fn``), with the data it closes over, is
scattered to every worker once instead of travelling with each shard (other executors
pickle it with every task, pooled phases included). A shard that
raises is reported with its index and chain ids; with a checkpoint path,
shard ``i`` checkpoints to ``PATH.shard{i}``, so a rerun after a failure redoes only the
unfinished shards' remaining transitions (a pooled run also saves the end of its warmup
to ``PATH.warmup``: the shards' states and the pooled parameters, so a rerun goes
straight to the shards' sampling).

A worker that dies mid-run loses nothing: Dask reschedules its shard on another worker
(the scheduler's ``allowed-failures``, plus ``retries=2`` for a shard that raises; a pooled
run keeps every phase's future, so a lost carry is recomputed); a
process pool whose worker dies is broken for good (``BrokenExecutor``), so the shards it
did not finish are rerun in the calling process (pooled: the remaining phases), with a
:class:`ShardRerunWarning`. Each shard's draws depend only on its seed, so either way the
result is that of an uninterrupted run, every chain present once.
"""
import collections
import threading
import uuid
import warnings
from concurrent.futures import BrokenExecutor

import numpy as np

from .base import array_module
from .checkpoint import Checkpoint

__all__ = ["sample_sharded", "shard_bounds", "ShardRerunWarning", "SHARD_ADAPTATIONS",
           "pooled_phase"]

#: ``sample(shard_adaptation=...)``: each shard tunes its own parameters, or the shards'
#: adaptation statistics are pooled at the strategy's sync points.
SHARD_ADAPTATIONS = ("per_shard", "pooled")


class ShardRerunWarning(RuntimeWarning):
    """Shards whose worker process died were rerun in this process (same draws)."""


def shard_bounds(n_chains, n_shards):
    """``[(start, stop), ...]``: ``n_shards`` contiguous, nearly equal blocks of chains."""
    if isinstance(n_shards, bool) or int(n_shards) != n_shards or not 1 <= n_shards <= n_chains:
        raise ValueError(f"n_shards: expected an integer in [1, n_chains={n_chains}], got "
                         f"{n_shards!r}")
    edges = np.linspace(0, n_chains, int(n_shards) + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def _run_shard(kwargs):
    from .driver import sample
    return sample(**kwargs)


def _seeds(rng, n):
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        seq = np.random.SeedSequence(int(rng))
    elif isinstance(rng, np.random.Generator):
        seq = np.random.SeedSequence(int(rng.integers(0, 2 ** 63 - 1)))
    else:
        raise TypeError(f"rng: with an executor, expected an int seed or a "
                        f"numpy.random.Generator, got {type(rng).__name__}")
    return seq.spawn(n)


def sample_sharded(executor, n_shards, logdensity, init_position, n_chains, dim, rng,
                   checkpoint, shard_adaptation, kwargs):
    """Run :func:`samplers.sample` on shards of the chains through ``executor``.

    ``shard_adaptation`` is ``"per_shard"`` or ``"pooled"`` (see the module); ``kwargs``
    are the other arguments of :func:`samplers.sample` (without ``rng``, ``n_chains``,
    ``dim``, ``init_position``, ``checkpoint``, ``progress``).

    Returns
    -------
    Result
    """
    if not hasattr(executor, "submit"):
        raise TypeError(f"executor: expected a concurrent.futures.Executor or a "
                        f"dask.distributed.Client (an object with submit), got "
                        f"{type(executor).__name__}")
    if shard_adaptation not in SHARD_ADAPTATIONS:
        raise ValueError(f"shard_adaptation: expected one of {list(SHARD_ADAPTATIONS)}, got "
                         f"{shard_adaptation!r}")
    if init_position is not None:
        q = init_position if hasattr(init_position, "ndim") else np.asarray(init_position,
                                                                              dtype=float)
        if array_module(q) is not np:
            raise ValueError("executor: shards run on NumPy positions (give the executor "
                             "NumPy arrays; each worker may use its own GPU inside the "
                             "log density)")
        if q.ndim != 2:
            raise ValueError(f"init_position: expected shape [n_chains, dim], got shape "
                             f"{tuple(q.shape)}")
        n_chains = q.shape[0]
    elif n_chains is None or dim is None:
        raise ValueError("init_position: None needs n_chains= and dim= to draw initial "
                         f"positions (got n_chains={n_chains!r}, dim={dim!r})")
    bounds = shard_bounds(int(n_chains), n_chains if n_shards is None else n_shards)
    seeds = _seeds(rng, len(bounds))
    is_dask = type(executor).__module__.startswith("distributed")
    local_fns = dict(logdensity=logdensity, grad_fn=kwargs.get("grad_fn"))
    pooled = shard_adaptation == "pooled" and kwargs["n_warmup"] > 0
    if pooled:
        strategy = _pooled_strategy(logdensity, kwargs)
    if is_dask:
        # sent once to every worker, not once per shard (with the data it closes over)
        logdensity = executor.scatter(logdensity, broadcast=True, hash=False)
        if kwargs.get("grad_fn") is not None:
            kwargs = dict(kwargs, grad_fn=executor.scatter(kwargs["grad_fn"], broadcast=True,
                                                           hash=False))
    if pooled:
        return _sample_pooled(executor, is_dask, strategy, bounds, seeds, logdensity,
                              local_fns, None if init_position is None else q, dim,
                              checkpoint, kwargs)
    futures, shards = [], []
    for i, ((a, b), seed) in enumerate(zip(bounds, seeds)):
        shard = dict(kwargs, logdensity=logdensity, rng=np.random.default_rng(seed),
                     progress=False,
                     checkpoint=None if checkpoint is None else f"{checkpoint}.shard{i}")
        if init_position is None:
            shard.update(n_chains=b - a, dim=dim)
        else:
            shard.update(init_position=np.array(q[a:b]))
        extra = {"retries": 2, "pure": False} if is_dask else {}
        shards.append(shard)
        futures.append(executor.submit(_run_shard, shard, **extra))
    results, lost = [], []
    for i, (fut, (a, b)) in enumerate(zip(futures, bounds)):
        try:
            results.append(fut.result())
        except BrokenExecutor:
            # a worker process died (killed, out of memory): a process pool is then
            # unusable and fails every unfinished shard; rerun those here. A shard's
            # draws depend only on its seed, so nothing changes and no chain repeats.
            # (Dask reschedules a dead worker's shards by itself.)
            lost.append(i)
            results.append(_run_shard({**shards[i], **{k: v for k, v in local_fns.items()
                                                       if k in shards[i]}}))
        except Exception as err:
            if hasattr(err, "add_note"):
                err.add_note(f"samplers: raised by shard {i} (chains {a}-{b - 1}; chain "
                             f"numbers in the message count from chain {a})")
            for other in futures[i + 1:]:
                other.cancel()
            raise
    if lost:
        warnings.warn(f"samplers: the executor broke (a worker process died) before shards "
                      f"{lost} finished; they were rerun in this process with their own "
                      f"seeds, so the draws are those of an uninterrupted run",
                      ShardRerunWarning, stacklevel=3)
    return merge(results, bounds)


def merge(results, bounds, shared_mass=False):
    """One :class:`~samplers.driver.Result` from the shards' results, chains in order
    (``shared_mass``: the shards share one mass matrix, kept as it is)."""
    from .driver import Result
    first = results[0]
    cat = np.concatenate

    def stats(key):
        return {k: cat([r.__dict__[key][k] for r in results]) for k in first.__dict__[key]}
    logp = None if first.logdensity is None else cat([r.logdensity for r in results])
    state = type(first.state)(*[cat([getattr(r.state, f) for r in results])
                                if getattr(getattr(first.state, f), "ndim", 0) else
                                getattr(first.state, f) for f in first.state._fields])
    params = None
    if first.params is not None:
        fields = {}
        for f in first.params._fields:
            vals = [getattr(r.params, f) for r in results]
            if f == "step_size":
                fields[f] = cat(vals)
            elif f in ("inverse_mass", "mass_sqrt", "damping") and vals[0] is not None \
                    and not shared_mass:
                # GHMC (the kernel with a damping) has per-chain masses already
                fields[f] = _shard_rows(vals, bounds,
                                        per_chain=first.params.damping is not None)
            else:
                fields[f] = vals[0]
        params = type(first.params)(**fields)
    res = Result(cat([r.draws for r in results]), logp, stats("stats"), stats("warmup_stats"),
                 None if first.step_size is None else cat([r.step_size for r in results]),
                 None if params is None else params.inverse_mass, first.kernel, state, params)
    res.shards = list(bounds)
    return res


def _shard_rows(vals, bounds, per_chain):
    """Per-chain rows ``[C, ...]`` from one value per shard: concatenated when they are
    per chain already, else each shard's value repeated over its chains."""
    if per_chain:
        return np.concatenate([np.asarray(v) for v in vals])
    return np.concatenate([np.broadcast_to(np.asarray(v), (b - a,) + np.shape(v))
                           for v, (a, b) in zip(vals, bounds)])


# ------------------------------------------------------------------ pooled adaptation
def _pooled_strategy(logdensity, kwargs):
    """The warmup strategy of a pooled run, checked to support pooling."""
    from .driver import _kernel_and_strategy
    opts = {k: v for k, v in kwargs.items() if k not in _SAMPLE_ARGS}
    _, strategy, _, _ = _kernel_and_strategy(kwargs["kernel"], kwargs["adaptation"],
                                             logdensity, kwargs["grad_fn"],
                                             kwargs["target_accept"], kwargs["dense_mass"],
                                             opts)
    missing = [m for m in _POOLING if not hasattr(strategy, m)]
    if missing:
        raise ValueError(f"shard_adaptation='pooled': the warmup strategy "
                         f"{type(strategy).__name__} cannot pool its statistics across shards "
                         f"(it has no {missing[0]} method); pooled adaptation supports "
                         f"adaptation='stan'. Use shard_adaptation='per_shard' (each shard "
                         f"adapts on its own)")
    return strategy


#: What a strategy needs for pooled adaptation (see StanAdaptation).
_POOLING = ("init_search", "restart_step_size", "advance", "begin_window", "sync_points",
            "statistics", "pool", "pool_step_sizes")

#: :func:`samplers.sample` arguments in ``kwargs`` that are not kernel options.
_SAMPLE_ARGS = ("n_samples", "n_warmup", "kernel", "thin", "dense_mass", "target_accept",
                "grad_fn", "init", "compile", "adaptation", "checkpoint_every")


#: This process's kernels of pooled runs, ``(run token, shard) -> (kernel, strategy)``:
#: a worker that runs a shard's next phase reuses its kernel (and compiled log density)
#: instead of building it again. A few runs at most; a shard's entry goes when it samples.
_KERNELS = collections.OrderedDict()
_KERNELS_LOCK = threading.Lock()
_KERNELS_KEPT = 8


def _worker_kernel(setup, drop=False):
    """The shard's kernel and strategy, built on the worker from ``setup`` (or this
    process's copy from the shard's previous phase; ``drop`` forgets it)."""
    key = (setup["token"], setup["index"])
    with _KERNELS_LOCK:
        hit = _KERNELS.pop(key, None) if drop else _KERNELS.get(key)
    if hit is not None or drop:
        return hit
    from .driver import _build_kernel, _kernel_and_strategy
    kw = setup["kwargs"]
    opts = {k: v for k, v in kw.items() if k not in _SAMPLE_ARGS}
    cls, strategy, built, name = _kernel_and_strategy(
        kw["kernel"], kw["adaptation"], setup["logdensity"], kw["grad_fn"],
        kw["target_accept"], kw["dense_mass"], opts)
    k = name if built else _build_kernel(cls, name, setup["logdensity"], kw["grad_fn"],
                                         kw["compile"], opts)
    if hasattr(strategy, "check_kernel"):
        strategy.check_kernel(k)
    with _KERNELS_LOCK:
        _KERNELS[key] = (k, strategy)
        while len(_KERNELS) > _KERNELS_KEPT:
            _KERNELS.popitem(last=False)
    return k, strategy


def pooled_phase(carry, setup, message):
    """One phase of pooled warmup on one shard; runs on a worker.

    Parameters
    ----------
    carry : dict or None
        What the shard's previous phase returned (None for the first): its kernel state
        (``[C_s, D]`` positions and gradients, ``[C_s]`` log densities), its generator
        and the strategy's state without the schedule. With Dask it stays on the
        workers between phases.
    setup : dict
        ``logdensity``, ``kwargs`` (:func:`samplers.sample`'s options), ``seed``,
        ``positions`` (``[C_s, D]``, or None to draw them), ``n_chains``, ``dim``, and
        ``token`` (the run's) and ``index`` (the shard's), under which the worker keeps
        the shard's kernel for its next phase.
    message : dict
        ``kind``: ``"start"`` (initial positions, the step-size search), ``"run"``
        (dual averaging restarted at the pooled ``step_size``, transitions up to
        ``until``) or ``"window"`` (the pooled ``inverse_mass``, the step-size search
        from the pooled ``step_size``).

    Returns
    -------
    carry : dict
    report : dict
        What goes back to the caller: ``{"step_size": float}`` after a search; after a
        run the strategy's ``statistics`` and the run's warmup statistics
        ``{name: [C_s, n]}``. Never draws.
    """
    from .adaptation import window_schedule
    from .base import StatsRecorder, as_generator, nonfinite_chains
    from .driver import _finite_inits, _init_state, _initial_positions
    from .strategies import step
    kernel, strategy = _worker_kernel(setup)
    kw = setup["kwargs"]
    n_warmup = int(kw["n_warmup"])
    kind = message["kind"]
    if kind == "start":
        gen = as_generator(np.random.default_rng(setup["seed"]))
        q0 = _initial_positions(setup["positions"], setup["n_chains"], setup["dim"],
                                kw["init"], gen, np)
        if setup["positions"] is None and kw["init"] == "uniform":
            q0 = _finite_inits(kernel, q0, gen)
        state = _init_state(kernel, q0, gen)
        astate, state, eps = strategy.init_search(kernel, state, gen, n_warmup,
                                                  kernel.params(state.position))
        return _carry(state, gen, astate), {"step_size": eps}
    state, gen = carry["state"], carry["rng"]
    astate = carry["astate"]._replace(schedule=tuple(
        window_schedule(n_warmup) if strategy.schedule is None else strategy.schedule))
    if kind == "window":
        astate, state, eps = strategy.begin_window(kernel, astate, state, gen,
                                                   message["inverse_mass"],
                                                   message["step_size"])
        return _carry(state, gen, astate), {"step_size": eps}
    if kind != "run":
        raise ValueError(f"message: unknown kind {kind!r}")
    astate = strategy.restart_step_size(kernel, astate, message["step_size"])
    i0, i1 = astate.iteration, int(message["until"])
    rec = StatsRecorder(i1 - i0, state.position.shape[0], np)
    for i in range(i0, i1):
        p = astate.params
        state, info = step(kernel, state, gen, p)
        rec.record(i - i0, info, p.step_size, nonfinite_chains(state))
        astate, state = strategy.advance(kernel, astate, state, info, gen)
    report = {"statistics": strategy.statistics(astate), "warmup_stats": rec.result()}
    return _carry(state, gen, astate), report


def _carry(state, gen, astate):
    """A shard's carry; the schedule is left out (rebuilt on the worker each phase)."""
    return {"state": state, "rng": gen, "astate": astate._replace(schedule=None)}


def _sample_after_pooled(carry, setup, step_size):
    """The sampling phase of a pooled run's shard: :func:`samplers.sample` from the
    state after warmup, with the pooled mass (in the carry) and ``step_size``."""
    from .driver import sample
    from .strategies import with_step_size
    _worker_kernel(setup, drop=True)
    params = with_step_size(carry["astate"].params, step_size)
    kw = dict(setup["kwargs"], n_warmup=0, rng=carry["rng"], progress=False,
              checkpoint=setup["checkpoint"])
    state = carry["state"]
    return sample(setup["logdensity"], state.position, _warm=(state, params), **kw)


def _first(out):
    return out[0]


def _second(out):
    return out[1]


class _Runner:
    """Runs one phase on every shard through the executor and returns the reports in
    shard order; keeps the carries (Dask: futures, so they stay on the workers)."""

    def __init__(self, executor, is_dask, setups, bounds, local_fns):
        self.ex, self.is_dask, self.setups, self.bounds = executor, is_dask, setups, bounds
        self.local = [dict(s, logdensity=local_fns["logdensity"],
                           kwargs=dict(s["kwargs"], grad_fn=local_fns["grad_fn"]))
                      for s in setups]
        self.carries = [None] * len(setups)
        self.lineage = []              # Dask: every carry, so a lost one can be recomputed
        self.rerun = False             # a process pool broke: the rest runs here

    def _note(self, err, i):
        a, b = self.bounds[i]
        if hasattr(err, "add_note"):
            err.add_note(f"samplers: raised by shard {i} (chains {a}-{b - 1}; chain "
                         f"numbers in the message count from chain {a})")

    def phase(self, message):
        return self.run(pooled_phase, message, split=True)

    def run(self, fn, arg, split):
        n = len(self.setups)
        if self.is_dask:
            outs = [self.ex.submit(fn, self.carries[i], self.setups[i], arg, pure=False,
                                   retries=2) for i in range(n)]
            if not split:
                return self._gather(outs)
            self.carries = [self.ex.submit(_first, o, pure=False) for o in outs]
            self.lineage.append(self.carries)
            return self._gather([self.ex.submit(_second, o, pure=False) for o in outs])
        if not self.rerun:
            futs = [self.ex.submit(fn, self.carries[i], self.setups[i], arg) for i in range(n)]
        outs = []
        for i in range(n):
            try:
                if self.rerun:
                    raise BrokenExecutor
                outs.append(futs[i].result())
            except BrokenExecutor:
                if not self.rerun:
                    warnings.warn("samplers: the executor broke (a worker process died) "
                                  "during a pooled run; the remaining phases run in "
                                  "this process with each shard's own state, so the draws "
                                  "are those of an uninterrupted run", ShardRerunWarning,
                                  stacklevel=5)
                self.rerun = True
                try:
                    outs.append(fn(self.carries[i], self.local[i], arg))
                except Exception as err:
                    self._note(err, i)
                    raise
            except Exception as err:
                self._note(err, i)
                for other in futs[i + 1:]:
                    other.cancel()
                raise
        if not split:
            return outs
        self.carries = [o[0] for o in outs]
        return [o[1] for o in outs]

    def _gather(self, futs):
        out = []
        for i, f in enumerate(futs):
            try:
                out.append(f.result())
            except Exception as err:
                self._note(err, i)
                raise
        return out


def _sample_pooled(executor, is_dask, strategy, bounds, seeds, logdensity, local_fns, q,
                   dim, checkpoint, kwargs):
    """Warmup pooled across the shards at the strategy's sync points, then sampling per
    shard with the pooled parameters (see the module). With a checkpoint path, the end of
    the pooled warmup is saved to ``PATH.warmup`` (the shards' carries, the pooled step
    size, the warmup statistics), so that a rerun goes straight to the shards' sampling."""
    n_warmup = int(kwargs["n_warmup"])
    sizes = [b - a for a, b in bounds]
    token = uuid.uuid4().hex
    setups = [{"logdensity": logdensity, "kwargs": dict(kwargs), "seed": seed,
               "token": token, "index": i,
               "positions": None if q is None else np.array(q[a:b]), "n_chains": b - a,
               "dim": dim,
               "checkpoint": None if checkpoint is None else f"{checkpoint}.shard{i}"}
              for i, ((a, b), seed) in enumerate(zip(bounds, seeds))]
    runner = _Runner(executor, is_dask, setups, bounds, local_fns)
    ckpt = None if checkpoint is None else _WarmupCheckpoint(f"{checkpoint}.warmup", 1, {
        "pooled_warmup": n_warmup, "shards": list(bounds), "dim": dim,
        "entropy": str(seeds[0].entropy), "kernel": _name(kwargs["kernel"]),
        "adaptation": type(strategy).__qualname__})
    saved = None if ckpt is None else ckpt.load()
    if saved is None:
        final_eps, warmup_stats = _pooled_warmup(runner, strategy, n_warmup, sizes)
        if ckpt is not None:
            carries = runner.carries
            if is_dask:
                carries = executor.gather(carries)
            ckpt.save(phase="pooled", carries=carries, step_size=final_eps,
                      warmup_stats=warmup_stats)
    else:
        runner.carries = saved["carries"]
        final_eps, warmup_stats = saved["step_size"], saved["warmup_stats"]
    results = runner.run(_sample_after_pooled, final_eps, split=False)
    res = merge(results, bounds, shared_mass=True)
    res.warmup_stats = warmup_stats
    return res


def _pooled_warmup(runner, strategy, n_warmup, sizes):
    """The pooled warmup's phases; ``(step size after warmup, warmup statistics
    {name: [C, n_warmup]})``, the shards' carries left in ``runner``."""
    reports = runner.phase({"kind": "start"})
    eps = strategy.pool_step_sizes([r["step_size"] for r in reports], sizes)
    chunks = [[] for _ in sizes]
    final_eps = eps
    for until in strategy.sync_points(n_warmup):
        reports = runner.phase({"kind": "run", "step_size": eps, "until": until})
        for ch, r in zip(chunks, reports):
            ch.append(r["warmup_stats"])
        pooled = strategy.pool(None, [r["statistics"] for r in reports], sizes)
        final_eps = pooled["final_step_size"]
        if pooled["inverse_mass"] is not None:
            reports = runner.phase({"kind": "window", "inverse_mass": pooled["inverse_mass"],
                                    "step_size": pooled["step_size"]})
            # when the last transition ended a window, Stan keeps the search's step size
            eps = final_eps = strategy.pool_step_sizes([r["step_size"] for r in reports],
                                                       sizes)
    stats = {k: np.concatenate([np.concatenate([c[k] for c in ch], axis=1) for ch in chunks])
             for k in chunks[0][0]}
    return final_eps, stats


def _name(kernel):
    return kernel if isinstance(kernel, str) or kernel is None else \
        getattr(kernel, "__qualname__", type(kernel).__qualname__)


class _WarmupCheckpoint(Checkpoint):
    """The end of a pooled warmup (``PATH.warmup``): carries, step size, statistics."""

    def _check_payload(self, payload):
        missing = sorted({"phase", "carries", "step_size", "warmup_stats"} - set(payload))
        if payload.get("phase") != "pooled" or missing or \
                len(payload["carries"]) != len(self.fingerprint["shards"]):
            raise ValueError(f"checkpoint {self.path!r} is damaged: not the end of a pooled "
                             f"warmup of {len(self.fingerprint['shards'])} shards; delete it "
                             f"to start afresh")
