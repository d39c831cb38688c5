"""Variational objectives and gradient estimators against closed forms (Gaussian models).

Monte Carlo checks compare the mean of ``R`` independent replicate estimates (fixed
seeds) with the exact value, scaled by the standard error of that mean (MCSE):
``|mean - exact| < Z * sd / sqrt(R)``.
"""
import numpy as np
import pytest
from scipy import stats

import autodiff as ad
import zsarray as zs
import zsarray.variational as zv
from zsarray import distributions as zd

Z = 4.0          # MCSE multiple (fixed seeds: deterministic, but keep a safe margin)
MU0, LS0 = 0.7, np.log(1.5)


@zs.meta_bayesian_net()
def std_normal_prior(observed=None):
    """p(z) = N(0, 1), no data."""
    bn = zs.BayesianNet(observed)
    bn.normal("z", 0.0, std=1.0)
    return bn


@zs.meta_bayesian_net()
def linear_gaussian(sigma, observed=None):
    """z ~ N(0, 1); x | z ~ N(z, sigma^2)  =>  x ~ N(0, 1 + sigma^2)."""
    bn = zs.BayesianNet(observed)
    z = bn.normal("z", 0.0, std=1.0)
    bn.normal("x", z, std=sigma)          # a node as a parameter: its tensor, gradient kept
    return bn


def kl_qp(mu, ls):
    """KL(N(mu, e^{2 ls}) || N(0, 1)) and its gradient (d/dmu, d/dls)."""
    s2 = np.exp(2 * ls)
    return -ls + (s2 + mu ** 2) / 2 - 0.5, np.array([mu, s2 - 1.0])


def q_net(mu, ls, n, seed, batch=None):
    q = zs.BayesianNet(rng=seed)
    mean = mu if batch is None else mu * ad.tensor(np.ones(batch))
    q.normal("z", mean, logstd=ls, n_samples=n)
    return q


def replicate(make_cost, n_rep, *params):
    """Values and gradients of ``make_cost(seed, *params)`` over ``n_rep`` seeds."""
    vg = ad.value_and_grad(lambda *p: make_cost(*p), argnums=tuple(range(1, 1 + len(params))))
    vals, grads = [], []
    for seed in range(n_rep):
        v, g = vg(seed, *[np.array(p, dtype=float) for p in params])
        vals.append(float(v))
        grads.append([float(x) for x in g])
    return np.array(vals), np.array(grads)


def assert_mcse(samples, exact, z=Z):
    samples = np.asarray(samples)
    mean = samples.mean(0)
    se = samples.std(0, ddof=1) / np.sqrt(len(samples))
    assert np.all(np.abs(mean - exact) < z * se + 1e-12), (mean, exact, se)
    return mean, se


# ------------------------------------------------------------------------- ELBO
def test_elbo_value_is_minus_kl_within_mcse():
    q = q_net(MU0, LS0, 100_000, seed=0)
    obj = zv.elbo(std_normal_prior(), {}, variational=q, axis=0)
    log_w = (obj.bn.log_joint() - q["z"].cond_log_p).data
    se = log_w.std() / np.sqrt(log_w.size)
    kl, _ = kl_qp(MU0, LS0)
    assert obj.tensor.shape == ()
    assert abs(float(obj.tensor.data) + kl) < Z * se
    np.testing.assert_allclose(float(obj.tensor.data), log_w.mean(), rtol=1e-12)


@pytest.mark.parametrize("estimator", ["sgvb", "path_derivative", "reinforce",
                                       "reinforce_vr"])
