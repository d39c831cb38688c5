"""The machinery shared by the variational objectives.

A variational objective pairs a model ``p(x, z)`` with a variational net ``q(z)``:
the unobserved stochastic nodes of ``q`` supply the latent samples ``z`` and their
log-densities ``log q(z)``; the model is evaluated with ``observed`` and those samples
observed, giving ``log p(x, z)``. Everything downstream -- ELBO, importance-weighted
bounds, inclusive KL -- is a function of the log weights ``log p(x, z) - log q(z)``.

Unlike ZhuSuan's ``VariationalObjective`` (a ``tf.Tensor`` subclass whose TensorFlow
variables held estimator state, STYLE.md anti-pattern A), an objective here is a plain
object over one set of samples: build a fresh one at every optimisation step (after
drawing fresh samples from ``q``), and pass any state across steps explicitly (see
:class:`zsarray.variational.ReinforceState`).

Sample modes
------------
The estimators need the log weights in three flavours, computed lazily and cached
per objective:

``"pathwise"``
    ``z`` as sampled (reparameterized samples carry gradients to ``q``'s
    parameters), ``log q(z)`` the node's ``cond_log_p``. Used by ``.tensor``,
    ``sgvb`` and ``.bn``.
``"path_derivative"``
    As ``"pathwise"`` but ``log q(z)`` evaluated with ``q``'s parameters held
    constant (Roeder, Wu & Duvenaud 2017, "Sticking the landing").
``"score"``
    ``z`` detached (``stop_gradient``), ``log q(z)`` re-evaluated at the detached
    value, so gradients reach ``q``'s parameters only through ``log q`` (score
    function estimators: REINFORCE, VIMCO, importance-weighted klpq).
"""
import copy

import math

import numpy as np

import autodiff as ad
from autodiff import backend

from ..framework.bn import BayesianNet, StochasticTensor
from ..framework.meta_bn import MetaBayesianNet

__all__ = ["VariationalObjective", "log_mean_exp", "latent_nodes"]

_MODES = ("pathwise", "path_derivative", "score")


def log_mean_exp(x, axis=None, keepdims=False):
    """``log(mean(exp(x), axis))``, computed stably (differentiable).

    Parameters
    ----------
    x : autodiff.Tensor or array
    axis : int or None
    keepdims : bool

    Returns
    -------
    autodiff.Tensor
    """
    n = np.prod(x.shape) if axis is None else x.shape[axis]
    return ad.logsumexp(x, axis=axis, keepdims=keepdims) - math.log(n)


def latent_nodes(variational, who):
    """The unobserved stochastic nodes of a variational net, in creation order.

    Parameters
    ----------
    variational : BayesianNet
    who : str
        The caller's name, for error messages.

    Returns
    -------
    dict
        ``name -> StochasticTensor``.

    Raises
    ------
    TypeError
        If ``variational`` is not a BayesianNet.
    ValueError
        If it has no unobserved stochastic node.
    """
    if not isinstance(variational, BayesianNet):
        raise TypeError(f"{who}: variational must be a zs.BayesianNet whose unobserved "
                        f"stochastic nodes are the latent variables, got "
                        f"{type(variational).__name__}")
    latents = {name: node for name, node in variational.nodes.items()
               if isinstance(node, StochasticTensor) and not node.is_observed()}
    if not latents:
        raise ValueError(f"{who}: the variational net has no latent (unobserved stochastic) "
                         f"node; its nodes are {sorted(variational.nodes)}")
    return latents


def _stopped_log_prob(dist, given):
    """``dist.log_prob(given)`` with the parameters held constant (path derivative).

    A shallow copy of the distribution with ``use_path_derivative`` switched on, so
    the user's distribution object is left untouched; the copy's cached
    (sample, log_prob) pair from a fused sampler is dropped, since that log-prob was
    computed with live parameters.
    """
    if dist.use_path_derivative:
        return dist.log_prob(given)
    d = copy.copy(dist)
    d.use_path_derivative = True
    if hasattr(d, "_cache"):
        d._cache = None
    return d.log_prob(given)


