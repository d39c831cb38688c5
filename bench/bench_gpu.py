"""Compiled log densities and HMC on the GPU against the CPU, 1k to 64k chains.

Run (on a machine with a CUDA GPU and CuPy; ``bench/device_check.sh`` runs it)::

    PYTHONPATH=. python bench/bench_gpu.py [--out results.md] [--chains 1024,4096]

For the BLR of :mod:`bench.bench_samplers`'s kind (here 31 coefficients, 569 simulated
observations) and the HMM of :mod:`bench.hmm` (``scan``): value-and-gradient calls per
second of ``autodiff.compile`` with CuPy inputs (the per-chain GPU machine, one thread
per chain) and with NumPy inputs (the CPU machine), and fixed-step HMC (10 leapfrogs)
chain-iterations per second through ``samplers.HMC``; all float64 and float32 on the
GPU, float64 on the CPU. Times are medians of repeated batches after warm-up (the first
calls record, lower and verify; the CUDA kernel is compiled on first use), with the
device synchronized.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import autodiff as ad  # noqa: E402
import samplers  # noqa: E402
from bench import hmm  # noqa: E402

RNG = np.random.default_rng(0)
XB = RNG.normal(size=(31, 569)) / 4
YB = (RNG.random(569) < 0.5).astype(float)


def blr(w):
    logits = w @ XB
    return ad.sum(YB * logits - ad.softplus(logits), axis=1) - 0.5 * ad.sum(w * w, axis=1)


MODELS = {"blr": (blr, 31), "hmm": (hmm.hmm_scan, 4)}


def _sync(xp):
    if xp is not np:
        xp.cuda.Device().synchronize()


def _timed(f, xp, reps=3, batch=3):
    times = []
    for _ in range(reps):
        _sync(xp)
        t0 = time.perf_counter()
        for _ in range(batch):
            f()
        _sync(xp)
        times.append((time.perf_counter() - t0) / batch)
    return float(np.median(times))


def grad_rate(name, c, xp, dtype):
    """Value-and-gradient evaluations (chains) per second."""
    f, d = MODELS[name]
    comp = ad.compile(f, warn=False)
    x = xp.asarray(RNG.uniform(-0.5, 0.5, size=(c, d)).astype(dtype))
    for k in range(4):
        comp.value_and_grad(x + dtype(0.01) * k)
    return c / _timed(lambda: comp.value_and_grad(x), xp)


def hmc_rate(name, c, xp, dtype, n_iter=3):
    f, d = MODELS[name]
    k = samplers.HMC(f, step_size=0.02, n_leapfrogs=10)
    st = k.init(xp.asarray(RNG.uniform(-0.5, 0.5, size=(c, d)).astype(dtype)))
    rng = np.random.default_rng(1)
    for _ in range(3):
        st, _ = k.step(st, rng)
    box = [st]

    def run():
        for _ in range(n_iter):
            box[0], _ = k.step(box[0], rng)
    return c * n_iter / _timed(run, xp, reps=2, batch=1)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--chains", default="1024,4096,16384,65536")
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)
    import cupy as cp
    dev = cp.cuda.runtime.getDeviceProperties(0)["name"].decode()
    lines = [f"# GPU benchmark ({dev}, {time.strftime('%Y-%m-%d')})", "",
             "| model | chains | GPU f64 grads/s | GPU f32 grads/s | CPU f64 grads/s | "
             "GPU f64 HMC it/s | GPU f32 HMC it/s | CPU f64 HMC it/s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    print("\n".join(lines), flush=True)
    for name in MODELS:
        for c in (int(s) for s in a.chains.split(",")):
            row = [grad_rate(name, c, cp, np.float64), grad_rate(name, c, cp, np.float32),
                   grad_rate(name, c, np, np.float64), hmc_rate(name, c, cp, np.float64),
                   hmc_rate(name, c, cp, np.float32), hmc_rate(name, c, np, np.float64)]
            line = f"| {name} | {c} | " + " | ".join(f"{v:,.0f}" for v in row) + " |"
            print(line, flush=True)
            lines.append(line)
    if a.out:
        with open(a.out, "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