def test_elbo_gradients_match_analytic_minus_grad_kl(estimator):
    model = std_normal_prior()
    state = zv.ReinforceState()

    def cost(seed, mu, ls):
        obj = zv.elbo(model, {}, variational=q_net(mu, ls, 5000, seed), axis=0)
        if estimator == "sgvb":
            return obj.sgvb()
        if estimator == "path_derivative":
            return obj.sgvb(path_derivative=True)
        if estimator == "reinforce":
            return obj.reinforce(variance_reduction=False)
        return obj.reinforce(state=state)

    _, grads = replicate(cost, 20, MU0, LS0)
    _, grad_kl = kl_qp(MU0, LS0)
    assert_mcse(grads, grad_kl)          # cost = -ELBO = KL, so d cost = grad KL
    if estimator == "reinforce_vr":
        assert state.moving_mean is not None
        assert abs(float(state.moving_mean) + kl_qp(MU0, LS0)[0]) < 0.05


def test_path_derivative_has_zero_variance_at_the_posterior():
    # q = p: the path-derivative gradient is exactly 0 for every sample (Roeder et al.).
    model = std_normal_prior()

    def cost(seed, mu, ls, pd):
        obj = zv.elbo(model, {}, variational=q_net(mu, ls, 100, seed), axis=0)
        return obj.sgvb(path_derivative=pd)

    g_pd = ad.grad(lambda mu, ls: cost(0, mu, ls, True), argnums=(0, 1))(np.array(0.0),
                                                                       np.array(0.0))
    g = ad.grad(lambda mu, ls: cost(0, mu, ls, False), argnums=(0, 1))(np.array(0.0),
                                                                     np.array(0.0))
    np.testing.assert_allclose(np.array(g_pd, dtype=float), 0.0, atol=1e-12)
    assert np.abs(np.array(g, dtype=float)).max() > 1e-3


def test_path_derivative_leaves_the_users_distribution_untouched():
    q = q_net(MU0, LS0, 10, seed=0)
    zv.elbo(std_normal_prior(), {}, variational=q, axis=0).sgvb(path_derivative=True)
    assert q["z"].dist.use_path_derivative is False


def test_analytic_kl_value_and_gradient_are_exact():
    model = std_normal_prior()

    def cost(mu, ls):
        obj = zv.elbo(model, {}, variational=q_net(mu, ls, 7, 0), axis=0, analytic_kl=True)
        return obj.sgvb()

    val, g = ad.value_and_grad(cost, argnums=(0, 1))(np.array(MU0), np.array(LS0))
    kl, grad_kl = kl_qp(MU0, LS0)
    np.testing.assert_allclose(float(val), kl, rtol=1e-12)
    np.testing.assert_allclose(np.array(g, dtype=float), grad_kl, rtol=1e-12)


def test_analytic_kl_with_data_matches_monte_carlo_elbo():
    # ELBO = E_q[log p(x|z)] - KL: same expectation as the plain estimator.
    sigma, x = 0.5, 1.3
    model = linear_gaussian(sigma)
    q = q_net(0.4, np.log(0.6), 50_000, seed=1)
    a = zv.elbo(model, {"x": x}, variational=q, axis=0, analytic_kl=True)
    b = zv.elbo(model, {"x": x}, variational=q, axis=0)
    mu, s = 0.4, 0.6
    exact_lik = stats.norm.logpdf(x, mu, sigma) - s ** 2 / (2 * sigma ** 2)
    exact = exact_lik - kl_qp(mu, np.log(s))[0]
    lik = a._analytic_parts("pathwise")[0].data
    lw = b._log_weights("pathwise").data
    assert abs(float(a.tensor.data) - exact) < Z * lik.std() / np.sqrt(lik.size)
    assert abs(float(b.tensor.data) - exact) < Z * lw.std() / np.sqrt(lw.size)
    # reinforce with the analytic KL is also unbiased for the gradient
    state = zv.ReinforceState()

    def cost(seed, m, ls):
        return zv.elbo(model, {"x": x}, variational=q_net(m, ls, 4000, seed), axis=0,
                       analytic_kl=True).reinforce(state=state)

    def exact_elbo(m, ls):
        s2 = np.exp(2 * ls)
        return (stats.norm.logpdf(x, m, sigma) - s2 / (2 * sigma ** 2)) - kl_qp(m, ls)[0]

    eps = 1e-6
    g_exact = -np.array([(exact_elbo(0.4 + eps, np.log(s)) - exact_elbo(0.4 - eps, np.log(s))),
                         (exact_elbo(0.4, np.log(s) + eps) - exact_elbo(0.4, np.log(s) - eps))]
                        ) / (2 * eps)
    _, grads = replicate(cost, 20, 0.4, np.log(s))
    assert_mcse(grads, g_exact)


