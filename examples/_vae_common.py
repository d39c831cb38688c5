"""Shared pieces of the VAE-family examples (vae, vae_nvil, vae_ssl, sbn).

Data (binarized scikit-learn digits by default, or the fixed binarization of MNIST with
``--data``), devices and random generators, mini-batching, the training loop with its
progress bar, batched importance-sampling evaluation and the image-grid figure.
"""
import os
import time

import numpy as np

import autodiff as ad
import zsarray as zs
from autodiff import backend

try:
    from examples._common import (RunFailed, blas_threads, check_metrics, figure_path, fraction,
                                  int_list, nonneg_int, number, parser, positive_float,
                                  positive_int, run_script)
except ImportError:  # run as a script from inside examples/
    from _common import (RunFailed, blas_threads, check_metrics, figure_path, fraction, int_list,
                         nonneg_int, number, parser, positive_float, positive_int, run_script)

__all__ = ["base_parser", "load_binary", "to_dev", "make_rng", "minibatches", "train",
           "batched_mean", "plot_rows", "plot_curve", "figure_path", "is_mnist", "blas_threads",
           "save_checkpoint", "load_checkpoint", "RunFailed", "check_metrics", "run_script",
           "number", "int_list", "positive_int", "nonneg_int", "positive_float", "fraction"]


def base_parser(description, z_dim=10, mnist_z_dim=40, lr=1e-3):
    """The shared CLI plus the options of the VAE family."""
    p = parser(description, blas_option=True, trace_option=True)
    p.add_argument("--data", default=None,
                   help="binarized_mnist.npz (zs.datasets.load_binarized_mnist); default: "
                        "scikit-learn digits, 8x8, thresholded at 0.5")
    p.add_argument("--epochs", type=positive_int, default=None,
                   help="training epochs (default: per data set; fewer with --quick)")
    p.add_argument("--batch-size", type=positive_int, default=None)
    p.add_argument("--lr", type=positive_float, default=None,
                   help=f"Adam learning rate (default {lr})")
    p.add_argument("--activation", choices=["relu", "tanh"], default="relu",
                   help="hidden-layer activation (the IWAE paper's protocol uses tanh, "
                        "--hidden 200 --z-dim 50 --batch-size 20 --adam-eps 1e-4)")
    p.add_argument("--adam-eps", type=positive_float, default=1e-8)
    p.add_argument("--lr-schedule", choices=["constant", "iwae"], default="constant",
                   help="iwae: the IWAE paper's staged decay (Burda et al. 2016, sec. 5: "
                        "stage i = 0..7 lasts 3^i epochs at lr * 10^(-i/7); --epochs 3280 is "
                        "the whole schedule, fewer epochs run a prefix of it)")
    p.add_argument("--z-dim", type=positive_int, default=None,
                   help=f"latent size (default {z_dim} on digits, {mnist_z_dim} on MNIST)")
    p.add_argument("--hidden", type=positive_int, default=None,
                   help="hidden units per layer (default 200 on digits, 500 on MNIST)")
    p.add_argument("--is-k", type=positive_int, default=None,
                   help="importance samples of the test log-likelihood (default 1000)")
    p.add_argument("--n-test", type=positive_int, default=None,
                   help="evaluate on the first N test images (default all)")
    p.add_argument("--n-train", type=positive_int, default=None,
                   help="train on the first N training images (default all)")
    p.add_argument("--checkpoint", default=None, metavar="PATH",
                   help="save the training state (parameters, optimizer, random generators, "
                        "history) to PATH every --checkpoint-every epochs and at the end; if "
                        "PATH exists, resume from it (same options required; --epochs may "
                        "grow). A run longer than one sitting can then span several")
    p.add_argument("--checkpoint-every", type=positive_int, default=10, metavar="N",
                   help="epochs between checkpoints (default 10)")
    return p


def is_mnist(args):
    return args.data is not None


def fill_defaults(args, z_dim=10, epochs=(200, 100, 10), batch=(100, 100), mnist_z_dim=40,
                  lr=1e-3):
    """Size defaults that depend on the data set and on ``--quick``, for the options
    left at ``None`` (an option given explicitly is never overridden).

    ``epochs`` = (digits, MNIST, quick); ``batch`` = (digits, MNIST).
    """
    mnist = is_mnist(args)
    if args.lr is None:
        args.lr = lr
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


