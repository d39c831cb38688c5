"""NUTS: exact invariance from stationarity, moments within MCSE, tree accounting, errors."""
import numpy as np
import pytest
from scipy import stats

import samplers
from samplers import NUTS, NUTSInfo
from samplers.base import LogDensity

from tests.samplers.helpers import Z, check_moments, normal, run


# ------------------------------------------------------------ exact invariance
@pytest.mark.parametrize("eps", [0.3, 1.0, 1.7])
def test_one_step_from_stationarity_1d(eps):
    # Chains started at exact N(0, 1) draws must still be N(0, 1) after one step.
    ld, g = normal([1.0])
    rng = np.random.default_rng(11)
    c = 40000
    k = NUTS(ld, step_size=eps, grad_fn=g)
    s, info = k.step(k.init(rng.standard_normal((c, 1))), rng)
    y = s.position[:, 0]
    assert stats.kstest(y, "norm").pvalue > 1e-3
    assert abs(y.mean()) * np.sqrt(c) < Z
    assert abs((y ** 2).mean() - 1) / np.sqrt(2 / c) < Z
    assert abs((y ** 4).mean() - 3) / np.sqrt(96 / c) < Z


@pytest.mark.parametrize("eps,max_depth", [(0.2, 10), (0.5, 10), (0.5, 3)])
def test_one_step_from_stationarity_deep_trees(eps, max_depth):
    # Anisotropic scales give trees of depth 1..8, so the U-turn checks inside
    # subtrees and between merged subtrees all take part; a wrong momentum sum
    # in any of them biases the variances (seen during development: +10 MCSE).
    scales = np.array([1.0, 10.0, 0.3])
    ld, g = normal(scales)
    rng = np.random.default_rng(5)
    c = 20000
    k = NUTS(ld, step_size=eps, grad_fn=g, max_tree_depth=max_depth)
    s, info = k.step(k.init(rng.standard_normal((c, 3)) * scales), rng)
    y = s.position / scales
    assert np.abs(y.mean(0)).max() * np.sqrt(c) < Z
    assert np.abs((y ** 2).mean(0) - 1).max() / np.sqrt(2 / c) < Z
    assert np.abs((y ** 4).mean(0) - 3).max() / np.sqrt(96 / c) < Z
    assert info.tree_depth.max() == max_depth if max_depth == 3 else info.tree_depth.max() >= 5


def test_one_step_from_stationarity_dense_mass():
    cov = np.array([[1.0, 0.9], [0.9, 1.0]])
    prec = np.linalg.inv(cov)
    chol = np.linalg.cholesky(cov)
    rng = np.random.default_rng(6)
    c = 20000
    k = NUTS(lambda q: -0.5 * np.einsum("ci,ij,cj->c", q, prec, q), step_size=0.7,
             inverse_mass=np.array([[1.0, 0.5], [0.5, 1.0]]), grad_fn=lambda q: -q @ prec)
    s, _ = k.step(k.init(rng.standard_normal((c, 2)) @ chol.T), rng)
    y = s.position @ np.linalg.inv(chol).T
    assert np.abs(y.mean(0)).max() * np.sqrt(c) < Z
    assert np.abs((y ** 2).mean(0) - 1).max() / np.sqrt(2 / c) < Z


# ------------------------------------------------------------------ moments
def test_iid_normal_dim100():
    ld, g = normal(np.ones(100))
    rng = np.random.default_rng(0)
    k = NUTS(ld, step_size=0.4, grad_fn=g)
    draws, info = run(k, rng.standard_normal((8, 100)), 150, rng)
    check_moments(draws, 0.0, 1.0)
    assert isinstance(info, NUTSInfo) and info.acceptance_rate.mean() > 0.7


