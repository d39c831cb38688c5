"""ChEES-HMC: step size, jittered trajectory length and mass from many chains.

Hoffman, Radul & Sountsov (2021), "An adaptive-MCMC scheme for setting trajectory
lengths in Hamiltonian Monte Carlo", AISTATS. With ``kernel="hmc"`` (every chain takes
``ceil(u T / eps)`` leapfrog steps, ``u ~ U(0, 1]`` drawn per transition):

- until the first mass change, every chain has its own step size (Stan's heuristic
  per chain, then dual averaging on its own acceptance): from uniform(-2, 2) inits in
  a badly scaled posterior (kilpisjarvi: x ~ 4000, sigma from e^-2 to e^2) the chains'
  local curvatures differ by orders of magnitude, and one shared step size, set by the
  stiffest chain, leaves the others where they started and the mass windows see no
  posterior at all. At the change, chains that needed steps below 1/``stuck_ratio`` of
  the median *and* sit below the median log density (a mixture's spike, a local mode)
  restart from other chains (:func:`restart_slow`). ``T`` is not adapted in that
  phase: every transition takes up to ``start_steps`` (8) steps, jittered. The criterion
  assumes chains at stationarity; chains in transit towards the typical set make it
  rise with ``T`` (a longer trajectory carries them further), and there it climbed
  to ~150 steps per transition on arK (1024 chains: 80 % of the run's gradients in
  the first 40 % of warmup, for a mass estimate);
- then one step size, by dual averaging (``gamma`` 0.15) towards a *harmonic-mean*
  acceptance of 0.651 over the chains (chains that reject everything pull the step
  size down, where the arithmetic mean would let them hide), each chain's acceptance
  floored at ``acceptance_floor`` so that a single chain cannot veto every step size;
- the trajectory length ``T`` climbs the ChEES criterion (the change in the estimator
  of the expected square, ``E[(|q' - mean|^2 - |q - mean|^2)^2] / 4``): from one step,
  it doubles while the criterion's gradient in ``log T`` is more than two standard
  errors above 0 (over the chains), then, from the last ``T`` where it rose (a doubling
  can land far past the first maximum, where the gradient is flat), follows Adam on the
  stochastic gradient from all chains' proposals, weighted by their acceptance, steps
  clipped to ``+-0.35``;
- the inverse mass is estimated from the chains pooled over two windows (10-40 % and
  40-70 % of warmup): their variance (or covariance, ``dense_mass``) as in the paper,
  or with ``mass_estimate="fisher"`` from draws *and* gradients (``sqrt(Var q /
  Var grad)``, or the matrix geometric mean of the draws' covariance and the inverse of
  the gradients', :mod:`samplers.strategies.fisher`), starting from ``1 / |grad|``;
  at each change the step-size heuristic runs again (restarting stuck chains, as
  Stan's warmup), dual averaging restarts and ``T`` climbs again from one step (the
  criterion is periodic in ``T`` along each direction, and from far beyond its first
  maximum the jitter-averaged gradient is flat);
- after warmup: dual averaging's averaged step size and the running average of
  ``log T`` (weights ``t^-0.5``).

The whitened criterion (positions and velocities in the coordinates where the inverse
mass is the identity) keeps it consistent with the mass. Made for many chains
(hundreds); with 4 chains the gradient is noisy but the scheme still runs.
"""
import math
from typing import NamedTuple

import numpy as np

from ..adaptation import dual_averaging, welford_covariance
from ..base import _to_host, array_module, format_chains
from ..warmup import (HEURISTIC_TARGET, checked_search, find_step_size, restart_chains,
                      restart_stuck)
from . import Adaptation, kernel_extras, with_step_size
from .fisher import fisher_inverse_mass, geometric_mean, gradient_inverse_mass

__all__ = ["ChEESAdaptation", "ChEESState", "chees_gradient", "restart_slow"]

#: Largest change of ``log T`` in one iteration.
LOG_UPDATE_CLIP = 0.35


