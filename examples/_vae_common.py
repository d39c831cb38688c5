"""Shared pieces of the VAE-family examples (vae, vae_nvil, vae_ssl, sbn).

Data (binarized scikit-learn digits by default, or the fixed binarization of MNIST with
``--data``), devices and random generators, mini-batching, the training loop with its
progress bar, batched importance-sampling evaluation and the image-grid figure.
"""
import time

import numpy as np

import autodiff as ad
import zsarray as zs
from autodiff import backend

try:
    from examples._common import blas_threads, figure_path, parser
except ImportError:  # run as a script from inside examples/
    from _common import blas_threads, figure_path, parser

__all__ = ["base_parser", "load_binary", "to_dev", "make_rng", "minibatches", "train",
           "batched_mean", "plot_rows", "figure_path", "is_mnist", "blas_threads"]


def base_parser(description, z_dim=10, mnist_z_dim=40):
    """The shared CLI plus the options of the VAE family."""
    p = parser(description, blas_option=True)
    p.add_argument("--data", default=None,
                   help="binarized_mnist.npz (zs.datasets.load_binarized_mnist); default: "
                        "scikit-learn digits, 8x8, thresholded at 0.5")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--activation", choices=["relu", "tanh"], default="relu",
                   help="hidden-layer activation (the IWAE paper's protocol uses tanh, "
                        "--hidden 200 --z-dim 50 --batch-size 20 --adam-eps 1e-4)")
    p.add_argument("--adam-eps", type=float, default=1e-8)
    p.add_argument("--lr-schedule", choices=["constant", "iwae"], default="constant",
                   help="iwae: the IWAE paper's staged decay (Burda et al. 2016, sec. 5: "
                        "stage i = 0..7 lasts 3^i epochs at lr * 10^(-i/7); --epochs 3280 is "
                        "the whole schedule, fewer epochs run a prefix of it)")
    p.add_argument("--z-dim", type=int, default=None,
                   help=f"latent size (default {z_dim} on digits, {mnist_z_dim} on MNIST)")
    p.add_argument("--hidden", type=int, default=None,
                   help="hidden units per layer (default 200 on digits, 500 on MNIST)")
    p.add_argument("--is-k", type=int, default=None,
                   help="importance samples of the test log-likelihood (default 1000)")
    p.add_argument("--n-test", type=int, default=None,
                   help="evaluate on the first N test images (default all)")
    p.add_argument("--n-train", type=int, default=None,
                   help="train on the first N training images (default all)")
    return p


def is_mnist(args):
    return args.data is not None


def fill_defaults(args, z_dim=10, epochs=(200, 100, 10), batch=(100, 100), mnist_z_dim=40):
    """Size defaults that depend on the data set and on ``--quick``.

    ``epochs`` = (digits, MNIST, quick); ``batch`` = (digits, MNIST).
    """
    mnist = is_mnist(args)
    if args.z_dim is None:
        args.z_dim = mnist_z_dim if mnist else z_dim
    if args.hidden is None:
        args.hidden = 500 if mnist else 200
    if args.batch_size is None:
        args.batch_size = batch[1] if mnist else batch[0]
    if args.epochs is None:
        args.epochs = epochs[2] if args.quick else (epochs[1] if mnist else epochs[0])
    if args.is_k is None:
        args.is_k = 100 if args.quick else 1000
    if args.quick:
        if args.n_test is None:
            args.n_test = 100 if mnist else 200
        if args.n_train is None and mnist:
            args.n_train = 2000
    return args


def load_binary(args, with_labels=False):
    """``(x_train, x_test)`` (or with labels) as float32 NumPy arrays in {0, 1}.

    Digits: ``zs.datasets.load_digits(binarize=True)`` (pixels > 8/16), 1437 / 360 rows.
    MNIST: ``zs.datasets.load_binarized_mnist(args.data)`` (train 50000, test 10000; no
    labels in that file, so ``with_labels`` needs the digits).
    """
    if is_mnist(args):
        if with_labels:
            raise SystemExit("--data: the binarized MNIST file has no labels; this example "
                             "runs on the digits (or pass a labelled loader)")
        d = zs.datasets.load_binarized_mnist(args.data, dtype=np.float32)
        rng = np.random.default_rng(args.seed)
        x_train, x_test = d.train[rng.permutation(len(d.train))], d.test[
            rng.permutation(len(d.test))]
        y_train = y_test = None
    else:
        d = zs.datasets.load_digits(binarize=True, rng=args.seed, dtype=np.float32)
        x_train, x_test, y_train, y_test = d.x_train, d.x_test, d.y_train, d.y_test
    if args.n_train is not None:
        x_train = x_train[:args.n_train]
        y_train = None if y_train is None else y_train[:args.n_train]
    if args.n_test is not None:
        x_test = x_test[:args.n_test]
        y_test = None if y_test is None else y_test[:args.n_test]
    if with_labels:
        return x_train, y_train, x_test, y_test
    return x_train, x_test


