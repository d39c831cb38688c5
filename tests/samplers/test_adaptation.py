"""Warmup building blocks (samplers.adaptation): dual averaging, Welford, schedules."""

import math

import numpy as np
import pytest
from scipy import special

from samplers import adaptation as ad

__all__ = []


# ------------------------------------------------------------ dual averaging
@pytest.mark.parametrize("eps0", [1e-3, 1.0, 30.0])
def test_dual_averaging_converges_to_target_acceptance(eps0):
    init, update, final = ad.dual_averaging(target=0.8)
    state = init(eps0)
    assert state.mu == pytest.approx(math.log(10 * eps0)) and state.step_size == pytest.approx(eps0)
    for _ in range(2000):
        state = update(state, math.exp(-state.step_size))  # accept(eps) = exp(-eps)
    # the averaged step size is accepted with probability ~0.8 (eps* = -log 0.8);
    # a far start (eps0=30) leaves a small bias from the early iterates in the average
    assert abs(math.exp(-final(state)) - 0.8) < 0.01
    assert final(state) == pytest.approx(-math.log(0.8), rel=0.05)
    assert abs(math.exp(-state.step_size) - 0.8) < 0.02  # the last iterate too
    assert state.step == 2000


def test_dual_averaging_pools_chains_by_mean_and_treats_nan_as_reject():
    init, update, _ = ad.dual_averaging()
    s0 = init(0.5)
    pooled = update(s0, np.array([1.0, 0.4, np.nan, 0.6]))  # mean with nan -> 0: 0.5
    assert pooled == update(s0, 0.5)
    assert update(s0, 1.7) == update(s0, 1.0)  # clipped like Stan
    # one exact step of Alg. 5: H1 = (delta - a) / (1 + t0)
    h1 = (0.8 - 0.5) / 11.0
    assert pooled.avg_error == pytest.approx(h1)
    assert pooled.log_step_size == pytest.approx(math.log(5.0) - h1 / 0.05)
    assert pooled.log_step_size_avg == pytest.approx(pooled.log_step_size)  # weight 1**-kappa = 1
    assert s0.step == 0  # the old state is untouched
    s2 = update(pooled, 0.9)
    h2 = (1 - 1 / 12) * h1 + (0.8 - 0.9) / 12
    x2 = math.log(5.0) - math.sqrt(2) * h2 / 0.05
    assert s2.log_step_size == pytest.approx(x2)
    w = 2**-0.75  # iterate averaging weight t**-kappa
    assert s2.log_step_size_avg == pytest.approx(w * x2 + (1 - w) * pooled.log_step_size)


def test_per_chain_dual_averaging_is_one_scalar_run_per_chain():
    """An array of initial step sizes runs one dual averaging per chain: each chain's
    iterates equal a scalar run fed that chain's acceptance alone (NaN still 0)."""
    init, update, final = ad.dual_averaging(target=0.7)
    eps0 = np.array([0.01, 1.0, 30.0])
    vec = init(eps0)
    one = [init(e) for e in eps0]
    rng = np.random.default_rng(4)
    for t in range(50):
        a = rng.random(3)
        if t == 7:
            a[1] = np.nan
        vec = update(vec, a)
        one = [update(s_, float(np.nan_to_num(x))) for s_, x in zip(one, a)]
    for field in ("log_step_size", "log_step_size_avg", "avg_error", "mu"):
        np.testing.assert_allclose(getattr(vec, field), [getattr(s_, field) for s_ in one],
                                   rtol=1e-14)
    np.testing.assert_allclose(final(vec), [final(s_) for s_ in one], rtol=1e-14)
    np.testing.assert_allclose(vec.step_size, [s_.step_size for s_ in one], rtol=1e-14)
    with pytest.raises(ValueError, match=r"accept_prob: expected one value per chain, shape \(3,\)"):
        update(vec, np.ones(4))
    with pytest.raises(ValueError, match="initial_step_size: expected positive finite values"):
        init(np.array([1.0, -1.0]))


def test_dual_averaging_error():
    init, _, _ = ad.dual_averaging()
    with pytest.raises(ValueError, match="initial_step_size: expected a positive finite float, got 0"):
        init(0)


