"""One bad chain must not sink the run: per-chain starts, step sizes and failures.

Stan and NumPyro adapt chains independently, so a chain that starts in a bad region
(huge gradients), whose start is not finite, or whose proposal breaks a batched
Cholesky affects that chain only. These tests put one such chain among healthy ones.
"""
import warnings

import numpy as np
import pytest

import autodiff as ad
import samplers
from samplers.warmup import StuckChainWarning

from .helpers import check_moments


def _cliff(q):
    """A standard normal with a cliff: beyond q0 = 1.5 the log density falls like
    exp(40 (q0 - 1.5)), so a chain started at q0 = 1.95 sees gradients ~1e9."""
    return (-0.5 * ad.sum(q * q, axis=1)
            - ad.exp(40.0 * (q[:, 0] - 1.5)) + 1.0)


def test_a_chain_started_on_a_cliff_does_not_shrink_the_others():
    rng = np.random.default_rng(0)
    x0 = rng.uniform(-1, 1, size=(4, 3))
    x0[2, 0] = 1.95                                      # gradient ~ 40 exp(18) ~ 3e9
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = samplers.sample(_cliff, x0, n_samples=600, n_warmup=400, rng=1,
                              progress=False)
    stuck = [w for w in caught if issubclass(w.category, StuckChainWarning)]
    # the chain recovered on its own or was restarted (and then named)
    assert all("chain 2" in str(w.message) for w in stuck)
    assert np.all(np.isfinite(res.draws))
    assert res.step_size.min() > 0.2                     # not dragged down by chain 2
    # q0's moments by quadrature, the other coordinates standard normal
    x = np.linspace(-12.0, 2.5, 200001)
    w = np.exp(-0.5 * x * x - np.exp(40.0 * (x - 1.5)))
    m0 = np.sum(x * w) / np.sum(w)
    v0 = np.sum((x - m0) ** 2 * w) / np.sum(w)
    check_moments(res.draws, np.array([m0, 0.0, 0.0]), np.array([v0, 1.0, 1.0]))


def test_warmup_restarts_a_chain_that_stays_stuck_and_names_it():
    """A chain held where its step size must stay tiny (a narrow spike it cannot
    leave in the warmup) is restarted from a healthy chain with a warning."""
    def spike(q):       # a wide normal plus a very narrow, very tall spike at q = 5
        wide = -0.5 * ad.sum(q * q, axis=1)
        narrow = -0.5 * ad.sum(ad.square((q - 5.0) / 1e-5), axis=1) + 40.0
        return ad.logsumexp(ad.stack([wide, narrow], axis=1), axis=1)
    x0 = np.array([[0.5, 0.2], [-0.3, 0.1], [5.0, 5.0], [0.1, -0.4]])
    with pytest.warns(StuckChainWarning, match=r"chain 2.*restart from the positions of "
                                               r"chains"):
        res = samplers.sample(spike, x0, n_samples=200, n_warmup=300, rng=2,
                              progress=False)
    assert np.all(res.step_size > 0.1)
    assert np.abs(res.draws[2] - 5.0).max(axis=1).min() > 1e-2   # chain 2 left the spike


def test_uniform_inits_are_redrawn_per_chain_until_finite():
    """Stan's rule: a start whose log density is not finite is drawn again (here the
    support is q0 > 1, a tenth of the uniform(-2, 2) box per coordinate)."""
    def half_line(q):
        z = q[:, 0] - 1.0
        return ad.where(z > 0, -z - 0.5 * ad.sum(q[:, 1:] ** 2, axis=1) + ad.log(ad.abs(z)),
                        -np.inf)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = samplers.sample(half_line, n_chains=6, dim=2, n_samples=50, n_warmup=50,
                              rng=3, progress=False)
    assert np.all(res.draws[:, :, 0] > 1.0)
    assert np.all(np.isfinite(res.logdensity))


def test_a_density_finite_nowhere_in_the_init_box_names_the_chains():
    def nowhere(q):
        return ad.where(q[:, 0] > 5.0, -ad.sum(q * q, axis=1), -np.inf)
    with pytest.raises(ValueError, match=r"init: no finite log density and gradient in 100 "
                                         r"draws from uniform\(-2, 2\) for 3 chain\(s\): "
                                         r"chains 0, 1, 2"):
        samplers.sample(nowhere, n_chains=3, dim=2, n_samples=10, n_warmup=10, rng=0,
                        progress=False)
    # the same with a given start is the plain error naming the chain
    x0 = np.array([[6.0, 0.0], [0.0, 0.0]])
    with pytest.raises(ValueError, match=r"not finite at the initial position of 1 chain"):
        samplers.sample(nowhere, x0, n_samples=10, n_warmup=10, progress=False)


def test_one_chain_breaking_a_batched_cholesky_is_rejected_alone():
    """Each chain's position scales the off-diagonal of a 2x2 covariance; a chain
    proposing |rho| >= 1 gets NaN (that proposal is rejected and counted divergent),
    the others go on: the posterior of rho, uniform on (-1, 1) times a normal, is
    sampled correctly."""
    def corr(q):
        rho = ad.tanh(q[:, 0]) * 1.2                      # |rho| can reach 1.2
        one = ad.ones_like(rho)
        m = ad.stack([ad.stack([one, rho], axis=1), ad.stack([rho, one], axis=1)], axis=1)
        l = ad.cholesky(m)
        logdet = 2.0 * ad.sum(ad.log(ad.diagonal(l, 0, 1, 2)), axis=1)
        return -0.5 * logdet - 0.5 * q[:, 1] ** 2 + ad.log1p(-ad.square(ad.tanh(q[:, 0])))
    x0 = np.zeros((4, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", samplers.DivergenceWarning)
        res = samplers.sample(corr, x0, n_samples=400, n_warmup=300, rng=4,
                              progress=False)
    assert np.all(np.isfinite(res.draws))
    rho = np.tanh(res.draws[..., 0]) * 1.2
    assert np.all(np.abs(rho) < 1.0)                      # never accepted outside
    assert res.n_divergent >= 0 and np.all(np.isfinite(res.logdensity))


def test_an_exception_in_the_log_density_names_the_chain():
    def picky(q):
        if np.any(np.asarray(getattr(q, "data", q))[:, 0] > 100.0):
            raise FloatingPointError("overflow in my model")
        return -ad.sum(q * q, axis=1)
    from samplers.base import LogDensity
    ld = LogDensity(picky, compile=False)
    q = np.zeros((5, 2))
    q[3, 0] = 200.0
    with pytest.raises(FloatingPointError) as e:
        ld(q)
    assert any("chain(s) 3" in n for n in getattr(e.value, "__notes__", []))


def test_summary_names_stuck_chains(capsys):
    """A chain that never accepts (its step size is absurd) is named under the table."""
    res = samplers.sample(lambda q: -0.5 * ad.sum(q * q, axis=1), np.zeros((3, 2)),
                          n_samples=100, n_warmup=0, kernel="hmc", n_leapfrogs=3,
                          step_size=np.array([0.5, 1e4, 0.5]), rng=0, progress=False)
    assert list(res.stuck_chains()) == [1]
    res.summary()
    out = capsys.readouterr().out
    assert "1 of 3 chains look stuck" in out and "chains 1" in out
