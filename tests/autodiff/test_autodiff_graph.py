"""Memory of the tape, deep graphs, compositions, numerical stability, the extension
API (a Numba ``@vectorize`` op), the checker itself, and hypothesis properties."""
import gc
import weakref

import numpy as np
import pytest
import scipy.special as ss
import scipy.stats as st
from hypothesis import given, settings, strategies as hst
from hypothesis.extra import numpy as hnp

import autodiff as ad


def leaf(x):
    return ad.tensor(np.asarray(x, dtype=float), requires_grad=True)


# ----------------------------------------------------------------------------- memory

def test_large_intermediate_is_freed_by_backward():
    x = leaf(np.full(10 ** 6, 0.5))
    y = ad.exp(x)                          # 8 MB intermediate
    z = ad.sum(ad.sin(y) * 2.0)
    ref_t, ref_a = weakref.ref(y), weakref.ref(y.data)
    del y
    gc.collect()
    assert ref_t() is not None             # still needed: the tape holds it
    z.backward()
    assert ref_t() is None and ref_a() is None
    np.testing.assert_allclose(x.grad[:3], 2 * np.cos(np.exp(0.5)) * np.exp(0.5))
    # a second pass through the freed graph is refused
    with pytest.raises(RuntimeError, match="already freed"):
        z.backward()


def test_intermediates_inside_grad_are_freed():
    refs = []

    def f(x):
        y = ad.tanh(x * 3.0)
        refs.append((weakref.ref(y), weakref.ref(y.data)))
        return ad.sum(y * y)

    g = ad.grad(f)(np.ones(10 ** 5))
    assert g.shape == (10 ** 5,)
    assert all(r() is None for pair in refs for r in pair)


def test_second_backward_through_a_shared_freed_part_raises():
    x = leaf([1.0, 2.0])
    y = ad.exp(x)
    a, b = ad.sum(y), ad.sum(y * 2.0)
    a.backward()
    with pytest.raises(RuntimeError, match="recompute the forward pass"):
        b.backward()
    # recomputing works, and the leaf keeps accumulating
    ad.sum(ad.exp(x)).backward()
    np.testing.assert_allclose(x.grad, 2 * np.exp(x.data))


def _spy(name, log):
    """An identity primitive that records weak references to the cotangents it sees."""
    op = ad.primitive(lambda x: x + 0.0, name=name, nargs=1)

    def rule(ans, x):
        def vjp(g):
            log.append((name, weakref.ref(g), [r() is None for _, r, _ in log]))
            return g * 1.0                      # a new array each time
        return vjp
    ad.defvjp(op, rule)
    return op


def test_cotangents_are_freed_as_soon_as_used():
    log = []
    a, b, c = (_spy(f"spy_{k}", log) for k in "abc")
    x = leaf(np.ones(1000))
    ad.sum(a(b(c(ad.exp(x))))).backward()
    assert [name for name, _, _ in log] == ["spy_a", "spy_b", "spy_c"]
    # when spy_c's VJP runs, the cotangent spy_a received is already gone
    assert log[2][2][0] is True
    # and after backward no cotangent survives
    assert all(r() is None for _, r, _ in log)


def test_freed_graph_is_detected_before_any_leaf_is_touched():
    x = leaf([1.0, 2.0])
    y = ad.exp(x)
    ad.sum(y).backward()
    x.grad = None
    b = ad.sum(y) + ad.sum(x * 3.0)
    with pytest.raises(RuntimeError, match="already freed"):
        b.backward()
    assert x.grad is None


# ----------------------------------------------------------------------------- deep graphs

def _bptt(W, xs, h0):
    """Hand-written reverse mode of h <- tanh(W h + x_t), loss = sum(h_T)."""
    hs = [h0]
    for x in xs:
        hs.append(np.tanh(W @ hs[-1] + x))
    gW, gh, gx = np.zeros_like(W), np.ones_like(h0), np.zeros_like(xs)
    for t in range(len(xs) - 1, -1, -1):
        gpre = gh * (1 - hs[t + 1] ** 2)
        gW += np.outer(gpre, hs[t])
        gx[t] = gpre
        gh = W.T @ gpre
    return hs[-1].sum(), gW, gx, gh


