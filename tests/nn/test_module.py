"""Module: parameter discovery, state dicts, save/load, devices, train/eval, errors."""
import os

import numpy as np
import pytest

import autodiff as ad
from autodiff import backend
from zsarray import nn


def _param(shape, seed=0, dtype=np.float64):
    return ad.tensor(np.random.default_rng(seed).standard_normal(shape).astype(dtype),
                     requires_grad=True)


class Leaf(nn.Module):
    def __init__(self, seed=0):
        self.w = _param((2, 3), seed)
        self.frozen = ad.tensor(np.ones(3))            # requires_grad=False: not a parameter
        self.scale = 2.0

    def forward(self, x, shift=0.0):
        return x @ self.w * self.scale + shift


class Tree(nn.Module):
    def __init__(self):
        self.first = Leaf(0)
        self.blocks = [Leaf(1), (Leaf(2), _param(4, 3))]
        self.heads = {"mu": Leaf(4), "extra": [_param(1, 5)]}
        self.shared = self.first.w                     # the same Tensor twice: listed once
        self.parent = None


def test_parameters_discovered_in_attribute_order():
    tree = Tree()
    names = [n for n, _ in tree.named_parameters()]
    assert names == ["first.w", "blocks.0.w", "blocks.1.0.w", "blocks.1.1", "heads.mu.w",
                     "heads.extra.0"]
    assert [p.shape for p in tree.parameters()] == [(2, 3)] * 3 + [(4,), (2, 3), (1,)]
    assert tree.parameters()[0] is tree.first.w
    assert [n for n, _ in tree.named_modules()] == ["", "first", "blocks.0", "blocks.1.0",
                                                    "heads.mu"]
    assert names == [n for n, _ in Tree().named_parameters()]      # deterministic


def test_cycles_are_followed_once():
    tree = Tree()
    tree.first.back = tree                              # child -> parent cycle
    assert len(tree.parameters()) == 6 and len(tree.modules()) == 5


def test_state_dict_round_trip_through_npz(tmp_path):
    src, dst = Tree(), Tree()
    for p in dst.parameters():
        p.data[...] = 0.0
    before = [p.data for p in dst.parameters()]
    written = src.save(tmp_path / "tree")               # ".npz" appended
    assert written.endswith("tree.npz")
    assert dst.load(tmp_path / "tree") is dst
    for a, b, data in zip(src.parameters(), dst.parameters(), before):
        np.testing.assert_array_equal(a.data, b.data)
        assert b.data is data                           # copied in place: optimizers keep working
    with np.load(written) as f:
        assert sorted(f.files) == sorted(src.state_dict())


def test_state_dict_is_a_copy_and_load_casts():
    leaf = Leaf()
    state = leaf.state_dict()
    state["w"][...] = 7.0
    assert not np.any(leaf.w.data == 7.0)
    f32 = Leaf()
    f32.w = _param((2, 3), dtype=np.float32)
    assert f32.load_state_dict(state) == ([], [])
    assert f32.w.dtype == np.float32 and np.all(f32.w.data == 7.0)


def test_load_state_dict_missing_and_unexpected_keys():
    tree = Tree()
    state = tree.state_dict()
    del state["heads.mu.w"]
    state["heads.sigma.w"] = np.zeros((2, 3))
    before = tree.first.w.data.copy()
    state["first.w"] = before + 1
    with pytest.raises(ValueError, match=r"missing keys \['heads.mu.w'\]; unexpected keys "
                                         r"\['heads.sigma.w'\]"):
        tree.load_state_dict(state)
    np.testing.assert_array_equal(tree.first.w.data, before)      # nothing copied
    assert tree.load_state_dict(state, strict=False) == (["heads.mu.w"], ["heads.sigma.w"])
    np.testing.assert_array_equal(tree.first.w.data, before + 1)
    with pytest.raises(ValueError, match=r"missing keys \['w'\] \(the module's keys"):
        Leaf().load_state_dict({})
    with pytest.raises(ValueError, match=r"unexpected keys \['v'\]"):
        Leaf().load_state_dict({"w": np.zeros((2, 3)), "v": np.zeros(1)})


def test_load_state_dict_shape_mismatch(tmp_path):
    leaf = Leaf()
    with pytest.raises(ValueError, match=r"'w' has shape \(3, 2\) in the state dict but "
                                         r"\(2, 3\) in the module"):
        leaf.load_state_dict({"w": np.zeros((3, 2))}, strict=False)
    other = Tree()
    other.save(tmp_path / "t.npz")
    with pytest.raises(ValueError, match="unexpected keys"):
        leaf.load(tmp_path / "t.npz")


