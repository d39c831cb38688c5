"""Lowering a :class:`~autodiff.program.Program` to the machine of :mod:`.vm`.

Every value of the program gets a place in one flat workspace: a :class:`View`
(offset, shape, strides in elements) of a :class:`Buffer`. Operations that only move
data (reshape of a contiguous value, transpose, broadcast, basic slicing, diagonal,
flip) make new views and no instruction; the others emit rows of the instruction table
(:mod:`.rules` has one lowering rule per operation). Buffers are allocated as values
are made and reused once the last value viewing them is dead, so a long program works
in a workspace the size of its largest live set.

An equation without a rule runs as a Python step between two runs of the machine: its
arguments are read from the workspace as NumPy views and its result written back
(:class:`Executable` alternates ``("vm", start, end)`` and ``("py", ...)`` steps). Random
draws that do not depend on traced values are made before the machine runs, in program
order, so a compiled program consumes a generator exactly as the replay does.
"""
import os
import sys
import threading
import warnings
import weakref

import numpy as np

from .._jitcache import first_call
from . import blas, fuse, vm
from .vm import OP, W

__all__ = ["View", "Buffer", "Lowering", "Executable", "NotLowerable", "lower"]


class NotLowerable(Exception):
    """A program (or an equation) that this lowering cannot execute at all."""


class Buffer:
    __slots__ = ("off", "size", "refs", "pinned", "dead_at")

    def __init__(self, off, size, pinned=False):
        self.off, self.size, self.refs, self.pinned = off, size, 0, pinned
        self.dead_at = None     # the equation (Lowering.eqn_no) after which it is free


class View:
    """A strided place in the workspace; ``lstride`` is how far it moves per iteration
    of the machine loop it is read or written in (0: it stays)."""
    __slots__ = ("buf", "off", "shape", "strides", "lstride")

    def __init__(self, buf, off, shape, strides, lstride=0):
        self.buf, self.off, self.shape, self.strides = buf, off, tuple(shape), tuple(strides)
        self.lstride = lstride

    @property
    def size(self):
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def ndim(self):
        return len(self.shape)

    def contiguous(self):
        return self.strides == _c_strides(self.shape) or self.size <= 1

    def with_(self, off=None, shape=None, strides=None, lstride=None):
        return View(self.buf, self.off if off is None else off,
                    self.shape if shape is None else shape,
                    self.strides if strides is None else strides,
                    self.lstride if lstride is None else lstride)

    def __repr__(self):
        return f"View(@{self.off}, {self.shape}, {self.strides})"


def _c_strides(shape):
    st, acc = [], 1
    for s in reversed(shape):
        st.append(acc if s != 1 else 0)
        acc *= s
    return tuple(reversed(st))


def _norm_strides(shape, strides):
    """Strides with 0 on size-1 dims (they never move), for comparisons."""
    return tuple(0 if n == 1 else s for n, s in zip(shape, strides))


