"""The ZhuSuan-style front: zs.NUTS(...).sample(model, observed, latent) on BayesianNets."""
import json
import os

import numpy as np
import pytest
from scipy import stats

import autodiff as ad
import samplers
import zsarray as zs

RNG = np.random.default_rng(7)
N, D = 40, 2
X = RNG.standard_normal((N, D))
Y = X @ np.array([1.0, -0.5]) + 0.8 * RNG.standard_normal(N)
W_SCALE, SIGMA_SCALE = 2.0, 1.0


@zs.meta_bayesian_net(scope="linear_regression")
def linear_regression(observed=None):
    """w ~ N(0, 2^2 I), sigma ~ HalfCauchy(1), y ~ N(X w, sigma^2); broadcasts over chains."""
    bn = zs.BayesianNet(observed)
    w = bn.normal("w", np.zeros(D), std=W_SCALE, group_ndims=1)
    sigma = bn.half_cauchy("sigma", SIGMA_SCALE)
    mean = ad.einsum("nd,...d->...n", X, w)                       # [..., N]
    bn.normal("y", mean, std=ad.expand_dims(sigma.tensor, -1), group_ndims=1)
    return bn


def exact_posterior_means():
    """E[w | y] and E[sigma | y] by quadrature over sigma (w is conjugate given sigma)."""
    sig = np.linspace(0.3, 2.5, 4000)
    log_post, w_mean = [], []
    for s in sig:
        cov_y = s ** 2 * np.eye(N) + W_SCALE ** 2 * X @ X.T
        log_post.append(stats.multivariate_normal.logpdf(Y, np.zeros(N), cov_y)
                        + stats.halfcauchy.logpdf(s, scale=SIGMA_SCALE))
        precision = X.T @ X / s ** 2 + np.eye(D) / W_SCALE ** 2
        w_mean.append(np.linalg.solve(precision, X.T @ Y / s ** 2))
    p = np.exp(np.array(log_post) - max(log_post))
    p /= p.sum()
    return p @ np.array(w_mean), p @ sig


def z_scores(draws, truth):
    """(mean - truth) / MCSE per coordinate of [chains, draws, k] draws."""
    return (draws.mean(axis=(0, 1)) - truth) / samplers.diagnostics.mcse(draws)


@pytest.fixture(scope="module")
def regression_result():
    return zs.NUTS().sample(linear_regression(), observed={"y": Y},
                            latent={"w": None, "sigma": None}, n_chains=4, n_samples=600,
                            n_warmup=500, rng=1, progress=False)


def test_nuts_recovers_the_exact_posterior_of_a_linear_regression(regression_result):
    res = regression_result
    w_mean, sigma_mean = exact_posterior_means()
    assert res.draws["w"].shape == (4, 600, D) and res.draws["sigma"].shape == (4, 600)
    assert np.all(res.draws["sigma"] > 0)
    assert np.all(np.abs(z_scores(res.draws["w"], w_mean)) < 4)
    assert abs(z_scores(res.draws["sigma"][..., None], np.array([sigma_mean]))[0]) < 4
    assert res.n_divergent == 0


def test_summary_names_every_constrained_coordinate(regression_result, capsys):
    table = regression_result.summary()
    assert list(table.names) == ["w[0]", "w[1]", "sigma"]
    assert "sigma" in capsys.readouterr().out
    assert regression_result.flat_draws().shape == (4, 600, 3)


def test_unvectorized_model_gives_the_same_log_density():
    """vectorized=False (one model call per chain) equals the batched evaluation."""
    from zsarray.inference import LatentLayout, _model_log_density
    model = linear_regression()
    layout = LatentLayout(model, {"y": Y}, ["w", "sigma"])
    q = RNG.standard_normal((3, layout.dim))
    batched = _model_log_density(model, {"y": Y}, layout, True)(ad.tensor(q)).data
    looped = _model_log_density(model, {"y": Y}, layout, False)(ad.tensor(q)).data
    np.testing.assert_allclose(batched, looped, rtol=1e-12)
    # and it is the log posterior on the unconstrained space: log-Jacobian of exp
    w, s = q[:, :D], np.exp(q[:, D])
    expected = (stats.norm.logpdf(w, 0, W_SCALE).sum(1) + stats.halfcauchy.logpdf(s, scale=1.0)
                + stats.norm.logpdf(Y, w @ X.T, s[:, None]).sum(1) + q[:, D])
    np.testing.assert_allclose(batched, expected, rtol=1e-10)


@zs.meta_bayesian_net()
def dirichlet_counts(counts, observed=None):
    bn = zs.BayesianNet(observed)
    theta = bn.dirichlet("theta", np.full(4, 1.5))
    bn.stochastic("counts", zs.distributions.Multinomial(ad.log(theta.tensor),
                                                         n_experiments=int(counts.sum()),
                                                         normalize_logits=True))
    return bn


