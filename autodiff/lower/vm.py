"""The machine compiled programs run on: one Numba function that interprets a table.

A lowered program (:mod:`autodiff.lower.cpu`) is a table of instructions, one
``int64`` row each, over one flat workspace array ``w`` (float64, or float32 for
float32 programs) that holds every constant, input, intermediate and output, plus an
``int64`` table ``tab`` of gather/scatter offsets. :func:`run` executes rows
``start .. end``. It is compiled once (and cached on disk by Numba), so lowering a new
program costs no compilation at all: a program is data.

Why an interpreter rather than generated code: Numba's compile time grows faster than
linearly with the size of a function (about 6 s for 100 small loop nests and 130 s for
500, measured on the CI machine class), and log densities with time loops or many
small terms have thousands of operations. Dispatching a row costs 20-30 ns; the loops
inside a row are ordinary compiled loops (unit-stride inner loops vectorize, large
matrix products go to BLAS: NumPy's, called directly, where it can be, see
:mod:`.blas`).

A row (``W`` fields, indices named below) describes an operation on up to four
strided views of the workspace, each an offset and up to four strides (in elements)
over a loop nest of up to four dimensions ``n0..n3``::

    OP  ND  N0 N1 N2 N3  O SO0..SO3  A SA0..SA3  B SB0..SB3  C SC0..SC3  X0..X3  LO LA LB LC

``X0..X3`` are operation-specific integers; ``LO..LC`` are per-iteration offsets of the
four views inside a loop (``scan``): view offset = offset + t * L.

Values are stored as floats whatever their dtype: booleans as 0/1, integers exactly
(to 2^53 in float64, 2^24 in float32).
"""
import math

import numba
import numpy as np

from ..logistic import _exp_any, _exp_nonpos, _log1p_any, _log1p_unit, _log_any
from .blas import NO_TRANS, TRANS, cblas_gemm

__all__ = ["run", "fused_part", "matmul_part", "W", "OP", "UN", "BIN", "RED", "BLAS_MIN"]

# ----------------------------------------------------------------------------- layout
W = 34
(F_OP, F_ND, F_N0, F_N1, F_N2, F_N3, F_O, F_SO0, F_SO1, F_SO2, F_SO3, F_A, F_SA0, F_SA1,
 F_SA2, F_SA3, F_B, F_SB0, F_SB1, F_SB2, F_SB3, F_C, F_SC0, F_SC1, F_SC2, F_SC3,
 F_X0, F_X1, F_X2, F_X3, F_LO, F_LA, F_LB, F_LC) = range(W)


class OP:
    """Operation codes (column ``OP``)."""
    UNARY = 1          # o = f(a), f = X0
    BINARY = 2         # o = f(a, b), f = X0
    SELECT = 3         # o = b if a else c
    REDUCE = 4         # o (op)= a over the loop nest (o has stride 0 on reduced dims); X0 kind,
    #                    X1 the chunk of a contiguous sum (a FUSED row's tile; 0: whole)
    MATMUL = 5         # batched [n0, n1] x [M, K] @ [K, N]; X0..X2 = M, K, N; X3 = use BLAS
    GATHER = 6         # o[i] = a[tab[X0 + i]], i < n0 (o contiguous)
    SCATTER_ADD = 7    # o[tab[X0 + i]] += a[i], i < n0 (a contiguous)
    SCAN_AXIS = 8      # cumulative X0-kind along dim 3
    CHOLESKY = 9       # batched [n0, n1]: lower factor of a [N, N] (X0 = N); NaN if not PD,
    #                    or stop (status) when X1 = 1 (a single matrix: the tape raises)
    TRISOLVE = 10      # batched: solve tri(a) x = b, a [N, N], b [N, K]; X0 = N, X1 = K, X2 lower
    CHECK = 11         # stop with status row + 1 unless every element of a is nonzero
    LOOP = 12          # start a loop of X0 iterations over rows up to X1 (its END)
    END = 13           # end of the loop started at row X0
    ROUND32 = 14       # o = float32(a) (values of float32 variables in a float64 program)
    DYNGATHER = 15     # o[i...] = a[... + idx * X1 ...]: a view whose dim-3 offset is index b
    TRIL_MASK = 16     # o = a where (row - col) in range(X0, X1) else 0 (rows dim 2, cols 3)
    GAUSS = 17         # batched: a [N, N] (overwritten) x = o [N, K] (rhs in, solution out);
    #                    NaN if singular, or stop (status) when X2 = 1
    SLOGDET = 18       # batched: a [N, N] (overwritten); o = log|det|, b = sign
    ARGREDUCE = 19     # o = index of the max (X0 = 0) / min (X0 = 1) of a along dim 3
    DYNSCATTER = 20    # o[... + idx * X1 ...] += a[i...], idx read at b (as DYNGATHER)
    FUSED = 21         # X1 member rows at tab[X0:], run tile by tile (X3 elements of dim 3)
    #                    over the loop nest N0..N3, scratch slots from X2 (see .fuse)
    NOP = 0            # a row taken into a FUSED row


class UN:
    """Unary functions (``X0`` of UNARY)."""
    COPY, NEG, EXP, LOG, LOG1P, EXPM1, SQRT, SQUARE, ABS, SIN, COS, TAN, TANH, ARCTAN, \
        SIGN, FLOOR, CEIL, RINT, ISFINITE, ISNAN, ISINF, NOT, RECIPROCAL, EXPIT, LGAMMA, \
        DIGAMMA, ERF, ERFC, TRIGAMMA, BOOL, TRUNC, ARCSIN, ARCCOS, SINH, COSH, ARCSINH, \
        LOG_EXPIT, SOFTPLUS, ARCTANH, LOG2, LOG10, EXP2, CBRT, GAMMA, NDTR, LOG_NDTR = range(46)


class BIN:
    """Binary functions (``X0`` of BINARY)."""
    ADD, SUB, MUL, DIV, POW, MAX, MIN, LT, LE, GT, GE, EQ, NE, AND, OR, XOR, LOGADDEXP, \
        ARCTAN2, FLOORDIV, MOD, FMAX, FMIN, HYPOT, XLOGY, COPYSIGN, XLOG1PY = range(26)


class RED:
    """Reductions (``X0`` of REDUCE and SCAN_AXIS)."""
    SUM, MAX, MIN, PROD, ANY, ALL = range(6)


#: Matrix products with at least this many multiply-adds use BLAS (see :mod:`.blas`).
BLAS_MIN = 4096

# FMA contraction on (the polynomial loops below vectorize only with it); nothing that
# changes NaN or infinity semantics
_jit = numba.njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
_inline = numba.njit(inline="always", error_model="numpy", fastmath={"contract"})


# ----------------------------------------------------------------------------- scalars
# Plain Python, compiled twice: inlined into the CPU machine here and into the GPU
# machine by :mod:`.cuda` (see :func:`compile_scalars`), so both compute the same
# functions. Only what both Numba targets accept is used (math, float arithmetic).
def _rint(x):
    """Round half to even (np.rint)."""
    if x - x != 0.0:
        return x
    r = math.floor(x + 0.5)
    if r - x == 0.5 and r - 2.0 * math.floor(r / 2.0) != 0.0:
        r -= 1.0
    return r


def _digamma(x):
    if x != x or x == -np.inf:
        return np.nan
    if x <= 0.0 and math.floor(x) == x:
        return np.nan
    r = 0.0
    if x < 0.0:                                  # reflection
        r = -np.pi / math.tan(np.pi * x)
        x = 1.0 - x
    while x < 10.0:
        r -= 1.0 / x
        x += 1.0
    f = 1.0 / (x * x)
    t = f * (-1.0 / 12 + f * (1.0 / 120 + f * (-1.0 / 252 + f * (1.0 / 240 + f * (
        -1.0 / 132 + f * (691.0 / 32760 + f * (-1.0 / 12)))))))
    return r + math.log(x) - 0.5 / x + t


