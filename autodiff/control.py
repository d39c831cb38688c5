"""Structured loops: ``scan`` and ``fori_loop`` (JAX semantics).

``scan(f, init, xs)`` applies ``f(carry, x) -> (carry, y)`` along the leading axis of
``xs`` and returns ``(carry, ys)``, the ``y`` stacked on a new leading axis; carries, xs
and ys may be nested tuples, lists and dicts of arrays or Tensors.

On the tape it is a Python loop: the values and gradients are those of the same loop
written out by hand. While :func:`autodiff.compile` records, the body is recorded once,
as two programs (its forward pass, and its backward pass given the carry and the
cotangents of its outputs, which recomputes the forward), and the loop becomes one
operation whose lowering is a loop of the machine: a 1,000-step time series compiles
as fast as a 1-step one. The loop's backward pass runs the body's backward in reverse
over the carries saved by the forward loop (by a forward sweep of its own when the
program does not run the forward loop on the same operands). Values the body closes over (parameters
computed before the loop) are inputs of the body and get their gradient summed over
the steps.
"""
import numpy as np

from . import core
from .core import Tensor
from .program import Program, _prune
from .tracer import Builder, Tracer, Var, _CURRENT, array_op, current_builder

__all__ = ["scan", "fori_loop"]


# ----------------------------------------------------------------------------- trees
def _flatten(tree):
    """Leaves (in order) and a description to rebuild ``tree``."""
    if isinstance(tree, (tuple, list)) and not hasattr(tree, "shape"):
        leaves, defs = [], []
        for t in tree:
            lv, d = _flatten(t)
            leaves += lv
            defs.append(d)
        return leaves, (type(tree), tuple(defs))
    if isinstance(tree, dict):
        keys = sorted(tree)
        leaves, defs = [], []
        for k in keys:
            lv, d = _flatten(tree[k])
            leaves += lv
            defs.append(d)
        return leaves, (dict, (tuple(keys), tuple(defs)))
    if tree is None:
        return [], None
    return [tree], "leaf"


def _unflatten(d, leaves):
    it = iter(leaves)
    out = _build(d, it)
    return out


def _build(d, it):
    if d is None:
        return None
    if d == "leaf":
        return next(it)
    kind, sub = d
    if kind is dict:
        keys, defs = sub
        return {k: _build(dd, it) for k, dd in zip(keys, defs)}
    items = [_build(dd, it) for dd in sub]
    return tuple(items) if kind is tuple else (kind(items) if kind is list else kind(*items))


def _data(x):
    return x.data if type(x) is Tensor else x


def _shape(x):
    return tuple(np.shape(_data(x)))


def _dtype(x):
    d = _data(x)
    return d.dtype if hasattr(d, "dtype") else np.asarray(d).dtype


# ----------------------------------------------------------------------------- public
def scan(f, init, xs=None, length=None, reverse=False):
    """Loop ``f(carry, x) -> (carry, y)`` over the leading axis of ``xs``.

    Parameters
    ----------
    f : callable
        ``f(carry, x) -> (carry, y)``; the new carry must have the structure, shapes
        and dtypes of ``init``. ``x`` is one slice ``xs[t]`` (None when ``xs`` is None).
    init : array, Tensor or tree of them
        The initial carry.
    xs : array, Tensor, tree of them, or None
        Scanned along axis 0; every leaf has the same leading length.
    length : int, optional
        Number of steps; required when ``xs`` is None, checked otherwise.
    reverse : bool
        Run from the last slice to the first (``ys`` keep the order of ``xs``).

    Returns
    -------
    carry
        The final carry.
    ys
        The ``y`` of every step stacked along a new leading axis (None if ``f``
        returns None for ``y``).
    """
    if not callable(f):
        raise TypeError(f"scan: f must be callable f(carry, x) -> (carry, y), got "
                        f"{type(f).__name__}")
    xs_leaves, xs_def = _flatten(xs)
    lengths = {_shape(x)[0] if _shape(x) else None for x in xs_leaves}
    if None in lengths:
        raise ValueError("scan: every leaf of xs needs a leading axis to scan over; got a "
                         "0-d array")
    if length is not None:
        if int(length) != length or length < 0:
            raise ValueError(f"scan: length must be an integer >= 0, got {length!r}")
        lengths.add(int(length))
    if not lengths:
        raise ValueError("scan: give xs or length (the number of steps)")
    if len(lengths) > 1:
        raise ValueError(f"scan: the leading axes of xs (and length) disagree: "
                         f"{sorted(lengths)}")
    n = lengths.pop()
    init_leaves, init_def = _flatten(init)
    b = current_builder()
    if b is not None and not b.atomic:
        return _scan_recorded(b, f, init_leaves, init_def, xs_leaves, xs_def, n, reverse)
    return _scan_loop(f, init, xs_leaves, xs_def, n, reverse)


