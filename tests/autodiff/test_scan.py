"""autodiff.scan / fori_loop: the loop written out on the tape, one loop when compiled."""
import warnings

import numpy as np
import pytest

import autodiff as ad
from autodiff import CompileWarning, TraceWarning

RNG = np.random.default_rng(11)
Y = RNG.normal(size=(30, 3))
W = ad.tensor(RNG.normal(size=(3, 3)) * 0.3, requires_grad=True)


def _written_out(q):
    """An AR-like recursion over Y, written as a Python loop ([C, 3] -> [C])."""
    h = q * 0.5
    total = ad.sum(h * 0.0, axis=1)
    for t in range(Y.shape[0]):
        h = ad.tanh(h * ad.exp(q[:1, :1]) * 0.1 + h * 0.9 + Y[t])
        total = total + ad.sum(h * q, axis=1)
    return total


def _scanned(q):
    def step(carry, y):
        h, total = carry
        h = ad.tanh(h * ad.exp(q[:1, :1]) * 0.1 + h * 0.9 + y)
        return (h, total + ad.sum(h * q, axis=1)), h
    (h, total), hs = ad.scan(step, (q * 0.5, ad.sum(q * 0.0, axis=1)), Y)
    assert hs.shape == (Y.shape[0],) + tuple(q.shape)
    return total


def _vg(f, x):
    """The tape's value (per chain) and the gradient of its sum."""
    return f(ad.Tensor(x)).data, ad.value_and_grad(lambda t: ad.sum(f(t)))(x)[1]


def test_scan_on_the_tape_is_the_loop_written_out():
    x = RNG.normal(size=(4, 3))
    v1, g1 = _vg(_written_out, x)
    v2, g2 = _vg(_scanned, x)
    np.testing.assert_array_equal(v1, v2)
    np.testing.assert_array_equal(g1, g2)


@pytest.mark.parametrize("f", [_scanned, _written_out])
def test_compiled_scan_and_loop_match_the_tape(f):
    comp = ad.compile(f)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileWarning)
        warnings.simplefilter("error", TraceWarning)
        for k in range(4):
            x = RNG.normal(size=(4, 3))
            v, g = comp.value_and_grad(x)
            tv, tg = _vg(f, x)
            np.testing.assert_allclose(v, tv, rtol=1e-12)
            np.testing.assert_allclose(g, tg, rtol=1e-11, atol=1e-12)
    assert comp.compiled


def test_compiled_scan_is_one_loop():
    comp = ad.compile(_scanned)
    comp.value_and_grad(RNG.normal(size=(2, 3)))
    entry = next(iter(comp._programs.values()))
    names = [e.name for e in entry.vg.eqns]
    assert names.count("scan_run") == 1 and names.count("scan_grad") == 1
    from autodiff.lower import vm
    ops = entry.exe[1].code[:, vm.F_OP]
    assert (ops == vm.OP.LOOP).sum() == 2          # forward (saving carries), reverse
    assert entry.exe[1].n_rows < 200               # independent of the 30 steps
    assert (entry.exe[0].code[:, vm.F_OP] == vm.OP.LOOP).sum() == 1   # the value alone


@pytest.mark.parametrize("reverse", [False, True])
def test_forward_loop_saving_carries_equals_a_separate_sweep(reverse, monkeypatch):
    """The backward pass reads the carries the forward loop saved; lowered with a sweep
    of its own instead (three loops), the values and gradients are the same bit for bit
    (the same rows compute the carries)."""
    from autodiff.lower import loops, vm

    def f(x):
        def body(c, y):
            c = ad.tanh(c * 0.9 + y * x[:, :1]) + ad.sin(x[:, 1:2] * c)
            return c, ad.square(c)
        c, ys = ad.scan(body, x[:, 1:], np.linspace(-1.0, 1.0, 25)[:, None, None],
                        reverse=reverse)
        return ad.sum(c, axis=1) + ad.sum(ad.sum(ys, axis=0), axis=1)

    x = RNG.normal(size=(4, 3))
    outs, n_loops = [], []
    for saving in (True, False):
        if not saving:
            monkeypatch.setattr(loops, "grad_scans", lambda prog: frozenset())
        comp = ad.compile(f)
        outs.append([comp.value_and_grad(x + k) for k in range(2)])
        ex = next(iter(comp._programs.values())).exe[1]
        n_loops.append(int((ex.code[:, vm.F_OP] == vm.OP.LOOP).sum()))
    assert n_loops == [2, 3]
    for (v1, g1), (v2, g2) in zip(*outs):
        np.testing.assert_array_equal(v1, v2)
        np.testing.assert_array_equal(g1, g2)
    tv, tg = _vg(f, x)
    np.testing.assert_allclose(outs[0][0][1], tg, rtol=1e-11, atol=1e-12)


