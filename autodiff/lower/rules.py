"""Lowering rules: one function per recorded operation, keyed like :attr:`Eqn.key`.

A rule ``rule(L, eqn, args, kwargs)`` receives the equation's arguments with every
traced value replaced by its :class:`~autodiff.lower.cpu.View` (constants as they
are), emits rows through the :class:`~autodiff.lower.cpu.Lowering` ``L`` and returns
the View(s) of the result. Shapes come from the recording (``eqn.outs``), so a rule
never re-derives NumPy's shape logic. A rule raises :class:`NoRule` for a case it
does not handle (the equation then runs as a Python step).
"""
import numpy as np
import scipy.special as sps

from . import fuse, vm
from .cpu import View, broadcast, reshape, transpose, NotLowerable
from .vm import OP, UN, BIN, RED
from .. import tracer as T

__all__ = ["RULES", "NoRule", "key_of", "register"]


class NoRule(Exception):
    """This rule does not handle these arguments."""


RULES = {}


def register(*keys):
    def deco(f):
        for k in keys:
            RULES[k] = f
        return f
    return deco


def key_of(e):
    return e.key


def _view(L, a):
    if type(a) is View:
        return a
    if a is None or isinstance(a, (str, tuple, list, slice)):
        raise NoRule(f"argument {a!r}")
    return L.const(a)


def _bind(args, kwargs, names, defaults):
    """Positional + keyword arguments as a dict over ``names``."""
    out = dict(defaults)
    for n, a in zip(names, args):
        out[n] = a
    for k, v in kwargs.items():
        if k not in names:
            raise NoRule(f"keyword {k}")
        out[k] = v
    return out


def _out(e, i=0):
    return e.outs[i]


# ----------------------------------------------------------------------------- elementwise
_UNARY = {
    np.negative: UN.NEG, np.exp: UN.EXP, np.log: UN.LOG, np.log1p: UN.LOG1P,
    np.expm1: UN.EXPM1, np.sqrt: UN.SQRT, np.square: UN.SQUARE, np.absolute: UN.ABS,
    np.fabs: UN.ABS, np.sin: UN.SIN, np.cos: UN.COS, np.tan: UN.TAN, np.tanh: UN.TANH,
    np.arctan: UN.ARCTAN, np.arcsin: UN.ARCSIN, np.arccos: UN.ARCCOS, np.sinh: UN.SINH,
    np.cosh: UN.COSH, np.arcsinh: UN.ARCSINH, np.arctanh: UN.ARCTANH, np.sign: UN.SIGN,
    np.floor: UN.FLOOR, np.ceil: UN.CEIL, np.rint: UN.RINT, np.trunc: UN.TRUNC,
    np.isfinite: UN.ISFINITE, np.isnan: UN.ISNAN, np.isinf: UN.ISINF,
    np.logical_not: UN.NOT, np.reciprocal: UN.RECIPROCAL, np.log2: UN.LOG2,
    np.log10: UN.LOG10, np.exp2: UN.EXP2, np.cbrt: UN.CBRT, np.positive: UN.COPY,
    np.conjugate: UN.COPY,
    sps.expit: UN.EXPIT, sps.gammaln: UN.LGAMMA, sps.psi: UN.DIGAMMA, sps.erf: UN.ERF,
    sps.erfc: UN.ERFC, sps.log_expit: UN.LOG_EXPIT, sps.gamma: UN.GAMMA, sps.ndtr: UN.NDTR,
    sps.log_ndtr: UN.LOG_NDTR,
}
_BINARY = {
    np.add: BIN.ADD, np.subtract: BIN.SUB, np.multiply: BIN.MUL, np.true_divide: BIN.DIV,
    np.power: BIN.POW, np.float_power: BIN.POW, np.maximum: BIN.MAX, np.minimum: BIN.MIN,
    np.less: BIN.LT, np.less_equal: BIN.LE, np.greater: BIN.GT, np.greater_equal: BIN.GE,
    np.equal: BIN.EQ, np.not_equal: BIN.NE, np.logical_and: BIN.AND, np.logical_or: BIN.OR,
    np.logical_xor: BIN.XOR, np.logaddexp: BIN.LOGADDEXP, np.arctan2: BIN.ARCTAN2,
    np.floor_divide: BIN.FLOORDIV, np.remainder: BIN.MOD, np.fmax: BIN.FMAX,
    np.fmin: BIN.FMIN, np.hypot: BIN.HYPOT, np.copysign: BIN.COPYSIGN,
    sps.xlogy: BIN.XLOGY, sps.xlog1py: BIN.XLOG1PY,
}


def _elementwise(L, e, args, kwargs):
    if kwargs and any(k != "dtype" or v is not None for k, v in kwargs.items()):
        raise NoRule("ufunc options")
    fn = e.key
    shape = _out(e).shape
    views = [broadcast(_view(L, a), shape) for a in args]
    out = L.new(shape)
    if fn in _UNARY and len(views) == 1:
        L.nest(OP.UNARY, out, views, (_UNARY[fn], 0, 0, 0))
    elif fn in _BINARY and len(views) == 2:
        L.nest(OP.BINARY, out, views, (_BINARY[fn], 0, 0, 0))
    else:
        raise NoRule(fn)
    return out


