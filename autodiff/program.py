"""One program representation: a recorded function as a list of equations.

:func:`record` runs a function on tracers (:mod:`autodiff.tracer`) with the tape
switched on, then runs the tape's own backward pass (``core._backward``) on the traced
result. Everything either pass does to an array is appended to one :class:`Program`:
the forward equations, then the backward ones in exactly the order the tape performs
them, cotangent fix-ups (unbroadcasting, dtype restoration) and accumulations included.
There is therefore no second copy of the backward ordering or of the gradient
hand-back: the tape is the only implementation, and a program is what it did.

A program is evaluated by interpreters and lowerings of the same object:

* :meth:`Program.python` generates straight-line Python (one line per equation) that
  replays the recorded NumPy/CuPy calls (``autodiff.trace``);
* :mod:`autodiff.lower` turns it into instructions for a Numba-compiled machine
  (``autodiff.compile``).

``str(program)`` lists it, one equation per line.
"""
import numpy as np

from . import core
from .core import Tensor
from .tracer import Builder, Opaque, Tracer, Var, _CURRENT, _call_vjp

__all__ = ["Program", "record"]


class Program:
    """A recorded function.

    Attributes
    ----------
    inputs : list of Var
        The arguments, in order.
    refs : list of (Var, Tensor)
        Tensors whose ``.data`` is read at every call (after the inputs).
    eqns : list of Eqn
        The operations, in evaluation order.
    outputs : list
        A Var or a constant (a value that does not depend on the inputs, or None)
        per output.
    rngs : list of Generator
        Generators the program draws from.
    """

    def __init__(self, eqns, inputs, refs, outputs, rngs=()):
        self.eqns, self.inputs, self.refs = list(eqns), list(inputs), list(refs)
        self.outputs, self.rngs = list(outputs), list(rngs)
        self._python = None

    @classmethod
    def from_builder(cls, b, outputs):
        """The program computing ``outputs`` (tracers or constants) from ``b``'s
        inputs, without the equations they do not need (random draws are kept: the
        generator advances as it would without recording)."""
        outs = [o.var if type(o) in (Tracer, Opaque) else o for o in outputs]
        return cls(_prune(b.eqns, [o for o in outs if type(o) is Var]), b.inputs,
                   [(v, t) for v, t in b.refs], outs, b.rngs)

    @property
    def arity(self):
        """Number of arrays a call takes: the inputs, then the referenced Tensors'
        data."""
        return len(self.inputs) + len(self.refs)

    def args(self, xs):
        """The full argument tuple for inputs ``xs``: the referenced Tensors' data is
        read now."""
        return tuple(xs) + tuple(t.data for _, t in self.refs)

    def python(self):
        """A Python function ``f(*inputs, *ref_data) -> tuple(outputs)`` replaying the
        recorded calls (generated once; see :func:`_codegen`)."""
        if self._python is None:
            self._python = _codegen(self)
        return self._python

    def __str__(self):
        names = _Names()
        for v in self.inputs:
            names(v)
        lines = [f"program({', '.join(names(v) for v in self.inputs)}"
                 + (f"; refs {', '.join(names(v) for v, _ in self.refs)}" if self.refs
                    else "") + "):"]
        for e in self.eqns:
            args = ", ".join(_show(a, names) for a in e.args)
            kw = ", ".join(f"{k}={_show(v, names)}" for k, v in e.kwargs.items())
            outs = ", ".join(f"{names(o)}:{_aval(o)}" for o in e.outs)
            mark = " [random]" if e.random else ""
            lines.append(f"  {outs} = {e.name}({args}{', ' if args and kw else ''}{kw}){mark}")
        lines.append("  return " + ", ".join(_show(o, names) for o in self.outputs))
        return "\n".join(lines)

    __repr__ = __str__


def _aval(v):
    return "object" if v.shape is None else f"{v.dtype}{list(v.shape)}"


class _Names:
    def __init__(self):
        self.ids = {}

    def __call__(self, v):
        n = self.ids.get(id(v))
        if n is None:
            n = self.ids[id(v)] = f"v{len(self.ids)}"
        return n


def _show(a, names):
    if type(a) is Var:
        return names(a)
    if type(a) in (tuple, list):
        inner = ", ".join(_show(b, names) for b in a)
        return f"({inner},)" if type(a) is tuple else f"[{inner}]"
    if isinstance(a, np.ndarray):
        return f"const{a.dtype}{list(a.shape)}"
    if callable(a):
        return getattr(a, "__name__", type(a).__name__)
    return repr(a)


