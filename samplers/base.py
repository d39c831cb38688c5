"""States, infos and the batched log-density wrapper shared by every kernel.

A kernel is a pair of pure functions in the style of BlackJAX
(``blackjax/base.py``): ``init(position) -> state`` and
``step(state, rng) -> (state, info)``. States carry only what the next step
needs (position, log density and its gradient, so nothing is recomputed);
diagnostics go in the info and never in the state. All arrays are batched
over chains: positions are ``[C, D]``, per-chain scalars ``[C]``.

:class:`LogDensity` evaluates the log density *and* its gradient for all
chains in one call. With :mod:`autodiff`, it differentiates
``sum(logdensity(q))``: chains do not interact, so the gradient of the sum
with respect to row ``c`` of ``q`` is the gradient of chain ``c``'s log
density, and one tape pass serves every chain.
"""
import sys
import warnings
from typing import NamedTuple

import numpy as np

__all__ = ["HMCState", "HMCInfo", "NUTSInfo", "RWMHState", "LogDensity", "KernelParams",
           "array_module", "default_module", "as_generator", "inverse_mass_parts", "velocity",
           "draw_momentum", "format_chains", "StatsRecorder", "STAT_KEYS",
           "nonfinite_chains"]


class HMCState(NamedTuple):
    """State of the gradient-based kernels (HMC, NUTS, MALA).

    Attributes
    ----------
    position : array, shape [C, D]
        Current position of each chain.
    logdensity : array, shape [C]
        Log density at ``position``.
    logdensity_grad : array, shape [C, D]
        Gradient of the log density at ``position``.
    """
    position: object
    logdensity: object
    logdensity_grad: object


class RWMHState(NamedTuple):
    """State of random-walk Metropolis-Hastings (no gradient needed).

    Attributes
    ----------
    position : array, shape [C, D]
        Current position of each chain.
    logdensity : array, shape [C]
        Log density at ``position``.
    """
    position: object
    logdensity: object


class HMCInfo(NamedTuple):
    """Per-chain diagnostics of one HMC, MALA or RWMH transition.

    Attributes
    ----------
    acceptance_rate : array, shape [C]
        Metropolis acceptance probability ``min(1, exp(-delta H))`` (0 where
        the proposal's energy is not finite).
    is_accepted : array of bool, shape [C]
        Whether the proposal was accepted.
    is_divergent : array of bool, shape [C]
        Energy error above the divergence threshold (or not finite).
    energy : array, shape [C]
        Hamiltonian of the new state (for RWMH: the negative log density).
    n_grad_evals : array of int, shape [C]
        Gradient evaluations spent on this transition.
    momentum : array, shape [C, D] or None
        Momentum drawn at the start of the transition (None for RWMH).
    proposal : array, shape [C, D] or None
        End point of the trajectory (RWMH: the proposed position), accepted or not.
    proposal_momentum : array, shape [C, D] or None
        Momentum at the end of the trajectory (what ChEES differentiates along).
    """
    acceptance_rate: object
    is_accepted: object
    is_divergent: object
    energy: object
    n_grad_evals: object
    momentum: object = None
    proposal: object = None
    proposal_momentum: object = None


class NUTSInfo(NamedTuple):
    """Per-chain diagnostics of one NUTS transition.

    Attributes
    ----------
    acceptance_rate : array, shape [C]
        Mean Metropolis acceptance probability ``min(1, exp(-delta H))`` over
        every point of the trajectory, rejected subtrees included (the
        statistic Stan adapts the step size on).
    is_divergent : array of bool, shape [C]
        Some point had an energy error above the divergence threshold.
    energy : array, shape [C]
        Hamiltonian of the selected point (Stan's ``energy__``).
    n_grad_evals : array of int, shape [C]
        Gradient evaluations spent by this chain (frozen waiting steps are not
        counted).
    tree_depth : array of int, shape [C]
        Number of completed doublings (Stan's ``treedepth__``).
    momentum : array, shape [C, D] or None
        Momentum drawn at the start of the transition.
    """
    acceptance_rate: object
    is_divergent: object
    energy: object
    n_grad_evals: object
    tree_depth: object
    momentum: object = None


