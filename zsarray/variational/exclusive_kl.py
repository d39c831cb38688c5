"""The evidence lower bound (exclusive KL, ``KL(q || p)``) and its gradient estimators.

``ELBO = E_q[log p(x, z) - log q(z)] = log p(x) - KL(q(z) || p(z | x))``.

Estimators (each returns a scalar autodiff cost to *minimise*):

* :meth:`EvidenceLowerBound.sgvb` -- the pathwise ("reparameterization") estimator
  (Kingma & Welling 2014, "Auto-encoding variational Bayes"), optionally with the
  path derivative only (``path_derivative=True``: Roeder, Wu & Duvenaud 2017,
  "Sticking the landing"), whose variance vanishes as ``q`` approaches the posterior.
* :meth:`EvidenceLowerBound.reinforce` -- the score-function estimator (Williams
  1992) with the variance reduction of NVIL (Mnih & Gregor 2014, "Neural variational
  inference and learning in belief networks"): a moving-average baseline, carried
  across steps in an explicit :class:`ReinforceState`, and an optional
  input-dependent baseline network trained by the returned ``baseline_cost``.

Reduction: the ELBO is averaged over the sample axis ``axis`` (``.tensor``, one value
per batch element); costs are then averaged over every remaining (batch) axis, so
they are scalars. Multiply by the number of data points for the full-data objective
when that matters (e.g. when the prior's weight must not shrink with the batch).
"""
import numpy as np

import autodiff as ad

from .base import VariationalObjective, _raw, _xp

__all__ = ["elbo", "EvidenceLowerBound", "ReinforceState"]


class ReinforceState:
    """The moving-average baseline of :meth:`EvidenceLowerBound.reinforce`.

    Create one before the training loop and pass it to every ``reinforce`` call;
    each call reads the current moving mean (subtracted from this step's learning
    signal) and then updates it in place with this step's mean signal. Nothing else
    holds it: two models trained side by side keep two states.

    Attributes
    ----------
    moving_mean : 0-d array or None
        The exponential moving average of the learning signal; None before the first
        step (no baseline is subtracted then, and the first mean initialises it, so
        the average is not biased towards 0).

    Examples
    --------
    >>> state = zs.variational.ReinforceState()                 # doctest: +SKIP
    >>> for step in range(n_steps):
    ...     cost = zs.variational.elbo(model, obs, variational=q_net(rng)).reinforce(
    ...         state=state)
    """
    __slots__ = ("moving_mean",)

    def __init__(self, moving_mean=None):
        self.moving_mean = moving_mean

    def __repr__(self):
        return f"ReinforceState(moving_mean={self.moving_mean!r})"


