"""Numba CPU leapfrog kernels (``numba.njit``), batched over chains.

Each public function takes raw NumPy arrays already validated by
:mod:`samplers.kernels` (``q``, ``p``, ``g``: ``[C, D]``; ``inv_mass``: ``[D]``
or ``[D, D]``; ``eps``: ``[C]``; all of one float dtype) and works in place
without temporaries.

Design notes
------------
* One per-chain "row" function holds the arithmetic; two tiny drivers loop
  over chains with it, one serial and one ``parallel=True`` with ``prange``.
  The serial driver is used for small batches, where starting the thread pool
  costs more than the work (see :data:`PARALLEL_MIN_ELEMENTS`). They are
  separate functions, not one function compiled twice, because Numba's
  on-disk cache (``cache=True``) keys entries by function and signature, not
  by the ``parallel`` flag.
* ``fastmath=False`` and the same operation order as
  :mod:`samplers.kernels.reference` make the kernels agree with it to
  rounding; the integrator's reversibility relies on exact IEEE arithmetic.
* Scalars are cast to the arrays' dtype before the call, so float32 arrays
  are updated with float32 arithmetic (no silent float64 upcast).
* Dense ``M^{-1} p`` is computed row by row after the whole momentum row has
  been kicked, so no ``[C, D]`` velocity temporary is needed.
"""

import autodiff._jitcache  # noqa: F401,I001  (Numba's cache keyed by the whole package)
import numba
import numpy as np

__all__ = ["kick_drift", "kick", "kinetic_energy", "PARALLEL_MIN_ELEMENTS"]

#: Batches with at least this many elements (C * D), and at least two chains
#: per Numba thread, use the ``prange`` drivers. Measured on a shared 2-core
#: box (C=4096, D=31, float64): diagonal kick-drift 128 us serial vs 65 us
#: parallel in isolation, but 0.36 ms vs 7.6 ms when each call follows a
#: multithreaded OpenBLAS matmul (as a gradient evaluation does), because
#: the OpenMP threading layer's and OpenBLAS's spinning threads fight for the
#: cores. So threads are used only for batches large enough (about 1 ms of
#: serial work) to be worth that risk; lower it on machines with many cores
#: or with ``OPENBLAS_NUM_THREADS=1`` / ``NUMBA_THREADING_LAYER=workqueue``.
PARALLEL_MIN_ELEMENTS = 1 << 20

#: Chains per scratch buffer in the dense drivers (one allocation per chunk).
_CHUNK = 64

_jit = numba.njit(cache=True, fastmath=False, nogil=True)
_pjit = numba.njit(cache=True, fastmath=False, nogil=True, parallel=True)


# ---------------------------------------------------------------- row bodies
@_jit
def _kick_row(p, g, ke, c):
    for d in range(p.shape[1]):
        p[c, d] += ke * g[c, d]


@_jit
def _kick_drift_diag_row(q, p, g, inv_mass, ke, de, c):
    for d in range(q.shape[1]):
        p[c, d] += ke * g[c, d]
        q[c, d] += de * (inv_mass[d] * p[c, d])


@_jit
def _velocity_dense_row(p, inv_mass_t, c, buf):
    # buf = M^{-1} p[c] as a sum of scaled rows of M^{-T}: the inner loop has
    # no loop-carried dependency, so LLVM vectorizes it without fastmath's
    # reassociation (a dot-product loop would not vectorize), and the
    # summation order is fixed, hence reproducible across CPUs.
    n = p.shape[1]
    p0 = p[c, 0]
    for d in range(n):
        buf[d] = inv_mass_t[0, d] * p0
    for k in range(1, n):
        pk = p[c, k]
        for d in range(n):
            buf[d] += inv_mass_t[k, d] * pk


@_jit
def _kick_drift_dense_row(q, p, g, inv_mass_t, ke, de, c, buf):
    n = q.shape[1]
    for d in range(n):
        p[c, d] += ke * g[c, d]
    _velocity_dense_row(p, inv_mass_t, c, buf)
    for d in range(n):
        q[c, d] += de * buf[d]


@_jit
def _kinetic_diag_row(p, inv_mass, half, c):
    acc = p.dtype.type(0)  # accumulate in the arrays' dtype
    for d in range(p.shape[1]):
        acc += p[c, d] * (inv_mass[d] * p[c, d])
    return half * acc


@_jit
def _kinetic_dense_row(p, inv_mass_t, half, c, buf):
    _velocity_dense_row(p, inv_mass_t, c, buf)
    acc = p.dtype.type(0)
    for d in range(p.shape[1]):
        acc += p[c, d] * buf[d]
    return half * acc


# ------------------------------------------------------------------- drivers
@_jit
def _kick_serial(p, g, eps, coef):
    for c in range(p.shape[0]):
        _kick_row(p, g, coef * eps[c], c)