def test_scales_with_diagonal_adaptation():
    scales = np.logspace(-2, 2, 9)
    ld, g = normal(scales)
    res = samplers.sample(ld, np.random.default_rng(2).standard_normal((8, 9)) * scales,
                          n_samples=200, n_warmup=300, grad_fn=g, rng=2, progress=False)
    check_moments(res.draws, 0.0, scales ** 2)
    np.testing.assert_allclose(res.inverse_mass / scales ** 2, 1.0, rtol=0.5)
    assert res.stats["tree_depth"].mean() < 4      # adapted: short trees suffice


def test_correlated_dense_adaptation():
    cov = np.array([[1.0, 0.99], [0.99, 1.0]])
    prec = np.linalg.inv(cov)
    res = samplers.sample(lambda q: -0.5 * np.einsum("ci,ij,cj->c", q, prec, q), None,
                          n_chains=8, dim=2, n_samples=200, n_warmup=300, dense_mass=True,
                          grad_fn=lambda q: -q @ prec, rng=3, progress=False)
    check_moments(res.draws, 0.0, np.diag(cov))
    assert np.corrcoef(res.draws.reshape(-1, 2).T)[0, 1] == pytest.approx(0.99, abs=0.005)
    assert res.stats["tree_depth"].mean() < 3      # dense metric removes the correlation


def test_funnel_noncentred():
    ld, g = normal(np.ones(10))
    rng = np.random.default_rng(4)
    k = NUTS(ld, step_size=0.5, grad_fn=g)
    draws, _ = run(k, rng.uniform(-2, 2, (8, 10)), 200, rng, burn=10)
    check_moments(draws, 0.0, 1.0)
    v = 3.0 * draws[..., :1]
    check_moments(v, 0.0, 9.0)


# ---------------------------------------------------------------- accounting
@pytest.mark.parametrize("max_depth", [1, 2, 4])
def test_tree_depth_and_grad_evals_at_max_depth(max_depth):
    # A tiny step on a wide target never turns: every chain doubles to the
    # maximum depth, 2^depth - 1 leapfrogs.
    ld, g = normal([100.0, 100.0])
    k = NUTS(ld, step_size=1e-3, max_tree_depth=max_depth, grad_fn=g)
    _, info = k.step(k.init(np.ones((5, 2))), np.random.default_rng(0))
    np.testing.assert_array_equal(info.tree_depth, max_depth)
    np.testing.assert_array_equal(info.n_grad_evals, 2 ** max_depth - 1)


def test_grad_evals_are_batched_and_counted():
    calls = []

    def grad(q):
        calls.append(q.shape)
        return -q

    k = NUTS(lambda q: -0.5 * (q * q).sum(1), step_size=0.3, grad_fn=grad)
    st = k.init(np.random.default_rng(1).standard_normal((6, 3)))
    calls.clear()
    _, info = k.step(st, np.random.default_rng(1))
    assert all(s == (6, 3) for s in calls)              # one batched call per leapfrog
    assert len(calls) >= info.n_grad_evals.max()        # waiting chains do not count
    d = info.tree_depth
    # completed doublings plus at most one partial (rejected) subtree
    assert ((2 ** d - 1 <= info.n_grad_evals) & (info.n_grad_evals <= 2 ** (d + 1) - 1)).all()
    assert len(set(info.n_grad_evals.tolist())) > 1      # chains built different trees


def test_multistage_integrator_counts_stages():
    ld, g = normal([100.0])
    k = NUTS(ld, step_size=1e-3, max_tree_depth=3, integrator="mclachlan", grad_fn=g)
    _, info = k.step(k.init(np.ones((2, 1))), np.random.default_rng(0))
    np.testing.assert_array_equal(info.n_grad_evals, 2 * 7)


def test_divergence_stops_tree_and_keeps_position():
    ld, g = normal([1.0, 1.0])
    k = NUTS(ld, step_size=50.0, grad_fn=g)
    st = k.init(np.full((4, 2), 0.5))
    new, info = k.step(st, np.random.default_rng(0))
    assert info.is_divergent.all()
    np.testing.assert_array_equal(info.tree_depth, 0)
    np.testing.assert_array_equal(info.n_grad_evals, 1)
    np.testing.assert_array_equal(new.position, st.position)


