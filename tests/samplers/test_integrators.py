"""Integrators against physics: energy error order, reversibility, step fusion."""
import numpy as np
import pytest

from samplers.base import LogDensity
from samplers.integrators import (INTEGRATORS, Integrator, get_integrator, integrate,
                                  mclachlan, velocity_verlet, yoshida)

ALL = [velocity_verlet, mclachlan, yoshida]


def oscillator():
    """Unit harmonic oscillator: U(q) = q^2 / 2 per coordinate."""
    return LogDensity(lambda q: -0.5 * (q * q).sum(1), grad_fn=lambda q: -q)


def quartic():
    """A non-quadratic, coupled target (tests nonlinear force fields)."""
    def lp(q):
        return -0.25 * (q ** 4).sum(1) - 0.5 * (q[:, 0] * q[:, 1]) ** 2 - 0.5 * (q * q).sum(1)

    def g(q):
        out = -q ** 3 - q
        out[:, 0] -= q[:, 0] * q[:, 1] ** 2
        out[:, 1] -= q[:, 1] * q[:, 0] ** 2
        return out
    return LogDensity(lp, grad_fn=g)


def max_energy_error(integ, eps, total_time=10.0):
    ld = oscillator()
    # One coordinate: with several, out-of-phase oscillators can cancel errors.
    q = np.array([[1.0]])
    p = np.array([[0.3]])
    lp, g = ld(q)
    h0 = 0.5 * (p * p).sum() - lp[0]
    inv = np.ones(1)
    e = np.array([eps])
    worst = 0.0
    for _ in range(int(round(total_time / eps))):
        q, p, g, lp = integrate(q, p, g, lp, ld, inv, e, 1, integ)
        worst = max(worst, abs(0.5 * (p * p).sum() - lp[0] - h0))
    return worst


@pytest.mark.parametrize("integ,ratio", [(velocity_verlet, 4.0), (mclachlan, 4.0),
                                         (yoshida, 16.0)])
def test_energy_error_order(integ, ratio):
    # Halving eps divides the maximal energy error over a fixed time by 2^order.
    e1 = max_energy_error(integ, 0.1)
    e2 = max_energy_error(integ, 0.05)
    assert e1 / e2 == pytest.approx(ratio, rel=0.1)
    assert integ.order == {4.0: 2, 16.0: 4}[ratio]


def test_mclachlan_beats_verlet_at_equal_cost():
    # Two stages at 2 eps cost as much as leapfrog at eps, with a smaller error.
    assert max_energy_error(mclachlan, 0.2) < max_energy_error(velocity_verlet, 0.1)


@pytest.mark.parametrize("integ", ALL, ids=lambda i: i.name)
@pytest.mark.parametrize("dense", [False, True])
def test_reversibility(integ, dense):
    ld = quartic()
    rng = np.random.default_rng(0)
    c, d = 5, 4
    q0 = rng.standard_normal((c, d))
    p0 = rng.standard_normal((c, d))
    if dense:
        a = rng.standard_normal((d, d))
        inv = a @ a.T / d + np.eye(d)
    else:
        inv = rng.uniform(0.5, 2.0, d)
    eps = rng.uniform(0.01, 0.05, c)
    lp0, g0 = ld(q0)
    q, p, g, lp = integrate(q0.copy(), p0.copy(), g0, lp0, ld, inv, eps, 25, integ)
    assert np.abs(q - q0).max() > 0.1            # it moved
    p = -p                                       # flip momentum, integrate back
    q, p, g, lp = integrate(q, p, g, lp, ld, inv, eps, 25, integ)
    np.testing.assert_allclose(q, q0, atol=1e-12, rtol=0)
    np.testing.assert_allclose(-p, p0, atol=1e-12, rtol=0)
    np.testing.assert_allclose(lp, lp0, atol=1e-12, rtol=0)


