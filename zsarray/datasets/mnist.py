"""MNIST loaders: LeCun's idx files, ``mnist.npz``, the fixed binarization of Larochelle &
Murray (2011), and dynamic binarization.

Formats read
------------
* ``mnist.npz`` with keys ``x_train`` [60000, 784] uint8, ``y_train`` [60000] uint8,
  ``x_test`` [10000, 784], ``y_test`` [10000] (plus, optionally, ``x_valid`` / ``y_valid``).
* A folder with the four idx files ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
  ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each optionally gzipped (``.gz``;
  a gzip stream is recognised by its magic bytes, not by the file name) or with the
  ``train-images.idx3-ubyte`` spelling.
* ``binarized_mnist.npz`` with keys ``train`` [50000, 784], ``valid`` [10000, 784],
  ``test`` [10000, 784], uint8 in {0, 1}; or a folder with Larochelle's
  ``binarized_mnist_{train,valid,test}.amat`` (plain text, or MATLAB .mat files under that
  name, as in some public copies).
"""
import gzip
import math
import os
import struct
import zipfile
import zlib
from collections import namedtuple
from pathlib import Path

import numpy as np

from ._common import DataFormatError, _default_path, _load_text_table, _require_file

__all__ = ["read_idx", "load_mnist", "load_binarized_mnist", "BinarizedMNIST",
           "dynamic_binarize"]

# idx type codes (third byte of the magic number) -> big-endian numpy dtype
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

_IDX_NAMES = {
    "train_images": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "train_labels": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "test_images": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "test_labels": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}


def read_idx(path):
    """Read one file in LeCun's idx format (plain or gzipped).

    The header is a big-endian magic number ``0x0000TTNN`` (``TT`` the element type: 0x08
    uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64; ``NN`` the
    number of dimensions), then ``NN`` big-endian uint32 sizes, then the data, row-major.
    MNIST images have magic 2051 (0x00000803), labels 2049 (0x00000801).

    Parameters
    ----------
    path : str or os.PathLike
        The file; gzip compression is detected from its first two bytes.

    Returns
    -------
    numpy.ndarray
        Shape ``dims`` from the header (e.g. [60000, 28, 28] for MNIST training images),
        native byte order.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    DataFormatError
        Wrong magic number, a corrupt gzip stream, or a payload whose size does not match
        the header.
    """
    path = _require_file(path, "an idx file (e.g. train-images-idx3-ubyte[.gz])")
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    try:
        with (gzip.open(path, "rb") if gzipped else open(path, "rb")) as f:
            raw = f.read()
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise DataFormatError(f"{path}: corrupt gzip stream ({e})") from e
    magic = raw[:4]
    if len(magic) < 4 or magic[:2] != b"\x00\x00" or magic[2] not in _IDX_DTYPES or magic[3] == 0:
        raise DataFormatError(
            f"{path} is not an idx file: bad magic number 0x{magic.hex() or '(empty)'} "
            "(expected 0x0000TTNN with type code TT in 08/09/0b/0c/0d/0e and NN >= 1 dims, "
            "e.g. 0x00000803 = 2051 for MNIST images, 0x00000801 = 2049 for labels)")
    ndim = magic[3]
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise DataFormatError(f"{path}: truncated idx header ({len(raw)} bytes, "
                              f"{header_len} needed for {ndim} dims)")
    dims = struct.unpack(f">{ndim}I", raw[4:header_len])
    dtype = np.dtype(_IDX_DTYPES[magic[2]])
    expected = math.prod(dims) * dtype.itemsize
    if len(raw) - header_len != expected:
        raise DataFormatError(f"{path}: header says dims {dims} ({expected} data bytes) but "
                              f"the file has {len(raw) - header_len} data bytes "
                              "(truncated or corrupt)")
    arr = np.frombuffer(raw, dtype=dtype, offset=header_len).reshape(dims)
    return arr.astype(dtype.newbyteorder("="))  # native order, writable copy


def _find_idx(folder, key):
    for name in _IDX_NAMES[key]:
        for suffix in ("", ".gz"):
            p = folder / (name + suffix)
            if p.is_file():
                return p
    return None


