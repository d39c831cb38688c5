"""Constraint transforms: round trips, log-Jacobians vs autodiff Jacobians, edge values."""
import numpy as np
import pytest

import autodiff as ad
from zsarray import transforms as T

RNG = np.random.default_rng(0)

CASES = [  # (transform, unconstrained event shape)
    (T.exp, (3,)), (T.sigmoid, (3,)), (T.interval(-1.0, 3.0), (3,)),
    (T.LowerBounded(2.0), (3,)), (T.UpperBounded(-1.0), (3,)), (T.Affine(1.0, -2.5), (3,)),
    (T.stick_breaking, (4,)), (T.ordered, (5,)), (T.positive_ordered, (5,)),
    (T.cholesky_corr, (6,)),  # 4 x 4
]
IDS = [repr(t) + str(s) for t, s in CASES]


def free_coordinates(t, x):
    """The constrained coordinates that determine x (a square Jacobian against u)."""
    if isinstance(t, T.StickBreaking):
        return x[..., :-1]
    if isinstance(t, T.CholeskyCorr):
        k = x.shape[-1]
        rows, cols = np.tril_indices(k, -1)
        return x[..., rows, cols]
    return x


def jacobian(fun, u):
    """Full Jacobian of a vector function by one reverse pass per output."""
    n_out = fun(u).shape[-1]
    return np.stack([ad.grad(lambda v, i=i: fun(v)[..., i])(u) for i in range(n_out)])


@pytest.mark.parametrize("t, shape", CASES, ids=IDS)
def test_round_trip(t, shape):
    u = RNG.standard_normal((7,) + shape)
    x, ldj = t.forward(u)
    u_back, ildj = t.inverse(x.data)
    np.testing.assert_allclose(u_back.data, u, atol=1e-10)
    np.testing.assert_allclose(ildj.data, -ldj.data, atol=1e-10)
    assert x.shape == (7,) + t.constrained_shape(shape)
    assert t.unconstrained_shape(x.shape[1:]) == shape
    x_again, _ = t.forward(u_back.data)
    np.testing.assert_allclose(x_again.data, x.data, atol=1e-12)


@pytest.mark.parametrize("t, shape", CASES, ids=IDS)
def test_log_jacobian_matches_autodiff_jacobian(t, shape):
    u = RNG.standard_normal(shape)
    _, ldj = t.forward(u)
    jac = jacobian(lambda v: free_coordinates(t, t.forward(v)[0]), u)
    expected = np.linalg.slogdet(jac)[1]
    np.testing.assert_allclose(np.sum(ldj.data), expected, rtol=1e-10, atol=1e-10)


def test_log_jacobian_gradient_is_finite_difference_exact():
    for t, shape in CASES:
        u = RNG.standard_normal((2,) + shape)
        ad.check_grads(lambda v: t.forward(v)[1], u)
        ad.check_grads(lambda v: t.forward(v)[0], u)


def test_constrained_values_are_in_their_support():
    u = 3 * RNG.standard_normal((50, 6))
    assert np.all(T.exp.forward(u)[0].data > 0)
    x = T.interval(-1.0, 3.0).forward(u)[0].data
    assert np.all((x > -1) & (x < 3))
    s = T.stick_breaking.forward(u)[0].data
    np.testing.assert_allclose(s.sum(-1), 1.0, rtol=1e-12)
    assert np.all(s > 0)
    assert np.all(np.diff(T.ordered.forward(u)[0].data, axis=-1) > 0)
    po = T.positive_ordered.forward(u)[0].data
    assert np.all(po > 0) and np.all(np.diff(po, axis=-1) > 0)
    chol = T.cholesky_corr.forward(u)[0].data                # [50, 4, 4]
    corr = chol @ np.swapaxes(chol, -1, -2)
    np.testing.assert_allclose(np.diagonal(corr, axis1=-2, axis2=-1), 1.0, rtol=1e-12)
    assert np.all(np.linalg.eigvalsh(corr) > 0)
    np.testing.assert_array_equal(np.triu(chol, 1), 0.0)


def test_zero_maps_to_the_uniform_simplex():
    np.testing.assert_allclose(T.stick_breaking.forward(np.zeros(4))[0].data, 0.2 * np.ones(5))


def test_edge_values_stay_finite():
    u = np.array([-40.0, -700.0, 0.0, 40.0, 700.0])
    for t in (T.sigmoid, T.interval(-1.0, 3.0)):
        x, ldj = t.forward(u)
        assert np.all(np.isfinite(ldj.data))
        assert np.all((x.data >= t.low) & (x.data <= t.high))
        g = ad.grad(lambda v: ad.sum(t.forward(v)[1]))(u)
        assert np.all(np.isfinite(g))
    x, ldj = T.stick_breaking.forward(np.array([30.0, -30.0, 30.0]))
    assert np.all(np.isfinite(ldj.data)) and np.isclose(x.data.sum(), 1.0)
    x, ldj = T.cholesky_corr.forward(np.array([5.0, -5.0, 5.0]))
    assert np.all(np.isfinite(x.data)) and np.isfinite(ldj.data)


def test_biject_to_and_errors():
    assert T.biject_to("positive") is T.exp
    assert T.biject_to("simplex") is T.stick_breaking

    class Bounded:
        name, lower, upper = "interval", 2.0, 5.0
    t = T.biject_to(Bounded())
    assert isinstance(t, T.Interval) and (t.low, t.high) == (2.0, 5.0)
    with pytest.raises(ValueError, match="no transform to the support 'nonnegative_integer'"):
        T.biject_to("nonnegative_integer")
    with pytest.raises(ValueError, match="need high > low"):
        T.interval(1.0, 1.0)
    with pytest.raises(ValueError, match="scale must be nonzero"):
        T.Affine(0.0, 0.0)
    with pytest.raises(ValueError, match="K\\(K-1\\)/2"):
        T.cholesky_corr.forward(np.zeros(4))
