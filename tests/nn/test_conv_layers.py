"""zsarray.nn convolution and normalization layers: shapes, initialization, exact values
against NumPy formulas, gradients by finite differences, train/eval behaviour, buffers
in the state dict, and a conv net compiled against the tape."""
import math
import warnings

import numpy as np
import pytest

import autodiff as ad
from autodiff import CompileWarning
from zsarray import nn

from tests.autodiff import conv_ref


# ----------------------------------------------------------------------------- conv
def test_conv2d_layout_init_and_value():
    layer = nn.Conv2d(4, 6, (3, 2), stride=2, padding=1, groups=2, rng=0)
    assert layer.weight.shape == (6, 2, 3, 2) and layer.bias.shape == (6,)
    assert layer.weight.dtype == np.float32
    bound = 1 / math.sqrt(2 * 3 * 2)                  # fan_in = in / groups * kh * kw
    assert np.abs(layer.weight.data).max() <= bound and np.abs(layer.bias.data).max() <= bound
    assert np.abs(layer.weight.data).max() > 0.8 * bound    # uniform over the whole range
    x = np.random.default_rng(1).standard_normal((2, 4, 7, 6)).astype(np.float32)
    y = layer(x)
    want = conv_ref.conv2d(x.astype(np.float64), layer.weight.data.astype(np.float64),
                           layer.bias.data.astype(np.float64), 2, 1, 1, 2)
    assert y.shape == (2, 6, 4, 4) and y.dtype == np.float32
    np.testing.assert_allclose(y.data, want, rtol=1e-5, atol=1e-5)
    # same seed, same weights; parameters in attribute order
    assert np.array_equal(nn.Conv2d(4, 6, (3, 2), groups=2, rng=0).weight.data,
                          layer.weight.data)
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias"]
    with pytest.raises(ValueError, match=r"Conv2d: input x has shape \(2, 3, 7, 6\), "
                                         r"expected \[N, 4, H, W\]"):
        layer(x[:, :3])
    with pytest.raises(ValueError, match="out_channels=5 is not divisible by groups=2"):
        nn.Conv2d(4, 5, 3, groups=2)


def test_conv_transpose2d_layer_upsamples():
    layer = nn.ConvTranspose2d(3, 5, 4, stride=2, padding=1, bias=False, dtype=np.float64,
                               rng=0)
    assert layer.weight.shape == (3, 5, 4, 4) and layer.bias is None
    x = np.random.default_rng(2).standard_normal((2, 3, 5, 6))
    y = layer(x)
    assert y.shape == (2, 5, 10, 12)
    np.testing.assert_allclose(y.data, conv_ref.conv_transpose2d(x, layer.weight.data, None,
                                                                 2, 1), rtol=1e-12, atol=1e-12)
    y = nn.ConvTranspose2d(3, 5, 3, stride=2, padding=1, output_padding=1, rng=0)(x)
    assert y.shape == (2, 5, 10, 12)


def test_pools_flatten_and_sequential_shapes():
    net = nn.Sequential(nn.Conv2d(1, 6, 5, rng=0), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(6, 16, 5, rng=0), nn.ReLU(), nn.AvgPool2d(2),
                        nn.Flatten(), nn.Linear(16 * 4 * 4, 10, rng=0))
    x = np.random.default_rng(0).standard_normal((3, 1, 28, 28)).astype(np.float32)
    assert net(x).shape == (3, 10)
    assert nn.Flatten(2)(np.zeros((2, 3, 4, 5))).shape == (2, 3, 20)
    with pytest.raises(ValueError, match="start_dim=4 is out of range"):
        nn.Flatten(4)(np.zeros((2, 3, 4, 5)))
    np.testing.assert_array_equal(nn.MaxPool2d(2)(x).data, ad.max_pool2d(x, 2).data)
    np.testing.assert_array_equal(nn.AvgPool2d(3, 1, 1)(x).data, ad.avg_pool2d(x, 3, 1, 1).data)


# ----------------------------------------------------------------------------- batch norm
def _bn_ref(x, axes, w, b, eps):
    mean = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return (x - mean) / np.sqrt(var + eps) * w.reshape(shape) + b.reshape(shape)


@pytest.mark.parametrize("cls, shape", [(nn.BatchNorm2d, (4, 3, 5, 6)),
                                        (nn.BatchNorm1d, (7, 3)), (nn.BatchNorm1d, (5, 3, 4))])
