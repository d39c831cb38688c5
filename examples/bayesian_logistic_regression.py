"""Bayesian logistic regression with NUTS on scikit-learn's breast-cancer data.

Model: y_n ~ Bernoulli(sigmoid(x_n . w)), w ~ N(0, I), with standardized features and an
intercept (D = 31). Four NUTS chains run at once (one batched gradient call per leapfrog
step); the script prints the summary table (mean, sd, MCSE, quantiles, ESS, R-hat), the
held-out accuracy of the posterior predictive, and saves trace and rank plots.

    python examples/bayesian_logistic_regression.py [--quick] [--device cpu|gpu]
        [--data data.csv] [--out outputs] [--chains 4] [--samples 1000] [--warmup 1000]

``--data`` takes a CSV file whose last column is a 0/1 label (default: the breast-cancer
data that ships with scikit-learn).
"""
import time

import numpy as np

import autodiff as ad
import samplers
from autodiff import backend

try:
    from examples._common import (check_divergences, check_metrics, existing_file, figure_path,
                                  fill_quick, nonneg_int, number, parser, positive_int, run_script,
                                  to_device)
except ImportError:  # run as a script from inside examples/
    from _common import (check_divergences, check_metrics, existing_file, figure_path, fill_quick,
                         nonneg_int, number, parser, positive_int, run_script, to_device)


def load_data(path=None, test_fraction=0.2, seed=0):
    """Train/test split of standardized features with an intercept column, 0/1 labels."""
    if path is None:
        from sklearn.datasets import load_breast_cancer
        data = load_breast_cancer()
        x, y = data.data, data.target.astype(float)
    else:
        table = np.loadtxt(path, delimiter=",", skiprows=0)
        x, y = table[:, :-1], table[:, -1]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    n_test = int(round(test_fraction * len(y)))
    test, train = order[:n_test], order[n_test:]
    mean, std = x[train].mean(0), x[train].std(0)
    std[std == 0] = 1.0
    x = np.hstack([np.ones((len(y), 1)), (x - mean) / std])
    return x[train], y[train], x[test], y[test]


def make_log_density(x, y):
    """log p(w | x, y) for a batch of chains: w [C, D] -> [C].

    ``samplers.sample`` compiles it (``autodiff.compile``): recorded at the first call,
    checked against the tape on the next ones, then run as one compiled program per
    gradient."""
    def log_density(w):
        logits = x @ w.T                                             # [N, C]
        loglik = ad.sum(y[:, None] * ad.log_sigmoid(logits)
                        + (1 - y[:, None]) * ad.log_sigmoid(-logits), axis=0)
        return loglik - 0.5 * ad.sum(w * w, axis=1)
    return log_density


def predictive_accuracy(draws, x, y):
    """Accuracy of the posterior-mean predictive probability; draws [C, S, D]."""
    w = draws.reshape(-1, draws.shape[-1])
    prob = (1 / (1 + np.exp(-(x @ w.T)))).mean(axis=1)
    return float(np.mean((prob > 0.5) == (y > 0.5)))


def plot(draws, names, path):
    """Trace plots and rank plots (Vehtari et al. 2021) of a few coefficients."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import rankdata
    n_chains, n_draws, _ = draws.shape
    picks = [0, 1, 2, 3]
    fig, axes = plt.subplots(len(picks), 2, figsize=(11, 2.2 * len(picks)))
    for row, j in enumerate(picks):
        ranks = rankdata(draws[:, :, j].ravel()).reshape(n_chains, n_draws)
        bins = np.linspace(0, n_chains * n_draws, 21)
        for c in range(n_chains):
            axes[row, 0].plot(draws[c, :, j], lw=0.5, alpha=0.8, label=f"chain {c}")
            axes[row, 1].hist(ranks[c], bins=bins, histtype="step", lw=1.2)
        axes[row, 0].set_ylabel(names[j])
        axes[row, 1].axhline(n_draws / 20, color="k", ls=":", lw=0.8)
    axes[0, 0].set_title("trace")
    axes[0, 1].set_title("rank plot (uniform when chains agree)")
    axes[0, 0].legend(fontsize=7, ncol=4, loc="upper right")
    axes[-1, 0].set_xlabel("draw")
    axes[-1, 1].set_xlabel("rank over all chains")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None):
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--data", type=existing_file(), default=None, help="CSV with features and a final 0/1 label")
    p.add_argument("--chains", type=positive_int, default=4)
    p.add_argument("--samples", type=number(int, low=4), default=None,
                   help="draws per chain (default 1000; 300 with --quick)")
    p.add_argument("--warmup", type=nonneg_int, default=None,
                   help="warmup steps per chain (default 1000; 300 with --quick)")
    args = p.parse_args(argv)
    fill_quick(args, quick={"samples": 300, "warmup": 300},
               full={"samples": 1000, "warmup": 1000})

    x_train, y_train, x_test, y_test = load_data(args.data, seed=args.seed)
    dim = x_train.shape[1]
    names = ["intercept"] + [f"w[{j}]" for j in range(1, dim)]
    log_density = make_log_density(to_device(x_train, args.device),
                                   to_device(y_train, args.device))
    init = to_device(np.random.default_rng(args.seed).uniform(-2, 2, (args.chains, dim)),
                     args.device)

    start = time.perf_counter()
    result = samplers.sample(log_density, init, n_samples=args.samples, n_warmup=args.warmup,
                             kernel="nuts", rng=args.seed, progress=not args.no_progress)
    elapsed = time.perf_counter() - start
    draws = backend.asnumpy(result.draws)

    table = result.summary(names=names)
    ess = np.asarray(table["ess_bulk"])
    rhat = np.asarray(table["r_hat"])
    accuracy = predictive_accuracy(draws, x_test, y_test)
    path = figure_path(args.out, "bayesian_logistic_regression.png")
    plot(draws, names, path)
    print(f"\n{args.chains} chains x ({args.warmup} warmup + {args.samples} draws) of NUTS "
          f"in {elapsed:.1f} s; divergences: {result.n_divergent}")
    print(f"min ESS bulk {ess.min():.0f} ({ess.min() / elapsed:.0f} per second), "
          f"max R-hat {rhat.max():.3f}")
    print(f"held-out accuracy of the posterior predictive: {accuracy:.3f} "
          f"({len(y_test)} test points)")
    print(f"figure: {path}")
    check_divergences(result.n_divergent, args.chains * args.samples, "NUTS")
    return check_metrics({"accuracy": accuracy, "min_ess": float(ess.min()),
                          "max_rhat": float(rhat.max()), "figure": path,
                          "divergences": result.n_divergent}, ["accuracy", "min_ess"])


if __name__ == "__main__":
    run_script(main)
