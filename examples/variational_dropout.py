"""Variational dropout (Kingma et al. 2015) and sparse variational dropout (Molchanov et al. 2017).

An MLP [D, 300, 100, 10] (the LeNet-300-100 shape) whose linear layers have a Gaussian
posterior on every weight, w_ij ~ N(theta_ij, alpha_ij theta_ij^2) (multiplicative noise of
learned variance alpha_ij per weight), each hidden layer followed by batch normalization
(``zs.nn.BatchNorm1d``) and a ReLU. Training maximises the SGVB bound

    N * mean_batch log p(y | x, w) - beta * sum_ij KL(q(w_ij) || p(w_ij))

with the local reparameterization trick (Kingma et al. 2015): a layer's pre-activations
are sampled directly, b = x theta + sqrt(x^2 (alpha theta^2)) * eps, eps ~ N(0, 1) from an
explicit generator, one draw per example. The prior is the log-uniform p(|w|) ~ 1 / |w|,
whose KL depends on alpha only, through one of two approximations (``--method``):

* ``kingma``: -KL = 0.5 log alpha + c1 alpha + c2 alpha^2 + c3 alpha^3 + const (Kingma
  et al. 2015, eq. 21; c = 1.16145124, -1.50204118, 0.58629921), alpha <= 1 (log alpha
  clipped at 0), parameterized by log alpha directly;
* ``sparse`` (default): -KL = k1 sigmoid(k2 + k3 log alpha) - 0.5 log(1 + 1/alpha) - k1
  (Molchanov et al. 2017, eq. 14; k = 0.63576, 1.87320, 1.48695), alpha unbounded, with the
  additive reparameterization sigma^2 = alpha theta^2 (parameters theta and log sigma^2, so
  the noise does not enter theta's gradient). Weights whose log alpha exceeds 3 (dropout
  rate above 95 %) are set to zero at test time: the network is pruned.

``beta`` grows linearly from 0 to 1 over the first ``--kl-warmup`` epochs. Test predictions
use the posterior means theta (masked for ``sparse``) and batch norm's running statistics.
A deterministic network of the same shape with batch norm (``zs.nn.Linear`` layers, no
noise, no KL) is trained alongside as the reference accuracy. Prints test accuracy and,
per layer, the fraction of weights kept and the compression |W| / |W != 0|; the figure
shows the histogram of log alpha per layer, which input pixels keep a weight, and the
accuracy per epoch. Default data: scikit-learn's digits; ``--data`` takes MNIST.

    python examples/variational_dropout.py [--quick] [--method sparse|kingma]
        [--data ../shared/data/mnist/mnist.npz] [--epochs 200] [--kl-warmup 50]
"""
import math
import time

import numpy as np

import autodiff as ad
import zsarray as zs
from autodiff import backend

try:
    from examples._common import (blas_threads, check_metrics, figure_path, fill_quick,
                                  int_list, nonneg_int, parser, positive_float, positive_int,
                                  progress_bar, run_script, save_figure)
except ImportError:  # run as a script from inside examples/
    from _common import (blas_threads, check_metrics, figure_path, fill_quick, int_list,
                         nonneg_int, parser, positive_float, positive_int, progress_bar,
                         run_script, save_figure)

KINGMA_C = (1.16145124, -1.50204118, 0.58629921)
MOLCHANOV_K = (0.63576, 1.87320, 1.48695)
LOG_ALPHA_THRESHOLD = 3.0


def kl_kingma(log_alpha):
    """KL(q || log-uniform prior) per weight, Kingma et al. (2015), up to a constant."""
    a = ad.exp(log_alpha)
    c1, c2, c3 = KINGMA_C
    return -(0.5 * log_alpha + c1 * a + c2 * a * a + c3 * a * a * a)


def kl_molchanov(log_alpha):
    """KL(q || log-uniform prior) per weight, Molchanov et al. (2017), eq. 14 (-> 0 as
    alpha -> infinity)."""
    k1, k2, k3 = MOLCHANOV_K
    return k1 - k1 * ad.sigmoid(k2 + k3 * log_alpha) + 0.5 * ad.softplus(-log_alpha)


