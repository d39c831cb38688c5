"""The deep-learning examples (issue 17) run with --quick, reach real metrics, write PNGs.

bnn_adversarial: both models fit the digits, attacks lower the accuracy monotonically
(PGD at least as strong as FGSM at the largest eps), entropy detects the BNN's attacked
inputs better than chance; its input gradient and ROC AUC are checked against finite
differences and scikit-learn.
"""
import numpy as np
import pytest

from tests.examples.helpers import assert_png

pytest.importorskip("sklearn", reason="examples need scikit-learn (pip install .[examples])")
pytest.importorskip("matplotlib", reason="examples need matplotlib (pip install .[examples])")

pytestmark = pytest.mark.examples


def quick(tmp_path, *extra):
    return ["--quick", "--no-progress", "--out", str(tmp_path), *extra]


# --------------------------------------------------------------------------- bnn_adversarial
def test_bnn_adversarial_quick(tmp_path):
    from examples import bnn_adversarial
    out = bnn_adversarial.main(quick(tmp_path))
    eps = out["eps"]
    assert eps[0] == 0 and len(eps) >= 4
    for m in ("map", "bnn"):
        assert out[f"{m}_clean_acc"] > 0.9, out
        for attack in ("fgsm", "pgd"):
            acc = np.array(out[f"{m}_{attack}_acc"])
            assert acc[0] == out[f"{m}_clean_acc"]
            # allow one image of Monte Carlo wiggle between neighbouring sizes
            assert np.all(np.diff(acc) <= 1 / 300), (m, attack, acc)
            assert acc[-1] < 0.2, (m, attack, acc)
        # PGD (several steps from a random start) is at least as strong as FGSM at eps 0.1+
        big = [i for i, e in enumerate(eps) if e >= 0.1]
        assert all(out[f"{m}_pgd_acc"][i] <= out[f"{m}_fgsm_acc"][i] + 0.02 for i in big)
    # attacked inputs have higher predictive entropy than clean ones under the BNN
    for attack in ("fgsm", "pgd"):
        auc = np.array(out[f"bnn_{attack}_auc"][1:])
        assert np.all(auc > 0.5), auc
        assert auc.max() > 0.75, auc
    # the talk's point: at the largest eps the deterministic net's PGD inputs are confidently
    # wrong (entropy no higher than clean), the BNN's still stand out
    assert out["bnn_pgd_auc"][-1] > out["map_pgd_auc"][-1] + 0.1, out
    assert_png(out["figure"])


def test_bnn_adversarial_input_gradient_matches_finite_differences():
    """The input gradient of -sum log mean_s p(y | x, w_s) for S = 3 weight samples, and
    of one network, against central differences (autodiff.check_grads)."""
    import autodiff as ad
    from examples import bnn_adversarial as b
    rng = np.random.default_rng(0)
    shapes = b.layer_shapes(5, 7)
    x = rng.uniform(0.1, 0.9, (4, 5))
    y_oh = b.onehot(np.array([0, 3, 9, 3]), x)
    for ws in ([rng.standard_normal((3,) + s) for s in shapes],
               [rng.standard_normal(s) for s in shapes]):
        ad.check_grads(lambda xx: -ad.sum(b.predictive_log_probs(ws, xx) * y_oh), x)
        g = b.input_gradient(ws, x, y_oh)
        h = 1e-6
        e = np.zeros_like(x)
        e[2, 1] = h

        def f(xx):
            return -np.sum(b.predictive_log_probs(ws, xx).data * y_oh)
        np.testing.assert_allclose(g[2, 1], (f(x + e) - f(x - e)) / (2 * h), rtol=1e-6)