class ChEESState(NamedTuple):
    """State of :class:`ChEESAdaptation`.

    Attributes
    ----------
    params : KernelParams
        Step size, inverse mass and ``trajectory_length`` of the next transition.
    iteration : int
    da : DualAveragingState
    log_length, log_length_avg : float
        ``log T`` (Adam's iterate) and its running average.
    avg_count : int
        Iterations in the running average since the last mass change.
    adam : tuple of float
        ``(first moment, second moment, steps)``.
    previous : array, shape [C, D]
        Positions at the start of the next transition.
    welford : (WelfordState, WelfordState) or None
        The current mass window's estimates for the draws and the gradients.
    bounds : tuple of int
        Iterations where the mass windows start and end (empty: no mass adaptation).
    climbing : bool
        ``T`` is doubling (before Adam takes over).
    """
    params: object
    iteration: int
    da: object
    log_length: float
    log_length_avg: float
    avg_count: int
    adam: tuple
    previous: object
    welford: object
    bounds: tuple
    climbing: bool = True


def chees_gradient(initial, proposal, proposal_momentum, acceptance, divergent,
                   inverse_mass, time, standard_error=False):
    """Stochastic gradient of the ChEES criterion with respect to ``log T``.

    Parameters
    ----------
    initial, proposal, proposal_momentum : array, shape [C, D]
        Positions at the start and at the end of each chain's trajectory, and the
        momentum at its end.
    acceptance : array, shape [C]
        Acceptance probabilities (the weights).
    divergent : array of bool, shape [C]
        Divergent chains (left out).
    inverse_mass : array, shape [D] or [D, D]
        Inverse mass of the transition (diagonal or dense).
    time : float or array, shape [C]
        Integration time of each trajectory (``n_steps * step_size``).
    standard_error : bool
        Also return the standard error of the estimate over the chains.

    Returns
    -------
    float, or (float, float) with ``standard_error``
        ``sum_c a_c t_c (|q'_c|^2 - |q_c|^2) (q'_c . v'_c) / sum_c a_c`` in whitened,
        centred coordinates (``x -> L^{-1} x`` and ``v' = M^{-1} p' -> L^T p'`` with
        ``M^{-1} = L L^T``); 0 when no chain counts. Its standard error is
        ``sqrt(sum_c a_c^2 (g_c - mean)^2) / sum_c a_c`` (0 when no chain counts).
    """
    xp = array_module(proposal)
    ok = ~divergent & xp.isfinite(proposal).all(axis=1) & xp.isfinite(acceptance)
    w = xp.where(ok, acceptance, 0.0)
    if float(w.sum()) <= 0.0:
        return (0.0, 0.0) if standard_error else 0.0
    qp = xp.where(ok[:, None], proposal, 0.0)
    pp = xp.where(ok[:, None], proposal_momentum, 0.0)
    mean_p = (w[:, None] * qp).sum(axis=0) / w.sum()
    if inverse_mass.ndim == 1:
        root = xp.sqrt(inverse_mass)
        x1 = (qp - mean_p) / root
        x0 = (initial - initial.mean(axis=0)) / root
        v1 = pp * root
    else:
        chol = xp.linalg.cholesky(inverse_mass)
        x1 = xp.linalg.solve(chol, (qp - mean_p).T).T
        x0 = xp.linalg.solve(chol, (initial - initial.mean(axis=0)).T).T
        v1 = pp @ chol
    g = time * ((x1 * x1).sum(axis=1) - (x0 * x0).sum(axis=1)) * (x1 * v1).sum(axis=1)
    g = xp.where(ok, g, 0.0)
    mean = float((w * g).sum() / w.sum())
    if not standard_error:
        return mean
    # of the weighted mean, as a ratio estimator: sum w^2 (g - mean)^2 / (sum w)^2
    se = float(xp.sqrt((w * w * (g - mean) ** 2).sum()) / w.sum())
    return mean, se


