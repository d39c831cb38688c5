"""Table-driven tests over :data:`cases.CASES`: shapes, dtypes, log_prob vs scipy,
moments and entropy vs Monte Carlo, pathwise gradients vs finite differences."""
import numpy as np
import pytest

import autodiff as ad
from autodiff.core import Tensor

from .cases import CASE_IDS, CASES

Z = 4.5          # |z| bound of the Monte Carlo checks (fixed seeds)
N_MC = 20000


def make(case, params=None, **kw):
    return case.cls(**(case.params if params is None else params), **{**case.kwargs, **kw})


def float_params(case, dtype):
    return {k: (v.astype(dtype) if v.dtype.kind == "f" else v) for k, v in case.params.items()}


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("n_samples", [None, 1, 5])
@pytest.mark.parametrize("group_ndims", [0, 1])
def test_shapes(case, n_samples, group_ndims):
    d = make(case, group_ndims=group_ndims)
    full = d.batch_shape + d.value_shape
    x = d.sample(n_samples, rng=0)
    lead = () if n_samples is None else (n_samples,)
    assert isinstance(x, Tensor) and x.shape == lead + full
    lp = d.log_prob(x)
    assert lp.shape == lead + d.batch_shape[:len(d.batch_shape) - group_ndims]
    # given without the sample axis, and given broadcasting from fewer batch dims
    assert d.log_prob(x.data[0] if n_samples else x.data).shape == \
        d.batch_shape[:len(d.batch_shape) - group_ndims]
    assert np.allclose(d.prob(x).data, np.exp(lp.data))


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtypes(case, dtype):
    d = make(case, float_params(case, dtype))
    assert d.param_dtype == dtype
    x = d.sample(3, rng=0)
    if d.is_continuous:
        assert d.dtype == dtype and x.dtype == dtype
    else:
        assert x.dtype == np.int32
    assert d.log_prob(x).dtype == dtype
    if case.moments:
        assert d.mean.dtype == dtype and d.variance.dtype == dtype


@pytest.mark.parametrize("case", [c for c in CASES if c.ref is not None],
                         ids=[c.id for c in CASES if c.ref is not None])
def test_log_prob_matches_reference(case):
    d = make(case)
    x = d.sample(4, rng=1).data
    expected = case.ref(case.params, x.astype(np.float64))
    np.testing.assert_allclose(d.log_prob(x).data, expected, rtol=1e-10, atol=1e-12)


def _se_ok(est, truth, se):
    z = np.abs(est - truth) / se
    assert np.all(z < Z), f"max |z| = {z.max():.2f}: estimate {est} vs truth {truth}"


@pytest.mark.parametrize("case", [c for c in CASES if c.moments],
                         ids=[c.id for c in CASES if c.moments])
def test_moments_within_mcse(case):
    d = make(case)
    x = d.sample(N_MC, rng=2).data.astype(np.float64)
    mean, var = d.mean.data, d.variance.data
    assert mean.shape == d.batch_shape + d.value_shape
    _se_ok(x.mean(0), mean, np.sqrt(var / N_MC) + 1e-12)
    if case.var_ok:
        c = x - x.mean(0)
        m4 = np.mean(c ** 4, 0)
        s2 = np.mean(c ** 2, 0)
        _se_ok(s2, var, np.sqrt(np.maximum(m4 - s2 ** 2, 0) / N_MC) + 1e-12)


@pytest.mark.parametrize("case", [c for c in CASES if c.entropy],
                         ids=[c.id for c in CASES if c.entropy])
def test_entropy_is_expected_negative_log_prob(case):
    d = make(case)
    lp = d.log_prob(d.sample(N_MC, rng=3)).data
    h = d.entropy().data
    assert h.shape == d.batch_shape
    _se_ok(-lp.mean(0), h, lp.std(0) / np.sqrt(N_MC) + 1e-12)


@pytest.mark.parametrize("case", [c for c in CASES if c.crn_params],
                         ids=[c.id for c in CASES if c.crn_params])
def test_reparameterized_gradient_matches_finite_differences(case):
    """d/dtheta of the Monte Carlo estimate of E[f(x)] with common random numbers: the
    samples are smooth in theta for a fixed seed, so this is a deterministic check."""
    names = case.crn_params
    base = dict(case.params)

    def objective(*ps):
        params = {**base, **dict(zip(names, ps))}
        x = make(case, params).sample(200, rng=7)
        return ad.mean(case.fn(x) if case.fn is not np.tanh else ad.tanh(x))

    args = [base[k] for k in names]
    _, grads = ad.value_and_grad(objective, argnums=tuple(range(len(names))))(*args)
    rng = np.random.default_rng(0)
    dirs = [rng.standard_normal(a.shape) for a in args]
    for k, v in zip(names, dirs):   # keep structural zeros (upper triangles) at zero
        if k.endswith("tril"):
            v[...] = np.tril(v)
    analytic = sum(float(np.sum(g * v)) for g, v in zip(grads, dirs))
    h = 1e-6
    plus = objective(*[a + h * v for a, v in zip(args, dirs)]).data
    minus = objective(*[a - h * v for a, v in zip(args, dirs)]).data
    np.testing.assert_allclose(analytic, (plus - minus) / (2 * h), rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("case", [c for c in CASES if c.crn_params],
                         ids=[c.id for c in CASES if c.crn_params])
def test_is_reparameterized_false_stops_gradient(case):
    name = case.crn_params[0]

    def objective(theta):
        d = make(case, {**case.params, name: theta}, is_reparameterized=False)
        return ad.sum(d.sample(3, rng=0))

    g = ad.grad(objective)(case.params[name])
    assert np.all(g == 0)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_log_prob_parameter_gradients(case):
    """Gradients of log_prob w.r.t. every float parameter, by random-projection finite
    differences (autodiff.check_grads)."""
    x = make(case).sample(3, rng=5).data
    names = [k for k, v in case.params.items() if v.dtype.kind == "f"]

    def f(*ps):
        params = {**case.params, **dict(zip(names, ps))}
        return make(case, params, validate_args=False).log_prob(x)

    ad.check_grads(f, *[case.params[k] for k in names], rtol=1e-5, atol=1e-7)
