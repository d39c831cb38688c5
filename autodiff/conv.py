"""Convolution, pooling, padding and dropout on NCHW images, each next to its VJP rule.

Layouts follow PyTorch: images ``x`` are ``[N, C, H, W]``; ``conv2d`` weights are
``[out_channels, in_channels / groups, kh, kw]``; ``conv_transpose2d`` weights are
``[in_channels, out_channels / groups, kh, kw]``. ``stride``, ``padding`` and
``dilation`` are an int or a pair ``(h, w)``. The output size of a convolution or a
pool along one axis is ``(size + 2 p - d (k - 1) - 1) // s + 1``.

Implementation. On the CPU, convolutions with ``groups == 1``, at least 8 input and more
than 4 output channels run on *channels-last rows*: the input read as [N, H, W, C] and,
per block of images (in the L2 cache), its rows ``[N, Ho, Wo, kh, kw, C]`` (each
output position's patch; every (position, tap) one contiguous copy of a pixel's C
channels) times the weights ``[(kh, kw, C), O]``, one GEMM per block writing its part of
a channels-last output ``[N Ho Wo, O]``, which is returned as an [N, O, Ho, Wo] view of
that memory (the same values; NumPy's elementwise ops keep the layout, so the next conv
reads it without a copy, and an NCHW input costs one transposing copy). The weight
gradient recomputes each block's rows from the kept channels-last input and sums one
GEMM per block; the input gradient (and ``conv_transpose2d``'s forward pass) is one GEMM
per block followed by a gather of the rows into each pixel. The rows never leave the
L2 cache, where a column matrix four times the input's size went through memory.
Otherwise (and on the GPU, written on the array module ``xp`` of the input):
*im2col + one GEMM*. The columns of the input (every kernel offset at every output
position) form a matrix ``[groups, C/groups * kh * kw, N * Ho * Wo]`` that one (batched
over groups) matrix product with the weights turns into the output; the weight gradient
is one GEMM with the same columns (kept from the forward pass) and the input gradient
one GEMM followed by *col2im*, the columns summed back into the image (never
``np.add.at``). On the CPU im2col and col2im are Numba loops over each (channel,
image)'s polyphase planes, so that every row of columns is a contiguous copy (see
``_im2col_kernel``), and the input gradient runs over blocks of images whose columns
stay in the L2 cache between their GEMM and their col2im; on the GPU im2col copies one
strided view of the padded input and col2im is ``kh * kw`` strided adds. A bias is
added inside the op, in the pass that lays the output out (on the CPU with groups 1
and at least 32 outputs the GEMM writes the output channels-last, as the rows path).
Convolutions with at most 4 output channels (a decoder's last layer) skip the columns on
the CPU: three Numba loops compute the output and both gradients directly, since there
the column matrix is much larger than the work done on it (at stride 1 on one
zero-padded image plane at a time, each kernel tap one contiguous multiply-add over the
flattened plane). ``conv_transpose2d``'s weight gradient reuses the columns (on the rows
path the channels-last copy) that its input gradient (a ``conv2d`` of the same
cotangent) built. With NumPy the products run in the BLAS NumPy
links; with CuPy in cuBLAS. ``conv_transpose2d`` is the adjoint of ``conv2d`` (its
forward pass is ``conv2d``'s input gradient), so the three kernels serve both ops. Pools
and padding use per-offset strided slices.

Recording: each kernel is an :func:`~autodiff.tracer.array_op` with ``host=True``. Under
:func:`autodiff.trace` it is one replayed call; under :func:`autodiff.compile` it is one
Python step between machine segments, run by its own BLAS code, without a
:class:`~autodiff.CompileWarning` (the elementwise work around it, bias, activations
and losses, is compiled as usual). On the per-chain GPU machine a host step cannot run:
such programs are replayed.
"""
import threading

import numba
import numpy as np

from . import backend
from .core import Tensor, defvjp, primitive, tensor
from .ops import multiply
from .tracer import array_op, current_builder

__all__ = ["conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d", "pad", "dropout",
           "conv_output_size", "channel_affine"]


# ----------------------------------------------------------------------------- arguments
def _pair(name, op, value, minimum):
    """``value`` as a pair of ints >= ``minimum`` (an int is used for both axes)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (int(value), int(value))
    try:
        a, b = value
        pair = (int(a), int(b))
        ok = pair == (a, b) and not isinstance(a, bool) and not isinstance(b, bool)
    except (TypeError, ValueError):
        ok = False
    if not ok or min(pair) < minimum:
        raise ValueError(f"{op}: {name} must be an int >= {minimum} or a pair of them, "
                         f"got {value!r}")
    return pair


def conv_output_size(size, kernel, stride=1, padding=0, dilation=1):
    """Output length of a convolution or pool along one axis:
    ``(size + 2 padding - dilation (kernel - 1) - 1) // stride + 1``."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _shape4(op, name, x):
    shape = tuple(getattr(x, "shape", np.shape(x)))
    if len(shape) != 4:
        raise ValueError(f"{op}: {name} must be 4-D [N, C, H, W], got shape {shape}")
    return shape


def _out_hw(op, hw, k, s, p, d):
    out = []
    for axis, size, kk, ss, pp, dd in zip("HW", hw, k, s, p, d):
        span = dd * (kk - 1) + 1
        if size + 2 * pp < span:
            raise ValueError(f"{op}: the kernel (extent {span} along {axis}, kernel size {kk}, "
                             f"dilation {dd}) is larger than the padded input ({size} + 2 * "
                             f"{pp} = {size + 2 * pp})")
        out.append(conv_output_size(size, kk, ss, pp, dd))
    return tuple(out)


def _offsets(k, s, d, out_hw):
    """``[(i, j, slice_h, slice_w)]``: the strided slice of the padded input that kernel
    offset ``(i, j)`` reads for every output position."""
    (kh, kw), (sh, sw), (dh, dw), (ho, wo) = k, s, d, out_hw
    return [(i, j, slice(i * dh, i * dh + sh * (ho - 1) + 1, sh),
             slice(j * dw, j * dw + sw * (wo - 1) + 1, sw))
            for i in range(kh) for j in range(kw)]


def _pad_hw(xp, x, p, value=0.0):
    ph, pw = p
    if ph == 0 and pw == 0:
        return x
    n, c, h, w = x.shape
    out = xp.empty((n, c, h + 2 * ph, w + 2 * pw), dtype=x.dtype)
    if ph:
        out[:, :, :ph] = value
        out[:, :, h + ph:] = value
    if pw:
        out[:, :, :, :pw] = value
        out[:, :, :, w + pw:] = value
    out[:, :, ph:ph + h, pw:pw + w] = x
    return out


def _crop_hw(x, p):
    ph, pw = p
    if ph == 0 and pw == 0:
        return x
    return x[:, :, ph:x.shape[2] - ph, pw:x.shape[3] - pw]


# ----------------------------------------------------------------------------- kernels
# On the CPU, im2col and col2im run one (channel, image) at a time through its polyphase
# planes: ``plane[ri, ci, u, v] = xpad[s_h u + ri, s_w v + ci]``, ``hq x wq`` each, kept
# in the L1 cache. Kernel tap ``(i, j)`` reads plane ``(d_h i mod s_h, d_w j mod s_w)``
# shifted by ``(d_h i // s_h, d_w j // s_w)``, so every row of columns is a contiguous
# copy of a plane row (and col2im a contiguous add into one), where the strided view
# copies (or adds) ``Wo`` elements ``s_w`` apart; the padding is never written out as a
# whole image. Measured 1.2-1.4x faster on the stride-2 4x4 layers of the conv VAE.
@numba.njit(cache=True, nogil=True)
def _plane_taps(kh, kw, sh, sw, dh, dw):     # pragma: no cover - compiled
    """``(ti, tj, mi, mj)``: per tap along each axis its (shift, phase), and the largest
    shifts."""
    ti = np.empty((kh, 2), dtype=np.int64)
    tj = np.empty((kw, 2), dtype=np.int64)
    for i in range(kh):
        ti[i, 0], ti[i, 1] = (i * dh) // sh, (i * dh) % sh
    for j in range(kw):
        tj[j, 0], tj[j, 1] = (j * dw) // sw, (j * dw) % sw
    return ti, tj, ti[:, 0].max(), tj[:, 0].max()