def _live_log_prob(dist, given):
    """``dist.log_prob(given)`` with gradients to the parameters even when the user
    built ``dist`` with ``use_path_derivative=True`` (score-function estimators need
    ``grad log q``)."""
    if not dist.use_path_derivative:
        return dist.log_prob(given)
    d = copy.copy(dist)
    d.use_path_derivative = False
    if hasattr(d, "_cache"):
        d._cache = None
    return d.log_prob(given)


class VariationalObjective:
    """Log weights ``log p(x, z) - log q(z)`` of a model and a variational net.

    Parameters
    ----------
    model : MetaBayesianNet or callable
        The generative model. A :class:`~zsarray.MetaBayesianNet` is observed at
        ``{**observed, **z}``; a callable is called as ``model(values)`` with that
        dict (``name -> Tensor``) and must return ``log p(x, z)`` (ZhuSuan's
        "log joint function" convention).
    observed : dict or None
        ``name -> array or Tensor``: the observed nodes of the model.
    variational : BayesianNet
        Its unobserved stochastic nodes supply the samples ``z`` and ``log q(z)``.
        Their value shapes must broadcast with the model's nodes of the same name.
    axis : int or None
        The sample (particle) axis of the log weights, averaged over or reduced by
        the objective; None when there is none (one sample per batch element).

    Attributes
    ----------
    latent : dict
        ``name -> StochasticTensor`` of ``q``'s latent nodes.
    observed : dict
    axis : int or None

    Raises
    ------
    TypeError
        On a model that is neither a MetaBayesianNet nor callable, a variational that
        is not a BayesianNet, or observations that are not a dict.
    ValueError
        On a variational net without latent nodes, or a name both observed and latent.
    """
    _name = "variational objective"

    def __init__(self, model, observed, variational, axis=0):
        who = self._name
        if not (isinstance(model, MetaBayesianNet) or callable(model)):
            raise TypeError(f"{who}: model must be a zs.MetaBayesianNet or a log-joint "
                            f"function model(values: dict) -> Tensor, got "
                            f"{type(model).__name__}")
        if observed is None:
            observed = {}
        if not isinstance(observed, dict):
            raise TypeError(f"{who}: observed must be a dict name -> value, got "
                            f"{type(observed).__name__}")
        if variational is None:
            raise TypeError(f"{who}: variational= is required (a zs.BayesianNet q(z))")
        self.latent = latent_nodes(variational, who)
        both = sorted(set(observed) & set(self.latent))
        if both:
            raise ValueError(f"{who}: node(s) {both} are both observed and latent in the "
                             f"variational net")
        if axis is not None and (not isinstance(axis, (int, np.integer))
                                 or isinstance(axis, bool)):
            raise TypeError(f"{who}: axis must be an int or None, got {axis!r}")
        self.model = model
        self.observed = dict(observed)
        self.axis = None if axis is None else int(axis)
        self._cache = {}

    # ---------------------------------------------------------------- log weights
    def _samples(self, mode):
        if mode == "score":
            return {n: ad.stop_gradient(node.tensor) for n, node in self.latent.items()}
        return {n: node.tensor for n, node in self.latent.items()}

    def _log_q(self, mode, samples):
        terms = []
        for name, node in self.latent.items():
            if mode == "pathwise":
                terms.append(node.cond_log_p)
            elif mode == "path_derivative":
                terms.append(_stopped_log_prob(node.dist, node.tensor))
            else:
                terms.append(_live_log_prob(node.dist, samples[name]))
        return _sum_terms(terms, "log q(z)", list(self.latent), self._name)

    def _model_net(self, samples):
        """The model net (or None for a function model) and ``log p(x, z)``."""
        values = {**self.observed, **samples}
        if not isinstance(self.model, MetaBayesianNet):
            return None, self.model(values)
        try:
            bn = self.model.observe(**values)
        except ValueError as err:
            raise ValueError(f"{self._name}: cannot observe the model at the observations "
                             f"{sorted(self.observed)} and the variational latents "
                             f"{sorted(self.latent)}: {err}") from err
        missing = [n for n, node in bn.nodes.items()
                   if isinstance(node, StochasticTensor) and not node.is_observed()]
        if missing:
            raise ValueError(f"{self._name}: model node(s) {missing} are neither observed "
                             f"nor latent in the variational net; give q a node for each "
                             f"latent of the model (q's latents: {sorted(self.latent)})")
        return bn, bn.log_joint()

    def _parts(self, mode):
        """``(bn, log_joint, log_q)`` for a sample mode (cached)."""
        hit = self._cache.get(mode)
        if hit is not None:
            return hit
        samples = self._samples(mode)
        if mode == "path_derivative" and "pathwise" in self._cache:
            bn, log_joint = self._cache["pathwise"][:2]   # same samples, same model net
        else:
            bn, log_joint = self._model_net(samples)
        log_joint = _as_tensor(log_joint)
        log_q = self._log_q(mode, samples)
        _check_broadcast(log_joint, log_q, self._name)
        self._check_axis(np.broadcast_shapes(log_joint.shape, log_q.shape))
        out = (bn, log_joint, log_q)
        self._cache[mode] = out
        return out

    def _log_weights(self, mode):
        _, log_joint, log_q = self._parts(mode)
        return log_joint - log_q

    def _check_axis(self, shape):
        if self.axis is not None and not -len(shape) <= self.axis < len(shape):
            raise ValueError(f"{self._name}: axis={self.axis} is out of range for log "
                             f"weights of shape {tuple(shape)} (log p(x, z) - log q(z))")

    def _sample_mean(self, x):
        return x if self.axis is None else ad.mean(x, axis=self.axis)

    def _require_reparameterized(self, method):
        bad = [n for n, node in self.latent.items() if not node.dist.is_reparameterized]
        if bad:
            raise ValueError(f"{self._name}.{method}: latent node(s) {bad} are not "
                             f"reparameterized (discrete, or is_reparameterized=False), so "
                             f"no pathwise gradient exists; use a score-function estimator "
                             f"(reinforce / vimco) instead")

    @property
    def bn(self):
        """The model's BayesianNet observed at ``{**observed, **z}`` (the pathwise
        samples), e.g. for predictions; None when the model is a function."""
        return self._parts("pathwise")[0]


