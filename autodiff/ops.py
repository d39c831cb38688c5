"""NumPy-named differentiable functions, each next to its VJP rule.

Every public function accepts Tensors or raw NumPy/CuPy arrays and scalars and
returns a Tensor. Rules follow the staged convention of :func:`autodiff.defvjp`:
``maker(ans, *args, **kwargs) -> (g -> cotangent)``; cotangents may have the
broadcast output shape (the backward pass sums them down in one place).

Forward computations call ``numpy`` functions, which dispatch to CuPy through the
``__array_ufunc__``/``__array_function__`` protocols when given CuPy arrays; special
functions and linear algebra go through :mod:`autodiff.backend` explicitly.
"""
import builtins
import math
import operator
import string

import numpy as np

from . import backend
from .core import Tensor, defvjp, defvjp_argnum, nograd_primitive, primitive
from .tracer import array_op

__all__ = [
    "add", "subtract", "multiply", "divide", "true_divide", "negative", "power",
    "maximum", "minimum", "where", "clip",
    "exp", "log", "log1p", "expm1", "sqrt", "square", "abs", "absolute", "sin", "cos",
    "tanh", "arctan", "sigmoid", "softplus", "log_sigmoid", "relu", "leaky_relu", "lgamma",
    "gammaln", "digamma", "erf", "erfc", "cast",
    "sum", "mean", "max", "min", "prod", "cumsum", "logsumexp", "softmax", "log_softmax",
    "reshape", "transpose", "swapaxes", "expand_dims", "squeeze", "broadcast_to",
    "concatenate", "stack", "getitem", "take", "tril", "triu", "diagonal",
    "matmul", "dot", "einsum", "linear", "stop_gradient",
    "sign", "floor", "ceil", "round", "argmax", "argmin", "isfinite", "isnan",
    "less", "less_equal", "greater", "greater_equal", "equal", "not_equal",
    "logical_and", "logical_or", "logical_not",
    "zeros_like", "ones_like",
]


def _binary(name, fun, rule_x, rule_y):
    prim = primitive(fun, name, nargs=2)
    defvjp(prim, rule_x, rule_y)
    return prim


def _unary(name, fun, rule):
    prim = primitive(fun, name, nargs=1)
    defvjp(prim, rule)
    return prim


# ----------------------------------------------------------------------------- arithmetic

def _identity(g):
    return g


# Rules whose VJP needs nothing from the forward pass share one function (no closure).
add = _binary("add", np.add, lambda ans, x, y: _identity, lambda ans, x, y: _identity)
subtract = _binary("subtract", np.subtract,
                   lambda ans, x, y: _identity, lambda ans, x, y: np.negative)
multiply = _binary("multiply", np.multiply,
                   lambda ans, x, y: lambda g: g * y, lambda ans, x, y: lambda g: g * x)
divide = _binary("divide", np.true_divide,
                 lambda ans, x, y: lambda g: g / y,
                 lambda ans, x, y: lambda g: -g * ans / y)
true_divide = divide
negative = _unary("negative", np.negative, lambda ans, x: np.negative)


def _log_or_zero(x):
    # d(x**y)/dy = x**y log x; define it as 0 where x <= 0 (as autograd does at 0).
    return np.log(np.where(x > 0, x, 1))


def _pow_minus_one(y):
    # y - 1, except 1 where y == 0: d(x**0)/dx is 0 at x == 0, not 0 * 0**-1 = nan
    if isinstance(y, (int, float)):
        return y - 1 if y != 0 else 1
    return np.where(y == 0, 1, np.subtract(y, 1))


power = _binary("power", np.power,
                lambda ans, x, y: lambda g: g * y * np.power(x, _pow_minus_one(y)),
                lambda ans, x, y: lambda g: g * ans * _log_or_zero(x))


def _balanced(x, y, cmp):
    # Gradient share of x in max/min(x, y): 1 where x wins, 1/2 on ties.
    return np.where(cmp(x, y), 1.0, np.where(x == y, 0.5, 0.0))


maximum = _binary("maximum", np.maximum,
                  lambda ans, x, y: lambda g: g * _balanced(x, y, np.greater),
                  lambda ans, x, y: lambda g: g * _balanced(y, x, np.greater))
minimum = _binary("minimum", np.minimum,
                  lambda ans, x, y: lambda g: g * _balanced(x, y, np.less),
                  lambda ans, x, y: lambda g: g * _balanced(y, x, np.less))

where = primitive(np.where, "where")
defvjp(where, None,
       lambda ans, c, x, y: lambda g: np.where(c, g, 0),
       lambda ans, c, x, y: lambda g: np.where(c, 0, g))
