"""The machine on the GPU: one CUDA thread per chain runs that chain's program.

A log density over chains is recorded at one chain (``x[:1]``) and lowered as for the
CPU (:mod:`.cpu`, same rows), with its constants in a separate area shared by all
threads. One kernel (:func:`kernel`) interprets the rows; thread ``c`` keeps its
values in the workspace at ``w[offset * C + c]`` (the chains of one value side by
side, so that the threads of a warp read neighbouring addresses), and reads constants
at ``consts[offset - CBASE]``. A whole gradient is thus one kernel launch whatever the
program's size; the per-row work is each chain's own (a matrix product with a data
matrix is a loop per thread, the data read by all threads at once).

The per-chain program is valid only for functions whose chains do not interact; the
compiled function's first calls compare it with the tape on the whole batch (see
:mod:`autodiff.compiler`), so a function that mixes chains falls back instead of being
wrong. The scalar functions are those of the CPU machine (:func:`.vm.compile_scalars`),
compiled for the device. Tested with Numba's CUDA simulator against the CPU machine.
"""
import math

import numpy as np

from . import vm
from .vm import (F_OP, F_N0, F_N1, F_N2, F_N3, F_O, F_SO0, F_SO1, F_SO2, F_SO3, F_A, F_SA0,
                 F_SA1, F_SA2, F_SA3, F_B, F_SB0, F_SB1, F_SB2, F_SB3, F_C, F_SC0, F_SC1,
                 F_SC2, F_SC3, F_X0, F_X1, F_X2, F_LO, F_LA, F_LB, F_LC)

__all__ = ["CBASE", "kernel", "GPUExecutable", "THREADS"]

#: Offsets at or above this one address the shared constant area.
CBASE = 1 << 40
#: Threads per block.
THREADS = 128

_KERNEL = None
cuda = None          # numba.cuda, imported by _build (a module global: the simulator swaps it)


def kernel():
    """The compiled kernel ``(code, w, consts, tab, start, end, n_chains, status)``
    (built on first use: importing this module does not import ``numba.cuda``)."""
    global _KERNEL
    if _KERNEL is None:
        _KERNEL = _build()
    return _KERNEL