# ------------------------------------------------------------ Welford
@pytest.mark.parametrize("diagonal", [True, False])
def test_welford_equals_numpy_then_stan_regularization(diagonal):
    rng = np.random.default_rng(0)
    d = 4
    batches = [rng.standard_normal((c, d)) @ rng.standard_normal((d, d)) + 3.0 for c in (5, 1, 17, 8)]
    batches.append(rng.standard_normal(d))  # a single [D] draw
    init, update, final = ad.welford_covariance(diagonal=diagonal)
    state = init(d)
    for b in batches:
        state = update(state, b)
    x = np.vstack(batches)
    n = x.shape[0]
    assert state.count == n
    np.testing.assert_allclose(state.mean, x.mean(0), rtol=1e-12)
    want = x.var(0, ddof=1) if diagonal else np.cov(x.T)
    np.testing.assert_allclose(final(state, regularize=False), want, rtol=1e-10)
    reg = (n / (n + 5)) * want + 1e-3 * (5 / (n + 5)) * (1.0 if diagonal else np.eye(d))
    np.testing.assert_allclose(final(state), reg, rtol=1e-10)


def test_welford_init_from_array_keeps_dtype():
    init, update, final = ad.welford_covariance(diagonal=False)
    x = np.random.default_rng(1).standard_normal((6, 3)).astype(np.float32)
    state = update(init(x), x)
    assert state.mean.dtype == np.float32 and state.m2.shape == (3, 3)
    assert final(state).dtype == np.float32


def test_welford_errors():
    init, update, final = ad.welford_covariance()
    state = init(3)
    with pytest.raises(ValueError, match=r"draws: expected shape \[C, 3\] or \[3\], got \(2, 4\)"):
        update(state, np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"draws: expected shape .* got \(1, 2, 3\)"):
        update(state, np.zeros((1, 2, 3)))
    with pytest.raises(ValueError, match="state: expected at least 2 draws to estimate a variance, got 1"):
        final(update(state, np.zeros(3)))


# ------------------------------------------------------------ step-size heuristic
def gaussian_one_step_accept(sigma):
    """Exact acceptance of one leapfrog step on N(0, sigma^2), from q ~ target, p ~ N(0, 1).

    Averaged over (q, p) by Gauss-Hermite quadrature, so it is deterministic.
    """
    nodes, weights = np.polynomial.hermite_e.hermegauss(40)
    q, p = np.meshgrid(nodes * sigma, nodes)
    w = np.outer(weights, weights) / (2 * np.pi)

    def accept(eps):
        p_half = p - 0.5 * eps * q / sigma**2
        q1 = q + eps * p_half
        p1 = p_half - 0.5 * eps * q1 / sigma**2
        dh = 0.5 * (q1**2 - q**2) / sigma**2 + 0.5 * (p1**2 - p**2)
        return float((w * np.minimum(1.0, np.exp(-dh))).sum())

    return accept


@pytest.mark.parametrize("eps0", [1e-4, 1.0, 50.0])
def test_find_reasonable_step_size_crosses_half(eps0):
    sigma = 2.0
    accept = gaussian_one_step_accept(sigma)
    eps = ad.find_reasonable_step_size(accept, initial_step_size=eps0)
    # acceptance crosses 0.5 between eps and its neighbour in the search direction
    neighbour = eps / 2 if accept(eps0) > 0.5 else eps * 2
    lo, hi = sorted([eps, neighbour])
    assert accept(lo) > 0.5 >= accept(hi)
    assert eps0 == 1.0 or eps / eps0 == 2.0 ** round(math.log2(eps / eps0))  # powers of two from eps0


def test_find_reasonable_step_size_pools_chains():
    calls = []

    def accept(eps):
        calls.append(eps)
        a = special.expit(3.5 - eps)
        return np.array([a, a, np.nan, 1.0])  # NaN as 0: mean >= 0.5 iff eps <= 3.5

    # 0.125 -> 0.25 -> ... -> 2 (mean above 0.5) -> 4 (below): returns 4.
    # (np.nanmean pooling would cross only at eps = 4.6 and return 8.)
    assert ad.find_reasonable_step_size(accept, initial_step_size=0.125) == 4.0
    assert calls == [0.125, 0.25, 0.5, 1.0, 2.0, 4.0]


