"""Peak memory of a long many-chain run with the draws streamed to a zarr store.

Run::

    PYTHONPATH=. python bench/bench_store.py [--chains 2000] [--samples 1000] [--dim 100]

Samples a standard Gaussian (MALA with a fixed step, no warmup: the cost is the
bookkeeping, not the model) in a fresh process with ``store=`` and reports the peak
resident memory (``ru_maxrss``) against the size of the draws; ``--memory`` runs the
same without a store for comparison.
"""
import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = """
import sys, time, resource, numpy as np
sys.path.insert(0, {root!r})
import samplers
c, s, d, store = {c}, {s}, {d}, {store!r}
t0 = time.perf_counter()
res = samplers.sample(lambda q: -0.5 * (q * q).sum(1), n_chains=c, dim=d, kernel="mala",
                      grad_fn=lambda q: -q, n_warmup=0, n_samples=s, step_size=0.5,
                      progress=False, store=store, init="zeros")
dt = time.perf_counter() - t0
print("RESULT", dt, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def run(c, s, d, store):
    out = subprocess.run([sys.executable, "-c", CHILD.format(root=ROOT, c=c, s=s, d=d,
                                                             store=store)],
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
    p.add_argument("--memory", action="store_true", help="also run without a store")
    a = p.parse_args(argv)
    size = a.chains * a.samples * a.dim * 8 / 2 ** 20
    tmp = tempfile.mkdtemp()
    try:
        dt, rss = run(a.chains, a.samples, a.dim, os.path.join(tmp, "run.zarr"))
        print(f"{a.chains} chains x {a.samples} draws x {a.dim}: draws {size:.0f} MiB; "
              f"with store: peak RSS {rss:.0f} MiB, {dt:.1f} s")
        if a.memory:
            dt, rss = run(a.chains, a.samples, a.dim, None)
            print(f"in memory: peak RSS {rss:.0f} MiB, {dt:.1f} s")
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
