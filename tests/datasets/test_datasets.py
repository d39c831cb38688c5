"""Tests of zsarray.datasets on tiny files written in tmp_path (plus optional real-data checks)."""
import gzip
import struct
import sys
import zipfile

import numpy as np
import pytest

from zsarray import datasets as D
from zsarray.datasets import _common

# ---------------------------------------------------------------------------------------------
# helpers that write tiny files in the real formats
# ---------------------------------------------------------------------------------------------

_CODES = {np.dtype("uint8"): 0x08, np.dtype("int8"): 0x09, np.dtype("int16"): 0x0B,
          np.dtype("int32"): 0x0C, np.dtype("float32"): 0x0D, np.dtype("float64"): 0x0E}


def write_idx(path, arr, gz=False, magic=None):
    arr = np.asarray(arr)
    if magic is None:
        magic = bytes([0, 0, _CODES[arr.dtype], arr.ndim])
    payload = magic + struct.pack(f">{arr.ndim}I", *arr.shape) + \
        arr.astype(arr.dtype.newbyteorder(">")).tobytes()
    with (gzip.open(path, "wb") if gz else open(path, "wb")) as f:
        f.write(payload)
    return path


def tiny_mnist(n_train=5, n_test=3, seed=0):
    rng = np.random.default_rng(seed)
    x_train = rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8)
    x_train[0, 0, 0], x_train[0, 0, 1] = 0, 255
    x_test = rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8)
    return (x_train, rng.integers(0, 10, n_train).astype(np.uint8),
            x_test, rng.integers(0, 10, n_test).astype(np.uint8))


def write_idx_folder(folder, gz=False, dotted=False, arrays=None):
    folder.mkdir(parents=True, exist_ok=True)
    x_train, y_train, x_test, y_test = arrays or tiny_mnist()
    sep = "." if dotted else "-"
    sfx = ".gz" if gz else ""
    write_idx(folder / f"train-images{sep}idx3-ubyte{sfx}", x_train, gz)
    write_idx(folder / f"train-labels{sep}idx1-ubyte{sfx}", y_train, gz)
    write_idx(folder / f"t10k-images{sep}idx3-ubyte{sfx}", x_test, gz)
    write_idx(folder / f"t10k-labels{sep}idx1-ubyte{sfx}", y_test, gz)
    return x_train, y_train, x_test, y_test


def write_mnist_npz(path, valid=False, drop=()):
    x_train, y_train, x_test, y_test = tiny_mnist()
    arrays = dict(x_train=x_train.reshape(5, 784), y_train=y_train,
                  x_test=x_test.reshape(3, 784), y_test=y_test)
    if valid:
        arrays.update(x_valid=x_test.reshape(3, 784)[:2], y_valid=y_test[:2])
    for k in drop:
        del arrays[k]
    np.savez_compressed(path, **arrays)
    return arrays


def tiny_binarized(seed=0):
    rng = np.random.default_rng(seed)
    return {s: (rng.random((n, 784)) < 0.2).astype(np.uint8)
            for s, n in (("train", 6), ("valid", 2), ("test", 3))}


N_ROWS = 30


def write_uci(folder, n_splits=3, with_n_splits=True):
    """<folder>/data/ in the PBP layout: 3 inputs (one constant), a target, one unused column."""
    d = folder / "data"
    d.mkdir(parents=True)
    rng = np.random.default_rng(1)
    table = np.column_stack([rng.normal(5, 2, N_ROWS), rng.normal(-1, 0.5, N_ROWS),
                             np.full(N_ROWS, 7.0), rng.normal(100, 10, N_ROWS),
                             rng.normal(0, 1, N_ROWS)])
    # mixed separators and padding, as in the real files (tabs, leading spaces)
    lines = ["  " + "\t".join(f"{v:.10g}" for v in row) + " \t" for row in table]
    (d / "data.txt").write_text("\n".join(lines) + "\n")
    (d / "index_features.txt").write_text("0\n1\n2\n")
    (d / "index_target.txt").write_text("3\n")
    splits = []
    for k in range(n_splits):
        perm = np.random.default_rng(k).permutation(N_ROWS)
        train, test = perm[:26], perm[26:]
        (d / f"index_train_{k}.txt").write_text("".join(f"{i}\n" for i in train))
        (d / f"index_test_{k}.txt").write_text("".join(f"{i}\n" for i in test))
        splits.append((train, test))
    if with_n_splits:
        (d / "n_splits.txt").write_text(f"{n_splits}\n")
    (d / "n_hidden.txt").write_text("50\n")
    (d / "n_epochs.txt").write_text("40\n")
    (d / "dropout_rates.txt").write_text("0.005\n0.01\n")
    (d / "tau_values.txt").write_text("0.1 0.15 0.2\n")
    return table, splits


# ---------------------------------------------------------------------------------------------
# shared_data_dir
# ---------------------------------------------------------------------------------------------

