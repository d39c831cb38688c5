"""autodiff.conv: convolutions, pools, padding and dropout beyond the op table.

The op table (``test_autodiff_ops.CASES``) checks a fixed set of cases against the
direct-loop references of ``conv_ref`` with full central differences, float32, and
compiled. Here: random configurations (hypothesis) in float64 and float32 against the
references, the adjoint identity of ``conv_transpose2d``, gradient checks for every
input, ties in max pooling, error messages, dropout, and small conv nets through
``autodiff.trace`` and ``autodiff.compile`` against the tape.
"""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import autodiff as ad
from autodiff import CompileWarning, TraceWarning

from . import conv_ref as ref


@st.composite
def conv_config(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cg = draw(st.integers(1, 3))
    og = draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    d = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    p = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    h = draw(st.integers(max(1, d[0] * (kh - 1) + 1 - 2 * p[0]), 12))
    w = draw(st.integers(max(1, d[1] * (kw - 1) + 1 - 2 * p[1]), 12))
    n = draw(st.integers(1, 3))
    bias = draw(st.booleans())
    return dict(x=(n, cg * groups, h, w), w=(og * groups, cg, kh, kw), bias=bias,
                stride=s, padding=p, dilation=d, groups=groups)


def _arrays(cfg, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(cfg["x"]).astype(dtype)
    w = rng.standard_normal(cfg["w"]).astype(dtype)
    b = rng.standard_normal(cfg["w"][0]).astype(dtype) if cfg["bias"] else None
    return x, w, b


def _kw(cfg):
    return {k: cfg[k] for k in ("stride", "padding", "dilation", "groups")}


@settings(max_examples=40, deadline=None)
@given(conv_config())
def test_conv2d_matches_the_loop_reference(cfg):
    x, w, b = _arrays(cfg, np.float64)
    want = ref.conv2d(x, w, b, **_kw(cfg))
    got = ad.conv2d(x, w, b, **_kw(cfg))
    assert got.shape == want.shape and got.dtype == np.float64
    np.testing.assert_allclose(got.data, want, rtol=1e-12, atol=1e-12)
    x32, w32, b32 = _arrays(cfg, np.float32)
    got32 = ad.conv2d(x32, w32, b32, **_kw(cfg))
    assert got32.dtype == np.float32
    np.testing.assert_allclose(got32.data, ref.conv2d(
        *(a.astype(np.float64) if a is not None else None for a in (x32, w32, b32)),
        **_kw(cfg)), rtol=1e-4, atol=1e-4)


@settings(max_examples=25, deadline=None)
@given(conv_config())
def test_conv2d_gradients_by_finite_differences(cfg):
    x, w, b = _arrays(cfg, np.float64, seed=1)
    kw = _kw(cfg)
    if b is None:
        ad.check_grads(lambda x, w: ad.conv2d(x, w, **kw), x, w)
    else:
        ad.check_grads(lambda x, w, b: ad.conv2d(x, w, b, **kw), x, w, b)


@settings(max_examples=30, deadline=None)
@given(conv_config(), st.data())
def test_conv_transpose2d_is_the_adjoint_of_conv2d(cfg, data):
    """<conv2d(a, w), y> == <a, conv_transpose2d(y, w)> for every a, y, with the
    output_padding that gives back a's size; and it matches the loop reference."""
    a, w, _ = _arrays(cfg, np.float64, seed=2)
    kw = _kw(cfg)
    y = np.random.default_rng(3).standard_normal(ad.conv2d(a, w, **kw).shape)
    # the output_padding that recovers a's size
    op = []
    for ax in (0, 1):
        size = (y.shape[2 + ax] - 1) * kw["stride"][ax] - 2 * kw["padding"][ax] + \
            kw["dilation"][ax] * (w.shape[2 + ax] - 1) + 1
        op.append(a.shape[2 + ax] - size)
    if max(op) >= max(max(kw["stride"]), max(kw["dilation"])) or min(op) < 0 or any(
            o >= max(s, d) for o, s, d in zip(op, kw["stride"], kw["dilation"])):
        return                  # (sizes that no output_padding reaches)
    t = ad.conv_transpose2d(y, w, output_padding=tuple(op), **kw)
    assert t.shape == a.shape
    lhs = float(np.sum(ad.conv2d(a, w, **kw).data * y))
    rhs = float(np.sum(a * t.data))
    assert lhs == pytest.approx(rhs, rel=1e-10, abs=1e-10)
    np.testing.assert_allclose(t.data, ref.conv_transpose2d(y, w, output_padding=tuple(op),
                                                            **kw), rtol=1e-12, atol=1e-12)
    bias = np.random.default_rng(4).standard_normal(t.shape[1])
    ad.check_grads(lambda y, w, b: ad.conv_transpose2d(y, w, b, output_padding=tuple(op),
                                                       **kw), y, w, bias)


def test_conv_transpose2d_output_padding_picks_the_size():
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 3, 4, 5)), rng.standard_normal((3, 2, 3, 3))
    for op in [(0, 0), (1, 0), (0, 1), (1, 1)]:
        y = ad.conv_transpose2d(x, w, stride=2, padding=1, output_padding=op)
        assert y.shape == (2, 2, 7 + op[0], 9 + op[1])
        np.testing.assert_allclose(y.data, ref.conv_transpose2d(x, w, stride=2, padding=1,
                                                                 output_padding=op),
                                   rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gradients_keep_the_dtype(dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 9, 8)).astype(dtype)
    w = rng.standard_normal((4, 3, 3, 3)).astype(dtype)
    b = rng.standard_normal(4).astype(dtype)

    def f(x, w, b):
        h = ad.max_pool2d(ad.relu(ad.conv2d(x, w, b, padding=1)), 2)
        h = ad.avg_pool2d(ad.pad(h, ((0, 0), (0, 0), (1, 1), (1, 1)), "reflect"), 3, 1)
        return ad.sum(ad.conv_transpose2d(h, w, stride=2) ** 2)
    v, grads = ad.value_and_grad(f, argnums=(0, 1, 2))(x, w, b)
    assert v.dtype == dtype
    for g, a in zip(grads, (x, w, b)):
        assert g.dtype == dtype and g.shape == a.shape
    if dtype == np.float32:      # float32 gradients equal float64 ones to float32 accuracy
        _, g64 = ad.value_and_grad(f, argnums=(0, 1, 2))(
            *(a.astype(np.float64) for a in (x, w, b)))
        for a, b64 in zip(grads, g64):
            np.testing.assert_allclose(a, b64, rtol=1e-3, atol=1e-3 * np.abs(b64).max())


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 3), st.integers(1, 3),
       st.integers(0, 2), st.integers(0, 2), st.integers(1, 2), st.integers(5, 10),
       st.integers(5, 10), st.booleans())
