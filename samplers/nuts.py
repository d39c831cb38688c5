"""The No-U-Turn Sampler, batched over chains, with an iterative tree build.

The transition is Stan's (Stan Reference Manual, "Hamiltonian Monte Carlo
sampling"; Hoffman & Gelman 2014, "The No-U-Turn Sampler", JMLR 15;
Betancourt 2017, "A conceptual introduction to Hamiltonian Monte Carlo",
arXiv:1701.02434, appendix A):

* the trajectory doubles in a random direction until the generalized
  no-U-turn criterion ``p_sharp(-) . rho > 0 and p_sharp(+) . rho > 0``
  fails, with ``rho`` the sum of momenta over a (sub)tree and ``p_sharp =
  M^{-1} p`` at its two ends;
* as in Stan since 2.26, each merge of two subtrees also checks the left
  subtree extended by the first point of the right one, and the right
  subtree extended by the last point of the left one;
* points are weighted by ``exp(H_0 - H)``: multinomial sampling, uniform
  (unbiased) within a new subtree and biased progressive at the top level
  (the new subtree's proposal replaces the current sample with probability
  ``min(1, W_new / W_old)``);
* an energy error above 1000 marks the transition divergent and stops the
  chain's trajectory; the subtree in progress is then discarded, as is one
  that fails the criterion internally.

Iteration instead of recursion (anti-pattern E): a subtree of ``2^j`` steps
is built one leapfrog at a time. When step ``n`` (0-based) ends a block of
``2^k`` points (``(n + 1) % 2^k == 0``) the block is the merge of two halves,
and the three checks need the block's start (momentum, ``p_sharp`` and the
running momentum sum before it), the right half's start, and the point just
before the right half. Those are kept per level ``k`` (the array path
keeps references to per-step arrays that are never modified afterwards; the
Numba path copies rows into ``[depth + 1, C, D]`` buffers). Uniform multinomial sampling within a subtree is done
progressively (replace the proposal by point ``n`` with probability ``w_n /
sum_{i<=n} w_i``), which gives every point of a completed subtree the same
selection probability ``w_i / W`` as Stan's recursive merges.

Across chains: every chain builds its own tree, but all chains take their
``n``-th leapfrog in the same batched call. A chain whose trajectory is
finished, or whose current subtree became invalid, gets step size 0 and
waits; the loop over doublings ends when no chain is extending.

Two implementations of that bookkeeping, which make the same transition from
the same random stream (tested): for NumPy arrays, three small Numba loops
over chains (start of a doubling, one tree node, merge into the trajectory),
so a leapfrog costs one kernel call, one batched gradient call and one
bookkeeping call whatever the number of chains; for other array modules
(CuPy), whole-array operations (:meth:`NUTS._step_array`). Both were checked
against a recursive transcription of Stan's ``build_tree`` (tree depth,
leapfrog count, acceptance statistic and divergence agree exactly).

Note on the between-subtree checks at the top level: the left part is the
old trajectory and its point adjacent to the new subtree is the end the
subtree grew from. (Stan's ``base_nuts.hpp``, as we read it, sets
``p_bck_fwd = p_fwd_bck`` there: the first point of the previous forward
subtree, which after two or more doublings in one direction is an interior
point of the old trajectory. Using the adjacent end keeps the criterion a
function of the final binary tree alone, which reversibility needs; the
checks inside subtrees are Stan's exactly.)
"""
import autodiff._jitcache  # noqa: F401,I001  (Numba's cache keyed by the whole package)
import numba
import numpy as np

from autodiff._jitcache import first_call
from .base import NUTSInfo, HMCState, array_module, draw_momentum, velocity
from .hmc import DIVERGENCE_THRESHOLD, GradientKernel
from .integrators import integrate
from .kernels import cpu as cpu_kernels
from .kernels.cpu import _kick_row

__all__ = ["NUTS"]


def _dot(a, b):
    """Row-wise dot products ``[C]`` of ``[C, D]`` arrays (one ufunc call in NumPy 2)."""
    if type(a) is np.ndarray:
        return np.vecdot(a, b)
    return (a * b).sum(axis=1)