@pytest.mark.parametrize("steps", [500, 5000])
def test_long_recurrence(steps):
    rng = np.random.default_rng(steps)
    d = 4
    W = 0.5 * rng.standard_normal((d, d)) / np.sqrt(d)
    xs = 0.3 * rng.standard_normal((steps, d))
    h0 = rng.standard_normal(d)

    def loss(W, xs, h0):
        h = h0
        for t in range(steps):
            h = ad.tanh(W @ h + xs[t])
        return ad.sum(h)

    val, (gW, gx, gh) = ad.value_and_grad(loss, argnums=(0, 1, 2))(W, xs, h0)
    rv, rW, rx, rh = _bptt(W, xs, h0)
    np.testing.assert_allclose(val, rv, rtol=1e-12)
    np.testing.assert_allclose(gW, rW, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(gx, rx, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(gh, rh, rtol=1e-10, atol=1e-14)


def test_deep_graph_dropped_without_backward():
    x = leaf([0.1])
    h = x
    for _ in range(20000):
        h = h * 1.0
    del h                       # deallocating a 20000-deep chain must not overflow
    h = x
    for _ in range(20000):
        h = ad.sin(h)
    h.backward(np.ones(1))
    assert np.isfinite(x.grad).all()


# ----------------------------------------------------------------------------- compositions

def test_mlp_softmax_cross_entropy_matches_hand_derivation():
    rng = np.random.default_rng(0)
    n, d, hdim, k = 8, 5, 6, 3
    X = rng.standard_normal((n, d))
    y = rng.integers(0, k, n)
    y[:3] = 1                                      # repeated labels
    params = [rng.standard_normal((d, hdim)), rng.standard_normal(hdim),
              rng.standard_normal((hdim, k)), rng.standard_normal(k)]

    def loss_index(W1, b1, W2, b2):
        logp = ad.log_softmax(ad.tanh(X @ W1 + b1) @ W2 + b2, axis=-1)
        return -ad.mean(logp[np.arange(n), y])

    def loss_take(W1, b1, W2, b2):
        logp = ad.log_softmax(ad.matmul(ad.tanh(ad.dot(X, W1) + b1), W2) + b2)
        return -ad.sum(ad.take(ad.reshape(logp, -1), np.arange(n) * k + y)) / n

    # hand-derived gradients
    W1, b1, W2, b2 = params
    h = np.tanh(X @ W1 + b1)
    logits = h @ W2 + b2
    p = ss.softmax(logits, axis=-1)
    dlogits = (p - np.eye(k)[y]) / n
    dh = dlogits @ W2.T * (1 - h ** 2)
    expected = [X.T @ dh, dh.sum(0), h.T @ dlogits, dlogits.sum(0)]
    ref_loss = -np.mean(ss.log_softmax(logits, axis=-1)[np.arange(n), y])
    for loss in (loss_index, loss_take):
        val, grads = ad.value_and_grad(loss, argnums=(0, 1, 2, 3))(*params)
        np.testing.assert_allclose(val, ref_loss, rtol=1e-12)
        for g, e in zip(grads, expected):
            np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-14)
    ad.check_grads(loss_index, *params)


def _mvn_logpdf(z, mu, cov_raw):
    """Batched log N(z[c] | mu, cov) over chains, through cholesky and solve_triangular."""
    cov = 0.5 * (cov_raw + ad.transpose(cov_raw))
    L = ad.cholesky(cov)
    r = ad.solve_triangular(L, ad.transpose(z - mu), lower=True)       # [dim, chains]
    d = z.shape[-1]
    return (-0.5 * ad.sum(r * r, axis=0) - ad.sum(ad.log(ad.diagonal(L)))
            - 0.5 * d * np.log(2 * np.pi))


def test_batched_log_density_gradient_is_per_chain():
    rng = np.random.default_rng(1)
    chains, dim = 6, 3
    A = rng.standard_normal((dim, dim))
    cov = A @ A.T + dim * np.eye(dim)
    mu = rng.standard_normal(dim)
    z = rng.standard_normal((chains, dim))
    lp = _mvn_logpdf(z, mu, cov)
    np.testing.assert_allclose(lp.data, st.multivariate_normal(mu, cov).logpdf(z), rtol=1e-12)

    g = ad.grad(lambda z: ad.sum(_mvn_logpdf(z, mu, cov)))(z)
    per_chain = np.stack([ad.grad(lambda zc: ad.sum(_mvn_logpdf(zc[None], mu, cov)))(z[c])
                          for c in range(chains)])
    np.testing.assert_allclose(g, per_chain, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(g, -(z - mu) @ np.linalg.inv(cov), rtol=1e-10)
    # and w.r.t. the covariance itself (through the Cholesky VJP)
    g_cov = ad.grad(lambda c: ad.sum(_mvn_logpdf(z, mu, c)))(cov)
    ci = np.linalg.inv(cov)
    diff = z - mu
    expected = 0.5 * sum(ci @ np.outer(r, r) @ ci - ci for r in diff)
    np.testing.assert_allclose(g_cov, expected, rtol=1e-9, atol=1e-12)
    ad.check_grads(_mvn_logpdf, z, mu, cov)


def test_embedding_lookup_with_repeated_indices():
    rng = np.random.default_rng(2)
    E = rng.standard_normal((5, 3))
    idx = np.array([0, 2, 0, 0, 4, 2])
    w = rng.standard_normal((6, 3))
    for lookup in (lambda E: E[idx], lambda E: ad.take(E, idx, axis=0),
                   lambda E: ad.einsum("ij,jk->ik", np.eye(5)[idx], E)):
        g = ad.grad(lambda E: ad.sum(lookup(E) * w))(E)
        expected = np.zeros_like(E)
        np.add.at(expected, idx, w)
        np.testing.assert_allclose(g, expected, rtol=1e-14)


# ----------------------------------------------------------------------------- stability

BIG = np.array([-1e4, -800.0, -50.0, -1.0, 0.0, 1.0, 50.0, 800.0, 1e4])


def _softplus_ref(x):
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_stable_elementwise_for_large_inputs(dtype):
    x = BIG.astype(dtype)
    rtol = 1e-12 if dtype == np.float64 else 1e-6
    cases = [
        (ad.softplus, _softplus_ref(BIG), ss.expit(BIG)),
        (ad.log_sigmoid, -_softplus_ref(-BIG), ss.expit(-BIG)),
        (ad.sigmoid, ss.expit(BIG), ss.expit(BIG) * ss.expit(-BIG)),
    ]
    for fn, value, deriv in cases:
        out = fn(x)
        assert out.dtype == dtype and np.isfinite(out.data).all(), fn.__name__
        np.testing.assert_allclose(out.data, value, rtol=rtol, atol=1e-30, err_msg=fn.__name__)
        g = ad.grad(lambda t: ad.sum(fn(t)))(x)
        assert g.dtype == dtype and np.isfinite(g).all()
        np.testing.assert_allclose(g, deriv, rtol=rtol, atol=1e-30, err_msg=fn.__name__)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_stable_reductions_for_large_inputs(dtype):
    X = np.array([[1e4, 1e4 - 1.0, -1e4, 0.0], [-1e4, -1e4 + 2.0, -1e4, -1e4 + 1.0]])
    x = X.astype(dtype)
    rtol = 1e-12 if dtype == np.float64 else 1e-6
    lse = ss.logsumexp(X, axis=1)
    sm = ss.softmax(X, axis=1)
    out = ad.logsumexp(x, axis=1)
    assert out.dtype == dtype
    np.testing.assert_allclose(out.data, lse, rtol=rtol)
    np.testing.assert_allclose(ad.grad(lambda t: ad.sum(ad.logsumexp(t, axis=1)))(x), sm,
                               rtol=rtol, atol=1e-30)
    np.testing.assert_allclose(ad.softmax(x).data, sm, rtol=rtol, atol=1e-30)
    np.testing.assert_allclose(ad.log_softmax(x).data, ss.log_softmax(X, axis=1), rtol=rtol)
    v = np.array([[1.0, -2.0, 3.0, 0.5], [0.0, 1.0, -1.0, 2.0]])
    g_ls = ad.grad(lambda t: ad.sum(ad.log_softmax(t) * v))(x)
    np.testing.assert_allclose(g_ls, v - sm * v.sum(1, keepdims=True), rtol=rtol, atol=1e-6)
    g_sm = ad.grad(lambda t: ad.sum(ad.softmax(t) * v))(x)
    np.testing.assert_allclose(g_sm, sm * (v - (sm * v).sum(1, keepdims=True)),
                               rtol=rtol, atol=1e-6)
    for g in (g_ls, g_sm):
        assert g.dtype == dtype and np.isfinite(g).all()
    # logsumexp of -inf rows and +inf entries
    with np.errstate(divide="ignore"):
        assert ad.logsumexp(np.array([-np.inf, -np.inf])).data == -np.inf
    assert ad.logsumexp(np.array([np.inf, 0.0])).data == np.inf


# ----------------------------------------------------------------------------- extension API

def test_numba_vectorize_op_via_primitive_and_defvjp():
    numba = pytest.importorskip("numba")

    @numba.vectorize(["float64(float64)", "float32(float32)"])
    def softsign_kernel(x):
        return x / (1.0 + abs(x))

    @numba.vectorize(["float64(float64)", "float32(float32)"])
    def softsign_deriv(x):
        return 1.0 / (1.0 + abs(x)) ** 2

    softsign = ad.primitive(softsign_kernel, name="softsign")
    ad.defvjp(softsign, lambda ans, x: lambda g: g * softsign_deriv(x))

    x = np.array([-3.0, -0.5, 0.25, 2.0])
    np.testing.assert_allclose(softsign(x).data, x / (1 + np.abs(x)))
    ad.check_grads(softsign, x)
    ad.check_grads(lambda x, w: ad.sum(softsign(x @ w), axis=0),
                   np.random.default_rng(0).standard_normal((3, 2)), np.ones((2, 4)))
    g = ad.grad(lambda t: ad.sum(softsign(t)))(x.astype(np.float32))
    assert g.dtype == np.float32
    np.testing.assert_allclose(g, 1 / (1 + np.abs(x)) ** 2, rtol=1e-6)


# ----------------------------------------------------------------------------- the checker

def test_check_grads_passes_correct_and_catches_wrong_rules():
    a, n = ad.check_grads(lambda x, y: ad.sin(x) * y, np.ones(3), np.arange(3.0))
    assert abs(a - n) < 1e-6

    wrong_sin = ad.primitive(np.sin, name="wrong_sin", nargs=1)
    ad.defvjp(wrong_sin, lambda ans, x: lambda g: g * np.sin(x))         # should be cos
    scaled = ad.primitive(np.exp, name="slightly_wrong_exp", nargs=1)
    ad.defvjp(scaled, lambda ans, x: lambda g: g * ans * 1.001)
    untransposed = ad.primitive(np.transpose, name="untransposed")
    ad.defvjp(untransposed, lambda ans, x: lambda g: g)                # shape-correct, wrong
    wrong_second = ad.primitive(np.multiply, name="wrong_second_arg", nargs=2)
    ad.defvjp(wrong_second, lambda ans, x, y: lambda g: g * y, lambda ans, x, y: lambda g: g * y)

    rng = np.random.default_rng(3)
    for fn, args in [(wrong_sin, [rng.standard_normal(4)]), (scaled, [rng.standard_normal(4)]),
                     (untransposed, [rng.standard_normal((3, 3))]),
                     (wrong_second, [rng.standard_normal(3), rng.standard_normal(3)])]:
        with pytest.raises(AssertionError, match="differs from finite differences"):
            ad.check_grads(fn, *args)


def test_check_grads_accepts_int_args_and_returns_numbers():
    a, n = ad.check_grads(lambda x: ad.sum(ad.square(x)), np.arange(3))
    assert isinstance(a, float) and isinstance(n, float)


# ----------------------------------------------------------------------------- hypothesis

BINOPS = {"add": ad.add, "subtract": ad.subtract, "multiply": ad.multiply,
          "divide": ad.divide, "maximum": ad.maximum, "power": ad.power,
          "where": lambda x, y: ad.where(np.asarray(x.data if isinstance(x, ad.Tensor) else x)
                                         > 0, x, y)}


@settings(max_examples=40, deadline=None, derandomize=True)
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3,
                                                max_side=3),
       op=hst.sampled_from(sorted(BINOPS)), seed=hst.integers(0, 2 ** 16))
