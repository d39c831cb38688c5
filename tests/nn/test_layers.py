"""Layers: Linear init and forward, MLP shapes and gradients, Sequential, activations."""
import math

import numpy as np
import pytest

import autodiff as ad
from zsarray import nn, optim


def test_linear_init_bounds_layout_and_dtype():
    layer = nn.Linear(200, 300, rng=0)
    bound = 1 / math.sqrt(200)
    w, b = layer.weight.data, layer.bias.data
    assert w.shape == (200, 300) and b.shape == (300,)
    assert w.dtype == np.float32 and b.dtype == np.float32
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    assert np.abs(b).max() <= bound and np.abs(b).max() > 0.9 * bound
    assert np.std(w) == pytest.approx(bound / math.sqrt(3), rel=0.02)   # uniform's std
    assert abs(np.mean(w)) < 0.01 * bound
    assert layer.weight.requires_grad and layer.bias.requires_grad
    np.testing.assert_array_equal(nn.Linear(200, 300, rng=0).weight.data, w)   # seeded
    assert nn.Linear(3, 2, dtype=np.float64, bias=False, rng=1).weight.dtype == np.float64
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias"]
    assert nn.Linear(3, 2).weight.shape == (3, 2)          # rng=None: fresh entropy


def test_linear_forward_shapes_and_values():
    layer = nn.Linear(4, 3, dtype=np.float64, rng=0)
    w, b = layer.weight.data, layer.bias.data
    x = np.random.default_rng(1).standard_normal((2, 5, 4))
    np.testing.assert_allclose(layer(x).data, x @ w + b)
    assert layer(x[0]).shape == (5, 3) and layer(x[0, 0]).shape == (3,)
    assert layer(ad.tensor(x)).shape == (2, 5, 3)
    np.testing.assert_allclose(layer([1.0, 0.0, 0.0, 0.0]).data, w[0] + b)   # a list
    no_bias = nn.Linear(4, 3, bias=False, rng=0)
    assert no_bias.bias is None and len(no_bias.parameters()) == 1
    np.testing.assert_allclose(no_bias(x).data, x @ no_bias.weight.data, rtol=1e-6)
    assert "in_features=4, out_features=3, bias=True" in repr(layer)


def test_linear_matches_torch():
    torch = pytest.importorskip("torch")
    layer = nn.Linear(4, 3, dtype=np.float64, rng=0)
    x = np.random.default_rng(1).standard_normal((5, 4))
    ours = layer(x).data
    theirs = torch.nn.functional.linear(torch.from_numpy(x), torch.from_numpy(layer.weight.data.T),
                                        torch.from_numpy(layer.bias.data)).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)


@pytest.mark.parametrize("make,exc,match", [
    (lambda: nn.Linear(0, 3), ValueError, "in_features must be a positive integer, got 0"),
    (lambda: nn.Linear(3, 2.5), ValueError, "out_features must be a positive integer"),
    (lambda: nn.Linear(3, 2, rng="seed"), TypeError, "rng: expected an int seed"),
    (lambda: nn.Linear(3, 2)(np.ones((4, 2))), ValueError,
     r"input x has shape \(4, 2\), expected \[..., 3\]"),
    (lambda: nn.Linear(3, 2)(np.float32(1.0)), ValueError, r"input x has shape \(\)"),
])
def test_linear_errors(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_mlp_forward_shape_structure_and_activations():
    mlp = nn.MLP([6, 5, 4, 2], activation="tanh", output_activation="sigmoid", rng=0)
    x = np.random.default_rng(0).standard_normal((7, 6)).astype(np.float32)
    y = mlp(x)
    assert y.shape == (7, 2) and y.dtype == np.float32
    h = np.tanh(x @ mlp.layers[0].weight.data + mlp.layers[0].bias.data)
    h = np.tanh(h @ mlp.layers[1].weight.data + mlp.layers[1].bias.data)
    expected = 1 / (1 + np.exp(-(h @ mlp.layers[2].weight.data + mlp.layers[2].bias.data)))
    np.testing.assert_allclose(y.data, expected, rtol=1e-5)
    assert [n for n, _ in mlp.named_parameters()][:3] == ["layers.0.weight", "layers.0.bias",
                                                          "layers.1.weight"]
    assert len(mlp.parameters()) == 6
    custom = nn.MLP([3, 4, 1], activation=nn.LeakyReLU(0.2), rng=0)
    assert custom(np.ones((2, 3))).shape == (2, 1)
    assert nn.MLP([3, 1], activation=lambda v: v, rng=0)(np.ones(3)).shape == (1,)
    assert "sizes=[6, 5, 4, 2]" in repr(mlp)


@pytest.mark.parametrize("activation", ["tanh", "softplus", "elu", "sigmoid"])
def test_mlp_gradient_check_float64(activation):
    mlp = nn.MLP([3, 4, 2], activation=activation, dtype=np.float64, rng=0)
    x = np.random.default_rng(1).standard_normal((5, 3))
    ad.check_grads(lambda x_: mlp(x_), x)                       # input gradient
    slots = [(layer, name) for layer in mlp.layers for name in ("weight", "bias")]
    originals = [getattr(m, n) for m, n in slots]

    def f(*ps):
        for (m, n), p in zip(slots, ps):
            setattr(m, n, p)
        return mlp(x)
    try:
        ad.check_grads(f, *[p.data for p in originals])          # parameter gradients
    finally:
        for (m, n), p in zip(slots, originals):
            setattr(m, n, p)


def test_mlp_backward_fills_parameter_grads():
    mlp = nn.MLP([3, 8, 1], dtype=np.float64, rng=0)
    loss = ad.sum(mlp(np.ones((4, 3))) ** 2)
    loss.backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in mlp.parameters())


