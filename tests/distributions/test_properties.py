"""Property tests of the distributions (hypothesis): random valid parameters give a
log_prob that matches scipy.stats inside the support and at its edges (the limit,
never NaN) and is -inf beyond it (or raises with validate_args); random invalid
parameters raise a ValueError naming the class and the argument."""
import warnings

import numpy as np
import pytest
import scipy.special as sps
from hypothesis import assume, given, settings, strategies as st
from scipy import stats

import zsarray.distributions as zd

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True)
INF = np.inf


def _f(lo, hi):
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


POS = _f(0.05, 20.0)
REAL = _f(-10.0, 10.0)
SHAPE = _f(0.05, 30.0)


class Spec:
    """A distribution, strategies for its parameters, its scipy log-density, and its
    support as (lower, upper, whether the lower end is attained, discrete)."""

    def __init__(self, cls, params, ref, lower=-INF, upper=INF, discrete=False, bad=None):
        self.cls, self.params, self.ref = cls, params, ref
        self.lower, self.upper, self.discrete = lower, upper, discrete
        self.bad = bad or {}            # parameter -> strategy of invalid values


SPECS = {
    "Normal": Spec(lambda m, s, **k: zd.Normal(m, s, **k), dict(m=REAL, s=POS),
                   lambda p, x: stats.norm(p["m"], p["s"]).logpdf(x), bad={"s": _f(-5, 0)}),
    "LogNormal": Spec(lambda m, s, **k: zd.LogNormal(m, s, **k), dict(m=_f(-3, 3), s=_f(0.1, 3)),
                      lambda p, x: stats.lognorm(p["s"], scale=np.exp(p["m"])).logpdf(x),
                      lower=0.0, bad={"s": _f(-5, 0)}),
    "HalfNormal": Spec(lambda s, **k: zd.HalfNormal(s, **k), dict(s=POS),
                       lambda p, x: stats.halfnorm(scale=p["s"]).logpdf(x), lower=0.0,
                       bad={"s": _f(-5, 0)}),
    "Gamma": Spec(lambda a, b, **k: zd.Gamma(a, b, **k), dict(a=SHAPE, b=POS),
                  lambda p, x: stats.gamma(p["a"], scale=1 / p["b"]).logpdf(x), lower=0.0,
                  bad={"a": _f(-5, 0), "b": _f(-5, 0)}),
    "Beta": Spec(lambda a, b, **k: zd.Beta(a, b, **k), dict(a=SHAPE, b=SHAPE),
                 lambda p, x: stats.beta(p["a"], p["b"]).logpdf(x), lower=0.0, upper=1.0,
                 bad={"a": _f(-5, 0), "b": _f(-5, 0)}),
    "InverseGamma": Spec(lambda a, b, **k: zd.InverseGamma(a, b, **k), dict(a=SHAPE, b=POS),
                         lambda p, x: stats.invgamma(p["a"], scale=p["b"]).logpdf(x),
                         lower=0.0, bad={"a": _f(-5, 0)}),
    "Exponential": Spec(lambda r, **k: zd.Exponential(r, **k), dict(r=POS),
                        lambda p, x: stats.expon(scale=1 / p["r"]).logpdf(x), lower=0.0,
                        bad={"r": _f(-5, 0)}),
    "Laplace": Spec(lambda m, s, **k: zd.Laplace(m, s, **k), dict(m=REAL, s=POS),
                    lambda p, x: stats.laplace(p["m"], p["s"]).logpdf(x), bad={"s": _f(-5, 0)}),
    "Logistic": Spec(lambda m, s, **k: zd.Logistic(m, s, **k), dict(m=REAL, s=POS),
                     lambda p, x: stats.logistic(p["m"], p["s"]).logpdf(x),
                     bad={"s": _f(-5, 0)}),
    "StudentT": Spec(lambda d, m, s, **k: zd.StudentT(d, m, s, **k),
                     dict(d=st.one_of(SHAPE, _f(1e3, 1e12)), m=REAL, s=POS),
                     lambda p, x: stats.t(p["d"], p["m"], p["s"]).logpdf(x),
                     bad={"d": _f(-5, 0), "s": _f(-5, 0)}),
    "Cauchy": Spec(lambda m, s, **k: zd.Cauchy(m, s, **k), dict(m=REAL, s=POS),
                   lambda p, x: stats.cauchy(p["m"], p["s"]).logpdf(x), bad={"s": _f(-5, 0)}),
    "HalfCauchy": Spec(lambda s, **k: zd.HalfCauchy(s, **k), dict(s=POS),
                       lambda p, x: stats.halfcauchy(scale=p["s"]).logpdf(x), lower=0.0,
                       bad={"s": _f(-5, 0)}),
    "Poisson": Spec(lambda r, **k: zd.Poisson(r, **k), dict(r=_f(0.05, 50)),
                    lambda p, x: stats.poisson(p["r"]).logpmf(x), lower=0.0, discrete=True,
                    bad={"r": _f(-5, 0)}),
    "Bernoulli": Spec(lambda q, **k: zd.Bernoulli(probs=q, **k), dict(q=_f(0.0, 1.0)),
                      lambda p, x: stats.bernoulli(p["q"]).logpmf(x), lower=0.0, upper=1.0,
                      discrete=True, bad={"q": st.one_of(_f(-5, -1e-6), _f(1 + 1e-6, 5))}),
    "Binomial": Spec(lambda l, n, **k: zd.Binomial(l, n, **k),
                     dict(l=REAL, n=st.integers(0, 30)),
                     lambda p, x: stats.binom(p["n"], sps.expit(p["l"])).logpmf(x),
                     lower=0.0, discrete=True, bad={"n": st.integers(-5, -1)}),
}