where.__doc__ = "where(condition, x, y): elementwise choice; no gradient to condition."


def _clip(x, a_min=None, a_max=None):
    return np.clip(x, a_min, a_max)


clip = primitive(_clip, "clip")
"""``clip(x, a_min=None, a_max=None)``: :func:`numpy.clip`; the gradient passes where ``a_min
<= x <= a_max`` and is 0 outside."""
defvjp(clip, lambda ans, x, a_min=None, a_max=None: lambda g: g * _inside(x, a_min, a_max))


def _inside(x, lo, hi):
    m = np.ones_like(x, dtype=bool)
    if lo is not None:
        m = m & (x >= lo)
    if hi is not None:
        m = m & (x <= hi)
    return m


# ----------------------------------------------------------------------------- elementwise

def _sp(x):
    return backend.special(x)


exp = _unary("exp", np.exp, lambda ans, x: lambda g: g * ans)
log = _unary("log", np.log, lambda ans, x: lambda g: g / x)
log1p = _unary("log1p", np.log1p, lambda ans, x: lambda g: g / (1 + x))
expm1 = _unary("expm1", np.expm1, lambda ans, x: lambda g: g * (ans + 1))
sqrt = _unary("sqrt", np.sqrt, lambda ans, x: lambda g: g * 0.5 / ans)
square = _unary("square", np.square, lambda ans, x: lambda g: g * 2 * x)
abs = _unary("abs", np.abs, lambda ans, x: lambda g: g * np.sign(x))
absolute = abs
sin = _unary("sin", np.sin, lambda ans, x: lambda g: g * np.cos(x))
cos = _unary("cos", np.cos, lambda ans, x: lambda g: -g * np.sin(x))
tanh = _unary("tanh", np.tanh, lambda ans, x: lambda g: g * (1 - ans * ans))
arctan = _unary("arctan", np.arctan, lambda ans, x: lambda g: g / (1 + x * x))
# sigmoid, softplus and log_sigmoid are functions of e = exp(-|x|) in (0, 1], which never
# overflows. On NumPy float32/float64 arrays each forward and each VJP is one Numba kernel
# from autodiff.logistic (vectorized polynomial exp/log1p: 1-2 ns per element, where
# np.logaddexp and scipy's expit are 6-17 ns scalar loops and a NumPy composition takes
# 5-11 passes). Other input (CuPy, 0-d, integers) takes the NumPy/CuPy composition below.
# softplus'(x) = sigmoid(x), log_sigmoid'(x) = sigmoid(-x), sigmoid'(x) = e / (1 + e)**2.
_logistic = None


def _kernel_input(x):
    """The logistic kernels module when ``x`` is a NumPy float32/64 array of ndim >= 1."""
    global _logistic
    if type(x) is not np.ndarray or x.ndim == 0 or x.dtype.char not in "fd":
        return None
    if _logistic is None:
        from . import logistic
        _logistic = logistic
    return _logistic


def _vjp_out(g, x):
    """An empty cotangent of x's shape in the promoted dtype of g and x."""
    return np.empty(x.shape, x.dtype if g.dtype == x.dtype else np.result_type(g.dtype, x.dtype))


def _flat(a):
    return a.ravel()          # a view when C-contiguous, else a C-ordered copy


def _logistic_fwd(kernel_name, fallback):
    def fwd(x):
        k = _kernel_input(x)
        if k is None:
            return fallback(x)
        out = np.empty(x.shape, x.dtype)
        getattr(k, kernel_name)(_flat(x), out.reshape(-1))
        return out
    return fwd


def _exp_neg_abs(x):
    return np.exp(np.negative(np.abs(x)))          # (dispatches to CuPy and tracers)


def _sigmoid_np(x):
    return _sp(x).expit(x)


def _sigmoid_scaled(sign):
    """VJP maker: g -> g * sigmoid(sign * x)."""
    def maker(ans, x):
        def vjp(g):
            k = _kernel_input(x)
            if k is None or g.shape != x.shape:
                return g * _sigmoid_np(x if sign > 0 else -x)
            out = _vjp_out(g, x)
            k.sigmoid_scaled(_flat(g), _flat(x), float(sign), out.reshape(-1))
            return out
        return vjp
    return maker


def _sigmoid_rule(ans, x):
    def vjp(g):
        k = _kernel_input(x)
        if k is None or g.shape != x.shape:
            e = _exp_neg_abs(x)
            return g * e / ((1 + e) * (1 + e))
        out = _vjp_out(g, x)
        k.sigmoid_vjp(_flat(g), _flat(x), out.reshape(-1))
        return out
    return vjp


