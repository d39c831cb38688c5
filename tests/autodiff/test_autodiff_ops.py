"""Every autodiff primitive, driven by one table of cases.

Each row of ``CASES`` is ``Case(id, fn, specs, kwargs, ref)``: ``fn`` is the autodiff
op, ``specs`` describe its positional arguments (random float64 arrays to
differentiate, or constants), ``ref`` the NumPy/SciPy reference. One parametrized
test consumes the table and checks, for every row:

* the forward value equals the reference (rtol 1e-12) and keeps float64;
* ``autodiff.check_grads`` (random projection, STYLE.md practice 5) passes;
* the full gradient of ``<v, fn(x)>`` equals element-wise central differences
  (a check independent of ``check_grads``), with gradient shapes and dtypes equal
  to the argument shapes and dtypes.

Kinked ops (abs, relu, max, min, clip, maximum, minimum) get inputs on a grid
(``D``) that keeps every kink at least 0.25 away.
"""
import dataclasses
import itertools
import zlib

import numpy as np
import pytest
import scipy.linalg as sl
import scipy.special as ss

import autodiff as ad

from . import conv_ref


# ----------------------------------------------------------------------------- arg specs

@dataclasses.dataclass(frozen=True)
class R:
    """Standard normal array to differentiate."""
    shape: tuple = ()

    def make(self, rng):
        return rng.standard_normal(self.shape)


@dataclasses.dataclass(frozen=True)
class U:
    """Uniform(lo, hi) array to differentiate (positive domains)."""
    shape: tuple = ()
    lo: float = 0.5
    hi: float = 2.0

    def make(self, rng):
        return rng.uniform(self.lo, self.hi, self.shape)


def P(*shape):
    return U(tuple(shape))