def test_shared_data_dir_env(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    monkeypatch.setenv("ZSARRAY_SHARED", str(tmp_path))
    assert D.shared_data_dir() == tmp_path / "data"


def test_shared_data_dir_env_missing_falls_back(tmp_path, monkeypatch):
    monkeypatch.setenv("ZSARRAY_SHARED", str(tmp_path / "nope"))
    monkeypatch.setattr(_common, "_REPO_ROOT", tmp_path / "repo")
    with pytest.warns(RuntimeWarning, match="ZSARRAY_SHARED"):
        assert D.shared_data_dir() is None
    (tmp_path / "shared" / "data").mkdir(parents=True)
    with pytest.warns(RuntimeWarning):
        assert D.shared_data_dir() == tmp_path / "shared" / "data"


def test_shared_data_dir_repo_relative(tmp_path, monkeypatch):
    monkeypatch.delenv("ZSARRAY_SHARED", raising=False)
    monkeypatch.setattr(_common, "_REPO_ROOT", tmp_path / "repo")
    assert D.shared_data_dir() is None
    (tmp_path / "shared" / "data").mkdir(parents=True)
    assert D.shared_data_dir() == tmp_path / "shared" / "data"


# ---------------------------------------------------------------------------------------------
# idx
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32", "float64"])
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_roundtrip(tmp_path, dtype, gz):
    arr = (np.arange(24).reshape(2, 3, 4) - (0 if dtype == "uint8" else 5)).astype(dtype)
    out = D.read_idx(write_idx(tmp_path / "a.idx", arr, gz))
    assert out.shape == (2, 3, 4) and out.dtype == np.dtype(dtype)
    assert out.dtype.isnative and out.flags.writeable
    np.testing.assert_array_equal(out, arr)


def test_read_idx_detects_gzip_by_content(tmp_path):
    arr = np.arange(7, dtype=np.uint8)
    gz_no_suffix = write_idx(tmp_path / "labels-idx1-ubyte", arr, gz=True)
    np.testing.assert_array_equal(D.read_idx(gz_no_suffix), arr)
    np.testing.assert_array_equal(D.read_idx(write_idx(tmp_path / "plain.gz", arr, False)), arr)


@pytest.mark.parametrize("magic", [b"\x08\x03\x00\x00", b"\x00\x00\x07\x03", b"\x00\x00\x08\x00",
                                   b"PK\x03\x04", b""])
def test_read_idx_bad_magic(tmp_path, magic):
    p = tmp_path / "bad-idx3-ubyte"
    p.write_bytes(magic + b"\x00" * 16 if magic else b"")
    with pytest.raises(D.DataFormatError, match="magic") as e:
        D.read_idx(p)
    assert str(p) in str(e.value)


def test_read_idx_truncated(tmp_path):
    p = write_idx(tmp_path / "x", np.zeros((4, 5), np.uint8))
    p.write_bytes(p.read_bytes()[:-3])
    with pytest.raises(D.DataFormatError, match="truncated"):
        D.read_idx(p)
    p.write_bytes(b"\x00\x00\x08\x03\x00\x00")  # header cut inside the dims
    with pytest.raises(D.DataFormatError, match="truncated idx header"):
        D.read_idx(p)


def test_read_idx_corrupt_gzip(tmp_path):
    p = write_idx(tmp_path / "x.gz", np.zeros((40, 5), np.uint8), gz=True)
    p.write_bytes(p.read_bytes()[:15])
    with pytest.raises(D.DataFormatError, match="gzip"):
        D.read_idx(p)


def test_read_idx_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="idx file") as e:
        D.read_idx(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(e.value)


# ---------------------------------------------------------------------------------------------
# load_mnist
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("gz,dotted", [(False, False), (True, False), (False, True)])
def test_load_mnist_idx_folder(tmp_path, gz, dotted):
    x_train, y_train, x_test, y_test = write_idx_folder(tmp_path / "m", gz, dotted)
    (xa, ya), (xb, yb) = D.load_mnist(tmp_path / "m")
    assert xa.shape == (5, 784) and xb.shape == (3, 784)
    assert xa.dtype == np.float32 and ya.dtype == np.int64 and ya.shape == (5,)
    assert xa.min() == 0.0 and xa.max() == 1.0
    np.testing.assert_allclose(xa, x_train.reshape(5, -1) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(yb, y_test)
    (xa, _), _ = D.load_mnist(tmp_path / "m", flatten=False, dtype=np.uint8)
    assert xa.shape == (5, 28, 28) and xa.dtype == np.uint8
    np.testing.assert_array_equal(xa, x_train)


def test_load_mnist_idx_missing_file(tmp_path):
    write_idx_folder(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        D.load_mnist(tmp_path)


def test_load_mnist_idx_wrong_contents(tmp_path):
    x_train, y_train, x_test, y_test = tiny_mnist()
    write_idx_folder(tmp_path / "a", arrays=(y_train, y_train, x_test, y_test))  # labels as images
    with pytest.raises(D.DataFormatError, match="2051"):
        D.load_mnist(tmp_path / "a")
    write_idx_folder(tmp_path / "b", arrays=(x_train, y_train[:4], x_test, y_test))
    with pytest.raises(D.DataFormatError, match="do not match"):
        D.load_mnist(tmp_path / "b")
    write_idx_folder(tmp_path / "c")
    write_idx(tmp_path / "c" / "train-images-idx3-ubyte", x_train, magic=b"\x00\x00\x08\x04")
    with pytest.raises(D.DataFormatError, match="truncated|magic"):
        D.load_mnist(tmp_path / "c")


def test_load_mnist_npz(tmp_path):
    arrays = write_mnist_npz(tmp_path / "mnist.npz")
    for path in (tmp_path / "mnist.npz", tmp_path):  # the file or a folder holding it
        (xa, ya), (xb, yb) = D.load_mnist(path)
        assert xa.shape == (5, 784) and xb.shape == (3, 784) and xa.dtype == np.float32
        assert 0.0 <= xa.min() and xa.max() <= 1.0
        np.testing.assert_allclose(xb * 255, arrays["x_test"], atol=1e-4)
        np.testing.assert_array_equal(ya, arrays["y_train"])
    (xa, _), _ = D.load_mnist(tmp_path / "mnist.npz", flatten=False, dtype=np.float64)
    assert xa.shape == (5, 28, 28) and xa.dtype == np.float64


def test_load_mnist_validation(tmp_path):
    write_mnist_npz(tmp_path / "v.npz", valid=True)
    (xa, _), (xv, yv), (xb, _) = D.load_mnist(tmp_path / "v.npz")
    assert xa.shape == (5, 784) and xv.shape == (2, 784) and xb.shape == (3, 784)
    assert yv.shape == (2,)
    with pytest.raises(ValueError, match="already has a validation set"):
        D.load_mnist(tmp_path / "v.npz", n_validation=1)
    arrays = write_mnist_npz(tmp_path / "m.npz")
    (xa, ya), (xv, yv), (xb, yb) = D.load_mnist(tmp_path / "m.npz", n_validation=2)
    assert len(xa) == 3 and len(xv) == 2 and len(xb) == 3
    np.testing.assert_array_equal(yv, arrays["y_train"][3:])  # the *last* training rows
    with pytest.raises(ValueError, match="n_validation"):
        D.load_mnist(tmp_path / "m.npz", n_validation=5)


def test_load_mnist_npz_errors(tmp_path):
    write_mnist_npz(tmp_path / "k.npz", drop=("y_test",))
    with pytest.raises(D.DataFormatError, match="y_test"):
        D.load_mnist(tmp_path / "k.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file at all")
    with pytest.raises(D.DataFormatError, match="npz"):
        D.load_mnist(tmp_path / "junk.npz")
    with pytest.raises(FileNotFoundError, match="nope.npz") as e:
        D.load_mnist(tmp_path / "nope.npz")
    assert "x_train" in str(e.value)  # says what was expected
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="mnist.npz"):
        D.load_mnist(tmp_path / "empty")


def test_load_mnist_default_path(tmp_path, monkeypatch):
    (tmp_path / "data" / "mnist").mkdir(parents=True)
    write_mnist_npz(tmp_path / "data" / "mnist" / "mnist.npz")
    monkeypatch.setenv("ZSARRAY_SHARED", str(tmp_path))
    (xa, _), _ = D.load_mnist()
    assert xa.shape == (5, 784)
    monkeypatch.delenv("ZSARRAY_SHARED")
    monkeypatch.setattr(_common, "_REPO_ROOT", tmp_path / "nowhere" / "repo")
    with pytest.raises(FileNotFoundError, match="ZSARRAY_SHARED"):
        D.load_mnist()


# ---------------------------------------------------------------------------------------------
# binarized MNIST, dynamic binarization
# ---------------------------------------------------------------------------------------------

def test_load_binarized_mnist_npz(tmp_path):
    arrays = tiny_binarized()
    np.savez_compressed(tmp_path / "binarized_mnist.npz", **arrays)
    for path in (tmp_path / "binarized_mnist.npz", tmp_path):
        b = D.load_binarized_mnist(path)
        assert isinstance(b, D.BinarizedMNIST)
        assert [a.shape for a in b] == [(6, 784), (2, 784), (3, 784)]
        assert b.train.dtype == np.float32 and set(np.unique(b.valid)) <= {0.0, 1.0}
        np.testing.assert_array_equal(b.test, arrays["test"])
    b = D.load_binarized_mnist(tmp_path, dtype=np.uint8, flatten=False)
    assert b.train.dtype == np.uint8 and b.train.shape == (6, 28, 28)


def test_load_binarized_mnist_amat(tmp_path):
    from scipy.io import savemat
    arrays = tiny_binarized()
    np.savetxt(tmp_path / "binarized_mnist_train.amat", arrays["train"], fmt="%d")
    np.savetxt(tmp_path / "binarized_mnist_valid.amat", arrays["valid"], fmt="%d")
    # a MATLAB file under the .amat name, as in some public copies
    with open(tmp_path / "binarized_mnist_test.amat", "wb") as f:
        savemat(f, {"X": arrays["test"]})
    b = D.load_binarized_mnist(tmp_path)
    for s in ("train", "valid", "test"):
        np.testing.assert_array_equal(getattr(b, s), arrays[s])


def test_load_binarized_mnist_errors(tmp_path):
    arrays = tiny_binarized()
    np.savez(tmp_path / "k.npz", train=arrays["train"], test=arrays["test"])
    with pytest.raises(D.DataFormatError, match="valid"):
        D.load_binarized_mnist(tmp_path / "k.npz")
    arrays["train"][0, 0] = 200
    np.savez(tmp_path / "g.npz", **arrays)
    with pytest.raises(D.DataFormatError, match="outside"):
        D.load_binarized_mnist(tmp_path / "g.npz")
    (tmp_path / "d").mkdir()
    with pytest.raises(FileNotFoundError, match="binarized_mnist_train.amat"):
        D.load_binarized_mnist(tmp_path / "d")
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        D.load_binarized_mnist(tmp_path / "missing.npz")


def _corrupt_member(path):
    """Overwrite bytes in the middle of an archive's compressed data, keeping the zip
    directory intact (so the archive opens and only reading a member fails)."""
    raw = bytearray(path.read_bytes())
    mid = len(raw) // 3
    raw[mid:mid + 64] = bytes(64)
    path.write_bytes(bytes(raw))


def test_load_mnist_damaged_member_names_the_file(tmp_path):
    # before: the archive opened and z["x_train"] raised a bare zlib.error / BadZipFile
    x_train, y_train, x_test, y_test = tiny_mnist()
    np.savez_compressed(tmp_path / "m.npz", x_train=x_train.reshape(5, 784), y_train=y_train,
                        x_test=x_test.reshape(3, 784), y_test=y_test)
    _corrupt_member(tmp_path / "m.npz")
    with pytest.raises(D.DataFormatError, match="is damaged or truncated") as e:
        D.load_mnist(tmp_path / "m.npz")
    assert str(tmp_path / "m.npz") in str(e.value)
    arrays = tiny_binarized()
    np.savez_compressed(tmp_path / "b.npz", **arrays)
    _corrupt_member(tmp_path / "b.npz")
    with pytest.raises(D.DataFormatError, match="is damaged or truncated"):
        D.load_binarized_mnist(tmp_path / "b.npz")


def test_mnist_images_of_the_wrong_size_or_empty(tmp_path):
    x_train, y_train, x_test, y_test = tiny_mnist()
    np.savez(tmp_path / "w.npz", x_train=x_train.reshape(5, 784), y_train=y_train,
             x_test=x_test.reshape(3, 784)[:, :783], y_test=y_test)
    with pytest.raises(D.DataFormatError, match="differ in size"):
        D.load_mnist(tmp_path / "w.npz")
    np.savez(tmp_path / "e.npz", x_train=x_train.reshape(5, 784)[:0], y_train=y_train[:0],
             x_test=x_test.reshape(3, 784), y_test=y_test)
    with pytest.raises(D.DataFormatError, match="split 'x_train' has shape \\(0, 784\\)"):
        D.load_mnist(tmp_path / "e.npz")
    for bad in (True, 2.0, -1, 5):
        with pytest.raises(ValueError, match="n_validation must be an integer"):
            D.load_mnist(_ok_npz(tmp_path), n_validation=bad)
    arrays = tiny_binarized()
    arrays["test"] = arrays["test"][:, :780]
    np.savez(tmp_path / "b.npz", **arrays)
    with pytest.raises(D.DataFormatError, match="differ in size"):
        D.load_binarized_mnist(tmp_path / "b.npz")
    arrays = {k: v[:, :780] for k, v in tiny_binarized().items()}
    np.savez(tmp_path / "s.npz", **arrays)
    assert D.load_binarized_mnist(tmp_path / "s.npz").train.shape == (6, 780)
    with pytest.raises(D.DataFormatError, match="780 pixels are not square"):
        D.load_binarized_mnist(tmp_path / "s.npz", flatten=False)


def _ok_npz(tmp_path):
    path = tmp_path / "ok.npz"
    if not path.exists():
        write_mnist_npz(path)
    return path


def test_dynamic_binarize():
    x = np.full((200, 50), 0.3, np.float32)
    b = D.dynamic_binarize(x, 0)
    assert b.shape == x.shape and b.dtype == np.float32
    assert set(np.unique(b)) <= {0.0, 1.0}
    assert abs(b.mean() - 0.3) < 0.02
    np.testing.assert_array_equal(b, D.dynamic_binarize(x, 0))          # int seed: reproducible
    assert not np.array_equal(b, D.dynamic_binarize(x, 1))
    rng = np.random.default_rng(3)
    b1, b2 = D.dynamic_binarize(x, rng), D.dynamic_binarize(x, rng)      # a Generator advances
    assert not np.array_equal(b1, b2)
    edge = np.array([[0.0, 1.0, 0.0, 1.0]])
    out = D.dynamic_binarize(edge, 5, dtype=np.uint8)
    np.testing.assert_array_equal(out, edge.astype(np.uint8))


def test_dynamic_binarize_errors():
    with pytest.raises(TypeError, match="255"):
        D.dynamic_binarize(np.zeros(3, np.uint8), 0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        D.dynamic_binarize(np.array([0.5, 2.0]), 0)
    with pytest.raises(TypeError, match="rng"):
        D.dynamic_binarize(np.array([0.5]), "seed")


# ---------------------------------------------------------------------------------------------
# UCI
# ---------------------------------------------------------------------------------------------

def test_load_uci_shapes_and_indices(tmp_path):
    table, splits = write_uci(tmp_path / "toy")
    assert D.uci_n_splits(tmp_path / "toy") == 3
    for k, (train, test) in enumerate(splits):
        d = D.load_uci(tmp_path / "toy", split=k)
        assert d.x_train.shape == (26, 3) and d.y_train.shape == (26,)
        assert d.x_test.shape == (4, 3) and d.y_test.shape == (4,)
        assert d.x_train.dtype == np.float64 and d.split == k and d.n_splits == 3
        assert d.name == "toy"
        np.testing.assert_allclose(d.denormalize_x(d.x_train), table[train][:, :3])
        np.testing.assert_allclose(d.denormalize_y(d.y_test), table[test][:, 3])
    x_tr, y_tr, x_te, y_te = d  # unpacks like a tuple
    assert x_tr is d.x_train and y_te is d.y_test
    assert d.info == {"n_splits": 3, "n_hidden": 50, "n_epochs": 40,
                      "dropout_rates": [0.005, 0.01], "tau_values": [0.1, 0.15, 0.2]}


def test_load_uci_normalization(tmp_path):
    table, splits = write_uci(tmp_path / "toy")
    d = D.load_uci(tmp_path / "toy", split=1)
    train = splits[1][0]
    np.testing.assert_allclose(d.x_mean, table[train][:, :3].mean(0))
    np.testing.assert_allclose(d.x_std[:2], table[train][:, :2].std(0))
    assert d.x_std[2] == 1.0 and np.all(d.x_train[:, 2] == 0)   # constant column guard
    np.testing.assert_allclose(d.x_train[:, :2].mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(d.x_train[:, :2].std(0), 1)
    assert abs(d.y_train.mean()) < 1e-12 and abs(d.y_train.std() - 1) < 1e-12
    assert d.y_mean == pytest.approx(table[train, 3].mean())
    np.testing.assert_allclose(d.normalize_x(d.denormalize_x(d.x_test)), d.x_test)
    np.testing.assert_allclose(d.normalize_y(d.denormalize_y(d.y_test)), d.y_test)
    raw = D.load_uci(tmp_path / "toy", split=1, normalize=False, dtype=np.float32)
    assert raw.x_train.dtype == np.float32 and not raw.normalized
    assert raw.y_mean == 0.0 and raw.y_std == 1.0
    np.testing.assert_allclose(raw.y_test, table[splits[1][1], 3], rtol=1e-6)


class norm:  # scipy.stats.norm's logpdf/pdf without the slow scipy.stats import
    @staticmethod
    def logpdf(x, loc, scale):
        return -0.5 * ((x - loc) / scale) ** 2 - np.log(scale) - 0.5 * np.log(2 * np.pi)

    @staticmethod
    def pdf(x, loc, scale):
        return np.exp(norm.logpdf(x, loc, scale))


def test_load_uci_metrics(tmp_path):
    write_uci(tmp_path / "toy")
    d = D.load_uci(tmp_path / "toy")
    assert d.rmse(d.y_test) == pytest.approx(0.0, abs=1e-12)
    y = d.y_test_original()
    assert d.rmse(np.zeros(4)) == pytest.approx(np.sqrt(np.mean((y - d.y_mean) ** 2)))
    assert d.rmse(np.full(4, d.y_mean), normalized=False) == pytest.approx(d.rmse(np.zeros(4)))
    mean, std = np.array([0.1, -0.2, 0.3, 0.0]), 0.5
    expect = norm.logpdf(y, d.denormalize_y(mean), std * d.y_std).mean()
    assert d.gaussian_log_likelihood(mean, std) == pytest.approx(expect)
    assert d.gaussian_log_likelihood(d.denormalize_y(mean), std * d.y_std, normalized=False) \
        == pytest.approx(expect)
    # normalized log density + log_jacobian = original-units log density
    assert norm.logpdf(d.y_test, mean, std).mean() + d.log_jacobian == pytest.approx(expect)
    # an equal-weight mixture of identical components is the component itself
    assert d.gaussian_log_likelihood(np.stack([mean] * 5), std) == pytest.approx(expect)
    two = d.gaussian_log_likelihood(np.stack([mean, -mean]), std)
    expect2 = np.mean(np.log(0.5 * norm.pdf(y, d.denormalize_y(mean), std * d.y_std)
                             + 0.5 * norm.pdf(y, d.denormalize_y(-mean), std * d.y_std)))
    assert two == pytest.approx(expect2)


def test_load_uci_validation_fraction(tmp_path):
    table, splits = write_uci(tmp_path / "toy")
    d = D.load_uci(tmp_path / "toy", split=2, validation_fraction=0.2)
    train = splits[2][0]
    cut = int(0.8 * 26)
    assert d.x_train.shape == (cut, 3) and d.x_valid.shape == (26 - cut, 3)
    assert d.y_valid.shape == (26 - cut,) and d.x_test.shape == (4, 3)
    np.testing.assert_allclose(d.x_mean, table[train[:cut], :3].mean(0))  # reduced-train stats
    np.testing.assert_allclose(d.denormalize_y(d.y_valid), table[train[cut:], 3])
    with pytest.raises(ValueError, match="validation_fraction"):
        D.load_uci(tmp_path / "toy", validation_fraction=1.5)


def test_load_uci_folder_forms(tmp_path, monkeypatch):
    write_uci(tmp_path / "data" / "uci" / "toy")
    ref = D.load_uci(tmp_path / "data" / "uci" / "toy")
    via_data = D.load_uci(tmp_path / "data" / "uci" / "toy" / "data")
    np.testing.assert_array_equal(ref.x_train, via_data.x_train)
    monkeypatch.setenv("ZSARRAY_SHARED", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    np.testing.assert_array_equal(D.load_uci("toy").y_test, ref.y_test)  # bare name
    assert D.uci_n_splits("toy") == 3


def test_uci_n_splits_without_file(tmp_path):
    write_uci(tmp_path / "toy", n_splits=2, with_n_splits=False)
    assert D.uci_n_splits(tmp_path / "toy") == 2
    assert D.load_uci(tmp_path / "toy", split=1).n_splits == 2


def test_load_uci_split_out_of_range(tmp_path):
    write_uci(tmp_path / "toy")
    for k in (3, -1):
        with pytest.raises(IndexError, match="3 splits"):
            D.load_uci(tmp_path / "toy", split=k)
    with pytest.raises(TypeError, match="split"):
        D.load_uci(tmp_path / "toy", split=1.0)


def test_load_uci_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        D.load_uci(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="data.txt"):
        D.load_uci(tmp_path / "empty")
    (tmp_path / "empty" / "data.txt").write_text("1 2\n")  # data but no split files
    with pytest.raises(FileNotFoundError, match="n_splits.txt"):
        D.uci_n_splits(tmp_path / "empty")
    write_uci(tmp_path / "toy")
    (tmp_path / "toy" / "data" / "index_test_1.txt").unlink()
    with pytest.raises(FileNotFoundError, match="index_test_1.txt"):
        D.load_uci(tmp_path / "toy", split=1)
    (tmp_path / "toy" / "data" / "index_target.txt").unlink()
    with pytest.raises(FileNotFoundError, match="index_target.txt"):
        D.load_uci(tmp_path / "toy", split=0)


@pytest.mark.parametrize("name,content,match", [
    ("index_train_0.txt", "0\n1\n99\n", "row index 99 out of range"),
    ("index_test_0.txt", None, "in both train and test"),
    ("index_features.txt", "0\n7\n", "column indices"),
    ("index_target.txt", "3\n4\n", "exactly one target"),
    ("index_train_0.txt", "0.5\n1\n", "integers"),
])
def test_load_uci_corrupt(tmp_path, name, content, match):
    write_uci(tmp_path / "toy")
    d = tmp_path / "toy" / "data"
    if content is None:  # a test index that also appears in train
        first_train_row = (d / "index_train_0.txt").read_text().split()[0]
        content = (d / "index_test_0.txt").read_text() + first_train_row + "\n"
    (d / name).write_text(content)
    with pytest.raises(D.DataFormatError, match=match):
        D.load_uci(tmp_path / "toy", split=0)


def _set_cell(d, row, col, text):
    lines = (d / "data.txt").read_text().splitlines()
    cells = lines[row].split()
    cells[col] = text
    lines[row] = "\t".join(cells)
    (d / "data.txt").write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("cell", ["nan", "NaN", "inf", "-inf"])
def test_load_uci_non_finite_cell_names_file_line_and_column(tmp_path, cell):
    # before: loaded fine, and standardization made the whole input column NaN
    _, splits = write_uci(tmp_path / "toy")
    d = tmp_path / "toy" / "data"
    row = int(splits[0][0][3])                       # a training row of split 0
    _set_cell(d, row, 1, cell)
    with pytest.raises(D.DataFormatError) as e:
        D.load_uci(tmp_path / "toy", split=0)
    msg = str(e.value)
    assert str(d / "data.txt") in msg and f"line {row + 1} (row {row}), column 1" in msg
    assert "1 non-finite cell" in msg


def test_load_uci_non_finite_cell_outside_the_used_columns_is_fine(tmp_path):
    table, splits = write_uci(tmp_path / "toy")
    _set_cell(tmp_path / "toy" / "data", int(splits[0][0][0]), 4, "nan")   # unused column 4
    d = D.load_uci(tmp_path / "toy", split=0)
    assert np.all(np.isfinite(d.x_train)) and np.all(np.isfinite(d.y_train))
    np.testing.assert_allclose(d.denormalize_y(d.y_test), table[splits[0][1], 3])


@pytest.mark.parametrize("cell, match", [("abc", "not a table of numbers"),
                                         (None, "not a table of numbers")])
def test_load_uci_non_numeric_or_missing_cell(tmp_path, cell, match):
    write_uci(tmp_path / "toy")
    d = tmp_path / "toy" / "data"
    if cell is None:                                  # an empty cell: a short row
        lines = (d / "data.txt").read_text().splitlines()
        lines[5] = "\t".join(lines[5].split()[:-1])
        (d / "data.txt").write_text("\n".join(lines) + "\n")
    else:
        _set_cell(d, 5, 0, cell)
    with pytest.raises(D.DataFormatError, match=match) as e:
        D.load_uci(tmp_path / "toy", split=0)
    assert str(d / "data.txt") in str(e.value)


@pytest.mark.parametrize("name, content, match", [
    ("data.txt", "", "data.txt is empty"),
    ("data.txt", "\n\n", "data.txt is empty"),
    ("index_train_0.txt", "", "index_train_0.txt is empty"),
    ("index_test_0.txt", "", "index_test_0.txt is empty"),
    ("index_train_0.txt", "0\nnan\n", "integers"),
    ("index_train_0.txt", "0\n-2\n", "integers"),
    ("index_features.txt", "0\nx\n", "index_features.txt: not a table of numbers"),
    ("n_splits.txt", "0\n", "number of splits is 0"),
])
def test_load_uci_empty_or_bad_files(tmp_path, name, content, match):
    write_uci(tmp_path / "toy")
    (tmp_path / "toy" / "data" / name).write_text(content)
    with pytest.raises(D.DataFormatError, match=match):
        D.load_uci(tmp_path / "toy", split=0)


@pytest.mark.parametrize("fraction", [0.99, 0.999999])
def test_load_uci_validation_fraction_leaving_no_training_rows(tmp_path, fraction):
    # before: int(0.01 * 26) = 0 training rows, NaN statistics, no error
    write_uci(tmp_path / "toy")
    with pytest.raises(ValueError, match="leaves 0 training and 26 validation rows"):
        D.load_uci(tmp_path / "toy", validation_fraction=fraction)


def test_regression_metrics_refuse_shapes_that_only_broadcast(tmp_path):
    # before: rmse of [S, N] sample means broadcast against y [N] and returned a number
    write_uci(tmp_path / "toy")
    d = D.load_uci(tmp_path / "toy")
    with pytest.raises(ValueError, match=r"y_pred has shape \(3, 4\), expected \(4,\)"):
        d.rmse(np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"y_pred has shape \(1,\)"):
        d.rmse(np.zeros(1))
    with pytest.raises(ValueError, match=r"mean has shape \(5,\), expected \[4\]"):
        d.gaussian_log_likelihood(np.zeros(5), 1.0)
    with pytest.raises(ValueError, match="does not broadcast"):
        d.gaussian_log_likelihood(np.zeros((3, 4)), np.ones(3))
    for bad in (0.0, -1.0, np.nan):
        with pytest.raises(ValueError, match="std must be finite and > 0"):
            d.gaussian_log_likelihood(np.zeros(4), bad)
    assert np.isfinite(d.gaussian_log_likelihood(np.zeros((3, 4)), np.ones((3, 1))))


def test_load_uci_validation_fraction_checks(tmp_path):
    write_uci(tmp_path / "toy")
    for bad in (-0.1, 1.0, float("nan")):
        with pytest.raises(ValueError, match=r"validation_fraction must be in \[0, 1\)"):
            D.load_uci(tmp_path / "toy", validation_fraction=bad)
    with pytest.raises(TypeError, match="validation_fraction"):
        D.load_uci(tmp_path / "toy", validation_fraction="0.2")
    assert D.load_uci(tmp_path / "toy", validation_fraction=0.04).x_valid.shape == (2, 3)


def test_standardize_stats_constant_column_with_rounding_residue():
    # 0.1 * 3 rows: x.std() is ~1e-17, not 0; dividing by it gave values of ~1e16
    x = np.column_stack([np.full(3, 0.1), [1.0, 2.0, 3.0]])
    mean, std = _common._standardize_stats(x)
    assert std[0] == 1.0 and std[1] == pytest.approx(np.sqrt(2 / 3))
    np.testing.assert_allclose((x - mean) / std, [[0, -1.224744871], [0, 0], [0, 1.224744871]],
                               atol=1e-9)
    with pytest.raises(D.DataFormatError, match="0 rows"):
        _common._standardize_stats(np.zeros((0, 2)))
    with pytest.raises(D.DataFormatError, match="non-finite"):
        _common._standardize_stats(np.array([[1.0], [np.nan]]))


@pytest.mark.parametrize("fraction, n, match", [
    (0.9, 1, "leaves 0 training rows"),
    (0.9995, 569, "leaves 0 training rows"),
    (0.001, 442, "rounds to 0 test rows"),
    (1.0, 10, r"must be in \[0, 1\)"),
    (float("nan"), 10, r"must be in \[0, 1\)"),
])
def test_train_test_indices_leaving_an_empty_side(fraction, n, match):
    with pytest.raises(ValueError, match=match):
        _common._train_test_indices(n, fraction, 0)
    train, test = _common._train_test_indices(10, 0.3, 0)
    assert sorted(np.concatenate([train, test])) == list(range(10)) and len(test) == 3


# ---------------------------------------------------------------------------------------------
# scikit-learn wrappers
# ---------------------------------------------------------------------------------------------

def test_load_breast_cancer():
    pytest.importorskip("sklearn")
    d = D.load_breast_cancer()
    assert d.x_train.shape == (455, 31) and d.x_test.shape == (114, 31)
    assert d.y_train.shape == (455,) and set(np.unique(d.y_train)) == {0.0, 1.0}
    assert np.all(d.x_train[:, 0] == 1)
    np.testing.assert_allclose(d.x_train[:, 1:].mean(0), 0, atol=1e-10)
    np.testing.assert_allclose(d.x_train[:, 1:].std(0), 1)
    raw = D.load_breast_cancer(standardize=False, intercept=False, test_fraction=0.5, rng=1)
    assert raw.x_train.shape == (285, 30) and raw.x_test.shape == (284, 30)  # round(284.5)
    assert raw.x_train.min() >= 0  # raw features are non-negative measurements
    again = D.load_breast_cancer(rng=np.random.default_rng(0))
    np.testing.assert_array_equal(again.y_test, d.y_test)
    with pytest.raises(ValueError, match="test_fraction"):
        D.load_breast_cancer(test_fraction=1.0)


def test_load_digits():
    pytest.importorskip("sklearn")
    d = D.load_digits()
    assert d.x_train.shape == (1438, 64) and d.x_test.shape == (359, 64)
    assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.int64
    assert d.x_train.min() == 0.0 and d.x_train.max() == 1.0
    for mode in (True, "threshold", "bernoulli"):
        b = D.load_digits(binarize=mode, flatten=False, rng=2)
        assert b.x_train.shape == (1438, 8, 8) and set(np.unique(b.x_train)) == {0.0, 1.0}
    np.testing.assert_array_equal(D.load_digits(binarize=True).x_test, d.x_test > 0.5)
    with pytest.raises(ValueError, match="binarize"):
        D.load_digits(binarize="sometimes")


def test_load_diabetes():
    pytest.importorskip("sklearn")
    d = D.load_diabetes()
    assert isinstance(d, D.RegressionData)
    assert d.x_train.shape == (354, 10) and d.x_test.shape == (88, 10) and d.y_train.shape == (354,)
    np.testing.assert_allclose(d.x_train.mean(0), 0, atol=1e-10)
    np.testing.assert_allclose(d.x_train.std(0), 1)
    y = d.denormalize_y(np.concatenate([d.y_train, d.y_test]))
    assert y.min() == pytest.approx(25) and y.max() == pytest.approx(346)
    raw = D.load_diabetes(standardize=False)
    np.testing.assert_allclose(raw.y_test, d.y_test_original())


def test_sklearn_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    for fn in (D.load_breast_cancer, D.load_digits, D.load_diabetes):
        with pytest.raises(ImportError, match=r"pip install zsarray\[examples\]"):
            fn()


# ---------------------------------------------------------------------------------------------
# the real files, when the shared folder is present (shapes only)
# ---------------------------------------------------------------------------------------------

def _shared_or_skip(*parts):
    base = D.shared_data_dir()
    if base is None or not base.joinpath(*parts).exists():
        pytest.skip(f"shared data not found ({'/'.join(parts)} under $ZSARRAY_SHARED/data or "
                    "<repo>/../shared/data)")
    return base.joinpath(*parts)


def _npz_shapes(path):
    """{key: (shape, dtype)} from the .npy headers only, without decompressing the data."""
    out = {}
    with zipfile.ZipFile(path) as zf:
        for name in zf.namelist():
            with zf.open(name) as f:
                version = np.lib.format.read_magic(f)
                read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                        else np.lib.format.read_array_header_2_0)
                shape, _, dtype = read(f)
            out[name[:-4]] = (shape, dtype)
    return out


def test_real_mnist_npz_layout():
    mnist = _npz_shapes(_shared_or_skip("mnist", "mnist.npz"))
    assert mnist == {"x_train": ((60000, 784), np.uint8), "y_train": ((60000,), np.uint8),
                     "x_test": ((10000, 784), np.uint8), "y_test": ((10000,), np.uint8)}
    binar = _npz_shapes(_shared_or_skip("mnist", "binarized_mnist.npz"))
    assert binar == {"train": ((50000, 784), np.uint8), "valid": ((10000, 784), np.uint8),
                     "test": ((10000, 784), np.uint8)}


def test_real_uci():
    boston = D.load_uci(_shared_or_skip("uci", "bostonHousing"), split=19)
    assert boston.x_train.shape == (455, 13) and boston.x_test.shape == (51, 13)
    assert boston.n_splits == 20 and boston.info["n_hidden"] == 50
    naval = D.load_uci(_shared_or_skip("uci", "naval-propulsion-plant"))
    assert naval.x_train.shape == (10741, 16) and naval.x_test.shape == (1193, 16)
    assert naval.x_std[8] == 1.0  # the constant input column
    assert np.isfinite(naval.x_train).all()


@pytest.mark.slow
def test_real_mnist_load():
    (xa, ya), (xb, yb) = D.load_mnist(_shared_or_skip("mnist", "mnist.npz"))
    assert xa.shape == (60000, 784) and xb.shape == (10000, 784) and ya.shape == (60000,)
    assert xa.dtype == np.float32 and xa.max() == 1.0
    b = D.load_binarized_mnist(_shared_or_skip("mnist", "binarized_mnist.npz"), dtype=np.uint8)
    assert [a.shape for a in b] == [(50000, 784), (10000, 784), (10000, 784)]
