"""Initializers: fans, gains, bounds and standard deviations, explicit rng, errors."""
import math

import numpy as np
import pytest

from zsarray.nn import init

SHAPE = (300, 200)          # fan_in 300, fan_out 200


def test_fans():
    assert init.fans((3, 5)) == (3, 5)
    assert init.fans((2, 2, 3, 5)) == (12, 20)        # [kh, kw, in, out]
    with pytest.raises(ValueError, match=r"at least 2 dimensions \[in, out\], got \(4,\)"):
        init.fans(4)


def test_calculate_gain():
    assert init.calculate_gain("relu") == math.sqrt(2)
    assert init.calculate_gain("tanh") == 5 / 3
    assert init.calculate_gain("leaky_relu", math.sqrt(5)) == pytest.approx(math.sqrt(1 / 3))
    assert init.calculate_gain("linear") == init.calculate_gain("sigmoid") == 1.0
    assert init.calculate_gain("selu") == 0.75
    with pytest.raises(ValueError, match="unknown nonlinearity 'gelu'"):
        init.calculate_gain("gelu")


def test_calculate_gain_matches_torch():
    torch = pytest.importorskip("torch")
    for name, param in [("relu", None), ("tanh", None), ("leaky_relu", 0.2), ("leaky_relu", None),
                        ("sigmoid", None), ("selu", None)]:
        assert init.calculate_gain(name, param) == pytest.approx(
            torch.nn.init.calculate_gain(name, param))


@pytest.mark.parametrize("fn,kwargs,bound,std", [
    (init.xavier_uniform, {}, math.sqrt(6 / 500), math.sqrt(6 / 500) / math.sqrt(3)),
    (init.glorot_uniform, dict(gain=2.0), 2 * math.sqrt(6 / 500), 2 * math.sqrt(2 / 500)),
    (init.xavier_normal, {}, None, math.sqrt(2 / 500)),
    (init.kaiming_uniform, dict(nonlinearity="relu"), math.sqrt(6 / 300), math.sqrt(2 / 300)),
    (init.kaiming_uniform, dict(a=math.sqrt(5)), 1 / math.sqrt(300), 1 / math.sqrt(900)),
    (init.kaiming_normal, dict(nonlinearity="relu", mode="fan_out"), None, math.sqrt(2 / 200)),
    (init.normal, dict(mean=0.0, std=0.3), None, 0.3),
])
def test_bounds_and_std(fn, kwargs, bound, std):
    w = fn(SHAPE, np.random.default_rng(0), **kwargs)
    assert w.shape == SHAPE and w.dtype == np.float32
    if bound is not None:
        assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    assert np.std(w) == pytest.approx(std, rel=0.02)
    assert abs(np.mean(w)) < 0.02 * std


def test_explicit_rng_and_dtype():
    a = init.kaiming_normal((4, 3), 7, dtype=np.float64)
    b = init.kaiming_normal((4, 3), np.random.default_rng(7), dtype=np.float64)
    assert a.dtype == np.float64
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, init.kaiming_normal((4, 3), 8, dtype=np.float64))
    np.testing.assert_array_equal(init.zeros((2, 3)), 0)
    np.testing.assert_array_equal(init.ones(3, dtype=np.float64), 1)
    u = init.uniform(1000, 0, low=2.0, high=3.0)
    assert u.shape == (1000,) and u.min() >= 2.0 and u.max() < 3.0


@pytest.mark.parametrize("make,exc,match", [
    (lambda: init.xavier_uniform((3, 4), rng=None), TypeError, "rng: expected an int seed"),
    (lambda: init.xavier_uniform((3, 4), rng=True), TypeError, "got bool"),
    (lambda: init.kaiming_uniform((3, 4), 0, mode="fan_avg"), ValueError,
     "mode must be 'fan_in' or 'fan_out'"),
    (lambda: init.normal((3,), 0, std=-1.0), ValueError, "std must be >= 0"),
    (lambda: init.uniform((3,), 0, low=1.0, high=0.0), ValueError, "need low <= high"),
    (lambda: init.xavier_normal((5,), 0), ValueError, "at least 2 dimensions"),
])
def test_init_errors(make, exc, match):
    with pytest.raises(exc, match=match):
        make()