sigmoid = _unary("sigmoid", _logistic_fwd("sigmoid", _sigmoid_np), _sigmoid_rule)
"""``sigmoid(x) = 1 / (1 + exp(-x))`` elementwise, computed from ``exp(-|x|)`` (no overflow);
gradient ``sigmoid(x) * sigmoid(-x)``."""
softplus = _unary("softplus", _logistic_fwd("softplus", lambda x: np.logaddexp(0, x)),
                  _sigmoid_scaled(1))
"""``softplus(x) = log(1 + exp(x))`` elementwise, without overflow; gradient ``sigmoid(x)``."""
log_sigmoid = _unary("log_sigmoid",
                     _logistic_fwd("log_sigmoid", lambda x: -np.logaddexp(0, -x)),
                     _sigmoid_scaled(-1))
"""``log_sigmoid(x) = log(sigmoid(x)) = -softplus(-x)`` elementwise, without overflow; gradient
``sigmoid(-x)``."""
relu = _unary("relu", lambda x: np.maximum(x, 0), lambda ans, x: lambda g: g * (x > 0))
"""``relu(x) = maximum(x, 0)`` elementwise; gradient 1 where ``x > 0``, else 0."""


def _kinks_input(*arrays):
    """The leaky relu kernels module when every array is a NumPy float32/64 array of the
    first one's shape and dtype (else None: the NumPy composition). The kernels take
    them raveled (a copy for a strided array, a view else)."""
    global _kinks
    a = arrays[0]
    for b in arrays:
        if (type(b) is not np.ndarray or b.dtype.char not in "fd" or b.dtype != a.dtype
                or b.shape != a.shape):
            return None
    if _kinks is None:
        from . import kinks
        _kinks = kinks
    return _kinks


_kinks = None


def _leaky_fwd(x, negative_slope=0.01):
    k = _kinks_input(x)
    if k is None:
        return np.where(np.greater(x, 0), x, np.multiply(x, negative_slope))
    out = np.empty(x.shape, x.dtype)
    k.leaky_relu(x.ravel(), x.dtype.type(negative_slope), out.reshape(-1))
    return out


def _leaky_rule(ans, x, negative_slope=0.01):
    def vjp(g):
        k = _kinks_input(g, x)
        if k is None:
            return np.where(np.greater(x, 0), g, np.multiply(g, negative_slope))
        out = np.empty(x.shape, x.dtype)
        k.leaky_relu_vjp(g.ravel(), x.ravel(), x.dtype.type(negative_slope), out.reshape(-1))
        return out
    return vjp


leaky_relu = _unary("leaky_relu", _leaky_fwd, _leaky_rule)
"""``leaky_relu(x, negative_slope=0.01)``: ``x`` where ``x > 0``, else ``negative_slope *
x``, elementwise, as one op (one loop on NumPy arrays); gradient 1 where ``x > 0``, else
``negative_slope``."""
lgamma = _unary("lgamma", lambda x: _sp(x).gammaln(x),
                lambda ans, x: lambda g: g * _sp(x).digamma(x))
"""``log|Gamma(x)|`` elementwise (SciPy's ``gammaln``, CuPy's on the GPU); gradient
``digamma(x)``."""
gammaln = lgamma
"""The same op as :data:`lgamma` (SciPy's name)."""
@array_op
def _trigamma(x):
    """The trigamma function (derivative of digamma), one recorded operation."""
    return _sp(x).polygamma(1, x)


digamma = _unary("digamma", lambda x: _sp(x).digamma(x),
                 lambda ans, x: lambda g: g * _trigamma(x))
"""The digamma function ``d log Gamma(x) / dx`` elementwise; gradient the trigamma function."""
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)   # a Python float: keeps float32 float32
erf = _unary("erf", lambda x: _sp(x).erf(x),
             lambda ans, x: lambda g: g * _TWO_OVER_SQRT_PI * np.exp(-np.square(x)))
"""The error function elementwise; gradient ``2 / sqrt(pi) * exp(-x**2)``."""
erfc = _unary("erfc", lambda x: _sp(x).erfc(x),
              lambda ans, x: lambda g: -g * _TWO_OVER_SQRT_PI * np.exp(-np.square(x)))
"""The complementary error function ``1 - erf(x)`` elementwise; gradient ``-2 / sqrt(pi) *
exp(-x**2)``."""

_astype = nograd_primitive(lambda x, dtype: x.astype(dtype), "astype")
_cast_p = primitive(lambda x, dtype: x.astype(dtype), "cast")
defvjp(_cast_p, lambda ans, x, dtype: lambda g: g)   # the backward loop casts back


