"""Warmup strategies (stan, fisher, chees, meads) and the kernels they drive.

Gaussians with known moments, MCSE-scaled; the ChEES gradient against a finite
difference of its criterion; GHMC's invariance from stationarity.
"""
import warnings

import numpy as np
import pytest

import samplers
from samplers.ghmc import GHMC
from samplers.strategies.chees import chees_gradient
from samplers.strategies.fisher import fisher_inverse_mass
from samplers.strategies.meads import MEADSAdaptation, max_eigenvalue, restart_low
from samplers.diagnostics import mcse

from .helpers import check_moments, normal

SCALES = np.array([0.1, 1.0, 3.0, 10.0])


def _sample(adaptation, kernel=None, chains=4, warmup=400, samples=400, seed=0, **kw):
    ld, g = normal(SCALES)
    with warnings.catch_warnings():
        warnings.simplefilter("error", samplers.DivergenceWarning)
        return samplers.sample(ld, n_chains=chains, dim=len(SCALES), kernel=kernel,
                               adaptation=adaptation, grad_fn=g, n_warmup=warmup,
                               n_samples=samples, rng=seed, progress=False, **kw)


def test_chees_many_chains_gaussian():
    res = _sample("chees", chains=256, warmup=300, samples=60)
    assert type(res.kernel).__name__ == "HMC"
    check_moments(res.draws, 0.0, SCALES ** 2)
    # the mass is the variance (pooled over chains), the trajectory spans a fraction of a
    # period of the whitened target (2 pi): neither one step nor thousands
    np.testing.assert_allclose(res.inverse_mass / SCALES ** 2, 1.0, rtol=0.2)
    t = res.params.trajectory_length
    assert 0.5 < t < 15.0, t
    eps = float(res.step_size[0])
    assert t > 2 * eps
    # harmonic-mean acceptance near its 0.651 target after warmup
    acc = res.stats["acceptance"]
    assert 0.5 < 1.0 / np.mean(1.0 / np.maximum(acc, 1e-3)) < 0.85
    # jittered trajectories: the number of steps varies between transitions
    assert len(np.unique(res.stats["n_grad_evals"][0])) >= 3


@pytest.mark.parametrize("estimate", ["variance", "fisher"])
def test_chees_dense_mass_on_a_correlated_gaussian(estimate):
    cov = np.array([[1.0, 0.99 * 3], [0.99 * 3, 9.0]])
    prec = np.linalg.inv(cov)
    res = samplers.sample(lambda q: -0.5 * np.einsum("ci,ij,cj->c", q, prec, q),
                          n_chains=128, dim=2,
                          adaptation=samplers.ChEESAdaptation(dense_mass=True,
                                                              mass_estimate=estimate),
                          grad_fn=lambda q: -q @ prec, n_warmup=300, n_samples=100, rng=2,
                          progress=False)
    assert res.inverse_mass.shape == (2, 2)
    np.testing.assert_allclose(res.inverse_mass, cov, rtol=0.1, atol=0.1)
    check_moments(res.draws, 0.0, np.diag(cov))


def test_meads_ghmc_gaussian():
    res = _sample("meads", chains=64, warmup=400, samples=400)
    assert type(res.kernel).__name__ == "GHMC"
    check_moments(res.draws, 0.0, SCALES ** 2)
    p = res.params
    assert p.inverse_mass.shape == (64, 4) and p.damping.shape == (64,)
    # each fold's inverse mass is its source fold's variance: the truth within sampling error
    np.testing.assert_allclose(np.median(p.inverse_mass, 0) / SCALES ** 2, 1.0, rtol=0.5)
    assert (p.step_size > 0.1).all() and (p.step_size <= 1.0).all()


#: A Gaussian posterior whose mode is far outside uniform(-2, 2) (30 / 0.02 = 1500
#: posterior sds away in the first coordinate), scales 0.02 to 2, one correlation.
FAR_MEAN = np.array([30.0, -12.0, 4.0, 0.5])
FAR_SD = np.array([0.02, 0.3, 2.0, 0.1])


def _far_gaussian():
    cov = np.diag(FAR_SD ** 2)
    cov[0, 1] = cov[1, 0] = 0.6 * FAR_SD[0] * FAR_SD[1]
    prec = np.linalg.inv(cov)
    return (lambda q: -0.5 * np.einsum("ci,ij,cj->c", q - FAR_MEAN, prec, q - FAR_MEAN),
            lambda q: -(q - FAR_MEAN) @ prec)