def test_find_reasonable_step_size_per_chain():
    """Per chain: each chain's search is the scalar search on that chain alone; a
    chain whose acceptance never crosses gets NaN instead of ending the search; no
    chain crossing is an error."""
    scales = np.array([1e-6, 1.0, 50.0])

    def accept(eps):                     # chain c accepts exp(-eps / scale_c)
        return np.exp(-np.asarray(eps) / scales)
    got = ad.find_reasonable_step_size(accept, np.ones(3), target=0.5)
    for c in range(3):
        alone = ad.find_reasonable_step_size(lambda e: math.exp(-e / scales[c]), 1.0,
                                             target=0.5)
        assert got[c] == alone

    def never(eps):                      # chain 1 always rejects
        a = accept(eps)
        a[1] = 0.0
        return a
    got = ad.find_reasonable_step_size(never, np.ones(3), target=0.5, max_doublings=30)
    assert np.isnan(got[1]) and np.isfinite(got[[0, 2]]).all()
    with pytest.raises(RuntimeError, match="did not cross 0.5 for any chain"):
        ad.find_reasonable_step_size(lambda e: np.zeros(3), np.ones(3), target=0.5,
                                     max_doublings=10)


def test_find_reasonable_step_size_errors():
    with pytest.raises(ValueError, match="initial_step_size: expected a positive finite float"):
        ad.find_reasonable_step_size(lambda e: 1.0, initial_step_size=-1.0)
    with pytest.raises(RuntimeError, match="did not cross 0.5 after 10 doublings"):
        ad.find_reasonable_step_size(lambda e: 1.0, max_doublings=10)  # flat density
    with pytest.raises(RuntimeError, match="halvings"):
        ad.find_reasonable_step_size(lambda e: 0.0, max_doublings=10)


# ------------------------------------------------------------ schedule
def stan_schedule(n_warmup, init_buffer=75, base_window=25, term_buffer=50):
    """Literal port of Stan's windowed_adaptation state machine (the oracle)."""
    if n_warmup < 20:
        num_warmup, init_buffer, term_buffer, base_window = 0, 0, 0, 0
    elif init_buffer + base_window + term_buffer > n_warmup:
        num_warmup = n_warmup
        init_buffer = int(0.15 * n_warmup)
        term_buffer = int(0.1 * n_warmup)
        base_window = n_warmup - (init_buffer + term_buffer)
    else:
        num_warmup = n_warmup
    size = base_window
    next_window = init_buffer + size - 1
    out = []
    for counter in range(n_warmup):
        in_window = init_buffer <= counter < num_warmup - term_buffer and counter != num_warmup
        end = counter == next_window and counter != num_warmup
        out.append((int(in_window), bool(end)))
        if end and next_window != num_warmup - term_buffer - 1:
            size *= 2
            next_window = counter + size
            if next_window != num_warmup - term_buffer - 1:
                if next_window + 2 * size >= num_warmup - term_buffer:
                    next_window = num_warmup - term_buffer - 1
    return out


def window_ends(schedule):
    return [i for i, (_, end) in enumerate(schedule) if end]


def test_schedule_stan_default_1000():
    s = ad.window_schedule(1000)
    assert len(s) == 1000
    assert window_ends(s) == [99, 149, 249, 449, 949]  # windows 25, 50, 100, 200, 500
    assert [st for st, _ in s[:75]] == [0] * 75 and [st for st, _ in s[950:]] == [0] * 50
    assert all(st == 1 for st, _ in s[75:950])


@pytest.mark.parametrize("n_warmup", [0, 1, 19, 20, 21, 50, 100, 149, 150, 151, 160, 200, 230, 300, 500, 777, 1000, 2000, 5003])
def test_schedule_matches_stan_state_machine(n_warmup):
    assert ad.window_schedule(n_warmup) == stan_schedule(n_warmup)


@pytest.mark.parametrize("args", [(400, 30, 10, 20), (60, 10, 5, 10), (100, 0, 1, 0), (1000, 100, 50, 100)])
def test_schedule_matches_stan_custom_buffers(args):
    assert ad.window_schedule(*args) == stan_schedule(*args)


def test_schedule_short_warmup_scales_15_75_10():
    s = ad.window_schedule(100)
    assert [st for st, _ in s] == [0] * 15 + [1] * 75 + [0] * 10
    assert window_ends(s) == [89]
    assert ad.window_schedule(10) == [(0, False)] * 10  # < 20: no slow stage, as Stan


def test_schedule_errors():
    with pytest.raises(ValueError, match="n_warmup: expected a non-negative integer, got -1"):
        ad.window_schedule(-1)
    with pytest.raises(ValueError, match="final_buffer: expected a non-negative integer, got 2.5"):
        ad.window_schedule(100, final_buffer=2.5)
    with pytest.raises(ValueError, match="first_window: expected a positive integer, got 0"):
        ad.window_schedule(100, first_window=0)
