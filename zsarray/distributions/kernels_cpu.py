"""Numba CPU kernels of the fused (log-)normal reparameterization (``numba.njit``).

Layout: the parameters are flattened to ``[M]`` (the batch, broadcast), the noise and the
outputs to ``[n, M]`` (``n`` samples). Three kernels:

* :func:`forward`: ``z = mu + sigma * eps`` (``exp`` of it for the log-normal) and
  ``logp = -eps^2/2 - log sigma - log(2 pi)/2`` (minus ``log z`` for the log-normal) in one
  pass, writing two arrays and no temporaries;
* :func:`vjp_z`: the cotangent of ``z`` pulled back to ``(mu, log sigma)``, *summed over
  the n samples inside the kernel* (the tape would otherwise materialize ``[n, M]``
  products and unbroadcast them with separate reductions);
* :func:`vjp_logp`: the same for ``logp``, with two coefficients selecting which
  derivative is wanted (see :mod:`.fused`).

Parallelism: ``prange`` over the n rows in the forward pass and over blocks of
:data:`BLOCK` columns in the reductions, each running a contiguous inner loop that LLVM vectorizes. The
reductions accumulate in float64 whatever the input dtype. Each kernel is compiled
twice, serial and ``parallel=True`` (two functions, because Numba's on-disk cache keys
entries by function, not by the ``parallel`` flag); the public names dispatch on size,
as :mod:`samplers.kernels.cpu` does: on a busy shared machine a parallel region waits
for a descheduled worker thread (measured here: 35 us in a tight loop, 16 ms per call
inside a tape step next to NumPy work), so threads are used only from
:data:`PARALLEL_MIN_ELEMENTS` elements on.

The cotangents ``gz``, ``gl`` are ``[n, M]`` or ``[1, M]`` (the same row for every
sample, as the zero-stride VJP of a ``sum`` over the samples is), so that a broadcast
cotangent is never materialized.
"""
import math
import types

import autodiff._jitcache  # noqa: F401,I001  (Numba's cache keyed by the whole package)
import numba
import numpy as np
from numba import prange

__all__ = ["forward", "vjp_z", "vjp_logp", "BLOCK", "PARALLEL_MIN_ELEMENTS"]

#: Columns per parallel task.
BLOCK = 2048
#: Arrays (n * M) at least this large use the parallel kernels.
PARALLEL_MIN_ELEMENTS = 1 << 22
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def _twins(eps_arg):
    """Decorator: compile ``f`` serially and in parallel; the returned function calls
    the parallel one when its argument number ``eps_arg`` (the [n, M] noise) is big."""
    return lambda f: _compile_twins(f, eps_arg)


def _compile_twins(f, eps_arg):
    serial = numba.njit(cache=True, fastmath=False, nogil=True)(f)
    twin = types.FunctionType(f.__code__, f.__globals__, f.__name__ + "_parallel",
                              f.__defaults__, f.__closure__)
    twin.__qualname__ = f.__qualname__ + "_parallel"
    parallel = numba.njit(cache=True, fastmath=False, nogil=True, parallel=True)(twin)

    def dispatch(*args):
        return (parallel if args[eps_arg].size >= PARALLEL_MIN_ELEMENTS else serial)(*args)
    dispatch.__name__, dispatch.__doc__ = f.__name__, f.__doc__
    dispatch.serial, dispatch.parallel = serial, parallel
    return dispatch


@_twins(3)
def forward(mu, sigma, c, eps, z, logp, lognormal):
    """z, logp [n, M] (written in place) from mu, sigma = exp(logstd),
    c = -logstd - log(2 pi)/2 [M] and eps [n, M]."""
    n, m = eps.shape
    for i in prange(n):
        er, zr, lr = eps[i], z[i], logp[i]
        # the branch is outside the inner loops so that both vectorize
        if lognormal:
            for j in range(m):
                e = er[j]
                x = mu[j] + sigma[j] * e
                lr[j] = c[j] - 0.5 * e * e - x
                zr[j] = math.exp(x)
        else:
            for j in range(m):
                e = er[j]
                zr[j] = mu[j] + sigma[j] * e
                lr[j] = c[j] - 0.5 * e * e


@_twins(3)
def vjp_z(gz, z, sigma, eps, gmu, glogstd, lognormal):
    """gmu, glogstd [M] (float64, zeroed) += sum_i of the pullback of gz [n, M]."""
    n, m = eps.shape
    nb = (m + BLOCK - 1) // BLOCK
    for b in prange(nb):
        lo = b * BLOCK
        hi = min(lo + BLOCK, m)
        for i in range(n):
            gr, er = gz[i if gz.shape[0] > 1 else 0], eps[i]
            if lognormal:
                zr = z[i]
                for j in range(lo, hi):
                    g = np.float64(gr[j]) * zr[j]     # dz/dx = z for z = exp(x)
                    gmu[j] += g
                    glogstd[j] += g * er[j]
            else:
                for j in range(lo, hi):
                    g = np.float64(gr[j])
                    gmu[j] += g
                    glogstd[j] += g * er[j]
        for j in range(lo, hi):
            glogstd[j] *= sigma[j]


@_twins(2)
def vjp_logp(gl, sigma, eps, gmu, glogstd, c_path, c_score, lognormal):
    """gmu, glogstd [M] (float64, zeroed) += sum_i of the pullback of gl [n, M].

    The derivative is ``c_path * (d logq/dz)(dz/dtheta) + c_score * (d logq/dtheta)|_z``
    with theta = (mu, log sigma) and z = mu + sigma * eps:
    path = (-eps/sigma, -eps^2) (log-normal: (-eps/sigma - 1, -eps^2 - sigma eps)),
    score = (eps/sigma, eps^2 - 1).
    """
    n, m = eps.shape
    d = c_score - c_path
    nb = (m + BLOCK - 1) // BLOCK
    for b in prange(nb):
        lo = b * BLOCK
        hi = min(lo + BLOCK, m)
        # accumulate sum g*e, sum (d g e^2 - c_score g) per column; scale by d/sigma last
        for i in range(n):
            gr, er = gl[i if gl.shape[0] > 1 else 0], eps[i]
            if lognormal:
                for j in range(lo, hi):
                    g = np.float64(gr[j])
                    e = np.float64(er[j])
                    ge = g * e
                    gmu[j] += ge * d - c_path * g * sigma[j]
                    glogstd[j] += (ge * e * d - c_score * g) - c_path * sigma[j] * ge
            else:
                for j in range(lo, hi):
                    g = np.float64(gr[j])
                    e = np.float64(er[j])
                    ge = g * e
                    gmu[j] += ge * d
                    glogstd[j] += ge * e * d - c_score * g
        for j in range(lo, hi):
            gmu[j] /= sigma[j]
