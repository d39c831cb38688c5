"""Peak memory of a long many-chain run with the draws streamed to a zarr store.

Run::

    PYTHONPATH=. python bench/bench_store.py [--chains 2000] [--samples 1000] [--dim 100]
        [--warmup 0] [--store-dtype float32] [--dir /some/disk] [--memory]

Samples a standard Gaussian (MALA with a fixed step, no warmup by default: the cost is the
bookkeeping, not the model; ``--warmup N`` adds Stan's windowed warmup, whose statistics
are streamed too) in a fresh process with ``store=`` and reports the peak resident memory
(``ru_maxrss``) against the size of the draws, the wall time and the store's size on disk
(the store, in a temporary folder under ``--dir``, is deleted afterwards);
``--store-dtype float32`` stores the float64 run's draws as float32; ``--memory`` runs
the same without a store for comparison.
"""
import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = """
import sys, time, resource, numpy as np
sys.path.insert(0, {root!r})
import samplers
c, s, d, w, store = {c}, {s}, {d}, {w}, {store!r}
extra = dict(store_dtype={dtype!r}) if store is not None else dict()
t0 = time.perf_counter()
res = samplers.sample(lambda q: -0.5 * (q * q).sum(1), n_chains=c, dim=d, kernel="mala",
                      grad_fn=lambda q: -q, n_warmup=w, n_samples=s, step_size=0.5,
                      progress=False, store=store, init="zeros", **extra)
dt = time.perf_counter() - t0
assert res.draws.shape == (c, s, d)
print("RESULT", dt, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def run(c, s, d, store, w=0, dtype=None):
    out = subprocess.run([sys.executable, "-c", CHILD.format(root=ROOT, c=c, s=s, d=d, w=w,
                                                             store=store, dtype=dtype)],
                         capture_output=True, text=True)
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT")]
    if not line:
        raise RuntimeError(out.stderr[-2000:])
    _, dt, rss = line[0].split()
    return float(dt), float(rss)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--chains", type=int, default=2000)
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--dim", type=int, default=100)
    p.add_argument("--warmup", type=int, default=0, help="warmup transitions (Stan's)")
    p.add_argument("--store-dtype", default=None, help="draws' dtype in the store")
    p.add_argument("--dir", default=None, help="where the temporary store goes")
    p.add_argument("--memory", action="store_true", help="also run without a store")
    a = p.parse_args(argv)
    item = 8 if a.store_dtype is None else np.dtype(a.store_dtype).itemsize
    size = a.chains * a.samples * a.dim * item / 2 ** 20
    tmp = tempfile.mkdtemp(dir=a.dir)
    try:
        path = os.path.join(tmp, "run.zarr")
        dt, rss = run(a.chains, a.samples, a.dim, path, a.warmup, a.store_dtype)
        disk = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path)
                   for f in fs) / 2 ** 20
        print(f"{a.chains} chains x {a.samples} draws x {a.dim} ({a.warmup} warmup): draws "
              f"{size:.0f} MiB ({a.store_dtype or 'float64'}); with store: peak RSS "
              f"{rss:.0f} MiB, {dt:.1f} s, {disk:.0f} MiB on disk")
        if a.memory:
            dt, rss = run(a.chains, a.samples, a.dim, None)
            print(f"in memory: peak RSS {rss:.0f} MiB, {dt:.1f} s")
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
