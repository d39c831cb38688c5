"""A GAN on digits or MNIST: the generator a BayesianNet, DCGAN or WGAN-GP loss.

The generator is a ``zs.BayesianNet`` with one stochastic node, ``z`` ~ N(0, I) or
Uniform(-1, 1)^d (``--prior``), and one deterministic node, the image ``x =
sigmoid(G(z))`` (an MLP); the discriminator / critic D is an MLP with leaky ReLUs
(slope 0.2) or, with ``--critic conv``, two strided 4x4 convolutions (``autodiff.conv2d``)
and a linear layer. Two losses (``--loss``):

* ``dcgan`` (Goodfellow et al. 2014 with the non-saturating generator loss; Adam beta1 0.5
  as Radford et al. 2016): D minimises softplus(-D(x)) + softplus(D(G(z))), G minimises
  softplus(-D(G(z)));
* ``wgan-gp`` (Gulrajani et al. 2017: 5 critic steps per generator step, lambda 10, Adam
  betas (0.5, 0.9)): the critic minimises D(G(z)) - D(x) + lambda (|grad_x D(x_hat)| - 1)^2
  at random interpolates x_hat, G minimises -D(G(z)).

The papers' learning rates (2e-4, 1e-4) with batch 64 left the generator collapsed onto
one gray blob for 40 (wgan-gp) to 80 (dcgan) epochs of the 1437 digits; batch 32 with lr
1e-3 (dcgan) and 5e-4 (wgan-gp) gives diverse samples within 20 epochs: the defaults.

The gradient penalty needs the parameter gradient of an input gradient, and the autodiff
tape records first-order VJPs only (nested ``grad`` raises ``NestedGradError``). So the
penalty's parameter gradient is taken by a central difference *along the input*: with
g_i = grad_x D(x_hat_i), u_i = g_i / |g_i| and c_i = 2 lambda (|g_i| - 1), both held fixed,

    d/dtheta sum_i lambda (|g_i| - 1)^2 = sum_i c_i u_i^T d g_i / dtheta
        = d/dtheta sum_i c_i [D(x_hat_i + h u_i) - D(x_hat_i - h u_i)] / (2 h) + O(h^2),

one extra forward and backward pass of D on 2B inputs (exact for a critic that is linear
between x_hat_i -/+ h u_i, as a leaky-ReLU net is unless a kink lies within h; ``--gp-h``,
default 1e-2 on pixels in [0, 1]). ``penalty_surrogate`` builds it; the tests check its
gradient against central differences of the exact penalty in parameter space.

Each epoch saves a grid of samples from 64 fixed z (``gan_<loss>_epoch<NNN>.png``) and
measures the Frechet distance between 1000 samples and the test images in pixel space
(means and covariances; a "pixel FID") and the classifier score of the samples (exp of
the mean KL from the label distribution to its marginal under a logistic regression
trained on the real training images, 1 to 10; the "inception score" with a small
classifier). Both are printed for the real test images as the reference. The last figure
shows the final grid and both metrics per epoch.

    python examples/gan.py [--quick] --loss dcgan|wgan-gp [--prior normal|uniform]
        [--data ../shared/data/mnist/mnist.npz] [--epochs 200] [--z-dim 16] [--hidden 256]
        [--critic mlp|conv]
"""
import time

import numpy as np

import autodiff as ad
import zsarray as zs
from autodiff import backend

try:
    from examples._common import (RunFailed, blas_threads, check_metrics, figure_path,
                                  fill_quick, nonneg_float, parser, positive_float,
                                  positive_int, progress_bar, run_script, save_figure)
except ImportError:  # run as a script from inside examples/
    from _common import (RunFailed, blas_threads, check_metrics, figure_path, fill_quick,
                         nonneg_float, parser, positive_float, positive_int, progress_bar,
                         run_script, save_figure)


def _leaky(t):
    return zs.nn.leaky_relu(t, 0.2)


