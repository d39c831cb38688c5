"""Lowering ``scan``: the body programs as the rows of a machine loop.

The loop's forward pass (:func:`autodiff.control.scan_run`) keeps its carries in fixed
buffers, reads ``xs[t]`` through views that move by one slice per iteration (the
``lstride`` of a :class:`View`) and writes ``ys[t]`` the same way. Its backward pass
(:func:`autodiff.control.scan_grad`) needs the carry before every step: when the same
program runs the forward loop on the same operands (a value and its gradient), that
loop saves them as it goes; otherwise the backward pass first sweeps forward saving
them. It then runs the body's backward program in reverse order, accumulating the
cotangents of the captured values and writing those of ``xs[t]``.

The machine has one level of loop: a scan inside a scan body is unrolled into the
outer body (correct, only larger).
"""
import numpy as np

from .cpu import NotLowerable, View, broadcast, lower_eqns
from .vm import OP, BIN

__all__ = []


def _unpack_views(out, avals):
    views, start = [], out.off
    for shape, _ in avals:
        n = int(np.prod(shape, dtype=np.int64))
        st, acc = [], 1
        for d in reversed(shape):
            st.append(acc if d != 1 else 0)
            acc *= d
        views.append(View(out.buf, start, shape, tuple(reversed(st))))
        start += n
    return views


def _slice(stack, t0, step, loop):
    """``stack[t]`` as a view: at ``t0`` moving by ``step`` slices per iteration (in a
    machine loop) or fixed at ``t0`` (unrolled)."""
    s0 = stack.strides[0]
    v = stack.with_(off=stack.off + t0 * s0, shape=stack.shape[1:], strides=stack.strides[1:])
    if loop:
        v.lstride = stack.lstride + step * s0
    return v


def run_loop(L, prog, n, ts, fixed, sliced_in, sliced_out, carries, accum, saves=()):
    """Rows running ``prog`` for the iterations ``ts`` (an arithmetic sequence).

    ``fixed``: (Var, View) read as is; ``sliced_in``: (Var, stack View) read at [t];
    ``sliced_out``: (output index, stack View) written at [t]; ``carries``: (output
    index, View) copied into the View (which an input also reads) at the end of each
    iteration; ``accum``: (output index, View) added into; ``saves``: (View, stack
    View) copied to [t] at the start of each iteration.
    """
    from ..tracer import Var
    ts = list(ts)
    if not ts:
        return
    step = ts[1] - ts[0] if len(ts) > 1 else 1
    loop = L.loop_depth == 0
    iterations = [ts[0]] if loop else ts
    # the buffers the loop reads and writes stay allocated while its body is lowered
    held = [v.buf for _, v in list(fixed) + list(sliced_in) + list(sliced_out) +
            list(carries) + list(accum)] + [v.buf for pair in saves for v in pair]
    for buf in held:
        buf.refs += 1
    try:
        _iterations(L, prog, ts, step, loop, iterations, fixed, sliced_in, sliced_out,
                    carries, accum, saves)
    finally:
        for buf in held:
            buf.refs -= 1


def _iterations(L, prog, ts, step, loop, iterations, fixed, sliced_in, sliced_out, carries,
                accum, saves):
    from ..tracer import Var
    for t in iterations:
        loc = {id(v): view for v, view in fixed}
        for v, stack in sliced_in:
            loc[id(v)] = _slice(stack, t, step, loop)
        if loop:
            start = L.row(OP.LOOP, x=(len(ts), 0, 0, 0))
        L.loop_depth += 1
        try:
            for src, stack in saves:
                L.copy(src, _slice(stack, t, step, loop))
            keep = {id(o) for o in prog.outputs if type(o) is Var} | \
                {id(v) for v in prog.inputs}           # inputs live outside the body
            lower_eqns(L, prog.eqns, loc, keep)
            outs = [loc[id(o)] if type(o) is Var else o for o in prog.outputs]
            for k, stack in sliced_out:
                dst = _slice(stack, t, step, loop)
                _assign(L, outs[k], dst)
            for k, acc in accum:
                if outs[k] is None:
                    continue
                src = outs[k] if type(outs[k]) is View else L.const(outs[k])
                L.nest(OP.BINARY, acc, [acc, broadcast(src, acc.shape)], (BIN.ADD, 0, 0, 0))
            pending = []
            targets = {id(c.buf) for _, c in carries}
            for k, dst in carries:
                src = outs[k]
                if type(src) is View and id(src.buf) in targets and src.off != dst.off:
                    src = L.copy(src)                 # read before any carry is written
                pending.append((src, dst))
            for src, dst in pending:
                _assign(L, src, dst)
        finally:
            L.loop_depth -= 1
        if loop:
            end = L.row(OP.END, x=(start, 0, 0, 0))
            L.rows[start][_x1()] = end


def _x1():
    from .vm import F_X1
    return F_X1


def _assign(L, src, dst):
    if src is None:
        L.fill(dst, 0.0)
    elif type(src) is View:
        if src.off != dst.off or src.buf is not dst.buf or src.strides != dst.strides \
                or src.lstride != dst.lstride:
            L.copy(broadcast(src, dst.shape), dst)
    else:
        L.copy(broadcast(L.const(src), dst.shape), dst)


def _order(body):
    return list(body.order())