@dataclasses.dataclass(frozen=True)
class D:
    """Distinct values on the grid 0.5 Z + offset: no ties, kinks at least 0.25 away."""
    shape: tuple = ()
    offset: float = 0.25

    def make(self, rng):
        n = int(np.prod(self.shape))
        v = (rng.permutation(n) - n // 2) * 0.5 + self.offset
        return v.reshape(self.shape)


@dataclasses.dataclass(frozen=True)
class WZ:
    """Uniform values with exact zeros: column 0 has one zero, column 1 two, row 2 two."""
    shape: tuple = (3, 4)

    def make(self, rng):
        x = rng.uniform(0.5, 1.5, self.shape)
        x[0, 0] = x[1, 1] = x[2, 1] = x[2, 3] = 0.0
        return x


@dataclasses.dataclass(frozen=True)
class SPD:
    """Well-conditioned symmetric positive-definite matrices [*batch, n, n]."""
    batch: tuple = ()
    n: int = 3

    def make(self, rng):
        a = rng.standard_normal(self.batch + (self.n, self.n))
        return a @ np.swapaxes(a, -1, -2) / self.n + np.eye(self.n)


@dataclasses.dataclass(frozen=True)
class SQ:
    """Well-conditioned general square matrices [*batch, n, n] (det sign varies)."""
    batch: tuple = ()
    n: int = 3

    def make(self, rng):
        a = 0.3 * rng.standard_normal(self.batch + (self.n, self.n))
        sign = np.where(rng.uniform(size=self.batch + (self.n,)) < 0.5, -1.0, 1.0)
        return a + np.eye(self.n) * 2 * sign[..., None]


@dataclasses.dataclass(frozen=True)
class TRI:
    """Well-conditioned triangular matrices; the other triangle holds junk on purpose."""
    batch: tuple = ()
    n: int = 3

    def make(self, rng):
        a = 0.3 * rng.standard_normal(self.batch + (self.n, self.n))
        return a + 2 * np.eye(self.n)


@dataclasses.dataclass(frozen=True)
class K:
    """A constant argument, passed as is and not differentiated."""
    value: object

    def make(self, rng):
        return self.value


# ----------------------------------------------------------------------------- references

def _ref_solve_triangular(a, b, lower=False, trans=0):
    vec = b.ndim == a.ndim - 1
    bb = b[..., None] if vec else b
    batch = np.broadcast_shapes(a.shape[:-2], bb.shape[:-2])
    A = np.broadcast_to(a, batch + a.shape[-2:])
    B = np.broadcast_to(bb, batch + bb.shape[-2:])
    out = np.empty(B.shape)
    for i in np.ndindex(*batch):
        out[i] = sl.solve_triangular(A[i], B[i], lower=lower, trans=trans)
    return out[..., 0] if vec else out


def _sym(a):
    return 0.5 * (a + np.swapaxes(a, -1, -2))


def _ad_sym(a):
    return 0.5 * (a + ad.swapaxes(a, -1, -2))


REF = {
    "exp": np.exp, "log": np.log, "log1p": np.log1p, "expm1": np.expm1, "sqrt": np.sqrt,
    "square": np.square, "abs": np.abs, "sin": np.sin, "cos": np.cos, "tanh": np.tanh,
    "arctan": np.arctan, "negative": np.negative,
    "sigmoid": ss.expit, "softplus": lambda x: np.log1p(np.exp(x)),
    "log_sigmoid": lambda x: np.log(ss.expit(x)), "relu": lambda x: np.maximum(x, 0),
    "leaky_relu": lambda x, negative_slope=0.01: np.where(x > 0, x, negative_slope * x),
    "lgamma": ss.gammaln, "digamma": ss.digamma, "erf": ss.erf, "erfc": ss.erfc,
    "add": np.add, "subtract": np.subtract, "multiply": np.multiply, "divide": np.divide,
    "power": np.power, "maximum": np.maximum, "minimum": np.minimum, "where": np.where,
    "clip": lambda x, a_min=None, a_max=None: np.clip(x, a_min, a_max),
    "sum": np.sum, "mean": np.mean, "max": np.max, "min": np.min, "prod": np.prod,
    "cumsum": np.cumsum, "logsumexp": ss.logsumexp, "softmax": ss.softmax,
    "log_softmax": ss.log_softmax,
    "reshape": np.reshape, "transpose": np.transpose, "swapaxes": np.swapaxes,
    "expand_dims": np.expand_dims, "squeeze": np.squeeze, "broadcast_to": np.broadcast_to,
    "concatenate": lambda *xs, axis=0: np.concatenate(xs, axis=axis),
    "stack": lambda *xs, axis=0: np.stack(xs, axis=axis),
    "getitem": lambda x, idx: x[idx], "take": np.take, "tril": np.tril, "triu": np.triu,
    "diagonal": np.diagonal, "matmul": np.matmul, "dot": np.dot, "einsum": np.einsum,
    "linear": lambda x, w, b=None: x @ w + (0 if b is None else b),
    "cholesky": lambda a: np.linalg.cholesky(_sym(a)),
    "solve_triangular": _ref_solve_triangular, "solve": np.linalg.solve,
    "slogdet": lambda a: np.linalg.slogdet(a)[1], "inv": np.linalg.inv,
    "stop_gradient": lambda x: x, "cast": lambda x, dtype: x.astype(dtype),
    "conv2d": conv_ref.conv2d, "conv_transpose2d": conv_ref.conv_transpose2d,
    "max_pool2d": conv_ref.max_pool2d, "avg_pool2d": conv_ref.avg_pool2d, "pad": conv_ref.pad,
    "channel_affine": lambda y, s=None, b=None: np.stack(
        [y[:, c] * (1 if s is None else s[c]) + (0 if b is None else b[c])
         for c in range(y.shape[1])], axis=1),
}

# autodiff callables whose calling convention differs from the plain op
FN = {
    "concatenate": lambda *xs, axis=0: ad.concatenate(xs, axis=axis),
    "stack": lambda *xs, axis=0: ad.stack(xs, axis=axis),
    "cholesky": lambda a: ad.cholesky(_ad_sym(a)),   # FD directions are not symmetric
    "slogdet": lambda a: ad.slogdet(a)[1],
}


@dataclasses.dataclass
class Case:
    id: str
    op: str
    specs: tuple
    kwargs: dict
    zero_grad: bool = False      # the op passes no gradient (stop_gradient, cast to int)
    fd_rtol: float = 1e-6


CASES = []


def _spec_id(s):
    if isinstance(s, K):
        v = s.value
        if isinstance(v, np.ndarray):
            return f"K{v.dtype.kind}{'x'.join(map(str, v.shape))}"
        return "K" + (v.__name__ if isinstance(v, type) else repr(v).replace(" ", ""))
    shape = s.batch + (s.n, s.n) if isinstance(s, (SPD, SQ, TRI)) else s.shape
    return "x".join(map(str, shape)) or "scalar"


def case(op, *specs, zero_grad=False, fd_rtol=1e-6, tag="", **kwargs):
    shapes = "_".join(_spec_id(s) for s in specs)
    kw = ",".join(f"{k}={v}" for k, v in kwargs.items())
    cid = "-".join(p for p in (op, shapes, kw, tag) if p)
    CASES.append(Case(cid, op, specs, kwargs, zero_grad, fd_rtol))


SCALAR, VEC, MAT, BATCH = (), (4,), (2, 3), (2, 3, 4)
SHAPES = [SCALAR, VEC, MAT, BATCH]

# --- elementwise unary: scalar, vector, matrix, batched
for shape in SHAPES:
    for op in ["exp", "expm1", "square", "sin", "cos", "tanh", "arctan", "negative",
               "sigmoid", "softplus", "log_sigmoid", "erf", "erfc"]:
        case(op, R(shape))
    for op in ["log", "log1p", "sqrt", "lgamma", "digamma"]:
        case(op, P(*shape))
    for op in ["abs", "relu"]:
        case(op, D(shape))
    case("leaky_relu", D(shape))
    case("leaky_relu", D(shape), negative_slope=0.2)
case("log1p", U((5,), -0.5, 0.5), tag="near0")
case("lgamma", U((5,), 3.0, 30.0), tag="large")

# --- elementwise binary, with broadcasting
BINARY_SHAPES = [(SCALAR, SCALAR), (VEC, VEC), (MAT, MAT), (BATCH, BATCH),
                 ((2, 3), (3,)), ((2, 1), (1, 3)), (SCALAR, (2, 3)), ((2, 1, 3), (4, 1)),
                 ((3,), (2, 1, 3))]
for sx, sy in BINARY_SHAPES:
    for op in ["add", "subtract", "multiply"]:
        case(op, R(sx), R(sy))
    case("divide", R(sx), P(*sy))
    case("power", P(*sx), R(sy))
    case("maximum", D(sx, 0.0), D(sy, 0.25))
    case("minimum", D(sx, 0.25), D(sy, 0.0))
# mixed Tensor / constant operands
case("power", R(MAT), K(3))
case("power", R(MAT), K(2.0))
case("power", K(2.0), R(MAT))
case("power", K(np.array([1.5, 2.5, 0.5])), R(MAT))
case("multiply", R(MAT), K(np.array([1.0, -2.0, 3.0])))
case("divide", K(3.0), P(2, 3))
case("subtract", K(np.ones((4, 2, 3))), R(MAT))
case("power", WZ((3, 4)), K(0), tag="x-has-zeros")
case("power", WZ((3, 4)), K(np.array([0.0, 1.0, 2.0, 3.0])), tag="x-has-zeros")
case("power", K(WZ((3, 4)).make(np.random.default_rng(0))), P(3, 4), tag="x-has-zeros")
case("maximum", D(MAT), K(0.0))
case("minimum", K(np.array([0.0, 1.0, -1.0])), D((4, 3), 0.25))

# --- where / clip
COND = np.array([[True, False, True], [False, False, True]])
case("where", K(COND), R(MAT), R(MAT))
case("where", K(COND), R((3,)), R((2, 1)))
case("where", K(COND), R(()), K(0.0))
case("where", K(np.array([True, False, True])), R((2, 1, 3)), R(()))
case("clip", D(BATCH), a_min=-0.6, a_max=0.6)
case("clip", D(MAT), a_min=0.1)
case("clip", D(VEC), a_max=0.1)
case("clip", D(()), a_min=-1.1, a_max=1.1)

# --- reductions: axis None / int / negative int / tuple, keepdims
AXES = [None, 0, -1, 1, (0, 2), (-1, 0)]
for op in ["sum", "mean", "max", "min", "prod", "logsumexp"]:
    spec = D(BATCH, 0.25) if op in ("max", "min") else (
        U(BATCH, 0.5, 1.5) if op == "prod" else R(BATCH))
    for axis in AXES:
        for keepdims in (False, True):
            case(op, spec, axis=axis, keepdims=keepdims)
    small = D if op in ("max", "min") else R
    case(op, small(SCALAR))
    case(op, small(VEC))
    case(op, small(VEC), axis=0)
    case(op, small(MAT), axis=1)
# prod with zeros (one and two zeros in a slice: the gradient is still exact)
for axis in (None, 0, 1, (0, 1)):
    case("prod", WZ((3, 4)), axis=axis)
for axis in (0, 1, -1):
    case("softmax", R(BATCH), axis=axis)
    case("log_softmax", R(BATCH), axis=axis)
case("softmax", R(BATCH), axis=(0, 2))
case("log_softmax", R(BATCH), axis=(0, 2))
case("softmax", R(VEC))
case("log_softmax", R(VEC))
for axis in (None, 0, 1, -1):
    case("cumsum", R(BATCH), axis=axis)
case("cumsum", R(VEC))
case("cumsum", R(VEC), axis=0)

# --- shapes
case("reshape", R(BATCH), K((6, 4)))
case("reshape", R(BATCH), K((-1,)))
case("reshape", R(()), K((1, 1)))
case("reshape", R(VEC), K((2, 1, 2)))
for axes in (None, (1, 0, 2), (2, 0, 1), (-1, 0, 1), (0, -1, -2)):
    case("transpose", R(BATCH), K(axes))
case("transpose", R(MAT), K(None))
case("transpose", R(VEC), K(None))
case("swapaxes", R(BATCH), K(0), K(2))
case("swapaxes", R(BATCH), K(-1), K(-2))
for axis in (0, -1, 1, (0, 2)):
    case("expand_dims", R(MAT), K(axis))
case("expand_dims", R(()), K(0))
case("squeeze", R((1, 3, 1)))
case("squeeze", R((1, 3, 1)), axis=0)
case("squeeze", R((1, 3, 1)), axis=(0, -1))
case("broadcast_to", R((3,)), K((2, 3)))
case("broadcast_to", R((2, 1)), K((4, 2, 3)))
case("broadcast_to", R(()), K((2, 2)))
case("concatenate", R(MAT), R((2, 2)), R((2, 1)), axis=1)
case("concatenate", R(MAT), R((1, 3)), axis=0)
case("concatenate", R(BATCH), R((2, 3, 1)), axis=-1)
case("concatenate", R(VEC), R((2,)))
case("concatenate", R(MAT), K(np.ones((2, 2))), axis=-1)
case("stack", R(MAT), R(MAT), R(MAT))
case("stack", R(MAT), R(MAT), axis=-1)
case("stack", R(MAT), K(np.zeros((2, 3))), axis=1)
case("stack", R(()), R(()))
for k in (0, 1, -1):
    case("tril", R((3, 4)), K(k))
    case("triu", R((3, 4)), K(k))
case("tril", R((2, 3, 3)))
case("triu", R((2, 3, 3)))
for off, a1, a2 in [(0, 0, 1), (1, 0, 1), (-1, 0, 1), (0, 1, 2), (1, 2, 0), (-2, 2, 0),
                    (1, -1, -2), (0, -2, -1), (2, 0, 2)]:
    shape = (3, 3) if (a1, a2) == (0, 1) and off != 1 else (3, 4, 5)
    case("diagonal", R(shape), K(off), K(a1), K(a2))
case("diagonal", R((3, 4)), K(1))

# --- take and getitem (repeated indices must accumulate)
case("take", R(BATCH), K(np.array([0, 5, 5, 23])))                      # axis None, flat
case("take", R(BATCH), K(np.array([[1, 1], [0, 2]])), axis=1)
case("take", R(BATCH), K(np.array([3, 0, 3])), axis=-1)
case("take", R(BATCH), K(1), axis=0)
case("take", R(VEC), K(np.array([-1, 0, -1])))
case("take", R(MAT), K(np.array([[5, 0], [5, 5]])))                       # 2-D, flat
case("take", R(MAT), K([2, 2, 2]), axis=1)
X = BATCH
IDX = [
    1, -1, slice(1, None), slice(None, None, -2), (1, slice(None), slice(None, None, 2)),
    (None, 1), (Ellipsis, 1), (Ellipsis, None, slice(1, 3)), (0, Ellipsis, 2),
    np.array([0, 1, 0, 0]), [1, 1], np.array([[0, 1], [1, 1]]),
    (slice(None), np.array([0, 2, 2])), (np.array([0, 1, 1]), slice(None), np.array([3, 3, 0])),
    (slice(None), [0, 0, 2], None, 1), (Ellipsis, [0, 0, 3]),
    np.array([True, False]), (slice(None), np.array([True, False, True])),
    (np.array([True, True]), 1, slice(1, 3)),
    (np.array([True, False]), np.array([0, 2])),
    ((np.arange(24).reshape(BATCH) % 3) == 0), [True, False],
]
for i, idx in enumerate(IDX):
    case("getitem", R(X), K(idx), tag=f"idx{i}")
case("getitem", R(VEC), K(np.array([3, 3, 3, 1])), tag="repeat")

# --- products
for sa, sb in [(VEC, VEC), ((3, 4), (4,)), ((4,), (4, 3)), ((3, 4), (4, 2)),
               ((2, 3, 4), (4, 5)), ((2, 1, 3, 4), (5, 4, 2)), ((2, 3, 4), (4,)),
               ((4,), (2, 4, 3)), ((3, 4), (2, 4, 2))]:
    case("matmul", R(sa), R(sb))
for sx, sw, sb in [((3, 4), (4, 2), (2,)), ((2, 3, 4), (4, 5), (5,)), ((4,), (4, 3), (3,)),
                   ((3, 4), (4, 2), (3, 2))]:
    case("linear", R(sx), R(sw), R(sb))
case("linear", R((3, 4)), R((4, 2)), tag="nobias")
for sa, sb in [(SCALAR, VEC), (VEC, SCALAR), (VEC, VEC), ((3, 4), (4,)), ((4,), (4, 3)),
               ((3, 4), (4, 2)), (SCALAR, MAT)]:
    case("dot", R(sa), R(sb))
EINSUM = [
    ("ij,jk->ik", [(3, 4), (4, 2)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 2)]),
    ("ii", [(3, 3)]),                       # trace, implicit
    ("ii->", [(3, 3)]),
    ("ii->i", [(3, 3)]),                    # diagonal
    ("i,j->ij", [(3,), (4,)]),              # outer
    ("ij,jk", [(3, 4), (4, 2)]),            # implicit matrix product
    ("ji", [(3, 4)]),                       # implicit transpose
    ("i,i", [(3,), (3,)]),
    ("...ij,...jk->...ik", [(2, 1, 3, 4), (5, 4, 2)]),   # ellipsis with broadcasting
    ("i...,i...->...", [(3, 1), (3, 4)]),
    ("...i,...i", [(2, 3), (3,)]),                        # implicit with ellipsis
    ("ij,k->i", [(3, 2), (5,)]),            # k summed inside its operand only
    ("ij->", [(3, 2)]),
    ("iij->ij", [(3, 3, 2)]),
    ("ii,i->i", [(3, 3), (3,)]),
    ("bii->b", [(2, 3, 3)]),
    ("ijk,ik->j", [(2, 3, 4), (2, 4)]),
    ("...ii->...i", [(2, 3, 3)]),          # batched diagonal
    ("...ii", [(2, 3, 3)]),                # batched trace, implicit
    ("ii,ii->i", [(3, 3), (3, 3)]),
    ("iji->j", [(3, 2, 3)]),
    ("i...j->j...", [(2, 3, 4, 5)]),       # ellipsis in the middle
    ("ij,ij->", [(3, 2), (3, 2)]),
    ("...i,...ii->...", [(1, 3), (2, 3, 3)]),   # repeated index + ellipsis broadcasting
    ("Ab,bA->A", [(3, 2), (2, 3)]),        # upper-case letters
]
for subs, shapes in EINSUM:
    case("einsum", K(subs), *[R(s) for s in shapes])

