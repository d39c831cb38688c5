"""SG-MCMC kernels (samplers.sgmcmc): Numba kernels vs the NumPy reference, schedules,
target densities, minibatch Bayesian linear regression, the driver and every error path.

Density check (ZhuSuan's ``test/test_sgmcmc.py`` / ``sample_error_with``):
target ``log p(x) = 2x^2 - x^4`` (bimodal), stochastic gradient = exact
gradient + ``N(0, 2^2)`` noise; 8000 iterations, burn-in the first 2/3, keep
every 50th; Gaussian KDE (scipy, Scott's bandwidth) of the pooled draws on
1000 points of ``[-3, 3]`` against the exact density normalized on that grid;
the error is the mean absolute difference. ZhuSuan ran 100 chains; we batch
400 (same per-chain length), which lowers the KDE's sampling error.
"""
import math

import numpy as np
import pytest
from scipy import stats

import autodiff as ad
import samplers
from samplers import diagnostics
from samplers.kernels import sgmcmc_cpu as K
from samplers.kernels import sgmcmc_reference as R
from samplers.sgmcmc import (PSGLD, SGHMC, SGLD, SGNHT, SGHMCState, SGMCMCInfo, SGNHTState,
                             cyclical_step_size, minibatch_grad_estimator, polynomial_decay,
                             sample_sgmcmc)

__all__ = []

RTOL = {np.float64: 1e-12, np.float32: 2e-6}
SHAPES = [(1, 1), (4, 1), (7, 5), (64, 3)]
DTYPES = [np.float64, np.float32]


def close(a, b, dtype):
    scale = max(1.0, float(np.abs(b).max()))
    np.testing.assert_allclose(a, b, rtol=RTOL[dtype], atol=RTOL[dtype] * scale)


def arrays(shape, dtype, seed, n):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(dtype) for _ in range(n)]


# ------------------------------------------------------------------ kernels vs reference
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_sgld_psgld_drift_match_reference(shape, dtype):
    q, g, noise, v = arrays(shape, dtype, 0, 4)
    v = np.abs(v)
    q1, q2 = q.copy(), q.copy()
    K.sgld(q1, g, noise, 0.03)
    R.sgld(q2, g, noise, 0.03)
    assert q1.dtype == dtype
    close(q1, q2, dtype)
    assert not np.array_equal(q1, q)

    q1, q2, v1, v2 = q.copy(), q.copy(), v.copy(), v.copy()
    K.psgld(q1, v1, g, noise, 0.03, 0.9, 1e-3)
    R.psgld(q2, v2, g, noise, 0.03, 0.9, 1e-3)
    assert q1.dtype == dtype and v1.dtype == dtype
    close(v1, v2, dtype)
    close(q1, q2, dtype)

    q1, q2 = q.copy(), q.copy()
    K.drift(q1, v, 0.5)
    R.drift(q2, v, 0.5)
    close(q1, q2, dtype)