def _images_to(x, flatten, dtype, source):
    """uint8 (or float) images [N, ...] -> [N, 784] or [N, 28, 28] of ``dtype``."""
    n = x.shape[0]
    if flatten:
        x = x.reshape(n, -1)
    elif x.ndim == 2:
        side = math.isqrt(x.shape[1])
        if side * side != x.shape[1]:
            raise DataFormatError(f"{source}: cannot unflatten images of {x.shape[1]} pixels "
                                  "into a square")
        x = x.reshape(n, side, side)
    dtype = np.dtype(dtype)
    if dtype.kind == "f" and x.dtype.kind in "ui":
        return x.astype(dtype) / dtype.type(255)  # gray levels 0..255 -> [0, 1]
    return x.astype(dtype, copy=False)


def _check_pair(x, y, source, what):
    if y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise DataFormatError(f"{source}: {what} images {x.shape} and labels {y.shape} "
                              "do not match (expected [N, ...] and [N])")


def _open_npz(path):
    """``np.load`` of a .npz archive, with clear errors for anything else."""
    try:
        z = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise DataFormatError(f"{path} is not a readable .npz file ({e})") from e
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise DataFormatError(f"{path} holds a single array, not a .npz archive of named arrays")
    return z


def _read_members(z, keys, path):
    """``{key: z[key]}``: an .npz archive reads its members lazily, so a damaged or
    truncated member only fails here; that is a DataFormatError naming the file and key."""
    out = {}
    for k in keys:
        try:
            out[k] = z[k]
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as e:
            raise DataFormatError(f"{path}: array {k!r} is damaged or truncated "
                                  f"({type(e).__name__}: {e})") from e
    return out


def _load_mnist_npz(path):
    with _open_npz(path) as z:
        keys = set(z.files)
        need = {"x_train", "y_train", "x_test", "y_test"}
        if not need <= keys:
            raise DataFormatError(
                f"{path}: missing keys {sorted(need - keys)} (found {sorted(keys)}; expected "
                "x_train, y_train, x_test, y_test and optionally x_valid, y_valid)")
        if {"x_valid", "y_valid"} <= keys:
            need |= {"x_valid", "y_valid"}
        out = _read_members(z, sorted(need), path)
    return out


def _check_images(arrays, source, names):
    """Every split non-empty, with images of one size (pixels per image) and numbers."""
    sizes = {}
    for s in names:
        x = arrays[s]
        if x.ndim < 2 or x.shape[0] == 0:
            raise DataFormatError(f"{source}: split {s!r} has shape {x.shape}; expected a "
                                  f"non-empty [N, pixels] or [N, rows, cols] array")
        if x.dtype.kind not in "biuf":
            raise DataFormatError(f"{source}: split {s!r} holds {x.dtype} values, expected "
                                  f"pixel numbers")
        sizes[s] = math.prod(x.shape[1:])
    if len(set(sizes.values())) > 1:
        raise DataFormatError(f"{source}: the splits' images differ in size (pixels per "
                              f"image: {sizes}); a file from another data set?")


def _load_mnist_idx(folder):
    found = {k: _find_idx(folder, k) for k in _IDX_NAMES}
    missing = [_IDX_NAMES[k][0] + "[.gz]" for k, p in found.items() if p is None]
    if missing:
        raise FileNotFoundError(f"{folder}: missing MNIST idx files {missing} (expected the "
                                "four idx files, plain or .gz, or a mnist.npz)")
    out = {}
    for key, (xk, yk) in {"train": ("train_images", "train_labels"),
                          "test": ("test_images", "test_labels")}.items():
        x, y = read_idx(found[xk]), read_idx(found[yk])
        if x.ndim != 3:
            raise DataFormatError(f"{found[xk]}: expected images [N, rows, cols] (magic 2051), "
                                  f"got dims {x.shape}")
        _check_pair(x, y, found[xk].parent, key)
        out["x_" + key], out["y_" + key] = x, y
    return out


