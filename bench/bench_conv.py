"""Conv nets forward + backward: zsarray (autodiff tape, im2col + BLAS) against PyTorch
eager on the CPU, in the same process, rounds interleaved.

Two stacks, batch 64, float32, the same weights in both libraries:

* LeNet: conv 1->6 5x5, relu, max-pool 2, conv 6->16 5x5, relu, max-pool 2, flatten,
  linear 256->120->84->10 (28x28 inputs);
* DCGAN discriminator: conv 3->64, 64->128, 128->256 (4x4, stride 2, padding 1), leaky
  relu, flatten, linear 4096->1 (32x32 inputs).

One step is the loss ``mean(out ** 2)``, its backward pass to every parameter. Reported:
the median and the best of the warm steps per library and their ratios (zsarray / torch;
< 1 means zsarray is faster), and the first (cold) step of each. BLAS and torch threads are
limited to ``--threads`` (threadpoolctl, ``torch.set_num_threads``).

    python bench/bench_conv.py --threads 1 --rounds 15
"""
import argparse
import time

import numpy as np

import autodiff as ad
from zsarray import nn


def lenet_zs(rng):
    return nn.Sequential(nn.Conv2d(1, 6, 5, rng=rng), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(6, 16, 5, rng=rng), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(256, 120, rng=rng), nn.ReLU(),
                         nn.Linear(120, 84, rng=rng), nn.ReLU(), nn.Linear(84, 10, rng=rng))


def dcgan_zs(rng):
    return nn.Sequential(nn.Conv2d(3, 64, 4, 2, 1, rng=rng), nn.LeakyReLU(0.2),
                         nn.Conv2d(64, 128, 4, 2, 1, rng=rng), nn.LeakyReLU(0.2),
                         nn.Conv2d(128, 256, 4, 2, 1, rng=rng), nn.LeakyReLU(0.2),
                         nn.Flatten(), nn.Linear(4096, 1, rng=rng))


def to_torch(net):
    """The same network in torch, with the same weights (Linear transposed)."""
    import torch
    layers = []
    for m in net.layers:
        if isinstance(m, nn.Conv2d):
            t = torch.nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride,
                                m.padding)
            t.weight.data = torch.from_numpy(m.weight.data.copy())
            t.bias.data = torch.from_numpy(m.bias.data.copy())
        elif isinstance(m, nn.Linear):
            t = torch.nn.Linear(m.in_features, m.out_features)
            t.weight.data = torch.from_numpy(m.weight.data.T.copy())
            t.bias.data = torch.from_numpy(m.bias.data.copy())
        elif isinstance(m, nn.MaxPool2d):
            t = torch.nn.MaxPool2d(m.kernel_size)
        elif isinstance(m, nn.LeakyReLU):
            t = torch.nn.LeakyReLU(m.negative_slope)
        elif isinstance(m, nn.ReLU):
            t = torch.nn.ReLU()
        elif isinstance(m, nn.Flatten):
            t = torch.nn.Flatten()
        else:
            raise TypeError(type(m))
        layers.append(t)
    return torch.nn.Sequential(*layers)


def step_zs(net, x):
    net.zero_grad()
    out = net(x)
    loss = ad.mean(out * out)
    loss.backward()
    return float(loss.data)


def step_torch(net, x):
    net.zero_grad(set_to_none=True)
    out = net(x)
    loss = (out * out).mean()
    loss.backward()
    return loss.item()


def timed(fn, *args):
    t = time.perf_counter()
    v = fn(*args)
    return time.perf_counter() - t, v


def run(name, make, shape, rounds, threads):
    import torch
    from threadpoolctl import threadpool_limits
    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    net = make(rng)
    tnet = to_torch(net)
    x = rng.standard_normal(shape).astype(np.float32)
    tx = torch.from_numpy(x.copy())
    with threadpool_limits(threads):
        cold_zs, v_zs = timed(step_zs, net, x)
        cold_t, v_t = timed(step_torch, tnet, tx)
        assert abs(v_zs - v_t) <= 1e-4 * abs(v_t) + 1e-6, (v_zs, v_t)
        g_zs = net.layers[0].weight.grad
        g_t = tnet[0].weight.grad.numpy()
        assert np.allclose(g_zs, g_t, rtol=1e-3, atol=1e-4 * np.abs(g_t).max())
        zs_t, torch_t = [], []
        for _ in range(rounds):
            zs_t.append(timed(step_zs, net, x)[0])
            torch_t.append(timed(step_torch, tnet, tx)[0])
    mz, mt = np.median(zs_t), np.median(torch_t)
    bz, bt = min(zs_t), min(torch_t)
    print(f"{name:6s} threads={threads} batch={shape[0]}: zsarray {mz * 1e3:7.2f} ms, "
          f"torch {mt * 1e3:7.2f} ms, ratio {mz / mt:5.2f}  | best: zsarray {bz * 1e3:7.2f} "
          f"ms, torch {bt * 1e3:7.2f} ms, ratio {bz / bt:5.2f}  | cold: zsarray "
          f"{cold_zs * 1e3:7.1f} ms, torch {cold_t * 1e3:7.1f} ms")
    return mz, mt


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--batch", type=int, default=64)
    a = p.parse_args()
    for threads in a.threads:
        run("lenet", lenet_zs, (a.batch, 1, 28, 28), a.rounds, threads)
        run("dcgan", dcgan_zs, (a.batch, 3, 32, 32), a.rounds, threads)


if __name__ == "__main__":
    main()