def _as_tensor(x):
    return x if isinstance(x, ad.Tensor) else ad.tensor(x)


def _sum_terms(terms, what, names, who):
    total = terms[0]
    for name, t in zip(names[1:], terms[1:]):
        a, b = tuple(total.shape), tuple(t.shape)
        try:
            np.broadcast_shapes(a, b)
            ok = len(a) == len(b) or not a or not b      # same axes (see _check_broadcast)
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"{who}: the {what} terms do not have the same axes: node "
                             f"'{name}' gives shape {b}, the previous nodes {a} (a node "
                             f"missing group_ndims= keeps its value axes)") from None
        total = total + t
    return total


def _check_broadcast(log_joint, log_q, who):
    """log p(x, z) and log q(z) must have the same axes: the sample axis first, then the
    batch axes. With different numbers of axes NumPy would align them on the right and
    pair, e.g., the K samples of a [K] term with the D dimensions of a [K, D] term
    whenever K == D (a variational node missing ``group_ndims``)."""
    lp, lq = tuple(log_joint.shape), tuple(log_q.shape)
    try:
        np.broadcast_shapes(lp, lq)
        ok = len(lp) == len(lq) or not lp or not lq
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"{who}: log p(x, z) of shape {lp} and log q(z) of shape {lq} do "
                         f"not have the same axes; the sample axis and batch axes of model "
                         f"and variational must agree (a node missing group_ndims= keeps "
                         f"its value axes in its log-probability: give group_ndims to the "
                         f"nodes whose last axes are one multivariate value)") from None


def _raw(x):
    """The raw array of a Tensor (detached), for control variates and weights."""
    return x.data if isinstance(x, ad.Tensor) else x


def _xp(x):
    return backend.get_array_module(_raw(x))