def _trigamma(x):
    if x != x or x == -np.inf:
        return np.nan
    if x <= 0.0 and math.floor(x) == x:
        return np.inf
    r = 0.0
    if x < 0.0:                                  # reflection: psi1(1-x) + psi1(x) = pi^2/sin^2
        s = math.sin(np.pi * x)
        return -_trigamma_pos(1.0 - x) + np.pi * np.pi / (s * s)
    return r + _trigamma_pos(x)


def _trigamma_pos(x):
    r = 0.0
    while x < 10.0:
        r += 1.0 / (x * x)
        x += 1.0
    f = 1.0 / (x * x)
    t = 1.0 / x + f / 2.0 + f / x * (1.0 / 6 + f * (-1.0 / 30 + f * (1.0 / 42 + f * (
        -1.0 / 30 + f * (5.0 / 66 + f * (-691.0 / 2730 + f * (7.0 / 6)))))))
    return r + t


def _expit(x):
    if x >= 0.0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def _softplus(x):
    return max(x, 0.0) + math.log1p(math.exp(-abs(x))) if x == x else x


def _logaddexp(a, b):
    if a == b:
        return a + math.log(2.0) if a == a else a
    m = max(a, b)
    if m != m:
        return m
    return m + math.log1p(math.exp(-abs(a - b)))


def _ndtr(x):
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def _log_ndtr(x):
    if x > -20.0:
        return math.log(_ndtr(x))
    # asymptotic series for the lower tail
    z = x * x
    s = 1.0 - 1.0 / z + 3.0 / (z * z) - 15.0 / (z * z * z)
    return -0.5 * z - math.log(-x) - 0.5 * math.log(2.0 * np.pi) + math.log(s)


def _un(f, x):
    if f == 0:
        return x
    elif f == 1:
        return -x
    elif f == 2:
        return math.exp(x)
    elif f == 3:
        return math.log(x) if x > 0.0 else (-np.inf if x == 0.0 else np.nan)
    elif f == 4:
        return math.log1p(x) if x > -1.0 else (-np.inf if x == -1.0 else np.nan)
    elif f == 5:
        return math.expm1(x)
    elif f == 6:
        return math.sqrt(x) if x >= 0.0 else np.nan
    elif f == 7:
        return x * x
    elif f == 8:
        return abs(x)
    elif f == 9:
        return math.sin(x)
    elif f == 10:
        return math.cos(x)
    elif f == 11:
        return math.tan(x)
    elif f == 12:
        return math.tanh(x)
    elif f == 13:
        return math.atan(x)
    elif f == 14:
        return (x > 0.0) - (x < 0.0) if x == x else x
    elif f == 15:
        return math.floor(x) if x - x == 0.0 else x
    elif f == 16:
        return math.ceil(x) if x - x == 0.0 else x
    elif f == 17:
        return _rint(x)
    elif f == 18:
        return 1.0 if x - x == 0.0 else 0.0
    elif f == 19:
        return 1.0 if x != x else 0.0
    elif f == 20:
        return 1.0 if (x == np.inf or x == -np.inf) else 0.0
    elif f == 21:
        return 1.0 if x == 0.0 else 0.0
    elif f == 22:
        return 1.0 / x
    elif f == 23:
        return _expit(x)
    elif f == 24:
        return math.lgamma(x) if (x > 0.0 or math.floor(x) != x) else np.inf
    elif f == 25:
        return _digamma(x)
    elif f == 26:
        return math.erf(x)
    elif f == 27:
        return math.erfc(x)
    elif f == 28:
        return _trigamma(x)
    elif f == 29:
        return 1.0 if x != 0.0 else 0.0
    elif f == 30:
        return math.trunc(x) if x - x == 0.0 else x
    elif f == 31:
        return math.asin(x) if -1.0 <= x <= 1.0 else np.nan
    elif f == 32:
        return math.acos(x) if -1.0 <= x <= 1.0 else np.nan
    elif f == 33:
        return math.sinh(x)
    elif f == 34:
        return math.cosh(x)
    elif f == 35:
        return math.asinh(x)
    elif f == 36:
        return -_softplus(-x)
    elif f == 37:
        return _softplus(x)
    elif f == 38:
        if -1.0 < x < 1.0:
            return math.atanh(x)
        return math.copysign(np.inf, x) if abs(x) == 1.0 else np.nan
    elif f == 39:
        return math.log2(x) if x > 0.0 else (-np.inf if x == 0.0 else np.nan)
    elif f == 40:
        return math.log10(x) if x > 0.0 else (-np.inf if x == 0.0 else np.nan)
    elif f == 41:
        return 2.0 ** x
    elif f == 42:
        return math.copysign(abs(x) ** (1.0 / 3.0), x)
    elif f == 43:
        return math.gamma(x) if (x > 0.0 or math.floor(x) != x) else np.nan
    elif f == 44:
        return _ndtr(x)
    elif f == 45:
        return _log_ndtr(x)
    return np.nan


def _bin(f, x, y):
    if f == 0:
        return x + y
    elif f == 1:
        return x - y
    elif f == 2:
        return x * y
    elif f == 3:
        return x / y
    elif f == 4:
        return x ** y
    elif f == 5:
        return x if (x > y or x != x) else y
    elif f == 6:
        return x if (x < y or x != x) else y
    elif f == 7:
        return 1.0 if x < y else 0.0
    elif f == 8:
        return 1.0 if x <= y else 0.0
    elif f == 9:
        return 1.0 if x > y else 0.0
    elif f == 10:
        return 1.0 if x >= y else 0.0
    elif f == 11:
        return 1.0 if x == y else 0.0
    elif f == 12:
        return 1.0 if x != y else 0.0
    elif f == 13:
        return 1.0 if (x != 0.0 and y != 0.0) else 0.0
    elif f == 14:
        return 1.0 if (x != 0.0 or y != 0.0) else 0.0
    elif f == 15:
        return 1.0 if ((x != 0.0) != (y != 0.0)) else 0.0
    elif f == 16:
        return _logaddexp(x, y)
    elif f == 17:
        return math.atan2(x, y)
    elif f == 18:
        return math.floor(x / y) if y != 0.0 else x / y
    elif f == 19:
        if y == 0.0:
            return np.nan
        return x - y * math.floor(x / y)
    elif f == 20:
        return x if (x >= y or y != y) else y
    elif f == 21:
        return x if (x <= y or y != y) else y
    elif f == 22:
        return math.hypot(x, y)
    elif f == 23:
        return 0.0 if x == 0.0 and y == y else x * math.log(y)
    elif f == 24:
        return math.copysign(x, y)
    elif f == 25:
        return 0.0 if x == 0.0 and y == y else x * math.log1p(y)
    return np.nan


def _combine(kind, acc, x):
    if kind == 0:
        return acc + x
    elif kind == 1:
        return x if (x > acc or x != x) else acc
    elif kind == 2:
        return x if (x < acc or x != x) else acc
    elif kind == 3:
        return acc * x
    elif kind == 4:
        return 1.0 if (acc != 0.0 or x != 0.0) else 0.0
    return 1.0 if (acc != 0.0 and x != 0.0) else 0.0


SCALARS = (_rint, _digamma, _trigamma, _trigamma_pos, _expit, _softplus, _logaddexp, _ndtr,
           _log_ndtr, _un, _bin, _combine)


