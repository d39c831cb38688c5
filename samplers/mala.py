"""Metropolis-adjusted Langevin algorithm (MALA), batched over chains.

MALA proposes ``q' = q + (eps^2 / 2) M^{-1} grad log pi(q) + eps M^{-1/2} z``
with ``z ~ N(0, I)`` and applies the Metropolis-Hastings correction with the
Gaussian proposal densities (Roberts & Tweedie 1996, "Exponential convergence
of Langevin distributions and their discrete approximations", Bernoulli
2(4)). This is exactly one leapfrog step of HMC with momentum ``p = M^{1/2}
z``: the proposal is the leapfrog drift, and the Hastings ratio equals
``exp(H_0 - H_1)`` (Neal 2011, "MCMC using Hamiltonian dynamics", section
5.2), so MALA is implemented as a one-step HMC transition. The test suite
checks the acceptance probability against the explicit Gaussian-proposal
formula.
"""
from .hmc import DIVERGENCE_THRESHOLD, GradientKernel, metropolis_hmc_step

__all__ = ["MALA"]


class MALA(GradientKernel):
    """Metropolis-adjusted Langevin kernel.

    Parameters
    ----------
    logdensity : callable
        ``logdensity(position [C, D]) -> [C]``.
    step_size : float or array, shape [C]
        ``eps``: the proposal has mean ``q + eps^2/2 M^{-1} grad`` and
        covariance ``eps^2 M^{-1}``.
    inverse_mass : None or array, shape [D] or [D, D]
        Preconditioner ``M^{-1}`` (identity when None).
    grad_fn : callable, optional
        ``grad_fn(position [C, D]) -> [C, D]`` instead of autodiff.
    divergence_threshold : float
        Energy error marking a divergence (1000).
    compile : bool
        Compile the log density (:func:`autodiff.compile`, the default); False runs it
        on the tape.
    """

    #: Roberts & Rosenthal (1998): 0.574 is optimal in high dimension.
    target_accept = 0.574

    def __init__(self, logdensity, step_size, inverse_mass=None, *, grad_fn=None,
                 divergence_threshold=DIVERGENCE_THRESHOLD, compile=True):
        super().__init__(logdensity, step_size, inverse_mass, "velocity_verlet",
                         grad_fn=grad_fn, divergence_threshold=divergence_threshold,
                         compile=compile)

    def step(self, state, rng, params=None):
        """One MALA transition of every chain.

        Parameters
        ----------
        state : HMCState
        rng : numpy.random.Generator or cupy.random.Generator
        params : KernelParams, optional
            Default ``self.params(state.position)``.

        Returns
        -------
        HMCState, HMCInfo
            ``info.n_grad_evals`` is 1 per chain.
        """
        return metropolis_hmc_step(self, state, rng, 1, params=params)