@pytest.mark.parametrize("seed", [0, 1])
def test_meads_reaches_a_far_mode_from_uniform_inits(seed):
    # the paper's scheme alone (per_chain_start=False, overdispersion=False) ends
    # hundreds of MCSE off here: its step size collapses while the chains are spread
    ld, g = _far_gaussian()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", samplers.StuckChainWarning)
        warnings.simplefilter("error", samplers.DivergenceWarning)
        res = samplers.sample(ld, n_chains=64, dim=4, adaptation="meads", grad_fn=g,
                              n_warmup=400, n_samples=200, rng=seed, progress=False)
    check_moments(res.draws, FAR_MEAN, FAR_SD ** 2)


def test_meads_overdispersion_correction():
    """In the typical set the corrected step size is the paper's (within the noise of
    the Stein ratio); with chains 30 times wider than the posterior the paper's is ~30
    times too small and the corrected one is not."""
    sd = np.array([0.5, 1.0, 2.0])
    rng = np.random.default_rng(3)
    paper = MEADSAdaptation(overdispersion=False)
    ours = MEADSAdaptation()
    q = rng.standard_normal((256, 3)) * sd
    e0, m0, d0 = paper._fold_params(q, -q / sd ** 2, 100)
    e1, m1, d1 = ours._fold_params(q, -q / sd ** 2, 100)
    assert e1 == pytest.approx(e0, rel=0.15)
    np.testing.assert_allclose(m1, m0)
    # stationary: lambda_max of the whitened Fisher matrix is 1, eps = 0.5
    assert e0 == pytest.approx(0.5, rel=0.15)
    q = 30 * q
    e0, m0, _ = paper._fold_params(q, -q / sd ** 2, 100)
    e1, m1, _ = ours._fold_params(q, -q / sd ** 2, 100)
    np.testing.assert_allclose(m1, m0)                  # the mass is the chains' variance
    # whitened by the spread, the posterior's sd is 1/30: a stable step ~ 0.5 / 30
    assert e0 == pytest.approx(0.5 / 900, rel=0.2)
    assert e1 == pytest.approx(0.5 / 30, rel=0.2)


def test_restart_low_moves_chains_far_below_the_others():
    ld, g = normal(np.ones(2))
    k = GHMC(ld, 0.5, grad_fn=g)
    q = np.random.default_rng(0).standard_normal((40, 2))
    q[[3, 7]] = [[40.0, 0.0], [0.0, -25.0]]             # log density -800 and -312
    st = k.init(q)
    with pytest.warns(samplers.StuckChainWarning,
                      match="2 of 40 chains had log densities.*chain 3: -800"):
        new = restart_low(st, 10.0, "test")
    moved = np.nonzero((new.position != st.position).any(1))[0]
    np.testing.assert_array_equal(moved, [3, 7])
    assert (np.abs(new.position) < 5).all()
    np.testing.assert_array_equal(new.logdensity, ld(new.position))
    # none far below, or a quarter or more (with most=0.25): the same state
    st = k.init(np.delete(q, [3, 7], 0))
    assert restart_low(st, 10.0, "test") is st
    q[:10] += 40.0
    st = k.init(q)
    assert restart_low(st, 10.0, "test", most=0.25) is st
    with pytest.warns(samplers.StuckChainWarning, match="10 of 40 chains"):
        assert restart_low(st, 10.0, "test", most=0.75) is not st


def test_fisher_nuts_gaussian_mass_is_the_variance():
    res = _sample("fisher", warmup=300, samples=500)
    check_moments(res.draws, 0.0, SCALES ** 2)
    # for a Gaussian sqrt(Var[q] / Var[grad]) is the variance itself
    np.testing.assert_allclose(res.inverse_mass / SCALES ** 2, 1.0, rtol=0.3)
    assert 0.6 < res.stats["acceptance"].mean() < 0.95


def test_fisher_hmc_and_stan_defaults():
    res = _sample("fisher", kernel="hmc", warmup=300, samples=300, n_leapfrogs=8)
    check_moments(res.draws, 0.0, SCALES ** 2)
    res = _sample(None, warmup=300, samples=300)        # stan, the NUTS default
    check_moments(res.draws, 0.0, SCALES ** 2)


def test_chees_fisher_mass_diagonal():
    res = _sample(samplers.ChEESAdaptation(mass_estimate="fisher"), chains=256, warmup=300,
                  samples=60)
    check_moments(res.draws, 0.0, SCALES ** 2)
    np.testing.assert_allclose(res.inverse_mass / SCALES ** 2, 1.0, rtol=0.2)