def test_bnn_adversarial_predictive_is_the_sample_mean():
    import autodiff as ad
    from examples import bnn_adversarial as b
    rng = np.random.default_rng(1)
    ws = [rng.standard_normal((4,) + s) for s in b.layer_shapes(6, 5)]
    x = rng.uniform(size=(3, 6))
    p = np.exp(b.predictive_log_probs(ws, x).data)
    per = [np.exp(b.predictive_log_probs([w[s] for w in ws], x).data) for s in range(4)]
    np.testing.assert_allclose(p, np.mean(per, axis=0), rtol=1e-12)
    np.testing.assert_allclose(p.sum(-1), 1.0, rtol=1e-12)


def test_bnn_adversarial_attacks_stay_in_the_ball_and_raise_the_loss():
    import autodiff as ad
    from examples import bnn_adversarial as b
    rng = np.random.default_rng(2)
    ws = [rng.standard_normal(s) for s in b.layer_shapes(8, 16)]
    x = rng.uniform(size=(20, 8))
    y = rng.integers(0, 10, 20)
    y_oh = b.onehot(y, x)

    def loss(xx):
        return -float(np.sum(b.predictive_log_probs(ws, xx).data * y_oh))
    eps = 0.05
    for x_adv in (b.fgsm(ws, x, y_oh, eps), b.pgd(ws, x, y_oh, eps, 10, rng)):
        assert np.all(np.abs(x_adv - x) <= eps + 1e-12)
        assert x_adv.min() >= 0 and x_adv.max() <= 1
        assert loss(x_adv) > loss(x)
    assert b.fgsm(ws, x, y_oh, 0.0) is x
    # PGD maximises the loss at least as well as one FGSM step
    assert loss(b.pgd(ws, x, y_oh, eps, 20, rng)) >= loss(b.fgsm(ws, x, y_oh, eps)) - 1e-9


def test_bnn_adversarial_roc_auc_matches_sklearn():
    from sklearn.metrics import roc_auc_score
    from examples.bnn_adversarial import roc_auc
    rng = np.random.default_rng(3)
    neg = rng.normal(size=50)
    pos = np.concatenate([rng.normal(0.7, 1.0, 40), neg[:5]])        # with ties
    expected = roc_auc_score(np.r_[np.zeros(50), np.ones(45)], np.r_[neg, pos])
    assert roc_auc(neg, pos) == pytest.approx(expected, abs=1e-12)
    assert roc_auc(neg, neg) == pytest.approx(0.5)
    assert roc_auc(np.zeros(3), np.ones(4)) == 1.0


def test_bnn_adversarial_rejects_bad_eps(tmp_path):
    from examples import bnn_adversarial
    with pytest.raises(SystemExit):
        bnn_adversarial.main(quick(tmp_path, "--eps", "0.1,0.2"))


# --------------------------------------------------------------------------- gan
@pytest.mark.parametrize("loss,prior,extra,fd_drop", [
    ("dcgan", "normal", (), 0.5), ("wgan-gp", "uniform", (), 0.5),
    ("dcgan", "normal", ("--critic", "conv", "--epochs", "25"), 0.6)],
    ids=["dcgan", "wgan-gp-uniform", "dcgan-conv-critic"])
def test_gan_quick(tmp_path, loss, prior, extra, fd_drop):
    from examples import gan
    out = gan.main(quick(tmp_path, "--loss", loss, "--prior", prior, *extra))
    fd = np.array(out["fd_per_epoch"])
    assert len(fd) == out["epochs"] == len(out["grids"])
    assert np.all(np.isfinite(fd))
    # the samples move towards the data (pixel Frechet distance) and spread over classes
    assert out["fd_last"] < fd_drop * out["fd_first"], fd
    assert out["score_last"] > 2.0, out["score_per_epoch"]
    assert out["fd_reference"] < out["fd_best"]          # real images are still closer
    if loss == "wgan-gp":
        assert out["history"]["penalty"][-1] < 1.0, out["history"]["penalty"]
    for path in (out["figure"], out["grids"][0], out["grids"][-1]):
        assert_png(path)


