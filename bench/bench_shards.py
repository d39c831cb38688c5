"""Chains sharded over local Dask workers against one process: wall time and overhead.

    PYTHONPATH=$PWD python bench/bench_shards.py [--chains 8] [--workers 2] [--rounds 3]

A Bayesian logistic regression (N x D data closed over by the log density), NUTS,
``--chains`` chains x (warmup + draws). Reported, each the median of ``--rounds`` warm
runs (the first, cold run compiles in every worker and is shown apart):

* one process: ``samplers.sample(...)``;
* ``--workers`` worker processes of a ``LocalCluster``, ``n_shards`` = workers and
  2 x workers;
* the overhead of a shard: the wall time of a shard that does almost nothing (1 warmup,
  1 draw) through the cluster minus the same call in one process, i.e. scheduling,
  transfer of the arguments and of the Result, and the merge;
* bytes on the wire: the pickled log density (scattered once per worker) and a shard's
  pickled Result;
* ``shard_adaptation="pooled"`` (one step size and mass from all chains, statistics
  exchanged at Stan's window ends): its wall time, and the bytes of its warmup phases
  (counted by pickling every message of a pooled run on a counting executor): the
  reports that come back to the caller (statistics, warmup statistics) and the shards'
  states that a process pool sends back and forth (Dask keeps them on the workers).
"""
import argparse
import os
import pickle
import statistics
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import autodiff as ad  # noqa: E402
import samplers  # noqa: E402


class BLR:
    """Logistic regression log density over ``[C, D]`` (picklable, data included)."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __call__(self, w):
        logits = w @ self.x.T                                  # [C, N]
        lik = ad.sum(self.y * ad.log_sigmoid(logits)
                     + (1 - self.y) * ad.log_sigmoid(-logits), axis=-1)
        return lik - 0.5 * ad.sum(w * w, axis=-1)


class CountingExecutor:
    """Runs each task at once, counting the pickled bytes of the pooled warmup phases:
    arguments without the log density (Dask scatters it) and results."""

    def __init__(self):
        self.phases, self.carries, self.reports = 0, 0, 0

    def submit(self, fn, *args):
        from concurrent.futures import Future
        out = fn(*args)
        if fn.__name__ == "pooled_phase":
            carry, _, message = args
            self.phases += 1
            self.carries += len(pickle.dumps(carry)) + len(pickle.dumps(out[0]))
            self.reports += len(pickle.dumps(message)) + len(pickle.dumps(out[1]))
        f = Future()
        f.set_result(out)
        return f


def timed(fn, rounds):
    cold_t0 = time.perf_counter()
    fn()
    cold = time.perf_counter() - cold_t0
    warm = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        warm.append(time.perf_counter() - t0)
    return cold, statistics.median(warm)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--chains", type=int, default=8)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--n", type=int, default=2000, help="data rows")
    p.add_argument("--d", type=int, default=20, help="coefficients")
    p.add_argument("--warmup", type=int, default=500)
    p.add_argument("--draws", type=int, default=500)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    from distributed import Client, LocalCluster

    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.n, args.d))
    y = (x @ rng.normal(size=args.d) + rng.normal(size=args.n) > 0).astype(float)
    density = BLR(x, y)
    kw = dict(n_chains=args.chains, dim=args.d, n_warmup=args.warmup, n_samples=args.draws,
              rng=0, progress=False)
    tiny = dict(kw, n_warmup=1, n_samples=1)
    # the near-empty shards (1 warmup transition) diverge by design: not news here
    warnings.filterwarnings("ignore", category=samplers.DivergenceWarning)
    rows = []
    cold, warm = timed(lambda: samplers.sample(density, **kw), args.rounds)
    rows.append(("one process", cold, warm))
    _, tiny_local = timed(lambda: samplers.sample(density, **tiny), args.rounds)
    t0 = time.perf_counter()
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        start = time.perf_counter() - t0
        for shards in (args.workers, 2 * args.workers):
            cold, warm = timed(lambda: samplers.sample(density, executor=client,
                                                       n_shards=shards, **kw), args.rounds)
            rows.append((f"{args.workers} workers, {shards} shards", cold, warm))
        cold, warm = timed(lambda: samplers.sample(density, executor=client,
                                                   n_shards=args.workers,
                                                   shard_adaptation="pooled", **kw),
                           args.rounds)
        rows.append((f"{args.workers} workers, {args.workers} shards, pooled", cold, warm))
        _, tiny_dask = timed(lambda: samplers.sample(density, executor=client,
                                                     n_shards=args.workers, **tiny),
                             args.rounds)
        res = samplers.sample(density, executor=client, n_shards=args.workers, **kw)
    shard_result = samplers.sample(density, **dict(kw, n_chains=args.chains // args.workers))
    print(f"BLR N={args.n} D={args.d}, NUTS, {args.chains} chains x ({args.warmup} + "
          f"{args.draws}); {os.cpu_count()} CPUs; load average "
          f"{os.getloadavg()[0]:.1f}")
    print(f"{'run':<26} {'cold s':>8} {'warm s':>8} {'warm vs one process':>20}")
    for name, c, w in rows:
        print(f"{name:<26} {c:8.2f} {w:8.2f} {rows[0][2] / w:19.2f}x")
    print(f"cluster start: {start:.2f} s")
    print(f"overhead of a run of {args.workers} near-empty shards: "
          f"{(tiny_dask - tiny_local) * 1e3:.0f} ms ({tiny_dask * 1e3:.0f} ms through the "
          f"cluster, {tiny_local * 1e3:.0f} ms in one process)")
    print(f"pickled log density {len(pickle.dumps(density)) / 1e3:.0f} kB (once per worker); "
          f"pickled shard Result {len(pickle.dumps(shard_result)) / 1e3:.0f} kB")
    print(f"merged draws {res.draws.shape}, divergences {res.n_divergent}")
    count = CountingExecutor()
    samplers.sample(density, executor=count, n_shards=args.workers,
                    shard_adaptation="pooled", **kw)
    print(f"pooled warmup, {args.workers} shards: {count.phases} phase tasks; messages and "
          f"reports {count.reports / 1e3:.1f} kB in all (warmup statistics included); "
          f"shard states {count.carries / 1e3:.1f} kB in all (process pools only)")


if __name__ == "__main__":
    main()
