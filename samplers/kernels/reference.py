"""Plain-array reference versions of the leapfrog kernels.

These are the definitions the Numba kernels (:mod:`samplers.kernels.cpu`,
:mod:`samplers.kernels.cuda`) are tested against: short, obviously correct,
written with whole-array NumPy operations (they also run unchanged on CuPy
arrays, since they only use array methods and operators). They allocate
temporaries and are therefore slower; they do not validate their inputs
(:mod:`samplers.kernels` does that once, before dispatching).

Shapes: positions ``q``, momenta ``p`` and gradients ``g`` are ``[C, D]``
(``C`` chains of dimension ``D``); ``inv_mass`` is ``[D]`` (diagonal) or
``[D, D]`` (dense, shared by all chains); ``eps`` is ``[C]``, a signed step
size per chain (0 freezes a chain).

The order of floating-point operations below is the one the Numba kernels
follow, so that both agree to rounding.
"""

__all__ = ["kick_drift", "kick", "kinetic_energy", "velocity"]


def velocity(p, inv_mass):
    """Return ``M^{-1} p`` per chain.

    Parameters
    ----------
    p : array, shape [C, D]
        Momenta.
    inv_mass : array, shape [D] or [D, D]
        Diagonal or dense inverse mass matrix.

    Returns
    -------
    array, shape [C, D]
        ``inv_mass * p`` (diagonal) or ``p @ inv_mass.T`` (dense).
    """
    if inv_mass.ndim == 1:
        return inv_mass * p
    return p @ inv_mass.T


def kick(p, g, eps, coef):
    """In place ``p += coef * eps[:, None] * g``.

    Parameters
    ----------
    p : array, shape [C, D]
        Momenta, updated in place.
    g : array, shape [C, D]
        Gradients of the log density at the current positions.
    eps : array, shape [C]
        Signed per-chain step sizes.
    coef : float
        Integrator coefficient of this momentum half/full step.
    """
    # coef * eps first (a [C] vector), as the kernels do: one rounding fewer
    # per element and the same result bit for bit.
    p += (coef * eps)[:, None] * g


def kick_drift(q, p, g, inv_mass, eps, kick, drift):
    """In place ``p += kick*eps*g`` then ``q += drift*eps*(M^{-1} p)``.

    Parameters
    ----------
    q, p, g : array, shape [C, D]
        Positions and momenta (updated in place) and gradients at ``q``.
    inv_mass : array, shape [D] or [D, D]
        Diagonal or dense inverse mass matrix.
    eps : array, shape [C]
        Signed per-chain step sizes.
    kick, drift : float
        Integrator coefficients of the momentum and position updates.
    """
    p += (kick * eps)[:, None] * g
    q += (drift * eps)[:, None] * velocity(p, inv_mass)


def kinetic_energy(p, inv_mass):
    """Return ``0.5 * p^T M^{-1} p`` per chain.

    Parameters
    ----------
    p : array, shape [C, D]
        Momenta.
    inv_mass : array, shape [D] or [D, D]
        Diagonal or dense inverse mass matrix.

    Returns
    -------
    array, shape [C]
        Kinetic energy of each chain, in the dtype of ``p``.
    """
    return 0.5 * (p * velocity(p, inv_mass)).sum(axis=1)