def test_fisher_inverse_mass_limits():
    r = fisher_inverse_mass(np.array([4.0, 0.0, np.nan, 1e30]), np.array([1.0, 1.0, 1.0, 1e-30]))
    np.testing.assert_allclose(r, [2.0, 1.0, 1.0, 1e10])


@pytest.mark.parametrize("dense", [False, True])
def test_chees_gradient_is_the_derivative_of_the_criterion(dense):
    # exact dynamics of H = q^T S^-1 q / 2 + p^T S p / 2 (inverse mass S = L L^T): in
    # whitened coordinates x = L^-1 q, r = L^T p they rotate, x(t) = x cos t + r sin t
    rng = np.random.default_rng(0)
    if dense:
        a = rng.standard_normal((3, 3))
        inv = a @ a.T + 0.5 * np.eye(3)
    else:
        inv = np.diag([0.25, 4.0, 1.0])
    chol = np.linalg.cholesky(inv)
    x0 = rng.standard_normal((50, 3))
    r0 = rng.standard_normal((50, 3))
    q0 = x0 @ chol.T
    acc = rng.uniform(0.3, 1.0, 50)

    def traj(t):
        x, r = x0 * np.cos(t) + r0 * np.sin(t), r0 * np.cos(t) - x0 * np.sin(t)
        return x @ chol.T, np.linalg.solve(chol.T, r.T).T      # q = L x, p = L^-T r

    t = 1.3
    q1, p1 = traj(t)
    m1 = (acc[:, None] * q1).sum(0) / acc.sum()      # the centre is held fixed (stop-gradient)
    m0 = q0.mean(0)

    def chees(tt):
        x1 = np.linalg.solve(chol, (traj(tt)[0] - m1).T).T
        x0c = np.linalg.solve(chol, (q0 - m0).T).T
        return 0.25 * (acc * ((x1 ** 2).sum(1) - (x0c ** 2).sum(1)) ** 2).sum() / acc.sum()

    h = 1e-6
    fd = t * (chees(t + h) - chees(t - h)) / (2 * h)        # d/dlog t
    got = chees_gradient(q0, q1, p1, acc, np.zeros(50, bool), inv if dense else np.diag(inv),
                         t)
    assert got == pytest.approx(fd, rel=1e-6)
    # divergent chains and non-finite proposals are left out
    div = np.zeros(50, bool)
    div[:10] = True
    q1n = q1.copy()
    q1n[:10] = np.nan
    got2 = chees_gradient(q0, q1n, p1, acc, div, inv if dense else np.diag(inv), t)
    assert np.isfinite(got2) and got2 != got


def test_max_eigenvalue_estimate():
    # rows with covariance diag(9, 1, 1): sum(l^2) / sum(l) = 83 / 11
    rng = np.random.default_rng(1)
    x = rng.standard_normal((20000, 3)) * np.array([3.0, 1.0, 1.0])
    assert max_eigenvalue(x) == pytest.approx(83 / 11, rel=0.03)


def test_ghmc_leaves_the_joint_distribution_invariant():
    # u = log x, x ~ Gamma(2, 1): skewed, so that a missing momentum flip or a wrong slice
    # update shows (each was checked to fail this test by > 20 standard errors). From exact
    # draws of (q, p, u) with fixed parameters, q keeps its law and u stays U(-1, 1).
    from scipy.special import digamma, polygamma
    a = 2.0
    rng = np.random.default_rng(3)
    c = 4000
    k = GHMC(lambda q: (a * q - np.exp(q)).sum(1), 1.2, damping=0.1,
             grad_fn=lambda q: a - np.exp(q))
    st = k.init(np.log(rng.gamma(a, size=(c, 1))), rng=rng)
    params = k.params(st.position)
    qs, acc = [], []
    for i in range(200):
        st, info = k.step(st, rng, params)
        acc.append(info.is_accepted.mean())
        if i % 10 == 9:
            qs.append(st.position[:, 0])
    q = np.stack(qs, 1)                                       # [C, 20], chains independent
    mean, var = digamma(a), polygamma(1, a)
    assert abs(q.mean() - mean) / np.sqrt(var * 10 / q.size) < 4
    assert abs(q.var() / var - 1) < 0.05
    assert abs(st.slice.mean()) / np.sqrt(1 / 3 / c) < 4
    assert abs((st.slice ** 2).mean() - 1 / 3) / np.sqrt(4 / 45 / c) < 4
    assert abs((st.momentum ** 2).mean() - 1) < 0.06
    assert 0.5 < np.mean(acc) < 0.9