def test_batch_norm_training_eval_and_running_statistics(cls, shape):
    rng = np.random.default_rng(0)
    bn = cls(3, momentum=0.2, dtype=np.float64)
    bn.weight.data[:] = [1.0, 2.0, 0.5]
    bn.bias.data[:] = [0.0, -1.0, 3.0]
    axes = (0,) + tuple(range(2, len(shape)))
    n = int(np.prod([shape[a] for a in axes]))
    rm, rv = np.zeros(3), np.ones(3)
    for k in range(3):
        x = rng.standard_normal(shape) * (k + 1) + k
        y = bn(x)
        np.testing.assert_allclose(y.data, _bn_ref(x, axes, bn.weight.data, bn.bias.data, 1e-5),
                                   rtol=1e-12, atol=1e-12)
        rm = 0.8 * rm + 0.2 * x.mean(axis=axes)
        rv = 0.8 * rv + 0.2 * x.var(axis=axes) * n / (n - 1)      # unbiased, as PyTorch
        np.testing.assert_allclose(bn.running_mean.data, rm, rtol=1e-12)
        np.testing.assert_allclose(bn.running_var.data, rv, rtol=1e-12)
    assert int(bn.num_batches_tracked.data) == 3
    bn.eval()
    x = rng.standard_normal(shape)
    sh = (1, 3) + (1,) * (len(shape) - 2)
    want = (x - rm.reshape(sh)) / np.sqrt(rv.reshape(sh) + 1e-5) * bn.weight.data.reshape(sh) \
        + bn.bias.data.reshape(sh)
    np.testing.assert_allclose(bn(x).data, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(bn.running_mean.data, rm, rtol=1e-12)   # eval: no update
    with pytest.raises(ValueError, match=r"input x has shape .* expected .* C = 3"):
        bn(np.zeros((2, 4) + shape[2:]))


def test_batch_norm_and_layer_norm_gradients():
    rng = np.random.default_rng(3)
    bn = nn.BatchNorm2d(3, dtype=np.float64)
    x = rng.standard_normal((3, 3, 4, 2))
    w, b = rng.uniform(0.5, 2, 3), rng.standard_normal(3)

    def f_bn(x, w, b):
        bn.weight, bn.bias = w, b
        return bn(x)
    ad.check_grads(f_bn, x, w, b)
    ln = nn.LayerNorm((4, 2), dtype=np.float64)
    lw, lb = rng.uniform(0.5, 2, (4, 2)), rng.standard_normal((4, 2))

    def f_ln(x, w, b):
        ln.weight, ln.bias = w, b
        return ln(x)
    ad.check_grads(f_ln, x, lw, lb)
    mean = x.mean(axis=(-2, -1), keepdims=True)
    want = (x - mean) / np.sqrt(x.var(axis=(-2, -1), keepdims=True) + 1e-5) * lw + lb
    np.testing.assert_allclose(f_ln(x, lw, lb).data, want, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match=r"LayerNorm: input x has shape \(3, 3, 2, 4\)"):
        ln(np.zeros((3, 3, 2, 4)))


def test_buffers_are_in_the_state_dict_saved_loaded_and_used_in_eval(tmp_path):
    rng = np.random.default_rng(0)
    net = nn.Sequential(nn.Conv2d(2, 4, 3, rng=0), nn.BatchNorm2d(4), nn.ReLU())
    for _ in range(3):
        net(rng.standard_normal((5, 2, 6, 6)).astype(np.float32))
    state = net.state_dict()
    assert {"layers.1.running_mean", "layers.1.running_var",
            "layers.1.num_batches_tracked"} <= set(state)
    assert "layers.1.running_mean" not in dict(net.named_parameters())
    assert [n for n, _ in net.named_buffers()] == [
        "layers.1.running_mean", "layers.1.running_var", "layers.1.num_batches_tracked"]
    path = net.save(tmp_path / "net")
    other = nn.Sequential(nn.Conv2d(2, 4, 3, rng=1), nn.BatchNorm2d(4), nn.ReLU())
    x = rng.standard_normal((2, 2, 6, 6)).astype(np.float32)
    net.eval()
    other.eval()
    assert not np.allclose(other(x).data, net(x).data)
    other.load(path)
    np.testing.assert_array_equal(other[1].running_var.data, net[1].running_var.data)
    assert int(other[1].num_batches_tracked.data) == 3
    np.testing.assert_array_equal(other(x).data, net(x).data)
    with pytest.raises(ValueError, match=r"missing keys \['layers.1.running_mean'"):
        other.load_state_dict({k: v for k, v in state.items() if "running_mean" not in k})


def test_train_and_eval_reach_nested_modules():
    block = nn.BasicBlock(3, 6, stride=2, rng=0)
    net = nn.Sequential(block, nn.Dropout(0.3, rng=0))
    assert all(m.training for m in net.modules())
    net.eval()
    assert not any(m.training for m in net.modules())
    x = np.random.default_rng(0).standard_normal((2, 3, 9, 8)).astype(np.float32)
    assert net(x).shape == (2, 6, 5, 4)
    np.testing.assert_array_equal(net(x).data, net(x).data)     # eval is deterministic
    net.train()
    assert all(m.training for m in net.modules())
    assert not np.array_equal(net(x).data, net(x).data)         # new dropout masks


def test_dropout_layer():
    d = nn.Dropout(0.25, rng=np.random.default_rng(7))
    x = np.ones((400, 50))
    y = d(x).data
    kept = y != 0
    np.testing.assert_allclose(y[kept], 1 / 0.75)
    assert abs(kept.mean() - 0.75) < 5 * np.sqrt(0.75 * 0.25 / x.size)
    # the layer draws from its generator: the same seed gives the same mask
    np.testing.assert_array_equal(nn.Dropout(0.25, rng=7)(x).data, y)
    d.eval()
    np.testing.assert_array_equal(d(x).data, x)
    with pytest.raises(TypeError, match="pass rng"):
        nn.Dropout(0.5)
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\)"):
        nn.Dropout(1.0, rng=0)