def _small_critic(activation, seed):
    import zsarray as zs
    return zs.nn.MLP([5, 7, 6, 1], activation=activation, dtype=np.float64, rng=seed)


@pytest.mark.parametrize("activation,h,rtol", [("tanh", 1e-4, 1e-6), ("leaky_relu", 1e-5, 1e-6)])
def test_gan_penalty_surrogate_gradient_matches_finite_differences(activation, h, rtol):
    """The parameter gradient of the surrogate equals that of the exact gradient penalty
    lambda mean (|grad_x D| - 1)^2, whose directional derivatives along random parameter
    directions are taken by central differences (each evaluation an exact input gradient)."""
    from examples.gan import exact_penalty, penalty_surrogate
    rng = np.random.default_rng(4)
    net = _small_critic(activation, 5)
    params = net.parameters()

    def critic(x):
        return net(x)[..., 0]
    x_hat = rng.uniform(size=(9, 5))
    surrogate, value = penalty_surrogate(critic, x_hat, 10.0, h)
    assert value == pytest.approx(exact_penalty(critic, x_hat, 10.0), rel=1e-12)
    for p in params:
        p.grad = None
    surrogate.backward()
    grads = [p.grad.copy() for p in params]
    for _ in range(3):
        vs = [rng.standard_normal(p.shape) for p in params]
        delta = 1e-6
        base = [p.data.copy() for p in params]
        vals = []
        for sign in (1, -1):
            for p, b, v in zip(params, base, vs):
                p.data[...] = b + sign * delta * v
            vals.append(exact_penalty(critic, x_hat, 10.0))
        for p, b in zip(params, base):
            p.data[...] = b
        fd = (vals[0] - vals[1]) / (2 * delta)
        analytic = sum(float(np.sum(g * v)) for g, v in zip(grads, vs))
        assert analytic == pytest.approx(fd, rel=rtol * 1e3, abs=1e-7), (analytic, fd)


def test_gan_penalty_surrogate_with_the_conv_critic():
    """The same check through autodiff.conv2d (float64 copy of a small ConvCritic)."""
    import autodiff as ad
    from examples.gan import ConvCritic, exact_penalty, penalty_surrogate
    rng = np.random.default_rng(10)
    net = ConvCritic(4, 2, rng)
    params = net.parameters()
    for p in params:
        p.data = p.data.astype(np.float64)
    critic = lambda x: net(x)[..., 0]                                 # noqa: E731
    x_hat = rng.uniform(size=(5, 16))
    surrogate, _ = penalty_surrogate(critic, x_hat, 10.0, 1e-5)
    for p in params:
        p.grad = None
    surrogate.backward()
    v = [rng.standard_normal(p.shape) for p in params]
    base = [p.data.copy() for p in params]
    vals = []
    for sign in (1, -1):
        for p, b, d in zip(params, base, v):
            p.data = b + sign * 1e-6 * d
        vals.append(exact_penalty(critic, x_hat, 10.0))
    for p, b in zip(params, base):
        p.data = b
    fd = (vals[0] - vals[1]) / 2e-6
    analytic = sum(float(np.sum(p.grad * d)) for p, d in zip(params, v))
    assert analytic == pytest.approx(fd, rel=1e-3, abs=1e-7)
    assert isinstance(surrogate, ad.Tensor)


def test_gan_penalty_surrogate_error_shrinks_as_h_squared():
    """With a smooth (tanh) critic the surrogate's gradient error is O(h^2): it falls by
    about 100x when h falls by 10x."""
    from examples.gan import penalty_surrogate
    rng = np.random.default_rng(6)
    net = _small_critic("tanh", 7)
    params = net.parameters()
    x_hat = rng.uniform(size=(6, 5))

    def grad_at(h):
        s, _ = penalty_surrogate(lambda x: net(x)[..., 0], x_hat, 10.0, h)
        for p in params:
            p.grad = None
        s.backward()
        return np.concatenate([p.grad.ravel() for p in params])
    ref = grad_at(1e-5)
    e1 = np.abs(grad_at(1e-1) - ref).max()
    e2 = np.abs(grad_at(1e-2) - ref).max()
    assert 30 < e1 / e2 < 300, (e1, e2)