class VDLinear(zs.nn.Module):
    """A linear layer ``[..., n_in] -> [..., n_out]`` with Gaussian multiplicative weight noise.

    Parameters
    ----------
    n_in, n_out : int
    method : {"sparse", "kingma"}
        Which KL approximation and parameterization (see the module docstring).
    rng : numpy.random.Generator
        Initial weights (Kaiming-uniform means as ``zs.nn.Linear``; log sigma^2 = -10, or
        log alpha = log 0.1 for ``kingma``).
    bias : bool

    In training mode ``forward(x, rng)`` samples pre-activations by the local
    reparameterization trick; in eval mode it uses the means (masked where
    log alpha > 3 for ``sparse``).
    """

    def __init__(self, n_in, n_out, method, rng, bias=True):
        if method not in ("sparse", "kingma"):
            raise ValueError(f"VDLinear: method must be 'sparse' or 'kingma', got {method!r}")
        self.method = method
        bound = 1 / math.sqrt(n_in)
        self.theta = ad.tensor(rng.uniform(-bound, bound, (n_in, n_out)).astype(np.float32),
                               requires_grad=True)
        start = -10.0 if method == "sparse" else math.log(0.1)
        self.log_noise = ad.tensor(np.full((n_in, n_out), start, np.float32),
                                   requires_grad=True)    # log sigma^2, or log alpha
        self.bias = ad.tensor(np.zeros(n_out, np.float32), requires_grad=True) if bias else None
        self.prune = True          # eval mode: zero the weights with log alpha > 3 (sparse)

    def log_alpha(self):
        """log alpha [n_in, n_out], clipped to [-10, 10] (sparse) or [-10, 0] (kingma)."""
        if self.method == "sparse":
            return ad.clip(self.log_noise - ad.log(ad.square(self.theta) + 1e-8), -10.0, 10.0)
        return ad.clip(self.log_noise, -10.0, 0.0)

    def kl(self):
        """Summed KL of this layer's weights (a scalar Tensor)."""
        fn = kl_molchanov if self.method == "sparse" else kl_kingma
        return ad.sum(fn(self.log_alpha()))

    def mask(self):
        """Weights kept at test time (bool array [n_in, n_out])."""
        if self.method == "kingma" or not self.prune:
            return np.ones(self.theta.shape, dtype=bool)
        return backend.asnumpy(self.log_alpha().data) < LOG_ALPHA_THRESHOLD

    def forward(self, x, rng=None):
        if not self.training:
            w = self.theta * self.mask() if self.method == "sparse" and self.prune else self.theta
            return ad.linear(x, w, self.bias)
        if rng is None:
            raise ValueError("VDLinear: training mode needs rng= (the noise's generator)")
        mean = ad.linear(x, self.theta, self.bias)
        var_w = ad.exp(self.log_noise) if self.method == "sparse" else \
            ad.exp(self.log_alpha()) * ad.square(self.theta)
        var = ad.matmul(ad.square(x), var_w)
        xp = backend.get_array_module(mean.data)
        eps = xp.asarray(rng.standard_normal(mean.shape), dtype=mean.dtype)
        return mean + ad.sqrt(var + 1e-8) * eps


class Net(zs.nn.Module):
    """[D, 300, 100, 10]: (VD)Linear -> BatchNorm1d -> ReLU twice, then (VD)Linear."""

    def __init__(self, sizes, method, rng):
        self.method = method
        n = len(sizes) - 1
        if method == "none":
            self.layers = [zs.nn.Linear(a, b, bias=(i == n - 1), rng=rng)
                           for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))]
        else:
            self.layers = [VDLinear(a, b, method, rng, bias=(i == n - 1))
                           for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))]
        self.norms = [zs.nn.BatchNorm1d(b) for b in sizes[1:-1]]

    def forward(self, x, rng=None):
        h = x
        for i, layer in enumerate(self.layers):
            h = layer(h, rng) if isinstance(layer, VDLinear) else layer(h)
            if i < len(self.norms):
                h = ad.relu(self.norms[i](h))
        return h

    def kl(self):
        return sum(layer.kl() for layer in self.layers)


def accuracy(net, x, y, batch=1000):
    net.eval()
    correct = 0
    with ad.no_grad():
        for i in range(0, len(x), batch):
            pred = backend.asnumpy(net(x[i:i + batch]).data).argmax(-1)
            correct += int(np.sum(pred == y[i:i + batch]))
    net.train()
    return correct / len(x)