def train(step, x_train, args, params, extra_keys=(), desc="train", rngs=(), cost=None):
    """Run ``args.epochs`` epochs of ``step(x_batch, epoch) -> dict`` with Adam on
    ``params``; ``step`` returns the scalar cost Tensor under ``"cost"`` (minimised) and
    any float metrics (averaged per epoch). Returns ``{metric: [per-epoch means]}``
    and the elapsed seconds (over all sittings when resumed).

    ``cost``: optionally the same cost as a pure function ``x_batch -> scalar Tensor``
    (no epoch, no Python-side metrics). With ``args.trace`` it is recorded once by
    ``autodiff.trace(cost, params=params)`` and replayed every step (the same values and
    random numbers as the plain tape, about a quarter less time per step on small
    batches); the metric is then ``bound = -cost``.

    ``rngs``: the generators ``step`` draws from; with ``args.checkpoint`` their states
    are saved and restored with the rest, so a resumed run repeats the uninterrupted one
    bit for bit (NumPy generators; CuPy generators are re-seeded from ``args.seed`` and
    the epoch instead, which changes the draws but not their distribution).
    """
    from tqdm import tqdm
    optimizer = zs.optim.Adam(params, lr=args.lr, eps=getattr(args, "adam_eps", 1e-8))
    schedule = None
    if getattr(args, "lr_schedule", "constant") == "iwae":
        factors = iwae_lr_factors(args.epochs)
        schedule = zs.optim.LambdaLR(optimizer, lambda e: factors[min(e, len(factors) - 1)])
    shuffle = np.random.default_rng(args.seed + 1)
    history, first, before = {}, 0, 0.0
    path = getattr(args, "checkpoint", None)
    if path is not None and os.path.exists(path):
        first, history, before = load_checkpoint(path, args, params, optimizer, schedule,
                                                 shuffle, rngs)
        print(f"resumed from {path} after epoch {first} ({before:.0f} s of training)")
    every = max(1, getattr(args, "checkpoint_every", 10))
    if cost is not None and getattr(args, "trace", False):
        traced = ad.trace(cost, params=params)

        def step(x, epoch):                # noqa: F811 -- the replayed form of step
            return {"bound": -float(traced.backward(x))}
    start = time.perf_counter()
    # disable=None: tqdm's own switch-off when stderr is not a terminal (logs, CI)
    bar = tqdm(range(first, args.epochs), desc=desc, leave=False, initial=first,
               total=args.epochs, disable=True if args.no_progress else None)
    for epoch in bar:
        sums, count = {}, 0
        for idx in minibatches(len(x_train), args.batch_size, shuffle):
            optimizer.zero_grad()
            out = step(x_train[idx], epoch)
            if "cost" in out:
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
        if path is not None and ((epoch + 1) % every == 0 or epoch + 1 == args.epochs):
            seconds = before + time.perf_counter() - start
            save_checkpoint(path, args, epoch + 1, params, optimizer, schedule, shuffle,
                            rngs, history, seconds)
            if bar.disable and not args.no_progress:    # a log file: one line per save
                print(f"epoch {epoch + 1}/{args.epochs} ({seconds:.0f} s): " + ", ".join(
                    f"{k} {v[-1]:.3f}" for k, v in history.items()), flush=True)
    if not history:
        raise RunFailed(f"no training step ran ({args.epochs} epochs of {len(x_train)} "
                        f"rows): the model is untrained")
    check_metrics({k: v[-1] for k, v in history.items()}, list(history),
                  what="training metric in the last epoch")
    return history, before + time.perf_counter() - start


# options that may differ between the sittings of one checkpointed run
_RESUMABLE = {"epochs", "checkpoint", "checkpoint_every", "no_progress", "out", "device", "trace",
              "is_k", "n_test", "train_ll", "ais", "ais_temps", "ais_chains", "ais_n",
              "blas_threads"}


def _config(args):
    return {k: v for k, v in sorted(vars(args).items()) if k not in _RESUMABLE}


def _rng_state(rng):
    state = getattr(getattr(rng, "bit_generator", None), "state", None)
    return state if isinstance(state, dict) else None