for _f in list(_UNARY) + list(_BINARY):
    RULES[_f] = _elementwise
# bitwise and/or/xor/invert on booleans are the logical ones
for _f, _g in ((np.bitwise_and, BIN.AND), (np.bitwise_or, BIN.OR), (np.bitwise_xor, BIN.XOR)):
    _BINARY[_f] = _g
    RULES[_f] = lambda L, e, a, k, _f=_f: _bool_only(L, e, a, k)


def _bool_only(L, e, args, kwargs):
    if _out(e).dtype != bool:
        raise NoRule("integer bitwise operation")
    return _elementwise(L, e, args, kwargs)


@register(np.invert)
def _invert(L, e, args, kwargs):
    if _out(e).dtype != bool:
        raise NoRule("integer invert")
    out = L.new(_out(e).shape)
    L.nest(OP.UNARY, out, [broadcast(_view(L, args[0]), out.shape)], (UN.NOT, 0, 0, 0))
    return out


@register(np.where)
def _where(L, e, args, kwargs):
    if len(args) != 3:
        raise NotLowerable("np.where with one argument (a shape that depends on the data)")
    shape = _out(e).shape
    c, x, y = (broadcast(_view(L, a), shape) for a in args)
    out = L.new(shape)
    L.nest(OP.SELECT, out, [c, x, y])
    return out


@register(np.clip)
def _clip(L, e, args, kwargs):
    b = _bind(args, kwargs, ("a", "a_min", "a_max"), {"a_min": None, "a_max": None})
    shape = _out(e).shape
    cur = broadcast(_view(L, b["a"]), shape)
    for bound, f in ((b["a_min"], BIN.MAX), (b["a_max"], BIN.MIN)):
        if bound is None:
            continue
        out = L.new(shape)
        L.nest(OP.BINARY, out, [cur, broadcast(_view(L, bound), shape)], (f, 0, 0, 0))
        cur = out
    return cur if cur is not b["a"] else L.copy(cur)


@register(T.astype)
def _astype(L, e, args, kwargs):
    x = _view(L, args[0])
    dt = np.dtype(args[1])
    src = e.args[0].dtype if type(e.args[0]) is T.Var else np.asarray(args[0]).dtype
    if dt.kind == "b":
        out = L.new(x.shape)
        L.nest(OP.UNARY, out, [x], (UN.BOOL, 0, 0, 0))
        return out
    if dt.kind in "iu" and src.kind == "f":
        out = L.new(x.shape)
        L.nest(OP.UNARY, out, [x], (UN.TRUNC, 0, 0, 0))
        return out
    if dt.kind in "biuf":
        return x               # the rounding to float32, if any, follows the equation
    raise NoRule(f"astype {dt}")


# ----------------------------------------------------------------------------- reductions
def _axes(axis, nd):
    if axis is None:
        return tuple(range(nd))
    if isinstance(axis, (tuple, list)):
        return tuple(sorted(a % nd for a in axis))
    return (int(axis) % nd,)


_IDENTITY = {RED.SUM: 0.0, RED.MAX: -np.inf, RED.MIN: np.inf, RED.PROD: 1.0, RED.ANY: 0.0,
             RED.ALL: 1.0}


def reduce_view(L, x, axes, kind, out_shape):
    """``kind``-reduce ``x`` over ``axes`` into a new value of ``out_shape``."""
    out = L.new(out_shape)
    kept = tuple(1 if i in axes else n for i, n in enumerate(x.shape))
    L.fill(out, _IDENTITY[kind])
    if x.size == 0:
        return out
    ov = broadcast(reshape(L, out, kept), x.shape)
    # X1: a contiguous sum's chunks are a FUSED row's tiles (vm._add_run)
    L.nest(OP.REDUCE, ov, [x], (kind, fuse.TILE, 0, 0))
    return out


def _reduction(kind, mean=False):
    def rule(L, e, args, kwargs):
        b = _bind(args, kwargs, ("a", "axis", "dtype", "out", "keepdims"),
                  {"axis": None, "dtype": None, "out": None, "keepdims": False})
        if b["out"] is not None:
            raise NoRule("out=")
        x = _view(L, b["a"])
        axes = _axes(b["axis"], x.ndim)
        out = reduce_view(L, x, axes, kind, _out(e).shape)
        if mean:
            n = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
            res = L.new(out.shape)
            L.nest(OP.BINARY, res, [out, broadcast(L.const(n), out.shape)],
                   (BIN.DIV, 0, 0, 0))
            return res
        return out
    return rule


def _ufunc_reduce(kind):
    def rule(L, e, args, kwargs):
        b = _bind(args, kwargs, ("array", "axis", "dtype", "out", "keepdims"),
                  {"axis": 0, "dtype": None, "out": None, "keepdims": False})
        return _reduction(kind)(L, e, (b["array"], b["axis"]), {})
    return rule


RULES[np.sum] = _reduction(RED.SUM)
RULES[np.mean] = _reduction(RED.SUM, mean=True)
RULES[np.prod] = _reduction(RED.PROD)
RULES[np.any] = _reduction(RED.ANY)
RULES[np.all] = _reduction(RED.ALL)
for _k in (np.max, np.amax):
    RULES[_k] = lambda L, e, a, k: _reduction(RED.MAX)(L, e, *_minmax(a, k))