def fori_loop(lower, upper, body, init):
    """``body(i, val) -> val`` for ``i`` in ``range(lower, upper)``, starting from
    ``init`` (JAX semantics; a :func:`scan` over the indices). ``i`` is a 0-d integer
    array; index with it (``y[i]``) as with any array."""
    lower, upper = int(lower), int(upper)
    idx = np.arange(lower, max(lower, upper), dtype=np.int64)
    carry, _ = scan(lambda c, i: (body(i, c), None), init, idx)
    return carry


# ----------------------------------------------------------------------------- the tape
def _scan_loop(f, init, xs_leaves, xs_def, n, reverse):
    """The loop written out: what the tape (and ``autodiff.trace``) records."""
    carry, ys = init, []
    steps = range(n - 1, -1, -1) if reverse else range(n)
    init_leaves, init_def = _flatten(init)
    for t in steps:
        x = _unflatten(xs_def, [x[t] for x in xs_leaves]) if xs_def is not None else None
        out = f(carry, x)
        carry, y = _split_out(out)
        _check_carry(init_leaves, init_def, carry)
        ys.append(y)
    if reverse:
        ys.reverse()
    if not ys:
        return carry, None
    y_leaves0, y_def = _flatten(ys[0])
    stacked = []
    for k in range(len(y_leaves0)):
        col = [_flatten(y)[0][k] for y in ys]
        if any(type(c) is Tensor for c in col):
            from .ops import stack
            stacked.append(stack(col, axis=0))
        else:
            stacked.append(np.stack([np.asarray(c) for c in col], axis=0))
    return carry, _unflatten(y_def, stacked)


def _split_out(out):
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        raise TypeError("scan: f must return a pair (carry, y); got "
                        f"{type(out).__name__}")
    return out[0], out[1]


def _check_carry(init_leaves, init_def, carry):
    leaves, d = _flatten(carry)
    if d != init_def:
        raise TypeError("scan: the carry returned by f has another structure than init")
    for k, (a, b) in enumerate(zip(init_leaves, leaves)):
        if _shape(a) != _shape(b):
            raise ValueError(f"scan: carry leaf {k} changes shape in the loop: "
                             f"{_shape(a)} -> {_shape(b)}")
        if _dtype(a) != _dtype(b):
            raise TypeError(f"scan: carry leaf {k} changes dtype in the loop: "
                            f"{_dtype(a)} -> {_dtype(b)}")


# ----------------------------------------------------------------------------- recorded
class Body:
    """A recorded scan body: ``fwd(carry, x, caps, raw_caps) -> (carry, y)`` and
    ``bwd(carry, x, caps, raw_caps, g_carry, g_y) -> (g_caps, g_carry, g_x)``, with the
    leaf counts, shapes and dtypes the loop operations need."""

    def __init__(self, fwd, bwd, n, reverse, carry_avals, x_avals, y_avals, n_caps,
                 n_raw, random):
        self.fwd, self.bwd, self.n, self.reverse = fwd, bwd, n, reverse
        self.carry_avals, self.x_avals, self.y_avals = carry_avals, x_avals, y_avals
        self.n_caps, self.n_raw, self.random = n_caps, n_raw, random
        self.programs = (fwd, bwd)
        self.last = None
        fl = [np.dtype(d) for _, d in carry_avals + y_avals]
        self.dtype = np.dtype(np.float32) if fl and all(d == np.float32 for d in fl) \
            else np.dtype(np.float64)

    def __repr__(self):
        return (f"Body({self.n} steps, {len(self.carry_avals)} carry, "
                f"{len(self.x_avals)} x, {len(self.y_avals)} y)")

    def split(self, operands):
        a, b = self.n_caps, self.n_caps + self.n_raw
        c = b + len(self.carry_avals)
        return operands[:a], operands[a:b], operands[b:c], operands[c:]

    def out_avals(self):
        return self.carry_avals + [((self.n,) + s, d) for s, d in self.y_avals]

    def order(self):
        return range(self.n - 1, -1, -1) if self.reverse else range(self.n)


