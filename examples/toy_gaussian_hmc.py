"""HMC on a 10-d Gaussian with scales 1/(i+1) (ZhuSuan's ``toy_examples/gaussian.py``).

Model: x ~ N(0, diag(s^2)) with s_i = 1 / (i + 1), i = 0..D-1, written as a
``zs.BayesianNet`` and sampled with the ZhuSuan-style front ``zs.HMC(...).sample``
(Stan's windowed warmup adapts the step size and a diagonal mass matrix; all chains run
batched). Prints, per dimension, the sample standard deviation next to the truth and its
relative error, the acceptance rate and the ESS, and saves a figure of the sample std
against the truth and a 2-d scatter of the two widest coordinates.

    python examples/toy_gaussian_hmc.py [--quick] [--device cpu|gpu] [--out outputs]
        [--dim 10] [--chains 4] [--samples 1000] [--warmup 1000] [--leapfrogs 10]
        [--jitter 0.2]
"""
import time

import numpy as np

import zsarray as zs
from autodiff import backend

try:
    from examples._common import (check_metrics, figure_path, fill_quick, nonneg_int, number,
                                  parser, positive_int, run_script, to_device)
except ImportError:  # run as a script from inside examples/
    from _common import (check_metrics, figure_path, fill_quick, nonneg_int, number, parser,
                         positive_int, run_script, to_device)


@zs.meta_bayesian_net(scope="gaussian")
def build_gaussian(std, observed=None):
    """x ~ N(0, diag(std^2)), one vector node ``x`` of shape ``std.shape``.

    Parameters
    ----------
    std : array [D]
        Per-dimension standard deviations.
    observed : dict, optional
        Observed values (the samplers pass ``x`` of shape [n_chains, D]).

    Returns
    -------
    zs.BayesianNet
    """
    bn = zs.BayesianNet(observed)
    bn.normal("x", 0.0 * std, std=std, group_ndims=1)
    return bn


def plot(draws, true_std, path):
    """Sample std vs truth per dimension, and a scatter of the two widest coordinates."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    flat = draws.reshape(-1, draws.shape[-1])
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    dims = np.arange(len(true_std))
    axes[0].plot(dims, true_std, "k-", lw=1.5, label="true std 1/(i+1)")
    axes[0].plot(dims, flat.std(0, ddof=1), "o", color="C1", label="HMC sample std")
    axes[0].set_xlabel("dimension i")
    axes[0].set_ylabel("standard deviation")
    axes[0].set_yscale("log")
    axes[0].legend()
    axes[1].scatter(flat[:, 0], flat[:, 1], s=3, alpha=0.3, color="C0")
    t = np.linspace(0, 2 * np.pi, 200)
    for r in (1, 2, 3):
        axes[1].plot(r * true_std[0] * np.cos(t), r * true_std[1] * np.sin(t), "k", lw=0.7)
    axes[1].set_xlabel("x[0]")
    axes[1].set_ylabel("x[1]")
    axes[1].set_title("draws and 1/2/3-sd contours")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None):
    """Run the example; returns a dict of metrics and the figure path."""
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--dim", type=number(int, low=2), default=10)
    p.add_argument("--chains", type=positive_int, default=4)
    p.add_argument("--samples", type=number(int, low=2), default=None,
                   help="draws per chain (default 1000; 500 with --quick)")
    p.add_argument("--warmup", type=nonneg_int, default=None,
                   help="warmup steps per chain (default 1000; 300 with --quick)")
    p.add_argument("--leapfrogs", type=positive_int, default=10)
    p.add_argument("--jitter", type=number(float, low=0, high=1, high_open=True), default=0.2,
                   help="step-size jitter: without it a trajectory length near a period "
                        "of one direction leaves that direction almost unmixed")
    args = p.parse_args(argv)
    fill_quick(args, quick={"samples": 500, "warmup": 300}, full={"samples": 1000,
                                                                    "warmup": 1000})

    true_std = 1.0 / (np.arange(args.dim) + 1.0)
    model = build_gaussian(to_device(true_std, args.device))
    start = time.perf_counter()
    result = zs.HMC(n_leapfrogs=args.leapfrogs, jitter=args.jitter).sample(
        model, observed={}, latent={"x": None}, n_chains=args.chains, n_samples=args.samples,
        n_warmup=args.warmup, rng=args.seed, progress=not args.no_progress)
    elapsed = time.perf_counter() - start
    draws = backend.asnumpy(result.draws["x"])                      # [C, S, D]

    from samplers import diagnostics
    sample_std = draws.reshape(-1, args.dim).std(0, ddof=1)
    rel_err = np.abs(sample_std - true_std) / true_std
    ess = np.atleast_1d(diagnostics.ess(draws))
    accept = float(np.mean(backend.asnumpy(result.stats["acceptance"])))

    print(f"\n{args.chains} chains x ({args.warmup} warmup + {args.samples} draws) of HMC "
          f"({args.leapfrogs} leapfrogs) in {elapsed:.1f} s; mean acceptance {accept:.3f}")
    print(f"{'dim':>4} {'true std':>9} {'sample std':>11} {'rel. error':>10} {'ESS':>7}")
    for i in range(args.dim):
        print(f"{i:>4} {true_std[i]:>9.4f} {sample_std[i]:>11.4f} {rel_err[i]:>10.3f} "
              f"{ess[i]:>7.0f}")
    path = figure_path(args.out, "toy_gaussian_hmc.png")
    plot(draws, true_std, path)
    print(f"max relative error of the std: {rel_err.max():.3f}; figure: {path}")
    return check_metrics({"max_std_rel_error": float(rel_err.max()), "sample_std": sample_std,
                          "true_std": true_std, "acceptance": accept,
                          "min_ess": float(ess.min()), "elapsed": elapsed, "figure": path},
                         ["sample_std", "acceptance", "min_ess"])


if __name__ == "__main__":
    run_script(main)
