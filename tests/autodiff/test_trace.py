"""autodiff.trace: recorded once per input shape, replayed without the tape."""
import warnings

import numpy as np
import pytest

import autodiff as ad
from autodiff import TraceWarning

RNG = np.random.default_rng(3)
X = RNG.normal(size=(7, 4))
Y = (RNG.random(7) < 0.5).astype(float)
W = ad.tensor(RNG.normal(size=(4, 3)), requires_grad=True)    # a parameter, not the input
M = np.linalg.cholesky(np.cov(RNG.normal(size=(3, 20))) + 3 * np.eye(3))


def blr(w):                                     # [C, 4] -> [C]
    logits = w @ X.T
    return ad.sum(Y * logits - ad.softplus(logits), axis=1) - 0.5 * ad.sum(w * w, axis=1)


def mixed(w):                                   # broadcasting, reuse, indexing, joins
    h = ad.tanh(w @ W) + w[:, :3] * 0.5         # a parameter Tensor and a slice
    h = ad.concatenate([h, ad.exp(-w[:, 1:2] ** 2)], axis=1)
    s = ad.einsum("ci,ci->c", h, h) + ad.log_sigmoid(w[:, 0]) * ad.sigmoid(w[:, 3])
    with ad.no_grad():
        scale = ad.sum(w * w, axis=1) + 1.0     # depends on w, no gradient through it
    return s / ad.stop_gradient(scale + 0.0) + ad.logsumexp(h, axis=1) - scale * 0.1


def gaussian(z):                                # linalg on a [C, 3] input
    r = ad.solve_triangular(M, ad.transpose(z), lower=True)
    return -0.5 * ad.sum(r * r, axis=0) + ad.sum(ad.where(z > 0, z, 2 * z), axis=1)


def scalar_out(w):
    return ad.sum(ad.square(w)) + ad.mean(ad.cos(w))


def plain(f, x):
    return ad.value_and_grad(lambda t: ad.sum(f(t)))(x)[1], f(ad.Tensor(x)).data


@pytest.mark.parametrize("f, shape", [(blr, (5, 4)), (mixed, (5, 4)), (gaussian, (6, 3)),
                                      (scalar_out, (2, 4))])
def test_replay_matches_the_tape(f, shape):
    t = ad.trace(f)
    for i in range(4):                          # trace, verify, then plain replays
        x = RNG.normal(size=shape)
        v, g = t.value_and_grad(x)
        g_ref, v_ref = plain(f, x)
        np.testing.assert_array_equal(v, v_ref)     # same ops in the same order
        np.testing.assert_array_equal(g, g_ref)     # cotangents summed in the tape's order
        assert g.shape == x.shape and g.dtype == x.dtype
        np.testing.assert_array_equal(t(x), v_ref)  # value only
    prog = t._programs[((np.ndarray, shape, np.dtype(np.float64)),)]
    assert prog.verified and prog.broken is None
    # straight-line code: one line per recorded call; the value program is the forward
    # part of the value-and-grad one
    body = prog.source.splitlines()[1:-1]
    assert len(body) == len(prog.vg.eqns) and all(" = " in line for line in body)
    fwd = [id(e) for e in prog.vg.eqns[:len(prog.value.eqns)]]
    assert fwd == [id(e) for e in prog.value.eqns]


def test_cotangents_are_summed_in_the_tapes_order():
    """A node shared at the top of the graph becomes ready late but is processed early
    by the tape's LIFO; summing the three contributions to z in reverse recording order
    instead gives 1.3000000000000003 where the tape gives 1.3."""
    def f(x):
        z = x * 1.0
        a = z * 1.0                                  # used twice: ready only at the end
        u = z * -0.7 + a
        w = u + z * 2e-16
        return ad.sum(w + a)
    x = np.ones(1)
    tape = ad.grad(f)(x)
    t = ad.trace(f)
    for _ in range(3):
        assert t.value_and_grad(x)[1][0] == tape[0] == 1.3


@pytest.mark.parametrize("f, shape", [(blr, (3, 4)), (gaussian, (2, 3))])
def test_gradient_matches_finite_differences(f, shape):
    t = ad.trace(f)
    x = RNG.normal(size=shape)
    t.value_and_grad(x)
    t.value_and_grad(x + 0.1)
    g = t.value_and_grad(x)[1]
    eps, fd = 1e-6, np.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        d = np.zeros_like(x)
        d[idx] = eps
        fd[idx] = (t(x + d).sum() - t(x - d).sum()) / (2 * eps)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)


