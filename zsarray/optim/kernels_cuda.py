"""Fused optimizer updates as Numba CUDA kernels (``numba.cuda.jit``), one thread per element.

Same signatures and formulas as :mod:`zsarray.optim.kernels_cpu` (PyTorch's
single-tensor updates), on 1-D CuPy arrays read through
``__cuda_array_interface__`` without copies. Under Numba's CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1`` set before Numba is imported) they also accept NumPy
arrays: that is how the tests run them without a GPU.

Importing this module does not import ``numba.cuda``; the kernels are compiled on
first use by :func:`_kernels`. Kernels are launched on CuPy's current stream, so
they are ordered with the CuPy work around them. NVVM may contract ``a * b + c``
into a fused multiply-add, so GPU results can differ from the CPU kernels in the
last bit.
"""
import functools
import math
from types import SimpleNamespace
from autodiff import backend

__all__ = ["sgd", "adam", "adamax", "rmsprop", "THREADS_PER_BLOCK"]

cuda = None  # numba.cuda, imported by _kernels() on first use

#: Threads per block of every launch (a multiple of the 32-thread warp).
THREADS_PER_BLOCK = 256


@functools.cache
def _kernels():
    """Compile (lazily, once) and return the CUDA kernels."""
    # A module global, not a local: the CUDA simulator swaps ``cuda`` in a kernel's
    # globals for its per-thread fake (which provides ``cuda.grid``).
    global cuda
    from numba import cuda

    @cuda.jit
    def sgd_k(p, g, buf, lr, momentum, one_minus_dampening, weight_decay, nesterov, first):
        i = cuda.grid(1)
        if i < p.shape[0]:
            d = g[i]
            if weight_decay != 0:
                d = d + weight_decay * p[i]
            if momentum != 0:
                if first:
                    b = d
                else:
                    b = buf[i] * momentum + one_minus_dampening * d
                buf[i] = b
                if nesterov:
                    d = d + momentum * b
                else:
                    d = b
            p[i] = p[i] - lr * d

    @cuda.jit
    def adam_k(p, g, m, v, vmax, step_size, beta1_w, one_minus_beta1_w, beta2,
               one_minus_beta2, eps, bc2_sqrt, weight_decay, amsgrad):
        i = cuda.grid(1)
        if i < p.shape[0]:
            gi = g[i]
            if weight_decay != 0:
                gi = gi + weight_decay * p[i]
            mi = m[i]
            if beta1_w < 0.5:
                mi = mi + beta1_w * (gi - mi)
            else:
                mi = gi - (gi - mi) * one_minus_beta1_w
            m[i] = mi
            vi = v[i] * beta2 + one_minus_beta2 * gi * gi
            v[i] = vi
            if amsgrad:
                if vmax[i] > vi:
                    vi = vmax[i]
                vmax[i] = vi
            denom = math.sqrt(vi) / bc2_sqrt + eps
            p[i] = p[i] - step_size * mi / denom

    @cuda.jit
    def adamax_k(p, g, m, u, clr, beta1_w, one_minus_beta1_w, beta2, eps, weight_decay):
        i = cuda.grid(1)
        if i < p.shape[0]:
            gi = g[i]
            if weight_decay != 0:
                gi = gi + weight_decay * p[i]
            mi = m[i]
            if beta1_w < 0.5:
                mi = mi + beta1_w * (gi - mi)
            else:
                mi = gi - (gi - mi) * one_minus_beta1_w
            m[i] = mi
            ui = u[i] * beta2
            a = abs(gi) + eps
            if a > ui:
                ui = a
            u[i] = ui
            p[i] = p[i] - clr * mi / ui

    @cuda.jit
    def rmsprop_k(p, g, sq, gavg, buf, lr, alpha, one_minus_alpha, eps, weight_decay,
                  momentum, centered):
        i = cuda.grid(1)
        if i < p.shape[0]:
            gi = g[i]
            if weight_decay != 0:
                gi = gi + weight_decay * p[i]
            s = sq[i] * alpha + one_minus_alpha * gi * gi
            sq[i] = s
            if centered:
                ga = gavg[i]
                if one_minus_alpha < 0.5:
                    ga = ga + one_minus_alpha * (gi - ga)
                else:
                    ga = gi - (gi - ga) * alpha
                gavg[i] = ga
                avg = math.sqrt(s - ga * ga) + eps
            else:
                avg = math.sqrt(s) + eps
            if momentum > 0:
                b = buf[i] * momentum + gi / avg
                buf[i] = b
                p[i] = p[i] - lr * b
            else:
                p[i] = p[i] - lr * gi / avg

    return SimpleNamespace(cuda=cuda, sgd=sgd_k, adam=adam_k, adamax=adamax_k,
                           rmsprop=rmsprop_k)


def _launch(kernel, p, *args):
    """Launch ``kernel`` with one thread per element of ``p`` (first kernel argument)."""
    backend.cuda_launch(kernel, p.shape[0], p, p, *args, threads_per_block=THREADS_PER_BLOCK)

def sgd(p, g, buf, lr, momentum, one_minus_dampening, weight_decay, nesterov, first):
    """In-place SGD step (see :func:`zsarray.optim.kernels_cpu.sgd`)."""
    _launch(_kernels().sgd, p, g, buf, lr, momentum, one_minus_dampening, weight_decay,
            nesterov, first)


def adam(p, g, m, v, vmax, step_size, beta1_w, one_minus_beta1_w, beta2, one_minus_beta2,
         eps, bc2_sqrt, weight_decay, amsgrad):
    """In-place Adam step (see :func:`zsarray.optim.kernels_cpu.adam`)."""
    _launch(_kernels().adam, p, g, m, v, vmax, step_size, beta1_w, one_minus_beta1_w, beta2,
            one_minus_beta2, eps, bc2_sqrt, weight_decay, amsgrad)


def adamax(p, g, m, u, clr, beta1_w, one_minus_beta1_w, beta2, eps, weight_decay):
    """In-place Adamax step (see :func:`zsarray.optim.kernels_cpu.adamax`)."""
    _launch(_kernels().adamax, p, g, m, u, clr, beta1_w, one_minus_beta1_w, beta2, eps,
            weight_decay)


def rmsprop(p, g, sq, gavg, buf, lr, alpha, one_minus_alpha, eps, weight_decay, momentum,
            centered):
    """In-place RMSprop step (see :func:`zsarray.optim.kernels_cpu.rmsprop`)."""
    _launch(_kernels().rmsprop, p, g, sq, gavg, buf, lr, alpha, one_minus_alpha, eps,
            weight_decay, momentum, centered)