def test_scan_pytrees_reverse_and_length():
    def f(c, x):
        return {"a": c["a"] + x[0], "b": c["b"] * 2.0}, (x[1], None)
    init = {"a": np.zeros(2), "b": np.ones(())}
    xs = (np.arange(6.0).reshape(3, 2), np.arange(3.0))
    c, (ys0, none) = ad.scan(f, init, xs, reverse=True)
    np.testing.assert_array_equal(c["a"], [6.0, 9.0])
    assert float(c["b"]) == 8.0 and none is None
    np.testing.assert_array_equal(ys0, [0.0, 1.0, 2.0])
    c, ys = ad.scan(lambda c, _: (c + 1.0, c), 0.0, None, length=4)
    assert float(c) == 4.0
    np.testing.assert_array_equal(ys, [0.0, 1.0, 2.0, 3.0])


def test_reverse_scan_compiles():
    def f(q):
        carry, ys = ad.scan(lambda c, y: (c * 0.8 + y * q[:, 0], c), q[:, 1],
                            Y[:, 0], reverse=True)
        return carry + ad.sum(ys * ys, axis=0)
    comp = ad.compile(f, warn=False)
    for _ in range(3):
        x = RNG.normal(size=(5, 2))
        v, g = comp.value_and_grad(x)
        tv, tg = _vg(f, x)
        np.testing.assert_allclose(v, tv, rtol=1e-12)
        np.testing.assert_allclose(g, tg, rtol=1e-11)
    assert comp.compiled


def test_parameters_closed_over_get_their_gradient_in_a_compiled_step():
    """A training step whose scan body uses a parameter: the cotangents of the parameter
    are summed over the steps (compiled) as the tape sums them (written out)."""
    def cost(x):
        c, _ = ad.scan(lambda h, y: (ad.tanh(h @ W + y), None), x, Y)
        return ad.sum(c * c)
    step = ad.compile(cost, params=[W])
    x = RNG.normal(size=(2, 3))
    for _ in range(3):
        W.grad = None
        step.backward(x)
        g_comp = W.grad.copy()
        W.grad = None
        cost(x).backward()
        np.testing.assert_allclose(g_comp, W.grad, rtol=1e-11)
    assert all(e.exe is not None for e in step._programs.values())


def test_nested_scans_and_fori_loop_with_a_traced_index():
    def f(q):
        def outer(c, y):
            inner, _ = ad.scan(lambda d, z: (d * 0.5 + z, None), c, ad.reshape(y, (3, 1)))
            return inner, None
        c, _ = ad.scan(outer, q, Y[:5])
        # fori_loop indexing with its (traced) counter
        acc = ad.fori_loop(0, 4, lambda i, a: a + ad.sum(q * ad.tensor(Y)[i]), 0.0)
        return ad.sum(c, axis=1) + acc
    comp = ad.compile(f, warn=False)
    for _ in range(3):
        x = RNG.normal(size=(2, 3))
        v, g = comp.value_and_grad(x)
        tv, tg = _vg(f, x)
        np.testing.assert_allclose(v, tv, rtol=1e-12)
        np.testing.assert_allclose(g, tg, rtol=1e-11)
    assert comp.compiled


def test_scan_errors():
    with pytest.raises(ValueError, match="disagree"):
        ad.scan(lambda c, x: (c, None), 0.0, (np.zeros(3), np.zeros(4)))
    with pytest.raises(ValueError, match="give xs or length"):
        ad.scan(lambda c, x: (c, None), 0.0)
    with pytest.raises(TypeError, match="pair"):
        ad.scan(lambda c, x: c, 0.0, np.zeros(3))
    with pytest.raises(ValueError, match="changes shape"):
        ad.scan(lambda c, x: (np.zeros(2), None), np.zeros(3), np.zeros(3))
    with pytest.raises(TypeError, match="changes dtype"):
        ad.scan(lambda c, x: (c.astype(np.float32), None), np.zeros(3), np.zeros(3))
    with pytest.raises(TypeError, match="callable"):
        ad.scan(3, 0.0, np.zeros(3))