class KernelParams(NamedTuple):
    """Parameters of one transition, passed to ``kernel.step(state, rng, params)``.

    Kernels hold default values (their constructor arguments) but never adapt them;
    warmup strategies build new ``KernelParams`` (``kernel.params(position, ...)``, or
    ``params._replace(step_size=...)`` when only the step size changes) and pass them
    to every ``step``. Every kernel reads the fields it needs.

    Attributes
    ----------
    step_size : array, shape [C]
        Integrator step size per chain (RWMH: the proposal scale).
    inverse_mass : array, shape [D], [D, D] or [C, D]
        Inverse mass matrix: diagonal, dense, or one diagonal per chain (GHMC).
        RWMH: the proposal covariance shape.
    mass_sqrt : array, same shape as ``inverse_mass``
        Momentum factor: ``M^{1/2}`` (diagonal) or the lower Cholesky factor of
        ``M = inverse_mass^{-1}`` (RWMH: the factor of the proposal covariance).
    n_leapfrogs : int
        Integrator steps per transition (HMC).
    trajectory_length : float or None
        HMC with jittered trajectories (ChEES): each transition draws ``u ~ U(0, 1]``
        (one for all chains) and takes ``ceil(u * trajectory_length / step_size)``
        integrator steps (the mean step size over chains); None uses ``n_leapfrogs``.
    damping : array, shape [C] or None
        Momentum damping ``gamma`` of generalized HMC (MEADS): the momentum keeps
        ``sqrt(1 - alpha)`` of itself per transition, ``alpha = 1 - exp(-2 eps gamma)``.
    """
    step_size: object
    inverse_mass: object
    mass_sqrt: object
    n_leapfrogs: int = 1
    trajectory_length: object = None
    damping: object = None


#: Keys of the per-transition statistics of the Metropolis-adjusted kernels, recorded by
#: the driver and the warmup (SG-MCMC kernels record ``step_size`` and their own info
#: fields instead).
STAT_KEYS = ("acceptance", "divergent", "step_size", "tree_depth", "n_grad_evals", "energy",
             "nonfinite")

#: Info field -> statistic name, for infos that have an ``acceptance_rate``.
_MCMC_FIELDS = (("acceptance", "acceptance_rate"), ("divergent", "is_divergent"),
                ("n_grad_evals", "n_grad_evals"), ("energy", "energy"),
                ("tree_depth", "tree_depth"))


class StatsRecorder:
    """Preallocated ``[n, C]`` buffers for the per-transition statistics.

    The keys follow the first info recorded: :data:`STAT_KEYS` for the Metropolis-adjusted
    kernels (an info with ``acceptance_rate``; ``tree_depth`` 0 without a tree), else
    ``step_size`` and every other field of the info (SG-MCMC: ``grad_norm``).

    Parameters
    ----------
    n : int
        Number of transitions recorded.
    c : int
        Number of chains.
    xp : module
        Array module.
    """

    def __init__(self, n, c, xp):
        self.n, self.c, self.xp = n, c, xp
        self.bufs = None

    def _allocate(self, info):
        xp, n, c = self.xp, self.n, self.c
        if hasattr(info, "acceptance_rate"):
            self.fields = [(k, f) for k, f in _MCMC_FIELDS if getattr(info, f, None) is not None]
            self.bufs = {"acceptance": xp.empty((n, c)),
                         "divergent": xp.empty((n, c), dtype=bool),
                         "step_size": xp.empty((n, c)),
                         "tree_depth": xp.zeros((n, c), dtype=np.int64),
                         "n_grad_evals": xp.empty((n, c), dtype=np.int64),
                         "energy": xp.empty((n, c))}
        else:
            self.fields = [(f, f) for f in info._fields
                           if f != "step_size" and getattr(info, f) is not None]
            self.bufs = {"step_size": xp.empty((n, c))}
            for key, f in self.fields:
                v = getattr(info, f)
                self.bufs[key] = xp.empty((n, c), dtype=getattr(v, "dtype", np.float64))
        self.bufs["nonfinite"] = xp.zeros((n, c), dtype=bool)

    def __getstate__(self):                    # checkpoints: the module is not pickled
        return {k: v for k, v in self.__dict__.items() if k != "xp"}

    def __setstate__(self, d):
        self.__dict__.update(d)
        self.xp = np

    def record(self, t, info, step_size=None, nonfinite=None):
        """Store transition ``t``'s info and step sizes ``[C]`` (None: the info's own
        ``step_size``, a scalar or ``[C]``) and the ``[C]`` flags of the chains at a
        non-finite point (:func:`nonfinite_chains`; statistic ``nonfinite``)."""
        if self.bufs is None:
            self._allocate(info)
        b = self.bufs
        for key, f in self.fields:
            b[key][t] = getattr(info, f)
        b["step_size"][t] = info.step_size if step_size is None else step_size
        if nonfinite is not None:
            b["nonfinite"][t] = nonfinite

    def result(self):
        """Chain-major ``[C, n]`` copies (:data:`STAT_KEYS`, empty, when nothing was
        recorded)."""
        if self.bufs is None:
            return {k: self.xp.zeros((self.c, 0)) for k in STAT_KEYS}
        return {k: self.xp.ascontiguousarray(v.T) for k, v in self.bufs.items()}


