"""End to end: arrays stay on their device (NumPy on "cpu", CuPy on "gpu").

Every test is parametrized over the device. The "gpu" variant is skipped unless CuPy
imports and sees a CUDA device (``autodiff.backend.gpu_available()``), so on a machine
without one the "cpu" variant validates the test logic, and on a CUDA machine the same
code checks that inputs moved with ``backend.to_device`` give outputs of the same array
module (and dtype) through the tape, the trace, the samplers, the ZhuSuan-style front,
variational inference, the optimizers and the evaluation routines.

Statistical checks use fixed seeds and tolerances scaled by Monte Carlo standard errors
(posterior sd / sqrt(ESS)), so they pass by a margin but still fail when a result is
wrong.
"""
import warnings

import numpy as np
import pytest
from scipy import special as sp_special

import autodiff as ad
import samplers
import zsarray as zs
from autodiff import backend

GPU_REASON = ("no CUDA device: the 'gpu' variant needs CuPy and a GPU "
              "(autodiff.backend.gpu_available() is False)")
DEVICES = [
    pytest.param("cpu", id="cpu"),
    pytest.param("gpu", id="gpu",
                 marks=pytest.mark.skipif(not backend.gpu_available(), reason=GPU_REASON)),
]

Z = 5.0          # multiple of the Monte Carlo standard error allowed in mean checks


@pytest.fixture(autouse=True)
def _restore_default_device():
    """Every test leaves the default device as it found it."""
    before = backend.default_device()
    yield
    backend.set_default_device(before)


def xp_for(device):
    """The array module of ``device`` (numpy or cupy), found through the public helpers."""
    return backend.get_array_module(backend.to_device(np.zeros(1), device))


def on(device, x):
    """``x`` (NumPy data) on ``device``."""
    return backend.to_device(np.asarray(x), device)


def assert_on(x, device, dtype=None, what="array"):
    """``x`` (array or Tensor) lives on ``device`` and, if given, has ``dtype``."""
    data = x.data if isinstance(x, ad.Tensor) else x
    xp = xp_for(device)
    assert backend.get_array_module(data) is xp, (
        f"{what}: expected a {xp.__name__} array on {device}, got {type(data).__module__}."
        f"{type(data).__name__}")
    assert hasattr(data, "dtype"), f"{what}: {type(data).__name__} is not an array"
    if dtype is not None:
        assert data.dtype == np.dtype(dtype), f"{what}: dtype {data.dtype}, expected {dtype}"


def host(x):
    return backend.asnumpy(x)


# ---------------------------------------------------------------- 1. autodiff tape
RNG = np.random.default_rng(20240611)
A_HOST = RNG.standard_normal((5, 3))
X_HOST = RNG.standard_normal(3)


def small_fn(a):
    """A scalar function of ``w`` [3] mixing matmul, exp, sum, softplus, log_sigmoid."""
    def f(w):
        h = ad.matmul(a, w)                                            # [5]
        return (ad.sum(ad.log_sigmoid(h)) - ad.sum(ad.softplus(w))
                + 0.1 * ad.sum(ad.exp(0.5 * w)))
    return f


