"""Empirical, Implicit, FlowDistribution; boundary values; densities without a scipy
reference (the Concrete family); FoldNormal support; supports and attributes."""
import numpy as np
import pytest
from scipy import integrate, special as sps

import autodiff as ad
import zsarray.distributions as zd

from .cases import CASES


# ----------------------------------------------------------------------------- boundaries

@pytest.mark.parametrize("a,b,at0,at1", [
    (1.0, 3.0, np.log(3.0), -np.inf),     # alpha = 1: density b at 0
    (0.5, 2.0, np.inf, -np.inf),          # alpha < 1: +inf at 0
    (2.0, 1.0, -np.inf, np.log(2.0)),     # beta = 1: density a at 1
    (3.0, 0.5, -np.inf, np.inf),          # beta < 1: +inf at 1
])
def test_beta_log_prob_at_0_and_1(a, b, at0, at1):
    lp = zd.Beta(a, b).log_prob(np.array([0.0, 1.0])).data
    np.testing.assert_allclose(lp, [at0, at1], rtol=1e-12)


def test_gamma_log_prob_at_0():
    np.testing.assert_allclose(zd.Gamma(1.0, 2.5).log_prob(0.0).data, np.log(2.5), rtol=1e-12)
    assert np.isposinf(zd.Gamma(0.5, 1.0).log_prob(0.0).data)
    assert np.isneginf(zd.InverseGamma(2.0, 1.0).log_prob(0.0).data)


def test_foldnormal_samples_are_nonnegative():
    x = zd.FoldNormal(np.array([-3.0, 0.0, 3.0]), std=1.0).sample(1000, rng=0).data
    assert np.all(x >= 0)


# ----------------------------------------------------------------------------- concrete family

def test_binconcrete_normalizes():
    d = zd.BinConcrete(np.array([0.4, 1.0, 2.5]), np.array([-1.0, 0.3, 2.0]))
    for i in range(3):
        # QAGP evaluates the end points, where the density is its limit (+inf for
        # temperature < 1, integrable): a single point does not change the integral
        f = lambda x: 0.0 if x in (0.0, 1.0) else float(  # noqa: E731
            np.exp(d.log_prob(np.full(3, x)).data[i]))
        total, _ = integrate.quad(f, 0, 1, limit=200, points=[1e-6, 1 - 1e-6])
        assert abs(total - 1) < 1e-6


def test_concrete_with_two_classes_is_binconcrete():
    t, lg = 0.6, np.array([0.7, -0.4])
    x1 = np.array([0.1, 0.5, 0.93])
    x = np.stack([x1, 1 - x1], -1)
    got = zd.Concrete(t, lg).log_prob(x).data
    ref = zd.BinConcrete(t, lg[0] - lg[1]).log_prob(x1).data
    np.testing.assert_allclose(got, ref, rtol=1e-10)


def test_expconcrete_is_log_of_concrete():
    """Change of variables on the first K-1 coordinates: p_Y(y) = p_X(e^y) prod e^{y_k}."""
    t, lg = np.array([0.5, 1.5]), np.array([0.2, -1.0, 0.5])
    y = zd.ExpConcrete(t, lg).sample(4, rng=0).data
    got = zd.ExpConcrete(t, lg).log_prob(y).data
    ref = zd.Concrete(t, lg).log_prob(np.exp(y)).data + y[..., :-1].sum(-1)
    np.testing.assert_allclose(got, ref, rtol=1e-10)


def test_concrete_normalizes_monte_carlo():
    """E_{x ~ Dirichlet(1)}[p(x)] / (K-1)! = 1 / vol(simplex) * ... = 1 within MCSE."""
    k, n = 3, 200000
    x = np.random.default_rng(0).dirichlet(np.ones(k), n)
    w = np.exp(zd.Concrete(1.3, np.array([0.5, -0.2, 0.1])).log_prob(x).data) / sps.factorial(k - 1)
    assert abs(w.mean() - 1) < 4.5 * w.std() / np.sqrt(n)


# ----------------------------------------------------------------------------- special

def test_empirical_has_shapes_only():
    d = zd.Empirical((2, 3), np.float32, value_shape=(4,), group_ndims=1)
    assert (d.batch_shape, d.value_shape, d.dtype, d.is_continuous) == ((2, 3), (4,), np.float32, True)
    assert not zd.Empirical((), np.int32).is_continuous
    with pytest.raises(ValueError, match="cannot sample from an Empirical"):
        d.sample(1, rng=0)
    with pytest.raises(ValueError, match="has no log-probability"):
        d.log_prob(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="has no log-probability"):
        d.prob(np.zeros((2, 3, 4)))


def test_implicit():
    s = ad.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    d = zd.Implicit(s, value_shape=(3,))
    assert (d.batch_shape, d.value_shape) == ((2,), (3,))
    assert d.sample() is s and d.sample(1, rng=0).shape == (1, 2, 3)
    assert d.sample(1, rng=0).requires_grad            # gradients flow through the samples
    lp = d.log_prob(np.array([[0.0, 1, 2], [0, 0, 0]])).data
    np.testing.assert_array_equal(lp, [np.inf, -np.inf])
    with pytest.raises(ValueError, match="n_samples must be None or 1"):
        d.sample(2, rng=0)
    di = zd.Implicit(np.array([1, 2, 3]))
    assert not di.is_continuous and di.sample().dtype == np.int64
    np.testing.assert_array_equal(di.log_prob(np.array([1, 0, 3])).data, [0, -np.inf, 0])