def _prune(eqns, outs):
    """The equations that ``outs`` depend on, plus random ones and their inputs."""
    needed = {id(v) for v in outs}
    keep = []
    for e in reversed(eqns):
        if e.random or e.effect or any(id(o) in needed for o in e.outs):
            keep.append(e)
            for v in e.inputs():
                needed.add(id(v))
    keep.reverse()
    return keep


def _codegen(prog):
    """Straight-line Python for a program: one line per equation (``v7 = f7(v3, c7_1)``),
    constants and functions bound in the namespace."""
    names = _Names()
    ns = {}

    def expr(a, tag):
        if type(a) is Var:
            return names(a)
        if type(a) in (tuple, list):
            inner = "".join(expr(b, f"{tag}_{i}") + ", " for i, b in enumerate(a))
            return f"({inner})" if type(a) is tuple else f"[{inner}]"
        if a is None or type(a) in (bool, int, str):
            return repr(a)
        ns[tag] = a
        return tag

    params = [names(v) for v in prog.inputs] + [names(v) for v, _ in prog.refs]
    lines = [f"def _run({', '.join(params)}):"]
    for k, e in enumerate(prog.eqns):
        args = [expr(a, f"c{k}_{i}") for i, a in enumerate(e.args)]
        args += [f"{key}={expr(v, f'c{k}_{key}')}" for key, v in e.kwargs.items()]
        if e.fn is _call_vjp:                  # closure(g): call the recorded closure
            call = f"{args[0]}({', '.join(args[1:])})"
        else:
            ns[f"f{k}"] = e.fn
            call = f"f{k}({', '.join(args)})"
        if not e.outs:
            lines.append(f"    {call}")
        elif e.multi is None:
            lines.append(f"    {names(e.outs[0])} = {call}")
        else:
            lines.append(f"    _t = {call}")
            for j, o in enumerate(e.outs):
                lines.append(f"    {names(o)} = _t[{j}]")
    outs = [expr(o, f"out{i}") for i, o in enumerate(prog.outputs)]
    lines.append(f"    return ({''.join(o + ', ' for o in outs)})")
    src = "\n".join(lines) + "\n"
    exec(compile(src, f"<autodiff program, {len(prog.eqns)} eqns>", "exec"), ns)
    fn = ns["_run"]
    fn.source = src
    return fn


def record(fun, xs, *, wrt=(0,), params=(), atomic=True, grad=True):
    """Run ``fun`` on tracers and its backward pass on the tape; return the builder.

    Parameters
    ----------
    fun : callable
        ``fun(*tensors) -> Tensor`` (or an array/scalar that does not depend on them).
    xs : tuple of arrays
        The inputs, as concrete arrays (the first evaluation is done on them).
    wrt : tuple of int
        Positions in ``xs`` to differentiate with respect to (floating dtypes only).
    params : list of Tensor
        Leaf Tensors also differentiated (a training step's parameters): their data
        becomes inputs after ``xs`` for the duration of the call.
    atomic : bool
        Record primitives as single calls (replay) or follow them (compilation).
    grad : bool
        Record the backward pass as well.

    Returns
    -------
    builder : Builder
    value : Tracer or constant
        The function's value.
    grads : list of (Tracer, constant or None)
        The gradient of ``value.sum()`` per differentiated input, then per parameter
        (None where the gradient does not reach).
    """
    b = Builder(atomic=atomic)
    leaves = []
    for i, x in enumerate(xs):
        t = b.new_input(x)
        leaves.append(Tensor(t, requires_grad=grad and i in wrt and t.dtype.kind in "fc"))
    saved = [p.data for p in params]
    ptracers = [b.new_input(d) for d in saved]
    token = _CURRENT.set(b)
    state = core._state
    prev_enabled = state.enabled
    state.enabled = True
    state.depth += 1
    try:
        for p, t in zip(params, ptracers):
            p.data = t
        out = fun(*leaves)
        value = out.data if type(out) is Tensor else out
        grads = []
        if grad:
            targets = [leaves[i] for i in wrt] + list(params)
            wanted = {id(t): None for t in targets}
            if type(out) is Tensor and out.requires_grad:
                core._backward(out, core._ones_like(value), wanted)
            grads = [wanted[id(t)] for t in targets]
            core.warn_disconnected(out, grads, fun, "trace" if atomic else "compile")
    finally:
        for p, d in zip(params, saved):
            p.data = d
        state.depth -= 1
        state.enabled = prev_enabled
        _CURRENT.reset(token)
    return b, value, grads
