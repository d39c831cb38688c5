"""Property tests of the op table (hypothesis): random shapes with broadcasting, float32
and float64, values against NumPy/SciPy, dtypes kept, gradients against central
differences, and the mathematical limits (not NaN) at 0 and +-inf."""
import warnings

import numpy as np
import pytest
import scipy.special as sps
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import autodiff as ad
from autodiff import check_grads

SETTINGS = settings(max_examples=30, deadline=None, derandomize=True)

# op -> (reference, domain (lo, hi) for random inputs)
UNARY = {
    "exp": (np.exp, (-5, 5)),
    "log": (np.log, (0.1, 5)),
    "log1p": (np.log1p, (-0.9, 5)),
    "expm1": (np.expm1, (-5, 5)),
    "sqrt": (np.sqrt, (0.1, 5)),
    "square": (np.square, (-5, 5)),
    "abs": (np.abs, (0.1, 5)),
    "sin": (np.sin, (-5, 5)),
    "cos": (np.cos, (-5, 5)),
    "tanh": (np.tanh, (-5, 5)),
    "arctan": (np.arctan, (-5, 5)),
    "sigmoid": (sps.expit, (-30, 30)),
    "softplus": (lambda x: np.logaddexp(0, x), (-30, 30)),
    "log_sigmoid": (lambda x: -np.logaddexp(0, -x), (-30, 30)),
    "lgamma": (sps.gammaln, (0.1, 10)),
    "digamma": (sps.digamma, (0.1, 10)),
    "erf": (sps.erf, (-3, 3)),
    "erfc": (sps.erfc, (-3, 3)),
}
BINARY = {
    "add": (np.add, (-5, 5), (-5, 5)),
    "subtract": (np.subtract, (-5, 5), (-5, 5)),
    "multiply": (np.multiply, (-5, 5), (-5, 5)),
    "divide": (np.divide, (-5, 5), (0.5, 5)),
    "power": (np.power, (0.5, 3), (-2, 2)),
    "maximum": (np.maximum, (-5, 5), (-5, 5)),
    "minimum": (np.minimum, (-5, 5), (-5, 5)),
}
REDUCTIONS = {
    "sum": lambda x, axis: np.sum(x, axis=axis),
    "mean": lambda x, axis: np.mean(x, axis=axis),
    "max": lambda x, axis: np.max(x, axis=axis),
    "min": lambda x, axis: np.min(x, axis=axis),
    "prod": lambda x, axis: np.prod(x, axis=axis),
    "logsumexp": lambda x, axis: sps.logsumexp(x, axis=axis),
}
DTYPES = [np.float32, np.float64]


def _rtol(dtype):
    return 2e-5 if dtype == np.float32 else 1e-12


@st.composite
def _array(draw, lo, hi, shape=None, dtype=np.float64):
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, max_side=4)) if shape is None else shape
    x = draw(hnp.arrays(np.float64, shape, elements=st.floats(lo, hi, allow_nan=False)))
    return x.astype(dtype)


@st.composite
def _broadcast_pair(draw, lo1, hi1, lo2, hi2, dtype):
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=4))
    a, b = shapes.input_shapes
    return (draw(_array(lo1, hi1, a, dtype)), draw(_array(lo2, hi2, b, dtype)))


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_value_dtype_and_gradient(name, dtype):
    ref, (lo, hi) = UNARY[name]
    op = getattr(ad, name)

    @SETTINGS
    @given(x=_array(lo, hi, dtype=dtype))
    def run(x):
        out = op(x)
        assert out.dtype == dtype
        assert out.shape == x.shape
        np.testing.assert_allclose(out.data, ref(x.astype(np.float64)), rtol=_rtol(dtype),
                                   atol=1e-6 if dtype == np.float32 else 1e-14)
        if dtype == np.float64:
            check_grads(op, x, eps=1e-6, rtol=1e-5, atol=1e-7)
    run()


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_broadcasting_value_dtype_and_gradient(name, dtype):
    ref, (lo1, hi1), (lo2, hi2) = BINARY[name]
    op = getattr(ad, name)

    @SETTINGS
    @given(xy=_broadcast_pair(lo1, hi1, lo2, hi2, dtype))
    def run(xy):
        x, y = xy
        out = op(x, y)
        assert out.dtype == dtype
        assert out.shape == np.broadcast_shapes(x.shape, y.shape)
        np.testing.assert_allclose(out.data, ref(x.astype(np.float64), y.astype(np.float64)),
                                   rtol=_rtol(dtype), atol=1e-6 if dtype == np.float32 else 1e-14)
        if dtype == np.float64 and name not in ("maximum", "minimum"):
            check_grads(op, x, y, eps=1e-6, rtol=1e-5, atol=1e-7)
        # gradients have the argument's shape (unbroadcast)
        gx, gy = ad.grad(lambda a, b: ad.sum(op(a, b)), argnums=(0, 1))(x, y)
        assert np.shape(gx) == x.shape and np.shape(gy) == y.shape
    run()


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", sorted(REDUCTIONS))
def test_reduction_value_dtype_and_gradient(name, dtype):
    ref = REDUCTIONS[name]
    op = getattr(ad, name)

    @SETTINGS
    @given(x=_array(-3, 3, None, dtype), data=st.data())
    def run(x, data):
        axis = data.draw(st.sampled_from([None] + list(range(-x.ndim, x.ndim))))
        if x.ndim == 0:
            axis = None
        out = op(x, axis=axis)
        assert out.dtype == dtype
        np.testing.assert_allclose(out.data, ref(x.astype(np.float64), axis),
                                   rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5)
        if dtype == np.float64 and name not in ("max", "min"):
            check_grads(lambda t: op(t, axis=axis), x, eps=1e-6, rtol=1e-5, atol=1e-7)
    run()


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_family_value_dtype_and_gradient(name, dtype):
    op = getattr(ad, name)
    ref = sps.softmax if name == "softmax" else sps.log_softmax

    @SETTINGS
    @given(x=_array(-20, 20, None, dtype).filter(lambda a: a.ndim >= 1))
    def run(x):
        out = op(x, axis=-1)
        assert out.dtype == dtype and out.shape == x.shape
        np.testing.assert_allclose(out.data, ref(x.astype(np.float64), axis=-1),
                                   rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6)
        if dtype == np.float64:
            check_grads(lambda t: op(t, axis=-1), x, eps=1e-6, rtol=1e-5, atol=1e-7)
    run()