def cast(x, dtype):
    """cast(x, dtype): convert dtype; the gradient is cast back to x's dtype.

    A cast to a non-floating dtype (int, bool) is not differentiable: the result
    is a constant, so no integer-typed node ever joins the tape.
    """
    if np.dtype(dtype).kind not in "fc":
        return Tensor(_astype(x, dtype))
    return _cast_p(x, dtype)


def _stop_gradient(x):
    return x


stop_gradient = primitive(_stop_gradient, "stop_gradient")
defvjp(stop_gradient, None)
stop_gradient.__doc__ = "stop_gradient(x): the value of x, through which no gradient flows."

# Functions with no gradient: they unwrap Tensors and return raw arrays.
sign = nograd_primitive(np.sign, "sign")
floor = nograd_primitive(np.floor, "floor")
ceil = nograd_primitive(np.ceil, "ceil")
round = nograd_primitive(np.round, "round")
argmax = nograd_primitive(np.argmax, "argmax")
argmin = nograd_primitive(np.argmin, "argmin")
# Comparisons (also Tensor's <, <=, >, >=, ==, !=) return raw boolean arrays.
less = nograd_primitive(operator.lt, "less")
less_equal = nograd_primitive(operator.le, "less_equal")
greater = nograd_primitive(operator.gt, "greater")
greater_equal = nograd_primitive(operator.ge, "greater_equal")
equal = nograd_primitive(operator.eq, "equal")
not_equal = nograd_primitive(operator.ne, "not_equal")
logical_and = nograd_primitive(np.logical_and, "logical_and")
logical_or = nograd_primitive(np.logical_or, "logical_or")
logical_not = nograd_primitive(np.logical_not, "logical_not")
isfinite = nograd_primitive(np.isfinite, "isfinite")
isnan = nograd_primitive(np.isnan, "isnan")
zeros_like = nograd_primitive(np.zeros_like, "zeros_like")
ones_like = nograd_primitive(np.ones_like, "ones_like")


# ----------------------------------------------------------------------------- reductions

def _norm_axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (tuple, list)):
        return tuple(a % ndim for a in axis)
    return (axis % ndim,)


def _expand(g, shape, axis, keepdims):
    """Broadcast a reduced cotangent back to the input ``shape`` (a read-only view: the
    backward pass copies a cotangent before handing it out or changing it)."""
    if not keepdims and axis is not None:
        g = np.reshape(g, _kept_shape(shape, axis))
    return np.broadcast_to(g, shape)


def _kept_shape(shape, axis):
    if type(axis) is int:               # the common case, without building a tuple
        shape = list(shape)
        shape[axis] = 1
        return tuple(shape)
    axes = _norm_axes(axis, len(shape))
    return tuple(1 if i in axes else s for i, s in enumerate(shape))


# The array methods skip NumPy's Python-level reduction wrapper (~1.5 us a call).
_add_reduce = np.add.reduce
def _sum(x, axis=None, keepdims=False):
    if type(x) is np.ndarray:       # what ndarray.sum calls, minus its Python wrapper
        return _add_reduce(x, axis, None, None, keepdims)
    try:
        return x.sum(axis=axis, keepdims=keepdims)
    except AttributeError:   # Python scalars
        return np.sum(x, axis=axis, keepdims=keepdims)


def _mean(x, axis=None, keepdims=False):
    try:
        return x.mean(axis=axis, keepdims=keepdims)
    except AttributeError:
        return np.mean(x, axis=axis, keepdims=keepdims)


def _count(shape, axis):
    n = 1
    for a in _norm_axes(axis, len(shape)):
        n *= shape[a]
    return n


sum = primitive(_sum, "sum")
"""``sum(x, axis=None, keepdims=False)``: :func:`numpy.sum` over ``axis`` (an int, a tuple or
None for all)."""
defvjp(sum, lambda ans, x, axis=None, keepdims=False:
       (lambda shape: lambda g: _expand(g, shape, axis, keepdims))(np.shape(x)))
mean = primitive(_mean, "mean")
"""``mean(x, axis=None, keepdims=False)``: :func:`numpy.mean` over ``axis``."""
defvjp(mean, lambda ans, x, axis=None, keepdims=False:
       (lambda shape: lambda g: _expand(g, shape, axis, keepdims) / _count(shape, axis))(
           np.shape(x)))


def _extremum_rule(ans, x, axis=None, keepdims=False):
    # Ties share the cotangent equally.
    def vjp(g):
        shape = np.shape(x)
        a = _expand(ans, shape, axis, keepdims)
        mask = x == a
        n = np.sum(mask, axis=axis, keepdims=True)
        return _expand(g, shape, axis, keepdims) * mask / n
    return vjp