def _criterion(ps_minus, ps_plus, rho):
    """Generalized no-U-turn criterion, ``[C]`` bool: True while not turning."""
    return (_dot(ps_minus, rho) > 0) & (_dot(ps_plus, rho) > 0)


def _merge_ok(ps_first, ps_last, rho, ps_left_first, p_right_first, ps_right_first,
              rho_left, p_left_last, ps_left_last, rho_right):
    """All three checks of a merge of a left and a right subtree (Stan >= 2.26)."""
    ok = _criterion(ps_first, ps_last, rho)
    ok &= _criterion(ps_left_first, ps_right_first, rho_left + p_right_first)
    ok &= _criterion(ps_left_last, ps_last, rho_right + p_left_last)
    return ok


# ----------------------------------------------------------------- Numba path
# The same bookkeeping as NUTS._step_array, one loop over chains per call; a
# chain that is not extending is skipped. The diagonal inverse mass comes as a
# [1, D] view so that both metrics type-check in one function.
_ONES_STUB = np.ones(1)
_LEVELS = {}


def _levels(j):
    """Per step ``n`` of a ``2^j`` subtree: ``(n, top, last)``.

    ``top``: the highest level whose block starts at ``n`` (all levels at 0);
    ``last``: the highest level whose block ends at ``n``.
    """
    out = _LEVELS.get(j)
    if out is None:
        out = _LEVELS[j] = tuple(
            (n, j if n == 0 else (n & -n).bit_length() - 1,
             min(((n + 1) & -(n + 1)).bit_length() - 1, j)) for n in range(1 << j))
    return out
_jit = numba.njit(cache=True, nogil=True, fastmath=False)


@_jit
def _nb_velocity(p, c, inv, dense, out):
    d_ = p.shape[1]
    if dense:
        for i in range(d_):
            s = 0.0
            for k in range(d_):
                s += inv[i, k] * p[c, k]
            out[i] = s
    else:
        for i in range(d_):
            out[i] = inv[0, i] * p[c, i]


@_jit
def _nb_logaddexp(a, b):
    m = max(a, b)
    if m == -np.inf:
        return -np.inf
    return m + np.log(np.exp(a - m) + np.exp(b - m))


@_jit
def _nb_begin(fwd, running, eps0, lq, lp_, lg, llp, lps, rq, rp, rg, rlp, rps,
              q, p, g, lp, prev_p, prev_ps, eps, active, cum, log_w_sub):
    for c in range(q.shape[0]):
        if fwd[c]:
            q[c], p[c], g[c], lp[c] = rq[c], rp[c], rg[c], rlp[c]
            prev_p[c], prev_ps[c] = rp[c], rps[c]
            e = eps0[c]
        else:
            q[c], p[c], g[c], lp[c] = lq[c], lp_[c], lg[c], llp[c]
            prev_p[c], prev_ps[c] = lp_[c], lps[c]
            e = -eps0[c]
        eps[c] = e if running[c] else 0.0
        active[c] = running[c]
        cum[c] = 0.0
        log_w_sub[c] = -np.inf


