"""Optimizers: step-by-step against the NumPy reference and torch.optim, state dicts, errors."""
import numpy as np
import pytest

import autodiff as ad
from zsarray import optim

from .reference import CASES, problem, run_reference, run_zsarray

N_STEPS = 8
TOL = {np.float64: dict(rtol=1e-12, atol=1e-14), np.float32: dict(rtol=2e-6, atol=1e-7)}
IDS = [f"{n}-{'-'.join(f'{k}={v}' for k, v in h.items()) or 'defaults'}" for n, h in CASES]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name,hyper", CASES, ids=IDS)
def test_matches_numpy_reference_step_by_step(name, hyper, dtype):
    ours = run_zsarray(name, hyper, dtype, N_STEPS)
    ref = run_reference(name, hyper, dtype, N_STEPS)
    for t, (a, b) in enumerate(zip(ours, ref)):
        for pa, pb in zip(a, b):
            assert pa.dtype == dtype
            np.testing.assert_allclose(pa, pb, **TOL[dtype], err_msg=f"step {t}")
    assert not np.allclose(ours[-1][0], problem(dtype)[0][0])   # it did move


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name,hyper", CASES, ids=IDS)
def test_matches_torch_step_by_step(name, hyper, dtype):
    torch = pytest.importorskip("torch")
    params, grad = problem(dtype)
    tp = [torch.tensor(p.copy(), requires_grad=True) for p in params]
    topt = getattr(torch.optim, name)(tp, **hyper)
    ours = run_zsarray(name, hyper, dtype, N_STEPS)
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)
    for t in range(N_STEPS):
        for i, p in enumerate(tp):
            p.grad = torch.from_numpy(grad(t, i, p.detach().numpy()))
        topt.step()
        for a, b in zip(ours[t], tp):
            np.testing.assert_allclose(a, b.detach().numpy(), **tol, err_msg=f"step {t}")


def test_state_dict_names_match_torch():
    torch = pytest.importorskip("torch")
    for name, hyper in CASES:
        ours = optim.__dict__[name]([ad.tensor(np.ones(3), requires_grad=True)], **hyper)
        tp = torch.ones(3, dtype=torch.float64, requires_grad=True)
        theirs = getattr(torch.optim, name)([tp], **hyper)
        ours.param_groups[0]["params"][0].grad = np.ones(3)
        tp.grad = torch.ones(3, dtype=torch.float64)
        ours.step()
        theirs.step()
        assert (set(ours.state_dict()["state"].get(0, {}))
                == set(theirs.state_dict()["state"].get(0, {}))), name


def test_adam_converges_on_rosenbrock():
    z = ad.tensor(np.array([-1.2, 1.0]), requires_grad=True)
    opt = optim.Adam([z], lr=0.05)
    for _ in range(3000):
        opt.zero_grad()
        x, y = z[0], z[1]
        f = (1 - x) ** 2 + 100 * (y - x * x) ** 2
        f.backward()
        opt.step()
    np.testing.assert_allclose(z.data, [1.0, 1.0], atol=1e-3)


def _tensors(dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return [ad.tensor(rng.standard_normal(s).astype(dtype), requires_grad=True)
            for s in [(4, 3), (3,)]]


def _set_grads(params, seed):
    rng = np.random.default_rng(seed)
    for p in params:
        p.grad = rng.standard_normal(p.shape).astype(p.dtype)


@pytest.mark.parametrize("name,hyper", CASES, ids=IDS)
def test_state_dict_round_trip_continues_identically(name, hyper):
    a = _tensors()
    opt_a = getattr(optim, name)(a, **hyper)
    for s in range(3):
        _set_grads(a, s)
        opt_a.step()
    saved = opt_a.state_dict()
    b = [ad.tensor(p.data.copy(), requires_grad=True) for p in a]
    opt_b = getattr(optim, name)(b, lr=123.0)      # hyperparameters come from the state
    opt_b.load_state_dict(saved)
    assert opt_b.param_groups[0]["lr"] == opt_a.param_groups[0]["lr"]
    for s in range(3, 6):
        _set_grads(a, s)
        _set_grads(b, s)
        opt_a.step()
        opt_b.step()
    for pa, pb in zip(a, b):
        np.testing.assert_array_equal(pa.data, pb.data)


def test_state_dict_is_a_copy():
    a = _tensors()
    opt = optim.Adam(a)
    _set_grads(a, 0)
    opt.step()
    saved = opt.state_dict()
    before = saved["state"][0]["exp_avg"].copy()
    opt.step()
    np.testing.assert_array_equal(saved["state"][0]["exp_avg"], before)
    assert saved["state"][0]["step"] == 1 and saved["param_groups"][0]["params"] == [0, 1]


def test_parameters_without_grad_are_skipped():
    a = _tensors()
    opt = optim.Adam(a, lr=0.1)
    a[0].grad = np.ones(a[0].shape)
    before = a[1].data.copy()
    opt.step()
    np.testing.assert_array_equal(a[1].data, before)
    assert id(a[1]) not in opt.state and opt.state[id(a[0])]["step"] == 1


def test_update_is_in_place():
    a = _tensors()
    data = [p.data for p in a]
    opt = optim.SGD(a, lr=0.1, momentum=0.9)
    _set_grads(a, 0)
    expected = [d - 0.1 * p.grad for d, p in zip(data, a)]
    opt.step()
    for d, p, e in zip(data, a, expected):
        assert p.data is d
        np.testing.assert_allclose(p.data, e)


def test_param_groups_have_their_own_lr_and_zero_grad():
    a, b = _tensors()
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)
    assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[1]["lr"] == 0.5
    a0, b0 = a.data.copy(), b.data.copy()
    a.grad, b.grad = np.ones(a.shape), np.ones(b.shape)
    opt.step()
    np.testing.assert_allclose(a.data, a0 - 0.1)
    np.testing.assert_allclose(b.data, b0 - 0.5)
    opt.zero_grad(set_to_none=False)
    assert np.all(a.grad == 0) and np.all(b.grad == 0)
    opt.zero_grad()
    assert a.grad is None and b.grad is None


