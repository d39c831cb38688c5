"""Shared command-line plumbing of the examples: options, device, output folder, the
argparse types that check every numeric option, ``--quick`` defaults that never override
an option given explicitly, and the exit status of a failed run."""
import argparse
import math
import os
import sys

import numpy as np

from autodiff import backend


def parser(description, blas_option=False, trace_option=False):
    """An argparse parser with the options every example takes (and ``--blas-threads``
    for the examples that run under :func:`blas_threads`, ``--no-trace`` for those that
    train through ``autodiff.trace(cost, params=...)``)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true",
                   help="a short run (under a minute on 2 CPU cores) for smoke tests")
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu",
                   help="run on NumPy (cpu) or CuPy (gpu) arrays")
    p.add_argument("--out", default="outputs", help="folder for figures (default ./outputs)")
    p.add_argument("--seed", type=nonneg_int, default=0)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    if blas_option:
        p.add_argument("--blas-threads", type=nonneg_int, default=1,
                       help="BLAS threads while the example runs (default 1: on small, busy "
                            "machines OpenBLAS threads spin against each other and make small "
                            "matrix products 5-20x slower); 0 leaves it alone")
    if trace_option:
        p.add_argument("--no-trace", dest="trace", action="store_false",
                       help="evaluate the training cost with the plain tape every step "
                            "instead of replaying it with autodiff.trace (same numbers, "
                            "slower)")
    return p


def to_device(x, device):
    """``x`` as a float64 array on ``device``."""
    return backend.to_device(np.asarray(x, dtype=np.float64), device)


def figure_path(out, name):
    os.makedirs(out, exist_ok=True)
    return os.path.join(out, name)


def save_figure(fig, path, title=None):
    """Give ``fig`` its title, lay it out, write it to ``path`` (PNG, 90 dpi) and close
    it; returns ``path``."""
    import matplotlib.pyplot as plt
    if title is not None:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def progress_bar(total, enabled=True, desc=None):
    """A tqdm bar over ``total`` steps, or None when ``enabled`` is false, stderr is not a
    terminal, or tqdm is missing (call ``bar.update(1)`` / ``bar.close()`` when not None)."""
    import sys
    if not enabled or not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, dynamic_ncols=True, leave=False)


def blas_threads(n):
    """A context limiting BLAS to ``n`` threads (threadpoolctl, shipped with scikit-learn),
    or doing nothing when ``n`` is 0 or threadpoolctl is missing.

    On a busy 2-core machine OpenBLAS's threads compete with each other and everything
    else (a 100 x 100 triangular solve with 256 right-hand sides: 11.8 ms with threads,
    1.1 ms without), so the examples default to one thread.
    """
    import contextlib
    if not n:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    # threadpoolctl only limits the BLAS libraries already loaded: SciPy ships its own
    # OpenBLAS (used by the tape's cholesky / solve_triangular), so load it first.
    import scipy.linalg  # noqa: F401
    return threadpool_limits(limits=n, user_api="blas")


# --------------------------------------------------------------------------- argument types
def number(kind, low=None, high=None, low_open=False, high_open=False):
    """An argparse ``type`` parsing ``kind`` (int or float) and checking a range.

    The bounds are inclusive unless ``low_open`` / ``high_open``; floats must also be
    finite. A bad value makes argparse exit with its usage error (status 2) naming the
    option: ``argument --epochs: expected an integer >= 1, got '0'``.
    """
    what = "an integer" if kind is int else "a number"
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high}")
    expected = what + (" " + " and ".join(parts) if parts else "")

    def parse(text):
        try:
            value = kind(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        ok = kind is int or math.isfinite(value)
        if low is not None:
            ok = ok and (value > low if low_open else value >= low)
        if high is not None:
            ok = ok and (value < high if high_open else value <= high)
        if not ok:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    parse.__name__ = f"{kind.__name__}_range"       # argparse's fallback message uses it
    parse.expected = expected
    return parse


positive_int = number(int, low=1)
nonneg_int = number(int, low=0)
positive_float = number(float, low=0, low_open=True)
nonneg_float = number(float, low=0)
fraction = number(float, low=0, high=1, low_open=True, high_open=True)
probability = number(float, low=0, high=1)


def int_list(length=None, item=positive_int):
    """An argparse ``type`` for comma-separated integers (``"50,10"``), each checked by
    ``item``, exactly ``length`` of them when given."""
    def parse(text):
        parts = [t.strip() for t in str(text).split(",")]
        if length is not None and len(parts) != length:
            raise argparse.ArgumentTypeError(
                f"expected {length} comma-separated integers, got {text!r}")
        try:
            return [item(t) for t in parts]
        except argparse.ArgumentTypeError as e:
            raise argparse.ArgumentTypeError(f"in {text!r}: {e}") from None
    parse.__name__ = "int_list"
    return parse


def float_list(item=nonneg_float, increasing=False, first=None):
    """An argparse ``type`` for comma-separated numbers (``"0,0.1,0.2"``), each checked by
    ``item``; optionally strictly increasing and starting at ``first``."""
    def parse(text):
        parts = [t.strip() for t in str(text).split(",")]
        try:
            values = [item(t) for t in parts]
        except argparse.ArgumentTypeError as e:
            raise argparse.ArgumentTypeError(f"in {text!r}: {e}") from None
        if first is not None and values[0] != first:
            raise argparse.ArgumentTypeError(f"expected a list starting at {first:g}, "
                                             f"got {text!r}")
        if increasing and any(b <= a for a, b in zip(values[:-1], values[1:])):
            raise argparse.ArgumentTypeError(f"expected increasing numbers, got {text!r}")
        return values
    parse.__name__ = "float_list"
    return parse


def choice_list(choices):
    """An argparse ``type`` for a non-empty comma-separated subset of ``choices``
    (``"vi,sghmc"``), duplicates removed, order kept."""
    def parse(text):
        items = [t.strip() for t in str(text).split(",") if t.strip()]
        if not items:
            raise argparse.ArgumentTypeError(
                f"expected one or more of {', '.join(choices)}, got {text!r}")
        bad = [t for t in items if t not in choices]
        if bad:
            raise argparse.ArgumentTypeError(
                f"unknown {', '.join(map(repr, bad))}; expected a comma-separated list of "
                f"{', '.join(choices)}")
        return list(dict.fromkeys(items))
    parse.__name__ = "choice_list"
    return parse


def existing_file(*names):
    """An argparse ``type`` for a path that must be an existing file (or one of the
    special ``names``, e.g. ``"diabetes"``)."""
    def parse(text):
        if text in names or os.path.isfile(text):
            return text
        also = f" or one of {', '.join(names)}" if names else ""
        reason = "is a folder" if os.path.isdir(text) else "does not exist"
        raise argparse.ArgumentTypeError(f"{text!r} {reason}; expected a file{also}")
    parse.__name__ = "existing_file"
    return parse


def fill_quick(args, quick, full):
    """Fill the options left at ``None`` (not given on the command line) with their
    ``quick`` values under ``--quick`` and their ``full`` values otherwise; an option
    given explicitly is kept (``--quick --epochs 3`` runs 3 epochs). ``quick`` and
    ``full``: ``{dest: value}``; a name missing from ``quick`` takes its ``full`` value."""
    for name in set(quick) | set(full):
        if getattr(args, name, None) is None:
            setattr(args, name, quick.get(name, full.get(name)) if args.quick
                    else full.get(name))
    return args


# --------------------------------------------------------------------------- failed runs
class RunFailed(RuntimeError):
    """An example ran but its result is not usable (a non-finite loss or metric, a
    model that was not trained, a sampler whose draws are all divergent); ``main``
    raises it and :func:`run_script` turns it into exit status 1."""


def check_metrics(metrics, keys, what="result"):
    """``metrics`` unchanged when every value under ``keys`` is finite (arrays: every
    element); otherwise :class:`RunFailed` naming the bad ones."""
    bad = []
    for k in keys:
        if k not in metrics:
            bad.append(f"{k} missing")
            continue
        try:
            values = np.asarray(metrics[k], dtype=np.float64)
        except (TypeError, ValueError):
            bad.append(f"{k} = {metrics[k]!r} is not a number")
            continue
        if values.size == 0 or not np.all(np.isfinite(values)):
            bad.append(f"{k} = {metrics[k]!r}" if values.size < 5 else f"{k} not finite")
    if bad:
        raise RunFailed(f"the run failed: non-finite {what} ({'; '.join(bad)})")
    return metrics


def run_script(main, argv=None):
    """Run ``main(argv)`` as a script: exit status 0 on success, 2 on a bad option
    (argparse), 1 with a one-line message on stderr when the run failed (:class:`RunFailed`)."""
    try:
        main(argv)
    except RunFailed as e:
        prog = os.path.basename(sys.argv[0]) or "example"
        print(f"{prog}: error: {e}", file=sys.stderr)
        sys.exit(1)
    sys.exit(0)


def check_divergences(n_divergent, n_draws, what="sampler"):
    """:class:`RunFailed` when every one of ``n_draws`` transitions diverged (the chains
    never left their start: the draws are not from the posterior)."""
    if n_draws > 0 and int(n_divergent) >= n_draws:
        raise RunFailed(f"the run failed: every {what} transition diverged "
                        f"({int(n_divergent)} of {n_draws}); try a smaller step size or "
                        f"longer warmup")
