"""Batched leapfrog kernels: the hot loop of HMC and NUTS.

Every sampler in :mod:`samplers` moves ``C`` chains at once. Positions ``q``,
momenta ``p`` and log-density gradients ``g`` are ``[C, D]`` float arrays
(float32 or float64); the inverse mass matrix ``inv_mass`` is ``[D]``
(diagonal) or ``[D, D]`` (dense, shared by all chains); ``eps`` is a ``[C]``
array of *signed* per-chain step sizes (NUTS integrates some chains forwards
and some backwards, and freezes finished chains with 0).

A generalized leapfrog step (Blanes, Casas & Sanz-Serna 2014; BlackJAX's
``integrators.py``) is a palindromic sequence of kicks and drifts with
coefficients ``(a_1, b_1, a_2, b_2, ...)``. Velocity Verlet, for instance, is::

    kick_drift(q, p, g, inv_mass, eps, 0.5, 1.0)   # half kick, full drift
    g = grad_logdensity(q)
    kick(p, g, eps, 0.5)                            # closing half kick

This module validates shapes and dtypes once and dispatches on the array
module: NumPy arrays go to the Numba CPU kernels (:mod:`.cpu`), CuPy arrays to
the Numba CUDA kernels (:mod:`.cuda`, built lazily, so importing this package
never needs CUDA). :mod:`.reference` holds the plain-array definitions.

Sign convention: ``g`` is the gradient of the *log density*, so ``kick`` adds
``eps * g`` (it is minus the gradient of the potential energy).
"""

import numpy as np

from . import cpu, reference

__all__ = [
    "kick_drift",
    "kick",
    "kinetic_energy",
    "sample_momentum",
    "mass_sqrt_from_inverse",
    "reference",
]


def _is_cupy(x):
    # Checking the type's module avoids importing CuPy (slow, may be absent).
    return type(x).__module__.startswith("cupy")


def _backend(x):
    if _is_cupy(x):
        from . import cuda

        return cuda
    return cpu


# ---------------------------------------------------------------- validation
def _check_batch(name, x, like_name, like):
    """``x`` must be a ``[C, D]`` array of the same shape/dtype/module as ``like``."""
    shape = getattr(x, "shape", None)
    if shape != like.shape:
        raise ValueError(f"{name}: expected shape {like.shape} (as {like_name}), got {shape}")
    if x.dtype != like.dtype:
        raise TypeError(f"{name}: expected dtype {like.dtype} (as {like_name}), got {x.dtype}")
    if _is_cupy(x) != _is_cupy(like):
        raise TypeError(
            f"{name}: expected a {type(like).__module__} array (as {like_name}), "
            f"got {type(x).__module__}.{type(x).__name__}"
        )


def _check_lead(name, x):
    """``x`` must be a 2-D floating ``[C, D]`` array; it sets the shape and dtype."""
    if getattr(x, "ndim", None) != 2:
        raise ValueError(f"{name}: expected a 2-D [C, D] array, got shape {getattr(x, 'shape', type(x))}")
    if x.dtype.kind != "f":
        raise TypeError(f"{name}: expected a float32 or float64 array, got dtype {x.dtype}")


def _inv_mass(inv_mass, like):
    """Validate ``inv_mass`` against ``[C, D]`` ``like``; return it in ``like``'s dtype."""
    d = like.shape[1]
    shape = getattr(inv_mass, "shape", None)
    if shape != (d,) and shape != (d, d):
        raise ValueError(f"inv_mass: expected shape ({d},) or ({d}, {d}), got {shape}")
    if _is_cupy(inv_mass) != _is_cupy(like):
        raise TypeError(f"inv_mass: expected a {type(like).__module__} array, got {type(inv_mass).__module__}")
    # Small ([D] or [D, D]): casting is cheap and keeps the kernel in one dtype.
    return inv_mass.astype(like.dtype, copy=False)


def _eps(eps, like):
    """Validate ``eps`` against ``[C, D]`` ``like``; return a ``[C]`` array in its dtype."""
    c = like.shape[0]
    if isinstance(eps, (int, float)):  # convenience: one step size for all chains
        xp = _array_module(like)
        return xp.full(c, eps, dtype=like.dtype)
    shape = getattr(eps, "shape", None)
    if shape != (c,):
        raise ValueError(f"eps: expected shape ({c},), got {shape}")
    if _is_cupy(eps) != _is_cupy(like):
        raise TypeError(f"eps: expected a {type(like).__module__} array, got {type(eps).__module__}")
    return eps.astype(like.dtype, copy=False)


def _array_module(x):
    if _is_cupy(x):
        import cupy

        return cupy
    return np


# -------------------------------------------------------------------- kernels
def kick_drift(q, p, g, inv_mass, eps, kick, drift):
    """One kick then one drift of a (generalized) leapfrog step, in place.

    ``p += kick * eps[:, None] * g`` then ``q += drift * eps[:, None] * (M^{-1} p)``,
    where ``M^{-1} p`` is ``inv_mass * p`` (diagonal) or ``p @ inv_mass.T`` (dense).

    Parameters
    ----------
    q : array, shape [C, D]
        Positions, updated in place. Its shape, dtype and array module set
        those expected of the other arguments.
    p : array, shape [C, D]
        Momenta, updated in place.
    g : array, shape [C, D]
        Gradient of the log density at ``q`` (before the drift).
    inv_mass : array, shape [D] or [D, D]
        Inverse mass matrix (diagonal or dense), cast to ``q.dtype``.
    eps : array, shape [C], or float
        Signed per-chain step sizes (0 leaves a chain unchanged), cast to
        ``q.dtype``. A Python scalar is broadcast to all chains.
    kick, drift : float
        Integrator coefficients of the momentum and position updates.

    Raises
    ------
    ValueError
        If a shape does not match (the message names the argument, the
        expected and the given shape).
    TypeError
        If dtypes or array modules of ``q``, ``p``, ``g`` differ, or they are
        not floating point.
    """
    _check_lead("q", q)
    _check_batch("p", p, "q", q)
    _check_batch("g", g, "q", q)
    inv_mass = _inv_mass(inv_mass, q)
    eps = _eps(eps, q)
    _backend(q).kick_drift(q, p, g, inv_mass, eps, kick, drift)


