"""autodiff benchmarks: per-op tape overhead and an MLP forward+backward.

Run with pytest-benchmark (benchmarks are disabled in the default test run):

    python -m pytest bench/bench_autodiff.py --benchmark-enable --benchmark-columns=min,median,mean

or as a script for the derived per-op overhead and the PyTorch side-by-side:

    python bench/bench_autodiff.py

Dispatch overhead is measured as the *marginal* cost of one recorded op: the tape's
forward+backward time of an n-op elementwise chain on 31-element vectors minus the
same chain hand-written in NumPy (forward and backward), as a slope between n = 10
and n = 40, so the fixed cost of one ``value_and_grad`` call is reported separately.
"""
import timeit

import numpy as np
import pytest

import autodiff as ad

CHAIN_DIM = 31


def make_chain(n):
    """An n-op elementwise chain (alternating add and tanh(mul)) on the tape and in NumPy."""
    def tape(x):
        y = x
        for i in range(n):
            y = ad.tanh(y * 1.01) if i % 2 else y + x
        return ad.sum(y)

    def numpy_fwd_bwd(x):
        ys, y = [], x
        for i in range(n):
            y = np.tanh(y * 1.01) if i % 2 else y + x
            ys.append(y)
        total = np.sum(y)
        g = np.broadcast_to(np.ones_like(total), y.shape)
        gx = np.zeros_like(x)
        for i in reversed(range(n)):
            if i % 2:
                g = g * (1 - ys[i] * ys[i]) * 1.01
            else:
                gx = gx + g
        return total, gx + g
    return ad.value_and_grad(tape), numpy_fwd_bwd


def mlp_params(rng, sizes=(784, 500, 500, 40), dtype=np.float32):
    params = []
    for m, n in zip(sizes[:-1], sizes[1:]):
        bound = 1 / np.sqrt(m)
        params += [rng.uniform(-bound, bound, (m, n)).astype(dtype),
                   np.zeros(n, dtype=dtype)]
    return params


def mlp_loss(w1, b1, w2, b2, w3, b3, x, labels):
    """Softmax cross-entropy of a ReLU MLP; x [B, 784], labels [B] in 0..39."""
    h = ad.relu(x @ w1 + b1)
    h = ad.relu(h @ w2 + b2)
    logp = ad.log_softmax(h @ w3 + b3, axis=-1)
    return -ad.mean(logp[np.arange(len(labels)), labels])


def mlp_data(rng, batch=128, dtype=np.float32):
    return rng.random((batch, 784)).astype(dtype), rng.integers(0, 40, batch)


@pytest.mark.parametrize("n_ops", [10, 40])
def test_chain_tape(benchmark, n_ops):
    vg, _ = make_chain(n_ops)
    x = np.random.default_rng(0).random(CHAIN_DIM) + 0.5
    benchmark(vg, x)


@pytest.mark.parametrize("n_ops", [10, 40])
def test_chain_numpy(benchmark, n_ops):
    _, raw = make_chain(n_ops)
    x = np.random.default_rng(0).random(CHAIN_DIM) + 0.5
    benchmark(raw, x)


def test_mlp_784_500_500_40_tape(benchmark):
    rng = np.random.default_rng(0)
    params, (x, labels) = mlp_params(rng), mlp_data(rng)
    vg = ad.value_and_grad(mlp_loss, argnums=tuple(range(6)))
    benchmark(vg, *params, x, labels)


def _torch_mlp_step():
    torch = pytest.importorskip("torch", reason="PyTorch not installed: no side-by-side")
    torch.set_num_threads(torch.get_num_threads())
    rng = np.random.default_rng(0)
    params = [torch.tensor(p, requires_grad=True) for p in mlp_params(rng)]
    x, labels = mlp_data(rng)
    x, labels = torch.tensor(x), torch.tensor(labels)

    def step():
        w1, b1, w2, b2, w3, b3 = params
        h = torch.relu(x @ w1 + b1)
        h = torch.relu(h @ w2 + b2)
        loss = torch.nn.functional.cross_entropy(h @ w3 + b3, labels)
        return torch.autograd.grad(loss, params)
    return step


def test_mlp_784_500_500_40_torch(benchmark):
    benchmark(_torch_mlp_step())


def _best(fn, *args, number=200, repeat=7):
    return min(timeit.repeat(lambda: fn(*args), number=number, repeat=repeat)) / number


def main():
    x = np.random.default_rng(0).random(CHAIN_DIM) + 0.5
    t = {}
    for n in (10, 40):
        vg, raw = make_chain(n)
        np.testing.assert_allclose(vg(x)[1], raw(x)[1], rtol=1e-12)
        t[n] = (_best(vg, x, number=2000), _best(raw, x, number=2000))
        print(f"chain of {n:2d} ops: tape fwd+bwd {t[n][0]*1e6:7.1f} us, "
              f"NumPy fwd+bwd by hand {t[n][1]*1e6:7.1f} us")
    marginal = ((t[40][0] - t[10][0]) - (t[40][1] - t[10][1])) / 30
    whole = (t[10][0] - t[10][1]) / 11
    print(f"tape overhead per recorded op (marginal, forward+backward): {marginal*1e6:.2f} us")
    print(f"tape overhead per op including the fixed value_and_grad cost (10-op chain + sum): "
          f"{whole*1e6:.2f} us")

    rng = np.random.default_rng(0)
    params, (xb, labels) = mlp_params(rng), mlp_data(rng)
    vg = ad.value_and_grad(mlp_loss, argnums=tuple(range(6)))
    t_ad = _best(vg, *params, xb, labels, number=20)
    print(f"MLP 784-500-500-40, batch 128, float32, forward+backward: zsarray {t_ad*1e3:.2f} ms")
    try:
        step = _torch_mlp_step()
        t_torch = _best(step, number=20)
        print(f"                                             PyTorch eager {t_torch*1e3:.2f} ms "
              f"(zsarray / PyTorch = {t_ad / t_torch:.2f})")
    except pytest.skip.Exception as e:
        print(f"PyTorch side-by-side skipped: {e}")


if __name__ == "__main__":
    main()
