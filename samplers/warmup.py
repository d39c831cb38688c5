"""Stan's windowed warmup, composed from the (init, update, final) adapters.

The schedule (Stan Reference Manual, "HMC algorithm parameters: automatic
parameter tuning"; :func:`samplers.adaptation.window_schedule`) is an
initial fast buffer (75 iterations: step size only), slow windows of 25, 50,
100, ... iterations (step size and mass matrix) and a final fast buffer (50),
scaled down for short warmups. During slow windows the positions of all
chains are pooled into a Welford (co)variance estimate; at the end of each
window it becomes the inverse mass matrix (regularized as Stan does), and as
in Stan the step-size heuristic is re-run and dual averaging restarted with
``mu = log(10 * eps)``. The step size after warmup is dual averaging's
iterate average (Hoffman & Gelman 2014, Algorithm 5).

Kernels never adapt themselves (BlackJAX's ``window_adaptation.py``): each
iteration steps with ``kernel.with_params(step_size=...)``, a copy sharing
the log-density wrapper.

All chains share one step size and one mass matrix (acceptance probabilities
are pooled by their mean: with few chains, per-chain dual averaging over short
windows is noisy and ends below its target). So that one chain in a bad region
(a huge gradient, a funnel's neck) cannot hold the others hostage, the step-size
heuristic first runs per chain at the start, at the end of the initial fast
buffer and at each window end: a chain whose own step size is far below the
others' (:data:`STUCK_RATIO`), or that finds none, restarts from the position of
a healthy chain, with a :class:`StuckChainWarning` naming it, before the shared
step size is searched.
"""
import warnings

import numpy as np

from .adaptation import (dual_averaging, find_reasonable_step_size, welford_covariance,
                         window_schedule)
from .base import StatsRecorder, array_module, format_chains
from .hmc import GradientKernel, metropolis_hmc_step

__all__ = ["window_adaptation", "find_step_size", "HEURISTIC_TARGET", "STUCK_RATIO",
           "StuckChainWarning"]

#: Stan's ``init_stepsize`` target: double or halve the step until the
#: one-step acceptance ``exp(-delta H)`` crosses 0.8.
HEURISTIC_TARGET = 0.8

#: A chain whose step size is below the chains' median by more than this factor
#: counts as stuck during warmup.
STUCK_RATIO = 1000.0


class StuckChainWarning(RuntimeWarning):
    """Chains were stuck during warmup (restarted from other chains, or still stuck)."""


def find_step_size(kernel, state, rng, initial_step_size, target=HEURISTIC_TARGET):
    """Stan's initial step-size heuristic from ``state`` (Hoffman & Gelman 2014, Alg. 4).

    Each trial draws fresh momenta for all chains and takes one integrator
    step (RWMH: one proposal); see
    :func:`samplers.adaptation.find_reasonable_step_size` (a float pools the
    chains' acceptance, a ``[C]`` array searches per chain).

    Parameters
    ----------
    kernel : HMC, NUTS, MALA or RWMH
        Supplies the log density, integrator and inverse mass.
    state : HMCState or RWMHState
    rng : Generator
    initial_step_size : float or array, shape [C]
    target : float
        Acceptance level to cross (0.8 as Stan).

    Returns
    -------
    float or array, shape [C]
        Per chain (a host array): NaN where no step size was found.
    """
    q = state.position
    xp = array_module(q)

    def params(eps):
        return eps if np.ndim(eps) == 0 else xp.asarray(eps, dtype=q.dtype)
    if isinstance(kernel, GradientKernel):
        def accept(eps):
            return metropolis_hmc_step(kernel.with_params(step_size=params(eps)), state, rng,
                                       1)[1].acceptance_rate
    else:
        def accept(eps):
            return kernel.with_params(step_size=params(eps)).step(state, rng)[1].acceptance_rate
    return find_reasonable_step_size(accept, initial_step_size, target=target)