class EvidenceLowerBound(VariationalObjective):
    """The ELBO of a model and a variational net over one set of samples.

    Build with :func:`elbo`. Attributes: see
    :class:`~zsarray.variational.base.VariationalObjective`; ``analytic_kl`` (bool).
    """
    _name = "elbo"

    def __init__(self, model, observed, variational, axis=0, analytic_kl=False):
        super().__init__(model, observed, variational, axis)
        self.analytic_kl = bool(analytic_kl)
        if self.analytic_kl:
            self._analytic_parts("pathwise")   # fail at construction, not at first use

    # ---------------------------------------------------------------- terms
    def _analytic_parts(self, mode):
        """``(log p(x | z), sum_i KL(q(z_i) || p(z_i | parents)))``, both broadcast to
        the log-weight shape (sample axis included), for a sample mode (cached)."""
        key = ("analytic", mode)
        if key in self._cache:
            return self._cache[key]
        from .. import distributions as zd
        bn, log_joint, log_q = self._parts(mode)
        if bn is None:
            raise TypeError("elbo(analytic_kl=True): the model must be a MetaBayesianNet (a "
                            "log-joint function has no prior nodes to take a KL against)")
        if getattr(self.model, "log_joint", None) is not None:
            raise ValueError("elbo(analytic_kl=True): the model overrides log_joint, so "
                             "log p(x, z) is not the sum of its nodes' log-probabilities and "
                             "the KL cannot be split off; use analytic_kl=False")
        lik = [node.cond_log_p for name, node in bn.nodes.items()
               if hasattr(node, "cond_log_p") and name not in self.latent]
        kls = [zd.kl_divergence(qnode.dist, bn[name].dist)
               for name, qnode in self.latent.items()]
        shape = np.broadcast_shapes(log_joint.shape, log_q.shape,
                                    *[t.shape for t in lik + kls])
        out = tuple(ad.broadcast_to(_total(ts, log_q), shape) for ts in (lik, kls))
        self._cache[key] = out
        return out

    def _terms(self, mode):
        """Per-sample ELBO terms for a sample mode (before the mean over ``axis``)."""
        if self.analytic_kl:
            log_lik, kl = self._analytic_parts(mode)
            return log_lik - kl
        return self._log_weights(mode)

    @property
    def tensor(self):
        """The ELBO estimate per batch element (mean over ``axis``); an autodiff
        Tensor on the tape through the pathwise samples."""
        return self._sample_mean(self._terms("pathwise"))

    # ---------------------------------------------------------------- estimators
    def sgvb(self, path_derivative=False):
        """Pathwise (SGVB) cost, ``-mean(ELBO)``.

        Parameters
        ----------
        path_derivative : bool
            Drop the score term ``E[grad_phi log q(z)]`` (zero in expectation) by
            evaluating ``log q`` with ``q``'s parameters held constant: the gradient
            reaches them only through the samples (Roeder et al. 2017). The value is
            unchanged. Not combinable with ``analytic_kl``.

        Returns
        -------
        autodiff.Tensor, shape ()
            The cost to minimise: ``-ELBO`` averaged over the sample axis and the
            batch axes.

        Raises
        ------
        ValueError
            If a latent of ``q`` is not reparameterized, or ``path_derivative`` is
            combined with ``analytic_kl``.
        """
        self._require_reparameterized("sgvb")
        if path_derivative:
            if self.analytic_kl:
                raise ValueError("elbo.sgvb: path_derivative=True needs the Monte Carlo "
                                 "log q(z) term, but analytic_kl=True replaced it by a "
                                 "closed-form KL; use one or the other")
            return -ad.mean(self._log_weights("path_derivative"))
        return -ad.mean(self._terms("pathwise"))

    def reinforce(self, variance_reduction=True, baseline=None, decay=0.8, state=None):
        """Score-function (REINFORCE / NVIL) cost.

        The surrogate is ``log p(x, z) + stop(l - b) * log q(z)`` with ``z`` held
        constant and the learning signal ``l = log p(x, z) - log q(z)``; its gradient
        w.r.t. ``q``'s parameters is the unbiased estimate
        ``E_q[(l - b) grad log q(z)]`` of the ELBO gradient, and w.r.t. the model's
        parameters ``E_q[grad log p(x, z)]``. With ``analytic_kl`` the signal is
        ``log p(x | z)`` and ``-KL`` is added in closed form.

        Parameters
        ----------
        variance_reduction : bool
            Centre the signal (NVIL, Mnih & Gregor 2014): subtract ``baseline`` (if
            given) and the moving mean held in ``state``.
        baseline : autodiff.Tensor or None
            An input-dependent baseline ``b(x)`` (e.g. a network's output), shape
            broadcastable to the learning signal (typically the batch shape).
            Requires ``variance_reduction``.
        decay : float in [0, 1)
            Decay of the moving mean: ``m <- decay * m + (1 - decay) * mean(l - b)``.
        state : ReinforceState
            Required when ``variance_reduction``; read, then updated in place.

        Returns
        -------
        cost : autodiff.Tensor, shape ()
            The surrogate cost to minimise (its value is not the ELBO: read that from
            ``.tensor``).
        baseline_cost : autodiff.Tensor, shape ()
            Only when ``baseline`` is given: ``mean(0.5 * (stop(l) - b(x))^2)``, to
            minimise w.r.t. the baseline network's parameters.

        Raises
        ------
        ValueError
            Without ``state`` under ``variance_reduction``, with a ``baseline`` but
            no ``variance_reduction``, a ``decay`` outside [0, 1), or a ``baseline``
            whose shape does not broadcast against the signal.
        TypeError
            If ``state`` is not a :class:`ReinforceState`.
        """
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"elbo.reinforce: decay must be in [0, 1), got {decay!r}")
        if baseline is not None and not variance_reduction:
            raise ValueError("elbo.reinforce: a baseline is a variance-reduction device; "
                             "pass variance_reduction=True with baseline=")
        if variance_reduction:
            if state is None:
                raise ValueError("elbo.reinforce(variance_reduction=True) needs state= "
                                 "(a zs.variational.ReinforceState() created before the "
                                 "training loop and passed at every step; it carries the "
                                 "moving-mean baseline), or variance_reduction=False")
            if not isinstance(state, ReinforceState):
                raise TypeError(f"elbo.reinforce: state must be a ReinforceState, got "
                                f"{type(state).__name__}")
        _, log_joint, log_q = self._parts("score")
        if self.analytic_kl:
            log_lik, kl = self._analytic_parts("score")
            signal_t, reward = log_lik, log_lik - kl
        else:
            signal_t, reward = log_joint - log_q, log_joint
        signal = ad.stop_gradient(signal_t)
        baseline_cost = None
        if variance_reduction:
            if baseline is not None:
                if not isinstance(baseline, ad.Tensor):
                    baseline = ad.tensor(baseline)
                try:
                    np.broadcast_shapes(signal.shape, baseline.shape)
                except ValueError:
                    raise ValueError(f"elbo.reinforce: baseline of shape "
                                     f"{tuple(baseline.shape)} does not broadcast against "
                                     f"the learning signal of shape {tuple(signal.shape)}"
                                     ) from None
                baseline_cost = ad.mean(0.5 * ad.square(signal - baseline))
                signal = signal - ad.stop_gradient(baseline)
            xp = _xp(signal)
            batch_mean = xp.mean(_raw(signal))
            if state.moving_mean is not None:
                signal = signal - state.moving_mean
                state.moving_mean = decay * state.moving_mean + (1.0 - decay) * batch_mean
            else:
                state.moving_mean = batch_mean
        surrogate = reward + ad.stop_gradient(signal) * log_q
        cost = -ad.mean(surrogate)
        if baseline is not None:
            return cost, baseline_cost
        return cost


