"""Warmup strategies: how a kernel's parameters are tuned before sampling.

A strategy is an object with three methods (the ``init / update / final`` triple of
BlackJAX's adaptation algorithms, with the kernel and the states passed in):

``init(kernel, state, rng, n_warmup, params) -> (astate, state)``
    ``params`` are the kernel's starting :class:`~samplers.base.KernelParams`
    (``kernel.params(position)``); ``astate`` is the strategy's own NamedTuple, whose
    ``params`` field holds the parameters of the next transition. The returned state
    may differ from ``state`` (chains restarted from others).
``update(kernel, astate, state, info, rng) -> (astate, state)``
    After each warmup transition ``state, info = kernel.step(state, rng, astate.params)``.
``final(kernel, astate, state) -> KernelParams``
    The parameters used for sampling.

Nothing is mutated: every call returns new states. :func:`run_warmup` is the loop
(:func:`samplers.sample` runs the same one). Strategies are named in the registry
(:mod:`samplers.registry`): ``"stan"`` (windowed, the default for NUTS, HMC, MALA and
RWMH), ``"chees"`` (ChEES-HMC, ``kernel="hmc"``), ``"meads"`` (``kernel="ghmc"``),
``"fisher"`` (nutpie-style mass from draws and gradients) and ``"none"``.
"""
from typing import NamedTuple

from ..base import StatsRecorder, array_module, nonfinite_chains

__all__ = ["Adaptation", "NoAdaptation", "NoAdaptationState", "run_warmup", "step",
           "with_step_size", "kernel_extras"]


def with_step_size(params, eps):
    """``params`` with the step size ``eps`` (a float) for every chain."""
    s = params.step_size
    return params._replace(step_size=array_module(s).full(s.shape, eps, dtype=s.dtype))


def kernel_extras(params, kernel):
    """The kernel-specific fields of ``params`` (``kernel.extra_params``), to keep them
    when the mass is rebuilt with ``kernel.params(position, inverse_mass=..., **extras)``."""
    return {k: getattr(params, k) for k in getattr(kernel, "extra_params", {})}


class Adaptation:
    """Base class of the warmup strategies (subclassing it is optional: any object
    with ``init``, ``update`` and ``final`` of the signatures above works).

    Attributes
    ----------
    default_kernel : str
        The kernel :func:`samplers.sample` uses with this strategy when none is named.
    requires : tuple of str
        :class:`~samplers.base.KernelParams` fields the kernel must read (checked by
        :meth:`check_kernel`).
    """

    default_kernel = "nuts"
    requires = ()

    def check_kernel(self, kernel):
        """Raise a clear error when ``kernel`` cannot run under this strategy."""
        extra = getattr(kernel, "extra_params", {})
        missing = [f for f in self.requires if f not in extra]
        if missing:
            raise ValueError(f"adaptation {type(self).__name__}: the kernel "
                             f"{type(kernel).__name__} has no parameter {missing[0]!r}, which "
                             f"this strategy tunes; use kernel={self.default_kernel!r}")

    def init(self, kernel, state, rng, n_warmup, params):
        raise NotImplementedError

    def update(self, kernel, astate, state, info, rng):
        raise NotImplementedError

    def final(self, kernel, astate, state):
        raise NotImplementedError


class NoAdaptationState(NamedTuple):
    """State of :class:`NoAdaptation`: the fixed parameters."""
    params: object


class NoAdaptation(Adaptation):
    """Keep the kernel's parameters; warmup transitions only move the chains."""

    def init(self, kernel, state, rng, n_warmup, params):
        return NoAdaptationState(params), state

    def update(self, kernel, astate, state, info, rng):
        return astate, state

    def final(self, kernel, astate, state):
        return astate.params


def step(kernel, state, rng, params):
    """``kernel.step(state, rng, params)``, or ``kernel.step(state, rng)`` for kernels
    without parameters (SG-MCMC: their step size is a schedule)."""
    if params is None:
        return kernel.step(state, rng)
    return kernel.step(state, rng, params)


def run_warmup(kernel, adaptation, state, rng, n_warmup, params=None, callback=None,
               resume=None, on_iteration=None, recorder=None):
    """Run ``n_warmup`` transitions under ``adaptation``.

    Parameters
    ----------
    kernel : kernel object
        With ``params``, ``step`` (and ``trial`` for the step-size searches).
    adaptation : Adaptation
    state : NamedTuple
        From ``kernel.init``.
    rng : Generator
    n_warmup : int
    params : KernelParams, optional
        Starting parameters; default ``kernel.params(state.position)`` (None for a
        kernel without ``params``, run under :class:`NoAdaptation`).
    callback : callable, optional
        ``callback(info, step_size [C])`` after every transition (progress bars).
    resume : (int, astate, StatsRecorder), optional
        Continue a warmup stopped after that many transitions (checkpoints): ``init``
        is not called again.
    on_iteration : callable, optional
        ``on_iteration(n_done, state, astate, recorder)`` after every transition, when
        the states are consistent (checkpoints).
    recorder : object, optional
        Where the statistics go: ``record(t, info, step_size, nonfinite)`` and
        ``result()`` (default a :class:`~samplers.base.StatsRecorder` in memory;
        :class:`samplers.store.ZarrStats` streams them to a store).

    Returns
    -------
    state : NamedTuple
        After warmup.
    params : KernelParams
        ``adaptation.final``: the parameters to sample with.
    stats : dict of str to array, shape [C, n_warmup]
        Per-transition statistics (:data:`samplers.base.STAT_KEYS`): ``recorder.result()``.
    """
    if params is None and hasattr(kernel, "params"):
        params = kernel.params(state.position)
    q = state.position
    if resume is None:
        i0 = 0
        rec = StatsRecorder(n_warmup, q.shape[0], array_module(q)) if recorder is None \
            else recorder
        astate, state = adaptation.init(kernel, state, rng, n_warmup, params)
    else:
        i0, astate, rec = resume
    for i in range(i0, n_warmup):
        p = astate.params
        eps = None if p is None else p.step_size
        state, info = step(kernel, state, rng, p)
        rec.record(i, info, eps, nonfinite_chains(state))
        if callback is not None:
            callback(info, eps)
        astate, state = adaptation.update(kernel, astate, state, info, rng)
        if on_iteration is not None:
            on_iteration(i + 1, state, astate, rec)
    return state, adaptation.final(kernel, astate, state), rec.result()
