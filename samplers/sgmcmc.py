"""Stochastic-gradient MCMC kernels (SGLD, pSGLD, SGHMC, SGNHT), step-size schedules,
a minibatch gradient estimator and a small driver.

Each kernel is a pair of pure functions over a NamedTuple state, batched over
chains like every kernel of :mod:`samplers`::

    k = SGHMC(grad_estimator, step_size=0.01)
    state = k.init(position)            # position [C, D]
    state, info = k.step(state, rng)    # all chains move; state is not modified

``grad_estimator(position [C, D], rng) -> [C, D]`` returns a (noisy, unbiased)
estimate of the gradient of the log density of every chain: an *ascent*
direction. :func:`minibatch_grad_estimator` builds one from a per-datum
log-likelihood and a prior; any other (e.g. an exact gradient plus noise) works.

Parameterization (ZhuSuan's ``zhusuan/sgmcmc.py``): ``step_size`` is the
learning rate ``eta`` of every update. For the Langevin kernels it is the
Euler step ``eps`` of Welling & Teh (2011) (``q += eta/2 g + N(0, eta)``); for
SGHMC and SGNHT it is ``eta = eps**2 / m`` of Chen et al. (2014, sec. 3.3),
with the momentum ``v = eps p / m`` of variance ``eta``, so ``q += v`` per step.
It may be a positive float or a schedule ``t -> float`` of the iteration
number ``t = 0, 1, ...`` kept in the state (:func:`cyclical_step_size`,
:func:`polynomial_decay`).

The element-wise updates run as fused Numba kernels (CPU ``njit``:
:mod:`samplers.kernels.sgmcmc_cpu`; GPU ``cuda.jit`` on CuPy arrays:
:mod:`samplers.kernels.sgmcmc_cuda`), chosen by the array module of the
positions; the Gaussian noise is drawn here from the explicit ``rng`` and
passed in, so the kernels are deterministic and the same on every backend.

No Metropolis correction is applied: the draws are biased by the
discretization, a bias that vanishes as the step size decreases (Welling &
Teh 2011; Teh, Thiery & Vollmer 2016).

References
----------
Welling & Teh (2011), "Bayesian learning via stochastic gradient Langevin
dynamics", ICML. Li, Chen, Chen & Carin (2016), "Preconditioned stochastic
gradient Langevin dynamics for deep neural networks", AAAI. Chen, Fox &
Guestrin (2014), "Stochastic gradient Hamiltonian Monte Carlo", ICML. Ding,
Fang, Babbush, Chen, Skeel & Neven (2014), "Bayesian sampling using
stochastic gradient thermostats", NeurIPS. Zhang, Li, Zhang, Chen & Wilson
(2020), "Cyclical stochastic gradient MCMC for Bayesian deep learning", ICLR.
"""
import math
import sys
from typing import NamedTuple

import numpy as np

from .base import array_module

__all__ = ["SGLD", "PSGLD", "SGHMC", "SGNHT", "SGLDState", "PSGLDState", "SGHMCState",
           "SGNHTState", "SGMCMCInfo", "cyclical_step_size",
           "polynomial_decay", "minibatch_grad_estimator", "sample_sgmcmc"]


# --------------------------------------------------------------------------- states
class SGLDState(NamedTuple):
    """State of :class:`SGLD`.

    Attributes
    ----------
    position : array, shape [C, D]
    iteration : int
        Number of steps taken (the argument of a step-size schedule).
    """
    position: object
    iteration: int


class PSGLDState(NamedTuple):
    """State of :class:`PSGLD`.

    Attributes
    ----------
    position : array, shape [C, D]
    square_avg : array, shape [C, D]
        Exponential moving average of the squared stochastic gradients
        (RMSprop's ``V``), per chain and coordinate.
    iteration : int
    """
    position: object
    square_avg: object
    iteration: int