def compile_scalars(deco):
    """The scalar functions compiled with ``deco`` (``numba.njit(inline="always")`` or
    ``numba.cuda.jit(device=True)``), calling each other's compiled versions."""
    import types
    ns = {"math": math, "np": np}
    for f in SCALARS:
        ns[f.__name__] = deco(types.FunctionType(f.__code__, ns, f.__name__))
    return ns


_CPU = compile_scalars(_inline)
_un, _bin, _combine = _CPU["_un"], _CPU["_bin"], _CPU["_combine"]


# Vectorizable versions of the hottest functions (no libm calls: polynomials on the bits,
# see autodiff.logistic), used by the CPU machine's contiguous inner loops; a few ulp of
# the libm ones.
@_inline
def _expit_v(x):
    e = _exp_nonpos(-abs(x))
    r = 1.0 / (1.0 + e)
    return r if x >= 0.0 else e * r


@_inline
def _softplus_v(x):
    r = max(x, 0.0) + _log1p_unit(_exp_nonpos(-abs(x)))
    return x if x != x else r


@_inline
def _log_expit_v(x):
    r = min(x, 0.0) - _log1p_unit(_exp_nonpos(-abs(x)))
    return x if x != x else r


@_inline
def _logaddexp_v(a, b):
    r = max(a, b) + _log1p_unit(_exp_nonpos(-abs(a - b)))
    if a == b:
        r = a + 0.6931471805599453
    if a != a or b != b:
        r = np.nan
    return r


# tanh on |x| < 0.625: x + x z P(z) / Q(z), z = x^2 (the rational of Cephes's tanh,
# within 1 ulp there); beyond, (1 - e) / (1 + e) with e = exp(-2|x|) <= 0.29 (no
# cancellation)
_TP0, _TP1, _TP2 = -9.64399179425052238628e-1, -9.92877231001918586564e1, \
    -1.61468768441708447952e3
_TQ0, _TQ1, _TQ2 = 1.12811678491632931402e2, 2.23548839060100448583e3, \
    4.84406305325125486048e3


@_inline
def _tanh_v(x):
    a = abs(x)
    z = x * x
    r = x + x * z * (((_TP0 * z + _TP1) * z + _TP2) / (((z + _TQ0) * z + _TQ1) * z + _TQ2))
    e = _exp_nonpos(-2.0 * a)
    t = (1.0 - e) / (1.0 + e)
    if a >= 0.625:
        r = t if x > 0.0 else -t
    if x == 0.0 or x != x:
        r = x                                  # keeps -0.0; NaN propagates
    return r


# The contiguous loops below index the workspace with unsigned integers: an int64 index
# may be negative, and the wrap-around Numba then emits keeps LLVM from vectorizing; slices
# would vectorize too but cost two reference counts per row (rows are often a few
# elements long: 3x slower on the HMM).
@_jit
def _unary_fast(f, w, oo, aa, n):
    """``w[oo + i] = f(w[aa + i])`` for the vectorizable functions; False for the
    others."""
    o, a, m = np.uint64(oo), np.uint64(aa), np.uint64(n)
    # the cheap ones in the workspace's own precision (as ``_un``), one loop each: a
    # loop that calls ``_un`` tests the function code per element and stays scalar
    if f == 0:
        for i in range(m):
            w[o + i] = w[a + i]
    elif f == 1:
        for i in range(m):
            w[o + i] = -w[a + i]
    elif f == 6:
        for i in range(m):
            x = w[a + i]
            w[o + i] = math.sqrt(x) if x >= 0.0 else np.nan
    elif f == 7:
        for i in range(m):
            x = w[a + i]
            w[o + i] = x * x
    elif f == 8:
        for i in range(m):
            w[o + i] = abs(w[a + i])
    elif f == 2:
        for i in range(m):
            w[o + i] = _exp_any(np.float64(w[a + i]))
    elif f == 3:
        for i in range(m):
            w[o + i] = _log_any(np.float64(w[a + i]))
    elif f == 4:
        for i in range(m):
            w[o + i] = _log1p_any(np.float64(w[a + i]))
    elif f == 23:
        for i in range(m):
            w[o + i] = _expit_v(np.float64(w[a + i]))
    elif f == 36:
        for i in range(m):
            w[o + i] = _log_expit_v(np.float64(w[a + i]))
    elif f == 37:
        for i in range(m):
            w[o + i] = _softplus_v(np.float64(w[a + i]))
    elif f == 12:
        for i in range(m):
            w[o + i] = _tanh_v(np.float64(w[a + i]))
    elif f == 18:
        for i in range(m):
            x = w[a + i]
            w[o + i] = 1.0 if x - x == 0.0 else 0.0
    elif f == 19:
        for i in range(m):
            x = w[a + i]
            w[o + i] = 1.0 if x != x else 0.0
    elif f == 21:
        for i in range(m):
            w[o + i] = 1.0 if w[a + i] == 0.0 else 0.0
    else:
        return False
    return True


@_inline
def _add(x, y):
    return x + y


@_inline
def _sub(x, y):
    return x - y


@_inline
def _mul(x, y):
    return x * y


@_inline
def _div(x, y):
    return x / y


@_inline
def _max(x, y):
    return x if (x > y or x != x) else y


@_inline
def _min(x, y):
    return x if (x < y or x != x) else y


@_inline
def _lt(x, y):
    return 1.0 if x < y else 0.0


@_inline
def _le(x, y):
    return 1.0 if x <= y else 0.0


@_inline
def _gt(x, y):
    return 1.0 if x > y else 0.0


@_inline
def _ge(x, y):
    return 1.0 if x >= y else 0.0


@_inline
def _eq(x, y):
    return 1.0 if x == y else 0.0


@_inline
def _ne(x, y):
    return 1.0 if x != y else 0.0


@_inline
def _and(x, y):
    return 1.0 if (x != 0.0 and y != 0.0) else 0.0


@_inline
def _or(x, y):
    return 1.0 if (x != 0.0 or y != 0.0) else 0.0


@_inline
def _loop2(g, w, o, a, b, m, sa, sb):
    """``w[o + i] = g(w[a + i sa], w[b + i sb])`` (unsigned indices, one loop per
    function ``g``: Numba specializes on it); False unless both strides are 0 or 1."""
    if sa == 1 and sb == 1:
        for i in range(m):
            w[o + i] = g(np.float64(w[a + i]), np.float64(w[b + i]))
    elif sa == 0 and sb == 1:
        x0 = np.float64(w[a])
        for i in range(m):
            w[o + i] = g(x0, np.float64(w[b + i]))
    elif sa == 1 and sb == 0:
        y0 = np.float64(w[b])
        for i in range(m):
            w[o + i] = g(np.float64(w[a + i]), y0)
    elif sa == 0 and sb == 0:             # one value, repeated (a broadcast cotangent)
        v = g(np.float64(w[a]), np.float64(w[b]))
        for i in range(m):
            w[o + i] = v
    else:
        return False
    return True


