"""Chains sharded over a Dask cluster: Bayesian logistic regression, merged into one Result.

The model of ``bayesian_logistic_regression.py`` (breast-cancer data from scikit-learn,
D = 31). ``samplers.sample(..., executor=client, n_shards=k)`` splits the chains into k
shards, runs each as one batched NUTS run on a worker (its own seed stream and its own
warmup) and merges the results; the same chains also run in this process, for the wall
time and the posterior means. Starts a ``LocalCluster`` with two worker processes unless
``--scheduler`` names a running scheduler (``tcp://host:8786``); the log density, with
the data it closes over, is pickled to the workers (cloudpickle), each worker compiles it
once.

    python examples/distributed_chains.py [--quick] [--scheduler tcp://host:8786]
        [--workers 2] [--chains 8] [--shards 4] [--samples 1000] [--warmup 1000]

Needs ``distributed`` (``pip install zsarray[distributed]``).
"""
import time

import numpy as np

import samplers

try:
    from examples._common import (check_divergences, check_metrics, figure_path, fill_quick,
                                  nonneg_int, number, parser, positive_int, run_script)
    from examples.bayesian_logistic_regression import load_data, make_log_density
except ImportError:  # run as a script from inside examples/
    from _common import (check_divergences, check_metrics, figure_path, fill_quick, nonneg_int,
                         number, parser, positive_int, run_script)
    from bayesian_logistic_regression import load_data, make_log_density


def plot(sharded, local, path):
    """Posterior means and sds per coefficient, sharded against one process."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    a, b = np.asarray(sharded.draws), np.asarray(local.draws)
    ma, mb = a.mean((0, 1)), b.mean((0, 1))
    sa, sb = a.std((0, 1)), b.std((0, 1))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    lim = [min(ma.min(), mb.min()), max(ma.max(), mb.max())]
    axes[0].plot(lim, lim, "k:", lw=0.8)
    axes[0].scatter(mb, ma, s=14)
    axes[0].set_xlabel("posterior mean, one process")
    axes[0].set_ylabel("posterior mean, sharded")
    lim = [min(sa.min(), sb.min()), max(sa.max(), sb.max())]
    axes[1].plot(lim, lim, "k:", lw=0.8)
    axes[1].scatter(sb, sa, s=14, color="C1")
    axes[1].set_xlabel("posterior sd, one process")
    axes[1].set_ylabel("posterior sd, sharded")
    fig.suptitle(f"{a.shape[0]} chains in {len(sharded.shards)} shards vs one process")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None):
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--scheduler", default=None,
                   help="address of a running Dask scheduler (default: a LocalCluster)")
    p.add_argument("--workers", type=positive_int, default=2,
                   help="LocalCluster worker processes")
    p.add_argument("--chains", type=positive_int, default=8)
    p.add_argument("--shards", type=positive_int, default=4)
    p.add_argument("--samples", type=number(int, low=4), default=None,
                   help="draws per chain (default 1000; 200 with --quick)")
    p.add_argument("--warmup", type=nonneg_int, default=None,
                   help="warmup steps per chain (default 1000; 200 with --quick)")
    args = p.parse_args(argv)
    fill_quick(args, quick={"samples": 200, "warmup": 200},
               full={"samples": 1000, "warmup": 1000})
    if args.shards > args.chains:
        p.error(f"--shards {args.shards}: at most --chains ({args.chains}) shards")
    if args.device != "cpu":
        p.error("--device gpu: give each worker its GPU inside the log density; this "
                "example runs on the CPU")
    try:
        import distributed
    except ImportError:
        p.error("needs dask.distributed: pip install zsarray[distributed]")

    x_train, y_train, x_test, y_test = load_data(seed=args.seed)
    dim = x_train.shape[1]
    log_density = make_log_density(x_train, y_train)
    kw = dict(n_chains=args.chains, dim=dim, n_samples=args.samples, n_warmup=args.warmup,
              rng=args.seed)

    if args.scheduler:
        client, cluster = distributed.Client(args.scheduler), None
    else:
        cluster = distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1,
                                           processes=True, dashboard_address=None)
        client = distributed.Client(cluster)
    try:
        start = time.perf_counter()
        sharded = samplers.sample(log_density, executor=client, n_shards=args.shards, **kw)
        t_sharded = time.perf_counter() - start
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    start = time.perf_counter()
    local = samplers.sample(log_density, progress=not args.no_progress, **kw)
    t_local = time.perf_counter() - start

    names = ["intercept"] + [f"w[{j}]" for j in range(1, dim)]
    table = sharded.summary(names=names)
    ess, rhat = np.asarray(table["ess_bulk"]), np.asarray(table["r_hat"])
    diff = np.abs(np.asarray(sharded.draws).mean((0, 1)) - np.asarray(local.draws).mean((0, 1)))
    path = figure_path(args.out, "distributed_chains.png")
    plot(sharded, local, path)
    where = args.scheduler or f"a LocalCluster of {args.workers} processes"
    print(f"\n{args.chains} chains x ({args.warmup} + {args.samples}) NUTS in {args.shards} "
          f"shards on {where}: {t_sharded:.1f} s (cluster start and compilation in every "
          f"worker included); in this process: {t_local:.1f} s")
    print(f"sharded: min ESS bulk {ess.min():.0f}, max R-hat {rhat.max():.3f}, "
          f"divergences {sharded.n_divergent}; largest difference of posterior means from "
          f"the one-process run: {diff.max():.3f}")
    print(f"figure: {path}")
    check_divergences(sharded.n_divergent, args.chains * args.samples, "NUTS")
    return check_metrics({"seconds_sharded": t_sharded, "seconds_local": t_local,
                          "min_ess": float(ess.min()), "max_rhat": float(rhat.max()),
                          "max_mean_diff": float(diff.max()), "figure": path,
                          "shards": sharded.shards}, ["min_ess", "max_mean_diff"])


if __name__ == "__main__":
    run_script(main)
