"""HMC kernel: moments within MCSE on analytic targets, invariance, info, errors."""
import warnings

import numpy as np
import pytest

import samplers
from samplers import HMC, HMCInfo, HMCState

from tests.samplers.helpers import Z, check_moments, normal, run


def test_iid_normal_dim100():
    ld, g = normal(np.ones(100))
    rng = np.random.default_rng(0)
    k = HMC(ld, step_size=0.3, n_leapfrogs=7, grad_fn=g)
    draws, info = run(k, rng.standard_normal((16, 100)), 300, rng)
    check_moments(draws, 0.0, 1.0)
    assert 0.7 < info.acceptance_rate.mean() <= 1.0


def test_scales_with_known_diagonal_mass():
    # Scales 0.01..100 are hopeless with an identity mass; the right diagonal
    # inverse mass makes it the standard normal.
    scales = np.logspace(-2, 2, 9)
    ld, g = normal(scales)
    rng = np.random.default_rng(1)
    k = HMC(ld, step_size=0.5, n_leapfrogs=5, inverse_mass=scales ** 2, grad_fn=g)
    draws, _ = run(k, rng.standard_normal((32, 9)) * scales, 200, rng)
    check_moments(draws, 0.0, scales ** 2)


def test_scales_with_diagonal_adaptation():
    scales = np.logspace(-2, 2, 9)
    ld, g = normal(scales)
    res = samplers.sample(ld, np.random.default_rng(2).standard_normal((16, 9)) * scales,
                          n_samples=200, n_warmup=300, kernel="hmc", n_leapfrogs=8,
                          grad_fn=g, rng=2, progress=False)
    check_moments(res.draws, 0.0, scales ** 2)
    np.testing.assert_allclose(res.inverse_mass / scales ** 2, 1.0, rtol=0.5)


def correlated(rho=0.99):
    cov = np.array([[1.0, rho], [rho, 1.0]])
    prec = np.linalg.inv(cov)
    return cov, (lambda q: -0.5 * np.einsum("ci,ij,cj->c", q, prec, q)), (lambda q: -q @ prec)


def test_correlated_dense_adaptation():
    cov, ld, g = correlated()
    res = samplers.sample(ld, None, n_chains=16, dim=2, n_samples=200, n_warmup=300,
                          kernel="hmc", n_leapfrogs=5, dense_mass=True, grad_fn=g, rng=3,
                          progress=False)
    assert res.inverse_mass.shape == (2, 2)
    check_moments(res.draws, 0.0, np.diag(cov))
    x = res.draws.reshape(-1, 2)
    assert np.corrcoef(x.T)[0, 1] == pytest.approx(0.99, abs=0.005)


def funnel_draws(draws):
    """Neal's funnel from its non-centred parameterization: v = 3 v~, x = exp(v/2) x~."""
    v = 3.0 * draws[..., :1]
    return np.concatenate([v, np.exp(v / 2) * draws[..., 1:]], -1)


def test_funnel_noncentred():
    ld, g = normal(np.ones(10))
    rng = np.random.default_rng(4)
    k = HMC(ld, step_size=0.4, n_leapfrogs=6, grad_fn=g)
    draws, _ = run(k, rng.uniform(-2, 2, (16, 10)), 300, rng, burn=20)
    check_moments(draws, 0.0, 1.0)
    f = funnel_draws(draws)
    check_moments(f[..., :1], 0.0, 9.0)                 # v ~ N(0, 3^2)
    # x is heavy tailed (Var x^2 is e^18): check a bounded, odd function of it
    check_moments(np.tanh(f[..., 1:]), 0.0, np.tanh(f[..., 1:]).var())


@pytest.mark.parametrize("integrator,eps", [("velocity_verlet", 0.9), ("mclachlan", 1.2),
                                           ("yoshida", 0.6)])
def test_transition_leaves_target_invariant(integrator, eps):
    # Start from exact draws of an anisotropic Gaussian; one transition must
    # keep the distribution (checks the Metropolis step and the integrator).
    scales = np.array([0.5, 1.0, 3.0])
    ld, g = normal(scales)
    rng = np.random.default_rng(5)
    c = 20000
    k = HMC(ld, step_size=eps, n_leapfrogs=4, integrator=integrator, grad_fn=g)
    s, info = k.step(k.init(rng.standard_normal((c, 3)) * scales), rng)
    y = s.position / scales
    assert np.abs(y.mean(0)).max() * np.sqrt(c) < Z
    assert np.abs((y ** 2).mean(0) - 1).max() / np.sqrt(2 / c) < Z
    assert 0.05 < info.is_accepted.mean() < 0.99   # the accept step is exercised