def _support_upper(spec, p):
    return p["n"] if "n" in p and spec.discrete else spec.upper


@st.composite
def _params(draw, spec):
    return {k: draw(s) for k, s in spec.params.items()}


@st.composite
def _inside(draw, spec, p):
    """A value in the closed support, edges and infinities included."""
    lo, hi = spec.lower, _support_upper(spec, p)
    if spec.discrete:
        top = int(min(hi, 60))
        return float(draw(st.one_of(st.integers(int(lo), top), st.sampled_from(
            [lo, float(top)] + ([INF] if hi == INF else [])))))
    edges = [e for e in (lo, hi, -INF, INF) if lo <= e <= hi]
    inner = _f(max(lo, -50.0), min(hi, 50.0))
    return draw(st.one_of(inner, st.sampled_from(edges)))


@st.composite
def _outside(draw, spec, p):
    lo, hi = spec.lower, _support_upper(spec, p)
    options = []
    if lo > -INF:
        options.append(_f(lo - 50.0, lo - 1e-3))
        options.append(st.just(-INF))
    if hi < INF:
        options.append(_f(hi + 1e-3, hi + 50.0))
        options.append(st.just(INF) if not spec.discrete else st.just(hi + 1.0))
    if spec.discrete:     # fractional values
        options.append(_f(max(lo, 0) + 0.01, min(hi, 30) - 0.01).filter(
            lambda v: v != np.floor(v)) if min(hi, 30) - max(lo, 0) > 0.1 else st.just(lo - 1))
    assume(options)
    return draw(st.one_of(options))


def _close(got, want):
    if np.isinf(want) or np.isinf(got):
        return got == want
    return abs(got - want) <= 1e-8 * max(1.0, abs(want))


@pytest.mark.parametrize("name", sorted(SPECS))
def test_log_prob_matches_scipy_in_and_at_the_edges_of_the_support(name):
    spec = SPECS[name]

    @SETTINGS
    @given(data=st.data())
    def run(data):
        p = data.draw(_params(spec))
        x = data.draw(_inside(spec, p))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            got = float(spec.cls(**p).log_prob(np.array(x)).data)
            want = float(spec.ref(p, x))
        assert not np.isnan(got), (p, x)
        if np.isnan(want):      # scipy has no value here (e.g. some edge limits)
            return
        assert _close(got, want), (p, x, got, want)
    run()


@pytest.mark.parametrize("name", sorted(n for n in SPECS if SPECS[n].lower > -INF))
def test_log_prob_beyond_the_support_is_minus_inf_or_raises(name):
    spec = SPECS[name]

    @SETTINGS
    @given(data=st.data())
    def run(data):
        p = data.draw(_params(spec))
        x = data.draw(_outside(spec, p))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            got = spec.cls(**p, validate_args=False).log_prob(np.array(x)).data
        assert got == -INF, (p, x, got)
        with pytest.raises(ValueError, match="must be in the support"):
            spec.cls(**p).log_prob(np.array(x))
    run()