def nonfinite_chains(state):
    """``[C]`` bool: the chains whose position (or log density, when the state has one)
    is not finite -- a run that diverged to inf/NaN (SG-MCMC with too large a step)."""
    xp = array_module(state.position)
    bad = ~xp.isfinite(state.position).all(axis=1)
    lp = getattr(state, "logdensity", None)
    if lp is not None:
        bad |= ~xp.isfinite(lp)
    return bad


# --------------------------------------------------------------------------- arrays
def array_module(x):
    """``numpy`` or ``cupy`` according to the type of ``x`` (CuPy imported lazily)."""
    if type(x).__module__.startswith("cupy"):
        import cupy
        return cupy
    return np


def default_module():
    """The array module of new arrays when no input decides: the default device of
    :mod:`autodiff.backend` (``set_default_device``) when autodiff is loaded (only it can
    change the default), else NumPy."""
    backend = sys.modules.get("autodiff.backend")
    return np if backend is None else backend.get_array_module()


def as_generator(rng, xp=np):
    """Turn ``rng`` (int seed or Generator) into a Generator of module ``xp``.

    Parameters
    ----------
    rng : int or numpy.random.Generator or cupy.random.Generator
        A seed or a generator; never a global seed.
    xp : module
        ``numpy`` or ``cupy``: the module of the positions.
    """
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return xp.random.default_rng(int(rng))
    on_gpu = type(rng).__module__.startswith("cupy") and hasattr(rng, "integers")
    if not (on_gpu or isinstance(rng, np.random.Generator)):
        raise TypeError("rng: expected an int seed or a numpy.random.Generator / "
                        f"cupy.random.Generator, got {type(rng).__name__} ({rng!r})")
    if on_gpu == (xp is not np):
        return rng
    # a generator of the other module (a NumPy Generator with CuPy positions, say): a
    # generator of xp seeded by one draw from it, so the run is still reproducible
    return xp.random.default_rng(int(rng.integers(0, 2 ** 63 - 1)))


def inverse_mass_parts(inverse_mass, dim, xp, dtype):
    """Validate an inverse mass matrix and derive the momentum factor.

    Parameters
    ----------
    inverse_mass : None or array, shape [D] or [D, D]
        None is the identity; a vector is a diagonal inverse mass matrix; a
        matrix a dense one (symmetric positive definite).
    dim : int
        Dimension ``D`` of the positions.

    Returns
    -------
    inv_mass : array, shape [D] or [D, D]
    mass_sqrt : array, shape [D] or [D, D]
        ``M^{1/2}`` (diagonal) or the lower Cholesky factor ``L`` of
        ``M = inv_mass^{-1}`` (dense), so that ``p = L z`` with ``z ~ N(0, I)``
        has covariance ``M``.
    """
    if inverse_mass is None:
        inv = xp.ones(dim, dtype=dtype)
    else:
        inv = xp.asarray(inverse_mass, dtype=dtype)
    if inv.shape not in ((dim,), (dim, dim)):
        raise ValueError(f"inverse_mass: expected shape ({dim},) or ({dim}, {dim}) for "
                         f"positions of dimension {dim}, got {tuple(inv.shape)}")
    if inv.ndim == 1 and not (bool(xp.all(inv > 0)) and bool(xp.all(xp.isfinite(inv)))):
        raise ValueError("inverse_mass: a diagonal inverse mass must be finite and "
                         f"positive, got min {float(inv.min())}")
    from . import kernels
    try:
        msqrt = kernels.mass_sqrt_from_inverse(inv)
    except Exception as e:  # LinAlgError (not positive definite / singular)
        raise ValueError("inverse_mass: a dense inverse mass must be symmetric positive "
                         f"definite ({e})") from None
    if not bool(xp.all(xp.isfinite(msqrt))):
        raise ValueError("inverse_mass: a dense inverse mass must be symmetric positive "
                         "definite (the Cholesky factor of its inverse is not finite)")
    return inv, msqrt


