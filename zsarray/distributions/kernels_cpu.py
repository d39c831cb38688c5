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

Parallelism: ``prange`` over blocks of :data:`BLOCK` columns (times the n rows in the
forward pass), each block running a contiguous inner loop that LLVM vectorizes. The
reductions accumulate in float64 whatever the input dtype.
"""
import math

import numba
import numpy as np
from numba import prange

__all__ = ["forward", "vjp_z", "vjp_logp", "BLOCK"]

#: Columns per parallel task.
BLOCK = 2048
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)

_pjit = numba.njit(parallel=True, cache=True, fastmath=False, nogil=True)


@_pjit
def forward(mu, sigma, logstd, eps, z, logp, lognormal):
    """z, logp [n, M] from mu, sigma = exp(logstd), logstd [M] and eps [n, M], in place."""
    n, m = eps.shape
    nb = (m + BLOCK - 1) // BLOCK
    for task in prange(n * nb):
        i = task // nb
        lo = (task - i * nb) * BLOCK
        hi = min(lo + BLOCK, m)
        for j in range(lo, hi):
            e = eps[i, j]
            x = mu[j] + sigma[j] * e
            lp = -0.5 * e * e - logstd[j] - _HALF_LOG_2PI
            if lognormal:
                lp -= x
                x = math.exp(x)
            z[i, j] = x
            logp[i, j] = lp


@_pjit
def vjp_z(gz, z, sigma, eps, gmu, glogstd, lognormal):
    """gmu, glogstd [M] (float64, zeroed) += sum_i of the pullback of gz [n, M]."""
    n, m = eps.shape
    nb = (m + BLOCK - 1) // BLOCK
    for b in prange(nb):
        lo = b * BLOCK
        hi = min(lo + BLOCK, m)
        for i in range(n):
            for j in range(lo, hi):
                g = np.float64(gz[i, j])
                if lognormal:
                    g *= z[i, j]          # dz/dx = z for z = exp(x)
                gmu[j] += g
                glogstd[j] += g * eps[i, j]
        for j in range(lo, hi):
            glogstd[j] *= sigma[j]


@_pjit
def vjp_logp(gl, sigma, eps, gmu, glogstd, c_path, c_score, lognormal):
    """gmu, glogstd [M] (float64, zeroed) += sum_i of the pullback of gl [n, M].

    The derivative is ``c_path * (d logq/dz)(dz/dtheta) + c_score * (d logq/dtheta)|_z``
    with theta = (mu, log sigma) and z = mu + sigma * eps:
    path = (-eps/sigma, -eps^2) (log-normal: (-eps/sigma - 1, -eps^2 - sigma eps)),
    score = (eps/sigma, eps^2 - 1).
    """
    n, m = eps.shape
    nb = (m + BLOCK - 1) // BLOCK
    for b in prange(nb):
        lo = b * BLOCK
        hi = min(lo + BLOCK, m)
        # sums of g*e, g*e^2 and g over the samples; combined per column at the end
        for i in range(n):
            for j in range(lo, hi):
                g = np.float64(gl[i, j])
                e = np.float64(eps[i, j])
                ge = g * e
                gmu[j] += ge * (c_score - c_path) / sigma[j]
                glogstd[j] += ge * e * (c_score - c_path) - c_score * g
                if lognormal:
                    gmu[j] -= c_path * g
                    glogstd[j] -= c_path * sigma[j] * ge
