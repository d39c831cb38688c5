"""Rewrites of a program before lowering (never applied to replay, which is exact).

The tape's backward pass of an indexing operation ``x[idx]`` makes a zero array of x's
shape with the cotangent written at ``idx``, and the accumulation of cotangents adds
such arrays together. A time loop written in Python (``for t in ...: ... y[:, t]``)
thus costs, per step, a fill and an addition over the whole array. Here
``add(acc, index_vjp(g, shape, idx))``, where the zero array is used nowhere else,
becomes ``index_add(acc, g, idx)``: the cotangent is added into ``acc`` at ``idx`` only
(in place when ``acc`` dies there).
"""
from ..program import Program
from ..tracer import Eqn, Var

__all__ = ["simplify", "index_add"]


def index_add(acc, g, idx):
    """``acc`` with ``g`` added at ``idx`` (a new array; repeated advanced indices
    accumulate). The lowering key of the rewritten accumulation."""
    from .. import backend
    out = acc.copy()
    backend.scatter_add(out, idx, g)
    return out


def simplify(prog):
    """``prog`` with scattered cotangents added in place (see the module docstring)."""
    import numpy as np
    from .. import ops
    index_vjp = ops._index_vjp.__wrapped__
    uses = {}
    for e in prog.eqns:
        for v in e.inputs():
            uses[id(v)] = uses.get(id(v), 0) + 1
    for o in prog.outputs:
        if type(o) is Var:
            uses[id(o)] = uses.get(id(o), 0) + 1
    made = {id(o): e for e in prog.eqns for o in e.outs if e.key is index_vjp}
    eqns, dropped = [], set()
    for e in prog.eqns:
        if e.key is np.add and len(e.args) == 2 and not e.kwargs:
            a, b = e.args
            for acc, z in ((a, b), (b, a)):
                src = made.get(id(z)) if type(z) is Var else None
                if src is None or uses.get(id(z)) != 1 or type(acc) is not Var:
                    continue
                if acc.shape != e.outs[0].shape or acc.dtype != e.outs[0].dtype:
                    continue
                g, _, idx = src.args
                e = Eqn(index_add, (acc, g, idx), {}, e.outs, None, index_add, "index_add")
                dropped.add(id(src))
                break
        eqns.append(e)
    if not dropped:
        return prog
    eqns = [e for e in eqns if id(e) not in dropped]
    return Program(eqns, prog.inputs, prog.refs, prog.outputs, prog.rngs)
