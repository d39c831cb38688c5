"""SGNHT on a 1-d Gaussian mixture with artificially noisy gradients.

Target: p(x) = 0.3 N(x | -2, 0.5^2) + 0.7 N(x | 2, 1^2). The gradient of log p is computed
with autodiff and corrupted with N(0, noise^2) noise, as a minibatch gradient would be; the
stochastic gradient Nose-Hoover thermostat (``samplers.SGNHT``, Ding et al. 2014) adapts
its friction to absorb that unknown noise. Many chains run batched. Prints the L1 distance
between the histogram of the draws and the true density (and between a Gaussian KDE of the
draws and the truth), the mass found in the left component (truth 0.3), and saves the
histogram over the true density.

    python examples/toy_mixture_sgnht.py [--quick] [--device cpu|gpu] [--out outputs]
        [--chains 64] [--samples 2000] [--burnin 500] [--thin 5] [--step-size 0.01]
        [--grad-noise 2.0]
"""
import time

import numpy as np
from scipy import stats

import autodiff as ad
import samplers
from autodiff import backend

try:
    from examples._common import (check_metrics, figure_path, fill_quick, nonneg_float, nonneg_int,
                                  parser, positive_float, positive_int, run_script, to_device)
except ImportError:  # run as a script from inside examples/
    from _common import (check_metrics, figure_path, fill_quick, nonneg_float, nonneg_int, parser,
                         positive_float, positive_int, run_script, to_device)

WEIGHTS = np.array([0.3, 0.7])
MEANS = np.array([-2.0, 2.0])
STDS = np.array([0.5, 1.0])


def log_density(x):
    """log p(x) of the mixture, element-wise, written with autodiff ops (x: [C, 1])."""
    z = (x - MEANS) / STDS                                             # [C, 2]
    comp = np.log(WEIGHTS) - np.log(STDS) - 0.5 * np.log(2 * np.pi) - 0.5 * z * z
    return ad.logsumexp(comp, axis=1)                                  # [C]


def true_density(x):
    """The mixture density on a NumPy grid."""
    return sum(w * stats.norm.pdf(x, m, s) for w, m, s in zip(WEIGHTS, MEANS, STDS))


def noisy_grad_estimator(noise_std):
    """``(position [C, 1], rng) -> [C, 1]``: exact gradient of log p plus N(0, noise_std^2).

    Parameters
    ----------
    noise_std : float
        Standard deviation of the artificial gradient noise.
    """
    grad = ad.grad(lambda q: ad.sum(log_density(q)))

    def estimator(position, rng):
        g = grad(position)
        return g + noise_std * rng.standard_normal(size=g.shape, dtype=g.dtype)
    return estimator


def density_errors(draws, grid):
    """L1 distances to the true density of the draws' histogram and of their Gaussian KDE.

    Parameters
    ----------
    draws : array [N]
    grid : array
        Evenly spaced points covering the support (bin edges for the histogram).

    Returns
    -------
    (float, float)
        ``int |hist - p| dx`` and ``int |kde - p| dx`` (each in [0, 2]).
    """
    hist, edges = np.histogram(draws, bins=grid, density=True)
    centers = 0.5 * (edges[1:] + edges[:-1])
    # the histogram's mass outside the grid counts as error
    inside = np.mean((draws >= grid[0]) & (draws <= grid[-1]))
    l1_hist = float(np.sum(np.abs(hist * inside - true_density(centers)) * np.diff(edges)))
    kde = stats.gaussian_kde(draws[:: max(1, len(draws) // 20000)])
    dx = grid[1] - grid[0]
    l1_kde = float(np.sum(np.abs(kde(grid) - true_density(grid))) * dx)
    return l1_hist, l1_kde


def plot(draws, grid, path, title):
    """Histogram of the draws over the true density."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.hist(draws, bins=grid, density=True, color="C0", alpha=0.5, label="SGNHT draws")
    ax.plot(grid, true_density(grid), "k", lw=1.5, label="true density")
    kde = stats.gaussian_kde(draws[:: max(1, len(draws) // 20000)])
    ax.plot(grid, kde(grid), "C1--", lw=1.2, label="KDE of the draws")
    ax.set_xlabel("x")
    ax.set_ylabel("density")
    ax.set_title(title, fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None):
    """Run the example; returns a dict of metrics and the figure path."""
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--chains", type=positive_int, default=None,
                   help="chains (default 64; 32 with --quick)")
    p.add_argument("--samples", type=positive_int, default=None,
                   help="draws kept per chain (default 2000; 600 with --quick)")
    p.add_argument("--burnin", type=nonneg_int, default=None,
                   help="steps dropped first (default 500; 300 with --quick)")
    p.add_argument("--thin", type=positive_int, default=5)
    p.add_argument("--step-size", type=positive_float, default=0.01,
                   help="learning rate eta = eps^2 of SGNHT")
    p.add_argument("--grad-noise", type=nonneg_float, default=2.0,
                   help="std of the artificial noise added to the gradient")
    args = p.parse_args(argv)
    fill_quick(args, quick={"chains": 32, "samples": 600, "burnin": 300},
               full={"chains": 64, "samples": 2000, "burnin": 500})

    rng = np.random.default_rng(args.seed)
    init = to_device(rng.uniform(-4, 4, (args.chains, 1)), args.device)
    # variance_extra: injected noise and the thermostat's starting friction
    kernel = samplers.SGNHT(noisy_grad_estimator(args.grad_noise), step_size=args.step_size,
                            variance_extra=0.1, tune_rate=1.0, second_order=True)
    start = time.perf_counter()
    result = samplers.sample_sgmcmc(kernel, init, n_samples=args.samples, thin=args.thin,
                                    burnin=args.burnin, rng=rng,
                                    progress=not args.no_progress)
    elapsed = time.perf_counter() - start
    draws = backend.asnumpy(result.draws).reshape(-1)

    grid = np.linspace(-6.0, 7.0, 131)
    l1_hist, l1_kde = density_errors(draws, grid)
    left_mass = float(np.mean(draws < 0.0))
    true_left = float(sum(w * stats.norm.cdf(0.0, m, s)
                          for w, m, s in zip(WEIGHTS, MEANS, STDS)))
    friction = float(np.mean(backend.asnumpy(result.state.thermostat)))
    path = figure_path(args.out, "toy_mixture_sgnht.png")
    plot(draws, grid, path, f"SGNHT, eta={args.step_size}, gradient noise sd "
         f"{args.grad_noise}: L1(hist) = {l1_hist:.3f}, L1(KDE) = {l1_kde:.3f}")
    steps = args.burnin + args.samples * args.thin
    print(f"\n{args.chains} chains x {steps} SGNHT steps (eta {args.step_size}, gradient "
          f"noise sd {args.grad_noise}) in {elapsed:.1f} s; {draws.size} draws kept")
    print(f"mean thermostat (friction) at the end: {friction:.3f}")
    print(f"mass below 0: {left_mass:.3f} (true {true_left:.3f}); mean {draws.mean():+.3f} "
          f"(true {float(WEIGHTS @ MEANS):+.3f})")
    print(f"L1 distance to the true density: histogram {l1_hist:.3f}, KDE {l1_kde:.3f}")
    print(f"figure: {path}")
    return check_metrics({"l1_hist": l1_hist, "l1_kde": l1_kde, "left_mass": left_mass,
                          "true_left_mass": true_left, "mean": float(draws.mean()),
                          "friction": friction, "elapsed": elapsed, "figure": path},
                         ["l1_hist", "l1_kde", "mean", "friction"])


if __name__ == "__main__":
    run_script(main)
