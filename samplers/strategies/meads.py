"""MEADS: maximum-eigenvalue adaptation of damping and step size for generalized HMC.

Hoffman & Sountsov (2022), "Tuning-free generalized Hamiltonian Monte Carlo", AISTATS,
Algorithm 3. The chains are split into ``n_folds`` folds; after each transition the
parameters of one fold are recomputed from the positions and gradients of another
fold (never its own chains, so each fold's kernel does not depend on its own state),
and the folds are reshuffled every ``n_folds`` iterations. From the source fold's
chains:

- per-coordinate scale ``sigma`` (standard deviation): the target fold's diagonal
  inverse mass is ``sigma^2``;
- step size ``eps = multiplier / sqrt(lambda_max(grad * sigma))`` (at most 1), the
  largest eigenvalue of the preconditioned gradients' second moment bounding the
  stable leapfrog step;
- damping ``gamma = max(1 / sqrt(lambda_max((q - mean) / sigma)), slowdown / (t eps))``:
  the slowest direction's time scale, floored early so the momentum is refreshed
  often while the chains are far from stationarity.

``lambda_max`` is estimated as ``sum(lambda^2) / sum(lambda)`` with unbiased estimates
of both sums from the rows (the paper's estimator: low variance, close to the largest
eigenvalue unless many eigenvalues are close to it). After warmup each chain keeps its
fold's last parameters. Needs many chains: at least ``2 * n_folds``, preferably 32 or
more. Use with ``kernel="ghmc"``.

From a start far from the typical set (Stan's uniform(-2, 2) inits) the paper's rules
alone stall: far from the mode the gradients' second moment measures the pull towards
it, ``H Cov(q) H`` rather than the curvature ``H``, so the step size is too small by
about the chains' spread over the posterior's scale (``eps ~ 1e-6`` on the suite's
sblrc), and one chain in a stiff region sets it for its whole fold. Hence (defaults;
``per_chain_start=False, overdispersion=False`` is the paper's scheme):

- a per-chain start (the first ``start_fraction`` of warmup): every chain its own step
  size, Stan's heuristic per chain then dual averaging on its own acceptance
  (``start_target_accept``), the fold estimates giving the mass and damping; at its end
  chains that needed far smaller steps lower down (:func:`~samplers.strategies.chees.
  restart_slow`) or whose log density is far below the others' (:func:`restart_low`,
  also twice later: stragglers far below get the bulk's step size and would reject
  nearly everything) restart from other chains;
- the overdispersion correction of the step size: by Stein's identity
  ``E[grad_i (q_i - mean_i)] = -1`` at stationarity for any target, while chains
  spread ``r`` times wider than the posterior give ``-Cov(grad_i, q_i) = rho_i ~ r^2``
  (and a second moment ``r^2`` times too large), so the second moment is deflated to
  ``M_ij / sqrt(rho'_i rho'_j)`` with ``rho' = max(1, rho - 1)`` before its largest
  eigenvalue is taken: 1 (the paper's estimate) within the noise of ``rho`` in the
  typical set, the curvature far from it;
- chains whose position, log density or gradient is not finite restart from others.
"""
from typing import NamedTuple

import numpy as np

from ..adaptation import dual_averaging
from ..base import _to_host, array_module, format_chains, nonfinite_chains
from ..warmup import find_step_size, move_chains, restart_chains, restart_stuck
from . import Adaptation
from .chees import restart_slow

__all__ = ["MEADSAdaptation", "MEADSState", "max_eigenvalue", "restart_low"]


def max_eigenvalue(x):
    """Estimate of the largest eigenvalue of ``E[x x^T]`` from the rows of ``x [n, D]``:
    ``sum(lambda^2) / sum(lambda)``, both sums estimated without bias (``n >= 2``)."""
    xp = array_module(x)
    n = x.shape[0]
    s = x @ x.T
    diag = xp.diagonal(s)
    tr = diag.sum() / n
    tr2 = ((s * s).sum() - (diag * diag).sum()) / (n * (n - 1))
    return float(tr2 / tr)


