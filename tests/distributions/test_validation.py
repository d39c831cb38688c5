"""Every error path of the distributions: bad parameters, shapes, values, arguments."""
import numpy as np
import pytest

import zsarray.distributions as zd
from zsarray.distributions import make_rng

L = np.array([[1.0, 0.0], [0.5, 2.0]])

BAD_PARAMS = [
    (lambda: zd.Normal(0.0, std=-1.0), r"Normal: std must be positive \(> 0\); got -1.0"),
    (lambda: zd.Normal(np.array([0.0, np.nan]), std=1.0), r"mean must be real.*at index \(1,\)"),
    (lambda: zd.Bernoulli(probs=1.5), "probs must be a probability"),
    (lambda: zd.Categorical(np.array([0.0, np.nan])), "logits must be a real vector"),
    (lambda: zd.Gamma(np.array([1.0, 0.0]), 1.0), r"alpha must be positive.*1 of 2 entries"),
    (lambda: zd.Beta(1.0, -2.0), "beta must be positive"),
    (lambda: zd.Binomial(0.0, -1), "n_experiments must be a nonnegative integer"),
    (lambda: zd.Binomial(0.0, 2.5), "n_experiments must be a nonnegative integer"),
    (lambda: zd.Uniform(1.0, 1.0), "maxval must be greater than minval; got minval=1.0"),
    (lambda: zd.MultivariateNormalCholesky(np.zeros(2), L.T), "cov_tril must be lower triangular"),
    (lambda: zd.MultivariateNormalCholesky(np.zeros(2), -L), "cov_tril must be lower triangular"),
    (lambda: zd.Dirichlet(np.array([1.0, -1.0])), "alpha must be positive"),
    (lambda: zd.StudentT(0.0, 0.0, 1.0), "df must be positive"),
    (lambda: zd.Poisson(0.0), "rate must be positive"),
    (lambda: zd.Multinomial(np.zeros(3), -2), "n_experiments must be a nonnegative integer"),
]


@pytest.mark.parametrize("make,msg", BAD_PARAMS, ids=[m for _, m in BAD_PARAMS])
def test_bad_parameters_raise(make, msg):
    with pytest.raises(ValueError, match=msg):
        make()


def test_validate_args_false_skips_parameter_checks():
    d = zd.Normal(0.0, std=-1.0, validate_args=False)
    assert d.log_prob(0.0).shape == ()


BAD_SHAPES = [
    (lambda: zd.Normal(np.zeros(3), std=np.ones(2)), r"batch shapes do not broadcast: mean \(3,\), std \(2,\)"),
    (lambda: zd.MultivariateNormalCholesky(0.0, L), r"mean must have at least 1 dimension"),
    (lambda: zd.MultivariateNormalCholesky(np.zeros(3), L), r"cov_tril must have shape \[..., 3, 3\]"),
    (lambda: zd.MatrixVariateNormalCholesky(np.zeros((2, 3)), L, L), r"v_tril must have shape \[..., 3, 3\]"),
    (lambda: zd.MatrixVariateNormalCholesky(np.zeros((3, 2)), L, L), r"u_tril must have shape \[..., 3, 3\]"),
    (lambda: zd.Normal(0.0, std=1.0, logstd=0.0), "exactly one of std and logstd \\(got both\\)"),
    (lambda: zd.LogNormal(0.0), "exactly one of std and logstd \\(got neither\\)"),
    (lambda: zd.Bernoulli(), "exactly one of logits and probs \\(got neither\\)"),
    (lambda: zd.Bernoulli(0.0, 0.5), "exactly one of logits and probs \\(got both\\)"),
    (lambda: zd.Normal(0.0, std=1.0, dtype=np.int32), "dtype must be a float dtype"),
    (lambda: zd.Bernoulli(0.0, dtype=np.complex64), "dtype must be an integer or float dtype"),
    (lambda: zd.Normal(np.zeros(3), std=1.0, group_ndims=2), r"group_ndims must be an int in \[0, 1\]"),
    (lambda: zd.Normal(np.zeros(3), std=1.0, group_ndims=-1), "group_ndims must be an int"),
    (lambda: zd.Normal(np.zeros(3), std=1.0, group_ndims=1.0), "group_ndims must be an int"),
    (lambda: zd.Normal(np.zeros(3), std=1.0, group_ndims=True), "group_ndims must be an int"),
    (lambda: zd.Bernoulli(0.0, is_reparameterized=True), "is_reparameterized=True is not supported"),
    (lambda: zd.Implicit(np.zeros((2, 3)), value_shape=(2,)), "must end with value_shape"),
]