def velocity(p, inv_mass):
    """``M^{-1} p`` per chain: ``[C, D]`` from ``[C, D]`` momenta."""
    if inv_mass.ndim == 1:
        return p * inv_mass
    return p @ inv_mass.T


def draw_momentum(rng, q, mass_sqrt):
    """Momenta ``p ~ N(0, M)`` of the shape and dtype of ``q`` ``[C, D]``.

    ``mass_sqrt`` is from :func:`inverse_mass_parts`.
    """
    from . import kernels
    return kernels.sample_momentum(rng, q, mass_sqrt)


def format_chains(idx, values, limit=8):
    """Short text naming chains and their values for error messages."""
    idx = [int(i) for i in np.asarray(_to_host(idx)).ravel()]
    vals = np.asarray(_to_host(values))
    shown = ", ".join(f"chain {i}: {float(vals[k])}" if vals.ndim == 1 else
                      f"chain {i}: {np.array2string(vals[k], threshold=6)}"
                      for k, i in enumerate(idx[:limit]))
    more = f" (and {len(idx) - limit} more)" if len(idx) > limit else ""
    return shown + more


#: Chains evaluated one at a time to name those behind an exception.
NAME_CHAINS_LIMIT = 256


def _name_chains(err, f, q):
    """Add a note to ``err`` naming the chains (among the first
    :data:`NAME_CHAINS_LIMIT`) whose positions raise on their own."""
    if getattr(q, "ndim", 0) != 2 or q.shape[0] < 2 or not hasattr(err, "add_note"):
        return
    f = getattr(f, "fun", f)                   # an autodiff.compile/trace wrapper
    n = min(q.shape[0], NAME_CHAINS_LIMIT)
    failing = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(n):
            try:
                f(q[i:i + 1])
            except Exception:
                failing.append(i)
    if failing and len(failing) < n:            # not one every chain hits
        err.add_note(f"samplers: raised by the log density at the position of chain(s) "
                     f"{', '.join(map(str, failing[:8]))}{' ...' if len(failing) > 8 else ''}"
                     f"{f' (of the first {n} chains)' if n < q.shape[0] else ''}")


def _to_host(x):
    return x.get() if type(x).__module__.startswith("cupy") else x


def _unwrap(x):
    """Raw array from an autodiff Tensor (when autodiff is loaded), else ``x``."""
    if type(x) is np.ndarray:
        return x
    ad = sys.modules.get("autodiff")
    if ad is not None and isinstance(x, ad.Tensor):
        return x.data
    return x