@_jit
def _binary_vec(f, w, oo, aa, bb, n, sa, sb):
    """Contiguous runs of the arithmetic, comparison, logical, max/min and logaddexp
    functions (either operand may repeat one value; one vector loop per function);
    False for the others."""
    o, a, b, m = np.uint64(oo), np.uint64(aa), np.uint64(bb), np.uint64(n)
    if f == 0:
        return _loop2(_add, w, o, a, b, m, sa, sb)
    elif f == 1:
        return _loop2(_sub, w, o, a, b, m, sa, sb)
    elif f == 2:
        return _loop2(_mul, w, o, a, b, m, sa, sb)
    elif f == 3:
        return _loop2(_div, w, o, a, b, m, sa, sb)
    elif f == 5:
        return _loop2(_max, w, o, a, b, m, sa, sb)
    elif f == 6:
        return _loop2(_min, w, o, a, b, m, sa, sb)
    elif f == 7:
        return _loop2(_lt, w, o, a, b, m, sa, sb)
    elif f == 8:
        return _loop2(_le, w, o, a, b, m, sa, sb)
    elif f == 9:
        return _loop2(_gt, w, o, a, b, m, sa, sb)
    elif f == 10:
        return _loop2(_ge, w, o, a, b, m, sa, sb)
    elif f == 11:
        return _loop2(_eq, w, o, a, b, m, sa, sb)
    elif f == 12:
        return _loop2(_ne, w, o, a, b, m, sa, sb)
    elif f == 13:
        return _loop2(_and, w, o, a, b, m, sa, sb)
    elif f == 14:
        return _loop2(_or, w, o, a, b, m, sa, sb)
    elif f == 16:
        return _loop2(_logaddexp_v, w, o, a, b, m, sa, sb)
    return False


# ----------------------------------------------------------------------------- row bodies
@_inline
def _four(code, pc, f):
    """Fields ``f .. f + 3`` of row ``pc`` (the loop sizes, or one view's strides)."""
    return code[pc, f], code[pc, f + 1], code[pc, f + 2], code[pc, f + 3]


@_inline
def _binary_fast(f, w, oo, aa, bb, n, sa, sb):
    """The row bodies' fast path: logaddexp only (the arithmetic ones pay in fused rows,
    where runs are long; here their extra code slows the many short rows)."""
    if f != 16:
        return False
    return _loop2(_logaddexp_v, w, np.uint64(oo), np.uint64(aa), np.uint64(bb),
                  np.uint64(n), sa, sb)


@_jit
def _unary(w, code, pc, o, a):
    f = code[pc, F_X0]
    n0, n1, n2, n3 = _four(code, pc, F_N0)
    so0, so1, so2, so3 = _four(code, pc, F_SO0)
    sa0, sa1, sa2, sa3 = _four(code, pc, F_SA0)
    for i0 in range(n0):
        for i1 in range(n1):
            for i2 in range(n2):
                oo = o + i0 * so0 + i1 * so1 + i2 * so2
                aa = a + i0 * sa0 + i1 * sa1 + i2 * sa2
                if so3 == 1 and sa3 == 1:
                    if not _unary_fast(f, w, oo, aa, n3):
                        uo, ua = np.uint64(oo), np.uint64(aa)
                        for i3 in range(np.uint64(n3)):
                            w[uo + i3] = _un(f, w[ua + i3])
                else:
                    for i3 in range(n3):
                        w[oo + i3 * so3] = _un(f, w[aa + i3 * sa3])


@_jit
def _binary(w, code, pc, o, a, b):
    f = code[pc, F_X0]
    n0, n1, n2, n3 = _four(code, pc, F_N0)
    so0, so1, so2, so3 = _four(code, pc, F_SO0)
    sa0, sa1, sa2, sa3 = _four(code, pc, F_SA0)
    sb0, sb1, sb2, sb3 = _four(code, pc, F_SB0)
    for i0 in range(n0):
        for i1 in range(n1):
            for i2 in range(n2):
                oo = o + i0 * so0 + i1 * so1 + i2 * so2
                aa = a + i0 * sa0 + i1 * sa1 + i2 * sa2
                bb = b + i0 * sb0 + i1 * sb1 + i2 * sb2
                if so3 == 1 and _binary_fast(f, w, oo, aa, bb, n3, sa3, sb3):
                    pass
                elif so3 == 1 and sa3 == 1 and sb3 == 1:
                    uo, ua, ub = np.uint64(oo), np.uint64(aa), np.uint64(bb)
                    for i3 in range(np.uint64(n3)):
                        w[uo + i3] = _bin(f, w[ua + i3], w[ub + i3])
                elif so3 == 1 and sa3 == 1 and sb3 == 0:
                    y, uo, ua = w[bb], np.uint64(oo), np.uint64(aa)
                    for i3 in range(np.uint64(n3)):
                        w[uo + i3] = _bin(f, w[ua + i3], y)
                elif so3 == 1 and sa3 == 0 and sb3 == 1:
                    x, uo, ub = w[aa], np.uint64(oo), np.uint64(bb)
                    for i3 in range(np.uint64(n3)):
                        w[uo + i3] = _bin(f, x, w[ub + i3])
                else:
                    for i3 in range(n3):
                        w[oo + i3 * so3] = _bin(f, w[aa + i3 * sa3], w[bb + i3 * sb3])


@_jit
def _select(w, code, pc, o, a, b, c):
    n0, n1, n2, n3 = _four(code, pc, F_N0)
    so0, so1, so2, so3 = _four(code, pc, F_SO0)
    sa0, sa1, sa2, sa3 = _four(code, pc, F_SA0)
    sb0, sb1, sb2, sb3 = _four(code, pc, F_SB0)
    sc0, sc1, sc2, sc3 = _four(code, pc, F_SC0)
    for i0 in range(n0):
        for i1 in range(n1):
            for i2 in range(n2):
                oo = o + i0 * so0 + i1 * so1 + i2 * so2
                aa = a + i0 * sa0 + i1 * sa1 + i2 * sa2
                bb = b + i0 * sb0 + i1 * sb1 + i2 * sb2
                cc = c + i0 * sc0 + i1 * sc1 + i2 * sc2
                for i3 in range(n3):
                    w[oo + i3 * so3] = w[bb + i3 * sb3] if w[aa + i3 * sa3] != 0.0 \
                        else w[cc + i3 * sc3]


@_inline
def _add_run(acc, w, a, n):
    """``acc + w[a] + ... + w[a + n - 1]`` in the workspace's precision: a short run
    (``n < 16``) one add after another, a long one as :func:`_sum_long`. A contiguous
    sum's terms are added the same way in top-level rows (in chunks of a FUSED row's
    tile, ``X1``) and in fused rows (tile by tile), so fusing changes no bit."""
    if n < 16:
        for i in range(n):
            acc += w[a + i]
        return acc
    return acc + _sum_long(w, a, n)


@_jit
def _sum_long(w, a, n):
    """``w[a] + ... + w[a + n - 1]`` (``n >= 8``): eight running sums over the
    elements' residues mod 8 (independent chains: one vector register, where a single
    sum waits on each add's latency; and a smaller rounding error than one long chain),
    added pairwise, then the remainder in order."""
    ua, m = np.uint64(a), np.uint64(n)
    s0, s1, s2, s3 = w[ua], w[ua + 1], w[ua + 2], w[ua + 3]
    s4, s5, s6, s7 = w[ua + 4], w[ua + 5], w[ua + 6], w[ua + 7]
    m8 = m - m % np.uint64(8)
    for i in range(np.uint64(8), m8, np.uint64(8)):
        j = ua + i
        s0 += w[j]
        s1 += w[j + 1]
        s2 += w[j + 2]
        s3 += w[j + 3]
        s4 += w[j + 4]
        s5 += w[j + 5]
        s6 += w[j + 6]
        s7 += w[j + 7]
    s = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
    for i in range(m8, m):
        s += w[ua + i]
    return s


