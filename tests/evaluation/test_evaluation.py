"""is_loglikelihood and AIS on a linear-Gaussian model with a known marginal likelihood.

z_n ~ N(0, I_2), x_n | z_n ~ N(W z_n, sigma^2 I_3) for n = 1..10, so
x_n ~ N(0, W W^T + sigma^2 I_3) exactly.
"""
import numpy as np
import pytest
from scipy import stats

import autodiff as ad
import zsarray as zs
from zsarray import evaluation

N, DZ, DX, SIGMA = 10, 2, 3, 0.7
W = np.array([[1.0, -0.5], [0.3, 0.8], [-0.7, 0.4]])          # [DX, DZ]
X = np.random.default_rng(42).multivariate_normal(np.zeros(DX), W @ W.T + SIGMA ** 2
                                                  * np.eye(DX), size=N)
EXACT = stats.multivariate_normal(np.zeros(DX), W @ W.T + SIGMA ** 2 * np.eye(DX)).logpdf(X)


@zs.meta_bayesian_net()
def model_builder(observed=None):
    bn = zs.BayesianNet(observed)
    z = bn.normal("z", np.zeros((N, DZ)), std=1.0, group_ndims=1)
    bn.normal("x", ad.matmul(z, W.T), std=SIGMA, group_ndims=1)
    return bn


@zs.meta_bayesian_net()
def prior_builder(k, rng, observed=None):
    bn = zs.BayesianNet(observed, rng=rng)
    bn.normal("z", np.zeros((N, DZ)), std=1.0, group_ndims=1, n_samples=k)
    return bn


def posterior_net(k, seed, inflate=1.5):
    """A proposal close to the exact posterior (covariance inflated, mean-field)."""
    prec = np.eye(DZ) + W.T @ W / SIGMA ** 2
    cov = np.linalg.inv(prec)
    mean = X @ W @ cov / SIGMA ** 2                                 # [N, DZ]
    q = zs.BayesianNet(rng=seed)
    q.normal("z", mean, std=inflate * np.sqrt(np.diag(cov)) * np.ones((N, DZ)),
             group_ndims=1, n_samples=k)
    return q


def test_is_loglikelihood_within_three_standard_errors():
    q = posterior_net(2000, seed=0)
    est = evaluation.is_loglikelihood(model_builder(), {"x": X}, proposal=q, axis=0)
    assert est.shape == (N,)
    # standard error by the delta method on the weights of each data point
    from zsarray.evaluation import _log_mean_and_stderr
    log_w = (model_builder().observe(x=X, z=q["z"].tensor).log_joint()
             - q["z"].cond_log_p).data
    lm, se = _log_mean_and_stderr(log_w, 0)
    np.testing.assert_allclose(est.data, lm, rtol=1e-12)
    total_se = np.sqrt(np.sum(se ** 2))
    assert abs(est.data.sum() - EXACT.sum()) < 3 * total_se + 1e-9
    assert np.all(np.abs(est.data - EXACT) < 3 * se + 1e-9)


def test_is_loglikelihood_with_the_prior_as_proposal_is_a_lower_estimate():
    q = zs.BayesianNet(rng=1)
    q.normal("z", np.zeros((N, DZ)), std=1.0, group_ndims=1, n_samples=20_000)
    est = evaluation.is_loglikelihood(model_builder(), {"x": X}, proposal=q, axis=0)
    assert abs(est.data.sum() - EXACT.sum()) < 0.1


def test_ais_matches_the_exact_log_marginal():
    k = 16
    ais = evaluation.AIS(model_builder(), prior_builder(k, np.random.default_rng(0)),
                         {"step_size": 0.2, "n_leapfrogs": 5}, {"x": X}, "z",
                         n_temperatures=150, n_adapt=30)
    res = ais.run(rng=1)
    assert res.log_marginal.shape == (N,) and res.stderr.shape == (N,)
    assert res.log_weights.shape == (k, N)
    assert res.samples["z"].shape == (k, N, DZ)
    assert res.acceptance.shape == (150,)
    assert 0.4 < res.acceptance[30:].mean() < 0.95
    assert abs(res.total_log_marginal - EXACT.sum()) < 3 * res.total_stderr
    assert np.all(np.abs(res.log_marginal - EXACT) < 3 * res.stderr + 1e-3)
    # final chains are (approximately) posterior draws
    cov = np.linalg.inv(np.eye(DZ) + W.T @ W / SIGMA ** 2)
    post_mean = X @ W @ cov / SIGMA ** 2
    assert np.abs(res.samples["z"].mean(0) - post_mean).mean() < 0.3


