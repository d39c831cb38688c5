"""Symplectic integrators as data, and one batched trajectory function.

An integrator of this family (splitting methods for ``H = U(q) + K(p)``) is
a palindromic list of coefficients ``[b_1, a_1, b_2, a_2, ..., a_s, ..., b_1]``
alternating momentum *kicks* ``p += b eps grad log pi(q)`` and position
*drifts* ``q += a eps M^{-1} p``; ``s`` drifts mean ``s`` gradient
evaluations per step. A palindromic list gives a time-reversible, volume
preserving map, which is what HMC's Metropolis correction needs
(Neal 2011, "MCMC using Hamiltonian dynamics", Handbook of MCMC; Leimkuhler &
Reich 2004, *Simulating Hamiltonian Dynamics*). As in BlackJAX's
``integrators.py`` one function runs any of them.

:func:`integrate` fuses each kick with the following drift
(:func:`samplers.kernels.kick_drift`), and merges the last kick of a step
with the first kick of the next (both use the gradient at the same point),
so ``L`` steps of an ``s``-stage method cost ``L * s`` gradient calls and
``L * s + 1`` kernel calls.
"""
from typing import NamedTuple

import numpy as np

from . import kernels

__all__ = ["Integrator", "velocity_verlet", "mclachlan", "yoshida", "INTEGRATORS",
           "get_integrator", "integrate"]


class Integrator(NamedTuple):
    """A palindromic splitting integrator.

    Attributes
    ----------
    name : str
    coefficients : tuple of float
        ``(b_1, a_1, ..., a_s, ..., b_1)``: kick (even index) and drift (odd
        index) fractions of the step size; kicks sum to 1 and drifts sum to 1.
    order : int
        Order of the global error (energy error per unit time ``O(eps^order)``).
    """
    name: str
    coefficients: tuple
    order: int

    @property
    def n_stages(self):
        """Gradient evaluations per step (number of drifts)."""
        return len(self.coefficients) // 2


#: Leapfrog / Störmer-Verlet: kick half, drift full, kick half.
#: Second order, one gradient per step (Neal 2011, section 2.3).
velocity_verlet = Integrator("velocity_verlet", (0.5, 1.0, 0.5), 2)

# Two-stage minimum-error method: b = 0.1932 minimises the leading error
# term (McLachlan 1995, "On the numerical integration of ordinary
# differential equations by symmetric composition methods", SIAM J. Sci.
# Comput. 16(1); its use in HMC: Blanes, Casas & Sanz-Serna 2014, SIAM J.
# Sci. Comput. 36(4)). Second order, two gradients per step, an error
# constant about ten times smaller than leapfrog at the same cost per
# unit time.
_B = 0.1931833275037836
mclachlan = Integrator("mclachlan", (_B, 0.5, 1.0 - 2.0 * _B, 0.5, _B), 2)
"""McLachlan's two-stage minimum-error integrator: second order, two gradients per step."""

# Yoshida's fourth-order "triple jump": leapfrog steps of sizes
# w1 eps, w0 eps, w1 eps with w1 = 1 / (2 - 2^(1/3)), w0 = 1 - 2 w1
# (Yoshida 1990, "Construction of higher order symplectic integrators",
# Phys. Lett. A 150(5-7)). Written as one splitting: the inner half kicks of
# consecutive leapfrogs merge to (w1 + w0) / 2.
_W1 = 1.0 / (2.0 - 2.0 ** (1.0 / 3.0))
_W0 = 1.0 - 2.0 * _W1
yoshida = Integrator("yoshida", (_W1 / 2, _W1, (_W0 + _W1) / 2, _W0, (_W0 + _W1) / 2,
                                 _W1, _W1 / 2), 4)
"""Yoshida's fourth-order triple jump: three leapfrog steps, three gradients per step."""

INTEGRATORS = {i.name: i for i in (velocity_verlet, mclachlan, yoshida)}
"""Integrator name -> :class:`Integrator`, for ``integrator="..."`` arguments."""


def get_integrator(integrator):
    """An :class:`Integrator` from its name or itself; unknown names list the valid ones."""
    if isinstance(integrator, Integrator):
        return integrator
    try:
        return INTEGRATORS[integrator]
    except (KeyError, TypeError):
        raise ValueError(f"integrator: unknown integrator {integrator!r}; valid names: "
                         f"{sorted(INTEGRATORS)}") from None


def _schedule(coefficients, n_steps):
    """``(kick, drift)`` pairs for ``n_steps`` steps, and the final kick."""
    b, a = coefficients[0::2], coefficients[1::2]
    pairs = []
    for step in range(n_steps):
        for s in range(len(a)):
            k = b[s] + (b[-1] if (s == 0 and step > 0) else 0.0)
            pairs.append((k, a[s]))
    return tuple(pairs), b[-1]


_SCHEDULES = {}


def integrate(q, p, g, logp, value_and_grad, inv_mass, eps, n_steps,
              integrator=velocity_verlet, final_kick=True):
    """Run ``n_steps`` integrator steps for every chain at once.

    ``q`` and ``p`` are updated in place (pass copies to keep the start).

    Parameters
    ----------
    q, p : array, shape [C, D]
        Positions and momenta; updated in place.
    g : array, shape [C, D]
        Gradient of the log density at ``q``.
    logp : array, shape [C]
        Log density at ``q`` (returned unchanged when ``n_steps == 0``).
    value_and_grad : callable
        ``q [C, D] -> (logp [C], grad [C, D])``, one batched call
        (:class:`samplers.base.LogDensity`).
    inv_mass : array, shape [D] or [D, D]
        Inverse mass matrix.
    eps : array, shape [C]
        Signed per-chain step sizes (0 freezes a chain).
    n_steps : int
        Number of integrator steps.
    integrator : Integrator
        Coefficients (:data:`velocity_verlet`, :data:`mclachlan`, :data:`yoshida`).
    final_kick : bool
        Apply the last momentum half-kick (False: the caller applies
        ``p += integrator.coefficients[-1] * eps * g`` itself, as NUTS's Numba leaf
        bookkeeping does to save a kernel call per leapfrog).

    Returns
    -------
    q, p : array, shape [C, D]
        The same arrays, moved.
    g : array, shape [C, D]
        Gradient at the final position.
    logp : array, shape [C]
        Log density at the final position.
    """
    key = (integrator.coefficients, n_steps)
    sched = _SCHEDULES.get(key)
    if sched is None:
        sched = _SCHEDULES[key] = _schedule(integrator.coefficients, n_steps)
    pairs, last = sched
    # NumPy arrays go straight to the Numba CPU kernels: the samplers validate
    # shapes and cast inv_mass / eps to q's dtype once per transition, so the
    # per-call checks of samplers.kernels would only add overhead per step.
    backend = kernels.cpu if type(q) is np.ndarray else kernels
    kick_drift = backend.kick_drift
    for k, a in pairs:
        kick_drift(q, p, g, inv_mass, eps, k, a)
        logp, g = value_and_grad(q)
    if pairs and final_kick:
        backend.kick(p, g, eps, last)
    return q, p, g, logp
