"""Issue 16: requests autodiff used to drop silently (duplicate argnums, a function that
leaves the tape through NumPy, integer inputs under trace/compile)."""
import warnings

import numpy as np
import pytest

import autodiff as ad


def square_sum(x):
    return ad.sum(x * x)


@pytest.mark.parametrize("argnums, err, match", [
    ((0, 0), ValueError, r"lists argument\(s\) \[0\] more than once"),
    ((), ValueError, "differentiates nothing"),
    (-1, TypeError, "non-negative int"),
    (True, TypeError, "non-negative int"),
    ((0, 1.0), TypeError, "non-negative int"),
])
def test_bad_argnums_are_rejected(argnums, err, match):
    with pytest.raises(err, match=match):
        ad.value_and_grad(lambda x, y: ad.sum(x * y), argnums=argnums)(np.ones(2), np.ones(2))


def test_distinct_argnums_still_work():
    gx, gy = ad.grad(lambda x, y: ad.sum(x * y), argnums=(1, 0))(np.ones(2) * 3, np.ones(2))
    np.testing.assert_array_equal(gx, [3.0, 3.0])
    np.testing.assert_array_equal(gy, [1.0, 1.0])


@pytest.mark.parametrize("wrap", ["tape", "trace", "compile"])
def test_plain_numpy_function_warns_that_the_gradient_is_zero(wrap):
    f = lambda x: np.sum(np.asarray(x) ** 2)       # noqa: E731 -- leaves the tape
    with pytest.warns(ad.GradientWarning, match="plain float64, not a Tensor"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ad.TraceWarning)
            if wrap == "tape":
                value, g = ad.value_and_grad(f)(np.ones(3))
            else:
                value, g = getattr(ad, wrap)(f).value_and_grad(np.ones(3))
    assert float(value) == 3.0
    np.testing.assert_array_equal(g, np.zeros(3))


@pytest.mark.parametrize("f", [lambda x: 5.0, lambda x: ad.sum(ad.stop_gradient(x) * 3)])
def test_legitimate_zero_gradients_do_not_warn(f):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ad.GradientWarning)
        np.testing.assert_array_equal(ad.grad(f)(np.ones(2)), [0.0, 0.0])


@pytest.mark.parametrize("wrap", ["tape", "trace", "compile"])
def test_integer_input_is_an_error_everywhere(wrap):
    x = np.arange(3)
    with pytest.raises(TypeError, match="argument 0 has dtype int64; only floating-point"):
        if wrap == "tape":
            ad.value_and_grad(square_sum)(x)
        else:
            getattr(ad, wrap)(square_sum).value_and_grad(x)
    # the value alone needs no gradient: integer input is fine there
    assert int(ad.trace(square_sum)(x)) == 5