def test_ghmc_slice_rule_and_momentum_flip():
    ld, g = normal(np.ones(2))
    k = GHMC(ld, 2.5, damping=1e-9, grad_fn=g)          # huge step: many rejections
    rng = np.random.default_rng(0)
    st = k.init(rng.standard_normal((500, 2)), rng=rng)
    params = k.params(st.position)
    new, info = k.step(st, np.random.default_rng(5), params)
    acc = info.is_accepted
    assert acc.any() and (~acc).any()
    # alpha ~ 0: the momentum persists; rejected chains negate it and keep their position
    np.testing.assert_allclose(new.momentum[~acc], -info.momentum[~acc])
    np.testing.assert_array_equal(new.position[~acc], st.position[~acc])
    np.testing.assert_allclose(new.position[acc], info.proposal[acc])
    # the slice variable moved by delta = alpha / 2, then u -> u exp(dH) on acceptance
    alpha = -np.expm1(-2 * 2.5 * 1e-9)
    u = np.mod(st.slice + 1 + alpha / 2, 2) - 1
    assert (np.abs(u[acc]) < info.acceptance_rate[acc]).all()
    assert (np.abs(u[~acc]) >= info.acceptance_rate[~acc]).all()
    np.testing.assert_allclose(new.slice[~acc], u[~acc])
    h0 = 0.5 * (info.momentum ** 2).sum(1) - ld(st.position)
    dh = info.energy - h0                                  # energy of the accepted point
    np.testing.assert_allclose(new.slice[acc], u[acc] * np.exp(dh[acc]), rtol=1e-12)
    assert (np.abs(new.slice) <= 1.0).all()


def test_strategy_errors_are_clear():
    ld, g = normal(np.ones(2))
    kw = dict(n_chains=4, dim=2, grad_fn=g, n_warmup=10, n_samples=5, progress=False)
    with pytest.raises(ValueError, match="adaptation: unknown strategy 'chess'"):
        samplers.sample(ld, adaptation="chess", **kw)
    with pytest.raises(ValueError, match="no parameter 'trajectory_length'.*kernel='hmc'"):
        samplers.sample(ld, kernel="nuts", adaptation="chees", **kw)
    with pytest.raises(ValueError, match="needs at least 8 chains"):
        samplers.sample(ld, adaptation="meads", **kw)
    with pytest.raises(ValueError, match="dense_mass: adaptation 'meads' does not take it"):
        samplers.sample(ld, adaptation="meads", dense_mass=True, **kw)
    with pytest.raises(ValueError, match="target_accept: adaptation 'none' does not take it"):
        samplers.sample(ld, adaptation="none", target_accept=0.9, **kw)
    with pytest.raises(TypeError, match="give them to the strategy object"):
        samplers.sample(ld, adaptation=samplers.StanAdaptation(),
                        target_accept=0.9, **kw)
    with pytest.raises(TypeError, match="adaptation: expected a name, a strategy class"):
        samplers.sample(ld, adaptation=3, **kw)


def test_no_adaptation_keeps_the_given_parameters():
    ld, g = normal(np.ones(2))
    res = samplers.sample(ld, n_chains=4, dim=2, grad_fn=g, n_warmup=20, n_samples=5,
                          adaptation="none", step_size=0.3, inverse_mass=np.array([1., 2.]),
                          progress=False)
    np.testing.assert_array_equal(res.step_size, 0.3)
    np.testing.assert_array_equal(res.inverse_mass, [1.0, 2.0])
    np.testing.assert_array_equal(res.warmup_stats["step_size"], 0.3)


def _regression_target(n=20, seed=4):
    """``y ~ Normal(a + b x, sigma)``, x in [3950, 4010] (kilpisjarvi's geometry:
    corr(a, b) ~ -0.9999, sd(a) / sd(b) ~ 4000), flat priors on a, b and sigma; u = (a,
    b, log sigma). The posterior of (a, b) is a Student-t centred on least squares with
    covariance E[sigma^2] (X^T X)^-1, and sigma^2 ~ InvGamma((n - 3) / 2, RSS / 2)."""
    rng = np.random.default_rng(seed)
    x = np.linspace(3950.0, 4010.0, n)
    y = -60.0 + 0.0175 * x + rng.standard_normal(n)
    design = np.stack([np.ones(n), x], 1)
    xtx = design.T @ design
    beta = np.linalg.solve(xtx, design.T @ y)
    rss = float(((y - design @ beta) ** 2).sum())

    def parts(u):
        r = y - u[:, :1] - u[:, 1:2] * x                       # [C, n]
        return r, np.exp(-2.0 * u[:, 2])

    def ld(u):
        r, w = parts(u)
        return -(n - 1) * u[:, 2] - 0.5 * w * (r * r).sum(1)

    def grad(u):
        r, w = parts(u)
        return np.stack([w * r.sum(1), w * (r * x).sum(1),
                         -(n - 1) + w * (r * r).sum(1)], 1)
    e_s2 = rss / (n - 5)
    return ld, grad, beta, e_s2 * np.linalg.inv(xtx), e_s2


