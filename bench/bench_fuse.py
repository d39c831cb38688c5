"""Tiled fusion of elementwise rows (``autodiff.lower.fuse``): the same programs compiled
with and without it, interleaved.

Run::

    PYTHONPATH=. python bench/bench_fuse.py

Rows: the BLR log density of :mod:`bench.bench_samplers` (value and gradient) at 256 and
4096 chains, where elementwise chains over [C, 569] arrays dominate, and the HMM of
:mod:`bench.hmm` (4 chains, rows of a few elements: nothing to fuse, the control). Median
over 5 interleaved rounds; the relative difference of the outputs is printed too (the
fused program does the same arithmetic in the same order: 0).
"""
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import autodiff as ad  # noqa: E402
from autodiff.lower import fuse, vm  # noqa: E402
from bench import hmm  # noqa: E402
from bench.bench_samplers import D, logdensity  # noqa: E402


def _cases():
    rng = np.random.default_rng(0)
    return {"BLR, 256 chains": (logdensity, rng.normal(0, 0.1, (256, D)), 30),
            "BLR, 4096 chains": (logdensity, rng.normal(0, 0.1, (4096, D)), 3),
            "HMM, 4 chains": (hmm.hmm_loop, rng.uniform(-2, 2, (4, 4)), 300)}


def main():
    print("value and gradient, µs per call (median of 5 interleaved rounds)")
    print(f"{'':18s} {'fused':>10s} {'unfused':>10s} {'ratio':>7s} {'FUSED rows':>11s} "
          f"{'max rel diff':>13s}")
    for name, (f, x, n) in _cases().items():
        comps, outs = {}, {}
        for on in (True, False):
            fuse.ENABLED = on
            comps[on] = ad.compile(f, warn=False)
            for k in range(4):                       # record, verify, then compiled
                outs[on] = comps[on].value_and_grad(x + 1e-3 * k)
        fuse.ENABLED = True
        diff = max(float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))
                   for a, b in zip(outs[True], outs[False]))
        times = {True: [], False: []}
        for _ in range(5):
            for on in (True, False):
                t0 = time.perf_counter()
                for _ in range(n):
                    comps[on].value_and_grad(x)
                times[on].append((time.perf_counter() - t0) / n * 1e6)
        ex = next(iter(comps[True]._programs.values())).exe[1]
        n_fused = int(np.sum(ex.code[:, vm.F_OP] == vm.OP.FUSED))
        a, b = np.median(times[True]), np.median(times[False])
        print(f"{name:18s} {a:10.1f} {b:10.1f} {a / b:7.2f} {n_fused:11d} {diff:13.1e}")


if __name__ == "__main__":
    main()
