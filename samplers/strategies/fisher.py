"""Mass matrix from draws *and* gradients (nutpie's adaptation), for NUTS, HMC and MALA.

Seyboldt, Carlson & Carpenter (2026), nutpie / nuts-rs: for a Gaussian target the
inverse mass ``Sigma`` makes the draws' covariance ``Sigma`` and the gradients'
covariance ``Sigma^{-1}``; the diagonal that best balances both (minimizing the Fisher
divergence between the target and the Gaussian it implies) is

    inverse_mass_i = sqrt(Var[q_i] / Var[grad_i]).

Gradients carry information about the scale from the first draws on (at the start,
``1 / |grad|``), so the mass can change every iteration instead of at the end of
Stan's doubling windows. The schedule follows nuts-rs:

- two running estimates (``foreground`` and ``background``) of the variances of the
  draws and of the gradients, pooled over chains; every non-divergent draw goes into
  both; the mass is recomputed from the foreground after every transition;
- when the background holds ``switch_every`` iterations, it becomes the foreground and
  a new background starts (10 iterations during the first 30 % of warmup, 80 after),
  so the estimate forgets the first, far-from-stationary draws;
- the mass is frozen for the final 15 % of warmup, where only the step size adapts;
- the step size follows dual averaging (pooled acceptance, target 0.8 for NUTS); the
  step-size heuristic runs again (restarting stuck chains) at the first mass change,
  and dual averaging restarts for the final window.
"""
from typing import NamedTuple

import numpy as np

from ..adaptation import dual_averaging, welford_covariance
from ..base import _to_host, array_module
from ..warmup import HEURISTIC_TARGET, checked_search
from . import Adaptation, kernel_extras, with_step_size

__all__ = ["FisherAdaptation", "FisherState", "fisher_inverse_mass", "low_rank_inverse_mass",
           "gradient_inverse_mass", "geometric_mean"]

#: Bounds of the diagonal inverse mass (as nuts-rs).
LIMITS = (1e-10, 1e10)


def fisher_inverse_mass(draw_var, grad_var):
    """``sqrt(Var[q] / Var[grad])`` per coordinate, clipped to :data:`LIMITS`; where
    either variance is not positive and finite, 1."""
    xp = array_module(draw_var)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = xp.sqrt(draw_var / grad_var)
    r = xp.where(xp.isfinite(r) & (r > 0), r, 1.0)
    return xp.clip(r, *LIMITS)


def gradient_inverse_mass(grads):
    """nutpie's starting point: the diagonal inverse mass ``1 / |g|`` from the gradients
    ``[C, D]`` of the chains, pooled as ``1 / sqrt(mean_c g_c^2)``, clipped to
    :data:`LIMITS` (1 where not finite). Far from the mode the gradient's size tracks
    each coordinate's scale. (Pooling by the median of ``|g|`` instead was tried and
    measured worse on the suite.)"""
    xp = array_module(grads)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        inv = 1.0 / xp.sqrt((grads * grads).mean(axis=0))
    return xp.clip(xp.where(xp.isfinite(inv), inv, 1.0), *LIMITS)


def _sym_fn(a, fn):
    """``fn`` applied to the eigenvalues of the symmetric matrix ``a``."""
    w, v = np.linalg.eigh(a)
    return (v * fn(np.maximum(w, 1e-300))) @ v.T


def geometric_mean(cov_draws, cov_grads):
    """The Fisher-optimal dense inverse mass ``C_x # C_g^{-1}``, the matrix geometric mean
    ``A^1/2 (A^-1/2 B A^-1/2)^1/2 A^1/2`` of the draws' covariance ``A`` and the inverse
    of the gradients' covariance ``B = C_g^{-1}`` (host arrays ``[k, k]``, symmetric
    positive definite). For a Gaussian target both are its covariance."""
    a_half = _sym_fn(cov_draws, np.sqrt)
    a_mhalf = _sym_fn(cov_draws, lambda w: 1.0 / np.sqrt(w))
    b = np.linalg.inv(cov_grads)
    out = a_half @ _sym_fn(a_mhalf @ b @ a_mhalf, np.sqrt) @ a_half
    return 0.5 * (out + out.T)


