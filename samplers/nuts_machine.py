"""A whole NUTS transition in one Numba call, the log density run by the compiled machine.

When the log density is compiled (:func:`autodiff.compile`, the samplers' default) into
one run of the machine of :mod:`autodiff.lower.vm`, the transition of
:meth:`samplers.nuts.NUTS._step_numba` needs no Python at all between leapfrog steps:
:func:`transition` writes the positions into the program's workspace, runs the machine
(an ``njit`` function, callable from another), reads the log density and gradient back,
and does the tree bookkeeping with the same helpers (``_nb_begin``, ``_nb_leaf``,
``_nb_merge``). The random stream is the same (Numba's ``Generator`` methods consume a
NumPy ``Generator``'s bit generator exactly as NumPy does), so the transition is the
Python-driven one, number for number; only the per-leapfrog interpreter overhead (about
20 µs for 4 chains) is gone. This is nutpie's arrangement (a compiled log density
called by a compiled sampler), with the tree shared across batched chains.

A machine run that stops (a failed check, an index out of range) makes :func:`transition`
return early; the caller restores the generator and redoes the transition in Python,
where the compiled function hands the call to the tape (which raises the proper error).
"""
import autodiff._jitcache  # noqa: F401,I001  (Numba's cache keyed by the whole package)
import numba
import numpy as np
from autodiff.lower.vm import run as _vm_run

from .kernels.cpu import _kick_drift_dense_serial, _kick_drift_diag_serial
from .nuts import _nb_begin, _nb_leaf, _nb_merge, _tree_buffers

__all__ = ["transition", "machine_of"]

_jit = numba.njit(cache=True, nogil=True)


def machine_of(logdensity, q):
    """The compiled machine computing ``logdensity`` at positions shaped like ``q``, as
    ``(code, w, tab, gemm, start, end, in_off, lp_off, g_off)``, or None when it is not one
    machine run (not compiled yet or not verified, Python steps, another device...)."""
    f = getattr(logdensity, "logdensity", None)
    fast = getattr(f, "_fast", None)
    if fast is None or fast[2] != 0 or fast[0] != q.shape or fast[1] != q.dtype:
        return None
    return fast[4].machine()


@_jit
def _gradient(code, w, tab, gemm, start, end, in_off, lp_off, g_off, q, lp, g):
    """Log density and gradient at ``q`` by one machine run; returns its status."""
    c, d = q.shape
    for i in range(c):
        for j in range(d):
            w[in_off + i * d + j] = q[i, j]
    status = _vm_run(code, w, tab, gemm, start, end)
    for i in range(c):
        lp[i] = w[lp_off + i]
        for j in range(d):
            g[i, j] = w[g_off + i * d + j]
    return status


@_jit
def transition(rng, machine, q0, lp0, g0, p0, eps0, inv, inv_kd, dense, max_depth, thr,
               kick, k0, a0):
    """One NUTS transition of every chain (see :meth:`NUTS._step_numba`, which this
    repeats step for step). ``inv`` is the inverse mass as ``[1, D]`` (diagonal) or
    ``[D, D]``, ``inv_kd`` what the kick-drift kernel takes (its transpose, dense; the
    ``[1, D]`` row, diagonal); ``p0`` the momenta drawn by the caller.

    Returns
    -------
    status : int
        0, or the machine's status (nothing else is meaningful then).
    s_q, s_lp, s_g, s_h, sum_metro, n_leap, divergent, depth
    """
    code, w, tab, gemm, start, end, in_off, lp_off, g_off = machine
    c, d = q0.shape
    kmax = max_depth + 1
    ps0 = np.empty_like(q0)
    h0 = np.empty(c, dtype=lp0.dtype)
    for i in range(c):
        kin = 0.0
        for a in range(d):
            if dense:
                s = 0.0
                for b in range(d):
                    s += inv[a, b] * p0[i, b]
                ps0[i, a] = s
            else:
                ps0[i, a] = inv[0, a] * p0[i, a]
            kin += p0[i, a] * ps0[i, a]
        h0[i] = 0.5 * kin - lp0[i]
    (lq, rq, lp_, rp, lg, rg, llp, rlp, lps, rps, rho, s_q, s_g, s_lp, s_h, log_w, depth,
     n_leap, sum_metro, divergent, running, q, p, g, lp, eps, active, cum, log_w_sub,
     sub_q, sub_g, sub_lp, sub_h, prev_p, prev_ps, st_p, st_ps, st_cum, pv_p, pv_ps,
     scratch) = _tree_buffers(q0, lp0, g0, p0, ps0, h0, kmax)
    ones = np.ones(1)
    status = 0
    for j in range(max_depth):
        fwd = rng.random(c) > 0.5
        _nb_begin(fwd, running, eps0, lq, lp_, lg, llp, lps, rq, rp, rg, rlp, rps,
                  q, p, g, lp, prev_p, prev_ps, eps, active, cum, log_w_sub)
        n_steps = 1 << j
        for n in range(n_steps):
            # levels whose block starts (top) / ends (last) at step n
            top = j if n == 0 else _trailing_zeros(n)
            last = min(_trailing_zeros(n + 1), j)
            if dense:
                _kick_drift_dense_serial(q, p, g, inv_kd, eps, k0, a0)
            else:
                _kick_drift_diag_serial(q, p, g, inv_kd[0], eps, k0, a0)
            status = _gradient(code, w, tab, gemm, start, end, in_off, lp_off, g_off, q, lp, g)
            if status:
                return status, s_q, s_lp, s_g, s_h, sum_metro, n_leap, divergent, depth
            u = rng.random(c) if n else ones
            n_active = _nb_leaf(n, top, last, q, p, g, lp, inv, dense, h0, thr, u, active,
                                eps, kick, sub_q, sub_g, sub_lp, sub_h, log_w_sub, n_leap,
                                sum_metro, divergent, cum, st_p, st_ps, st_cum, pv_p, pv_ps,
                                prev_p, prev_ps, scratch)
            if n_active == 0 and n + 1 < n_steps:
                break
        u = rng.random(c)
        n_running = _nb_merge(j, u, fwd, running, active, q, g, lp, prev_p, prev_ps,
                              sub_q, sub_g, sub_lp, sub_h, log_w_sub, log_w, s_q, s_g, s_lp,
                              s_h, depth, rho, cum, st_p, st_ps, pv_p, pv_ps,
                              lq, lp_, lg, llp, lps, rq, rp, rg, rlp, rps)
        if n_running == 0:
            break
    return status, s_q, s_lp, s_g, s_h, sum_metro, n_leap, divergent, depth


@_jit
def _trailing_zeros(n):
    k = 0
    while n & 1 == 0:
        n >>= 1
        k += 1
    return k
