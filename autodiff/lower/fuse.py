"""Tiled fusion of elementwise rows on the CPU machine.

A chain of elementwise rows over one large loop nest (``logits * y - softplus(logits)``
and its sum, or the gradient's ``g * (y - expit(logits))``) makes each row stream its
operands through memory: at 2 million elements every row is memory bound. A FUSED row
runs the chain tile by tile (``TILE`` elements of the innermost loop), every member on
the same tile before the next tile, so operands are read from cache, and a member whose
result dies inside the group writes it to a scratch slot of one tile instead of the
workspace.

This is a pass over the finished instruction table (top-level segments only, never
inside a machine loop): the rows keep their places (members become NOPs and the FUSED
row takes the place of the last member), so row numbers used by loops, checks and
segments stay valid. Rows of other shapes that do not touch what the group reads or
writes may sit between members; they then run before the group.

Reordering is safe when every pair of accesses to overlapping memory by two members is
to the same elements in the same iteration order (identical views in the common loop
nest), and a reduction's output is touched by no other member: then executing member
by member within a tile, tile after tile, reads and writes every element in the same
order as row after row.
"""
import numpy as np

from . import blas, vm
from .vm import OP, W

__all__ = ["fuse", "parallel_steps", "ENABLED", "TILE", "MIN_SIZE", "PART_MIN",
           "MATMUL_PART_MIN", "MATMUL_SKINNY"]

#: Switch for comparisons (tests and benchmarks run both ways).
ENABLED = True

#: Elements of the innermost loop per tile (a few kilobytes per operand: L1-resident).
TILE = 512
#: Rows with fewer elements are left alone (dispatch is not the cost there). Fused, rows
#: of a few hundred elements take the vector loops that top-level rows keep for a few
#: functions (gradients at 4 chains: garch 60 -> 43 us, low_dim_gauss_mix 129 -> 73,
#: nes2000 14 -> 9 against 4096 here; unchanged at 64 chains).
MIN_SIZE = 256
#: The common loop nest's innermost extent must be at least this (per-tile overhead).
MIN_INNER = 64
MAX_MEMBERS = 32
#: A FUSED row runs in parts on several threads when each part gets at least this many
#: elements of its loop nest (a part costs a thread hand-off, about 0.1 ms).
PART_MIN = 1 << 17
#: A matrix product runs in parts (blocks of its output's rows or columns) when each
#: part gets at least this many multiply-adds (a part's hand-off costs ~0.1 ms on a
#: small machine, a BLAS thread does ~4 M multiply-adds in that time).
MATMUL_PART_MIN = 1 << 22
#: ... and only when its inner (k) or outer (n) extent is at most this: OpenBLAS threads
#: such skinny products poorly (a 4096 x 31 x 569 product runs faster in our parts),
#: while it threads wide ones (a VAE layer's 128 x 784 x 500) better than our parts do.
MATMUL_SKINNY = 64

_MEMBER_OPS = (OP.UNARY, OP.BINARY, OP.SELECT, OP.REDUCE)
# operand fields: (offset field, first stride field, slot field)
_O = (vm.F_O, vm.F_SO0, vm.F_LO)
_A = (vm.F_A, vm.F_SA0, vm.F_LA)
_B = (vm.F_B, vm.F_SB0, vm.F_LB)
_C = (vm.F_C, vm.F_SC0, vm.F_LC)
_READS = {OP.UNARY: (_A,), OP.BINARY: (_A, _B), OP.SELECT: (_A, _B, _C),
          OP.REDUCE: (_A, _O)}


def _shape(r):
    return tuple(int(v) for v in r[vm.F_N0:vm.F_N3 + 1])


def _strides(r, field):
    return tuple(int(v) for v in r[field[1]:field[1] + 4])


def _recast(r, shape):
    """``r``'s operand strides in the loop nest ``shape`` (per operand field), or None
    when ``r``'s own nest cannot be written that way."""
    own = _shape(r)
    fields = (_O,) + _READS[int(r[vm.F_OP])]
    if own == shape:
        return {f: _strides(r, f) for f in fields}
    if own[:3] != (1, 1, 1) or own[3] != int(np.prod(shape)):
        return None
    out = {}
    for f in fields:
        s = int(r[f[1] + 3])
        acc, st = s, [0, 0, 0, 0]
        for d in (3, 2, 1, 0):
            st[d] = acc if shape[d] != 1 else 0
            acc *= shape[d]
        out[f] = tuple(st)
    return out


