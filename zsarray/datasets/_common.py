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


def _train_test_indices(n, test_fraction, rng):
    """A random permutation of ``range(n)`` cut into (train, test) index arrays.

    ``n_test = round(test_fraction * n)`` rows go to the test set: the first ``n_test`` of
    ``rng.permutation(n)`` (the same recipe as ``examples/bayesian_logistic_regression.py``).
    """
    if not 0.0 <= float(test_fraction) < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    order = _as_generator(rng).permutation(n)
    n_test = int(round(float(test_fraction) * n))
    return order[n_test:], order[:n_test]


def _standardize_stats(x):
    """Column means and standard deviations (ddof=0) with std == 0 replaced by 1."""
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    std = np.where(std == 0, 1.0, std)
    return mean, std


def _sklearn_datasets(caller):
    try:
        from sklearn import datasets
    except ImportError as e:
        raise ImportError(f"{caller} needs scikit-learn, which is not installed: "
                          "pip install zsarray[examples]  (or pip install scikit-learn)") from e
    return datasets