def kick(p, g, eps, coef):
    """Momentum update ``p += coef * eps[:, None] * g``, in place.

    Parameters
    ----------
    p : array, shape [C, D]
        Momenta, updated in place.
    g : array, shape [C, D]
        Gradient of the log density at the current positions.
    eps : array, shape [C], or float
        Signed per-chain step sizes, cast to ``p.dtype``.
    coef : float
        Integrator coefficient (0.5 for the closing half kick of leapfrog).

    Raises
    ------
    ValueError, TypeError
        As :func:`kick_drift`.
    """
    _check_lead("p", p)
    _check_batch("g", g, "p", p)
    eps = _eps(eps, p)
    _backend(p).kick(p, g, eps, coef)


def kinetic_energy(p, inv_mass):
    """Kinetic energy ``0.5 * p^T M^{-1} p`` of each chain.

    Parameters
    ----------
    p : array, shape [C, D]
        Momenta.
    inv_mass : array, shape [D] or [D, D]
        Inverse mass matrix, cast to ``p.dtype``.

    Returns
    -------
    array, shape [C]
        In the dtype and array module of ``p``.

    Raises
    ------
    ValueError, TypeError
        As :func:`kick_drift`.
    """
    _check_lead("p", p)
    inv_mass = _inv_mass(inv_mass, p)
    return _backend(p).kinetic_energy(p, inv_mass)


# ------------------------------------------------------------------ momentum
def sample_momentum(rng, shape_or_like, mass_sqrt=None):
    """Draw momenta ``p ~ N(0, M)``.

    Not a kernel: one Gaussian draw and one scale or triangular product, done
    with the array module of the generator.

    Parameters
    ----------
    rng : numpy.random.Generator or cupy.random.Generator
        Source of randomness (explicit; never a global seed).
    shape_or_like : tuple of int, or array
        Output shape ``[C, D]`` (dtype taken from ``mass_sqrt``, float64 when
        that is None), or an array whose shape and dtype are copied.
    mass_sqrt : array, shape [D] or [D, D], optional
        ``sqrt(diag M)`` for a diagonal mass matrix, or a factor ``L`` with
        ``L @ L.T == M`` (e.g. the lower Cholesky factor) for a dense one.
        None means ``M = I``. :func:`mass_sqrt_from_inverse` computes it from
        an inverse mass matrix.

    Returns
    -------
    array, shape ``shape_or_like``
        ``z * mass_sqrt`` (diagonal) or ``z @ mass_sqrt.T`` (dense), with
        ``z`` standard normal.

    Raises
    ------
    TypeError
        If ``rng`` is not a NumPy or CuPy ``Generator``.
    ValueError
        If ``mass_sqrt`` does not match the last dimension of the shape.
    """
    if not (isinstance(rng, np.random.Generator) or _is_cupy(rng)):
        raise TypeError(
            f"rng: expected a numpy.random.Generator or cupy.random.Generator, got {type(rng).__name__}"
        )
    if hasattr(shape_or_like, "shape"):
        shape, dtype = tuple(shape_or_like.shape), shape_or_like.dtype
    else:
        shape = tuple(shape_or_like) if np.ndim(shape_or_like) else (int(shape_or_like),)
        dtype = mass_sqrt.dtype if mass_sqrt is not None else np.float64
    z = rng.standard_normal(size=shape, dtype=dtype)
    if mass_sqrt is None:
        return z
    d = shape[-1]
    if mass_sqrt.shape == (d,):
        return z * mass_sqrt.astype(dtype, copy=False)
    if mass_sqrt.shape == (d, d):
        return z @ mass_sqrt.astype(dtype, copy=False).T
    raise ValueError(f"mass_sqrt: expected shape ({d},) or ({d}, {d}), got {mass_sqrt.shape}")


def mass_sqrt_from_inverse(inv_mass):
    """The ``mass_sqrt`` argument of :func:`sample_momentum` from ``M^{-1}``.

    Parameters
    ----------
    inv_mass : array, shape [D] or [D, D]
        Diagonal (positive entries) or dense (symmetric positive definite)
        inverse mass matrix.

    Returns
    -------
    array, shape [D] or [D, D]
        ``1 / sqrt(inv_mass)`` (diagonal), or the lower Cholesky factor of
        ``inv(inv_mass)`` (dense).

    Raises
    ------
    ValueError
        If ``inv_mass`` is not 1-D or square 2-D, or a diagonal entry is not
        positive. (A dense matrix that is not positive definite raises the
        array module's ``LinAlgError``.)
    """
    xp = _array_module(inv_mass)
    if inv_mass.ndim == 1:
        if not bool((inv_mass > 0).all()):
            raise ValueError("inv_mass: expected positive diagonal entries")
        return 1.0 / xp.sqrt(inv_mass)
    if inv_mass.ndim == 2 and inv_mass.shape[0] == inv_mass.shape[1]:
        return xp.linalg.cholesky(xp.linalg.inv(inv_mass))
    raise ValueError(f"inv_mass: expected shape (D,) or (D, D), got {inv_mass.shape}")
