"""Numba CUDA leapfrog kernels (``numba.cuda.jit``), batched over chains.

The public functions take CuPy arrays (read through
``__cuda_array_interface__``, no copies) already validated by
:mod:`samplers.kernels`; under Numba's CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1``) they also accept NumPy arrays, which is how the
tests run them on machines without a GPU.

Importing this module does not import ``numba.cuda``: the kernels are built on
first use by :func:`_kernels`, so ``import samplers.kernels`` works without a
CUDA toolkit.

Thread layout (why it differs per kernel):

* element-wise updates (kick, diagonal kick-drift) use one thread per
  ``(chain, coordinate)`` element: a 1-D grid over ``C * D`` with coalesced
  row-major accesses;
* the dense drift needs the whole kicked momentum row, so a dense kick-drift
  is two launches: the element-wise kick, then one thread per element that
  loops over ``D`` for its entry of ``M^{-1} p`` (``D`` times more work than
  the diagonal case but still ``C * D`` threads of parallelism);
* the kinetic energy is a per-chain reduction: one thread per chain looping
  over ``D`` (``D`` is small compared with ``C`` in the many-chain regime this
  library targets).

Scalars are cast to the arrays' dtype on the host so float32 arrays are
updated in float32. Without ``fastmath``, NVVM may still contract ``a*b + c``
into a fused multiply-add, so GPU results can differ from
:mod:`samplers.kernels.reference` in the last bit.

Kernels are launched on CuPy's current stream, so they are ordered with the
CuPy work around them.
"""

import functools
from types import SimpleNamespace

import numpy as np
from autodiff import backend

__all__ = ["kick_drift", "kick", "kinetic_energy", "THREADS_PER_BLOCK"]

cuda = None  # numba.cuda, imported by _kernels() on first use

#: Threads per block for all launches (a multiple of the 32-thread warp).
THREADS_PER_BLOCK = 256


@functools.cache
def _kernels():
    """Compile (lazily, once) and return the CUDA kernels."""
    # A module global, not a local: the CUDA simulator swaps the ``cuda``
    # module in a kernel's *globals* for its per-thread fake (which provides
    # ``cuda.grid``); a closure variable would escape that swap.
    global cuda
    from numba import cuda

    @cuda.jit
    def kick_k(p, g, eps, coef):
        i = cuda.grid(1)
        n = p.shape[1]
        if i < p.shape[0] * n:
            c = i // n
            d = i - c * n
            p[c, d] += (coef * eps[c]) * g[c, d]

    @cuda.jit
    def kick_drift_diag_k(q, p, g, inv_mass, eps, kick, drift):
        i = cuda.grid(1)
        n = p.shape[1]
        if i < p.shape[0] * n:
            c = i // n
            d = i - c * n
            pc = p[c, d] + (kick * eps[c]) * g[c, d]
            p[c, d] = pc
            q[c, d] += (drift * eps[c]) * (inv_mass[d] * pc)

    @cuda.jit
    def drift_dense_k(q, p, inv_mass, eps, drift):
        i = cuda.grid(1)
        n = p.shape[1]
        if i < p.shape[0] * n:
            c = i // n
            d = i - c * n
            v = inv_mass[d, 0] * p[c, 0]
            for k in range(1, n):
                v += inv_mass[d, k] * p[c, k]
            q[c, d] += (drift * eps[c]) * v

    @cuda.jit
    def kinetic_diag_k(p, inv_mass, zero, half, out):
        c = cuda.grid(1)
        if c < p.shape[0]:
            acc = zero
            for d in range(p.shape[1]):
                acc += p[c, d] * (inv_mass[d] * p[c, d])
            out[c] = half * acc

    @cuda.jit
    def kinetic_dense_k(p, inv_mass, zero, half, out):
        c = cuda.grid(1)
        if c < p.shape[0]:
            n = p.shape[1]
            acc = zero
            for d in range(n):
                v = zero
                for k in range(n):
                    v += inv_mass[d, k] * p[c, k]
                acc += p[c, d] * v
            out[c] = half * acc

    return SimpleNamespace(
        cuda=cuda,
        kick=kick_k,
        kick_drift_diag=kick_drift_diag_k,
        drift_dense=drift_dense_k,
        kinetic_diag=kinetic_diag_k,
        kinetic_dense=kinetic_dense_k,
    )


def _is_cupy(x):
    return type(x).__module__.startswith("cupy")


def _launch(kernel, n_threads, like, *args):
    """Launch ``kernel`` over ``n_threads`` threads (see :func:`autodiff.backend.cuda_launch`)."""
    backend.cuda_launch(kernel, n_threads, like, *args, threads_per_block=THREADS_PER_BLOCK)

def kick(p, g, eps, coef):
    """In place ``p += coef * eps[:, None] * g`` (see :func:`samplers.kernels.kick`)."""
    k = _kernels()
    _launch(k.kick, p.size, p, p, g, eps, p.dtype.type(coef))


def kick_drift(q, p, g, inv_mass, eps, kick, drift):
    """In place kick then drift (see :func:`samplers.kernels.kick_drift`)."""
    k = _kernels()
    t = q.dtype.type
    if inv_mass.ndim == 1:
        _launch(k.kick_drift_diag, q.size, q, q, p, g, inv_mass, eps, t(kick), t(drift))
    else:
        _launch(k.kick, p.size, p, p, g, eps, t(kick))
        _launch(k.drift_dense, q.size, q, q, p, inv_mass, eps, t(drift))


def kinetic_energy(p, inv_mass, out=None):
    """Return ``0.5 p^T M^{-1} p`` per chain, shape ``[C]`` (see :func:`samplers.kernels.kinetic_energy`)."""
    if out is None:
        if _is_cupy(p):
            import cupy

            out = cupy.empty(p.shape[0], dtype=p.dtype)
        else:  # host arrays: the CUDA simulator
            out = np.empty(p.shape[0], dtype=p.dtype)
    k = _kernels()
    f = k.kinetic_diag if inv_mass.ndim == 1 else k.kinetic_dense
    t = p.dtype.type
    _launch(f, p.shape[0], p, p, inv_mass, t(0), t(0.5), out)
    return out