# --- linear algebra, batched over leading axes
for batch in [(), (2,), (2, 3)]:
    case("cholesky", SPD(batch, 3))
    case("slogdet", SQ(batch, 3))
    case("inv", SQ(batch, 3))
for lower, trans in itertools.product((True, False), (0, 1, "T", "N")):
    case("solve_triangular", TRI((), 3), R((3,)), lower=lower, trans=trans)
    case("solve_triangular", TRI((2,), 3), R((2, 3, 2)), lower=lower, trans=trans)
case("solve_triangular", TRI((2,), 3), R((2, 3)), lower=True, tag="batched-vec")
case("solve_triangular", TRI((), 3), R((2, 3, 2)), lower=True, tag="a-broadcast")
case("solve_triangular", TRI((2, 1), 3), R((1, 4, 3)), lower=False, trans=1, tag="both-bcast")
case("solve_triangular", TRI((2, 1), 3), R((1, 4, 3, 2)), lower=True, trans=1, tag="both-bcast")
case("solve_triangular", TRI((), 3), R((3, 2)), lower=True)
for sa, sb in [((), (3,)), ((), (3, 2)), ((2,), (3,)), ((2,), (2, 3, 2)), ((), (2, 3, 2)),
               ((2, 1), (4, 3, 1))]:
    case("solve", SQ(sa, 3), R(sb))