def test_chees_badly_scaled_correlated_regression_from_uniform_inits():
    # kilpisjarvi's failure: from uniform(-2, 2) inits the chains' local curvatures differ
    # by orders of magnitude (residuals of thousands, sigma from e^-2 to e^2), a shared
    # step size is set by the stiffest chain and the others barely move, the mass
    # windows see chains far from the typical set and T stays at a few steps. Per-chain
    # step sizes until the first mass change and doubling T while the criterion rises
    # get there (the old scheme ended with |z| > 100 on a).
    ld, grad, mean, cov, e_s2 = _regression_target()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", samplers.DivergenceWarning)
        res = samplers.sample(ld, n_chains=128, dim=3, kernel="hmc",
                              adaptation=samplers.ChEESAdaptation(dense_mass=True),
                              grad_fn=grad, n_warmup=400, n_samples=100, rng=1,
                              progress=False)
    draws = np.asarray(res.draws)
    check_moments(draws[..., :2], mean, np.diag(cov))
    s2 = np.exp(2 * draws[..., 2:])
    zs = abs(s2.mean() - e_s2) / mcse(s2)[0]
    assert zs < 4, zs
    # the tuned mass has the posterior's correlation
    inv = res.inverse_mass
    assert inv[0, 1] / np.sqrt(inv[0, 0] * inv[1, 1]) < -0.9


@pytest.mark.parametrize("start_steps", [8, 3, None])
def test_chees_takes_a_fixed_number_of_steps_in_transit(start_steps):
    """Until the first mass change (10-40 % of warmup: step sizes per chain, chains on
    their way from the inits) every transition takes at most ``start_steps`` steps and
    T follows the step size; ``start_steps=None`` adapts T from the start (the chains
    in transit make the criterion climb)."""
    ld, g = normal(SCALES)
    seen = []
    ad = samplers.ChEESAdaptation(start_steps=start_steps)
    update = ad.update

    def spy(kernel, astate, state, info, rng):
        new, state = update(kernel, astate, state, info, rng)
        seen.append((astate.iteration, int(np.max(info.n_grad_evals)),
                     astate.params.trajectory_length,
                     float(np.mean(astate.params.step_size))))
        return new, state
    ad.update = spy
    samplers.sample(ld, n_chains=64, dim=len(SCALES), kernel="hmc", adaptation=ad,
                    grad_fn=g, n_warmup=200, n_samples=10, rng=3, progress=False)
    first = [s for s in seen if s[0] < 80]           # the per-chain phase: 0.4 * 200
    later = [s for s in seen if s[0] >= 80]
    if start_steps is None:
        assert max(s[1] for s in first) > 8
    else:
        assert max(s[1] for s in first) <= start_steps
        np.testing.assert_allclose([t / e for _, _, t, e in first], start_steps)
        assert len({s[1] for s in first}) > 1          # jittered
    ratios = [t / e for _, _, t, e in later]           # adapted after the mass change
    assert np.ptp(ratios) > 1.0 and not np.allclose(ratios, 8.0)


def test_chees_climb_ends_at_the_last_length_where_the_criterion_rose(monkeypatch):
    """T doubles while the criterion clearly rises (its gradient two standard errors
    above 0); at the first T where it does not, Adam starts from the T before (half of
    it: the maximum lies between them), never below one step."""
    from samplers.strategies import chees as chees_module
    ld, g = normal(SCALES)
    got = []
    ad = samplers.ChEESAdaptation()
    update = ad.update

    def spy(kernel, astate, state, info, rng):
        got.append((kernel, astate, state, info))
        return update(kernel, astate, state, info, rng)
    ad.update = spy
    samplers.sample(ld, n_chains=16, dim=len(SCALES), kernel="hmc", adaptation=ad,
                    grad_fn=g, n_warmup=40, n_samples=2, rng=0, progress=False)
    kernel, astate, state, info = got[-1]
    astate = astate._replace(climbing=True, log_length=np.log(4.0))
    for (grad, se), eps, want, climbing in [((10.0, 1.0), 0.1, 8.0, True),   # rises
                                             ((1.0, 1.0), 0.1, 2.0, False),   # unclear
                                             ((-5.0, 1.0), 0.1, 2.0, False),  # falls
                                             ((1.0, 1.0), 3.0, 3.0, False)]:  # one step
        monkeypatch.setattr(chees_module, "chees_gradient",
                            lambda *a, grad=grad, se=se, **k: (grad, se))
        log_t, log_t_avg, _, _, still = ad._length(kernel, astate, state, info, eps)
        assert still is climbing
        np.testing.assert_allclose(np.exp(log_t), want)


