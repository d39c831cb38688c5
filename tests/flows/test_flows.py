"""zsarray.flows: log-dets vs autodiff Jacobians, inverses, the IAF autoregressive
structure, gradient checks, FlowDistribution, a density fit, and error paths."""
import numpy as np
import pytest

import autodiff as ad
import zsarray.distributions as zd
import zsarray.flows as zf
import zsarray.optim as zo

D = 4
F64 = np.float64


def _perturb(flow, rng, scale=0.5):
    """Move every parameter to a random value (so no test sits at the initialization)."""
    for p in flow.parameters():
        p.data = p.data + scale * rng.standard_normal(p.shape).astype(p.dtype)
    return flow


def make(name, dim=D, dtype=F64, seed=0):
    rng = np.random.default_rng(seed)
    if name == "planar":
        f = zf.Planar(dim, dtype, rng)
    elif name == "iaf":
        f = zf.IAF(dim, (7, 6), dtype=dtype, rng=rng)
    elif name == "iaf_perm":
        f = zf.IAF(dim, (9,), order=rng.permutation(dim), dtype=dtype, rng=rng)
    elif name == "affine":
        f = zf.AffineCoupling(dim, (8,), activation="tanh", dtype=dtype, rng=rng)
    elif name == "additive":
        f = zf.AdditiveCoupling(dim, (8,), parity=1, activation="tanh", dtype=dtype, rng=rng)
    elif name == "scaling":
        f = zf.Scaling(dim, dtype, rng)
    elif name == "real_nvp":
        f = zf.real_nvp(dim, 3, (8,), activation="tanh", dtype=dtype, rng=rng)
    elif name == "nice":
        f = zf.nice(dim, 2, (8,), activation="tanh", dtype=dtype, rng=rng)
    elif name == "mixed":
        f = zf.Compose(zf.IAF(dim, (8,), order="reverse", dtype=dtype, rng=rng),
                       zf.AffineCoupling(dim, (8,), activation="tanh", dtype=dtype, rng=rng),
                       zf.Planar(dim, dtype, rng))
    return _perturb(f, rng)


ALL = ["planar", "iaf", "iaf_perm", "affine", "additive", "scaling", "real_nvp", "nice",
       "mixed"]
INVERTIBLE = [n for n in ALL if n not in ("planar", "mixed")]


def jacobian(fun, x):
    """Full Jacobian of ``fun: [D] -> [D]`` with one ``ad.grad`` per output coordinate."""
    return np.stack([ad.grad(lambda v, i=i: fun(v)[i])(x) for i in range(x.shape[-1])])


def points(n=3, dim=D, seed=1):
    return np.random.default_rng(seed).standard_normal((n, dim)) * 1.5


# ----------------------------------------------------------------------------- log-dets