@numba.njit(cache=True, nogil=True)
def _im2col_kernel(x, out, sh, sw, ph, pw, dh, dw):     # pragma: no cover - compiled
    n, c, h, wd = x.shape
    _, kh, kw, _, ho, wo = out.shape
    ti, tj, mi, mj = _plane_taps(kh, kw, sh, sw, dh, dw)
    hq, wq = ho + mi, wo + mj
    planes = np.empty((sh, sw, hq, wq), dtype=out.dtype)
    for ch in range(c):
        for b in range(n):
            for ri in range(sh):
                for u in range(hq):
                    r = sh * u + ri - ph
                    for ci in range(sw):
                        prow = planes[ri, ci, u]
                        if r < 0 or r >= h:
                            prow[:] = 0
                        else:
                            xr = x[b, ch, r]
                            for v in range(wq):
                                col = sw * v + ci - pw
                                prow[v] = xr[col] if 0 <= col < wd else 0
            for i in range(kh):
                ii, ri = ti[i, 0], ti[i, 1]
                for j in range(kw):
                    jj, ci = tj[j, 0], tj[j, 1]
                    blk = out[ch, i, j, b]
                    for a in range(ho):
                        src = planes[ri, ci, a + ii, jj:]
                        dst = blk[a]
                        for q in range(wo):
                            dst[q] = src[q]


@numba.njit(cache=True, nogil=True)
def _col2im_kernel(cols, out, sh, sw, ph, pw, dh, dw):     # pragma: no cover - compiled
    c, kh, kw, n, ho, wo = cols.shape
    _, _, h, wd = out.shape
    ti, tj, mi, mj = _plane_taps(kh, kw, sh, sw, dh, dw)
    hq, wq = ho + mi, wo + mj
    planes = np.empty((sh, sw, hq, wq), dtype=out.dtype)
    for ch in range(c):
        for b in range(n):
            planes[:] = 0
            for i in range(kh):
                ii, ri = ti[i, 0], ti[i, 1]
                for j in range(kw):
                    jj, ci = tj[j, 0], tj[j, 1]
                    blk = cols[ch, i, j, b]
                    for a in range(ho):
                        dst = planes[ri, ci, a + ii, jj:]
                        src = blk[a]
                        for q in range(wo):
                            dst[q] += src[q]
            img = out[b, ch]
            img[:] = 0                  # pixels that no window reads
            for ri in range(sh):
                for u in range(hq):
                    r = sh * u + ri - ph
                    if 0 <= r < h:
                        orow = img[r]
                        for ci in range(sw):
                            prow = planes[ri, ci, u]
                            for v in range(wq):
                                col = sw * v + ci - pw
                                if 0 <= col < wd:
                                    orow[col] = prow[v]


# Bytes of columns per block of images in conv2d's input gradient (and conv_transpose2d's
# forward pass): about half the L2 cache.
_BLOCK_BYTES = 3 << 19


# Channels-last rows (the CPU path of convolutions with groups == 1 and at least
# _ROWS_MIN_CHANNELS input channels). The input is read as [N, H, W, C] (free when the
# array is already channels-last in memory, which this path's outputs are) and its
# *rows* ``[N, Ho, Wo, kh, kw, C]`` hold each output position's patch, so that every
# (position, tap) is one contiguous copy of the C channels of one pixel, where the
# column matrix copies runs of Wo (14 or 7) elements. The GEMMs then produce the output
# channels-last, ``[N Ho Wo, O]``, returned as an [N, O, Ho, Wo] view of that memory;
# the elementwise ops after it keep that layout (NumPy's ufuncs follow their input's
# strides), so the next conv reads it without a copy. col2im becomes a gather: each
# input pixel sums the C-channel chunks of the (position, tap) pairs that read it.
_ROWS_MIN_CHANNELS = 8
# The column path (fewer input channels) writes its output channels-last too when it has
# at least this many output channels (the next conv then takes the rows path without a
# copy; with fewer, the GEMM [N Ho Wo, C kh kw] @ [C kh kw, O] is slow in OpenBLAS).
_COLS_CL_MIN_OUT = 32


@numba.njit(cache=True, nogil=True)
def _im2row_kernel(x, out, sh, sw, ph, pw, dh, dw):     # pragma: no cover - compiled
    """``out[b, a, q, i, j, :] = xpad[b, s_h a + d_h i, s_w q + d_w j, :]`` for ``x``
    [N, H, W, C] (zero padding ``(ph, pw)``)."""
    n, h, wd, c = x.shape
    _, ho, wo, kh, kw, _ = out.shape
    for b in range(n):
        for a in range(ho):
            for i in range(kh):
                r = a * sh + i * dh - ph
                inside = 0 <= r < h
                for q in range(wo):
                    for j in range(kw):
                        col = q * sw + j * dw - pw
                        dst = out[b, a, q, i, j]
                        if inside and 0 <= col < wd:
                            src = x[b, r, col]
                            for ch in range(c):
                                dst[ch] = src[ch]
                        else:
                            for ch in range(c):
                                dst[ch] = 0


@numba.njit(cache=True, nogil=True)
def _tap_lists(size, k, s, p, d, size_out):     # pragma: no cover - compiled
    """Along one axis, for each input index ``r < size``: ``lst[r, :cnt[r]]``, the pairs
    ``(tap, output index)`` with ``output * s + tap * d - p == r``, taps ascending."""
    lst = np.empty((size, k, 2), dtype=np.int64)
    cnt = np.zeros(size, dtype=np.int64)
    for i in range(k):
        for a in range(size_out):
            r = a * s + i * d - p
            if 0 <= r < size:
                lst[r, cnt[r], 0] = i
                lst[r, cnt[r], 1] = a
                cnt[r] += 1
    return lst, cnt


@numba.njit(cache=True, nogil=True)
def _row2im_kernel(rows, out, sh, sw, ph, pw, dh, dw):     # pragma: no cover - compiled
    """The adjoint of :func:`_im2row_kernel`: ``out`` [N, H, W, C] gets, at each pixel,
    the sum of the rows' chunks that read it (taps in row-major order; the pairs that
    read each row and column listed once, no division in the loops)."""
    n, h, wd, c = out.shape
    _, ho, wo, kh, kw, _ = rows.shape
    li, ni = _tap_lists(h, kh, sh, ph, dh, ho)
    lj, nj = _tap_lists(wd, kw, sw, pw, dw, wo)
    for b in range(n):
        for r in range(h):
            for col in range(wd):
                dst = out[b, r, col]
                for ch in range(c):
                    dst[ch] = 0
                for e in range(ni[r]):
                    i, a = li[r, e, 0], li[r, e, 1]
                    for f in range(nj[col]):
                        src = rows[b, a, lj[col, f, 1], i, lj[col, f, 0]]
                        for ch in range(c):
                            dst[ch] += src[ch]


def _rows_path(groups, in_channels, out_channels, *arrays):
    """Whether a conv runs on channels-last rows: NumPy float arrays, ``groups == 1``, at
    least _ROWS_MIN_CHANNELS input channels and more than _DIRECT_MAX_OUT outputs."""
    return (groups == 1 and in_channels >= _ROWS_MIN_CHANNELS
            and out_channels > _DIRECT_MAX_OUT
            and all(type(a) is np.ndarray and a.dtype.kind == "f" for a in arrays))


