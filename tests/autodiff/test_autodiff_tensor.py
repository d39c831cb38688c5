"""Tensor API, grad / value_and_grad / backward / no_grad, dtypes and every error path."""
import numpy as np
import pytest

import autodiff as ad
from autodiff import backend


def leaf(x):
    return ad.tensor(np.asarray(x, dtype=float), requires_grad=True)


# ----------------------------------------------------------------------------- Tensor API

def test_tensor_attributes():
    a = np.arange(6.0).reshape(2, 3)
    t = ad.tensor(a, requires_grad=True)
    assert t.data is a                       # an array of the right dtype is not copied
    assert t.grad is None and t.requires_grad
    assert t.shape == (2, 3) and t.dtype == np.float64 and t.ndim == 2 and len(t) == 2
    assert not ad.tensor(a).requires_grad
    assert ad.tensor([1, 2]).dtype == np.int64
    assert ad.tensor([1, 2], dtype=np.float32).dtype == np.float32
    n = t.numpy()
    assert type(n) is np.ndarray and np.array_equal(n, a)
    np.testing.assert_array_equal(np.asarray(t), a)


def test_detach_cuts_the_tape():
    x = leaf([1.0, 2.0])
    d = (x * 2).detach()
    assert not d.requires_grad and d.grad is None
    y = ad.sum(x * d)
    y.backward()
    np.testing.assert_array_equal(x.grad, [2.0, 4.0])   # d is a constant


def test_methods():
    x = leaf(np.arange(6.0).reshape(2, 3))
    assert x.T.shape == (3, 2)
    assert x.sum().shape == () and x.sum(axis=0).shape == (3,)
    assert x.mean().data == 2.5
    assert x.reshape(3, 2).shape == (3, 2) and x.reshape((6,)).shape == (6,)
    assert x.reshape(-1).shape == (6,)
    y = ad.sum(x.T * np.arange(3.0)[:, None]) + x.mean() + x.reshape(3, 2)[0, 1]
    y.backward()
    expected = np.tile(np.arange(3.0), (2, 1)) + 1 / 6
    expected[0, 1] += 1
    np.testing.assert_allclose(x.grad, expected)


def test_iteration_over_first_axis():
    x = leaf(np.arange(6.0).reshape(3, 2))
    rows = list(x)
    assert len(rows) == 3 and all(isinstance(r, ad.Tensor) and r.shape == (2,) for r in rows)
    ad.sum(rows[0] * 1 + rows[2] * 3).backward()
    np.testing.assert_array_equal(x.grad, [[1, 1], [0, 0], [3, 3]])


def test_operators_and_reflected_forms():
    xv = np.array([1.0, 2.0, 3.0])
    x = leaf(xv)
    c = np.array([0.5, -1.0, 2.0])
    cases = [
        (x + 2, xv + 2), (2 + x, 2 + xv), (c + x, c + xv), (x + c, xv + c),
        (x - 2, xv - 2), (2 - x, 2 - xv), (c - x, c - xv),
        (x * 3, xv * 3), (3 * x, 3 * xv), (c * x, c * xv), (np.float64(2.0) * x, 2 * xv),
        (x / 2, xv / 2), (2 / x, 2 / xv), (c / x, c / xv),
        (x ** 2, xv ** 2), (2 ** x, 2 ** xv), (c ** x, c ** xv), (x ** x, xv ** xv),
        (-x, -xv), (abs(-x), xv), (+x, xv),
        (np.ones((2, 3)) @ x, np.ones((2, 3)) @ xv), (x @ np.ones((3, 2)), xv @ np.ones((3, 2))),
        (x @ x, xv @ xv),
    ]
    for got, want in cases:
        assert isinstance(got, ad.Tensor), type(got)
        np.testing.assert_allclose(got.data, want, rtol=1e-15)
    # gradients through the reflected forms
    cp = np.array([0.5, 1.5, 2.0])
    g = ad.grad(lambda x: ad.sum(2 - x + c / x + cp ** x) + ad.sum(np.ones((2, 3)) @ x))(xv)
    np.testing.assert_allclose(g, -1 - c / xv ** 2 + cp ** xv * np.log(cp) + 2, rtol=1e-12)