@_jit
def _long_sums(w, code, pc, o, a):
    """A REDUCE row summing contiguous runs of 16 elements or more into registers: in
    chunks of a FUSED row's tile (``X1``), each as :func:`_add_run`."""
    n0, n1, n2, n3 = _four(code, pc, F_N0)
    so0, so1, so2, _ = _four(code, pc, F_SO0)
    sa0, sa1, sa2, _ = _four(code, pc, F_SA0)
    chunk = code[pc, F_X1] if code[pc, F_X1] > 0 else n3
    for i0 in range(n0):
        for i1 in range(n1):
            for i2 in range(n2):
                oo = o + i0 * so0 + i1 * so1 + i2 * so2
                aa = a + i0 * sa0 + i1 * sa1 + i2 * sa2
                acc = w[oo]
                for c3 in range(0, n3, chunk):
                    acc = _add_run(acc, w, aa + c3, min(chunk, n3 - c3))
                w[oo] = acc


@_jit
def _reduce(w, code, pc, o, a):
    kind = code[pc, F_X0]
    n0, n1, n2, n3 = _four(code, pc, F_N0)
    so0, so1, so2, so3 = _four(code, pc, F_SO0)
    sa0, sa1, sa2, sa3 = _four(code, pc, F_SA0)
    if kind == 0 and so3 == 0 and sa3 == 1 and n3 >= 16:
        _long_sums(w, code, pc, o, a)           # (short ones below: one add after another)
        return
    for i0 in range(n0):
        for i1 in range(n1):
            for i2 in range(n2):
                oo = o + i0 * so0 + i1 * so1 + i2 * so2
                aa = a + i0 * sa0 + i1 * sa1 + i2 * sa2
                if so3 == 0:                       # reduced innermost: a register
                    acc = w[oo]
                    if kind == 0 and sa3 == 1:
                        for i3 in range(n3):
                            acc += w[aa + i3]
                    else:
                        for i3 in range(n3):
                            acc = _combine(kind, acc, w[aa + i3 * sa3])
                    w[oo] = acc
                elif kind == 0 and so3 == 1 and sa3 == 1:    # rows into one row: a
                    uo, ua = np.uint64(oo), np.uint64(aa)  # vector loop (not a switch
                    for i3 in range(np.uint64(n3)):         # per element)
                        w[uo + i3] += w[ua + i3]
                else:
                    for i3 in range(n3):
                        p = oo + i3 * so3
                        w[p] = _combine(kind, w[p], w[aa + i3 * sa3])


# ----------------------------------------------------------------------------- fused rows
# The members of a FUSED row run through these one-dimensional loops. The row bodies
# above keep their own copies: written through these helpers they measured 1.4x slower
# on programs of many short rows (the HMM: 131 -> 185 us), the fused rows' long runs
# need the arithmetic fast paths that slow the short rows down.
# They are compiled functions of their own, called once per tile, not inlined: inlined
# into both `_fused` and `fused_part`, their eight copies of the scalar function
# switches took 90 s of LLVM time each on an empty cache (the machine's first compile
# 130 s -> 60 s), and a call per tile of up to 512 elements costs nothing measurable.

#: Shorter contiguous runs take the scalar loops (vector loops' set-up costs more there).
_VEC_MIN = 16


@_jit
def _unary_run(w, f, oo, so, aa, sa, n):
    """``w[oo + i so] = f(w[aa + i sa])`` for ``i < n``."""
    if so == 1 and sa == 1:
        if n < _VEC_MIN or not _unary_fast(f, w, oo, aa, n):
            uo, ua = np.uint64(oo), np.uint64(aa)
            for i in range(np.uint64(n)):
                w[uo + i] = _un(f, w[ua + i])
    elif so == 1 and sa == 0:             # one value, repeated
        v, uo = _un(f, w[aa]), np.uint64(oo)
        for i in range(np.uint64(n)):
            w[uo + i] = v
    else:
        for i in range(n):
            w[oo + i * so] = _un(f, w[aa + i * sa])


@_jit
def _binary_run(w, f, oo, so, aa, sa, bb, sb, n):
    """``w[oo + i so] = f(w[aa + i sa], w[bb + i sb])`` for ``i < n``."""
    if so == 1 and n >= _VEC_MIN and _binary_vec(f, w, oo, aa, bb, n, sa, sb):
        pass
    elif so == 1 and sa == 1 and sb == 1:
        uo, ua, ub = np.uint64(oo), np.uint64(aa), np.uint64(bb)
        for i in range(np.uint64(n)):
            w[uo + i] = _bin(f, w[ua + i], w[ub + i])
    elif so == 1 and sa == 1 and sb == 0:
        y, uo, ua = w[bb], np.uint64(oo), np.uint64(aa)
        for i in range(np.uint64(n)):
            w[uo + i] = _bin(f, w[ua + i], y)
    elif so == 1 and sa == 0 and sb == 1:
        x, uo, ub = w[aa], np.uint64(oo), np.uint64(bb)
        for i in range(np.uint64(n)):
            w[uo + i] = _bin(f, x, w[ub + i])
    else:
        for i in range(n):
            w[oo + i * so] = _bin(f, w[aa + i * sa], w[bb + i * sb])


@_jit
def _select_run(w, oo, so, aa, sa, bb, sb, cc, sc, n):
    """``w[oo + i so] = w[bb + i sb] if w[aa + i sa] else w[cc + i sc]``."""
    for i in range(n):
        w[oo + i * so] = w[bb + i * sb] if w[aa + i * sa] != 0.0 else w[cc + i * sc]


@_jit
def _reduce_run(w, kind, oo, so, aa, sa, n):
    """Combine ``w[aa + i sa]`` into ``w[oo + i so]`` (``so`` 0: into one register)."""
    if so == 0:
        acc = w[oo]
        if kind == 0 and sa == 1:
            acc = _add_run(acc, w, aa, n)
        else:
            for i in range(n):
                acc = _combine(kind, acc, w[aa + i * sa])
        w[oo] = acc
    elif kind == 0 and so == 1 and sa == 1:
        uo, ua = np.uint64(oo), np.uint64(aa)
        for i in range(np.uint64(n)):
            w[uo + i] += w[ua + i]
    else:
        for i in range(n):
            p = oo + i * so
            w[p] = _combine(kind, w[p], w[aa + i * sa])


@_inline
def _place(tab, r, f, fs, fl, i0, i1, i2, c0, scratch, tile):
    """Where operand ``f`` of fused member ``r`` starts in this tile, and its stride:
    a scratch slot (``fl`` field = slot + 1) or its place in the workspace."""
    slot = tab[r + fl]
    if slot > 0:
        return scratch + (slot - 1) * tile, 1
    return (tab[r + f] + i0 * tab[r + fs] + i1 * tab[r + fs + 1] + i2 * tab[r + fs + 2]
            + c0 * tab[r + fs + 3]), tab[r + fs + 3]


@_inline
def _fused_body(w, tab, code, pc, axis, lo, hi, scratch):
    """The FUSED row ``pc`` over ``lo <= i < hi`` of loop ``axis`` (the whole of the
    others), with its scratch slots at ``scratch``; along axis 3 ``lo`` is a multiple of
    the tile."""
    n0, n1, n2, n3 = _four(code, pc, F_N0)
    start, k, _, tile = _four(code, pc, F_X0)
    a0, b0 = (lo, hi) if axis == 0 else (0, n0)
    a1, b1 = (lo, hi) if axis == 1 else (0, n1)
    a2, b2 = (lo, hi) if axis == 2 else (0, n2)
    a3, b3 = (lo, hi) if axis == 3 else (0, n3)
    for i0 in range(a0, b0):
        for i1 in range(a1, b1):
            for i2 in range(a2, b2):
                for c0 in range(a3, b3, tile):
                    m = min(tile, b3 - c0)
                    for j in range(k):
                        r = start + j * W
                        op = tab[r + F_OP]
                        oo, so = _place(tab, r, F_O, F_SO0, F_LO, i0, i1, i2, c0, scratch,
                                        tile)
                        aa, sa = _place(tab, r, F_A, F_SA0, F_LA, i0, i1, i2, c0, scratch,
                                        tile)
                        if op == 1:
                            _unary_run(w, tab[r + F_X0], oo, so, aa, sa, m)
                        elif op == 2:
                            bb, sb = _place(tab, r, F_B, F_SB0, F_LB, i0, i1, i2, c0,
                                            scratch, tile)
                            _binary_run(w, tab[r + F_X0], oo, so, aa, sa, bb, sb, m)
                        elif op == 3:
                            bb, sb = _place(tab, r, F_B, F_SB0, F_LB, i0, i1, i2, c0,
                                            scratch, tile)
                            cc, sc = _place(tab, r, F_C, F_SC0, F_LC, i0, i1, i2, c0,
                                            scratch, tile)
                            _select_run(w, oo, so, aa, sa, bb, sb, cc, sc, m)
                        else:
                            _reduce_run(w, tab[r + F_X0], oo, so, aa, sa, m)