for _k in (np.min, np.amin):
    RULES[_k] = lambda L, e, a, k: _reduction(RED.MIN)(L, e, *_minmax(a, k))
RULES[(np.add, "reduce")] = _ufunc_reduce(RED.SUM)
RULES[(np.multiply, "reduce")] = _ufunc_reduce(RED.PROD)
RULES[(np.maximum, "reduce")] = _ufunc_reduce(RED.MAX)
RULES[(np.minimum, "reduce")] = _ufunc_reduce(RED.MIN)
RULES[(np.logical_or, "reduce")] = _ufunc_reduce(RED.ANY)
RULES[(np.logical_and, "reduce")] = _ufunc_reduce(RED.ALL)


def _minmax(args, kwargs):
    # np.max(a, axis=None, out=None, keepdims=False, initial=..., where=...)
    b = _bind(args, kwargs, ("a", "axis", "out", "keepdims"),
              {"axis": None, "out": None, "keepdims": False})
    return (b["a"], b["axis"]), {"out": b["out"], "keepdims": b["keepdims"]}


def _axis_last(L, x, axis):
    """``x`` (flattened when ``axis`` is None) and the permutation moving ``axis`` last."""
    if axis is None:
        x, ax = reshape(L, x, (x.size,)), 0
    else:
        ax = axis % x.ndim
    return x, [i for i in range(x.ndim) if i != ax] + [ax]


def _cum(kind):
    def rule(L, e, args, kwargs):
        b = _bind(args, kwargs, ("a", "axis", "dtype", "out"),
                  {"axis": None, "dtype": None, "out": None})
        x, perm = _axis_last(L, _view(L, b["a"]), b["axis"])
        out = L.new(x.shape)
        if x.size == 0:
            return out
        xo, oo = transpose(x, perm), transpose(out, perm)
        _rows_last_axis(L, OP.SCAN_AXIS, oo, xo, (kind, 0, 0, 0))
        return out
    return rule


def _argreduce(kind):
    def rule(L, e, args, kwargs):
        b = _bind(args, kwargs, ("a", "axis", "out", "keepdims"),
                  {"axis": None, "out": None, "keepdims": False})
        if b["out"] is not None:
            raise NoRule("out=")
        x, perm = _axis_last(L, _view(L, b["a"]), b["axis"])
        xt = transpose(x, perm)
        out = L.new(xt.shape[:-1])
        ov = out.with_(shape=xt.shape, strides=out.strides + (0,))
        _rows_last_axis(L, OP.ARGREDUCE, ov, xt, (kind, 0, 0, 0))
        return reshape(L, out, _out(e).shape)
    return rule


RULES[np.argmax] = _argreduce(0)
RULES[np.argmin] = _argreduce(1)
RULES[np.cumsum] = _cum(RED.SUM)
RULES[np.cumprod] = _cum(RED.PROD)


def _rows_last_axis(L, op, out, x, xs):
    """Rows over all leading dims of ``out``/``x`` with the last axis kept as dim 3."""
    lead = out.shape[:-1]
    if len(lead) > 3:
        for i in range(lead[0]):
            _rows_last_axis(L, op, out.with_(off=out.off + i * out.strides[0],
                                             shape=out.shape[1:], strides=out.strides[1:]),
                            x.with_(off=x.off + i * x.strides[0], shape=x.shape[1:],
                                    strides=x.strides[1:]), xs)
        return
    pad = 3 - len(lead)
    n = [1] * pad + list(out.shape)
    so = [0] * pad + list(out.strides)
    sa = [0] * pad + list(x.strides)
    L.row(op, n, out, x, x=xs, so=so, sa=sa)


# ----------------------------------------------------------------------------- shapes
def _same_shape_view(L, e, args, kwargs):
    """reshape / ravel / expand_dims / squeeze / atleast_*: C-order reshapes."""
    return reshape(L, _view(L, args[0]), _out(e).shape)


for _k in (np.reshape, np.ravel, np.expand_dims, np.squeeze, np.atleast_1d, np.atleast_2d,
           np.atleast_3d):
    RULES[_k] = _same_shape_view


@register(T.flatten, np.copy, np.ascontiguousarray, np.array, np.asarray)
def _copy(L, e, args, kwargs):
    if kwargs.get("dtype") not in (None, _out(e).dtype) or len(args) > 1:
        raise NoRule("copy with options")
    return L.copy(reshape(L, _view(L, args[0]), _out(e).shape))


@register(np.transpose)
def _transpose(L, e, args, kwargs):
    b = _bind(args, kwargs, ("a", "axes"), {"axes": None})
    return transpose(_view(L, b["a"]), b["axes"])


@register(np.swapaxes)
def _swapaxes(L, e, args, kwargs):
    x = _view(L, args[0])
    a1, a2 = args[1] % x.ndim, args[2] % x.ndim
    perm = list(range(x.ndim))
    perm[a1], perm[a2] = perm[a2], perm[a1]
    return transpose(x, perm)


