"""Edge values (issue 16): log_prob at and beyond the edges of the support and at
infinite parameters is the mathematical limit or -inf, never NaN; gradients there are
finite; small concentrations sample without NaN; non-numeric parameters raise errors
that name the distribution and the argument."""
import warnings

import numpy as np
import pytest
import scipy.special as sps
from scipy import stats

import autodiff as ad
import zsarray.distributions as zd

INF = np.inf
L = np.array([[1.0, 0.0], [0.5, 2.0]])


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _lp(d, x):
    return d.log_prob(np.asarray(x)).data


# ----------------------------------------------------------------------------- limits

# (id, distribution factory, value, expected log_prob)
LIMITS = [
    ("LogNormal at 0", lambda: zd.LogNormal(0.0, 1.0), 0.0, -INF),
    ("Bernoulli logits=inf at 1", lambda: zd.Bernoulli(logits=np.array(INF)), 1, 0.0),
    ("Bernoulli logits=inf at 0", lambda: zd.Bernoulli(logits=np.array(INF)), 0, -INF),
    ("Bernoulli logits=-inf at 0", lambda: zd.Bernoulli(logits=np.array(-INF)), 0, 0.0),
    ("Bernoulli logits=-inf at 1", lambda: zd.Bernoulli(logits=np.array(-INF)), 1, -INF),
    ("StudentT df=inf", lambda: zd.StudentT(INF, 0.3, 2.0), 0.5,
     stats.norm(0.3, 2.0).logpdf(0.5)),
    ("StudentT df=1e300", lambda: zd.StudentT(1e300, 0.3, 2.0), 0.5,
     stats.norm(0.3, 2.0).logpdf(0.5)),
    ("StudentT df=1e6", lambda: zd.StudentT(1e6, 0.3, 2.0), 4.0,
     stats.t(1e6, 0.3, 2.0).logpdf(4.0)),
    ("Logistic at -inf", lambda: zd.Logistic(0.0, 1.0), -INF, -INF),
    ("Logistic at +inf", lambda: zd.Logistic(0.0, 1.0), INF, -INF),
    ("Gamma(2) at inf", lambda: zd.Gamma(2.0, 1.0), INF, -INF),
    ("Gamma(0.5) at 0", lambda: zd.Gamma(0.5, 1.0), 0.0, INF),
    ("Gamma(1) at 0", lambda: zd.Gamma(1.0, 3.0), 0.0, np.log(3.0)),
    ("Poisson at inf", lambda: zd.Poisson(2.0), INF, -INF),
    ("Binomial logits=inf at n", lambda: zd.Binomial(np.array(INF), 3), 3, 0.0),
    ("Binomial logits=-inf at 0", lambda: zd.Binomial(np.array(-INF), 3), 0, 0.0),
    ("Binomial logits=inf at 1", lambda: zd.Binomial(np.array(INF), 3), 1, -INF),
    ("Categorical +inf logit, its class", lambda: zd.Categorical(np.array([INF, 0.0])), 0, 0.0),
    ("Categorical +inf logit, other class", lambda: zd.Categorical(np.array([INF, 0.0])), 1,
     -INF),
    ("OnehotCategorical +inf logit", lambda: zd.OnehotCategorical(np.array([0.0, INF])),
     [0, 1], 0.0),
    ("Multinomial +inf logit", lambda: zd.Multinomial(np.array([INF, 0.0]), 2), [2, 0], 0.0),
    ("MVN at inf", lambda: zd.MultivariateNormalCholesky(np.zeros(2), L), [INF, 0.0], -INF),
    ("MatrixNormal at -inf", lambda: zd.MatrixVariateNormalCholesky(np.zeros((2, 2)), L, L),
     [[0.0, -INF], [0.0, 0.0]], -INF),
    ("BinConcrete t<1 at 0", lambda: zd.BinConcrete(0.5, 0.0), 0.0, INF),
    ("BinConcrete t>1 at 1", lambda: zd.BinConcrete(2.0, 0.0), 1.0, -INF),
    # t = 1: the density is a / (a (1 - x) + x)^2 with a = e^l: 1/a at 0, a at 1
    ("BinConcrete t=1 at 0", lambda: zd.BinConcrete(1.0, 0.3), 0.0, -0.3),
    ("BinConcrete t=1 at 1", lambda: zd.BinConcrete(1.0, 0.3), 1.0, 0.3),
    ("Beta(2, 2) at 1", lambda: zd.Beta(2.0, 2.0), 1.0, -INF),
    ("Beta(0.5, 0.5) at 0", lambda: zd.Beta(0.5, 0.5), 0.0, INF),
    ("InverseGamma at 0", lambda: zd.InverseGamma(2.0, 1.0), 0.0, -INF),
]