def test_broadcasting_binary_ops_property(shapes, op, seed):
    rng = np.random.default_rng(seed)
    sx, sy = shapes.input_shapes
    x = rng.uniform(0.5, 2.0, sx)                 # positive: valid for power and divide
    y = rng.uniform(0.5, 2.0, sy) + (0.25 if op == "maximum" else 0.0)
    if op == "maximum":                           # keep away from ties
        x = np.round(x * 2) / 2
        y = np.round(y * 2) / 2 + 0.25
    fn = BINOPS[op]
    out = fn(x, y)
    assert out.shape == shapes.result_shape
    v = rng.standard_normal(out.shape)
    gx, gy = ad.grad(lambda a, b: ad.sum(fn(a, b) * v), argnums=(0, 1))(x, y)
    assert gx.shape == np.shape(x) and gy.shape == np.shape(y)
    ad.check_grads(fn, x, y, rng=seed)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(shape=hnp.array_shapes(min_dims=1, max_dims=4, max_side=3),
       data=hst.data())
def test_reductions_axis_keepdims_property(shape, data):
    ndim = len(shape)
    axis = data.draw(hst.one_of(
        hst.none(), hst.integers(-ndim, ndim - 1),
        hst.lists(hst.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True).map(tuple)))
    keepdims = data.draw(hst.booleans())
    x = np.random.default_rng(ndim).standard_normal(shape)
    for name in ("sum", "mean", "logsumexp", "prod"):
        fn = getattr(ad, name)
        ref = {"sum": np.sum, "mean": np.mean, "prod": np.prod, "logsumexp": ss.logsumexp}[name]
        out = fn(x, axis=axis, keepdims=keepdims)
        np.testing.assert_allclose(out.data, ref(x, axis=axis, keepdims=keepdims), rtol=1e-12)
        ad.check_grads(lambda t: fn(t, axis=axis, keepdims=keepdims), x)


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-14), (np.float32, 2e-6)])
def test_vectorized_softplus_family_on_large_arrays(dtype, rtol):
    """Large arrays through the logistic kernels: same values and gradients."""
    from scipy.special import expit
    x = np.linspace(-700 if dtype == np.float64 else -80, 700 if dtype == np.float64 else 80,
                    10001).astype(dtype)
    ref = np.logaddexp(0, x.astype(np.float64))
    np.testing.assert_allclose(ad.softplus(x).data, ref, rtol=rtol, atol=1e-300)
    np.testing.assert_allclose(ad.log_sigmoid(x).data, -np.logaddexp(0, -x.astype(np.float64)),
                               rtol=rtol, atol=1e-300)
    np.testing.assert_allclose(ad.sigmoid(x).data, expit(x.astype(np.float64)), rtol=rtol,
                               atol=1e-300 if dtype == np.float64 else 1e-38)
    for f in (ad.softplus, ad.log_sigmoid, ad.sigmoid):
        assert f(x).dtype == dtype
    g = ad.grad(lambda t: ad.sum(ad.softplus(t)))(x)
    np.testing.assert_allclose(g, expit(x.astype(np.float64)), rtol=10 * rtol, atol=1e-300)
    assert g.dtype == dtype


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape, n", [((40, 3), 500), ((7, 2, 3), 64), ((300, 5), 100)])
def test_scatter_add_rows_matches_add_at(dtype, shape, n):
    """The sort-and-reduceat path for 1-D integer row indices equals np.add.at, with
    repeated and negative indices and a non-zero target."""
    from autodiff import backend
    rng = np.random.default_rng(n)
    idx = rng.integers(-shape[0], shape[0], n)
    vals = rng.normal(size=(n,) + shape[1:]).astype(dtype)
    base = rng.normal(size=shape).astype(dtype)
    want = base.copy()
    np.add.at(want, idx, vals)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    got = backend.scatter_add(base.copy(), idx, vals)       # summed in another order
    np.testing.assert_allclose(got, want, **tol)
    got = backend.scatter_add(base.copy(), idx, vals[:1])      # broadcast values
    want = base.copy()
    np.add.at(want, idx, vals[:1])
    np.testing.assert_allclose(got, want, **tol)
