"""Hamiltonian Monte Carlo with a fixed number of integrator steps, batched over chains.

One transition (Neal 2011, "MCMC using Hamiltonian dynamics", Handbook of
MCMC, ch. 5; Betancourt 2017, "A conceptual introduction to Hamiltonian
Monte Carlo", arXiv:1701.02434): draw ``p ~ N(0, M)``, integrate Hamilton's
equations for ``n_leapfrogs`` steps with a symplectic integrator, accept the
end point with probability ``min(1, exp(H_0 - H_1))``. Every chain moves in
the same batched integrator calls (one log-density + gradient call per
stage for all chains); chains differ only through their own step size,
momentum and accept decision.

The kernel holds default parameters (step size, inverse mass, integrator) and
never adapts them: warmup strategies pass :class:`~samplers.base.KernelParams` to
``step(state, rng, params)`` (built with :meth:`GradientKernel.params`).
"""
import math

import numpy as np

from . import kernels
from .base import (HMCInfo, HMCState, KernelParams, LogDensity, _to_host, array_module,
                   draw_momentum, inverse_mass_parts)
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

    #: Default acceptance target of step-size adaptation (Stan's ``delta``).
    target_accept = 0.8
    #: Default warmup strategy under :func:`samplers.sample`.
    adaptation = "stan"
    #: Name of the step-size argument of the constructor.
    step_size_name = "step_size"
    #: Constructor defaults that :func:`samplers.sample` applies.
    sample_defaults = {}

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

    def with_params(self, step_size=None, inverse_mass=None, **extra):
        """A copy of this kernel with new default parameters (step size, inverse mass,
        and the fields of :attr:`extra_params`, e.g. ``trajectory_length``).

        The log-density wrapper (and its autodiff closure) is shared. (Warmup passes
        :class:`~samplers.base.KernelParams` to ``step`` instead.)
        """
        unknown = sorted(set(extra) - set(self.extra_params))
        if unknown:
            raise TypeError(f"{type(self).__name__}.with_params: unknown parameter(s) "
                            f"{unknown}")
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        if step_size is not None:
            _check_step_size(step_size)
            new.step_size = step_size
        if inverse_mass is not None:
            new.inverse_mass = inverse_mass
        for k, v in extra.items():
            setattr(new, self.extra_params[k], v)
        return new

    #: Extra :class:`KernelParams` fields this kernel reads, with the attribute holding
    #: each default (subclasses extend it).
    extra_params = {}

    def params(self, position, *, step_size=None, inverse_mass=None, **extra):
        """The :class:`~samplers.base.KernelParams` of this kernel for positions like
        ``position [C, D]``: its own values, overridden by the arguments given.

        Parameters
        ----------
        position : array, shape [C, D]
            Decides the number of chains, the dtype and the array module.
        step_size : float or array, shape [C], optional
        inverse_mass : array, shape [D] or [D, D], optional
        **extra
            Other fields the kernel reads (``n_leapfrogs``, ``trajectory_length`` for
            HMC).

        Returns
        -------
        KernelParams
        """
        q = position
        unknown = sorted(set(extra) - set(self.extra_params))
        if unknown:
            raise TypeError(f"{type(self).__name__}.params: unknown parameter(s) {unknown}; "
                            f"valid: {['step_size', 'inverse_mass', *self.extra_params]}")
        inv, msqrt = inverse_mass_parts(self.inverse_mass if inverse_mass is None
                                        else inverse_mass, q.shape[1], array_module(q),
                                        q.dtype)
        eps = per_chain_step_size(self.step_size if step_size is None else step_size, q,
                                  "step_size")
        values = {k: extra.get(k, getattr(self, attr)) for k, attr in self.extra_params.items()}
        return KernelParams(eps, inv, msqrt, **values)

    def trial(self, state, rng, params):
        """One integrator step from ``state`` with fresh momenta, Metropolis-adjusted:
        the move whose acceptance the step-size heuristic reads.

        Returns
        -------
        HMCState, HMCInfo
        """
        return metropolis_hmc_step(self, state, rng, 1, params=params)

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


def _check_count(name, n):
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"{name}: expected a positive integer, got {n!r}")


def _check_length(length):
    if not (np.ndim(length) == 0 and np.isfinite(length) and length > 0):
        raise ValueError(f"trajectory_length: expected a positive finite float, got "
                         f"{length!r}")


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


def metropolis_hmc_step(kernel, state, rng, n_steps, scale=None, params=None):
    """One Metropolis-adjusted integrator transition of every chain.

    Parameters
    ----------
    kernel : GradientKernel
    state : HMCState
    rng : Generator
    n_steps : int
    scale : array, shape [C], optional
        Factors on the step sizes for this transition only (jitter).
    params : KernelParams, optional
        Default: ``kernel.params(state.position)``.

    Returns
    -------
    HMCState, HMCInfo
    """
    # Diverging trajectories overflow inside the user's log density too; they
    # are handled (rejected, flagged), so floating-point warnings are noise.
    with np.errstate(invalid="ignore", over="ignore", divide="ignore", under="ignore"):
        return _metropolis_hmc_step(kernel, state, rng, n_steps, scale,
                                    kernel.params(state.position) if params is None else params)