def test_pools_match_the_loop_reference(kh, kw, sh, sw, ph, pw, dil, h, w, use_avg):
    ph, pw = min(ph, kh // 2), min(pw, kw // 2)
    if h + 2 * ph < dil * (kh - 1) + 1 or w + 2 * pw < dil * (kw - 1) + 1:
        return
    rng = np.random.default_rng(kh * 7 + kw)
    # distinct values on a grid: no ties, kinks far from the finite-difference steps
    x = (rng.permutation(2 * 3 * h * w) * 0.5).reshape(2, 3, h, w)
    if use_avg:
        args = ((kh, kw), (sh, sw), (ph, pw))
        want, fn = ref.avg_pool2d(x, *args), ad.avg_pool2d
    else:
        args = ((kh, kw), (sh, sw), (ph, pw), dil)
        want, fn = ref.max_pool2d(x, *args), ad.max_pool2d
    got = fn(x, *args)
    np.testing.assert_allclose(got.data, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fn(x.astype(np.float32), *args).data, want, rtol=1e-6)
    ad.check_grads(lambda x: fn(x, *args), x, eps=1e-4)


def test_max_pool_ties_send_the_gradient_to_the_first_maximum():
    x = np.array([[[[1.0, 3.0, 3.0, 0.0],
                    [3.0, 2.0, 0.0, 3.0]]]])
    g = ad.grad(lambda x: ad.sum(ad.max_pool2d(x, 2)))(x)
    np.testing.assert_array_equal(g, [[[[0, 1, 1, 0], [0, 0, 0, 0]]]])
    # overlapping windows: an element that is the max of two windows gets both
    g = ad.grad(lambda x: ad.sum(ad.max_pool2d(x, (1, 2), 1)))(np.array([[[[0.0, 5.0, 1.0]]]]))
    np.testing.assert_array_equal(g, [[[[0, 2, 0]]]])


def test_pad_edge_gradient_accumulates_into_the_border():
    x = np.arange(3.0)
    g = ad.grad(lambda x: ad.sum(ad.pad(x, (2, 1), "edge")))(x)
    np.testing.assert_array_equal(g, [3.0, 1.0, 2.0])
    g = ad.grad(lambda x: ad.sum(ad.pad(x, (2, 0), "reflect") * np.arange(5.0)))(x)
    # reflect of [a, b, c] by 2 on the left: [c, b, a, b, c]
    np.testing.assert_array_equal(g, [2.0, 1.0 + 3.0, 0.0 + 4.0])


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("call, match", [
    (lambda: ad.conv2d(np.zeros((3, 5, 5)), np.zeros((2, 3, 3, 3))), r"x must be 4-D"),
    (lambda: ad.conv2d(np.zeros((1, 3, 5, 5)), np.zeros((2, 3, 3))), r"w must be 4-D"),
    (lambda: ad.conv2d(np.zeros((1, 4, 5, 5)), np.zeros((2, 3, 3, 3))),
     r"x has 4 channels .* expects 3"),
    (lambda: ad.conv2d(np.zeros((1, 4, 5, 5)), np.zeros((3, 2, 3, 3)), groups=2),
     r"3 output channels .* not divisible by groups=2"),
    (lambda: ad.conv2d(np.zeros((1, 4, 5, 5)), np.zeros((4, 4, 3, 3)), groups=2),
     r"x has 4 channels .* groups=2 expects 8"),
    (lambda: ad.conv2d(np.zeros((1, 3, 4, 5)), np.zeros((2, 3, 5, 3))),
     r"kernel \(extent 5 along H.* larger than the padded input \(4 \+ 2 \* 0 = 4\)"),
    (lambda: ad.conv2d(np.zeros((1, 3, 5, 5)), np.zeros((2, 3, 3, 3)), dilation=3),
     r"extent 7 along H"),
    (lambda: ad.conv2d(np.zeros((1, 3, 5, 5)), np.zeros((2, 3, 3, 3)), stride=0),
     r"stride must be an int >= 1"),
    (lambda: ad.conv2d(np.zeros((1, 3, 5, 5)), np.zeros((2, 3, 3, 3)), padding=(1, -1)),
     r"padding must be an int >= 0"),
    (lambda: ad.conv2d(np.zeros((1, 3, 5, 5)), np.zeros((2, 3, 3, 3)), groups=0),
     r"groups must be a positive int"),
    (lambda: ad.conv2d(np.zeros((1, 3, 5, 5)), np.zeros((2, 3, 3, 3)), np.zeros(3)),
     r"bias must have shape \(2,\)"),
    (lambda: ad.conv_transpose2d(np.zeros((1, 3, 5, 5)), np.zeros((2, 3, 3, 3))),
     r"x has 3 channels .* expects 2"),
    (lambda: ad.conv_transpose2d(np.zeros((1, 2, 5, 5)), np.zeros((2, 3, 3, 3)),
                                 output_padding=1), r"output_padding along H must be smaller"),
    (lambda: ad.max_pool2d(np.zeros((1, 3, 5, 5)), 2, padding=2),
     r"padding along H must be at most half the kernel"),
    (lambda: ad.max_pool2d(np.zeros((1, 3, 2, 5)), 3), r"larger than the padded input"),
    (lambda: ad.avg_pool2d(np.zeros((3, 5, 5)), 2), r"x must be 4-D"),
    (lambda: ad.pad(np.zeros((2, 3)), ((1, 1), (1, 1), (1, 1))), r"does not fit an array"),
    (lambda: ad.pad(np.zeros((2, 3)), -1), r"non-negative"),
    (lambda: ad.pad(np.zeros((2, 3)), 1, "mirror"), r"mode must be one of"),
    (lambda: ad.dropout(np.zeros(3), 1.0, np.random.default_rng(0)), r"p must be in \[0, 1\)"),
    (lambda: ad.dropout(np.zeros(3), 0.5, 0), r"rng must be a numpy.random.Generator"),
])
def test_bad_arguments_give_clear_errors(call, match):
    with pytest.raises(ValueError if "rng must" not in match else TypeError, match=match):
        call()


# ----------------------------------------------------------------------------- dropout
def test_dropout_mask_scale_and_gradient():
    x = np.ones((200, 300))
    out = ad.dropout(x, 0.3, np.random.default_rng(5))
    kept = out.data != 0
    np.testing.assert_allclose(out.data[kept], 1 / 0.7)
    # fraction kept: binomial with sd sqrt(p (1 - p) / n) ~ 0.0026; 5 sd
    assert abs(kept.mean() - 0.7) < 5 * np.sqrt(0.21 / x.size)
    # the same generator state gives the same mask; the gradient is the mask
    g = ad.grad(lambda x: ad.sum(ad.dropout(x, 0.3, np.random.default_rng(5))))(x)
    np.testing.assert_array_equal(g, out.data)
    assert ad.dropout(x.astype(np.float32), 0.3, np.random.default_rng(5)).dtype == np.float32
    # evaluation and p = 0 leave x unchanged
    np.testing.assert_array_equal(ad.dropout(x, 0.3, None, training=False).data, x)
    np.testing.assert_array_equal(ad.dropout(x, 0.0, None).data, x)


@pytest.mark.parametrize("make", [ad.trace, ad.compile])
def test_dropout_draws_a_new_mask_at_every_traced_call(make):
    w = ad.tensor(np.linspace(-1, 1, 12).reshape(3, 4), requires_grad=True)
    rng_a, rng_b = np.random.default_rng(9), np.random.default_rng(9)

    def f(x, rng):
        return ad.sum(ad.dropout(x @ w, 0.5, rng) ** 2)
    x = np.ones((5, 3))
    step = make(lambda x: f(x, rng_a), params=[w])
    for _ in range(4):
        v = step.backward(x)
        g = w.grad.copy()
        w.grad = None
        tv, tg = ad.value_and_grad(lambda w_: ad.sum(ad.dropout(x @ w_, 0.5, rng_b) ** 2))(w)
        np.testing.assert_allclose(float(np.asarray(v)), float(tv), rtol=1e-12)
        np.testing.assert_allclose(g, tg, rtol=1e-12)


# ----------------------------------------------------------------------------- recording
def _net(dtype):
    rng = np.random.default_rng(0)
    ps = [ad.tensor(rng.standard_normal(s).astype(dtype) * 0.3, requires_grad=True)
          for s in [(4, 1, 3, 3), (4,), (6, 2, 3, 2), (6,), (6, 3, 2, 2)]]
    w1, b1, w2, b2, w3 = ps

    def f(x):
        h = ad.relu(ad.conv2d(x, w1, b1, padding=1))
        h = ad.max_pool2d(h, 2)
        h = ad.tanh(ad.conv2d(ad.pad(h, ((0, 0), (0, 0), (1, 1), (1, 1)), "edge"), w2, b2, stride=(1, 2), groups=2))
        h = ad.conv_transpose2d(h, w3, stride=2, output_padding=(1, 0))
        return ad.sum(ad.square(ad.avg_pool2d(h, 2, 1, 1)))
    return f, ps


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("make", [ad.trace, ad.compile])
def test_a_conv_net_traced_and_compiled_equals_the_tape(make, dtype):
    f, ps = _net(dtype)
    rng = np.random.default_rng(1)
    tol = 1e-12 if dtype == np.float64 else 2e-5
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileWarning)
        warnings.simplefilter("error", TraceWarning)
        fx = make(f)
        step = make(f, params=ps)
        for _ in range(3):                       # record, verify, replay/run
            x = rng.standard_normal((2, 1, 8, 7)).astype(dtype)
            v, g = fx.value_and_grad(x)
            tv, tg = ad.value_and_grad(f)(x)
            np.testing.assert_allclose(v, tv.data if hasattr(tv, "data") else tv, rtol=tol)
            np.testing.assert_allclose(g, tg, rtol=tol, atol=tol * np.abs(tg).max())
            assert g.dtype == dtype
            sv = step.backward(x)
            got = [p.grad.copy() for p in ps]
            for p in ps:
                p.grad = None
            out = f(x)
            out.backward()
            want = [p.grad.copy() for p in ps]
            for p in ps:
                p.grad = None
            np.testing.assert_allclose(sv, out.data, rtol=tol)
            for a, b in zip(got, want):
                np.testing.assert_allclose(a, b, rtol=tol, atol=tol * np.abs(b).max())
    if make is ad.compile:
        assert fx.compiled
        for c in (fx, step):
            entry = next(iter(c._programs.values()))
            assert entry.exe is not None and entry.broken is None
            exe = entry.exe[1]
            assert exe.fallbacks == []                  # no CompileWarning-worthy step
            want = {"conv2d", "conv2d_grad_input", "max_pool2d", "max_pool2d_grad"}
            assert want | ({"conv2d_grad_weight"} if c is step else set()) <= set(
                exe.host_steps)