# --- convolutions, pools and padding (NCHW; direct-loop references in conv_ref.py)
case("conv2d", R((2, 3, 6, 5)), R((4, 3, 3, 2)), R((4,)))
case("conv2d", R((2, 4, 7, 6)), R((6, 2, 3, 3)), R((6,)), stride=2, padding=1, groups=2)
case("conv2d", R((1, 3, 8, 7)), R((3, 1, 2, 3)), stride=(2, 1), padding=(1, 2),
     dilation=(2, 1), groups=3)
case("conv2d", R((1, 2, 7, 7)), R((3, 2, 3, 3)), R((3,)), padding=2, dilation=2)
case("conv2d", R((2, 2, 5, 5)), R((2, 2, 1, 1)), tag="1x1-nobias")
case("conv_transpose2d", R((2, 4, 3, 4)), R((4, 3, 3, 3)), R((3,)), stride=2, padding=1,
     output_padding=1)
case("conv_transpose2d", R((1, 4, 4, 3)), R((4, 1, 2, 3)), stride=(1, 2), dilation=(2, 1),
     groups=2)
case("max_pool2d", D((2, 3, 6, 7)), K(2))
case("max_pool2d", D((1, 2, 7, 6)), K(3), K(2), K(1))
case("max_pool2d", D((1, 2, 7, 8)), K((3, 2)), K((1, 2)), K((1, 1)), K((2, 1)))
case("avg_pool2d", R((2, 3, 7, 6)), K(2))
case("avg_pool2d", R((1, 2, 7, 8)), K((3, 2)), K((2, 1)), K((1, 1)))
for _mode in ("constant", "edge", "reflect", "symmetric", "wrap"):
    case("pad", R((2, 3, 4)), K(((1, 2), (0, 1), (2, 0))), K(_mode))