def test_float32_and_shapes_get_their_own_programs():
    t = ad.trace(blr, max_shapes=2)
    for shape in [(1, 4), (3, 4), (1, 4)]:
        x = RNG.normal(size=shape).astype(np.float32)
        v, g = t.value_and_grad(x)
        assert g.dtype == np.float32 and v.shape == shape[:1]
    t.value_and_grad(RNG.normal(size=(8, 4)))        # a third key evicts the oldest
    assert len(t._programs) == 2


def test_parameters_are_read_at_replay_time():
    t = ad.trace(mixed)
    x = RNG.normal(size=(2, 4))
    t.value_and_grad(x)
    t.value_and_grad(x)
    old = W.data
    try:
        W.data = old * 2.0                       # rebinding a Tensor's data is seen
        np.testing.assert_array_equal(t(x), mixed(ad.Tensor(x)).data)
    finally:
        W.data = old


def test_value_dependent_control_flow_falls_back_with_a_warning():
    def f(w):
        if float(ad.sum(w)) > 0:                 # a read of a traced value
            return ad.sum(w * w, axis=1)
        return ad.sum(ad.exp(w), axis=1)

    t = ad.trace(f)
    with pytest.warns(TraceWarning, match="__float__"):
        t.value_and_grad(np.ones((2, 3)))
    x = -np.ones((2, 3))                         # the other branch: still right
    v, g = t.value_and_grad(x)
    np.testing.assert_allclose(v, np.exp(x).sum(1))
    np.testing.assert_allclose(g, np.exp(x))


def test_masks_and_gradient_free_arrays_are_replayed():
    def f(w):                                    # sign, comparisons, boolean indexing
        pos = w > 0
        return ad.sum(w * ad.sign(w), axis=1) + ad.sum(ad.where(pos, w, 0.0) ** 2, axis=1)

    t = ad.trace(f)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TraceWarning)
        for x in (np.ones((2, 3)), RNG.normal(size=(2, 3)), RNG.normal(size=(2, 3))):
            v, g = t.value_and_grad(x)
            np.testing.assert_allclose(v, np.abs(x).sum(1) + (np.maximum(x, 0) ** 2).sum(1))
            np.testing.assert_allclose(g, np.sign(x) + 2 * np.maximum(x, 0))
    assert t._programs[((np.ndarray, (2, 3), np.dtype(np.float64)),)].broken is None


def test_a_scalar_index_from_a_gradient_free_primitive_is_replayed():
    """argmax of a traced value gives a traced 0-d index: replay recomputes it."""
    f = lambda w: w[:, ad.argmax(w[0])] * 2.0              # noqa: E731
    t = ad.trace(f)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TraceWarning)
        for x in ([[0.0, 3.0], [1.0, 2.0]], [[5.0, 3.0], [1.0, 2.0]], [[1.0, 3.0], [4.0, 0.0]],
                  [[9.0, 3.0], [1.0, 2.0]]):
            v, g = t.value_and_grad(np.array(x))
            g_ref, v_ref = plain(f, np.array(x))
            np.testing.assert_array_equal(v, v_ref)
            np.testing.assert_array_equal(g, g_ref)
    assert next(iter(t._programs.values())).verified


def test_raw_array_code_on_the_data_is_followed():
    """NumPy functions and raw operators applied to ``tensor.data`` and to masks are
    recorded too (they reach the tracer through NumPy's dispatch)."""
    def f(x):
        inside = ad.less(x, 1.5) & ad.greater(x, -1.5)      # raw '&' on two masks
        scale = ad.tensor(np.exp(x.data).sum())             # NumPy on the raw data
        return ad.sum(ad.where(inside, x * x, 10.0 * x)) * scale
    t = ad.trace(f)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TraceWarning)
        for x in ([0.5, 1.0, 2.0], [0.5, 1.0, 1.0], [3.0, -2.0, 0.0], [0.1, 0.2, 0.3]):
            v, g = t.value_and_grad(np.array(x))
            g_ref, v_ref = plain(f, np.array(x))
            assert float(v) == float(v_ref) and np.array_equal(g, g_ref)
    assert next(iter(t._programs.values())).broken is None


def test_changed_ops_are_caught_on_the_verifying_call():
    state = {"n": 0}

    def f(w):                                    # impure: different ops on later calls
        state["n"] += 1
        return ad.sum(w * state["n"], axis=1)

    t = ad.trace(f)
    t.value_and_grad(np.ones((1, 2)))
    with pytest.warns(TraceWarning, match="disagree"):
        v, g = t.value_and_grad(np.ones((1, 2)))
    np.testing.assert_allclose(g, [[2.0, 2.0]])  # the normal evaluation's answer
    v, g = t.value_and_grad(np.ones((1, 2)))
    np.testing.assert_allclose(g, [[3.0, 3.0]])


