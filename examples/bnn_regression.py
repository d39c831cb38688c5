"""Bayesian neural network regression: mean-field SGVB (ZhuSuan's bnn_vi) and SGHMC.

Model (ZhuSuan's ``examples/bayesian_neural_nets/bnn_vi.py``): a [D, 50, 1] ReLU network
whose weight matrices (bias as an extra input column) have N(0, 1) priors, each layer's
pre-activation divided by sqrt(fan_in + 1), and y ~ N(f(x), sigma^2) on standardized
targets. Two posteriors over the same network:

* mean-field SGVB: q(w) = prod N(mu, s^2), ``zs.variational.elbo(...).sgvb()`` with
  ``n_particles`` samples, the log-likelihood of a minibatch scaled by N / B (ZhuSuan's
  ``log_joint``), log sigma a learned point parameter, ``zs.optim.Adam``;
* SGHMC (``samplers.SGHMC`` with ``samplers.minibatch_grad_estimator``) over the weights
  and log sigma (prior N(0, 1) on log sigma), several chains batched; the kept draws make a
  mixture predictive.

Prints the test RMSE and the test log-likelihood (per point, original target units) of
both methods and of a constant predictor, and saves the predictive mean +- 2 sd against the
test targets (sorted). Default data: scikit-learn's diabetes (80/20 split, standardized
with training statistics). ``--data`` takes a UCI folder in the PBP / MC-dropout layout
(e.g. ``../shared/data/uci/bostonHousing``): every split is run (``--splits`` to limit)
and mean +- standard error across splits are printed next to the published VI (Graves
2011) and PBP numbers (Gal & Ghahramani 2016, Table 1).

    python examples/bnn_regression.py [--quick] [--device cpu|gpu] [--out outputs]
        [--data ../shared/data/uci/bostonHousing] [--splits 20] [--epochs 500]
        [--batch-size 10] [--particles 10] [--lr 0.01] [--sghmc-epochs 1000]
        [--chains 4] [--step-size 5e-5]
"""
import math
import os
import re
import time

import numpy as np

import autodiff as ad
import samplers
import zsarray as zs
from autodiff import backend

try:
    from examples._common import (check_metrics, choice_list, figure_path, fill_quick,
                                  nonneg_float, parser, positive_float, positive_int, progress_bar,
                                  run_script, to_device, save_figure)
except ImportError:  # run as a script from inside examples/
    from _common import (check_metrics, choice_list, figure_path, fill_quick, nonneg_float, parser,
                         positive_float, positive_int, progress_bar, run_script, to_device,
                         save_figure)

N_HIDDEN = 50

#: Rows of the headline table of shared/data/RESULTS_FROM_PAPERS.md for each UCI folder.
TABLE_ROWS = {"bostonHousing": "Boston", "concrete": "Concrete", "energy": "Energy",
              "kin8nm": "Kin8nm", "naval-propulsion-plant": "Naval", "power-plant": "Power",
              "wine-quality-red": "Wine", "yacht": "Yacht"}

#: Fallback when RESULTS_FROM_PAPERS.md is absent: Boston, Gal & Ghahramani (2016),
#: "Dropout as a Bayesian Approximation", Table 1 (arXiv Oct-2016 version), who copied the
#: VI (Graves 2011) and PBP (Hernandez-Lobato & Adams 2015) columns from the PBP paper.
#: (value, standard error).
BOSTON_PUBLISHED = {"VI": {"rmse": (4.32, 0.29), "ll": (-2.90, 0.07)},
                    "PBP": {"rmse": (3.01, 0.18), "ll": (-2.57, 0.09)}}


# --------------------------------------------------------------------------- the network
def layer_shapes(n_in):
    """Weight shapes ``[n_out, n_in + 1]`` of the [n_in, 50, 1] network."""
    sizes = [n_in, N_HIDDEN, 1]
    return [(n_out, n_prev + 1) for n_prev, n_out in zip(sizes[:-1], sizes[1:])]