def small_fn_numpy(a, w):
    """The same function and its gradient in float64 NumPy (the reference)."""
    h = a @ w
    val = (np.sum(-np.logaddexp(0, -h)) - np.sum(np.logaddexp(0, w))
           + 0.1 * np.sum(np.exp(0.5 * w)))
    grad = a.T @ sp_special.expit(-h) - sp_special.expit(w) + 0.05 * np.exp(0.5 * w)
    return val, grad


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("device", DEVICES)
def test_value_and_grad_stay_on_device(device, dtype):
    a = on(device, A_HOST.astype(dtype))
    w = on(device, X_HOST.astype(dtype))
    f = small_fn(a)
    val, g = ad.value_and_grad(f)(w)
    g2 = ad.grad(f)(w)
    assert_on(val, device, dtype, "value")
    assert_on(g, device, dtype, "grad")
    assert_on(g2, device, dtype, "grad (ad.grad)")
    assert g.shape == (3,) and val.size == 1

    # the same function on the CPU, from host copies of the same inputs
    a_cpu, w_cpu = host(a), host(w)
    val_cpu, g_cpu = ad.value_and_grad(small_fn(a_cpu))(w_cpu)
    assert backend.get_array_module(g_cpu) is np
    rtol = 1e-12 if dtype == np.float64 else 2e-5
    np.testing.assert_allclose(host(val), val_cpu, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(host(g), g_cpu, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(host(g2), g_cpu, rtol=rtol, atol=rtol)

    # and against the closed form in float64 (checks the tape itself)
    ref_val, ref_grad = small_fn_numpy(a_cpu.astype(np.float64), w_cpu.astype(np.float64))
    tol = 1e-10 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(host(val), ref_val, rtol=tol, atol=tol)
    np.testing.assert_allclose(host(g), ref_grad, rtol=tol, atol=tol)


# ------------------------------------------------------------------ 2. trace
def batched_logdensity(a):
    """Per-row ``[C]`` log density of ``q`` [C, 3] (one row per chain)."""
    def f(q):
        h = ad.matmul(q, a.T)                                          # [C, 5]
        return (ad.sum(ad.log_sigmoid(h), axis=1) - ad.sum(ad.softplus(q), axis=1)
                - 0.5 * ad.sum(q * q, axis=1))
    return f


@pytest.mark.parametrize("device", DEVICES)
def test_trace_value_and_grad_on_device_matches_the_tape(device):
    a = on(device, A_HOST)
    f = batched_logdensity(a)
    tape = ad.value_and_grad(lambda q: (ad.sum(f(q)), f(q)), has_aux=True)
    traced = ad.trace(f)
    with warnings.catch_warnings():
        # a fallback to plain evaluation would warn: make it fail the test
        warnings.simplefilter("error", ad.TraceWarning)
        for seed in range(3):      # 1st call records, 2nd cross-checks, 3rd replays
            q = on(device, np.random.default_rng(seed).standard_normal((4, 3)))
            lp, g = traced.value_and_grad(q)
            (_, lp_ref), g_ref = tape(q)
            assert_on(lp, device, np.float64, "traced value")
            assert_on(g, device, np.float64, "traced grad")
            assert lp.shape == (4,) and g.shape == (4, 3)
            np.testing.assert_allclose(host(lp), host(lp_ref), rtol=1e-13, atol=1e-13)
            np.testing.assert_allclose(host(g), host(g_ref), rtol=1e-12, atol=1e-12)
            assert_on(traced(q), device, np.float64, "traced call")


# ------------------------------------------------------------------ 3. samplers
SCALES = np.array([1.0, 2.0, 0.5])


def gaussian(scales):
    """Independent N(0, scales^2) log density on [n_chains, 3], written with autodiff."""
    inv = 1.0 / scales

    def logdensity(q):
        z = q * inv
        return -0.5 * ad.sum(z * z, axis=1)
    return logdensity


def assert_mean_within_mcse(draws_host, truth, z=Z):
    """|mean - truth| < z * sd / sqrt(ESS) per coordinate of [chains, draws, k] draws."""
    ess = samplers.diagnostics.ess(draws_host)
    sd = draws_host.reshape(-1, draws_host.shape[-1]).std(axis=0, ddof=1)
    mean = draws_host.mean(axis=(0, 1))
    assert np.all(ess > 50), ess            # enough information for the check to mean much
    err = np.abs(mean - truth)
    assert np.all(err < z * sd / np.sqrt(ess)), (mean, truth, sd, ess)


@pytest.mark.parametrize("kernel,dtype", [("nuts", np.float64), ("hmc", np.float64),
                                          ("nuts", np.float32)])
@pytest.mark.parametrize("device", DEVICES)
def test_sample_keeps_draws_on_device(device, kernel, dtype, capsys):
    q0 = on(device, np.random.default_rng(1).uniform(-2, 2, (4, 3)).astype(dtype))
    logdensity = gaussian(on(device, SCALES.astype(dtype)))
    opts = {"n_leapfrogs": 8} if kernel == "hmc" else {}
    with warnings.catch_warnings():
        warnings.simplefilter("error", samplers.DivergenceWarning)
        res = samplers.sample(logdensity, q0, n_samples=300, n_warmup=300, kernel=kernel,
                              rng=5, progress=False, **opts)
    assert res.draws.shape == (4, 300, 3) and res.logdensity.shape == (4, 300)
    assert_on(res.draws, device, dtype, "Result.draws")
    assert_on(res.logdensity, device, dtype, "Result.logdensity")
    assert_on(res.step_size, device, dtype, "Result.step_size")
    assert res.step_size.shape == (4,)
    for key, v in res.stats.items():
        assert_on(v, device, what=f"Result.stats[{key!r}]")
    # the log density at the stored draws is the stored log density
    draws = host(res.draws)
    lp = -0.5 * ((draws / SCALES) ** 2).sum(-1)
    tol = 1e-10 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(host(res.logdensity), lp, rtol=tol, atol=tol)
    assert np.all(np.isfinite(draws)) and np.all(host(res.step_size) > 0)
    assert_mean_within_mcse(draws.astype(np.float64), np.zeros(3))
    # the scales are recovered too (loosely: 15% of a 1200-draw sd estimate)
    np.testing.assert_allclose(draws.reshape(-1, 3).std(axis=0), SCALES, rtol=0.15)

    table = res.summary()
    out = capsys.readouterr().out
    assert len(table) == 3 and "x[2]" in out and "ess_bulk" in out
    np.testing.assert_allclose(table["mean"], draws.astype(np.float64).reshape(-1, 3).mean(0),
                               rtol=1e-9, atol=1e-12)
    assert np.all(np.asarray(table["r_hat"]) < 1.1)


# ------------------------------------------- 4. NumPy Generator with device positions
@pytest.mark.parametrize("device", DEVICES)
def test_numpy_generator_with_device_positions_is_reproducible(device):
    q0 = on(device, np.random.default_rng(2).uniform(-2, 2, (4, 3)))
    logdensity = gaussian(on(device, SCALES))
    xp = xp_for(device)
    gen = samplers.base.as_generator(np.random.default_rng(11), xp)
    assert hasattr(gen, "standard_normal")
    if xp is np:
        assert isinstance(gen, np.random.Generator)
    else:
        assert type(gen).__module__.startswith("cupy")

    def run(seed):
        return samplers.sample(logdensity, q0, n_samples=60, n_warmup=60, kernel="nuts",
                               rng=np.random.default_rng(seed), progress=False)

    r1, r2, r3 = run(11), run(11), run(12)
    for r in (r1, r2, r3):
        assert_on(r.draws, device, np.float64, "draws")
    np.testing.assert_array_equal(host(r1.draws), host(r2.draws))
    np.testing.assert_array_equal(host(r1.logdensity), host(r2.logdensity))
    assert not np.array_equal(host(r1.draws), host(r3.draws))
    np.testing.assert_array_equal(host(q0), np.random.default_rng(2).uniform(-2, 2, (4, 3)))


# ------------------------------------------------------------- 5. zs.NUTS front
N_OBS, D_W = 30, 3
X_REG = np.random.default_rng(3).standard_normal((N_OBS, D_W))
Y_REG = X_REG @ np.array([0.8, -1.2, 0.3]) + np.random.default_rng(4).standard_normal(N_OBS)


@zs.meta_bayesian_net(scope="devices_linear_regression")
def bayes_linreg(x, observed=None):
    """w ~ N(0, I_3), y ~ N(x w, 1); broadcasts over a leading chain axis on w."""
    bn = zs.BayesianNet(observed)
    xp = backend.get_array_module(x)
    w = bn.normal("w", xp.zeros(x.shape[1]), std=1.0, group_ndims=1)
    bn.normal("y", ad.einsum("nd,...d->...n", x, w), std=1.0, group_ndims=1)
    return bn


def conjugate_posterior(x, y):
    """Mean and sd of w | y for the prior N(0, I) and unit noise."""
    prec = np.eye(x.shape[1]) + x.T @ x
    cov = np.linalg.inv(prec)
    return cov @ x.T @ y, np.sqrt(np.diag(cov))


@pytest.mark.parametrize("device", DEVICES)
def test_zs_nuts_front_keeps_draws_on_device(device):
    x, y = on(device, X_REG), on(device, Y_REG)
    res = zs.NUTS().sample(bayes_linreg(x), observed={"y": y}, latent={"w": None},
                           n_chains=2, n_samples=200, n_warmup=200, rng=0, progress=False)
    w = res.draws["w"]
    assert w.shape == (2, 200, D_W)
    assert_on(w, device, np.float64, "InferenceResult.draws['w']")
    assert_on(res.unconstrained, device, np.float64, "InferenceResult.unconstrained")
    assert_on(res.step_size, device, what="InferenceResult.step_size")
    for key, v in res.stats.items():
        assert_on(v, device, what=f"InferenceResult.stats[{key!r}]")
    assert res.n_divergent == 0

    mean, sd = conjugate_posterior(X_REG, Y_REG)
    w_host = host(w)
    ess = samplers.diagnostics.ess(w_host)
    assert np.all(ess > 50), ess
    assert np.all(np.abs(w_host.mean(axis=(0, 1)) - mean) < Z * sd / np.sqrt(ess)), (
        w_host.mean(axis=(0, 1)), mean, sd, ess)
    # the posterior sd is recovered loosely (400 draws)
    np.testing.assert_allclose(w_host.reshape(-1, D_W).std(axis=0), sd, rtol=0.25)
    table = res.summary(print_table=False)
    assert list(table.names) == ["w[0]", "w[1]", "w[2]"]


# -------------------------------------------------- 6. SGVB with nn modules and Adam
X_DIM, Z_DIM, HID, N_DATA, K = 6, 2, 8, 10, 3
BINARY = (np.random.default_rng(5).random((N_DATA, X_DIM)) < 0.4).astype(np.float32)


class TinyVAE(zs.nn.Module):
    def __init__(self, rng):
        rng = np.random.default_rng(rng)
        self.encoder = zs.nn.Linear(X_DIM, 2 * Z_DIM, rng=rng)
        self.hidden = zs.nn.Linear(Z_DIM, HID, rng=rng)
        self.decoder = zs.nn.Linear(HID, X_DIM, rng=rng)

    def decode(self, z):
        return self.decoder(ad.tanh(self.hidden(z)))

    def q_net(self, x, n_particles, seed):
        h = self.encoder(x)
        bn = zs.BayesianNet(rng=seed)
        bn.normal("z", h[..., :Z_DIM], logstd=h[..., Z_DIM:], group_ndims=1,
                  n_samples=n_particles)
        return bn


@zs.meta_bayesian_net(scope="devices_vae")
def vae_model(vae, n, n_particles, xp, observed=None):
    bn = zs.BayesianNet(observed)
    z = bn.normal("z", xp.zeros((n, Z_DIM), np.float32), std=xp.ones((), np.float32),
                  group_ndims=1, n_samples=n_particles)
    bn.bernoulli("x", vae.decode(z), group_ndims=1, dtype=np.float32)
    return bn


@pytest.mark.parametrize("device", DEVICES)
def test_sgvb_gradients_and_adam_step_stay_on_device(device):
    xp = xp_for(device)
    vae = TinyVAE(rng=0).to(device)
    params = vae.named_parameters()
    assert len(params) == 6
    for name, p in params:
        assert_on(p, device, np.float32, f"parameter {name} after .to({device!r})")
    x = on(device, BINARY)
    assert_on(x, device, np.float32, "data")

    q = vae.q_net(x, K, seed=1)
    assert_on(q["z"].tensor, device, np.float32, "q sample z")
    assert q["z"].tensor.shape == (K, N_DATA, Z_DIM)
    cost = zs.variational.elbo(vae_model(vae, N_DATA, K, xp), {"x": x}, variational=q,
                               axis=0).sgvb()
    assert isinstance(cost, ad.Tensor) and cost.shape == ()
    assert_on(cost, device, np.float32, "sgvb cost")
    cost_value = float(host(cost))
    assert np.isfinite(cost_value) and cost_value > 0     # -ELBO of binary data > 0

    vae.zero_grad()
    cost.backward()
    for name, p in params:
        assert p.grad is not None, f"{name} got no gradient"
        assert_on(p.grad, device, np.float32, f"{name}.grad")
        assert p.grad.shape == p.shape
        assert np.all(np.isfinite(host(p.grad))) and np.any(host(p.grad) != 0), name

    before = {name: host(p.data).copy() for name, p in params}
    data_ids = {name: id(p.data) for name, p in params}
    opt = zs.optim.Adam(vae.parameters(), lr=1e-2)
    opt.step()
    for name, p in params:
        assert_on(p, device, np.float32, f"{name} after Adam.step")
        assert id(p.data) == data_ids[name], f"{name}: Adam replaced the array"
        delta = np.abs(host(p.data) - before[name])
        # Adam's first step moves every coordinate with a nonzero gradient by ~lr
        nz = host(p.grad) != 0
        assert np.all(delta[nz] > 1e-3) and np.all(delta <= 1e-2 * 1.001), (name, delta)

    # 30 more steps lower the cost, averaged over the same 4 evaluation seeds (20 particles)
    def cost_at(seed):
        qs = vae.q_net(x, 20, seed=seed)
        return float(host(zs.variational.elbo(vae_model(vae, N_DATA, 20, xp), {"x": x},
                                              variational=qs, axis=0).sgvb()))
    start = np.mean([cost_at(s) for s in range(100, 104)])
    for step in range(30):
        vae.zero_grad()
        zs.variational.elbo(vae_model(vae, N_DATA, K, xp), {"x": x},
                            variational=vae.q_net(x, K, seed=10 + step), axis=0).sgvb().backward()
        opt.step()
    end = np.mean([cost_at(s) for s in range(100, 104)])
    assert end < start, (start, end)
    for name, p in params:
        assert_on(p, device, np.float32, f"{name} after training")


# ------------------------------------------------------- 7. is_loglikelihood
N_E, DZ_E, DX_E, SIGMA_E = 8, 2, 3, 0.7
W_E = np.array([[1.0, -0.5], [0.3, 0.8], [-0.7, 0.4]])            # [DX, DZ]
X_E = np.random.default_rng(6).multivariate_normal(
    np.zeros(DX_E), W_E @ W_E.T + SIGMA_E ** 2 * np.eye(DX_E), size=N_E)


@zs.meta_bayesian_net(scope="devices_linear_gaussian")
def linear_gaussian(w, observed=None):
    """z_n ~ N(0, I_2), x_n | z_n ~ N(W z_n, sigma^2 I_3)."""
    bn = zs.BayesianNet(observed)
    xp = backend.get_array_module(w)
    z = bn.normal("z", xp.zeros((N_E, DZ_E)), std=1.0, group_ndims=1)
    bn.normal("x", ad.matmul(z, w.T), std=SIGMA_E, group_ndims=1)
    return bn


def exact_log_marginal():
    cov = W_E @ W_E.T + SIGMA_E ** 2 * np.eye(DX_E)
    _, logdet = np.linalg.slogdet(cov)
    sol = np.linalg.solve(cov, X_E.T).T
    return -0.5 * (DX_E * np.log(2 * np.pi) + logdet + np.sum(X_E * sol, axis=1))


@pytest.mark.parametrize("device", DEVICES)
def test_is_loglikelihood_on_device(device):
    w, x = on(device, W_E), on(device, X_E)
    # proposal: the exact posterior with its sd inflated by 1.5 (mean-field)
    cov = np.linalg.inv(np.eye(DZ_E) + W_E.T @ W_E / SIGMA_E ** 2)
    mean = X_E @ W_E @ cov / SIGMA_E ** 2
    std = 1.5 * np.sqrt(np.diag(cov)) * np.ones((N_E, DZ_E))
    q = zs.BayesianNet(rng=0)
    q.normal("z", on(device, mean), std=on(device, std), group_ndims=1, n_samples=1000)
    model = linear_gaussian(w)
    est = zs.evaluation.is_loglikelihood(model, {"x": x}, proposal=q, axis=0)
    assert est.shape == (N_E,)
    assert_on(est, device, np.float64, "is_loglikelihood")
    est_h = host(est)
    assert np.all(np.isfinite(est_h))

    # the estimate is log-mean-exp of the log weights; within 4 delta-method stderrs
    log_w = model.observe(x=x, z=q["z"].tensor).log_joint() - q["z"].cond_log_p
    assert_on(log_w, device, np.float64, "log weights")
    log_w = host(log_w)                                            # [K, N]
    m = log_w.max(axis=0)
    wts = np.exp(log_w - m)
    np.testing.assert_allclose(est_h, m + np.log(wts.mean(axis=0)), rtol=1e-10)
    se = wts.std(axis=0, ddof=1) / (np.sqrt(wts.shape[0]) * wts.mean(axis=0))
    assert np.all(np.abs(est_h - exact_log_marginal()) < 4 * se + 1e-9), (
        est_h, exact_log_marginal(), se)


# ---------------------------------------------------------- 8. default device
@pytest.mark.parametrize("device", DEVICES)
def test_set_default_device(device):
    try:
        backend.set_default_device(device)
        assert backend.default_device() == device
        if device == "gpu":
            t = ad.tensor([1.0, 2.0])
            assert_on(t, "gpu", np.float32, "ad.tensor([1.0, 2.0]) with default 'gpu'")
            # an array passed in still decides for itself
            assert_on(ad.tensor(np.ones(2)), "cpu", np.float64, "ad.tensor(numpy array)")
        else:
            t = ad.tensor([1.0])
            assert_on(t, "cpu", np.float64, "ad.tensor([1.0]) with default 'cpu'")
            assert type(t.data) is np.ndarray
    finally:
        backend.set_default_device("cpu")
    assert backend.default_device() == "cpu"
    assert_on(ad.tensor([1.0]), "cpu", np.float64, "ad.tensor([1.0]) after restoring 'cpu'")


@pytest.mark.skipif(backend.gpu_available(), reason="checks the error raised without a GPU")
def test_gpu_requests_without_a_gpu_raise_clearly():
    with pytest.raises(RuntimeError, match="no CUDA device"):
        backend.set_default_device("gpu")
    assert backend.default_device() == "cpu"
    with pytest.raises(RuntimeError, match="no CUDA device"):
        backend.to_device(np.zeros(2), "gpu")
    with pytest.raises(RuntimeError, match="no CUDA device"):
        TinyVAE(rng=0).to("gpu")
