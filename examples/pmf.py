"""Probabilistic matrix factorization with HMC (Salakhutdinov & Mnih 2008; ZhuSuan's pmf).

Model, for the observed entries (i, j) of a users x items ratings matrix:

    U_i ~ N(0, s_U^2 I_K),   V_j ~ N(0, s_V^2 I_K),   R_ij ~ N(U_i . V_j, s^2)

(ratings centred by their training mean). The posterior over all user and item factors
(one flattened vector of (n_users + n_items) * K numbers) is sampled by
``samplers.sample`` — static HMC with step-size and diagonal-mass warmup by default, or
NUTS — with several chains at once, started at the MAP estimate. Predictions average
``U_i . V_j`` over the draws (they are invariant to the factors' rotation and sign
symmetries, so chains that wander between symmetric modes still agree).

The default data is generated: 100 users x 80 items, rank 5, factors N(0, 1), noise
sd 1, 20 % of the entries observed for training and another 20 % held out. Reported:
the test RMSE of the posterior-mean prediction, of the MAP estimate of the same model
(alternating ridge regressions, i.e. regularized ALS) and of the global-mean predictor.

    python examples/pmf.py [--quick] [--device cpu|gpu] [--data ratings.csv] [--rank 5]
        [--kernel hmc|nuts] [--chains 4] [--samples 1000] [--warmup 500] [--out outputs]

``--data`` takes a CSV of ``user,item,rating`` rows (0-based integer ids); a random 20 %
of them are held out for testing. Set ``--noise-std`` / ``--prior-std`` for such data.
"""
import time

import numpy as np

import autodiff as ad
import samplers
from autodiff import backend

try:
    from examples._common import (blas_threads, check_divergences, check_metrics, existing_file,
                                  figure_path, fill_quick, nonneg_int, parser, positive_float,
                                  positive_int, run_script, to_device)
except ImportError:  # run as a script from inside examples/
    from _common import (blas_threads, check_divergences, check_metrics, existing_file,
                         figure_path, fill_quick, nonneg_int, parser, positive_float, positive_int,
                         run_script, to_device)


# --------------------------------------------------------------------------- data
def generate_ratings(n_users=100, n_items=80, rank=5, observed=0.2, test=0.2, noise_std=1.0,
                     seed=0):
    """Low-rank ratings with Gaussian noise; returns train and test (user, item, rating)
    triples and the noiseless matrix."""
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(n_users, rank))
    v = rng.normal(size=(n_items, rank))
    clean = u @ v.T
    noisy = clean + noise_std * rng.normal(size=clean.shape)
    order = rng.permutation(n_users * n_items)
    n_train, n_test = int(observed * order.size), int(test * order.size)
    split = []
    for idx in (order[:n_train], order[n_train:n_train + n_test]):
        rows, cols = np.unravel_index(idx, clean.shape)
        split.append((rows, cols, noisy[rows, cols]))
    return split[0], split[1], clean


def load_ratings(path, test=0.2, seed=0):
    table = np.loadtxt(path, delimiter=",")
    rows, cols, r = table[:, 0].astype(np.int64), table[:, 1].astype(np.int64), table[:, 2]
    order = np.random.default_rng(seed).permutation(len(r))
    n_test = int(test * len(r))
    te, tr = order[:n_test], order[n_test:]
    return (rows[tr], cols[tr], r[tr]), (rows[te], cols[te], r[te])


def rmse(pred, target):
    return float(np.sqrt(np.mean((np.asarray(pred) - np.asarray(target)) ** 2)))


# --------------------------------------------------------------------------- model
def make_log_density(rows, cols, r, n_users, n_items, rank, noise_std, prior_std,
                     dense=None):
    """log p(U, V | R) up to a constant for a batch of chains: q [C, (n_users+n_items)*K]
    -> [C]. ``rows``, ``cols`` (int arrays) and ``r`` (centred ratings, on the device) are
    the observed entries.

    ``dense`` (default: when the matrix has at most 2 million entries) computes
    ``mask * (R - U V^T)`` with batched matmuls, whose backward pass is matmuls too; the
    sparse form gathers ``U[rows]`` and ``V[cols]``, whose backward is a scatter-add
    (about 5x slower at 100 x 80, but linear in the number of ratings).
    """
    xp = backend.get_array_module(r)
    n_u = n_users * rank
    if dense is None:
        dense = n_users * n_items <= 2_000_000
    rows, cols = xp.asarray(rows), xp.asarray(cols)
    if dense:
        mask = xp.zeros((n_users, n_items), dtype=r.dtype)
        target = xp.zeros((n_users, n_items), dtype=r.dtype)
        mask[rows, cols] = 1.0
        target[rows, cols] = r

    def log_density(q):
        c = q.shape[0]
        u = ad.reshape(q[:, :n_u], (c, n_users, rank))
        v = ad.reshape(q[:, n_u:], (c, n_items, rank))
        if dense:
            resid = ad.reshape(mask * (target - u @ ad.transpose(v, (0, 2, 1))), (c, -1))
        else:
            resid = r - ad.sum(u[:, rows] * v[:, cols], axis=2)      # [C, n_obs]
        return (-0.5 / noise_std ** 2 * ad.sum(resid * resid, axis=1)
                - 0.5 / prior_std ** 2 * ad.sum(q * q, axis=1))
    return log_density