def forward(ws, x):
    """Network outputs for a batch of weight samples.

    Parameters
    ----------
    ws : list of Tensor or array, shapes [S, n_out, n_in + 1]
        One weight matrix per layer (bias in the last column) for each of S samples.
    x : array [N, D]

    Returns
    -------
    Tensor [S, N]
    """
    h = x
    for i, w in enumerate(ws):
        xp = backend.get_array_module(ad.unwrap(h))
        ones = xp.ones(tuple(h.shape[:-1]) + (1,), dtype=ad.unwrap(h).dtype)
        h = ad.concatenate([h, ones], axis=-1)                      # [(S,) N, n_in + 1]
        h = ad.matmul(h, ad.swapaxes(w, -1, -2)) / math.sqrt(w.shape[-1])
        if i < len(ws) - 1:
            h = ad.relu(h)
    return h[..., 0]


@zs.meta_bayesian_net(scope="bnn")
def build_bnn(x, n_in, n_particles, y_logstd, observed=None):
    """The BNN of ZhuSuan's bnn_vi: ``w{i}`` ~ N(0, 1), ``y`` ~ N(f(x), exp(y_logstd)^2).

    Parameters
    ----------
    x : array [N, D]
        Inputs (a minibatch; rebind with ``model.rebind(x=...)``).
    n_in : int
        D.
    n_particles : int
        Samples of each weight node when it is not observed.
    y_logstd : Tensor
        Log of the noise standard deviation (a learned parameter).
    observed : dict, optional
        ``y`` [N] and the weights ``w{i}`` [n_particles, n_out, n_in + 1].

    Returns
    -------
    zs.BayesianNet
    """
    bn = zs.BayesianNet(observed)
    xp = backend.get_array_module(x)
    ws = [bn.normal(f"w{i}", xp.zeros(shape), std=1.0, group_ndims=2,
                    n_samples=n_particles).tensor
          for i, shape in enumerate(layer_shapes(n_in))]
    y_mean = bn.deterministic("y_mean", forward(ws, x))
    bn.normal("y", y_mean, logstd=y_logstd)
    return bn


def scaled_log_joint(n_data, n_layers):
    """ZhuSuan's ``log_joint``: log p(w) + N * mean over the minibatch of log p(y | x, w)."""
    names = [f"w{i}" for i in range(n_layers)]

    def log_joint(bn):
        log_pw = sum(bn.cond_log_prob(n) for n in names)             # [S]
        return log_pw + ad.mean(bn.cond_log_prob("y"), axis=-1) * n_data
    return log_joint


def build_mean_field(params, n_particles, rng):
    """q(w) = prod_i N(w_i | mean_i, exp(logstd_i)^2), ``n_particles`` samples each."""
    q = zs.BayesianNet(rng=rng)
    for i, (mean, logstd) in enumerate(params):
        q.normal(f"w{i}", mean, logstd=logstd, group_ndims=2, n_samples=n_particles)
    return q