class ChEESAdaptation(Adaptation):
    """ChEES-HMC warmup (``adaptation="chees"``, with ``kernel="hmc"``).

    Parameters
    ----------
    target_accept : float, optional
        Target of the harmonic-mean acceptance (0.651, the paper's).
    learning_rate : float
        Adam's step in ``log T`` (0.025).
    adapt_mass : bool
        Estimate the inverse mass from the chains (default True).
    dense_mass : bool
        Estimate a dense inverse mass rather than a diagonal one: with hundreds of chains
        it is well determined, and it is what strongly correlated posteriors need.
    mass_estimate : str
        ``"variance"`` (the paper's: the chains' pooled variance or covariance, from the
        given inverse mass) or ``"fisher"`` (from draws *and* gradients, starting from
        ``1 / |grad|``; better where the draws' scales are far apart, see
        ``bench/README.md``).
    initial_steps : int
        Initial trajectory length in step sizes (``T_0 = initial_steps * eps_0``).
    decay_rate : float
        Weights ``t^-decay_rate`` of the running average of ``log T`` (0.5).
    betas : (float, float)
        Adam's moment decay rates (0.9, 0.999).
    heuristic_target : float
        Target of the step-size heuristic at the start and at mass changes (0.8).
    per_chain_start : bool
        A step size per chain until the first mass change (default True; with mass
        adaptation and more than one chain).
    start_steps : int or None
        In that per-chain phase every transition takes a jittered ``start_steps`` steps
        of the chains' mean step size, and ``T`` is not adapted (8; None: adapted from
        the start, as after the mass changes).
    gamma : float
        Dual averaging's ``gamma`` for the shared step size (0.15; the per-chain phase
        keeps Stan's 0.05). Its statistic is the harmonic mean over the chains, and
        with one step size for all the acceptance swings from nearly all to nearly
        none: at 0.05 the step size kept oscillating over a factor of 10 through
        whole mass windows (arK, 1024 chains), and the trajectories' cost with it.
    climb : bool
        Double ``T`` while the criterion clearly rises, before Adam (default True).
        After a mass change dual averaging's first step size is ten times the
        heuristic's, most proposals are rejected, and the climb usually ends there:
        Adam then starts from one step. (Climbing only on transitions that accepted
        most proposals overshot on arK: T up to 37, 1.5-4x the gradients.)
    stuck_ratio : float
        At the end of the per-chain phase, chains whose step size is below the median
        over this (and whose log density is below the median) restart from others (10).
    acceptance_floor : float
        Floor of each chain's acceptance in the harmonic mean (0.01; 0 is the paper's
        plain harmonic mean).
    """

    default_kernel = "hmc"
    requires = ("trajectory_length",)

    def __init__(self, target_accept=None, learning_rate=0.025, adapt_mass=True,
                 dense_mass=False, mass_estimate="variance", initial_steps=1,
                 decay_rate=0.5, betas=(0.9, 0.999), heuristic_target=HEURISTIC_TARGET,
                 per_chain_start=True, climb=True, stuck_ratio=10.0, acceptance_floor=0.01,
                 start_steps=8, gamma=0.15):
        if start_steps is not None and (isinstance(start_steps, bool)
                                        or int(start_steps) != start_steps or start_steps < 1):
            raise ValueError(f"start_steps: expected a positive integer or None, got "
                             f"{start_steps!r}")
        self.start_steps = None if start_steps is None else int(start_steps)
        if not gamma > 0:
            raise ValueError(f"gamma: expected a positive float, got {gamma!r}")
        self.gamma = float(gamma)
        if not 0.0 <= acceptance_floor < 1.0:
            raise ValueError(f"acceptance_floor: expected a float in [0, 1), got "
                             f"{acceptance_floor!r}")
        self.acceptance_floor = float(acceptance_floor)
        if not stuck_ratio > 1:
            raise ValueError(f"stuck_ratio: expected a float > 1, got {stuck_ratio!r}")
        self.stuck_ratio = float(stuck_ratio)
        self.per_chain_start = bool(per_chain_start)
        self.climb = bool(climb)
        if mass_estimate not in ("variance", "fisher"):
            raise ValueError(f"mass_estimate: expected 'variance' or 'fisher', got "
                             f"{mass_estimate!r}")
        self.mass_estimate = mass_estimate
        if target_accept is not None and not 0.0 < target_accept < 1.0:
            raise ValueError(f"target_accept: expected a value in (0, 1), got {target_accept!r}")
        if not learning_rate > 0:
            raise ValueError(f"learning_rate: expected a positive float, got {learning_rate!r}")
        self.target_accept = 0.651 if target_accept is None else float(target_accept)
        self.learning_rate = float(learning_rate)
        self.adapt_mass = bool(adapt_mass)
        self.dense_mass = bool(dense_mass)
        self.initial_steps = int(initial_steps)
        self.decay_rate = float(decay_rate)
        self.betas = tuple(float(b) for b in betas)
        self.heuristic_target = heuristic_target

    def _mass(self, wf, like):
        """Inverse mass from the window: the draws' (co)variance (regularized as Stan's),
        or with ``mass_estimate="fisher"`` ``sqrt(Var q / Var g)`` per coordinate, or
        (dense) the geometric mean of the draws' covariance and the inverse of the
        gradients' (:func:`~samplers.strategies.fisher.geometric_mean`)."""
        _, _, wf_final = welford_covariance(diagonal=not self.dense_mass)
        if self.mass_estimate == "variance":
            return wf_final(wf[0])
        cx, cg = wf_final(wf[0], regularize=False), wf_final(wf[1], regularize=False)
        if not self.dense_mass:
            return fisher_inverse_mass(cx, cg)
        cx, cg = np.asarray(_to_host(cx)), np.asarray(_to_host(cg))
        ridge = 1e-10 * np.eye(len(cx))
        inv = geometric_mean(cx + ridge * np.trace(cx), cg + ridge * np.trace(cg))
        return array_module(like).asarray(inv, dtype=like.dtype)

    def _windows(self, n):
        """Iterations where the mass windows start and end."""
        if not self.adapt_mass or n < 20:
            return ()
        return (int(0.1 * n), int(0.4 * n), int(0.7 * n))

    def init(self, kernel, state, rng, n_warmup, params):
        if self.adapt_mass and n_warmup >= 20 and self.mass_estimate == "fisher":
            # start from the gradients' scales (nutpie's start) until the first window
            params = kernel.params(state.position,
                                   inverse_mass=gradient_inverse_mass(state.logdensity_grad),
                                   **kernel_extras(params, kernel))
        eps0 = float(array_module(params.step_size).mean(params.step_size))
        bounds = self._windows(n_warmup)
        if bounds and self.per_chain_start and state.position.shape[0] > 1:
            # until the first mass change: a step size per chain (chains far apart in a
            # badly scaled posterior see curvatures orders of magnitude apart)
            eps = self._per_chain_search(kernel, state, rng, eps0, params)
            state, eps = eps
        else:
            state, eps = checked_search(kernel, state, rng, eps0, self.heuristic_target,
                                        "the start", params)
        da = dual_averaging(target=self.target_accept)[0](eps)
        steps = self.start_steps if np.ndim(eps) and self.start_steps else self.initial_steps
        log_t = math.log(steps * float(np.mean(eps)))
        params = _with(params, eps, math.exp(log_t))
        return ChEESState(params, 0, da, log_t, log_t, 0, (0.0, 0.0, 0), state.position,
                          None, bounds), state

    def _per_chain_search(self, kernel, state, rng, eps0, params):
        """Stan's heuristic per chain; stuck chains restart from others and search
        again. Returns ``(state, step sizes [C] host array)``."""
        c = state.position.shape[0]
        eps = find_step_size(kernel, state, rng, np.full(c, eps0), self.heuristic_target,
                             params)
        new = restart_stuck(state, eps, "the start")
        if new is not state:
            state = new
            eps = find_step_size(kernel, state, rng, np.full(c, eps0),
                                 self.heuristic_target, params)
        ok = np.isfinite(eps) & (eps > 0)
        return state, np.where(ok, eps, np.median(eps[ok]))

    def update(self, kernel, astate, state, info, rng):
        (params, t, da, log_t, log_t_avg, count, (m, v, n_adam), previous, wf,
         bounds, climbing) = astate
        xp = array_module(state.position)
        a = np.nan_to_num(np.asarray(_to_host(info.acceptance_rate), dtype=np.float64))
        div = np.asarray(_to_host(info.is_divergent))
        a_ok = np.where(div, 0.0, np.clip(a, 0.0, 1.0))
        per_chain = isinstance(da.mu, np.ndarray)
        # the per-chain phase keeps dual averaging's own (Stan's) gamma
        _, da_update, _ = dual_averaging(target=self.target_accept,
                                         **({} if per_chain else {"gamma": self.gamma}))
        if per_chain:
            # per-chain phase: each chain's own acceptance
            da = da_update(da, a_ok)
        else:
            # step size: dual averaging on the harmonic mean of the acceptance, each
            # chain's floored (one chain in a spike cannot veto every step size alone)
            with np.errstate(divide="ignore"):
                harmonic = 1.0 / np.mean(1.0 / np.maximum(a_ok, self.acceptance_floor))
            da = da_update(da, harmonic)
        eps = da.step_size
        eps_mean = float(np.mean(eps))
        if per_chain and self.start_steps:
            # in transit, step sizes per chain: a fixed number of steps
            log_t = log_t_avg = math.log(self.start_steps * eps_mean)
        else:
            log_t, log_t_avg, count, (m, v, n_adam), climbing = self._length(
                kernel, astate, state, info, eps_mean)
        # mass: from the chains' draws and gradients over the windows
        i = t + 1
        if bounds and bounds[0] <= t < bounds[-1]:
            wf_init, wf_update, _ = welford_covariance(diagonal=not self.dense_mass)
            q, g = state.position, state.logdensity_grad
            if wf is None:
                wf = (wf_init(q), wf_init(q))
            good = xp.isfinite(g).all(axis=1) & ~info.is_divergent
            if bool(good.any()):
                wf = (wf_update(wf[0], q[good]), wf_update(wf[1], g[good]))
            if i in bounds[1:]:
                if isinstance(da.mu, np.ndarray):
                    # the end of the per-chain phase: chains that needed far smaller
                    # steps than the others, lower down, sit in a region of their own
                    # (a spike of a mixture); with one step size for all they would
                    # hold it down (harmonic mean), so they restart from others
                    state = restart_slow(state, np.exp(da.log_step_size_avg),
                                         self.stuck_ratio, f"warmup iteration {i}")
                    q = state.position
                params = kernel.params(q, inverse_mass=self._mass(wf, q),
                                       trajectory_length=math.exp(log_t))
                wf = None
                state, eps = checked_search(kernel, state, rng, eps_mean, self.heuristic_target,
                                            f"warmup iteration {i}", params)
                da = dual_averaging(target=self.target_accept)[0](eps)
                # a new metric is a new problem: climb again from a short trajectory to
                # the criterion's first maximum (ChEES is periodic in T along each
                # direction; from too far out, its jitter-averaged gradient is flat)
                log_t = log_t_avg = math.log(self.initial_steps * eps)
                count, (m, v, n_adam), climbing = 0, (0.0, 0.0, 0), True
        params = _with(params, eps, math.exp(log_t))
        return ChEESState(params, i, da, log_t, log_t_avg, count, (m, v, n_adam),
                          state.position, wf, bounds, climbing), state

    def _length(self, kernel, astate, state, info, eps_mean):
        """The next ``(log T, its running average, avg_count, adam, climbing)``."""
        (params, _, _, log_t, log_t_avg, count, (m, v, n_adam), previous, _, _,
         climbing) = astate
        xp = array_module(state.position)
        # trajectory length: Adam (no momentum) ascent on the ChEES criterion in log T
        n_steps = np.asarray(_to_host(info.n_grad_evals)) / kernel.integrator.n_stages
        time = xp.asarray(n_steps * np.asarray(_to_host(params.step_size)),
                          dtype=state.position.dtype)
        grad, se = chees_gradient(previous, info.proposal, info.proposal_momentum,
                                  info.acceptance_rate, info.is_divergent,
                                  params.inverse_mass, time, standard_error=True)
        if climbing and self.climb:
            # double T while the criterion clearly rises (its gradient two standard
            # errors above 0 over the chains; Adam's small steps would need hundreds of
            # iterations to cross orders of magnitude), then Adam from the last T where
            # it rose: the jitter-averaged criterion is periodic-like in T, a doubling
            # can land far past its first maximum, and out there its gradient is flat
            # (arK: stopped at T = 9 where the maximum is near 3, and stayed there)
            if math.isfinite(grad) and grad > 2.0 * se and log_t < math.log(
                    kernel.max_leapfrogs * eps_mean):
                log_t += math.log(2.0)
            else:
                climbing, log_t = False, log_t - math.log(2.0)
        elif math.isfinite(grad):
            b1, b2 = self.betas
            n_adam += 1
            m = b1 * m + (1.0 - b1) * grad
            v = b2 * v + (1.0 - b2) * grad * grad
            step = self.learning_rate * (m / (1.0 - b1 ** n_adam)) / (
                math.sqrt(v / (1.0 - b2 ** n_adam)) + 1e-12)
            log_t += max(-LOG_UPDATE_CLIP, min(LOG_UPDATE_CLIP, step))
        log_t = min(max(log_t, math.log(eps_mean)), math.log(kernel.max_leapfrogs * eps_mean))
        if climbing and self.climb:
            log_t_avg = log_t
        else:
            count += 1
            w = count ** -self.decay_rate
            log_t_avg = (1.0 - w) * log_t_avg + w * log_t
        return log_t, log_t_avg, count, (m, v, n_adam), climbing

    def final(self, kernel, astate, state):
        da = astate.da
        eps = dual_averaging(target=self.target_accept)[2](da) if da.step else \
            float(_to_host(astate.params.step_size)[0])
        t = math.exp(astate.log_length_avg if astate.avg_count else astate.log_length)
        return _with(astate.params, eps, min(max(t, eps), kernel.max_leapfrogs * eps))