def _span(off, shape, strides):
    lo = hi = off
    for n, s in zip(shape, strides):
        if n > 1:
            if s > 0:
                hi += (n - 1) * s
            else:
                lo += (n - 1) * s
    return lo, hi


class _Access:
    """The elements one operand of a row touches: ``off`` and ``strides`` in the common
    loop nest, ``lo``..``hi`` its span; ``excl`` for a reduction's output (complete only
    after the last tile: no other member may touch it)."""
    __slots__ = ("off", "strides", "lo", "hi", "excl")

    def __init__(self, off, shape, strides, excl=False):
        self.off, self.strides, self.excl = off, strides, excl
        self.lo, self.hi = _span(off, shape, strides)

    def overlaps(self, other):
        return self.lo <= other.hi and other.lo <= self.hi

    def conflicts(self, other):
        """Overlapping, and not the same elements in the same order."""
        return self.overlaps(other) and (self.excl or other.excl or not self.same(other))

    def same(self, other):
        return self.off == other.off and self.strides == other.strides


def _accesses(r, shape, strides):
    """(writes, reads) of row ``r`` as _Access lists, in loop nest ``shape``."""
    op = int(r[vm.F_OP])
    red = op == OP.REDUCE
    writes = [_Access(int(r[vm.F_O]), shape, strides[_O], red)]
    reads = [_Access(int(r[f[0]]), shape, strides[f], red and f is _O)
             for f in _READS[op]]
    return writes, reads


def _own_accesses(r):
    shape = _shape(r)
    return _accesses(r, shape, {f: _strides(r, f) for f in (_O,) + _READS[int(r[vm.F_OP])]})


class _Group:
    def __init__(self, i, r, shape, strides):
        self.shape = shape
        self.members = []          # (row index, strides by field, writes, reads)
        self.add(i, r, strides)

    def add(self, i, r, strides):
        w, rd = _accesses(r, self.shape, strides)
        self.members.append((i, strides, w, rd))

    def compatible(self, w, rd):
        """Whether a row with accesses ``w``/``rd`` may join (run tile by tile after
        the members)."""
        for _, _, mw, mr in self.members:
            if any(x.conflicts(y) for x in w for y in mw + mr) or \
                    any(x.conflicts(y) for x in rd for y in mw):
                return False
        return True

    def independent(self, w, rd):
        """Whether a row with these accesses may run before every member so far."""
        for _, _, mw, mr in self.members:
            for x in w:
                if any(x.overlaps(y) for y in mw + mr):
                    return False
            for x in rd:
                if any(x.overlaps(y) for y in mw):
                    return False
        return True


def _size(r):
    return int(np.prod(_shape(r)))


def _segments(rows, ranges):
    """Top-level row ranges of the machine segments (loops cut them)."""
    for start, end in ranges:
        s = start
        pc = start
        while pc < end:
            op = int(rows[pc][vm.F_OP])
            if op == OP.LOOP:
                if pc > s:
                    yield s, pc
                pc = int(rows[pc][vm.F_X1]) + 1
                s = pc
                continue
            pc += 1
        if end > s:
            yield s, end