case("pad", R((3, 4)), K(1), K("constant"), K(1.5))
case("channel_affine", R((2, 3, 4, 5)), R((3,)), R((3,)))
case("channel_affine", R((2, 3, 4)), K(None), R((3,)))

# --- gradient blockers
case("stop_gradient", R(MAT), zero_grad=True)
case("cast", R(MAT), K(np.float64))
case("cast", R(MAT), K(np.int64), zero_grad=True)
case("cast", R(MAT), K(bool), zero_grad=True)
case("cast", R(VEC), K(np.float32), fd_rtol=1e-4)   # float32 rounding in the FD

for _i, _c in enumerate(CASES):      # make ids unique (e.g. getitem with unprintable index)
    if any(o.id == _c.id for o in CASES[:_i]):
        _c.id += f"#{_i}"
ids = [c.id for c in CASES]


# ----------------------------------------------------------------------------- helpers

def fd_gradient(f, args, i, eps=1e-6):
    """Central-difference gradient of scalar ``f(*args)`` w.r.t. ``args[i]``."""
    x = np.array(args[i], dtype=float)
    g = np.zeros_like(x)
    for j in np.ndindex(*x.shape):
        xp, xm = x.copy(), x.copy()
        xp[j] += eps
        xm[j] -= eps
        fp = f(*args[:i], xp, *args[i + 1:])
        fm = f(*args[:i], xm, *args[i + 1:])
        g[j] = (float(np.asarray(fp)) - float(np.asarray(fm))) / (2 * eps)
    return g