# ----------------------------------------------------------------------------- edge values

INF = np.inf
# (function of one Tensor, input, expected value, expected gradient of sum(f))
EDGES = [
    ("exp(-inf)", ad.exp, [-INF], [0.0], [0.0]),
    ("log(0)", ad.log, [0.0], [-INF], [INF]),
    ("log1p(-1)", ad.log1p, [-1.0], [-INF], [INF]),
    ("expm1(-inf)", ad.expm1, [-INF], [-1.0], [0.0]),
    ("tanh(+-inf)", ad.tanh, [INF, -INF], [1.0, -1.0], [0.0, 0.0]),
    ("arctan(inf)", ad.arctan, [INF], [np.pi / 2], [0.0]),
    ("erf(+-inf)", ad.erf, [INF, -INF], [1.0, -1.0], [0.0, 0.0]),
    ("sigmoid(+-inf)", ad.sigmoid, [INF, -INF], [1.0, 0.0], [0.0, 0.0]),
    ("softplus(+-inf)", ad.softplus, [INF, -INF], [INF, 0.0], [1.0, 0.0]),
    ("log_sigmoid(+-inf)", ad.log_sigmoid, [INF, -INF], [0.0, -INF], [0.0, 1.0]),
    ("sqrt(inf)", ad.sqrt, [INF], [INF], [0.0]),
    ("1/inf", lambda t: ad.divide(1.0, t), [INF], [0.0], [0.0]),
    ("2**-inf", lambda t: ad.power(2.0, t), [-INF], [0.0], [0.0]),
    ("x**0 at 0", lambda t: ad.power(t, 0.0), [0.0], [1.0], [0.0]),
    ("logsumexp with -inf", ad.logsumexp, [-INF, 0.0], 0.0, [0.0, 1.0]),
    ("logsumexp with +inf", ad.logsumexp, [INF, 0.0], INF, [1.0, 0.0]),
    ("logsumexp all -inf", ad.logsumexp, [-INF, -INF], -INF, [0.5, 0.5]),
    ("softmax with +inf", lambda t: ad.softmax(t)[0], [INF, 0.0], 1.0, [0.0, 0.0]),
    ("softmax with two +inf", ad.softmax, [INF, INF, 1.0], [0.5, 0.5, 0.0], [0.0, 0.0, 0.0]),
    ("log_softmax with +inf", ad.log_softmax, [INF, 3.0], [0.0, -INF], None),
    ("log_softmax with -inf", ad.log_softmax, [-INF, 0.0], [-INF, 0.0], [1.0, -1.0]),
    ("log_softmax all -inf", ad.log_softmax, [-INF, -INF], [-np.log(2)] * 2, [0.0, 0.0]),
    ("max with -inf tie", ad.max, [-INF, -INF], -INF, [0.5, 0.5]),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", EDGES, ids=[e[0] for e in EDGES])
def test_edge_values_give_the_limit(case, dtype):
    _, f, x, value, grad = case
    x = np.asarray(x, dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = f(x)
        assert out.dtype == dtype
        np.testing.assert_allclose(out.data, np.asarray(value, np.float64), rtol=1e-6)
        if grad is not None:
            g = ad.grad(lambda t: ad.sum(f(t)))(x)
            assert not np.any(np.isnan(g))
            np.testing.assert_allclose(g, grad, rtol=1e-6, atol=1e-7)


@SETTINGS
@given(x=hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=2, max_side=5),
                    elements=st.sampled_from([-INF, INF, -3.0, 0.0, 2.5])))
def test_softmax_family_never_nan_on_infinite_logits(x):
    """Non-NaN logits (any mix of +-inf) give no NaN in softmax, log_softmax, logsumexp
    or their gradients, and softmax sums to 1."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        s = ad.softmax(x, axis=-1).data
        ls = ad.log_softmax(x, axis=-1).data
        assert not np.isnan(s).any() and not np.isnan(ls).any()
        np.testing.assert_allclose(s.sum(-1), 1.0)
        np.testing.assert_allclose(np.exp(ls), s, atol=1e-15)
        for f in (lambda t: ad.logsumexp(t, axis=-1), lambda t: ad.softmax(t, axis=-1)[..., 0],
                  lambda t: ad.log_softmax(t, axis=-1)[..., 0]):
            g = ad.grad(lambda t: ad.sum(f(t)))(x)
            assert not np.isnan(g).any()
