"""Optimizer benchmark: one Adam step on the 784-500-500-40 MLP's parameters (float32).

Compares the fused Numba kernel behind :class:`zsarray.optim.Adam` (one pass over
each parameter, in place) with the same update written as NumPy array expressions
(in place where NumPy allows it, which is how one would write it by hand).

With pytest-benchmark (disabled in the default test run):

    python -m pytest bench/bench_optim.py --benchmark-enable --benchmark-columns=min,median,mean

or as a script, printing both timings and the speedup:

    python bench/bench_optim.py
"""
import math
import sys
import timeit
from pathlib import Path

import numpy as np

if __package__ in (None, ""):     # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from zsarray import nn, optim  # noqa: E402

SIZES = (784, 500, 500, 40)
LR, BETAS, EPS = 1e-3, (0.9, 0.999), 1e-8


def setup(seed=0):
    """MLP parameters with float32 random gradients, and an Adam optimizer over them."""
    rng = np.random.default_rng(seed)
    params = nn.MLP(SIZES, rng=rng).parameters()
    for p in params:
        p.grad = rng.standard_normal(p.shape).astype(np.float32)
    return params, optim.Adam(params, lr=LR, betas=BETAS, eps=EPS)


class NumpyAdam:
    """PyTorch's Adam update as NumPy array expressions (the unfused baseline)."""

    def __init__(self, params):
        self.params = params
        self.m = [np.zeros_like(p.data) for p in params]
        self.v = [np.zeros_like(p.data) for p in params]
        self.t = 0

    def step(self):
        self.t += 1
        b1, b2 = BETAS
        step_size = LR / (1 - b1 ** self.t)
        bc2_sqrt = math.sqrt(1 - b2 ** self.t)
        for p, m, v in zip(self.params, self.m, self.v):
            g = p.grad
            m += (1 - b1) * (g - m)
            v *= b2
            v += (1 - b2) * (g * g)
            p.data -= step_size * m / (np.sqrt(v) / bc2_sqrt + EPS)


def test_adam_step_fused_numba(benchmark):
    _, opt = setup()
    opt.step()    # compile / load the cached kernel
    benchmark(opt.step)


def test_adam_step_numpy_expressions(benchmark):
    params, _ = setup()
    baseline = NumpyAdam(params)
    benchmark(baseline.step)


def test_fused_and_numpy_agree():
    fused_params, opt = setup()
    numpy_params, _ = setup()
    baseline = NumpyAdam(numpy_params)
    for _ in range(3):
        opt.step()
        baseline.step()
    for a, b in zip(fused_params, numpy_params):
        np.testing.assert_allclose(a.data, b.data, rtol=1e-5, atol=1e-6)


def _best_ms(fn, number, repeat=7):
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e3


def main():
    params, opt = setup()
    opt.step()
    n = sum(p.size for p in params)
    fused = _best_ms(opt.step, number=20)
    numpy_params, _ = setup()
    baseline = NumpyAdam(numpy_params)
    unfused = _best_ms(baseline.step, number=20)
    print(f"Adam step, {len(params)} float32 parameters of the {'-'.join(map(str, SIZES))} MLP "
          f"({n:,} elements)")
    print(f"  fused Numba kernel     : {fused:7.3f} ms")
    print(f"  NumPy array expressions: {unfused:7.3f} ms")
    print(f"  speedup                : {unfused / fused:7.2f}x")


if __name__ == "__main__":
    main()
