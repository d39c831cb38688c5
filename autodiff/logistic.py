"""Numba kernels for the logistic family: softplus, log-sigmoid, sigmoid and derivatives.

Every one of these is a function of ``e = exp(-|x|)`` in ``(0, 1]``, which never
overflows. NumPy builds them from 5-11 separate passes (abs, exp, log1p, where,
divide, ...); ``np.logaddexp`` and ``scipy.special.expit`` are scalar loops at
6-17 ns per element. Here each is one loop whose body is plain arithmetic that
LLVM vectorizes (no libm calls, which would keep the loop scalar):

* ``exp(y)`` for ``y`` in ``[-745, 0]``: ``y = k ln2 + r`` with ``|r| <= ln2 / 2``
  (Cody-Waite split of ln2, so ``k ln2`` is exact), ``exp(r)`` by its degree-13
  Taylor polynomial (truncation below 5e-18 relative), times ``2**k`` built from
  the exponent bits in two factors so that subnormal results round once.
* ``log1p(e)`` for ``e`` in ``[0, 1]``: ``2 atanh(s)`` with ``s = e / (2 + e)`` in
  ``[0, 1/3]``, the atanh series to ``s**35`` (truncation below 2e-18 relative).

Polynomials use Estrin's scheme (short dependency chains) and the kernels allow
FMA contraction (``fastmath={"contract"}``) but nothing that changes NaN or
infinity semantics. Each kernel is two loops over the data: the first writes
``e`` into ``out``, the second finishes in place; one fused loop spills registers
and runs slower. Accuracy: a few ulp over the whole float64 range, NaN and
infinities included (tests compare with ``np.logaddexp`` and
``scipy.special.expit``); float32 is computed in float64 and stored as float32.
Measured on the 2-core dev machine (AMD Zen 4): softplus 1.8 ns per element
against 4.1 ns for the best NumPy composition and 17 ns for ``np.logaddexp``.

The kernels take 1-D C-contiguous arrays and write into ``out``; :mod:`autodiff.ops`
calls them for NumPy arrays and keeps the NumPy composition for CuPy.
"""
import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

__all__ = ["softplus", "log_sigmoid", "sigmoid", "sigmoid_scaled", "sigmoid_vjp"]


@intrinsic
def _from_bits(typingctx, bits):
    """Reinterpret an int64 as a float64 (an LLVM bitcast, which vectorizes)."""
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())
    return sig, codegen


@intrinsic
def _to_bits(typingctx, x):
    """Reinterpret a float64 as an int64 (an LLVM bitcast, which vectorizes)."""
    sig = types.int64(types.float64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))
    return sig, codegen


_FLAGS = dict(fastmath={"contract"}, error_model="numpy")
_inline = numba.njit(inline="always", **_FLAGS)
_kernel = numba.njit(cache=True, nogil=True, **_FLAGS)

_INV_LN2 = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01    # 32 significant bits: k * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10
_EXP_MIN = -745.2                       # exp(y) rounds to 0 below this
_TWO_M60 = 2.0 ** -60

# exp: Taylor coefficients 1/i!, i = 0..13
_E0, _E1, _E2, _E3 = 1.0, 1.0, 1.0 / 2, 1.0 / 6
_E4, _E5, _E6, _E7 = 1.0 / 24, 1.0 / 120, 1.0 / 720, 1.0 / 5040
_E8, _E9, _E10, _E11 = 1.0 / 40320, 1.0 / 362880, 1.0 / 3628800, 1.0 / 39916800
_E12, _E13 = 1.0 / 479001600, 1.0 / 6227020800
# log1p: atanh series coefficients 1/(2i+1), i = 0..17
(_L0, _L1, _L2, _L3, _L4, _L5, _L6, _L7, _L8, _L9, _L10, _L11, _L12, _L13, _L14, _L15,
 _L16, _L17) = [1.0 / (2 * i + 1) for i in range(18)]


@_inline
def _exp_reduced(yc):
    """``(k, exp(r))`` with ``yc = k ln2 + r``, ``|r| <= ln2 / 2`` (Cody-Waite split, so
    ``k ln2`` is exact) and the degree-13 Taylor polynomial in Estrin's scheme."""
    k = np.floor(yc * _INV_LN2 + 0.5)
    r = (yc - k * _LN2_HI) - k * _LN2_LO
    r2 = r * r
    r4 = r2 * r2
    b0 = (_E0 + _E1 * r) + (_E2 + _E3 * r) * r2
    b1 = (_E4 + _E5 * r) + (_E6 + _E7 * r) * r2
    b2 = (_E8 + _E9 * r) + (_E10 + _E11 * r) * r2
    return k, (b0 + b1 * r4) + (b2 + (_E12 + _E13 * r) * r4) * (r4 * r4)


@_inline
def _exp_nonpos(y):
    """exp(y) for y <= 0; NaN propagates."""
    k, p = _exp_reduced(max(y, _EXP_MIN))
    # 2**k = 2**(k + 60) * 2**-60: k + 60 + 1023 >= 8 keeps the first factor normal
    e = p * _from_bits((np.int64(k) + 1083) << 52) * _TWO_M60
    if y < _EXP_MIN:
        e = 0.0
    if y != y:
        e = y
    return e


@_inline
def _log1p_unit(e):
    """log1p(e) for e in [0, 1]."""
    s = e / (2.0 + e)
    z = s * s
    z2 = z * z
    z4 = z2 * z2
    z8 = z4 * z4
    b0 = (_L0 + _L1 * z) + (_L2 + _L3 * z) * z2
    b1 = (_L4 + _L5 * z) + (_L6 + _L7 * z) * z2
    b2 = (_L8 + _L9 * z) + (_L10 + _L11 * z) * z2
    b3 = (_L12 + _L13 * z) + (_L14 + _L15 * z) * z2
    p = ((b0 + b1 * z4) + (b2 + b3 * z4) * z8) + (_L16 + _L17 * z) * (z8 * z8)
    return 2.0 * s * p


