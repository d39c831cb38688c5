"""Implicit reparameterization gradients (Figurnov et al. 2018) of Gamma, Beta and
Dirichlet samples: the primitive's dx/dalpha against finite differences of the inverse
CDF, and Monte Carlo gradients of expectations against their closed forms."""
import numpy as np
import pytest
import scipy.special as sps

import autodiff as ad
import zsarray.distributions as zd

Z = 4.5
N = 20000


@pytest.mark.parametrize("alpha", [0.05, 0.5, 1.0, 3.0, 30.0])
def test_gamma_sample_grad_matches_inverse_cdf_finite_differences(alpha):
    x = np.random.default_rng(0).standard_gamma(alpha, size=200)
    x = x[x > 1e-300]
    a = np.full_like(x, alpha)
    got = zd.gamma_sample_grad(x, a)
    # x(alpha) at a fixed CDF level, through the inverse of the smaller tail
    p, q = sps.gammainc(a, x), sps.gammaincc(a, x)
    h = 1e-6 * alpha

    def inv(aa):
        return np.where(p <= 0.5, sps.gammaincinv(aa, p), sps.gammainccinv(aa, q))

    fd = (inv(a + h) - inv(a - h)) / (2 * h)
    np.testing.assert_allclose(got, fd, rtol=1e-5, atol=1e-12 * np.abs(fd).max())


def test_gamma_sample_grad_is_zero_at_underflowed_draws():
    assert zd.gamma_sample_grad(np.array([0.0]), np.array([0.01]))[0] == 0


def _per_sample_grad(make_dist, f, theta):
    """Per-sample gradients of f(x) w.r.t. a parameter replicated per sample ([N, ...])."""
    def obj(t):
        return ad.sum(f(make_dist(t).sample(rng=11)))
    return ad.grad(obj)(theta)


def _check(g, truth):
    est, se = g.mean(0), g.std(0) / np.sqrt(len(g))
    z = np.abs(est - truth) / se
    assert np.all(z < Z), f"|z| = {z}: {est} vs {truth}"


@pytest.mark.parametrize("alpha", [0.3, 2.5])
def test_gamma_mc_gradients(alpha):
    beta = 1.7
    theta = np.full(N, alpha)
    g = _per_sample_grad(lambda t: zd.Gamma(t, beta), lambda x: x, theta)
    _check(g, 1 / beta)                                   # d/da E[x] = 1/b
    g = _per_sample_grad(lambda t: zd.Gamma(t, beta), ad.log, theta)
    _check(g, sps.polygamma(1, alpha))                    # d/da E[log x] = psi'(a)
    g = _per_sample_grad(lambda t: zd.Gamma(t, beta), ad.square, theta)
    _check(g, (2 * alpha + 1) / beta ** 2)                # E[x^2] = a(a+1)/b^2


def test_beta_mc_gradients():
    a, b = 0.7, 2.0
    ga = _per_sample_grad(lambda t: zd.Beta(t, b), lambda x: x, np.full(N, a))
    _check(ga, b / (a + b) ** 2)
    gb = _per_sample_grad(lambda t: zd.Beta(a, t), lambda x: x, np.full(N, b))
    _check(gb, -a / (a + b) ** 2)
    gl = _per_sample_grad(lambda t: zd.Beta(t, b), ad.log, np.full(N, a))
    _check(gl, sps.polygamma(1, a) - sps.polygamma(1, a + b))


def test_dirichlet_mc_gradients():
    alpha = np.array([0.6, 1.5, 3.0])
    a0 = alpha.sum()
    theta = np.broadcast_to(alpha, (N, 3)).copy()
    w = np.array([1.0, -2.0, 0.5])           # f(x) = w . x, so d/da_j E = w_j/a0 - (w.a)/a0^2
    g = _per_sample_grad(zd.Dirichlet, lambda x: ad.sum(x * w, axis=-1), theta)
    _check(g, w / a0 - (w @ alpha) / a0 ** 2)
    g = _per_sample_grad(zd.Dirichlet, lambda x: ad.log(x[..., 0]), theta)
    truth = -sps.polygamma(1, a0) * np.ones(3)
    truth[0] += sps.polygamma(1, alpha[0])
    _check(g, truth)


def test_student_t_df_gradient():
    """E|t|^2 = df/(df - 2) for df > 2 (scale 1): d/ddf = -2/(df-2)^2."""
    df = 6.0
    g = _per_sample_grad(lambda t: zd.StudentT(t, 0.0, 1.0), ad.square, np.full(N, df))
    _check(g, -2 / (df - 2) ** 2)
