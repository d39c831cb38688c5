"""Warmup building blocks: step-size dual averaging, Welford (co)variance, schedules.

In the style of BlackJAX (``adaptation/step_size.py``, ``mass_matrix.py``,
``window_adaptation.py``): each adapter is an ``(init, update, final)`` triple
of pure functions over a NamedTuple state. Nothing is mutated and nothing is
global, so a warmup loop is a fold over iterations and any state can be
inspected, copied or restarted (Stan restarts dual averaging after every slow
window by calling ``init`` again).

References
----------
Hoffman, M. D. & Gelman, A. (2014). The No-U-Turn Sampler. JMLR 15,
    Algorithms 4 (step-size heuristic) and 5 (dual averaging).
Nesterov, Y. (2009). Primal-dual subgradient methods for convex problems.
Stan Reference Manual, "HMC algorithm parameters: automatic parameter tuning"
    (windowed adaptation, metric regularization); Stan's
    ``stepsize_adaptation.hpp``, ``welford_var_estimator.hpp``,
    ``windowed_adaptation.hpp``.
Chan, T. F., Golub, G. H. & LeVeque, R. J. (1979). Updating formulae and a
    pairwise algorithm for computing sample variances (the batch update).
"""

import math
from typing import Callable, NamedTuple

import numpy as np

from .base import _to_host

__all__ = [
    "DualAveragingState",
    "dual_averaging",
    "WelfordState",
    "welford_covariance",
    "find_reasonable_step_size",
    "window_schedule",
]


def _accept(accept_prob):
    """Acceptance probabilities on the host as float64; NaN counts as 0, values clipped
    to [0, 1]. A NaN acceptance comes from a divergent trajectory (infinite energy),
    which should push the step size down like a rejection does."""
    if type(accept_prob).__module__.startswith("cupy"):
        accept_prob = accept_prob.get()
    a = np.asarray(accept_prob, dtype=np.float64)
    return np.clip(np.nan_to_num(a, nan=0.0), 0.0, 1.0)


def _pooled_accept(accept_prob):
    """Mean acceptance over chains (see :func:`_accept`)."""
    return float(_accept(accept_prob).mean())


# ------------------------------------------------------------ dual averaging
class DualAveragingState(NamedTuple):
    """State of :func:`dual_averaging`.

    The fields are floats (one step size shared by the chains) or ``[C]`` host arrays
    (one dual averaging per chain), as the initial step size given to ``init``.

    Attributes
    ----------
    log_step_size : float or array, shape [C]
        ``log eps_t``, the step size to use for the next iteration.
    log_step_size_avg : float or array, shape [C]
        ``log eps_bar_t``, the iterate average returned by ``final``.
    step : int
        Number of updates ``t`` so far.
    avg_error : float or array, shape [C]
        ``H_bar_t``, the running average of ``target - accept_prob``.
    mu : float or array, shape [C]
        Shrinkage point ``log(10 * eps_0)``.
    """

    log_step_size: float
    log_step_size_avg: float
    step: int
    avg_error: float
    mu: float

    @property
    def step_size(self):
        """The step size to use for the next iteration, ``exp(log_step_size)``."""
        return np.exp(self.log_step_size) if isinstance(self.log_step_size, np.ndarray) \
            else math.exp(self.log_step_size)


