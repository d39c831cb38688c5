"""Numba kernels for leaky relu, ``x if x > 0 else slope * x``, and its VJP.

NumPy builds the forward pass from three passes (``x > 0``, ``slope * x``, ``where``)
and the VJP from three more; each kernel here is one loop over the data. Both take
1-D C-contiguous arrays of one dtype and a ``slope`` of that dtype (so float32 data is
multiplied in float32, as NumPy does with a Python float), and write into ``out``;
:mod:`autodiff.ops` calls them for NumPy arrays and keeps the NumPy composition for
CuPy and under tracing.
"""
import numba

__all__ = ["leaky_relu", "leaky_relu_vjp"]


@numba.njit(cache=True, nogil=True)
def leaky_relu(x, slope, out):     # pragma: no cover - compiled
    """``out = x if x > 0 else slope * x`` (NaN stays NaN)."""
    for i in range(x.size):
        v = x[i]
        out[i] = v if v > 0 else v * slope


@numba.njit(cache=True, nogil=True)
def leaky_relu_vjp(g, x, slope, out):     # pragma: no cover - compiled
    """``out = g if x > 0 else slope * g``."""
    for i in range(x.size):
        out[i] = g[i] if x[i] > 0 else g[i] * slope