def fuse(L, ranges):
    """Fuse elementwise rows of ``L.rows`` in the top-level row ranges ``ranges`` (in
    place). Returns the number of FUSED rows made."""
    rows = L.rows
    made = 0
    plans = []
    for start, end in _segments(rows, ranges):
        g = None
        for i in range(start, end):
            r = rows[i]
            op = int(r[vm.F_OP])
            simple = op in _MEMBER_OPS
            if simple and g is not None and len(g.members) < MAX_MEMBERS \
                    and _size(r) >= MIN_SIZE:
                st = _recast(r, g.shape)
                if st is None and all(_shape(rows[m[0]])[:3] == (1, 1, 1)
                                      for m in g.members):
                    st = _recast_group(g, rows, r)
                if st is not None:
                    w, rd = _accesses(r, g.shape, st)
                    if g.compatible(w, rd):
                        g.add(i, r, st)
                        continue
            if simple and g is not None and _size(r) < _size(rows[g.members[0][0]]):
                w, rd = _own_accesses(r)     # a smaller row (a reduction's fill, a
                if g.independent(w, rd):     # bias gradient): it runs before the group
                    continue
            if g is not None:
                plans.append(g)
                g = None
            if simple and _size(r) >= MIN_SIZE and op != OP.REDUCE:
                shape = _shape(r)
                g = _Group(i, r, shape, _recast(r, shape))
        if g is not None:
            plans.append(g)
    scratch_slots = 0
    built = []
    for g in plans:
        if len(g.members) < 2 or g.shape[3] < MIN_INNER:
            continue
        members, n_slots = _plan(L, g)
        built.append((g, members, n_slots))
        scratch_slots = max(scratch_slots, n_slots)
    L.fused = []
    if not built:
        return 0
    L.fused_scratch = max(1, scratch_slots) * TILE
    scratch = L.alloc_.alloc(L.fused_scratch, fresh=True)[0]
    for g, members, n_slots in built:
        start = L.table(np.concatenate(members))
        last = g.members[-1][0]
        L.fused.append((last, g.shape, members))
        for i, *_ in g.members:
            rows[i] = np.zeros(W, dtype=np.int64)       # NOP
        f = np.zeros(W, dtype=np.int64)
        f[vm.F_OP] = OP.FUSED
        f[vm.F_ND] = 4
        f[vm.F_N0:vm.F_N3 + 1] = g.shape
        f[vm.F_X0:vm.F_X3 + 1] = (start, len(g.members), scratch, TILE)
        rows[last] = f
        made += 1
    return made


def _recast_group(g, rows, r):
    """When every member so far is one flat loop and ``r`` is not, re-express the group
    in ``r``'s loop nest; returns ``r``'s strides or None."""
    shape = _shape(r)
    new = []
    for i, *_ in g.members:
        st = _recast(rows[i], shape)
        if st is None:
            return None
        new.append((i, st))
    old = (g.shape, g.members)
    g.shape, g.members = shape, []
    for i, st in new:
        g.add(i, rows[i], st)
    mine = _recast(r, shape)
    if mine is None:
        g.shape, g.members = old
    return mine


def _plan(L, g):
    """The member rows as stored in ``tab``: strides in the common nest, and values
    that die inside the group in scratch slots. Returns (rows, number of slots)."""
    rows, meta = L.rows, L.meta
    last = g.members[-1][0]
    last_eqn = meta[last][1]
    next_eqn = meta[last + 1][1] if last + 1 < len(meta) else None
    out = []
    slot_of = {}                 # member index -> slot (its output lives in scratch)
    writer = []                  # (access, member index) of outputs so far
    n_slots = 0
    for k, (i, st, w, rd) in enumerate(g.members):
        r = rows[i].copy()
        op = int(r[vm.F_OP])
        for f in (_O,) + _READS[op]:
            r[f[1]:f[1] + 4] = st[f]
            r[f[2]] = 0
        for f, acc in zip(_READS[op], rd):   # reads of an earlier member's scratch result
            if f is not _O:
                src = None
                for wacc, m in writer:
                    if wacc.same(acc):
                        src = m
                if src is not None and src in slot_of:
                    r[f[2]] = slot_of[src] + 1
        buf = meta[i][0]
        dies = (op != OP.REDUCE and buf is not None and not buf.pinned
                and buf.dead_at is not None and buf.dead_at <= last_eqn
                and (next_eqn is None or next_eqn > buf.dead_at))
        if dies:
            slot_of[k] = n_slots
            r[_O[2]] = n_slots + 1
            n_slots += 1
        writer = [(a, m) for a, m in writer if not a.same(w[0])] + [(w[0], k)]
        out.append(r)
    return out, n_slots


