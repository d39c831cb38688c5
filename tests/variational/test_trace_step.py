"""Training steps under autodiff.trace(cost, params=...): random draws through
zsarray.distributions are replayed from the same generator, so a traced run repeats
the plain tape's run number for number."""
import warnings

import numpy as np
import pytest

import autodiff as ad
import zsarray as zs


class TinyVAE(zs.nn.Module):
    def __init__(self, seed=0, x_dim=6, z_dim=2):
        rng = np.random.default_rng(seed)
        self.z_dim = z_dim
        self.enc = zs.nn.MLP([x_dim, 8, 2 * z_dim], activation="tanh", rng=rng)
        self.dec = zs.nn.MLP([z_dim, 8, x_dim], activation="tanh", rng=rng)


@zs.meta_bayesian_net(scope="tiny")
def tiny_model(vae, n, k, observed=None):
    bn = zs.BayesianNet(observed)
    z = bn.normal("z", np.zeros((n, vae.z_dim), np.float32), std=np.float32(1),
                  group_ndims=1, n_samples=k)
    bn.bernoulli("x", vae.dec(z), group_ndims=1, dtype=np.float32)
    return bn


def make_cost(vae, rng, k=3, objective="elbo"):
    def cost(x):
        h = vae.enc(x)
        q = zs.BayesianNet(rng=rng)
        q.normal("z", h[:, :vae.z_dim], logstd=h[:, vae.z_dim:], group_ndims=1, n_samples=k)
        model = tiny_model(vae, x.shape[0], k)
        if objective == "elbo":
            return zs.variational.elbo(model, {"x": x}, variational=q, axis=0).sgvb()
        return zs.variational.iw_objective(model, {"x": x}, variational=q, axis=0).sgvb()
    return cost


def batches(n, seed=1):
    r = np.random.default_rng(seed)
    return [(r.random((10, 6)) < 0.4).astype(np.float32) for _ in range(n)]


def train(traced, objective="elbo", n=15):
    vae = TinyVAE()
    rng = np.random.default_rng(7)
    opt = zs.optim.Adam(vae.parameters(), lr=1e-2)
    cost = make_cost(vae, rng, objective=objective)
    step = ad.trace(cost, params=vae.parameters()) if traced else None
    out = []
    for x in batches(n):
        opt.zero_grad()
        if traced:
            out.append(float(step.backward(x)))
        else:
            c = cost(x)
            c.backward()
            out.append(float(c.data))
        opt.step()
    return np.array(out), vae, rng, step


@pytest.mark.parametrize("objective", ["elbo", "iwae"])
def test_traced_training_repeats_the_tape(objective):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ad.TraceWarning)
        a, va, ra, _ = train(False, objective)
        b, vb, rb, step = train(True, objective)
    np.testing.assert_array_equal(a, b)
    for p, q in zip(va.parameters(), vb.parameters()):
        np.testing.assert_array_equal(p.data, q.data)
    # the generator advanced exactly as much (draws replayed, not frozen or repeated)
    assert ra.bit_generator.state == rb.bit_generator.state
    prog = next(iter(step._programs.values()))
    assert prog.verified and prog.broken is None and prog.rngs
    assert len(a) == 15 and a[-1] < a[0]


def test_a_generator_made_inside_the_step_is_caught():
    """BayesianNet(rng=0) inside the cost seeds a new generator every call (the same
    noise every step); replay would keep drawing from the one seen while tracing. The
    verifying call notices and the step is evaluated normally from then on."""
    vae = TinyVAE()
    cost_fixed = make_cost(vae, 0)
    step = ad.trace(cost_fixed, params=vae.parameters())
    xs = batches(3)
    step.backward(xs[0])
    with pytest.warns(ad.TraceWarning, match="disagree"):
        step.backward(xs[1])
    assert float(step(xs[2])) == float(cost_fixed(xs[2]).data)


def test_a_draw_with_a_parameters_data_as_argument_is_replayed():
    """A draw whose array argument is a parameter's raw data: the argument is traced, so
    the replay draws at the parameter's current value, as the tape does."""
    from zsarray.distributions.base import draw
    wa, wb = (ad.tensor(np.ones(3), requires_grad=True) for _ in range(2))
    ra, rb = np.random.default_rng(0), np.random.default_rng(0)

    def make(w, rng):
        def cost(x):
            noise = draw(rng, np, "normal", w.data, 1.0)     # w.data: a traced value
            return ad.sum(x * w * noise)
        return cost
    cost_a, step = make(wa, ra), ad.trace(make(wb, rb), params=[wb])
    with warnings.catch_warnings():
        warnings.simplefilter("error", ad.TraceWarning)
        for i in range(5):
            c = cost_a(np.ones(3))
            c.backward()
            assert float(step.backward(np.ones(3))) == float(c.data)
            for w in (wa, wb):
                w.data = w.data - 0.1 * w.grad
                w.grad = None
    np.testing.assert_array_equal(wa.data, wb.data)


