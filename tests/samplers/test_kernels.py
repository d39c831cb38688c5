"""Numba CPU leapfrog kernels against the NumPy reference (samplers.kernels)."""

import numpy as np
import pytest

import samplers.kernels as K
from samplers.kernels import cpu
from samplers.kernels import reference as R

__all__ = []

RTOL = {np.float64: 1e-12, np.float32: 1e-5}
SHAPES = [(1, 1), (1, 31), (7, 5), (9, 3), (130, 31)]


def make(rng, c, d, dtype, dense):
    """Random state with eps containing zeros and negative entries."""
    q, p, g = (rng.standard_normal((c, d)).astype(dtype) for _ in range(3))
    if dense:
        a = rng.standard_normal((d, d))
        # non-symmetric on purpose: the kernels must use inv_mass.T, not rely on symmetry
        inv_mass = (a @ a.T / d + np.eye(d) + 0.1 * rng.standard_normal((d, d))).astype(dtype)
    else:
        inv_mass = rng.uniform(0.2, 3.0, d).astype(dtype)
    eps = rng.uniform(-0.3, 0.3, c).astype(dtype)
    eps[::3] = 0.0
    return q, p, g, inv_mass, eps


def close(a, b, dtype):
    scale = max(1.0, float(np.abs(b).max()))
    np.testing.assert_allclose(a, b, rtol=RTOL[dtype], atol=RTOL[dtype] * scale)


