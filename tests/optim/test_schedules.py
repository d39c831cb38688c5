"""Learning-rate schedules: hand-computed PyTorch lr sequences, torch side by side, errors."""
import math

import numpy as np
import pytest

import autodiff as ad
from zsarray import optim


def _opt(lr=1.0, n_groups=1):
    groups = [{"params": [ad.tensor(np.zeros(2), requires_grad=True)]} for _ in range(n_groups)]
    return optim.SGD(groups, lr=lr)


def _lrs(sched, n):
    """The lr in effect at epochs 0..n-1 (read before each step, as a training loop sees it)."""
    out = []
    for _ in range(n):
        out.append(sched.optimizer.param_groups[0]["lr"])
        sched.step()
    return out


C4 = (1 + math.cos(math.pi / 4)) / 2          # cosine schedule with T_max = 4 at t = 1

HAND = [
    ("StepLR", dict(step_size=3, gamma=0.1), 0.1,
     [0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.001, 0.001]),
    ("ExponentialLR", dict(gamma=0.5), 1.0, [1.0, 0.5, 0.25, 0.125, 0.0625]),
    ("CosineAnnealingLR", dict(T_max=4), 1.0,
     [1.0, C4, 0.5, 1 - C4, 0.0, 1 - C4, 0.5, C4, 1.0, C4]),
    ("CosineAnnealingLR", dict(T_max=4, eta_min=0.1), 1.0,
     [1.0, 0.1 + 0.9 * C4, 0.55, 0.1 + 0.9 * (1 - C4), 0.1, 0.1 + 0.9 * (1 - C4), 0.55]),
    ("LambdaLR", dict(lr_lambda=lambda e: 0.95 ** e), 2.0, [2.0 * 0.95 ** e for e in range(6)]),
]


@pytest.mark.parametrize("name,kwargs,lr,expected", HAND, ids=[h[0] for h in HAND])
def test_lr_sequence_hand_computed(name, kwargs, lr, expected):
    sched = getattr(optim, name)(_opt(lr), **kwargs)
    np.testing.assert_allclose(_lrs(sched, len(expected)), expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name,kwargs,lr,expected", HAND, ids=[h[0] for h in HAND])
def test_lr_sequence_matches_torch(name, kwargs, lr, expected):
    torch = pytest.importorskip("torch")
    topt = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=lr)
    tsched = getattr(torch.optim.lr_scheduler, name)(topt, **kwargs)
    sched = getattr(optim, name)(_opt(lr), **kwargs)
    for epoch in range(25):
        assert sched.get_last_lr() == pytest.approx(tsched.get_last_lr(), rel=1e-13, abs=1e-16)
        topt.step()
        tsched.step()
        sched.step()


def test_schedule_drives_the_update_and_sets_initial_lr():
    opt = _opt(lr=1.0)
    sched = optim.StepLR(opt, step_size=1, gamma=0.5)
    w = opt.param_groups[0]["params"][0]
    for expected_lr in (1.0, 0.5, 0.25):
        before = w.data.copy()
        w.grad = np.ones(2)
        opt.step()
        sched.step()
        np.testing.assert_allclose(before - w.data, expected_lr)
    assert opt.param_groups[0]["initial_lr"] == 1.0 and sched.last_epoch == 3


def test_lambda_per_group_and_state_dict_round_trip():
    opt = _opt(lr=1.0, n_groups=2)
    sched = optim.LambdaLR(opt, [lambda e: 1.0 / (e + 1), lambda e: 2.0])
    assert sched.get_last_lr() == [1.0, 2.0]
    sched.step()
    assert sched.get_last_lr() == [0.5, 2.0]
    state = sched.state_dict()
    assert "lr_lambdas" not in state and state["last_epoch"] == 1
    other = optim.LambdaLR(_opt(lr=1.0, n_groups=2), [lambda e: 1.0 / (e + 1), lambda e: 2.0])
    other.load_state_dict(state)
    other.step()
    assert other.get_last_lr() == pytest.approx([1 / 3, 2.0])


SCHEDULE_ERRORS = [
    (lambda: optim.StepLR(_opt(), step_size=0), ValueError, "step_size must be a positive"),
    (lambda: optim.CosineAnnealingLR(_opt(), T_max=2.5), ValueError, "T_max must be a positive"),
    (lambda: optim.LambdaLR(_opt(), [lambda e: 1.0] * 2), ValueError, "expected 1 lr_lambdas"),
    (lambda: optim.LambdaLR(_opt(), 0.5), TypeError, "lr_lambda must be callable"),
    (lambda: optim.ExponentialLR("sgd", gamma=0.5), TypeError, "expected an optimizer"),
    (lambda: optim.StepLR(_opt(), 2).load_state_dict({"bogus": 1}), ValueError,
     r"unexpected keys \['bogus'\]"),
]


@pytest.mark.parametrize("make,exc,match", SCHEDULE_ERRORS)
def test_schedule_errors(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_base_scheduler_is_abstract():
    sched = optim.LRScheduler(_opt())
    with pytest.raises(NotImplementedError):
        sched.step()