def _split(c, rng):
    """Materialise a case: (differentiable arrays, a function of them, reference value)."""
    values = [s.make(rng) for s in c.specs]
    diff_pos = [i for i, s in enumerate(c.specs) if not isinstance(s, K)]
    fn = FN.get(c.op, getattr(ad, c.op))

    def f(*xs):
        a = list(values)
        for p, x in zip(diff_pos, xs):
            a[p] = x
        return fn(*a, **c.kwargs)

    ref = REF[c.op](*values, **c.kwargs)
    return [values[p] for p in diff_pos], f, ref


@pytest.mark.parametrize("c", CASES, ids=ids)
def test_op(c):
    rng = np.random.default_rng(zlib.crc32(c.id.encode()))
    xs, f, ref = _split(c, rng)

    # forward equals NumPy/SciPy and keeps the dtype
    out = f(*xs)
    assert isinstance(out, ad.Tensor)
    ref = np.asarray(ref)
    assert out.shape == ref.shape
    assert out.dtype == ref.dtype, (out.dtype, ref.dtype)
    np.testing.assert_allclose(out.data, ref, rtol=1e-12, atol=1e-13)

    # reverse mode against full central differences of <v, f(x)>
    v = rng.standard_normal(out.shape)
    nums = tuple(range(len(xs)))

    def scalar(*ts):
        return ad.sum(f(*ts) * v)

    grads = ad.grad(scalar, argnums=nums)(*xs)
    for i, (x, g) in enumerate(zip(xs, grads)):
        # (a 0-d argument may get a NumPy scalar back: see test_autodiff_api.py)
        assert isinstance(g, (np.ndarray, np.generic))
        assert g.shape == np.shape(x) and g.dtype == np.float64
        if c.zero_grad:
            assert not np.any(g)
            continue
        num = fd_gradient(lambda *a: scalar(*a).data, xs, i, eps=1e-3 if c.fd_rtol > 1e-6 else 1e-6)
        np.testing.assert_allclose(g, num, rtol=c.fd_rtol, atol=c.fd_rtol,
                                   err_msg=f"gradient of argument {i}")

    # the random-projection checker agrees on every differentiable op
    if not c.zero_grad and c.fd_rtol <= 1e-6:
        ad.check_grads(f, *xs, rng=1)