@_jit
def _nb_leaf(n, top, last, q, p, g, lp, inv, dense, h0, thr, u, active, eps, kick,
             sub_q, sub_g, sub_lp, sub_h, log_w_sub, n_leap, sum_metro, divergent,
             cum, st_p, st_ps, st_cum, pv_p, pv_ps, prev_p, prev_ps, ps):
    n_active = 0
    d_ = q.shape[1]
    for c in range(q.shape[0]):
        if not active[c]:
            continue
        _kick_row(p, g, kick * eps[c], c)       # the leapfrog's final half-kick
        _nb_velocity(p, c, inv, dense, ps)
        kin = 0.0
        for i in range(d_):
            kin += p[c, i] * ps[i]
        h = 0.5 * kin - lp[c]
        if h != h:
            h = np.inf
        w = h0[c] - h
        n_leap[c] += 1
        div = h - h0[c] > thr
        if div:
            divergent[c] = True
        sum_metro[c] += 1.0 if w > 0 else np.exp(w)
        new_lws = _nb_logaddexp(log_w_sub[c], w)
        if n == 0 or u[c] < np.exp(w - new_lws):
            sub_q[c] = q[c]
            sub_g[c] = g[c]
            sub_lp[c] = lp[c]
            sub_h[c] = h
        log_w_sub[c] = new_lws
        for k in range(top + 1):
            for i in range(d_):
                st_p[k, c, i] = p[c, i]
                st_ps[k, c, i] = ps[i]
                st_cum[k, c, i] = cum[c, i]
                pv_p[k, c, i] = prev_p[c, i]
                pv_ps[k, c, i] = prev_ps[c, i]
        for i in range(d_):
            cum[c, i] += p[c, i]
        ok = not div
        for k in range(1, last + 1):
            if not ok:
                break
            a1 = a2 = b1 = b2 = c1 = c2 = 0.0
            for i in range(d_):
                rw = cum[c, i] - st_cum[k, c, i]                       # whole block
                rl = st_cum[k - 1, c, i] - st_cum[k, c, i] + st_p[k - 1, c, i]
                rr = cum[c, i] - st_cum[k - 1, c, i] + pv_p[k - 1, c, i]
                a1 += st_ps[k, c, i] * rw
                a2 += ps[i] * rw
                b1 += st_ps[k, c, i] * rl
                b2 += st_ps[k - 1, c, i] * rl
                c1 += pv_ps[k - 1, c, i] * rr
                c2 += ps[i] * rr
            ok = a1 > 0 and a2 > 0 and b1 > 0 and b2 > 0 and c1 > 0 and c2 > 0
        if ok:
            n_active += 1
        else:
            active[c] = False
            eps[c] = 0.0
        for i in range(d_):
            prev_p[c, i] = p[c, i]
            prev_ps[c, i] = ps[i]
    return n_active


@_jit
def _nb_merge(j, u, fwd, running, active, q, g, lp, p_last, ps_last,
              sub_q, sub_g, sub_lp, sub_h, log_w_sub, log_w, s_q, s_g, s_lp, s_h, depth,
              rho, cum, st_p, st_ps, pv_p, pv_ps, lq, lp_, lg, llp, lps, rq, rp, rg, rlp, rps):
    n_running = 0
    d_ = q.shape[1]
    for c in range(q.shape[0]):
        if not running[c]:
            continue
        if not active[c]:                  # subtree diverged or turned: stop here
            running[c] = False
            continue
        if u[c] < np.exp(log_w_sub[c] - log_w[c]):
            s_q[c] = sub_q[c]
            s_g[c] = sub_g[c]
            s_lp[c] = sub_lp[c]
            s_h[c] = sub_h[c]
        log_w[c] = _nb_logaddexp(log_w[c], log_w_sub[c])
        depth[c] += 1
        far = lps if fwd[c] else rps
        a1 = a2 = b1 = b2 = c1 = c2 = 0.0
        for i in range(d_):
            rw = rho[c, i] + cum[c, i]
            rl = rho[c, i] + st_p[j, c, i]
            rr = cum[c, i] + pv_p[j, c, i]
            a1 += far[c, i] * rw
            a2 += ps_last[c, i] * rw
            b1 += far[c, i] * rl
            b2 += st_ps[j, c, i] * rl
            c1 += pv_ps[j, c, i] * rr
            c2 += ps_last[c, i] * rr
            rho[c, i] = rw
        if fwd[c]:
            rq[c], rp[c], rg[c], rlp[c], rps[c] = q[c], p_last[c], g[c], lp[c], ps_last[c]
        else:
            lq[c], lp_[c], lg[c], llp[c], lps[c] = q[c], p_last[c], g[c], lp[c], ps_last[c]
        ok = a1 > 0 and a2 > 0 and b1 > 0 and b2 > 0 and c1 > 0 and c2 > 0
        running[c] = ok
        if ok:
            n_running += 1
    return n_running


