"""Requests an optimizer or schedule cannot honour are errors naming what differs, never a
silent change: another optimizer's state dict, a state of other shapes or names, a
negative / non-finite learning rate or factor, eps = 0, a group edited between steps."""
import math

import numpy as np
import pytest

import autodiff as ad
from zsarray import optim


def _params(seed=0, shapes=((4, 3), (3,))):
    rng = np.random.default_rng(seed)
    return [ad.tensor(rng.standard_normal(s), requires_grad=True) for s in shapes]


def _stepped(cls, params=None, steps=2, **hyper):
    params = _params() if params is None else params
    opt = cls(params, **hyper)
    rng = np.random.default_rng(1)
    for _ in range(steps):
        for p in params:
            p.grad = rng.standard_normal(p.shape)
        opt.step()
    return opt


# --------------------------------------------------------------------------- state dicts
PAIRS = [(optim.Adam, dict(lr=0.5), optim.SGD, dict(lr=0.01, momentum=0.9)),
         (optim.SGD, dict(lr=0.5, momentum=0.9), optim.Adam, dict(lr=0.01)),
         (optim.Adam, dict(lr=0.5), optim.Adamax, dict(lr=0.01)),
         (optim.RMSprop, dict(lr=0.5), optim.Adam, dict(lr=0.01))]


@pytest.mark.parametrize("src, src_hyper, dst, dst_hyper", PAIRS,
                         ids=[f"{a.__name__}-into-{c.__name__}" for a, _, c, _ in PAIRS])
def test_another_optimizers_state_dict_is_refused(src, src_hyper, dst, dst_hyper):
    # before: Adam's state loaded into SGD set lr 0.5 and added betas / eps / amsgrad
    saved = _stepped(src, **src_hyper).state_dict()
    target = _stepped(dst, **dst_hyper)
    before = target.state_dict()
    with pytest.raises(ValueError, match="another optimizer's state dict") as e:
        target.load_state_dict(saved)
    assert f"{dst.__name__} has {sorted(target.defaults)}" in str(e.value)
    after = target.state_dict()
    assert after["param_groups"] == before["param_groups"]
    for i, s in before["state"].items():
        for k, v in s.items():
            np.testing.assert_array_equal(after["state"][i][k], v)


def test_state_dict_for_other_shapes_or_layout_is_refused():
    saved = _stepped(optim.Adam, params=_params(shapes=((4, 3), (5,)))).state_dict()
    with pytest.raises(ValueError, match=r"state 'exp_avg' of parameter 1 has shape \(5,\), "
                                         r"the parameter has shape \(3,\)"):
        _stepped(optim.Adam).load_state_dict(saved)
    saved = _stepped(optim.Adam).state_dict()
    saved["param_groups"][0]["params"] = [1, 0]
    with pytest.raises(ValueError, match=r"lists parameters \[1, 0\], expected indices 0..1"):
        _stepped(optim.Adam).load_state_dict(saved)


@pytest.mark.parametrize("edit, match", [
    (lambda s: s.update(exp_inf=s.pop("exp_avg_sq")), r"state \['exp_inf'\], which Adam does "
                                                      r"not keep"),
    (lambda s: s.pop("exp_avg_sq"), r"lacks \['exp_avg_sq'\]"),
    (lambda s: s.update(step=-1), "'step' of parameter 0 must be a non-negative integer"),
    (lambda s: s.update(step=2.5), "'step' of parameter 0 must be a non-negative integer"),
    (lambda s: s["exp_avg"].__setitem__((0, 0), np.nan), "'exp_avg' of parameter 0 holds NaN"),
    (lambda s: s.update(exp_avg=1.0), r"'exp_avg' of parameter 0 has shape float"),
])
def test_damaged_parameter_state_is_refused(edit, match):
    saved = _stepped(optim.Adam).state_dict()
    edit(saved["state"][0])
    with pytest.raises(ValueError, match=match):
        _stepped(optim.Adam).load_state_dict(saved)


def test_scalar_parameter_state_round_trip():
    # before: the momentum buffer of a shape-() parameter came back as a Python float and
    # the next step failed inside the kernel
    a = ad.tensor(np.array(1.5), requires_grad=True)
    opt_a = optim.SGD([a], lr=0.1, momentum=0.9)
    a.grad = np.array(2.0)
    opt_a.step()
    b = ad.tensor(a.data.copy(), requires_grad=True)
    opt_b = optim.SGD([b], lr=0.1, momentum=0.9)
    opt_b.load_state_dict(opt_a.state_dict())
    for opt, p in ((opt_a, a), (opt_b, b)):
        p.grad = np.array(1.0)
        opt.step()
    # buf = 2 -> 0.9 * 2 + 1 = 2.8; p = 1.5 - 0.2 - 0.28
    assert a.data == pytest.approx(1.02, abs=1e-14) and b.data == a.data


def test_load_state_dict_is_all_or_nothing():
    groups = lambda: [{"params": _params(0)}, {"params": _params(1), "lr": 0.2}]  # noqa: E731
    saved = optim.SGD(groups(), lr=0.3).state_dict()
    saved["param_groups"][1]["lr"] = -1.0
    opt = optim.SGD(groups(), lr=0.1)
    with pytest.raises(ValueError, match="SGD: lr must be >= 0.0"):
        opt.load_state_dict(saved)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.2]   # before: [0.3, 0.2]