class SGHMCState(NamedTuple):
    """State of :class:`SGHMC`.

    Attributes
    ----------
    position : array, shape [C, D]
    momentum : array, shape [C, D]
        ``v = eps * p`` (ZhuSuan's parameterization, variance ``eta``); zeros
        at ``init``, drawn at the first step.
    iteration : int
    """
    position: object
    momentum: object
    iteration: int


class SGNHTState(NamedTuple):
    """State of :class:`SGNHT`.

    Attributes
    ----------
    position : array, shape [C, D]
    momentum : array, shape [C, D]
    thermostat : array, shape [C, D] or [C, 1]
        The friction ``alpha`` (Ding et al.'s ``xi``), per coordinate
        (``use_vector_alpha``) or per chain.
    iteration : int
    """
    position: object
    momentum: object
    thermostat: object
    iteration: int


class SGMCMCInfo(NamedTuple):
    """Diagnostics of one SG-MCMC step.

    Attributes
    ----------
    step_size : float
        The learning rate ``eta`` used (the schedule's value at this iteration).
    grad_norm : array, shape [C]
        Euclidean norm of each chain's stochastic gradient.
    """
    step_size: float
    grad_norm: object


# --------------------------------------------------------------------------- schedules
class _Schedule:
    __slots__ = ()

    def __repr__(self):
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__)
        return f"{type(self).__name__}({args})"