@_jit
def _tree_buffers(q0, lp0, g0, p0, ps0, h0, kmax):
    """The arrays of one transition: trajectory ends (l backward, r forward), the
    current sample, trajectory sums, then the subtree's state and the per-level block
    starts (shared by the Python-driven transition and samplers.nuts_machine)."""
    c, d = q0.shape
    dt = q0.dtype
    return (q0.copy(), q0.copy(), p0.copy(), p0.copy(), g0.copy(), g0.copy(), lp0.copy(),
            lp0.copy(), ps0.copy(), ps0.copy(), p0.copy(), q0.copy(), g0.copy(), lp0.copy(),
            h0.copy(), np.zeros(c), np.zeros(c, dtype=np.int64), np.zeros(c, dtype=np.int64),
            np.zeros(c), np.zeros(c, dtype=np.bool_), np.ones(c, dtype=np.bool_),
            np.empty_like(q0), np.empty_like(q0), np.empty_like(q0),
            np.empty(c, dtype=lp0.dtype), np.empty(c, dtype=dt), np.empty(c, dtype=np.bool_),
            np.empty((c, d), dtype=dt), np.empty(c), np.empty_like(q0), np.empty_like(q0),
            np.empty(c, dtype=lp0.dtype), np.empty(c, dtype=h0.dtype), np.empty_like(q0),
            np.empty_like(q0), np.empty((kmax, c, d), dtype=dt),
            np.empty((kmax, c, d), dtype=dt), np.empty((kmax, c, d), dtype=dt),
            np.empty((kmax, c, d), dtype=dt), np.empty((kmax, c, d), dtype=dt),
            np.empty(d, dtype=dt))