def test_comparisons_return_raw_bool_arrays():
    x = leaf([1.0, -2.0, 3.0])
    for r in (x > 0, x >= 0, x < 0, x <= 0, x == x, x != 1.0, np.zeros(3) < x, x > x * 0):
        assert type(r) is np.ndarray and r.dtype == bool
    np.testing.assert_array_equal(x > 0, [True, False, True])
    np.testing.assert_array_equal(np.zeros(3) < x, [True, False, True])
    assert {x: 1}[x] == 1           # identity hashing survives elementwise __eq__


@pytest.mark.parametrize("idx", [
    1, -1, slice(0, 2), (slice(None), 1), None, Ellipsis, (Ellipsis, 0), (None, 0, Ellipsis),
    np.array([0, 0, 2, 0]), [2, 2], (np.array([0, 0]), np.array([1, 1])),
    np.array([True, False, True]), (np.array([[True, False]] * 3)),
    (slice(None), np.array([False, True])),
])
def test_getitem_gradient_scatters(idx):
    xv = np.arange(6.0).reshape(3, 2)
    x = leaf(xv)
    out = x[idx]
    np.testing.assert_array_equal(out.data, xv[idx])
    w = np.random.default_rng(0).standard_normal(out.shape)
    ad.sum(out * w).backward()
    if idx is None:
        expected = w[0]
    elif idx is Ellipsis:
        expected = w
    else:
        expected = np.zeros_like(xv)
        np.add.at(expected, idx, w)          # repeated indices accumulate
    np.testing.assert_allclose(x.grad, expected, rtol=1e-15)


def test_getitem_repeated_indices_accumulate():
    x = leaf([1.0, 2.0, 3.0])
    ad.sum(x[[0, 0, 0, 2]]).backward()
    np.testing.assert_array_equal(x.grad, [3.0, 0.0, 1.0])
    x = leaf([1.0, 2.0, 3.0])
    ad.sum(x[ad.tensor(np.array([1, 1]))]).backward()    # a Tensor of indices
    np.testing.assert_array_equal(x.grad, [0.0, 2.0, 0.0])


# ----------------------------------------------------------------------------- grad & co.

def test_grad_argnums_raw_in_raw_out():
    def f(x, y, scale=1.0):
        return ad.sum(x * y) * scale + ad.sum(ad.square(x))

    x, y = np.array([1.0, 2.0]), np.array([3.0, -1.0])
    gx = ad.grad(f)(x, y)
    assert type(gx) is np.ndarray
    np.testing.assert_allclose(gx, y + 2 * x)
    gx, gy = ad.grad(f, argnums=(0, 1))(x, y, scale=2.0)
    np.testing.assert_allclose(gx, 2 * y + 2 * x)
    np.testing.assert_allclose(gy, 2 * x)
    (gy,) = ad.grad(f, argnums=(1,))(x, y)
    np.testing.assert_allclose(gy, x)
    val, gy = ad.value_and_grad(f, argnums=1)(x, y)
    assert isinstance(val, (np.ndarray, np.generic)) and np.ndim(val) == 0
    assert val == np.sum(x * y) + np.sum(x * x)
    # Tensor and python-scalar arguments are accepted too
    assert ad.grad(lambda t: t * t)(3.0) == 6.0
    np.testing.assert_allclose(ad.grad(f)(ad.tensor(x), y), y + 2 * x)


def test_value_and_grad_has_aux():
    def f(x):
        y = ad.exp(x)
        return ad.sum(y), {"y": y, "list": [y, 1], "tuple": (y,)}

    (val, aux), g = ad.value_and_grad(f, has_aux=True)(np.zeros(2))
    assert val == 2.0
    assert type(aux["y"]) is np.ndarray and type(aux["list"][0]) is np.ndarray
    assert aux["list"][1] == 1 and type(aux["tuple"][0]) is np.ndarray
    np.testing.assert_array_equal(g, [1.0, 1.0])


def test_grad_of_constant_function_is_zero():
    g = ad.grad(lambda x, y: ad.sum(y) * 2.0, argnums=(0, 1))(np.ones(2), np.ones(3))
    np.testing.assert_array_equal(g[0], [0.0, 0.0])
    np.testing.assert_array_equal(g[1], [2.0, 2.0, 2.0])
    assert ad.grad(lambda x: 5.0)(np.ones(2)).tolist() == [0.0, 0.0]
    assert ad.grad(lambda x: ad.sum(ad.stop_gradient(x) * 3))(np.ones(2)).tolist() == [0, 0]