def _metropolis_hmc_step(kernel, state, rng, n_steps, scale, params):
    q0, lp0, g0 = state
    eps, inv, msqrt = params[:3]
    if scale is not None:
        eps = eps * scale
    xp = array_module(q0)
    p0 = draw_momentum(rng, q0, msqrt)
    h0 = kernels.kinetic_energy(p0, inv) - lp0
    q, p, g, lp = integrate(q0.copy(), p0.copy(), g0, lp0, kernel.logdensity, inv, eps,
                            n_steps, kernel.integrator)
    h1 = kernels.kinetic_energy(p, inv) - lp
    dh = h1 - h0
    dh = xp.where(xp.isfinite(dh), dh, xp.inf)
    accept_prob = xp.exp(xp.minimum(-dh, 0.0))
    accepted = rng.random(q0.shape[0], dtype=q0.dtype) < accept_prob
    divergent = dh > kernel.divergence_threshold
    a2 = accepted[:, None]
    new = HMCState(xp.where(a2, q, q0), xp.where(accepted, lp, lp0), xp.where(a2, g, g0))
    n_grad = xp.full(q0.shape[0], n_steps * kernel.integrator.n_stages, dtype=np.int64)
    info = HMCInfo(accept_prob, accepted, divergent, xp.where(accepted, h1, h0), n_grad,
                   p0, q, p)
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
    trajectory_length : float, optional
        Jittered trajectories (ChEES-HMC, Hoffman, Radul & Sountsov 2021): each
        transition draws ``u ~ U(0, 1]``, shared by the chains, and takes
        ``ceil(u * trajectory_length / step_size)`` integrator steps (at most
        ``max_leapfrogs``) instead of ``n_leapfrogs``. Adapted by
        ``sample(..., adaptation="chees")``.
    max_leapfrogs : int
        Cap on the jittered number of steps (1000).

    Examples
    --------
    >>> k = HMC(logdensity, step_size=0.1, n_leapfrogs=10)     # doctest: +SKIP
    >>> state = k.init(x0)                                     # doctest: +SKIP
    >>> state, info = k.step(state, rng)                       # doctest: +SKIP
    """

    def __init__(self, logdensity, step_size, n_leapfrogs, inverse_mass=None,
                 integrator="velocity_verlet", *, grad_fn=None,
                 divergence_threshold=DIVERGENCE_THRESHOLD, compile=True, jitter=0.0,
                 trajectory_length=None, max_leapfrogs=1000):
        super().__init__(logdensity, step_size, inverse_mass, integrator, grad_fn=grad_fn,
                         divergence_threshold=divergence_threshold, compile=compile)
        _check_count("n_leapfrogs", n_leapfrogs)
        _check_count("max_leapfrogs", max_leapfrogs)
        if not (isinstance(jitter, (int, float, np.floating)) and 0.0 <= jitter < 1.0):
            raise ValueError(f"jitter: expected a float in [0, 1), got {jitter!r}")
        if trajectory_length is not None:
            _check_length(trajectory_length)
        self.n_leapfrogs = int(n_leapfrogs)
        self.jitter = float(jitter)
        self.trajectory_length = trajectory_length
        self.max_leapfrogs = int(max_leapfrogs)

    extra_params = {"n_leapfrogs": "n_leapfrogs", "trajectory_length": "trajectory_length"}
    sample_defaults = {"n_leapfrogs": 10}

    def n_steps(self, params, rng):
        """Integrator steps of the next transition: ``params.n_leapfrogs``, or with a
        ``trajectory_length`` a jittered ``ceil(u L / mean(step_size))``, ``u ~ U(0, 1]``
        (one draw from ``rng`` for all chains), capped at ``max_leapfrogs``."""
        length = params.trajectory_length
        if length is None:
            return int(params.n_leapfrogs)
        u = 1.0 - float(rng.random())
        eps = float(np.mean(_to_host(params.step_size)))
        return int(min(max(1, math.ceil(u * float(length) / eps)), self.max_leapfrogs))

    def step(self, state, rng, params=None):
        """One HMC transition of every chain.

        Parameters
        ----------
        state : HMCState
            Positions ``[C, D]``, log densities ``[C]`` and gradients ``[C, D]``.
        rng : numpy.random.Generator or cupy.random.Generator
        params : KernelParams, optional
            Step sizes, mass, ``n_leapfrogs`` / ``trajectory_length``; default
            ``self.params(state.position)`` (the constructor's values).

        Returns
        -------
        HMCState
            The new state (a new object; ``state`` is not modified).
        HMCInfo
            Per-chain acceptance probability, accept flag, divergence, energy,
            gradient evaluations, initial momentum and the trajectory's end point.
        """
        if params is None:
            params = self.params(state.position)
        n = self.n_steps(params, rng)
        scale = None
        if self.jitter:
            q = state.position
            scale = 1.0 + self.jitter * (2.0 * rng.random(q.shape[0], dtype=q.dtype) - 1.0)
        return metropolis_hmc_step(self, state, rng, n, scale, params)
