"""Neal's funnel: mean-field SGVB against NUTS (how a factorized q misses the neck).

Model (Neal 2003): v ~ N(0, 3^2), x_j | v ~ N(0, exp(v/2)^2), j = 1..D-1, written as a
``zs.BayesianNet``. Two posteriors approximations of the same net:

* mean-field SGVB: q(v, x) = N(v | mu_v, s_v^2) prod_j N(x_j | mu_j, s_j^2), fitted by
  maximizing ``zs.variational.elbo(...).sgvb()`` with ``zs.optim.Adam``;
* NUTS (``samplers.sample(..., kernel="nuts")``, Stan's warmup, all chains batched) on the
  same log density written with autodiff ops.

Prints the mean and variance of the log-scale v under each (truth: 0 and 9; the best
mean-field q has closed form, var(v) = 1 / (1/9 + (D-1)/2), 1.64 for D = 2), the NUTS ESS
and divergences (NUTS, too, rarely enters the deep neck v < -4), and saves one figure with the NUTS draws and the q samples over the contours
of the funnel density (x_1 horizontally, v vertically).

    python examples/toy_funnel.py [--quick] [--device cpu|gpu] [--out outputs]
        [--dim 2] [--chains 8] [--samples 2000] [--warmup 1000] [--iters 3000]
        [--particles 32] [--lr 0.05] [--target-accept 0.9] [--max-tree-depth 10]
"""
import time

import numpy as np

import autodiff as ad
import samplers
import zsarray as zs
from autodiff import backend
from samplers import diagnostics

try:
    from examples._common import (check_divergences, check_metrics, figure_path, fill_quick,
                                  fraction, nonneg_int, number, parser, positive_float,
                                  positive_int, progress_bar, run_script, to_device)
except ImportError:  # run as a script from inside examples/
    from _common import (check_divergences, check_metrics, figure_path, fill_quick, fraction,
                         nonneg_int, number, parser, positive_float, positive_int, progress_bar,
                         run_script, to_device)

V_STD = 3.0


@zs.meta_bayesian_net(scope="funnel")
def build_funnel(n_x, observed=None):
    """v ~ N(0, 3^2); x | v ~ N(0, exp(v/2)^2 I_{n_x}).

    Parameters
    ----------
    n_x : int
        Number of x coordinates (the funnel has dimension ``n_x + 1``).
    observed : dict, optional
        ``v`` of shape [...] and ``x`` of shape [..., n_x] with the same leading shape
        (particles or chains).

    Returns
    -------
    zs.BayesianNet
    """
    bn = zs.BayesianNet(observed)
    v = bn.normal("v", 0.0, std=V_STD).tensor
    scale = ad.exp(0.5 * v)
    if scale.ndim:
        scale = ad.expand_dims(scale, -1)
    bn.normal("x", np.zeros(n_x), std=scale, group_ndims=1)
    return bn


def build_mean_field(params, n_particles, rng):
    """q(v, x): independent normals with means and log-stds from ``params``."""
    q = zs.BayesianNet(rng=rng)
    q.normal("v", params["v_mean"], logstd=params["v_logstd"], n_samples=n_particles)
    q.normal("x", params["x_mean"], logstd=params["x_logstd"], group_ndims=1,
             n_samples=n_particles)
    return q


