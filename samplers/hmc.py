"""Hamiltonian Monte Carlo with a fixed number of integrator steps, batched over chains.

One transition (Neal 2011, "MCMC using Hamiltonian dynamics", Handbook of
MCMC, ch. 5; Betancourt 2017, "A conceptual introduction to Hamiltonian
Monte Carlo", arXiv:1701.02434): draw ``p ~ N(0, M)``, integrate Hamilton's
equations for ``n_leapfrogs`` steps with a symplectic integrator, accept the
end point with probability ``min(1, exp(H_0 - H_1))``. Every chain moves in
the same batched integrator calls (one log-density + gradient call per
stage for all chains); chains differ only through their own step size,
momentum and accept decision.

The kernel holds its parameters (step size, inverse mass, integrator) and
never adapts them: :mod:`samplers.warmup` builds new kernels with
:meth:`GradientKernel.with_params`.
"""
import numpy as np

from . import kernels
from .base import (HMCInfo, HMCState, LogDensity, array_module, draw_momentum,
                   inverse_mass_parts)
from .integrators import get_integrator, integrate

__all__ = ["HMC", "GradientKernel", "DIVERGENCE_THRESHOLD"]

#: Energy error above which a transition is marked divergent (Stan's max_deltaH).
DIVERGENCE_THRESHOLD = 1000.0


def _check_step_size(step_size):
    s = np.asarray(step_size.get() if hasattr(step_size, "get") else step_size)
    if s.ndim > 1 or not np.all(np.isfinite(s)) or not np.all(s > 0):
        raise ValueError("step_size: expected a positive finite scalar or [n_chains] array, "
                         f"got {step_size!r}")
    return s


class GradientKernel:
    """Shared parameters and helpers of the gradient-based kernels.

    Parameters
    ----------
    logdensity : callable or LogDensity
        ``logdensity(position [C, D]) -> [C]``.
    step_size : float or array, shape [C]
        Integrator step size, shared or per chain.
    inverse_mass : None or array, shape [D] or [D, D]
        Inverse mass matrix (identity when None).
    integrator : str or Integrator
        ``"velocity_verlet"`` (default), ``"mclachlan"`` or ``"yoshida"``.
    grad_fn : callable, optional
        ``grad_fn(position [C, D]) -> [C, D]`` instead of autodiff.
    divergence_threshold : float
        Energy error marking a divergence (1000, as Stan).
    compile : bool
        Compile the log density (:func:`autodiff.compile`, the default); False runs it
        on the tape.
    """

    def __init__(self, logdensity, step_size, inverse_mass=None, integrator="velocity_verlet",
                 *, grad_fn=None, divergence_threshold=DIVERGENCE_THRESHOLD, compile=True):
        self.logdensity = (logdensity if isinstance(logdensity, LogDensity)
                           else LogDensity(logdensity, grad_fn, compile))
        if grad_fn is not None and self.logdensity.grad_fn is not grad_fn:
            self.logdensity = LogDensity(self.logdensity.logdensity, grad_fn)
        _check_step_size(step_size)
        self.step_size = step_size
        self.inverse_mass = inverse_mass
        self.integrator = get_integrator(integrator)
        self.divergence_threshold = float(divergence_threshold)
        self._mass_key = self._eps_key = None

    def with_params(self, step_size=None, inverse_mass=None):
        """A copy of this kernel with a new step size and/or inverse mass.

        The log-density wrapper (and its autodiff closure) is shared.
        """
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        if step_size is not None:
            _check_step_size(step_size)
            new.step_size = step_size
            new._eps_key = None
        if inverse_mass is not None:
            new.inverse_mass = inverse_mass
            new._mass_key = None
        return new

    def _params(self, q):
        """``(inv_mass, mass_sqrt, eps[C])`` for positions ``q``, cached per shape/dtype."""
        key = (q.shape, q.dtype, type(q))
        if key != self._mass_key:
            self._mass = inverse_mass_parts(self.inverse_mass, q.shape[1], array_module(q),
                                            q.dtype)
            self._mass_key = key
        if key != self._eps_key:
            self._eps = per_chain_step_size(self.step_size, q, "step_size")
            self._eps_key = key
        return self._mass + (self._eps,)

    def init(self, position):
        """Initial state at ``position [C, D]``; raises on a non-finite start.

        Returns
        -------
        HMCState
        """
        q = _as_positions(position)
        lp, g = self.logdensity(q)
        self.logdensity.check_finite(lp, g)
        return HMCState(q, lp, g)


def per_chain_step_size(step_size, q, name):
    """Step size as a ``[C]`` array of ``q``'s dtype and module (scalar broadcast)."""
    xp = array_module(q)
    eps = xp.asarray(step_size, dtype=q.dtype)
    if eps.ndim == 0:
        return xp.full(q.shape[0], eps, dtype=q.dtype)
    if eps.shape != (q.shape[0],):
        raise ValueError(f"{name}: expected a scalar or shape ({q.shape[0]},) (one per chain), "
                         f"got shape {tuple(eps.shape)}")
    return eps


def _as_positions(position):
    if not hasattr(position, "shape") or not hasattr(position, "dtype"):
        position = np.asarray(position, dtype=float)
    if position.ndim != 2:
        raise ValueError("position: expected shape [n_chains, dim], got shape "
                         f"{tuple(position.shape)}")
    if position.dtype.kind != "f":
        position = position.astype(np.float64)
    return position