def _in_dtype(a, dtype):
    """``a`` in ``dtype``, its layout kept (a copy only to change the dtype)."""
    return a if a.dtype == dtype else a.astype(dtype)


def _channels_last(a, keep=False):
    """``a`` [N, C, H, W] as a C-contiguous [N, H, W, C] array: a view when ``a`` is
    channels-last in memory already (this path's outputs), else one transposing copy,
    which with ``keep`` is also kept for :func:`_take_channels_last` (a cotangent that
    conv2d's input gradient converted, for its weight gradient next)."""
    t = a.transpose(0, 2, 3, 1)
    if t.flags.c_contiguous:
        return t
    t = np.ascontiguousarray(t)
    if keep:
        _last_g.src, _last_g.cl = a, t
    return t


def _take_channels_last(a):
    """:func:`_channels_last` of ``a``, the kept copy if it was made from this very array
    (taken once: the slot is emptied)."""
    t = _last_g.cl if _last_g.src is a else None
    _last_g.src = _last_g.cl = None
    return _channels_last(a) if t is None else t


class _Input:
    """The channels-last input ``[N, H, W, C]`` of a conv2d forward pass on the rows path,
    kept (in the slot of the columns) for its weight gradient in place of the input."""
    __slots__ = ("a",)

    def __init__(self, a):
        self.a = a


class _LastG(threading.local):
    src = None
    cl = None


_last_g = _LastG()


def _im2col(x, k, s, p, d, out_hw):
    """Columns ``[C, kh, kw, N, Ho, Wo]`` of ``x`` [N, C, H, W] (zero padding ``p``): on the
    CPU a Numba loop over polyphase planes, on the GPU one strided view of the padded
    input, copied once."""
    xp = backend.get_array_module(x)
    n, c = x.shape[:2]
    if xp is np:
        out = np.empty((c, k[0], k[1], n) + tuple(out_hw), dtype=x.dtype)
        _im2col_kernel(np.ascontiguousarray(x), out, *s, *p, *d)
        return out
    xpad = _pad_hw(xp, x, p)
    sn, sc, sh, sw = xpad.strides
    view = xp.lib.stride_tricks.as_strided(
        xpad, (c, k[0], k[1], n) + tuple(out_hw),
        (sc, sh * d[0], sw * d[1], sn, sh * s[0], sw * s[1]))
    return xp.ascontiguousarray(view)


def _col2im(cols, x_shape, k, s, p, d, out_hw):
    """The adjoint of :func:`_im2col`: columns ``[C, kh, kw, N, Ho, Wo]`` summed back into
    an image ``x_shape`` = [N, C, H, W] (a Numba loop over polyphase planes on the CPU,
    ``kh * kw`` strided adds on the GPU; never ``np.add.at``)."""
    xp = backend.get_array_module(cols)
    n, c, h, w = x_shape
    if xp is np:
        out = np.empty(x_shape, dtype=cols.dtype)
        _col2im_kernel(np.ascontiguousarray(cols), out, *s, *p, *d)
        return out
    out = xp.zeros((n, c, h + 2 * p[0], w + 2 * p[1]), dtype=cols.dtype)
    outt = out.transpose(1, 0, 2, 3)
    for i, j, sh, sw in _offsets(k, s, d, out_hw):
        outt[:, :, sh, sw] += cols[:, i, j]
    return _crop_hw(out, p)


# Direct loops for convolutions with few output channels (a decoder's last conv to one
# channel): there the column matrix is ``C kh kw / O`` times larger than the work the
# GEMM does on it, and writing and reading it dominates. Each kernel walks the columns'
# index space in im2col's order without storing them.
_DIRECT_MAX_OUT = 4


def _direct(out_channels, groups, *arrays):
    """Whether a conv with ``out_channels`` (O) on ``arrays`` runs the direct CPU loops
    (NumPy float arrays, ``groups == 1``, ``O <= _DIRECT_MAX_OUT``)."""
    return (groups == 1 and out_channels <= _DIRECT_MAX_OUT
            and all(type(a) is np.ndarray and a.dtype.kind == "f" for a in arrays))