@pytest.mark.parametrize("compile", [False, True])
def test_ais_replays_the_tape_bit_for_bit(monkeypatch, compile):
    """AIS records its tempered log density once (beta a per-call input); evaluating it
    on the tape instead gives the very same weights, step for step (replayed), or the
    same to rounding (compiled)."""
    def run():
        ais = evaluation.AIS(model_builder(), prior_builder(4, np.random.default_rng(0)),
                             {"step_size": 0.2, "n_leapfrogs": 3}, {"x": X}, "z",
                             n_temperatures=20, n_adapt=5, compile=compile)
        return ais.run(rng=1)
    traced = run()

    class Tape:
        _ad_traced = False

        def __init__(self, f, **kwargs):
            self.f = f

    class Namespace:                       # autodiff, with trace() and compile() replaced
        def __getattr__(self, name):
            return Tape if name in ("trace", "compile") else getattr(ad, name)

    class OnTape:
        _ad_traced = True

        def __init__(self, tape, beta):
            self.f, self.beta = tape.f, beta

        def __call__(self, pos):
            return self.f(ad.tensor(pos), ad.tensor(self.beta)).data

        def value_and_grad(self, pos):
            g = ad.grad(lambda q: ad.sum(self.f(q, ad.tensor(self.beta))))(pos)
            return self(pos), g
    monkeypatch.setattr(evaluation, "ad", Namespace())
    monkeypatch.setattr(evaluation, "_AtTemperature", OnTape)
    tape = run()
    if compile:
        np.testing.assert_allclose(tape.log_weights, traced.log_weights, rtol=1e-10)
        np.testing.assert_allclose(tape.samples["z"], traced.samples["z"], rtol=1e-10)
    else:
        np.testing.assert_array_equal(tape.log_weights, traced.log_weights)
        np.testing.assert_array_equal(tape.samples["z"], traced.samples["z"])


def test_sigmoid_schedule():
    b = evaluation.sigmoid_schedule(100)
    assert b.shape == (101,) and b[0] == 0.0 and b[-1] == 1.0
    assert np.all(np.diff(b) > 0)
    d = np.diff(b)
    assert d[0] < d[50] and d[-1] < d[50]                    # fine steps at both ends


def test_log_mean_and_stderr_delta_method():
    from zsarray.evaluation import _log_mean_and_stderr
    lw = np.log(np.array([[1.0, 2.0], [3.0, 2.0], [2.0, 2.0]]))
    lm, se = _log_mean_and_stderr(lw, 0)
    np.testing.assert_allclose(lm, np.log([2.0, 2.0]))
    np.testing.assert_allclose(se, [1.0 / (np.sqrt(3) * 2.0), 0.0], atol=1e-15)
    lm1, se1 = _log_mean_and_stderr(lw[:1], 0)
    assert np.all(np.isnan(se1))


# ------------------------------------------------------------------------- errors
def _ais(**kw):
    args = dict(model=model_builder(), proposal=prior_builder(2, 0),
                hmc_kernel_options={"step_size": 0.1, "n_leapfrogs": 2},
                observed={"x": X}, latent="z", n_temperatures=3, n_adapt=1)
    args.update(kw)
    return evaluation.AIS(**args)


@zs.meta_bayesian_net()
def two_latents(observed=None):
    bn = zs.BayesianNet(observed, rng=0)
    bn.normal("z", np.zeros((2, N, DZ)), std=1.0, group_ndims=1)
    bn.normal("u", 0.0, std=1.0)
    return bn


@zs.meta_bayesian_net()
def global_latent(observed=None):
    bn = zs.BayesianNet(observed, rng=0)
    bn.normal("z", np.zeros(DZ), std=1.0, group_ndims=1)   # [DZ]: not [N] + event
    return bn


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(model=3), TypeError, "model must be"),
    (dict(proposal=zs.BayesianNet()), TypeError, "proposal must be a zs.MetaBayesianNet"),
    (dict(hmc_kernel_options={"stepsize": 0.1}), ValueError, "unknown hmc_kernel_options"),
    (dict(hmc_kernel_options={"step_size": -1.0}), ValueError, "positive scalar"),
    (dict(observed=[X]), TypeError, "observed must be a dict"),
    (dict(latent=[]), ValueError, "at least one latent"),
    (dict(n_adapt=5), ValueError, "n_adapt"),
    (dict(target_acceptance=1.5), ValueError, "target_acceptance"),
    (dict(n_temperatures=0, n_adapt=0), ValueError, "n_temperatures"),
    (dict(delta=0.0), ValueError, "delta"),
])
def test_ais_constructor_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        _ais(**kwargs)


@pytest.mark.parametrize("kwargs, match", [
    (dict(latent="w"), "latent 'w' is not an unobserved stochastic node"),
    (dict(proposal=two_latents()), r"latent node\(s\) \['u'\] not listed"),
    (dict(proposal=global_latent(), model=lambda v: ad.sum(v["z"]) * np.ones(N)),
     "does not start with the chain shape"),
    (dict(axis=2), "axis=2 is out of range"),
    (dict(model=lambda v: ad.sum(v["z"], axis=-1)[:, :3]), "do not broadcast"),
])
def test_ais_run_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _ais(**kwargs).run(rng=0)


def test_is_loglikelihood_needs_axis():
    with pytest.raises(ValueError, match="axis is required"):
        evaluation.is_loglikelihood(model_builder(), {"x": X}, proposal=posterior_net(2, 0),
                                    axis=None)