@register(np.moveaxis)
def _moveaxis(L, e, args, kwargs):
    b = _bind(args, kwargs, ("a", "source", "destination"), {})
    x = _view(L, b["a"])
    src = [s % x.ndim for s in np.atleast_1d(b["source"])]
    dst = [d % x.ndim for d in np.atleast_1d(b["destination"])]
    order = [n for n in range(x.ndim) if n not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return transpose(x, order)


@register(np.broadcast_to)
def _broadcast_to(L, e, args, kwargs):
    return broadcast(_view(L, args[0]), _out(e).shape)


@register(np.flip)
def _flip(L, e, args, kwargs):
    b = _bind(args, kwargs, ("m", "axis"), {"axis": None})
    x = _view(L, b["m"])
    axes = _axes(b["axis"], x.ndim)
    off, st = x.off, list(x.strides)
    for a in axes:
        off += (x.shape[a] - 1) * st[a]
        st[a] = -st[a]
    return x.with_(off=off, strides=st)


@register(np.real, np.conj)
def _identity(L, e, args, kwargs):
    return _view(L, args[0])


@register(np.diagonal)
def _diagonal(L, e, args, kwargs):
    b = _bind(args, kwargs, ("a", "offset", "axis1", "axis2"),
              {"offset": 0, "axis1": 0, "axis2": 1})
    return _diag_view(_view(L, b["a"]), b["offset"], b["axis1"], b["axis2"])


def _diag_view(x, offset, axis1, axis2):
    a1, a2 = axis1 % x.ndim, axis2 % x.ndim
    n1, n2 = x.shape[a1], x.shape[a2]
    s1, s2 = x.strides[a1], x.strides[a2]
    off = x.off + (offset * s2 if offset >= 0 else -offset * s1)
    n = max(0, min(n1 - max(0, -offset), n2 - max(0, offset)))
    rest = [i for i in range(x.ndim) if i not in (a1, a2)]
    return x.with_(off=off, shape=[x.shape[i] for i in rest] + [n],
                   strides=[x.strides[i] for i in rest] + [s1 + s2])


@register(np.ones_like, np.zeros_like, np.empty_like, np.full_like)
def _filled(L, e, args, kwargs):
    out = L.new(_out(e).shape)
    if e.key is np.full_like:
        b = _bind(args, kwargs, ("a", "fill_value", "dtype"), {"dtype": None})
        val = b["fill_value"]
        if type(val) is View:
            L.copy(broadcast(val, out.shape), out)
            return out
    else:
        val = 1.0 if e.key is np.ones_like else 0.0
    L.fill(out, val)
    return out


@register(np.concatenate)
def _concatenate(L, e, args, kwargs):
    b = _bind(args, kwargs, ("arrays", "axis", "out", "dtype"),
              {"axis": 0, "out": None, "dtype": None})
    if b["axis"] is None:
        raise NoRule("axis=None")
    out = L.new(_out(e).shape)
    ax = b["axis"] % out.ndim
    start = 0
    for a in b["arrays"]:
        v = _view(L, a)
        part = out.with_(off=out.off + start * out.strides[ax],
                         shape=out.shape[:ax] + (v.shape[ax],) + out.shape[ax + 1:])
        if v.size:
            L.copy(v, part)
        start += v.shape[ax]
    return out


@register(np.stack)
def _stack(L, e, args, kwargs):
    b = _bind(args, kwargs, ("arrays", "axis", "out"), {"axis": 0, "out": None})
    out = L.new(_out(e).shape)
    ax = b["axis"] % out.ndim
    for i, a in enumerate(b["arrays"]):
        v = _view(L, a)
        part = out.with_(off=out.off + i * out.strides[ax],
                         shape=out.shape[:ax] + out.shape[ax + 1:],
                         strides=out.strides[:ax] + out.strides[ax + 1:])
        L.copy(v, part)
    return out


@register(np.tril, np.triu)
def _tri(L, e, args, kwargs):
    b = _bind(args, kwargs, ("m", "k"), {"k": 0})
    x = _view(L, b["m"])
    if x.ndim < 2:
        raise NoRule("tril of a vector")
    big = 1 << 40
    k = int(b["k"])
    rng = (-k, big) if e.key is np.tril else (-big, -k + 1)
    out = L.new(x.shape)
    mat_rows(L, OP.TRIL_MASK, out, [x], (rng[0], rng[1], 0, 0))
    return out


def mat_rows(L, op, out, ins, xs, batch_of=None):
    """Rows for a batched matrix operation: dims 2 and 3 of the row are the last two
    axes of each operand, dims 0 and 1 the (at most two) batch axes; more batch axes are
    split into several rows."""
    views = [out] + list(ins)
    nb = out.ndim - 2
    if nb > 2:
        for i in range(out.shape[0]):
            sub = [v.with_(off=v.off + i * v.strides[0], shape=v.shape[1:],
                           strides=v.strides[1:]) for v in views]
            mat_rows(L, op, sub[0], sub[1:], xs)
        return
    pad = 2 - nb
    n = [1] * pad + list(out.shape[:nb]) + [out.shape[-2], out.shape[-1]]
    sts = [[0] * pad + list(v.strides[:nb]) + list(v.strides[-2:]) for v in views]
    sts += [[0] * 4] * (4 - len(sts))
    ops = views + [None] * (4 - len(views))
    L.row(op, n, ops[0], ops[1], ops[2], ops[3], xs, *sts)


# ----------------------------------------------------------------------------- indexing
def _index_parts(shape, idx):
    """Normalise a NumPy index: a tuple of ints, slices, None, arrays (Views or
    constants), Ellipsis expanded."""
    if not isinstance(idx, tuple):
        idx = (idx,)
    n_real = sum(_ndim_taken(i) for i in idx)
    out = []
    for i in idx:
        if i is Ellipsis:
            out.extend([slice(None)] * (len(shape) - n_real))
        else:
            out.append(i)
    if not any(i is Ellipsis for i in idx):
        out.extend([slice(None)] * (len(shape) - n_real))
    return out


def _ndim_taken(i):
    """How many axes of the indexed array an index item consumes."""
    if i is None or i is Ellipsis:
        return 0
    if isinstance(i, (np.ndarray, list)) and np.asarray(i).dtype == bool:
        return np.ndim(i)
    return 1


def _is_array_index(i):
    return type(i) is View or isinstance(i, (np.ndarray, list)) or (
        isinstance(i, np.generic) and i.dtype.kind == "b")


def basic_view(x, idx):
    """The view ``x[idx]`` for a basic index (ints, slices, None), or None."""
    parts = _index_parts(x.shape, idx)
    if any(_is_array_index(i) for i in parts):
        return None
    off, shape, strides, d = x.off, [], [], 0
    for i in parts:
        if i is None:
            shape.append(1)
            strides.append(0)
            continue
        n, s = x.shape[d], x.strides[d]
        if isinstance(i, slice):
            start, stop, step = i.indices(n)
            cnt = len(range(start, stop, step))
            off += start * s
            shape.append(cnt)
            strides.append(s * step)
        else:
            j = int(i)
            if j < 0:
                j += n
            if not 0 <= j < n:
                raise NoRule("index out of range")
            off += j * s
        d += 1
    return x.with_(off=off, shape=shape, strides=strides)


def _offsets(x):
    """Workspace offsets (relative to ``x.off``) of every element of view ``x``."""
    out = np.zeros(x.shape, dtype=np.int64)
    for d, (n, s) in enumerate(zip(x.shape, x.strides)):
        sh = [1] * x.ndim
        sh[d] = n
        out = out + (np.arange(n, dtype=np.int64) * s).reshape(sh)
    return out


def _constant_index(idx):
    """True when no part of ``idx`` is a traced value."""
    parts = idx if isinstance(idx, tuple) else (idx,)
    return not any(type(i) is View for i in parts)


@register(T.getitem)
def _getitem(L, e, args, kwargs):
    x, idx = _view(L, args[0]), args[1]
    v = basic_view(x, idx)
    if v is not None:
        return v
    if _constant_index(idx):          # a static gather: offsets computed now
        rel = _offsets(x)[idx]
        out = L.new(_out(e).shape)
        if out.size:
            L.row(OP.GATHER, (out.size, 1, 1, 1), out, x, x=(L.table(rel), 0, 0, 0))
        return out
    return _dynamic_index(L, e, x, idx)


def _dyn_views(x, idx):
    """For ``x[idx]`` with one traced integer index array among slices and ints: the view
    of ``x`` over the result's shape (stride 0 along the index dims), the index view
    over the same shape, the indexed axis' size and stride, and the result's shape."""
    parts = _index_parts(x.shape, idx)
    traced = [k for k, i in enumerate(parts) if type(i) is View]
    if len(traced) != 1 or any(_is_array_index(i) for k, i in enumerate(parts)
                               if k != traced[0]) or any(i is None for i in parts):
        raise NoRule("several array indices")
    k = traced[0]
    iv = parts[k]
    pre = basic_view(x, tuple(parts[:k]) + (slice(None),) * (x.ndim - k))
    ax = sum(1 for i in parts[:k] if isinstance(i, slice))      # the axis' place in pre
    rest = basic_view(pre, (slice(None),) * (ax + 1) + tuple(parts[k + 1:]))
    size, stride = rest.shape[ax], rest.strides[ax]
    lead, tail = rest.shape[:ax], rest.shape[ax + 1:]
    out_shape = tuple(lead + iv.shape + tail)
    ni = len(iv.shape)
    a = rest.with_(shape=out_shape, strides=rest.strides[:ax] + (0,) * ni
                   + rest.strides[ax + 1:])
    b = iv.with_(shape=out_shape, strides=(0,) * len(lead) + broadcast(iv, iv.shape).strides
                 + (0,) * len(tail))
    return a, b, size, stride, out_shape


def _dynamic_index(L, e, x, idx):
    """``x[idx]`` with one traced integer index array (see :func:`_dyn_views`)."""
    a, b, size, stride, out_shape = _dyn_views(x, idx)
    if out_shape != tuple(_out(e).shape):
        raise NoRule("index layout")
    out = L.new(out_shape)
    L.nest(OP.DYNGATHER, out, [a, b], (size, stride, 0, 0))
    return out


def add_at(L, target, idx, g):
    """Rows adding ``g`` into ``target[idx]`` in place (repeated advanced indices
    accumulate): a strided view for basic indices, a scatter for constant arrays, a
    dynamic scatter for a traced index."""
    v = basic_view(target, idx)
    if v is not None:
        L.nest(OP.BINARY, v, [v, broadcast(g, v.shape)], (BIN.ADD, 0, 0, 0))
    elif not _constant_index(idx):
        dynamic_scatter(L, target, idx, g)
    else:
        rel = _offsets(target)[idx]
        src = L.contiguous(broadcast(g, rel.shape))
        if src.size:
            L.row(OP.SCATTER_ADD, (src.size, 1, 1, 1), target, src,
                  x=(L.table(rel), 0, 0, 0))


def dynamic_scatter(L, target, idx, g):
    """``target[idx] += g`` in place, ``idx`` with one traced index array."""
    a, b, size, stride, out_shape = _dyn_views(target, idx)
    L.nest(OP.DYNSCATTER, a, [L.contiguous(broadcast(g, out_shape)), b], (size, stride, 0, 0))


@register(np.take)
def _take(L, e, args, kwargs):
    b = _bind(args, kwargs, ("a", "indices", "axis", "out", "mode"),
              {"axis": None, "out": None, "mode": "raise"})
    x, ind = _view(L, b["a"]), b["indices"]
    if b["out"] is not None or b["mode"] != "raise":
        raise NoRule("take options")
    if b["axis"] is None:
        x = reshape(L, x, (x.size,))
        ax = 0
    else:
        ax = b["axis"] % x.ndim
    idx = (slice(None),) * ax + (ind,)
    return _getitem(L, e, (x, idx), {})


def _zeros_with(L, e, shape, write):
    out = L.new(tuple(shape))
    L.fill(out, 0.0)
    write(out)
    return out


def _register_ops_rules():
    """Rules for autodiff's own array operations (imported late: no import cycle)."""
    from .. import ops, linalg

    @register(ops._index_vjp.__wrapped__)
    def _index_vjp(L, e, args, kwargs):
        g, shape, idx = _view(L, args[0]), args[1], args[2]

        return _zeros_with(L, e, shape, lambda z: add_at(L, z, idx, g))

    from .simplify import index_add

    @register(ops._trigamma.__wrapped__)
    def _trigamma(L, e, args, kwargs):
        x = _view(L, args[0])
        out = L.new(x.shape)
        L.nest(OP.UNARY, out, [x], (UN.TRIGAMMA, 0, 0, 0))
        return out

    @register(index_add)
    def _index_add(L, e, args, kwargs):
        acc, g, idx = _view(L, args[0]), _view(L, args[1]), args[2]
        out = acc if L.reusable(acc) else L.copy(acc)
        add_at(L, out, idx, g)
        return out

    @register(ops._take_vjp.__wrapped__)
    def _take_vjp(L, e, args, kwargs):
        g, shape, ind, axis = _view(L, args[0]), args[1], args[2], args[3]
        if type(ind) is View:
            raise NoRule("traced take index")

        def write(z):
            if axis is None:
                rel = np.ravel(_offsets(z).reshape(-1)[np.ravel(ind)])
                src = L.contiguous(reshape(L, g, (g.size,)))
            else:
                ax = axis % len(shape)
                rel = _offsets(z)[(slice(None),) * ax + (ind,)]
                src = L.contiguous(broadcast(g, rel.shape))
            if rel.size:
                L.row(OP.SCATTER_ADD, (rel.size, 1, 1, 1), z, src,
                      x=(L.table(rel), 0, 0, 0))
        return _zeros_with(L, e, shape, write)

    @register(ops._diagonal_vjp.__wrapped__)
    def _diagonal_vjp(L, e, args, kwargs):
        g, shape, offset, a1, a2 = _view(L, args[0]), *args[1:5]
        return _zeros_with(L, e, shape,
                           lambda z: L.copy(g, _diag_view(z, offset, a1, a2)))

    @register(ops._einsum_diagonal_vjp.__wrapped__)
    def _einsum_diag_vjp(L, e, args, kwargs):
        r, shape, target, uniq = _view(L, args[0]), args[1], args[2], args[3]

        def write(z):
            # the view of z indexed by the unique letters: strides summed over repeats
            st = [sum(z.strides[i] for i, c in enumerate(target) if c == u) for u in uniq]
            L.copy(r, z.with_(shape=[shape[target.index(u)] for u in uniq], strides=st))
        return _zeros_with(L, e, shape, write)

    for fn, rule in ((linalg._cholesky, _cholesky), (linalg._solve, _solve),
                     (linalg._inv, _inv)):
        RULES[fn.__wrapped__] = (lambda rule: lambda L, e, a, k: rule(L, e, a, k,
                                                                     stack_nan=True))(rule)

    @register(linalg._trisolve.__wrapped__)
    def _trisolve(L, e, args, kwargs):
        b_ = _bind(args, kwargs, ("a", "b", "lower", "trans"), {})
        a, bb, lower, trans = _view(L, b_["a"]), _view(L, b_["b"]), b_["lower"], b_["trans"]
        if trans not in (0, 1) or a.ndim < 2 or bb.ndim < 2:
            raise NoRule("trisolve options")
        if trans:
            a = transpose(a, list(range(a.ndim - 2)) + [a.ndim - 1, a.ndim - 2])
            lower = not lower
        out_shape = _out(e).shape
        batch = out_shape[:-2]
        a = broadcast(a, batch + a.shape[-2:])
        bb = broadcast(bb, batch + bb.shape[-2:])
        out = L.new(out_shape)
        n, k = out_shape[-2], out_shape[-1]
        mat_rows(L, OP.TRISOLVE, out, [a, bb], (n, k, int(bool(lower)), 0))
        return out


# ----------------------------------------------------------------------------- products
@register(np.matmul, np.dot)
def _matmul(L, e, args, kwargs):
    if kwargs:
        raise NoRule("matmul options")
    a, b = _view(L, args[0]), _view(L, args[1])
    if e.key is np.dot and (a.ndim > 2 or b.ndim > 2):
        raise NoRule("np.dot of stacks")
    if a.ndim == 0 or b.ndim == 0:
        shape = _out(e).shape
        out = L.new(shape)
        L.nest(OP.BINARY, out, [broadcast(a, shape), broadcast(b, shape)], (BIN.MUL, 0, 0, 0))
        return out
    va, vb = a.ndim == 1, b.ndim == 1
    if va:
        a = a.with_(shape=(1,) + a.shape, strides=(0,) + a.strides)
    if vb:
        b = b.with_(shape=b.shape + (1,), strides=b.strides + (0,))
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    batch = tuple(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]))
    a = broadcast(a, batch + (m, k))
    b = broadcast(b, batch + (k, n))
    out = L.new(batch + (m, n))
    matmul_rows(L, out, a, b)
    return reshape(L, out, _out(e).shape)