def test_reinforce_with_a_baseline_returns_the_baseline_cost():
    sigma, x = 0.5, 1.3
    model = linear_gaussian(sigma)
    q = q_net(0.0, 0.0, 200, seed=0)
    state = zv.ReinforceState()
    b = ad.tensor(np.array(-1.0), requires_grad=True)
    cost, bcost = zv.elbo(model, {"x": x}, variational=q, axis=0).reinforce(
        baseline=b, state=state)
    assert cost.shape == () and bcost.shape == ()
    bcost.backward()
    log_w = zv.elbo(model, {"x": x}, variational=q, axis=0)._log_weights("pathwise").data
    np.testing.assert_allclose(b.grad, -(log_w - (-1.0)).mean(), rtol=1e-10)
    np.testing.assert_allclose(float(state.moving_mean), (log_w + 1.0).mean(), rtol=1e-10)


def test_reinforce_state_is_only_what_is_passed():
    model = std_normal_prior()
    s1, s2 = zv.ReinforceState(), zv.ReinforceState()
    zv.elbo(model, {}, variational=q_net(0.0, 0.0, 10, 0), axis=0).reinforce(state=s1)
    assert s1.moving_mean is not None and s2.moving_mean is None
    m = float(s1.moving_mean)
    zv.elbo(model, {}, variational=q_net(0.0, 0.0, 10, 1), axis=0).reinforce(state=s1,
                                                                             decay=0.5)
    lw = zv.elbo(model, {}, variational=q_net(0.0, 0.0, 10, 1), axis=0).tensor.data
    np.testing.assert_allclose(float(s1.moving_mean), 0.5 * m + 0.5 * float(lw), rtol=1e-10)


def test_function_model_and_bn_for_prediction():
    sigma, x = 0.5, 1.3

    def log_joint(values):
        return (zd.Normal(0.0, std=1.0).log_prob(values["z"])
                + zd.Normal(values["z"], std=sigma).log_prob(values["x"]))

    q = q_net(0.2, -0.5, 30, seed=3)
    f = zv.elbo(log_joint, {"x": x}, variational=q, axis=0)
    m = zv.elbo(linear_gaussian(sigma), {"x": x}, variational=q, axis=0)
    np.testing.assert_allclose(f.tensor.data, m.tensor.data, rtol=1e-12)
    assert f.bn is None
    assert m.bn["z"].tensor is q["z"].tensor and m.bn["x"].is_observed()


# ------------------------------------------------------------------------- IWAE
def test_iw_objective_with_one_particle_equals_the_elbo():
    model = linear_gaussian(0.5)
    q = q_net(0.3, -0.2, 1, seed=0, batch=64)       # z: [1, 64]
    iw = zv.iw_objective(model, {"x": 1.3}, variational=q, axis=0)
    el = zv.elbo(model, {"x": 1.3}, variational=q, axis=0)
    assert iw.tensor.shape == (64,)
    np.testing.assert_allclose(iw.tensor.data, el.tensor.data, rtol=1e-12)