def test_grad_returns_fresh_writeable_arrays():
    g = ad.grad(lambda x: ad.sum(x))(np.ones(3))
    assert g.flags.writeable
    g += 1.0                                 # must not raise (no read-only broadcast view)
    g = ad.grad(lambda x: ad.sum(ad.broadcast_to(x, (4, 3))))(np.ones(3))
    g *= 2.0


def test_grad_leaves_closure_leaves_alone():
    w = leaf([1.0, 2.0])
    g = ad.grad(lambda x: ad.sum(x * w))(np.ones(2))
    np.testing.assert_array_equal(g, [1.0, 2.0])
    assert w.grad is None


def test_backward_accumulates_into_leaves():
    x = leaf([1.0, 2.0])
    for k in (1, 2, 3):
        ad.sum(ad.square(x)).backward()
        np.testing.assert_array_equal(x.grad, k * 2 * x.data)
    x.grad = None
    y = x * 3.0
    y.backward(np.array([1.0, -1.0]))          # a seed for a non-scalar output
    np.testing.assert_array_equal(x.grad, [3.0, -3.0])
    x.grad = None
    x.backward(np.array([1.0, 2.0]))           # a leaf root
    np.testing.assert_array_equal(x.grad, [1.0, 2.0])


def test_backward_diamond_graph_and_shared_leaf():
    x = leaf([0.5, -1.0])
    a = ad.exp(x)
    b = a * a + ad.sin(a) + a            # a used three times
    ad.sum(b * x).backward()
    ev = np.exp(x.data)
    db_da = 2 * ev + np.cos(ev) + 1
    np.testing.assert_allclose(x.grad, (ev ** 2 + np.sin(ev) + ev) + x.data * db_da * ev)


def test_no_grad_records_nothing():
    x = leaf([1.0, 2.0])
    with ad.no_grad():
        assert not ad.is_grad_enabled()
        y = ad.exp(x) * 2 + x[0]
        z = ad.einsum("i,i->", x, x)
        w = ad.concatenate([x, x])
        with ad.enable_grad():
            assert ad.is_grad_enabled()
            assert ad.exp(x).requires_grad
        assert not ad.is_grad_enabled()
    assert ad.is_grad_enabled()
    assert not (y.requires_grad or z.requires_grad or w.requires_grad)
    assert y._edges is None                      # a plain leaf: nothing recorded

    @ad.no_grad()
    def f(t):
        """doc"""
        return ad.exp(t)

    assert not f(x).requires_grad and ad.is_grad_enabled()
    assert f.__name__ == "f" and f.__doc__ == "doc"


def test_no_grad_restores_state_after_an_exception():
    with pytest.raises(ZeroDivisionError):
        with ad.no_grad():
            1 / 0
    assert ad.is_grad_enabled()


def test_grad_inside_no_grad_still_differentiates():
    with ad.no_grad():
        g = ad.grad(lambda x: ad.sum(ad.square(x)))(np.array([1.0, 2.0]))
    np.testing.assert_array_equal(g, [2.0, 4.0])


def test_nested_grad_raises():
    inner = ad.grad(lambda y: ad.sum(ad.square(y)))

    def outer(x):
        return ad.sum(x * inner(x.data))

    with pytest.raises(ad.NestedGradError, match="nested differentiation is not supported"):
        ad.grad(outer)(np.ones(2))
    assert issubclass(ad.NestedGradError, NotImplementedError)
    # the failure leaves no state behind: grad works again
    np.testing.assert_array_equal(inner(np.ones(2)), [2.0, 2.0])


# ----------------------------------------------------------------------------- dtypes

def test_float32_in_float32_grads():
    x32 = np.array([0.5, -1.0, 2.0], dtype=np.float32)
    c64 = np.array([1.0, 2.0, 3.0])                     # float64 raw constant

    def f(x):
        h = ad.tanh(x * c64 + 2.0) ** 2 + ad.log_sigmoid(x) + ad.softplus(x) / 3
        h = h + ad.sum(ad.exp(x) * np.ones((2, 3)), axis=0) + ad.cast(x, np.float64)
        return ad.sum(ad.log_softmax(h)[::2]) + ad.sum(ad.maximum(x, 0.0))

    g = ad.grad(f)(x32)
    assert g.dtype == np.float32
    g64 = ad.grad(f)(x32.astype(np.float64))
    np.testing.assert_allclose(g, g64, rtol=1e-5)
    x = ad.tensor(x32, requires_grad=True)
    y = ad.log_sigmoid(x)
    assert y.dtype == np.float32
    ad.sum(y * c64).backward()
    assert x.grad.dtype == np.float32