@pytest.mark.parametrize("second_order", [False, True], ids=["first", "second"])
@pytest.mark.parametrize("fshape", ["CD", "C1", "11"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_momentum_matches_reference(shape, dtype, fshape, second_order):
    q, v, g, noise = arrays(shape, dtype, 1, 4)
    c, d = shape
    fr = {"CD": (c, d), "C1": (c, 1), "11": (1, 1)}[fshape]
    friction = np.random.default_rng(2).uniform(-0.2, 0.6, fr).astype(dtype)
    q1, q2, v1, v2 = q.copy(), q.copy(), v.copy(), v.copy()
    K.momentum(q1, v1, friction, g, noise, 0.02, 0.1, second_order)
    R.momentum(q2, v2, friction, g, noise, 0.02, 0.1, second_order)
    assert q1.dtype == dtype and v1.dtype == dtype
    close(v1, v2, dtype)
    close(q1, q2, dtype)


@pytest.mark.parametrize("vector", [True, False], ids=["vector", "per_chain"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_thermostat_matches_reference(shape, dtype, vector):
    (v,) = arrays(shape, dtype, 3, 1)
    alpha = np.full(shape if vector else (shape[0], 1), 0.1, dtype=dtype)
    a1, a2 = alpha.copy(), alpha.copy()
    K.thermostat(a1, v, 0.02, 0.5)
    R.thermostat(a2, v, 0.02, 0.5)
    assert a1.dtype == dtype
    close(a1, a2, dtype)
    if not vector:  # per chain: driven by the mean of v^2 over the coordinates
        expect = 0.1 + 0.5 * ((v.astype(float) ** 2).mean(axis=1) - 0.02)
        np.testing.assert_allclose(a1[:, 0], expect, rtol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sghmc_step_is_zhusuan_update(dtype):
    """One second-order SGHMC step written out by hand (ZhuSuan's formulas)."""
    q0 = np.array([[0.3, -1.0], [2.0, 0.5]], dtype=dtype)
    grad = lambda q, rng: -q  # noqa: E731
    k = SGHMC(grad, 0.04, friction=0.2, variance_estimate=0.05, n_iter_resample_v=0)
    state, info = k.step(k.init(q0), np.random.default_rng(5))
    rng = np.random.default_rng(5)
    v = rng.standard_normal(q0.shape, dtype=dtype) * dtype(math.sqrt(0.04))
    z = rng.standard_normal(q0.shape, dtype=dtype)
    q1 = q0 + 0.5 * v
    h = math.exp(-0.1)
    v = h * (h * v + 0.04 * (-q1) + math.sqrt(2 * 0.15 * 0.04) * z)
    np.testing.assert_allclose(state.position, q1 + 0.5 * v, rtol=1e-5)
    np.testing.assert_allclose(state.momentum, v, rtol=1e-5)
    assert state.position.dtype == dtype and state.iteration == 1
    np.testing.assert_allclose(info.grad_norm, np.linalg.norm(q1, axis=1), rtol=1e-5)


# ------------------------------------------------------------------------- schedules
def test_cyclical_step_size_values():
    s = cyclical_step_size(0.2, n_iterations=100, n_cycles=3)
    assert s.cycle_length == 34
    assert s(0) == 0.2 and s(34) == 0.2 and s(68) == 0.2
    assert s(17) == pytest.approx(0.1)
    vals = np.array([s(t) for t in range(100)])
    assert np.all(vals > 0) and np.all(vals <= 0.2)
    assert np.all(np.diff(vals[:34]) < 0)  # cosine decay within a cycle
    assert vals[33] == pytest.approx(0.1 * (math.cos(math.pi * 33 / 34) + 1))
    assert "cyclical_step_size(initial=0.2" in repr(s)


def test_polynomial_decay_values():
    s = polynomial_decay(0.5, 10.0, 0.55)
    assert s(0) == pytest.approx(0.5 * 10 ** -0.55)
    assert s(90) == pytest.approx(0.5 * 100 ** -0.55)
    assert polynomial_decay(0.3, 1.0, 0.0)(1000) == 0.3


def test_schedule_drives_kernel_and_iteration_counter():
    s = cyclical_step_size(0.1, 10, 2)
    k = SGLD(lambda q, rng: -q, s)
    state, rng = k.init(np.zeros((3, 2))), np.random.default_rng(0)
    for t in range(7):
        state, info = k.step(state, rng)
        assert info.step_size == s(t) and state.iteration == t + 1
        assert isinstance(info, SGMCMCInfo) and info.grad_norm.shape == (3,)


# -------------------------------------------------------------------- target density
def bimodal_grad(q, rng):
    return 4 * q - 4 * q ** 3 + 2 * rng.standard_normal(q.shape)


def density_error(kernel, n_chains=400, n_iters=8000, thinning=50, seed=1):
    burnin = n_iters * 2 // 3
    rng = np.random.default_rng(seed)
    state = kernel.init(np.zeros((n_chains, 1)))
    kept = []
    for t in range(n_iters):
        state, _ = kernel.step(state, rng)
        if t >= burnin and t % thinning == 0:
            kept.append(state.position[:, 0].copy())
    samples = np.concatenate(kept)
    assert np.all(np.isfinite(samples))
    xs = np.linspace(-3, 3, 1000)
    pdf = np.exp(2 * xs ** 2 - xs ** 4)
    pdf = pdf / pdf.mean() / 6.0
    return float(np.abs(stats.gaussian_kde(samples)(xs) - pdf).mean())


# ZhuSuan's thresholds: SGLD 0.023, SGHMC 0.016 (HMC: 0.030). ZhuSuan left pSGLD and
# SGNHT untested; they get the SGHMC threshold. pSGLD uses decay 0.99: with 0.9 the
# preconditioner follows the position-dependent |grad|^2 closely and the omitted
# Gamma term biases the density (errors ~0.04 measured; 0.015 with 0.99).
DENSITY_CASES = {
    "sgld": (lambda: SGLD(bimodal_grad, 0.01), 0.023),
    "sghmc": (lambda: SGHMC(bimodal_grad, 0.01), 0.016),
    "sghmc_first_order": (lambda: SGHMC(bimodal_grad, 0.01, second_order=False), 0.016),
    "psgld": (lambda: PSGLD(bimodal_grad, 0.03, decay=0.99), 0.023),
    "sgnht": (lambda: SGNHT(bimodal_grad, 0.01), 0.016),
    "sgnht_scalar_alpha": (lambda: SGNHT(bimodal_grad, 0.01, variance_extra=0.1,
                                         use_vector_alpha=False, n_iter_resample_v=50), 0.016),
}


@pytest.mark.parametrize("name", list(DENSITY_CASES))
def test_bimodal_density_error(name, record_property):
    make, threshold = DENSITY_CASES[name]
    err = density_error(make())
    record_property("density_error", err)
    print(f"{name}: density error {err:.4f} (threshold {threshold})")
    assert err < threshold


# ----------------------------------------------------------- Bayesian linear regression
@pytest.fixture(scope="module")
def blr():
    rng = np.random.default_rng(0)
    n, d = 500, 3
    x = rng.standard_normal((n, d))
    y = x @ np.array([0.5, -1.0, 2.0]) + rng.standard_normal(n)
    cov = np.linalg.inv(x.T @ x + np.eye(d))  # N(0, I) prior, unit noise
    return x, y, cov @ x.T @ y, np.sqrt(np.diag(cov))


def blr_grad(x, y, batch_size=50):
    def ll(w, batch):
        xb, yb = batch
        return -0.5 * (yb[None, :] - ad.matmul(w, xb.T)) ** 2

    def prior(w):
        return -0.5 * ad.sum(w * w, axis=1)

    return minibatch_grad_estimator(ll, prior, (x, y), len(y), batch_size)


@pytest.mark.parametrize("make", [lambda g: SGLD(g, 1e-4),
                                  lambda g: SGHMC(g, 2e-5, variance_estimate=0.05)],
                         ids=["sgld", "sghmc"])
def test_minibatch_linear_regression_posterior(blr, make):
    """Posterior mean within 0.35 posterior sd, sd within 20%, from a cold start.

    Every chain sees the same minibatch at a step (one tape pass), so the
    minibatch noise is shared across chains and an MCSE computed as if the
    chains were independent is too small; the tolerance is in posterior sds
    (about 0.045 here, while the start is ~40 sds away). Measured over 4
    seeds: |error| <= 0.21 sd, sd ratios 0.96-1.12.
    """
    x, y, mean, sd = blr
    res = sample_sgmcmc(make(blr_grad(x, y)), np.zeros((20, 3)), 1000, thin=3, burnin=1000,
                        rng=0, progress=False)
    draws = res.draws
    assert draws.shape == (20, 1000, 3)
    assert np.all(np.abs(draws.mean(axis=(0, 1)) - mean) < 0.35 * sd)
    np.testing.assert_allclose(draws.std(axis=(0, 1)) / sd, 1.0, atol=0.2)
    assert np.all(diagnostics.rhat(draws) < 1.05)


def test_minibatch_estimator_unbiased_and_scaled(blr):
    x, y, _, _ = blr
    w = np.array([[0.1, 0.2, 0.3], [1.0, -1.0, 0.0]])
    exact = (y[None, :] - w @ x.T) @ x - w
    full = blr_grad(x, y, batch_size=500)(w, np.random.default_rng(0))
    np.testing.assert_allclose(full, exact, rtol=1e-10)
    est = blr_grad(x, y)
    rng = np.random.default_rng(1)
    mean = np.mean([est(w, rng) for _ in range(2000)], axis=0)
    np.testing.assert_allclose(mean, exact, rtol=0.05, atol=2.0)
    idx = est.indices(np.random.default_rng(2))
    assert idx.shape == (50,) and len(set(idx.tolist())) == 50


# --------------------------------------------------------------------------- driver
def test_sample_sgmcmc_matches_manual_steps_thin_burnin():
    k = SGNHT(lambda q, rng: -q + 0.1 * rng.standard_normal(q.shape), 0.05,
              n_iter_resample_v=7)
    x0 = np.ones((3, 2))
    res = sample_sgmcmc(k, x0, 4, thin=3, burnin=5, rng=11, progress=True)
    assert res.draws.shape == (3, 4, 2)
    # the one Result of samplers.sample: chain-major [C, n] statistics, burn-in as warmup
    assert isinstance(res, samplers.Result) and res.logdensity is None and res.n_divergent == 0
    assert res.stats["grad_norm"].shape == (3, 4) and res.stats["step_size"].shape == (3, 4)
    assert res.warmup_stats["grad_norm"].shape == (3, 5)
    np.testing.assert_array_equal(res.stats["step_size"], 0.05)
    rng, state, manual = np.random.default_rng(11), k.init(x0), []
    for i in range(5 + 12):
        state, _ = k.step(state, rng)
        if i >= 5 and (i - 5 + 1) % 3 == 0:
            manual.append(state.position)
    np.testing.assert_array_equal(res.draws, np.stack(manual, axis=1))
    assert res.state.iteration == 17 and isinstance(res.state, SGNHTState)
    assert res.summary(print_table=False) is not None


@pytest.mark.parametrize("kernel", [SGLD, PSGLD, SGHMC, SGNHT])
def test_step_is_pure_and_float32(kernel):
    k = kernel(lambda q, rng: -q, 0.01)
    state = k.init(np.ones((5, 3), dtype=np.float32))
    before = [np.copy(a) for a in state if isinstance(a, np.ndarray)]
    for _ in range(3):
        new, info = k.step(state, np.random.default_rng(0))
    after = [a for a in state if isinstance(a, np.ndarray)]
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)
    assert new.position.dtype == np.float32 and new.iteration == 1
    assert all(a.dtype == np.float32 for a in new if isinstance(a, np.ndarray))
    assert info.grad_norm.dtype == np.float32


def test_sgnht_thermostat_shapes_and_momentum_resampling():
    k = SGNHT(lambda q, rng: -q, 0.01, use_vector_alpha=False, variance_extra=0.2)
    s = k.init(np.zeros((4, 3)))
    assert s.thermostat.shape == (4, 1) and np.all(s.thermostat == 0.2)
    assert SGNHT(lambda q, rng: -q, 0.01).init(np.zeros((4, 3))).thermostat.shape == (4, 3)
    k = SGHMC(lambda q, rng: 0 * q, 0.01, friction=0.0, n_iter_resample_v=2,
              second_order=False)
    s0 = k.init(np.zeros((2000, 1)))
    assert np.all(s0.momentum == 0)
    s1, _ = k.step(s0, np.random.default_rng(0))  # drawn at iteration 0: N(0, eta)
    assert np.std(s1.momentum) == pytest.approx(0.1, rel=0.05)
    s2, _ = k.step(s1, np.random.default_rng(1))  # friction 0, no force: v kept
    np.testing.assert_array_equal(s2.momentum, s1.momentum)
    s3, _ = k.step(s2, np.random.default_rng(2))  # iteration 2: redrawn
    assert not np.array_equal(s3.momentum, s2.momentum)
    assert isinstance(s3, SGHMCState)


# --------------------------------------------------------------------------- errors
def _g(q, rng):
    return -q


@pytest.mark.parametrize("make, match", [
    (lambda: SGLD(_g, -0.1), r"step_size: expected a positive finite float, got -0\.1"),
    (lambda: SGLD(_g, 0.0), r"step_size: expected a positive"),
    (lambda: SGLD(_g, float("nan")), r"step_size"),
    (lambda: PSGLD(_g, 0.1, decay=1.0), r"decay: expected a float in \[0, 1\)"),
    (lambda: PSGLD(_g, 0.1, epsilon=0.0), r"epsilon: expected a positive"),
    (lambda: SGHMC(_g, 0.1, friction=0.1, variance_estimate=0.2),
     r"variance_estimate: expected at most friction=0\.1"),
    (lambda: SGHMC(_g, 0.1, friction=-1.0), r"friction: expected a non-negative"),
    (lambda: SGHMC(_g, 0.1, n_iter_resample_v=2.5), r"n_iter_resample_v"),
    (lambda: SGNHT(_g, 0.1, tune_rate=0.0), r"tune_rate: expected a positive"),
    (lambda: SGNHT(_g, 0.1, variance_extra=-0.1), r"variance_extra"),
    (lambda: cyclical_step_size(0.1, 10, 0), r"n_cycles: expected a positive integer"),
    (lambda: cyclical_step_size(0.1, 10, 11), r"n_cycles: expected at most n_iterations=10"),
    (lambda: cyclical_step_size(-0.1, 10, 2), r"initial: expected a positive"),
    (lambda: polynomial_decay(1.0, 0.0, 0.5), r"b: expected a positive"),
    (lambda: polynomial_decay(1.0, 1.0, -0.5), r"gamma: expected a non-negative"),
])
def test_bad_parameters_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_callables_raise():
    with pytest.raises(TypeError, match="grad_estimator: expected a callable"):
        SGLD(0.1, 0.1)
    with pytest.raises(TypeError, match="log_likelihood_per_datum: expected a callable"):
        minibatch_grad_estimator(None, None, np.zeros(10), 10, 2)
    with pytest.raises(TypeError, match="log_prior: expected None or a callable"):
        minibatch_grad_estimator(lambda w, b: w, 3.0, np.zeros(10), 10, 2)


def test_bad_position_shape_raises():
    for kernel in (SGLD, PSGLD, SGHMC, SGNHT):
        with pytest.raises(ValueError, match=r"position: expected shape \[n_chains, dim\], "
                                             r"got shape \(3,\)"):
            kernel(_g, 0.1).init(np.zeros(3))


def test_schedule_returning_non_positive_raises():
    k = SGLD(_g, lambda t: 0.1 - 0.05 * t)
    state, rng = k.init(np.zeros((2, 1))), np.random.default_rng(0)
    state, _ = k.step(state, rng)
    state, _ = k.step(state, rng)
    with pytest.raises(ValueError, match=r"step_size: the schedule .* returned 0\.0 at "
                                         r"iteration 2; expected a positive finite float"):
        k.step(state, rng)
    with pytest.raises(ValueError, match=r"returned 'x' at iteration 0"):
        SGHMC(_g, lambda t: "x").step(SGHMC(_g, 0.1).init(np.zeros((2, 1))), rng)


@pytest.mark.parametrize("kernel", [SGLD, PSGLD, SGHMC, SGNHT])
def test_grad_estimator_wrong_shape_raises(kernel):
    k = kernel(lambda q, rng: q.sum(axis=1), 0.1)
    with pytest.raises(ValueError, match=r"grad_estimator: must return the gradient with the "
                                         r"shape of the position \(4, 2\).*got \(4,\)"):
        k.step(k.init(np.zeros((4, 2))), np.random.default_rng(0))


def test_grad_estimator_wrong_type_and_rng_raise():
    k = SGLD(lambda q, rng: [[0.0]], 0.1)
    with pytest.raises(ValueError, match="grad_estimator: must return the gradient"):
        k.step(k.init(np.zeros((1, 1))), np.random.default_rng(0))
    k = SGLD(_g, 0.1)
    with pytest.raises(TypeError, match=r"rng: expected a numpy.random.Generator"):
        k.step(k.init(np.zeros((1, 1))), 0)


def test_minibatch_errors():
    ll = lambda w, b: w[:, :1] * b[None, :]  # noqa: E731  [C, B]
    data = np.arange(10.0)
    with pytest.raises(ValueError, match=r"n_data: expected the data's leading length 10, got 9"):
        minibatch_grad_estimator(ll, None, data, 9, 2)
    with pytest.raises(ValueError, match=r"batch_size: expected an integer in \[1, n_data=10\]"):
        minibatch_grad_estimator(ll, None, data, 10, 11)
    with pytest.raises(ValueError, match=r"data: expected an array or a tuple of arrays sharing"):
        minibatch_grad_estimator(ll, None, (np.zeros(10), np.zeros(9)), None, 2)
    est = minibatch_grad_estimator(lambda w, b: w[:, :1] * ad.sum(b), None, data, None, 2)
    with pytest.raises(ValueError, match=r"log_likelihood_per_datum: must return shape "
                                         r"\(3, 2\) \(\[n_chains, batch_size\]\), got"):
        est(np.zeros((3, 2)), np.random.default_rng(0))
    est = minibatch_grad_estimator(ll, lambda w: ad.sum(w), data, None, 2)
    with pytest.raises(ValueError, match=r"log_prior: must return shape \(3,\)"):
        est(np.zeros((3, 2)), np.random.default_rng(0))
    g = minibatch_grad_estimator(ll, None, data, None, 2)(np.zeros((3, 2)),
                                                           np.random.default_rng(0))
    assert g.shape == (3, 2)


@pytest.mark.parametrize("kw, match", [
    (dict(n_samples=0), r"n_samples: expected a positive integer, got 0"),
    (dict(n_samples=5, thin=0), r"thin: expected a positive integer"),
    (dict(n_samples=5, burnin=-1), r"burnin: expected a non-negative integer"),
])
def test_sample_sgmcmc_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        sample_sgmcmc(SGLD(_g, 0.1), np.zeros((2, 1)), **kw)
    with pytest.raises(TypeError, match="kernel: expected an SG-MCMC kernel"):
        sample_sgmcmc(object(), np.zeros((2, 1)), 3)