@pytest.mark.parametrize("make,x,want", [c[1:] for c in LIMITS], ids=[c[0] for c in LIMITS])
def test_log_prob_is_the_limit(make, x, want):
    got = _lp(make(), x)
    assert not np.isnan(got)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_binconcrete_edge_limit_is_continuous():
    """At t = 1 the values at 0 and 1 continue the interior density."""
    d = zd.BinConcrete(1.0, 0.3)
    np.testing.assert_allclose(_lp(d, 1e-12), _lp(d, 0.0), atol=1e-9)
    np.testing.assert_allclose(_lp(d, 1 - 1e-12), _lp(d, 1.0), atol=1e-4)


def test_studentt_df_inf_samples_and_moments_are_the_normal():
    d = zd.StudentT(np.array([INF, INF]), 1.0, 2.0)
    x = d.sample(4000, rng=0).data
    assert np.all(np.isfinite(x))
    se = 2.0 / np.sqrt(len(x))
    assert np.all(np.abs(x.mean(0) - 1.0) < 4.5 * se)
    np.testing.assert_allclose(d.variance.data, 4.0)
    np.testing.assert_allclose(zd.StudentT(4.0, 0.0, 2.0).variance.data, 8.0)


# ----------------------------------------------------------------------------- gradients

def _param_grads(make, params, x):
    names = list(params)

    def f(*ts):
        return ad.sum(make(**dict(zip(names, ts))).log_prob(np.asarray(x)))
    args = [np.asarray(v, float) for v in params.values()]
    g = ad.grad(f, argnums=tuple(range(len(names))))(*args)
    return g if isinstance(g, tuple) else (g,)


GRADS = [
    # (id, factory(**params), params, value, expected gradients)
    ("Bernoulli logits=inf at 1", lambda logits: zd.Bernoulli(logits=logits), {"logits": INF},
     1, [0.0]),
    ("Bernoulli logits=-inf at 1", lambda logits: zd.Bernoulli(logits=logits),
     {"logits": -INF}, 1, [1.0]),
    ("Bernoulli probs=0 at 0", lambda probs: zd.Bernoulli(probs=probs), {"probs": 0.0}, 0,
     [-1.0]),
    ("Bernoulli probs=1 at 1", lambda probs: zd.Bernoulli(probs=probs), {"probs": 1.0}, 1,
     [1.0]),
    # df = inf: the Normal's gradients in loc and scale, 0 in df
    ("StudentT df=inf", lambda df, loc, scale: zd.StudentT(df, loc, scale),
     {"df": INF, "loc": 0.3, "scale": 2.0}, 1.5,
     [0.0, (1.5 - 0.3) / 4.0, -1 / 2.0 + (1.5 - 0.3) ** 2 / 8.0]),
    ("LogNormal at 0", lambda mean, std: zd.LogNormal(mean, std),
     {"mean": 0.0, "std": 1.0}, 0.0, [0.0, 0.0]),
    ("Gamma(2) at inf", lambda alpha, beta: zd.Gamma(alpha, beta),
     {"alpha": 2.0, "beta": 1.0}, INF, [0.0, 0.0]),
    ("MVN at inf", lambda mean: zd.MultivariateNormalCholesky(mean, L),
     {"mean": np.zeros(2)}, [INF, 0.0], [np.zeros(2)]),
    ("Categorical +inf logit", lambda logits: zd.Categorical(logits),
     {"logits": np.array([INF, 0.0])}, 0, [np.zeros(2)]),
    ("Binomial logits=inf at n", lambda logits: zd.Binomial(logits, 3), {"logits": INF}, 3,
     [0.0]),
    ("Logistic at -inf", lambda loc, scale: zd.Logistic(loc, scale),
     {"loc": 0.0, "scale": 1.0}, -INF, None),
]


@pytest.mark.parametrize("make,params,x,want", [c[1:] for c in GRADS], ids=[c[0] for c in GRADS])
def test_gradients_at_edges_are_finite(make, params, x, want):
    g = _param_grads(make, params, x)
    for gi in g:
        assert not np.any(np.isnan(gi)), g
    if want is not None:
        for gi, wi in zip(g, want):
            np.testing.assert_allclose(gi, wi, atol=1e-12)


