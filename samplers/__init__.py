"""samplers: batched MCMC over any log density on a ``[n_chains, dim]`` array.

>>> import samplers                                               # doctest: +SKIP
>>> res = samplers.sample(logdensity, x0, n_samples=1000)         # doctest: +SKIP
>>> res.summary()                                                 # doctest: +SKIP

Kernels are pure steps over NamedTuple states (BlackJAX style), their parameters
passed in (:class:`KernelParams`)::

    k = samplers.NUTS(logdensity, step_size=0.1)
    state = k.init(position)                    # position [n_chains, dim]
    params = k.params(position, step_size=0.2)  # step size per chain, mass, ...
    state, info = k.step(state, rng, params)    # every chain advances together

Warmup strategies (:mod:`samplers.strategies`) tune the parameters:
``sample(..., adaptation="stan" | "fisher" | "chees" | "meads")``; kernels and strategies
are looked up by name in :mod:`samplers.registry`, which code outside the package can
extend. :mod:`samplers.suite` holds eleven posteriordb posteriors to compare them on.

Names are resolved lazily (PEP 562), so ``import samplers`` loads neither
Numba nor autodiff; the first use of a kernel does.
"""
import importlib

__all__ = [
    # kernels and driver
    "HMC", "NUTS", "MALA", "RWMH", "GHMC", "sample", "Result", "DivergenceWarning", "InterruptedWarning",
    "NonFiniteWarning", "KERNELS",
    "ADAPTATIONS", "register_kernel", "register_adaptation",
    # states, infos and parameters
    "HMCState", "RWMHState", "GHMCState", "HMCInfo", "NUTSInfo", "LogDensity", "KernelParams",
    # warmup strategies
    "Adaptation", "StanAdaptation", "FisherAdaptation", "ChEESAdaptation", "MEADSAdaptation",
    "NoAdaptation", "run_warmup",
    # integrators
    "Integrator", "velocity_verlet", "mclachlan", "yoshida", "INTEGRATORS", "integrate",
    # warmup and adaptation
    "window_adaptation", "find_step_size", "dual_averaging", "welford_covariance",
    "find_reasonable_step_size", "window_schedule", "DualAveragingState", "WelfordState",
    # diagnostics
    "ess", "ess_tail", "ess_basic", "rhat", "nested_rhat", "stuck_chains", "mcse", "mcse_sd",
    "summary", "Summary", "StuckChainWarning",
    # leapfrog kernels
    "kick_drift", "kick", "kinetic_energy", "sample_momentum", "mass_sqrt_from_inverse",
    # stochastic-gradient MCMC
    "SGLD", "PSGLD", "SGHMC", "SGNHT", "SGMCMCInfo", "cyclical_step_size",
    "polynomial_decay", "minibatch_grad_estimator", "sample_sgmcmc",
    # submodules
    "sgmcmc", "diagnostics", "kernels", "adaptation", "integrators", "warmup", "base", "driver",
    "strategies", "registry", "suite", "checkpoint", "store", "shards",
]

_SUBMODULES = {"diagnostics", "kernels", "adaptation", "integrators", "warmup", "base",
               "driver", "hmc", "nuts", "mala", "rwmh", "sgmcmc", "ghmc", "strategies",
               "registry", "suite", "checkpoint", "store", "shards"}

_WHERE = {
    "HMC": "hmc", "NUTS": "nuts", "MALA": "mala", "RWMH": "rwmh", "GHMC": "ghmc",
    "GHMCState": "ghmc",
    "sample": "driver", "Result": "driver", "DivergenceWarning": "driver",
    "InterruptedWarning": "driver", "NonFiniteWarning": "driver",
    "KERNELS": "registry", "ADAPTATIONS": "registry", "register_kernel": "registry",
    "register_adaptation": "registry",
    "HMCState": "base", "RWMHState": "base", "HMCInfo": "base", "NUTSInfo": "base",
    "LogDensity": "base", "KernelParams": "base",
    "Adaptation": "strategies", "NoAdaptation": "strategies", "run_warmup": "strategies",
    "StanAdaptation": "strategies.stan", "FisherAdaptation": "strategies.fisher",
    "ChEESAdaptation": "strategies.chees", "MEADSAdaptation": "strategies.meads",
    "Integrator": "integrators", "velocity_verlet": "integrators", "mclachlan": "integrators",
    "yoshida": "integrators", "INTEGRATORS": "integrators", "integrate": "integrators",
    "window_adaptation": "warmup", "find_step_size": "warmup",
    "dual_averaging": "adaptation", "welford_covariance": "adaptation",
    "find_reasonable_step_size": "adaptation", "window_schedule": "adaptation",
    "DualAveragingState": "adaptation", "WelfordState": "adaptation",
    "ess": "diagnostics", "ess_tail": "diagnostics", "ess_basic": "diagnostics",
    "rhat": "diagnostics", "mcse": "diagnostics", "mcse_sd": "diagnostics",
    "nested_rhat": "diagnostics", "stuck_chains": "diagnostics",
    "StuckChainWarning": "warmup",
    "summary": "diagnostics", "Summary": "diagnostics",
    "kick_drift": "kernels", "kick": "kernels", "kinetic_energy": "kernels",
    "sample_momentum": "kernels", "mass_sqrt_from_inverse": "kernels",
    **dict.fromkeys(("SGLD", "PSGLD", "SGHMC", "SGNHT", "SGMCMCInfo",
                     "cyclical_step_size", "polynomial_decay", "minibatch_grad_estimator",
                     "sample_sgmcmc"), "sgmcmc"),
}


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    mod = _WHERE.get(name)
    if mod is None:
        raise AttributeError(f"module 'samplers' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{mod}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