def test_info_energy_and_state_consistency():
    ld, g = normal([1.0, 2.0])
    k = NUTS(ld, step_size=0.5, grad_fn=g)
    st = k.init(np.random.default_rng(3).standard_normal((7, 2)))
    before = [a.copy() for a in st]
    new, info = k.step(st, np.random.default_rng(3))
    for a, b in zip(st, before):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(new.logdensity, ld(new.position))
    np.testing.assert_allclose(new.logdensity_grad, g(new.position))
    assert (info.energy >= -new.logdensity).all()       # H = K - log p, K >= 0
    assert ((0 <= info.acceptance_rate) & (info.acceptance_rate <= 1)).all()


def test_autodiff_logdensity():
    ad = pytest.importorskip("autodiff")
    k = NUTS(lambda q: -0.5 * ad.sum(q * q, axis=1), step_size=0.5)
    kref = NUTS(LogDensity(lambda q: -0.5 * (q * q).sum(1), grad_fn=lambda q: -q), 0.5)
    x0 = np.random.default_rng(0).standard_normal((3, 4))
    s1, i1 = k.step(k.init(x0), np.random.default_rng(9))
    s2, i2 = kref.step(kref.init(x0), np.random.default_rng(9))
    np.testing.assert_allclose(s1.position, s2.position, rtol=1e-12)
    np.testing.assert_array_equal(i1.tree_depth, i2.tree_depth)


@pytest.mark.parametrize("depth", [0, 31, 2.5])
def test_error_bad_max_tree_depth(depth):
    with pytest.raises(ValueError, match="max_tree_depth: expected an integer in"):
        NUTS(lambda q: q.sum(1), 0.1, max_tree_depth=depth, grad_fn=lambda q: q)