def restart_slow(state, eps, ratio, when):
    """``state`` with the chains stuck in a region of their own moved to other chains'
    states, round robin; warns (:class:`~samplers.warmup.StuckChainWarning`) naming
    them. Stuck: a step size ``eps [C]`` below the median over ``ratio`` (or not finite)
    *and* a log density below the chains' median (a spike of a mixture, a local mode;
    not the chains ahead of the others in a badly scaled posterior, nor a funnel's
    neck, where the density is high). The same object when none is stuck, or when more
    than half are."""
    eps = np.asarray(_to_host(eps), dtype=np.float64)
    ok = np.isfinite(eps) & (eps > 0)
    if not ok.any():
        return state
    lp = np.asarray(_to_host(state.logdensity), dtype=np.float64)
    low = ~(lp >= np.median(lp[np.isfinite(lp)])) if np.isfinite(lp).any() else True
    slow = (~ok | (eps < np.median(eps[ok]) / ratio)) & low
    if not slow.any() or 2 * slow.sum() > len(eps):
        return state
    stuck = np.nonzero(slow)[0]
    return restart_chains(state, stuck, np.nonzero(~slow)[0],
                          f"{len(stuck)} of {len(eps)} chains needed step sizes below "
                          f"1/{ratio:g} of the median, with log densities below the median, "
                          f"at {when} ({format_chains(stuck, eps[stuck])})", stacklevel=6)


def _with(params, eps, length):
    """``params`` with step size ``eps`` (a float, or one per chain) and ``T``."""
    if np.ndim(eps):
        s = params.step_size
        params = params._replace(step_size=array_module(s).asarray(eps, dtype=s.dtype))
    else:
        params = with_step_size(params, eps)
    return params._replace(trajectory_length=float(length))