def _split_axis(shape, members, n_parts):
    """The outermost loop of a FUSED row along which ``n_parts`` parts write disjoint
    elements (every member's workspace output moves along it: no reduction over it and
    no broadcast write), or None."""
    for ax in range(4):
        if shape[ax] < (n_parts * TILE if ax == 3 else n_parts):
            continue
        if all(r[_O[2]] > 0 or r[_O[1] + ax] != 0 for r in members):
            return ax
    return None


def parallel_steps(L, steps, n_threads):
    """``steps`` (the executable's ``("vm", start, end)`` and Python steps) with every
    large FUSED row of ``fuse`` taken out of its machine run into a
    ``("par", row, axis, bounds, scratches)`` step: its loop nest cut into parts along
    one loop, each part run by one of ``n_threads`` threads with its own scratch slots;
    and every large matrix product (:func:`_matmul_parts`) into a
    ``("mm", row, axis, bounds)`` step: its output's rows or columns cut into parts. Each element is
    computed by the same arithmetic as in the whole row, so the results are the same
    bit for bit."""
    plans = {}
    for row, shape, members in getattr(L, "fused", ()):
        size = int(np.prod(shape))
        n_parts = min(n_threads, size // PART_MIN)
        if n_parts < 2:
            continue
        ax = _split_axis(shape, members, n_parts)
        if ax is None:
            continue
        n, unit = shape[ax], (TILE if ax == 3 else 1)
        cuts = [((n // unit) * k // n_parts) * unit for k in range(n_parts)] + [n]
        plans[row] = (ax, tuple(zip(cuts[:-1], cuts[1:])))
    matmuls = _matmul_parts(L, steps, n_threads)
    if not plans and not matmuls:
        return steps
    if plans:
        base = int(L.rows[next(iter(plans))][vm.F_X2])
        scratches = (base,) + tuple(
            L.alloc_.alloc(L.fused_scratch, fresh=True)[0]
            for _ in range(max(len(b) for _, b in plans.values()) - 1))
    out = []
    for step in steps:
        if step[0] != "vm":
            out.append(step)
            continue
        a = step[1]
        for row in sorted(r for r in list(plans) + list(matmuls) if step[1] <= r < step[2]):
            if row > a:
                out.append(("vm", a, row))
            if row in matmuls:
                out.append(("mm", row) + matmuls[row])
            else:
                ax, bounds = plans[row]
                out.append(("par", row, ax, bounds, scratches[:len(bounds)]))
            a = row + 1
        if step[2] > a:
            out.append(("vm", a, step[2]))
    return out


def _matmul_parts(L, steps, n_threads):
    """``{row: (axis, bounds)}`` for the top-level matrix products worth cutting into
    parts: one BLAS product (no batch) with a C-contiguous output, an inner or outer
    extent of at most ``MATMUL_SKINNY``, at least ``MATMUL_PART_MIN`` multiply-adds and
    16 rows (``axis`` 0) or, with fewer rows, 16 columns (``axis`` 1) of output per
    part. Each part calls a one-thread BLAS
    (:mod:`.blas`); none is cut when the BLAS's thread count cannot be set (two
    multi-threaded products at once would fight over the cores)."""
    if n_threads < 2 or not blas.controllable():
        return {}
    rows, found = L.rows, {}
    for start, end in _segments(rows, [(s[1], s[2]) for s in steps if s[0] == "vm"]):
        for i in range(start, end):
            r = rows[i]
            if int(r[vm.F_OP]) != OP.MATMUL or not r[vm.F_X3] or r[vm.F_N0] * r[vm.F_N1] != 1:
                continue
            m, k, n = int(r[vm.F_X0]), int(r[vm.F_X1]), int(r[vm.F_X2])
            if not (r[vm.F_SO3] == 1 and r[vm.F_SO2] == n) or min(k, n) > MATMUL_SKINNY:
                continue
            axis = 0 if m >= 2 * 16 else 1
            n_parts = min(n_threads, (m * k * n) // MATMUL_PART_MIN, (m, n)[axis] // 16)
            if n_parts < 2:
                continue
            size = (m, n)[axis]
            cuts = [size * j // n_parts for j in range(n_parts)] + [size]
            found[i] = (axis, tuple(zip(cuts[:-1], cuts[1:])))
    return found