class Affine:
    """y = a * x + b elementwise; log-dets summed over the value dims (here none)."""

    def __init__(self, a, b):
        self.a, self.b = a, b

    def forward(self, x):
        return self.a * x + self.b, ad.log(ad.abs(self.a)) * ad.ones_like(x)

    def inverse(self, y):
        return (y - self.b) / self.a, -ad.log(ad.abs(self.a)) * ad.ones_like(y)


def test_flow_distribution_matches_transformed_normal():
    mu, s = np.array([0.5, -1.0, 2.0]), np.array([1.0, 0.5, 2.0])
    a, b = np.array([2.0, -0.5, 1.5]), 0.3
    base = zd.Normal(mu, std=s)
    flow = zd.FlowDistribution(base, [Affine(a, b), Affine(1.5, -1.0)], group_ndims=1)
    direct = zd.Normal(1.5 * (a * mu + b) - 1.0, std=np.abs(1.5 * a) * s, group_ndims=1)
    y = flow.sample(5, rng=0)
    assert y.shape == (5, 3) and flow.is_reparameterized
    np.testing.assert_allclose(flow.log_prob(y).data, direct.log_prob(y.data).data, rtol=1e-12)
    np.testing.assert_allclose(y.data, 1.5 * (a * base.sample(5, rng=0).data + b) - 1.0)
    g = ad.grad(lambda m: ad.sum(zd.FlowDistribution(zd.Normal(m, std=s), Affine(a, b))
                                 .sample(3, rng=0)))(mu)
    np.testing.assert_allclose(g, 3 * a)


def test_flow_distribution_errors():
    with pytest.raises(TypeError, match="base must be a Distribution"):
        zd.FlowDistribution("normal", [])
    with pytest.raises(TypeError, match=r"transforms\[0\] \(object\) must have forward"):
        zd.FlowDistribution(zd.Normal(0.0, std=1.0), [object()])
    with pytest.raises(ValueError, match="group_ndims"):
        zd.FlowDistribution(zd.Normal(0.0, std=1.0), [], group_ndims=1)


# ----------------------------------------------------------------------------- attributes

SUPPORTS = {"Normal": "real", "Gamma": "positive", "Beta": "unit_interval",
            "Dirichlet": "simplex", "Poisson": "nonnegative_integer", "Bernoulli": "boolean",
            "MultivariateNormalCholesky": "real_vector", "Categorical": "integer_interval",
            "OnehotCategorical": "onehot"}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_attributes(case):
    d = case.cls(**case.params)
    assert d.support.name in str(d.support) and d.support == d.support.name
    assert SUPPORTS.get(case.cls.__name__, d.support.name) == d.support
    assert d.is_reparameterized == d.has_rsample and d.use_path_derivative is False
    assert d.group_ndims == 0 and isinstance(d.is_continuous, bool)
    for k, v in case.params.items():
        assert d.params[k].shape == np.shape(v)
    assert repr(d).startswith(case.cls.__name__)


# ------------------------------------------------------------------ UnnormalizedMultinomial

def _unnormalized_multinomial_ref(logits, x, normalize=True):
    """sum_k x_k log p_k with p = softmax(logits) (or log p = logits)."""
    logp = logits - sps.logsumexp(logits, axis=-1, keepdims=True) if normalize else logits
    return np.sum(x * logp, axis=-1)


@pytest.mark.parametrize("normalize", [True, False])
def test_unnormalized_multinomial_log_prob_shapes_and_gradient(normalize):
    rng = np.random.default_rng(7)
    logits = rng.standard_normal((2, 1, 4))                      # batch [2, 1], K = 4
    if not normalize:
        logits = logits - sps.logsumexp(logits, axis=-1, keepdims=True)
    x = rng.integers(0, 6, size=(3, 4)).astype(float)           # broadcasts to [2, 3]
    d = zd.UnnormalizedMultinomial(logits, normalize_logits=normalize)
    assert d.batch_shape == (2, 1) and d.value_shape == (4,) and not d.is_continuous
    lp = d.log_prob(x)
    assert lp.shape == (2, 3)
    np.testing.assert_allclose(lp.data, _unnormalized_multinomial_ref(logits, x, normalize),
                               rtol=1e-12)
    # no n! / prod x_k! term: it differs from Multinomial's log-pmf by exactly that
    n = x.sum(-1)
    full = zd.Multinomial(logits, n_experiments=n).log_prob(x).data
    np.testing.assert_allclose(full - lp.data, np.broadcast_to(
        sps.gammaln(n + 1) - sps.gammaln(x + 1).sum(-1), (2, 3)), rtol=1e-12)
    assert zd.UnnormalizedMultinomial(logits, group_ndims=1).log_prob(x).shape == (2,)
    ad.check_grads(lambda l: zd.UnnormalizedMultinomial(
        l, normalize_logits=normalize).log_prob(x), logits)
    f32 = zd.UnnormalizedMultinomial(logits.astype(np.float32)).log_prob(x.astype(np.float32))
    assert f32.dtype == np.float32
    with pytest.raises(NotImplementedError, match="cannot be sampled"):
        d.sample(1, rng=0)


def test_scalar_poisson_and_binomial_samples():
    """A 0-d parameter: NumPy's generator returns a Python int, still an int32 array."""
    for d in (zd.Poisson(1.0), zd.Binomial(0.0, 3)):
        x = d.sample(rng=0)
        assert x.shape == () and x.dtype == np.int32