def _build():
    global cuda
    from numba import cuda

    dev = cuda.jit(device=True)
    S = vm.compile_scalars(dev)
    un, bn, comb = S["_un"], S["_bin"], S["_combine"]

    @dev
    def ld(w, cs, off, nc, c):
        if off >= CBASE:
            return cs[off - CBASE]
        return w[off * nc + c]

    @dev
    def st(w, off, nc, c, v):
        w[off * nc + c] = v

    @dev
    def elementwise(w, cs, code, pc, nc, c, o, a, b, cc, op):
        f = code[pc, F_X0]
        for i0 in range(code[pc, F_N0]):
            for i1 in range(code[pc, F_N1]):
                for i2 in range(code[pc, F_N2]):
                    for i3 in range(code[pc, F_N3]):
                        oo = (o + i0 * code[pc, F_SO0] + i1 * code[pc, F_SO1]
                              + i2 * code[pc, F_SO2] + i3 * code[pc, F_SO3])
                        aa = (a + i0 * code[pc, F_SA0] + i1 * code[pc, F_SA1]
                              + i2 * code[pc, F_SA2] + i3 * code[pc, F_SA3])
                        x = ld(w, cs, aa, nc, c)
                        if op == 1:
                            v = un(f, x)
                        elif op == 14:
                            v = float(np.float32(x))
                        else:
                            bb = (b + i0 * code[pc, F_SB0] + i1 * code[pc, F_SB1]
                                  + i2 * code[pc, F_SB2] + i3 * code[pc, F_SB3])
                            if op == 2:
                                v = bn(f, x, ld(w, cs, bb, nc, c))
                            elif op == 3:
                                ccc = (cc + i0 * code[pc, F_SC0] + i1 * code[pc, F_SC1]
                                       + i2 * code[pc, F_SC2] + i3 * code[pc, F_SC3])
                                v = ld(w, cs, bb, nc, c) if x != 0.0 else ld(w, cs, ccc, nc, c)
                            elif op == 4:            # REDUCE: combine into the output
                                v = comb(f, ld(w, cs, oo, nc, c), x)
                            else:                    # TRIL_MASK
                                d = i2 - i3
                                v = x if code[pc, F_X0] <= d < code[pc, F_X1] else 0.0
                        st(w, oo, nc, c, v)

    @dev
    def argreduce(w, cs, code, pc, nc, c, o, a):
        kind = code[pc, F_X0]
        for i0 in range(code[pc, F_N0]):
            for i1 in range(code[pc, F_N1]):
                for i2 in range(code[pc, F_N2]):
                    aa = a + i0 * code[pc, F_SA0] + i1 * code[pc, F_SA1] + i2 * code[pc, F_SA2]
                    best, arg = ld(w, cs, aa, nc, c), 0
                    for i3 in range(1, code[pc, F_N3]):
                        if best != best:
                            break
                        x = ld(w, cs, aa + i3 * code[pc, F_SA3], nc, c)
                        if x != x or (x > best if kind == 0 else x < best):
                            best, arg = x, i3
                    st(w, o + i0 * code[pc, F_SO0] + i1 * code[pc, F_SO1]
                       + i2 * code[pc, F_SO2], nc, c, float(arg))

    @dev
    def all_nonzero(w, cs, code, pc, nc, c, a):
        for i0 in range(code[pc, F_N0]):
            for i1 in range(code[pc, F_N1]):
                for i2 in range(code[pc, F_N2]):
                    for i3 in range(code[pc, F_N3]):
                        aa = (a + i0 * code[pc, F_SA0] + i1 * code[pc, F_SA1]
                              + i2 * code[pc, F_SA2] + i3 * code[pc, F_SA3])
                        if ld(w, cs, aa, nc, c) == 0.0:
                            return False
        return True

    @dev
    def scan_axis(w, cs, code, pc, nc, c, o, a):
        kind = code[pc, F_X0]
        for i0 in range(code[pc, F_N0]):
            for i1 in range(code[pc, F_N1]):
                for i2 in range(code[pc, F_N2]):
                    oo = o + i0 * code[pc, F_SO0] + i1 * code[pc, F_SO1] + i2 * code[pc, F_SO2]
                    aa = a + i0 * code[pc, F_SA0] + i1 * code[pc, F_SA1] + i2 * code[pc, F_SA2]
                    acc = ld(w, cs, aa, nc, c)
                    st(w, oo, nc, c, acc)
                    for i3 in range(1, code[pc, F_N3]):
                        acc = comb(kind, acc, ld(w, cs, aa + i3 * code[pc, F_SA3], nc, c))
                        st(w, oo + i3 * code[pc, F_SO3], nc, c, acc)

    @dev
    def matmul(w, cs, code, pc, nc, c, o, a, b):
        m, k, n = code[pc, F_X0], code[pc, F_X1], code[pc, F_X2]
        for i0 in range(code[pc, F_N0]):
            for i1 in range(code[pc, F_N1]):
                oo = o + i0 * code[pc, F_SO0] + i1 * code[pc, F_SO1]
                aa = a + i0 * code[pc, F_SA0] + i1 * code[pc, F_SA1]
                bb = b + i0 * code[pc, F_SB0] + i1 * code[pc, F_SB1]
                for i in range(m):
                    for j in range(n):
                        s = 0.0
                        for kk in range(k):
                            s += (ld(w, cs, aa + i * code[pc, F_SA2] + kk * code[pc, F_SA3], nc, c)
                                  * ld(w, cs, bb + kk * code[pc, F_SB2] + j * code[pc, F_SB3],
                                       nc, c))
                        st(w, oo + i * code[pc, F_SO2] + j * code[pc, F_SO3], nc, c, s)

    @dev
    def gather(w, cs, tab, code, pc, nc, c, o, a, scatter):
        t = code[pc, F_X0]
        for i in range(code[pc, F_N0]):
            if scatter:
                p = o + tab[t + i]
                st(w, p, nc, c, ld(w, cs, p, nc, c) + ld(w, cs, a + i, nc, c))
            else:
                st(w, o + i, nc, c, ld(w, cs, a + tab[t + i], nc, c))

    @dev
    def dynindex(w, cs, code, pc, nc, c, o, a, b, scatter):
        size, stride = code[pc, F_X0], code[pc, F_X1]
        bad = False
        for i0 in range(code[pc, F_N0]):
            for i1 in range(code[pc, F_N1]):
                for i2 in range(code[pc, F_N2]):
                    for i3 in range(code[pc, F_N3]):
                        j = int(ld(w, cs, b + i0 * code[pc, F_SB0] + i1 * code[pc, F_SB1]
                                   + i2 * code[pc, F_SB2] + i3 * code[pc, F_SB3], nc, c))
                        if j < 0:
                            j += size
                        if j < 0 or j >= size:
                            bad = True
                            continue
                        oo = (o + i0 * code[pc, F_SO0] + i1 * code[pc, F_SO1]
                              + i2 * code[pc, F_SO2] + i3 * code[pc, F_SO3])
                        aa = (a + i0 * code[pc, F_SA0] + i1 * code[pc, F_SA1]
                              + i2 * code[pc, F_SA2] + i3 * code[pc, F_SA3])
                        if scatter:
                            p = oo + j * stride
                            st(w, p, nc, c, ld(w, cs, p, nc, c) + ld(w, cs, aa, nc, c))
                        else:
                            st(w, oo, nc, c, ld(w, cs, aa + j * stride, nc, c))
        return bad

    @dev
    def cholesky(w, cs, code, pc, nc, c, o, a):
        nn = code[pc, F_X0]
        sor, soc, sar, sac = code[pc, F_SO2], code[pc, F_SO3], code[pc, F_SA2], code[pc, F_SA3]
        failed = False
        for i0 in range(code[pc, F_N0]):
            for i1 in range(code[pc, F_N1]):
                oo = o + i0 * code[pc, F_SO0] + i1 * code[pc, F_SO1]
                aa = a + i0 * code[pc, F_SA0] + i1 * code[pc, F_SA1]
                ok = True
                for j in range(nn):
                    s = ld(w, cs, aa + j * sar + j * sac, nc, c)
                    for kk in range(j):
                        v = ld(w, cs, oo + j * sor + kk * soc, nc, c)
                        s -= v * v
                    if not s > 0.0:
                        ok = False
                        break
                    d = math.sqrt(s)
                    st(w, oo + j * sor + j * soc, nc, c, d)
                    for i in range(j + 1, nn):
                        s = ld(w, cs, aa + i * sar + j * sac, nc, c)
                        for kk in range(j):
                            s -= (ld(w, cs, oo + i * sor + kk * soc, nc, c)
                                  * ld(w, cs, oo + j * sor + kk * soc, nc, c))
                        st(w, oo + i * sor + j * soc, nc, c, s / d)
                    for i in range(j):
                        st(w, oo + i * sor + j * soc, nc, c, 0.0)
                if not ok:
                    failed = True
                    for i in range(nn):
                        for j in range(nn):
                            st(w, oo + i * sor + j * soc, nc, c, math.nan)
        return failed

    @dev
    def trisolve(w, cs, code, pc, nc, c, o, a, b):
        nn, kk_, lower = code[pc, F_X0], code[pc, F_X1], code[pc, F_X2]
        sor, soc, sar, sac = code[pc, F_SO2], code[pc, F_SO3], code[pc, F_SA2], code[pc, F_SA3]
        sbr, sbc = code[pc, F_SB2], code[pc, F_SB3]
        for i0 in range(code[pc, F_N0]):
            for i1 in range(code[pc, F_N1]):
                oo = o + i0 * code[pc, F_SO0] + i1 * code[pc, F_SO1]
                aa = a + i0 * code[pc, F_SA0] + i1 * code[pc, F_SA1]
                bb = b + i0 * code[pc, F_SB0] + i1 * code[pc, F_SB1]
                for col in range(kk_):
                    for step in range(nn):
                        i = step if lower else nn - 1 - step
                        s = ld(w, cs, bb + i * sbr + col * sbc, nc, c)
                        lo, hi = (0, i) if lower else (i + 1, nn)
                        for j in range(lo, hi):
                            s -= (ld(w, cs, aa + i * sar + j * sac, nc, c)
                                  * ld(w, cs, oo + j * sor + col * soc, nc, c))
                        st(w, oo + i * sor + col * soc, nc, c,
                           s / ld(w, cs, aa + i * sar + i * sac, nc, c))

    @dev
    def gauss(w, cs, code, pc, nc, c, o, a, det, b):
        """Elimination with partial pivoting on a (a per-chain scratch copy): solve into
        o (det False) or log|det| into o and the sign into b (det True)."""
        nn, kk_ = code[pc, F_X0], code[pc, F_X1]
        sar, sac = code[pc, F_SA2], code[pc, F_SA3]
        sor, soc = code[pc, F_SO2], code[pc, F_SO3]
        failed = False
        for i0 in range(code[pc, F_N0]):
            for i1 in range(code[pc, F_N1]):
                oo = o + i0 * code[pc, F_SO0] + i1 * code[pc, F_SO1]
                aa = a + i0 * code[pc, F_SA0] + i1 * code[pc, F_SA1]
                bb = b + i0 * code[pc, F_SB0] + i1 * code[pc, F_SB1]
                sign, logdet, singular = 1.0, 0.0, False
                for j in range(nn):
                    p, best = j, abs(ld(w, cs, aa + j * sar + j * sac, nc, c))
                    for i in range(j + 1, nn):
                        v = abs(ld(w, cs, aa + i * sar + j * sac, nc, c))
                        if v > best:
                            p, best = i, v
                    if not best > 0.0:
                        singular = True
                        break
                    if p != j:
                        sign = -sign
                        for col in range(nn):
                            t1 = ld(w, cs, aa + j * sar + col * sac, nc, c)
                            st(w, aa + j * sar + col * sac, nc, c,
                               ld(w, cs, aa + p * sar + col * sac, nc, c))
                            st(w, aa + p * sar + col * sac, nc, c, t1)
                        if not det:
                            for col in range(kk_):
                                t1 = ld(w, cs, oo + j * sor + col * soc, nc, c)
                                st(w, oo + j * sor + col * soc, nc, c,
                                   ld(w, cs, oo + p * sor + col * soc, nc, c))
                                st(w, oo + p * sor + col * soc, nc, c, t1)
                    d = ld(w, cs, aa + j * sar + j * sac, nc, c)
                    if d < 0.0:
                        sign = -sign
                    logdet += math.log(abs(d))
                    for i in range(j + 1, nn):
                        f = ld(w, cs, aa + i * sar + j * sac, nc, c) / d
                        if f != 0.0:
                            for col in range(j + 1, nn):
                                st(w, aa + i * sar + col * sac, nc, c,
                                   ld(w, cs, aa + i * sar + col * sac, nc, c)
                                   - f * ld(w, cs, aa + j * sar + col * sac, nc, c))
                            if not det:
                                for col in range(kk_):
                                    st(w, oo + i * sor + col * soc, nc, c,
                                       ld(w, cs, oo + i * sor + col * soc, nc, c)
                                       - f * ld(w, cs, oo + j * sor + col * soc, nc, c))
                if det:
                    st(w, oo, nc, c, -math.inf if singular else logdet)
                    st(w, bb, nc, c, 0.0 if singular else sign)
                    continue
                if singular:
                    failed = True
                    for i in range(nn):
                        for col in range(kk_):
                            st(w, oo + i * sor + col * soc, nc, c, math.nan)
                    continue
                for col in range(kk_):
                    for i in range(nn - 1, -1, -1):
                        s = ld(w, cs, oo + i * sor + col * soc, nc, c)
                        for j in range(i + 1, nn):
                            s -= (ld(w, cs, aa + i * sar + j * sac, nc, c)
                                  * ld(w, cs, oo + j * sor + col * soc, nc, c))
                        st(w, oo + i * sor + col * soc, nc, c,
                           s / ld(w, cs, aa + i * sar + i * sac, nc, c))
        return failed

    @cuda.jit(cache=True)
    def run(code, w, cs, tab, start, end, nc, status):
        c = cuda.grid(1)
        if c >= nc:
            return
        pc = start
        l_first, l_end, l_n, t = -1, -1, 0, 0
        while pc < end:
            op = code[pc, F_OP]
            if op == 12:
                l_first, l_end, l_n, t = pc + 1, code[pc, F_X1], code[pc, F_X0], 0
                if l_n == 0:
                    pc = l_end + 1
                    l_first = -1
                else:
                    pc += 1
                continue
            if op == 13:
                t += 1
                if t < l_n:
                    pc = l_first
                else:
                    pc += 1
                    l_first = -1
                continue
            o, a, b, cc = code[pc, F_O], code[pc, F_A], code[pc, F_B], code[pc, F_C]
            if l_first >= 0:
                o += t * code[pc, F_LO]
                a += t * code[pc, F_LA]
                b += t * code[pc, F_LB]
                cc += t * code[pc, F_LC]
            if op == 1 or op == 2 or op == 3 or op == 4 or op == 14 or op == 16:
                elementwise(w, cs, code, pc, nc, c, o, a, b, cc, op)
            elif op == 5:
                matmul(w, cs, code, pc, nc, c, o, a, b)
            elif op == 6:
                gather(w, cs, tab, code, pc, nc, c, o, a, False)
            elif op == 7:
                gather(w, cs, tab, code, pc, nc, c, o, a, True)
            elif op == 8:
                scan_axis(w, cs, code, pc, nc, c, o, a)
            elif op == 9:
                if cholesky(w, cs, code, pc, nc, c, o, a) and code[pc, F_X1]:
                    status[c] = pc + 1
                    return
            elif op == 10:
                trisolve(w, cs, code, pc, nc, c, o, a, b)
            elif op == 11:
                if not all_nonzero(w, cs, code, pc, nc, c, a):
                    status[c] = pc + 1
                    return
            elif op == 15:
                if dynindex(w, cs, code, pc, nc, c, o, a, b, False):
                    status[c] = pc + 1
                    return
            elif op == 17:
                if gauss(w, cs, code, pc, nc, c, o, a, False, b) and code[pc, F_X2]:
                    status[c] = pc + 1
                    return
            elif op == 18:
                gauss(w, cs, code, pc, nc, c, o, a, True, b)
            elif op == 19:
                argreduce(w, cs, code, pc, nc, c, o, a)
            elif op == 20:
                if dynindex(w, cs, code, pc, nc, c, o, a, b, True):
                    status[c] = pc + 1
                    return
            pc += 1
    return run