def test_gpu_conv_matches_the_cpu():
    cp = pytest.importorskip("cupy", reason="CuPy is not installed (GPU paths unchecked)")
    if not ad.backend.gpu_available():
        pytest.skip("no CUDA device")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 9, 8)).astype(np.float32)
    w = rng.standard_normal((6, 2, 3, 3)).astype(np.float32)

    def f(x, w):
        h = ad.conv2d(x, w, stride=2, padding=1, groups=2)
        h = ad.max_pool2d(ad.relu(h), 2, 1) + ad.avg_pool2d(h, 2, 1)
        return ad.sum(ad.conv_transpose2d(h, w, stride=2, groups=2) ** 2)
    v, (gx, gw) = ad.value_and_grad(f, argnums=(0, 1))(x, w)
    vg, (gxg, gwg) = ad.value_and_grad(f, argnums=(0, 1))(cp.asarray(x), cp.asarray(w))
    assert isinstance(gxg, cp.ndarray)
    np.testing.assert_allclose(float(vg), float(v), rtol=1e-4)
    np.testing.assert_allclose(cp.asnumpy(gxg), gx, rtol=1e-3, atol=1e-3 * np.abs(gx).max())
    np.testing.assert_allclose(cp.asnumpy(gwg), gw, rtol=1e-3, atol=1e-3 * np.abs(gw).max())