def test_info_and_purity():
    ld, g = normal(np.ones(3))
    k = HMC(ld, step_size=0.2, n_leapfrogs=4, integrator="mclachlan", grad_fn=g)
    st = k.init(np.ones((5, 3)))
    before = [a.copy() for a in st]
    new, info = k.step(st, np.random.default_rng(0))
    for a, b in zip(st, before):
        np.testing.assert_array_equal(a, b)            # input state untouched
    assert isinstance(new, HMCState) and isinstance(info, HMCInfo)
    assert info.acceptance_rate.shape == info.energy.shape == (5,)
    np.testing.assert_array_equal(info.n_grad_evals, 8)  # 4 steps x 2 stages
    # the stored gradient is the gradient at the stored position
    np.testing.assert_allclose(new.logdensity_grad, g(new.position))
    np.testing.assert_allclose(new.logdensity, ld(new.position))


def test_per_chain_step_sizes_and_float32():
    ld, g = normal(np.ones(4))
    k = HMC(ld, step_size=np.array([0.1, 0.2, 0.3]), n_leapfrogs=3, grad_fn=g)
    st = k.init(np.ones((3, 4), dtype=np.float32))
    new, info = k.step(st, np.random.default_rng(0))
    assert new.position.dtype == np.float32
    assert info.acceptance_rate.shape == (3,)


def test_divergence_is_flagged_and_rejected():
    ld, g = normal(np.ones(2))
    k = HMC(ld, step_size=3.0, n_leapfrogs=30, grad_fn=g)  # unstable: eps > 2
    st = k.init(np.ones((4, 2)))
    new, info = k.step(st, np.random.default_rng(0))
    assert info.is_divergent.all() and not info.is_accepted.any()
    np.testing.assert_array_equal(new.position, st.position)


def test_nan_in_one_chain_does_not_leak():
    def ld(q):
        out = -0.5 * (q * q).sum(1)
        return np.where(q[:, 0] > 1.5, np.nan, out)
    k = HMC(ld, step_size=0.5, n_leapfrogs=5, grad_fn=lambda q: -q)
    st = k.init(np.array([[1.4, 0.0], [0.0, 0.0]]))
    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                   # no RuntimeWarning leaks either
        for _ in range(20):
            st, info = k.step(st, rng)
    assert np.isfinite(st.position).all() and np.isfinite(st.logdensity).all()


def test_autodiff_matches_grad_fn():
    ad = pytest.importorskip("autodiff")
    ld, g = normal([1.0, 2.0])
    k1 = HMC(lambda q: -0.5 * ad.sum(q * q / np.array([1.0, 4.0]), axis=1), 0.3, 5)
    k2 = HMC(ld, 0.3, 5, grad_fn=g)
    x0 = np.random.default_rng(0).standard_normal((4, 2))
    s1, i1 = k1.step(k1.init(x0), np.random.default_rng(7))
    s2, i2 = k2.step(k2.init(x0), np.random.default_rng(7))
    np.testing.assert_allclose(s1.position, s2.position, rtol=1e-12)
    np.testing.assert_allclose(i1.energy, i2.energy, rtol=1e-12)


def test_with_params_shares_density_and_changes_parameters():
    ld, g = normal(np.ones(2))
    k = HMC(ld, 0.1, 3, grad_fn=g)
    k2 = k.with_params(step_size=0.2, inverse_mass=np.array([1.0, 2.0]))
    assert k2.logdensity is k.logdensity and k.step_size == 0.1 and k2.step_size == 0.2
    assert k2.inverse_mass is not None and k.inverse_mass is None


# ------------------------------------------------------------------------ errors
def test_error_nonfinite_initial_logdensity_names_chains():
    ld = lambda q: np.where(q[:, 0] < 0, -np.inf, -0.5 * (q * q).sum(1))  # noqa: E731
    k = HMC(ld, 0.1, 3, grad_fn=lambda q: -q)
    x0 = np.array([[1.0, 0.0], [-1.0, 0.0], [2.0, 0.0], [-3.0, 1.0]])
    with pytest.raises(ValueError, match=r"2 chain\(s\): chain 1: -?inf.*chain 3: -?inf"):
        k.init(x0)


def test_error_nonfinite_initial_gradient_names_chains():
    k = HMC(lambda q: -0.5 * (q * q).sum(1), 0.1, 3,
            grad_fn=lambda q: np.where(q > 5, np.nan, -q))
    with pytest.raises(ValueError, match=r"gradient .* not finite .* chain 2: \[nan"):
        k.init(np.array([[0.0, 0.0], [1.0, 1.0], [6.0, 1.0]]))


