"""Rank-normalized R-hat, ESS and MCSE (samplers.diagnostics) on chains with known answers."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal

from samplers import diagnostics as dg

__all__ = []


def ar1(rng, phi, n_chains, n_draws, shift=0.0):
    """Stationary AR(1) chains with unit marginal variance: ESS/N = (1-phi)/(1+phi)."""
    e = rng.standard_normal((n_chains, n_draws)) * np.sqrt(1 - phi**2)
    x = signal.lfilter([1.0], [1.0, -phi], e, axis=1)
    x += rng.standard_normal((n_chains, 1)) * (phi ** np.arange(1, n_draws + 1))  # stationary start
    return x + shift


def loop_ess(ary):
    """ArviZ 0.x ``_ess`` (itself Stan's algorithm) for one quantity, as a literal loop.

    The oracle for the vectorized Geyer truncation in ``_ess_raw``.
    """
    n_chain, n_draw = ary.shape
    if np.ptp(ary) < np.finfo(float).resolution:
        return float(ary.size)
    acov = dg._autocov(ary[:, :, None])[:, :, 0]
    chain_mean = ary.mean(axis=1)
    mean_var = np.mean(acov[:, 0]) * n_draw / (n_draw - 1.0)
    var_plus = mean_var * (n_draw - 1.0) / n_draw
    if n_chain > 1:
        var_plus += np.var(chain_mean, ddof=1)
    rho_hat_t = np.zeros(n_draw)
    rho_hat_even = 1.0
    rho_hat_t[0] = rho_hat_even
    rho_hat_odd = 1.0 - (mean_var - np.mean(acov[:, 1])) / var_plus
    rho_hat_t[1] = rho_hat_odd
    t = 1
    while t < (n_draw - 3) and (rho_hat_even + rho_hat_odd) > 0.0:
        rho_hat_even = 1.0 - (mean_var - np.mean(acov[:, t + 1])) / var_plus
        rho_hat_odd = 1.0 - (mean_var - np.mean(acov[:, t + 2])) / var_plus
        if (rho_hat_even + rho_hat_odd) >= 0:
            rho_hat_t[t + 1] = rho_hat_even
            rho_hat_t[t + 2] = rho_hat_odd
        t += 2
    max_t = t - 2
    if rho_hat_even > 0:
        rho_hat_t[max_t + 1] = rho_hat_even
    t = 1
    while t <= max_t - 2:
        if (rho_hat_t[t + 1] + rho_hat_t[t + 2]) > (rho_hat_t[t - 1] + rho_hat_t[t]):
            rho_hat_t[t + 1] = (rho_hat_t[t - 1] + rho_hat_t[t]) / 2.0
            rho_hat_t[t + 2] = rho_hat_t[t + 1]
        t += 2
    ess = n_chain * n_draw
    tau_hat = -1.0 + 2.0 * np.sum(rho_hat_t[: max_t + 1]) + np.sum(rho_hat_t[max_t + 1 : max_t + 2])
    tau_hat = max(tau_hat, 1 / np.log10(ess))
    return ess / tau_hat


@pytest.mark.parametrize("n_draws", [2, 3, 4, 5, 6, 7, 8, 11, 50, 301])
@pytest.mark.parametrize("phi", [-0.6, 0.0, 0.5, 0.95])
def test_vectorized_geyer_matches_loop(n_draws, phi):
    rng = np.random.default_rng(n_draws)
    x = np.stack([ar1(rng, phi, 3, n_draws) for _ in range(6)], axis=-1)  # 6 quantities
    x[..., 5] = np.round(x[..., 5])  # ties and a coarser quantity
    got = dg._ess_raw(x)
    want = [loop_ess(x[:, :, j]) for j in range(x.shape[2])]
    np.testing.assert_allclose(got, want, rtol=1e-10)


@pytest.mark.parametrize("phi", [0.0, 0.5, 0.9, -0.3])
def test_ess_of_ar1_chains(phi):
    rng = np.random.default_rng(11)
    n_chains, n_draws = 8, 5000
    x = ar1(rng, phi, n_chains, n_draws)
    expected = n_chains * n_draws * (1 - phi) / (1 + phi)
    # antithetic chains have ESS > N; the 1/log10 bound is not reached here
    for value in (dg.ess(x), dg.ess_basic(x)):
        assert abs(float(value) / expected - 1) < 0.12, (value, expected)


def test_ess_iid_is_about_n_and_tail_smaller_for_ar():
    rng = np.random.default_rng(12)
    x = rng.standard_normal((4, 2000, 3))
    e = dg.ess(x)
    assert e.shape == (3,)
    np.testing.assert_allclose(e, 8000, rtol=0.1)
    np.testing.assert_allclose(dg.ess_tail(x), 8000, rtol=0.15)
    y = ar1(rng, 0.9, 4, 2000)
    assert float(dg.ess_tail(y)) < 0.2 * 8000


def test_ess_is_rank_based_but_ess_basic_is_not():
    rng = np.random.default_rng(13)
    x = rng.standard_normal((4, 1000))
    np.testing.assert_allclose(dg.ess(np.exp(3 * x)), dg.ess(x), rtol=1e-12)  # monotone map
    assert not np.isclose(dg.ess_basic(np.exp(3 * x)), dg.ess_basic(x), rtol=1e-3)


def test_rhat_near_one_and_detects_shift_and_scale():
    rng = np.random.default_rng(14)
    x = rng.standard_normal((4, 1000, 2))
    np.testing.assert_allclose(dg.rhat(x), 1.0, atol=0.01)
    shifted = x.copy()
    shifted[0] += 2.0
    assert np.all(dg.rhat(shifted) > 1.1)
    scaled = x.copy()  # same mean, one chain 4x wider: only the folded R-hat sees it
    scaled[0] *= 4.0
    assert np.all(dg.rhat(scaled) > 1.1)


def test_rhat_single_chain_uses_split_halves():
    rng = np.random.default_rng(15)
    trend = np.linspace(0, 5, 2000)[None, :] + rng.standard_normal((1, 2000))
    assert float(dg.rhat(trend)) > 1.5
    assert abs(float(dg.rhat(rng.standard_normal((1, 2000)))) - 1) < 0.02


def test_mcse_matches_formula_and_sd_of_means():
    rng = np.random.default_rng(16)
    x = ar1(rng, 0.5, 8, 4000)
    want = x.std(ddof=1) / np.sqrt(dg.ess_basic(x))
    np.testing.assert_allclose(dg.mcse(x), want, rtol=1e-12)
    # true standard error of the mean of 32000 AR(1) draws with phi=0.5
    true_se = np.sqrt((1 + 0.5) / (1 - 0.5) / x.size)
    assert abs(float(dg.mcse(x)) / true_se - 1) < 0.1


def test_mcse_sd_iid():
    rng = np.random.default_rng(17)
    x = rng.standard_normal((4, 5000))
    # sd of the sample sd of N iid normals is about 1/sqrt(2N)
    np.testing.assert_allclose(dg.mcse_sd(x), 1 / np.sqrt(2 * x.size), rtol=0.1)
    assert float(dg.mcse_sd(np.ones((2, 10)))) == 0.0


def test_trailing_shape_constant_and_nonfinite():
    rng = np.random.default_rng(18)
    x = rng.standard_normal((2, 100, 2, 3))
    x[:, :, 0, 0] = 1.0  # constant quantity: ESS = number of draws, as Stan/ArviZ
    x[0, 5, 1, 2] = np.nan
    for fn in (dg.ess, dg.ess_tail, dg.ess_basic, dg.rhat, dg.mcse, dg.mcse_sd):
        out = fn(x)
        assert out.shape == (2, 3), fn.__name__
        # a quantity with a NaN draw: R-hat +inf (fails every threshold), the rest NaN
        assert (np.isinf(out[1, 2]) if fn is dg.rhat else np.isnan(out[1, 2])), fn.__name__
        assert np.isfinite(out[0, 1]), fn.__name__
    assert dg.ess(x)[0, 0] == 200
    assert dg.ess(rng.standard_normal((2, 10))).shape == ()


def test_summary_table():
    rng = np.random.default_rng(19)
    x = rng.standard_normal((4, 500, 2)) * [1.0, 3.0] + [0.0, 10.0]
    s = dg.summary(x, names=["alpha", "beta"])
    assert list(s.columns) == ["mean", "sd", "mcse", "5%", "50%", "95%", "ess_bulk", "ess_tail", "r_hat"]
    np.testing.assert_allclose(s["mean"], [0, 10], atol=0.2)
    np.testing.assert_allclose(s["sd"], [1, 3], rtol=0.05)
    np.testing.assert_allclose(s["95%"], np.quantile(x.reshape(-1, 2), 0.95, axis=0))
    np.testing.assert_array_equal(s["r_hat"], dg.rhat(x))
    text = str(s)
    lines = text.splitlines()
    assert len(lines) == 3 and lines[1].startswith("alpha") and lines[2].startswith("beta")
    assert len({len(line) for line in lines}) == 1  # aligned
    assert repr(s) == text and len(s) == 2
    assert dg.summary(x[..., 0]).names == ["x"]
    assert dg.summary(rng.standard_normal((2, 10, 2, 2))).names[-1] == "x[1,1]"
    assert "10%" in dg.summary(x, quantiles=(0.1,)).columns


def test_matches_arviz_if_available():
    az = pytest.importorskip("arviz", reason="arviz not installed; the loop oracle above covers the ESS core")
    rng = np.random.default_rng(20)
    x = ar1(rng, 0.7, 4, 777)
    np.testing.assert_allclose(dg.ess(x), az.ess(x, method="bulk"), rtol=1e-6)
    np.testing.assert_allclose(dg.ess_tail(x), az.ess(x, method="tail"), rtol=1e-6)
    np.testing.assert_allclose(dg.ess_basic(x), az.ess(x, method="mean"), rtol=1e-6)
    np.testing.assert_allclose(dg.rhat(x), az.rhat(x, method="rank"), rtol=1e-6)
    np.testing.assert_allclose(dg.mcse(x), az.mcse(x, method="mean"), rtol=1e-6)
    try:
        reference_sd = az.mcse(x, method="sd")
    except TypeError:   # arviz 0.23's own mcse(method="sd") fails on NumPy 2.4 arrays
        pytest.skip("arviz.mcse(method='sd') itself raised TypeError; the other five matched")
    np.testing.assert_allclose(dg.mcse_sd(x), reference_sd, rtol=1e-6)


# ----------------------------------------------------------------- errors
@pytest.mark.parametrize("fn", [dg.ess, dg.ess_tail, dg.ess_basic, dg.rhat, dg.mcse, dg.mcse_sd, dg.summary])
def test_errors(fn):
    with pytest.raises(ValueError, match=r"draws: expected at least 4 draws per chain, got shape \(2, 3\)"):
        fn(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"draws: expected an array of shape \[n_chains, n_draws, ...\], got shape \(10,\)"):
        fn(np.zeros(10))
    with pytest.raises(ValueError, match=r"draws: expected at least 1 chain, got shape \(0, 10\)"):
        fn(np.zeros((0, 10)))


def test_summary_names_error():
    with pytest.raises(ValueError, match="names: expected 2 names .*, got 3"):
        dg.summary(np.zeros((2, 10, 2)), names=["a", "b", "c"])


# ------------------------------------------------------------ nested R-hat
def _nested_rhat_loops(x, k):
    """Margossian et al. (2024), eqs. for B and W, written with plain loops."""
    c, n = x.shape
    m = c // k
    sup_means, w_terms = [], []
    for s in range(k):
        chains = [x[s * m + j] for j in range(m)]
        means = [sum(ch) / n for ch in chains]
        sup = sum(means) / m
        sup_means.append(sup)
        wc = 0.0 if n == 1 else sum(sum((v - mu) ** 2 for v in ch) / (n - 1)
                                    for ch, mu in zip(chains, means)) / m
        bc = 0.0 if m == 1 else sum((mu - sup) ** 2 for mu in means) / (m - 1)
        w_terms.append(wc + bc)
    overall = sum(sup_means) / k
    b = sum((s_ - overall) ** 2 for s_ in sup_means) / (k - 1)
    w = sum(w_terms) / k
    return (1 + b / w) ** 0.5


@pytest.mark.parametrize("shape,k", [((8, 5), 2), ((12, 1), 4), ((4, 30), 4), ((6, 7), 3)])
def test_nested_rhat_matches_the_formula(shape, k):
    rng = np.random.default_rng(sum(shape) + k)
    x = rng.standard_normal(shape) + np.repeat(rng.standard_normal(k) * 0.3, shape[0] // k)[:, None]
    from samplers.diagnostics import nested_rhat
    got = nested_rhat(x, k)
    assert got.shape == ()
    assert float(got) == pytest.approx(_nested_rhat_loops(x, k), rel=1e-12)
    many = nested_rhat(np.stack([x, 2 * x + 1], axis=-1), k)      # trailing quantities
    np.testing.assert_allclose(many, [_nested_rhat_loops(x, k)] * 2, rtol=1e-12)


def test_nested_rhat_flags_superchains_that_disagree_and_bad_arguments():
    from samplers.diagnostics import nested_rhat
    rng = np.random.default_rng(0)
    same = rng.standard_normal((64, 10))
    apart = same + np.repeat([0.0, 3.0], 32)[:, None]
    assert float(nested_rhat(same, 8)) < 1.05 and float(nested_rhat(apart, 2)) > 1.5
    bad = same.copy()
    bad[3, 4] = np.nan
    assert np.isnan(nested_rhat(bad, 8))
    with pytest.raises(ValueError, match="n_superchains: expected an integer >= 2 that divides the 64"):
        nested_rhat(same, 5)
    with pytest.raises(ValueError, match="n_superchains"):
        nested_rhat(same, 1)


def test_stuck_chains_are_named():
    from samplers.diagnostics import stuck_chains
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 50, 2))
    x[3] = x[3, 0]                                  # frozen
    acc = np.full((5, 50), 0.8)
    acc[1] = 0.01                                   # barely moving
    assert list(stuck_chains(x)) == [3]
    assert list(stuck_chains(x, acc)) == [1, 3]


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 60), st.integers(1, 4), st.integers(0, 3), st.integers(0, 2 ** 31))
def test_average_ranks_match_scipy(m, k, decimals, seed):
    # the argsort path (no ties) and the rankdata fallback (ties) give scipy's ranks
    from scipy import stats as sstats
    from samplers.diagnostics import _average_ranks
    y = np.random.default_rng(seed).standard_normal((m, k))
    if decimals < 3:
        y = np.round(y, decimals)
    np.testing.assert_array_equal(_average_ranks(y), sstats.rankdata(y, method="average", axis=0))