def test_load_damaged_or_foreign_files(tmp_path):
    # before: a truncated file raised a bare BadZipFile / EOFError, a .npy an AttributeError
    src, dst = Tree(), Tree()
    written = src.save(tmp_path / "t")
    whole = open(written, "rb").read()
    before = [p.data.copy() for p in dst.parameters()]
    for cut in (0, 10, len(whole) // 2, len(whole) - 20):
        with open(written, "wb") as f:
            f.write(whole[:cut])
        with pytest.raises(ValueError, match="is damaged or truncated") as e:
            dst.load(written)
        assert written in str(e.value)
    np.save(tmp_path / "one.npy", np.zeros(3))
    os.replace(tmp_path / "one.npy", tmp_path / "one.npz")
    with pytest.raises(ValueError, match="single array"):
        dst.load(tmp_path / "one.npz")
    with pytest.raises(FileNotFoundError, match="nope.npz does not exist"):
        dst.load(tmp_path / "nope")
    for p, b in zip(dst.parameters(), before):           # nothing was copied
        np.testing.assert_array_equal(p.data, b)
    assert not [n for n in os.listdir(tmp_path) if ".tmp-" in n]   # save left no temp file


@pytest.mark.parametrize("value, match", [
    (np.array([[1.0, np.nan, 0.0], [0.0, 0.0, 0.0]]), "'w' holds NaN or inf"),
    (np.full((2, 3), np.inf), "'w' holds NaN or inf"),
    (np.full((2, 3), "a"), "'w' holds <U1 values, expected real numbers"),
])
def test_load_state_dict_refuses_non_numbers(tmp_path, value, match):
    leaf = Leaf()
    before = leaf.w.data.copy()
    with pytest.raises(ValueError, match=match):
        leaf.load_state_dict({"w": value})
    np.savez(tmp_path / "w.npz", w=value)
    with pytest.raises(ValueError, match=match):
        leaf.load(tmp_path / "w.npz")
    np.testing.assert_array_equal(leaf.w.data, before)


def test_load_into_read_only_parameter():
    leaf = Leaf()
    leaf.w.data = np.broadcast_to(np.float64(1.0), (2, 3))
    leaf.load_state_dict({"w": np.full((2, 3), 3.0)})
    np.testing.assert_array_equal(leaf.w.data, 3.0)


def test_call_forward_train_eval_zero_grad_and_repr():
    tree = Tree()
    out = tree.first(np.ones((4, 2)), shift=1.0)
    np.testing.assert_allclose(out.data, np.ones((4, 2)) @ tree.first.w.data * 2 + 1)
    ad.sum(out).backward()
    assert tree.first.w.grad is not None
    tree.zero_grad()
    assert all(p.grad is None for p in tree.parameters())
    assert tree.eval() is tree
    assert not any(m.training for m in tree.modules())
    tree.train()
    assert all(m.training for m in tree.modules())
    text = repr(tree)
    assert text.startswith("Tree(\n") and "(blocks.0): Leaf()" in text and "(heads.mu)" in text
    with pytest.raises(NotImplementedError, match="Tree does not define forward"):
        tree(1.0)


def test_to_cpu_and_device_errors():
    leaf = Leaf()
    leaf.w.grad = np.ones((2, 3))
    assert leaf.to("cpu") is leaf
    assert type(leaf.w.data) is np.ndarray and type(leaf.w.grad) is np.ndarray
    with pytest.raises(ValueError, match="device must be 'cpu' or 'gpu', got 'tpu'"):
        leaf.to("tpu")
    if backend.gpu_available():
        pytest.skip("a CUDA device is present: the no-GPU error path cannot be triggered")
    with pytest.raises(RuntimeError, match=r"to\('gpu'\): no CUDA device available"):
        leaf.to("gpu")
    assert type(leaf.w.data) is np.ndarray


def test_to_gpu_and_back():
    if not backend.gpu_available():
        pytest.skip("no CUDA device (CuPy not installed or no GPU)")
    leaf = Leaf()
    w = leaf.w.data.copy()
    leaf.to("gpu")
    assert backend.is_cupy(leaf.w.data)
    leaf.to("cpu")
    np.testing.assert_array_equal(leaf.w.data, w)