def metropolis_hmc_step(kernel, state, rng, n_steps, scale=None):
    """One Metropolis-adjusted integrator transition of every chain.

    Parameters
    ----------
    kernel : GradientKernel
    state : HMCState
    rng : Generator
    n_steps : int
    scale : array, shape [C], optional
        Factors on the kernel's step sizes for this transition only (jitter).

    Returns
    -------
    HMCState, HMCInfo
    """
    # Diverging trajectories overflow inside the user's log density too; they
    # are handled (rejected, flagged), so floating-point warnings are noise.
    with np.errstate(invalid="ignore", over="ignore", divide="ignore", under="ignore"):
        return _metropolis_hmc_step(kernel, state, rng, n_steps, scale)


def _metropolis_hmc_step(kernel, state, rng, n_steps, scale):
    q0, lp0, g0 = state
    inv, msqrt, eps = kernel._params(q0)
    if scale is not None:
        eps = eps * scale
    xp = array_module(q0)
    p = draw_momentum(rng, q0, msqrt)
    h0 = kernels.kinetic_energy(p, inv) - lp0
    q, p, g, lp = integrate(q0.copy(), p, g0, lp0, kernel.logdensity, inv, eps, n_steps,
                            kernel.integrator)
    h1 = kernels.kinetic_energy(p, inv) - lp
    dh = h1 - h0
    dh = xp.where(xp.isfinite(dh), dh, xp.inf)
    accept_prob = xp.exp(xp.minimum(-dh, 0.0))
    accepted = rng.random(q0.shape[0], dtype=q0.dtype) < accept_prob
    divergent = dh > kernel.divergence_threshold
    a2 = accepted[:, None]
    new = HMCState(xp.where(a2, q, q0), xp.where(accepted, lp, lp0), xp.where(a2, g, g0))
    n_grad = xp.full(q0.shape[0], n_steps * kernel.integrator.n_stages, dtype=np.int64)
    info = HMCInfo(accept_prob, accepted, divergent, xp.where(accepted, h1, h0), n_grad)
    return new, info


class HMC(GradientKernel):
    """Static HMC: ``n_leapfrogs`` integrator steps per transition.

    Parameters
    ----------
    logdensity : callable
        ``logdensity(position [C, D]) -> [C]``, written with autodiff ops or
        plain array code together with ``grad_fn``.
    step_size : float or array, shape [C]
        Integrator step size (shared, or one per chain).
    n_leapfrogs : int
        Integrator steps per transition (each costs ``integrator.n_stages``
        gradient evaluations).
    inverse_mass : None or array, shape [D] or [D, D]
        Inverse mass matrix; None is the identity.
    integrator : str or Integrator
        ``"velocity_verlet"`` (default), ``"mclachlan"``, ``"yoshida"``.
    grad_fn : callable, optional
        ``grad_fn(position [C, D]) -> [C, D]``; autodiff is used when None.
    divergence_threshold : float
        Energy error above which a transition counts as divergent (1000).
    compile : bool
        Compile the log density (:func:`autodiff.compile`, the default); False runs it
        on the tape.
    jitter : float
        Each transition scales each chain's step size by a uniform draw from
        ``[1 - jitter, 1 + jitter]`` (Neal 2011, sec. 5.4.2.2; Stan's
        ``stepsize_jitter``), in [0, 1). A fixed trajectory length ``n_leapfrogs *
        step_size`` near a multiple of a direction's period makes HMC nearly return
        to its start there (tiny ESS); jitter breaks that resonance. Default 0.

    Examples
    --------
    >>> k = HMC(logdensity, step_size=0.1, n_leapfrogs=10)     # doctest: +SKIP
    >>> state = k.init(x0)                                     # doctest: +SKIP
    >>> state, info = k.step(state, rng)                       # doctest: +SKIP
    """

    def __init__(self, logdensity, step_size, n_leapfrogs, inverse_mass=None,
                 integrator="velocity_verlet", *, grad_fn=None,
                 divergence_threshold=DIVERGENCE_THRESHOLD, compile=True, jitter=0.0):
        super().__init__(logdensity, step_size, inverse_mass, integrator, grad_fn=grad_fn,
                         divergence_threshold=divergence_threshold, compile=compile)
        if int(n_leapfrogs) != n_leapfrogs or n_leapfrogs < 1:
            raise ValueError(f"n_leapfrogs: expected a positive integer, got {n_leapfrogs!r}")
        if not (isinstance(jitter, (int, float, np.floating)) and 0.0 <= jitter < 1.0):
            raise ValueError(f"jitter: expected a float in [0, 1), got {jitter!r}")
        self.n_leapfrogs = int(n_leapfrogs)
        self.jitter = float(jitter)

    def step(self, state, rng):
        """One HMC transition of every chain.

        Parameters
        ----------
        state : HMCState
            Positions ``[C, D]``, log densities ``[C]`` and gradients ``[C, D]``.
        rng : numpy.random.Generator or cupy.random.Generator

        Returns
        -------
        HMCState
            The new state (a new object; ``state`` is not modified).
        HMCInfo
            Per-chain acceptance probability, accept flag, divergence,
            energy and gradient evaluations.
        """
        scale = None
        if self.jitter:
            q = state.position
            scale = 1.0 + self.jitter * (2.0 * rng.random(q.shape[0], dtype=q.dtype) - 1.0)
        return metropolis_hmc_step(self, state, rng, self.n_leapfrogs, scale)