def test_step_with_closure_returns_loss():
    w = ad.tensor(np.array([3.0]), requires_grad=True)
    opt = optim.SGD([w], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = ad.sum(w * w)
        loss.backward()
        return loss
    with ad.no_grad():   # step() re-enables recording for the closure
        loss = opt.step(closure)
    assert float(loss.data) == 9.0
    np.testing.assert_allclose(w.data, [1.5])


def test_noncontiguous_param_and_mismatched_grad_dtype():
    w = ad.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    w.data = w.data.T                        # a transposed view: not C-contiguous
    w.grad = np.ones((3, 2), dtype=np.float32)
    expected = w.data - 0.5
    optim.SGD([w], lr=0.5).step()
    np.testing.assert_allclose(w.data, expected)
    assert w.data.flags.c_contiguous


def test_read_only_grad_is_fine():
    w = ad.tensor(np.zeros(3), requires_grad=True)
    w.grad = np.broadcast_to(np.float64(2.0), (3,))
    optim.Adam([w], lr=0.1).step()
    np.testing.assert_allclose(w.data, -0.1)
    optim.SGD([w], lr=1.0).zero_grad(set_to_none=False)
    np.testing.assert_array_equal(w.grad, 0)


def test_amsgrad_switched_on_later_and_repr():
    w = _tensors()
    opt = optim.Adam(w, lr=0.1)
    _set_grads(w, 0)
    opt.step()
    opt.param_groups[0]["amsgrad"] = True
    opt.step()
    assert "max_exp_avg_sq" in opt.state[id(w[0])]
    assert repr(opt).startswith("Adam(lr=0.1")


def _p(dtype=np.float64):
    return ad.tensor(np.zeros(2, dtype=dtype), requires_grad=True)


CONSTRUCTOR_ERRORS = [
    (lambda: optim.SGD([], lr=0.1), ValueError, "empty parameter list"),
    (lambda: optim.SGD(_p(), lr=0.1), TypeError, "single Tensor"),
    (lambda: optim.SGD([np.zeros(2)], lr=0.1), TypeError, "parameter 0 must be an autodiff Tensor"),
    (lambda: optim.SGD([ad.tensor(np.arange(3))], lr=0.1), TypeError, "dtype int64"),
    (lambda: optim.SGD([_p(np.float16)], lr=0.1), TypeError, "dtype float16"),
    (lambda: (lambda p: optim.SGD([p, p], lr=0.1))(_p()), ValueError, "more than once"),
    (lambda: optim.SGD([{"params": [_p()], "lrr": 1.0}], lr=0.1), ValueError,
     r"unknown hyperparameters \['lrr'\]"),
    (lambda: optim.SGD([{"weights": [_p()]}], lr=0.1), TypeError, "'params' key"),
    (lambda: optim.SGD([_p()], lr=-1.0), ValueError, "SGD: lr must be >= 0"),
    (lambda: optim.SGD([_p()], lr=0.1, momentum=-0.1), ValueError, "momentum must be >= 0"),
    (lambda: optim.SGD([_p()], lr=0.1, nesterov=True), ValueError, "nesterov=True needs"),
    (lambda: optim.SGD([_p()], lr=0.1, momentum=0.9, dampening=0.1, nesterov=True),
     ValueError, "dampening == 0"),
    (lambda: optim.Adam([_p()], betas=(0.9, 1.0)), ValueError,
     r"betas\[1\] must be in \[0.0, 1.0\)"),
    (lambda: optim.Adam([_p()], betas=(0.9, 0.99, 0.9)), ValueError, "betas must be a pair"),
    (lambda: optim.Adam([_p()], eps=-1e-8), ValueError, "eps must be > 0.0 and finite"),
    (lambda: optim.Adamax([_p()], weight_decay=-1.0), ValueError, "Adamax: weight_decay"),
    (lambda: optim.RMSprop([_p()], alpha=1.5), ValueError, r"alpha must be in \[0.0, 1.0\]"),
    (lambda: optim.RMSprop([_p()], momentum=-1.0), ValueError, "RMSprop: momentum"),
]


@pytest.mark.parametrize("make,exc,match", CONSTRUCTOR_ERRORS)
def test_constructor_errors(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_step_rejects_grad_of_wrong_shape():
    w = _p()
    w.grad = np.ones(3)
    with pytest.raises(ValueError, match=r"gradient has shape \(3,\) but its parameter has "
                                         r"shape \(2,\)"):
        optim.Adam([w]).step()


def test_failed_step_changes_nothing():
    """A step that raises on a later parameter updates no parameter and advances no
    state: every parameter is checked before any kernel runs."""
    a = ad.tensor(np.ones(3), requires_grad=True)
    b = ad.tensor(np.ones(2), requires_grad=True)
    opt = optim.Adam([a, b], lr=0.1)
    a.grad, b.grad = np.ones(3), np.ones(5)
    with pytest.raises(ValueError, match=r"gradient has shape \(5,\)"):
        opt.step()
    np.testing.assert_array_equal(a.data, 1.0)
    assert opt.state == {}
    b.grad = np.ones(2)
    opt.step()                               # the first step once the gradient is right
    assert opt.state[id(a)]["step"] == 1 and opt.state[id(b)]["step"] == 1
    np.testing.assert_allclose(a.data, 0.9)
    np.testing.assert_allclose(b.data, 0.9)


def test_base_optimizer_is_abstract():
    class Bare(optim.Optimizer):
        pass
    with pytest.raises(NotImplementedError):
        Bare([_p()], {})
    opt = optim.SGD([_p()], lr=0.1)
    with pytest.raises(NotImplementedError):
        optim.Optimizer._kernel(opt, None, None, None, None)


def _loaded(make_state):
    a = _tensors()
    opt = optim.Adam(a)
    _set_grads(a, 0)
    opt.step()
    return opt, make_state(opt.state_dict())


LOAD_ERRORS = [
    (lambda sd: {"state": sd["state"]}, "expected a dict with keys 'state' and 'param_groups'"),
    (lambda sd: dict(sd, param_groups=sd["param_groups"] * 2), "state has 2 parameter groups"),
    (lambda sd: dict(sd, param_groups=[dict(sd["param_groups"][0], params=[0])]),
     "parameter group 0 has 1 parameters in the state, 2 in this optimizer"),
    (lambda sd: dict(sd, state={7: sd["state"][0]}), "parameter index 7"),
    (lambda sd: dict(sd, state={1: sd["state"][0]}),
     r"state 'exp_avg' of parameter 1 has shape \(4, 3\), the parameter has shape \(3,\)"),
    (lambda sd: dict(sd, param_groups=[dict(sd["param_groups"][0], lr=-1.0)]),
     "lr must be >= 0"),
]


@pytest.mark.parametrize("edit,match", LOAD_ERRORS)
def test_load_state_dict_errors(edit, match):
    opt, bad = _loaded(edit)
    before = opt.state_dict()
    with pytest.raises(ValueError, match=match):
        opt.load_state_dict(bad)
    assert opt.param_groups[0]["lr"] == before["param_groups"][0]["lr"]   # unchanged


def test_load_state_dict_casts_and_accepts_string_indices():
    opt, sd = _loaded(lambda sd: sd)
    sd["state"] = {str(k): {n: (v.astype(np.float32) if hasattr(v, "astype") else v)
                            for n, v in s.items()} for k, s in sd["state"].items()}
    sd["state"]["0"]["step"] = np.int64(1)
    opt.load_state_dict(sd)
    assert opt.state[id(opt.param_groups[0]["params"][0])]["exp_avg"].dtype == np.float64
    assert isinstance(opt.state[id(opt.param_groups[0]["params"][0])]["step"], int)
