"""Warmup helpers shared by the strategies, and Stan's windowed warmup as a function.

:func:`find_step_size` is Stan's initial step-size heuristic (shared, or per chain);
:func:`checked_search` runs it per chain first and restarts the chains that are stuck
(:func:`restart_stuck`, :class:`StuckChainWarning`), so that one chain in a bad region
cannot hold the others hostage. :func:`window_adaptation` runs Stan's windowed warmup
(:class:`samplers.strategies.stan.StanAdaptation`) and returns a kernel with the tuned
parameters. Kernels never adapt themselves: every transition gets its
:class:`~samplers.base.KernelParams` from the strategy.
"""
import warnings

import numpy as np

from .adaptation import find_reasonable_step_size
from .base import _to_host, array_module, format_chains

__all__ = ["window_adaptation", "find_step_size", "checked_search", "restart_stuck",
           "restart_chains", "HEURISTIC_TARGET", "STUCK_RATIO", "StuckChainWarning"]

#: Stan's ``init_stepsize`` target: double or halve the step until the
#: one-step acceptance ``exp(-delta H)`` crosses 0.8.
HEURISTIC_TARGET = 0.8

#: A chain whose step size is below the chains' median by more than this factor
#: counts as stuck during warmup.
STUCK_RATIO = 1000.0


class StuckChainWarning(RuntimeWarning):
    """Chains were stuck during warmup (restarted from other chains, or still stuck)."""


def find_step_size(kernel, state, rng, initial_step_size, target=HEURISTIC_TARGET,
                   params=None):
    """Stan's initial step-size heuristic from ``state`` (Hoffman & Gelman 2014, Alg. 4).

    Each trial is ``kernel.trial(state, rng, params)``: fresh momenta for all chains and
    one integrator step (RWMH: one proposal); see
    :func:`samplers.adaptation.find_reasonable_step_size` (a float pools the
    chains' acceptance, a ``[C]`` array searches per chain).

    Parameters
    ----------
    kernel : HMC, NUTS, MALA, RWMH or any kernel with ``params`` and ``trial``
        Supplies the log density, integrator and inverse mass.
    state : HMCState or RWMHState
    rng : Generator
    initial_step_size : float or array, shape [C]
    target : float
        Acceptance level to cross (0.8 as Stan).
    params : KernelParams, optional
        Mass and other parameters of the trials; default ``kernel.params(position)``.

    Returns
    -------
    float or array, shape [C]
        Per chain (a host array): NaN where no step size was found.
    """
    q = state.position
    xp = array_module(q)
    if params is None:
        params = kernel.params(q)

    def accept(eps):
        if np.ndim(eps) == 0:
            eps_c = xp.full(q.shape[0], eps, dtype=q.dtype)
        else:
            eps_c = xp.asarray(eps, dtype=q.dtype)
        return kernel.trial(state, rng, params._replace(step_size=eps_c))[1].acceptance_rate
    return find_reasonable_step_size(accept, initial_step_size, target=target)


def window_adaptation(kernel, state, rng, n_warmup, target_accept=0.8, dense_mass=False,
                      initial_step_size=None, heuristic_target=HEURISTIC_TARGET,
                      callback=None, schedule=None):
    """Run Stan's windowed warmup; return the final state, tuned kernel and stats.

    The loop of :func:`samplers.strategies.run_warmup` with
    :class:`~samplers.strategies.stan.StanAdaptation`.

    Parameters
    ----------
    kernel : HMC, NUTS, MALA or RWMH
        The kernel to tune; its ``step_size`` (default) and ``inverse_mass``
        are the starting values.
    state : HMCState or RWMHState
        Initial state (from ``kernel.init``).
    rng : Generator
    n_warmup : int
        Warmup iterations.
    target_accept : float
        Dual averaging target (0.8 default, Stan's ``delta``).
    dense_mass : bool
        Estimate a dense ``[D, D]`` inverse mass instead of a diagonal one.
    initial_step_size : float, optional
        Defaults to the kernel's step size (its mean, if per chain).
    heuristic_target : float
        Target of the step-size heuristic (Stan: 0.8).
    callback : callable, optional
        ``callback(info, step_size)`` after every iteration (progress bars).
    schedule : list of (int, bool), optional
        ``(stage, is_window_end)`` per iteration; default
        :func:`samplers.adaptation.window_schedule` ``(n_warmup)``.

    Returns
    -------
    state : HMCState or RWMHState
        The state after warmup.
    kernel : same type as ``kernel``
        With the adapted ``step_size`` (float) and ``inverse_mass``.
    stats : dict of str to array, shape [n_chains, n_warmup]
        Per-iteration statistics (keys of :data:`samplers.base.STAT_KEYS`).

    Warns
    -----
    StuckChainWarning
        Naming the chains restarted from other chains' positions.

    Raises
    ------
    RuntimeError
        When no chain finds a usable step size, or no shared one is found.
    """
    from .strategies import run_warmup
    from .strategies.stan import StanAdaptation
    q = state.position
    params = kernel.params(q)
    if initial_step_size is not None:
        params = params._replace(step_size=array_module(q).full(
            q.shape[0], float(initial_step_size), dtype=q.dtype))
    adapt = StanAdaptation(target_accept, dense_mass, heuristic_target, schedule)
    state, params, stats = run_warmup(kernel, adapt, state, rng, n_warmup, params, callback)
    eps = float(_to_host(params.step_size)[0])
    return state, kernel.with_params(step_size=eps, inverse_mass=params.inverse_mass), stats