def test_studentt_large_df_gradient_matches_finite_differences():
    ad.check_grads(lambda df, s: zd.StudentT(df, 0.2, s).log_prob(np.array([-3.0, 0.5, 7.0])),
                   np.array([250.0, 1e4, 3e5]), np.array([1.3, 0.7, 2.0]), eps=1e-3)


# ----------------------------------------------------------------------------- beyond the support

# validate_args=False: values outside the support have log_prob -inf and zero gradients
OUTSIDE = [
    ("Gamma", lambda: zd.Gamma(2.0, 1.0, validate_args=False), -1.0),
    ("Beta", lambda: zd.Beta(2.0, 2.0, validate_args=False), 1.5),
    ("LogNormal", lambda: zd.LogNormal(0.0, 1.0, validate_args=False), -1.0),
    ("Exponential", lambda: zd.Exponential(1.0, validate_args=False), -1.0),
    ("HalfNormal", lambda: zd.HalfNormal(1.0, validate_args=False), -1.0),
    ("FoldNormal", lambda: zd.FoldNormal(0.0, 1.0, validate_args=False), -1.0),
    ("HalfCauchy", lambda: zd.HalfCauchy(1.0, validate_args=False), -1.0),
    ("InverseGamma", lambda: zd.InverseGamma(2.0, 1.0, validate_args=False), -1.0),
    ("Poisson fractional", lambda: zd.Poisson(1.0, validate_args=False), 1.5),
    ("Poisson negative", lambda: zd.Poisson(1.0, validate_args=False), -1.0),
    ("Bernoulli logits", lambda: zd.Bernoulli(0.0, validate_args=False), 2),
    ("Bernoulli probs", lambda: zd.Bernoulli(probs=0.5, validate_args=False), 0.5),
    ("Categorical", lambda: zd.Categorical(np.zeros(3), validate_args=False), 5),
    ("Binomial", lambda: zd.Binomial(0.0, 3, validate_args=False), 5),
    ("Uniform", lambda: zd.Uniform(0.0, 1.0, validate_args=False), 2.0),
    ("BinConcrete", lambda: zd.BinConcrete(1.0, 0.0, validate_args=False), 2.0),
    ("Dirichlet", lambda: zd.Dirichlet(np.ones(2), validate_args=False), [0.7, 0.7]),
    ("Concrete", lambda: zd.Concrete(1.0, np.zeros(2), validate_args=False), [-0.5, 1.5]),
    ("OnehotCategorical", lambda: zd.OnehotCategorical(np.zeros(3), validate_args=False),
     [1, 1, 0]),
    ("Multinomial", lambda: zd.Multinomial(np.zeros(3), 4, validate_args=False), [1, 1, 1]),
]


@pytest.mark.parametrize("make,x", [c[1:] for c in OUTSIDE], ids=[c[0] for c in OUTSIDE])
def test_outside_support_is_minus_inf_without_validation(make, x):
    assert _lp(make(), x) == -INF


@pytest.mark.parametrize("make,x", [c[1:] for c in OUTSIDE], ids=[c[0] for c in OUTSIDE])
def test_outside_support_raises_with_validation(make, x):
    d = make()
    d.validate_args = True
    with pytest.raises(ValueError, match="must be in the support"):
        d.log_prob(np.asarray(x))


def test_outside_points_do_not_poison_parameter_gradients():
    """A batch with one value outside the support: -inf there, the others' gradient as
    without it (no NaN from the excluded point)."""
    x = np.array([0.5, -1.0, 2.0])

    def f(alpha):
        return ad.sum(ad.where(np.isfinite(zd.Gamma(alpha, 1.0, validate_args=False)
                                           .log_prob(x).data), zd.Gamma(
            alpha, 1.0, validate_args=False).log_prob(x), 0.0))
    g = ad.grad(f)(np.array(2.0))
    want = np.log(0.5) + np.log(2.0) - 2 * sps.digamma(2.0)
    np.testing.assert_allclose(g, want, rtol=1e-12)


def test_nan_values_stay_nan_without_validation():
    assert np.isnan(_lp(zd.Normal(0.0, 1.0, validate_args=False), np.nan))
    assert np.isnan(_lp(zd.Gamma(2.0, 1.0, validate_args=False), np.nan))


# ----------------------------------------------------------------------------- small concentrations