@pytest.mark.parametrize("integ", ALL, ids=lambda i: i.name)
def test_negative_step_runs_backwards(integ):
    ld = quartic()
    rng = np.random.default_rng(1)
    q0, p0 = rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
    lp0, g0 = ld(q0)
    inv = np.ones(2)
    eps = np.array([0.03, 0.02, 0.05])
    q, p, g, lp = integrate(q0.copy(), p0.copy(), g0, lp0, ld, inv, eps, 10, integ)
    q, p, g, lp = integrate(q, p, g, lp, ld, inv, -eps, 10, integ)
    np.testing.assert_allclose(q, q0, atol=1e-12, rtol=0)
    np.testing.assert_allclose(p, p0, atol=1e-12, rtol=0)


@pytest.mark.parametrize("integ", ALL, ids=lambda i: i.name)
def test_fused_steps_match_single_steps(integ):
    # Merging the last kick of a step with the first of the next changes nothing.
    ld = quartic()
    rng = np.random.default_rng(2)
    q0, p0 = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    lp0, g0 = ld(q0)
    inv = np.array([1.0, 0.5, 2.0])
    eps = np.full(4, 0.04)
    qa, pa, ga, lpa = integrate(q0.copy(), p0.copy(), g0, lp0, ld, inv, eps, 7, integ)
    qb, pb, gb, lpb = q0.copy(), p0.copy(), g0, lp0
    for _ in range(7):
        qb, pb, gb, lpb = integrate(qb, pb, gb, lpb, ld, inv, eps, 1, integ)
    np.testing.assert_allclose(qa, qb, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(pa, pb, rtol=1e-13, atol=1e-13)


def test_gradient_calls_per_step():
    calls = []
    base = quartic()
    ld = LogDensity(base.logdensity, grad_fn=lambda q: (calls.append(1), base.grad_fn(q))[1])
    q = np.zeros((2, 2)) + 0.3
    lp, g = ld(q)
    calls.clear()
    for integ, n in [(velocity_verlet, 5), (mclachlan, 10), (yoshida, 15)]:
        integrate(q.copy(), np.ones((2, 2)), g, lp, ld, np.ones(2), np.full(2, 0.1), 5, integ)
        assert len(calls) == n == 5 * integ.n_stages
        calls.clear()


def test_zero_step_freezes_chain():
    ld = quartic()
    q0 = np.array([[0.5, -0.2], [0.1, 0.4]])
    p0 = np.ones((2, 2))
    lp0, g0 = ld(q0)
    q, p, _, _ = integrate(q0.copy(), p0.copy(), g0, lp0, ld, np.ones(2),
                           np.array([0.1, 0.0]), 5, velocity_verlet)
    assert not np.allclose(q[0], q0[0])
    np.testing.assert_array_equal(q[1], q0[1])
    np.testing.assert_array_equal(p[1], p0[1])


def test_coefficients_are_palindromic_and_consistent():
    for integ in ALL:
        c = np.array(integ.coefficients)
        np.testing.assert_allclose(c, c[::-1], rtol=0, atol=1e-15)
        assert c[0::2].sum() == pytest.approx(1.0) and c[1::2].sum() == pytest.approx(1.0)
    assert get_integrator("yoshida") is yoshida and get_integrator(mclachlan) is mclachlan
    assert set(INTEGRATORS) == {"velocity_verlet", "mclachlan", "yoshida"}
    assert isinstance(velocity_verlet, Integrator)


def test_unknown_integrator_lists_valid_names():
    with pytest.raises(ValueError, match="unknown integrator 'leapfrog4'.*mclachlan"):
        get_integrator("leapfrog4")


def test_with_autodiff_logdensity():
    ad = pytest.importorskip("autodiff")
    ld_ad = LogDensity(lambda q: -0.5 * ad.sum(q * q, axis=1))
    ld_np = oscillator()
    q0 = np.array([[0.3, -1.0], [2.0, 0.5]])
    p0 = np.array([[1.0, 0.2], [-0.4, 0.0]])
    out = []
    for ld in (ld_ad, ld_np):
        lp, g = ld(q0)
        out.append(integrate(q0.copy(), p0.copy(), g, lp, ld, np.ones(2), np.full(2, 0.1),
                             10, yoshida))
    for a, b in zip(*out):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)
