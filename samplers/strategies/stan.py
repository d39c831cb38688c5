"""Stan's windowed warmup as a strategy (:class:`StanAdaptation`, ``adaptation="stan"``).

The schedule (Stan Reference Manual, "HMC algorithm parameters: automatic parameter
tuning"; :func:`samplers.adaptation.window_schedule`) is an initial fast buffer (75
iterations: step size only), slow windows of 25, 50, 100, ... iterations (step size
and mass matrix) and a final fast buffer (50), scaled down for short warmups. During
slow windows the positions of all chains are pooled into a Welford (co)variance
estimate; at the end of each window it becomes the inverse mass matrix (regularized as
Stan does), and as in Stan the step-size heuristic is re-run and dual averaging
restarted with ``mu = log(10 * eps)``. The step size after warmup is dual averaging's
iterate average (Hoffman & Gelman 2014, Algorithm 5).

All chains share one step size and one mass matrix (acceptance probabilities are pooled
by their mean: with few chains, per-chain dual averaging over short windows is noisy and
ends below its target). So that one chain in a bad region (a huge gradient, a funnel's
neck) cannot hold the others hostage, the step-size heuristic first runs per chain at
the start, at the end of the initial fast buffer and at each window end: a chain whose
own step size is far below the others' (:data:`samplers.warmup.STUCK_RATIO`), or that
finds none, restarts from the position of a healthy chain, with a
:class:`~samplers.warmup.StuckChainWarning` naming it, before the shared step size is
searched.
"""
from typing import NamedTuple

import numpy as np

from ..adaptation import dual_averaging, welford_covariance, window_schedule
from ..base import array_module
from ..warmup import HEURISTIC_TARGET, checked_search, find_step_size, restart_stuck
from . import Adaptation, kernel_extras, with_step_size

__all__ = ["StanAdaptation", "StanState"]


class StanState(NamedTuple):
    """State of :class:`StanAdaptation`.

    Attributes
    ----------
    params : KernelParams
        Parameters of the next transition.
    iteration : int
        Warmup transitions done.
    da : DualAveragingState
        Step-size dual averaging (shared by the chains).
    welford : WelfordState
        The current slow window's (co)variance estimate.
    schedule : tuple of (int, bool)
        ``(stage, is_window_end)`` per iteration.
    last_fast : int
        Last iteration of the initial fast buffer (-1 without slow windows).
    """
    params: object
    iteration: int
    da: object
    welford: object
    schedule: tuple
    last_fast: int


class StanAdaptation(Adaptation):
    """Stan's windowed adaptation of the step size and the (diagonal or dense) mass.

    Parameters
    ----------
    target_accept : float, optional
        Dual averaging target; None uses the kernel's ``target_accept`` (0.8 for NUTS
        and HMC, 0.574 for MALA, 0.234 for RWMH).
    dense_mass : bool
        Estimate a dense ``[D, D]`` inverse mass instead of a diagonal one.
    heuristic_target : float
        Target of the step-size heuristic (Stan: 0.8).
    schedule : list of (int, bool), optional
        ``(stage, is_window_end)`` per iteration; default
        :func:`samplers.adaptation.window_schedule` ``(n_warmup)``.
    """

    def __init__(self, target_accept=None, dense_mass=False, heuristic_target=HEURISTIC_TARGET,
                 schedule=None):
        if target_accept is not None and not 0.0 < target_accept < 1.0:
            raise ValueError(f"target_accept: expected a value in (0, 1), got {target_accept!r}")
        self.target_accept = target_accept
        self.dense_mass = bool(dense_mass)
        self.heuristic_target = heuristic_target
        self.schedule = schedule

    def _blocks(self, kernel):
        target = self.target_accept
        if target is None:
            target = getattr(kernel, "target_accept", 0.8)
        return dual_averaging(target=target), welford_covariance(diagonal=not self.dense_mass)

    def init(self, kernel, state, rng, n_warmup, params):
        schedule = self.schedule
        if schedule is None:
            schedule = window_schedule(n_warmup)
        elif len(schedule) != n_warmup:
            raise ValueError(f"schedule: expected {n_warmup} (stage, is_window_end) entries, "
                             f"got {len(schedule)}")
        (da_init, _, _), (wf_init, _, _) = self._blocks(kernel)
        eps0 = float(array_module(params.step_size).mean(params.step_size))
        state, eps = checked_search(kernel, state, rng, eps0, self.heuristic_target,
                                    "the start", params)
        slow = [i for i, (stage, _) in enumerate(schedule) if stage == 1]
        return StanState(with_step_size(params, eps), 0, da_init(eps), wf_init(state.position),
                         tuple(schedule), slow[0] - 1 if slow else -1), state

    def update(self, kernel, astate, state, info, rng):
        (da_init, da_update, _), (wf_init, wf_update, wf_final) = self._blocks(kernel)
        params, i, da, wf, schedule, last_fast = astate
        stage, window_end = schedule[i]
        da = da_update(da, info.acceptance_rate)
        eps = da.step_size
        if stage == 1:
            wf = wf_update(wf, state.position)
            if window_end:
                params = kernel.params(state.position, inverse_mass=wf_final(wf),
                                       **kernel_extras(params, kernel))
                wf = wf_init(state.position)
                # Stan restarts the step size search from the current (not averaged)
                # step size under the new metric.
                state, eps = checked_search(kernel, state, rng, eps, self.heuristic_target,
                                            f"warmup iteration {i + 1}", params)
                da = da_init(eps)
        elif i == last_fast:
            # the end of the initial fast buffer: chains stuck since the start restart
            # before the first slow window, whose draws estimate the mass matrix
            c = state.position.shape[0]
            per_chain = find_step_size(kernel, state, rng, np.full(c, eps),
                                       self.heuristic_target, params)
            state = restart_stuck(state, per_chain, f"warmup iteration {i + 1}")
        return StanState(with_step_size(params, eps), i + 1, da, wf, schedule, last_fast), state

    def final(self, kernel, astate, state):
        da = astate.da
        if da.step == 0:      # no update yet when the last iteration ended a window
            return astate.params
        (_, _, da_final), _ = self._blocks(kernel)
        return with_step_size(astate.params, da_final(da))