@_jit
def _fused(w, tab, code, pc):
    """A FUSED row: its members (rows stored in ``tab``) run tile by tile over one loop
    nest, values that die inside the group kept in scratch slots of one tile."""
    _fused_body(w, tab, code, pc, 0, 0, code[pc, F_N0], code[pc, F_X2])


@_jit
def fused_part(w, tab, code, pc, axis, lo, hi, scratch):
    """Part ``lo <= i < hi`` of loop ``axis`` of the FUSED row ``pc``, with scratch slots
    at ``scratch`` (its own per thread). Parts that write disjoint elements (see
    :func:`autodiff.lower.fuse.parallel_steps`) may run in threads at once: the machine
    releases the GIL, and each element is computed as in the whole row."""
    _fused_body(w, tab, code, pc, axis, lo, hi, scratch)


@_jit
def _scan_axis(w, code, pc, o, a):
    kind = code[pc, F_X0]
    n0, n1, n2, n3 = _four(code, pc, F_N0)
    so0, so1, so2, so3 = _four(code, pc, F_SO0)
    sa0, sa1, sa2, sa3 = _four(code, pc, F_SA0)
    for i0 in range(n0):
        for i1 in range(n1):
            for i2 in range(n2):
                oo = o + i0 * so0 + i1 * so1 + i2 * so2
                aa = a + i0 * sa0 + i1 * sa1 + i2 * sa2
                acc = w[aa]
                w[oo] = acc
                for i3 in range(1, n3):
                    acc = _combine(kind, acc, w[aa + i3 * sa3])
                    w[oo + i3 * so3] = acc


@_jit
def _gemm(w, gemm, a, b, o, m, k, n, a_c, b_c):
    """A product of workspace blocks; a_c / b_c: C- (True) or F-contiguous operands.
    ``gemm[0]``: the CBLAS function to call (see :mod:`.blas`), or 0 for ``np.dot``."""
    if gemm[0] != 0:
        cblas_gemm(gemm[0], w, NO_TRANS if a_c else TRANS, NO_TRANS if b_c else TRANS,
                   m, n, k, a, max(1, k if a_c else m), b, max(1, n if b_c else k),
                   o, max(1, n))
        return
    out = w[o:o + m * n].reshape(m, n)
    if a_c:
        A = w[a:a + m * k].reshape(m, k)
        if b_c:
            np.dot(A, w[b:b + k * n].reshape(k, n), out)
        else:
            np.dot(A, w[b:b + k * n].reshape(n, k).T, out)
    else:
        A = w[a:a + m * k].reshape(k, m).T
        if b_c:
            np.dot(A, w[b:b + k * n].reshape(k, n), out)
        else:
            np.dot(A, w[b:b + k * n].reshape(n, k).T, out)


@_jit
def _matmul(w, gemm, code, pc, o, a, b):
    m, k, n, blas = code[pc, F_X0], code[pc, F_X1], code[pc, F_X2], code[pc, F_X3]
    n0, n1 = code[pc, F_N0], code[pc, F_N1]
    so0, so1, som, son = code[pc, F_SO0], code[pc, F_SO1], code[pc, F_SO2], code[pc, F_SO3]
    sa0, sa1, sam, sak = code[pc, F_SA0], code[pc, F_SA1], code[pc, F_SA2], code[pc, F_SA3]
    sb0, sb1, sbk, sbn = code[pc, F_SB0], code[pc, F_SB1], code[pc, F_SB2], code[pc, F_SB3]
    for i0 in range(n0):
        for i1 in range(n1):
            oo = o + i0 * so0 + i1 * so1
            aa = a + i0 * sa0 + i1 * sa1
            bb = b + i0 * sb0 + i1 * sb1
            if blas:
                _gemm(w, gemm, aa, bb, oo, m, k, n, sak == 1, sbn == 1)
                continue
            for i in range(m):
                for j in range(n):
                    s = 0.0
                    for kk in range(k):
                        s += w[aa + i * sam + kk * sak] * w[bb + kk * sbk + j * sbn]
                    w[oo + i * som + j * son] = s


@_jit
def matmul_part(w, gemm, code, pc, axis, lo, hi):
    """Output rows (``axis`` 0) or columns (1) ``lo <= i < hi`` of the top-level MATMUL
    row ``pc``: one BLAS product with a C-contiguous output (see
    :func:`autodiff.lower.fuse.parallel_steps`). With a CBLAS to call (``gemm[0]``, see
    :mod:`.blas`) the blocks are strided views; with ``np.dot`` an operand's block that
    is not contiguous is copied first, and a block of columns is computed apart and
    copied into place (copies of ``k`` or ``m`` values per ``k x m`` multiply-adds per
    column). Parts may run in threads at once (the machine releases the GIL)."""
    m, k, n = code[pc, F_X0], code[pc, F_X1], code[pc, F_X2]
    a, b, o = code[pc, F_A], code[pc, F_B], code[pc, F_O]
    a_c, b_c = code[pc, F_SA3] == 1, code[pc, F_SB3] == 1
    ta, tb = NO_TRANS if a_c else TRANS, NO_TRANS if b_c else TRANS
    lda, ldb = max(1, k if a_c else m), max(1, n if b_c else k)
    if gemm[0] != 0:
        if axis == 0:     # rows lo:hi of op(A): row lo of A, or column lo of its transpose
            cblas_gemm(gemm[0], w, ta, tb, hi - lo, n, k, a + lo * (k if a_c else 1), lda,
                       b, ldb, o + lo * n, max(1, n))
        else:             # columns lo:hi of op(B)
            cblas_gemm(gemm[0], w, ta, tb, m, hi - lo, k, a, lda,
                       b + lo * (1 if b_c else k), ldb, o + lo, max(1, n))
        return
    if axis == 0:
        if a_c:
            _gemm(w, gemm, a + lo * k, b, o + lo * n, hi - lo, k, n, True, b_c)
            return
        A = np.ascontiguousarray(w[a:a + m * k].reshape(k, m)[:, lo:hi].T)
        out = w[o + lo * n:o + hi * n].reshape(hi - lo, n)
        if b_c:
            np.dot(A, w[b:b + k * n].reshape(k, n), out)
        else:
            np.dot(A, w[b:b + k * n].reshape(n, k).T, out)
        return
    if b_c:
        B = np.ascontiguousarray(w[b:b + k * n].reshape(k, n)[:, lo:hi])
    else:
        B = np.ascontiguousarray(w[b:b + k * n].reshape(n, k)[lo:hi].T)
    part = np.empty((m, hi - lo), w.dtype)
    if a_c:
        np.dot(w[a:a + m * k].reshape(m, k), B, part)
    else:
        np.dot(w[a:a + m * k].reshape(k, m).T, B, part)
    w[o:o + m * n].reshape(m, n)[:, lo:hi] = part