def test_iw_bound_increases_with_k_towards_log_marginal():
    sigma, x = 0.5, 1.3
    exact = stats.norm.logpdf(x, 0, np.sqrt(1 + sigma ** 2))
    model = linear_gaussian(sigma)
    means = {}
    for k in (1, 10, 1000):
        q = zs.BayesianNet(rng=k)
        q.normal("z", np.zeros(200), std=1.0, n_samples=k)   # the prior as proposal
        bound = zv.iw_objective(model, {"x": x}, variational=q, axis=0).tensor.data
        means[k] = (bound.mean(), bound.std(ddof=1) / np.sqrt(bound.size))
    assert means[1][0] < means[10][0] < means[1000][0] <= exact + 3 * means[1000][1]
    assert abs(means[1000][0] - exact) < 0.01
    # With the exact posterior as q every weight equals p(x): the bound is exact.
    post_var = 1 / (1 + 1 / sigma ** 2)
    q = q_net(post_var * x / sigma ** 2, 0.5 * np.log(post_var), 5, seed=0)
    np.testing.assert_allclose(
        zv.iw_objective(model, {"x": x}, variational=q, axis=0).tensor.data, exact,
        rtol=1e-12)


def test_vimco_gradient_matches_iwae_pathwise_gradient_in_expectation():
    sigma, x, k = 0.5, 1.3, 5
    model = linear_gaussian(sigma)

    def iw(seed, mu, ls, method):
        q = q_net(mu, ls, k, seed, batch=2000)
        return getattr(zv.iw_objective(model, {"x": x}, variational=q, axis=0), method)()

    _, g_sgvb = replicate(lambda s, m, l: iw(s, m, l, "sgvb"), 20, 0.2, -0.3)
    _, g_vimco = replicate(lambda s, m, l: iw(s, m, l, "vimco"), 20, 0.2, -0.3)
    diff = g_vimco.mean(0) - g_sgvb.mean(0)
    se = np.sqrt(g_vimco.var(0, ddof=1) / 20 + g_sgvb.var(0, ddof=1) / 20)
    assert np.all(np.abs(diff) < Z * se), (g_vimco.mean(0), g_sgvb.mean(0), se)
    assert np.all(np.abs(g_sgvb.mean(0)) > 10 * se)     # a non-trivial gradient


def test_vimco_signal_is_leave_one_out():
    from zsarray.variational.monte_carlo import _vimco_signal
    lw = np.array([[0.0, 1.0], [2.0, -1.0], [0.5, 0.5]])       # [K=3, B=2]
    sig = _vimco_signal(lw, 0)
    for b in range(2):
        w = lw[:, b]
        lk = np.log(np.mean(np.exp(w)))
        for j in range(3):
            others = np.delete(w, j)
            loo = np.log((np.exp(others).sum() + np.exp(others.mean())) / 3)
            np.testing.assert_allclose(sig[j, b], lk - loo, rtol=1e-12)
    np.testing.assert_allclose(_vimco_signal(lw.T, 1), sig.T)


# ------------------------------------------------------------------------- klpq
def test_klpq_importance_gradient_is_grad_kl_p_q():
    m0, s0 = 1.0, 0.8
    mu, ls = 0.3, np.log(1.3)

    def log_p(values):                     # a normalized target "model"
        return zd.Normal(m0, std=s0).log_prob(values["z"])

    def cost(seed, m, l):
        return zv.klpq(log_p, {}, variational=q_net(m, l, 5000, seed), axis=0).importance()

    _, grads = replicate(cost, 20, mu, ls)
    s2 = np.exp(2 * ls)
    exact = np.array([(mu - m0) / s2, 1 - (s0 ** 2 + (m0 - mu) ** 2) / s2])
    assert_mcse(grads, exact)