def matmul_rows(L, out, a, b):
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    blas = m * k * n >= vm.BLAS_MIN and L.dtype.kind == "f"
    if blas:
        a = _blas_ready(L, a, m, k)
        b = _blas_ready(L, b, k, n)
    mat_rows(L, OP.MATMUL, out, [a, b], (m, k, n, int(blas)))


def _blas_ready(L, v, r, c):
    """``v`` [..., r, c] with each matrix C- or F-contiguous (copied if needed)."""
    sr, sc = v.strides[-2], v.strides[-1]
    if (sc == 1 or c == 1) and (sr == c or r == 1):
        return v.with_(strides=v.strides[:-2] + (c, 1))
    if (sr == 1 or r == 1) and (sc == r or c == 1):
        return v.with_(strides=v.strides[:-2] + (1, r))
    return L.copy(v)


@register((np.multiply, "outer"))
def _outer(L, e, args, kwargs):
    a, b = _view(L, args[0]), _view(L, args[1])
    shape = _out(e).shape
    av = a.with_(shape=a.shape + (1,) * b.ndim, strides=a.strides + (0,) * b.ndim)
    bv = b.with_(shape=(1,) * a.ndim + b.shape, strides=(0,) * a.ndim + b.strides)
    out = L.new(shape)
    L.nest(OP.BINARY, out, [broadcast(av, shape), broadcast(bv, shape)], (BIN.MUL, 0, 0, 0))
    return out