def test_table_covers_every_op():
    required = set("""exp log log1p expm1 sqrt square abs sin cos tanh arctan sum mean max min
        prod matmul dot einsum transpose reshape expand_dims squeeze broadcast_to concatenate
        stack where maximum minimum clip cumsum tril triu diagonal take getitem swapaxes power
        add subtract multiply divide negative sigmoid softplus log_sigmoid relu leaky_relu logsumexp
        softmax log_softmax lgamma digamma erf erfc cholesky solve_triangular solve slogdet
        inv stop_gradient cast conv2d conv_transpose2d max_pool2d avg_pool2d pad
        channel_affine""".split())
    assert required <= {c.op for c in CASES}, required - {c.op for c in CASES}


@pytest.mark.parametrize("c", [c for c in CASES if c.op != "cast"],
                         ids=[c.id for c in CASES if c.op != "cast"])
def test_op_float32(c):
    """The same table in float32: values and gradients stay float32 and match float64."""
    rng = np.random.default_rng(zlib.crc32(c.id.encode()))
    xs, f, _ = _split(c, rng)
    x32 = [np.asarray(x, dtype=np.float32) for x in xs]
    out = f(*x32)
    if not any(isinstance(s, K) and getattr(s.value, "dtype", None) == np.float64
               for s in c.specs):   # (a float64 array constant promotes the value)
        assert out.dtype == np.float32, out.dtype
    v = rng.standard_normal(out.shape)
    nums = tuple(range(len(xs)))
    g32 = ad.grad(lambda *ts: ad.sum(f(*ts) * v), argnums=nums)(*x32)
    g64 = ad.grad(lambda *ts: ad.sum(f(*ts) * v), argnums=nums)(
        *[x.astype(np.float64) for x in x32])
    for a, b in zip(g32, g64):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("slope", [0.01, 0.2, 1.5, -0.3])