# --------------------------------------------------------------------------- wrapper
class LogDensity:
    """Batched log density and gradient: ``(logp [C], grad [C, D]) = ld(q [C, D])``.

    Parameters
    ----------
    logdensity : callable
        ``logdensity(position [C, D]) -> [C]``, written with :mod:`autodiff`
        ops (or plain array code when ``grad_fn`` is given).
    grad_fn : callable, optional
        ``grad_fn(position [C, D]) -> [C, D]``, the gradient of the log density
        per chain. When given, autodiff is not used (nor imported).
    compile : bool
        Compile the log density with :func:`autodiff.compile` on first use (default);
        False evaluates it on the tape at every call. A function already traced or
        compiled (``autodiff.trace``, ``autodiff.compile``) is used as it is.

    Notes
    -----
    With autodiff, one ``value_and_grad`` of ``q -> sum(logdensity(q))`` with
    the per-chain values as auxiliary output evaluates every chain in a single
    tape pass (compiled: one run of the compiled program). The returned shapes are
    checked on every call (two tuple comparisons): a log density that returns
    ``[C, 1]`` or a scalar would otherwise broadcast silently into wrong acceptance
    probabilities.
    """

    __slots__ = ("logdensity", "grad_fn", "_vg", "compile")

    def __init__(self, logdensity, grad_fn=None, compile=True):
        if not callable(logdensity):
            raise TypeError(f"logdensity: expected a callable position [C, D] -> [C], "
                            f"got {type(logdensity).__name__}")
        if grad_fn is not None and not callable(grad_fn):
            raise TypeError(f"grad_fn: expected a callable position [C, D] -> [C, D], "
                            f"got {type(grad_fn).__name__}")
        self.logdensity = logdensity
        self.grad_fn = grad_fn
        self.compile = bool(compile)
        self._vg = None

    def __getstate__(self):
        # pickled (a shard's Result sent back by a worker): the user's function, not the
        # compiled program built from it (recompiled at first use after unpickling)
        f = self.logdensity
        if self._vg is not None and self.grad_fn is None and self.compile:
            f = getattr(f, "fun", f)
        return {"logdensity": f, "grad_fn": self.grad_fn, "compile": self.compile}

    def __setstate__(self, d):
        self.logdensity, self.grad_fn, self.compile = d["logdensity"], d["grad_fn"], d["compile"]
        self._vg = None

    def _value_and_grad(self):
        if self._vg is None:
            try:
                import autodiff as ad
            except ImportError as e:
                raise ImportError("samplers: differentiating the log density needs the "
                                  "autodiff package; pass grad_fn= to supply the gradient "
                                  f"yourself ({e})") from None
            f = self.logdensity
            if self.compile:
                # recorded at the first call of each shape, verified against the tape on
                # the next ones; falls back (with a warning) when it cannot be compiled
                self.logdensity = ad.compile(f)
                self._vg = self.logdensity.value_and_grad
                return self._vg

            def summed(q):
                lp = f(q)
                return ad.sum(lp), lp

            vg = ad.value_and_grad(summed, has_aux=True)
            self._vg = lambda q: (lambda r: (r[0][1], r[1]))(vg(q))
        return self._vg

    def value(self, q):
        """Log density only, ``[C]`` (no gradient; used by RWMH)."""
        if self.grad_fn is None and self.compile and self._vg is None and \
                not getattr(self.logdensity, "_ad_traced", False):
            self._value_and_grad()
        lp = self.logdensity(q)
        if self.grad_fn is None and sys.modules.get("autodiff") is not None:
            lp = _unwrap(lp)
        self._check_value(lp, q)
        return lp

    def __call__(self, q):
        """Log density ``[C]`` and its gradient ``[C, D]`` at ``q [C, D]``.

        An exception raised by the user's function propagates with a note naming the
        chains whose positions raise it on their own (when they can be found by
        evaluating the first chains one at a time)."""
        try:
            return self._call(q)
        except Exception as err:
            _name_chains(err, self.logdensity, q)
            raise

    def _call(self, q):
        if self.grad_fn is not None:
            lp = _unwrap(self.logdensity(q))
            g = _unwrap(self.grad_fn(q))
        elif getattr(self.logdensity, "_ad_traced", False):     # trace(f) / compile(f)
            lp, g = self.logdensity.value_and_grad(q)
        else:
            lp, g = self._value_and_grad()(q)
        self._check_value(lp, q)
        if getattr(g, "shape", None) != q.shape:
            raise ValueError(f"grad_fn: must return the gradient with the shape of the "
                             f"position {tuple(q.shape)} ([n_chains, dim]), got shape "
                             f"{getattr(g, 'shape', type(g).__name__)}")
        return lp, g

    @staticmethod
    def _check_value(lp, q):
        if getattr(lp, "shape", None) != q.shape[:1]:
            raise ValueError(
                "logdensity: must return one value per chain, shape "
                f"({q.shape[0]},) for a position of shape {tuple(q.shape)}, got shape "
                f"{getattr(lp, 'shape', type(lp).__name__)}; sum over the "
                "non-chain axes (e.g. sum(..., axis=-1))")

    def check_finite(self, lp, g, where="initial position"):
        """Raise naming the chains whose log density or gradient is not finite."""
        xp = array_module(lp)
        bad = ~xp.isfinite(lp)
        if bool(bad.any()):
            idx = xp.nonzero(bad)[0]
            raise ValueError(f"logdensity is not finite at the {where} of "
                             f"{int(bad.sum())} chain(s): {format_chains(idx, lp[idx])}")
        if g is not None:
            badg = ~xp.isfinite(g).all(axis=1)
            if bool(badg.any()):
                idx = xp.nonzero(badg)[0]
                raise ValueError(f"gradient of logdensity is not finite at the {where} of "
                                 f"{int(badg.sum())} chain(s): {format_chains(idx, g[idx])}")