@register(np.outer)
def _np_outer(L, e, args, kwargs):
    a, b = _view(L, args[0]), _view(L, args[1])
    return _outer(L, e, (reshape(L, a, (a.size,)), reshape(L, b, (b.size,))), {})


@register(np.einsum)
def _einsum(L, e, args, kwargs):
    if kwargs or not isinstance(args[0], str):
        raise NoRule("einsum options")
    from ..ops import _einsum_parse
    ops_ = [_view(L, a) for a in args[1:]]
    ins, out_s = _einsum_parse(args[0], [v.ndim for v in ops_])
    terms = list(zip(ins, ops_))
    while len(terms) > 1:
        (s1, v1), (s2, v2) = terms[0], terms[1]
        later = set(out_s).union(*[s for s, _ in terms[2:]]) if terms[2:] else set(out_s)
        keep = "".join(c for c in dict.fromkeys(s1 + s2) if c in later)
        terms = [(keep, _contract(L, s1, v1, s2, v2, keep))] + terms[2:]
    s, v = terms[0]
    v, s = _diagonals(v, s)
    drop = [i for i, c in enumerate(s) if c not in out_s]
    if drop:
        v = reduce_view(L, v, tuple(drop), RED.SUM,
                        tuple(n for i, n in enumerate(v.shape) if i not in drop))
        s = "".join(c for c in s if c in out_s)
    v = transpose(v, [s.index(c) for c in out_s])
    return reshape(L, v, _out(e).shape)


