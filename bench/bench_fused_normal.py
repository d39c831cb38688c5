"""Fused vs unfused Normal reparameterization: sample + log_prob + backward of the sum.

The SGVB hot path with many particles: ``z = mean + exp(logstd) * eps`` and
``log q(z)`` over ``[n_samples, batch, dim]``, then the gradient of
``sum(f(z)) - sum(log q(z))`` (here ``f = identity``) w.r.t. ``mean`` and ``logstd``
``[batch, dim]``. Noise is drawn once outside the timed region (it is the same for
both).

Run either way::

    PYTHONPATH=. python -m pytest bench/bench_fused_normal.py --benchmark-enable -p no:cacheprovider
    PYTHONPATH=. python bench/bench_fused_normal.py          # prints a speedup table
"""
import sys
import timeit

import numpy as np
import pytest

import autodiff as ad
from zsarray.distributions.fused import (fused_normal_sample_logprob,
                                         unfused_normal_sample_logprob)

__all__ = []

SIZES = [(8, 32, 64), (16, 128, 128), (64, 128, 256)]
IMPLS = {"fused": fused_normal_sample_logprob, "unfused": unfused_normal_sample_logprob}


def _setup(size, dtype=np.float64):
    n, b, d = size
    r = np.random.default_rng(0)
    mean = r.standard_normal((b, d)).astype(dtype)
    logstd = (0.1 * r.standard_normal((b, d))).astype(dtype)
    eps = r.standard_normal((n, b, d)).astype(dtype)
    return mean, logstd, eps


def _step(impl, mean, logstd, eps):
    def loss(m, s):
        z, lp = impl(m, s, eps)
        return ad.sum(z) - ad.sum(lp)
    return ad.value_and_grad(loss, argnums=(0, 1))(mean, logstd)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("size", SIZES, ids=["x".join(map(str, s)) for s in SIZES])
@pytest.mark.parametrize("impl", list(IMPLS))
def test_sample_logprob_backward(benchmark, impl, size, dtype):
    mean, logstd, eps = _setup(size, dtype)
    fn = IMPLS[impl]
    _step(fn, mean, logstd, eps)          # compile / warm up
    benchmark.group = f"{'x'.join(map(str, size))} {np.dtype(dtype).name}"
    benchmark.extra_info.update(n_samples=size[0], batch=size[1], dim=size[2])
    benchmark(_step, fn, mean, logstd, eps)


def main(repeat=7):
    print(f"{'n x batch x dim':>16} {'dtype':>8} {'unfused ms':>11} {'fused ms':>9} {'speedup':>8}")
    for dtype in (np.float64, np.float32):
        for size in SIZES:
            args = _setup(size, dtype)
            t = {}
            for name, fn in IMPLS.items():
                _step(fn, *args)
                number = max(1, int(0.05 / max(1e-6, timeit.timeit(lambda: _step(fn, *args), number=1))))
                t[name] = min(timeit.repeat(lambda: _step(fn, *args), number=number,
                                            repeat=repeat)) / number
            print(f"{'x'.join(map(str, size)):>16} {np.dtype(dtype).name:>8} "
                  f"{1e3 * t['unfused']:>11.3f} {1e3 * t['fused']:>9.3f} "
                  f"{t['unfused'] / t['fused']:>7.1f}x")


if __name__ == "__main__":
    sys.exit(main())