def load_mnist(path=None, *, flatten=True, dtype=np.float32, n_validation=0):
    """Load MNIST from ``mnist.npz`` or from LeCun's idx files.

    Parameters
    ----------
    path : str or os.PathLike, optional
        A ``.npz`` file (keys ``x_train, y_train, x_test, y_test``, optionally ``x_valid,
        y_valid``), or a folder holding the four idx files (plain or ``.gz``) or a
        ``mnist.npz``. Default: ``shared_data_dir()/mnist/mnist.npz``.
    flatten : bool
        Images as [N, 784] (default) or [N, 28, 28].
    dtype : numpy dtype
        Float dtypes (default float32) scale gray levels 0..255 to [0, 1]; integer dtypes
        (e.g. ``np.uint8``) keep the raw values.
    n_validation : int
        Hold out the *last* ``n_validation`` training examples as a validation set (e.g.
        10000 for the 50k/10k/10k split of ``mnist.pkl.gz``, 400 for IWAE's 59,600 + 400).

    Returns
    -------
    (x_train, y_train), (x_test, y_test)
        ``x`` [N, 784] (or [N, 28, 28]) of ``dtype``, ``y`` [N] int64 class labels 0..9.
        When the file holds a validation set or ``n_validation > 0``, three pairs
        ``(train, valid, test)`` come back instead.

    Raises
    ------
    FileNotFoundError
        No such path, or a folder without the expected files.
    DataFormatError
        Missing npz keys, a bad idx magic number, mismatched images and labels.
    """
    path = Path(os.fspath(path)).expanduser() if path is not None else \
        _default_path("mnist", "mnist.npz", what="MNIST")
    if path.is_dir():
        if any(_find_idx(path, k) is not None for k in _IDX_NAMES) or \
                not (path / "mnist.npz").is_file():
            arrays = _load_mnist_idx(path)
        else:
            arrays = _load_mnist_npz(path / "mnist.npz")
    else:
        arrays = _load_mnist_npz(_require_file(
            path, "MNIST as a .npz file with x_train, y_train, x_test, y_test, or a folder of "
                  "idx files"))
    for split in ("train", "valid", "test"):
        if "x_" + split in arrays:
            _check_pair(arrays["x_" + split], arrays["y_" + split], path, split)
    _check_images(arrays, path, [k for k in ("x_train", "x_valid", "x_test") if k in arrays])
    if n_validation:
        if "x_valid" in arrays:
            raise ValueError(f"{path} already has a validation set; pass n_validation=0")
        n_train = arrays["x_train"].shape[0]
        if isinstance(n_validation, bool) or not isinstance(n_validation, (int, np.integer)) \
                or not 0 < n_validation < n_train:
            raise ValueError(f"n_validation must be an integer in [0, {n_train}) (it may not "
                             f"leave 0 training images), got {n_validation!r}")
        cut = n_train - n_validation
        arrays["x_valid"], arrays["y_valid"] = arrays["x_train"][cut:], arrays["y_train"][cut:]
        arrays["x_train"], arrays["y_train"] = arrays["x_train"][:cut], arrays["y_train"][:cut]
    splits = ("train", "valid", "test") if "x_valid" in arrays else ("train", "test")
    return tuple((_images_to(arrays["x_" + s], flatten, dtype, path),
                  arrays["y_" + s].astype(np.int64)) for s in splits)


BinarizedMNIST = namedtuple("BinarizedMNIST", ["train", "valid", "test"])
BinarizedMNIST.__doc__ = """The fixed binarized MNIST: ``train`` [50000, 784],
``valid`` [10000, 784], ``test`` [10000, 784] (or [N, 28, 28]), values in {0, 1}. No labels."""


def _read_amat(path):
    with open(path, "rb") as f:
        head = f.read(6)
    if head == b"MATLAB":  # some public copies are .mat files under the .amat name
        from scipy.io import loadmat
        mat = {k: v for k, v in loadmat(path).items() if not k.startswith("__")}
        if len(mat) != 1:
            raise DataFormatError(f"{path}: expected one array in the .mat file, "
                                  f"found {sorted(mat)}")
        return np.asarray(next(iter(mat.values())))
    return _load_text_table(path, "rows of 784 pixels in {0, 1}", dtype=np.float32)


