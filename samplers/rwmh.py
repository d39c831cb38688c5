"""Random-walk Metropolis-Hastings, batched over chains.

Proposal ``q' = q + scale * L z`` with ``z ~ N(0, I)`` and ``L L^T`` the
proposal shape (``inverse_mass``, an estimate of the posterior covariance,
identity by default); accept with probability ``min(1, pi(q') / pi(q))``
(Metropolis et al. 1953; Hastings 1970). The optimal acceptance rate in high
dimension is about 0.234 (Roberts, Gelman & Gilks 1997). No gradient is
needed: the log density is evaluated once per transition for all chains.
"""
import numpy as np

from .base import HMCInfo, KernelParams, LogDensity, RWMHState, array_module
from .hmc import _as_positions, _check_step_size, per_chain_step_size

__all__ = ["RWMH"]


class RWMH:
    """Gaussian random-walk Metropolis kernel.

    Parameters
    ----------
    logdensity : callable
        ``logdensity(position [C, D]) -> [C]`` (autodiff ops or plain arrays).
    scale : float or array, shape [C]
        Proposal scale (shared or per chain).
    inverse_mass : None or array, shape [D] or [D, D]
        Proposal covariance shape ``Sigma`` (the step is ``scale * N(0, Sigma)``);
        identity when None. Named like the HMC parameter so that the same
        warmup adapts both.
    grad_fn : callable, optional
        Accepted for a uniform interface and ignored (RWMH needs no gradient).
    compile : bool
        Compile the log density (:func:`autodiff.compile`, the default); False runs it
        on the tape.
    """

    #: Roberts, Gelman & Gilks (1997): 0.234 is optimal in high dimension.
    target_accept = 0.234
    adaptation = "stan"
    step_size_name = "scale"
    sample_defaults = {}
    #: Only the log density is evaluated (starts are checked without a gradient).
    needs_grad = False

    def __init__(self, logdensity, scale, inverse_mass=None, *, grad_fn=None, compile=True):
        del grad_fn  # no gradient needed
        self.logdensity = (logdensity if isinstance(logdensity, LogDensity)
                           else LogDensity(logdensity, compile=compile))
        _check_step_size(scale)
        self.scale = scale
        self.inverse_mass = inverse_mass

    @property
    def step_size(self):
        """Alias of ``scale`` (what warmup adapts)."""
        return self.scale

    def with_params(self, step_size=None, inverse_mass=None):
        """A copy with a new default scale (``step_size``) and/or proposal covariance."""
        new = object.__new__(RWMH)
        new.__dict__.update(self.__dict__)
        if step_size is not None:
            _check_step_size(step_size)
            new.scale = step_size
        if inverse_mass is not None:
            new.inverse_mass = inverse_mass
        return new

    extra_params = {}

    def params(self, position, *, step_size=None, inverse_mass=None, **extra):
        """The :class:`~samplers.base.KernelParams` for positions like ``position``:
        ``step_size`` is the proposal scale per chain, ``inverse_mass`` the proposal
        covariance shape and ``mass_sqrt`` its factor (square root or lower Cholesky)."""
        if extra:
            raise TypeError(f"RWMH.params: unknown parameter(s) {sorted(extra)}; valid: "
                            "['step_size', 'inverse_mass']")
        q = position
        xp = array_module(q)
        d = q.shape[1]
        cov = self.inverse_mass if inverse_mass is None else inverse_mass
        cov = xp.ones(d, dtype=q.dtype) if cov is None else xp.asarray(cov, dtype=q.dtype)
        if cov.shape == (d,):
            if not bool(xp.all(cov > 0)):
                raise ValueError("inverse_mass: proposal variances must be positive")
            factor = xp.sqrt(cov)
        elif cov.shape == (d, d):
            try:
                factor = xp.linalg.cholesky(cov)
            except Exception as e:
                raise ValueError("inverse_mass: the proposal covariance must be "
                                 f"symmetric positive definite ({e})") from None
        else:
            raise ValueError(f"inverse_mass: expected shape ({d},) or ({d}, {d}), got "
                             f"{tuple(cov.shape)}")
        scale = per_chain_step_size(self.scale if step_size is None else step_size, q, "scale")
        return KernelParams(scale, cov, factor)

    def trial(self, state, rng, params):
        """One proposal with ``params`` (what the step-size heuristic reads)."""
        return self.step(state, rng, params)

    def init(self, position):
        """Initial state at ``position [C, D]``; raises on a non-finite start.

        Returns
        -------
        RWMHState
        """
        q = _as_positions(position)
        lp = self.logdensity.value(q)
        self.logdensity.check_finite(lp, None)
        return RWMHState(q, lp)

    def step(self, state, rng, params=None):
        """One random-walk Metropolis transition of every chain.

        Parameters
        ----------
        state : RWMHState
        rng : numpy.random.Generator or cupy.random.Generator
        params : KernelParams, optional
            Scale and proposal shape; default ``self.params(state.position)``.

        Returns
        -------
        RWMHState, HMCInfo
            ``energy`` is the negative log density; ``n_grad_evals`` is 0 and
            ``is_divergent`` always False (there is no integrator).
        """
        q0, lp0 = state
        if params is None:
            params = self.params(q0)
        scale, _, factor = params[:3]
        xp = array_module(q0)
        z = rng.standard_normal(q0.shape, dtype=q0.dtype)
        step = z * factor if factor.ndim == 1 else z @ factor.T
        q = q0 + scale[:, None] * step
        with np.errstate(invalid="ignore", over="ignore", divide="ignore", under="ignore"):
            lp = self.logdensity.value(q)
            dlp = xp.where(xp.isfinite(lp), lp - lp0, -xp.inf)
            accept_prob = xp.exp(xp.minimum(dlp, 0.0))
            accepted = rng.random(q0.shape[0], dtype=q0.dtype) < accept_prob
        new = RWMHState(xp.where(accepted[:, None], q, q0), xp.where(accepted, lp, lp0))
        c = q0.shape[0]
        info = HMCInfo(accept_prob, accepted, xp.zeros(c, dtype=bool), -new.logdensity,
                       xp.zeros(c, dtype=np.int64), proposal=q)
        return new, info