def dual_averaging(target=0.8, t0=10.0, gamma=0.05, kappa=0.75):
    """Nesterov dual averaging of the log step size (Hoffman & Gelman 2014, Alg. 5).

    Parameters
    ----------
    target : float
        Target mean acceptance probability ``delta`` (0.8 as in Stan).
    t0 : float
        Offset that damps the first iterations.
    gamma : float
        Shrinkage towards ``mu = log(10 eps_0)``.
    kappa : float
        Decay exponent of the iterate-average weights, in (0.5, 1].

    Returns
    -------
    init : callable
        ``init(initial_step_size) -> DualAveragingState``: a float starts one dual
        averaging shared by all chains, a ``[C]`` array one per chain.
    update : callable
        ``update(state, accept_prob) -> DualAveragingState``. ``accept_prob``
        is a scalar or a ``[C]`` array (NumPy or CuPy; NaN counted as 0, values
        clipped to [0, 1] as Stan does); a shared step size uses its mean over the
        chains, per-chain step sizes each chain's own.
    final : callable
        ``final(state) -> float or array [C]``, the averaged step size
        ``exp(log_eps_bar)`` to use after warmup.

    Raises
    ------
    ValueError
        From ``init`` if a step size is not positive and finite.
    """

    def init(initial_step_size):
        if np.ndim(initial_step_size):
            eps0 = _per_chain_step_sizes(initial_step_size)
            zero = np.zeros_like(eps0)
            return DualAveragingState(np.log(eps0), zero, 0, zero.copy(), np.log(10.0 * eps0))
        eps0 = float(initial_step_size)
        if not (eps0 > 0 and math.isfinite(eps0)):
            raise ValueError(f"initial_step_size: expected a positive finite float, got {initial_step_size!r}")
        return DualAveragingState(math.log(eps0), 0.0, 0, 0.0, math.log(10.0 * eps0))

    def update(state, accept_prob):
        t = state.step + 1
        eta = 1.0 / (t + t0)
        if isinstance(state.mu, np.ndarray):
            a = _accept(accept_prob)
            if a.shape != state.mu.shape:
                raise ValueError(f"accept_prob: expected one value per chain, shape "
                                 f"{state.mu.shape}, got shape {a.shape}")
        else:
            a = _pooled_accept(accept_prob)
        avg_error = (1.0 - eta) * state.avg_error + eta * (target - a)
        log_eps = state.mu - math.sqrt(t) / gamma * avg_error
        weight = t**-kappa
        log_eps_avg = weight * log_eps + (1.0 - weight) * state.log_step_size_avg
        return DualAveragingState(log_eps, log_eps_avg, t, avg_error, state.mu)

    def final(state):
        if isinstance(state.log_step_size_avg, np.ndarray):
            return np.exp(state.log_step_size_avg)
        return math.exp(state.log_step_size_avg)

    return init, update, final


# ---------------------------------------------------------- Welford (co)var
class WelfordState(NamedTuple):
    """State of :func:`welford_covariance`.

    Attributes
    ----------
    count : int
        Number of draws seen (all chains pooled).
    mean : array, shape [D]
        Running mean.
    m2 : array, shape [D] or [D, D]
        Running sum of squared deviations (or of their outer products).
    """

    count: int
    mean: object
    m2: object


def welford_covariance(diagonal=True):
    """Streaming mean and (co)variance over batches of draws, for the mass matrix.

    Parameters
    ----------
    diagonal : bool
        Estimate only the variances (``[D]``) or the full covariance (``[D, D]``).

    Returns
    -------
    init : callable
        ``init(template) -> WelfordState``; ``template`` is the dimension ``D``
        (float64 NumPy state) or an array whose last axis is ``D`` (its dtype
        and array module are used).
    update : callable
        ``update(state, draws) -> WelfordState`` with ``draws`` of shape
        ``[C, D]`` (or ``[D]``); all chains are pooled, since they share one
        mass matrix. Batches are merged with Chan et al.'s pairwise update,
        so one batch costs a couple of vectorized ops, not ``C`` steps.
    final : callable
        ``final(state, regularize=True)``: the sample (co)variance
        (denominator ``n - 1``); with ``regularize``, Stan's shrinkage
        ``(n / (n + 5)) * var + 1e-3 * (5 / (n + 5))`` (times the identity for
        the dense case), which is used as the inverse mass matrix.

    Raises
    ------
    ValueError
        From ``update`` if the draws' last axis is not ``D``; from ``final``
        if fewer than 2 draws were seen.
    """

    def init(template):
        if isinstance(template, (int, np.integer)):
            xp, dim, dtype = np, int(template), np.float64
        else:
            xp, dim, dtype = _array_module(template), template.shape[-1], template.dtype
        m2_shape = (dim,) if diagonal else (dim, dim)
        return WelfordState(0, xp.zeros(dim, dtype=dtype), xp.zeros(m2_shape, dtype=dtype))

    def update(state, draws):
        x = draws if draws.ndim == 2 else draws.reshape(1, -1)
        dim = state.mean.shape[0]
        if draws.ndim not in (1, 2) or x.shape[1] != dim:
            raise ValueError(f"draws: expected shape [C, {dim}] or [{dim}], got {draws.shape}")
        n_b = x.shape[0]
        mean_b = x.mean(axis=0)
        dev = x - mean_b
        n = state.count + n_b
        delta = mean_b - state.mean
        mean = state.mean + delta * (n_b / n)
        scale = state.count * n_b / n
        if diagonal:
            m2 = state.m2 + (dev * dev).sum(axis=0) + delta * delta * scale
        else:
            m2 = state.m2 + dev.T @ dev + (delta[:, None] * delta[None, :]) * scale
        return WelfordState(n, mean, m2)

    def final(state, regularize=True):
        n = state.count
        if n < 2:
            raise ValueError(f"state: expected at least 2 draws to estimate a variance, got {n}")
        var = state.m2 / (n - 1)
        if not regularize:
            return var
        # Stan: shrink towards 1e-3 * I; matters for short windows.
        shrunk = (n / (n + 5.0)) * var
        if diagonal:
            return shrunk + 1e-3 * (5.0 / (n + 5.0))
        xp = _array_module(var)
        return shrunk + 1e-3 * (5.0 / (n + 5.0)) * xp.eye(var.shape[0], dtype=var.dtype)

    return init, update, final