def test_host_operations_run_as_python_steps_without_a_warning():
    """``array_op(host=True)`` marks an operation that compile runs by its own code; a
    plain array_op without a lowering still warns."""
    from autodiff.tracer import array_op

    def make_double():
        def double(x):
            out = np.empty_like(x)
            out[...] = 2 * x           # writes into an array: the tracer cannot follow it
            return out
        return double
    host = array_op(make_double(), name="double_host", host=True)
    plain = array_op(make_double(), name="double_plain")
    for fn, warns in ((host, False), (plain, True)):
        prim = ad.primitive(fn, name=fn.__name__)
        ad.defvjp(prim, lambda ans, x: lambda g: 2 * g)
        comp = ad.compile(lambda x: ad.sum(ad.sin(prim(x))))
        x = np.linspace(0.1, 1.0, 7)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", CompileWarning)
            v, g = comp.value_and_grad(x)
        assert any(issubclass(w.category, CompileWarning) for w in caught) == warns
        np.testing.assert_allclose(g, 2 * np.cos(2 * x), rtol=1e-12)
        exe = next(iter(comp._programs.values())).exe[1]
        assert exe.host_steps == ([] if warns else ["double_host"])
        assert exe.fallbacks == (["double_plain"] if warns else [])


@settings(max_examples=40, deadline=None)
@given(conv_config())
def test_im2col_gathers_the_padded_windows_and_col2im_is_its_adjoint(cfg):
    """The columns equal the strided windows of a zero-padded copy built here, and col2im
    sums every column entry back into its pixel (the ones on the padding dropped),
    exactly (integer-valued columns: no rounding)."""
    from autodiff import conv as C
    n, c, h, w = cfg["x"]
    k = cfg["w"][2:]
    s, p, d = cfg["stride"], cfg["padding"], cfg["dilation"]
    out_hw = C._out_hw("t", (h, w), k, s, p, d)
    x = np.random.default_rng(1).standard_normal((n, c, h, w))
    xpad = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))
    want = np.empty((c, k[0], k[1], n) + out_hw)
    for i, j, sh, sw in C._offsets(k, s, d, out_hw):
        want[:, i, j] = xpad[:, :, sh, sw].transpose(1, 0, 2, 3)
    np.testing.assert_array_equal(C._im2col(x, k, s, p, d, out_hw), want)
    cols = np.random.default_rng(2).integers(-9, 9, want.shape).astype(np.float64)
    back = np.zeros_like(xpad)
    for i, j, sh, sw in C._offsets(k, s, d, out_hw):
        back[:, :, sh, sw] += cols[:, i, j].transpose(1, 0, 2, 3)
    got = C._col2im(cols, x.shape, k, s, p, d, out_hw)
    assert got.shape == x.shape
    np.testing.assert_array_equal(got, back[:, :, p[0]:p[0] + h, p[1]:p[1] + w])