def to_dev(x, device):
    """``x`` as a float32 array on ``device``."""
    return backend.to_device(np.asarray(x, dtype=np.float32), device)


def make_rng(seed, device):
    """A Generator of the device's array module."""
    if device == "gpu":
        import cupy
        return cupy.random.default_rng(seed)
    return np.random.default_rng(seed)


def minibatches(n, batch_size, rng):
    """Index arrays of a shuffled pass over ``n`` rows (the last short batch dropped
    unless it is the only one)."""
    order = rng.permutation(n)
    n_batches = max(1, n // batch_size)
    return [order[i * batch_size:(i + 1) * batch_size] for i in range(n_batches)]


def iwae_lr_factors(n_epochs, n_stages=8):
    """Per-epoch lr factors of the IWAE paper's schedule (Burda et al. 2016, section 5):
    stage ``i = 0..7`` lasts ``3^i`` epochs at ``10^(-i/7)`` times the base lr, 3280 epochs
    in all. A shorter run is a prefix of it; a longer one stays at the last factor."""
    stage = np.searchsorted(np.cumsum(3 ** np.arange(n_stages)), np.arange(n_epochs),
                            side="right")
    return 10.0 ** (-np.minimum(stage, n_stages - 1) / 7.0)


def train(step, x_train, args, params, extra_keys=(), desc="train"):
    """Run ``args.epochs`` epochs of ``step(x_batch, epoch) -> dict`` with Adam on
    ``params``; ``step`` returns the scalar cost Tensor under ``"cost"`` (minimised) and
    any float metrics (averaged per epoch). Returns ``{metric: [per-epoch means]}``
    and the elapsed seconds."""
    from tqdm import tqdm
    optimizer = zs.optim.Adam(params, lr=args.lr, eps=getattr(args, "adam_eps", 1e-8))
    schedule = None
    if getattr(args, "lr_schedule", "constant") == "iwae":
        factors = iwae_lr_factors(args.epochs)
        schedule = zs.optim.LambdaLR(optimizer, lambda e: factors[min(e, len(factors) - 1)])
    shuffle = np.random.default_rng(args.seed + 1)
    history = {}
    start = time.perf_counter()
    bar = tqdm(range(args.epochs), desc=desc, disable=args.no_progress, leave=False)
    for epoch in bar:
        sums, count = {}, 0
        for idx in minibatches(len(x_train), args.batch_size, shuffle):
            out = step(x_train[idx], epoch)
            optimizer.zero_grad()
            out.pop("cost").backward()
            optimizer.step()
            for k, v in out.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            count += 1
        for k, v in sums.items():
            history.setdefault(k, []).append(v / count)
        bar.set_postfix({k: f"{v[-1]:.2f}" for k, v in history.items()})
        if schedule is not None:
            schedule.step()
    return history, time.perf_counter() - start


def batched_mean(fn, x, batch_size):
    """Mean over rows of ``fn(x_batch) -> per-row values`` (no tape)."""
    total, n = 0.0, 0
    with ad.no_grad():
        for i in range(0, len(x), batch_size):
            v = fn(x[i:i + batch_size])
            v = backend.asnumpy(v.data if isinstance(v, ad.Tensor) else v)
            total += float(np.sum(v))
            n += v.size
    return total / n


def plot_rows(rows, path, title=None, per_row=16):
    """Save a figure with one image strip per ``(label, images [n, D])`` row, images
    square (``D = side^2``), gray levels in [0, 1]."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    n_rows = len(rows)
    fig, axes = plt.subplots(n_rows, 1, figsize=(per_row * 0.6 + 1.5, n_rows * 0.75 + 0.6),
                             squeeze=False)
    for ax, (label, images) in zip(axes[:, 0], rows):
        images = np.asarray(backend.asnumpy(images), dtype=np.float64)[:per_row]
        side = int(round(np.sqrt(images.shape[1])))
        strip = np.full((side, per_row * (side + 1) - 1), 0.2)     # light separators
        strip[:, len(images) * (side + 1):] = 0.0                     # empty slots: white
        for j, im in enumerate(images):
            strip[:, j * (side + 1):j * (side + 1) + side] = im.reshape(side, side)
        ax.imshow(strip, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def report(name, metrics, keys):
    """Print the final metrics (``keys``: the ones to show, in order)."""
    print(f"\n{name}:")
    for k in keys:
        if k in metrics and metrics[k] is not None:
            v = metrics[k]
            print(f"  {k:<28s} {v:.3f}" if isinstance(v, float) else f"  {k:<28s} {v}")