def test_tiny_regression_with_adam_reduces_loss():
    rng = np.random.default_rng(0)
    x = np.linspace(-2, 2, 64, dtype=np.float32)[:, None]
    y = np.sin(x) + 0.05 * rng.standard_normal(x.shape).astype(np.float32)
    mlp = nn.MLP([1, 16, 16, 1], activation="tanh", rng=rng)
    opt = optim.Adam(mlp.parameters(), lr=1e-2)

    def loss_fn():
        return ad.mean((mlp(x) - y) ** 2)
    first = float(loss_fn().data)
    for _ in range(300):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
    last = float(loss_fn().data)
    assert last < 0.05 * first and last < 0.01


@pytest.mark.parametrize("make,exc,match", [
    (lambda: nn.MLP([3]), ValueError, r"sizes needs at least \[in, out\]"),
    (lambda: nn.MLP([3, -1]), ValueError, r"sizes\[1\] must be a positive integer"),
    (lambda: nn.MLP([3, 2], activation="swish"), ValueError, "unknown activation 'swish'"),
    (lambda: nn.MLP([3, 2], activation=None), ValueError, "activation must not be None"),
    (lambda: nn.MLP([3, 2], output_activation=3), TypeError,
     "MLP output_activation: expected an activation name or a callable"),
])
def test_mlp_errors(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_sequential():
    seq = nn.Sequential(nn.Linear(3, 4, rng=0), nn.Tanh(), ad.relu, nn.Linear(4, 2, rng=1))
    x = np.ones((5, 3), dtype=np.float32)
    h = np.maximum(np.tanh(x @ seq[0].weight.data + seq[0].bias.data), 0)
    np.testing.assert_allclose(seq(x).data, h @ seq[3].weight.data + seq[3].bias.data,
                               rtol=1e-6)
    assert len(seq) == 4 and list(seq)[1] is seq[1]
    assert [n for n, _ in seq.named_parameters()] == ["layers.0.weight", "layers.0.bias",
                                                      "layers.3.weight", "layers.3.bias"]
    with pytest.raises(TypeError, match=r"argument 1 is not callable \(int\)"):
        nn.Sequential(nn.Tanh(), 3)


X = np.array([-3.0, -0.5, 0.25, 2.0, 800.0])


@pytest.mark.parametrize("module,expected", [
    (nn.ReLU(), np.maximum(X, 0)),
    (nn.Tanh(), np.tanh(X)),
    (nn.Sigmoid(), 1 / (1 + np.exp(-X))),
    (nn.Softplus(), np.logaddexp(0, X)),
    (nn.LeakyReLU(0.1), np.where(X > 0, X, 0.1 * X)),
    (nn.ELU(1.5), np.where(X > 0, X, 1.5 * np.expm1(np.minimum(X, 0)))),
    (nn.Identity(), X),
], ids=lambda v: type(v).__name__ if isinstance(v, nn.Module) else "")
def test_activation_values_and_finite_gradients(module, expected):
    np.testing.assert_allclose(np.asarray(module(ad.tensor(X)).data), expected, rtol=1e-12)
    x = ad.tensor(X, requires_grad=True)
    out = module(x)
    if out is not x:
        ad.sum(out).backward()
        assert np.all(np.isfinite(x.grad))          # no 0 * inf from the unused branch


@pytest.mark.parametrize("fn", [lambda v: nn.leaky_relu(v, 0.2), lambda v: nn.elu(v, 0.7)])
def test_piecewise_activation_gradients(fn):
    x = np.array([-2.0, -0.3, 0.4, 1.7])          # away from the kink at 0
    ad.check_grads(fn, x)


def test_activation_reprs_and_lookup():
    assert repr(nn.LeakyReLU(0.2)) == "LeakyReLU(negative_slope=0.2)"
    assert repr(nn.ELU()) == "ELU(alpha=1.0)"
    assert nn.get_activation("linear") is nn.identity and nn.get_activation(None) is None