max = primitive(lambda x, axis=None, keepdims=False: np.max(x, axis=axis, keepdims=keepdims),
                "max")
"""``max(x, axis=None, keepdims=False)``: :func:`numpy.max`; tied maxima share the gradient
equally."""
defvjp(max, _extremum_rule)
min = primitive(lambda x, axis=None, keepdims=False: np.min(x, axis=axis, keepdims=keepdims),
                "min")
"""``min(x, axis=None, keepdims=False)``: :func:`numpy.min`; tied minima share the gradient
equally."""
defvjp(min, _extremum_rule)


def _prod(x, axis=None, keepdims=False):
    return np.prod(x, axis=axis, keepdims=keepdims)


def _prod_rule(ans, x, axis=None, keepdims=False):
    # Product of all *other* elements, via exclusive cumulative products from both
    # sides, so that zeros in x are handled exactly.
    def vjp(g):
        shape = np.shape(x)
        axes = _norm_axes(axis, len(shape))
        rest = [i for i in range(len(shape)) if i not in axes]
        xt = np.transpose(x, rest + list(axes))
        lead = xt.shape[:len(rest)]
        flat = np.reshape(xt, lead + (-1,))
        ones = np.ones_like(flat[..., :1])
        left = np.cumprod(np.concatenate([ones, flat[..., :-1]], axis=-1), axis=-1)
        right = np.flip(np.cumprod(np.flip(
            np.concatenate([flat[..., 1:], ones], axis=-1), axis=-1), axis=-1), axis=-1)
        others = np.reshape(left * right, xt.shape)
        others = np.transpose(others, np.argsort(rest + list(axes)))
        return _expand(g, shape, axis, keepdims) * others
    return vjp


prod = primitive(_prod, "prod")
"""``prod(x, axis=None, keepdims=False)``: :func:`numpy.prod`; the gradient is exact when ``x``
holds zeros (products of the other elements)."""
defvjp(prod, _prod_rule)


def _cumsum(x, axis=None):
    return np.cumsum(x, axis=axis)


def _cumsum_rule(ans, x, axis=None):
    shape = np.shape(x)

    def vjp(g):
        if axis is None:
            return np.reshape(np.flip(np.cumsum(np.flip(g))), shape)
        return np.flip(np.cumsum(np.flip(g, axis), axis=axis), axis)
    return vjp


cumsum = primitive(_cumsum, "cumsum")
"""``cumsum(x, axis=None)``: :func:`numpy.cumsum` (``axis=None`` flattens first, as NumPy
does)."""
defvjp(cumsum, _cumsum_rule)


def _logsumexp(x, axis=None, keepdims=False):
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    if not keepdims:
        out = np.reshape(out, np.shape(np.sum(m, axis=axis)))
    return out


logsumexp = primitive(_logsumexp, "logsumexp")
"""``logsumexp(x, axis=None, keepdims=False)``: ``log(sum(exp(x)))`` over ``axis``, shifted by
the maximum so that it neither overflows nor underflows; gradient ``softmax(x)``."""
# The gradient is softmax(x), computed shifted by max(x): exp(x - ans) loses the
# digits of ans in x - ans when |x| is large (3e-4 relative error at 1e4 in float32).
defvjp(logsumexp, lambda ans, x, axis=None, keepdims=False: lambda g:
       _expand(g, np.shape(x), axis, keepdims) * _softmax(x, axis))


def _shift_by_max(x, axis):
    """``x - max(x)`` along ``axis``, 0 where an entry equals the max. Finite maxima are
    unchanged; an infinite max gives 0 instead of ``inf - inf = NaN`` at its entries:
    with ``+inf`` logits softmax puts all the mass on them, and with every entry
    ``-inf`` it is uniform (the limit of equal entries, the share max's gradient gives
    ties), so the gradient of logsumexp is never NaN for non-NaN input."""
    m = np.max(x, axis=axis, keepdims=True)
    return np.where(x == m, 0.0, x - m)


def _softmax(x, axis=-1):
    e = np.exp(_shift_by_max(x, axis))
    return e / np.sum(e, axis=axis, keepdims=True)


softmax = primitive(_softmax, "softmax")
"""``softmax(x, axis=-1)``: ``exp(x) / sum(exp(x))`` along ``axis``, shifted by the maximum."""
defvjp(softmax, lambda s, x, axis=-1: lambda g:
       s * (g - np.sum(g * s, axis=axis, keepdims=True)))


def _log_softmax(x, axis=-1):
    # (x - m) - log sum exp(x - m): x - m is exact, unlike x - logsumexp(x) at large |x|
    shifted = _shift_by_max(x, axis)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


