"""Shared command-line plumbing of the examples: options, device, output folder."""
import argparse
import os

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
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    if blas_option:
        p.add_argument("--blas-threads", type=int, default=1,
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