def test_chees_shared_step_size_settles():
    """With one step size for all chains the acceptance swings from nearly all to nearly
    none; dual averaging at Stan's gamma 0.05 then oscillates over whole windows, at
    the default 0.15 it settles (512 chains, 16-D Gaussian, seed fixed)."""
    ld, g = normal(np.tile(SCALES, 4))
    spread = {}
    for gamma in (0.05, 0.15):
        ad = samplers.ChEESAdaptation(gamma=gamma)
        update, eps = ad.update, []

        def spy(kernel, astate, state, info, rng, update=update, eps=eps):
            new, state = update(kernel, astate, state, info, rng)
            eps.append(float(np.mean(new.params.step_size)))
            return new, state
        ad.update = spy
        samplers.sample(ld, n_chains=512, dim=16, kernel="hmc", adaptation=ad, grad_fn=g,
                        n_warmup=300, n_samples=10, rng=1, progress=False)
        spread[gamma] = np.std(np.log(eps[150:205]))   # the second window, after 30
    assert spread[0.05] > 0.3 and spread[0.15] < 0.2, spread


def test_chees_start_steps_and_gamma_are_checked():
    for bad in (0, 2.5, True, -1):
        with pytest.raises(ValueError, match="start_steps: expected a positive integer"):
            samplers.ChEESAdaptation(start_steps=bad)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="gamma: expected a positive float"):
            samplers.ChEESAdaptation(gamma=bad)


def test_restart_slow_moves_only_slow_chains_low_down():
    from samplers.hmc import HMCState
    from samplers.strategies.chees import restart_slow
    from samplers.warmup import StuckChainWarning
    q = np.arange(12.0).reshape(6, 2)
    lp = np.array([-1.0, -2.0, -3.0, -500.0, 0.5, -4.0])
    st = HMCState(q, lp, -q)
    eps = np.array([0.1, 0.12, 0.09, 1e-4, 1e-4, 0.11])
    # chain 3: 1000x slower and far below -> restarted from chain 0; chain 4 is as
    # slow but above the median log density (a funnel's neck): kept
    with pytest.warns(StuckChainWarning, match="1 of 6 chains.*chain 3"):
        new = restart_slow(st, eps, 10.0, "warmup iteration 5")
    np.testing.assert_array_equal(new.position[3], q[0])
    assert new.logdensity[3] == lp[0]
    np.testing.assert_array_equal(np.delete(new.position, 3, 0), np.delete(q, 3, 0))
    # nothing slow: the same object, no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert restart_slow(st, np.full(6, 0.1), 10.0, "x") is st


def test_chees_gradient_standard_error():
    rng = np.random.default_rng(0)
    q0, q1, p1 = (rng.standard_normal((40, 3)) for _ in range(3))
    acc = rng.uniform(0.2, 1.0, 40)
    inv = np.array([1.0, 2.0, 0.5])
    m, se = chees_gradient(q0, q1, p1, acc, np.zeros(40, bool), inv, 0.7,
                           standard_error=True)
    assert m == chees_gradient(q0, q1, p1, acc, np.zeros(40, bool), inv, 0.7)
    # per-chain terms in whitened coordinates, the ratio estimator's standard error
    root = np.sqrt(inv)
    x1 = (q1 - (acc[:, None] * q1).sum(0) / acc.sum()) / root
    x0 = (q0 - q0.mean(0)) / root
    g = 0.7 * ((x1 ** 2).sum(1) - (x0 ** 2).sum(1)) * (x1 * p1 * root).sum(1)
    assert m == pytest.approx((acc * g).sum() / acc.sum(), rel=1e-12)
    assert se == pytest.approx(np.sqrt((acc ** 2 * (g - m) ** 2).sum()) / acc.sum(),
                               rel=1e-12)