# ------------------------------------------------------------------------- regression
def test_mean_field_vi_on_bayesian_linear_regression_reaches_the_analytic_optimum():
    rng = np.random.default_rng(0)
    n, d, noise, alpha = 30, 3, 0.5, 1.0
    X = rng.normal(size=(n, d))
    y = X @ np.array([1.0, -2.0, 0.5]) + noise * rng.normal(size=n)
    prec = alpha * np.eye(d) + X.T @ X / noise ** 2
    post_mean = np.linalg.solve(prec, X.T @ y / noise ** 2)
    mf_var = 1.0 / np.diag(prec)

    @zs.meta_bayesian_net()
    def regression(observed=None):
        bn = zs.BayesianNet(observed)
        w = bn.normal("w", np.zeros(d), std=alpha ** -0.5, group_ndims=1)
        bn.normal("y", ad.matmul(w, X.T), std=noise, group_ndims=1)
        return bn

    model = regression()

    def cost(mu, ls, seed):
        q = zs.BayesianNet(rng=seed)
        q.normal("w", mu, logstd=ls, group_ndims=1, n_samples=32)
        return zv.elbo(model, {"y": y}, variational=q, axis=0).sgvb()

    vg = ad.value_and_grad(cost, argnums=(0, 1))
    params = [np.zeros(d), np.full(d, -1.0)]
    m = [np.zeros(d), np.zeros(d)]
    v = [np.zeros(d), np.zeros(d)]
    b1, b2, avg, n_avg = 0.9, 0.999, [0, 0], 0
    for t in range(1, 401):                 # Adam, written here (no zs.optim dependency)
        lr = 0.05 if t <= 250 else 0.01
        _, g = vg(params[0], params[1], t)
        for i in range(2):
            m[i] = b1 * m[i] + (1 - b1) * g[i]
            v[i] = b2 * v[i] + (1 - b2) * g[i] ** 2
            params[i] = params[i] - lr * (m[i] / (1 - b1 ** t)) / (
                np.sqrt(v[i] / (1 - b2 ** t)) + 1e-8)
        if t > 300:                         # Polyak averaging of the last iterates
            avg = [a + p for a, p in zip(avg, params)]
            n_avg += 1
    mu, ls = avg[0] / n_avg, avg[1] / n_avg
    np.testing.assert_allclose(mu, post_mean, atol=0.02 * np.sqrt(mf_var).max() + 0.01)
    np.testing.assert_allclose(np.exp(2 * ls), mf_var, rtol=0.1)


@zs.meta_bayesian_net(scope="f32")
def _f32_model(n, observed=None):
    bn = zs.BayesianNet(observed)
    z = bn.normal("z", np.zeros((n, 3), np.float32), std=np.float32(1), group_ndims=1,
                  n_samples=5)
    bn.normal("x", z, std=np.float32(0.5), group_ndims=1)
    return bn


@pytest.mark.parametrize("objective", [
    lambda m, x, q: zv.elbo(m, {"x": x}, variational=q, axis=0).sgvb(),
    lambda m, x, q: zv.elbo(m, {"x": x}, variational=q, axis=0).reinforce(
        variance_reduction=False),
    lambda m, x, q: zv.iw_objective(m, {"x": x}, variational=q, axis=0).tensor,
    lambda m, x, q: zv.iw_objective(m, {"x": x}, variational=q, axis=0).sgvb(),
    lambda m, x, q: zv.iw_objective(m, {"x": x}, variational=q, axis=0).vimco(),
    lambda m, x, q: zv.klpq(m, {"x": x}, variational=q, axis=0).importance(),
    lambda m, x, q: zs.evaluation.is_loglikelihood(m, {"x": x}, proposal=q, axis=0),
], ids=["elbo-sgvb", "elbo-reinforce", "iw-bound", "iw-sgvb", "vimco", "klpq-importance",
        "is-loglikelihood"])
def test_float32_stays_float32(objective):
    """float32 data and parameters give float32 objectives and gradients (a float64
    NumPy scalar such as ``np.log(k)`` would promote them under NumPy 2)."""
    x = np.random.default_rng(0).standard_normal((6, 3)).astype(np.float32)
    mu = ad.Tensor(np.zeros(3, np.float32), requires_grad=True)
    q = zs.BayesianNet(rng=0)
    q.normal("z", mu * ad.tensor(np.ones((6, 1), np.float32)), std=np.float32(1),
             group_ndims=1, n_samples=5)
    out = objective(_f32_model(6), x, q)
    value = out.data if isinstance(out, ad.Tensor) else out
    assert value.dtype == np.float32
    if isinstance(out, ad.Tensor) and out.requires_grad:
        ad.sum(out).backward()
        assert mu.grad.dtype == np.float32