def test_gan_frechet_distance():
    from examples.gan import frechet_distance
    rng = np.random.default_rng(8)
    a = rng.standard_normal((4000, 3))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    # N(0, I) vs N(m, 4 I) in 3-d: |m|^2 + 3 (1 + 4 - 2 * 2) = |m|^2 + 3
    b = 2.0 * rng.standard_normal((4000, 3)) + np.array([1.0, 0.0, 2.0])
    assert frechet_distance(a, b) == pytest.approx(5.0 + 3.0, rel=0.05)
    # a pixel that is always blank (singular covariances) does not break it
    a0, b0 = np.c_[a, np.zeros(4000)], np.c_[b, np.zeros(4000)]
    assert frechet_distance(a0, b0) == pytest.approx(frechet_distance(a, b), rel=1e-9)


def test_gan_generator_is_a_bayesian_net_with_the_chosen_prior():
    import autodiff as ad
    from examples import gan
    g = gan.GAN(64, 4, 8, rng=0)
    for prior in ("normal", "uniform"):
        bn = gan.build_generator(g, 500, prior, rng=1).observe()
        z = bn["z"].tensor.data
        assert z.shape == (500, 4)
        if prior == "uniform":
            assert z.min() >= -1 and z.max() < 1 and z.min() < -0.95
        else:
            assert z.min() < -2 and z.max() > 2
        with ad.no_grad():
            x = gan.build_generator(g, 500, prior).observe(z=z)["x"].tensor.data
        np.testing.assert_array_equal(x, bn["x"].tensor.data)
        assert bn["z"].dist.__class__.__name__ == prior.capitalize()


# --------------------------------------------------------------------------- variational dropout
def test_variational_dropout_sparse_quick(tmp_path):
    from examples import variational_dropout
    out = variational_dropout.main(quick(tmp_path))
    assert out["baseline_acc"] > 0.95, out
    assert out["test_acc"] > 0.9, out
    # sparse VD prunes most weights, and pruning (log alpha > 3) costs almost nothing
    assert out["compression"] > 10, out["layers_kept"]
    assert abs(out["test_acc"] - out["test_acc_unpruned"]) < 0.02, out
    for kept, total in out["layers_kept"]:
        assert 0 < kept < total
    assert_png(out["figure"])


def test_variational_dropout_kingma_quick(tmp_path):
    from examples import variational_dropout
    out = variational_dropout.main(quick(tmp_path, "--method", "kingma", "--no-baseline",
                                         "--epochs", "15"))
    assert out["test_acc"] > 0.95, out
    assert out["compression"] == 1.0                 # alpha <= 1: nothing is pruned
    assert "baseline_acc" not in out
    assert_png(out["figure"])


def _exact_kl(alpha):
    """KL(N(t, alpha t^2) || p(|w|) ~ 1/|w|) + const, the constant chosen so that it tends to
    0 as alpha -> infinity: -0.5 log alpha + E log|1 + sqrt(alpha) eps| + (gamma + log 2) / 2
    (Molchanov et al. 2017, eq. 11-14), by quadrature on both sides of the singularity."""
    from scipy import integrate
    s = np.sqrt(alpha)

    def f(e):
        return np.log(abs(1 + s * e)) * np.exp(-e * e / 2) / np.sqrt(2 * np.pi)
    e_log = sum(integrate.quad(f, lo, hi, limit=500)[0]
                for lo, hi in ((-np.inf, -1 / s), (-1 / s, np.inf)))
    return -0.5 * np.log(alpha) + e_log + (np.euler_gamma + np.log(2)) / 2


