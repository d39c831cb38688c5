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
before the right half. Those are kept per level ``k`` as references to
per-step arrays that are never modified afterwards (``O(depth)`` arrays, no
copying). Uniform multinomial sampling within a subtree is done
progressively (replace the proposal by point ``n`` with probability ``w_n /
sum_{i<=n} w_i``), which gives every point of a completed subtree the same
selection probability ``w_i / W`` as Stan's recursive merges.

Across chains: every chain builds its own tree, but all chains take their
``n``-th leapfrog in the same batched call. A chain whose trajectory is
finished, or whose current subtree became invalid, gets step size 0 and
waits; the loop over doublings ends when no chain is extending.

Note on the between-subtree checks at the top level: the left part is the
old trajectory and its point adjacent to the new subtree is the end the
subtree grew from. (Stan's code takes the momentum stored from the previous
doubling there, which for three or more doublings in one direction is an
interior point; using the adjacent end keeps the criterion a function of the
final binary tree alone, which reversibility needs.)
"""
import numpy as np

from .base import NUTSInfo, HMCState, array_module, draw_momentum, velocity
from .hmc import DIVERGENCE_THRESHOLD, GradientKernel
from .integrators import integrate

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
    """

    def __init__(self, logdensity, step_size, inverse_mass=None, max_tree_depth=10,
                 integrator="velocity_verlet", *, grad_fn=None,
                 divergence_threshold=DIVERGENCE_THRESHOLD):
        super().__init__(logdensity, step_size, inverse_mass, integrator, grad_fn=grad_fn,
                         divergence_threshold=divergence_threshold)
        if int(max_tree_depth) != max_tree_depth or not 1 <= max_tree_depth <= 30:
            raise ValueError("max_tree_depth: expected an integer in [1, 30], got "
                             f"{max_tree_depth!r}")
        self.max_tree_depth = int(max_tree_depth)

    def step(self, state, rng):
        """One NUTS transition of every chain.

        Parameters
        ----------
        state : HMCState
            Positions ``[C, D]``, log densities ``[C]``, gradients ``[C, D]``.
        rng : numpy.random.Generator or cupy.random.Generator

        Returns
        -------
        HMCState
            The selected points.
        NUTSInfo
            Per-chain mean acceptance probability, divergence, energy,
            gradient evaluations and tree depth.
        """
        with np.errstate(invalid="ignore", over="ignore", divide="ignore", under="ignore"):
            return self._step(state, rng)

    def _step(self, state, rng):
        q0, lp0, g0 = state
        inv, msqrt, eps0 = self._params(q0)
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
        info = NUTSInfo(accept, divergent, s_h, n_leap * integ.n_stages, depth)
        return HMCState(s_q, s_lp, s_g), info