@_jit
def _cholesky(w, code, pc, o, a):
    nn = code[pc, F_X0]
    n0, n1 = code[pc, F_N0], code[pc, F_N1]
    so0, so1, sor, soc = code[pc, F_SO0], code[pc, F_SO1], code[pc, F_SO2], code[pc, F_SO3]
    sa0, sa1, sar, sac = code[pc, F_SA0], code[pc, F_SA1], code[pc, F_SA2], code[pc, F_SA3]
    failed = False
    for i0 in range(n0):
        for i1 in range(n1):
            oo = o + i0 * so0 + i1 * so1
            aa = a + i0 * sa0 + i1 * sa1
            ok = True
            for j in range(nn):
                s = w[aa + j * sar + j * sac]
                for kk in range(j):
                    v = w[oo + j * sor + kk * soc]
                    s -= v * v
                if not s > 0.0:
                    ok = False
                    break
                d = math.sqrt(s)
                w[oo + j * sor + j * soc] = d
                for i in range(j + 1, nn):
                    s = w[aa + i * sar + j * sac]
                    for kk in range(j):
                        s -= w[oo + i * sor + kk * soc] * w[oo + j * sor + kk * soc]
                    w[oo + i * sor + j * soc] = s / d
                for i in range(j):
                    w[oo + i * sor + j * soc] = 0.0
            if not ok:                    # not positive definite: NaN for this member
                failed = True
                for i in range(nn):
                    for j in range(nn):
                        w[oo + i * sor + j * soc] = np.nan
    return failed


@_jit
def _trisolve(w, code, pc, o, a, b):
    nn, kk_, lower = code[pc, F_X0], code[pc, F_X1], code[pc, F_X2]
    n0, n1 = code[pc, F_N0], code[pc, F_N1]
    so0, so1, sor, soc = code[pc, F_SO0], code[pc, F_SO1], code[pc, F_SO2], code[pc, F_SO3]
    sa0, sa1, sar, sac = code[pc, F_SA0], code[pc, F_SA1], code[pc, F_SA2], code[pc, F_SA3]
    sb0, sb1, sbr, sbc = code[pc, F_SB0], code[pc, F_SB1], code[pc, F_SB2], code[pc, F_SB3]
    for i0 in range(n0):
        for i1 in range(n1):
            oo = o + i0 * so0 + i1 * so1
            aa = a + i0 * sa0 + i1 * sa1
            bb = b + i0 * sb0 + i1 * sb1
            for c in range(kk_):
                for step in range(nn):
                    i = step if lower else nn - 1 - step
                    s = w[bb + i * sbr + c * sbc]
                    if lower:
                        for j in range(i):
                            s -= w[aa + i * sar + j * sac] * w[oo + j * sor + c * soc]
                    else:
                        for j in range(i + 1, nn):
                            s -= w[aa + i * sar + j * sac] * w[oo + j * sor + c * soc]
                    w[oo + i * sor + c * soc] = s / w[aa + i * sar + i * sac]


@_jit
def _gather(w, tab, code, pc, o, a):
    t = code[pc, F_X0]
    for i in range(code[pc, F_N0]):
        w[o + i] = w[a + tab[t + i]]


@_jit
def _scatter_add(w, tab, code, pc, o, a):
    t = code[pc, F_X0]
    for i in range(code[pc, F_N0]):
        w[o + tab[t + i]] += w[a + i]


@_jit
def _gauss(w, code, pc, o, a):
    """Gaussian elimination with partial pivoting, in place: a holds the matrix (left
    in a reduced state), o the right-hand sides (left holding the solution). A
    singular matrix gives NaN."""
    nn, kk_ = code[pc, F_X0], code[pc, F_X1]
    n0, n1 = code[pc, F_N0], code[pc, F_N1]
    so0, so1, sor, soc = code[pc, F_SO0], code[pc, F_SO1], code[pc, F_SO2], code[pc, F_SO3]
    sa0, sa1, sar, sac = code[pc, F_SA0], code[pc, F_SA1], code[pc, F_SA2], code[pc, F_SA3]
    failed = False
    for i0 in range(n0):
        for i1 in range(n1):
            oo = o + i0 * so0 + i1 * so1
            aa = a + i0 * sa0 + i1 * sa1
            singular = False
            for j in range(nn):
                p, best = j, abs(w[aa + j * sar + j * sac])
                for i in range(j + 1, nn):
                    v = abs(w[aa + i * sar + j * sac])
                    if v > best:
                        p, best = i, v
                if not best > 0.0:
                    singular = True
                    break
                if p != j:
                    for c in range(nn):
                        t = w[aa + j * sar + c * sac]
                        w[aa + j * sar + c * sac] = w[aa + p * sar + c * sac]
                        w[aa + p * sar + c * sac] = t
                    for c in range(kk_):
                        t = w[oo + j * sor + c * soc]
                        w[oo + j * sor + c * soc] = w[oo + p * sor + c * soc]
                        w[oo + p * sor + c * soc] = t
                d = w[aa + j * sar + j * sac]
                for i in range(j + 1, nn):
                    f = w[aa + i * sar + j * sac] / d
                    if f != 0.0:
                        for c in range(j + 1, nn):
                            w[aa + i * sar + c * sac] -= f * w[aa + j * sar + c * sac]
                        for c in range(kk_):
                            w[oo + i * sor + c * soc] -= f * w[oo + j * sor + c * soc]
            if singular:
                failed = True
                for i in range(nn):
                    for c in range(kk_):
                        w[oo + i * sor + c * soc] = np.nan
                continue
            for c in range(kk_):                  # back substitution
                for i in range(nn - 1, -1, -1):
                    s = w[oo + i * sor + c * soc]
                    for j in range(i + 1, nn):
                        s -= w[aa + i * sar + j * sac] * w[oo + j * sor + c * soc]
                    w[oo + i * sor + c * soc] = s / w[aa + i * sar + i * sac]
    return failed


@_jit
def _slogdet(w, code, pc, o, a, c):
    nn = code[pc, F_X0]
    n0, n1 = code[pc, F_N0], code[pc, F_N1]
    so0, so1 = code[pc, F_SO0], code[pc, F_SO1]
    sa0, sa1, sar, sac = code[pc, F_SA0], code[pc, F_SA1], code[pc, F_SA2], code[pc, F_SA3]
    sc0, sc1 = code[pc, F_SB0], code[pc, F_SB1]
    for i0 in range(n0):
        for i1 in range(n1):
            aa = a + i0 * sa0 + i1 * sa1
            sign, logdet = 1.0, 0.0
            for j in range(nn):
                p, best = j, abs(w[aa + j * sar + j * sac])
                for i in range(j + 1, nn):
                    v = abs(w[aa + i * sar + j * sac])
                    if v > best:
                        p, best = i, v
                if not best > 0.0:
                    sign, logdet = 0.0, -np.inf
                    break
                if p != j:
                    sign = -sign
                    for k in range(nn):
                        t = w[aa + j * sar + k * sac]
                        w[aa + j * sar + k * sac] = w[aa + p * sar + k * sac]
                        w[aa + p * sar + k * sac] = t
                d = w[aa + j * sar + j * sac]
                if d < 0.0:
                    sign = -sign
                logdet += math.log(abs(d))
                for i in range(j + 1, nn):
                    f = w[aa + i * sar + j * sac] / d
                    if f != 0.0:
                        for k in range(j + 1, nn):
                            w[aa + i * sar + k * sac] -= f * w[aa + j * sar + k * sac]
            w[o + i0 * so0 + i1 * so1] = logdet
            w[c + i0 * sc0 + i1 * sc1] = sign