@pytest.fixture(params=[False, True], ids=["serial", "parallel"])
def threads(request, monkeypatch):
    """Run each test through the serial and (forced) prange drivers."""
    if request.param:
        monkeypatch.setattr(cpu, "PARALLEL_MIN_ELEMENTS", 0)
    return request.param


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("dense", [False, True], ids=["diag", "dense"])
@pytest.mark.parametrize("shape", SHAPES)
def test_kick_drift_matches_reference(shape, dense, dtype, threads):
    rng = np.random.default_rng(shape)
    q, p, g, inv_mass, eps = make(rng, *shape, dtype, dense)
    q0, q_ref, p_ref = q.copy(), q.copy(), p.copy()
    q_id, p_id = id(q), id(p)
    K.kick_drift(q, p, g, inv_mass, eps, 0.6, 1.3)
    R.kick_drift(q_ref, p_ref, g, inv_mass, eps, 0.6, 1.3)
    assert (id(q), id(p), q.dtype, p.dtype) == (q_id, p_id, dtype, dtype)
    close(p, p_ref, dtype)
    close(q, q_ref, dtype)
    # the reference itself really moved the chains with nonzero eps, and only them
    np.testing.assert_array_equal(np.any(q != q0, axis=1), eps != 0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", SHAPES)
def test_kick_matches_reference(shape, dtype, threads):
    rng = np.random.default_rng(1)
    _, p, g, _, eps = make(rng, *shape, dtype, False)
    p_ref = p.copy()
    K.kick(p, g, eps, 0.5)
    R.kick(p_ref, g, eps, 0.5)
    assert p.dtype == dtype
    close(p, p_ref, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("dense", [False, True], ids=["diag", "dense"])
@pytest.mark.parametrize("shape", SHAPES)
def test_kinetic_energy_matches_reference(shape, dense, dtype, threads):
    rng = np.random.default_rng(2)
    _, p, _, inv_mass, _ = make(rng, *shape, dtype, dense)
    ke = K.kinetic_energy(p, inv_mass)
    assert ke.shape == (shape[0],) and ke.dtype == dtype
    close(ke, R.kinetic_energy(p, inv_mass), dtype)


def test_reference_kinetic_energy_closed_form():
    p = np.array([[1.0, 2.0], [0.0, -1.0]])
    np.testing.assert_allclose(R.kinetic_energy(p, np.array([2.0, 0.5])), [0.5 * (2 + 2), 0.5 * 0.5])
    dense = np.array([[2.0, 1.0], [1.0, 1.0]])
    np.testing.assert_allclose(R.kinetic_energy(p, dense), [0.5 * (2 + 4 + 4), 0.5])


def test_leapfrog_harmonic_oscillator_conserves_energy_and_reverses():
    """Velocity Verlet built from the kernels on H = p^2/2m + k q^2/2."""
    rng = np.random.default_rng(3)
    c, d = 6, 4
    inv_mass = rng.uniform(0.5, 2.0, d)
    q0, p0 = rng.standard_normal((c, d)), rng.standard_normal((c, d))
    q, p = q0.copy(), p0.copy()
    eps = np.full(c, 0.05)

    def energy(q, p):
        return 0.5 * (q**2).sum(1) + K.kinetic_energy(p, inv_mass)

    def trajectory(eps, n=200):
        for _ in range(n):
            K.kick_drift(q, p, -q, inv_mass, eps, 0.5, 1.0)
            K.kick(p, -q, eps, 0.5)

    e0 = energy(q0, p0)
    trajectory(eps)
    assert np.abs(energy(q, p) - e0).max() < 1e-2 * e0.max()
    # exact solution per coordinate: q(t) = A cos(w t + phi), w = sqrt(inv_mass)
    w, t = np.sqrt(inv_mass), 200 * 0.05
    exact = q0 * np.cos(w * t) + p0 * inv_mass / w * np.sin(w * t)
    np.testing.assert_allclose(q, exact, atol=2e-2)
    trajectory(-eps)  # integrate back with negative step sizes
    np.testing.assert_allclose(q, q0, atol=1e-10)
    np.testing.assert_allclose(p, p0, atol=1e-10)


def test_scalar_eps_and_dtype_cast_of_small_arrays():
    rng = np.random.default_rng(4)
    q, p, g, inv_mass, _ = make(rng, 5, 3, np.float32, False)
    q_ref, p_ref = q.copy(), p.copy()
    K.kick_drift(q, p, g, inv_mass.astype(np.float64), 0.1, 0.5, 1.0)
    R.kick_drift(q_ref, p_ref, g, inv_mass, np.full(5, 0.1, np.float32), 0.5, 1.0)
    assert q.dtype == np.float32
    close(q, q_ref, np.float32)


def test_sample_momentum_covariance():
    rng = np.random.default_rng(5)
    d = 3
    a = rng.standard_normal((d, d))
    inv_mass = a @ a.T + d * np.eye(d)
    mass = np.linalg.inv(inv_mass)
    p = K.sample_momentum(rng, (200_000, d), K.mass_sqrt_from_inverse(inv_mass))
    assert p.shape == (200_000, d)
    np.testing.assert_allclose(np.cov(p.T), mass, atol=0.01 * np.abs(mass).max())
    diag = np.array([0.5, 2.0, 4.0])
    p = K.sample_momentum(rng, np.empty((100_000, d), np.float32), K.mass_sqrt_from_inverse(diag))
    assert p.dtype == np.float32
    np.testing.assert_allclose(p.var(0), 1 / diag, rtol=0.03)
    p = K.sample_momentum(rng, 50_000)  # identity mass, 1-D shape
    assert p.shape == (50_000,) and abs(p.var() - 1) < 0.03
    # same generator state gives the same draw: randomness comes only from rng
    a1 = K.sample_momentum(np.random.default_rng(7), (4, d), np.ones(d))
    a2 = K.sample_momentum(np.random.default_rng(7), (4, d), np.ones(d))
    np.testing.assert_array_equal(a1, a2)


# ----------------------------------------------------------------- errors
def test_inv_mass_shape_error_names_argument():
    q = np.zeros((4, 31))
    with pytest.raises(ValueError, match=r"inv_mass: expected shape \(31,\) or \(31, 31\), got \(30,\)"):
        K.kick_drift(q, q.copy(), q.copy(), np.ones(30), np.ones(4), 0.5, 1.0)
    with pytest.raises(ValueError, match=r"inv_mass: expected shape .* got \(31, 30\)"):
        K.kinetic_energy(q, np.ones((31, 30)))


@pytest.mark.parametrize("name", ["p", "g"])
def test_batch_shape_errors(name):
    args = {"q": np.zeros((4, 3)), "p": np.zeros((4, 3)), "g": np.zeros((4, 3))}
    args[name] = np.zeros((4, 2))
    with pytest.raises(ValueError, match=rf"{name}: expected shape \(4, 3\) \(as q\), got \(4, 2\)"):
        K.kick_drift(args["q"], args["p"], args["g"], np.ones(3), np.ones(4), 0.5, 1.0)


def test_eps_shape_error():
    q = np.zeros((4, 3))
    with pytest.raises(ValueError, match=r"eps: expected shape \(4,\), got \(3,\)"):
        K.kick(q, q.copy(), np.ones(3), 0.5)


def test_not_2d_error():
    with pytest.raises(ValueError, match=r"q: expected a 2-D \[C, D\] array, got shape \(3,\)"):
        K.kick_drift(np.zeros(3), np.zeros(3), np.zeros(3), np.ones(3), np.ones(1), 0.5, 1.0)
    with pytest.raises(ValueError, match=r"p: expected a 2-D"):
        K.kinetic_energy(np.zeros((2, 3, 1)), np.ones(3))


def test_dtype_errors():
    q = np.zeros((2, 3))
    with pytest.raises(TypeError, match=r"g: expected dtype float64 \(as p\), got float32"):
        K.kick(q, q.astype(np.float32), np.ones(2), 0.5)
    with pytest.raises(TypeError, match=r"q: expected a float32 or float64 array, got dtype int64"):
        K.kick_drift(q.astype(np.int64), q, q, np.ones(3), np.ones(2), 0.5, 1.0)


class _FakeCupy:
    """Stand-in whose type module says "cupy", to hit the module checks without CuPy."""

    __module__ = "cupy._core.core"

    def __init__(self, shape):
        self.shape, self.dtype, self.ndim = shape, np.dtype(np.float64), len(shape)


def test_mixed_array_module_errors():
    q = np.zeros((2, 3))
    with pytest.raises(TypeError, match=r"p: expected a numpy array \(as q\), got cupy"):
        K.kick_drift(q, _FakeCupy((2, 3)), q, np.ones(3), np.ones(2), 0.5, 1.0)
    with pytest.raises(TypeError, match=r"inv_mass: expected a numpy array, got cupy"):
        K.kinetic_energy(q, _FakeCupy((3,)))
    with pytest.raises(TypeError, match=r"eps: expected a numpy array, got cupy"):
        K.kick(q, q, _FakeCupy((2,)), 0.5)


def test_sample_momentum_errors():
    with pytest.raises(TypeError, match="rng: expected a numpy.random.Generator"):
        K.sample_momentum(np.random.RandomState(0), (2, 3), np.ones(3))
    with pytest.raises(ValueError, match=r"mass_sqrt: expected shape \(3,\) or \(3, 3\), got \(2,\)"):
        K.sample_momentum(np.random.default_rng(0), (2, 3), np.ones(2))


def test_mass_sqrt_from_inverse_errors():
    with pytest.raises(ValueError, match="inv_mass: expected positive diagonal entries"):
        K.mass_sqrt_from_inverse(np.array([1.0, 0.0]))
    with pytest.raises(ValueError, match=r"inv_mass: expected shape \(D,\) or \(D, D\), got \(2, 3\)"):
        K.mass_sqrt_from_inverse(np.ones((2, 3)))