# --------------------------------------------------------------------------- hyperparameters
@pytest.mark.parametrize("make, exc, match", [
    (lambda p: optim.SGD(p, lr=math.inf), ValueError, "SGD: lr must be >= 0.0 and finite"),
    (lambda p: optim.SGD(p, lr=math.nan), ValueError, "SGD: lr must be"),
    (lambda p: optim.SGD(p, lr="0.1"), TypeError, "SGD: lr must be a real number, got str"),
    (lambda p: optim.SGD(p, lr=None), TypeError, "lr must be a real number"),
    (lambda p: optim.SGD(p, lr=0.1, weight_decay=-1e-4), ValueError, "weight_decay"),
    (lambda p: optim.Adam(p, eps=0.0), ValueError, r"Adam: eps must be > 0.0"),
    (lambda p: optim.Adamax(p, eps=0.0), ValueError, r"Adamax: eps must be > 0.0"),
    (lambda p: optim.RMSprop(p, eps=0.0), ValueError, r"RMSprop: eps must be > 0.0"),
    (lambda p: optim.Adam(p, betas=(-0.1, 0.9)), ValueError, r"betas\[0\] must be in"),
    (lambda p: optim.Adam(p, betas=(0.9, math.nan)), ValueError, r"betas\[1\] must be in"),
    (lambda p: optim.Adam(p, lr=-1e-3), ValueError, "Adam: lr must be >= 0.0"),
    (lambda p: optim.RMSprop(p, alpha=math.nan), ValueError, "alpha"),
    # before: accepted, and step() skipped the parameter forever (its grad stays None)
    (lambda p: optim.Adam(p + [ad.tensor(np.zeros(2))]), ValueError,
     "parameter 2 has requires_grad=False"),
])
def test_bad_hyperparameters(make, exc, match):
    with pytest.raises(exc, match=match):
        make(_params())


@pytest.mark.parametrize("value", [-0.1, math.nan, math.inf])
def test_group_edited_between_steps_is_checked(value):
    w = _params()
    opt = optim.SGD(w, lr=0.1)
    before = [p.data.copy() for p in w]
    opt.param_groups[0]["lr"] = value
    for p in w:
        p.grad = np.ones(p.shape)
    with pytest.raises(ValueError, match="SGD: lr must be"):
        opt.step()
    for p, b in zip(w, before):
        np.testing.assert_array_equal(p.data, b)


# --------------------------------------------------------------------------- schedules
def _sgd(lr=1.0):
    return optim.SGD(_params(), lr=lr)


@pytest.mark.parametrize("factor, shown", [(-0.5, "-0.5"), (math.nan, "nan"),
                                           (math.inf, "inf"), (None, "None")])
def test_lambda_factor_negative_or_not_finite_at_some_epoch(factor, shown):
    # before: lr_lambda(3) = -0.5 set lr -0.5 and SGD ascended from epoch 3 on
    opt = _sgd()
    sched = optim.LambdaLR(opt, lambda e: 1.0 if e < 3 else factor)
    sched.step()
    sched.step()
    with pytest.raises(ValueError, match=f"group 0 at epoch 3 would be {shown}"):
        sched.step()
    assert opt.param_groups[0]["lr"] == 1.0 and sched.get_last_lr() == [1.0]


def test_lambda_factor_negative_at_epoch_0():
    with pytest.raises(ValueError, match="epoch 0 would be -2.0"):
        optim.LambdaLR(_sgd(2.0), lambda e: -1.0)


@pytest.mark.parametrize("make, exc, match", [
    (lambda o: optim.ExponentialLR(o, gamma=-0.5), ValueError, "gamma must be finite and >= 0"),
    (lambda o: optim.ExponentialLR(o, gamma=math.nan), ValueError, "gamma"),
    (lambda o: optim.StepLR(o, 2, gamma=-1.0), ValueError, "StepLR: gamma"),
    (lambda o: optim.StepLR(o, math.nan), ValueError, "step_size must be a positive integer"),
    (lambda o: optim.StepLR(o, "2"), TypeError, "step_size must be an integer"),
    (lambda o: optim.CosineAnnealingLR(o, 10, eta_min=-0.1), ValueError, "eta_min must be"),
    (lambda o: optim.CosineAnnealingLR(o, 0), ValueError, "T_max must be a positive"),
])
def test_schedule_parameters(make, exc, match):
    with pytest.raises(exc, match=match):
        make(_sgd())


def test_schedule_state_dict_of_another_schedule_or_other_groups():
    saved = optim.ExponentialLR(_sgd(), gamma=0.5).state_dict()
    with pytest.raises(ValueError, match=r"missing keys \['T_max', 'eta_min'\]"):
        optim.CosineAnnealingLR(_sgd(), 4).load_state_dict(
            {k: v for k, v in saved.items() if k != "gamma"})
    two = optim.SGD([{"params": _params(0)}, {"params": _params(1)}], lr=1.0)
    with pytest.raises(ValueError, match="'base_lrs' has 1 entries, the optimizer has 2"):
        optim.ExponentialLR(two, gamma=0.5).load_state_dict(saved)
    saved["base_lrs"] = [-1.0]
    with pytest.raises(ValueError, match=r"base_lrs\[0\] must be finite and >= 0"):
        optim.ExponentialLR(_sgd(), gamma=0.5).load_state_dict(saved)
