"""The fused (log-)normal kernels against the unfused tape computation, and their use
by Normal/LogNormal (``sample_and_log_prob`` and the log_prob cache)."""
import itertools

import numpy as np
import pytest

import autodiff as ad
import zsarray.distributions as zd
from zsarray.distributions import kernels_cpu
from zsarray.distributions.fused import (fused_normal_sample_logprob,
                                         unfused_normal_sample_logprob)

TOL = {np.float64: dict(rtol=1e-12, atol=1e-12), np.float32: dict(rtol=2e-5, atol=2e-5)}
FLAGS = list(itertools.product([False, True], [True, False], [False, True]))


def _inputs(dtype, n=(5,), batch=(3, 4), mean_shape=(4,), seed=0):
    r = np.random.default_rng(seed)
    mean = r.standard_normal(mean_shape).astype(dtype)
    logstd = (0.3 * r.standard_normal(batch)).astype(dtype)
    eps = r.standard_normal(n + batch).astype(dtype)
    gz = r.standard_normal(n + batch).astype(dtype)
    gl = r.standard_normal(n + batch).astype(dtype)
    return mean, logstd, eps, gz, gl


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("lognormal,reparameterized,path_derivative", FLAGS)
@pytest.mark.parametrize("n", [(), (1,), (5,)])
def test_fused_equals_unfused(dtype, lognormal, reparameterized, path_derivative, n):
    mean, logstd, eps, gz, gl = _inputs(dtype, n)
    flags = dict(lognormal=lognormal, reparameterized=reparameterized,
                 path_derivative=path_derivative)

    def run(fn):
        def loss(m, s):
            z, lp = fn(m, s, eps, **flags)
            return ad.sum(z * gz) + ad.sum(lp * gl), (z, lp)
        (v, (z, lp)), g = ad.value_and_grad(loss, argnums=(0, 1), has_aux=True)(mean, logstd)
        return z, lp, g

    z1, lp1, (gm1, gs1) = run(fused_normal_sample_logprob)
    z2, lp2, (gm2, gs2) = run(unfused_normal_sample_logprob)
    for a, b in [(z1, z2), (lp1, lp2), (gm1, gm2), (gs1, gs2)]:
        assert a.dtype == dtype and a.shape == b.shape
        np.testing.assert_allclose(a, b, **TOL[dtype])


def test_fused_same_cotangent_to_both_outputs():
    """z + logp sends one cotangent object to both primitives (add's VJP is identity):
    the shared memo must still compute each output's pullback."""
    mean, logstd, eps, *_ = _inputs(np.float64)
    for fn in (fused_normal_sample_logprob, unfused_normal_sample_logprob):
        def loss(m, s):
            z, lp = fn(m, s, eps)
            return ad.sum(ad.sin(z + lp))
        g = ad.grad(loss, argnums=(0, 1))(mean, logstd)
        if fn is fused_normal_sample_logprob:
            ref = g
    np.testing.assert_allclose(ref[0], g[0], rtol=1e-12)
    np.testing.assert_allclose(ref[1], g[1], rtol=1e-12)


def test_fused_checks_eps_shape():
    with pytest.raises(ValueError, match="eps must have shape"):
        fused_normal_sample_logprob(np.zeros(3), np.zeros(3), np.zeros((2, 4)))


def test_kernel_blocks_cover_wide_batches():
    """More columns than one parallel block (kernels_cpu.BLOCK)."""
    mean, logstd, eps, gz, gl = _inputs(np.float64, (3,), (kernels_cpu.BLOCK + 7,),
                                        (kernels_cpu.BLOCK + 7,))
    g1 = ad.grad(lambda m, s: ad.sum(fused_normal_sample_logprob(m, s, eps)[0] * gz),
                 argnums=(0, 1))(mean, logstd)
    g2 = ad.grad(lambda m, s: ad.sum(unfused_normal_sample_logprob(m, s, eps)[0] * gz),
                 argnums=(0, 1))(mean, logstd)
    np.testing.assert_allclose(g1[0], g2[0], rtol=1e-12)
    np.testing.assert_allclose(g1[1], g2[1], rtol=1e-12)


@pytest.mark.parametrize("cls", [zd.Normal, zd.LogNormal])
@pytest.mark.parametrize("use_path_derivative", [False, True])
@pytest.mark.parametrize("is_reparameterized", [True, False])
def test_distribution_log_prob_of_own_sample_is_fused_and_correct(
        cls, use_path_derivative, is_reparameterized):
    """log_prob(the sample just drawn) reuses the fused result; its value and gradients
    equal those of log_prob on an equal but distinct Tensor (the unfused tape path)."""
    r = np.random.default_rng(3)
    mean, std = r.standard_normal((2, 3)), r.uniform(0.5, 1.5, 3)
    kw = dict(group_ndims=1, use_path_derivative=use_path_derivative,
              is_reparameterized=is_reparameterized)

    def elbo_like(m, s, reuse):
        d = cls(m, std=s, **kw)
        z = d.sample(4, rng=5)
        if reuse:
            z2, lp = d.sample_and_log_prob(4, rng=5)
            assert d._cache[0] is z2          # the fused result is what log_prob reuses
            assert d._elementwise_log_prob(z2) is d._cache[1]
            z, lp = z2, lp
        else:
            # an equal Tensor that is not the cached sample, still on the tape
            lp = d.log_prob(z * 1.0)
        return ad.sum(ad.sin(z)) - ad.sum(lp), lp

    (v1, lp1), g1 = ad.value_and_grad(lambda m, s: elbo_like(m, s, True), argnums=(0, 1),
                                      has_aux=True)(mean, std)
    (v2, lp2), g2 = ad.value_and_grad(lambda m, s: elbo_like(m, s, False), argnums=(0, 1),
                                      has_aux=True)(mean, std)
    assert lp1.shape == (4, 2)
    np.testing.assert_allclose(lp1, lp2, rtol=1e-12)
    np.testing.assert_allclose(g1[0], g2[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(g1[1], g2[1], rtol=1e-10, atol=1e-12)


def test_path_derivative_gradient_is_zero_in_expectation_for_exact_q():
    """Sticking the landing: with q = p, the gradient of E[log q(z)] through the path
    alone vanishes in expectation (and is exactly 0 per sample for the mean of a
    standard normal score: -eps/sigma + eps/sigma = 0 under full derivative)."""
    def neg_entropy(m, s, stl):
        d = zd.Normal(m, logstd=s, use_path_derivative=stl)
        return ad.sum(ad.mean(d.log_prob(d.sample(20000, rng=0)), axis=0))

    g_full = ad.grad(neg_entropy, argnums=(0, 1))(np.zeros(2), np.zeros(2), False)
    np.testing.assert_allclose(g_full[0], 0, atol=1e-12)      # d/dmu = 0 exactly
    np.testing.assert_allclose(g_full[1], -1, atol=1e-12)     # d/dlogstd = -1 exactly
    g_stl = ad.grad(neg_entropy, argnums=(0, 1))(np.zeros(2), np.zeros(2), True)
    np.testing.assert_allclose(g_stl[0], 0, atol=4.5 / np.sqrt(20000))
    np.testing.assert_allclose(g_stl[1], -1, atol=4.5 * np.sqrt(2 / 20000))