def load_binarized_mnist(path=None, *, dtype=np.float32, flatten=True):
    """Load the fixed binarization of MNIST (Larochelle & Murray, 2011).

    Parameters
    ----------
    path : str or os.PathLike, optional
        ``binarized_mnist.npz`` (keys ``train``, ``valid``, ``test``), or a folder holding it
        or Larochelle's ``binarized_mnist_{train,valid,test}.amat``. Default:
        ``shared_data_dir()/mnist/binarized_mnist.npz``.
    dtype : numpy dtype
        Default float32 (ready for a Bernoulli likelihood); ``np.uint8`` keeps the stored bytes.
    flatten : bool
        [N, 784] (default) or [N, 28, 28].

    Returns
    -------
    BinarizedMNIST
        Named tuple ``(train, valid, test)`` of [50000, 784], [10000, 784], [10000, 784]
        arrays with values in {0, 1}. The train/valid rows are a permutation of the MNIST
        training set and the test set is ordered by class, so shuffle before mini-batching.

    Raises
    ------
    FileNotFoundError, DataFormatError
    """
    path = Path(os.fspath(path)).expanduser() if path is not None else \
        _default_path("mnist", "binarized_mnist.npz", what="binarized MNIST")
    names = ("train", "valid", "test")
    if path.is_dir() and not (path / "binarized_mnist.npz").is_file():
        files = {s: path / f"binarized_mnist_{s}.amat" for s in names}
        missing = [str(p) for p in files.values() if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"{path}: no binarized_mnist.npz and missing {missing}")
        arrays = {s: _read_amat(p) for s, p in files.items()}
    else:
        if path.is_dir():
            path = path / "binarized_mnist.npz"
        path = _require_file(path, "binarized_mnist.npz with keys train, valid, test")
        with _open_npz(path) as z:
            missing = [s for s in names if s not in z.files]
            if missing:
                raise DataFormatError(f"{path}: missing keys {missing} (found {z.files}; "
                                      "expected train, valid, test)")
            arrays = _read_members(z, names, path)
    _check_images(arrays, path, names)
    out = []
    for s in names:
        x = arrays[s]
        if x.dtype.kind == "u":
            ok = x.size == 0 or x.max() <= 1
        else:
            ok = bool(np.all((x == 0) | (x == 1)))
        if not ok:
            raise DataFormatError(
                f"{path}: split {s!r} has values outside {{0, 1}} (max {x.max()}); for gray-level "
                "MNIST use load_mnist(...) and dynamic_binarize(x, rng)")
        if not flatten and x.ndim == 2:
            side = math.isqrt(x.shape[1])
            if side * side != x.shape[1]:
                raise DataFormatError(f"{path}: cannot unflatten split {s!r}: images of "
                                      f"{x.shape[1]} pixels are not square")
            x = x.reshape(x.shape[0], side, side)
        elif flatten:
            x = x.reshape(x.shape[0], -1)
        out.append(x.astype(dtype, copy=False))
    return BinarizedMNIST(*out)


def dynamic_binarize(x, rng, dtype=None):
    """Draw a fresh binarization ``b ~ Bernoulli(x)`` (IWAE-style dynamic binarization).

    Parameters
    ----------
    x : numpy.ndarray or cupy.ndarray
        Float pixel intensities in [0, 1], any shape (e.g. [batch, 784]).
    rng : int or numpy.random.Generator or cupy.random.Generator
        Explicit source of randomness; an int seeds a new generator of ``x``'s array module.
    dtype : numpy dtype, optional
        Output dtype; default ``x.dtype``.

    Returns
    -------
    array
        Same shape and array module as ``x``, values in {0, 1}.
    """
    from autodiff import backend
    xp = backend.get_array_module(x)
    if x.dtype.kind != "f":
        raise TypeError(f"dynamic_binarize expects float intensities in [0, 1], got {x.dtype} "
                        "(divide uint8 images by 255 first)")
    if x.size and (float(x.min()) < 0 or float(x.max()) > 1):
        raise ValueError("dynamic_binarize expects intensities in [0, 1], got range "
                         f"[{float(x.min())}, {float(x.max())}]")
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        rng = xp.random.default_rng(int(rng))
    elif not hasattr(rng, "random"):
        raise TypeError(f"rng must be an int seed or a Generator, got {type(rng).__name__}")
    udtype = x.dtype if x.dtype in (np.float32, np.float64) else np.float64
    u = rng.random(x.shape, dtype=udtype)
    return (u < x).astype(x.dtype if dtype is None else dtype)