def checked_search(kernel, state, rng, eps0, target, when, params=None):
    """Stan's step-size heuristic for all chains together, after a search per chain
    has found the stuck ones (see :func:`_healthy`) and restarted them.

    Returns
    -------
    state : NamedTuple
        With the stuck chains restarted.
    step_size : float
    """
    c = state.position.shape[0]
    if c > 1:
        per_chain = find_step_size(kernel, state, rng, np.full(c, eps0), target, params)
        state = restart_stuck(state, per_chain, when)
    return state, find_step_size(kernel, state, rng, eps0, target, params)


def _healthy(eps):
    """Chains whose step size is finite and within :data:`STUCK_RATIO` of the median of
    the finite ones (host bool array [C])."""
    ok = np.isfinite(eps) & (eps > 0)
    if not ok.any():
        return ok
    return ok & (eps >= np.median(eps[ok]) / STUCK_RATIO)


def restart_stuck(state, eps, when):
    """``state`` with the stuck chains (see :func:`_healthy`) moved to healthy chains'
    states, round robin (the same object when no chain was stuck)."""
    healthy = _healthy(eps)
    if healthy.all():
        return state
    if not healthy.any():
        raise RuntimeError(f"warmup: no chain found a usable step size at {when}; is the "
                           f"density proper?")
    stuck = np.nonzero(~healthy)[0]
    return restart_chains(state, stuck, np.nonzero(healthy)[0],
                          f"{len(stuck)} of {len(eps)} chains were stuck at {when} (step size "
                          f"below 1/{STUCK_RATIO:g} of the median, or none found): "
                          f"{format_chains(stuck, eps[stuck])}", stacklevel=5)


def restart_chains(state, stuck, good, what, stacklevel):
    """:func:`move_chains`, with a :class:`StuckChainWarning` that says ``what`` and
    where the chains restart from.

    Parameters
    ----------
    state : NamedTuple of arrays, each [C, ...]
        The chains' states (every field is copied from source to stuck chain).
    stuck, good : host int arrays [S], [G]
        Chains to move, and chains to take positions from (round robin).
    what : str
        The warning's first part (how many chains, why, where in warmup).
    stacklevel : int
        As in ``warnings.warn``, counted from this function.

    Returns
    -------
    The new state (the same type as ``state``).
    """
    new, src = move_chains(state, stuck, good)
    warnings.warn(f"{what}; they restart from the positions of chains "
                  f"{', '.join(str(int(s)) for s in src[:8])}{' ...' if len(src) > 8 else ''}",
                  StuckChainWarning, stacklevel=stacklevel)
    return new


def move_chains(state, stuck, good):
    """``(state with chains stuck[i] set to chain src[i]'s every field, src)``, the
    sources taken from ``good`` round robin (host index arrays)."""
    src = good[np.arange(len(stuck)) % len(good)]
    xp = array_module(state.position)
    dst_d, src_d = xp.asarray(stuck), xp.asarray(src)
    fields = []
    for f in state:
        f = f.copy()
        f[dst_d] = f[src_d]
        fields.append(f)
    return type(state)(*fields), src
