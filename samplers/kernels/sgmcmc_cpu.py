"""Numba CPU kernels (``numba.njit``) of the SG-MCMC updates, batched over chains.

Each function takes raw NumPy arrays already validated by
:mod:`samplers.sgmcmc` (``q``, ``v``, ``g``, ``noise``: ``[C, D]`` of one
float dtype; ``friction``: ``[C, D]``, ``[C, 1]`` or ``[1, 1]``; a thermostat
``alpha``: ``[C, D]`` or ``[C, 1]``) and scalars already cast to that dtype,
and updates in place in one pass without temporaries. The arithmetic follows
:mod:`samplers.kernels.sgmcmc_reference` operation by operation
(``fastmath=False``), so the two agree to rounding.

Why one fused pass: an SG-MCMC step is a handful of element-wise operations
on ``[C, D]`` arrays; written with NumPy each one reads and writes the whole
batch (pSGLD: about ten temporaries), which is memory-bound once ``C * D``
leaves the cache. The kernels are serial: the work per element is a few
flops, so a thread pool pays only for very large batches and fights with
the BLAS threads of the gradient evaluation that precedes every update (see
:data:`samplers.kernels.cpu.PARALLEL_MIN_ELEMENTS`).

``error_model="numpy"``: a division by zero or the square root of a
negative number gives inf/nan as in NumPy instead of raising inside the
kernel (the caller checks the result's finiteness where it matters).
"""
import math

import autodiff._jitcache  # noqa: F401,I001  (Numba's cache keyed by the whole package)
import numba

__all__ = ["sgld", "psgld", "drift", "momentum", "thermostat"]

_jit = numba.njit(cache=True, error_model="numpy", fastmath=False, nogil=True)


@_jit
def _sgld(q, g, noise, half_eta, sqrt_eta):
    n_chains, dim = q.shape
    for c in range(n_chains):
        for d in range(dim):
            q[c, d] += half_eta * g[c, d] + sqrt_eta * noise[c, d]


@_jit
def _psgld(q, v, g, noise, half_eta, eta, decay, one_minus_decay, epsilon, one):
    n_chains, dim = q.shape
    for c in range(n_chains):
        for d in range(dim):
            gd = g[c, d]
            vd = v[c, d] * decay + one_minus_decay * (gd * gd)
            v[c, d] = vd
            pre = one / (epsilon + math.sqrt(vd))
            q[c, d] += half_eta * pre * gd + math.sqrt(eta * pre) * noise[c, d]


@_jit
def _drift(q, v, coef):
    n_chains, dim = q.shape
    for c in range(n_chains):
        for d in range(dim):
            q[c, d] += coef * v[c, d]


@_jit
def _momentum(q, v, friction, g, noise, eta, sigma, second_order, half, one):
    n_chains, dim = q.shape
    # friction is [C, D], [C, 1] or [1, 1]: multiply the index by 0 on a
    # broadcast axis instead of materializing a [C, D] copy.
    sc = 1 if friction.shape[0] > 1 else 0
    sd = 1 if friction.shape[1] > 1 else 0
    for c in range(n_chains):
        for d in range(dim):
            f = friction[c * sc, d * sd]
            force = eta * g[c, d] + sigma * noise[c, d]
            if second_order:
                h = math.exp(-half * f)
                vd = h * (h * v[c, d] + force)
                v[c, d] = vd
                q[c, d] += half * vd
            else:
                vd = (one - f) * v[c, d] + force
                v[c, d] = vd
                q[c, d] += vd


@_jit
def _thermostat(alpha, v, eta, coef, dim_f):
    n_chains, dim = v.shape
    if alpha.shape[1] == 1:  # one thermostat per chain
        for c in range(n_chains):
            s = v.dtype.type(0)
            for d in range(dim):
                s += v[c, d] * v[c, d]
            alpha[c, 0] += coef * (s / dim_f - eta)
    else:
        for c in range(n_chains):
            for d in range(dim):
                alpha[c, d] += coef * (v[c, d] * v[c, d] - eta)


def sgld(q, g, noise, eta):
    """In place ``q += eta/2 * g + sqrt(eta) * noise`` (see :mod:`.sgmcmc_reference`)."""
    t = q.dtype.type
    _sgld(q, g, noise, t(0.5 * eta), t(math.sqrt(eta)))


def psgld(q, v, g, noise, eta, decay, epsilon):
    """In place RMSprop-preconditioned Langevin step (see :mod:`.sgmcmc_reference`)."""
    t = q.dtype.type
    _psgld(q, v, g, noise, t(0.5 * eta), t(eta), t(decay), t(1) - t(decay), t(epsilon), t(1))


def drift(q, v, coef):
    """In place ``q += coef * v``."""
    _drift(q, v, q.dtype.type(coef))


def momentum(q, v, friction, g, noise, eta, sigma, second_order):
    """In place SGHMC / SGNHT momentum and position update (see :mod:`.sgmcmc_reference`)."""
    t = q.dtype.type
    _momentum(q, v, friction, g, noise, t(eta), t(sigma), bool(second_order), t(0.5), t(1))


def thermostat(alpha, v, eta, coef):
    """In place SGNHT thermostat update (see :mod:`.sgmcmc_reference`)."""
    t = v.dtype.type
    _thermostat(alpha, v, t(eta), t(coef), t(v.shape[1]))