@settings(max_examples=40, deadline=None)
@given(conv_config())
def test_direct_loops_and_im2col_gemm_agree_with_the_reference(cfg):
    """Both CPU paths (the direct loops for few output channels, im2col + GEMM else),
    each forced on every configuration: the values match the loop reference and the
    gradients of x and w match those of the other path."""
    from autodiff import conv as C
    x, w, b = _arrays(cfg, np.float64)
    saved = C._DIRECT_MAX_OUT
    try:
        grads = {}
        for limit in (0, 64):
            C._DIRECT_MAX_OUT = limit
            xt, wt = ad.tensor(x, requires_grad=True), ad.tensor(w, requires_grad=True)
            y = ad.conv2d(xt, wt, b, **_kw(cfg))
            np.testing.assert_allclose(y.data, ref.conv2d(x, w, b, **_kw(cfg)),
                                       rtol=1e-12, atol=1e-12)
            ad.sum(y * y).backward()
            grads[limit] = (xt.grad, wt.grad)
    finally:
        C._DIRECT_MAX_OUT = saved
    for a, c in zip(grads[0], grads[64]):
        np.testing.assert_allclose(a, c, rtol=1e-11, atol=1e-11)


def _conv2d_grads_ref(x, w, gy, stride, padding, dilation):
    """Loop references of conv2d's gradients (groups 1, float64): ``dx`` as the transposed
    convolution of ``gy`` and ``dw`` as the sum over output positions of ``gy`` times the
    input each tap reads."""
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    _, _, ho, wo = gy.shape
    oph = h - ((ho - 1) * sh - 2 * ph + dh * (kh - 1) + 1)
    opw = wd - ((wo - 1) * sw - 2 * pw + dw * (kw - 1) + 1)
    gx = ref.conv_transpose2d(gy, w, None, stride, padding, (oph, opw), dilation)
    gw = np.zeros(w.shape)
    for i in range(kh):
        for j in range(kw):
            for a in range(ho):
                for q in range(wo):
                    r, s = a * sh - ph + i * dh, q * sw - pw + j * dw
                    if 0 <= r < h and 0 <= s < wd:
                        gw[:, :, i, j] += gy[:, :, a, q].T @ x[:, :, r, s]
    return gx, gw


