"""AIS over a data set split by rows: 2 local Dask workers against one process.

    PYTHONPATH=$PWD python bench/bench_ais_shards.py [--rows 64] [--block-rows 16]
        [--workers 2] [--rounds 2]

A VAE-like decoder with fixed random weights (``z [K, n, 10] -> tanh 200 -> 64
Bernoulli logits``), ``--k`` AIS chains per row from the prior, ``--temps`` temperatures
of one HMC transition (``--leapfrogs`` steps) each, over ``--rows`` rows in blocks of
``--block-rows`` (``AIS.run(rows=..., block_rows=...)``). Reported, each the median of
``--rounds`` warm runs (the first, cold run compiles, in every worker) and checked equal:

* one process: the blocks one after another (``executor=None``);
* ``--workers`` worker processes of a ``LocalCluster``, ``n_shards`` = workers and one
  block per shard;
* for reference, the AIS run of all rows at once (no blocks; another estimate);
* bytes on the wire: what is scattered once per worker (the decoder with the data and
  the rows function) and a block's pickled result.
"""
import argparse
import copy
import os
import pickle
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import autodiff as ad  # noqa: E402
import zsarray as zs  # noqa: E402

Z_DIM, HIDDEN, X_DIM = 10, 200, 64


class Decoder:
    """``log p(x, z)`` of a one-hidden-layer Bernoulli decoder, any number of rows."""

    def __init__(self, rng):
        self.w1 = rng.normal(size=(Z_DIM, HIDDEN)) / np.sqrt(Z_DIM)
        self.w2 = rng.normal(size=(HIDDEN, X_DIM)) * 2 / np.sqrt(HIDDEN)
        self.b2 = rng.normal(size=X_DIM)

    def logits(self, z):
        return ad.matmul(ad.tanh(ad.matmul(z, self.w1)), self.w2) + self.b2

    def __call__(self, v):
        z, x = v["z"], v["x"]
        logits = self.logits(z)
        ll = ad.sum(x * ad.log_sigmoid(logits) + (1 - x) * ad.log_sigmoid(-logits), axis=-1)
        return ll - 0.5 * ad.sum(z * z, axis=-1) - 0.5 * Z_DIM * np.log(2 * np.pi)


@zs.meta_bayesian_net()
def prior(k, n, rng, observed=None):
    bn = zs.BayesianNet(observed, rng=rng)
    bn.normal("z", np.zeros((n, Z_DIM)), std=1.0, group_ndims=1, n_samples=k)
    return bn


class PriorRows:
    """The AIS proposal of some rows: the prior, ``k`` chains per row."""

    def __init__(self, k):
        self.k = k

    def __call__(self, rows, rng):
        return {"proposal": prior(self.k, rows.stop - rows.start, rng)}


def timed(fn, rounds):
    t0 = time.perf_counter()
    first = fn()
    cold = time.perf_counter() - t0
    warm = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        warm.append(time.perf_counter() - t0)
    return first, cold, statistics.median(warm)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=64)
    p.add_argument("--block-rows", type=int, default=16)
    p.add_argument("--k", type=int, default=16, help="AIS chains per row")
    p.add_argument("--temps", type=int, default=200)
    p.add_argument("--leapfrogs", type=int, default=5)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args(argv)
    from distributed import Client, LocalCluster

    rng = np.random.default_rng(0)
    decoder = Decoder(rng)
    z = rng.normal(size=(args.rows, Z_DIM))
    with ad.no_grad():
        probs = 1 / (1 + np.exp(-decoder.logits(ad.tensor(z)).data))
    x = (rng.random(probs.shape) < probs).astype(float)
    rows = PriorRows(args.k)
    ais = zs.evaluation.AIS(decoder, prior(args.k, args.rows, 0),
                            {"step_size": 0.05, "n_leapfrogs": args.leapfrogs}, {"x": x}, "z",
                            n_temperatures=args.temps, n_adapt=min(30, args.temps))
    kw = dict(rng=0, rows=rows, block_rows=args.block_rows)
    load0 = os.getloadavg()[0]
    out = []
    ref, cold, warm = timed(lambda: ais.run(**kw), args.rounds)
    out.append(("one process, blocks in turn", cold, warm))
    _, cold, warm = timed(lambda: ais.run(rng=0), args.rounds)
    out.append(("one process, all rows at once", cold, warm))
    n_blocks = len(ref.blocks)
    t0 = time.perf_counter()
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        start = time.perf_counter() - t0
        for shards in sorted({args.workers, n_blocks}):
            res, cold, warm = timed(lambda: ais.run(executor=client, n_shards=shards, **kw),
                                    args.rounds)
            assert np.array_equal(res.log_weights, ref.log_weights)
            out.append((f"{args.workers} workers, {shards} shards", cold, warm))
    import cloudpickle
    lite = copy.copy(ais)
    lite.proposal = None                         # what run() scatters: no full-data proposal
    scattered = len(cloudpickle.dumps((lite, rows)))
    print(f"AIS, decoder {Z_DIM}-{HIDDEN}-{X_DIM}, {args.rows} rows x {args.k} chains, "
          f"{args.temps} temperatures x {args.leapfrogs} leapfrogs, blocks of "
          f"{args.block_rows} rows ({n_blocks}); {os.cpu_count()} CPUs; load average "
          f"{load0:.1f} before, {os.getloadavg()[0]:.1f} after")
    print(f"{'run':<32} {'cold s':>8} {'warm s':>8} {'warm vs blocks in turn':>23}")
    for name, c, w in out:
        print(f"{name:<32} {c:8.2f} {w:8.2f} {out[0][2] / w:22.2f}x")
    print(f"cluster start: {start:.2f} s")
    per_block = len(pickle.dumps(ref)) / n_blocks
    print(f"scattered once per worker: {scattered / 1e3:.0f} kB; a block's result about "
          f"{per_block / 1e3:.0f} kB")
    print(f"log p(x) summed over rows: {ref.total_log_marginal:.2f} +- "
          f"{ref.total_stderr:.2f} (blocks)")


if __name__ == "__main__":
    main()