class GPUExecutable:
    """A per-chain program lowered for the GPU: ``exe(x, *shared)`` with ``x`` of shape
    ``[C, ...]`` (the chain axis first) returns the outputs for all ``C`` chains.

    Parameters
    ----------
    prog : Program
        Recorded at one chain: its first input has a leading axis of size 1, and so
        have its outputs that depend on it.
    L : Lowering
        The lowering (constants at ``CBASE`` and above).
    in_views, out_views
        From the lowering; the first input is per chain, the other inputs (and the
        referenced Tensors) are shared by all chains and written to the constant area.
    """

    def __init__(self, prog, L, in_views, out_views):
        self.prog = prog
        self.dtype = L.dtype
        self.code = np.ascontiguousarray(np.array(L.rows, dtype=np.int64).reshape(-1, vm.W))
        self.tab = np.concatenate(L.tabs) if L.tabs else np.zeros(1, np.int64)
        self.per_chain = L.alloc_.top + 8
        self.consts = np.zeros(L.const_top + 8, dtype=L.dtype)
        for off, vals in L.consts:
            self.consts[off - CBASE:off - CBASE + vals.size] = vals
        self.in_views, self.out_views = in_views, out_views
        self._dev = {}                     # array module -> (code, consts, tab) on it
        self._work = {}                    # (module, C) -> (workspace, status)

    def __call__(self, x, *shared):
        xp = _module(x)
        c = x.shape[0]
        code, consts, tab = self._arrays(xp)
        w, status = self._workspace(xp, c)
        for v, a in zip(self.in_views[1:], shared):
            _write_const(consts, v, xp.asarray(a, dtype=self.dtype))
        v0 = self.in_views[0]
        n = v0.size
        w[v0.off * c:(v0.off + n) * c] = xp.ascontiguousarray(
            x.reshape(c, n).T, dtype=self.dtype).reshape(-1)
        status[:] = 0
        tpb = min(THREADS, max(c, 1))
        kernel()[(c + tpb - 1) // tpb, tpb](code, w, consts, tab, 0, len(self.code), c, status)
        bad = int(status.max()) if c else 0
        if bad:
            from .cpu import _Check
            raise _Check(bad - 1)
        outs = []
        for v, dt in self.out_views:
            if dt is None:
                outs.append(v)
                continue
            n = v.size
            per = w[v.off * c:(v.off + n) * c].reshape(n, c).T
            outs.append(xp.ascontiguousarray(per.reshape((c,) + tuple(v.shape[1:]))).astype(
                dt, copy=False))
        return tuple(outs)

    def _arrays(self, xp):
        got = self._dev.get(xp)
        if got is None:
            got = self._dev[xp] = (xp.asarray(self.code), xp.asarray(self.consts),
                                   xp.asarray(self.tab))
        return got

    def _workspace(self, xp, c):
        got = self._work.get((xp, c))
        if got is None:
            got = self._work[(xp, c)] = (xp.zeros(self.per_chain * c, dtype=self.dtype),
                                         xp.zeros(c, dtype=np.int64))
        return got


def _module(x):
    if type(x).__module__.startswith("cupy"):
        import cupy
        return cupy
    return np


def _write_const(consts, v, a):
    n = v.size
    start = v.off - CBASE
    consts[start:start + n] = a.reshape(-1)
