"""Python operators and convenience methods on Tensor, bound to the ops.

Kept apart from :mod:`autodiff.core` so that the tape knows nothing about NumPy's
function names; comparisons return raw boolean arrays (they carry no gradient).
"""
from . import ops
from .core import Tensor

__all__ = []


def _swap(f):
    return lambda self, other: f(other, self)


def _getitem(self, idx):
    return ops.getitem(self, ops._raw_index(idx))


def _cmp(prim):
    def f(self, other):
        return prim(self, other)
    f.__name__ = prim.__name__
    return f


def _reshape(self, *shape):
    return ops.reshape(self, *shape)


def _transpose(self, *axes):
    if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        axes = tuple(axes[0])
    return ops.transpose(self, axes or None)


_METHODS = {
    "__add__": ops.add, "__radd__": _swap(ops.add),
    "__sub__": ops.subtract, "__rsub__": _swap(ops.subtract),
    "__mul__": ops.multiply, "__rmul__": _swap(ops.multiply),
    "__truediv__": ops.divide, "__rtruediv__": _swap(ops.divide),
    "__pow__": ops.power, "__rpow__": _swap(ops.power),
    "__matmul__": ops.matmul, "__rmatmul__": _swap(ops.matmul),
    "__neg__": ops.negative, "__pos__": lambda self: self, "__abs__": ops.abs,
    "__getitem__": _getitem,
    "__lt__": _cmp(ops.less), "__le__": _cmp(ops.less_equal), "__gt__": _cmp(ops.greater),
    "__ge__": _cmp(ops.greater_equal), "__eq__": _cmp(ops.equal), "__ne__": _cmp(ops.not_equal),
    "sum": ops.sum, "mean": ops.mean, "max": ops.max, "min": ops.min, "prod": ops.prod,
    "exp": ops.exp, "log": ops.log, "sqrt": ops.sqrt, "square": ops.square,
    "reshape": _reshape, "transpose": _transpose, "swapaxes": ops.swapaxes,
    "squeeze": ops.squeeze, "astype": ops.cast, "clip": ops.clip, "cumsum": ops.cumsum,
    "logsumexp": ops.logsumexp,
}
for _name, _f in _METHODS.items():
    setattr(Tensor, _name, _f)
Tensor.__hash__ = object.__hash__   # __eq__ is elementwise; identity hashing stays