@_jit
def _argreduce(w, code, pc, o, a):
    kind = code[pc, F_X0]
    n0, n1, n2, n3 = _four(code, pc, F_N0)
    so0, so1, so2 = code[pc, F_SO0], code[pc, F_SO1], code[pc, F_SO2]
    sa0, sa1, sa2, sa3 = _four(code, pc, F_SA0)
    for i0 in range(n0):
        for i1 in range(n1):
            for i2 in range(n2):
                aa = a + i0 * sa0 + i1 * sa1 + i2 * sa2
                best, arg = w[aa], 0
                for i3 in range(1, n3):
                    if best != best:           # NumPy: the first NaN wins
                        break
                    x = w[aa + i3 * sa3]
                    if x != x or (x > best if kind == 0 else x < best):
                        best, arg = x, i3
                w[o + i0 * so0 + i1 * so1 + i2 * so2] = arg


@_jit
def _dynindex(w, code, pc, o, a, b, scatter):
    """Dims 0..3 of ``o`` and ``a`` run together, one of them also moves by the index
    read at ``b`` times X1 along an axis of size X0 (indices wrap like NumPy's): a gather
    ``o[i] = a[i + idx * X1]``, or with ``scatter`` ``o[i + idx * X1] += a[i]``. Returns 1
    when an index was out of range."""
    size, stride = code[pc, F_X0], code[pc, F_X1]
    n0, n1, n2, n3 = _four(code, pc, F_N0)
    so0, so1, so2, so3 = _four(code, pc, F_SO0)
    sa0, sa1, sa2, sa3 = _four(code, pc, F_SA0)
    sb0, sb1, sb2, sb3 = _four(code, pc, F_SB0)
    bad = 0
    for i0 in range(n0):
        for i1 in range(n1):
            for i2 in range(n2):
                for i3 in range(n3):
                    j = int(w[b + i0 * sb0 + i1 * sb1 + i2 * sb2 + i3 * sb3])
                    if j < 0:
                        j += size
                    if j < 0 or j >= size:
                        bad = 1
                        continue
                    oo = o + i0 * so0 + i1 * so1 + i2 * so2 + i3 * so3
                    aa = a + i0 * sa0 + i1 * sa1 + i2 * sa2 + i3 * sa3
                    if scatter:
                        w[oo + j * stride] += w[aa]
                    else:
                        w[oo] = w[aa + j * stride]
    return bad


@_jit
def _tril_mask(w, code, pc, o, a):
    lo, hi = code[pc, F_X0], code[pc, F_X1]
    n0, n1, n2, n3 = _four(code, pc, F_N0)
    so0, so1, so2, so3 = _four(code, pc, F_SO0)
    sa0, sa1, sa2, sa3 = _four(code, pc, F_SA0)
    for i0 in range(n0):
        for i1 in range(n1):
            for i2 in range(n2):
                for i3 in range(n3):
                    d = i2 - i3
                    v = w[a + i0 * sa0 + i1 * sa1 + i2 * sa2 + i3 * sa3]
                    w[o + i0 * so0 + i1 * so1 + i2 * so2 + i3 * so3] = \
                        v if lo <= d < hi else 0.0


@_jit
def _round32(w, code, pc, o, a):
    n0, n1, n2, n3 = _four(code, pc, F_N0)
    so0, so1, so2, so3 = _four(code, pc, F_SO0)
    sa0, sa1, sa2, sa3 = _four(code, pc, F_SA0)
    for i0 in range(n0):
        for i1 in range(n1):
            for i2 in range(n2):
                for i3 in range(n3):
                    w[o + i0 * so0 + i1 * so1 + i2 * so2 + i3 * so3] = np.float32(
                        w[a + i0 * sa0 + i1 * sa1 + i2 * sa2 + i3 * sa3])


@_jit
def _all_nonzero(w, code, pc, a):
    n0, n1, n2, n3 = _four(code, pc, F_N0)
    sa0, sa1, sa2, sa3 = _four(code, pc, F_SA0)
    for i0 in range(n0):
        for i1 in range(n1):
            for i2 in range(n2):
                aa = a + i0 * sa0 + i1 * sa1 + i2 * sa2
                if sa3 == 1:                      # a vector loop: count, no early exit
                    zeros, ua = 0, np.uint64(aa)
                    for i3 in range(np.uint64(n3)):
                        zeros += w[ua + i3] == 0.0
                    if zeros:
                        return False
                else:
                    for i3 in range(n3):
                        if w[aa + i3 * sa3] == 0.0:
                            return False
    return True


# ----------------------------------------------------------------------------- machine
@_jit
def run(code, w, tab, gemm, start, end):
    """Execute rows ``start .. end - 1`` of ``code`` on workspace ``w``; matrix products
    call the CBLAS function at ``gemm[0]`` (``int64[1]``, see :func:`.blas.gemm`), or
    ``np.dot`` when it is 0.

    Returns 0, or ``1 + row`` of the first CHECK that failed or DYNGATHER that was
    given an index out of range (the caller re-evaluates to raise the proper error).
    """
    pc = start
    # one level of loop: (first row, last row, iterations, current iteration)
    l_first, l_end, l_n, t = -1, -1, 0, 0
    while pc < end:
        op = code[pc, F_OP]
        if op == 12:                                  # LOOP
            l_first, l_end, l_n, t = pc + 1, code[pc, F_X1], code[pc, F_X0], 0
            if l_n == 0:
                pc = l_end + 1
                l_first = -1
                continue
            pc += 1
            continue
        if op == 13:                                  # END
            t += 1
            if t < l_n:
                pc = l_first
            else:
                pc += 1
                l_first = -1
            continue
        if l_first >= 0:
            o = code[pc, F_O] + t * code[pc, F_LO]
            a = code[pc, F_A] + t * code[pc, F_LA]
            b = code[pc, F_B] + t * code[pc, F_LB]
            c = code[pc, F_C] + t * code[pc, F_LC]
        else:
            o, a, b, c = code[pc, F_O], code[pc, F_A], code[pc, F_B], code[pc, F_C]
        if op == 1:
            _unary(w, code, pc, o, a)
        elif op == 2:
            _binary(w, code, pc, o, a, b)
        elif op == 3:
            _select(w, code, pc, o, a, b, c)
        elif op == 4:
            _reduce(w, code, pc, o, a)
        elif op == 5:
            _matmul(w, gemm, code, pc, o, a, b)
        elif op == 6:
            _gather(w, tab, code, pc, o, a)
        elif op == 7:
            _scatter_add(w, tab, code, pc, o, a)
        elif op == 8:
            _scan_axis(w, code, pc, o, a)
        elif op == 9:
            if _cholesky(w, code, pc, o, a) and code[pc, F_X1]:
                return pc + 1
        elif op == 10:
            _trisolve(w, code, pc, o, a, b)
        elif op == 11:
            if not _all_nonzero(w, code, pc, a):
                return pc + 1
        elif op == 14:
            _round32(w, code, pc, o, a)
        elif op == 15:
            if _dynindex(w, code, pc, o, a, b, False):
                return pc + 1
        elif op == 16:
            _tril_mask(w, code, pc, o, a)
        elif op == 17:
            if _gauss(w, code, pc, o, a) and code[pc, F_X2]:
                return pc + 1
        elif op == 18:
            _slogdet(w, code, pc, o, a, b)
        elif op == 19:
            _argreduce(w, code, pc, o, a)
        elif op == 20:
            if _dynindex(w, code, pc, o, a, b, True):
                return pc + 1
        elif op == 21:
            _fused(w, tab, code, pc)

        pc += 1
    return 0