def low_rank_inverse_mass(draws, grads, sigma, cutoff=2.0, max_rank=10):
    """The diagonal ``sigma`` corrected in the directions where draws and gradients
    disagree with it (nutpie's low-rank mass matrix).

    In coordinates whitened by ``sigma`` (``x / sqrt(sigma)``, ``g * sqrt(sigma)``), the
    Fisher-optimal covariance within the span of the centred draws and gradients is the
    matrix geometric mean ``C_x # C_g^{-1}`` of the draws' covariance and the inverse of
    the gradients' (both shrunk towards the identity, ``n / (n + 5)``); for a Gaussian
    target it is the covariance itself. Its eigenvalues outside ``[1 / cutoff, cutoff]``
    (at most ``max_rank``, the largest ``|log lambda|`` first) replace 1 along their
    eigenvectors ``U``:

        inverse_mass = S^{1/2} (I + U (Lambda - 1) U^T) S^{1/2},   S = diag(sigma).

    Parameters
    ----------
    draws, grads : array, shape [n, D]
        Draws and their gradients (rows of the current window).
    sigma : array, shape [D]
        The diagonal inverse mass (:func:`fisher_inverse_mass`).
    cutoff : float
        Eigenvalues within ``[1 / cutoff, cutoff]`` are left at 1.
    max_rank : int

    Returns
    -------
    ndarray, shape [D, D]
        The inverse mass matrix (dense, on the host).
    """
    x = np.asarray(_to_host(draws), dtype=np.float64)
    g = np.asarray(_to_host(grads), dtype=np.float64)
    s = np.sqrt(np.asarray(_to_host(sigma), dtype=np.float64))
    n, d = x.shape
    xw = (x - x.mean(0)) / s
    gw = (g - g.mean(0)) * s
    # orthonormal basis of the span of the centred rows (draws and gradients)
    basis, sv, _ = np.linalg.svd(np.concatenate([xw, gw]).T, full_matrices=False)
    basis = basis[:, sv > sv[0] * 1e-8]
    k = basis.shape[1]
    shrink = n / (n + 5.0)
    eye = np.eye(k)
    cx = shrink * (basis.T @ (xw.T @ xw) @ basis) / max(n - 1, 1) + (1 - shrink) * eye
    cg = shrink * (basis.T @ (gw.T @ gw) @ basis) / max(n - 1, 1) + (1 - shrink) * eye
    lam, vec = np.linalg.eigh(geometric_mean(cx, cg))
    keep = np.argsort(-np.abs(np.log(np.maximum(lam, 1e-300))))[:max_rank]
    keep = keep[np.abs(np.log(np.maximum(lam[keep], 1e-300))) > np.log(cutoff)]
    u = basis @ vec[:, keep]
    inner = np.eye(d) + (u * (lam[keep] - 1.0)) @ u.T
    out = s[:, None] * inner * s[None, :]
    return 0.5 * (out + out.T)


class FisherState(NamedTuple):
    """State of :class:`FisherAdaptation`.

    Attributes
    ----------
    params : KernelParams
    iteration : int
    da : DualAveragingState
    foreground, background : tuple of (WelfordState, WelfordState, int, tuple)
        Draws' and gradients' running variances, the iterations they hold and (with
        ``low_rank``) the rows ``(draws, gradients)`` of each.
    changed : bool
        Whether the mass has changed from its initial (gradient-based) value yet.
    bounds : (int, int)
        End of the early phase and start of the final step-size window.
    """
    params: object
    iteration: int
    da: object
    foreground: tuple
    background: tuple
    changed: bool
    bounds: tuple