def _array_module(x):
    if type(x).__module__.startswith("cupy"):
        import cupy

        return cupy
    return np


# ----------------------------------------------------- initial step size
def find_reasonable_step_size(
    one_step_accept_prob: Callable,
    initial_step_size=1.0,
    target=0.5,
    max_doublings=100,
):
    """Hoffman & Gelman's (2014, Alg. 4) initial step-size heuristic.

    Doubles the step size while one leapfrog step is accepted with probability
    above ``target``, or halves it while below, and returns the first step
    size at which the acceptance has crossed ``target``. (Stan's
    ``init_stepsize`` is the same with target 0.8 on ``exp(-delta H)``.)

    Parameters
    ----------
    one_step_accept_prob : callable
        ``f(step_size) -> scalar or [C] array``: the Metropolis acceptance
        probability ``min(1, exp(-delta H))`` of one leapfrog step from the
        current state with fresh momenta (NaN counts as 0). Taking a callable
        keeps this independent of the HMC code.
    initial_step_size : float or array, shape [C]
        Starting point (positive). A float searches one step size for all chains
        (their acceptance pooled by the mean); a ``[C]`` array searches one per
        chain (``f`` then gets a ``[C]`` host array of step sizes), so that a
        chain in a bad region cannot drag the others' step size down.
    target : float
        Acceptance level to cross (0.5 in the paper).
    max_doublings : int
        Give up after this many doublings or halvings.

    Returns
    -------
    float or array, shape [C]
        The step size at which acceptance first fell to ``<= target`` (when
        it started above) or rose to ``>= target`` (when it started below).
        Per chain: NaN for the chains whose acceptance never crossed.

    Raises
    ------
    ValueError
        If ``initial_step_size`` is not positive and finite.
    RuntimeError
        If the acceptance does not cross ``target`` within ``max_doublings``
        steps (an improper or degenerate target density); per chain, if it
        crosses for no chain.
    """
    if np.ndim(initial_step_size):
        return _per_chain_search(one_step_accept_prob, initial_step_size, target,
                                 max_doublings)
    eps = float(initial_step_size)
    if not (eps > 0 and math.isfinite(eps)):
        raise ValueError(f"initial_step_size: expected a positive finite float, got {initial_step_size!r}")
    above = _pooled_accept(one_step_accept_prob(eps)) > target
    factor = 2.0 if above else 0.5
    for _ in range(max_doublings):
        eps *= factor
        accept = _pooled_accept(one_step_accept_prob(eps))
        if (accept <= target) if above else (accept >= target):
            return eps
    raise RuntimeError(
        f"find_reasonable_step_size: acceptance did not cross {target} after {max_doublings} "
        f"{'doublings' if above else 'halvings'} (step size now {eps:g}); is the density proper?"
    )