def _size(shape):
    return int(np.prod(shape, dtype=np.int64))


def _pack(arrays, dtype):
    parts = [np.asarray(a, dtype=dtype).reshape(-1) for a in arrays]
    return np.concatenate(parts) if parts else np.zeros(0, dtype)


def _unpack(packed, avals):
    out, start = [], 0
    for shape, dt in avals:
        n = _size(shape)
        out.append(packed[start:start + n].reshape(shape).astype(dt, copy=False))
        start += n
    return out


@array_op
def scan_run(*operands, body):
    """The loop's forward pass on arrays: the final carry and the stacked ys, packed
    into one vector (the lowering keys on this function)."""
    caps, raw, carry, xs = body.split(operands)
    carry = list(carry)
    nc = len(carry)
    ys = [np.empty((body.n,) + tuple(s), dtype=d) for s, d in body.y_avals]
    fwd = body.fwd.python()
    for t in body.order():
        outs = fwd(*carry, *[x[t] for x in xs], *caps, *raw)
        carry = list(outs[:nc])
        for k, y in enumerate(outs[nc:]):
            ys[k][t] = y
    return _pack(carry + ys, body.dtype)


@array_op
def scan_grad(*operands, g, body):
    """The loop's backward pass: the cotangents of every operand (captured values,
    raw captures, init, xs), packed, given the packed cotangent ``g`` of its output."""
    caps, raw, carry, xs = body.split(operands)
    nc = len(carry)
    fwd = body.fwd.python()
    saved = {}
    carry = list(carry)
    for t in body.order():
        saved[t] = carry
        carry = list(fwd(*carry, *[x[t] for x in xs], *caps, *raw)[:nc])
    gouts = _unpack(g, body.out_avals())
    g_carry, g_ys = gouts[:nc], gouts[nc:]
    g_caps = [np.zeros(np.shape(c), dtype=np.result_type(c)) for c in caps]
    g_xs = [np.zeros(np.shape(x), dtype=body.dtype) for x in xs]
    bwd = body.bwd.python()
    n_caps = len(caps)
    for t in reversed(list(body.order())):
        outs = bwd(*saved[t], *[x[t] for x in xs], *caps, *raw, *g_carry,
                   *[gy[t] for gy in g_ys])
        gc, gcar, gx = outs[:n_caps], outs[n_caps:n_caps + nc], outs[n_caps + nc:]
        for k, v in enumerate(gc):
            if v is not None:
                g_caps[k] = g_caps[k] + v
        g_carry = [np.zeros(s, d) if v is None else v
                   for v, (s, d) in zip(gcar, body.carry_avals)]
        for k, v in enumerate(gx):
            if v is not None:
                g_xs[k][t] = v
    raws = [np.zeros(np.shape(r)) for r in raw]
    return _pack(g_caps + raws + g_carry + g_xs, body.dtype)


def _scan_fwd(*operands, body):
    return scan_run(*operands, body=body)


def _scan_rule(i, ans, *operands, body):
    avals = [(np.shape(o), np.result_type(o)) for o in operands]

    def vjp(g):
        last = body.last
        if last is not None and last[0] is g and last[1] is ans:
            packed = last[2]
        else:
            packed = scan_grad(*operands, g=g, body=body)
            body.last = (g, ans, packed)
        start = sum(_size(s) for s, _ in avals[:i])
        shape, dt = avals[i]
        part = packed[start:start + _size(shape)]
        part = np.reshape(part, shape)
        return part.astype(dt) if dt != body.dtype else part
    return vjp