def test_cast_gradient_returns_to_source_dtype():
    x32 = np.array([1.5, -2.0], dtype=np.float32)
    g = ad.grad(lambda x: ad.sum(ad.square(ad.cast(x, np.float64))))(x32)
    assert g.dtype == np.float32
    np.testing.assert_array_equal(g, 2 * x32)
    g = ad.grad(lambda x: ad.sum(ad.cast(x, "float32") * 3.0))(np.ones(2))
    assert g.dtype == np.float64 and g.tolist() == [3.0, 3.0]
    t = leaf([1.7, -0.2]).astype(np.int64)       # casting to int is not differentiable
    assert t.dtype == np.int64 and not t.requires_grad
    assert t.data.tolist() == [1, 0]


def test_integer_inputs_get_no_gradient():
    with pytest.raises(TypeError, match="floating-point"):
        ad.tensor(np.arange(3), requires_grad=True)
    with pytest.raises(TypeError, match="floating-point"):
        ad.tensor(True, requires_grad=True)
    with pytest.raises(TypeError, match="argument 1 has dtype int64"):
        ad.grad(lambda x, n: ad.sum(x * n), argnums=(0, 1))(np.ones(3), np.arange(3))
    # an integer Tensor mixes with float ones and receives nothing
    n = ad.tensor(np.arange(3))
    g = ad.grad(lambda x: ad.sum(x * n + n))(np.ones(3))
    np.testing.assert_array_equal(g, [0.0, 1.0, 2.0])
    assert n.grad is None


# ----------------------------------------------------------------------------- errors

def test_broadcast_mismatch_names_op_and_shapes():
    x = leaf(np.ones(3))
    for call in (lambda: ad.add(x, np.ones(4)), lambda: x + np.ones(4),
                 lambda: ad.add(np.ones(3), np.ones(4))):
        with pytest.raises(ValueError) as e:
            call()
        msg = str(e.value)
        assert "add" in msg and "(3,)" in msg and "(4,)" in msg, msg
    with pytest.raises(ValueError, match=r"multiply.*\(2, 3\).*\(2,\)"):
        leaf(np.ones((2, 3))) * np.ones(2)
    with pytest.raises(ValueError, match=r"matmul.*\(2, 3\).*\(2, 3\)"):
        ad.matmul(leaf(np.ones((2, 3))), np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"concatenate.*\(2, 3\).*\(3, 2\)"):
        ad.concatenate([leaf(np.ones((2, 3))), np.ones((3, 2))], axis=0)
    with pytest.raises(ValueError, match=r"exp.*\(3,\)"):
        ad.exp(x, out=np.ones(4))
    with pytest.raises(ValueError, match="dot.*ndim 3"):
        ad.dot(np.ones((2, 2, 2)), x)


def test_backward_errors():
    x = leaf([1.0, 2.0])
    with pytest.raises(RuntimeError, match=r"non-scalar Tensor of shape \(2,\)"):
        (x * 2).backward()
    with pytest.raises(ValueError, match=r"seed gradient has shape \(3,\), expected \(2,\)"):
        (x * 2).backward(np.ones(3))
    with pytest.raises(RuntimeError, match="does not require grad"):
        ad.tensor([1.0]).backward()


def test_value_and_grad_errors():
    with pytest.raises(TypeError, match=r"must return a scalar, got shape \(2,\)"):
        ad.grad(lambda x: x * 2)(np.ones(2))
    with pytest.raises(TypeError, match="has_aux"):
        ad.value_and_grad(lambda x: ad.sum(x), has_aux=True)(np.ones(2))
    with pytest.raises(TypeError, match="argnums"):
        ad.grad(lambda x: ad.sum(x), argnums=2)(np.ones(2))


