"""Estimating log marginal likelihoods ``log p(x)`` (``zs.evaluation``).

* :func:`is_loglikelihood` -- importance sampling with a proposal ``q``:
  ``log (1/K) sum_k p(x, z_k) / q(z_k)``, a stochastic lower bound in expectation
  (Jensen), consistent as ``K`` grows (Burda et al. 2016).
* :class:`AIS` -- annealed importance sampling (Neal 2001, "Annealed importance
  sampling"): anneal from the proposal ``q(z)`` (often the prior) to the posterior
  through ``f_t(z) = q(z)^(1 - beta_t) p(x, z)^beta_t`` with HMC transitions, along
  the sigmoidal schedule of Wu, Burda, Salakhutdinov & Grosse 2017 ("On the
  quantitative analysis of decoder-based generative models"). One chain per
  (particle, data point); every chain moves in the same batched HMC call.
"""
from typing import NamedTuple

import numpy as np

import autodiff as ad
from autodiff import backend

from .framework.bn import StochasticTensor
from .framework.meta_bn import MetaBayesianNet
from .variational.base import VariationalObjective, log_mean_exp

__all__ = ["is_loglikelihood", "AIS", "AISResult", "sigmoid_schedule"]


class _ISObjective(VariationalObjective):
    _name = "is_loglikelihood"


def is_loglikelihood(model, observed, proposal=None, axis=0):
    """Importance-sampling estimate of ``log p(x)`` per batch element.

    Parameters
    ----------
    model : MetaBayesianNet or callable
        ``p(x, z)``; a callable gets ``{**observed, **z}`` and returns the log joint.
    observed : dict
        ``name -> value`` of the model's observed nodes.
    proposal : BayesianNet
        ``q(z)``; its unobserved stochastic nodes supply ``K`` samples per batch
        element along ``axis`` (e.g. nodes with ``n_samples=K``).
    axis : int
        The particle axis of the log weights (required).

    Returns
    -------
    autodiff.Tensor
        ``log (1/K) sum_k exp(log p(x, z_k) - log q(z_k))``, the log-weight shape
        with ``axis`` removed.

    Raises
    ------
    ValueError
        Without ``axis``, or on a proposal without latent nodes.
    """
    if axis is None:
        raise ValueError("is_loglikelihood: axis is required: the particle axis of the "
                         "proposal samples")
    obj = _ISObjective(model, observed, proposal, axis)
    return log_mean_exp(obj._log_weights("pathwise"), axis=obj.axis)


def sigmoid_schedule(n_temperatures, delta=4.0):
    """The sigmoidal annealing schedule of Wu et al. 2017 (Grosse's AIS code).

    ``beta_t = (s(t) - s(0)) / (s(T) - s(0))``, ``s(t) = sigmoid(delta (2t/T - 1))``:
    small steps near both ends, where the log weights change fastest.

    Parameters
    ----------
    n_temperatures : int >= 1
        Number of annealing steps ``T``.
    delta : float > 0
        Steepness.

    Returns
    -------
    numpy.ndarray, shape [T + 1]
        ``beta_0 = 0 < beta_1 < ... < beta_T = 1``.
    """
    if int(n_temperatures) != n_temperatures or n_temperatures < 1:
        raise ValueError(f"n_temperatures: expected a positive int, got {n_temperatures!r}")
    if not delta > 0:
        raise ValueError(f"delta: expected a positive float, got {delta!r}")
    s = 1.0 / (1.0 + np.exp(-np.linspace(-delta, delta, int(n_temperatures) + 1)))
    beta = (s - s[0]) / (s[-1] - s[0])
    beta[0], beta[-1] = 0.0, 1.0
    return beta


class AISResult(NamedTuple):
    """What :meth:`AIS.run` returns.

    Attributes
    ----------
    log_marginal : array, shape ``batch``
        ``log (1/K) sum_k w_k`` per batch element: the log-weight shape with the
        particle axis removed (e.g. ``[n_data]``).
    stderr : array, shape ``batch``
        Delta-method standard error of ``log_marginal``:
        ``sd(w) / (sqrt(K) mean(w))`` over the ``K`` particles (NaN when K = 1).
    log_weights : array, shape ``chain_shape``
        The final log AIS weights of every chain (e.g. ``[K, n_data]``).
    samples : dict
        ``name -> array`` of the latents at the end of annealing (approximate
        posterior draws), shape ``chain_shape + event_shape``.
    acceptance : array, shape [n_temperatures]
        Mean HMC acceptance probability over chains at each temperature.
    step_size : float
        The HMC step size used after adaptation.
    """
    log_marginal: object
    stderr: object
    log_weights: object
    samples: dict
    acceptance: object
    step_size: float

    @property
    def total_log_marginal(self):
        """Sum of ``log_marginal`` over the batch (the data set's ``log p(x)`` when
        the data points are independent given their latents)."""
        return float(np.sum(backend.asnumpy(self.log_marginal)))

    @property
    def total_stderr(self):
        """Standard error of :attr:`total_log_marginal` (independent terms)."""
        return float(np.sqrt(np.sum(backend.asnumpy(self.stderr) ** 2)))


