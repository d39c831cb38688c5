"""Where new arrays go when no input decides: the default device.

Without a GPU the GPU side runs with a stand-in array module (NumPy functions under
another name) put where CuPy would be, so what is checked is the decision: which
module, which float dtype and which generator. The arrays themselves stay NumPy.
"""
import types

import numpy as np
import pytest

import autodiff as ad
from autodiff import backend
from samplers.base import as_generator, default_module


@pytest.fixture
def fake_gpu(monkeypatch):
    """The default device set to 'gpu', with a stand-in for the cupy module."""
    fake = types.SimpleNamespace(asarray=np.asarray, zeros=np.zeros,
                                 random=types.SimpleNamespace(default_rng=np.random.default_rng))
    monkeypatch.setattr(backend, "_cupy", fake)
    monkeypatch.setattr(backend, "_default_device", "gpu")
    return fake


def test_cpu_default():
    assert backend.default_device() == "cpu"
    assert backend.get_array_module() is np
    assert backend.get_array_module(1.0, [1, 2]) is np
    assert default_module() is np
    assert backend.default_float(np) == np.float64
    assert ad.tensor([1.0, 2.0]).dtype == np.float64


def test_default_device_decides_only_when_no_array_does(fake_gpu):
    assert backend.get_array_module() is fake_gpu
    assert backend.get_array_module(1.0, [1, 2]) is fake_gpu
    assert backend.get_array_module(np.ones(2)) is np            # a NumPy array decides
    assert backend.get_array_module(1.0, ad.tensor(np.ones(2))) is np
    assert backend.get_array_module(np.float32(1)) is np
    assert default_module() is fake_gpu                          # the samplers see it too
    assert backend.default_float(fake_gpu) == np.float32


def test_tensor_from_python_values_is_float32_on_the_gpu(fake_gpu):
    assert ad.tensor([1.0, 2.0]).dtype == np.float32
    assert ad.tensor(3.0).dtype == np.float32
    assert ad.tensor([1, 2]).dtype.kind == "i"                    # integers stay integers
    assert ad.tensor([1.0], dtype=np.float64).dtype == np.float64  # an explicit dtype wins
    assert ad.tensor(np.ones(2)).dtype == np.float64              # an array keeps its own


def test_sample_without_init_position_uses_the_default_device(fake_gpu):
    # positions drawn with the default device's generator, in its float dtype
    from samplers.driver import _initial_positions
    q = _initial_positions(None, 2, 3, "uniform", as_generator(0, fake_gpu), fake_gpu)
    assert q.dtype == np.float32 and q.shape == (2, 3) and np.all(np.abs(q) <= 2)
    assert _initial_positions(None, 2, 3, "zeros", None, fake_gpu).dtype == np.float32
    assert _initial_positions(None, 2, 3, "zeros", None, np).dtype == np.float64


class _FakeCupyGenerator:
    """Quacks like cupy.random.Generator for as_generator (module name and integers)."""
    __module__ = "cupy.random._generator_api"

    def __init__(self, seed):
        self._g = np.random.default_rng(seed)

    def integers(self, low, high):
        return self._g.integers(low, high)

    def standard_normal(self, *a, **k):
        return self._g.standard_normal(*a, **k)


def test_as_generator_same_module_passes_through():
    g = np.random.default_rng(1)
    assert as_generator(g, np) is g
    c = _FakeCupyGenerator(1)
    assert as_generator(c, types.SimpleNamespace()) is c


def test_as_generator_converts_a_generator_of_the_other_module(fake_gpu):
    # NumPy generator, GPU positions: a GPU generator seeded from one draw of it
    g1, g2 = np.random.default_rng(5), np.random.default_rng(5)
    a = as_generator(g1, fake_gpu).standard_normal(4)
    b = as_generator(g2, fake_gpu).standard_normal(4)
    np.testing.assert_array_equal(a, b)                   # reproducible
    assert not np.array_equal(a, np.random.default_rng(5).standard_normal(4))
    # CuPy generator, NumPy positions: a NumPy generator
    n = as_generator(_FakeCupyGenerator(3), np)
    assert isinstance(n, np.random.Generator)
    seed = np.random.default_rng(3).integers(0, 2 ** 63 - 1)
    np.testing.assert_array_equal(n.standard_normal(3),
                                  np.random.default_rng(seed).standard_normal(3))


def test_as_generator_rejects_other_types():
    with pytest.raises(TypeError, match="rng: expected an int seed or a numpy.random.Generator"):
        as_generator(np.random.RandomState(0), np)
    with pytest.raises(TypeError, match="rng: expected"):
        as_generator(None, np)