def test_op_without_vjp_names_the_op():
    for nargs in (None, 1):
        op = ad.primitive(np.sinh, name=f"sinh_without_rule_{nargs}", nargs=nargs)
        assert op(np.array(1.0)).data == np.sinh(1.0)          # forward works
        with pytest.raises(NotImplementedError, match=f"'sinh_without_rule_{nargs}'"):
            op(leaf([1.0]))
        with pytest.raises(NotImplementedError, match=f"sinh_without_rule_{nargs}"):
            ad.grad(lambda x: ad.sum(op(x)))(np.ones(2))
    op2 = ad.primitive(np.hypot, name="hypot_without_rule", nargs=2)
    with pytest.raises(NotImplementedError, match="argument 1 of 'hypot_without_rule'"):
        op2(np.ones(2), leaf([1.0, 2.0]))
    op3 = ad.primitive(lambda a, b: a * b, name="half_rule")
    ad.defvjp(op3, lambda ans, a, b: lambda g: g * b)          # no rule for b
    with pytest.raises(NotImplementedError, match="argument 1 of 'half_rule'"):
        op3(leaf([1.0]), leaf([2.0]))


def test_binary_op_without_vjp_both_args_names_the_op():
    op2 = ad.primitive(np.hypot, name="hypot_no_rule_both", nargs=2)
    with pytest.raises(NotImplementedError, match="hypot_no_rule_both"):
        op2(leaf([1.0]), leaf([2.0]))


def test_defvjp_on_non_primitive():
    with pytest.raises(TypeError, match="not an autodiff primitive"):
        ad.defvjp(np.sin, lambda ans, x: lambda g: g)


def test_check_grads_order_2_not_implemented():
    with pytest.raises(NotImplementedError, match="order=1"):
        ad.check_grads(ad.exp, np.ones(2), order=2)


def test_backend_functions():
    a = np.ones(2)
    assert backend.get_array_module(a, 1.0, ad.tensor(a)) is np
    assert backend.get_array_module() is np
    assert type(backend.asnumpy(ad.tensor(a))) is np.ndarray
    assert backend.to_device(a, "cpu") is a or np.array_equal(backend.to_device(a, "cpu"), a)
    with pytest.raises(ValueError, match="device: expected 'cpu' or 'gpu', got 'tpu'"):
        backend.to_device(a, "tpu")
    with pytest.raises(ValueError, match="expected 'cpu' or 'gpu'"):
        backend.set_default_device("tpu")
    assert backend.default_device() == "cpu"
    if not backend.gpu_available():
        with pytest.raises(RuntimeError, match="no CUDA device"):
            backend.to_device(a, "gpu")
    t = np.zeros(3)
    backend.scatter_add(t, np.array([0, 0, 2]), np.ones(3))
    assert t.tolist() == [2.0, 0.0, 1.0]


def test_solve_triangular_bad_trans():
    with pytest.raises(ValueError, match="trans must be"):
        ad.solve_triangular(np.eye(2), np.ones(2), trans="X")


# ----------------------------------------------------------------------------- conventions

def test_max_min_ties_share_the_gradient():
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    np.testing.assert_allclose(ad.grad(lambda t: ad.max(t))(x), [[0, .5, .5], [0, 0, 0]])
    np.testing.assert_allclose(ad.grad(lambda t: ad.sum(ad.max(t, axis=1)))(x),
                               [[0, .5, .5], [1 / 3, 1 / 3, 1 / 3]])
    np.testing.assert_allclose(ad.grad(lambda t: ad.sum(ad.min(t, axis=0, keepdims=True)))(x),
                               [[1, 0, 0], [0, 1, 1]])
    gx, gy = ad.grad(lambda a, b: ad.sum(ad.maximum(a, b)), argnums=(0, 1))(
        np.array([1.0, 2.0]), np.array([1.0, 3.0]))
    np.testing.assert_allclose(gx, [0.5, 0.0])
    np.testing.assert_allclose(gy, [0.5, 1.0])


def test_prod_with_zeros_is_exact():
    x = np.array([[0.0, 2.0, 3.0], [0.0, 0.0, 4.0], [1.0, 2.0, 3.0]])
    g = ad.grad(lambda t: ad.sum(ad.prod(t, axis=1)))(x)
    np.testing.assert_array_equal(g, [[6, 0, 0], [0, 0, 0], [6, 3, 2]])
    g = ad.grad(lambda t: ad.prod(t))(np.array([2.0, 0.0, 5.0]))
    np.testing.assert_array_equal(g, [0, 10, 0])