def save_checkpoint(path, args, epoch, params, optimizer, schedule, shuffle, rngs, history,
                    seconds):
    """Write the training state after ``epoch`` epochs to ``path`` (a pickle; written to
    ``path + ".tmp"`` first and renamed, so an interrupted save leaves the old one)."""
    import pickle
    opt = optimizer.state_dict()
    opt["state"] = {i: {k: backend.asnumpy(v) if hasattr(v, "shape") else v
                        for k, v in s.items()} for i, s in opt["state"].items()}
    state = {"version": 1, "config": _config(args), "epoch": epoch,
             "params": [backend.asnumpy(p.data) for p in params], "optimizer": opt,
             "schedule": None if schedule is None else schedule.state_dict(),
             "shuffle": shuffle.bit_generator.state,
             "rngs": [_rng_state(r) for r in rngs], "history": history, "seconds": seconds}
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with open(path + ".tmp", "wb") as f:
        pickle.dump(state, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(path + ".tmp", path)


def load_checkpoint(path, args, params, optimizer, schedule, shuffle, rngs):
    """Restore what :func:`save_checkpoint` wrote into the live objects; returns
    ``(epochs done, history, seconds of training so far)``. Pickle: load only files you
    wrote yourself."""
    import pickle
    try:
        with open(path, "rb") as f:
            state = pickle.load(f)
    except OSError as e:
        raise SystemExit(f"--checkpoint {path}: cannot be read ({e})") from None
    except Exception as e:         # EOFError, UnpicklingError, ... on a cut-off file
        raise SystemExit(f"--checkpoint {path}: the file is damaged or truncated "
                         f"({type(e).__name__}: {e}); delete it to start afresh") from None
    keys = {"config", "epoch", "params", "optimizer", "schedule", "shuffle", "rngs",
            "history", "seconds"}
    if not isinstance(state, dict) or state.get("version") != 1:
        raise SystemExit(f"--checkpoint {path}: not a checkpoint written by this script")
    if not keys <= set(state):
        raise SystemExit(f"--checkpoint {path}: the file is damaged (no "
                         f"{sorted(keys - set(state))}); delete it to start afresh")
    diff = {k: (state["config"].get(k), v) for k, v in _config(args).items()
            if state["config"].get(k) != v}
    if diff:
        shown = ", ".join(f"--{k.replace('_', '-')} {old!r} there, {new!r} now"
                          for k, (old, new) in diff.items())
        raise SystemExit(f"--checkpoint {path} was written with other options ({shown}); "
                         "use the same options or another checkpoint path")
    if state["epoch"] > args.epochs:
        raise SystemExit(f"--checkpoint {path} has {state['epoch']} epochs done, more than "
                         f"--epochs {args.epochs}")
    if len(state["params"]) != len(params) or any(
            a.shape != p.shape for a, p in zip(state["params"], params)):
        raise SystemExit(f"--checkpoint {path}: its parameter shapes do not match this model")
    for a, p in zip(state["params"], params):
        p.data[...] = backend.to_device(a, "gpu" if backend.is_cupy(p.data) else "cpu")
    try:
        optimizer.load_state_dict(state["optimizer"])
        if schedule is not None:
            schedule.load_state_dict(state["schedule"])
    except (TypeError, ValueError) as e:
        raise SystemExit(f"--checkpoint {path}: its optimizer state does not fit ({e})") from None
    shuffle.bit_generator.state = state["shuffle"]
    for r, s in zip(rngs, state["rngs"]):
        if s is not None and _rng_state(r) is not None:
            r.bit_generator.state = s
        else:                      # a CuPy generator: a fresh stream for the rest of the run
            r.__init__(type(r.bit_generator)(args.seed * 100003 + state["epoch"]))
    return state["epoch"], state["history"], state["seconds"]


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
    n_rows = len(rows)
    plt, fig, axes = _subplots(n_rows, 1, figsize=(per_row * 0.6 + 1.5, n_rows * 0.75 + 0.6),
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
    return _save(plt, fig, path)


def _subplots(*args, **kwargs):
    """``(pyplot, figure, axes)`` on the file-only Agg backend."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(*args, **kwargs)
    return plt, fig, axes


def _save(plt, fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_curve(history, path, title=None, lr_factors=None):
    """Save the per-epoch training metrics (``{name: [per-epoch means]}``) against the
    epoch, on a log epoch axis when the run is long; ``lr_factors`` (one per epoch) marks
    where the learning rate drops."""
    plt, fig, ax = _subplots(figsize=(6.4, 3.6))
    for k, v in history.items():
        ax.plot(np.arange(1, len(v) + 1), v, lw=1, label=k)
    if lr_factors is not None:
        n = len(next(iter(history.values()), []))
        drops = [e for e in range(1, min(n, len(lr_factors))) if lr_factors[e] < lr_factors[e - 1]]
        for e in drops:
            ax.axvline(e + 1, color="0.8", lw=0.8, zorder=0)
    if len(next(iter(history.values()), [])) > 100:
        ax.set_xscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("per-epoch mean (nats)")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    return _save(plt, fig, path)


def report(name, metrics, keys):
    """Print the final metrics (``keys``: the ones to show, in order)."""
    print(f"\n{name}:")
    for k in keys:
        if k in metrics and metrics[k] is not None:
            v = metrics[k]
            print(f"  {k:<28s} {v:.3f}" if isinstance(v, float) else f"  {k:<28s} {v}")
