"""MALA and random-walk Metropolis: proposal algebra, moments within MCSE, errors."""
import numpy as np
import pytest

import samplers
from samplers import MALA, RWMH, HMCInfo, RWMHState

from tests.samplers.helpers import Z, check_moments, normal, run


# ---------------------------------------------------------------------- MALA
def test_mala_acceptance_equals_langevin_hastings_ratio():
    # The one-leapfrog implementation must reproduce the textbook MALA ratio
    # pi(y) q(x|y) / (pi(x) q(y|x)), q(y|x) = N(y; x + eps^2/2 grad(x), eps^2 I).
    def ld(q):
        return -0.25 * (q ** 4).sum(1) - 0.5 * (q * q).sum(1)

    def g(q):
        return -q ** 3 - q

    eps = 0.7
    k = MALA(ld, eps, grad_fn=g)
    x = np.random.default_rng(0).standard_normal((50, 3))
    st = k.init(x)
    rng = np.random.default_rng(1)
    new, info = k.step(st, rng)
    # recover the proposal from the same random stream
    z = np.random.default_rng(1).standard_normal((50, 3))
    y = x + 0.5 * eps ** 2 * g(x) + eps * z

    def logq(b, a):
        return -0.5 * (((b - a - 0.5 * eps ** 2 * g(a)) / eps) ** 2).sum(1)

    log_ratio = ld(y) + logq(x, y) - ld(x) - logq(y, x)
    np.testing.assert_allclose(info.acceptance_rate, np.exp(np.minimum(log_ratio, 0)),
                               rtol=1e-10)
    moved = info.is_accepted
    np.testing.assert_allclose(new.position[moved], y[moved], rtol=1e-12)
    np.testing.assert_array_equal(info.n_grad_evals, 1)


def test_mala_iid_normal_dim100():
    ld, g = normal(np.ones(100))
    rng = np.random.default_rng(0)
    k = MALA(ld, step_size=0.9, grad_fn=g)
    draws, info = run(k, rng.standard_normal((32, 100)), 400, rng)
    check_moments(draws, 0.0, 1.0)


@pytest.mark.parametrize("kernel,n", [("mala", 600), ("rwmh", 1500)])
def test_scales_with_diagonal_adaptation(kernel, n):
    scales = np.logspace(-2, 2, 5)
    ld, g = normal(scales)
    x0 = np.random.default_rng(2).standard_normal((32, 5)) * scales
    res = samplers.sample(ld, x0, n_samples=n, n_warmup=600, kernel=kernel, grad_fn=g,
                          rng=2, progress=False)
    check_moments(res.draws, 0.0, scales ** 2)
    np.testing.assert_allclose(res.inverse_mass / scales ** 2, 1.0, rtol=0.5)


@pytest.mark.parametrize("kernel,n", [("mala", 600), ("rwmh", 1500)])
def test_correlated_dense_adaptation(kernel, n):
    cov = np.array([[1.0, 0.99], [0.99, 1.0]])
    prec = np.linalg.inv(cov)
    res = samplers.sample(lambda q: -0.5 * np.einsum("ci,ij,cj->c", q, prec, q), None,
                          n_chains=32, dim=2, n_samples=n, n_warmup=600, kernel=kernel,
                          dense_mass=True, grad_fn=lambda q: -q @ prec, rng=3, progress=False)
    check_moments(res.draws, 0.0, np.diag(cov))


@pytest.mark.parametrize("kernel,kw", [(MALA, dict(step_size=0.9)), (RWMH, dict(scale=0.8))])
def test_funnel_noncentred(kernel, kw):
    ld, g = normal(np.ones(10))
    rng = np.random.default_rng(4)
    k = kernel(ld, grad_fn=g, **kw)
    draws, _ = run(k, rng.uniform(-2, 2, (32, 10)), 1500, rng, burn=100)
    check_moments(draws, 0.0, 1.0)
    check_moments(3.0 * draws[..., :1], 0.0, 9.0)


# ---------------------------------------------------------------------- RWMH
def test_rwmh_iid_normal_dim10():
    ld, _ = normal(np.ones(10))
    rng = np.random.default_rng(0)
    k = RWMH(ld, scale=0.75)
    draws, info = run(k, rng.standard_normal((32, 10)), 1500, rng)
    check_moments(draws, 0.0, 1.0)
    assert 0.15 < info.acceptance_rate.mean() < 0.45