@_inline
def _exp_any(y):
    """exp(y) over the whole float64 range (NaN and infinities included), without libm:
    the reduction and polynomial of :func:`_exp_nonpos`, scaled by 2**k in two normal
    factors so that overflow gives inf and subnormal results round once."""
    k, p = _exp_reduced(min(max(y, _EXP_MIN), 709.8))
    ki = np.int64(k)
    k1 = ki >> 1
    e = p * _from_bits((k1 + 1023) << 52) * _from_bits((ki - k1 + 1023) << 52)
    if y < _EXP_MIN:
        e = 0.0
    if y > 709.79:
        e = np.inf
    if y != y:
        e = y
    return e


_SQRT2 = 1.4142135623730951
_MANT = (1 << 52) - 1


@_inline
def _log_any(x):
    """log(x) over the whole float64 range without libm: ``x = m 2**e`` with ``m`` in
    ``[sqrt(1/2), sqrt(2))`` from the bits, ``log m = 2 atanh(s)``, ``s = (m-1)/(m+1)``
    (|s| < 0.172, the series to s**23). Subnormals are scaled up first; 0 gives -inf,
    negatives NaN."""
    sub = x < 2.2250738585072014e-308
    xs = x * 18014398509481984.0 if sub else x          # 2**54
    b = _to_bits(xs)
    ex = ((b >> 52) & 0x7FF) - 1023
    m = _from_bits((b & _MANT) | (np.int64(1023) << 52))
    big = m > _SQRT2
    m = m * 0.5 if big else m
    e = np.float64(ex + (1 if big else 0) - (54 if sub else 0))
    s = (m - 1.0) / (m + 1.0)
    z = s * s
    z2 = z * z
    z4 = z2 * z2
    b0 = (_L0 + _L1 * z) + (_L2 + _L3 * z) * z2
    b1 = (_L4 + _L5 * z) + (_L6 + _L7 * z) * z2
    b2 = (_L8 + _L9 * z) + (_L10 + _L11 * z) * z2
    p = (b0 + b1 * z4) + b2 * (z4 * z4)
    r = (e * _LN2_HI + 2.0 * s * p) + e * _LN2_LO
    if x == 0.0:
        r = -np.inf
    if x < 0.0 or x != x:
        r = np.nan
    if x == np.inf:
        r = x
    return r


@_inline
def _log1p_any(x):
    """log1p(x) for x >= -1 without libm: ``log(u) * x / (u - 1)`` with ``u = 1 + x``
    (Goldberg's correction of the rounding in ``u``), ``x`` itself when ``u == 1``."""
    u = 1.0 + x
    d = u - 1.0
    r = _log_any(u) * (x / d) if d != 0.0 else x
    if x == np.inf:
        r = x
    return r


@_inline
def _fill_exp_neg_abs(x, out):
    """out[i] = exp(-|x[i]|) (the same for x and -x)."""
    for i in range(x.shape[0]):
        out[i] = _exp_nonpos(-abs(np.float64(x[i])))


@_kernel
def softplus(x, out):
    """``out[i] = log(1 + exp(x[i]))`` over 1-D arrays."""
    _fill_exp_neg_abs(x, out)
    for i in range(x.shape[0]):
        xd = np.float64(x[i])
        v = max(xd, 0.0) + _log1p_unit(np.float64(out[i]))
        if xd != xd:
            v = xd
        out[i] = v


@_kernel
def log_sigmoid(x, out):
    """``out[i] = -log(1 + exp(-x[i]))`` over 1-D arrays."""
    _fill_exp_neg_abs(x, out)
    for i in range(x.shape[0]):
        xd = np.float64(x[i])
        v = min(xd, 0.0) - _log1p_unit(np.float64(out[i]))
        if xd != xd:
            v = xd
        out[i] = v


@_inline
def _sigmoid_from(xd, e, sign):
    """sigmoid(sign * x) from e = exp(-|x|)."""
    num = 1.0 if sign * xd >= 0.0 else e
    s = num / (1.0 + e)
    if xd != xd:
        s = xd
    return s


@_kernel
def sigmoid(x, out):
    """``out[i] = 1 / (1 + exp(-x[i]))`` over 1-D arrays."""
    _fill_exp_neg_abs(x, out)
    for i in range(x.shape[0]):
        out[i] = _sigmoid_from(np.float64(x[i]), np.float64(out[i]), 1.0)


@_kernel
def sigmoid_scaled(g, x, sign, out):
    """``out[i] = g[i] * sigmoid(sign * x[i])`` (the VJP of softplus with sign 1,
    of log_sigmoid with sign -1)."""
    _fill_exp_neg_abs(x, out)
    for i in range(x.shape[0]):
        out[i] = g[i] * _sigmoid_from(np.float64(x[i]), np.float64(out[i]), sign)


@_kernel
def sigmoid_vjp(g, x, out):
    """``out[i] = g[i] * sigmoid(x[i]) * sigmoid(-x[i]) = g[i] * e / (1 + e)**2``."""
    _fill_exp_neg_abs(x, out)
    for i in range(x.shape[0]):
        xd = np.float64(x[i])
        e = np.float64(out[i])
        u = 1.0 + e
        d = e / (u * u)
        if xd != xd:
            d = xd
        out[i] = g[i] * d
