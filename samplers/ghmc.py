"""Generalized HMC with persistent momentum and a non-reversible slice variable.

One transition (Horowitz 1991, "A generalized guided Monte Carlo algorithm"; Neal 2020,
"Non-reversibly updating a uniform [0,1] value for Metropolis accept/reject decisions",
arXiv:2001.11950; the kernel of MEADS, Hoffman & Sountsov 2022):

1. partial momentum refreshment ``p <- sqrt(1 - alpha) p + sqrt(alpha) xi``,
   ``xi ~ N(0, M)``, with ``alpha = 1 - exp(-2 step_size damping)``;
2. one leapfrog step to ``(q', p')``;
3. the slice variable ``u`` in [-1, 1] moves by ``delta = alpha / 2``
   (``u <- (u + 1 + delta) mod 2 - 1``); accept when ``|u| < exp(H - H')``, and then
   ``u <- u exp(H' - H)`` (the slice level ``|u| exp(-H)`` is kept); on rejection the
   momentum is negated.

Without the slice variable (a fresh uniform each time) this is Horowitz's GHMC; with it,
accept/reject decisions are correlated so that rejections come in clusters and the
momentum flips less often (Neal 2020). Every chain has its own step size, damping and
diagonal mass (``inverse_mass`` of shape ``[C, D]``), as MEADS sets them per fold of
chains. The state keeps the momentum and the slice variable.
"""
from typing import NamedTuple

import numpy as np

from .base import HMCInfo, KernelParams, array_module
from .hmc import DIVERGENCE_THRESHOLD, GradientKernel, _as_positions, per_chain_step_size

__all__ = ["GHMC", "GHMCState"]


class GHMCState(NamedTuple):
    """State of :class:`GHMC`.

    Attributes
    ----------
    position : array, shape [C, D]
    logdensity : array, shape [C]
    logdensity_grad : array, shape [C, D]
    momentum : array, shape [C, D]
        Persistent momentum.
    slice : array, shape [C]
        Non-reversible slice variable in [-1, 1].
    """
    position: object
    logdensity: object
    logdensity_grad: object
    momentum: object
    slice: object


