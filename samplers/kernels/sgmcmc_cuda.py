"""Numba CUDA kernels (``numba.cuda.jit``) of the SG-MCMC updates.

The public functions take CuPy arrays (through ``__cuda_array_interface__``,
no copies) already validated by :mod:`samplers.sgmcmc`, with the signatures
of :mod:`samplers.kernels.sgmcmc_cpu`; under Numba's CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1``) they also accept NumPy arrays, which is how the
tests check them against :mod:`samplers.kernels.sgmcmc_reference` without a
GPU. ``numba.cuda`` is imported on first use (:func:`_kernels`), so importing
this module never needs CUDA.

Thread layout: every update is element-wise, one thread per ``(chain,
coordinate)`` over a 1-D grid of ``C * D`` threads (coalesced row-major
accesses), except the per-chain thermostat of SGNHT (``alpha`` ``[C, 1]``),
a reduction over ``D``: one thread per chain. Launches go on CuPy's current
stream. Scalars are cast to the arrays' dtype on the host; NVVM may contract
``a*b + c`` into a fused multiply-add, so results can differ from the
reference in the last bit.
"""
import functools
import math
from types import SimpleNamespace
from autodiff import backend

__all__ = ["sgld", "psgld", "drift", "momentum", "thermostat", "THREADS_PER_BLOCK"]

cuda = None  # numba.cuda, imported by _kernels() on first use

#: Threads per block for all launches (a multiple of the 32-thread warp).
THREADS_PER_BLOCK = 256


@functools.cache
def _kernels():
    """Compile (lazily, once) and return the CUDA kernels."""
    # A module global, not a closure variable: the simulator swaps ``cuda`` in
    # a kernel's globals for its per-thread fake (see samplers.kernels.cuda).
    global cuda
    from numba import cuda

    @cuda.jit
    def sgld_k(q, g, noise, half_eta, sqrt_eta):
        i = cuda.grid(1)
        n = q.shape[1]
        if i < q.shape[0] * n:
            c = i // n
            d = i - c * n
            q[c, d] += half_eta * g[c, d] + sqrt_eta * noise[c, d]

    @cuda.jit
    def psgld_k(q, v, g, noise, half_eta, eta, decay, one_minus_decay, epsilon, one):
        i = cuda.grid(1)
        n = q.shape[1]
        if i < q.shape[0] * n:
            c = i // n
            d = i - c * n
            gd = g[c, d]
            vd = v[c, d] * decay + one_minus_decay * (gd * gd)
            v[c, d] = vd
            pre = one / (epsilon + math.sqrt(vd))
            q[c, d] += half_eta * pre * gd + math.sqrt(eta * pre) * noise[c, d]

    @cuda.jit
    def drift_k(q, v, coef):
        i = cuda.grid(1)
        n = q.shape[1]
        if i < q.shape[0] * n:
            c = i // n
            d = i - c * n
            q[c, d] += coef * v[c, d]

    @cuda.jit
    def momentum_k(q, v, friction, g, noise, eta, sigma, second_order, half, one):
        i = cuda.grid(1)
        n = q.shape[1]
        if i < q.shape[0] * n:
            c = i // n
            d = i - c * n
            fc = c if friction.shape[0] > 1 else 0
            fd = d if friction.shape[1] > 1 else 0
            f = friction[fc, fd]
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

    @cuda.jit
    def thermostat_vector_k(alpha, v, eta, coef):
        i = cuda.grid(1)
        n = v.shape[1]
        if i < v.shape[0] * n:
            c = i // n
            d = i - c * n
            alpha[c, d] += coef * (v[c, d] * v[c, d] - eta)

    @cuda.jit
    def thermostat_chain_k(alpha, v, eta, coef, zero, dim_f):
        c = cuda.grid(1)
        if c < v.shape[0]:
            s = zero
            for d in range(v.shape[1]):
                s += v[c, d] * v[c, d]
            alpha[c, 0] += coef * (s / dim_f - eta)

    return SimpleNamespace(cuda=cuda, sgld=sgld_k, psgld=psgld_k, drift=drift_k,
                           momentum=momentum_k, thermostat_vector=thermostat_vector_k,
                           thermostat_chain=thermostat_chain_k)


def _launch(kernel, n_threads, like, *args):
    """Launch ``kernel`` over ``n_threads`` threads (see :func:`autodiff.backend.cuda_launch`)."""
    backend.cuda_launch(kernel, n_threads, like, *args, threads_per_block=THREADS_PER_BLOCK)

def sgld(q, g, noise, eta):
    """In place ``q += eta/2 * g + sqrt(eta) * noise``."""
    t = q.dtype.type
    _launch(_kernels().sgld, q.size, q, q, g, noise, t(0.5 * eta), t(math.sqrt(eta)))


def psgld(q, v, g, noise, eta, decay, epsilon):
    """In place RMSprop-preconditioned Langevin step."""
    t = q.dtype.type
    _launch(_kernels().psgld, q.size, q, q, v, g, noise, t(0.5 * eta), t(eta), t(decay),
            t(1) - t(decay), t(epsilon), t(1))


def drift(q, v, coef):
    """In place ``q += coef * v``."""
    _launch(_kernels().drift, q.size, q, q, v, q.dtype.type(coef))


def momentum(q, v, friction, g, noise, eta, sigma, second_order):
    """In place SGHMC / SGNHT momentum and position update."""
    t = q.dtype.type
    _launch(_kernels().momentum, q.size, q, q, v, friction, g, noise, t(eta), t(sigma),
            bool(second_order), t(0.5), t(1))


def thermostat(alpha, v, eta, coef):
    """In place SGNHT thermostat update (per coordinate or per chain)."""
    k, t = _kernels(), v.dtype.type
    if alpha.shape[1] == 1 and v.shape[1] != 1:
        _launch(k.thermostat_chain, v.shape[0], v, alpha, v, t(eta), t(coef), t(0),
                t(v.shape[1]))
    else:
        _launch(k.thermostat_vector, v.size, v, alpha, v, t(eta), t(coef))