def grad_scans(prog):
    """Ids of the bodies of the scans whose backward pass ``prog`` runs at its top level
    (their forward loop in the same program saves its carries for it)."""
    from .. import control
    key = control.scan_grad.__wrapped__
    return frozenset(id(e.kwargs["body"]) for e in prog.eqns if e.key is key)


def _operands_key(ops):
    return tuple((id(v.buf), v.off, v.shape, v.strides, v.lstride) for v in ops)


def _scan_run(L, e, args, kwargs):
    from ..control import Body  # noqa: F401  (documentation of the kwargs)
    from .rules import _view
    from .simplify import simplify
    body = kwargs["body"]
    if body.random:
        raise NotLowerable("random draws inside a scan body")
    ops = [_view(L, a) for a in args]
    caps, raw, init, xs = body.split(ops)
    avals = body.out_avals()
    total = sum(int(np.prod(s, dtype=np.int64)) for s, _ in avals)
    out = L.new((total,))
    views = _unpack_views(out, avals)
    nc = len(init)
    carry_bufs, ys = views[:nc], views[nc:]
    for c, i in zip(carry_bufs, init):
        L.copy(broadcast(i, c.shape), c)
    fwd = simplify(body.fwd)
    ins = fwd.inputs
    nx = len(xs)
    fixed = list(zip(ins[:nc], carry_bufs)) + \
        list(zip(ins[nc + nx:], list(caps) + list(raw)))
    sliced_in = list(zip(ins[nc:nc + nx], xs))
    saves = ()
    if id(body) in L.grad_scans and L.loop_depth == 0:
        hist = [L.new((body.n,) + c.shape) for c in carry_bufs]
        saves = list(zip(carry_bufs, hist))
        L.scan_carries[id(body)] = (_operands_key(ops), hist)
    run_loop(L, fwd, body.n, _order(body), fixed, sliced_in,
             [(nc + k, y) for k, y in enumerate(ys)],
             [(k, c) for k, c in enumerate(carry_bufs)], [], saves=saves)
    return out


def _scan_grad(L, e, args, kwargs):
    from ..program import Program, _prune
    from .rules import _view
    from ..tracer import Var
    from .simplify import simplify
    body = kwargs["body"]
    if body.random:
        raise NotLowerable("random draws inside a scan body")
    g = _view(L, kwargs["g"])
    ops = [_view(L, a) for a in args]
    caps, raw, init, xs = body.split(ops)
    nc, nx, ncap = len(init), len(xs), len(caps)
    in_avals = [(v.shape, None) for v in ops]
    total = sum(int(np.prod(s, dtype=np.int64)) for s, _ in in_avals)
    out = L.new((total,))
    gviews = _unpack_views(out, in_avals)
    g_caps, g_raw = gviews[:ncap], gviews[ncap:ncap + len(raw)]
    g_carry, g_xs = gviews[ncap + len(raw):ncap + len(raw) + nc], gviews[ncap + len(raw) + nc:]
    order = _order(body)
    saved = L.scan_carries.get(id(body))
    if saved is not None and saved[0] == _operands_key(ops):
        hist = saved[1]              # the forward loop of this program saved them
    else:
        # forward sweep: save the carry before every step
        fwd = body.fwd
        carry_only = simplify(Program(_prune(fwd.eqns, [o for o in fwd.outputs[:nc]
                                                       if type(o) is Var]),
                                      fwd.inputs, [], fwd.outputs[:nc]))
        ins = carry_only.inputs
        cbufs = [L.new(c.shape) for c in init]
        for c, i in zip(cbufs, init):
            L.copy(broadcast(i, c.shape), c)
        hist = [L.new((body.n,) + c.shape) for c in init]
        fixed = list(zip(ins[:nc], cbufs)) + list(zip(ins[nc + nx:], list(caps) + list(raw)))
        run_loop(L, carry_only, body.n, order, fixed, list(zip(ins[nc:nc + nx], xs)), [],
                 [(k, c) for k, c in enumerate(cbufs)], [], saves=list(zip(cbufs, hist)))
    # backward sweep
    gin = _unpack_views(g, body.out_avals())
    g_out_carry, g_ys = gin[:nc], gin[nc:]
    for v in g_caps + g_raw + g_xs:
        L.fill(v, 0.0)
    for src, dst in zip(g_out_carry, g_carry):
        L.copy(src, dst)
    bwd = simplify(body.bwd)
    bins = bwd.inputs
    nraw = len(raw)
    seeds = bins[nc + nx + ncap + nraw:]
    fixed = list(zip(bins[nc + nx:nc + nx + ncap + nraw], list(caps) + list(raw))) + \
        list(zip(seeds[:nc], g_carry))
    sliced_in = list(zip(bins[:nc], hist)) + list(zip(bins[nc:nc + nx], xs)) + \
        list(zip(seeds[nc:], g_ys))
    run_loop(L, bwd, body.n, list(reversed(order)), fixed, sliced_in,
             [(ncap + nc + k, gx) for k, gx in enumerate(g_xs)],
             [(ncap + k, gc) for k, gc in enumerate(g_carry)],
             [(k, gc) for k, gc in enumerate(g_caps)])
    return out


def register():
    from .. import control
    from .rules import RULES
    RULES[control.scan_run.__wrapped__] = _scan_run
    RULES[control.scan_grad.__wrapped__] = _scan_grad