@pytest.mark.parametrize("a", [1e-3, 1e-2])
def test_beta_small_concentration_samples(a):
    n = 20000
    x = zd.Beta(a, a).sample(n, rng=0).data
    assert not np.isnan(x).any()
    assert np.all((x >= 0) & (x <= 1))
    # symmetric: mean 1/2 (sd of one draw ~ 1/2), half the draws at each end
    assert abs(x.mean() - 0.5) < 4.5 * x.std() / np.sqrt(n)
    near0 = np.mean(x < 0.01)
    p = stats.beta(a, a).cdf(0.01)
    assert abs(near0 - p) < 4.5 * np.sqrt(p * (1 - p) / n)


def test_beta_small_concentration_log_prob_of_samples_is_not_nan():
    d = zd.Beta(1e-3, 1e-3)
    x = d.sample(2000, rng=1)
    assert not np.isnan(d.log_prob(x).data).any()


@pytest.mark.parametrize("a", [1e-3, 1e-2])
def test_dirichlet_small_concentration_samples(a):
    n = 10000
    x = zd.Dirichlet(np.full(3, a)).sample(n, rng=0).data
    assert not np.isnan(x).any()
    np.testing.assert_allclose(x.sum(-1), 1.0, atol=1e-12)
    # each coordinate has mean 1/3; nearly every draw has one coordinate near 1
    se = x.std(0) / np.sqrt(n)
    assert np.all(np.abs(x.mean(0) - 1 / 3) < 4.5 * se)
    assert np.mean(x.max(-1) > 0.99) > 0.9


def test_dirichlet_small_concentration_gradient_is_finite():
    def f(alpha):
        return ad.sum(ad.square(zd.Dirichlet(alpha).sample(200, rng=2)))
    g = ad.grad(f)(np.full(3, 1e-3))
    assert np.all(np.isfinite(g))


@pytest.mark.parametrize("a", [1e-3, 0.05, 0.7, 3.0])
def test_log_gamma_sample_moments(a):
    """E[log X] = digamma(a), Var[log X] = trigamma(a), and the implicit gradient's mean
    d/da E[log X] = trigamma(a)."""
    n = 40000
    th = np.full(n, a)
    lx = zd.log_gamma_sample(th, np.random.default_rng(3)).data
    assert np.all(np.isfinite(lx))
    assert abs(lx.mean() - sps.digamma(a)) < 4.5 * lx.std() / np.sqrt(n)
    g = ad.grad(lambda t: ad.sum(zd.log_gamma_sample(t, np.random.default_rng(3))))(th)
    assert abs(g.mean() - sps.polygamma(1, a)) < 4.5 * g.std() / np.sqrt(n)


@pytest.mark.parametrize("a", [1e-3, 0.05, 0.7, 3.0])
def test_log_gamma_sample_grad_matches_inverse_cdf(a):
    """d log x / d a at fixed CDF level, against central differences of
    log gammaincinv, on both sides of the small-x switch."""
    q = np.array([1e-12, 1e-6, 0.01, 0.3, 0.5, 0.9])
    x = sps.gammaincinv(a, q)
    keep = x > 1e-300
    q, x = q[keep], x[keep]
    h = 1e-6 * a
    fd = (np.log(sps.gammaincinv(a + h, q)) - np.log(sps.gammaincinv(a - h, q))) / (2 * h)
    got = zd.log_gamma_sample_grad(np.log(x), np.full_like(x, a))
    np.testing.assert_allclose(got, fd, rtol=2e-5)


def test_log_gamma_sample_grad_small_x_form_beyond_underflow():
    """Where x itself underflows (log x = -5000), the small-x form is exact to O(x)."""
    a = np.array([1e-3])
    np.testing.assert_allclose(zd.log_gamma_sample_grad(np.array([-5000.0]), a),
                               (sps.digamma(1 + a) + 5000.0) / a, rtol=1e-14)


# ----------------------------------------------------------------------------- parameter types

NON_NUMERIC = [
    ("a string", "a", "'a' \\(str\\)"),
    ("None", None, "None"),
    ("an object", object(), "\\(object\\)"),
    ("a bool", True, "True \\(bool\\)"),
    ("a complex", 1 + 2j, "\\(complex\\)"),
    ("a list with a string", [1.0, "x"], "\\(list\\)"),
    ("a string array", np.array(["a", "b"]), "an array of dtype <U1"),
    ("a dict", {"a": 1}, "\\(dict\\)"),
]