class cyclical_step_size(_Schedule):
    """Cosine cyclical learning rate of cSG-MCMC (Zhang et al. 2020, eq. 1).

    ``eta_t = initial / 2 * (cos(pi * (t mod L) / L) + 1)`` with cycle length
    ``L = ceil(n_iterations / n_cycles)``: each cycle starts at ``initial``
    (exploration) and decays to near 0 (sampling). Past ``n_iterations`` the
    cycles go on. Always positive.

    Parameters
    ----------
    initial : float
        Learning rate at the start of each cycle (``alpha_0``), positive.
    n_iterations : int
        Total number of iterations ``K``.
    n_cycles : int
        Number of cycles ``M`` in ``K`` iterations (1 <= M <= K).

    Examples
    --------
    >>> s = cyclical_step_size(0.1, n_iterations=100, n_cycles=5)
    >>> s(0), round(s(10), 4), s(20)
    (0.1, 0.05, 0.1)
    """
    __slots__ = ("initial", "n_iterations", "n_cycles", "cycle_length")

    def __init__(self, initial, n_iterations, n_cycles):
        _check_positive("initial", initial)
        for name, v in (("n_iterations", n_iterations), ("n_cycles", n_cycles)):
            if isinstance(v, bool) or int(v) != v or v < 1:
                raise ValueError(f"{name}: expected a positive integer, got {v!r}")
        if n_cycles > n_iterations:
            raise ValueError(f"n_cycles: expected at most n_iterations={n_iterations}, "
                             f"got {n_cycles}")
        self.initial = float(initial)
        self.n_iterations, self.n_cycles = int(n_iterations), int(n_cycles)
        self.cycle_length = -(-self.n_iterations // self.n_cycles)

    def __call__(self, t):
        r = (t % self.cycle_length) / self.cycle_length
        return 0.5 * self.initial * (math.cos(math.pi * r) + 1.0)


class polynomial_decay(_Schedule):
    """``eta_t = a * (b + t) ** -gamma`` (Welling & Teh 2011, sec. 3).

    ``gamma`` in ``(0.5, 1]`` satisfies the Robbins-Monro conditions under
    which SGLD converges without a Metropolis correction.

    Parameters
    ----------
    a, b : float
        Positive.
    gamma : float
        Non-negative decay exponent (0: constant ``a * b**0 = a``).

    Examples
    --------
    >>> polynomial_decay(1.0, 1.0, 0.55)(0)
    1.0
    """
    __slots__ = ("a", "b", "gamma")

    def __init__(self, a, b, gamma):
        _check_positive("a", a)
        _check_positive("b", b)
        if not (np.isfinite(gamma) and gamma >= 0):
            raise ValueError(f"gamma: expected a non-negative finite float, got {gamma!r}")
        self.a, self.b, self.gamma = float(a), float(b), float(gamma)

    def __call__(self, t):
        return self.a * (self.b + t) ** -self.gamma


def _check_positive(name, v, allow_zero=False):
    ok = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
    if not ok or not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        kind = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{name}: expected a {kind} finite float, got {v!r}")
    return float(v)


# --------------------------------------------------------------------------- helpers
def _ops(x):
    """The kernel module for ``x``'s array module (CUDA built lazily)."""
    if type(x).__module__.startswith("cupy"):
        from .kernels import sgmcmc_cuda
        return sgmcmc_cuda
    from .kernels import sgmcmc_cpu
    return sgmcmc_cpu


def _as_position(position):
    if not hasattr(position, "shape") or not hasattr(position, "dtype"):
        position = np.asarray(position, dtype=float)
    if position.ndim != 2:
        raise ValueError("position: expected shape [n_chains, dim], got shape "
                         f"{tuple(position.shape)}")
    if position.dtype.kind != "f":
        return position.astype(np.float64)
    return array_module(position).ascontiguousarray(position)


def _check_rng(rng):
    if isinstance(rng, np.random.Generator) or type(rng).__module__.startswith("cupy"):
        return rng
    raise TypeError("rng: expected a numpy.random.Generator or cupy.random.Generator "
                    f"(step takes a generator; seeds are for sample_sgmcmc), got "
                    f"{type(rng).__name__}")


def _unwrap(x):
    ad = sys.modules.get("autodiff")
    if ad is not None and isinstance(x, ad.Tensor):
        return x.data
    return x


class _SGKernel:
    """Shared parameters of the SG-MCMC kernels: gradient estimator and step size."""

    def __init__(self, grad_estimator, step_size):
        if not callable(grad_estimator):
            raise TypeError("grad_estimator: expected a callable (position [C, D], rng) -> "
                            f"[C, D], got {type(grad_estimator).__name__}")
        if not callable(step_size):
            _check_positive("step_size", step_size)
            step_size = float(step_size)
        self.grad_estimator = grad_estimator
        self.step_size = step_size

    def _eta(self, t):
        """Learning rate at iteration ``t`` (a schedule's value, checked)."""
        s = self.step_size
        if not callable(s):
            return s
        raw = s(t)
        try:
            v = float(raw)
        except (TypeError, ValueError):
            v = None
        if v is None or not math.isfinite(v) or v <= 0:
            raise ValueError(f"step_size: the schedule {s!r} returned {raw!r} at iteration "
                             f"{t}; expected a positive finite float")
        return v

    def _grad(self, q, rng):
        """Stochastic gradient ``[C, D]`` at ``q``, shape-checked, in ``q``'s dtype."""
        g = _unwrap(self.grad_estimator(q, rng))
        if getattr(g, "shape", None) != q.shape:
            raise ValueError("grad_estimator: must return the gradient with the shape of the "
                             f"position {tuple(q.shape)} ([n_chains, dim]), got "
                             f"{getattr(g, 'shape', type(g).__name__)}")
        if type(g) is not type(q):
            raise TypeError(f"grad_estimator: must return a {type(q).__module__} array like "
                            f"the position, got {type(g).__module__}.{type(g).__name__}")
        if g.dtype != q.dtype:
            g = g.astype(q.dtype)
        return g

    @staticmethod
    def _info(eta, g):
        xp = array_module(g)
        return SGMCMCInfo(eta, xp.sqrt((g * g).sum(axis=1)))

    @staticmethod
    def _noise(rng, q):
        return rng.standard_normal(size=q.shape, dtype=q.dtype)


class SGLD(_SGKernel):
    """Stochastic gradient Langevin dynamics (Welling & Teh 2011).

    One step: ``q <- q + eta/2 * g(q) + sqrt(eta) * z``, ``z ~ N(0, I)``.

    Parameters
    ----------
    grad_estimator : callable
        ``grad_estimator(position [C, D], rng) -> [C, D]``: a stochastic
        estimate of the gradient of the log density (ascent direction).
    step_size : float or callable
        Learning rate ``eta`` (positive), or a schedule ``t -> eta``.

    Examples
    --------
    >>> k = SGLD(lambda q, rng: -q, step_size=0.1)
    >>> state, info = k.step(k.init(np.zeros((4, 2))), np.random.default_rng(0))
    >>> state.position.shape, state.iteration, info.step_size
    ((4, 2), 1, 0.1)
    """

    def init(self, position):
        """State at ``position [C, D]`` (iteration 0).

        Returns
        -------
        SGLDState
        """
        return SGLDState(_as_position(position), 0)

    def step(self, state, rng):
        """One SGLD step of every chain.

        Parameters
        ----------
        state : SGLDState
        rng : numpy.random.Generator or cupy.random.Generator

        Returns
        -------
        SGLDState
            A new state (``state`` is not modified).
        SGMCMCInfo
        """
        rng = _check_rng(rng)
        eta = self._eta(state.iteration)
        q = state.position.copy()
        g = self._grad(q, rng)
        info = self._info(eta, g)
        _ops(q).sgld(q, g, self._noise(rng, q), eta)
        return SGLDState(q, state.iteration + 1), info


class PSGLD(_SGKernel):
    """Preconditioned SGLD with the RMSprop preconditioner (Li et al. 2016).

    One step, element-wise::

        V <- decay * V + (1 - decay) * g**2
        G  = 1 / (epsilon + sqrt(V))
        q <- q + eta/2 * G * g + sqrt(eta * G) * z

    The correction term ``Gamma(q) = eta * d G / d q`` of the exact
    preconditioned dynamics is omitted, as in the paper's practical
    algorithm (Li et al. 2016, Algorithm 1 and sec. 3: with ``decay`` close to
    1 it is small; dropping it adds a bias that vanishes with the step size)
    and in ZhuSuan.

    Parameters
    ----------
    grad_estimator : callable
        ``grad_estimator(position [C, D], rng) -> [C, D]``.
    step_size : float or callable
        Learning rate ``eta`` or a schedule.
    decay : float
        RMSprop decay ``alpha`` in ``[0, 1)`` (0.9).
    epsilon : float
        Diagonal bias ``lambda`` of the preconditioner, positive (1e-3).
    """

    def __init__(self, grad_estimator, step_size, decay=0.9, epsilon=1e-3):
        super().__init__(grad_estimator, step_size)
        _check_positive("decay", decay, allow_zero=True)
        if decay >= 1:
            raise ValueError(f"decay: expected a float in [0, 1), got {decay!r}")
        self.decay = float(decay)
        self.epsilon = _check_positive("epsilon", epsilon)

    def init(self, position):
        """State at ``position [C, D]`` with ``square_avg`` zero (as ZhuSuan).

        Returns
        -------
        PSGLDState
        """
        q = _as_position(position)
        return PSGLDState(q, array_module(q).zeros_like(q), 0)

    def step(self, state, rng):
        """One pSGLD step of every chain (returns a new ``PSGLDState`` and an ``SGMCMCInfo``)."""
        rng = _check_rng(rng)
        eta = self._eta(state.iteration)
        q, v = state.position.copy(), state.square_avg.copy()
        g = self._grad(q, rng)
        info = self._info(eta, g)
        _ops(q).psgld(q, v, g, self._noise(rng, q), eta, self.decay, self.epsilon)
        return PSGLDState(q, v, state.iteration + 1), info


def _check_resample(n):
    if n is None or n == 0:
        return 0
    if isinstance(n, bool) or int(n) != n or n < 0:
        raise ValueError(f"n_iter_resample_v: expected None or a non-negative integer, got {n!r}")
    return int(n)


def _momentum_at(kernel, v, t, eta, rng):
    """``v``, or a fresh ``N(0, eta)`` draw at iteration 0 and every ``n_iter_resample_v``."""
    n = kernel.n_iter_resample_v
    if t == 0 or (n and t % n == 0):
        return rng.standard_normal(size=v.shape, dtype=v.dtype) * v.dtype.type(math.sqrt(eta))
    return v.copy()


class SGHMC(_SGKernel):
    """Stochastic gradient Hamiltonian Monte Carlo (Chen et al. 2014), ZhuSuan's form.

    With ``v`` of variance ``eta`` and ``z ~ N(0, I)``, first order (Chen et
    al. 2014, eq. 15)::

        v <- (1 - alpha) v + eta g(q) + sqrt(2 (alpha - beta_hat) eta) z
        q <- q + v

    ``second_order=True`` uses the symmetric splitting of ZhuSuan's
    implementation: half drift ``q += v/2``, gradient there, friction as an
    exact exponential decay ``h = exp(-alpha/2)`` around the kick
    ``v <- h (h v + eta g + noise)``, half drift ``q += v/2``.

    Parameters
    ----------
    grad_estimator : callable
        ``grad_estimator(position [C, D], rng) -> [C, D]``.
    step_size : float or callable
        Learning rate ``eta`` (``eps**2`` of the paper, for unit mass) or a schedule.
    friction : float
        ``alpha = eps * C``, non-negative (0.25).
    variance_estimate : float
        ``beta_hat = eps * B_hat / 2``, the estimated contribution of the
        gradient noise, in ``[0, friction]`` (0).
    n_iter_resample_v : int or None
        Redraw ``v ~ N(0, eta)`` every this many iterations (20); None or 0:
        only at the first step. The momentum is always drawn at iteration 0
        (ZhuSuan draws it when the variable is created).
    second_order : bool
        Symmetric splitting (True) or the first-order update.
    """

    def __init__(self, grad_estimator, step_size, friction=0.25, variance_estimate=0.,
                 n_iter_resample_v=20, second_order=True):
        super().__init__(grad_estimator, step_size)
        self.friction = _check_positive("friction", friction, allow_zero=True)
        self.variance_estimate = _check_positive("variance_estimate", variance_estimate,
                                                 allow_zero=True)
        if self.variance_estimate > self.friction:
            raise ValueError(f"variance_estimate: expected at most friction={friction!r} (the "
                             f"injected noise variance is 2 (friction - variance_estimate) "
                             f"step_size), got {variance_estimate!r}")
        self.n_iter_resample_v = _check_resample(n_iter_resample_v)
        self.second_order = bool(second_order)

    def init(self, position):
        """State at ``position [C, D]``; momentum zeros (drawn at the first step).

        Returns
        -------
        SGHMCState
        """
        q = _as_position(position)
        return SGHMCState(q, array_module(q).zeros_like(q), 0)

    def step(self, state, rng):
        """One SGHMC step of every chain (returns a new ``SGHMCState`` and an ``SGMCMCInfo``)."""
        rng = _check_rng(rng)
        t = state.iteration
        eta = self._eta(t)
        q = state.position.copy()
        v = _momentum_at(self, state.momentum, t, eta, rng)
        ops = _ops(q)
        if self.second_order:
            ops.drift(q, v, 0.5)
        g = self._grad(q, rng)
        info = self._info(eta, g)
        friction = array_module(q).full((1, 1), self.friction, dtype=q.dtype)
        sigma = math.sqrt(2.0 * (self.friction - self.variance_estimate) * eta)
        ops.momentum(q, v, friction, g, self._noise(rng, q), eta, sigma, self.second_order)
        return SGHMCState(q, v, t + 1), info


class SGNHT(_SGKernel):
    """Stochastic gradient Nose-Hoover thermostat (Ding et al. 2014), ZhuSuan's form.

    SGHMC whose friction ``alpha`` is a thermostat driven towards the value
    at which the mean kinetic term ``v**2`` equals ``eta`` (equipartition),
    which absorbs the unknown gradient-noise variance. First order::

        v     <- (1 - alpha) v + eta g(q) + sqrt(2 A eta) z
        q     <- q + v
        alpha <- alpha + tune_rate (v**2 - eta)

    ``second_order=True`` splits symmetrically as :class:`SGHMC`, with the
    thermostat updated by half a step (on the old ``v``) before the gradient
    and half a step (on the new ``v``) after, and friction ``exp(-alpha/2)``.

    Parameters
    ----------
    grad_estimator : callable
        ``grad_estimator(position [C, D], rng) -> [C, D]``.
    step_size : float or callable
        Learning rate ``eta`` or a schedule.
    variance_extra : float
        ``A``: the variance of the injected noise and the thermostat's
        initial value, non-negative (0: all noise comes from the gradient).
    tune_rate : float
        Thermostat gain, positive (1).
    n_iter_resample_v : int or None
        Redraw ``v ~ N(0, eta)`` every this many iterations (None: only at
        the first step).
    second_order : bool
        Symmetric splitting (True) or the first-order update.
    use_vector_alpha : bool
        One thermostat per coordinate (True) or one per chain, driven by the
        chain's mean ``v**2`` over its ``D`` coordinates. (ZhuSuan's scalar
        thermostat averages over the whole variable tensor; here chains stay
        independent.)
    """

    def __init__(self, grad_estimator, step_size, variance_extra=0., tune_rate=1.,
                 n_iter_resample_v=None, second_order=True, use_vector_alpha=True):
        super().__init__(grad_estimator, step_size)
        self.variance_extra = _check_positive("variance_extra", variance_extra, allow_zero=True)
        self.tune_rate = _check_positive("tune_rate", tune_rate)
        self.n_iter_resample_v = _check_resample(n_iter_resample_v)
        self.second_order = bool(second_order)
        self.use_vector_alpha = bool(use_vector_alpha)

    def init(self, position):
        """State at ``position [C, D]``; momentum zeros, thermostat ``variance_extra``.

        Returns
        -------
        SGNHTState
        """
        q = _as_position(position)
        xp = array_module(q)
        shape = q.shape if self.use_vector_alpha else (q.shape[0], 1)
        return SGNHTState(q, xp.zeros_like(q), xp.full(shape, self.variance_extra, q.dtype), 0)

    def step(self, state, rng):
        """One SGNHT step of every chain (returns a new ``SGNHTState`` and an ``SGMCMCInfo``)."""
        rng = _check_rng(rng)
        t = state.iteration
        eta = self._eta(t)
        q, alpha = state.position.copy(), state.thermostat.copy()
        v = _momentum_at(self, state.momentum, t, eta, rng)
        ops = _ops(q)
        sigma = math.sqrt(2.0 * self.variance_extra * eta)
        if self.second_order:
            ops.drift(q, v, 0.5)
            ops.thermostat(alpha, v, eta, 0.5 * self.tune_rate)
        g = self._grad(q, rng)
        info = self._info(eta, g)
        ops.momentum(q, v, alpha, g, self._noise(rng, q), eta, sigma, self.second_order)
        ops.thermostat(alpha, v, eta, (0.5 if self.second_order else 1.0) * self.tune_rate)
        return SGNHTState(q, v, alpha, t + 1), info


# --------------------------------------------------------------------------- minibatches
class minibatch_grad_estimator:
    """Stochastic gradient of a log posterior from random minibatches.

    ``grad(position, rng)`` draws ``B`` of the ``N`` data without replacement
    with ``rng`` and returns the gradient, per chain, of::

        log_prior(position) + N / B * sum_b log_likelihood_per_datum(position, batch)[:, b]

    an unbiased estimate of the gradient of the full-data log posterior
    (Welling & Teh 2011, eq. 4), differentiated with :mod:`autodiff` in one
    tape pass for all chains. All chains see the same minibatch at a given
    call, so their gradient noise is correlated across chains: average over
    time (or run independent estimators) rather than trusting an MCSE that
    treats the chains as independent.

    Parameters
    ----------
    log_likelihood_per_datum : callable
        ``(position [C, D], batch) -> [C, B]``, written with autodiff ops;
        ``batch`` has the structure of ``data`` with ``B`` rows.
    log_prior : callable or None
        ``position [C, D] -> [C]`` (None: flat prior).
    data : array or tuple/list of arrays
        Each with leading axis of length ``n_data`` (e.g. ``(X, y)``), NumPy
        or CuPy.
    n_data : int or None
        ``N``; None takes the data's leading length (which must equal it).
    batch_size : int
        ``B``, in ``[1, N]``.

    Examples
    --------
    >>> import autodiff as ad                                             # doctest: +SKIP
    >>> ll = lambda w, b: -0.5 * (b[1] - w @ b[0].T) ** 2                 # doctest: +SKIP
    >>> grad = minibatch_grad_estimator(ll, None, (X, y), None, 50)      # doctest: +SKIP
    >>> SGLD(grad, 1e-4)                                                 # doctest: +SKIP
    """
    __slots__ = ("log_likelihood_per_datum", "log_prior", "data", "n_data", "batch_size",
                 "_vg")

    def __init__(self, log_likelihood_per_datum, log_prior, data, n_data, batch_size):
        if not callable(log_likelihood_per_datum):
            raise TypeError("log_likelihood_per_datum: expected a callable (position [C, D], "
                            f"batch) -> [C, B], got {type(log_likelihood_per_datum).__name__}")
        if log_prior is not None and not callable(log_prior):
            raise TypeError("log_prior: expected None or a callable position [C, D] -> [C], "
                            f"got {type(log_prior).__name__}")
        arrays = data if isinstance(data, (tuple, list)) else (data,)
        lengths = [a.shape[0] if getattr(a, "ndim", 0) >= 1 else None for a in arrays]
        if not lengths or None in lengths or len(set(lengths)) != 1:
            raise ValueError("data: expected an array or a tuple of arrays sharing their "
                             f"leading axis, got leading lengths {lengths}")
        length = lengths[0]
        if n_data is None:
            n_data = length
        if isinstance(n_data, bool) or int(n_data) != n_data or n_data != length:
            raise ValueError(f"n_data: expected the data's leading length {length}, "
                             f"got {n_data!r}")
        if isinstance(batch_size, bool) or int(batch_size) != batch_size or \
                not 1 <= batch_size <= n_data:
            raise ValueError(f"batch_size: expected an integer in [1, n_data={n_data}], "
                             f"got {batch_size!r}")
        self.log_likelihood_per_datum = log_likelihood_per_datum
        self.log_prior = log_prior
        self.data = data
        self.n_data, self.batch_size = int(n_data), int(batch_size)
        self._vg = None

    def _value_and_grad(self):
        if self._vg is None:
            import autodiff as ad
            ll_fn, prior, scale, bsz = (self.log_likelihood_per_datum, self.log_prior,
                                        self.n_data / self.batch_size, self.batch_size)

            def objective(q, batch):
                ll = ll_fn(q, batch)
                c = q.shape[0]
                if tuple(getattr(ll, "shape", ())) != (c, bsz):
                    raise ValueError(f"log_likelihood_per_datum: must return shape ({c}, {bsz}) "
                                     f"([n_chains, batch_size]), got "
                                     f"{getattr(ll, 'shape', type(ll).__name__)}")
                lp = ad.sum(ll, axis=1) * scale
                if prior is not None:
                    pr = prior(q)
                    if tuple(getattr(pr, "shape", ())) != (c,):
                        raise ValueError(f"log_prior: must return shape ({c},) (one value per "
                                         f"chain), got {getattr(pr, 'shape', type(pr).__name__)}")
                    lp = lp + pr
                return ad.sum(lp)

            self._vg = ad.value_and_grad(objective)
        return self._vg

    def indices(self, rng):
        """``batch_size`` distinct indices in ``[0, n_data)`` drawn with ``rng``."""
        if isinstance(rng, np.random.Generator):
            return rng.choice(self.n_data, size=self.batch_size, replace=False)
        xp = array_module(rng.random(1))  # CuPy generator: keys of a random permutation
        return xp.argsort(rng.random(self.n_data))[:self.batch_size]

    def batch(self, rng):
        """A random minibatch of ``data`` (same structure, ``batch_size`` rows)."""
        idx = self.indices(rng)
        if isinstance(self.data, (tuple, list)):
            return type(self.data)(_take(a, idx) for a in self.data)
        return _take(self.data, idx)

    def __call__(self, position, rng):
        """Stochastic gradient ``[C, D]`` at ``position [C, D]`` from a fresh minibatch."""
        _, g = self._value_and_grad()(position, self.batch(rng))
        return g


def _take(a, idx):
    if type(idx).__module__.startswith("cupy") != type(a).__module__.startswith("cupy"):
        idx = idx.get() if hasattr(idx, "get") else array_module(a).asarray(idx)
    return a[idx]


# --------------------------------------------------------------------------- driver
def sample_sgmcmc(kernel, init_position, n_samples, thin=1, burnin=0, rng=0, progress=True,
                  checkpoint=None, checkpoint_every=100, store=None, store_chunk=None):
    """Run an SG-MCMC kernel on every chain and keep every ``thin``-th position.

    ``burnin + n_samples * thin`` steps; the draws are the positions after
    steps ``burnin + thin, burnin + 2 thin, ...``.

    Parameters
    ----------
    kernel : SGLD, PSGLD, SGHMC or SGNHT
        Or any object with ``init(position)`` and ``step(state, rng)``
        returning a state with ``.position`` and an :class:`SGMCMCInfo`.
    init_position : array, shape [C, D]
        NumPy (CPU) or CuPy (GPU).
    n_samples : int
        Draws kept per chain (positive).
    thin : int
        Keep one step in ``thin`` (positive).
    burnin : int
        Steps discarded first (non-negative); schedules count them.
    rng : int or Generator
        Seed or generator (of the positions' array module).
    progress : bool
        tqdm bar when stderr is a terminal and tqdm is installed.
    checkpoint, checkpoint_every, store, store_chunk
        As in :func:`samplers.sample`: save the run every ``checkpoint_every`` steps to
        ``checkpoint`` (the same call resumes it and repeats the uninterrupted run bit
        for bit), stream the draws to a zarr ``store``.

    Returns
    -------
    Result
        The one result type of :func:`samplers.sample` (this is
        ``sample(None, init_position, kernel=kernel, n_warmup=burnin, adaptation="none")``):
        ``stats["step_size"]`` and ``stats["grad_norm"]`` are ``[C, n_samples]``, the
        burn-in's in ``warmup_stats``.
    """
    for name, v, lo in (("n_samples", n_samples, 1), ("thin", thin, 1), ("burnin", burnin, 0)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            kind = "positive" if lo else "non-negative"
            raise ValueError(f"{name}: expected a {kind} integer, got {v!r}")
    if not (hasattr(kernel, "init") and hasattr(kernel, "step")):
        raise TypeError(f"kernel: expected an SG-MCMC kernel with init and step, got "
                        f"{type(kernel).__name__}")
    from .driver import sample
    return sample(None, init_position, n_samples=n_samples, n_warmup=burnin, kernel=kernel,
                  rng=rng, progress=progress, thin=thin, adaptation="none",
                  checkpoint=checkpoint, checkpoint_every=checkpoint_every, store=store,
                  store_chunk=store_chunk)