def map_als(rows, cols, r, n_users, n_items, rank, noise_std, prior_std, n_sweeps=100,
            seed=0):
    """MAP of the same model by alternating ridge regressions (regularized ALS)."""
    rng = np.random.default_rng(seed)
    u = 0.1 * rng.normal(size=(n_users, rank))
    v = 0.1 * rng.normal(size=(n_items, rank))
    lam = (noise_std / prior_std) ** 2 * np.eye(rank)

    def solve(fixed, index, other, n):
        out = np.zeros((n, rank))
        for a in range(n):
            sel = index == a
            f = fixed[other[sel]]
            out[a] = np.linalg.solve(f.T @ f + lam, f.T @ r[sel])
        return out

    for _ in range(n_sweeps):
        u = solve(v, rows, cols, n_users)
        v = solve(u, cols, rows, n_items)
    return u, v


def predict_draws(draws, rows, cols, n_users, n_items, rank):
    """``U_i . V_j`` for every draw: draws [S, D] -> [S, n_entries]."""
    s = draws.shape[0]
    u = draws[:, :n_users * rank].reshape(s, n_users, rank)
    v = draws[:, n_users * rank:].reshape(s, n_items, rank)
    return np.einsum("snk,snk->sn", u[:, rows], v[:, cols])


# --------------------------------------------------------------------------- figure
def plot(iters, running_rmse, draw_rmse, map_rmse, mean_rmse, pred, target, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    ax = axes[0]
    ax.plot(iters, draw_rmse, lw=0.6, alpha=0.6, color="C0", label="single draw (chain 0)")
    ax.plot(iters, running_rmse, lw=1.8, color="C3", label="posterior mean so far (all chains)")
    ax.axhline(map_rmse, color="k", ls="--", label=f"MAP / ALS ({map_rmse:.3f})")
    ax.axhline(mean_rmse, color="C2", ls=":", label=f"global mean ({mean_rmse:.3f})")
    ax.set_xlabel("HMC iteration after warmup")
    ax.set_ylabel("test RMSE")
    ax.set_title("test RMSE vs iteration")
    ax.legend(fontsize=8)
    ax = axes[1]
    ax.scatter(target, pred, s=4, alpha=0.4)
    lim = [min(target.min(), pred.min()), max(target.max(), pred.max())]
    ax.plot(lim, lim, "k--", lw=0.8)
    ax.set_xlabel("test rating")
    ax.set_ylabel("posterior-mean prediction")
    ax.set_title("predicted vs true (test entries)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# --------------------------------------------------------------------------- main
def main(argv=None):
    p = parser(__doc__.splitlines()[0], blas_option=True)
    p.add_argument("--data", type=existing_file(), default=None, help="CSV of user,item,rating rows "
                   "(default: a generated rank-5 matrix)")
    p.add_argument("--rank", type=positive_int, default=5)
    p.add_argument("--noise-std", type=positive_float, default=1.0, help="rating noise sd s")
    p.add_argument("--prior-std", type=positive_float, default=1.0,
                   help="factor prior sd s_U = s_V")
    p.add_argument("--kernel", choices=("hmc", "nuts"), default="hmc")
    p.add_argument("--leapfrogs", type=positive_int, default=20, help="HMC integrator steps")
    p.add_argument("--chains", type=positive_int, default=4)
    p.add_argument("--samples", type=positive_int, default=None,
                   help="draws per chain (default 1000; 150 with --quick)")
    p.add_argument("--warmup", type=nonneg_int, default=None,
                   help="warmup steps per chain (default 500; 150 with --quick)")
    args = p.parse_args(argv)
    fill_quick(args, quick={"samples": 150, "warmup": 150},
               full={"samples": 1000, "warmup": 500})
    with blas_threads(args.blas_threads):
        return _run(args)


def _run(args):
    clean = None
    if args.data is None:
        train, test, clean = generate_ratings(rank=args.rank, noise_std=args.noise_std,
                                              seed=args.seed)
        n_users, n_items = clean.shape
    else:
        train, test = load_ratings(args.data, seed=args.seed)
        n_users = int(max(train[0].max(), test[0].max())) + 1
        n_items = int(max(train[1].max(), test[1].max())) + 1
    rows, cols, r = train
    t_rows, t_cols, t_r = test
    offset = r.mean()
    dim = (n_users + n_items) * args.rank
    print(f"ratings: {n_users} users x {n_items} items, {len(r)} training / {len(t_r)} test "
          f"entries; {dim} latent dimensions")

    mean_rmse = rmse(np.full_like(t_r, offset), t_r)
    u_map, v_map = map_als(rows, cols, r - offset, n_users, n_items, args.rank,
                           args.noise_std, args.prior_std, seed=args.seed)
    map_rmse = rmse(offset + np.sum(u_map[t_rows] * v_map[t_cols], 1), t_r)

    log_density = make_log_density(rows, cols, to_device(r - offset, args.device), n_users,
                                   n_items, args.rank, args.noise_std, args.prior_std)
    start_point = np.concatenate([u_map.ravel(), v_map.ravel()])
    jitter = np.random.default_rng(args.seed).normal(0.0, 0.05, (args.chains, dim))
    init = to_device(start_point + jitter, args.device)
    options = {"n_leapfrogs": args.leapfrogs} if args.kernel == "hmc" else {}
    start = time.perf_counter()
    result = samplers.sample(log_density, init, n_samples=args.samples, n_warmup=args.warmup,
                             kernel=args.kernel, rng=args.seed, progress=not args.no_progress,
                             step_size=0.05, **options)
    elapsed = time.perf_counter() - start
    draws = backend.asnumpy(result.draws)                              # [C, S, D]

    # test predictions of every draw, then the running posterior mean over all chains
    preds = np.stack([predict_draws(draws[c], t_rows, t_cols, n_users, n_items, args.rank)
                      for c in range(args.chains)]) + offset           # [C, S, n_test]
    running = np.cumsum(preds.mean(0), axis=0) / np.arange(1, args.samples + 1)[:, None]
    running_rmse = np.sqrt(np.mean((running - t_r) ** 2, axis=1))
    draw_rmse = np.sqrt(np.mean((preds[0] - t_r) ** 2, axis=1))
    posterior_mean = running[-1]
    hmc_rmse = float(running_rmse[-1])
    accept = float(np.mean(backend.asnumpy(result.stats["acceptance"])))

    metrics = {"rmse": hmc_rmse, "map_rmse": map_rmse, "global_mean_rmse": mean_rmse,
               "single_draw_rmse": float(draw_rmse.mean()), "acceptance": accept,
               "divergences": result.n_divergent, "seconds": elapsed}
    print(f"\n{args.chains} chains x ({args.warmup} warmup + {args.samples} draws) of "
          f"{args.kernel.upper()} on {dim} dimensions in {elapsed:.1f} s; "
          f"acceptance {accept:.2f}, divergences {result.n_divergent}")
    print(f"test RMSE: posterior mean {hmc_rmse:.4f} | MAP (ALS) {map_rmse:.4f} | "
          f"global mean {mean_rmse:.4f} | single draw {metrics['single_draw_rmse']:.4f}")
    if clean is not None:
        noiseless = rmse(posterior_mean, clean[t_rows, t_cols])
        metrics["rmse_vs_noiseless"] = noiseless
        print(f"posterior-mean RMSE against the noiseless test ratings: {noiseless:.4f} "
              f"(noise sd {args.noise_std})")
    path = figure_path(args.out, "pmf.png")
    plot(np.arange(1, args.samples + 1), running_rmse, draw_rmse, map_rmse, mean_rmse,
         posterior_mean, t_r, path)
    print(f"figure: {path}")
    metrics["figure"] = path
    check_divergences(result.n_divergent, args.chains * args.samples, args.kernel.upper())
    return check_metrics(metrics, ["rmse", "map_rmse", "acceptance"])


if __name__ == "__main__":
    run_script(main)