def test_slogdet_sign_is_raw_and_batched():
    a = np.array([[[2.0, 0.0], [0.0, 3.0]], [[0.0, 1.0], [1.0, 0.0]]])
    sign, logdet = ad.slogdet(ad.tensor(a, requires_grad=True))
    assert type(sign) is np.ndarray and sign.tolist() == [1.0, -1.0]
    np.testing.assert_allclose(logdet.data, [np.log(6.0), 0.0])


# ----------------------------------------------------------------------------- core bugs

def test_enable_grad_as_decorator():
    @ad.enable_grad()
    def f(t):
        return ad.exp(t)

    with ad.no_grad():
        assert f(leaf([1.0])).requires_grad


def test_grads_of_different_arguments_do_not_alias():
    gx, gy = ad.grad(lambda x, y: ad.sum(x + y), argnums=(0, 1))(np.ones(3), np.ones(3))
    gx += 1.0
    np.testing.assert_array_equal(gy, [1.0, 1.0, 1.0])


def test_grad_of_0d_argument_is_an_ndarray():
    assert type(ad.grad(lambda x: x * 2.0)(np.array(3.0))) is np.ndarray
    x = leaf(2.0)
    (x * 3.0).backward()
    assert type(x.grad) is np.ndarray


def test_leaf_grads_never_alias_each_other_or_the_seed():
    """.grad may be scaled in place (gradient clipping): no two leaves, nor the caller's
    seed, may share memory, even when one cotangent flows to both through views."""
    x = ad.tensor(np.ones(6), requires_grad=True)
    y = ad.tensor(np.ones(6), requires_grad=True)
    ad.sum(ad.reshape(x, (2, 3)) + ad.reshape(y, (2, 3))).backward()
    x.grad *= 3
    np.testing.assert_array_equal(y.grad, np.ones(6))
    a = ad.tensor(np.ones(3), requires_grad=True)
    b = ad.tensor(np.ones(3), requires_grad=True)
    seed = np.ones(3)
    (a + b).backward(seed)
    a.grad *= 5
    np.testing.assert_array_equal(b.grad, np.ones(3))
    np.testing.assert_array_equal(seed, np.ones(3))
    leaf = ad.tensor(np.ones(3), requires_grad=True)
    own_seed = np.full(3, 2.0)
    leaf.backward(own_seed)
    leaf.grad *= 2
    np.testing.assert_array_equal(own_seed, np.full(3, 2.0))


def test_tune_allocator_applies_on_glibc_linux():
    import platform
    import sys
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt tuning applies to glibc Linux only")
    assert ad.backend.tune_allocator() is True
    assert ad.backend.tune_allocator(mmap_threshold=1 << 20, trim_threshold=1 << 28) is True
    ad.backend.tune_allocator()   # back to the import-time settings


def test_rules_are_keyed_by_the_primitive_not_its_name():
    """A user primitive named like a built-in one gets its own rule table entry: the
    built-in exp keeps its gradient."""
    my_exp = ad.primitive(lambda x: np.exp(x) * 2.0, name="exp", nargs=1)
    ad.defvjp(my_exp, lambda ans, x: lambda g: g * 0.0)
    x = np.array([0.3, -1.2])
    np.testing.assert_allclose(ad.grad(lambda t: ad.sum(ad.exp(t)))(x), np.exp(x))
    np.testing.assert_array_equal(ad.grad(lambda t: ad.sum(my_exp(t)))(x), 0.0)
    assert ad.VJP_RULES[my_exp] is not ad.VJP_RULES[ad.exp]


def test_defvjp_argnum_gives_one_rule_for_any_number_of_arguments():
    cat = ad.primitive(lambda *xs: np.concatenate(xs), name="my_cat")

    def rule(i, ans, *xs):
        start = sum(len(x) for x in xs[:i])
        return lambda g: g[start:start + len(xs[i])]
    ad.defvjp_argnum(cat, rule)
    a, b, c = np.array([1.0, 2.0]), np.array([3.0]), np.array([4.0, 5.0, 6.0])
    w = np.arange(6.0)
    ga, gb, gc = ad.grad(lambda x, y, z: ad.sum(cat(x, y, z) * w), argnums=(0, 1, 2))(a, b, c)
    np.testing.assert_array_equal(ga, [0.0, 1.0])
    np.testing.assert_array_equal(gb, [2.0])
    np.testing.assert_array_equal(gc, [3.0, 4.0, 5.0])
    with pytest.raises(TypeError, match="not an autodiff primitive"):
        ad.defvjp_argnum(np.concatenate, rule)