@pytest.mark.parametrize("dist", ["gamma", "beta", "bernoulli", "categorical", "laplace",
                                  "logistic", "onehot"])
def test_sampling_inside_a_traced_step_repeats_the_tape(dist):
    """Draws inside primitives (the implicitly reparameterized Gamma/Beta), discrete
    samples built from the noise (Bernoulli, Categorical, one-hot) and transformed noise
    are replayed: the same costs, gradients and generator state as the tape."""
    zd = zs.distributions

    def make(w, rng):
        def cost(x):
            if dist == "gamma":
                s = zd.Gamma(ad.exp(w), 1.0).sample(rng=rng)
            elif dist == "beta":
                s = zd.Beta(ad.exp(w), 2.0).sample(rng=rng)
            elif dist == "bernoulli":
                s = ad.cast(zd.Bernoulli(logits=w).sample(rng=rng), np.float64) * w
            elif dist == "categorical":
                k = zd.Categorical(logits=ad.reshape(w, (1, 3))).sample(4, rng=rng)
                s = ad.sum(ad.cast(k, np.float64)) * w
            elif dist == "laplace":
                s = zd.Laplace(w, 1.0).sample(rng=rng)
            elif dist == "logistic":
                s = zd.Logistic(w, 1.0).sample(rng=rng)
            else:
                s = ad.sum(zd.OnehotCategorical(w).sample(2, rng=rng), axis=0) * w
            return ad.sum(s * x)
        return cost
    wa = ad.tensor(np.array([0.3, -0.2, 0.1]), requires_grad=True)
    wb = ad.tensor(wa.data.copy(), requires_grad=True)
    ra, rb = np.random.default_rng(3), np.random.default_rng(3)
    cost_a = make(wa, ra)
    step = ad.trace(make(wb, rb), params=[wb])
    with warnings.catch_warnings():
        warnings.simplefilter("error", ad.TraceWarning)
        for i in range(6):
            x = np.full(3, 1.0 + i)
            c = cost_a(x)
            wa.grad = None
            c.backward()
            wb.grad = None
            assert float(step.backward(x)) == float(c.data)
            np.testing.assert_array_equal(wb.grad, wa.grad)
            wa.data -= 0.01 * wa.grad
            wb.data -= 0.01 * wb.grad
    assert ra.bit_generator.state == rb.bit_generator.state
    prog = next(iter(step._programs.values()))
    assert prog.broken is None


@pytest.mark.parametrize("objective", ["elbo", "iwae"])
def test_compiled_training_step_follows_the_tape(objective):
    """ad.compile(cost, params=...): the whole step runs compiled (no Python step: the
    reparameterization noise is drawn before the machine runs, from the same generator),
    and training follows the tape's run to float32 rounding."""
    vae_a, vae_b = TinyVAE(), TinyVAE()
    ra, rb = np.random.default_rng(7), np.random.default_rng(7)
    cost_a, cost_b = make_cost(vae_a, ra, objective=objective), make_cost(vae_b, rb,
                                                                          objective=objective)
    opt_a = zs.optim.Adam(vae_a.parameters(), lr=1e-2)
    opt_b = zs.optim.Adam(vae_b.parameters(), lr=1e-2)
    step = ad.compile(cost_b, params=vae_b.parameters())
    with warnings.catch_warnings():
        warnings.simplefilter("error", ad.CompileWarning)
        warnings.simplefilter("error", ad.TraceWarning)
        for x in batches(10):
            opt_a.zero_grad()
            c = cost_a(x)
            c.backward()
            opt_a.step()
            opt_b.zero_grad()
            vb = float(step.backward(x))
            opt_b.step()
            np.testing.assert_allclose(vb, float(c.data), rtol=2e-5)
    for p, q in zip(vae_a.parameters(), vae_b.parameters()):
        np.testing.assert_allclose(p.data, q.data, rtol=1e-3, atol=1e-5)
    assert ra.bit_generator.state == rb.bit_generator.state
    entry = next(iter(step._programs.values()))
    assert entry.exe is not None and entry.exe[1].fallbacks == [] and entry.exe[1].sources


