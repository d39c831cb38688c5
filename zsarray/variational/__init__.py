"""Variational objectives and their gradient estimators (``zs.variational``).

Each objective takes ``(model, observed, variational=q_net, axis=...)``: ``model`` is a
:class:`~zsarray.MetaBayesianNet` (or a log-joint function of a dict of values),
``q_net`` a :class:`~zsarray.BayesianNet` whose unobserved stochastic nodes supply the
latent samples and ``log q``. Build a fresh objective at every step, from fresh
samples; costs are scalar autodiff Tensors to minimise.

=========================  ===============================================
``elbo(...)``              ``.tensor``, ``.sgvb(path_derivative=False)``,
                           ``.reinforce(..., state=ReinforceState())``
``iw_objective(...)``      ``.tensor``, ``.sgvb()``, ``.vimco()``
``klpq(...)``              ``.importance()``
=========================  ===============================================
"""
from .base import VariationalObjective, log_mean_exp
from .exclusive_kl import elbo, EvidenceLowerBound, ReinforceState
from .monte_carlo import iw_objective, ImportanceWeightedObjective
from .inclusive_kl import klpq, InclusiveKLObjective

__all__ = ["elbo", "iw_objective", "klpq", "ReinforceState", "VariationalObjective",
           "EvidenceLowerBound", "ImportanceWeightedObjective", "InclusiveKLObjective",
           "log_mean_exp"]