log_softmax = primitive(_log_softmax, "log_softmax")
"""``log_softmax(x, axis=-1)``: ``x - logsumexp(x)`` along ``axis``, computed from ``x -
max(x)`` (exact at large ``|x|``)."""
defvjp(log_softmax, lambda ans, x, axis=-1: lambda g:
       g - np.exp(ans) * np.sum(g, axis=axis, keepdims=True))


# ----------------------------------------------------------------------------- shapes

def _reshape(x, shape):
    return np.reshape(x, shape)


def reshape(x, *shape):
    """reshape(x, shape) or reshape(x, d0, d1, ...)."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return _reshape_p(x, shape)


_reshape_p = primitive(_reshape, "reshape")
defvjp(_reshape_p, lambda ans, x, shape: (lambda s: lambda g: np.reshape(g, s))(np.shape(x)))


def _transpose(x, axes=None):
    return np.transpose(x, axes)


def _transpose_rule(ans, x, axes=None):
    # normalise negative axes first: argsort((-1, 0, 1)) is not the inverse of (2, 0, 1)
    inv = None if axes is None else tuple(np.argsort([a % np.ndim(x) for a in axes]))
    return lambda g: np.transpose(g, inv)


_transpose_p = primitive(_transpose, "transpose")
defvjp(_transpose_p, _transpose_rule)


def transpose(x, axes=None):
    """Permute axes (reverse them when ``axes`` is None), as numpy.transpose."""
    return _transpose_p(x, axes)


swapaxes = primitive(lambda x, a1, a2: np.swapaxes(x, a1, a2), "swapaxes")
"""``swapaxes(x, a1, a2)``: :func:`numpy.swapaxes`."""
defvjp(swapaxes, lambda ans, x, a1, a2: lambda g: np.swapaxes(g, a1, a2))


def _shape_rule(ans, x, *args, **kwargs):
    shape = np.shape(x)
    return lambda g: np.reshape(g, shape)


expand_dims = primitive(lambda x, axis: np.expand_dims(x, axis), "expand_dims")
"""``expand_dims(x, axis)``: :func:`numpy.expand_dims`."""
defvjp(expand_dims, _shape_rule)
squeeze = primitive(lambda x, axis=None: np.squeeze(x, axis), "squeeze")
"""``squeeze(x, axis=None)``: :func:`numpy.squeeze`."""
defvjp(squeeze, _shape_rule)
broadcast_to = primitive(lambda x, shape: np.broadcast_to(x, shape), "broadcast_to")
"""``broadcast_to(x, shape)``: :func:`numpy.broadcast_to`; the gradient is summed back to
``x``'s shape."""
defvjp(broadcast_to, lambda ans, x, shape: lambda g: g)   # unbroadcast sums it back


def _concat_fwd(*arrays, axis=0):
    return np.concatenate(arrays, axis=axis)


def _concat_rule(i, ans, *arrays, axis=0):
    sizes = [np.shape(a)[axis] for a in arrays]
    start = int(np.sum(sizes[:i]))
    stop = start + sizes[i]
    ax = axis % np.ndim(ans)
    index = (slice(None),) * ax + (slice(start, stop),)
    return lambda g: g[index]


_concat_p = primitive(_concat_fwd, "concatenate")


def _stack_fwd(*arrays, axis=0):
    return np.stack(arrays, axis=axis)


def _stack_rule(i, ans, *arrays, axis=0):
    ax = axis % np.ndim(ans)
    index = (slice(None),) * ax + (i,)
    return lambda g: g[index]


_stack_p = primitive(_stack_fwd, "stack")


def concatenate(arrays, axis=0):
    """Join a sequence of arrays/Tensors along an existing axis."""
    return _concat_p(*arrays, axis=axis)


def stack(arrays, axis=0):
    """Join a sequence of arrays/Tensors along a new axis."""
    return _stack_p(*arrays, axis=axis)


# Index Tensors enter as raw arrays through a gradient-free identity, so that
# autodiff.trace sees (and replays) an index computed from a traced value.
_index_data = nograd_primitive(lambda i: i, "index")


def _raw_index(idx):
    if type(idx) is Tensor:
        return _index_data(idx)
    if isinstance(idx, tuple):
        return tuple(_index_data(i) if type(i) is Tensor else i for i in idx)
    return idx


def _is_advanced_int(idx):
    items = idx if isinstance(idx, tuple) else (idx,)
    for i in items:
        if isinstance(i, list):
            return True
        kind = getattr(getattr(i, "dtype", None), "kind", None)
        if kind in ("i", "u") and np.ndim(i) > 0:
            return True
    return False