def _diagonals(v, s):
    """Repeated letters in one operand: the diagonal view."""
    while len(set(s)) < len(s):
        for i, c in enumerate(s):
            j = s.find(c, i + 1)
            if j >= 0:
                v = _diag_view(v, 0, i, j)
                s = s[:i] + s[i + 1:j] + s[j + 1:] + c
                break
    return v, s


def _contract(L, s1, v1, s2, v2, keep):
    """Two einsum operands to one with letters ``keep`` (in that order) by a batched
    matrix product."""
    v1, s1 = _diagonals(v1, s1)
    v2, s2 = _diagonals(v2, s2)
    for which in (0, 1):                  # sum letters found in one operand only
        s, v, other = (s1, v1, s2) if which == 0 else (s2, v2, s1)
        drop = [i for i, c in enumerate(s) if c not in other and c not in keep]
        if drop:
            v = reduce_view(L, v, tuple(drop), RED.SUM,
                            tuple(n for i, n in enumerate(v.shape) if i not in drop))
            s = "".join(c for c in s if c not in [s[i] for i in drop])
        if which == 0:
            s1, v1 = s, v
        else:
            s2, v2 = s, v
    size = {}
    for s, v in ((s1, v1), (s2, v2)):
        for c, n in zip(s, v.shape):
            size[c] = max(size.get(c, 1), n)
    # letters of size 1 in one operand broadcast against the other (ellipsis dims)
    v1 = broadcast(v1, tuple(size[c] for c in s1))
    v2 = broadcast(v2, tuple(size[c] for c in s2))
    batch = [c for c in s1 if c in s2 and c in keep]
    contr = [c for c in s1 if c in s2 and c not in keep]
    free1 = [c for c in s1 if c not in s2]
    free2 = [c for c in s2 if c not in s1]
    a = transpose(v1, [s1.index(c) for c in batch + free1 + contr])
    b = transpose(v2, [s2.index(c) for c in batch + contr + free2])
    nb = int(np.prod([size[c] for c in batch], dtype=np.int64))
    m = int(np.prod([size[c] for c in free1], dtype=np.int64))
    kk = int(np.prod([size[c] for c in contr], dtype=np.int64))
    n = int(np.prod([size[c] for c in free2], dtype=np.int64))
    a = reshape(L, a, (nb, m, kk))
    b = reshape(L, b, (nb, kk, n))
    out = L.new((nb, m, n))
    matmul_rows(L, out, a, b)
    res = reshape(L, out, tuple(size[c] for c in batch + free1 + free2))
    order = batch + free1 + free2
    return transpose(res, [order.index(c) for c in keep])


