"""Adversarial examples against a deterministic and a Bayesian MLP: FGSM / PGD, entropy detection.

Two classifiers with the same [D, H, H, 10] ReLU network (pixels mapped to [-1, 1], weight
matrices with the bias as an extra input column, each pre-activation multiplied by
sqrt(2 / (fan_in + 1)) so that N(0, 1) weights keep the activations' scale; N(0, 1) priors
on every weight, the parameterization of ``bnn_regression.py``):

* deterministic: cross-entropy plus weight decay (``--weight-decay``, default 1e-4 per
  datum, a conventionally trained net; ``--weight-decay -1`` gives 1 / N, the MAP under the
  BNN's prior), trained with ``zs.optim.Adam``;
* Bayesian: mean-field SGVB, q(w) = prod N(mu, s^2), through ``zs.variational.elbo(...)
  .sgvb()`` on a ``zs.BayesianNet`` with a Categorical likelihood (minibatch log-likelihood
  scaled by N / B), recorded once with ``autodiff.trace``. Its predictions are the
  posterior predictive averaged over S weight draws (drawn once, kept fixed).

Attacks (white box, L-infinity, pixels kept in [0, 1]), each computed from input gradients
of the cross-entropy of the *attacked model's own predictive* (for the BNN the S-sample
mixture, -log mean_s p(y | x, w_s)) by ``autodiff.grad``:

* FGSM (Goodfellow et al. 2015): x + eps * sign(grad_x loss);
* PGD (Madry et al. 2018): a uniform random start in the eps-ball, then ``--pgd-steps``
  signed steps of 2.5 eps / steps, each projected back onto the ball.

Prints, for every eps, the accuracy of each model under each attack and the ROC AUC of
detecting attacked inputs by the predictive entropy (clean test images against their
attacked copies; 0.5 = no better than chance), and saves both curves in one figure.
Default data: scikit-learn's digits (8x8, gray levels / 16, 1437 train / 360 test);
``--data`` takes MNIST (``mnist.npz`` or the idx folder, ``zs.datasets.load_mnist``).

    python examples/bnn_adversarial.py [--quick] [--data ../shared/data/mnist/mnist.npz]
        [--hidden 100] [--epochs 300] [--eps 0,0.02,...] [--pgd-steps 10] [--n-test N]
"""
import argparse
import math
import time

import numpy as np

import autodiff as ad
import zsarray as zs
from autodiff import backend

try:
    from examples._common import (blas_threads, check_metrics, figure_path, fill_quick,
                                  float_list, nonneg_float, number, parser, positive_float,
                                  positive_int, progress_bar, run_script, save_figure)
except ImportError:  # run as a script from inside examples/
    from _common import (blas_threads, check_metrics, figure_path, fill_quick, float_list,
                         nonneg_float, number, parser, positive_float, positive_int,
                         progress_bar, run_script, save_figure)

N_CLASSES = 10


# --------------------------------------------------------------------------- the network
def layer_shapes(n_in, hidden):
    """Weight shapes ``[n_out, n_in + 1]`` of the [n_in, hidden, hidden, 10] network."""
    sizes = [n_in, hidden, hidden, N_CLASSES]
    return [(n_out, n_prev + 1) for n_prev, n_out in zip(sizes[:-1], sizes[1:])]


def logits(ws, x):
    """Class logits of the network for one weight set or a batch of S weight sets.

    Parameters
    ----------
    ws : list of Tensor or array, shapes [n_out, n_in + 1] or [S, n_out, n_in + 1]
    x : Tensor or array [N, D]

    Returns
    -------
    Tensor [N, 10] or [S, N, 10]
    """
    h = 2.0 * x - 1.0                             # pixels [0, 1] -> [-1, 1]
    for i, w in enumerate(ws):
        if h.ndim < w.ndim:                       # one input batch for S weight samples
            h = ad.broadcast_to(h, tuple(w.shape[:-2]) + tuple(h.shape))
        xp = backend.get_array_module(ad.unwrap(h))
        ones = xp.ones(tuple(h.shape[:-1]) + (1,), dtype=ad.unwrap(h).dtype)
        h = ad.concatenate([h, ones], axis=-1)
        h = ad.matmul(h, ad.swapaxes(w, -1, -2)) * math.sqrt(2.0 / w.shape[-1])
        if i < len(ws) - 1:
            h = ad.relu(h)
    return h


