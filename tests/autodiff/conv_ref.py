"""Direct-loop NumPy references for the ops of :mod:`autodiff.conv` (float64, slow, clear).

Each loops over output positions and kernel offsets with explicit bounds checks for the
padding, independent of the im2col code under test.
"""
import numpy as np


def _pair(v):
    return (v, v) if np.ndim(v) == 0 else tuple(v)


def conv2d(x, w, bias=None, stride=1, padding=0, dilation=1, groups=1):
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    og = o // groups
    y = np.zeros((n, o, ho, wo), dtype=np.result_type(x, w))
    for oc in range(o):
        cs = slice((oc // og) * cg, (oc // og + 1) * cg)
        for a in range(ho):
            for b in range(wo):
                acc = np.zeros(n, dtype=y.dtype)
                for i in range(kh):
                    for j in range(kw):
                        r, s = a * sh - ph + i * dh, b * sw - pw + j * dw
                        if 0 <= r < h and 0 <= s < wd:
                            acc += x[:, cs, r, s] @ w[oc, :, i, j]
                y[:, oc, a, b] = acc
    if bias is not None:
        y += bias[None, :, None, None]
    return y


def conv_transpose2d(x, w, bias=None, stride=1, padding=0, output_padding=0, dilation=1,
                     groups=1):
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    oph, opw = _pair(output_padding)
    n, c, h, wd = x.shape
    _, og, kh, kw = w.shape
    cg = c // groups
    ho = (h - 1) * sh - 2 * ph + dh * (kh - 1) + oph + 1
    wo = (wd - 1) * sw - 2 * pw + dw * (kw - 1) + opw + 1
    y = np.zeros((n, og * groups, ho, wo), dtype=np.result_type(x, w))
    for ci in range(c):
        grp = ci // cg
        for a in range(h):
            for b in range(wd):
                for i in range(kh):
                    for j in range(kw):
                        r, s = a * sh - ph + i * dh, b * sw - pw + j * dw
                        if 0 <= r < ho and 0 <= s < wo:
                            y[:, grp * og:(grp + 1) * og, r, s] += \
                                x[:, ci, a, b][:, None] * w[ci, :, i, j][None, :]
    if bias is not None:
        y += bias[None, :, None, None]
    return y


def _pool(x, kernel_size, stride, padding, dilation, reduce, fill):
    kh, kw = _pair(kernel_size)
    (sh, sw) = _pair(kernel_size if stride is None else stride)
    (ph, pw), (dh, dw) = _pair(padding), _pair(dilation)
    n, c, h, wd = x.shape
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    y = np.zeros((n, c, ho, wo), dtype=x.dtype)
    for a in range(ho):
        for b in range(wo):
            vals = []
            for i in range(kh):
                for j in range(kw):
                    r, s = a * sh - ph + i * dh, b * sw - pw + j * dw
                    inside = 0 <= r < h and 0 <= s < wd
                    vals.append(x[:, :, r, s] if inside else np.full((n, c), fill, x.dtype))
            y[:, :, a, b] = reduce(np.stack(vals))
    return y


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1):
    return _pool(x, kernel_size, stride, padding, dilation, lambda v: v.max(0), -np.inf)


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    kh, kw = _pair(kernel_size)
    return _pool(x, kernel_size, stride, padding, 1, lambda v: v.sum(0) / (kh * kw), 0.0)


def pad(x, pad_width, mode="constant", value=0.0):
    """Padding by explicit index arithmetic (not numpy.pad)."""
    pw = np.broadcast_to(np.asarray(pad_width), (x.ndim, 2))
    out_shape = tuple(n + a + b for n, (a, b) in zip(x.shape, pw))
    y = np.full(out_shape, value, dtype=x.dtype)
    for idx in np.ndindex(*out_shape):
        src = []
        for k, (n, (a, _)) in zip(idx, zip(x.shape, pw)):
            i = k - a
            if 0 <= i < n:
                src.append(i)
            elif mode == "constant":
                src = None
                break
            elif mode == "edge":
                src.append(min(max(i, 0), n - 1))
            elif mode == "wrap":
                src.append(i % n)
            elif mode == "reflect":          # mirror without repeating the edge
                period = 2 * (n - 1) if n > 1 else 1
                i = i % period
                src.append(i if i < n else period - i)
            elif mode == "symmetric":        # mirror repeating the edge
                i = i % (2 * n)
                src.append(i if i < n else 2 * n - 1 - i)
        if src is not None:
            y[idx] = x[tuple(src)]
    return y