def _per_chain_step_sizes(initial_step_size):
    """A ``[C]`` host float64 copy of per-chain step sizes, checked positive and finite."""
    eps = np.array(_to_host(initial_step_size), dtype=np.float64)
    if eps.ndim != 1 or not np.all(np.isfinite(eps) & (eps > 0)):
        raise ValueError(f"initial_step_size: expected positive finite values, one per chain, "
                         f"got {initial_step_size!r}")
    return eps


def _per_chain_search(one_step_accept_prob, initial_step_size, target, max_doublings):
    eps = _per_chain_step_sizes(initial_step_size)
    above = _accept(one_step_accept_prob(eps.copy())) > target
    factor = np.where(above, 2.0, 0.5)
    searching = np.ones(eps.shape, dtype=bool)
    for _ in range(max_doublings):
        eps = np.where(searching, eps * factor, eps)
        accept = _accept(one_step_accept_prob(eps.copy()))
        searching &= ~np.where(above, accept <= target, accept >= target)
        if not searching.any():
            break
    if searching.all():
        raise RuntimeError(
            f"find_reasonable_step_size: acceptance did not cross {target} for any chain after "
            f"{max_doublings} doublings or halvings (step sizes now {eps.min():g} to "
            f"{eps.max():g}); is the density proper?")
    eps[searching] = np.nan
    return eps


# -------------------------------------------------------- window schedule
def window_schedule(n_warmup, initial_buffer=75, first_window=25, final_buffer=50):
    """Stan's windowed adaptation schedule.

    Warmup is a fast stage (step size only) of ``initial_buffer`` iterations,
    slow windows (step size and mass matrix) of sizes ``first_window``,
    ``2 * first_window``, ... ending ``final_buffer`` iterations before the
    end, and a final fast stage. The mass matrix is re-estimated, and dual
    averaging restarted, at the end of each slow window. A window that could
    not be followed by one twice its size is extended to the end of the slow
    stage (except the first window, as in Stan).

    As in Stan (``windowed_adaptation.hpp``): if ``initial_buffer +
    first_window + final_buffer > n_warmup``, the buffers become 15% and 10%
    of ``n_warmup`` (truncated to integers) and the slow stage one window of
    the remaining ~75%; if ``n_warmup < 20`` there is no slow stage at all.

    Parameters
    ----------
    n_warmup : int
        Number of warmup iterations.
    initial_buffer, first_window, final_buffer : int
        Stan's ``init_buffer``, ``window`` and ``term_buffer``.

    Returns
    -------
    list of (int, bool)
        One ``(stage, is_window_end)`` per warmup iteration; stage 0 is fast,
        1 is slow, and ``is_window_end`` marks the last iteration of a slow
        window.

    Raises
    ------
    ValueError
        If an argument is negative or ``first_window`` is 0.
    """
    for name, value in (("n_warmup", n_warmup), ("initial_buffer", initial_buffer), ("final_buffer", final_buffer)):
        if int(value) != value or value < 0:
            raise ValueError(f"{name}: expected a non-negative integer, got {value!r}")
    if int(first_window) != first_window or first_window < 1:
        raise ValueError(f"first_window: expected a positive integer, got {first_window!r}")
    n_warmup = int(n_warmup)
    if n_warmup < 20:
        return [(0, False)] * n_warmup
    if initial_buffer + first_window + final_buffer > n_warmup:
        initial_buffer = int(0.15 * n_warmup)
        final_buffer = int(0.1 * n_warmup)
        first_window = n_warmup - (initial_buffer + final_buffer)
    slow_end = n_warmup - final_buffer  # first iteration of the final fast stage

    schedule = [(0, False)] * initial_buffer
    start, size = initial_buffer, first_window
    while start < slow_end:
        end = start + size
        # Extend a window to the end of the slow stage unless the next, twice
        # as large, window still fits. Stan's compute_next_window applies this
        # only to the windows after the first, and so do we.
        if start > initial_buffer and end + 2 * size > slow_end:
            end = slow_end
        schedule += [(1, False)] * (end - start - 1) + [(1, True)]
        start, size = end, 2 * size
    schedule += [(0, False)] * final_buffer
    return schedule