class ConvCritic(zs.nn.Module):
    """``x [N, S*S] -> [N, 1]``: conv 4x4 stride 2 (C) -> leaky ReLU -> conv 4x4 stride 2
    (2C) -> leaky ReLU -> linear (``autodiff.conv2d``, NCHW, PyTorch's init)."""

    def __init__(self, side, channels, rng):
        if side % 4:
            raise ValueError(f"ConvCritic: the image side must be a multiple of 4, got {side}")
        self.side = side
        c1, c2 = channels, 2 * channels
        b1, b2 = 1 / 4.0, 1 / np.sqrt(16 * c1)
        self.w1 = ad.tensor(rng.uniform(-b1, b1, (c1, 1, 4, 4)).astype(np.float32),
                            requires_grad=True)
        self.b1 = ad.tensor(rng.uniform(-b1, b1, c1).astype(np.float32), requires_grad=True)
        self.w2 = ad.tensor(rng.uniform(-b2, b2, (c2, c1, 4, 4)).astype(np.float32),
                            requires_grad=True)
        self.b2 = ad.tensor(rng.uniform(-b2, b2, c2).astype(np.float32), requires_grad=True)
        self.out = zs.nn.Linear(c2 * (side // 4) ** 2, 1, rng=rng)

    def forward(self, x):
        h = ad.reshape(x, (x.shape[0], 1, self.side, self.side))
        h = _leaky(ad.conv2d(h, self.w1, self.b1, stride=2, padding=1))
        h = _leaky(ad.conv2d(h, self.w2, self.b2, stride=2, padding=1))
        return self.out(ad.reshape(h, (x.shape[0], -1)))


class GAN(zs.nn.Module):
    """Generator MLP ``z -> logits of x`` and discriminator ``x -> score`` (an MLP, or
    :class:`ConvCritic` with ``critic_arch="conv"``)."""

    def __init__(self, x_dim, z_dim, hidden, rng=0, critic_arch="mlp", channels=32):
        rng = np.random.default_rng(rng)
        self.z_dim = z_dim
        self.generator = zs.nn.MLP([z_dim, hidden, hidden, x_dim], activation="relu", rng=rng)
        if critic_arch == "conv":
            self.discriminator = ConvCritic(int(round(np.sqrt(x_dim))), channels, rng)
        elif critic_arch == "mlp":
            self.discriminator = zs.nn.MLP([x_dim, hidden, hidden, 1], activation=_leaky,
                                           rng=rng)
        else:
            raise ValueError(f"GAN: critic_arch must be 'mlp' or 'conv', got {critic_arch!r}")

    def critic(self, x):
        """D(x) [N] (a logit for dcgan, a score for wgan-gp)."""
        return self.discriminator(x)[..., 0]


@zs.meta_bayesian_net(scope="gen")
def build_generator(gan, n, prior, rng=None, observed=None):
    """``z`` [n, z_dim] from the prior, ``x = sigmoid(G(z))`` [n, x_dim] deterministic."""
    bn = zs.BayesianNet(observed, rng=rng)
    shape = (n, gan.z_dim)
    if prior == "normal":
        z = bn.normal("z", np.zeros(shape, np.float32), std=np.float32(1.0), group_ndims=1)
    else:
        z = bn.uniform("z", np.full(shape, -1.0, np.float32), np.ones(shape, np.float32),
                       group_ndims=1)
    bn.deterministic("x", ad.sigmoid(gan.generator(z)))
    return bn


def generate(gan, n, prior, rng):
    """Images [n, x_dim] as a Tensor on the tape (a fresh draw of z)."""
    return build_generator(gan, n, prior, rng=rng).observe()["x"].tensor


# --------------------------------------------------------------------------- losses
def penalty_surrogate(critic, x_hat, lam, h):
    """A scalar whose parameter gradient is that of the gradient penalty, and the penalty.

    Parameters
    ----------
    critic : callable
        ``x [N, D] -> scores [N]`` (Tensor; its parameters are on the tape).
    x_hat : array [N, D]
        Points where the penalty is taken.
    lam : float
        Penalty weight lambda.
    h : float
        Step of the central difference along u_i = g_i / |g_i|.

    Returns
    -------
    (Tensor, float)
        ``sum_i c_i [D(x_hat_i + h u_i) - D(x_hat_i - h u_i)] / (2 h N)`` with c_i =
        2 lambda (|g_i| - 1) held fixed, whose gradient in the critic's parameters
        approximates that of ``lambda mean_i (|g_i| - 1)^2`` to O(h^2); and that penalty's
        value.
    """
    xp = backend.get_array_module(x_hat)
    g = ad.grad(lambda x: ad.sum(critic(x)))(x_hat)                 # [N, D], no param grads
    norm = xp.sqrt(xp.sum(g * g, axis=-1))                          # [N]
    u = g / xp.maximum(norm, 1e-12)[:, None]
    c = (2.0 * lam) * (norm - 1.0)
    pair = xp.concatenate([x_hat + h * u, x_hat - h * u], axis=0)
    d = critic(pair)                                                # [2N]
    n = len(x_hat)
    surrogate = ad.sum(c * (d[:n] - d[n:])) / (2.0 * h * n)
    return surrogate, float(lam * xp.mean((norm - 1.0) ** 2))


def exact_penalty(critic, x_hat, lam):
    """``lambda mean_i (|grad_x D(x_hat_i)| - 1)^2`` as a float (for checks)."""
    xp = backend.get_array_module(x_hat)
    g = ad.grad(lambda x: ad.sum(critic(x)))(x_hat)
    return float(lam * xp.mean((xp.sqrt(xp.sum(g * g, axis=-1)) - 1.0) ** 2))


#: Adam learning rate, betas and critic steps per generator step of each loss
OPTIMIZER = {"dcgan": (1e-3, (0.5, 0.999), 1), "wgan-gp": (5e-4, (0.5, 0.9), 5)}


def train(gan, x_train, args, rng, on_epoch):
    """Alternate critic and generator steps; ``on_epoch(epoch, history)`` after each epoch."""
    d_params = gan.discriminator.parameters()
    g_params = gan.generator.parameters()
    lr, betas, n_critic = OPTIMIZER[args.loss]
    lr = args.lr or lr
    d_opt = zs.optim.Adam(d_params, lr=lr, betas=betas)
    g_opt = zs.optim.Adam(g_params, lr=lr, betas=betas)
    b = args.batch_size
    history = {"d_loss": [], "g_loss": [], "penalty": []}
    bar = progress_bar(args.epochs, not args.no_progress, desc=f"{args.loss} epochs")
    for epoch in range(args.epochs):
        order = rng.permutation(len(x_train))
        n_batches = len(x_train) // b
        sums = np.zeros(3)
        for t in range(n_batches // n_critic):
            for k in range(n_critic):                                 # critic / D steps
                real = x_train[order[(t * n_critic + k) * b:(t * n_critic + k + 1) * b]]
                with ad.no_grad():
                    fake = generate(gan, b, args.prior, rng).data
                d_opt.zero_grad()
                if args.loss == "dcgan":
                    loss = ad.mean(ad.softplus(-gan.critic(real))) + \
                        ad.mean(ad.softplus(gan.critic(fake)))
                    pen = 0.0
                else:
                    eps = rng.random((b, 1)).astype(real.dtype)
                    x_hat = eps * real + (1 - eps) * fake
                    surrogate, pen = penalty_surrogate(gan.critic, x_hat, args.gp_lambda,
                                                       args.gp_h)
                    loss = ad.mean(gan.critic(fake)) - ad.mean(gan.critic(real))
                    (loss + surrogate).backward()
                if args.loss == "dcgan":
                    loss.backward()
                d_opt.step()
                sums[0] += float(loss.data) / n_critic
                sums[2] += pen / n_critic
            g_opt.zero_grad()                                          # generator step
            score = gan.critic(generate(gan, b, args.prior, rng))
            g_loss = ad.mean(ad.softplus(-score)) if args.loss == "dcgan" else -ad.mean(score)
            g_loss.backward()
            g_opt.step()
            sums[1] += float(g_loss.data)
        count = max(1, n_batches // n_critic)
        for key, v in zip(("d_loss", "g_loss", "penalty"), sums / count):
            history[key].append(float(v))
        on_epoch(epoch, history)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(d=f"{history['d_loss'][-1]:.3f}", g=f"{history['g_loss'][-1]:.3f}")
    if bar is not None:
        bar.close()
    return history


# --------------------------------------------------------------------------- metrics
def frechet_distance(a, b):
    """|mu_a - mu_b|^2 + tr(C_a + C_b - 2 (C_a C_b)^(1/2)) between the rows of a and b.

    The trace of the root is sum sqrt(eig(C_a^(1/2) C_b C_a^(1/2))), a symmetric PSD matrix
    (pixels that are always blank make the covariances singular)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(ca)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = np.linalg.eigvalsh(root_a @ cb @ root_a)
    tr_root = np.sum(np.sqrt(np.clip(m, 0, None)))
    return float(np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(ca) + np.trace(cb)
                 - 2 * tr_root)


def classifier_score(clf, x):
    """exp(mean_n KL(p(y | x_n) || mean_m p(y | x_m))), in [1, n_classes]."""
    p = np.clip(clf.predict_proba(x), 1e-12, 1.0)
    marginal = p.mean(0)
    return float(np.exp(np.mean(np.sum(p * (np.log(p) - np.log(marginal)), axis=1))))


# --------------------------------------------------------------------------- data, figures
def load(args):
    """``(x_train, y_train, x_test)`` float32 in [0, 1], and the image side."""
    if args.data is None:
        d = zs.datasets.load_digits(rng=args.seed, dtype=np.float32)
        return d.x_train, d.y_train, d.x_test, 8
    splits = zs.datasets.load_mnist(args.data, dtype=np.float32)
    (x_tr, y_tr), (x_te, _) = splits[0], splits[-1]
    return x_tr, y_tr, x_te, 28


def save_grid(images, side, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(4.2, 4.5))
    _grid(ax, images, side)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def _grid(ax, images, side, per_row=8):
    images = np.asarray(images)[:per_row * per_row]
    canvas = np.ones((per_row * (side + 1) - 1,) * 2)
    for j, im in enumerate(images):
        r, c = divmod(j, per_row)
        canvas[r * (side + 1):r * (side + 1) + side,
               c * (side + 1):c * (side + 1) + side] = im.reshape(side, side)
    ax.imshow(canvas, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def save_summary(images, side, metrics, reference, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
    _grid(axes[0], images, side)
    axes[0].set_title("samples, last epoch", fontsize=9)
    epochs = np.arange(1, len(metrics["fd"]) + 1)
    axes[1].plot(epochs, metrics["fd"], "C0-o", ms=3, label="generated vs test")
    axes[1].axhline(reference["fd"], color="k", ls="--", lw=1, label="train vs test images")
    axes[1].set_yscale("log")
    axes[1].set_ylabel("Frechet distance (pixels)")
    axes[2].plot(epochs, metrics["score"], "C1-o", ms=3, label="generated")
    axes[2].axhline(reference["score"], color="k", ls="--", lw=1, label="test images")
    axes[2].set_ylabel("classifier score (1-10)")
    for ax in axes[1:]:
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    return save_figure(fig, path, title)


def main(argv=None):
    """Run the example; returns a dict of metrics and the figure paths."""
    p = parser(__doc__.splitlines()[0], blas_option=True)
    p.add_argument("--loss", choices=("dcgan", "wgan-gp"), default="dcgan")
    p.add_argument("--prior", choices=("normal", "uniform"), default="normal",
                   help="the z node: N(0, I) or Uniform(-1, 1)^d")
    p.add_argument("--data", default=None,
                   help="MNIST (mnist.npz or the idx folder); default: scikit-learn digits")
    p.add_argument("--epochs", type=positive_int, default=None,
                   help="default 200 (digits), 20 (MNIST); 40 with --quick")
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--z-dim", type=positive_int, default=None,
                   help="default 16 digits, 64 MNIST")
    p.add_argument("--hidden", type=positive_int, default=None,
                   help="default 256 digits, 512 MNIST")
    p.add_argument("--lr", type=positive_float, default=None,
                   help="Adam lr (default 1e-3 dcgan, 5e-4 wgan-gp)")
    p.add_argument("--critic", choices=("mlp", "conv"), default="mlp",
                   help="discriminator / critic: an MLP, or two strided 4x4 convolutions "
                        "(--channels, then twice as many) and a linear layer")
    p.add_argument("--channels", type=positive_int, default=32,
                   help="channels of the conv critic")
    p.add_argument("--gp-lambda", type=nonneg_float, default=10.0,
                   help="weight of the gradient penalty (wgan-gp; default 10)")
    p.add_argument("--gp-h", type=positive_float, default=1e-2,
                   help="central-difference step of the penalty's gradient (pixel units)")
    p.add_argument("--grids", choices=("all", "last"), default="all",
                   help="save the sample grid every epoch (default) or only the last")
    args = p.parse_args(argv)
    if args.device != "cpu":
        p.error("--device gpu: this example runs on the CPU only")
    mnist = args.data is not None
    fill_quick(args, quick={"epochs": 40},
               full={"epochs": 20 if mnist else 200, "z_dim": 64 if mnist else 16,
                     "hidden": 512 if mnist else 256})
    data = load(args)
    n_critic = OPTIMIZER[args.loss][2]
    if args.batch_size * n_critic > len(data[0]):
        p.error(f"--batch-size {args.batch_size}: {args.loss} takes {n_critic} batch(es) per "
                f"generator step, more than the {len(data[0])} training images")
    with blas_threads(args.blas_threads):
        return run(args, data)


def run(args, data):
    """Train on ``data = load(args)``; returns the metrics (see :func:`main`)."""
    from sklearn.linear_model import LogisticRegression
    rng = np.random.default_rng(args.seed)
    x_train, y_train, x_test, side = data
    name = "mnist" if args.data is not None else "digits"
    clf = LogisticRegression(max_iter=500).fit(x_train[:10000], y_train[:10000])
    n_eval = min(1000, len(x_test))
    reference = {"fd": frechet_distance(x_train[:n_eval], x_test[:n_eval]),
                 "score": classifier_score(clf, x_test[:n_eval])}
    gan = GAN(x_train.shape[1], args.z_dim, args.hidden, rng=args.seed, critic_arch=args.critic,
              channels=args.channels)
    z_fixed = build_generator(gan, 64, args.prior, rng=args.seed + 1).observe()["z"].tensor.data
    eval_rng = np.random.default_rng(args.seed + 2)
    tag = f"gan_{args.loss}_{args.prior}_{args.critic}_{name}"
    metrics = {"fd": [], "score": [], "grids": []}

    def on_epoch(epoch, history):
        with ad.no_grad():
            grid = build_generator(gan, 64, args.prior).observe(z=z_fixed)["x"].tensor.data
            samples = generate(gan, n_eval, args.prior, eval_rng).data
        if not np.all(np.isfinite(samples)):
            raise RunFailed(f"the run failed: the generator's samples are not finite after "
                            f"epoch {epoch + 1} (training diverged; try a smaller --lr)")
        metrics["fd"].append(frechet_distance(samples, x_test[:n_eval]))
        metrics["score"].append(classifier_score(clf, samples))
        if args.grids == "all" or epoch == args.epochs - 1:
            metrics["grids"].append(save_grid(
                grid, side, figure_path(args.out, f"{tag}_epoch{epoch + 1:03d}.png"),
                f"{args.loss}, epoch {epoch + 1}: FD {metrics['fd'][-1]:.2f}, "
                f"score {metrics['score'][-1]:.2f}"))
        metrics["last_grid"] = grid

    start = time.perf_counter()
    history = train(gan, x_train, args, rng, on_epoch)
    seconds = time.perf_counter() - start
    path = save_summary(metrics["last_grid"], side, metrics, reference,
                        figure_path(args.out, f"{tag}.png"),
                        f"{args.loss.upper()} on {name}, z ~ {args.prior}, {args.critic} critic, "
                        f"{args.epochs} epochs")
    out = {"loss": args.loss, "prior": args.prior, "critic": args.critic, "data": name, "epochs": args.epochs,
           "train_seconds": seconds, "fd_per_epoch": metrics["fd"],
           "score_per_epoch": metrics["score"], "fd_first": metrics["fd"][0],
           "fd_last": metrics["fd"][-1], "fd_best": min(metrics["fd"]),
           "score_last": metrics["score"][-1], "fd_reference": reference["fd"],
           "score_reference": reference["score"], "history": history,
           "grids": metrics["grids"], "figure": path}
    print(f"\n{args.loss} on {name} (z ~ {args.prior}, {args.z_dim}-d, {args.critic} critic), "
          f"{args.epochs} epochs "
          f"in {seconds:.1f} s")
    print(f"  pixel Frechet distance to {n_eval} test images: first epoch {out['fd_first']:.2f}, "
          f"last {out['fd_last']:.2f}, best {out['fd_best']:.2f} (train images: "
          f"{reference['fd']:.2f})")
    print(f"  classifier score: last epoch {out['score_last']:.2f} (test images "
          f"{reference['score']:.2f}; 10 is the most)")
    if args.loss == "wgan-gp":
        print(f"  gradient penalty, last epoch: {history['penalty'][-1]:.4f}; critic loss "
              f"{history['d_loss'][-1]:.4f} (minus the Wasserstein estimate)")
    print(f"  figures: {path}, {len(metrics['grids'])} grid(s) {tag}_epochNNN.png")
    check_metrics(history, list(history), what="training loss")
    return check_metrics(out, ["fd_per_epoch", "score_per_epoch", "fd_reference"])


if __name__ == "__main__":
    run_script(main)