def test_leaky_relu_kernel_equals_the_numpy_composition(dtype, slope):
    """The one-loop kernel (C-contiguous NumPy input) gives bitwise the values and the
    gradient of ``where(x > 0, x, slope * x)`` in the input's dtype, NaN, infinities and
    signed zeros included, for a contiguous and a strided input alike."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((6, 5)).astype(dtype)
    x[0, :5] = [np.nan, -np.inf, np.inf, -0.0, 0.0]
    g = rng.standard_normal((6, 5)).astype(dtype)
    want = np.where(x > 0, x, x * slope)
    want_grad = np.where(x > 0, g, g * slope)
    for xin, gin, sl in [(x, g, np.s_[:]), (np.repeat(x, 2, axis=1)[:, ::2],
                                            np.repeat(g, 2, axis=1)[:, ::2], np.s_[:])]:
        t = ad.tensor(xin, requires_grad=True)
        y = ad.leaky_relu(t, negative_slope=slope)
        assert y.data.dtype == dtype
        np.testing.assert_array_equal(y.data[sl], want)
        assert np.array_equal(np.signbit(y.data), np.signbit(want))
        ad.sum(y * gin).backward()
        assert t.grad.dtype == dtype
        np.testing.assert_array_equal(t.grad, want_grad)


def test_leaky_relu_compiled_and_layer_agree_with_the_tape():
    from zsarray import nn
    x = np.random.default_rng(3).standard_normal((4, 7))
    f = ad.compile(lambda a: ad.sum(ad.leaky_relu(a, negative_slope=0.3) ** 2))
    want = np.sum(np.where(x > 0, x, 0.3 * x) ** 2)
    assert f(x) == pytest.approx(want, rel=1e-14)
    np.testing.assert_array_equal(nn.LeakyReLU(0.3)(x).data, np.where(x > 0, x, 0.3 * x))
    ad.check_grads(lambda a: nn.leaky_relu(a, 0.3), x + 0.05)
