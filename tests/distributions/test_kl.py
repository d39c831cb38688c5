"""Closed-form KL divergences against Monte Carlo, and the registry's dispatch/errors."""
import numpy as np
import pytest

import autodiff as ad
import zsarray.distributions as zd

N = 40000
Z = 4.5
r = np.random.default_rng(5)


def _tril(n):
    a = np.tril(0.3 * r.standard_normal((n, n)), -1)
    a[np.arange(n), np.arange(n)] = r.uniform(0.5, 1.5, n)
    return a


PAIRS = [
    (zd.Normal(r.standard_normal((2, 3)), std=r.uniform(0.5, 2, 3)),
     zd.Normal(r.standard_normal(3), logstd=r.uniform(-0.5, 0.5, (2, 3)))),
    (zd.MultivariateNormalCholesky(r.standard_normal((2, 3)), _tril(3)),
     zd.MultivariateNormalCholesky(r.standard_normal(3), _tril(3))),
    (zd.Bernoulli(logits=r.standard_normal(3)), zd.Bernoulli(probs=r.uniform(0.1, 0.9, 3))),
    (zd.Categorical(r.standard_normal((2, 4))), zd.Categorical(r.standard_normal(4))),
    (zd.OnehotCategorical(r.standard_normal((2, 4))), zd.OnehotCategorical(r.standard_normal(4))),
    (zd.Gamma(r.uniform(1, 3, 3), r.uniform(0.5, 2, 3)), zd.Gamma(r.uniform(1, 3, 3), 1.3)),
    (zd.Beta(r.uniform(1, 3, 3), r.uniform(1, 3, 3)), zd.Beta(2.0, r.uniform(1, 3, 3))),
    (zd.Dirichlet(r.uniform(1, 3, (2, 4))), zd.Dirichlet(r.uniform(1, 3, 4))),
    (zd.Exponential(r.uniform(0.5, 2, 3)), zd.Exponential(r.uniform(0.5, 2, 3))),
    (zd.Laplace(r.standard_normal(3), r.uniform(0.5, 2, 3)), zd.Laplace(0.3, r.uniform(0.5, 2, 3))),
    (zd.Uniform(np.array([0.0, 0.2]), np.array([1.0, 0.5])), zd.Uniform(-1.0, 2.0)),
]
IDS = [type(p).__name__ for p, _ in PAIRS]


@pytest.mark.parametrize("p,q", PAIRS, ids=IDS)
def test_kl_matches_monte_carlo(p, q):
    kl = zd.kl_divergence(p, q).data
    x = p.sample(N, rng=4)
    d = (p.log_prob(x) - q.log_prob(x)).data
    assert kl.shape == d.shape[1:]
    se = d.std(0) / np.sqrt(N) + 1e-12
    assert np.all(np.abs(d.mean(0) - kl) / se < Z), (d.mean(0), kl)
    assert np.all(kl >= -1e-12)


def test_kl_of_equal_distributions_is_zero_and_grouped():
    p = zd.Normal(np.ones((2, 3)), std=2.0, group_ndims=1)
    kl = zd.kl_divergence(p, zd.Normal(np.ones((2, 3)), std=2.0, group_ndims=1))
    assert kl.shape == (2,)
    np.testing.assert_allclose(kl.data, 0, atol=1e-15)


def test_kl_uniform_outside_support_is_inf():
    kl = zd.kl_divergence(zd.Uniform(-3.0, 1.0), zd.Uniform(0.0, 2.0))
    assert np.isinf(kl.data)


def test_kl_is_differentiable():
    f = lambda m, s: ad.sum(zd.kl_divergence(zd.Normal(m, logstd=s), zd.Normal(0.0, std=1.0)))
    ad.check_grads(f, np.array([0.3, -1.0]), np.array([0.2, -0.4]))


def test_missing_pair_names_both_classes_and_registered_partners():
    with pytest.raises(NotImplementedError, match=r"KL\(Normal \|\| Gamma\).*Normal: Normal"):
        zd.kl_divergence(zd.Normal(0.0, std=1.0), zd.Gamma(1.0, 1.0))
    with pytest.raises(NotImplementedError, match="registered for Poisson: none"):
        zd.kl_divergence(zd.Poisson(1.0), zd.Poisson(2.0))


def test_group_ndims_and_value_shape_must_agree():
    with pytest.raises(ValueError, match="same group_ndims"):
        zd.kl_divergence(zd.Normal(np.zeros(3), std=1.0, group_ndims=1),
                         zd.Normal(np.zeros(3), std=1.0))
    with pytest.raises(ValueError, match="same value_shape"):
        zd.kl_divergence(zd.Dirichlet(np.ones(3)), zd.Dirichlet(np.ones(4)))


def test_register_kl_and_mro_dispatch():
    class MyNormal(zd.Normal):
        pass

    p, q = MyNormal(0.0, std=1.0), zd.Normal(1.0, std=1.0)
    np.testing.assert_allclose(zd.kl_divergence(p, q).data, 0.5)   # inherits Normal-Normal

    @zd.register_kl(MyNormal, zd.Normal)
    def _kl(p, q):
        return ad.tensor(np.float64(42.0))

    try:
        assert zd.kl_divergence(p, q).data == 42.0                  # most specific wins
    finally:
        del zd.KL_REGISTRY[(MyNormal, zd.Normal)]
