"""Plain-array reference versions of the SG-MCMC update kernels.

The definitions :mod:`samplers.kernels.sgmcmc_cpu` (Numba ``njit``) and
:mod:`samplers.kernels.sgmcmc_cuda` (Numba ``cuda.jit``) are tested against.
Whole-array NumPy expressions (they also run on CuPy arrays); every update is
in place and inputs are not
validated (:mod:`samplers.sgmcmc` does that once, before dispatching).
Python-float parameters are cast to the arrays' dtype, so float32 batches are
updated in float32.

Shapes: positions ``q``, momenta / squared-gradient averages ``v``, gradients
``g`` (of the log density: an ascent direction) and standard-normal ``noise``
are ``[C, D]``. ``friction`` is ``[C, D]``, ``[C, 1]`` or ``[1, 1]`` (per
coordinate, per chain or shared) and a thermostat ``alpha`` is ``[C, D]``
(per coordinate) or ``[C, 1]`` (per chain). ``eta`` is the learning rate
(ZhuSuan's ``learning_rate``), a float shared by all chains.

The operation order below is the one the Numba kernels follow.
"""
import math

__all__ = ["sgld", "psgld", "drift", "momentum", "thermostat"]


def sgld(q, g, noise, eta):
    """SGLD (Welling & Teh 2011): ``q += eta/2 * g + sqrt(eta) * noise``, in place.

    Parameters
    ----------
    q, g, noise : array, shape [C, D]
    eta : float
        Learning rate.
    """
    t = q.dtype.type
    q += t(0.5 * eta) * g + t(math.sqrt(eta)) * noise


def psgld(q, v, g, noise, eta, decay, epsilon):
    """pSGLD (Li et al. 2016) with the RMSprop preconditioner, in place.

    ``v = decay * v + (1 - decay) * g**2``, ``G = 1 / (epsilon + sqrt(v))``,
    ``q += eta/2 * G * g + sqrt(eta * G) * noise`` (no Gamma term).

    Parameters
    ----------
    q, v, g, noise : array, shape [C, D]
        ``q`` and the running average ``v`` are updated.
    eta, decay, epsilon : float
    """
    xp, t = _xp(q), q.dtype.type
    v *= t(decay)
    v += (t(1) - t(decay)) * (g * g)
    pre = t(1) / (t(epsilon) + xp.sqrt(v))
    q += t(0.5 * eta) * pre * g + xp.sqrt(t(eta) * pre) * noise


def drift(q, v, coef):
    """``q += coef * v``, in place (the half drift of the second-order splitting)."""
    q += q.dtype.type(coef) * v


def momentum(q, v, friction, g, noise, eta, sigma, second_order):
    """Momentum and position update of SGHMC / SGNHT, in place.

    First order (Chen et al. 2014, eq. 15)::

        v = (1 - friction) * v + eta * g + sigma * noise;  q += v

    Second order (ZhuSuan's symmetric splitting; the half drift ``q += v/2``
    happened before ``g`` was evaluated)::

        h = exp(-friction / 2);  v = h * (h * v + eta * g + sigma * noise);  q += v / 2

    Parameters
    ----------
    q, v, g, noise : array, shape [C, D]
    friction : array, shape [C, D], [C, 1] or [1, 1]
    eta, sigma : float
        Learning rate and noise scale.
    second_order : bool
    """
    t = q.dtype.type
    force = t(eta) * g + t(sigma) * noise
    if second_order:
        h = _xp(q).exp(-t(0.5) * friction)
        v[...] = h * (h * v + force)
        q += t(0.5) * v
    else:
        v[...] = (t(1) - friction) * v + force
        q += v


def thermostat(alpha, v, eta, coef):
    """SGNHT thermostat ``alpha += coef * (k - eta)``, in place.

    ``k`` is ``v**2`` per coordinate (``alpha`` ``[C, D]``) or its mean over
    the coordinates of each chain (``alpha`` ``[C, 1]``).

    Parameters
    ----------
    alpha : array, shape [C, D] or [C, 1]
    v : array, shape [C, D]
    eta, coef : float
    """
    t = v.dtype.type
    k = v * v
    if alpha.shape[1] == 1:  # one thermostat per chain: mean kinetic term over D
        k = k.sum(axis=1, keepdims=True) / t(v.shape[1])
    alpha += t(coef) * (k - t(eta))


def _xp(x):
    if type(x).__module__.startswith("cupy"):
        import cupy
        return cupy
    import numpy
    return numpy