def fit_mean_field(model, n_x, n_iters, n_particles, lr, rng, device, progress):
    """Maximize the ELBO of a mean-field Gaussian q with SGVB and Adam.

    Returns
    -------
    dict
        The fitted parameters as arrays and the ELBO trace (``elbo``).
    """
    params = {"v_mean": ad.tensor(to_device(0.0, device), requires_grad=True),
              "v_logstd": ad.tensor(to_device(0.0, device), requires_grad=True),
              "x_mean": ad.tensor(to_device(np.zeros(n_x), device), requires_grad=True),
              "x_logstd": ad.tensor(to_device(np.zeros(n_x), device), requires_grad=True)}
    opt = zs.optim.Adam(list(params.values()), lr=lr)
    trace = np.empty(n_iters)
    bar = progress_bar(n_iters, progress, desc="sgvb")
    for t in range(n_iters):
        # linear decay to lr / 20 so that the last iterates settle despite the noise
        opt.param_groups[0]["lr"] = lr * (1.0 - 0.95 * t / n_iters)
        q = build_mean_field(params, n_particles, rng)
        cost = zs.variational.elbo(model, {}, variational=q, axis=0).sgvb()
        opt.zero_grad()
        cost.backward()
        opt.step()
        trace[t] = -float(backend.asnumpy(cost.data))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    out = {k: backend.asnumpy(v.data).copy() for k, v in params.items()}
    out["elbo"] = trace
    return out


def funnel_log_density_batched(position):
    """The same funnel for the samplers: ``position [C, 1 + n_x]`` = (v, x) -> [C].

    Written with autodiff ops (what the NUTS kernel differentiates); equal, up to a
    constant, to the log joint of :func:`build_funnel`.
    """
    v, x = position[:, 0], position[:, 1:]
    n_x = position.shape[1] - 1
    return (-0.5 * (v / V_STD) ** 2 - 0.5 * ad.sum(x * x, axis=1) * ad.exp(-v)
            - 0.5 * n_x * v)


def funnel_log_density(x1, v):
    """log p(x_1, v) (the (x_1, v) marginal is the same for every dimension)."""
    return (-0.5 * (v / V_STD) ** 2 - 0.5 * x1 ** 2 * np.exp(-v) - 0.5 * v
            - np.log(2 * np.pi * V_STD))


