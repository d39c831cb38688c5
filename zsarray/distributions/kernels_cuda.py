"""Numba CUDA kernels of the fused (log-)normal reparameterization (``numba.cuda.jit``).

Same layout and arithmetic as :mod:`.kernels_cpu` (read it first): parameters ``[M]``,
noise and outputs ``[n, M]``. The public functions take CuPy arrays (through
``__cuda_array_interface__``, no copies); under Numba's CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1`` set before Numba is imported) they also take NumPy arrays,
which is how the tests run them without a GPU.

Importing this module imports neither CuPy nor ``numba.cuda``: the kernels are built on
first use by :func:`_kernels`.

Thread layout: the forward pass is elementwise, one thread per ``(i, j)`` with
consecutive threads on consecutive ``j`` (coalesced); the VJPs reduce over the ``n``
samples, one thread per column ``j`` looping over ``i`` -- consecutive threads still
read consecutive addresses, and no atomics are needed. Kernels run on CuPy's current
stream, ordered with the CuPy work around them.
"""
import functools
import math

import numpy as np
from autodiff import backend

__all__ = ["forward", "vjp_z", "vjp_logp", "THREADS_PER_BLOCK"]

cuda = None  # numba.cuda, bound by _kernels() (a global: the simulator patches globals)

#: Threads per block (a multiple of the warp size).
THREADS_PER_BLOCK = 256


@functools.cache
def _kernels():
    global cuda
    from numba import cuda

    @cuda.jit
    def forward_k(mu, sigma, c, eps, z, logp, lognormal):
        t = cuda.grid(1)
        m = eps.shape[1]
        if t < eps.shape[0] * m:
            i = t // m
            j = t - i * m
            e = eps[i, j]
            x = mu[j] + sigma[j] * e
            lp = c[j] - 0.5 * e * e
            if lognormal:
                lp -= x
                x = math.exp(x)
            z[i, j] = x
            logp[i, j] = lp

    @cuda.jit
    def vjp_z_k(gz, z, sigma, eps, gmu, glogstd, lognormal):
        j = cuda.grid(1)
        if j < eps.shape[1]:
            am = 0.0
            al = 0.0
            for i in range(eps.shape[0]):
                g = gz[i if gz.shape[0] > 1 else 0, j] * 1.0
                if lognormal:
                    g *= z[i, j]
                am += g
                al += g * eps[i, j]
            gmu[j] = am
            glogstd[j] = al * sigma[j]

    @cuda.jit
    def vjp_logp_k(gl, sigma, eps, gmu, glogstd, c_path, c_score, lognormal):
        j = cuda.grid(1)
        if j < eps.shape[1]:
            s = sigma[j] * 1.0
            am = 0.0
            al = 0.0
            for i in range(eps.shape[0]):
                g = gl[i if gl.shape[0] > 1 else 0, j] * 1.0
                e = eps[i, j] * 1.0
                ge = g * e
                am += ge * (c_score - c_path) / s
                al += ge * e * (c_score - c_path) - c_score * g
                if lognormal:
                    am -= c_path * g
                    al -= c_path * s * ge
            gmu[j] = am
            glogstd[j] = al

    return cuda, forward_k, vjp_z_k, vjp_logp_k


def _launch(kernel, n_threads, like, *args):
    """Launch ``kernel`` over ``n_threads`` threads (see :func:`autodiff.backend.cuda_launch`)."""
    backend.cuda_launch(kernel, n_threads, like, *args, threads_per_block=THREADS_PER_BLOCK)

def forward(mu, sigma, c, eps, z, logp, lognormal):
    """As :func:`.kernels_cpu.forward`, on the device."""
    _launch(_kernels()[1], eps.size, eps, mu, sigma, c, eps, z, logp, bool(lognormal))


def vjp_z(gz, z, sigma, eps, gmu, glogstd, lognormal):
    """As :func:`.kernels_cpu.vjp_z` (``gmu``, ``glogstd`` float64 ``[M]``, overwritten)."""
    _launch(_kernels()[2], eps.shape[1], eps, gz, z, sigma, eps, gmu, glogstd, bool(lognormal))


def vjp_logp(gl, sigma, eps, gmu, glogstd, c_path, c_score, lognormal):
    """As :func:`.kernels_cpu.vjp_logp` (``gmu``, ``glogstd`` float64 ``[M]``, overwritten)."""
    _launch(_kernels()[3], eps.shape[1], eps, gl, sigma, eps, gmu, glogstd,
            np.float64(c_path), np.float64(c_score), bool(lognormal))