def _total(terms, like):
    """Sum of Tensors (broadcast); a 0-d zero of ``like``'s dtype when empty."""
    if not terms:
        return ad.tensor(_xp(like).zeros((), dtype=like.dtype))
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total


def elbo(model, observed, variational=None, axis=0, analytic_kl=False):
    """The evidence lower bound ``E_q[log p(x, z) - log q(z)]``.

    Parameters
    ----------
    model : MetaBayesianNet or callable
        ``p(x, z)``; a callable gets ``{**observed, **z}`` and returns the log joint.
    observed : dict
        ``name -> value`` of the model's observed nodes.
    variational : BayesianNet
        ``q(z)``: its unobserved stochastic nodes supply ``z`` (shape
        ``[n_samples] + batch_shape + value_shape``) and ``log q(z)``.
    axis : int or None
        The sample axis of the log weights (``0`` when ``q``'s nodes have
        ``n_samples``); the ELBO is averaged over it. None: no sample axis.
    analytic_kl : bool
        Use ``ELBO = E_q[log p(x | z)] - sum_i KL(q(z_i) || p(z_i | ...))`` with the
        closed forms of ``zs.distributions.kl_divergence`` for every (q node, prior
        node) pair; raises that registry's error when a pair has none. Needs a
        MetaBayesianNet model without a ``log_joint`` override.

    Returns
    -------
    EvidenceLowerBound
        ``.tensor`` (ELBO per batch element), ``.sgvb()``, ``.reinforce()``, ``.bn``.

    Examples
    --------
    >>> q = zs.BayesianNet(rng=rng)                               # doctest: +SKIP
    >>> q.normal("z", mu, std=ad.exp(log_std), group_ndims=1, n_samples=16)
    >>> obj = zs.variational.elbo(model, {"x": x}, variational=q, axis=0)
    >>> cost = obj.sgvb(); cost.backward()
    """
    return EvidenceLowerBound(model, observed, variational, axis, analytic_kl)