def predictive_log_probs(ws, x):
    """log p(y | x) [N, 10]: the softmax of one network, or the log of the mean over the
    S weight samples of their softmaxes (the posterior predictive)."""
    lp = ad.log_softmax(logits(ws, x), axis=-1)
    if ws[0].ndim == 3:
        lp = ad.logsumexp(lp, axis=0) - math.log(ws[0].shape[0])
    return lp


def onehot(y, like):
    xp = backend.get_array_module(like)
    return (y[:, None] == xp.arange(N_CLASSES)[None, :]).astype(like.dtype)


# --------------------------------------------------------------------------- training
def fit_map(x, y, args, rng, progress):
    """Mean cross-entropy + decay / 2 ||w||^2 with Adam (``--weight-decay``; -1 means 1 / N,
    the MAP under the BNN's N(0, 1) prior)."""
    n, d = x.shape
    decay = 1.0 / n if args.weight_decay < 0 else args.weight_decay
    ws = [ad.tensor(rng.standard_normal(s), requires_grad=True)
          for s in layer_shapes(d, args.hidden)]
    opt = zs.optim.Adam(ws, lr=args.lr)

    def cost(xb, yb_onehot):
        nll = -ad.mean(ad.sum(ad.log_softmax(logits(ws, xb), axis=-1) * yb_onehot, axis=-1))
        return nll + sum(ad.sum(ad.square(w)) for w in ws) * (0.5 * decay)
    step = ad.trace(cost, params=ws)
    _loop(step, x, onehot(y, x), args, rng, opt, progress, "deterministic epochs")
    return [w.data for w in ws]


@zs.meta_bayesian_net(scope="bnn")
def build_bnn(x, shapes, n_particles, observed=None):
    """``w{i}`` ~ N(0, 1) [n_particles, n_out, n_in + 1], ``y`` ~ Categorical(f(x; w))."""
    bn = zs.BayesianNet(observed)
    xp = backend.get_array_module(x)
    ws = [bn.normal(f"w{i}", xp.zeros(s, dtype=x.dtype), std=1.0, group_ndims=2,
                    n_samples=n_particles).tensor for i, s in enumerate(shapes)]
    bn.categorical("y", bn.deterministic("logits", logits(ws, x)).tensor)
    return bn


def fit_sgvb(x, y, args, rng, progress):
    """Mean-field SGVB; returns ``sample(S, rng) -> list of weight arrays [S, ...]``."""
    n, d = x.shape
    shapes = layer_shapes(d, args.hidden)
    params = [(ad.tensor(rng.standard_normal(s), requires_grad=True),
               ad.tensor(np.full(s, args.init_logstd), requires_grad=True)) for s in shapes]
    names = [f"w{i}" for i in range(len(shapes))]
    model = build_bnn(x[:1], shapes, args.particles)

    def log_joint(bn):                   # log p(w) + N * mean over the batch of log p(y | x, w)
        return sum(bn.cond_log_prob(k) for k in names) + \
            ad.mean(bn.cond_log_prob("y"), axis=-1) * n
    model.log_joint = log_joint

    def q_net(n_samples, rng_q):
        q = zs.BayesianNet(rng=rng_q)
        for k, (mean, logstd) in zip(names, params):
            q.normal(k, mean, logstd=logstd, group_ndims=2, n_samples=n_samples)
        return q

    def cost(xb, yb):
        return zs.variational.elbo(model.rebind(x=xb), {"y": yb},
                                   variational=q_net(args.particles, rng), axis=0).sgvb() / n
    flat = [p for pair in params for p in pair]
    opt = zs.optim.Adam(flat, lr=args.lr)
    step = ad.trace(cost, params=flat)
    _loop(step, x, y, args, rng, opt, progress, "SGVB epochs")

    def sample(n_samples, rng_s):
        with ad.no_grad():
            q = q_net(n_samples, rng_s)
            return [q[k].tensor.data for k in names]
    return sample