# --------------------------------------------------------------------------- SGVB
def fit_vi(x, y, args, rng, progress):
    """Mean-field SGVB with Adam; returns a predictor ``x -> (means [S, N], std)``."""
    n, d = x.shape
    shapes = layer_shapes(d)
    # small random means break the symmetry of the hidden units (ZhuSuan starts at 0)
    params = [(ad.tensor(to_device(0.1 * rng.standard_normal(s), args.device),
                         requires_grad=True),
               ad.tensor(to_device(np.full(s, -5.0), args.device), requires_grad=True))
              for s in shapes]
    y_logstd = ad.tensor(to_device(0.0, args.device), requires_grad=True)
    model = build_bnn(x[:1], d, args.particles, y_logstd)
    model.log_joint = scaled_log_joint(n, len(shapes))
    opt = zs.optim.Adam([p for pair in params for p in pair] + [y_logstd], lr=args.lr)
    batch = min(args.batch_size, n)
    iters_per_epoch = max(1, n // batch)

    def cost(x_batch, y_batch):
        q = build_mean_field(params, args.particles, rng)
        return zs.variational.elbo(model.rebind(x=x_batch), {"y": y_batch}, variational=q,
                                   axis=0).sgvb()
    # recorded once, replayed every step: the same numbers as the tape, less overhead
    step = ad.trace(cost, params=opt.param_groups[0]["params"]) \
        if getattr(args, "trace", True) else None
    bar = progress_bar(args.epochs, progress, desc="sgvb epochs")
    for epoch in range(args.epochs):
        order = rng.permutation(n)
        for t in range(iters_per_epoch):
            idx = order[t * batch:(t + 1) * batch]
            opt.zero_grad()
            if step is not None:
                value = step.backward(x[idx], y[idx])
            else:
                c = cost(x[idx], y[idx])
                c.backward()
                value = c.data
            opt.step()
        if bar is not None:
            bar.update(1)
            bar.set_postfix(elbo=f"{-float(backend.asnumpy(value)):.1f}")
    if bar is not None:
        bar.close()

    def predict(x_new, n_samples, rng_pred):
        with ad.no_grad():
            q = build_mean_field(params, n_samples, rng_pred)
            ws = [q[f"w{i}"].tensor for i in range(len(shapes))]
            means = ad.unwrap(forward(ws, x_new))
        return backend.asnumpy(means), float(np.exp(backend.asnumpy(y_logstd.data)))
    return predict


# --------------------------------------------------------------------------- SGHMC
def unpack(position, shapes):
    """Split ``position [C, P]`` into weight matrices [C, n_out, n_in + 1] and log sigma [C]."""
    ws, start = [], 0
    for s in shapes:
        size = s[0] * s[1]
        ws.append(ad.reshape(position[:, start:start + size], (position.shape[0],) + s))
        start += size
    return ws, position[:, start]


def fit_sghmc(x, y, args, rng, progress):
    """SGHMC over (weights, log sigma); returns a predictor from the kept draws."""
    n, d = x.shape
    shapes = layer_shapes(d)
    n_w = sum(a * b for a, b in shapes)
    half_log_2pi = 0.5 * math.log(2 * math.pi)

    def log_likelihood_per_datum(position, batch):
        xb, yb = batch
        ws, log_sigma = unpack(position, shapes)
        f = forward(ws, xb)                                           # [C, B]
        ls = ad.expand_dims(log_sigma, -1)
        return -0.5 * ad.square((yb - f) * ad.exp(-ls)) - ls - half_log_2pi

    def log_prior(position):
        return -0.5 * ad.sum(ad.square(position), axis=1)             # all N(0, 1)

    batch = min(args.batch_size, n)
    grad = samplers.minibatch_grad_estimator(log_likelihood_per_datum, log_prior, (x, y),
                                             None, batch)
    kernel = samplers.SGHMC(grad, step_size=args.step_size, friction=args.friction,
                            n_iter_resample_v=None, second_order=True)
    init = np.concatenate([rng.standard_normal((args.chains, n_w)),
                           np.zeros((args.chains, 1))], axis=1)
    iters_per_epoch = max(1, n // batch)
    total = args.sghmc_epochs * iters_per_epoch
    burnin = total // 2
    thin = max(1, (total - burnin) // args.draws)
    n_keep = (total - burnin) // thin
    result = samplers.sample_sgmcmc(kernel, to_device(init, args.device), n_samples=n_keep,
                                    thin=thin, burnin=total - n_keep * thin, rng=rng,
                                    progress=progress)
    draws = result.draws.reshape(-1, n_w + 1)                         # [C * K, P]

    def predict(x_new, n_samples, rng_pred):
        with ad.no_grad():
            ws, log_sigma = unpack(draws, shapes)
            means = ad.unwrap(forward(ws, x_new))
            sigma = ad.unwrap(ad.exp(log_sigma))
        return backend.asnumpy(means), backend.asnumpy(sigma)[:, None]
    return predict


# --------------------------------------------------------------------------- evaluation
def evaluate(data, predict, n_samples, rng, device="cpu"):
    """Test RMSE, log-likelihood (original units) and the predictive mean / sd [N_test].

    Parameters
    ----------
    data : zs.datasets.RegressionData
    predict : callable
        ``(x [N, D], n_samples, rng) -> (means [S, N], std)`` in normalized units.
    n_samples : int
        Samples of the approximate posterior (ignored by MCMC predictors).
    rng : numpy.random.Generator
    device : str

    Returns
    -------
    dict
        ``rmse``, ``ll`` (per test point), ``mean`` and ``sd`` [N_test] (original units).
    """
    means, std = predict(to_device(data.x_test, device), n_samples, rng)
    pred_mean = means.mean(0)
    pred_sd = np.sqrt(means.var(0) + np.mean(np.broadcast_to(std, means.shape) ** 2, 0))
    return {"rmse": data.rmse(pred_mean), "ll": data.gaussian_log_likelihood(means, std),
            "mean": data.denormalize_y(pred_mean), "sd": data.denormalize_scale(pred_sd)}


def constant_metrics(data):
    """RMSE and log-likelihood of the constant predictive N(train mean, train sd^2)."""
    zeros = np.zeros_like(data.y_test)
    return {"rmse": data.rmse(zeros), "ll": data.gaussian_log_likelihood(zeros, 1.0)}


def published(folder):
    """Published VI and PBP numbers for a UCI folder, from RESULTS_FROM_PAPERS.md.

    Returns
    -------
    dict or None
        ``{"VI": {"rmse": (mean, se), "ll": (mean, se)}, "PBP": {...}}``.
    """
    folder = os.path.normpath(folder)
    if os.path.basename(folder) == "data":                 # <name>/data was given
        folder = os.path.dirname(folder)
    row = TABLE_ROWS.get(os.path.basename(folder))
    if row is None:
        return None
    root = zs.datasets.shared_data_dir()
    path = None if root is None else os.path.join(root, "RESULTS_FROM_PAPERS.md")
    if path is not None and os.path.isfile(path):
        number = r"(-?\d+\.\d+)\s*±\s*(\d+\.\d+)"
        with open(path, encoding="utf-8") as f:
            for line in f:
                cells = [c.strip() for c in line.strip().strip("|").split("|")]
                if cells and cells[0] == row and len(cells) == 7:
                    vals = [tuple(map(float, re.match(number, c).groups())) for c in cells[1:]]
                    return {"VI": {"rmse": vals[0], "ll": vals[3]},
                            "PBP": {"rmse": vals[1], "ll": vals[4]}}
    return BOSTON_PUBLISHED if row == "Boston" else None


def plot(data, results, path, title):
    """Predictive mean +- 2 sd of each method against the test targets, sorted by target."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    y = data.y_test_original()
    order = np.argsort(y)
    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4), sharey=True)
    idx = np.arange(len(y))
    for ax, (name, r) in zip(np.atleast_1d(axes), results.items()):
        ax.fill_between(idx, (r["mean"] - 2 * r["sd"])[order], (r["mean"] + 2 * r["sd"])[order],
                        color="C0", alpha=0.25, label="predictive mean +- 2 sd")
        ax.plot(idx, r["mean"][order], "C0-", lw=1, label="predictive mean")
        ax.plot(idx, y[order], "k.", ms=4, label="test target")
        ax.set_title(f"{name}: RMSE {r['rmse']:.2f}, LL {r['ll']:.2f}")
        ax.set_xlabel("test point (sorted by target)")
    np.atleast_1d(axes)[0].set_ylabel("target")
    np.atleast_1d(axes)[0].legend(fontsize=8)
    save_figure(fig, path, title)


def _mean_se(values):
    v = np.asarray(values, dtype=float)
    se = v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else float("nan")
    return float(v.mean()), float(se)


def main(argv=None):
    """Run the example; returns a dict of metrics and the figure path."""
    p = parser(__doc__.splitlines()[0], trace_option=True)
    p.add_argument("--data", default=None,
                   help="UCI folder in the PBP layout (default: scikit-learn's diabetes)")
    p.add_argument("--splits", type=positive_int, default=None,
                   help="run only the first K splits")
    p.add_argument("--epochs", type=positive_int, default=None,
                   help="SGVB epochs (default 500; 40 with --quick)")
    p.add_argument("--batch-size", type=positive_int, default=None,
                   help="minibatch size (default 10; 32 with --quick)")
    p.add_argument("--particles", type=positive_int, default=10, help="SGVB samples per step")
    p.add_argument("--lr", type=positive_float, default=0.01, help="Adam learning rate")
    p.add_argument("--test-samples", type=positive_int, default=None,
                   help="samples of q for the test predictive (default 1000; 200 with "
                        "--quick)")
    p.add_argument("--sghmc-epochs", type=positive_int, default=None,
                   help="SGHMC epochs (default 500; 60 with --quick)")
    p.add_argument("--chains", type=positive_int, default=4, help="SGHMC chains")
    p.add_argument("--step-size", type=positive_float, default=5e-5,
                   help="SGHMC learning rate eta = eps^2")
    p.add_argument("--friction", type=nonneg_float, default=0.1, help="SGHMC friction alpha")
    p.add_argument("--draws", type=positive_int, default=None,
                   help="SGHMC draws kept per chain (default 100; 50 with --quick)")
    p.add_argument("--methods", type=choice_list(("vi", "sghmc")), default=["vi", "sghmc"],
                   help="comma-separated: vi, sghmc")
    args = p.parse_args(argv)
    fill_quick(args, quick={"epochs": 40, "sghmc_epochs": 60, "test_samples": 200,
                            "batch_size": 32, "draws": 50},
               full={"epochs": 500, "sghmc_epochs": 500, "test_samples": 1000,
                     "batch_size": 10, "draws": 100})
    methods = args.methods
    progress = not args.no_progress
    rng = np.random.default_rng(args.seed)

    if args.data is None:
        if args.splits not in (None, 1):
            p.error(f"--splits {args.splits}: the default data (diabetes) has one split; "
                    f"give a UCI folder with --data")
        splits = [zs.datasets.load_diabetes(rng=args.seed)]
        name = "diabetes"
    else:
        n_splits = zs.datasets.uci_n_splits(args.data)
        if args.splits is not None:
            if args.splits > n_splits:
                p.error(f"--splits {args.splits}: {args.data} has only {n_splits} splits")
            n_splits = args.splits
        splits = [zs.datasets.load_uci(args.data, split=k) for k in range(n_splits)]
        name = os.path.basename(os.path.normpath(args.data))
        if name == "data":
            name = os.path.basename(os.path.dirname(os.path.normpath(args.data)))

    fitters = {"vi": ("mean-field SGVB", fit_vi), "sghmc": ("SGHMC", fit_sghmc)}
    per_split = {m: [] for m in methods + ["constant"]}
    first = {}
    start = time.perf_counter()
    for k, data in enumerate(splits):
        x = to_device(data.x_train, args.device)
        y = to_device(data.y_train, args.device)
        for m in methods:
            t0 = time.perf_counter()
            predict = fitters[m][1](x, y, args, rng, progress)
            r = evaluate(data, predict, args.test_samples, rng, args.device)
            r["time"] = time.perf_counter() - t0
            per_split[m].append(r)
            if k == 0:
                first[fitters[m][0]] = r
        per_split["constant"].append(constant_metrics(data))
        if len(splits) > 1:
            line = ", ".join(f"{m} RMSE {per_split[m][-1]['rmse']:.3f} LL "
                             f"{per_split[m][-1]['ll']:.3f} ({per_split[m][-1]['time']:.0f} s)"
                             for m in methods)
            print(f"split {k:2d}: {line}", flush=True)
    elapsed = time.perf_counter() - start

    metrics = {"dataset": name, "n_splits": len(splits), "elapsed": elapsed}
    print(f"\n{name}: {len(splits)} split(s), {splits[0].x_train.shape[0]} train / "
          f"{splits[0].x_test.shape[0]} test points, D = {splits[0].x_train.shape[1]}; "
          f"{elapsed:.0f} s")
    print(f"{'method':<18} {'test RMSE':>18} {'test LL':>18}")
    for m in methods + ["constant"]:
        rmse, ll = (_mean_se([r[key] for r in per_split[m]]) for key in ("rmse", "ll"))
        metrics[f"{m}_rmse"], metrics[f"{m}_ll"] = rmse[0], ll[0]
        metrics[f"{m}_rmse_se"], metrics[f"{m}_ll_se"] = rmse[1], ll[1]
        label = fitters[m][0] if m in fitters else "constant (train)"
        print(f"{label:<18} {rmse[0]:>9.3f} +- {rmse[1]:<6.3f} {ll[0]:>9.3f} +- {ll[1]:<6.3f}")
    pub = published(args.data) if args.data is not None else None
    if pub is not None:
        for key, vals in pub.items():
            print(f"{'published ' + key:<18} {vals['rmse'][0]:>9.2f} +- {vals['rmse'][1]:<6.2f} "
                  f"{vals['ll'][0]:>9.2f} +- {vals['ll'][1]:<6.2f}")
        print("(published: Gal & Ghahramani 2016, Table 1; VI = Graves 2011, PBP = "
              "Hernandez-Lobato & Adams 2015; +- standard error over 20 splits)")
        metrics["published"] = pub
    print("(+- standard error across splits)" if len(splits) > 1 else
          "(one split: no standard error)")
    path = figure_path(args.out, f"bnn_regression_{name}.png")
    plot(splits[0], first, path, f"{name}, split 0: test predictive")
    print(f"figure: {path}")
    metrics["figure"] = path
    return check_metrics(metrics, [f"{m}_{key}" for m in methods for key in ("rmse", "ll")])


if __name__ == "__main__":
    run_script(main)