def plot(nuts_v, nuts_x1, q_v, q_x1, path):
    """Two panels over the funnel contours: NUTS draws, and samples of the fitted q."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    xs, vs = np.linspace(-12, 12, 300), np.linspace(-9, 9, 300)
    gx, gv = np.meshgrid(xs, vs)
    logp = funnel_log_density(gx, gv)
    levels = np.max(logp) - np.array([14, 10, 7, 5, 3.5, 2.3, 1.2, 0.4])[::1]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), sharex=True, sharey=True)
    for ax, (title, vv, xx, color) in zip(axes, (("NUTS", nuts_v, nuts_x1, "C0"),
                                                 ("mean-field SGVB q", q_v, q_x1, "C3"))):
        ax.contour(gx, gv, logp, levels=np.sort(levels), colors="0.5", linewidths=0.7)
        ax.scatter(xx, vv, s=3, alpha=0.35, color=color)
        ax.set_title(f"{title}: var(v) = {np.var(vv):.2f} (true 9)")
        ax.set_xlabel("x[0]")
        ax.set_xlim(-12, 12)
        ax.set_ylim(-9, 9)
    axes[0].set_ylabel("v (log-variance of x)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None):
    """Run the example; returns a dict of metrics and the figure path."""
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--dim", type=number(int, low=2), default=2,
                   help="funnel dimension (1 v + dim-1 x)")
    p.add_argument("--chains", type=positive_int, default=8)
    p.add_argument("--samples", type=number(int, low=4), default=None,
                   help="NUTS draws per chain (default 2000; 400 with --quick)")
    p.add_argument("--warmup", type=nonneg_int, default=None,
                   help="NUTS warmup per chain (default 1000; 300 with --quick)")
    p.add_argument("--iters", type=positive_int, default=None,
                   help="SGVB iterations (default 3000; 600 with --quick)")
    p.add_argument("--particles", type=positive_int, default=32,
                   help="SGVB samples per iteration")
    p.add_argument("--lr", type=positive_float, default=0.05, help="Adam learning rate")
    p.add_argument("--target-accept", type=fraction, default=0.9,
                   help="NUTS step-size adaptation target (higher: fewer divergences)")
    p.add_argument("--max-tree-depth", type=positive_int, default=None,
                   help="NUTS tree depth cap (default 10; 6 with --quick)")
    args = p.parse_args(argv)
    fill_quick(args, quick={"samples": 400, "warmup": 300, "iters": 600, "max_tree_depth": 6},
               full={"samples": 2000, "warmup": 1000, "iters": 3000, "max_tree_depth": 10})
    n_x = args.dim - 1
    model = build_funnel(n_x)
    rng = np.random.default_rng(args.seed)
    progress = not args.no_progress

    start = time.perf_counter()
    fit = fit_mean_field(model, n_x, args.iters, args.particles, args.lr, rng, args.device,
                         progress)
    t_vi = time.perf_counter() - start
    q_v = fit["v_mean"] + np.exp(fit["v_logstd"]) * rng.standard_normal(4000)
    q_x = fit["x_mean"] + np.exp(fit["x_logstd"]) * rng.standard_normal((4000, n_x))

    init = to_device(np.random.default_rng(args.seed).uniform(-2, 2, (args.chains, args.dim)),
                     args.device)
    start = time.perf_counter()
    result = samplers.sample(funnel_log_density_batched, init, n_samples=args.samples,
                             n_warmup=args.warmup, kernel="nuts", rng=args.seed,
                             progress=progress, target_accept=args.target_accept,
                             max_tree_depth=args.max_tree_depth)
    t_nuts = time.perf_counter() - start
    draws = backend.asnumpy(result.draws)                           # [C, S, 1 + n_x]
    nuts_v, nuts_x = draws[:, :, 0].reshape(-1), draws[:, :, 1:].reshape(-1, n_x)
    ess_v = float(diagnostics.ess(draws[:, :, :1])[0])

    # the best mean-field q has closed form: m_v = 0, var_v = 1 / (1/9 + n_x/2),
    # var_x = exp(-var_v / 2) (maximize the ELBO in (m_v, s_v, s_x) analytically)
    q_var_opt = 1.0 / (1.0 / V_STD ** 2 + 0.5 * n_x)
    metrics = {"q_v_var_optimum": q_var_opt, "nuts_v_mean": float(nuts_v.mean()), "nuts_v_var": float(nuts_v.var()),
               "nuts_v_ess": ess_v,
               "nuts_divergences": int(result.n_divergent),
               "q_v_mean": float(fit["v_mean"]), "q_v_var": float(np.exp(2 * fit["v_logstd"])),
               "final_elbo": float(np.mean(fit["elbo"][-100:]))}
    path = figure_path(args.out, "toy_funnel.png")
    plot(nuts_v, nuts_x[:, 0], q_v, q_x[:, 0], path)
    metrics["figure"] = path
    print(f"\nfunnel of dimension {args.dim}: v ~ N(0, 9), so E[v] = 0 and var(v) = 9")
    print(f"  NUTS ({args.chains} chains x {args.samples} draws, {t_nuts:.1f} s): "
          f"mean(v) = {metrics['nuts_v_mean']:+.3f}, var(v) = {metrics['nuts_v_var']:.3f}, "
          f"ESS(v) {ess_v:.0f}, divergences {metrics['nuts_divergences']}")
    print(f"  mean-field SGVB ({args.iters} Adam steps x {args.particles} particles, "
          f"{t_vi:.1f} s): mean(v) = {metrics['q_v_mean']:+.3f}, "
          f"var(v) = {metrics['q_v_var']:.3f} (best mean-field q: 0 and {q_var_opt:.3f}), "
          f"final ELBO {metrics['final_elbo']:.3f}")
    print(f"figure: {path}")
    check_divergences(metrics["nuts_divergences"], args.chains * args.samples, "NUTS")
    return check_metrics(metrics, ["nuts_v_mean", "nuts_v_var", "q_v_mean", "q_v_var",
                                   "final_elbo"])


if __name__ == "__main__":
    run_script(main)