@pytest.mark.parametrize("name", sorted(n for n in SPECS if SPECS[n].bad))
def test_invalid_parameters_raise_naming_class_and_argument(name):
    spec = SPECS[name]

    @SETTINGS
    @given(data=st.data())
    def run(data):
        p = data.draw(_params(spec))
        k = data.draw(st.sampled_from(sorted(spec.bad)))
        p[k] = data.draw(spec.bad[k])
        d = spec.cls(**p, validate_args=False)       # the argument's name as the class has it
        arg = [a for a, v in d.params.items() if v is not None and
               np.array_equal(np.asarray(v, float), np.asarray(p[k], float))]
        with pytest.raises(ValueError, match=f"^{type(d).__name__}: ({'|'.join(arg)}) must be"):
            spec.cls(**p)
    run()


@SETTINGS
@given(alpha=st.lists(_f(1e-3, 5.0), min_size=2, max_size=4),
       corner=st.integers(0, 3), data=st.data())
def test_dirichlet_log_prob_on_the_closed_simplex_is_never_nan(alpha, corner, data):
    alpha = np.array(alpha)
    k = len(alpha)
    x = data.draw(st.one_of(
        st.just(np.eye(k)[corner % k]),                      # a vertex
        st.lists(_f(0.0, 1.0), min_size=k, max_size=k).map(np.array).filter(
            lambda v: v.sum() > 0.1).map(lambda v: v / v.sum())))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        got = float(zd.Dirichlet(alpha).log_prob(x).data)
    zero = x == 0
    if np.any(alpha[zero] < 1) and np.any(alpha[zero] > 1):
        # x_j^(alpha_j - 1) -> +inf for one zero coordinate and -> 0 for another: the
        # density has no limit there (it depends on the direction), and NaN says so
        assert np.isnan(got)
        return
    assert not np.isnan(got)
    if np.all(x > 0):
        np.testing.assert_allclose(got, stats.dirichlet(alpha).logpdf(x), rtol=1e-8)


@SETTINGS
@given(logits=st.lists(st.one_of(_f(-20, 20), st.just(-INF), st.just(INF)), min_size=1,
                       max_size=5).filter(lambda v: any(np.isfinite(v)) or INF in v),
       data=st.data())
def test_categorical_with_infinite_logits_is_never_nan(logits, data):
    """+inf logits take all the mass (shared equally), -inf logits none."""
    logits = np.array(logits)
    i = data.draw(st.integers(0, len(logits) - 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        got = float(zd.Categorical(logits).log_prob(i).data)
    top = logits == INF
    if top.any():
        want = -np.log(top.sum()) if top[i] else -INF
    else:
        want = float(sps.log_softmax(logits)[i])
    assert _close(got, want), (logits, i, got, want)


KL_PAIRS = {
    "Normal": (lambda a, b: zd.Normal(a, b), dict(a=REAL, b=POS)),
    "Gamma": (lambda a, b: zd.Gamma(a, b), dict(a=SHAPE, b=POS)),
    "Beta": (lambda a, b: zd.Beta(a, b), dict(a=_f(1e-3, 30), b=_f(1e-3, 30))),
    "Exponential": (lambda a: zd.Exponential(a), dict(a=POS)),
    "Laplace": (lambda a, b: zd.Laplace(a, b), dict(a=REAL, b=POS)),
    "Bernoulli": (lambda a: zd.Bernoulli(logits=np.asarray(a)),
                  dict(a=st.one_of(REAL, st.sampled_from([-INF, INF])))),
    "Categorical": (lambda a: zd.Categorical(np.asarray(a)),
                    dict(a=st.lists(st.one_of(REAL, st.just(-INF)), min_size=3, max_size=3)
                         .filter(lambda v: any(np.isfinite(v))))),
    "Dirichlet": (lambda a: zd.Dirichlet(np.asarray(a)),
                  dict(a=st.lists(_f(1e-3, 20), min_size=3, max_size=3))),
}


@pytest.mark.parametrize("name", sorted(KL_PAIRS))
def test_kl_is_nonnegative_zero_on_the_diagonal_and_never_nan(name):
    make, params = KL_PAIRS[name]

    @SETTINGS
    @given(data=st.data())
    def run(data):
        p = {k: data.draw(s) for k, s in params.items()}
        q = {k: data.draw(s) for k, s in params.items()}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            kl = float(zd.kl_divergence(make(**p), make(**q)).data)
            self_kl = float(zd.kl_divergence(make(**p), make(**p)).data)
        assert not np.isnan(kl), (p, q)
        assert kl >= -1e-9 * max(1.0, abs(kl)), (p, q, kl)
        assert abs(self_kl) <= 1e-9, (p, self_kl)
    run()