_scan_p = core.primitive(_scan_fwd, "scan")
core.defvjp_argnum(_scan_p, _scan_rule)


def _scan_recorded(b, f, init_leaves, init_def, xs_leaves, xs_def, n, reverse):
    """Record the body once (forward and backward) and the loop as one operation."""
    child = Builder(atomic=False, parent=b)
    t0 = (n - 1 if reverse else 0) if n else None
    c_tr = [child.new_input(np.array(_concrete(c), copy=True)) for c in init_leaves]
    x_tr = [child.new_input(_concrete(x)[t0] if n else
                            np.zeros(_shape(x)[1:], _dtype(x))) for x in xs_leaves]
    carry_t = [Tensor(t, requires_grad=t.dtype.kind in "fc") for t in c_tr]
    x_t = [Tensor(t, requires_grad=t.dtype.kind in "fc") for t in x_tr]
    token = _CURRENT.set(child)
    state = core._state
    prev = state.enabled
    state.enabled = True
    try:
        out = f(_unflatten(init_def, carry_t),
                _unflatten(xs_def, x_t) if xs_def is not None else None)
        new_carry, y = _split_out(out)
        _check_carry(init_leaves, init_def, new_carry)
        c_out, _ = _flatten(new_carry)
        y_out, y_def = _flatten(y)
        outs = c_out + y_out
        seeds = [child.new_input(np.zeros(_shape(o), _dtype(o))) for o in outs]
        caps = [leaf for _, leaf in child.cap_tensors]
        targets = caps + carry_t + x_t
        wanted = {id(t): None for t in targets}
        roots = [(o, s) for o, s in zip(outs, seeds)
                 if type(o) is Tensor and o.requires_grad and s.dtype.kind in "fc"]
        if roots:
            core._backward_roots(roots, wanted)
        grads = [wanted[id(t)] for t in targets]
    finally:
        state.enabled = prev
        _CURRENT.reset(token)
    if child.unsafe and b.unsafe is None:
        b.unsafe = child.unsafe
    if child.dynamic and b.dynamic is None:
        b.dynamic = child.dynamic
    out_vals = [_var_or_const(child, o) for o in outs]      # (may capture more)
    grad_vals = [_var_or_const(child, g) for g in grads]
    cap_vars = [leaf.data.var for leaf in caps]
    raw_vars = [v for _, v in child.captures]
    ins = [t.var for t in c_tr] + [t.var for t in x_tr] + cap_vars + raw_vars
    fwd = Program(_prune(child.eqns, [o for o in out_vals if type(o) is Var]), ins, [],
                  out_vals, child.rngs)
    bwd = Program(_prune(child.eqns, [o for o in grad_vals if type(o) is Var]),
                  ins + [s.var for s in seeds], [], grad_vals, child.rngs)
    body = Body(fwd, bwd, n, reverse,
                [(_shape(c), _dtype(c)) for c in init_leaves],
                [(_shape(x)[1:], _dtype(x)) for x in xs_leaves],
                [(_shape(o), _dtype(o)) for o in y_out], len(caps), len(raw_vars),
                bool(child.rngs))
    operands = [t for t, _ in child.cap_tensors] + [t for t, _ in child.captures] + \
        list(init_leaves) + list(xs_leaves)
    packed = _scan_p(*operands, body=body)
    avals = body.out_avals()
    outs, start = [], 0
    from .ops import cast, reshape
    for shape, dt in avals:
        k = _size(shape)
        part = reshape(packed[start:start + k], shape)
        if np.dtype(dt) != body.dtype:
            part = cast(part, dt)
        outs.append(part)
        start += k
    nc = len(init_leaves)
    carry = _unflatten(init_def, outs[:nc])
    ys = _unflatten(y_def, outs[nc:]) if y_def is not None else None
    return carry, ys


def _concrete(x):
    d = _data(x)
    return d.val if type(d) is Tracer else np.asarray(d)


def _var_or_const(child, o):
    """The body program's output for ``o``: its Var (a value of an enclosing recording
    returned as is becomes an input of the body), or the constant."""
    if o is None:
        return None
    d = _data(o)
    if type(d) is Tracer:
        return child.lift(d).var
    return d