def window_adaptation(kernel, state, rng, n_warmup, target_accept=0.8, dense_mass=False,
                      initial_step_size=None, heuristic_target=HEURISTIC_TARGET,
                      callback=None, schedule=None):
    """Run Stan's windowed warmup; return the final state, tuned kernel and stats.

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
    q = state.position
    xp = array_module(q)
    c = q.shape[0]
    if schedule is None:
        schedule = window_schedule(n_warmup)
    elif len(schedule) != n_warmup:
        raise ValueError(f"schedule: expected {n_warmup} (stage, is_window_end) entries, got "
                         f"{len(schedule)}")
    da_init, da_update, da_final = dual_averaging(target=target_accept)
    wf_init, wf_update, wf_final = welford_covariance(diagonal=not dense_mass)
    if initial_step_size is None:
        initial_step_size = float(xp.mean(xp.asarray(kernel.step_size)))

    state, eps = _checked_search(kernel, state, rng, float(initial_step_size),
                                 heuristic_target, "the start")
    da = da_init(eps)
    wf = wf_init(q)
    rec = StatsRecorder(n_warmup, c, xp)
    slow = [i for i, (stage, _) in enumerate(schedule) if stage == 1]
    last_fast = slow[0] - 1 if slow else -1
    eps_vec = xp.full(c, eps, dtype=q.dtype)
    for i, (stage, window_end) in enumerate(schedule):
        k = kernel.with_params(step_size=eps)
        state, info = k.step(state, rng)
        eps_vec.fill(eps)
        rec.record(i, info, eps_vec)
        if callback is not None:
            callback(info, eps_vec)
        da = da_update(da, info.acceptance_rate)
        eps = da.step_size
        if stage == 1:
            wf = wf_update(wf, state.position)
            if window_end:
                kernel = kernel.with_params(inverse_mass=wf_final(wf))
                wf = wf_init(q)
                # Stan restarts the step size search from the current (not
                # averaged) step size under the new metric.
                state, eps = _checked_search(kernel, state, rng, eps, heuristic_target,
                                             f"warmup iteration {i + 1}")
                da = da_init(eps)
        elif i == last_fast:
            # the end of the initial fast buffer: chains stuck since the start restart
            # before the first slow window, whose draws estimate the mass matrix
            per_chain = find_step_size(kernel.with_params(step_size=eps), state, rng,
                                       np.full(c, eps), heuristic_target)
            state = _restart_stuck(state, per_chain, f"warmup iteration {i + 1}")
    if da.step > 0:       # no update yet when the last iteration ended a window
        eps = da_final(da)
    return state, kernel.with_params(step_size=eps), rec.result()


def _checked_search(kernel, state, rng, eps0, target, when):
    """Stan's step-size heuristic for all chains together, after a search per chain
    has found the stuck ones (see :func:`_healthy`) and restarted them."""
    c = state.position.shape[0]
    if c > 1:
        per_chain = find_step_size(kernel, state, rng, np.full(c, eps0), target)
        state = _restart_stuck(state, per_chain, when)
    return state, find_step_size(kernel, state, rng, eps0, target)


def _healthy(eps):
    """Chains whose step size is finite and within :data:`STUCK_RATIO` of the median of
    the finite ones (host bool array [C])."""
    ok = np.isfinite(eps) & (eps > 0)
    if not ok.any():
        return ok
    return ok & (eps >= np.median(eps[ok]) / STUCK_RATIO)


def _restart_stuck(state, eps, when):
    """``state`` with the stuck chains (see :func:`_healthy`) moved to healthy chains'
    states, round robin (the same object when no chain was stuck)."""
    healthy = _healthy(eps)
    if healthy.all():
        return state
    if not healthy.any():
        raise RuntimeError(f"warmup: no chain found a usable step size at {when}; is the "
                           f"density proper?")
    stuck = np.nonzero(~healthy)[0]
    good = np.nonzero(healthy)[0]
    src = good[np.arange(len(stuck)) % len(good)]
    xp = array_module(state.position)
    dst_d, src_d = xp.asarray(stuck), xp.asarray(src)
    fields = []
    for f in state:
        f = f.copy()
        f[dst_d] = f[src_d]
        fields.append(f)
    warnings.warn(f"{len(stuck)} of {len(eps)} chains were stuck at {when} (step size "
                  f"below 1/{STUCK_RATIO:g} of the median, or none found): "
                  f"{format_chains(stuck, eps[stuck])}; they restart from the positions of "
                  f"chains {', '.join(str(int(s)) for s in src[:8])}"
                  f"{' ...' if len(src) > 8 else ''}", StuckChainWarning, stacklevel=4)
    return type(state)(*fields)