@numba.njit(cache=True, inline="always")
def _span(offset, stride, size_in, size_out):     # pragma: no cover - compiled
    """Output positions ``[lo, hi)`` whose input index ``o * stride + offset`` falls inside
    ``[0, size_in)`` (one kernel tap along one axis)."""
    lo = min(max(0, -(offset // stride)), size_out)
    return lo, min(max(lo, (size_in - 1 - offset) // stride + 1), size_out)


@numba.njit(cache=True, nogil=True)
def _direct_fwd_kernel(x, w, y, sh, sw, ph, pw, dh, dw):     # pragma: no cover - compiled
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    _, _, ho, wo = y.shape
    for b in range(n):                  # one image at a time: its planes stay in cache
        for ch in range(c):
            for i in range(kh):
                off_h = i * dh - ph
                a_lo, a_hi = _span(off_h, sh, h, ho)
                for j in range(kw):
                    off_w = j * dw - pw
                    q_lo, q_hi = _span(off_w, sw, wd, wo)
                    for oc in range(o):
                        wv = w[oc, ch, i, j]
                        for a in range(a_lo, a_hi):
                            # row slices indexed from 0: no negative-index wraparound
                            # test in the loop, which LLVM then vectorizes
                            xr = x[b, ch, a * sh + off_h, q_lo * sw + off_w:]
                            yr = y[b, oc, a, q_lo:q_hi]
                            if sw == 1:
                                for q in range(q_hi - q_lo):
                                    yr[q] += wv * xr[q]
                            else:
                                for q in range(q_hi - q_lo):
                                    yr[q] += wv * xr[q * sw]


@numba.njit(cache=True, nogil=True)
def _direct_dx_kernel(gy, w, out, sh, sw, ph, pw, dh, dw):     # pragma: no cover - compiled
    n, c, h, wd = out.shape
    o, _, kh, kw = w.shape
    _, _, ho, wo = gy.shape
    for b in range(n):                  # one image at a time: its planes stay in cache
        for ch in range(c):
            for i in range(kh):
                off_h = i * dh - ph
                a_lo, a_hi = _span(off_h, sh, h, ho)
                for j in range(kw):
                    off_w = j * dw - pw
                    q_lo, q_hi = _span(off_w, sw, wd, wo)
                    for oc in range(o):
                        wv = w[oc, ch, i, j]
                        for a in range(a_lo, a_hi):
                            orow = out[b, ch, a * sh + off_h, q_lo * sw + off_w:]
                            grow = gy[b, oc, a, q_lo:q_hi]
                            if sw == 1:
                                for q in range(q_hi - q_lo):
                                    orow[q] += wv * grow[q]
                            else:
                                for q in range(q_hi - q_lo):
                                    orow[q * sw] += wv * grow[q]


@numba.njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})   # vector sums
def _direct_dw_kernel(x, gy, out, sh, sw, ph, pw, dh, dw):     # pragma: no cover - compiled
    n, c, h, wd = x.shape
    o, _, kh, kw = out.shape
    _, _, ho, wo = gy.shape
    for ch in range(c):
        for i in range(kh):
            off_h = i * dh - ph
            a_lo, a_hi = _span(off_h, sh, h, ho)
            for j in range(kw):
                off_w = j * dw - pw
                q_lo, q_hi = _span(off_w, sw, wd, wo)
                for oc in range(o):
                    acc = 0.0                   # float64: a sum over N * Ho * Wo terms
                    for b in range(n):
                        for a in range(a_lo, a_hi):
                            xr = x[b, ch, a * sh + off_h, q_lo * sw + off_w:]
                            grow = gy[b, oc, a, q_lo:q_hi]
                            if sw == 1:
                                for q in range(q_hi - q_lo):
                                    acc += grow[q] * xr[q]
                            else:
                                for q in range(q_hi - q_lo):
                                    acc += grow[q] * xr[q * sw]
                    out[oc, ch, i, j] = acc


# Stride-1 convolutions on the direct path (the decoder's last 3x3 conv) run on one
# zero-padded image plane at a time, flattened with its padded row length ``wq``: kernel
# tap ``(i, j)`` is then the plane shifted by ``i dh wq + j dw``, and every tap is one
# contiguous multiply-add of ``Ho * wq`` elements (the ``wq - Wo`` extra columns of each
# output row are computed and dropped), which vectorizes, where the strided loops
# above run one short output row at a time. One guard row below the plane keeps the
# last tap's reads inside it. The planes are scratch of the kernel, so the input is
# never padded as a whole.
@numba.njit(cache=True, nogil=True, inline="always")
def _plane_load(plane, src, ph, pw, wq):     # pragma: no cover - compiled
    """Copy the image ``src`` [H, W] into the zero-bordered flat ``plane`` at ``(ph, pw)``."""
    h, wd = src.shape
    for r in range(h):
        prow = plane[(r + ph) * wq + pw:]
        srow = src[r]
        for q in range(wd):
            prow[q] = srow[q]


@numba.njit(cache=True, nogil=True, inline="always")
def _rows_load(flat, src, wq):     # pragma: no cover - compiled
    """Copy ``src`` [Ho, Wo] into the rows of length ``wq`` of ``flat`` (the rest untouched)."""
    ho, wo = src.shape
    for a in range(ho):
        frow = flat[a * wq:]
        srow = src[a]
        for q in range(wo):
            frow[q] = srow[q]


@numba.njit(cache=True, nogil=True)
def _plane_fwd_kernel(x, w, y, ph, pw, dh, dw):     # pragma: no cover - compiled
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    _, _, ho, wo = y.shape
    wq = wd + 2 * pw                    # == wo + dw (kw - 1) at stride 1
    size = ho * wq
    plane = np.zeros((h + 2 * ph + 1) * wq, dtype=y.dtype)    # borders stay zero
    acc = np.empty((o, size), dtype=y.dtype)
    for b in range(n):
        acc[:] = 0
        for ch in range(c):
            _plane_load(plane, x[b, ch], ph, pw, wq)
            for i in range(kh):
                for j in range(kw):
                    src = plane[i * dh * wq + j * dw:]
                    for oc in range(o):
                        wv = w[oc, ch, i, j]
                        row = acc[oc]
                        for t in range(size):
                            row[t] += wv * src[t]
        for oc in range(o):
            for a in range(ho):
                y[b, oc, a, :] = acc[oc, a * wq:a * wq + wo]


@numba.njit(cache=True, nogil=True)
def _plane_dx_kernel(gy, w, out, ph, pw, dh, dw):     # pragma: no cover - compiled
    n, o, ho, wo = gy.shape
    _, c, h, wd = out.shape
    _, _, kh, kw = w.shape
    wq = wd + 2 * pw
    size = ho * wq
    g = np.zeros((o, size), dtype=out.dtype)      # the extra columns stay zero
    plane = np.empty((h + 2 * ph + 1) * wq, dtype=out.dtype)
    for b in range(n):
        for oc in range(o):
            _rows_load(g[oc], gy[b, oc], wq)
        for ch in range(c):
            plane[:] = 0
            for i in range(kh):
                for j in range(kw):
                    dst = plane[i * dh * wq + j * dw:]
                    for oc in range(o):
                        wv = w[oc, ch, i, j]
                        row = g[oc]
                        for t in range(size):
                            dst[t] += wv * row[t]
            for r in range(h):
                out[b, ch, r, :] = plane[(r + ph) * wq + pw:(r + ph) * wq + pw + wd]


@numba.njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})   # vector sums
def _plane_dw_kernel(x, gy, out, ph, pw, dh, dw, zero):     # pragma: no cover - compiled
    n, c, h, wd = x.shape
    o, _, kh, kw = out.shape
    _, _, ho, wo = gy.shape
    wq = wd + 2 * pw
    size = ho * wq
    total = np.zeros(out.shape, dtype=np.float64)   # a sum over N * Ho * Wo terms
    g = np.zeros((o, size), dtype=out.dtype)        # the extra columns stay zero
    plane = np.zeros((h + 2 * ph + 1) * wq, dtype=out.dtype)
    for b in range(n):
        for oc in range(o):
            _rows_load(g[oc], gy[b, oc], wq)
        for ch in range(c):
            _plane_load(plane, x[b, ch], ph, pw, wq)
            for i in range(kh):
                for j in range(kw):
                    src = plane[i * dh * wq + j * dw:]
                    for oc in range(o):
                        row = g[oc]
                        part = zero                 # one image's terms, in the dtype
                        for t in range(size):
                            part += row[t] * src[t]
                        total[oc, ch, i, j] += part
    out[...] = total


def _mm(a, b):
    """``a @ b`` of [g, m, k] and [g, k, n] stacks (one plain GEMM when g == 1)."""
    if a.shape[0] == 1:
        return (a[0] @ b[0])[None]
    return a @ b


class _Last(threading.local):
    """The columns of this thread's last conv2d forward pass, with its output, input and
    arguments: conv2d's weight VJP maker (run right after, in the forward pass) and
    conv_transpose2d's weight VJP (run right after its input VJP, which is a conv2d of
    the same cotangent) take them instead of recomputing them. One slot, emptied when
    taken or replaced by the next conv."""
    y = None
    cols = None
    x = None
    key = None


_last = _Last()


def _take_cols(y):
    cols = _last.cols if _last.y is y else None
    _last.y = _last.cols = _last.x = _last.key = None
    return cols


def _take_cols_of(x, key):
    """The last forward pass's columns if it ran on the array ``x`` with arguments ``key``."""
    cols = _last.cols if _last.x is x and _last.key == key else None
    _last.y = _last.cols = _last.x = _last.key = None
    return cols


def _row_blocks(n, image_bytes, weight_bytes=0):
    """``[(b0, b1)]``: blocks of the ``n`` images of about _BLOCK_BYTES of rows each
    (``image_bytes`` per image), as many as needed, of sizes differing by at most 1; one
    block when the weight matrix (``weight_bytes``) takes more than half of that itself
    (each block's GEMM would read it from beyond the L2 cache again, with few rows)."""
    if 2 * weight_bytes > _BLOCK_BYTES:
        return [(0, n)]
    nb = max(1, min(n, _BLOCK_BYTES // max(1, image_bytes)))
    blocks = -(-n // nb)
    return [(k * n // blocks, (k + 1) * n // blocks) for k in range(blocks)]


def _rows_fwd(x, w, bias, stride, padding, dilation, out_hw):
    """conv2d on channels-last rows (:func:`_rows_path`): per block of images, its rows
    (in the L2 cache) and one GEMM into the block's part of the output ``[N Ho Wo, O]``;
    the output is returned as an [N, O, Ho, Wo] view of that channels-last memory,
    with the channels-last input ``[N, H, W, C]``. The rows are not kept: the weight
    gradient recomputes them block by block (from that input)."""
    xh = _channels_last(x)
    n, h, wd, c = xh.shape
    o, _, kh, kw = w.shape
    ho, wo = out_hw
    k, hw = kh * kw * c, ho * wo
    wr = w.transpose(2, 3, 1, 0).reshape(k, o)                   # [(kh, kw, C), O]
    y = np.empty((n * hw, o), dtype=np.result_type(x.dtype, w.dtype))
    blocks = _row_blocks(n, hw * k * x.dtype.itemsize, k * o * w.dtype.itemsize)
    buf = np.empty((max(b1 - b0 for b0, b1 in blocks), ho, wo, kh, kw, c), dtype=x.dtype)
    for b0, b1 in blocks:
        rows = buf[:b1 - b0]
        _im2row_kernel(xh[b0:b1], rows, *stride, *padding, *dilation)
        np.matmul(rows.reshape(-1, k), wr, out=y[b0 * hw:b1 * hw])
    return _add_channels(y, bias).reshape(n, ho, wo, o).transpose(0, 3, 1, 2), xh


def _rows_dw(x, gy, w_shape, stride, padding, dilation):
    """conv2d's weight gradient on channels-last rows: per block of images, its rows
    recomputed (in the L2 cache) and one GEMM with the block's cotangent, summed."""
    xh = _channels_last(x)
    n, h, wd, c = xh.shape
    o, _, kh, kw = w_shape
    ho, wo = gy.shape[2:]
    k, hw = kh * kw * c, ho * wo
    gh = _take_channels_last(gy).reshape(n * hw, o)             # [N Ho Wo, O]
    blocks = _row_blocks(n, hw * k * x.dtype.itemsize, k * o * gy.dtype.itemsize)
    buf = np.empty((max(b1 - b0 for b0, b1 in blocks), ho, wo, kh, kw, c), dtype=x.dtype)
    dwr = None                                                   # [(kh, kw, C), O]
    for b0, b1 in blocks:
        rows = buf[:b1 - b0]
        _im2row_kernel(xh[b0:b1], rows, *stride, *padding, *dilation)
        part = rows.reshape(-1, k).T @ gh[b0 * hw:b1 * hw]
        if dwr is None:
            dwr = part
        else:
            dwr += part
    return np.ascontiguousarray(dwr.reshape(kh, kw, c, o).transpose(3, 2, 0, 1))


def _add_channels(y, bias):
    """``y [..., C] + bias [C]``, in place unless the bias widens the dtype."""
    if bias is None:
        return y
    if np.result_type(y.dtype, bias.dtype) != y.dtype:
        return y + bias
    y += bias
    return y


def _with_bias(y, bias):
    """``y + bias`` per channel (axis 1) as a new C-contiguous array: the add is the copy
    that makes a transposed view ``y`` contiguous. ``y`` made contiguous when ``bias`` is
    None."""
    xp = backend.get_array_module(y)
    if bias is None:
        return xp.ascontiguousarray(y)
    out = xp.empty(y.shape, dtype=xp.result_type(y.dtype, bias.dtype))
    xp.add(y, bias.reshape((1, -1) + (1,) * (y.ndim - 2)), out=out)
    return out


@array_op(name="conv2d", host=True)
def _conv_fwd(x, w, stride, padding, dilation, groups, bias=None):
    """conv2d: [N, C, H, W] x [O, C/g, kh, kw] (+ bias [O]) -> [N, O, Ho, Wo]."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    k = (kh, kw)
    out_hw = _out_hw("conv2d", (h, wd), k, stride, padding, dilation)
    if _direct(o, groups, x, w):
        dtype = np.result_type(x.dtype, w.dtype)
        w = np.ascontiguousarray(w, dtype)
        if stride == (1, 1):
            y = np.empty((n, o) + out_hw, dtype=dtype)
            _plane_fwd_kernel(_in_dtype(x, dtype), w, y, *padding, *dilation)
        else:
            y = np.zeros((n, o) + out_hw, dtype=dtype)
            _direct_fwd_kernel(np.ascontiguousarray(x, dtype), w, y, *stride, *padding,
                               *dilation)
        return y if bias is None else _with_bias(y, bias)
    if _rows_path(groups, cg, o, x, w):
        y, xh = _rows_fwd(x, w, bias, stride, padding, dilation, out_hw)
        _last.y, _last.cols = y, _Input(xh)
        _last.x, _last.key = x, (w.shape, stride, padding, dilation, groups)
        return y
    cols = _im2col(x, k, stride, padding, dilation, out_hw)
    cols = cols.reshape(groups, cg * kh * kw, n * out_hw[0] * out_hw[1])
    if (groups == 1 and o >= _COLS_CL_MIN_OUT and type(cols) is np.ndarray
            and type(w) is np.ndarray):
        # channels-last output [N Ho Wo, O], as the rows path's (few input channels)
        y = _add_channels(cols[0].T @ w.reshape(o, cg * kh * kw).T, bias)
        y = y.reshape(n, out_hw[0], out_hw[1], o).transpose(0, 3, 1, 2)
    else:
        y = _mm(w.reshape(groups, o // groups, cg * kh * kw), cols)  # [g, O/g, N*Ho*Wo]
        y = _with_bias(y.reshape(o, n, out_hw[0], out_hw[1]).transpose(1, 0, 2, 3), bias)
    _last.y, _last.cols = y, cols
    _last.x, _last.key = x, (w.shape, stride, padding, dilation, groups)
    return y


@array_op(name="conv2d_grad_input", host=True)
def _conv_dx(gy, w, x_shape, stride, padding, dilation, groups, bias=None):
    """d conv2d / dx applied to ``gy`` [N, O, Ho, Wo]: an image of ``x_shape`` (plus
    ``bias`` per channel: conv_transpose2d's forward pass)."""
    n, o, ho, wo = gy.shape
    _, cg, kh, kw = w.shape
    if _direct(o, groups, gy, w):
        dtype = np.result_type(gy.dtype, w.dtype)
        gy, w = np.ascontiguousarray(gy, dtype), np.ascontiguousarray(w, dtype)
        if stride == (1, 1):
            out = np.empty(x_shape, dtype=dtype)
            _plane_dx_kernel(gy, w, out, *padding, *dilation)
        else:
            out = np.zeros(x_shape, dtype=dtype)
            _direct_dx_kernel(gy, w, out, *stride, *padding, *dilation)
        return out if bias is None else _with_bias(out, bias)
    if _rows_path(groups, cg, o, gy, w):
        # blocks of images: each block's rows are gathered into its pixels right after
        # the GEMM wrote them, while they are still in the L2 cache
        gh = _channels_last(gy, keep=True)                          # [N, Ho, Wo, O]
        wt = w.transpose(0, 2, 3, 1).reshape(o, kh * kw * cg)       # [O, (kh, kw, C)]
        dtype = np.result_type(gy.dtype, w.dtype)
        out = np.empty((n,) + tuple(x_shape[2:]) + (cg,), dtype=dtype)
        for b0, b1 in _row_blocks(n, cg * kh * kw * ho * wo * out.itemsize, wt.nbytes):
            rows = (gh[b0:b1].reshape(-1, o) @ wt).reshape(b1 - b0, ho, wo, kh, kw, cg)
            _row2im_kernel(rows, out[b0:b1], *stride, *padding, *dilation)
        return _add_channels(out, bias).transpose(0, 3, 1, 2)
    wg = w.reshape(groups, o // groups, cg * kh * kw).transpose(0, 2, 1)
    if type(gy) is np.ndarray and type(w) is np.ndarray:
        # blocks of images: each block's columns are summed into its images right
        # after the GEMM wrote them, while they are still in the L2 cache
        out = np.empty(x_shape, dtype=np.result_type(gy.dtype, w.dtype))
        nb = max(1, min(n, _BLOCK_BYTES // (groups * cg * kh * kw * ho * wo * out.itemsize)))
        blocks = -(-n // nb)            # as many blocks, of sizes differing by at most 1
        # the bias added to each block while it is cached (unless it widens the dtype)
        b4 = (None if bias is None or np.result_type(out.dtype, bias.dtype) != out.dtype
              else bias.reshape(1, -1, 1, 1))
        for blk in range(blocks):
            b0, b1 = blk * n // blocks, (blk + 1) * n // blocks
            g2 = gy[b0:b1].transpose(1, 0, 2, 3).reshape(groups, o // groups, -1)
            cols = _mm(wg, g2).reshape(groups * cg, kh, kw, b1 - b0, ho, wo)
            _col2im_kernel(cols, out[b0:b1], *stride, *padding, *dilation)
            if b4 is not None:
                out[b0:b1] += b4
        return out if bias is None or b4 is not None else _with_bias(out, bias)
    g2 = gy.transpose(1, 0, 2, 3).reshape(groups, o // groups, n * ho * wo)
    cols = _mm(wg, g2).reshape(groups * cg, kh, kw, n, ho, wo)
    out = _col2im(cols, x_shape, (kh, kw), stride, padding, dilation, (ho, wo))
    return out if bias is None else _with_bias(out, bias)


@array_op(name="conv2d_grad_weight", host=True)
def _conv_dw(x, gy, w_shape, stride, padding, dilation, groups, cols=None):
    """d conv2d / dw applied to ``gy`` [N, O, Ho, Wo]: a weight of ``w_shape`` (``cols``:
    the forward pass's columns of ``x``, recomputed when None)."""
    n, o, ho, wo = gy.shape
    _, cg, kh, kw = w_shape
    if cols is None and _direct(o, groups, x, gy):
        dtype = np.result_type(x.dtype, gy.dtype)
        out = np.empty(w_shape, dtype=dtype)
        if stride == (1, 1):
            _plane_dw_kernel(_in_dtype(x, dtype), _in_dtype(gy, dtype), out, *padding,
                             *dilation, dtype.type(0))
        else:
            _direct_dw_kernel(np.ascontiguousarray(x, dtype), np.ascontiguousarray(gy, dtype),
                              out, *stride, *padding, *dilation)
        return out
    if type(cols) is _Input:
        return _rows_dw(cols.a.transpose(0, 3, 1, 2), gy, w_shape, stride, padding, dilation)
    if cols is None and _rows_path(groups, cg, o, x, gy):
        return _rows_dw(x, gy, w_shape, stride, padding, dilation)
    if cols is None:
        cols = _im2col(x, (kh, kw), stride, padding, dilation, (ho, wo))
    cols = cols.reshape(groups, cg * kh * kw, n * ho * wo)
    if (groups == 1 and type(cols) is np.ndarray and type(gy) is np.ndarray
            and gy.transpose(0, 2, 3, 1).flags.c_contiguous):
        # the cotangent channels-last in memory: read as [N Ho Wo, O] without a copy
        dwt = cols[0] @ _channels_last(gy).reshape(n * ho * wo, o)   # [C kh kw, O]
        return np.ascontiguousarray(dwt.T).reshape(w_shape)
    g2 = gy.transpose(1, 0, 2, 3).reshape(groups, o // groups, n * ho * wo)
    # dw transposed, [g, C/g kh kw, O/g]: the long contraction over N Ho Wo runs with the
    # columns as the left operand (5-10% faster in OpenBLAS than g2 @ cols.T)
    return _mm(cols, g2.transpose(0, 2, 1)).transpose(0, 2, 1).reshape(w_shape)


def _conv_rule_x(ans, x, w, stride, padding, dilation, groups):
    x_shape = x.shape
    return lambda g: _conv_dx(g, w, x_shape, stride, padding, dilation, groups)


def _conv_rule_w(ans, x, w, stride, padding, dilation, groups):
    w_shape = w.shape
    cols = _take_cols(ans)
    if cols is not None:       # (x itself is then not kept for the backward pass)
        return lambda g: _conv_dw(None, g, w_shape, stride, padding, dilation, groups, cols)
    return lambda g: _conv_dw(x, g, w_shape, stride, padding, dilation, groups)


_conv2d_p = primitive(_conv_fwd, "conv2d")
defvjp(_conv2d_p, _conv_rule_x, _conv_rule_w)


def _bias_rule(ans, x, w, b, **kwargs):
    return lambda g: g.sum(axis=(0,) + tuple(range(2, g.ndim)))


# conv2d with a bias: one op, the bias added in the pass that lays the output out
# (rather than a channel_affine pass over the output after it)
def _conv_bias_fwd(x, w, b, stride, padding, dilation, groups):
    return _conv_fwd(x, w, stride, padding, dilation, groups, b)


_conv2d_bias_p = primitive(_conv_bias_fwd, "conv2d")
defvjp(_conv2d_bias_p, lambda ans, x, w, b, **kw: _conv_rule_x(ans, x, w, **kw),
       lambda ans, x, w, b, **kw: _conv_rule_w(ans, x, w, **kw), _bias_rule)


def _check_conv(op, x, w, groups, w_in):
    """Shapes of a conv's input and weight, checked against each other and ``groups``."""
    xs = _shape4(op, "x", x)
    ws = tuple(getattr(w, "shape", np.shape(w)))
    if len(ws) != 4:
        raise ValueError(f"{op}: w must be 4-D {w_in}, got shape {ws}")
    if isinstance(groups, bool) or int(groups) != groups or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    return xs, ws


def _check_bias(op, bias, channels):
    bs = tuple(getattr(bias, "shape", np.shape(bias)))
    if bs != (channels,):
        raise ValueError(f"{op}: bias must have shape ({channels},) (one per output channel), "
                         f"got {bs}")


# ----------------------------------------------------------------------------- channels
def _chan_shape(y):
    return (1, -1) + (1,) * (y.ndim - 2)


def _chan_axes(y):
    return (0,) + tuple(range(2, y.ndim))


def _affine_fwd(y, scale, shift):
    shape = _chan_shape(y)
    out = y if scale is None else y * scale.reshape(shape)
    return out if shift is None else out + shift.reshape(shape)


def _affine_rule_y(ans, y, scale, shift):
    if scale is None:
        return lambda g: g
    shape = _chan_shape(y)
    return lambda g: g * scale.reshape(shape)


def _affine_rule_scale(ans, y, scale, shift):
    return lambda g: (g * y).sum(axis=_chan_axes(y))


def _affine_rule_shift(ans, y, scale, shift):
    axes = _chan_axes(y)
    return lambda g: g.sum(axis=axes)


_channel_affine_p = primitive(_affine_fwd, "channel_affine")
defvjp(_channel_affine_p, _affine_rule_y, _affine_rule_scale, _affine_rule_shift)


def channel_affine(y, scale=None, shift=None):
    """``y * scale + shift`` with one ``scale`` and ``shift`` per channel (axis 1).

    Parameters
    ----------
    y : Tensor or array, shape ``[N, C, ...]``
    scale, shift : Tensor or array, shape ``[C]``, optional

    Returns
    -------
    Tensor, shape of ``y``. One op (rather than a reshape and a broadcast), so that under
    :func:`autodiff.trace`/``compile`` a ``scale``/``shift`` Tensor meets the traced ``y``
    directly and is read at every call (a layer's bias, a batch norm's parameters).
    """
    return _channel_affine_p(y, scale, shift)


def conv2d(x, w, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (cross-correlation, as PyTorch's ``conv2d``).

    Parameters
    ----------
    x : Tensor or array, shape ``[N, C, H, W]``
    w : Tensor or array, shape ``[O, C / groups, kh, kw]``
    bias : Tensor or array, shape ``[O]``, optional
    stride, padding, dilation : int or (int, int)
        Zero padding on both sides of each spatial axis.
    groups : int
        ``C`` and ``O`` split into ``groups`` blocks; block ``g`` of the output sees
        only block ``g`` of the input (``groups == C`` is a depthwise convolution).

    Returns
    -------
    Tensor, shape ``[N, O, Ho, Wo]`` with ``Ho = (H + 2 p - d (kh - 1) - 1) // s + 1``
    (:func:`conv_output_size`), in the dtype of ``x`` and ``w``.
    """
    op = "conv2d"
    (n, c, h, wd), (o, cg, kh, kw) = _check_conv(op, x, w, groups,
                                                 "[O, C / groups, kh, kw]")
    s = _pair("stride", op, stride, 1)
    p = _pair("padding", op, padding, 0)
    d = _pair("dilation", op, dilation, 1)
    if c != cg * groups:
        raise ValueError(f"{op}: x has {c} channels but w of shape {(o, cg, kh, kw)} with "
                         f"groups={groups} expects {cg * groups} (= w.shape[1] * groups)")
    if o % groups:
        raise ValueError(f"{op}: the {o} output channels (w.shape[0]) are not divisible by "
                         f"groups={groups}")
    _out_hw(op, (h, wd), (kh, kw), s, p, d)
    if bias is None:
        return _conv2d_p(x, w, stride=s, padding=p, dilation=d, groups=int(groups))
    _check_bias(op, bias, o)
    return _conv2d_bias_p(x, w, bias, stride=s, padding=p, dilation=d, groups=int(groups))


# ----------------------------------------------------------------------------- transpose
def _convt_fwd(x, w, out_shape, stride, padding, dilation, groups):
    return _conv_dx(x, w, out_shape, stride, padding, dilation, groups)


def _convt_rule_x(ans, x, w, out_shape, stride, padding, dilation, groups):
    return lambda g: _conv_fwd(g, w, stride, padding, dilation, groups)


def _convt_rule_w(ans, x, w, out_shape, stride, padding, dilation, groups):
    w_shape = w.shape
    key = (w_shape, stride, padding, dilation, groups)
    return lambda g: _conv_dw(g, x, w_shape, stride, padding, dilation, groups,
                              _take_cols_of(g, key))


_conv_transpose2d_p = primitive(_convt_fwd, "conv_transpose2d")
defvjp(_conv_transpose2d_p, _convt_rule_x, _convt_rule_w)


def _convt_bias_fwd(x, w, b, out_shape, stride, padding, dilation, groups):
    return _conv_dx(x, w, out_shape, stride, padding, dilation, groups, b)


_conv_transpose2d_bias_p = primitive(_convt_bias_fwd, "conv_transpose2d")
defvjp(_conv_transpose2d_bias_p, lambda ans, x, w, b, **kw: _convt_rule_x(ans, x, w, **kw),
       lambda ans, x, w, b, **kw: _convt_rule_w(ans, x, w, **kw), _bias_rule)


def conv_transpose2d(x, w, bias=None, stride=1, padding=0, output_padding=0, dilation=1,
                     groups=1):
    """2-D transposed convolution (PyTorch's ``conv_transpose2d``): the adjoint of
    :func:`conv2d` in its input, ``<conv2d(a, w), y> == <a, conv_transpose2d(y, w)>``.

    Parameters
    ----------
    x : Tensor or array, shape ``[N, C, H, W]``
    w : Tensor or array, shape ``[C, O / groups, kh, kw]``
    bias : Tensor or array, shape ``[O]``, optional
    stride, padding, dilation : int or (int, int)
        Those of the convolution this op is the adjoint of.
    output_padding : int or (int, int)
        Extra rows/columns added at the bottom/right of the output (each smaller than
        the stride or the dilation), to pick among the input sizes that a strided
        convolution maps to the same output size.
    groups : int

    Returns
    -------
    Tensor, shape ``[N, O, Ho, Wo]`` with
    ``Ho = (H - 1) s - 2 p + d (kh - 1) + output_padding + 1``.
    """
    op = "conv_transpose2d"
    (n, c, h, wd), (ci, og, kh, kw) = _check_conv(op, x, w, groups,
                                                  "[C, O / groups, kh, kw]")
    s = _pair("stride", op, stride, 1)
    p = _pair("padding", op, padding, 0)
    d = _pair("dilation", op, dilation, 1)
    op_ = _pair("output_padding", op, output_padding, 0)
    if c != ci:
        raise ValueError(f"{op}: x has {c} channels but w of shape {(ci, og, kh, kw)} expects "
                         f"{ci} (= w.shape[0])")
    if c % groups:
        raise ValueError(f"{op}: the {c} input channels are not divisible by groups={groups}")
    for axis, a, ss, dd in zip("HW", op_, s, d):
        if a >= max(ss, dd):
            raise ValueError(f"{op}: output_padding along {axis} must be smaller than the "
                             f"stride or the dilation ({ss}, {dd}), got {a}")
    hw = tuple((i - 1) * ss - 2 * pp + dd * (kk - 1) + a + 1
               for i, ss, pp, dd, kk, a in zip((h, wd), s, p, d, (kh, kw), op_))
    if min(hw) < 1:
        raise ValueError(f"{op}: the output would be {hw[0]} x {hw[1]} (padding {p} is too "
                         f"large for input {h} x {wd} and kernel {kh} x {kw})")
    out_shape = (n, og * groups) + hw
    if _out_hw(op, hw, (kh, kw), s, p, d) != (h, wd):
        raise ValueError(f"{op}: input {h} x {wd} is not the conv2d output size of {hw}")
    kw = dict(out_shape=out_shape, stride=s, padding=p, dilation=d, groups=int(groups))
    if bias is None:
        return _conv_transpose2d_p(x, w, **kw)
    _check_bias(op, bias, og * groups)
    return _conv_transpose2d_bias_p(x, w, bias, **kw)


# ----------------------------------------------------------------------------- pools
def _pool_args(op, x, kernel_size, stride, padding, dilation):
    n, c, h, w = _shape4(op, "x", x)
    k = _pair("kernel_size", op, kernel_size, 1)
    s = k if stride is None else _pair("stride", op, stride, 1)
    p = _pair("padding", op, padding, 0)
    d = _pair("dilation", op, dilation, 1)
    for axis, kk, pp in zip("HW", k, p):
        if 2 * pp > kk:
            raise ValueError(f"{op}: padding along {axis} must be at most half the kernel "
                             f"size ({kk}), got {pp}")
    out_hw = _out_hw(op, (h, w), k, s, p, d)
    return k, s, p, d, out_hw


@array_op(name="max_pool2d", host=True)
def _maxpool_fwd(x, kernel, stride, padding, dilation):
    xp = backend.get_array_module(x)
    out_hw = _out_hw("max_pool2d", x.shape[2:], kernel, stride, padding, dilation)
    xpad = _pad_hw(xp, x, padding, -np.inf)
    out = None
    for i, j, sh, sw in _offsets(kernel, stride, dilation, out_hw):
        v = xpad[:, :, sh, sw]
        if out is None:
            out = v.copy()
        else:
            xp.maximum(out, v, out=out)
    return out


@array_op(name="max_pool2d_grad", host=True)
def _maxpool_dx(g, x, ans, kernel, stride, padding, dilation):
    """Each output's cotangent goes to the first maximum of its window (as PyTorch)."""
    xp = backend.get_array_module(g)
    out_hw = ans.shape[2:]
    xpad = _pad_hw(xp, x, padding, -np.inf)
    dx = xp.zeros(xpad.shape, dtype=g.dtype)
    free = xp.ones(ans.shape, dtype=bool)          # not yet routed to an earlier maximum
    for i, j, sh, sw in _offsets(kernel, stride, dilation, out_hw):
        hit = xpad[:, :, sh, sw] == ans
        hit &= free
        dx[:, :, sh, sw] += xp.where(hit, g, 0)
        free &= ~hit
    return _crop_hw(dx, padding)


_max_pool2d_p = primitive(_maxpool_fwd, "max_pool2d")
defvjp(_max_pool2d_p, lambda ans, x, kernel, stride, padding, dilation:
       lambda g: _maxpool_dx(g, x, ans, kernel, stride, padding, dilation))


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1):
    """Maximum over ``kernel_size`` windows (PyTorch's ``max_pool2d``, floor mode).

    Parameters
    ----------
    x : Tensor or array, shape ``[N, C, H, W]``
    kernel_size, stride, padding, dilation : int or (int, int)
        ``stride`` defaults to ``kernel_size``; padding (at most half the kernel) is
        with ``-inf``, so it is never the maximum.

    Returns
    -------
    Tensor, shape ``[N, C, Ho, Wo]`` (:func:`conv_output_size`). The gradient of each
    output goes to the first maximal element of its window (row-major order).
    """
    k, s, p, d, _ = _pool_args("max_pool2d", x, kernel_size, stride, padding, dilation)
    return _max_pool2d_p(x, kernel=k, stride=s, padding=p, dilation=d)


@array_op(name="avg_pool2d", host=True)
def _avgpool_fwd(x, kernel, stride, padding):
    xp = backend.get_array_module(x)
    out_hw = _out_hw("avg_pool2d", x.shape[2:], kernel, stride, padding, (1, 1))
    xpad = _pad_hw(xp, x, padding)
    out = None
    for i, j, sh, sw in _offsets(kernel, stride, (1, 1), out_hw):
        v = xpad[:, :, sh, sw]
        out = v.copy() if out is None else xp.add(out, v, out=out)
    out *= out.dtype.type(1.0 / (kernel[0] * kernel[1]))
    return out


@array_op(name="avg_pool2d_grad", host=True)
def _avgpool_dx(g, x_shape, kernel, stride, padding):
    xp = backend.get_array_module(g)
    n, c, h, w = x_shape
    dx = xp.zeros((n, c, h + 2 * padding[0], w + 2 * padding[1]), dtype=g.dtype)
    gk = g * g.dtype.type(1.0 / (kernel[0] * kernel[1]))
    for i, j, sh, sw in _offsets(kernel, stride, (1, 1), g.shape[2:]):
        dx[:, :, sh, sw] += gk
    return _crop_hw(dx, padding)


_avg_pool2d_p = primitive(_avgpool_fwd, "avg_pool2d")
defvjp(_avg_pool2d_p, lambda ans, x, kernel, stride, padding:
       (lambda shape: lambda g: _avgpool_dx(g, shape, kernel, stride, padding))(x.shape))


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    """Mean over ``kernel_size`` windows (PyTorch's ``avg_pool2d`` with its defaults:
    floor mode, zero padding counted in the mean).

    Parameters
    ----------
    x : Tensor or array, shape ``[N, C, H, W]``
    kernel_size, stride, padding : int or (int, int)
        ``stride`` defaults to ``kernel_size``; padding at most half the kernel.

    Returns
    -------
    Tensor, shape ``[N, C, Ho, Wo]`` (:func:`conv_output_size`).
    """
    k, s, p, _, _ = _pool_args("avg_pool2d", x, kernel_size, stride, padding, 1)
    return _avg_pool2d_p(x, kernel=k, stride=s, padding=p)


# ----------------------------------------------------------------------------- pad
_PAD_MODES = ("constant", "edge", "reflect", "symmetric", "wrap")


def _pad_width(pad_width, ndim):
    """NumPy's pad widths as ``((before, after),) * ndim`` of non-negative ints."""
    pw = np.asarray(pad_width)
    if pw.dtype.kind not in "iu" or np.any(pw < 0):
        raise ValueError(f"pad: pad_width must hold non-negative ints, got {pad_width!r}")
    try:
        pw = np.broadcast_to(pw, (ndim, 2))
    except ValueError:
        raise ValueError(f"pad: pad_width {pad_width!r} does not fit an array of {ndim} "
                         f"dimensions (expected an int, (before, after) or one pair per "
                         f"axis)") from None
    return tuple((int(a), int(b)) for a, b in pw)


@array_op(name="pad", host=True)
def _pad_fwd(x, pad_width, mode, value):
    xp = backend.get_array_module(x)
    if mode == "constant":
        return xp.pad(x, pad_width, mode="constant", constant_values=value)
    return xp.pad(x, pad_width, mode=mode)


@array_op(name="pad_grad", host=True)
def _pad_dx(g, x_shape, pad_width, mode):
    xp = backend.get_array_module(g)
    if mode == "constant":
        return g[tuple(slice(a, a + n) for (a, _), n in zip(pad_width, x_shape))].copy()
    # which input element each output element is a copy of: scatter-add back
    size = int(np.prod(x_shape, dtype=np.int64))
    idx = np.pad(np.arange(size).reshape(x_shape), pad_width, mode=mode)
    idx = xp.asarray(idx.ravel())
    gx = xp.bincount(idx, weights=g.ravel(), minlength=size)
    return gx.astype(g.dtype, copy=False).reshape(x_shape)


_pad_p = primitive(_pad_fwd, "pad")
defvjp(_pad_p, lambda ans, x, pad_width, mode, value:
       (lambda shape: lambda g: _pad_dx(g, shape, pad_width, mode))(x.shape))


def pad(x, pad_width, mode="constant", value=0.0):
    """Pad an array (NumPy's ``pad`` conventions, any number of dimensions).

    Parameters
    ----------
    x : Tensor or array
    pad_width : int, (before, after) or one (before, after) pair per axis
    mode : {"constant", "edge", "reflect", "symmetric", "wrap"}
        As ``numpy.pad`` (PyTorch's "replicate" is "edge", "circular" is "wrap").
    value : float
        The fill of ``mode="constant"``.

    Returns
    -------
    Tensor, each axis longer by ``before + after`` (an int ``pad_width`` pads every axis,
    batch and channels included: pad an NCHW image with
    ``((0, 0), (0, 0), (ph, ph), (pw, pw))``). The gradient of a copied element
    (edge, reflect, ...) is summed back into its source.
    """
    if mode not in _PAD_MODES:
        raise ValueError(f"pad: mode must be one of {_PAD_MODES}, got {mode!r}")
    shape = tuple(getattr(x, "shape", np.shape(x)))
    pw = _pad_width(pad_width, len(shape))
    if mode in ("reflect", "symmetric", "wrap"):
        for ax, ((a, b), n) in enumerate(zip(pw, shape)):
            if (a or b) and n == 0:
                raise ValueError(f"pad: mode {mode!r} cannot pad the empty axis {ax}")
    return _pad_p(x, pw, mode, float(value))


# ----------------------------------------------------------------------------- dropout
def _dropout_mask(rng, shape, p, dtype, xp):
    """``1 / (1 - p)`` with probability ``1 - p``, else 0, drawn from ``rng``."""
    rng_xp = np if isinstance(rng, np.random.Generator) else backend.get_array_module(rng)
    u = rng.random(shape)
    if rng_xp is not xp:
        u = xp.asarray(backend.asnumpy(u)) if xp is not np else backend.asnumpy(u)
    return ((u >= p) * (1.0 / (1.0 - p))).astype(dtype)


def dropout(x, p, rng, training=True):
    """Zero each element with probability ``p`` and scale the rest by ``1 / (1 - p)``.

    Parameters
    ----------
    x : Tensor or array (any shape)
    p : float in [0, 1)
    rng : numpy.random.Generator (or a CuPy generator)
        The source of the mask: there is no hidden global generator. Under
        :func:`autodiff.trace`/``compile`` the draw is recorded as a random source, so
        each call draws a new mask from ``rng``.
    training : bool
        With False, ``x`` is returned unchanged (evaluation).

    Returns
    -------
    Tensor of the shape and dtype of ``x``.
    """
    if not 0.0 <= float(p) < 1.0:
        raise ValueError(f"dropout: p must be in [0, 1), got {p!r}")
    if not training or p == 0:
        return x if type(x) is Tensor else tensor(x)
    if not (isinstance(rng, np.random.Generator) or
            (backend.is_cupy(rng) and hasattr(rng, "random"))):
        raise TypeError(f"dropout: rng must be a numpy.random.Generator (or a CuPy "
                        f"generator), got {type(rng).__name__}")
    shape = tuple(x.shape)
    xp = backend.get_array_module(x)
    dtype = x.dtype
    b = current_builder()
    if b is not None:
        mask = b.source(_dropout_mask, (rng, shape, float(p), dtype, xp), {}, rng)
    else:
        mask = _dropout_mask(rng, shape, float(p), dtype, xp)
    return multiply(x, mask)
