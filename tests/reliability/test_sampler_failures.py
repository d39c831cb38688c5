"""Issue 16: diagnostics and runs that hid failures (R-hat NaN for stuck chains, inf
draws without a warning, zero chains or dimensions ending in a step-size search)."""
import numpy as np
import pytest

import autodiff as ad
import samplers
from samplers.diagnostics import rhat


def std_normal(x):
    return -0.5 * ad.sum(x * x, axis=-1)


def test_rhat_of_chains_stuck_at_different_constants_is_inf():
    draws = np.stack([np.zeros((100, 2)), np.ones((100, 2))])
    r = rhat(draws)
    assert np.all(np.isinf(r)) and np.all(r > 1.01)


def test_rhat_with_non_finite_draws_is_inf():
    rng = np.random.default_rng(0)
    draws = rng.normal(size=(4, 100, 3))
    draws[2, 50, 1] = np.inf
    draws[0, 3, 2] = np.nan
    r = rhat(draws)
    assert np.isfinite(r[0]) and r[0] < 1.05
    assert np.isinf(r[1]) and np.isinf(r[2])


def test_rhat_of_one_constant_everywhere_stays_undefined():
    assert np.isnan(rhat(np.full((4, 50, 1), 2.5)))[0]


@pytest.mark.parametrize("shape", [(0, 2), (2, 0)])
def test_zero_chains_or_dimensions_are_rejected_up_front(shape):
    with pytest.raises(ValueError, match=r"at least one chain and one dimension.*"
                                         + str(shape).replace("(", r"\(").replace(")", r"\)")):
        samplers.sample(std_normal, np.zeros(shape), n_samples=5, n_warmup=5, progress=False)


@pytest.mark.parametrize("name, value", [("n_chains", 0), ("dim", 0), ("n_chains", 2.5)])
def test_zero_chains_or_dimensions_without_init(name, value):
    kw = {"n_chains": 2, "dim": 2, name: value}
    with pytest.raises(ValueError, match=f"{name}: expected a positive int"):
        samplers.sample(std_normal, None, n_samples=5, n_warmup=5, progress=False, **kw)


def test_diverging_sgmcmc_run_warns_and_names_the_chains():
    # SGLD on a standard normal with a step far beyond stability: |x| doubles every
    # step and overflows to inf, then NaN
    def grad_estimator(q, rng):
        return -q

    kernel = samplers.SGLD(grad_estimator, step_size=6.0)
    x0 = np.zeros((3, 2))
    x0[1] = 1.0                                    # chains 0 and 2 only see the noise
    with pytest.warns(samplers.NonFiniteWarning, match=r"3 of 3 chains reached a non-finite"):
        res = samplers.sample(None, x0, kernel=kernel, n_samples=2000, n_warmup=0,
                              rng=0, progress=False)
    assert res.n_nonfinite > 0
    np.testing.assert_array_equal(res.nonfinite_chains(), [0, 1, 2])
    flags = res.stats["nonfinite"]
    assert flags.shape == (3, 2000)
    bad = ~np.isfinite(res.draws).all(axis=2)
    np.testing.assert_array_equal(flags, bad)


def test_a_healthy_run_reports_no_nonfinite_draws(recwarn):
    res = samplers.sample(std_normal, np.zeros((2, 2)), n_samples=50, n_warmup=50,
                          rng=1, progress=False)
    assert res.n_nonfinite == 0 and len(res.nonfinite_chains()) == 0
    assert not res.stats["nonfinite"].any()
    assert not [w for w in recwarn if issubclass(w.category, samplers.NonFiniteWarning)]