@pytest.mark.parametrize("name", ALL)
def test_log_det_matches_autodiff_jacobian(name):
    f = make(name)
    x = points()
    y, ld = f.forward(x)
    assert y.shape == x.shape and ld.shape == (len(x),)
    for n in range(len(x)):
        sign, logabs = np.linalg.slogdet(jacobian(lambda v: f.forward(v)[0], x[n]))
        assert sign != 0
        np.testing.assert_allclose(ld.data[n], logabs, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", INVERTIBLE)
def test_inverse_log_det_matches_jacobian(name):
    f = make(name)
    y = points(2, seed=3)
    _, ld = f.inverse(y)
    for n in range(len(y)):
        _, logabs = np.linalg.slogdet(jacobian(lambda v: f.inverse(v)[0], y[n]))
        np.testing.assert_allclose(ld.data[n], logabs, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", ALL)
def test_batched_over_leading_axes(name):
    f = make(name)
    x = np.random.default_rng(2).standard_normal((2, 3, D))
    y, ld = f.forward(x)
    assert y.shape == (2, 3, D) and ld.shape == (2, 3)
    y1, ld1 = f.forward(x[1, 2])                  # a single point: log-det of shape ()
    assert ld1.shape == ()
    np.testing.assert_allclose(y1.data, y.data[1, 2], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(ld1.data, ld.data[1, 2], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", INVERTIBLE)
def test_inverse_roundtrip_float64(name):
    f = make(name)
    x = points(5)
    y, ld = f.forward(x)
    x2, ld_inv = f.inverse(y)
    np.testing.assert_allclose(x2.data, x, rtol=0, atol=1e-10)
    np.testing.assert_allclose(ld_inv.data, -ld.data, rtol=0, atol=1e-10)
    y2, _ = f.forward(f.inverse(x)[0])
    np.testing.assert_allclose(y2.data, x, rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", ["planar", "iaf", "affine", "nice"])
def test_float32(name):
    f = make(name, dtype=np.float32)
    x = points().astype(np.float32)
    y, ld = f.forward(x)
    assert y.dtype == np.float32 and ld.dtype == np.float32
    assert all(p.dtype == np.float32 for p in f.parameters())
    if name != "planar":
        np.testing.assert_allclose(f.inverse(y)[0].data, x, atol=1e-4)


# ----------------------------------------------------------------------------- planar

def test_planar_u_hat_keeps_it_invertible():
    rng = np.random.default_rng(5)
    f = zf.Planar(3, F64, rng)
    for _ in range(50):
        w = rng.standard_normal(3) * rng.uniform(0.1, 3)
        u = -w * rng.uniform(0, 5) + rng.standard_normal(3)    # often w.u << -1 (to ~ -100)
        f.w.data, f.u.data = w, u
        u_hat, m = f.u_hat()
        assert np.dot(w, u_hat.data) >= -1 - 1e-12     # = m(w.u) > -1 up to rounding
        np.testing.assert_allclose(np.dot(w, u_hat.data), m.data, rtol=1e-10, atol=1e-12)
        # the determinant 1 + h' w.u_hat stays positive everywhere, even where h' = 1
        x = rng.standard_normal((20, 3)) * 3
        x[0] = -f.b.data * w / np.dot(w, w)
        assert np.all(np.isfinite(f.forward(x)[1].data))
    # the map is injective along w (the only direction it bends): strictly increasing
    t = np.linspace(-10, 10, 2001)[:, None] * w / np.dot(w, w)
    proj = f.forward(t)[0].data @ w
    assert np.all(np.diff(proj) > 0)


def test_planar_inverse_raises():
    with pytest.raises(NotImplementedError, match="Planar.inverse: a planar flow has no "
                                                  "closed-form inverse"):
        zf.Planar(2, rng=0).inverse(np.zeros((3, 2), np.float32))
    with pytest.raises(NotImplementedError, match="Planar.inverse"):
        make("mixed").inverse(points())


# ----------------------------------------------------------------------------- IAF / MADE

@pytest.mark.parametrize("order", [None, "reverse", [2, 0, 3, 1]])
def test_iaf_jacobian_is_triangular_in_made_order(order):
    f = _perturb(zf.IAF(D, (10, 10), order=order, dtype=F64, rng=0), np.random.default_rng(0))
    perm = f.made.order
    for x in points(2):
        J = jacobian(lambda v: f.forward(v)[0], x)[np.ix_(perm, perm)]
        np.testing.assert_array_equal(np.triu(J, 1), 0)
        assert np.all(np.abs(np.diag(J)) > 0)
        assert np.any(np.tril(J, -1) != 0)          # and it is not merely diagonal
    # the MADE outputs of coordinate j see only the coordinates before j
    Jm = jacobian(lambda v: f.made(v)[:D], points(1)[0])[np.ix_(perm, perm)]
    np.testing.assert_array_equal(np.triu(Jm), 0)


def test_made_masks_follow_degrees():
    made = zf.MADE(5, (6, 7), n_heads=3, order="reverse", dtype=F64, rng=0)
    assert made.degrees.tolist() == [5, 4, 3, 2, 1]
    assert made.layers[-1].mask.shape == (7, 15)
    assert made(np.zeros(5)).shape == (15,)
    assert zf.MADE(1, (3,), dtype=F64, rng=0).layers[0].mask.sum() == 0   # dim 1: no inputs


# ----------------------------------------------------------------------------- gradients

@pytest.mark.parametrize("name", ALL)
def test_check_grads_wrt_inputs(name):
    f = make(name)
    x = points(3)
    ad.check_grads(lambda v: f.forward(v)[0], x)
    ad.check_grads(lambda v: f.forward(v)[1], x)
    if name in INVERTIBLE:
        ad.check_grads(lambda v: ad.sum(f.inverse(v)[0], axis=-1) + f.inverse(v)[1], x)


def _get(obj, path):
    for part in path.split("."):
        obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
    return obj


@pytest.mark.parametrize("name,param", [
    ("planar", "u"), ("planar", "w"), ("planar", "b"),
    ("iaf", "made.layers.0.weight"), ("iaf", "made.layers.2.bias"),
    ("affine", "net.layers.0.weight"), ("affine", "scale"),
    ("additive", "net.layers.1.bias"), ("scaling", "log_scale"),
])
def test_check_grads_wrt_parameters(name, param):
    f = make(name)
    x = points(3)
    head, _, last = param.rpartition(".")
    owner = _get(f, head) if head else f
    p0 = getattr(owner, last)
    assert any(p is p0 for p in f.parameters())

    def out(p, which):
        setattr(owner, last, p)
        try:
            return f.forward(x)[which]
        finally:
            setattr(owner, last, p0)

    ad.check_grads(lambda p: out(p, 0), p0.data)
    ad.check_grads(lambda p: out(p, 1), p0.data)


def test_parameters_are_discovered_and_trainable():
    f = zf.real_nvp(2, 2, (4,), dtype=F64, rng=0)
    names = [n for n, _ in f.named_parameters()]
    assert names[:2] == ["flows.0.net.layers.0.weight", "flows.0.net.layers.0.bias"]
    assert "flows.1.scale" in names and len(names) == 2 * 5
    iaf = zf.IAF(3, (5,), rng=0)
    assert [n for n, _ in iaf.named_parameters()] == [
        "made.layers.0.weight", "made.layers.0.bias", "made.layers.1.weight",
        "made.layers.1.bias"]
    # the same seed gives the same flow; another seed another one
    a, b = zf.IAF(3, (5,), rng=3), zf.IAF(3, (5,), rng=3)
    assert all(np.array_equal(p.data, q.data) for p, q in zip(a.parameters(), b.parameters()))
    assert not np.array_equal(zf.Planar(3, rng=1).u.data, zf.Planar(3, rng=2).u.data)


def test_compose_sums_log_dets_and_inverts_in_reverse():
    rng = np.random.default_rng(0)
    a = _perturb(zf.IAF(3, (6,), dtype=F64, rng=rng), rng)
    b = _perturb(zf.AffineCoupling(3, (6,), dtype=F64, rng=rng), rng)
    seq = zf.Sequential([a, b])
    x = points(4, 3)
    y, ld = seq.forward(x)
    ya, lda = a.forward(x)
    yb, ldb = b.forward(ya)
    np.testing.assert_allclose(y.data, yb.data)
    np.testing.assert_allclose(ld.data, lda.data + ldb.data)
    x2, ldi = seq.inverse(y)
    np.testing.assert_allclose(x2.data, x, atol=1e-12)
    np.testing.assert_allclose(ldi.data, -ld.data, atol=1e-12)
    assert len(seq) == 2 and seq[1] is b and len(seq.parameters()) == 4 + 5


def test_compose_with_elementwise_transforms():
    from zsarray.transforms import Affine
    seq = zf.Compose(zf.Scaling(3, F64, rng=0), Affine(1.0, 2.0))
    x = points(4, 3)
    y, ld = seq.forward(x)
    assert ld.shape == (4,)
    np.testing.assert_allclose(ld.data, np.sum(seq[0].log_scale.data) + 3 * np.log(2.0))
    np.testing.assert_allclose(seq.inverse(y)[0].data, x, atol=1e-12)


# ----------------------------------------------------------------------------- FlowDistribution

def _mvn_base(dim, dtype=F64):
    return zd.MultivariateNormalCholesky(np.linspace(-0.5, 0.5, dim).astype(dtype),
                                         np.diag(np.linspace(0.8, 1.3, dim)).astype(dtype))


@pytest.mark.parametrize("name", INVERTIBLE)
def test_flow_distribution_log_prob_of_a_sample(name):
    f = make(name)
    base = _mvn_base(D)
    q = zd.FlowDistribution(base, [f])
    y = q.sample(6, rng=7)
    x0 = base.sample(6, rng=7)
    y_direct, ld = f.forward(x0)
    np.testing.assert_allclose(y.data, y_direct.data, atol=1e-12)
    expected = base.log_prob(x0).data - ld.data
    np.testing.assert_allclose(q.log_prob(y).data, expected, rtol=1e-9, atol=1e-9)


def test_flow_distribution_in_a_bayesian_net():
    import zsarray as zs
    f = make("real_nvp", dim=3)
    mu = np.array([0.1, -0.2, 0.3])
    q_bn = zs.BayesianNet()
    z = q_bn.stochastic("z", zd.FlowDistribution(_mvn_base(3), [f]), n_samples=5)
    assert z.tensor.shape == (5, 3)
    assert q_bn.cond_log_prob("z").shape == (5,)
    # gradients reach the flow parameters through log q(z) of the reparameterized samples
    def neg_entropy(w):
        old = f[0].scale
        f[0].scale = ad.Tensor(w, requires_grad=True) if not isinstance(w, ad.Tensor) else w
        try:
            d = zd.FlowDistribution(zd.MultivariateNormalCholesky(mu, np.eye(3)), [f])
            return ad.mean(d.log_prob(d.sample(4, rng=0)))
        finally:
            f[0].scale = old
    ad.check_grads(neg_entropy, f[0].scale.data)


def test_flow_distribution_issue_example_normal_group_ndims():
    f = make("affine")
    mu, std = np.zeros(D), np.full(D, 0.7)
    q = zd.FlowDistribution(zd.Normal(mu, std=std, group_ndims=1), [f])
    y = q.sample(3, rng=0)
    x0 = zd.Normal(mu, std=std, group_ndims=1).sample(3, rng=0)
    expected = zd.Normal(mu, std=std, group_ndims=1).log_prob(x0).data - f.forward(x0)[1].data
    np.testing.assert_allclose(q.log_prob(y).data, expected, rtol=1e-9)


def test_flow_distribution_planar_scores_its_own_samples():
    f = make("planar")
    base = _mvn_base(D)
    q = zd.FlowDistribution(base, [f])
    y = q.sample(4, rng=0)
    x0 = base.sample(4, rng=0)
    np.testing.assert_allclose(q.log_prob(y).data,
                               base.log_prob(x0).data - f.forward(x0)[1].data, rtol=1e-9)


def _banana(n, rng):
    a = rng.standard_normal(n)
    return np.stack([a, 0.6 * a ** 2 - 1.0 + 0.3 * rng.standard_normal(n)], axis=-1)


def test_fit_banana_by_maximum_likelihood():
    rng = np.random.default_rng(0)
    data = _banana(512, rng)
    flows = zf.real_nvp(2, n_couplings=4, hidden_sizes=(32, 32), dtype=F64, rng=1)
    dist = zd.FlowDistribution(zd.MultivariateNormalCholesky(np.zeros(2), np.eye(2)), [flows])
    opt = zo.Adam(flows.parameters(), lr=1e-2)
    nll = []
    for _ in range(120):
        opt.zero_grad()
        loss = -ad.mean(dist.log_prob(data))
        loss.backward()
        opt.step()
        nll.append(float(loss.data))
    # the best Gaussian's NLL (what any affine flow could reach)
    cov = np.cov(data.T, bias=True)
    gauss = 0.5 * np.linalg.slogdet(2 * np.pi * np.e * cov)[1]
    final = np.mean(nll[-10:])
    assert nll[0] - final > 1.0, (nll[0], final)          # about 2.9 -> 1.55 nats
    assert final < gauss - 0.8, (final, gauss)            # the best Gaussian: about 2.83


# ----------------------------------------------------------------------------- errors

@pytest.mark.parametrize("name", ["planar", "iaf", "affine", "additive", "scaling", "nice"])
def test_dimension_mismatch_names_expected_and_given(name):
    f = make(name)
    cls = type(f).__name__
    with pytest.raises(ValueError, match=rf"{cls}.forward: x has shape \(2, 5\), expected "
                                         rf"\[\.\.\., {D}\]"):
        f.forward(np.zeros((2, D + 1)))
    if name != "planar":
        with pytest.raises(ValueError, match=rf"{cls}.inverse: y has shape \(\), expected"):
            f.inverse(np.float64(1.0))


def test_constructor_errors():
    with pytest.raises(ValueError, match="Sequential: flows\\[1\\] \\(Planar\\) has dim 3 but "
                                         "flows\\[0\\] has dim 2"):
        zf.Sequential(zf.Planar(2, rng=0), zf.Planar(3, rng=0))
    with pytest.raises(TypeError, match="flows\\[0\\] \\(int\\) must have forward"):
        zf.Sequential(3)
    with pytest.raises(ValueError, match="at least one flow"):
        zf.Sequential()
    with pytest.raises(ValueError, match="AffineCoupling: dim must be an integer >= 2, got 1"):
        zf.AffineCoupling(1, rng=0)
    with pytest.raises(ValueError, match="mask must be a 0/1 vector of shape \\(3,\\)"):
        zf.AdditiveCoupling(3, mask=[1, 0], rng=0)
    with pytest.raises(ValueError, match="must keep some coordinates"):
        zf.AffineCoupling(3, mask=[1, 1, 1], rng=0)
    with pytest.raises(ValueError, match="order must be a permutation of range\\(3\\)"):
        zf.IAF(3, order=[0, 0, 1], rng=0)
    with pytest.raises(ValueError, match="order must be None, 'reverse'"):
        zf.IAF(3, order="random", rng=0)
    with pytest.raises(ValueError, match="dtype must be float32 or float64"):
        zf.Planar(3, dtype=np.int32, rng=0)
    with pytest.raises(ValueError, match="hidden_sizes"):
        zf.MADE(3, (), rng=0)
    with pytest.raises(TypeError, match="rng"):
        zf.Planar(3, rng="seed")


def test_flow_distribution_needs_grouped_event_axis():
    """A vector flow on an ungrouped elementwise base cannot align its log-det."""
    base = zd.Normal(np.zeros((5, 2)), std=1.0)       # group_ndims=0
    dist = zd.FlowDistribution(base, [zf.AffineCoupling(2, [8], rng=0, dtype=np.float64)])
    with pytest.raises(ValueError, match="needs group_ndims >= 1"):
        dist.sample(rng=0)