def test_variational_dropout_kl_approximations_match_quadrature():
    from examples.variational_dropout import kl_kingma, kl_molchanov
    alphas = np.array([1e-3, 1e-2, 0.1, 0.5, 1.0, 10.0, 100.0, 1e3])
    exact = np.array([_exact_kl(a) for a in alphas])
    molchanov = np.asarray(kl_molchanov(np.log(alphas)).data)
    np.testing.assert_allclose(molchanov, exact, atol=0.01)       # all alpha
    # Kingma's polynomial holds for alpha <= 1, up to a constant
    small = alphas <= 1
    gap = np.asarray(kl_kingma(np.log(alphas[small])).data) - exact[small]
    assert np.ptp(gap) < 0.05, gap


def test_variational_dropout_layer_local_reparameterization():
    """In training mode the pre-activations have mean x theta + b and variance x^2 sigma^2
    (Monte Carlo over the layer's own noise); in eval mode the masked mean."""
    import autodiff as ad
    from examples.variational_dropout import VDLinear
    rng = np.random.default_rng(9)
    layer = VDLinear(3, 2, "sparse", rng)
    layer.log_noise.data[...] = np.log(np.array([[0.04, 1e-6], [0.09, 1e-6], [1.0, 1e-6]],
                                                np.float32))
    x = np.array([[1.0, -2.0, 0.5]], np.float32)
    with ad.no_grad():
        draws = np.stack([layer(x, rng).data[0] for _ in range(20000)])
    theta = layer.theta.data
    mean, var = x[0] @ theta, (x[0] ** 2) @ np.exp(layer.log_noise.data)
    se = np.sqrt(var / 20000)
    assert np.all(np.abs(draws.mean(0) - mean) < 4 * se + 1e-6)
    np.testing.assert_allclose(draws.var(0), var, rtol=0.05, atol=1e-5)
    layer.eval()
    keep = np.log(np.exp(layer.log_noise.data) / theta ** 2) < 3
    np.testing.assert_allclose(layer(x).data[0], x[0] @ (theta * keep) + layer.bias.data,
                               rtol=1e-6)
    with pytest.raises(ValueError, match="method"):
        VDLinear(3, 2, "gaussian", rng)
    layer.train()
    with pytest.raises(ValueError, match="rng"):
        layer(x)


# --------------------------------------------------------------------------- vae_conv
def test_vae_conv_quick(tmp_path):
    import math
    from examples import vae_conv
    out = vae_conv.main(quick(tmp_path))
    assert out["train_bound_last_epoch"] > out["train_bound_first_epoch"] + 10, out
    assert math.isfinite(out["test_is_ll"]) and out["test_is_ll"] < 0
    assert out["test_is_ll"] >= out["test_elbo"] - 0.5, out          # IWAE bound >= ELBO
    # a 64-pixel binary image costs 44 nats under a uniform model
    assert out["test_is_ll"] > -35, out
    assert_png(out["figure"])
    assert_png(out["curve_figure"])


@pytest.mark.parametrize("side", [8, 28])
def test_vae_conv_network_shapes(side):
    """Encoder [n, S*S] -> 2 x [n, z]; decoder keeps any leading axes of z; a side that is
    not a multiple of 4 is refused."""
    import autodiff as ad
    from examples.vae_conv import ConvVAE
    net = ConvVAE(side, 3, channels=2, rng=0)
    x = np.random.default_rng(0).random((5, side * side)).astype(np.float32)
    with ad.no_grad():
        mean, logstd = net.posterior_params(x)
        assert mean.shape == logstd.shape == (5, 3)
        z = np.zeros((4, 5, 3), np.float32)
        logits = net.decoder(z)
        assert logits.shape == (4, 5, side * side)
        # the same z gives the same logits, whatever the leading axes
        np.testing.assert_allclose(logits.data[1, 2], net.decoder(z[1, 2]).data, rtol=1e-5)
    with pytest.raises(ValueError, match="multiple of 4"):
        ConvVAE(10, 3)
