"""Small real datasets that ship inside scikit-learn (no download): thin wrappers that return
train/test splits ready for the examples. scikit-learn is optional
(``pip install zsarray[examples]``)."""
from collections import namedtuple

import numpy as np

from ._common import _as_generator, _sklearn_datasets, _standardize_stats, _train_test_indices
from .uci import RegressionData

__all__ = ["SupervisedData", "load_breast_cancer", "load_digits", "load_diabetes"]

SupervisedData = namedtuple("SupervisedData", ["x_train", "y_train", "x_test", "y_test"])
SupervisedData.__doc__ = "A train/test split ``(x_train, y_train, x_test, y_test)``."


def load_breast_cancer(standardize=True, intercept=True, test_fraction=0.2, rng=0):
    """Wisconsin breast-cancer data (569 x 30, binary labels) for Bayesian logistic regression.

    Parameters
    ----------
    standardize : bool
        Standardize the features with the training rows' mean and std (ddof=0).
    intercept : bool
        Prepend a column of ones (D = 31).
    test_fraction : float
        Fraction of rows (rounded) held out as the test set, in [0, 1).
    rng : int or numpy.random.Generator
        Drives the random train/test permutation.

    Returns
    -------
    SupervisedData
        ``x_train`` [N_train, D] float64, ``y_train`` [N_train] float64 in {0, 1}, and the
        same for the test rows (N_test = round(test_fraction * 569)).
    """
    data = _sklearn_datasets("load_breast_cancer").load_breast_cancer()
    x, y = data.data.astype(np.float64), data.target.astype(np.float64)
    train, test = _train_test_indices(len(y), test_fraction, rng)
    if standardize:
        mean, std = _standardize_stats(x[train])
        x = (x - mean) / std
    if intercept:
        x = np.hstack([np.ones((len(y), 1)), x])
    return SupervisedData(x[train], y[train], x[test], y[test])


def load_digits(binarize=False, flatten=True, test_fraction=0.2, rng=0, dtype=np.float32):
    """scikit-learn's 8x8 digits (1797 images, 10 classes) scaled to [0, 1], for small VAEs.

    Parameters
    ----------
    binarize : {False, True, "threshold", "bernoulli"}
        ``False``: gray levels ``x / 16``. ``True`` or ``"threshold"``: ``x > 8``.
        ``"bernoulli"``: one fixed draw of Bernoulli(x / 16) from ``rng``.
    flatten : bool
        Images as [N, 64] (default) or [N, 8, 8].
    test_fraction : float
        Fraction of rows (rounded) held out as the test set, in [0, 1).
    rng : int or numpy.random.Generator
        Drives the permutation (and the Bernoulli draw).
    dtype : numpy dtype
        dtype of the images (default float32).

    Returns
    -------
    SupervisedData
        ``x_train`` [N_train, 64] in [0, 1] (or {0, 1}), ``y_train`` [N_train] int64 labels,
        and the same for the test rows.
    """
    data = _sklearn_datasets("load_digits").load_digits()
    x, y = data.data.astype(np.float64) / 16.0, data.target.astype(np.int64)
    gen = _as_generator(rng)
    train, test = _train_test_indices(len(y), test_fraction, gen)
    if binarize is True or binarize == "threshold":
        x = (x > 0.5).astype(np.float64)
    elif binarize == "bernoulli":
        x = (gen.random(x.shape) < x).astype(np.float64)
    elif binarize not in (False, None):
        raise ValueError(f"binarize must be False, True, 'threshold' or 'bernoulli', "
                         f"got {binarize!r}")
    x = x.astype(dtype)
    if not flatten:
        x = x.reshape(-1, 8, 8)
    return SupervisedData(x[train], y[train], x[test], y[test])


def load_diabetes(standardize=True, test_fraction=0.2, rng=0):
    """scikit-learn's diabetes regression data (442 x 10, target 25..346) for BNN regression.

    The raw (unscaled) features are used and, when ``standardize``, inputs and target are
    standardized with the training rows' statistics, as in :func:`load_uci`.

    Parameters
    ----------
    standardize : bool
        Standardize inputs and target (ddof=0 std, zero std replaced by 1).
    test_fraction : float
        Fraction of rows (rounded) held out as the test set, in [0, 1).
    rng : int or numpy.random.Generator
        Drives the random train/test permutation.

    Returns
    -------
    RegressionData
        ``x_train`` [N_train, 10], ``y_train`` [N_train], ``x_test``, ``y_test`` float64 and
        the normalization constants; ``.rmse`` / ``.gaussian_log_likelihood`` report in the
        original units. Unpacks as ``x_train, y_train, x_test, y_test``.
    """
    data = _sklearn_datasets("load_diabetes").load_diabetes(scaled=False)
    x, y = data.data.astype(np.float64), data.target.astype(np.float64)
    train, test = _train_test_indices(len(y), test_fraction, rng)
    if standardize:
        x_mean, x_std = _standardize_stats(x[train])
        y_mean, y_std = (float(v) for v in _standardize_stats(y[train]))
    else:
        x_mean, x_std, y_mean, y_std = np.zeros(x.shape[1]), np.ones(x.shape[1]), 0.0, 1.0
    x, y = (x - x_mean) / x_std, (y - y_mean) / y_std
    return RegressionData(x_train=x[train], y_train=y[train], x_test=x[test], y_test=y[test],
                          x_mean=x_mean, x_std=x_std, y_mean=y_mean, y_std=y_std,
                          normalized=bool(standardize), name="diabetes")