@pytest.mark.parametrize("make,msg", BAD_SHAPES, ids=[m for _, m in BAD_SHAPES])
def test_bad_shapes_and_options_raise(make, msg):
    with pytest.raises(ValueError, match=msg):
        make()


BAD_VALUES = [
    (zd.Normal(0.0, std=1.0), np.nan, "support 'real'"),
    (zd.Gamma(2.0, 1.0), -1.0, r"support 'positive' \(positive \(> 0\)\); got -1.0"),
    (zd.Beta(2.0, 2.0), 1.5, "support 'unit_interval'"),
    (zd.Bernoulli(0.0), 0.5, "support 'boolean'"),
    (zd.Categorical(np.zeros(3)), 3, "support 'integer_interval'"),
    (zd.Binomial(0.0, 4), 5, "support 'integer_interval'"),
    (zd.Poisson(1.0), 1.5, "support 'nonnegative_integer'"),
    (zd.Uniform(0.0, 1.0), 1.5, "support 'interval'"),
    (zd.Exponential(1.0), -0.1, "support 'nonnegative'"),
    (zd.Dirichlet(np.ones(3)), np.array([0.5, 0.5, 0.5]), "support 'simplex'"),
    (zd.Concrete(1.0, np.zeros(2)), np.array([0.2, 0.3]), "support 'simplex'"),
    (zd.ExpConcrete(1.0, np.zeros(2)), np.array([0.0, 0.0]), "support 'log_simplex'"),
    (zd.OnehotCategorical(np.zeros(3)), np.array([1, 1, 0]), "support 'onehot'"),
    (zd.Multinomial(np.zeros(3), 4), np.array([1, 1, 1]), "support 'multinomial'"),
    (zd.UnnormalizedMultinomial(np.zeros(3)), np.array([1, -1, 1]), "nonnegative_integer_vector"),
    (zd.MultivariateNormalCholesky(np.zeros(2), L), np.array([0.0, np.nan]), "real_vector"),
    (zd.MatrixVariateNormalCholesky(np.zeros((2, 2)), L, L), np.full((2, 2), np.nan), "real_matrix"),
]


@pytest.mark.parametrize("dist,value,msg", BAD_VALUES, ids=[m for _, _, m in BAD_VALUES])
def test_out_of_support_values_raise(dist, value, msg):
    with pytest.raises(ValueError, match=msg):
        dist.log_prob(value)


def test_out_of_support_passes_without_validation():
    assert np.isneginf(zd.Uniform(0.0, 1.0, validate_args=False).log_prob(2.0).data)


def test_given_shape_errors():
    mvn = zd.MultivariateNormalCholesky(np.zeros(2), L)
    with pytest.raises(ValueError, match=r"given must end with the value shape \(2,\), got shape \(3,\)"):
        mvn.log_prob(np.zeros(3))
    with pytest.raises(ValueError, match=r"given of shape \(4,\) does not broadcast against"):
        zd.Normal(np.zeros(3), std=1.0).log_prob(np.zeros(4))


@pytest.mark.parametrize("n", [0, -1, 2.5, True, "3"])
def test_bad_n_samples(n):
    with pytest.raises(ValueError, match="n_samples must be None or a positive int"):
        zd.Normal(0.0, std=1.0).sample(n, rng=0)


@pytest.mark.parametrize("rng", [np.random.RandomState(0), "seed", 1.5, True])
def test_bad_rng(rng):
    with pytest.raises(TypeError, match="rng: expected None, an int seed"):
        zd.Normal(0.0, std=1.0).sample(2, rng=rng)


def test_rng_forms():
    d = zd.Normal(np.zeros(3), std=1.0)
    a = d.sample(2, rng=3).data
    np.testing.assert_array_equal(a, d.sample(2, rng=np.random.default_rng(3)).data)
    np.testing.assert_array_equal(a, d.sample(2, rng=np.int64(3)).data)
    assert not np.array_equal(d.sample(2).data, d.sample(2).data)   # None: fresh entropy
    g = np.random.default_rng(0)
    assert make_rng(g) is g


def test_missing_closed_forms_raise():
    with pytest.raises(NotImplementedError, match="Cauchy has no closed-form mean"):
        zd.Cauchy(0.0, 1.0).mean
    with pytest.raises(NotImplementedError, match="HalfCauchy has no closed-form variance"):
        zd.HalfCauchy(1.0).variance
    with pytest.raises(NotImplementedError, match="FoldNormal has no closed-form entropy"):
        zd.FoldNormal(0.0, std=1.0).entropy()


def test_unnormalized_multinomial_cannot_sample():
    with pytest.raises(NotImplementedError, match="use Multinomial"):
        zd.UnnormalizedMultinomial(np.zeros(3)).sample(2, rng=0)