class MEADSState(NamedTuple):
    """State of :class:`MEADSAdaptation`.

    Attributes
    ----------
    params : KernelParams
        Per-chain step sizes ``[C]``, inverse masses ``[C, D]`` and damping ``[C]``.
    iteration : int
    folds : array of int, shape [C]
        Fold of each chain (reshuffled every ``n_folds`` iterations).
    da : DualAveragingState or None
        Per-chain dual averaging during the per-chain start (None after it).
    start_end : int
        Iteration where the per-chain start ends (0: none).
    """
    params: object
    iteration: int
    folds: object
    da: object = None
    start_end: int = 0


class MEADSAdaptation(Adaptation):
    """MEADS warmup for :class:`samplers.ghmc.GHMC` (``adaptation="meads"``).

    Parameters
    ----------
    n_folds : int
        Folds of chains (4, as in the paper).
    step_size_multiplier : float
        ``eps = multiplier / sqrt(lambda_max)`` (0.5).
    damping_slowdown : float
        Early floor of the damping, ``slowdown / (t eps)`` (1).
    per_chain_start : bool
        A step size per chain for the first ``start_fraction`` of warmup (default True;
        skipped when that is under 10 iterations).
    start_fraction : float
        Fraction of warmup in the per-chain start (0.3).
    start_target_accept : float
        Dual averaging's target acceptance in the per-chain start, and the step-size
        heuristic's (0.8).
    stuck_ratio : float
        At the end of the per-chain start, chains whose averaged step size is below the
        median over this, with a log density below the median, restart from others (10).
    lp_gap : float
        At the end of the per-chain start, and ``low_checks`` times after it every half
        its length, chains more than ``lp_gap * sqrt(D)`` below the upper quartile of the
        log densities restart from others (10; :func:`restart_low`).
    low_fraction : float
        ... unless that is ``low_fraction`` of the chains or more (0.75: the chains
        above the upper quartile are enough to restart from).
    low_checks : int
        Checks for chains far below after the end of the per-chain start (2: at 1.5 and
        2 times its length, 45 % and 60 % of warmup by default).
    overdispersion : bool
        Deflate the gradients' second moment by the chains' overdispersion (Stein's
        identity, see the module docstring) before taking the step size (default True).
    """

    default_kernel = "ghmc"
    requires = ("damping",)

    def __init__(self, n_folds=4, step_size_multiplier=0.5, damping_slowdown=1.0,
                 per_chain_start=True, start_fraction=0.3, start_target_accept=0.8,
                 stuck_ratio=10.0, lp_gap=10.0, overdispersion=True, low_fraction=0.75,
                 low_checks=2):
        if isinstance(n_folds, bool) or int(n_folds) != n_folds or n_folds < 2:
            raise ValueError(f"n_folds: expected an integer >= 2, got {n_folds!r}")
        if not 0.0 <= start_fraction < 1.0:
            raise ValueError(f"start_fraction: expected a float in [0, 1), got "
                             f"{start_fraction!r}")
        if not 0.0 < start_target_accept < 1.0:
            raise ValueError(f"start_target_accept: expected a float in (0, 1), got "
                             f"{start_target_accept!r}")
        if not stuck_ratio > 1:
            raise ValueError(f"stuck_ratio: expected a float > 1, got {stuck_ratio!r}")
        if not lp_gap > 0:
            raise ValueError(f"lp_gap: expected a positive float, got {lp_gap!r}")
        if not 0.0 < low_fraction < 1.0:
            raise ValueError(f"low_fraction: expected a float in (0, 1), got {low_fraction!r}")
        if isinstance(low_checks, bool) or int(low_checks) != low_checks or low_checks < 0:
            raise ValueError(f"low_checks: expected an integer >= 0, got {low_checks!r}")
        self.n_folds = int(n_folds)
        self.step_size_multiplier = float(step_size_multiplier)
        self.damping_slowdown = float(damping_slowdown)
        self.per_chain_start = bool(per_chain_start)
        self.start_fraction = float(start_fraction)
        self.start_target_accept = float(start_target_accept)
        self.stuck_ratio = float(stuck_ratio)
        self.lp_gap = float(lp_gap)
        self.overdispersion = bool(overdispersion)
        self.low_fraction = float(low_fraction)
        self.low_checks = int(low_checks)

    def _fold_params(self, q, g, t, eps=None):
        """``(eps, inv_mass [D], damping)`` from one fold's positions and gradients
        (``eps`` given, a float or one per target chain: kept, and the damping floor
        from it). Rows with a non-finite gradient are left out."""
        xp = array_module(q)
        ok = xp.isfinite(g).all(axis=1)
        if not bool(ok.all()):
            q, g = q[ok], g[ok]
        sigma = q.std(axis=0)
        sigma = xp.where((sigma > 0) & xp.isfinite(sigma), sigma, 1.0)
        if eps is None:
            gs = g * sigma
            if self.overdispersion and q.shape[0] >= 2:
                # Stein: -Cov(g_i, q_i) is 1 at stationarity, ~ the squared overdispersion
                # far from it, where the second moment is too large by as much
                rho = -((g - g.mean(axis=0)) * (q - q.mean(axis=0))).mean(axis=0)
                rho = xp.where(xp.isfinite(rho), rho - 1.0, 1.0)
                gs = gs / xp.sqrt(xp.maximum(rho, 1.0))
            lam_g = max_eigenvalue(gs) if gs.shape[0] >= 2 else np.nan
            eps = self.step_size_multiplier / np.sqrt(lam_g) if lam_g > 0 else 1e-3
            eps = min(float(eps), 1.0)
        lam_q = max_eigenvalue((q - q.mean(axis=0)) / sigma)
        gamma = np.maximum(1.0 / np.sqrt(lam_q) if lam_q > 0 else 1.0,
                           self.damping_slowdown / ((t + 1) * np.asarray(eps)))
        return eps, sigma * sigma, gamma

    def _set(self, params, idx, values):
        eps, inv, gamma = values
        s, m, d = params.step_size.copy(), params.inverse_mass.copy(), params.damping.copy()
        if np.ndim(eps):
            eps = array_module(s).asarray(eps, dtype=s.dtype)
        if np.ndim(gamma):
            gamma = array_module(d).asarray(gamma, dtype=d.dtype)
        s[idx], m[idx], d[idx] = eps, inv, gamma
        xp = array_module(m)
        return params._replace(step_size=s, inverse_mass=m, mass_sqrt=1.0 / xp.sqrt(m),
                               damping=d)

    def init(self, kernel, state, rng, n_warmup, params):
        q = state.position
        c, d = q.shape
        if c < 2 * self.n_folds:
            raise ValueError(f"adaptation 'meads': needs at least {2 * self.n_folds} chains "
                             f"({self.n_folds} folds of 2), got {c}; MEADS is made for many "
                             "chains (32 or more)")
        xp = array_module(q)
        eps, inv, gamma = self._fold_params(q, state.logdensity_grad, 0)
        params = kernel.params(q, step_size=eps, inverse_mass=xp.tile(inv, (c, 1)),
                               damping=gamma)
        folds = self._shuffle(c, rng)
        start_end = int(self.start_fraction * n_warmup) if self.per_chain_start else 0
        if start_end < 10:
            return MEADSState(params, 0, folds), state
        eps = find_step_size(kernel, state, rng, np.full(c, eps), self.start_target_accept,
                             params)
        new = restart_stuck(state, eps, "the start")
        if new is not state:
            state = new
            eps = find_step_size(kernel, state, rng, np.full(c, eps), self.start_target_accept,
                                 params)
        ok = np.isfinite(eps) & (eps > 0)
        eps = np.where(ok, eps, np.median(eps[ok]))
        da = dual_averaging(target=self.start_target_accept)[0](eps)
        params = self._set(params, slice(None),
                           self._fold_params(q, state.logdensity_grad, 0, eps))
        return MEADSState(params, 0, folds, da, start_end), state

    def _shuffle(self, c, rng):
        perm = np.asarray(_to_host(rng.permutation(c)))
        folds = np.empty(c, dtype=np.int64)
        folds[perm] = np.arange(c) % self.n_folds
        return folds

    def update(self, kernel, astate, state, info, rng):
        params, t, folds, da, start_end = astate
        k = self.n_folds
        source, target = t % k, (t + 1) % k
        xp = array_module(state.position)
        src_h, dst_h = np.nonzero(folds == source)[0], np.nonzero(folds == target)[0]
        src, dst = xp.asarray(src_h), xp.asarray(dst_h)
        bad = np.asarray(_to_host(nonfinite_chains(state) |
                                  ~xp.isfinite(state.logdensity_grad).all(axis=1)))
        if bad.any() and not bad.all():
            # a chain that diverged to inf / NaN during warmup restarts from another
            state = move_chains(state, np.nonzero(bad)[0], np.nonzero(~bad)[0])[0]
        q, g = state.position, state.logdensity_grad
        if da is not None and t + 1 < start_end:
            a = np.nan_to_num(np.asarray(_to_host(info.acceptance_rate), dtype=np.float64))
            a = np.where(np.asarray(_to_host(info.is_divergent)), 0.0, np.clip(a, 0.0, 1.0))
            da = dual_averaging(target=self.start_target_accept)[1](da, a)
            eps = np.exp(da.log_step_size)
            params = params._replace(step_size=xp.asarray(eps, dtype=params.step_size.dtype))
            values = self._fold_params(q[src], g[src], t + 1, eps[dst_h])
            params = self._set(params, dst, values)
        else:
            if da is not None:
                # the end of the per-chain start: chains that needed far smaller steps
                # than the others, lower down, restart from others; then MEADS proper
                state = restart_slow(state, np.exp(da.log_step_size_avg), self.stuck_ratio,
                                     f"warmup iteration {t + 1}")
                state = restart_low(state, self.lp_gap, f"warmup iteration {t + 1}",
                                    self.low_fraction)
                q, g = state.position, state.logdensity_grad
                da = None
                for f in range(k):
                    s_h = np.nonzero(folds == (f - 1) % k)[0]
                    d_h = np.nonzero(folds == f)[0]
                    params = self._set(params, xp.asarray(d_h),
                                       self._fold_params(q[xp.asarray(s_h)],
                                                         g[xp.asarray(s_h)], t + 1))
            else:
                if start_end and (t + 1) in [start_end + j * start_end // 2
                                             for j in range(1, self.low_checks + 1)]:
                    state = restart_low(state, self.lp_gap, f"warmup iteration {t + 1}",
                                        self.low_fraction)
                    q, g = state.position, state.logdensity_grad
                values = self._fold_params(q[src], g[src], t + 1)
                params = self._set(params, dst, values)
        if (t + 1) % k == 0:
            folds = self._shuffle(state.position.shape[0], rng)
        return MEADSState(params, t + 1, folds, da, start_end), state

    def final(self, kernel, astate, state):
        return astate.params


def restart_low(state, gap, when, most=0.25):
    """``state`` with the chains whose log density is more than ``gap * sqrt(D)`` below
    the chains' upper quartile moved to other chains' states (round robin), warning
    (:class:`~samplers.warmup.StuckChainWarning`); the same object when none is, or when
    a fraction ``most`` of the chains or more are. In the typical set the log density
    of ``C`` chains spans about ``4 sqrt(D)`` (``-chi^2_D / 2``), so a chain that far
    below sits in a local mode or has not arrived."""
    lp = np.asarray(_to_host(state.logdensity), dtype=np.float64)
    fin = np.isfinite(lp)
    if not fin.any():
        return state
    d = state.position.shape[1]
    low = ~(lp >= np.percentile(lp[fin], 75) - gap * np.sqrt(d))
    if not low.any() or low.sum() >= most * len(lp):
        return state
    stuck = np.nonzero(low)[0]
    return restart_chains(state, stuck, np.nonzero(~low)[0],
                          f"{len(stuck)} of {len(lp)} chains had log densities more than "
                          f"{gap:g} sqrt(D) below the upper quartile at {when} "
                          f"({format_chains(stuck, lp[stuck])})", stacklevel=6)
