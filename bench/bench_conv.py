"""Conv nets forward + backward: zsarray (autodiff tape; conv2d as im2col or
channels-last rows + BLAS, see autodiff/conv.py) against PyTorch eager on the CPU, in
the same process, rounds interleaved.

Two stacks, batch 64, float32, the same weights in both libraries:

* LeNet: conv 1->6 5x5, relu, max-pool 2, conv 6->16 5x5, relu, max-pool 2, flatten,
  linear 256->120->84->10 (28x28 inputs);
* DCGAN discriminator: conv 3->64, 64->128, 128->256 (4x4, stride 2, padding 1), leaky
  relu, flatten, linear 4096->1 (32x32 inputs).

One step is the loss ``mean(out ** 2)``, its backward pass to every parameter. Reported:
the median and the best of the warm steps per library and their ratios (zsarray / torch;
< 1 means zsarray is faster), the first (cold) step of each and, with one thread, the
median CPU time of the calling thread per step (steadier than the wall time on a shared
machine: it leaves out the time spent waiting for a core). BLAS and torch threads are
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
    """``(wall seconds, CPU seconds of this thread, fn(*args))``."""
    t, c = time.perf_counter(), time.thread_time()
    v = fn(*args)
    return time.perf_counter() - t, time.thread_time() - c, v


def cpu_line(cpu_zs, cpu_t, threads):
    """The medians of the per-step CPU times of the calling thread: with one thread
    (BLAS and torch both run in it) all the work of each step, without the time spent
    waiting for a core on a shared machine; not reported with more threads."""
    if threads != 1:
        return ""
    cz, ct = np.median(cpu_zs), np.median(cpu_t)
    return (f"  | thread CPU time: zsarray {cz * 1e3:7.2f} ms, torch {ct * 1e3:7.2f} ms, "
            f"ratio {cz / ct:5.2f}")


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
        cold_zs, _, v_zs = timed(step_zs, net, x)
        cold_t, _, v_t = timed(step_torch, tnet, tx)
        assert abs(v_zs - v_t) <= 1e-4 * abs(v_t) + 1e-6, (v_zs, v_t)
        g_zs = net.layers[0].weight.grad
        g_t = tnet[0].weight.grad.numpy()
        assert np.allclose(g_zs, g_t, rtol=1e-3, atol=1e-4 * np.abs(g_t).max())
        zs_t, torch_t, zs_c, torch_c = [], [], [], []
        for _ in range(rounds):
            dz, cz, _ = timed(step_zs, net, x)
            dt, ct, _ = timed(step_torch, tnet, tx)
            zs_t.append(dz)
            torch_t.append(dt)
            zs_c.append(cz)
            torch_c.append(ct)
    mz, mt = np.median(zs_t), np.median(torch_t)
    bz, bt = min(zs_t), min(torch_t)
    print(f"{name:6s} threads={threads} batch={shape[0]}: zsarray {mz * 1e3:7.2f} ms, "
          f"torch {mt * 1e3:7.2f} ms, ratio {mz / mt:5.2f}  | best: zsarray {bz * 1e3:7.2f} "
          f"ms, torch {bt * 1e3:7.2f} ms, ratio {bz / bt:5.2f}  | cold: zsarray "
          f"{cold_zs * 1e3:7.1f} ms, torch {cold_t * 1e3:7.1f} ms"
          + cpu_line(zs_c, torch_c, threads))
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
