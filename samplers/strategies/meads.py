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
"""
from typing import NamedTuple

import numpy as np

from ..base import _to_host, array_module
from . import Adaptation

__all__ = ["MEADSAdaptation", "MEADSState", "max_eigenvalue"]


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
    """
    params: object
    iteration: int
    folds: object


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
    """

    default_kernel = "ghmc"
    requires = ("damping",)

    def __init__(self, n_folds=4, step_size_multiplier=0.5, damping_slowdown=1.0):
        if isinstance(n_folds, bool) or int(n_folds) != n_folds or n_folds < 2:
            raise ValueError(f"n_folds: expected an integer >= 2, got {n_folds!r}")
        self.n_folds = int(n_folds)
        self.step_size_multiplier = float(step_size_multiplier)
        self.damping_slowdown = float(damping_slowdown)

    def _fold_params(self, q, g, t):
        """``(eps, inv_mass [D], damping)`` from one fold's positions and gradients."""
        xp = array_module(q)
        sigma = q.std(axis=0)
        sigma = xp.where((sigma > 0) & xp.isfinite(sigma), sigma, 1.0)
        ok = xp.isfinite(g).all(axis=1)
        gs = (g * sigma)[ok] if not bool(ok.all()) else g * sigma
        lam_g = max_eigenvalue(gs) if gs.shape[0] >= 2 else np.nan
        eps = self.step_size_multiplier / np.sqrt(lam_g) if lam_g > 0 else 1e-3
        eps = min(float(eps), 1.0)
        lam_q = max_eigenvalue((q - q.mean(axis=0)) / sigma)
        gamma = max(1.0 / np.sqrt(lam_q) if lam_q > 0 else 1.0,
                    self.damping_slowdown / ((t + 1) * eps))
        return eps, sigma * sigma, gamma

    def _set(self, params, idx, values):
        eps, inv, gamma = values
        s, m, d = params.step_size.copy(), params.inverse_mass.copy(), params.damping.copy()
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
        return MEADSState(params, 0, folds), state

    def _shuffle(self, c, rng):
        perm = np.asarray(_to_host(rng.permutation(c)))
        folds = np.empty(c, dtype=np.int64)
        folds[perm] = np.arange(c) % self.n_folds
        return folds

    def update(self, kernel, astate, state, info, rng):
        params, t, folds = astate
        k = self.n_folds
        source, target = t % k, (t + 1) % k
        xp = array_module(state.position)
        src = xp.asarray(np.nonzero(folds == source)[0])
        dst = xp.asarray(np.nonzero(folds == target)[0])
        values = self._fold_params(state.position[src], state.logdensity_grad[src], t + 1)
        params = self._set(params, dst, values)
        if (t + 1) % k == 0:
            folds = self._shuffle(state.position.shape[0], rng)
        return MEADSState(params, t + 1, folds), state

    def final(self, kernel, astate, state):
        return astate.params