def test_dirichlet_latent_samples_on_the_simplex():
    counts = np.array([3.0, 10.0, 0.0, 7.0])
    res = zs.NUTS().sample(dirichlet_counts(counts), observed={"counts": counts},
                           latent={"theta": None}, n_chains=4, n_samples=500, n_warmup=400,
                           rng=2, progress=False)
    theta = res.draws["theta"]
    assert theta.shape == (4, 500, 4)
    np.testing.assert_allclose(theta.sum(-1), 1.0, rtol=1e-12)
    assert np.all(theta > 0)
    alpha = 1.5 + counts
    assert np.all(np.abs(z_scores(theta, alpha / alpha.sum())) < 4)
    assert res.layout.unconstrained_shapes["theta"] == (3,)


def _eight_schools_dir():
    root = os.environ.get("ZSARRAY_SHARED",
                          os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared"))
    return os.path.join(root, "posteriordb", "eight_schools-eight_schools_noncentered")


@pytest.mark.posteriordb
def test_eight_schools_noncentered_bayesian_net_matches_reference():
    folder = _eight_schools_dir()
    if not os.path.isdir(folder):
        pytest.skip(f"posteriordb not found at {folder} (set ZSARRAY_SHARED)")
    data = json.load(open(os.path.join(folder, "data.json")))
    ref = json.load(open(os.path.join(folder, "reference.json")))["parameters"]
    y, sigma = np.array(data["y"], float), np.array(data["sigma"], float)

    @zs.meta_bayesian_net(scope="eight_schools")
    def eight_schools(observed=None):
        bn = zs.BayesianNet(observed)
        mu = bn.normal("mu", 0.0, std=5.0)
        tau = bn.half_cauchy("tau", 5.0)
        theta_trans = bn.normal("theta_trans", np.zeros(8), std=1.0, group_ndims=1)
        theta = ad.expand_dims(mu.tensor, -1) + ad.expand_dims(tau.tensor, -1) * theta_trans
        bn.deterministic("theta", theta)
        bn.normal("y", theta, std=sigma, group_ndims=1)
        return bn

    res = zs.NUTS().sample(eight_schools(), observed={"y": y},
                           latent={"mu": None, "tau": None, "theta_trans": None},
                           n_chains=4, n_samples=1000, n_warmup=1000, rng=3, progress=False,
                           target_accept=0.95)
    d = res.draws
    theta = d["mu"][..., None] + d["tau"][..., None] * d["theta_trans"]
    quantities = {"mu": d["mu"][..., None], "tau": d["tau"][..., None]}
    quantities.update({f"theta[{j + 1}]": theta[..., j:j + 1] for j in range(8)})
    for name, draws in quantities.items():
        mcse = samplers.diagnostics.mcse(draws)[0]
        z = (draws.mean() - ref[name]["mean"]) / np.hypot(mcse, ref[name]["mcse_mean"])
        assert abs(z) < 4, (name, z)


# ------------------------------------------------------------------------- errors

def test_initial_values_are_used_and_checked():
    res = zs.HMC(n_leapfrogs=5).sample(linear_regression(), observed={"y": Y},
                                       latent={"w": np.array([1.0, -0.5]), "sigma": 0.8},
                                       n_chains=2, n_samples=5, n_warmup=0, rng=0,
                                       progress=False, step_size=1e-3)
    np.testing.assert_allclose(res.draws["w"][:, 0], [[1.0, -0.5]] * 2, atol=0.05)
    with pytest.raises(ValueError, match="outside the support"):
        zs.NUTS().sample(linear_regression(), {"y": Y}, {"w": None, "sigma": -1.0},
                         progress=False)
    with pytest.raises(ValueError, match=r"initial value of shape \(3,\); expected \(2,\)"):
        zs.NUTS().sample(linear_regression(), {"y": Y}, {"w": np.zeros(3), "sigma": None},
                         progress=False)


def test_front_errors():
    model = linear_regression()
    with pytest.raises(TypeError, match="must be a MetaBayesianNet"):
        zs.NUTS().sample(lambda bn: bn, {"y": Y}, {"w": None})
    with pytest.raises(ValueError, match="name the latent nodes"):
        zs.NUTS().sample(model, {"y": Y}, {})
    with pytest.raises(ValueError, match="no node named 'ww'"):
        zs.NUTS().sample(model, {"y": Y}, {"ww": None})
    with pytest.raises(ValueError, match="'y' is also given in observed"):
        zs.NUTS().sample(model, {"y": Y}, {"y": None})

    @zs.meta_bayesian_net()
    def discrete(observed=None):
        bn = zs.BayesianNet(observed)
        bn.bernoulli("b", 0.0)
        return bn
    with pytest.raises(ValueError, match="discrete"):
        zs.NUTS().sample(discrete(), {}, {"b": None})


def test_unvectorizable_model_error_suggests_vectorized_false():
    @zs.meta_bayesian_net()
    def matmul_model(observed=None):
        bn = zs.BayesianNet(observed)
        w = bn.normal("w", np.zeros(D), std=1.0, group_ndims=1)
        bn.normal("y", X @ w, std=1.0, group_ndims=1)   # no chain axis support
        return bn
    with pytest.raises(ValueError, match="vectorized=False"):
        zs.NUTS().sample(matmul_model(), {"y": Y}, {"w": None}, n_chains=3, n_samples=5,
                         n_warmup=5, progress=False)
    res = zs.NUTS().sample(matmul_model(), {"y": Y}, {"w": None}, n_chains=2, n_samples=50,
                           n_warmup=50, progress=False, vectorized=False)
    assert res.draws["w"].shape == (2, 50, D)


# ------------------------------------------------------------------------- SG-MCMC fronts

N_SG = 500
X_SG = np.random.default_rng(0).standard_normal((N_SG, 3))
Y_SG = X_SG @ np.array([1.0, -2.0, 0.5]) + 0.5 * np.random.default_rng(1).standard_normal(N_SG)


@zs.meta_bayesian_net()
def minibatch_regression(x, observed=None):
    bn = zs.BayesianNet(observed)
    w = bn.normal("w", np.zeros(3), std=1.0, group_ndims=1)
    bn.normal("y", ad.einsum("nd,...d->...n", x, w), std=0.5, group_ndims=1)
    return bn


@pytest.mark.parametrize("front, step_size", [(zs.SGLD, 2e-5), (zs.SGHMC, 2e-6)])
def test_sg_fronts_recover_the_regression_posterior_from_minibatches(front, step_size):
    precision = X_SG.T @ X_SG / 0.25 + np.eye(3)
    mean = np.linalg.solve(precision, X_SG.T @ Y_SG / 0.25)
    sd = np.sqrt(np.diag(np.linalg.inv(precision)))
    res = front(step_size=step_size).sample(
        minibatch_regression(X_SG), latent={"w": None}, data={"x": X_SG, "y": Y_SG},
        batch_size=50, n_chains=20, n_samples=400, burnin=1000, thin=2, rng=3, progress=False)
    w = res.draws["w"]
    assert w.shape == (20, 400, 3)
    # all chains share each minibatch, so the tolerance is in posterior sds, not MCSEs
    assert np.all(np.abs(w.mean(axis=(0, 1)) - mean) < 0.75 * sd)
    assert np.all(np.abs(w.std(axis=(0, 1)) / sd - 1) < 0.3)


def test_sg_front_replays_the_tape_draw_for_draw(monkeypatch):
    """The SG fronts trace the minibatch log density (rows as per-call inputs); with the
    tape instead (trace replaced by plain evaluation) every draw is the same."""
    def run():
        return zs.SGHMC(step_size=2e-6).sample(
            minibatch_regression(X_SG), latent={"w": None}, data={"x": X_SG, "y": Y_SG},
            batch_size=50, n_chains=3, n_samples=30, burnin=20, rng=4, progress=False)
    traced = run().draws["w"]

    class Tape:
        def __init__(self, f, **kwargs):
            self.f = f

        def value_and_grad(self, q, *rows):
            v, g = ad.value_and_grad(lambda q: ad.sum(self.f(q, *rows)))(q)
            return v, g
    import zsarray.inference as front
    monkeypatch.setattr(front.ad, "trace", Tape)
    np.testing.assert_array_equal(run().draws["w"], traced)


def test_sg_front_errors():
    model = minibatch_regression(X_SG)
    sgld = zs.SGLD(step_size=1e-5)
    with pytest.raises(ValueError, match="give the minibatched arrays"):
        sgld.sample(model, latent={"w": None}, batch_size=10)
    with pytest.raises(ValueError, match="share their first axis"):
        sgld.sample(model, latent={"w": None}, data={"x": X_SG, "y": Y_SG[:10]}, batch_size=5)
    with pytest.raises(ValueError, match=r"batch_size: expected an int in \[1, 500\]"):
        sgld.sample(model, latent={"w": None}, data={"x": X_SG, "y": Y_SG}, batch_size=0)
    with pytest.raises(TypeError, match="has no parameters"):
        model.rebind(z=1)
    model.log_joint = lambda bn: bn.cond_log_prob("y")
    with pytest.raises(ValueError, match="log_joint override"):
        sgld.sample(model, latent={"w": None}, data={"x": X_SG, "y": Y_SG}, batch_size=10,
                    n_samples=2, progress=False)


def test_to_arviz_has_one_variable_per_latent(regression_result):
    pytest.importorskip("arviz", reason="ArviZ not installed")
    idata = regression_result.to_arviz()
    assert idata.posterior["w"].shape == (4, 600, D)
    assert idata.posterior["sigma"].shape == (4, 600)


def test_uniform_latent_is_sampled_inside_its_interval():
    @zs.meta_bayesian_net()
    def bounded(observed=None):
        bn = zs.BayesianNet(observed)
        p = bn.uniform("p", np.array([0.0, -3.0]), np.array([1.0, 2.0]))
        bn.normal("y", p, std=0.5, group_ndims=1)
        return bn
    res = zs.NUTS().sample(bounded(), observed={"y": np.array([0.9, 1.5])}, latent={"p": None},
                           n_chains=2, n_samples=300, n_warmup=300, rng=4, progress=False)
    p = res.draws["p"]
    assert np.all((p[..., 0] > 0) & (p[..., 0] < 1)) and np.all((p[..., 1] > -3) & (p[..., 1] < 2))
    assert isinstance(res.layout.transforms["p"], zs.transforms.Interval)


@zs.meta_bayesian_net(scope="masked_priors")
def masked_priors(observed=None):
    """Priors whose log densities use value masks (Uniform's support, InverseGamma's x > 0,
    Beta's a log x with a == 0 handled) through comparison primitives, which the front's
    trace records: replay must agree with the tape and need no fallback."""
    bn = zs.BayesianNet(observed)
    u = bn.uniform("u", -1.0, 2.0)
    s = bn.inverse_gamma("s", 2.0, 1.5)
    b = bn.beta("b", 1.0, 2.5)
    bn.normal("y", ad.expand_dims(u.tensor * b.tensor, -1), std=ad.expand_dims(s.tensor, -1))
    return bn


def test_front_trace_replays_masks_and_matches_the_tape():
    from zsarray import inference
    model, obs = masked_priors(), {"y": np.array([0.3, -0.2, 0.5])}
    layout = inference.LatentLayout(model, obs, ["u", "s", "b"])
    traced = inference._model_log_density(model, obs, layout, True)
    assert isinstance(traced, ad.Traced)
    plain = traced.fun
    rng = np.random.default_rng(0)
    for _ in range(4):
        q = rng.normal(0, 2, size=(5, layout.dim))
        lp, g = traced.value_and_grad(q)
        (_, lp_ref), g_ref = ad.value_and_grad(lambda t: (ad.sum(plain(t)), plain(t)),
                                               has_aux=True)(q)
        np.testing.assert_allclose(lp, lp_ref, rtol=1e-13)
        np.testing.assert_allclose(g, g_ref, rtol=1e-12, atol=1e-14)
    prog = next(iter(traced._programs.values()))
    assert prog.verified and prog.broken is None


def test_zs_reexports_the_array_level_driver():
    """``zs.sample`` and ``zs.diagnostics`` are the samplers' own (loaded on first use)."""
    assert zs.sample is samplers.sample
    assert zs.diagnostics is samplers.diagnostics
    assert {"sample", "diagnostics"} <= set(zs.__all__)
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        zs.no_such_name
    res = zs.sample(lambda q: -0.5 * ad.sum(q * q, axis=1), np.zeros((2, 3)), n_samples=50,
                    n_warmup=50, rng=0, progress=False)
    assert res.draws.shape == (2, 50, 3)


def test_sg_front_checkpoint_resumes_bit_for_bit(tmp_path, monkeypatch):
    import samplers.sgmcmc as sg

    class Stop(Exception):
        pass

    def run(path):
        return zs.SGHMC(step_size=2e-6).sample(
            minibatch_regression(X_SG), latent={"w": None}, data={"x": X_SG, "y": Y_SG},
            batch_size=50, n_chains=3, n_samples=30, burnin=20, rng=4, progress=False,
            checkpoint=path, checkpoint_every=10)
    ref = run(None)
    path = tmp_path / "sg.ckpt"
    step, calls = sg.SGHMC.step, [0]

    def dies_at_step_37(self, state, rng):
        calls[0] += 1
        if calls[0] == 37:
            raise Stop                     # stands for a killed process
        return step(self, state, rng)
    monkeypatch.setattr(sg.SGHMC, "step", dies_at_step_37)
    with pytest.raises(Stop):
        run(path)
    monkeypatch.setattr(sg.SGHMC, "step", step)
    assert path.exists()
    res = run(path)
    np.testing.assert_array_equal(res.draws["w"], ref.draws["w"])
    np.testing.assert_array_equal(res.stats["grad_norm"], ref.stats["grad_norm"])