@array_op
def _index_vjp(g, shape, idx):
    """Zeros of ``shape`` with ``g`` written at ``idx`` (added, for repeated advanced
    indices): the VJP of ``x[idx]``, recorded as one operation."""
    z = _zeros(g, shape)
    if _is_advanced_int(idx):  # repeated indices must accumulate
        backend.scatter_add(z, idx, g)
    else:
        z[idx] = g
    return z


def _getitem_rule(ans, x, idx):
    shape = np.shape(x)
    return lambda g: _index_vjp(g, shape, idx)


def _zeros(like, shape):
    return backend.get_array_module(like).zeros(shape, dtype=like.dtype)


getitem = primitive(lambda x, idx: x[idx], "getitem")
"""``getitem(x, idx)``: ``x[idx]`` (what ``Tensor.__getitem__`` records) with basic or integer-
array indices; the gradient is scattered back, repeated indices adding up."""
defvjp(getitem, _getitem_rule, None)


def _take(a, indices, axis=None):
    return np.take(a, indices, axis=axis)


@array_op
def _take_vjp(g, shape, indices, axis):
    """The VJP of ``np.take(a, indices, axis)``: ``g`` added into zeros of a's shape."""
    z = _zeros(g, shape)
    if axis is None:
        flat = z.reshape(-1)
        backend.scatter_add(flat, np.ravel(indices), np.ravel(g))
        return z
    ax = axis % len(shape)
    backend.scatter_add(z, (slice(None),) * ax + (indices,), g)
    return z


def _take_rule(ans, a, indices, axis=None):
    shape = np.shape(a)
    return lambda g: _take_vjp(g, shape, indices, axis)


take = primitive(_take, "take")
"""``take(a, indices, axis=None)``: :func:`numpy.take`; the gradient is added back at
``indices``."""
defvjp(take, _take_rule, None)

tril = primitive(lambda x, k=0: np.tril(x, k), "tril")
"""``tril(x, k=0)``: :func:`numpy.tril` (the last two axes; ``k`` the diagonal offset)."""
defvjp(tril, lambda ans, x, k=0: lambda g: np.tril(g, k))
triu = primitive(lambda x, k=0: np.triu(x, k), "triu")
"""``triu(x, k=0)``: :func:`numpy.triu` (the last two axes; ``k`` the diagonal offset)."""
defvjp(triu, lambda ans, x, k=0: lambda g: np.triu(g, k))


def _diagonal(x, offset=0, axis1=0, axis2=1):
    return np.diagonal(x, offset, axis1, axis2)


@array_op
def _diagonal_vjp(g, shape, offset, axis1, axis2):
    """The VJP of ``np.diagonal``: zeros of the input's shape with ``g`` on the diagonal."""
    z = _zeros(g, shape)
    zm = np.moveaxis(z, (axis1, axis2), (-2, -1))   # a writable view of z
    n = g.shape[-1]
    rows = np.arange(n) + (0 if offset >= 0 else -offset)
    cols = np.arange(n) + (offset if offset >= 0 else 0)
    if backend.is_cupy(g):
        rows, cols = backend.to_device(rows, "gpu"), backend.to_device(cols, "gpu")
    zm[..., rows, cols] = g
    return z


def _diagonal_rule(ans, x, offset=0, axis1=0, axis2=1):
    shape = np.shape(x)
    return lambda g: _diagonal_vjp(g, shape, offset, axis1, axis2)


diagonal = primitive(_diagonal, "diagonal")
"""``diagonal(x, offset=0, axis1=0, axis2=1)``: :func:`numpy.diagonal`; the gradient is the
zero array with ``g`` on that diagonal."""
defvjp(diagonal, _diagonal_rule)


# ----------------------------------------------------------------------------- products

# (array methods .ndim / .swapaxes: np.ndim and np.swapaxes are Python-level wrappers)
def _matmul_rule_a(ans, a, b):
    def vjp(g):
        if b.ndim == 1:
            return np.multiply.outer(g, b) if a.ndim > 1 else g * b
        if a.ndim == 1:
            return np.matmul(b, g[..., None])[..., 0]
        return np.matmul(g, b.swapaxes(-1, -2))
    return vjp


def _matmul_rule_b(ans, a, b):
    def vjp(g):
        if a.ndim == 1:
            if b.ndim == 1:
                return g * a
            return a[:, None] * g[..., None, :]
        if b.ndim == 1:
            return np.matmul(a.swapaxes(-1, -2), g[..., None])[..., 0]
        return np.matmul(a.swapaxes(-1, -2), g)
    return vjp