@pytest.mark.parametrize("bad", [lambda q: -0.5 * (q * q).sum(),
                                 lambda q: -0.5 * (q * q).sum(1, keepdims=True)])
def test_error_wrong_logdensity_shape(bad):
    k = HMC(bad, 0.1, 3, grad_fn=lambda q: -q)
    with pytest.raises(ValueError, match=r"must return one value per chain, shape \(4,\)"):
        k.init(np.zeros((4, 2)))


def test_error_wrong_logdensity_shape_autodiff():
    ad = pytest.importorskip("autodiff")
    k = HMC(lambda q: -0.5 * ad.sum(q * q, axis=0), 0.1, 3)
    with pytest.raises(ValueError, match=r"shape \(4,\) for a position of shape \(4, 2\)"):
        k.init(np.zeros((4, 2)))


def test_error_wrong_gradient_shape():
    k = HMC(lambda q: -0.5 * (q * q).sum(1), 0.1, 3, grad_fn=lambda q: -q[:, :1])
    with pytest.raises(ValueError, match=r"grad_fn: must return .* shape of the position"):
        k.init(np.zeros((4, 2)))


@pytest.mark.parametrize("kw,match", [
    (dict(step_size=-0.1), "step_size: expected a positive"),
    (dict(step_size=np.nan), "step_size: expected a positive"),
    (dict(n_leapfrogs=0), "n_leapfrogs: expected a positive integer"),
    (dict(n_leapfrogs=2.5), "n_leapfrogs: expected a positive integer"),
    (dict(integrator="rk4"), "unknown integrator 'rk4'"),
])
def test_error_bad_parameters(kw, match):
    args = dict(step_size=0.1, n_leapfrogs=3) | kw
    with pytest.raises(ValueError, match=match):
        HMC(lambda q: q.sum(1), grad_fn=lambda q: q, **args)


@pytest.mark.parametrize("inv,match", [
    (np.ones(3), r"inverse_mass: expected shape \(2,\) or \(2, 2\) .* got \(3,\)"),
    (np.array([1.0, -1.0]), "diagonal inverse mass must be finite and positive"),
    (np.array([[1.0, 2.0], [2.0, 1.0]]), "dense inverse mass must be symmetric positive"),
])
def test_error_bad_inverse_mass(inv, match):
    k = HMC(lambda q: -(q * q).sum(1), 0.1, 3, inverse_mass=inv, grad_fn=lambda q: -2 * q)
    st = k.init(np.zeros((2, 2)))
    with pytest.raises(ValueError, match=match):
        k.step(st, np.random.default_rng(0))


def test_error_per_chain_step_size_wrong_length():
    k = HMC(lambda q: -(q * q).sum(1), np.array([0.1, 0.2]), 3, grad_fn=lambda q: -2 * q)
    st = k.init(np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"step_size: expected a scalar or shape \(3,\)"):
        k.step(st, np.random.default_rng(0))


def test_error_position_not_2d():
    k = HMC(lambda q: -(q * q).sum(1), 0.1, 3, grad_fn=lambda q: -2 * q)
    with pytest.raises(ValueError, match=r"position: expected shape \[n_chains, dim\]"):
        k.init(np.zeros(3))


def test_error_logdensity_not_callable():
    with pytest.raises(TypeError, match="logdensity: expected a callable"):
        HMC(3.0, 0.1, 3)
    with pytest.raises(TypeError, match="grad_fn: expected a callable"):
        HMC(lambda q: q.sum(1), 0.1, 3, grad_fn="grad")


def test_step_size_jitter_breaks_a_resonant_trajectory_length():
    """On N(0, 1) a trajectory of length 2 pi (10 steps of pi / 5) nearly returns to its
    start: the draws barely mix. Jitter of the step size mixes them, and the
    moments stay right."""
    from samplers.diagnostics import ess
    ld, g = normal(np.ones(1))
    x0 = np.random.default_rng(0).standard_normal((8, 1))
    fixed, _ = run(HMC(ld, np.pi / 5, 10, grad_fn=g), x0, 400, np.random.default_rng(1))
    jit, _ = run(HMC(ld, np.pi / 5, 10, grad_fn=g, jitter=0.3), x0, 400,
                 np.random.default_rng(1))
    assert ess(jit)[0] > 10 * ess(fixed)[0]
    check_moments(jit, np.zeros(1), np.ones(1))
    k = HMC(ld, 0.5, 3, grad_fn=g)
    assert k.jitter == 0.0
    with pytest.raises(ValueError, match=r"jitter: expected a float in \[0, 1\), got 1.5"):
        HMC(ld, 0.5, 3, grad_fn=g, jitter=1.5)