def test_rwmh_one_step_from_stationarity_with_dense_proposal():
    cov = np.array([[2.0, 0.5], [0.5, 1.0]])
    prec = np.linalg.inv(cov)
    chol = np.linalg.cholesky(cov)
    rng = np.random.default_rng(5)
    c = 20000
    k = RWMH(lambda q: -0.5 * np.einsum("ci,ij,cj->c", q, prec, q), 1.5, inverse_mass=cov)
    s, info = k.step(k.init(rng.standard_normal((c, 2)) @ chol.T), rng)
    y = s.position @ np.linalg.inv(chol).T
    assert np.abs(y.mean(0)).max() * np.sqrt(c) < Z
    assert np.abs((y ** 2).mean(0) - 1).max() / np.sqrt(2 / c) < Z
    assert 0.2 < info.is_accepted.mean() < 0.8


def test_rwmh_info_state_and_uses_no_gradient():
    k = RWMH(lambda q: -0.5 * (q * q).sum(1), 0.5, grad_fn=lambda q: 1 / 0)
    st = k.init(np.zeros((4, 3)))
    assert isinstance(st, RWMHState)
    new, info = k.step(st, np.random.default_rng(0))
    assert isinstance(info, HMCInfo)
    np.testing.assert_array_equal(info.n_grad_evals, 0)
    assert not info.is_divergent.any()
    np.testing.assert_allclose(info.energy, -new.logdensity)
    np.testing.assert_allclose(new.logdensity, -0.5 * (new.position ** 2).sum(1))
    assert k.with_params(step_size=0.1).scale == 0.1 and k.step_size == 0.5


def test_rwmh_with_autodiff_logdensity():
    ad = pytest.importorskip("autodiff")
    k = RWMH(lambda q: -0.5 * ad.sum(q * q, axis=1), 0.5)
    st = k.init(np.zeros((4, 3)))
    new, info = k.step(st, np.random.default_rng(0))
    assert type(new.logdensity) is np.ndarray and new.logdensity.shape == (4,)


def test_rwmh_rejects_out_of_support():
    k = RWMH(lambda q: np.where(q[:, 0] > 0, -q[:, 0], -np.inf), 5.0)
    st = k.init(np.ones((200, 1)))
    rng = np.random.default_rng(0)
    for _ in range(20):
        st, _ = k.step(st, rng)
    assert (st.position > 0).all() and np.isfinite(st.logdensity).all()


@pytest.mark.parametrize("scale", [0.0, -1.0, np.inf])
def test_rwmh_error_bad_scale(scale):
    with pytest.raises(ValueError, match="step_size: expected a positive"):
        RWMH(lambda q: q.sum(1), scale)


@pytest.mark.parametrize("cov,match", [
    (np.ones(3), r"inverse_mass: expected shape \(2,\) or \(2, 2\)"),
    (np.array([1.0, 0.0]), "proposal variances must be positive"),
    (np.array([[1.0, 2.0], [2.0, 1.0]]), "covariance must be symmetric positive definite"),
])
def test_rwmh_error_bad_covariance(cov, match):
    k = RWMH(lambda q: -(q * q).sum(1), 0.5, inverse_mass=cov)
    st = k.init(np.zeros((2, 2)))
    with pytest.raises(ValueError, match=match):
        k.step(st, np.random.default_rng(0))


def test_rwmh_error_scale_wrong_length():
    k = RWMH(lambda q: -(q * q).sum(1), np.array([0.1, 0.2]))
    st = k.init(np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"scale: expected a scalar or shape \(3,\)"):
        k.step(st, np.random.default_rng(0))


def test_rwmh_error_nonfinite_start_and_shape():
    k = RWMH(lambda q: np.where(q[:, 0] > 0, 0.0, np.nan), 0.5)
    with pytest.raises(ValueError, match=r"not finite .* chain 0: nan"):
        k.init(np.array([[-1.0], [1.0]]))
    k = RWMH(lambda q: (q * q).sum(), 0.5)
    with pytest.raises(ValueError, match=r"must return one value per chain, shape \(2,\)"):
        k.init(np.zeros((2, 3)))