def _loop(step, x, target, args, rng, opt, progress, desc):
    n = len(x)
    batch = min(args.batch_size, n)
    bar = progress_bar(args.epochs, progress, desc=desc)
    for _ in range(args.epochs):
        order = rng.permutation(n)
        for t in range(max(1, n // batch)):
            idx = order[t * batch:(t + 1) * batch]
            opt.zero_grad()
            step.backward(x[idx], target[idx])
            opt.step()
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()


# --------------------------------------------------------------------------- attacks
def input_gradient(ws, x, y_onehot):
    """grad_x of the summed cross-entropy -sum_n log p(y_n | x_n) of the predictive."""
    def loss(xx):
        return -ad.sum(predictive_log_probs(ws, xx) * y_onehot)
    return ad.grad(loss)(x)


def fgsm(ws, x, y_onehot, eps):
    """Fast gradient sign method: one signed step of size ``eps``, clipped to [0, 1]."""
    if eps == 0:
        return x
    xp = backend.get_array_module(x)
    return xp.clip(x + eps * xp.sign(input_gradient(ws, x, y_onehot)), 0.0, 1.0)


def pgd(ws, x, y_onehot, eps, n_steps, rng):
    """Projected gradient descent on the L-infinity ball of radius ``eps`` (random start,
    step 2.5 eps / n_steps), pixels clipped to [0, 1]."""
    if eps == 0:
        return x
    xp = backend.get_array_module(x)
    alpha = 2.5 * eps / n_steps
    x_adv = xp.clip(x + xp.asarray(rng.uniform(-eps, eps, x.shape), dtype=x.dtype), 0.0, 1.0)
    for _ in range(n_steps):
        x_adv = x_adv + alpha * xp.sign(input_gradient(ws, x_adv, y_onehot))
        x_adv = xp.clip(xp.minimum(xp.maximum(x_adv, x - eps), x + eps), 0.0, 1.0)
    return x_adv


def predict(ws, x):
    """(predicted class [N], predictive entropy [N]) without the tape."""
    with ad.no_grad():
        lp = backend.asnumpy(predictive_log_probs(ws, x).data)
    return lp.argmax(-1), -np.sum(np.exp(lp) * lp, axis=-1)


def roc_auc(negative, positive):
    """P(score of a positive > score of a negative) + P(tie) / 2 (the ROC AUC, by ranks)."""
    from scipy.stats import rankdata
    scores = np.concatenate([negative, positive])
    ranks = rankdata(scores)[len(negative):]
    n_pos, n_neg = len(positive), len(negative)
    return float((ranks.sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def attack_curves(ws, x, y, eps_list, args, rng):
    """Accuracy and entropy-detection AUC under FGSM and PGD for each eps."""
    y_oh = onehot(y, x)
    _, h_clean = predict(ws, x)
    out = {"fgsm_acc": [], "pgd_acc": [], "fgsm_auc": [], "pgd_auc": [],
           "clean_entropy": float(h_clean.mean()), "fgsm_entropy": [], "pgd_entropy": []}
    for eps in eps_list:
        for name, x_adv in (("fgsm", fgsm(ws, x, y_oh, eps)),
                            ("pgd", pgd(ws, x, y_oh, eps, args.pgd_steps, rng))):
            pred, h = predict(ws, x_adv)
            out[f"{name}_acc"].append(float(np.mean(pred == y)))
            out[f"{name}_auc"].append(roc_auc(h_clean, h) if eps > 0 else 0.5)
            out[f"{name}_entropy"].append(float(h.mean()))
    return out


# --------------------------------------------------------------------------- data, figure
def load(args):
    """``(x_train, y_train, x_test, y_test, name)``, pixels in [0, 1] (float64)."""
    if args.data is None:
        d = zs.datasets.load_digits(rng=args.seed, dtype=np.float64)
        return d.x_train, d.y_train, d.x_test, d.y_test, "digits"
    splits = zs.datasets.load_mnist(args.data, dtype=np.float64)   # (train, [valid,] test)
    (x_tr, y_tr), (x_te, y_te) = splits[0], splits[-1]
    return x_tr, y_tr, x_te, y_te, "mnist"


def plot(eps, curves, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    styles = {"fgsm": "-", "pgd": "--"}
    for color, (model, c) in zip(("C3", "C0"), curves.items()):
        for attack, ls in styles.items():
            label = f"{model}, {attack.upper()}"
            axes[0].plot(eps, c[f"{attack}_acc"], ls, color=color, marker="o", ms=3,
                         label=label)
            axes[1].plot(eps[1:], c[f"{attack}_auc"][1:], ls, color=color, marker="o", ms=3,
                         label=label)
    axes[0].set_ylabel("test accuracy")
    axes[0].set_ylim(0, 1.02)
    axes[1].axhline(0.5, color="0.6", lw=0.8)
    axes[1].set_ylabel("ROC AUC (entropy: attacked vs clean)")
    axes[1].set_ylim(0, 1.02)
    for ax in axes:
        ax.set_xlabel("attack size eps (L-infinity, pixels in [0, 1])")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    save_figure(fig, path, title)


def _weight_decay(text):
    """``--weight-decay``: a number >= 0, or -1 (1 / N)."""
    try:
        if float(text) == -1:
            return -1.0
    except ValueError:
        pass
    try:
        return nonneg_float(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0 or -1, got {text!r}") \
            from None


def main(argv=None):
    """Run the example; returns a dict of metrics and the figure path."""
    p = parser(__doc__.splitlines()[0], blas_option=True)
    p.add_argument("--data", default=None,
                   help="MNIST (mnist.npz or the idx folder); default: scikit-learn digits")
    p.add_argument("--hidden", type=positive_int, default=None,
                   help="hidden units per layer (default 100 on digits, 400 on MNIST)")
    p.add_argument("--epochs", type=positive_int, default=None,
                   help="training epochs of each model (default 300 digits, 20 MNIST; 60 "
                        "and 3 with --quick)")
    p.add_argument("--batch-size", type=positive_int, default=100)
    p.add_argument("--lr", type=positive_float, default=3e-3, help="Adam learning rate")
    p.add_argument("--weight-decay", type=_weight_decay, default=1e-4,
                   help="L2 coefficient of the deterministic net, decay / 2 ||w||^2 added to "
                        "the mean cross-entropy (default 1e-4; 0 for none; -1 for 1 / N, the "
                        "MAP under the BNN's N(0, 1) prior)")
    p.add_argument("--particles", type=positive_int, default=4, help="SGVB samples per step")
    p.add_argument("--init-logstd", type=number(float), default=-5.0,
                   help="initial log sd of q (default -5)")
    p.add_argument("--samples", type=positive_int, default=None,
                   help="posterior samples S of the BNN's predictive (default 100; 30 quick)")
    p.add_argument("--eps", type=float_list(number(float, low=0, high=1), increasing=True,
                                            first=0),
                   default=[0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3],
                   help="comma-separated attack sizes in [0, 1], increasing from 0 (default "
                        "0,0.02,0.05,0.1,0.15,0.2,0.3)")
    p.add_argument("--pgd-steps", type=positive_int, default=None,
                   help="PGD steps (default 10; 5 quick)")
    p.add_argument("--n-test", type=positive_int, default=None,
                   help="attack the first N test images (default all; MNIST 1000, 200 with "
                        "--quick)")
    args = p.parse_args(argv)
    if args.device != "cpu":
        p.error("--device gpu: this example runs on the CPU only (its attacks loop in NumPy)")
    mnist = args.data is not None
    fill_quick(args, quick={"hidden": 400 if mnist else 100, "epochs": 3 if mnist else 60,
                            "samples": 30, "pgd_steps": 5},
               full={"hidden": 400 if mnist else 100, "epochs": 20 if mnist else 300,
                     "samples": 100, "pgd_steps": 10})
    if mnist:
        fill_quick(args, quick={"n_test": 200}, full={"n_test": 1000})
    eps = [float(e) for e in args.eps]
    with blas_threads(args.blas_threads):
        return run(args, eps)


def run(args, eps):
    rng = np.random.default_rng(args.seed)
    x_tr, y_tr, x_te, y_te, name = load(args)
    if args.n_test is not None:
        x_te, y_te = x_te[:args.n_test], y_te[:args.n_test]
    progress = not args.no_progress
    t0 = time.perf_counter()
    w_map = fit_map(x_tr, y_tr, args, rng, progress)
    t_map = time.perf_counter() - t0
    t0 = time.perf_counter()
    sample = fit_sgvb(x_tr, y_tr, args, rng, progress)
    w_bnn = sample(args.samples, rng)
    t_bnn = time.perf_counter() - t0
    t0 = time.perf_counter()
    curves = {f"deterministic (decay {args.weight_decay:g})":
              attack_curves(w_map, x_te, y_te, eps, args, rng),
              f"Bayesian (SGVB, S={args.samples})":
              attack_curves(w_bnn, x_te, y_te, eps, args, rng)}
    t_att = time.perf_counter() - t0
    det, bay = curves.values()

    print(f"\n{name}: {len(x_tr)} train / {len(x_te)} test images, network "
          f"[{x_tr.shape[1]}, {args.hidden}, {args.hidden}, 10]; training {t_map:.1f} s (det.) + "
          f"{t_bnn:.1f} s (SGVB), attacks {t_att:.1f} s")
    print(f"{'':>6} {'accuracy: det.':>26} {'BNN':>14}   {'entropy AUC: det.':>22} {'BNN':>14}")
    print(f"{'eps':>6} " + "{:>9} {:>6}".format("FGSM", "PGD") * 2 + "   "
          + "{:>9} {:>6}".format("FGSM", "PGD") * 2)
    for i, e in enumerate(eps):
        row = [det["fgsm_acc"][i], det["pgd_acc"][i], bay["fgsm_acc"][i], bay["pgd_acc"][i]]
        auc = [det["fgsm_auc"][i], det["pgd_auc"][i], bay["fgsm_auc"][i], bay["pgd_auc"][i]]
        print(f"{e:>6.3f} " + "".join(f"{v:>{9 if j % 2 == 0 else 7}.3f}"
                                      for j, v in enumerate(row)) + "   "
              + ("".join(f"{v:>{9 if j % 2 == 0 else 7}.3f}" for j, v in enumerate(auc))
                 if e > 0 else f"{'-':>9}"))
    print(f"mean predictive entropy on clean test images: det. {det['clean_entropy']:.3f}, "
          f"BNN {bay['clean_entropy']:.3f} nats")
    path = figure_path(args.out, f"bnn_adversarial_{name}.png")
    plot(eps, curves, path, f"{name}: FGSM / PGD ({args.pgd_steps} steps) against a "
                            f"deterministic and a Bayesian MLP")
    print(f"figure: {path}")
    metrics = {"dataset": name, "eps": eps, "figure": path, "train_seconds_map": t_map,
               "train_seconds_sgvb": t_bnn, "attack_seconds": t_att}
    for key, c in (("map", det), ("bnn", bay)):
        for k, v in c.items():
            metrics[f"{key}_{k}"] = v
        metrics[f"{key}_clean_acc"] = c["fgsm_acc"][0]
    # a diverged training run leaves non-finite weights: the entropies are then nan
    return check_metrics(metrics, [f"{m}_{k}" for m in ("map", "bnn")
                                   for k in ("clean_acc", "clean_entropy", "fgsm_acc",
                                             "pgd_acc", "fgsm_auc", "pgd_auc", "fgsm_entropy",
                                             "pgd_entropy")])


if __name__ == "__main__":
    run_script(main)
