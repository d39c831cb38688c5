"""Gradient clipping: returned norms, scaling, value clipping, errors."""
import numpy as np
import pytest

import autodiff as ad
from zsarray import optim


def _params(grads, dtype=np.float64):
    out = []
    for g in grads:
        p = ad.tensor(np.zeros(np.shape(g), dtype=dtype), requires_grad=True)
        p.grad = None if g is None else np.array(g, dtype=dtype)
        out.append(p)
    return out


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_clip_grad_norm_scales_to_max_norm(dtype):
    ps = _params([[3.0, 4.0], [[12.0]], None], dtype)
    total = optim.clip_grad_norm_(ps, max_norm=6.5)
    assert total == pytest.approx(13.0)
    coef = 6.5 / (13.0 + 1e-6)
    np.testing.assert_allclose(ps[0].grad, [3 * coef, 4 * coef], rtol=1e-6)
    np.testing.assert_allclose(ps[1].grad, [[12 * coef]], rtol=1e-6)
    assert ps[0].grad.dtype == dtype and ps[2].grad is None
    new_norm = np.sqrt(sum(float((p.grad ** 2).sum()) for p in ps[:2]))
    assert new_norm == pytest.approx(6.5, rel=1e-6)


def test_clip_grad_norm_leaves_small_gradients_and_other_orders():
    ps = _params([[3.0, -4.0], [12.0]])
    assert optim.clip_grad_norm_(ps, 20.0) == pytest.approx(13.0)
    np.testing.assert_array_equal(ps[0].grad, [3.0, -4.0])
    assert optim.clip_grad_norm_(ps, 100.0, norm_type=1) == pytest.approx(19.0)
    assert optim.clip_grad_norm_(ps, 100.0, norm_type=float("inf")) == pytest.approx(12.0)
    assert optim.clip_grad_norm_(ps[0], 1.0) == pytest.approx(5.0)    # a single Tensor
    np.testing.assert_allclose(np.linalg.norm(ps[0].grad), 1.0, rtol=1e-6)
    assert optim.clip_grad_norm_(_params([None]), 1.0) == 0.0


def test_clip_grad_norm_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal(s) for s in [(4, 3), (3,), (7,)]]
    for norm_type in (2.0, 1.0, 3.0, float("inf")):
        ps = _params(grads)
        tp = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
        for t, g in zip(tp, grads):
            t.grad = torch.from_numpy(g.copy())
        ours = optim.clip_grad_norm_(ps, 0.5, norm_type=norm_type)
        theirs = torch.nn.utils.clip_grad_norm_(tp, 0.5, norm_type=norm_type)
        assert ours == pytest.approx(float(theirs), rel=1e-12)
        for p, t in zip(ps, tp):
            np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=1e-12)


@pytest.mark.filterwarnings("ignore:invalid value encountered")   # inf * 0, as in torch
def test_clip_grad_norm_nonfinite():
    ps = _params([[np.inf, 1.0]])
    with pytest.raises(RuntimeError, match="total gradient norm is inf"):
        optim.clip_grad_norm_(ps, 1.0, error_if_nonfinite=True)
    assert optim.clip_grad_norm_(ps, 1.0) == np.inf     # clips anyway, as torch


def test_clip_grad_value():
    ps = _params([[-3.0, 0.5, 2.0], None])
    ps[0].grad = np.broadcast_to(ps[0].grad, (3,))        # read-only: replaced by a copy
    optim.clip_grad_value_(ps, 1.0)
    np.testing.assert_array_equal(ps[0].grad, [-1.0, 0.5, 1.0])
    assert ps[1].grad is None


CLIP_ERRORS = [
    (lambda: optim.clip_grad_norm_(_params([[1.0]]), -1.0), ValueError, "max_norm must be >= 0"),
    (lambda: optim.clip_grad_norm_(_params([[1.0]]), 1.0, norm_type=0), ValueError,
     "norm_type must be > 0"),
    (lambda: optim.clip_grad_norm_([np.ones(2)], 1.0), TypeError,
     "parameter 0 must be an autodiff Tensor"),
    (lambda: optim.clip_grad_value_(_params([[1.0]]), -0.5), ValueError,
     "clip_value must be >= 0"),
]


@pytest.mark.parametrize("make,exc,match", CLIP_ERRORS)
def test_clip_errors(make, exc, match):
    with pytest.raises(exc, match=match):
        make()