@_pjit
def _kick_parallel(p, g, eps, coef):
    for c in numba.prange(p.shape[0]):
        _kick_row(p, g, coef * eps[c], c)


@_jit
def _kick_drift_diag_serial(q, p, g, inv_mass, eps, kick, drift):
    for c in range(q.shape[0]):
        _kick_drift_diag_row(q, p, g, inv_mass, kick * eps[c], drift * eps[c], c)


@_pjit
def _kick_drift_diag_parallel(q, p, g, inv_mass, eps, kick, drift):
    for c in numba.prange(q.shape[0]):
        _kick_drift_diag_row(q, p, g, inv_mass, kick * eps[c], drift * eps[c], c)


@_jit
def _kick_drift_dense_serial(q, p, g, inv_mass_t, eps, kick, drift):
    n_chains, dim = q.shape
    n_chunks = (n_chains + _CHUNK - 1) // _CHUNK
    for b in range(n_chunks):
        buf = np.empty(dim, q.dtype)  # one scratch row per chunk of chains
        for c in range(b * _CHUNK, min(n_chains, (b + 1) * _CHUNK)):
            _kick_drift_dense_row(q, p, g, inv_mass_t, kick * eps[c], drift * eps[c], c, buf)


@_pjit
def _kick_drift_dense_parallel(q, p, g, inv_mass_t, eps, kick, drift):
    n_chains, dim = q.shape
    n_chunks = (n_chains + _CHUNK - 1) // _CHUNK
    for b in numba.prange(n_chunks):
        buf = np.empty(dim, q.dtype)  # one scratch row per chunk of chains
        for c in range(b * _CHUNK, min(n_chains, (b + 1) * _CHUNK)):
            _kick_drift_dense_row(q, p, g, inv_mass_t, kick * eps[c], drift * eps[c], c, buf)


@_jit
def _kinetic_diag_serial(p, inv_mass, half, out):
    for c in range(p.shape[0]):
        out[c] = _kinetic_diag_row(p, inv_mass, half, c)


@_pjit
def _kinetic_diag_parallel(p, inv_mass, half, out):
    for c in numba.prange(p.shape[0]):
        out[c] = _kinetic_diag_row(p, inv_mass, half, c)


@_jit
def _kinetic_dense_serial(p, inv_mass_t, half, out):
    n_chains, dim = p.shape
    n_chunks = (n_chains + _CHUNK - 1) // _CHUNK
    for b in range(n_chunks):
        buf = np.empty(dim, p.dtype)  # one scratch row per chunk of chains
        for c in range(b * _CHUNK, min(n_chains, (b + 1) * _CHUNK)):
            out[c] = _kinetic_dense_row(p, inv_mass_t, half, c, buf)


@_pjit
def _kinetic_dense_parallel(p, inv_mass_t, half, out):
    n_chains, dim = p.shape
    n_chunks = (n_chains + _CHUNK - 1) // _CHUNK
    for b in numba.prange(n_chunks):
        buf = np.empty(dim, p.dtype)  # one scratch row per chunk of chains
        for c in range(b * _CHUNK, min(n_chains, (b + 1) * _CHUNK)):
            out[c] = _kinetic_dense_row(p, inv_mass_t, half, c, buf)


# ------------------------------------------------------------------- public
def _use_parallel(x):
    c, d = x.shape
    return c * d >= PARALLEL_MIN_ELEMENTS and c >= 2 * numba.get_num_threads()


def kick(p, g, eps, coef):
    """In place ``p += coef * eps[:, None] * g`` (see :func:`samplers.kernels.kick`)."""
    f = _kick_parallel if _use_parallel(p) else _kick_serial
    f(p, g, eps, p.dtype.type(coef))


def kick_drift(q, p, g, inv_mass, eps, kick, drift):
    """In place kick then drift (see :func:`samplers.kernels.kick_drift`)."""
    par = _use_parallel(q)
    if inv_mass.ndim == 1:
        f = _kick_drift_diag_parallel if par else _kick_drift_diag_serial
    else:
        f = _kick_drift_dense_parallel if par else _kick_drift_dense_serial
        inv_mass = np.ascontiguousarray(inv_mass.T)  # [D, D], cheap; see _velocity_dense_row
    t = q.dtype.type
    f(q, p, g, inv_mass, eps, t(kick), t(drift))


def kinetic_energy(p, inv_mass, out=None):
    """Return ``0.5 p^T M^{-1} p`` per chain, shape ``[C]`` (see :func:`samplers.kernels.kinetic_energy`)."""
    if out is None:
        out = np.empty(p.shape[0], dtype=p.dtype)
    par = _use_parallel(p)
    if inv_mass.ndim == 1:
        f = _kinetic_diag_parallel if par else _kinetic_diag_serial
    else:
        f = _kinetic_dense_parallel if par else _kinetic_dense_serial
        inv_mass = np.ascontiguousarray(inv_mass.T)
    f(p, inv_mass, p.dtype.type(0.5), out)
    return out