class _Allocator:
    """Exact-size free lists over a growing workspace (sizes rounded to 8 elements)."""

    def __init__(self):
        self.top = 0
        self.free = {}

    def alloc(self, size, fresh=False):
        size = max(8, -(-size // 8) * 8)
        lst = None if fresh else self.free.get(size)
        if lst:
            return lst.pop(), size
        off = self.top
        self.top += size
        return off, size

    def release(self, off, size):
        lst = self.free.setdefault(size, [])
        if off in lst:      # two later values would share this memory: a wrong answer
            raise AssertionError(f"lowering: workspace block {off} released twice")
        lst.append(off)


class Lowering:
    """Builds the instruction table, the gather tables and the workspace layout."""

    def __init__(self, dtype, const_base=None):
        self.dtype = np.dtype(dtype)
        self.const_base = const_base    # constants in their own area from here (GPU)
        self.const_top = 0
        self.rows = []
        self.meta = []              # per row: (Buffer of its output or None, eqn_no)
        self.eqn_no = 0             # equations lowered so far, nested bodies included
        self.tabs = []
        self.tab_size = 0
        self.alloc_ = _Allocator()
        self.consts = []            # (offset, flat values)
        self._scalars = {}
        self._arrays = {}
        self.loop_depth = 0         # > 0 while lowering the body of a machine loop
        self.grad_scans = frozenset()   # bodies of scans whose gradient this program takes
        self.scan_carries = {}      # id(body) -> (operands, carry history) saved by scan_run
        self.dying = frozenset()    # ids of buffers whose last value dies in this equation

    def reusable(self, v):
        """Whether a rule may write its result over input view ``v``: the only value
        viewing its buffer dies in this equation and ``v`` covers the whole buffer."""
        return (id(v.buf) in self.dying and v.off == v.buf.off and v.contiguous()
                and v.buf.refs == 1 and not v.buf.pinned)

    # ------------------------------------------------------------------ memory
    def new(self, shape, pinned=False):
        """A fresh contiguous value of ``shape``. Pinned values (constants, inputs,
        outputs drawn before the machine runs) get memory no other value ever used."""
        n = int(np.prod(shape, dtype=np.int64))
        off, size = self.alloc_.alloc(n, fresh=pinned)
        buf = Buffer(off, size, pinned)
        return View(buf, off, shape, _c_strides(shape))

    def new_const(self, shape):
        """A place for a constant: pinned memory, in the constant area if there is one."""
        if self.const_base is None:
            return self.new(shape, pinned=True)
        n = max(8, -(-int(np.prod(shape, dtype=np.int64)) // 8) * 8)
        off = self.const_base + self.const_top
        self.const_top += n
        return View(Buffer(off, n, pinned=True), off, shape, _c_strides(shape))

    def release(self, buf):
        if not buf.pinned:
            buf.dead_at = self.eqn_no
            self.alloc_.release(buf.off, buf.size)

    def const(self, value):
        """A constant as a view of the (never freed) constant area."""
        if isinstance(value, (bool, int, float, np.generic)) or np.ndim(value) == 0:
            v = float(np.asarray(value).real)
            key = (v, np.signbit(v)) if v == v else ("nan",)
            view = self._scalars.get(key)
            if view is None:
                view = self.new_const(())
                self.consts.append((view.off, np.array([v])))
                self._scalars[key] = view
            return view
        a = np.asarray(value)
        if a.dtype.kind not in "biuf":
            raise NotLowerable(f"a constant of dtype {a.dtype}")
        hit = self._arrays.get(id(value))
        if hit is not None and hit[0] is value:
            return hit[1]
        view = self.new_const(a.shape)
        self.consts.append((view.off, np.ascontiguousarray(a, dtype=np.float64).ravel()))
        self._arrays[id(value)] = (value, view)
        return view

    def table(self, offsets):
        """Store a gather/scatter table; returns its start in ``tab``."""
        start = self.tab_size
        arr = np.ascontiguousarray(offsets, dtype=np.int64).ravel()
        self.tabs.append(arr)
        self.tab_size += arr.size
        return start

    # ------------------------------------------------------------------ rows
    def row(self, op, n=(1, 1, 1, 1), o=None, a=None, b=None, c=None, x=(0, 0, 0, 0),
            so=(0,) * 4, sa=(0,) * 4, sb=(0,) * 4, sc=(0,) * 4):
        """Append one instruction; ``o``/``a``/``b``/``c`` are Views (or None)."""
        r = np.zeros(W, dtype=np.int64)
        r[vm.F_OP] = op
        r[vm.F_ND] = 4
        r[vm.F_N0:vm.F_N3 + 1] = n
        for (fo, fs, fl), v, s in (((vm.F_O, vm.F_SO0, vm.F_LO), o, so),
                                   ((vm.F_A, vm.F_SA0, vm.F_LA), a, sa),
                                   ((vm.F_B, vm.F_SB0, vm.F_LB), b, sb),
                                   ((vm.F_C, vm.F_SC0, vm.F_LC), c, sc)):
            if v is not None:
                r[fo] = v.off
                r[fs:fs + 4] = s
                r[fl] = v.lstride
        r[vm.F_X0:vm.F_X3 + 1] = x
        self.rows.append(r)
        self.meta.append((None if o is None else o.buf, self.eqn_no))
        return len(self.rows) - 1

    def nest(self, op, out, ins, x=(0, 0, 0, 0)):
        """Rows applying ``op`` elementwise over ``out``'s shape: ``ins`` are Views of
        the same shape (broadcast already, strides 0 where they repeat). Dimensions
        that every operand walks contiguously are merged; more than four dimensions
        left are split into one row per leading index."""
        views = [out] + list(ins)
        merged_shape, merged = merge_dims(out.shape, [v.strides for v in views])
        while len(merged_shape) > 4:           # split the leading dimension
            n0 = merged_shape[0]
            lead = [m[0] for m in merged]
            rest_shape = merged_shape[1:]
            rest = [m[1:] for m in merged]
            for i in range(n0):
                sub = [v.with_(off=v.off + i * st, shape=rest_shape, strides=rs)
                       for v, st, rs in zip(views, lead, rest)]
                self.nest(op, sub[0], sub[1:], x)
            return
        pad = 4 - len(merged_shape)
        n = [1] * pad + merged_shape
        st = [[0] * pad + m for m in merged]
        ops = [views[0], *views[1:]] + [None] * (4 - len(views))
        sts = st + [[0] * 4] * (4 - len(st))
        self.row(op, n, ops[0], ops[1], ops[2], ops[3], x, sts[0], sts[1], sts[2], sts[3])

    def copy(self, src, dst=None):
        """``src`` into a new contiguous value (or into ``dst``), broadcasting."""
        if dst is None:
            dst = self.new(src.shape)
        self.nest(OP.UNARY, dst, [broadcast(src, dst.shape)], (vm.UN.COPY, 0, 0, 0))
        return dst

    def contiguous(self, v):
        return v if v.contiguous() else self.copy(v)

    def fill(self, dst, value):
        self.nest(OP.UNARY, dst, [broadcast(self.const(value), dst.shape)],
                  (vm.UN.COPY, 0, 0, 0))


# ----------------------------------------------------------------------------- views
def merge_dims(shape, strides_list):
    """Drop size-1 dimensions and merge neighbours that every operand walks contiguously:
    ``(shape, [strides per operand])`` with as few dimensions as possible (at least 1)."""
    dims = [i for i, n in enumerate(shape) if n != 1]
    shape = [shape[i] for i in dims]
    strides = [[s[i] for i in dims] for s in strides_list]
    merged_shape, merged = [], [[] for _ in strides_list]
    for k, n in enumerate(shape):
        if merged_shape and all(ms[-1] == st[k] * n for ms, st in zip(merged, strides)):
            merged_shape[-1] *= n
            for ms, st in zip(merged, strides):
                ms[-1] = st[k]
        else:
            merged_shape.append(n)
            for ms, st in zip(merged, strides):
                ms.append(st[k])
    if not merged_shape:
        return [1], [[0] for _ in strides_list]
    return merged_shape, merged


def broadcast(v, shape):
    """``v`` broadcast to ``shape`` (stride 0 on new and stretched dims)."""
    shape = tuple(shape)
    if v.shape == shape:
        return v
    nd = len(shape)
    if v.ndim > nd:
        raise NotLowerable(f"cannot broadcast {v.shape} to {shape}")
    vs = (1,) * (nd - v.ndim) + v.shape
    vst = (0,) * (nd - v.ndim) + v.strides
    st = []
    for n, vn, s in zip(shape, vs, vst):
        if vn == n:
            st.append(s if n != 1 else 0)
        elif vn == 1:
            st.append(0)
        else:
            raise NotLowerable(f"cannot broadcast {v.shape} to {shape}")
    return v.with_(shape=shape, strides=tuple(st))


def reshape(L, v, shape):
    """``v`` reshaped (a view when its layout allows, else a copy first)."""
    shape = tuple(int(s) for s in shape)
    if v.shape == shape:
        return v
    st = _reshape_strides(v.shape, v.strides, shape)
    if st is None:
        v = L.copy(v)
        st = _c_strides(shape)
    return v.with_(shape=shape, strides=st)


def _reshape_strides(old, ostr, new):
    """Strides of ``new`` viewing the same elements as (old, ostr) in C order, or None
    (NumPy's attempt_nocopy_reshape, on element strides)."""
    old_d = [(n, s) for n, s in zip(old, ostr) if n != 1]
    new_nz = [n for n in new]
    if int(np.prod(old, dtype=np.int64)) != int(np.prod(new, dtype=np.int64)):
        return None
    if not old_d:
        return tuple(0 for _ in new)
    out = [0] * len(new)
    oi, ni = 0, 0
    on, nn = len(old_d), len(new_nz)
    while ni < nn and oi < on:
        np_, op_ = new_nz[ni], old_d[oi][0]
        nj, oj = ni + 1, oi + 1
        while np_ != op_:
            if np_ < op_:
                np_ *= new_nz[nj]
                nj += 1
            else:
                op_ *= old_d[oj][0]
                oj += 1
        for k in range(oi, oj - 1):          # the old chunk must be contiguous
            if old_d[k][1] != old_d[k + 1][1] * old_d[k + 1][0]:
                return None
        out[nj - 1] = old_d[oj - 1][1]
        for k in range(nj - 1, ni, -1):
            out[k - 1] = out[k] * new_nz[k]
        ni, oi = nj, oj
    for k in range(len(new)):
        if new[k] == 1:
            out[k] = 0
    return tuple(out)


def transpose(v, axes):
    axes = tuple(a % v.ndim for a in axes) if axes is not None else \
        tuple(reversed(range(v.ndim)))
    return v.with_(shape=[v.shape[a] for a in axes], strides=[v.strides[a] for a in axes])


# ----------------------------------------------------------------------------- executable
class Executable:
    """A lowered program: call it with the program's arguments, get its outputs."""

    def __init__(self, prog, L, steps, in_views, out_views, sources, warned):
        self.prog = prog
        self.dtype = L.dtype
        self.code = np.ascontiguousarray(np.array(L.rows, dtype=np.int64).reshape(-1, W))
        self.tab = np.concatenate(L.tabs) if L.tabs else np.zeros(1, np.int64)
        self.size = L.alloc_.top + 8
        self.w = np.zeros(self.size, dtype=L.dtype)     # the template (constants in place)
        for off, vals in L.consts:
            self.w[off:off + vals.size] = vals
        self._local = threading.local()                   # one workspace per thread
        self.steps = steps
        self.in_views = in_views
        self.out_views = out_views
        self.sources = sources           # (eqn, out View) drawn before the machine runs
        self.fallbacks = warned
        # the common case: one machine run between writing inputs and reading outputs
        self._single = (len(steps) == 1 and steps[0][0] == "vm" and not sources) or not steps
        self._run_range = (steps[0][1], steps[0][2]) if self._single and steps else (0, 0)
        self._ins = [(v.off, v.size, v.contiguous()) for v in in_views]
        # products in parts: the whole run with a one-thread BLAS (see :mod:`.blas`), so
        # that no BLAS thread of a product left whole spins on a core the parts need
        self.one_blas_thread = any(s[0] == "mm" for s in steps)
        self.gemm = blas.gemm(self.dtype)          # this process's BLAS (see :mod:`.blas`)
        self._machine_name = f"the {self.dtype.name} program machine"
        self._fixed = [(off, vals.size) for off, vals in L.consts] + \
            [(off, n) for off, n, _ in self._ins]    # places no run writes
        self.handed = None       # indices of outputs handed out as views (hand_out)

    def hand_out(self, outputs):
        """Return outputs ``outputs`` (indices) as writable views of the workspace, not
        copies, from the next call on: those that are contiguous places of the
        workspace's dtype that every run writes (not a constant's or an input's place)
        and that no other output shares. A call made while an array still sees such a
        view from an earlier call (someone kept a ``.grad``) first gets a fresh
        workspace, so what was handed out never changes; a caller that drops them
        (``zero_grad`` setting ``.grad`` to None) costs no copy at all."""
        places = [(v.off, v.size) if type(v) is View and v.contiguous() else None
                  for v, _ in self.out_views]

        def overlap(p, q):
            return p[0] < q[0] + q[1] and q[0] < p[0] + p[1]
        safe = []
        for k in outputs:
            v, dt = self.out_views[k]
            p = places[k]
            if (p is None or p[1] == 0 or (dt is not None and np.dtype(dt) != self.dtype)
                    or any(overlap(p, q) for q in self._fixed)
                    or any(j != k and q is not None and overlap(p, q)
                           for j, q in enumerate(places))):
                continue
            safe.append(k)
        self.handed = tuple(safe)
        return self.handed

    def handed_out(self, a):
        """Whether ``a`` is an output that this thread's last call handed out as a view
        (see :meth:`hand_out`)."""
        return bool(self.handed) and getattr(a, "base", None) is getattr(self._local, "w",
                                                                           None)

    def _held(self, loc):
        """Whether an array other than the live resident inputs' views sees this
        thread's workspace (an output handed out by an earlier call, kept)."""
        alive = sum(1 for r in loc.resident if r is not None and r() is not None)
        return _refs(loc) - loc.base_refs - alive > 0

    @property
    def n_rows(self):
        return len(self.code)

    def machine(self):
        """``(code, w, tab, gemm, start, end, in_off, out0_off, out1_off)`` for programs that are
        one machine run from a contiguous input to two contiguous outputs of the
        workspace's dtype (a log density and its gradient), for compiled callers (see
        :mod:`samplers.nuts_machine`); None otherwise. ``w`` is this thread's
        workspace."""
        if not (self._single and self.steps and len(self.in_views) == 1
                and self._ins[0][2] and len(self.out_views) == 2):
            return None
        offs = []
        for v, dt in self.out_views:
            if type(v) is not View or not v.contiguous() or np.dtype(dt) != self.dtype:
                return None
            offs.append(v.off)
        if getattr(self._local, "w", None) is None:
            self._workspace()
        return (self.code, self._local.w, self.tab, self.gemm, self._run_range[0],
                self._run_range[1],
                self._ins[0][0], offs[0], offs[1])

    def resident(self, k):
        """A writable NumPy view of input ``k``'s place in this thread's workspace, or
        None when the input is not one contiguous block of the workspace's dtype.

        Passing this very array as input ``k`` skips its copy: a caller may keep an
        input there between calls (a parameter that an optimizer updates in place).
        The machine never writes to an input's place. Before another array is copied
        over a place that was handed out, the thread gets a fresh workspace if any
        array other than the handed-out views still sees the old one (a former
        ``.data`` someone kept, or a view of it): memory that someone can see is
        never overwritten."""
        loc = self._local
        if getattr(loc, "w", None) is None:
            self._workspace()
        (off, n, contig), v = self._ins[k], self.in_views[k]
        if not contig:
            return None
        r = loc.resident[k]
        view = r() if r is not None else None
        if view is None:
            view = loc.w[off:off + n].reshape(v.shape)
            loc.resident[k] = weakref.ref(view)
        return view

    def _settle(self, args):
        """The inputs of a call with ``args`` already in place in this thread's
        workspace, when places were handed out (see :meth:`resident`); replaces the
        workspace first when an input must be copied over memory that an array other
        than the live handed-out views may see."""
        loc = self._local
        in_place, alive, write, seen = set(), 0, False, False
        for k, (r, x) in enumerate(zip(loc.resident, args)):
            if r is None:
                continue
            view = r()
            if view is None:
                write = True
            elif x is view:
                alive += 1
                in_place.add(k)
            else:                      # a live view held by someone else: never overwrite
                alive += 1
                write = seen = True
            del view
        if seen or (write and _refs(loc) - loc.base_refs - alive > 0):
            self._workspace()
            return ()
        return in_place

    def _workspace(self):
        """A fresh workspace for this thread, with NumPy views of the outputs in it."""
        loc = self._local
        loc.w = w = self.w.copy()
        outs = []
        for v, dt in self.out_views:
            if type(v) is not View:
                outs.append((None, v, None))
            elif v.contiguous():
                outs.append((w[v.off:v.off + v.size].reshape(v.shape), None, dt))
            else:
                outs.append((_np_view(w, v), None, dt))
        loc.outs = outs
        loc.resident = [None] * len(self._ins)      # weak references, see resident()
        del w
        loc.base_refs = _refs(loc)

    def __call__(self, *args):
        loc = self._local
        in_place = ()
        if getattr(loc, "w", None) is None:
            self._workspace()
        elif self.handed and self._held(loc):
            self._workspace()                       # never change what was handed out
        elif any(loc.resident):
            in_place = self._settle(args)
        w, outs = loc.w, loc.outs
        for k, ((off, n, contig), v, x) in enumerate(zip(self._ins, self.in_views, args)):
            if k in in_place:
                continue                            # already there (see resident())
            if contig and type(x) is np.ndarray and x.flags.c_contiguous:
                w[off:off + n] = x.reshape(n)
            else:
                _write(w, v, x)
        if self.one_blas_thread:
            with blas.one_thread():
                self._run(w)
        else:
            self._run(w)
        handed = self.handed or ()                 # fresh views of these: see hand_out()
        return tuple(w[v.off:v.off + v.size].reshape(v.shape) if k in handed else
                     const if a is None else (a.copy() if dt is None or a.dtype == dt
                                              else a.astype(dt))
                     for k, ((a, const, dt), (v, _)) in enumerate(zip(outs, self.out_views)))

    def _run(self, w):
        # the machine's first run for this dtype in this process may compile it
        first_call(self._machine_name, self._run_rows, w)

    def _run_rows(self, w):
        if self._single:
            if self.steps:
                status = vm.run(self.code, w, self.tab, self.gemm, *self._run_range)
                if status:
                    raise _Check(status - 1)
        else:
            self._steps(w)

    def _steps(self, w):
        for e, views in self.sources:
            out = e.fn(*e.args, **e.kwargs)
            for v, val in zip(views, out if e.multi is not None else (out,)):
                _write(w, v, val)
        objs = {}
        for step in self.steps:
            if step[0] == "vm":
                status = vm.run(self.code, w, self.tab, self.gemm, step[1], step[2])
                if status:
                    raise _Check(status - 1)
            elif step[0] == "par":
                _run_parts(self.code, w, self.tab, step)
            elif step[0] == "mm":
                _run_matmul_parts(self.code, w, self.gemm, step)
            else:
                _python_step(w, step, objs)


def n_threads():
    """Threads a large fused row of a CPU program is split over: Numba's thread count
    (``NUMBA_NUM_THREADS``, by default the number of CPUs), at most 8; 1 turns the
    splitting off. Read when a program is lowered."""
    import numba
    return max(1, min(8, int(numba.config.NUMBA_NUM_THREADS)))


_pool = [None, None]                  # (process id, executor): a forked child makes its own
_pool_lock = threading.Lock()


def _thread_pool():
    with _pool_lock:
        if _pool[0] != os.getpid():
            from concurrent.futures import ThreadPoolExecutor
            _pool[0], _pool[1] = os.getpid(), ThreadPoolExecutor(
                max_workers=7, thread_name_prefix="autodiff-parts")
        return _pool[1]


def _run_parts(code, w, tab, step):
    """A ``("par", row, axis, bounds, scratches)`` step (see
    :func:`.fuse.parallel_steps`): the first part in this thread, the others in the
    pool's threads, all at once (the machine releases the GIL)."""
    _, row, ax, bounds, scratches = step
    pool = _thread_pool()
    futures = [pool.submit(vm.fused_part, w, tab, code, row, ax, lo, hi, s)
               for (lo, hi), s in zip(bounds[1:], scratches[1:])]
    vm.fused_part(w, tab, code, row, ax, bounds[0][0], bounds[0][1], scratches[0])
    for f in futures:
        f.result()


def _run_matmul_parts(code, w, gemm, step):
    """A ``("mm", row, axis, bounds)`` step (see :func:`.fuse.parallel_steps`): blocks of
    the product's output rows or columns, the first in this thread, the others in the
    pool's threads. The BLAS is on one thread already: a program with such steps runs
    inside :func:`.blas.one_thread` (``Executable.one_blas_thread``)."""
    _, row, axis, bounds = step
    pool = _thread_pool()
    futures = [pool.submit(vm.matmul_part, w, gemm, code, row, axis, lo, hi)
               for lo, hi in bounds[1:]]
    vm.matmul_part(w, gemm, code, row, axis, bounds[0][0], bounds[0][1])
    for f in futures:
        f.result()


def _refs(loc):
    """References to this thread's workspace (each NumPy view of it holds one)."""
    return sys.getrefcount(loc.w)


class _Check(Exception):
    """A check in the program failed (or an index was out of range) at ``row``."""

    def __init__(self, row):
        super().__init__(row)
        self.row = row


def _np_view(w, v):
    """A NumPy view of workspace place ``v``."""
    isz = w.itemsize
    return np.lib.stride_tricks.as_strided(w[v.off:], shape=v.shape,
                                           strides=tuple(s * isz for s in v.strides))


def _write(w, v, x):
    x = np.asarray(x)
    if v.contiguous() and x.flags.c_contiguous:
        w[v.off:v.off + v.size] = x.reshape(-1)
    else:
        _np_view(w, v)[...] = x


def _python_step(w, step, objs):
    _, e, arg_views, out_views = step
    args = _materialize(e.args, w, arg_views, objs)
    kwargs = {k: _materialize((v,), w, arg_views, objs)[0] for k, v in e.kwargs.items()}
    out = e.fn(*args, **kwargs)
    outs = out if e.multi is not None else (out,)
    for var, o, place in zip(e.outs, outs, out_views):
        if place is None:
            objs[id(var)] = o
        else:
            _write(w, place, o)


def _materialize(template, w, views, objs):
    from ..tracer import Var
    out = []
    for a in template:
        if type(a) is Var:
            v = views.get(id(a))
            out.append(objs[id(a)] if v is None else _np_view(w, v).astype(
                a.dtype, copy=True))
        elif type(a) in (tuple, list):
            inner = _materialize(a, w, views, objs)
            out.append(tuple(inner) if type(a) is tuple else inner)
        else:
            out.append(a)
    return out


# ----------------------------------------------------------------------------- driver
def lower(prog, warn=True, keep_all=False, gpu=False):
    """Lower ``prog`` to an :class:`Executable` (or, with ``gpu``, a
    :class:`~autodiff.lower.cuda.GPUExecutable` of a program recorded at one chain).

    Raises
    ------
    NotLowerable
        When the program cannot run on the machine at all (values whose shape depends
        on the data, complex numbers, random draws that depend on traced values; on the
        GPU also operations without a rule and random draws).
    """
    from .simplify import simplify
    from ..tracer import Var
    prog = simplify(prog)
    dtypes = set()
    for v in program_vars(prog):
        if v.shape is None:
            continue
        if v.dtype.kind == "c":
            raise NotLowerable("complex values")
        if v.dtype.kind == "f":
            dtypes.add(v.dtype)
    dtype = np.float32 if dtypes == {np.dtype(np.float32)} else np.float64
    if gpu:
        from .cuda import CBASE
        return _lower_gpu(prog, Lowering(dtype, const_base=CBASE), dtypes)
    L = Lowering(dtype)
    L.mixed = dtype == np.float64 and np.dtype(np.float32) in dtypes
    loc = {}
    keep = {id(o) for o in prog.outputs if type(o) is Var}
    if keep_all:                   # debugging: every value stays readable (see debug())
        keep = {id(o) for e in prog.eqns for o in e.outs}
    in_views = []
    for v in list(prog.inputs) + [v for v, _ in prog.refs]:
        view = L.new(v.shape, pinned=True)
        loc[id(v)] = view
        in_views.append(view)
    from . import loops
    L.grad_scans = loops.grad_scans(prog)
    sources, steps, warned, hosts = [], [], [], []
    lower_eqns(L, prog.eqns, loc, keep, steps=steps, warned=warned, sources=sources,
               hosts=hosts)
    if fuse.ENABLED and not keep_all:
        fuse.fuse(L, [(s[1], s[2]) for s in steps if s[0] == "vm"])
        steps = fuse.parallel_steps(L, steps, n_threads())
    out_views = []
    for o in prog.outputs:
        if type(o) is Var:
            out_views.append((loc[id(o)], o.dtype))
        else:
            out_views.append((o, None))
    if warned and warn:
        names = sorted(set(warned))
        warnings.warn(f"compile: no lowering for {', '.join(names)}; "
                      f"{'it runs' if len(names) == 1 else 'they run'} as Python calls "
                      f"between compiled segments", CompileWarning, stacklevel=3)
    ex = Executable(prog, L, steps, in_views, out_views, sources, warned)
    ex.places = loc if keep_all else None
    ex.host_steps = hosts
    return ex


def _lower_gpu(prog, L, dtypes):
    """The GPU lowering: input 0 per chain, the other inputs in the constant area, every
    row on the machine, outputs copied to per-chain values."""
    from ..tracer import Var
    from .cuda import GPUExecutable
    L.mixed = L.dtype == np.float64 and np.dtype(np.float32) in dtypes
    loc, in_views = {}, []
    for k, v in enumerate(list(prog.inputs) + [v for v, _ in prog.refs]):
        view = L.new(v.shape, pinned=True) if k == 0 else L.new_const(v.shape)
        loc[id(v)] = view
        in_views.append(view)
    keep = {id(o) for o in prog.outputs if type(o) is Var}
    steps, warned, sources = [], [], []
    from . import loops
    L.grad_scans = loops.grad_scans(prog)
    lower_eqns(L, prog.eqns, loc, keep, steps=steps, warned=warned, sources=sources)
    if warned or sources:      # (host steps are in ``warned`` here: hosts=None)
        raise NotLowerable("on the GPU, " + (f"'{warned[0]}' has no lowering" if warned
                                             else "random draws are not compiled"))
    out_views = []
    for o in prog.outputs:
        if type(o) is not Var:
            out_views.append((o, None))
            continue
        v = loc[id(o)]
        if v.off >= L.const_base or not v.contiguous() or v.off != v.buf.off:
            v = L.copy(v)
        out_views.append((v, o.dtype))
    return GPUExecutable(prog, L, in_views, out_views)


def program_vars(prog):
    """Every Var of ``prog`` and of the programs nested in its equations (scan bodies)."""
    for v in list(prog.inputs) + [v for v, _ in prog.refs]:
        yield v
    for e in prog.eqns:
        yield from e.outs
        for val in e.kwargs.values():
            for sub in getattr(val, "programs", ()):
                yield from program_vars(sub)


def lower_eqns(L, eqns, loc, keep, steps=None, warned=None, sources=None, hosts=None):
    """Lower ``eqns`` into ``L`` with the places in ``loc`` (filled in for every result);
    values in ``keep`` are never freed. With ``steps`` None (the body of a machine loop)
    every equation must have a rule; otherwise one without runs as a Python step and
    random draws of untraced arguments are made before the machine runs. The names of
    Python steps go to ``warned``, except those of host operations (``array_op(...,
    host=True)``: convolutions), which go to ``hosts`` when it is given."""
    from . import rules
    from ..tracer import Var
    last = {}
    for k, e in enumerate(eqns):
        for v in e.inputs():
            last[id(v)] = k
    seg_start = len(L.rows)
    for k, e in enumerate(eqns):
        L.eqn_no += 1
        if sources is not None and e.source and \
                not any(type(a) is Var for a in _flat(e.args, e.kwargs)):
            views = []
            for o in e.outs:
                views.append(L.new(o.shape, pinned=True))
                loc[id(o)] = views[-1]
            sources.append((e, views))
            continue
        rule = rules.RULES.get(rules.key_of(e))
        done = False
        dying = set()
        for v in e.inputs():
            if last.get(id(v)) == k and id(v) not in keep:
                view = loc.get(id(v))
                if type(view) is View:
                    dying.add(id(view.buf))
        if rule is not None and not e.random:
            n_rows = len(L.rows)
            try:
                L.dying = dying
                outs = rule(L, e, [_resolve(a, loc) for a in e.args],
                            {kk: _resolve(vv, loc) for kk, vv in e.kwargs.items()})
                done = True
            except rules.NoRule:
                del L.rows[n_rows:]
                del L.meta[n_rows:]
            finally:
                L.dying = frozenset()
        if done:
            outs = outs if isinstance(outs, (tuple, list)) else (outs,)
            for o, view in zip(e.outs, outs):
                if type(view) is not View:
                    view = L.const(view)
                if L.mixed and o.dtype == np.float32:
                    r32 = L.new(view.shape)
                    L.nest(OP.ROUND32, r32, [view])
                    view = r32
                view.buf.refs += 1
                loc[id(o)] = view
        else:
            if e.random:
                raise NotLowerable(f"the random draw '{e.name}' depends on traced values")
            if steps is None:
                raise NotLowerable(f"'{e.name}' has no lowering and is inside a loop")
            if len(L.rows) > seg_start:
                steps.append(("vm", seg_start, len(L.rows)))
            arg_views = {id(v): loc.get(id(v)) for v in _flat(e.args, e.kwargs)
                         if type(v) is Var}
            out_views = []
            for o in e.outs:
                if o.shape is None:
                    out_views.append(None)
                else:
                    view = L.new(o.shape)
                    view.buf.refs += 1
                    loc[id(o)] = view
                    out_views.append(view)
            steps.append(("py", e, arg_views, out_views))
            seg_start = len(L.rows)
            if hosts is not None and getattr(e.key, "_ad_host", False):
                hosts.append(e.name)
            else:
                warned.append(e.name)
        # free what died here (once per Var: x * x reads x twice but holds it once)
        for v in {id(v): v for v in e.inputs()}.values():
            if last.get(id(v)) == k and id(v) not in keep:
                view = loc.get(id(v))
                if view is not None and type(view) is View:
                    view.buf.refs -= 1
                    if view.buf.refs <= 0:
                        L.release(view.buf)
    if steps is not None and len(L.rows) > seg_start:
        steps.append(("vm", seg_start, len(L.rows)))


def debug(prog, *args, rtol=1e-9):
    """Run ``prog`` by replay and on the machine (nothing freed) and return the first
    equation whose result differs, as ``(index, eqn, replayed, machine)``, or None."""
    from ..tracer import Var, _call_vjp
    ex = lower(prog, warn=False, keep_all=True)
    ex(*args)
    w = ex._local.w
    env = {id(v): a for v, a in zip(list(prog.inputs) + [v for v, _ in prog.refs],
                                    prog.args(args))}

    def arg(a):
        if type(a) is Var:
            return env[id(a)]
        if type(a) in (tuple, list):
            r = [arg(b) for b in a]
            return tuple(r) if type(a) is tuple else r
        return a
    for k, e in enumerate(prog.eqns):
        if e.fn is _call_vjp:
            out = arg(e.args[0])(arg(e.args[1]))
        else:
            out = e.fn(*[arg(a) for a in e.args], **{kk: arg(v) for kk, v in e.kwargs.items()})
        for o, val in zip(e.outs, out if e.multi is not None else (out,)):
            env[id(o)] = val
            place = ex.places.get(id(o))
            if type(place) is View and o.shape is not None:
                got = _np_view(w, place).astype(o.dtype)
                if not np.allclose(got, np.asarray(val), rtol=rtol, atol=1e-12, equal_nan=True):
                    return k, e, np.asarray(val), got
    return None


class CompileWarning(UserWarning):
    """Part of a function could not be compiled (it runs as Python, or not compiled)."""


def _flat(args, kwargs):
    from ..tracer import _leaves
    return _leaves(tuple(args) + tuple(kwargs.values()))


def _resolve(a, loc):
    from ..tracer import Var
    if type(a) is Var:
        v = loc.get(id(a))
        if v is None:
            raise NotLowerable("a value without a place (an opaque object)")
        return v
    if type(a) in (tuple, list):
        out = [_resolve(b, loc) for b in a]
        return tuple(out) if type(a) is tuple else out
    return a