def test_residual_checks_shapes():
    r = nn.Residual(nn.Conv2d(3, 3, 3, padding=1, rng=0), activation="relu")
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 5)).astype(np.float32)
    want = np.maximum(r.body(x).data + x, 0)
    np.testing.assert_allclose(r(x).data, want, rtol=1e-6)
    with pytest.raises(ValueError, match=r"Residual: body gives shape \(2, 4, 5, 5\)"):
        nn.Residual(nn.Conv2d(3, 4, 3, padding=1, rng=0))(x)


def test_a_conv_net_step_compiled_in_eval_mode_equals_the_tape():
    rng = np.random.default_rng(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, rng=0), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.MaxPool2d(2), nn.BasicBlock(4, 8, 2, rng=1), nn.Flatten(),
                        nn.Linear(8 * 2 * 2, 3, rng=2))
    for _ in range(2):
        net(rng.standard_normal((6, 1, 8, 8)).astype(np.float32))    # running statistics
    net.eval()
    params = net.parameters()

    def loss(x):
        return ad.sum(ad.square(net(x)))
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileWarning)
        step = ad.compile(loss, params=params)
        for _ in range(3):
            x = rng.standard_normal((5, 1, 8, 8)).astype(np.float32)
            v = step.backward(x)
            got = [p.grad.copy() for p in params]
            net.zero_grad()
            out = loss(x)
            out.backward()
            np.testing.assert_allclose(v, out.data, rtol=1e-5)
            for a, p in zip(got, params):
                np.testing.assert_allclose(a, p.grad, rtol=2e-4,
                                           atol=2e-5 * np.abs(p.grad).max())
            net.zero_grad()
    entry = next(iter(step._programs.values()))
    assert entry.exe is not None and entry.exe[1].fallbacks == []
    # the buffers are read at every call: changing them changes the compiled value
    net[1].running_mean.data = net[1].running_mean.data + 1
    x = rng.standard_normal((5, 1, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(step.backward(x), loss(x).data, rtol=1e-5)


def test_batch_norm_in_training_under_trace_updates_every_call():
    """Training-mode batch norm reads the batch statistics: the traced step runs on the
    tape (with a warning) and the running statistics advance at every call."""
    bn = nn.BatchNorm2d(2, dtype=np.float64)
    step = ad.trace(lambda x: ad.sum(bn(x) ** 3), params=bn.parameters())
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((3, 2, 4, 4)) for _ in range(3)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for x in xs:
            step.backward(x)
    assert int(bn.num_batches_tracked.data) == 3
    rm = np.zeros(2)
    for x in xs:
        rm = 0.9 * rm + 0.1 * x.mean(axis=(0, 2, 3))
    np.testing.assert_allclose(bn.running_mean.data, rm, rtol=1e-12)