_HMC_KEYS = {"step_size", "n_leapfrogs", "inverse_mass", "integrator", "grad_fn",
             "divergence_threshold"}


class AIS:
    """Annealed importance sampling from a proposal to the posterior.

    The intermediate targets are ``log f_t(z) = (1 - beta_t) log q(z) + beta_t
    log p(x, z)``; chain ``c`` starts at ``z_0 ~ q``, gains the log weight increment
    ``log f_t(z_{t-1}) - log f_{t-1}(z_{t-1})`` and then moves by one HMC transition
    leaving ``f_t`` invariant, for ``t = 1..T``. ``E[w] = p(x)`` for every chain, so
    ``log mean_k w_k`` over the ``K`` particles of a data point estimates
    ``log p(x)`` (biased low by Jensen for finite ``K``, like any log of an unbiased
    estimate).

    Parameters
    ----------
    model : MetaBayesianNet or callable
        ``p(x, z)``; a callable gets ``{**observed, **z}`` and returns the log joint.
    proposal : MetaBayesianNet
        Builds ``q(z)``: ``proposal.observe()`` draws the initial latents (with the
        rng its builder gives its BayesianNet: seed it for reproducibility) and
        ``proposal.observe(**z)`` evaluates ``log q(z)``. Its latent nodes must be
        exactly ``latent``.
    hmc_kernel_options : dict
        Options of :class:`samplers.HMC`: ``step_size`` (initial; default 0.1),
        ``n_leapfrogs`` (default 10), ``inverse_mass``, ``integrator``,
        ``divergence_threshold``.
    observed : dict
        The model's observed nodes.
    latent : str or list of str
        The latent names annealed (the proposal's unobserved stochastic nodes).
        Each latent value must have shape ``chain_shape + event_shape``, where
        ``chain_shape`` is the shape of ``log p(x, z)`` (e.g. ``[K, n_data]``): one
        independent chain per element of ``chain_shape``. Latents shared across
        data points (global parameters) are not supported.
    n_temperatures : int
        Number of annealing steps ``T`` (one HMC transition each).
    n_adapt : int
        The HMC step size (shared by all chains) is adapted by dual averaging
        (Hoffman & Gelman 2014) towards ``target_acceptance`` during the first
        ``n_adapt`` temperatures and set to its averaged value at the end of them.
        Afterwards, since the tempered targets narrow as ``beta`` grows, it keeps
        tracking the target as in Wu et al. 2017's AIS code (times 1.02 when the mean
        acceptance is above target, times 0.98 below) unless ``track_step_size`` is
        False (then it stays frozen). The step size depends only on past
        transitions, so each transition still leaves its ``f_t`` invariant.
    axis : int
        The particle axis of ``chain_shape``, reduced in the estimate.
    target_acceptance : float
        0.65 (Neal 2011's optimum for HMC).
    delta : float
        Steepness of :func:`sigmoid_schedule`.
    track_step_size : bool
        Keep adapting the step size after ``n_adapt`` (see above).
    compile : bool
        Compile the tempered log density once for every temperature (beta is an
        input of the program; :func:`autodiff.compile`, default), or replay it
        (:func:`autodiff.trace`, which repeats the tape's arithmetic exactly).

    Examples
    --------
    >>> ais = zs.evaluation.AIS(model, prior, {"step_size": 0.1, "n_leapfrogs": 10},
    ...                         {"x": x}, "z", n_temperatures=1000)    # doctest: +SKIP
    >>> res = ais.run(rng=0)
    >>> res.log_marginal, res.stderr                          # [n_data], [n_data]
    """

    def __init__(self, model, proposal, hmc_kernel_options, observed, latent,
                 n_temperatures=1000, n_adapt=30, axis=0, target_acceptance=0.65,
                 delta=4.0, track_step_size=True, compile=True):
        if not (isinstance(model, MetaBayesianNet) or callable(model)):
            raise TypeError(f"AIS: model must be a zs.MetaBayesianNet or a log-joint function, "
                            f"got {type(model).__name__}")
        if not isinstance(proposal, MetaBayesianNet):
            raise TypeError(f"AIS: proposal must be a zs.MetaBayesianNet (it is sampled once "
                            f"and re-evaluated at every HMC position), got "
                            f"{type(proposal).__name__}")
        opts = dict(hmc_kernel_options or {})
        unknown = sorted(set(opts) - _HMC_KEYS)
        if unknown:
            raise ValueError(f"AIS: unknown hmc_kernel_options {unknown}; expected some of "
                             f"{sorted(_HMC_KEYS)}")
        opts.setdefault("step_size", 0.1)
        opts.setdefault("n_leapfrogs", 10)
        if not (np.ndim(opts["step_size"]) == 0 and float(opts["step_size"]) > 0):
            raise ValueError(f"AIS: hmc_kernel_options['step_size'] must be a positive "
                             f"scalar (adapted for all chains), got {opts['step_size']!r}")
        if observed is None:
            observed = {}
        if not isinstance(observed, dict):
            raise TypeError(f"AIS: observed must be a dict, got {type(observed).__name__}")
        latent = [latent] if isinstance(latent, str) else list(latent)
        if not latent:
            raise ValueError("AIS: latent must name at least one latent node")
        if int(n_adapt) != n_adapt or not 0 <= n_adapt <= n_temperatures:
            raise ValueError(f"AIS: n_adapt must be an int in [0, n_temperatures="
                             f"{n_temperatures}], got {n_adapt!r}")
        if not 0 < target_acceptance < 1:
            raise ValueError(f"AIS: target_acceptance must be in (0, 1), got "
                             f"{target_acceptance!r}")
        self.betas = sigmoid_schedule(n_temperatures, delta)
        self.model, self.proposal, self.observed = model, proposal, dict(observed)
        self.latent = latent
        self.hmc_kernel_options = opts
        self.n_temperatures, self.n_adapt = int(n_temperatures), int(n_adapt)
        self.axis, self.target_acceptance = int(axis), float(target_acceptance)
        self.track_step_size = bool(track_step_size)
        self.compile = bool(compile)

    # ---------------------------------------------------------------- densities
    def _log_q(self, values):
        qbn = self.proposal.observe(**values)
        terms = [qbn[n].cond_log_p for n in self.latent]
        total = terms[0]
        for t in terms[1:]:
            total = total + t
        return total

    def _log_p(self, values):
        values = {**self.observed, **values}
        if isinstance(self.model, MetaBayesianNet):
            return self.model.observe(**values).log_joint()
        return self.model(values)

    def _initial(self):
        """Initial latents from the proposal; checks names and shapes.

        Returns ``(z0: name -> array, chain_shape, event_shapes)``.
        """
        qbn = self.proposal.observe()
        nodes = qbn.nodes
        for n in self.latent:
            if n not in nodes or not isinstance(nodes[n], StochasticTensor) \
                    or nodes[n].is_observed():
                raise ValueError(f"AIS: latent '{n}' is not an unobserved stochastic node of "
                                 f"the proposal (its nodes: {sorted(nodes)})")
        extra = sorted(n for n, node in nodes.items() if isinstance(node, StochasticTensor)
                       and not node.is_observed() and n not in self.latent)
        if extra:
            raise ValueError(f"AIS: the proposal has latent node(s) {extra} not listed in "
                             f"latent={self.latent}; anneal all of them")
        z0 = {n: qbn[n].tensor.data for n in self.latent}
        with ad.no_grad():
            lq = self._log_q(z0)
            lp = self._log_p(z0)
        try:
            chain_shape = tuple(np.broadcast_shapes(lq.shape, lp.shape))
        except ValueError:
            raise ValueError(f"AIS: log q(z) of shape {tuple(lq.shape)} and log p(x, z) of "
                             f"shape {tuple(lp.shape)} do not broadcast") from None
        if not -len(chain_shape) <= self.axis < len(chain_shape):
            raise ValueError(f"AIS: axis={self.axis} is out of range for the chain shape "
                             f"{chain_shape} (the shape of log p(x, z))")
        events = {}
        for n, v in z0.items():
            if tuple(v.shape[:len(chain_shape)]) != chain_shape:
                raise ValueError(f"AIS: latent '{n}' has shape {tuple(v.shape)}, which does "
                                 f"not start with the chain shape {chain_shape} (the shape of "
                                 f"log p(x, z)); every chain needs its own latents")
            events[n] = tuple(v.shape[len(chain_shape):])
        return z0, chain_shape, events

    # ---------------------------------------------------------------- run
    def run(self, rng=None):
        """Anneal every chain; returns an :class:`AISResult`.

        Parameters
        ----------
        rng : int, numpy.random.Generator or cupy Generator
            Drives the HMC momenta and accept decisions (the initial draws come from
            the proposal's own rng).
        """
        import samplers
        from samplers.adaptation import dual_averaging

        if rng is None or isinstance(rng, (int, np.integer)):
            rng = np.random.default_rng(rng)
        z0, chain_shape, events = self._initial()
        n_chains = int(np.prod(chain_shape))
        sizes = [int(np.prod(events[n])) for n in self.latent]
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        xp = backend.get_array_module(next(iter(z0.values())))
        position = xp.concatenate([xp.reshape(z0[n], (n_chains, s))
                                   for n, s in zip(self.latent, sizes)], axis=1)

        def unflatten(pos):
            return {n: ad.reshape(pos[:, offsets[i]:offsets[i + 1]], chain_shape + events[n])
                    for i, n in enumerate(self.latent)}

        def logdensity(pos, beta):
            values = unflatten(pos)
            lq = self._log_q(values)
            lp = self._log_p(values)
            f = lq + beta * (lp - lq)
            if tuple(f.shape) != chain_shape:
                f = ad.broadcast_to(f, chain_shape)
            return ad.reshape(f, (n_chains,))

        # one recorded program for every temperature: beta is a per-call input
        traced = (ad.compile if self.compile else ad.trace)(logdensity, warn=False)

        def tempered(beta):
            return _AtTemperature(traced, xp.asarray(beta, dtype=position.dtype))

        opts = dict(self.hmc_kernel_options)
        step_size = float(opts.pop("step_size"))
        da_init, da_update, da_final = dual_averaging(target=self.target_acceptance)
        da = da_init(step_size)
        betas = self.betas
        state = samplers.HMC(tempered(0.0), step_size, **opts).init(position)
        log_w = xp.zeros(n_chains, dtype=position.dtype)
        acceptance = np.empty(self.n_temperatures)
        for t in range(1, self.n_temperatures + 1):
            kernel = samplers.HMC(tempered(float(betas[t])), step_size, **opts)
            new = kernel.init(state.position)
            log_w = log_w + (new.logdensity - state.logdensity)   # log f_t - log f_{t-1}
            state, info = kernel.step(new, rng)
            acceptance[t - 1] = float(np.mean(np.nan_to_num(
                backend.asnumpy(info.acceptance_rate), nan=0.0)))
            if t <= self.n_adapt:
                da = da_update(da, info.acceptance_rate)
                step_size = da_final(da) if t == self.n_adapt else da.step_size
            elif self.track_step_size:
                step_size *= 1.02 if acceptance[t - 1] > self.target_acceptance else 0.98
        log_w = xp.reshape(log_w, chain_shape)
        log_marginal, stderr = _log_mean_and_stderr(log_w, self.axis)
        pos = state.position
        samples = {n: xp.reshape(pos[:, offsets[i]:offsets[i + 1]], chain_shape + events[n])
                   for i, n in enumerate(self.latent)}
        return AISResult(log_marginal, stderr, log_w, samples, acceptance, step_size)


class _AtTemperature:
    """``pos -> logdensity(pos, beta)`` for the samplers, replayed by the trace."""
    _ad_traced = True

    def __init__(self, traced, beta):
        self.traced, self.beta = traced, beta

    def __call__(self, pos):
        return self.traced(pos, self.beta)

    def value_and_grad(self, pos):
        return self.traced.value_and_grad(pos, self.beta)


def _log_mean_and_stderr(log_w, axis):
    """``log mean(w)`` and its delta-method standard error along ``axis``."""
    xp = backend.get_array_module(log_w)
    k = log_w.shape[axis]
    m = xp.max(log_w, axis=axis, keepdims=True)
    w = xp.exp(log_w - m)
    mean = xp.mean(w, axis=axis)
    log_mean = xp.log(mean) + xp.squeeze(m, axis=axis)
    if k < 2:
        return log_mean, xp.full(log_mean.shape, np.nan)
    stderr = xp.std(w, axis=axis, ddof=1) / (np.sqrt(k) * mean)
    return log_mean, stderr