# ----------------------------------------------------------------------------- linalg
@register(np.linalg.cholesky)
def _cholesky(L, e, args, kwargs, stack_nan=False):
    """NumPy's cholesky raises for any failing matrix (the row stops the machine and
    the tape raises); autodiff's gives NaN for failing members of a stack."""
    if kwargs:
        raise NoRule("cholesky options")
    a = _view(L, args[0])
    out = L.new(a.shape)
    stop = not (stack_nan and a.ndim > 2)
    mat_rows(L, OP.CHOLESKY, out, [a], (a.shape[-1], int(stop), 0, 0))
    return out


def _batched_square(L, a, batch):
    """A writable contiguous copy of the square matrices ``a`` broadcast to ``batch``."""
    return L.copy(broadcast(a, tuple(batch) + a.shape[-2:]))


@register(np.linalg.solve)
def _solve(L, e, args, kwargs, stack_nan=False):
    if kwargs:
        raise NoRule("solve options")
    a, b = _view(L, args[0]), _view(L, args[1])
    stop = not (stack_nan and a.ndim > 2)
    vec = b.ndim == 1
    if vec:
        b = b.with_(shape=b.shape + (1,), strides=b.strides + (0,))
    batch = tuple(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]))
    m = _batched_square(L, a, batch)
    x = L.copy(broadcast(b, batch + b.shape[-2:]))
    mat_rows(L, OP.GAUSS, x, [m], (a.shape[-1], b.shape[-1], int(stop), 0))
    return reshape(L, x, _out(e).shape)


@register(np.linalg.inv)
def _inv(L, e, args, kwargs, stack_nan=False):
    a = _view(L, args[0])
    stop = not (stack_nan and a.ndim > 2)
    n = a.shape[-1]
    batch = a.shape[:-2]
    m = _batched_square(L, a, batch)
    x = L.copy(broadcast(L.const(np.eye(n)), batch + (n, n)))
    mat_rows(L, OP.GAUSS, x, [m], (n, n, int(stop), 0))
    return x


@register(np.linalg.slogdet)
def _slogdet(L, e, args, kwargs):
    a = _view(L, args[0])
    batch = a.shape[:-2]
    m = _batched_square(L, a, batch)
    logdet, sign = L.new(batch), L.new(batch)
    lv = logdet.with_(shape=batch + (1, 1), strides=logdet.strides + (0, 0))
    sv = sign.with_(shape=batch + (1, 1), strides=sign.strides + (0, 0))
    mat_rows(L, OP.SLOGDET, lv, [m, sv], (a.shape[-1], 0, 0, 0))
    return sign, logdet


# ----------------------------------------------------------------------------- checks
@register(T._check_all)
def _check(L, e, args, kwargs):
    ok = _view(L, args[0])
    L.nest(OP.CHECK, ok, [ok])
    return ()


_register_ops_rules()


def _register_loops():
    from . import loops
    loops.register()


_register_loops()