def sparsity(net):
    """Per layer: (weights kept, weights in all), and the overall compression."""
    kept = [(int(layer.mask().sum()), int(layer.mask().size)) for layer in net.layers]
    total = sum(t for _, t in kept)
    return kept, total / max(1, sum(k for k, _ in kept))


def fit(net, x, y, x_test, y_test, args, rng, desc):
    """Adam on -mean log-lik + beta KL / N; returns per-epoch test accuracy and mean
    training cost."""
    n = len(x)
    opt = zs.optim.Adam(net.parameters(), lr=args.lr)
    net.train()
    acc, losses = [], []
    bar = progress_bar(args.epochs, not args.no_progress, desc=desc)
    for epoch in range(args.epochs):
        beta = min(1.0, (epoch + 1) / args.kl_warmup) if args.kl_warmup > 0 else 1.0
        order = rng.permutation(n)
        total, steps = 0.0, max(1, n // args.batch_size)
        for t in range(steps):
            idx = order[t * args.batch_size:(t + 1) * args.batch_size]
            opt.zero_grad()
            logits = net(x[idx], rng)
            nll = -ad.mean(ad.sum(ad.log_softmax(logits, axis=-1) * _onehot(y[idx]), axis=-1))
            cost = nll + (beta / n) * net.kl() if net.method != "none" else nll
            cost.backward()
            opt.step()
            total += float(cost.data)
        losses.append(total / steps)
        acc.append(accuracy(net, x_test, y_test))
        if bar is not None:
            bar.update(1)
            bar.set_postfix(acc=f"{acc[-1]:.3f}")
    if bar is not None:
        bar.close()
    return acc, losses


def _onehot(y):
    return (y[:, None] == np.arange(10)[None, :]).astype(np.float32)


def load(args):
    if args.data is None:
        d = zs.datasets.load_digits(rng=args.seed, dtype=np.float32)
        return d.x_train, d.y_train, d.x_test, d.y_test, "digits", 8
    splits = zs.datasets.load_mnist(args.data, dtype=np.float32)
    (x_tr, y_tr), (x_te, y_te) = splits[0], splits[-1]
    return x_tr, y_tr, x_te, y_te, "mnist", 28


def plot(net, histories, side, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    bins = np.linspace(-10, 10, 61)
    for i, layer in enumerate(net.layers):
        la = backend.asnumpy(layer.log_alpha().data).ravel()
        axes[0].hist(la, bins=bins, histtype="step", lw=1.2, density=True,
                     label=f"layer {i + 1} ({la.size} weights)")
    if net.method == "sparse":
        axes[0].axvline(LOG_ALPHA_THRESHOLD, color="k", ls="--", lw=1, label="pruned beyond")
    axes[0].set_xlabel("log alpha")
    axes[0].set_ylabel("density")
    axes[0].legend(fontsize=8)
    kept_per_pixel = net.layers[0].mask().sum(1).reshape(side, side)
    im = axes[1].imshow(kept_per_pixel, cmap="viridis")
    fig.colorbar(im, ax=axes[1], fraction=0.046)
    axes[1].set_title("first-layer weights kept per input pixel", fontsize=9)
    axes[1].set_xticks([])
    axes[1].set_yticks([])
    for name, acc in histories.items():
        axes[2].plot(np.arange(1, len(acc) + 1), acc, lw=1.2, label=name)
    axes[2].set_xlabel("epoch")
    axes[2].set_ylabel("test accuracy")
    axes[2].set_ylim(max(0.0, min(min(a) for a in histories.values()) - 0.02), 1.0)
    axes[2].legend(fontsize=8)
    axes[2].grid(alpha=0.3)
    return save_figure(fig, path, title)


def main(argv=None):
    """Run the example; returns a dict of metrics and the figure path."""
    p = parser(__doc__.splitlines()[0], blas_option=True)
    p.add_argument("--method", choices=("sparse", "kingma"), default="sparse")
    p.add_argument("--data", default=None,
                   help="MNIST (mnist.npz or the idx folder); default: scikit-learn digits")
    p.add_argument("--epochs", type=positive_int, default=None,
                   help="default 200 digits, 50 MNIST, 30 with --quick")
    p.add_argument("--kl-warmup", type=nonneg_int, default=None,
                   help="epochs over which beta grows from 0 to 1 (default epochs / 4; 0: "
                        "beta = 1 from the start)")
    p.add_argument("--batch-size", type=positive_int, default=100)
    p.add_argument("--lr", type=positive_float, default=1e-3)
    p.add_argument("--hidden", type=int_list(), default=[300, 100],
                   help="comma-separated hidden sizes (default 300,100)")
    p.add_argument("--no-baseline", dest="baseline", action="store_false",
                   help="skip the deterministic reference network")
    args = p.parse_args(argv)
    if args.device != "cpu":
        p.error("--device gpu: this example runs on the CPU only")
    fill_quick(args, quick={"epochs": 30}, full={"epochs": 50 if args.data else 200})
    if args.kl_warmup is None:
        args.kl_warmup = max(1, args.epochs // 4)
    with blas_threads(args.blas_threads):
        return run(args)


def run(args):
    rng = np.random.default_rng(args.seed)
    x_tr, y_tr, x_te, y_te, name, side = load(args)
    sizes = [x_tr.shape[1]] + list(args.hidden) + [10]
    histories, seconds, losses = {}, {}, {}
    if args.baseline:
        base = Net(sizes, "none", np.random.default_rng(args.seed + 1))
        t0 = time.perf_counter()
        histories["deterministic + batch norm"], losses["baseline"] = fit(
            base, x_tr, y_tr, x_te, y_te, args, rng, "baseline")
        seconds["baseline"] = time.perf_counter() - t0
    net = Net(sizes, args.method, np.random.default_rng(args.seed + 2))
    t0 = time.perf_counter()
    label = {"sparse": "sparse VD (Molchanov 2017)", "kingma": "VD (Kingma 2015)"}[args.method]
    histories[label], losses[args.method] = fit(net, x_tr, y_tr, x_te, y_te, args, rng,
                                                args.method)
    seconds[args.method] = time.perf_counter() - t0
    kept, compression = sparsity(net)
    metrics = {"method": args.method, "data": name, "epochs": args.epochs,
               "test_acc": histories[label][-1], "acc_per_epoch": histories[label],
               "layers_kept": kept, "compression": compression,
               "fraction_kept": 1.0 / compression, "seconds": seconds,
               "train_cost_last_epoch": losses[args.method][-1]}
    # accuracy of the same network without the mask: what pruning costs
    if args.method == "sparse":
        for layer in net.layers:
            layer.prune = False
        metrics["test_acc_unpruned"] = accuracy(net, x_te, y_te)
        for layer in net.layers:
            layer.prune = True
    if args.baseline:
        metrics["baseline_acc"] = histories["deterministic + batch norm"][-1]
        metrics["baseline_cost_last_epoch"] = losses["baseline"][-1]
    print(f"\n{label} on {name}: network {sizes}, {args.epochs} epochs "
          f"(KL warm-up {args.kl_warmup}); " + ", ".join(f"{k} {v:.1f} s"
                                                         for k, v in seconds.items()))
    print(f"  test accuracy {metrics['test_acc']:.4f}"
          + (f" (same weights unpruned {metrics['test_acc_unpruned']:.4f})"
             if "test_acc_unpruned" in metrics else "")
          + (f"; deterministic reference {metrics['baseline_acc']:.4f}" if args.baseline else ""))
    for i, (k, t) in enumerate(kept):
        print(f"  layer {i + 1}: {k:>6} of {t:>6} weights kept ({100 * k / t:.1f} %)")
    print(f"  compression |W| / |W != 0| = {compression:.1f}")
    path = plot(net, histories, side, figure_path(args.out, f"variational_dropout_{args.method}"
                                                             f"_{name}.png"),
                f"{label} on {name}: accuracy {metrics['test_acc']:.3f}, "
                f"{100 / compression:.1f} % of weights kept")
    print(f"figure: {path}")
    metrics["figure"] = path
    # a diverged run still predicts some class (argmax of nan): its cost tells
    return check_metrics(metrics, ["test_acc", "compression", "train_cost_last_epoch"]
                         + (["baseline_cost_last_epoch"] if args.baseline else []))


if __name__ == "__main__":
    run_script(main)