def test_output_independent_of_the_input():
    t = ad.trace(lambda w: ad.sum(ad.tensor(X), axis=1))
    for _ in range(3):
        v, g = t.value_and_grad(np.ones((7, 4)))
        np.testing.assert_allclose(v, X.sum(1))
        np.testing.assert_array_equal(g, np.zeros((7, 4)))


def test_composes_with_the_tape_and_refuses_nothing_inside_grad():
    t = ad.trace(blr)
    x = RNG.normal(size=(3, 4))
    g_in = ad.grad(lambda w: ad.sum(t(w) * 2.0))(x)       # called with a Tensor: plain f
    np.testing.assert_allclose(g_in, 2 * plain(blr, x)[0], rtol=1e-14)
    assert not t._programs


def test_bad_argument():
    with pytest.raises(TypeError, match="callable"):
        ad.trace(3)


def test_samplers_use_the_replayed_gradient():
    import samplers
    from samplers.base import LogDensity

    x = RNG.normal(size=(4, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error", TraceWarning)
        lp, g = LogDensity(ad.trace(blr))(x)
    lp_ref, g_ref = LogDensity(blr)(x)
    np.testing.assert_array_equal(lp, lp_ref)
    np.testing.assert_allclose(g, g_ref, rtol=1e-14)
    runs = []
    for f in (blr, ad.trace(blr)):
        k = samplers.HMC(f, step_size=0.1, n_leapfrogs=5)
        st, rng = k.init(x), np.random.default_rng(0)
        for _ in range(20):
            st, _ = k.step(st, rng)
        runs.append(st.position)
    np.testing.assert_allclose(runs[0], runs[1], rtol=1e-12)


# ------------------------------------------------------------------ trace(f, params=...)

def _two_layer(seed=0):
    r = np.random.default_rng(seed)
    return [ad.tensor(r.normal(size=(4, 5)) * 0.5, requires_grad=True),
            ad.tensor(r.normal(size=5) * 0.1, requires_grad=True),
            ad.tensor(r.normal(size=(5, 1)) * 0.5, requires_grad=True)]


def _mlp_cost(params):
    w1, b1, w2 = params

    def cost(x):                                 # x [N, 4] -> scalar
        h = ad.tanh(x @ w1 + b1)
        y = x[:, 0] > 0                          # a mask from the input (a primitive)
        logits = ad.reshape(h @ w2, (-1,))
        return ad.mean(ad.softplus(logits) - ad.where(y, logits, 0.0)) \
            + 1e-3 * ad.sum(w1 * w1)
    return cost


def _batches(n, seed=5):
    r = np.random.default_rng(seed)
    return [r.normal(size=(8, 4)) for _ in range(n)]


def _sgd(params, lr=0.1):
    for p in params:
        p.data -= lr * p.grad
        p.grad = None


def test_traced_step_repeats_the_tape_exactly_through_training():
    """Twenty SGD steps on new batches: replayed values and parameters equal the tape's
    (the same ops in the same order)."""
    pa, pb = _two_layer(), _two_layer()
    cost_a, cost_b = _mlp_cost(pa), _mlp_cost(pb)
    step = ad.trace(cost_b, params=pb)
    assert isinstance(step, ad.TracedStep)
    for x in _batches(20):
        c = cost_a(x)
        c.backward()
        va = float(c.data)
        _sgd(pa)
        vb = float(step.backward(x))
        _sgd(pb)
        assert va == vb
    for a, b in zip(pa, pb):
        np.testing.assert_array_equal(a.data, b.data)
    prog = next(iter(step._programs.values()))
    assert prog.verified and prog.broken is None


def test_traced_step_gradients_match_finite_differences():
    params = _two_layer(1)
    cost = _mlp_cost(params)
    step = ad.trace(cost, params=params)
    x = _batches(1)[0]
    for _ in range(3):                           # trace, verify, replay
        for p in params:
            p.grad = None
        step.backward(x)
    for p in params:
        d = np.random.default_rng(2).normal(size=p.shape)
        eps = 1e-6
        p.data += eps * d
        up = float(cost(x).data)
        p.data -= 2 * eps * d
        down = float(cost(x).data)
        p.data += eps * d
        np.testing.assert_allclose(np.sum(p.grad * d), (up - down) / (2 * eps), rtol=1e-6)


def test_traced_step_accumulates_like_backward_and_skips_unused_parameters():
    params = _two_layer(2)
    unused = ad.tensor(np.ones(3), requires_grad=True)
    step = ad.trace(_mlp_cost(params), params=params + [unused])
    x = _batches(1)[0]
    for call in range(3):                        # trace, verify, replay: same rule
        for p in params:
            p.grad = None
        step.backward(x)
        first = [p.grad.copy() for p in params]
        step.backward(x)                         # no zero_grad: adds
        for p, g in zip(params, first):
            np.testing.assert_allclose(p.grad, 2 * g, rtol=1e-15)
        assert unused.grad is None
    assert params[0].grad is not params[1].grad
    # calling gives the value only and leaves .grad alone
    before = params[0].grad.copy()
    assert float(step(x)) == float(_mlp_cost(params)(x).data)
    np.testing.assert_array_equal(params[0].grad, before)


def test_traced_step_sees_parameters_rebound_or_changed_in_place():
    params = _two_layer(3)
    step = ad.trace(_mlp_cost(params), params=params)
    x = _batches(1)[0]
    for _ in range(2):
        step.backward(x)
    params[0].data = params[0].data * 2.0         # rebinding .data (as .to() or a user would)
    params[1].data += 1.0                         # in place
    for p in params:
        p.grad = None
    v = float(step.backward(x))
    ref = _mlp_cost(params)(x)
    assert v == float(ref.data)


def test_traced_step_catches_a_frozen_value_on_the_verifying_call():
    """A value the function takes from outside its inputs by rebinding (not seen by the
    replay) is caught on the verifying call, which warns and evaluates normally."""
    params = _two_layer(4)
    w1 = params[0]
    state = {"scale": ad.tensor(1.0)}

    def cost(x):
        return ad.mean(ad.tanh(x @ w1)) * state["scale"]
    step = ad.trace(cost, params=params[:1])
    xs = _batches(3)
    step.backward(xs[0])
    _sgd(params[:1])
    state["scale"] = ad.tensor(2.0)              # rebound: the replay would keep 1.0
    with pytest.warns(TraceWarning, match="disagree"):
        v = step.backward(xs[1])
    assert float(v) == float(cost(xs[1]).data)
    _sgd(params[:1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert float(step.backward(xs[2])) == float(cost(xs[2]).data)


def test_reading_a_parameters_data_is_followed():
    params = _two_layer(4)
    w1 = params[0]

    def cost(x):
        factor = ad.tensor(w1.data.sum())        # a parameter's raw data: traced too
        return ad.mean(ad.tanh(x @ w1)) * factor
    step = ad.trace(cost, params=params[:1])
    with warnings.catch_warnings():
        warnings.simplefilter("error", TraceWarning)
        for x in _batches(4):
            assert float(step.backward(x)) == float(cost(x).data)
            _sgd(params[:1])


def test_a_replay_that_raises_falls_back_and_a_shared_input_is_checked_again():
    """A boolean mask makes the shape depend on the values: at a new input the replay
    cannot even run; the call gives the tape's answer, warns, and stays on the tape."""
    def f(x):
        keep = x[ad.greater(x, 0.0)]
        return ad.sum(keep * ad.tensor(np.arange(keep.shape[0], dtype=float)))
    t = ad.trace(f)
    t.value_and_grad(np.array([1.0, 2.0, -1.0]))
    with pytest.warns(TraceWarning, match="disagree"):
        v, g = t.value_and_grad(np.array([1.0, 2.0, 3.0]))
    g_ref, v_ref = plain(f, np.array([1.0, 2.0, 3.0]))
    assert float(v) == float(v_ref) and np.array_equal(g, g_ref)


def test_verification_waits_for_inputs_other_than_the_recorded_ones():
    """A value frozen at recording (an array the caller rebinds to follow the input) is
    invisible at the recording's own input; calls at that input do not count as checks."""
    state = {}

    def f(x):
        shift = ad.tensor(state["x"])                     # captured at recording
        return ad.sum(x * x - shift)
    t = ad.trace(f)
    x0 = np.array([0.5, 1.0, 2.0])
    for _ in range(3):                                  # record, then the same input
        state["x"] = x0.copy()
        t.value_and_grad(x0)
    prog = next(iter(t._programs.values()))
    assert not prog.verified and prog.broken is None
    x1 = np.array([0.5, 1.0, 1.0])
    state["x"] = x1.copy()
    with pytest.warns(TraceWarning, match="disagree"):
        t.value_and_grad(x1)                            # the frozen shift shows here
    assert prog.broken is not None


def test_a_step_on_one_batch_is_verified_once_its_parameters_move():
    """Moved parameters make an input new: a training step on one fixed batch is
    verified after two checks (not eight), and not before its parameters moved."""
    params = _two_layer(4)[:2]
    x = _batches(1)[0]
    step = ad.trace(lambda xb: ad.mean(ad.tanh(xb @ params[0]) @ params[1]), params=params)
    step.backward(x)                                    # record
    step.backward(x)                                    # same batch, same parameters
    entry = next(iter(step._programs.values()))
    assert not entry.verified and entry.new_checks == 0
    for _ in range(2):
        _sgd(params)
        step.backward(x)
    assert entry.verified and entry.broken is None and entry.checks == 3


def test_integer_inputs_are_values_only():
    # issue 16: a zero gradient for integer input was a silently dropped request
    t = ad.trace(lambda x: ad.sum(x * 2.0))
    for _ in range(3):
        assert float(t(np.arange(3))) == 6.0
        with pytest.raises(TypeError, match="argument 0 has dtype int64"):
            t.value_and_grad(np.arange(3))


def test_traced_step_bad_arguments():
    p = ad.tensor(np.ones(2), requires_grad=True)
    with pytest.raises(ValueError, match="computed from other Tensors"):
        ad.trace(lambda x: ad.sum(x * p), params=[p * 2.0])
    with pytest.raises(TypeError, match=r"params\[1\] must be a Tensor with requires_grad"):
        ad.trace(lambda x: ad.sum(x * p), params=[p, np.ones(2)])
    with pytest.raises(TypeError, match=r"params\[0\] must be a Tensor with requires_grad"):
        ad.trace(lambda x: ad.sum(x * p), params=[ad.tensor(np.ones(2))])
    with pytest.raises(ValueError, match="twice"):
        ad.trace(lambda x: ad.sum(x * p), params=[p, p])
    with pytest.raises(TypeError, match="use .backward"):
        ad.trace(lambda x: ad.sum(x * p), params=[p]).value_and_grad(np.ones(2))


def test_traced_step_with_several_inputs():
    """A step of (inputs, targets): both are program inputs, read at every call."""
    pa, pb = _two_layer(6), _two_layer(6)

    def make(params):
        w1, b1, w2 = params

        def cost(x, y):                          # x [N, 4], y [N] in {0, 1}
            logits = ad.reshape(ad.tanh(x @ w1 + b1) @ w2, (-1,))
            return ad.mean(ad.softplus(logits) - y * logits)
        return cost
    cost_a, step = make(pa), ad.trace(make(pb), params=pb)
    r = np.random.default_rng(8)
    for _ in range(6):
        x, y = r.normal(size=(8, 4)), (r.random(8) < 0.5).astype(float)
        c = cost_a(x, y)
        c.backward()
        _sgd(pa)
        assert float(step.backward(x, y)) == float(c.data)
        _sgd(pb)
    for a, b in zip(pa, pb):
        np.testing.assert_array_equal(a.data, b.data)
    assert float(step(x, y)) == float(cost_a(x, y).data)


def test_traced_step_without_inputs():
    """A cost of the parameters alone (VI on a fixed model): no input arrays."""
    pa, pb = _two_layer(7), _two_layer(7)
    x = _batches(1)[0]
    cost_a, cost_b = _mlp_cost(pa), _mlp_cost(pb)
    step = ad.trace(lambda: cost_b(x), params=pb)
    for _ in range(4):
        c = cost_a(x)
        c.backward()
        _sgd(pa)
        assert float(step.backward()) == float(c.data)
        _sgd(pb)


def test_recordings_in_threads_do_not_interfere():
    """Each recording lives in its values (and a context variable): eight threads
    tracing at once, with a tiny switch interval, each get their own exact programs."""
    from autodiff.tracer import current_builder
    from tests.threads import run_in_threads

    def work(k):
        r = np.random.default_rng(k)
        f = [blr, mixed, gaussian, scalar_out][k % 4]
        shape = (k % 3 + 2, 3 if f is gaussian else 4)
        t = ad.trace(f)
        for _ in range(5):
            x = r.normal(size=shape)
            v, g = t.value_and_grad(x)
            g_ref, v_ref = plain(f, x)
            assert np.array_equal(v, v_ref) and np.array_equal(g, g_ref)
        assert current_builder() is None
    run_in_threads(work)
    assert current_builder() is None
