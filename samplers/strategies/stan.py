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
import math
from typing import NamedTuple

import numpy as np

from ..adaptation import dual_averaging, welford_covariance, window_schedule
from ..base import _to_host, array_module
from ..warmup import HEURISTIC_TARGET, checked_search, find_step_size, restart_stuck
from . import Adaptation, kernel_extras, with_step_size

__all__ = ["StanAdaptation", "StanState", "merge_welford", "merge_dual_averaging",
           "merge_step_sizes"]


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
        astate, state, eps = self.init_search(kernel, state, rng, n_warmup, params)
        return self.restart_step_size(kernel, astate, eps), state

    def update(self, kernel, astate, state, info, rng):
        astate, state = self.advance(kernel, astate, state, info, rng)
        if self.at_window_end(astate):
            _, (_, _, wf_final) = self._blocks(kernel)
            astate, state, eps = self.begin_window(kernel, astate, state, rng,
                                                   wf_final(astate.welford),
                                                   astate.da.step_size)
            astate = self.restart_step_size(kernel, astate, eps)
        return astate, state

    def final(self, kernel, astate, state):
        da = astate.da
        if da.step == 0:      # no update yet when the last iteration ended a window
            return astate.params
        (_, _, da_final), _ = self._blocks(kernel)
        return with_step_size(astate.params, da_final(da))

    # The pieces of init and update, which pooled adaptation across shards
    # (samplers.shards, shard_adaptation="pooled") runs with statistics pooled between
    # them: init = init_search + restart_step_size; update = advance, and at a slow
    # window's end begin_window + restart_step_size.
    def init_search(self, kernel, state, rng, n_warmup, params):
        """The start of :meth:`init`: the schedule and the step-size search.

        Returns
        -------
        astate : StanState
            Its ``da`` not started yet (None).
        state : NamedTuple
            With stuck chains restarted.
        step_size : float
            The heuristic's step size, with which :meth:`restart_step_size` starts.
        """
        schedule = self.schedule
        if schedule is None:
            schedule = window_schedule(n_warmup)
        elif len(schedule) != n_warmup:
            raise ValueError(f"schedule: expected {n_warmup} (stage, is_window_end) entries, "
                             f"got {len(schedule)}")
        _, (wf_init, _, _) = self._blocks(kernel)
        eps0 = float(array_module(params.step_size).mean(params.step_size))
        state, eps = checked_search(kernel, state, rng, eps0, self.heuristic_target,
                                    "the start", params)
        slow = [i for i, (stage, _) in enumerate(schedule) if stage == 1]
        return StanState(params, 0, None, wf_init(state.position), tuple(schedule),
                         slow[0] - 1 if slow else -1), state, eps

    def restart_step_size(self, kernel, astate, step_size):
        """``astate`` with dual averaging restarted at ``step_size`` (a float), as at the
        start and after each slow window."""
        (da_init, _, _), _ = self._blocks(kernel)
        return astate._replace(params=with_step_size(astate.params, step_size),
                               da=da_init(step_size))

    def advance(self, kernel, astate, state, info, rng):
        """:meth:`update` up to a slow window's end: dual averaging, the window's
        Welford estimate, and the stuck-chain check at the end of the initial buffer."""
        (_, da_update, _), (_, wf_update, _) = self._blocks(kernel)
        params, i, da, wf, schedule, last_fast = astate
        stage, window_end = schedule[i]
        da = da_update(da, info.acceptance_rate)
        eps = da.step_size
        if stage == 1:
            wf = wf_update(wf, state.position)
        elif i == last_fast:
            # the end of the initial fast buffer: chains stuck since the start restart
            # before the first slow window, whose draws estimate the mass matrix
            c = state.position.shape[0]
            per_chain = find_step_size(kernel, state, rng, np.full(c, eps),
                                       self.heuristic_target, params)
            state = restart_stuck(state, per_chain, f"warmup iteration {i + 1}")
        return StanState(with_step_size(params, eps), i + 1, da, wf, schedule, last_fast), state

    @staticmethod
    def at_window_end(astate):
        """Whether the last transition (``astate.iteration``) ended a slow window."""
        i = astate.iteration - 1
        return i >= 0 and tuple(astate.schedule[i]) == (1, True)

    def begin_window(self, kernel, astate, state, rng, inverse_mass, step_size):
        """After a slow window: the new metric ``inverse_mass``, a fresh Welford estimate,
        stuck chains restarted and the step-size heuristic re-run from ``step_size``
        (Stan restarts it from the current, not the averaged, step size).

        Returns
        -------
        astate : StanState
            With the new mass (``da`` to be restarted by :meth:`restart_step_size`).
        state : NamedTuple
        step_size : float
            The heuristic's step size under the new metric.
        """
        _, (wf_init, _, _) = self._blocks(kernel)
        params = kernel.params(state.position, inverse_mass=inverse_mass,
                               **kernel_extras(astate.params, kernel))
        wf = wf_init(state.position)
        state, eps = checked_search(kernel, state, rng, step_size, self.heuristic_target,
                                    f"warmup iteration {astate.iteration}", params)
        return astate._replace(params=params, welford=wf), state, eps

    # ------------------------------------------------------------ pooled across shards
    def sync_points(self, n_warmup):
        """Transition counts at which pooled shards meet: each slow window's end, and the
        end of warmup (sorted, without repeats)."""
        schedule = window_schedule(n_warmup) if self.schedule is None else self.schedule
        ends = [i + 1 for i, entry in enumerate(schedule) if tuple(entry) == (1, True)]
        return sorted(set(ends) | {int(n_warmup)})

    @staticmethod
    def pool_step_sizes(step_sizes, n_chains):
        """The shards' heuristic step sizes as one (:func:`merge_step_sizes`)."""
        return merge_step_sizes(step_sizes, n_chains)

    def statistics(self, astate):
        """What a shard sends at a sync point: the window's Welford state (count, mean
        ``[D]``, M2 ``[D]`` or ``[D, D]``; None outside a slow window's end) and the dual
        averaging state (five numbers). Never draws."""
        wf = astate.welford if self.at_window_end(astate) else None
        if wf is not None:
            wf = type(wf)(wf.count, _to_host(wf.mean), _to_host(wf.m2))
        return {"welford": wf, "da": astate.da}

    def pool(self, kernel, statistics, n_chains):
        """Pool the shards' :meth:`statistics` (in shard order).

        The Welford states are merged exactly (Chan et al.'s pairwise update: the
        estimate of all the shards' positions together, up to summation order); the dual
        averaging states are averaged with the shards' chain counts as weights, which is
        the dual averaging of the all-chain mean acceptance for the acceptances the
        shards saw (it is linear in them; every shard restarted from the same ``mu``).

        Parameters
        ----------
        kernel : kernel object
        statistics : list of dict
            One :meth:`statistics` per shard.
        n_chains : list of int
            The shards' chain counts.

        Returns
        -------
        dict
            ``da`` (the pooled dual averaging state), ``step_size`` (its current step
            size), ``final_step_size`` (its iterate average, None before any update)
            and ``inverse_mass`` (``[D]`` or ``[D, D]``; None outside a window's end).
        """
        (_, _, da_final), (_, _, wf_final) = self._blocks(kernel)
        da = merge_dual_averaging([s["da"] for s in statistics], n_chains)
        wfs = [s["welford"] for s in statistics]
        inv = None if wfs[0] is None else wf_final(merge_welford(wfs))
        return {"da": da, "step_size": da.step_size,
                "final_step_size": da_final(da) if da.step else None, "inverse_mass": inv}