FACTORIES = [
    ("Normal", "std", lambda v: zd.Normal(0.0, v)),
    ("Normal", "mean", lambda v: zd.Normal(v, 1.0)),
    ("Gamma", "alpha", lambda v: zd.Gamma(v, 1.0)),
    ("Bernoulli", "probs", lambda v: zd.Bernoulli(probs=v)),
    ("Categorical", "logits", lambda v: zd.Categorical(v)),
    ("Binomial", "n_experiments", lambda v: zd.Binomial(0.0, v)),
    ("Dirichlet", "alpha", lambda v: zd.Dirichlet(v)),
    ("MultivariateNormalCholesky", "cov_tril",
     lambda v: zd.MultivariateNormalCholesky(np.zeros(2), v)),
    ("StudentT", "df", lambda v: zd.StudentT(v, 0.0, 1.0)),
]


@pytest.mark.parametrize("label,value,shown", NON_NUMERIC, ids=[n[0] for n in NON_NUMERIC])
@pytest.mark.parametrize("cls,arg,make", FACTORIES, ids=[f"{f[0]}.{f[1]}" for f in FACTORIES])
def test_non_numeric_parameter_names_class_and_argument(cls, arg, make, label, value, shown):
    if value is None and arg in ("std", "probs"):      # an alternative parameter left out
        with pytest.raises(ValueError, match=f"^{cls}: pass exactly one of"):
            make(value)
        return
    with pytest.raises(TypeError, match=f"^{cls}: {arg} must be .*; got .*{shown}"):
        make(value)


def test_numeric_parameters_still_accepted():
    assert zd.Normal(np.int64(1), 2).batch_shape == ()
    assert zd.Normal([0, 1], [1.0, 2.0]).batch_shape == (2,)
    assert zd.Binomial(0.0, np.array([1, 2])).batch_shape == (2,)
    assert zd.Normal(ad.Tensor(np.zeros(2)), 1.0).batch_shape == (2,)


def test_empty_event_dims_raise():
    with pytest.raises(ValueError, match="Categorical: logits must have nonempty event dims"):
        zd.Categorical(np.zeros((2, 0)))
    with pytest.raises(ValueError, match="Dirichlet: alpha must have nonempty event dims"):
        zd.Dirichlet(np.zeros(0))


# ----------------------------------------------------------------------------- entropy and KL

@pytest.mark.parametrize("df", [0.3, 5.0, 150.0, 1e5, 1e12, INF])
def test_studentt_entropy_up_to_df_inf(df):
    want = stats.t(df, 0, 2.0).entropy() if np.isfinite(df) else stats.norm(0, 2.0).entropy()
    np.testing.assert_allclose(zd.StudentT(df, 0.0, 2.0).entropy().data, want, rtol=1e-13)


def test_studentt_entropy_gradient():
    ad.check_grads(lambda d: zd.StudentT(d, 0.0, 2.0).entropy(), np.array([0.7, 50.0, 150.0, 3e4]))
    assert ad.grad(lambda d: zd.StudentT(d, 0.0, 2.0).entropy())(np.array(INF)) == 0.0


@pytest.mark.parametrize("logit", [INF, -INF])
def test_kl_and_entropy_at_infinite_logits(logit):
    def kl(t):
        return zd.kl_divergence(zd.Bernoulli(logits=t), zd.Bernoulli(logits=np.array(0.0)))
    np.testing.assert_allclose(kl(np.array(logit)).data, np.log(2))
    assert ad.grad(kl)(np.array(logit)) == 0.0
    assert zd.Bernoulli(logits=np.array(logit)).entropy().data == 0.0
    lg = np.array([logit, 0.0])
    ent = zd.Categorical(lg).entropy().data
    np.testing.assert_allclose(ent, 0.0 if logit == INF else 0.0, atol=0)
    g = ad.grad(lambda t: zd.kl_divergence(zd.Categorical(t), zd.Categorical(np.zeros(2))))(lg)
    assert not np.isnan(g).any()


@pytest.mark.parametrize("label,value,shown", [n for n in NON_NUMERIC if n[0] != "a bool"],
                         ids=[n[0] for n in NON_NUMERIC if n[0] != "a bool"])
def test_non_numeric_given_names_class(label, value, shown):
    with pytest.raises(TypeError, match=f"^Normal.log_prob: given must be .*; got .*{shown}"):
        zd.Normal(0.0, 1.0).log_prob(value)


def test_bool_given_is_a_value_of_a_discrete_distribution():
    np.testing.assert_allclose(zd.Bernoulli(probs=0.25).log_prob(True).data, np.log(0.25))