class NUTS(GradientKernel):
    """No-U-Turn Sampler with multinomial sampling (Stan's algorithm), batched over chains.

    Parameters
    ----------
    logdensity : callable
        ``logdensity(position [C, D]) -> [C]``.
    step_size : float or array, shape [C]
        Integrator step size (shared or per chain).
    inverse_mass : None or array, shape [D] or [D, D]
        Inverse mass matrix (identity when None).
    max_tree_depth : int
        Maximum number of doublings (at most ``2^max_tree_depth - 1``
        integrator steps per transition); 10 as in Stan.
    integrator : str or Integrator
        One integrator step per tree node (``"velocity_verlet"`` default).
    grad_fn : callable, optional
        ``grad_fn(position [C, D]) -> [C, D]`` instead of autodiff.
    divergence_threshold : float
        Energy error that stops a trajectory as divergent (1000).
    compile : bool
        Compile the log density (:func:`autodiff.compile`, the default); False runs it
        on the tape.
    """

    def __init__(self, logdensity, step_size, inverse_mass=None, max_tree_depth=10,
                 integrator="velocity_verlet", *, grad_fn=None,
                 divergence_threshold=DIVERGENCE_THRESHOLD, compile=True):
        super().__init__(logdensity, step_size, inverse_mass, integrator, grad_fn=grad_fn,
                         divergence_threshold=divergence_threshold, compile=compile)
        if int(max_tree_depth) != max_tree_depth or not 1 <= max_tree_depth <= 30:
            raise ValueError("max_tree_depth: expected an integer in [1, 30], got "
                             f"{max_tree_depth!r}")
        self.max_tree_depth = int(max_tree_depth)

    def step(self, state, rng, params=None):
        """One NUTS transition of every chain.

        Parameters
        ----------
        state : HMCState
            Positions ``[C, D]``, log densities ``[C]``, gradients ``[C, D]``.
        rng : numpy.random.Generator or cupy.random.Generator
        params : KernelParams, optional
            Step sizes and mass; default ``self.params(state.position)``.

        Returns
        -------
        HMCState
            The selected points.
        NUTSInfo
            Per-chain mean acceptance probability, divergence, energy,
            gradient evaluations, tree depth and initial momentum.
        """
        if params is None:
            params = self.params(state.position)
        with np.errstate(invalid="ignore", over="ignore", divide="ignore", under="ignore"):
            if type(state.position) is np.ndarray:
                return self._step_numba(state, rng, params)
            return self._step_array(state, rng, params)

    def _step_numba(self, state, rng, params=None):
        """CPU path: the per-leapfrog and per-doubling bookkeeping in Numba.

        Consumes the random stream exactly as :meth:`_step_array` does, so both
        give the same transition (to rounding); the test suite checks this.
        """
        q0, lp0, g0 = state
        eps0, inv, msqrt = (params or self.params(q0))[:3]
        ld, integ, thr = self.logdensity, self.integrator, self.divergence_threshold
        c, d = q0.shape
        dtype = q0.dtype
        dense = inv.ndim == 2
        inv2 = inv if dense else inv[None, :]
        kmax = self.max_tree_depth + 1
        # Velocity Verlet on a serial-size batch: call its kick-drift kernel directly
        # (what integrate() would dispatch to, minus ~2 us of Python per leapfrog)
        direct = integ.n_stages == 1 and not cpu_kernels._use_parallel(q0)
        if direct:
            kd = (cpu_kernels._kick_drift_dense_serial if dense
                  else cpu_kernels._kick_drift_diag_serial)
            inv_kd = np.ascontiguousarray(inv.T) if dense else inv
            k0, a0 = dtype.type(integ.coefficients[0]), dtype.type(integ.coefficients[1])
            kick = dtype.type(integ.coefficients[-1])
            out = self._step_machine(q0, lp0, g0, msqrt, eps0, inv2,
                                     inv_kd if dense else inv2, dense, kick, k0, a0, rng)
            if out is not None:
                return out

        p0 = draw_momentum(rng, q0, msqrt)
        ps0 = velocity(p0, inv)
        h0 = 0.5 * _dot(p0, ps0) - lp0
        (lq, rq, lp_, rp, lg, rg, llp, rlp, lps, rps, rho, s_q, s_g, s_lp, s_h, log_w, depth,
         n_leap, sum_metro, divergent, running, q, p, g, lp, eps, active, cum, log_w_sub,
         sub_q, sub_g, sub_lp, sub_h, prev_p, prev_ps, st_p, st_ps, st_cum, pv_p, pv_ps,
         scratch) = _tree_buffers(q0, lp0, g0, p0, ps0, h0, kmax)
        kick = dtype.type(integ.coefficients[-1])     # the final half-kick, in q's dtype

        for j in range(self.max_tree_depth):
            fwd = rng.random(c) > 0.5
            _nb_begin(fwd, running, eps0, lq, lp_, lg, llp, lps, rq, rp, rg, rlp, rps,
                      q, p, g, lp, prev_p, prev_ps, eps, active, cum, log_w_sub)
            for n, top, last in _levels(j):
                if direct:
                    kd(q, p, g, inv_kd, eps, k0, a0)
                    lp, g = ld(q)
                else:
                    q, p, g, lp = integrate(q, p, g, lp, ld, inv, eps, 1, integ,
                                            final_kick=False)
                u = rng.random(c) if n else _ONES_STUB
                n_active = _nb_leaf(n, top, last, q, p, g, lp, inv2, dense, h0, thr, u, active,
                                    eps, kick, sub_q, sub_g, sub_lp, sub_h, log_w_sub, n_leap,
                                    sum_metro, divergent, cum, st_p, st_ps, st_cum, pv_p, pv_ps,
                                    prev_p, prev_ps, scratch)
                if n_active == 0 and n + 1 < (1 << j):
                    break
            u = rng.random(c)
            n_running = _nb_merge(j, u, fwd, running, active, q, g, lp, prev_p, prev_ps,
                                  sub_q, sub_g, sub_lp, sub_h, log_w_sub, log_w, s_q, s_g, s_lp,
                                  s_h, depth, rho, cum, st_p, st_ps, pv_p, pv_ps,
                                  lq, lp_, lg, llp, lps, rq, rp, rg, rlp, rps)
            if n_running == 0:
                break

        accept = sum_metro / np.maximum(n_leap, 1)
        info = NUTSInfo(accept, divergent, s_h, n_leap * integ.n_stages, depth, p0)
        return HMCState(s_q, s_lp, s_g), info

    def _step_machine(self, q0, lp0, g0, msqrt, eps0, inv2, inv_kd, dense, kick, k0, a0,
                      rng):
        """The whole transition in one Numba call when the log density is one compiled
        machine run (see :mod:`samplers.nuts_machine`); None when it is not, or when the
        machine stopped (the generator is then restored for the Python path)."""
        if not isinstance(rng, np.random.Generator) or \
                getattr(self.logdensity, "grad_fn", None) is not None:
            return None
        from . import nuts_machine
        machine = nuts_machine.machine_of(self.logdensity, q0)
        if machine is None:
            return None
        saved = rng.bit_generator.state
        p0 = draw_momentum(rng, q0, msqrt)
        args = (rng, machine, q0, lp0, g0, p0, eps0, inv2, inv_kd, dense,
                self.max_tree_depth, self.divergence_threshold, kick, k0, a0)
        # the first call in this process may compile it
        status, s_q, s_lp, s_g, s_h, sum_metro, n_leap, divergent, depth = \
            first_call("the NUTS transition", nuts_machine.transition, *args)
        if status:
            rng.bit_generator.state = saved
            return None
        accept = sum_metro / np.maximum(n_leap, 1)
        info = NUTSInfo(accept, divergent, s_h, n_leap * self.integrator.n_stages, depth, p0)
        return HMCState(s_q, s_lp, s_g), info

    def _step_array(self, state, rng, params=None):
        """Array path (NumPy or CuPy): whole-array operations over chains."""
        q0, lp0, g0 = state
        eps0, inv, msqrt = (params or self.params(q0))[:3]
        xp = array_module(q0)
        ld, integ, thr = self.logdensity, self.integrator, self.divergence_threshold
        c, dtype = q0.shape[0], q0.dtype
        inf = xp.inf

        p0 = draw_momentum(rng, q0, msqrt)
        ps0 = velocity(p0, inv)
        h0 = 0.5 * _dot(p0, ps0) - lp0

        # Trajectory ends: "l" grown backward in time, "r" forward.
        lq = rq = q0
        lp_ = rp = p0
        lg = rg = g0
        llp = rlp = lp0
        lps = rps = ps0
        rho = p0
        # Current sample (biased progressive sampling at the top level).
        s_q, s_lp, s_g, s_h = q0, lp0, g0, h0
        log_w = xp.zeros(c, dtype=dtype)            # log sum of weights, exp(H0 - H0) = 1
        depth = xp.zeros(c, dtype=np.int64)
        n_leap = xp.zeros(c, dtype=np.int64)
        sum_metro = xp.zeros(c, dtype=dtype)
        divergent = xp.zeros(c, dtype=bool)
        running = xp.ones(c, dtype=bool)
        zero = xp.zeros(c, dtype=dtype)

        for j in range(self.max_tree_depth):
            fwd = rng.random(c) > 0.5
            f2 = fwd[:, None]
            q = xp.where(f2, rq, lq)
            prev_p = xp.where(f2, rp, lp_)
            p = prev_p.copy()                       # moved in place by the integrator
            g = xp.where(f2, rg, lg)
            lp = xp.where(fwd, rlp, llp)
            prev_ps = xp.where(f2, rps, lps)
            far_ps = xp.where(f2, lps, rps)
            eps = xp.where(running, xp.where(fwd, eps0, -eps0), zero)
            active = running
            cum = xp.zeros_like(q0)                 # momentum sum over the subtree so far
            log_w_sub = xp.full(c, -inf, dtype=dtype)
            sub_q = sub_g = None
            sub_lp = sub_h = None
            # Per level k: start (p, p_sharp, momentum sum before it) of the open
            # block of 2^k points, and the point before that start.
            st_p = [None] * (j + 1)
            st_ps = [None] * (j + 1)
            st_cum = [None] * (j + 1)
            pv_p = [None] * (j + 1)
            pv_ps = [None] * (j + 1)

            for n in range(1 << j):
                q, p, g, lp = integrate(q, p, g, lp, ld, inv, eps, 1, integ)
                p_n = p.copy()                      # p is moved in place by the next step
                ps = velocity(p_n, inv)
                h = 0.5 * _dot(p_n, ps) - lp
                h = xp.where(h == h, h, inf)        # NaN energy -> infinitely bad
                w = h0 - h                          # log weight of this point
                n_leap += active
                div_now = active & (h - h0 > thr)
                divergent |= div_now
                sum_metro += xp.where(active, xp.exp(xp.minimum(w, 0.0)), 0.0)
                # Progressive uniform multinomial sampling inside the subtree.
                new_lws = xp.logaddexp(log_w_sub, w)
                if n == 0:
                    take = active
                    sub_q, sub_g, sub_lp, sub_h = q.copy(), g, lp, h
                else:
                    take = active & (rng.random(c) < xp.exp(w - new_lws))
                    t2 = take[:, None]
                    sub_q = xp.where(t2, q, sub_q)
                    sub_g = xp.where(t2, g, sub_g)
                    sub_lp = xp.where(take, lp, sub_lp)
                    sub_h = xp.where(take, h, sub_h)
                log_w_sub = xp.where(active, new_lws, log_w_sub)
                cum_before = cum
                cum = cum + p_n
                # Record block starts at every level k with n % 2^k == 0.
                top = j if n == 0 else (n & -n).bit_length() - 1
                for k in range(top + 1):
                    st_p[k], st_ps[k], st_cum[k] = p_n, ps, cum_before
                    pv_p[k], pv_ps[k] = prev_p, prev_ps
                # U-turn checks of the blocks that end here ((n + 1) % 2^k == 0).
                m = n + 1
                last = min((m & -m).bit_length() - 1, j)
                ok = ~div_now
                for k in range(1, last + 1):
                    ok &= _merge_ok(st_ps[k], ps, cum - st_cum[k],
                                    st_ps[k], st_p[k - 1], st_ps[k - 1], st_cum[k - 1] - st_cum[k],
                                    pv_p[k - 1], pv_ps[k - 1], cum - st_cum[k - 1])
                stop = active & ~ok
                if bool(stop.any()):
                    active = active & ok
                    eps = xp.where(active, eps, zero)
                prev_p, prev_ps = p_n, ps
                if n + 1 < (1 << j) and not bool(active.any()):
                    break

            valid = active
            # Biased progressive sampling between the old trajectory and the subtree.
            u = rng.random(c)
            acc = valid & (u < xp.exp(log_w_sub - log_w))
            a2 = acc[:, None]
            s_q = xp.where(a2, sub_q, s_q)
            s_g = xp.where(a2, sub_g, s_g)
            s_lp = xp.where(acc, sub_lp, s_lp)
            s_h = xp.where(acc, sub_h, s_h)
            log_w = xp.where(valid, xp.logaddexp(log_w, log_w_sub), log_w)
            depth = depth + valid
            # Top-level merge checks: old trajectory (rho) + new subtree (cum).
            rho_all = rho + cum
            ok = _merge_ok(far_ps, ps, rho_all, far_ps, st_p[j], st_ps[j], rho,
                           pv_p[j], pv_ps[j], cum)
            rho = xp.where(valid[:, None], rho_all, rho)
            # Move the end the subtree grew from.
            vr, vl = valid & fwd, valid & ~fwd
            vr2, vl2 = vr[:, None], vl[:, None]
            rq, rp, rg = xp.where(vr2, q, rq), xp.where(vr2, p_n, rp), xp.where(vr2, g, rg)
            rlp, rps = xp.where(vr, lp, rlp), xp.where(vr2, ps, rps)
            lq, lp_, lg = xp.where(vl2, q, lq), xp.where(vl2, p_n, lp_), xp.where(vl2, g, lg)
            llp, lps = xp.where(vl, lp, llp), xp.where(vl2, ps, lps)
            running = valid & ok
            if not bool(running.any()):
                break

        accept = sum_metro / xp.maximum(n_leap, 1)
        info = NUTSInfo(accept, divergent, s_h, n_leap * integ.n_stages, depth, p0)
        return HMCState(s_q, s_lp, s_g), info