def merge_welford(states):
    """One :class:`~samplers.adaptation.WelfordState` from several (in order), with Chan
    et al.'s pairwise update: the state of all their draws together, up to summation
    order. One state is returned as it is."""
    out = states[0]
    for s in states[1:]:
        n = out.count + s.count
        if s.count == 0:
            continue
        if out.count == 0:
            out = s
            continue
        delta = s.mean - out.mean
        mean = out.mean + delta * (s.count / n)
        scale = out.count * s.count / n
        if delta.ndim == out.m2.ndim:                     # diagonal
            m2 = out.m2 + s.m2 + delta * delta * scale
        else:
            m2 = out.m2 + s.m2 + (delta[:, None] * delta[None, :]) * scale
        out = type(out)(n, mean, m2)
    return out


def merge_dual_averaging(states, weights):
    """One shared :class:`~samplers.adaptation.DualAveragingState` from several that
    started together (same ``mu`` and update count): ``log_step_size``, its average and
    the average error weighted by ``weights`` (chain counts), folded in order. One state
    is returned as it is.

    Raises
    ------
    ValueError
        When the states have different update counts or ``mu`` (they did not start
        together).
    """
    out, w = states[0], float(weights[0])
    for s, ws in zip(states[1:], weights[1:]):
        if s.step != out.step or s.mu != out.mu:
            raise ValueError(f"dual averaging states: expected the same update count and mu "
                             f"(a common restart), got step {out.step} / {s.step}, mu "
                             f"{out.mu} / {s.mu}")
        a, b = w / (w + ws), ws / (w + ws)
        out = type(out)(a * out.log_step_size + b * s.log_step_size,
                        a * out.log_step_size_avg + b * s.log_step_size_avg, out.step,
                        a * out.avg_error + b * s.avg_error, out.mu)
        w += ws
    return out


def merge_step_sizes(step_sizes, weights):
    """The shards' heuristic step sizes pooled: their geometric mean weighted by
    ``weights`` (chain counts), folded in order (one is returned as it is)."""
    out, w = float(step_sizes[0]), float(weights[0])
    for e, ws in zip(step_sizes[1:], weights[1:]):
        out = math.exp((w * math.log(out) + ws * math.log(float(e))) / (w + ws))
        w += ws
    return out
