"""Helpers shared by the dataset loaders: the shared data folder, errors, rngs, splits."""
import os
import warnings
from pathlib import Path

import numpy as np

__all__ = ["DataFormatError", "shared_data_dir"]

# <repo>/zsarray/datasets/_common.py -> <repo>
_REPO_ROOT = Path(__file__).resolve().parents[2]


class DataFormatError(ValueError):
    """A data file exists but does not hold what its format promises (bad magic number,
    truncated payload, missing ``.npz`` keys, out-of-range split indices, ...)."""


def shared_data_dir():
    """The folder of shared datasets, or ``None`` when there is none.

    Looks, in order, at ``$ZSARRAY_SHARED/data`` (when the environment variable is set)
    and at ``<repo>/../shared/data`` (a checkout sitting next to the shared folder).
    Examples use it for defaults when the user passes no ``--data``.

    Returns
    -------
    pathlib.Path or None
        The first of those folders that exists.
    """
    env = os.environ.get("ZSARRAY_SHARED")
    if env:
        cand = Path(env).expanduser() / "data"
        if cand.is_dir():
            return cand
        warnings.warn(f"ZSARRAY_SHARED={env!r} is set but {cand} is not a folder; "
                      "falling back to <repo>/../shared/data", RuntimeWarning, stacklevel=2)
    cand = _REPO_ROOT.parent / "shared" / "data"
    if cand.is_dir():
        return cand
    return None


def _default_path(*parts, what):
    """``shared_data_dir()/parts...``, or a FileNotFoundError saying how to supply one."""
    base = shared_data_dir()
    if base is None:
        raise FileNotFoundError(
            f"no path given for {what} and no shared data folder was found "
            f"(set $ZSARRAY_SHARED so that $ZSARRAY_SHARED/{'/'.join(('data',) + parts)} "
            f"exists, or pass the path explicitly)")
    return base.joinpath(*parts)


def _require_file(path, what):
    """``path`` as a Path, or a FileNotFoundError naming it and what was expected there."""
    path = Path(os.fspath(path)).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist (expected {what})")
    if not path.is_file():
        raise FileNotFoundError(f"{path} is not a file (expected {what})")
    return path


def _as_generator(rng):
    """An int seed or a numpy Generator -> numpy Generator."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise TypeError("rng must be an int seed or a numpy.random.Generator, "
                    f"got {type(rng).__name__}")


def _fraction(value, name, allow_zero=True):
    """``value`` as a float in ``[0, 1)`` (``(0, 1)`` unless ``allow_zero``), or a
    TypeError / ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number in [0, 1), got {type(value).__name__}")
    value = float(value)
    if not (0.0 <= value < 1.0) or (value == 0.0 and not allow_zero):
        raise ValueError(f"{name} must be in {'[' if allow_zero else '('}0, 1), got {value}")
    return value


def _split_sizes(n, fraction, name, held_out):
    """``n_held = round(fraction * n)`` and the rows left, or a ValueError when either
    side is empty although asked for (``fraction > 0`` with no held-out row, or no row
    left to train on)."""
    n_held = int(round(fraction * n))
    if fraction > 0 and n_held == 0:
        raise ValueError(f"{name}={fraction} of {n} rows rounds to 0 {held_out} rows; pass "
                         f"{name}=0 for none or a larger fraction")
    if n - n_held < 1:
        raise ValueError(f"{name}={fraction} of {n} rows leaves {n - n_held} training rows "
                         f"({n_held} {held_out}); use a smaller fraction")
    return n_held


def _train_test_indices(n, test_fraction, rng):
    """A random permutation of ``range(n)`` cut into (train, test) index arrays.

    ``n_test = round(test_fraction * n)`` rows go to the test set: the first ``n_test`` of
    ``rng.permutation(n)`` (the same recipe as ``examples/bayesian_logistic_regression.py``).
    A ``test_fraction > 0`` that rounds to no test row, or one that leaves no training row,
    is a ValueError.
    """
    test_fraction = _fraction(test_fraction, "test_fraction")
    n_test = _split_sizes(n, test_fraction, "test_fraction", "test")
    order = _as_generator(rng).permutation(n)
    return order[n_test:], order[:n_test]


def _standardize_stats(x, what="the training rows"):
    """Column means and standard deviations (ddof=0) of ``x`` [N, ...], with the std of a
    constant column (all values equal, so no rounding residue such as 1e-17 slips through
    and blows the column up) replaced by 1. No rows, or a non-finite value, is a
    DataFormatError: the statistics would be NaN and so would every standardized value."""
    x = np.asarray(x)
    if x.shape[0] == 0:
        raise DataFormatError(f"cannot standardize {what}: there are none (0 rows)")
    if not np.all(np.isfinite(x)):
        raise DataFormatError(f"cannot standardize {what}: they hold non-finite values")
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    constant = np.max(x, axis=0) == np.min(x, axis=0)
    std = np.where(constant | (std == 0), 1.0, std)
    return mean, std


def _load_text_table(path, what, dtype=np.float64):
    """``np.loadtxt(path, ndmin=2)`` with errors that name the file: a DataFormatError for
    an empty file, a cell that is not a number, or rows of different lengths."""
    import warnings
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)      # "input contained no data"
            table = np.loadtxt(path, ndmin=2, dtype=dtype)
    except ValueError as e:
        raise DataFormatError(f"{path}: not a table of numbers ({e}); expected {what}") from e
    if table.size == 0:
        raise DataFormatError(f"{path} is empty (expected {what})")
    return table


def _check_finite_cells(table, path, rows=None, columns=None):
    """A DataFormatError naming the first NaN / inf cell of ``table[rows][:, columns]``
    (by its 1-based line in ``path`` and its 0-based column), with the count of them."""
    rows = np.arange(table.shape[0]) if rows is None else np.asarray(rows)
    columns = np.arange(table.shape[1]) if columns is None else np.asarray(columns)
    bad = ~np.isfinite(table[np.ix_(rows, columns)])
    if bad.any():
        i, j = np.argwhere(bad)[0]
        r, c = int(rows[i]), int(columns[j])
        raise DataFormatError(
            f"{path}: line {r + 1} (row {r}), column {c} is {table[r, c]}; {int(bad.sum())} "
            f"non-finite cell(s) in the rows and columns used. Fix or remove those rows "
            f"(standardizing would turn the whole column into NaN)")


def _sklearn_datasets(caller):
    try:
        from sklearn import datasets
    except ImportError as e:
        raise ImportError(f"{caller} needs scikit-learn, which is not installed: "
                          "pip install zsarray[examples]  (or pip install scikit-learn)") from e
    return datasets