class FisherAdaptation(Adaptation):
    """nutpie-style warmup (``adaptation="fisher"``).

    Parameters
    ----------
    target_accept : float, optional
        Dual averaging target; None uses the kernel's (0.8 for NUTS and HMC).
    early_window : float
        Fraction of warmup with the fast switch (0.3).
    step_size_window : float
        Final fraction with the mass frozen (0.15).
    switch_every : (int, int)
        Background length before a switch: early and late (10, 80).
    heuristic_target : float
        Target of the step-size heuristic (0.8).
    low_rank : bool
        Correct the diagonal by :func:`low_rank_inverse_mass` at every switch (a dense
        inverse mass: ``O(D^2)`` per leapfrog; for correlated posteriors).
    cutoff, max_rank
        Of :func:`low_rank_inverse_mass`.
    """

    requires = ()

    def __init__(self, target_accept=None, early_window=0.3, step_size_window=0.15,
                 switch_every=(10, 80), heuristic_target=HEURISTIC_TARGET, low_rank=False,
                 cutoff=2.0, max_rank=10):
        if target_accept is not None and not 0.0 < target_accept < 1.0:
            raise ValueError(f"target_accept: expected a value in (0, 1), got {target_accept!r}")
        if not 0.0 <= early_window < 1.0 or not 0.0 <= step_size_window < 1.0:
            raise ValueError("early_window, step_size_window: expected fractions in [0, 1), "
                             f"got {early_window!r}, {step_size_window!r}")
        self.target_accept = target_accept
        self.early_window = float(early_window)
        self.step_size_window = float(step_size_window)
        self.switch_every = tuple(int(s) for s in switch_every)
        self.heuristic_target = heuristic_target
        self.low_rank = bool(low_rank)
        self.cutoff = float(cutoff)
        self.max_rank = int(max_rank)

    def check_kernel(self, kernel):
        if not hasattr(getattr(kernel, "logdensity", None), "__call__") or \
                getattr(kernel, "needs_grad", True) is False:
            raise ValueError(f"adaptation 'fisher': needs a gradient-based kernel (NUTS, HMC, "
                             f"MALA), got {type(kernel).__name__}")

    def _da(self, kernel):
        target = self.target_accept
        if target is None:
            target = getattr(kernel, "target_accept", 0.8)
        return dual_averaging(target=target)

    @staticmethod
    def _estimator(q):
        wf_init = welford_covariance(diagonal=True)[0]
        return wf_init(q), wf_init(q), 0, ()

    def _add(self, est, q, g):
        _, wf_update, _ = welford_covariance(diagonal=True)
        rows = est[3] + ((q, g),) if self.low_rank else ()
        return wf_update(est[0], q), wf_update(est[1], g), est[2] + 1, rows

    def _mass(self, fg):
        _, _, wf_final = welford_covariance(diagonal=True)
        sigma = fisher_inverse_mass(wf_final(fg[0], regularize=False),
                                    wf_final(fg[1], regularize=False))
        if not self.low_rank:
            return sigma
        xp = array_module(sigma)
        x = np.concatenate([_to_host(r[0]) for r in fg[3]])
        g = np.concatenate([_to_host(r[1]) for r in fg[3]])
        return xp.asarray(low_rank_inverse_mass(x, g, sigma, self.cutoff, self.max_rank),
                          dtype=sigma.dtype)

    def init(self, kernel, state, rng, n_warmup, params):
        q, g = state.position, state.logdensity_grad
        if params.inverse_mass.ndim != 1:
            raise ValueError("adaptation 'fisher': starts from a diagonal mass (give "
                             "low_rank=True to FisherAdaptation for a correlated one)")
        params = kernel.params(q, inverse_mass=gradient_inverse_mass(g),
                               **kernel_extras(params, kernel))
        eps0 = float(array_module(params.step_size).mean(params.step_size))
        state, eps = checked_search(kernel, state, rng, eps0, self.heuristic_target,
                                    "the start", params)
        fg = self._add(self._estimator(q), state.position, state.logdensity_grad)
        bg = self._add(self._estimator(q), state.position, state.logdensity_grad)
        bounds = (int(self.early_window * n_warmup),
                  n_warmup - int(self.step_size_window * n_warmup))
        return FisherState(with_step_size(params, eps), 0, self._da(kernel)[0](eps), fg, bg,
                           False, bounds), state

    def update(self, kernel, astate, state, info, rng):
        params, t, da, fg, bg, changed, (early_end, final_start) = astate
        da_init, da_update, _ = self._da(kernel)
        da = da_update(da, info.acceptance_rate)
        eps = da.step_size
        q, g = state.position, state.logdensity_grad
        xp = array_module(q)
        if t < final_start:
            good = ~info.is_divergent & xp.isfinite(g).all(axis=1)
            if bool(good.any()):
                qg, gg = (q, g) if bool(good.all()) else (q[good], g[good])
                fg, bg = self._add(fg, qg, gg), self._add(bg, qg, gg)
            every = self.switch_every[0] if t < early_end else self.switch_every[1]
            switched = bg[2] >= every and every + t <= final_start
            if switched:
                fg, bg = bg, self._estimator(q)
            # the diagonal follows the foreground after every transition; the low-rank
            # correction (an eigendecomposition) only at switches
            if fg[2] >= 3 and fg[0].count >= 3 and (switched or not self.low_rank):
                params = kernel.params(q, inverse_mass=self._mass(fg),
                                       **kernel_extras(params, kernel))
                if not changed:
                    changed = True
                    state, eps = checked_search(kernel, state, rng, eps,
                                                self.heuristic_target,
                                                f"warmup iteration {t + 1}", params)
                    da = da_init(eps)
        if t + 1 == final_start:
            da = da_init(eps)        # the final window tunes the step size for the final mass
        return FisherState(with_step_size(params, eps), t + 1, da, fg, bg, changed,
                           (early_end, final_start)), state

    def final(self, kernel, astate, state):
        da = astate.da
        if da.step == 0:
            return astate.params
        return with_step_size(astate.params, self._da(kernel)[2](da))