# Stride-1 convolutions with at most 4 output channels: the padded-plane loops. Odd
# sizes, unequal padding and dilation per axis, a kernel as large as the padded image,
# one-pixel images and outputs one column wide.
PLANE_CASES = [
    # x shape, w shape, padding, dilation
    ((2, 3, 7, 9), (1, 3, 3, 3), (1, 1), (1, 1)),     # the VAE decoder's last conv
    ((1, 2, 5, 6), (4, 2, 2, 3), (0, 2), (2, 1)),
    ((3, 1, 4, 4), (2, 1, 4, 4), (2, 2), (1, 1)),
    ((2, 2, 9, 5), (3, 2, 3, 1), (0, 0), (3, 1)),
    ((1, 1, 1, 1), (1, 1, 1, 1), (0, 0), (1, 1)),
    ((2, 3, 6, 3), (2, 3, 3, 3), (2, 0), (2, 1)),
    ((1, 2, 3, 5), (3, 2, 3, 3), (1, 2), (1, 3)),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("xs, ws, padding, dilation", PLANE_CASES)
def test_stride1_direct_convs_run_the_plane_loops_and_match_the_loop_reference(
        xs, ws, padding, dilation, dtype, monkeypatch):
    from autodiff import conv as C
    calls = []
    for name in ("_plane_fwd_kernel", "_plane_dx_kernel", "_plane_dw_kernel"):
        kernel = getattr(C, name)
        monkeypatch.setattr(C, name, lambda *a, _k=kernel, _n=name: calls.append(_n) or _k(*a))
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    kw = dict(stride=1, padding=padding, dilation=dilation)
    want = ref.conv2d(x, w, **kw)
    gy = rng.standard_normal(want.shape)
    want_gx, want_gw = _conv2d_grads_ref(x, w, gy, (1, 1), padding, dilation)
    xt = ad.tensor(x.astype(dtype), requires_grad=True)
    wt = ad.tensor(w.astype(dtype), requires_grad=True)
    y = ad.conv2d(xt, wt, **kw)
    ad.sum(y * gy.astype(dtype)).backward()
    assert sorted(calls) == ["_plane_dw_kernel", "_plane_dx_kernel", "_plane_fwd_kernel"]
    assert y.dtype == xt.grad.dtype == wt.grad.dtype == dtype
    tol = 1e-12 if dtype == np.float64 else 2e-5
    for got, exp in ((y.data, want), (xt.grad, want_gx), (wt.grad, want_gw)):
        np.testing.assert_allclose(got, exp, rtol=tol, atol=tol * np.abs(exp).max())
    if dtype == np.float64:
        ad.check_grads(lambda x, w: ad.conv2d(x, w, **kw), x, w)


def test_stride1_plane_loops_sum_the_weight_gradient_in_float64():
    """Many float32 terms per tap (64 images of 28 x 28): the weight gradient is summed
    per image in float32 and over images in float64, so it stays within float32 rounding
    of the float64 result."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((64, 2, 28, 28)).astype(np.float32)
    gy = rng.standard_normal((64, 1, 28, 28)).astype(np.float32)
    wt = ad.tensor(rng.standard_normal((1, 2, 3, 3)).astype(np.float32), requires_grad=True)
    ad.sum(ad.conv2d(x, wt, padding=1) * gy).backward()
    _, want = _conv2d_grads_ref(x.astype(np.float64), wt.data.astype(np.float64),
                                gy.astype(np.float64), (1, 1), (1, 1), (1, 1))
    np.testing.assert_allclose(wt.grad, want, rtol=1e-5, atol=1e-4)


# The CPU im2col/col2im loops over polyphase planes: strides larger than the kernel
# (phases no tap reads, pixels no window reads), stride with dilation, unequal axes,
# the VAE's stride-2 4x4 layers, float32 and float64.
PHASE_CASES = [
    # x shape, kernel, stride, padding, dilation
    ((2, 3, 9, 8), (4, 4), (2, 2), (1, 1), (1, 1)),
    ((1, 2, 11, 7), (3, 2), (2, 3), (2, 0), (1, 2)),
    ((2, 1, 10, 10), (2, 2), (3, 3), (0, 0), (1, 1)),
    ((1, 2, 13, 9), (3, 3), (2, 1), (1, 2), (3, 2)),
    ((3, 2, 5, 6), (1, 1), (4, 2), (0, 1), (1, 1)),
    ((1, 1, 4, 4), (5, 5), (1, 1), (2, 2), (1, 1)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("xs, k, s, p, d", PHASE_CASES)
def test_cpu_im2col_and_col2im_loops_match_the_strided_views(xs, k, s, p, d, dtype):
    from autodiff import conv as C
    rng = np.random.default_rng(5)
    x = rng.standard_normal(xs).astype(dtype)
    n, c, h, w = xs
    out_hw = C._out_hw("t", (h, w), k, s, p, d)
    xpad = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))
    want = np.empty((c, k[0], k[1], n) + out_hw, dtype=dtype)
    for i, j, sh, sw in C._offsets(k, s, d, out_hw):
        want[:, i, j] = xpad[:, :, sh, sw].transpose(1, 0, 2, 3)
    got = C._im2col(x, k, s, p, d, out_hw)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, want)
    cols = rng.integers(-9, 9, want.shape).astype(dtype)     # exact sums in any order
    back = np.zeros_like(xpad)
    for i, j, sh, sw in C._offsets(k, s, d, out_hw):
        back[:, :, sh, sw] += cols[:, i, j].transpose(1, 0, 2, 3)
    got = C._col2im(cols, x.shape, k, s, p, d, out_hw)
    assert got.dtype == dtype and got.flags.c_contiguous
    np.testing.assert_array_equal(got, back[:, :, p[0]:p[0] + h, p[1]:p[1] + w])


@pytest.mark.parametrize("block_bytes", [1, None])      # one image per block; the default
@pytest.mark.parametrize("dtype, bias_dtype", [(np.float32, np.float32),
                                               (np.float64, np.float64),
                                               (np.float32, np.float64)])
def test_conv_bias_in_the_output_pass_and_blocks_of_images(block_bytes, dtype, bias_dtype,
                                                           monkeypatch):
    """The bias is added inside the conv ops (conv2d's output layout pass, each block of
    conv_transpose2d's images): values, dtypes (a float64 bias widens a float32 conv, as
    an add would) and the gradients of x, w and the bias match the loop references, with
    one image per block of the input-gradient GEMM and with the default blocks."""
    from autodiff import conv as C
    if block_bytes is not None:
        monkeypatch.setattr(C, "_BLOCK_BYTES", block_bytes)
    rng = np.random.default_rng(6)
    out_dtype = np.result_type(dtype, bias_dtype)
    tol = 1e-11 if out_dtype == np.float64 and dtype == np.float64 else 1e-4
    for op, rop, xs, ws, kw in [
            (ad.conv2d, ref.conv2d, (3, 4, 9, 8), (6, 2, 4, 3), dict(stride=2, padding=1,
                                                                     groups=2)),
            (ad.conv2d, ref.conv2d, (2, 3, 7, 7), (2, 3, 3, 3), dict(padding=1)),  # direct
            (ad.conv_transpose2d, ref.conv_transpose2d, (3, 4, 5, 4), (4, 3, 4, 4),
             dict(stride=2, padding=1)),
            (ad.conv_transpose2d, ref.conv_transpose2d, (2, 4, 3, 5), (4, 1, 3, 2),
             dict(stride=(2, 1), padding=(0, 1), groups=2))]:
        x, w = rng.standard_normal(xs), rng.standard_normal(ws)
        nout = ws[0] if op is ad.conv2d else ws[1] * kw.get("groups", 1)
        b = rng.standard_normal(nout)
        want = rop(x, w, b, **kw)
        gy = rng.standard_normal(want.shape)
        xt = ad.tensor(x.astype(dtype), requires_grad=True)
        wt = ad.tensor(w.astype(dtype), requires_grad=True)
        bt = ad.tensor(b.astype(bias_dtype), requires_grad=True)
        y = op(xt, wt, bt, **kw)
        assert y.dtype == out_dtype and _contiguous(y.data)
        np.testing.assert_allclose(y.data, want, rtol=tol, atol=tol * np.abs(want).max())
        ad.sum(y * gy.astype(out_dtype)).backward()
        np.testing.assert_allclose(bt.grad, gy.sum(axis=(0, 2, 3)), rtol=tol, atol=tol * 10)
        # x and w against the bias-free op (whose gradients the table checks)
        xt2, wt2 = ad.tensor(x, requires_grad=True), ad.tensor(w, requires_grad=True)
        ad.sum(op(xt2, wt2, **kw) * gy).backward()
        for got, exp in ((xt.grad, xt2.grad), (wt.grad, wt2.grad)):
            np.testing.assert_allclose(got, exp, rtol=tol, atol=tol * np.abs(exp).max())
        if dtype == bias_dtype == np.float64 and block_bytes is None:
            ad.check_grads(lambda x, w, b: op(x, w, b, **kw), x, w, b)


def _contiguous(a):
    """C-contiguous NCHW, or C-contiguous in channels-last memory (the CPU GEMM paths)."""
    return a.flags.c_contiguous or a.transpose(0, 2, 3, 1).flags.c_contiguous


@st.composite
def rows_config(draw):
    """Convolutions on the channels-last rows path (groups 1, >= 8 input channels, more
    than 4 output channels): odd sizes, strides, padding and dilation per axis."""
    c = draw(st.integers(8, 10))
    o = draw(st.integers(5, 7))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    d = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    p = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    h = draw(st.integers(max(1, d[0] * (kh - 1) + 1 - 2 * p[0]), 9))
    w = draw(st.integers(max(1, d[1] * (kw - 1) + 1 - 2 * p[1]), 9))
    n = draw(st.integers(1, 5))
    return dict(x=(n, c, h, w), w=(o, c, kh, kw), bias=draw(st.booleans()),
                stride=s, padding=p, dilation=d, groups=1)


def _rows_kernels_spy(monkeypatch):
    """Count the calls of the rows kernels (to check that a case takes that path)."""
    from autodiff import conv as C
    calls = []
    for name in ("_im2row_kernel", "_row2im_kernel"):
        kernel = getattr(C, name)
        monkeypatch.setattr(C, name, lambda *a, _k=kernel, _n=name: calls.append(_n) or _k(*a))
    return calls


@settings(max_examples=30, deadline=None)
@given(rows_config(), st.sampled_from([None, 1, 700]))
def test_rows_path_matches_the_loop_references(cfg, block_bytes):
    """conv2d with >= 8 input channels runs on channels-last rows: the output and the
    gradients of x and w match the loop references (float64 to 1e-12, float32 to float32
    accuracy), with the default blocks of images, one image per block and blocks of
    unequal sizes (700 bytes: the first block can be the smaller one)."""
    from autodiff import conv as C
    saved = C._BLOCK_BYTES
    kernels = {name: getattr(C, name) for name in ("_im2row_kernel", "_row2im_kernel")}
    calls = []
    try:
        if block_bytes is not None:
            C._BLOCK_BYTES = block_bytes
        for name, kernel in kernels.items():
            setattr(C, name, lambda *a, _k=kernel, _n=name: calls.append(_n) or _k(*a))
        x, w, b = _arrays(cfg, np.float64, seed=7)
        kw = _kw(cfg)
        want = ref.conv2d(x, w, b, **kw)
        gy = np.random.default_rng(8).standard_normal(want.shape)
        want_gx, want_gw = _conv2d_grads_ref(x, w, gy, kw["stride"], kw["padding"],
                                             kw["dilation"])
        for dtype, tol in ((np.float64, 1e-12), (np.float32, 2e-5)):
            xt = ad.tensor(x.astype(dtype), requires_grad=True)
            wt = ad.tensor(w.astype(dtype), requires_grad=True)
            y = ad.conv2d(xt, wt, None if b is None else b.astype(dtype), **kw)
            assert y.dtype == dtype and y.shape == want.shape and _contiguous(y.data)
            ad.sum(y * gy.astype(dtype)).backward()
            assert xt.grad.dtype == wt.grad.dtype == dtype
            for got, exp in ((y.data, want), (xt.grad, want_gx), (wt.grad, want_gw)):
                np.testing.assert_allclose(got, exp, rtol=tol, atol=tol * np.abs(exp).max())
    finally:
        C._BLOCK_BYTES = saved
        for name, kernel in kernels.items():
            setattr(C, name, kernel)
    assert set(calls) == {"_im2row_kernel", "_row2im_kernel"}


@pytest.mark.parametrize("block_bytes", [None, 1, 3000])
def test_rows_path_conv_transpose_and_finite_differences(block_bytes, monkeypatch):
    """conv_transpose2d whose adjoint conv has >= 8 input channels (its output channels)
    and > 4 outputs (its input channels) runs on the rows path: values against the loop
    reference, gradients of every input by finite differences (float64)."""
    from autodiff import conv as C
    if block_bytes is not None:
        monkeypatch.setattr(C, "_BLOCK_BYTES", block_bytes)
    calls = _rows_kernels_spy(monkeypatch)
    rng = np.random.default_rng(9)
    x, w, b = (rng.standard_normal((3, 6, 4, 5)), rng.standard_normal((6, 8, 4, 3)),
               rng.standard_normal(8))
    kw = dict(stride=(2, 1), padding=(1, 0), output_padding=(1, 0), dilation=(1, 2))
    y = ad.conv_transpose2d(x, w, b, **kw)
    np.testing.assert_allclose(y.data, ref.conv_transpose2d(x, w, b, **kw), rtol=1e-12,
                               atol=1e-12)
    assert _contiguous(y.data)
    ad.check_grads(lambda x, w, b: ad.conv_transpose2d(x, w, b, **kw), x, w, b)
    xc, wc = rng.standard_normal((2, 9, 7, 6)), rng.standard_normal((5, 9, 3, 2))
    ad.check_grads(lambda x, w: ad.conv2d(x, w, stride=2, padding=1), xc, wc)
    assert set(calls) == {"_im2row_kernel", "_row2im_kernel"}


@pytest.mark.parametrize("layout", ["nchw", "nhwc", "sliced"])
def test_rows_path_reads_any_input_layout(layout):
    """The same values in NCHW memory, in channels-last memory (what the rows path
    returns) or as a strided slice give the same output and gradients; a chain of convs
    keeps the channels-last layout; mixed dtypes widen as a product would."""
    rng = np.random.default_rng(10)
    x = rng.standard_normal((3, 8, 9, 7))
    w1, w2 = rng.standard_normal((8, 8, 3, 3)), rng.standard_normal((6, 8, 2, 2))
    if layout == "nhwc":
        xin = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    elif layout == "sliced":
        xin = np.repeat(x, 2, axis=3)[:, :, :, ::2]
    else:
        xin = x.copy()
    np.testing.assert_array_equal(xin, x)
    xt = ad.tensor(xin, requires_grad=True)
    h = ad.conv2d(xt, w1, padding=1)
    assert h.data.transpose(0, 2, 3, 1).flags.c_contiguous      # channels-last memory
    y = ad.conv2d(ad.relu(h), w2, stride=2)
    want = ref.conv2d(np.maximum(ref.conv2d(x, w1, padding=1), 0), w2, stride=2)
    np.testing.assert_allclose(y.data, want, rtol=1e-12, atol=1e-12)
    ad.sum(y * y).backward()
    ref_grad = ad.grad(lambda x: ad.sum(ad.conv2d(ad.relu(ad.conv2d(x, w1, padding=1)),
                                                  w2, stride=2) ** 2))(x.copy())
    np.testing.assert_allclose(xt.grad, ref_grad, rtol=1e-12, atol=1e-12)
    y32 = ad.conv2d(x.astype(np.float32), w1, padding=1)
    assert y32.dtype == np.float64
    np.testing.assert_allclose(y32.data, ref.conv2d(x.astype(np.float32).astype(np.float64),
                                                    w1, padding=1), rtol=1e-12, atol=1e-12)


def test_rows_path_blocks_of_unequal_sizes(monkeypatch):
    """5 images in blocks of at most 2 are split 1, 2, 2 (the first block the smaller):
    the scratch rows hold the largest block, and the forward pass, the input gradient
    and the weight gradient match the loop references."""
    from autodiff import conv as C
    monkeypatch.setattr(C, "_BLOCK_BYTES", 1200)
    assert C._row_blocks(5, 576) == [(0, 1), (1, 3), (3, 5)]
    assert C._row_blocks(4, 576) == [(0, 2), (2, 4)]
    assert C._row_blocks(3, 5000) == [(0, 1), (1, 2), (2, 3)]
    calls = _rows_kernels_spy(monkeypatch)
    rng = np.random.default_rng(11)
    x, w = rng.standard_normal((5, 8, 3, 3)), rng.standard_normal((5, 8, 1, 1))  # 576 B
    xt, wt = ad.tensor(x, requires_grad=True), ad.tensor(w, requires_grad=True)
    y = ad.conv2d(xt, wt)
    np.testing.assert_allclose(y.data, ref.conv2d(x, w), rtol=1e-12, atol=1e-12)
    gy = rng.standard_normal(y.shape)
    ad.sum(y * gy).backward()
    gx, gw = _conv2d_grads_ref(x, w, gy, (1, 1), (0, 0), (1, 1))
    np.testing.assert_allclose(xt.grad, gx, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(wt.grad, gw, rtol=1e-12, atol=1e-12)
    assert calls.count("_im2row_kernel") == 6 and calls.count("_row2im_kernel") == 3