matmul = primitive(np.matmul, "matmul")
defvjp(matmul, _matmul_rule_a, _matmul_rule_b)


def _linear(x, w, b=None):
    out = np.matmul(x, w)
    if b is None:
        return out
    if np.result_type(out, b) == out.dtype and hasattr(out, "shape") and out.ndim:
        out += b                 # in place: no second output array (PyTorch's addmm)
        return out
    return out + b


linear = primitive(_linear, "linear")
defvjp(linear,
       lambda ans, x, w, b=None: _matmul_rule_a(ans, x, w),
       lambda ans, x, w, b=None: _matmul_rule_b(ans, x, w),
       lambda ans, x, w, b=None: _identity)     # summed to b's shape by the backward pass
linear.__doc__ = ("linear(x, w, b=None): x @ w + b in one op (x [..., I], w [I, O], b [O]); "
                  "the bias is added in place, as a fused affine layer.")


def dot(a, b):
    """numpy.dot for scalars, vectors and matrices (use matmul/einsum for N-D)."""
    na, nb = np.ndim(_data(a)), np.ndim(_data(b))
    if na == 0 or nb == 0:
        return multiply(a, b)
    if na > 2 or nb > 2:
        raise ValueError(f"dot: operands with ndim {na} and {nb}; dot supports ndim <= 2 "
                         f"here, use matmul or einsum for stacked products")
    return matmul(a, b)


def _data(x):
    return x.data if type(x) is Tensor else x


def _einsum_parse(subscripts, ndims):
    """Explicit per-operand and output subscripts with '...' replaced by letters."""
    subscripts = subscripts.replace(" ", "")
    ins, out = (subscripts.split("->") + [None])[:2]
    ins = ins.split(",")
    if len(ins) != len(ndims):
        raise ValueError(f"einsum: subscripts name {len(ins)} operands, got {len(ndims)}")
    free = [c for c in string.ascii_letters if c not in subscripts]
    n_ell = 0
    for s, nd in zip(ins, ndims):
        if "..." in s:
            n_ell = builtins.max(n_ell, nd - (len(s) - 3))
    ell = "".join(free[:n_ell])
    full = []
    for s, nd in zip(ins, ndims):
        if "..." in s:
            k = nd - (len(s) - 3)
            s = s.replace("...", ell[n_ell - k:])
        full.append(s)
    if out is None:
        counts = {}
        for s in full:
            for c in s:
                counts[c] = counts.get(c, 0) + 1
        out = ell + "".join(sorted(c for c, n in counts.items() if n == 1 and c not in ell))
    else:
        out = out.replace("...", ell)
    return full, out


def _einsum_fwd(subscripts, *operands):
    return np.einsum(subscripts, *operands)


def _einsum_rule(i, ans, subscripts, *operands):
    k = i - 1                       # argument 0 is the subscripts string
    ins, out = _einsum_parse(subscripts, [np.ndim(o) for o in operands])
    target = ins[k]
    shape = np.shape(operands[k])
    others = [o for j, o in enumerate(operands) if j != k]
    other_subs = [s for j, s in enumerate(ins) if j != k]
    avail = set(out).union(*other_subs) if other_subs else set(out)
    uniq = "".join(dict.fromkeys(target))
    keep = "".join(c for c in uniq if c in avail)

    def vjp(g):
        r = np.einsum(",".join([out] + other_subs) + "->" + keep, g, *others)
        if keep != uniq:
            # letters summed inside this operand only: broadcast back along them
            sizes = {c: shape[target.index(c)] for c in uniq}
            r = np.broadcast_to(np.reshape(r, [sizes[c] if c in keep else 1 for c in uniq]),
                                [sizes[c] for c in uniq])
        if uniq == target:
            return r
        return _einsum_diagonal_vjp(r, shape, target, uniq)
    return vjp


@array_op
def _einsum_diagonal_vjp(r, shape, target, uniq):
    """Repeated letters in an einsum operand (a diagonal): ``r`` written onto the
    diagonal of zeros of the operand's shape."""
    z = _zeros(r, shape)
    view = np.einsum(target + "->" + uniq, z)
    view[...] = r
    return z


_einsum_p = primitive(_einsum_fwd, "einsum")


def einsum(subscripts, *operands):
    """numpy.einsum on Tensors/arrays (explicit or implicit output; '...' allowed)."""
    return _einsum_p(subscripts, *operands)


# ----------------------------------------------------------------------------- register
# Ops taking a variable number of array arguments get one rule indexed by position.
defvjp_argnum(_concat_p, _concat_rule)
defvjp_argnum(_stack_p, _stack_rule)
defvjp_argnum(_einsum_p, _einsum_rule, no_grad=(0,))
