"""The Numba logistic kernels (autodiff.logistic) against float64 references.

References are computed from NumPy's exp/log1p on e = exp(-|x|) (each within an ulp),
not from np.logaddexp / scipy's expit, which flush to 0 below about -709.
"""
import numpy as np
import pytest

import autodiff as ad
from autodiff import logistic

RNG = np.random.default_rng(0)
SPECIAL = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-300, -1e-300, 5e-324, 36.0, 37.5, -37.5,
           708.0, -708.0, -708.4, -709.0, -709.8, -740.0, -745.1, -745.2, -746.0, 1e308, -1e308]
X = np.concatenate([RNG.normal(0, 3, 20000), RNG.uniform(-800, 800, 20000),
                    np.linspace(-40, 40, 8001), -np.logspace(-20, 3, 2000),
                    np.logspace(-20, 3, 2000), SPECIAL])


def _e(x):
    with np.errstate(over="ignore", invalid="ignore"):
        return np.exp(-np.abs(x))


def ref_softplus(x):
    return np.maximum(x, 0) + np.log1p(_e(x))


def ref_sigmoid(x):
    e = _e(x)
    return np.where(x >= 0, 1.0, e) / (1.0 + e)


REFS = {"softplus": ref_softplus,
        "log_sigmoid": lambda x: -ref_softplus(-x),
        "sigmoid": ref_sigmoid}


def ulps(got, want):
    """Error in units of the last place of ``want`` (0 where both are equal or both NaN)."""
    same = (got == want) | (np.isnan(got) & np.isnan(want))
    with np.errstate(invalid="ignore"):
        err = np.abs(got - want) / np.spacing(np.maximum(np.abs(want), 5e-324))
    return np.where(same, 0.0, err)


@pytest.mark.parametrize("name", list(REFS))
def test_float64_within_a_few_ulp_over_the_whole_range(name):
    out = np.empty_like(X)
    getattr(logistic, name)(X, out)
    want = REFS[name](X)
    assert np.array_equal(np.isnan(out), np.isnan(want))
    assert ulps(out, want).max() <= 8


@pytest.mark.parametrize("name", list(REFS))
def test_float32_is_computed_in_float64_and_rounded(name):
    with np.errstate(over="ignore"):
        x32 = X.astype(np.float32)     # +-1e308 become +-inf
    out = np.empty_like(x32)
    getattr(logistic, name)(x32, out)
    want = REFS[name](x32.astype(np.float64)).astype(np.float32)
    normal = np.abs(want) >= np.finfo(np.float32).tiny
    assert ulps(out[normal], want[normal]).max() <= 2
    np.testing.assert_allclose(out[~normal], want[~normal], rtol=0, atol=4e-45)


def test_special_values():
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -1e4, 1e4])
    out = np.empty_like(x)
    logistic.softplus(x, out)       # log(2) to an ulp, the rest exactly
    np.testing.assert_allclose(out, [np.nan, np.inf, 0.0, np.log(2.0), 0.0, 1e4], rtol=3e-16)
    logistic.sigmoid(x, out)
    np.testing.assert_array_equal(out, [np.nan, 1.0, 0.0, 0.5, 0.0, 1.0])
    logistic.log_sigmoid(x, out)
    np.testing.assert_allclose(out, [np.nan, 0.0, -np.inf, -np.log(2.0), -1e4, 0.0], rtol=3e-16)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_sigmoid_scaled(sign):
    g = RNG.normal(size=X.size)
    out = np.empty_like(X)
    logistic.sigmoid_scaled(g, X, sign, out)
    assert ulps(out, g * ref_sigmoid(sign * X)).max() <= 8


def test_sigmoid_vjp():
    g = RNG.normal(size=X.size)
    out = np.empty_like(X)
    logistic.sigmoid_vjp(g, X, out)
    e = _e(X)
    want = g * (e / ((1.0 + e) * (1.0 + e)))
    assert ulps(out, want).max() <= 8


@pytest.mark.parametrize("fn", [ad.softplus, ad.log_sigmoid, ad.sigmoid])
@pytest.mark.parametrize("make", [
    lambda x: x,                                  # contiguous
    lambda x: np.asfortranarray(x),               # another layout
    lambda x: x[:, ::2],                          # a strided view
    lambda x: x[0, 0],                            # 0-d: the NumPy fallback
])
def test_ops_use_any_layout_and_match_their_gradients(fn, make):
    x = make(RNG.normal(0, 4, (5, 8)))
    name = fn.__name__
    out = fn(x)
    np.testing.assert_allclose(out.data, REFS[name](np.asarray(x)), rtol=1e-14)
    assert np.shape(out.data) == np.shape(x)
    ad.check_grads(lambda t: fn(t) * 1.5, x)


def test_ops_keep_integer_and_float32_semantics():
    out = ad.softplus(np.array([0, 1, 2]))
    assert out.dtype == np.float64
    np.testing.assert_allclose(out.data, np.log1p(np.exp([0.0, 1.0, 2.0])), rtol=1e-15)
    x32 = np.linspace(-5, 5, 11, dtype=np.float32)
    g = ad.grad(lambda t: ad.sum(ad.log_sigmoid(t)))(x32)
    assert g.dtype == np.float32
    np.testing.assert_allclose(g, ref_sigmoid(-x32.astype(np.float64)), rtol=1e-6)