# ------------------------------------------------------- Numba vs array path
@pytest.mark.parametrize("dense", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_numba_path_matches_array_path(dense, dtype):
    # NumPy input runs the Numba bookkeeping; the whole-array path (used for
    # CuPy) must make the same transition from the same random stream.
    scales = np.array([1.0, 10.0, 0.3])
    ld, g = normal(scales)
    inv = np.array([[1.0, 0.3, 0.0], [0.3, 2.0, 0.0], [0.0, 0.0, 0.5]]) if dense else \
        np.array([1.0, 2.0, 0.5])
    k = NUTS(ld, 0.4, inverse_mass=inv, grad_fn=lambda q: g(q).astype(q.dtype))
    for seed in range(3):
        x = (np.random.default_rng(seed).standard_normal((40, 3)) * scales).astype(dtype)
        st = k.init(x)
        s1, i1 = k._step_array(st, np.random.default_rng(seed))
        s2, i2 = k._step_numba(st, np.random.default_rng(seed))
        assert s2.position.dtype == dtype
        np.testing.assert_array_equal(i1.tree_depth, i2.tree_depth)
        np.testing.assert_array_equal(i1.n_grad_evals, i2.n_grad_evals)
        np.testing.assert_array_equal(i1.is_divergent, i2.is_divergent)
        tol = 1e-12 if dtype == np.float64 else 1e-5
        np.testing.assert_allclose(s1.position, s2.position, rtol=tol, atol=tol)
        np.testing.assert_allclose(i1.acceptance_rate, i2.acceptance_rate, rtol=tol, atol=tol)
        np.testing.assert_allclose(i1.energy, i2.energy, rtol=tol, atol=tol)
        assert len(set(i1.tree_depth.tolist())) > 1


def test_array_path_invariance():
    # The whole-array path on its own (CuPy runs it): one step from stationarity.
    scales = np.array([1.0, 10.0, 0.3])
    ld, g = normal(scales)
    rng = np.random.default_rng(8)
    c = 20000
    k = NUTS(ld, step_size=0.5, grad_fn=g)
    s, _ = k._step_array(k.init(rng.standard_normal((c, 3)) * scales), rng)
    y = s.position / scales
    assert np.abs(y.mean(0)).max() * np.sqrt(c) < Z
    assert np.abs((y ** 2).mean(0) - 1).max() / np.sqrt(2 / c) < Z


# --------------------------------------------- against a recursive transcription
class _ScriptedRng(np.random.Generator):
    """Fixed momenta and a constant uniform: r > 0.5 always extends forward, r < 0.5 backward."""

    def __init__(self, momenta, r):
        super().__init__(np.random.PCG64(0))
        self.momenta, self.r = momenta, r

    def standard_normal(self, size=None, dtype=np.float64, out=None):
        return self.momenta.copy()

    def random(self, size=None, dtype=np.float64, out=None):
        return np.full(size, self.r)


def _recursive_tree(q0, p0, lp, grad, inv, eps, sign, max_depth=10, thr=1000.0):
    """Stan's recursive build_tree (2.26 checks), one chain, one direction; depth and counts."""
    h = lambda q, p: 0.5 * (p * inv * p).sum() - lp(q)     # noqa: E731
    crit = lambda a, b, rho: a @ rho > 0 and b @ rho > 0   # noqa: E731
    h0 = h(q0, p0)
    acc = {"n": 0, "metro": 0.0, "div": False}

    def build(q, p, depth):
        if depth == 0:
            p = p + 0.5 * sign * eps * grad(q)
            q = q + sign * eps * inv * p
            p = p + 0.5 * sign * eps * grad(q)
            acc["n"] += 1
            e = h(q, p)
            e = np.inf if np.isnan(e) else e
            acc["div"] |= e - h0 > thr
            acc["metro"] += min(1.0, np.exp(h0 - e))
            ps = inv * p
            return not acc["div"], q, p, ps, ps, p, p, p
        ok, q, p, ps_beg, ps_ie, rho_i, p_beg, p_ie = build(q, p, depth - 1)
        if not ok:
            return (False,) + (None,) * 7
        ok, q, p, ps_fb, ps_end, rho_f, p_fb, p_end = build(q, p, depth - 1)
        if not ok:
            return (False,) + (None,) * 7
        ok = (crit(ps_beg, ps_end, rho_i + rho_f) and crit(ps_beg, ps_fb, rho_i + p_fb)
              and crit(ps_ie, ps_end, rho_f + p_ie))
        return ok, q, p, ps_beg, ps_end, rho_i + rho_f, p_beg, p_end

    q, p, rho = q0, p0, p0
    ps_far = ps_adj = inv * p0
    p_adj = p0
    depth = 0
    while depth < max_depth:
        ok, qn, pn, ps_b, ps_e, rho_s, p_b, p_e = build(q, p, depth)
        if not ok:
            break
        depth += 1
        ok = (crit(ps_far, ps_e, rho + rho_s) and crit(ps_far, ps_b, rho + p_b)
              and crit(ps_adj, ps_e, rho_s + p_adj))
        rho, q, p, p_adj, ps_adj = rho + rho_s, qn, pn, p_e, ps_e
        if not ok:
            break
    return depth, acc["n"], acc["metro"] / acc["n"], acc["div"]


@pytest.mark.parametrize("r", [0.9, 0.1])
@pytest.mark.parametrize("path", ["numba", "array"])
def test_tree_matches_recursive_stan_transcription(r, path):
    # Invariance holds for any tree-structural criterion, so also check that
    # the iterative build stops exactly where Stan's recursion does.
    scales = np.array([1.0, 10.0, 0.3, 3.0])
    ld, g = normal(scales)
    inv = np.array([1.0, 4.0, 0.5, 2.0])
    rng = np.random.default_rng(12)
    c = 60
    q0 = rng.standard_normal((c, 4)) * scales
    p0 = rng.standard_normal((c, 4)) / np.sqrt(inv)
    eps = np.where(np.arange(c) % 3 == 0, 1.9, 0.35)      # some chains diverge
    k = NUTS(ld, eps, inverse_mass=inv, grad_fn=g)
    st = k.init(q0)
    step = k._step_numba if path == "numba" else k._step_array
    # momenta are drawn as z * M^{1/2}: script z so that they come out as p0
    _, info = step(st, _ScriptedRng(p0 * np.sqrt(inv), r))
    sign = 1.0 if r > 0.5 else -1.0
    ref = [_recursive_tree(q0[i], p0[i], lambda x: ld(x[None])[0], lambda x: g(x[None])[0],
                           inv, eps[i], sign) for i in range(c)]
    depth, n, accept, div = (np.array(v) for v in zip(*ref))
    np.testing.assert_array_equal(info.tree_depth, depth)
    np.testing.assert_array_equal(info.n_grad_evals, n)
    np.testing.assert_array_equal(info.is_divergent, div)
    np.testing.assert_allclose(info.acceptance_rate, accept, rtol=1e-10)
    assert len(set(depth.tolist())) >= 3 and div.any() and not div.all()


@pytest.mark.parametrize("dense", [False, True])
def test_compiled_transition_matches_the_python_driven_one(dense, monkeypatch):
    """With the log density compiled into one machine run, the whole transition runs in
    one Numba call (samplers.nuts_machine); it makes the same transitions as the
    Python-driven loop from the same random stream, to rounding."""
    import autodiff as ad
    from samplers import nuts_machine
    scales = np.array([1.0, 10.0, 0.3])

    def f(q):
        return -0.5 * ad.sum(ad.square(q / scales), axis=1) + ad.sum(ad.tanh(q), axis=1)
    inv = np.array([[1.0, 0.3, 0.0], [0.3, 2.0, 0.0], [0.0, 0.0, 0.5]]) if dense else \
        np.array([1.0, 2.0, 0.5])
    x = np.random.default_rng(0).standard_normal((6, 3)) * scales
    runs = []
    for machine in (True, False):
        if not machine:
            monkeypatch.setattr(nuts_machine, "machine_of", lambda *a: None)
        k = NUTS(f, 0.4, inverse_mass=inv)
        st, rng = k.init(x), np.random.default_rng(3)
        for _ in range(4):                         # record, verify: then compiled
            k.logdensity(x + 0.01 * _)
        assert (nuts_machine.machine_of(k.logdensity, x) is not None) == machine
        out = []
        for _ in range(15):
            st, info = k.step(st, rng)
            out.append((st.position.copy(), info.tree_depth.copy(), info.n_grad_evals.copy()))
        runs.append((out, rng.bit_generator.state))
    assert runs[0][1] == runs[1][1]                  # the same numbers were drawn
    runs = [r[0] for r in runs]
    for (qa, da, na), (qb, db, nb) in zip(*runs):
        np.testing.assert_array_equal(da, db)
        np.testing.assert_array_equal(na, nb)
        np.testing.assert_allclose(qa, qb, rtol=1e-10, atol=1e-12)


def test_a_stopped_machine_hands_the_transition_back():
    """A log density whose compiled run stops (here a single matrix that is not positive
    definite, which the tape reports as an error): the transition is redone in Python
    from the same generator state, and the error is the tape's."""
    import autodiff as ad

    def f(q):                                      # a 1x1 matrix 1 - |q|^2
        chol = ad.cholesky(ad.reshape(1.0 - ad.sum(ad.square(q)), (1, 1)))
        return -0.5 * ad.sum(q * q, axis=1) + ad.sum(ad.log(chol))
    k = NUTS(f, 0.1)
    x = np.full((2, 2), 0.1)
    for _ in range(4):
        k.logdensity(x * (1 + 0.01 * _))
    with pytest.raises(np.linalg.LinAlgError):
        st = k.init(x)
        rng = np.random.default_rng(0)
        for _ in range(200):                       # the chains drift out of |q| < 1
            st, _ = k.step(st, rng)