class GHMC(GradientKernel):
    """Generalized HMC (one leapfrog step per transition, persistent momentum).

    Parameters
    ----------
    logdensity : callable
        ``logdensity(position [C, D]) -> [C]``.
    step_size : float or array, shape [C]
    inverse_mass : None or array, shape [D] or [C, D]
        Diagonal inverse mass, shared or per chain (identity when None).
    damping : float or array, shape [C]
        Momentum damping ``gamma`` (per unit time): ``alpha = 1 - exp(-2 eps gamma)``
        of the momentum is refreshed per transition. Default 1.
    grad_fn : callable, optional
        ``grad_fn(position [C, D]) -> [C, D]`` instead of autodiff.
    divergence_threshold : float
        Energy error marking a divergence (1000).
    compile : bool
        Compile the log density (:func:`autodiff.compile`, the default).
    """

    adaptation = "meads"
    extra_params = {"damping": "damping"}

    def __init__(self, logdensity, step_size, inverse_mass=None, damping=1.0, *, grad_fn=None,
                 divergence_threshold=DIVERGENCE_THRESHOLD, compile=True):
        super().__init__(logdensity, step_size, inverse_mass, "velocity_verlet",
                         grad_fn=grad_fn, divergence_threshold=divergence_threshold,
                         compile=compile)
        _check_damping(damping)
        self.damping = damping

    def params(self, position, *, step_size=None, inverse_mass=None, damping=None):
        """:class:`~samplers.base.KernelParams` for positions like ``position [C, D]``
        (``inverse_mass`` ``[D]`` or ``[C, D]``, ``mass_sqrt`` its ``1 / sqrt``,
        ``damping`` ``[C]``)."""
        q = position
        xp = array_module(q)
        c, d = q.shape
        inv = self.inverse_mass if inverse_mass is None else inverse_mass
        inv = xp.ones(d, dtype=q.dtype) if inv is None else xp.asarray(inv, dtype=q.dtype)
        if inv.shape not in ((d,), (c, d)):
            raise ValueError(f"inverse_mass: GHMC takes a diagonal inverse mass of shape ({d},) "
                             f"or one per chain ({c}, {d}), got {tuple(inv.shape)}")
        if not bool(xp.all((inv > 0) & xp.isfinite(inv))):
            raise ValueError("inverse_mass: a diagonal inverse mass must be finite and positive")
        eps = per_chain_step_size(self.step_size if step_size is None else step_size, q,
                                  "step_size")
        gamma = per_chain_step_size(self.damping if damping is None else damping, q, "damping")
        if not bool(xp.all(gamma > 0)):
            raise ValueError("damping: expected positive values")
        return KernelParams(eps, inv, 1.0 / xp.sqrt(inv), damping=gamma)

    def init(self, position, rng=None):
        """Initial state at ``position [C, D]``: momentum ``N(0, I)`` and slice
        ``U(-1, 1)`` drawn from ``rng`` (at rest, ``p = 0`` and ``u = 0``, without one);
        raises on a non-finite start."""
        q = _as_positions(position)
        lp, g = self.logdensity(q)
        self.logdensity.check_finite(lp, g)
        xp = array_module(q)
        c = q.shape[0]
        if rng is None:
            return GHMCState(q, lp, g, xp.zeros_like(q), xp.zeros(c, dtype=q.dtype))
        p = rng.standard_normal(q.shape, dtype=q.dtype)
        u = 2.0 * rng.random(c, dtype=q.dtype) - 1.0
        return GHMCState(q, lp, g, p, u)

    def trial(self, state, rng, params):
        """One leapfrog step with fully refreshed momenta (the step-size heuristic's
        move)."""
        full = params._replace(damping=array_module(state.position).full(
            state.position.shape[0], np.inf, dtype=state.position.dtype))
        return self.step(state, rng, full)

    def step(self, state, rng, params=None):
        """One GHMC transition of every chain.

        Returns
        -------
        GHMCState, HMCInfo
            ``momentum`` is the refreshed momentum, ``proposal`` /
            ``proposal_momentum`` the leapfrog end point.
        """
        if params is None:
            params = self.params(state.position)
        with np.errstate(invalid="ignore", over="ignore", divide="ignore", under="ignore"):
            return self._step(state, rng, params)

    def _step(self, state, rng, params):
        q0, lp0, g0, p_old, u = state
        eps, inv, msqrt = params[:3]
        xp = array_module(q0)
        c = q0.shape[0]
        alpha = -xp.expm1(-2.0 * eps * params.damping)                       # [C]
        keep = xp.sqrt(1.0 - alpha)[:, None]
        p0 = keep * p_old + xp.sqrt(alpha)[:, None] * (
            rng.standard_normal(q0.shape, dtype=q0.dtype) * msqrt)
        u = xp.mod(u + 1.0 + 0.5 * alpha, 2.0) - 1.0
        e2 = eps[:, None]
        p = p0 + 0.5 * e2 * g0
        q = q0 + e2 * (inv * p)
        lp, g = self.logdensity(q)
        p = p + 0.5 * e2 * g
        h0 = 0.5 * (p0 * p0 * inv).sum(axis=1) - lp0
        h1 = 0.5 * (p * p * inv).sum(axis=1) - lp
        dh = h1 - h0
        dh = xp.where(xp.isfinite(dh), dh, xp.inf)
        accept_prob = xp.exp(xp.minimum(-dh, 0.0))
        accepted = xp.abs(u) < accept_prob
        divergent = dh > self.divergence_threshold
        a2 = accepted[:, None]
        new = GHMCState(xp.where(a2, q, q0), xp.where(accepted, lp, lp0), xp.where(a2, g, g0),
                        xp.where(a2, p, -p0),
                        xp.where(accepted, u * xp.exp(xp.where(accepted, dh, 0.0)), u))
        info = HMCInfo(accept_prob, accepted, divergent, xp.where(accepted, h1, h0),
                       xp.ones(c, dtype=np.int64), p0, q, p)
        return new, info


def _check_damping(damping):
    d = np.asarray(damping.get() if hasattr(damping, "get") else damping, dtype=float)
    if d.ndim > 1 or not np.all(d > 0) or np.any(np.isnan(d)):
        raise ValueError(f"damping: expected a positive scalar or [n_chains] array, got "
                         f"{damping!r}")