def test_compiled_step_keeps_parameters_in_its_workspace_without_changing_meaning():
    """After a compiled backward the parameters' .data live in the machine's workspace
    (no copy per step). Updating .data in place, rebinding it, or leaving it must give
    the same gradients as a fresh copy of the parameters would, and the machine never
    writes to them."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((64, 5)).astype(np.float32)
    W = ad.tensor(rng.standard_normal((5, 3)).astype(np.float32), requires_grad=True)
    b = ad.tensor(np.zeros(3, np.float32), requires_grad=True)

    def cost(x):
        return ad.sum(ad.tanh(x @ W + b) ** 2)

    step = ad.compile(cost, params=[W, b], warn=False)
    ref = ad.trace(cost, params=[W, b], warn=False)     # reads whatever .data holds

    def grads(s, x):
        W.grad = b.grad = None
        v = s.backward(x)
        return v, W.grad.copy(), b.grad.copy()

    for i in range(12):
        before = (W.data.copy(), b.data.copy())
        v, gw, gb = grads(step, X)
        np.testing.assert_array_equal(W.data, before[0])      # backward reads, never writes
        np.testing.assert_array_equal(b.data, before[1])
        v2, gw2, gb2 = grads(ref, X)
        np.testing.assert_allclose(v, v2, rtol=1e-5)
        np.testing.assert_allclose(gw, gw2, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(gb, gb2, rtol=1e-4, atol=1e-5)
        if i % 3 == 0:
            W.data -= np.float32(0.05) * gw                    # in place
        elif i % 3 == 1:
            W.data = W.data - np.float32(0.05) * gw            # rebound
        b.data[...] = b.data + np.float32(0.01)
    entry = next(iter(step._programs.values()))
    exe = entry.exe[1]
    assert W.data is exe.resident(1) and b.data is exe.resident(2)
    # a rebound parameter's new values are seen; arrays that still see the old
    # place (the former .data, a view of it) are never written over
    for keep in (lambda a: a, lambda a: a.T[1:]):
        kept = keep(W.data)
        expected = kept.copy()
        W.data = rng.standard_normal((5, 3)).astype(np.float32)
        v, gw, _ = grads(step, X)
        v2, gw2, _ = grads(ref, X)
        np.testing.assert_allclose(gw, gw2, rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(kept, expected)
        assert W.data is exe.resident(1) or W.data is entry.exe[1].resident(1)
    # nothing kept: the place is reused
    W.data = W.data * np.float32(0.5)
    grads(step, X)
    assert W.data is exe.resident(1) and b.data is exe.resident(2)


def test_compiled_step_hands_gradients_out_without_a_copy_and_never_changes_them():
    """A compiled backward's gradients are views of the machine's workspace. Kept across
    steps (a list of them, ``zero_grad(set_to_none=False)``), modified in place
    (clipping), or dropped: each step's gradients equal the traced step's, and what a
    step handed out never changes afterwards."""
    import zsarray as zs
    rng = np.random.default_rng(4)
    X = rng.standard_normal((64, 5)).astype(np.float32)
    W = ad.tensor(rng.standard_normal((5, 3)).astype(np.float32), requires_grad=True)
    b = ad.tensor(np.zeros(3, np.float32), requires_grad=True)
    c = ad.tensor(np.ones(3, np.float32), requires_grad=True)     # gradient: a constant
    K = np.array([2.0, -1.0, 0.5], np.float32)

    def cost(x):
        return ad.sum(ad.tanh(x @ W + b) ** 2) + ad.sum(c * K)

    step = ad.compile(cost, params=[W, b, c], warn=False)
    ref = ad.trace(cost, params=[W, b, c], warn=False)
    opt = zs.optim.SGD([W, b, c], lr=0.01)

    def want(x):
        for p in (W, b, c):
            p.grad = None
        ref.backward(x)
        return [p.grad.copy() for p in (W, b, c)]

    kept = []
    for i in range(9):
        x = X * np.float32(1 + 0.1 * i)
        expect = want(x)
        if i % 3 == 2:                 # accumulate onto zeroed gradients kept in place
            opt.zero_grad(set_to_none=False)
        else:
            opt.zero_grad()
        step.backward(x)
        got = [p.grad for p in (W, b, c)]
        for g, e in zip(got, expect):
            np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5)
        if i % 3 == 0:
            kept.append([(g, g.copy()) for g in got])          # kept by the caller
        if i % 3 == 1:
            zs.optim.clip_grad_norm_([W, b, c], 1e-3)          # in place
            kept.append([(g, g.copy()) for g in got])
        for k in kept:
            for g, snapshot in k:
                np.testing.assert_array_equal(g, snapshot)
        opt.step()
    exe = next(iter(step._programs.values())).exe[1]
    assert exe.handed == (1, 2, 3), exe.handed
    opt.zero_grad()
    step.backward(X)
    assert all(exe.handed_out(p.grad) for p in (W, b, c))
    # two gradients in one place of the workspace: copies, each its own array
    d = ad.tensor(np.ones(3, np.float32), requires_grad=True)
    step2 = ad.compile(lambda x: ad.sum((c + d) * x), params=[c, d], warn=False)
    x = np.arange(3, dtype=np.float32)
    for _ in range(3):
        c.grad = d.grad = None
        step2.backward(x)
    exe2 = next(iter(step2._programs.values())).exe[1]
    assert exe2.handed == ()
    c.grad *= 5.0
    np.testing.assert_array_equal(d.grad, x)
    np.testing.assert_array_equal(c.grad, 5.0 * x)
