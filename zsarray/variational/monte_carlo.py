"""The importance-weighted bound (IWAE) and its gradient estimators.

With ``K`` samples ``z_1..z_K ~ q`` along the particle axis and log weights
``log w_k = log p(x, z_k) - log q(z_k)``,

``L_K = E[log (1/K) sum_k w_k]  <=  log p(x)``,

non-decreasing in ``K`` (Burda, Grosse & Salakhutdinov 2016, "Importance weighted
autoencoders"); ``L_1`` is the ELBO.

* :meth:`ImportanceWeightedObjective.sgvb` -- the pathwise gradient (IWAE).
* :meth:`ImportanceWeightedObjective.vimco` -- the score-function estimator with
  per-sample leave-one-out control variates (Mnih & Rezende 2016, "Variational
  inference for Monte Carlo objectives"), for discrete latents.

Reduction: ``.tensor`` is ``L_K`` per batch element (the particle axis reduced);
costs are ``-L_K`` averaged over the remaining (batch) axes, scalars.
"""
import math

import autodiff as ad

from .base import VariationalObjective, log_mean_exp, _raw, _xp

__all__ = ["iw_objective", "ImportanceWeightedObjective"]


class ImportanceWeightedObjective(VariationalObjective):
    """The importance-weighted bound over one set of ``K`` samples per batch element.

    Build with :func:`iw_objective`.
    """
    _name = "iw_objective"

    def __init__(self, model, observed, variational, axis=None):
        if axis is None:
            raise ValueError("iw_objective: axis is required: the particle axis of the "
                             "variational samples along which the importance weights are "
                             "averaged (usually 0, with n_samples=K in q's nodes)")
        super().__init__(model, observed, variational, axis)

    def _n_particles(self, log_w):
        return log_w.shape[self.axis]

    @property
    def tensor(self):
        """``log (1/K) sum_k w_k`` per batch element (an autodiff Tensor on the tape
        through the pathwise samples)."""
        return log_mean_exp(self._log_weights("pathwise"), axis=self.axis)

    def sgvb(self):
        """Pathwise (IWAE) cost ``-mean(L_K)``.

        Returns
        -------
        autodiff.Tensor, shape ()

        Raises
        ------
        ValueError
            If a latent of ``q`` is not reparameterized.
        """
        self._require_reparameterized("sgvb")
        return -ad.mean(self.tensor)

    def vimco(self):
        """VIMCO cost (Mnih & Rezende 2016): score-function gradients with
        leave-one-out control variates.

        For sample ``j`` the learning signal is ``L_K - L_K^{-j}``, where
        ``L_K^{-j}`` replaces ``w_j`` by the geometric mean of the other ``K - 1``
        weights:

        ``L_K^{-j} = log (1/K) (sum_{i != j} w_i + exp(mean_{i != j} log w_i))``.

        The surrogate ``L_K + sum_j stop(L_K - L_K^{-j}) log q(z_j)``, with every
        ``z_j`` held constant, has the gradient of Mnih & Rezende's eq. (10) w.r.t.
        ``q``'s parameters and ``sum_j w~_j grad log p(x, z_j)`` w.r.t. the model's.

        Returns
        -------
        autodiff.Tensor, shape ()
            The surrogate cost to minimise (its value is ``-mean(L_K)`` plus a term
            whose gradient is the score part; read the bound from ``.tensor``).

        Raises
        ------
        ValueError
            If there are fewer than 2 particles (the leave-one-out baseline needs
            K >= 2).
        """
        _, log_joint, log_q = self._parts("score")
        log_w = log_joint - log_q
        k = self._n_particles(log_w)
        if k < 2:
            raise ValueError(f"iw_objective.vimco: needs K >= 2 particles along axis "
                             f"{self.axis} for the leave-one-out control variates, got "
                             f"K = {k}")
        bound = log_mean_exp(log_w, axis=self.axis)
        signal = _vimco_signal(_raw(log_w), self.axis)
        lq = log_q if tuple(log_q.shape) == tuple(log_w.shape) \
            else ad.broadcast_to(log_q, log_w.shape)
        score = ad.sum(ad.stop_gradient(signal) * lq, axis=self.axis)
        return -ad.mean(bound + score)


def _vimco_signal(log_w, axis):
    """``L_K - L_K^{-j}`` for every ``j`` (raw arrays; shape of ``log_w``)."""
    xp = _xp(log_w)
    lw = xp.moveaxis(log_w, axis, 0)                       # [K, ...]
    k = lw.shape[0]
    l_k = _lse(lw, 0) - math.log(k)                        # [...]
    geo = (xp.sum(lw, axis=0) - lw) / (k - 1)              # log geometric mean of others, [K, ...]
    rows = xp.broadcast_to(lw[None], (k,) + lw.shape).copy()   # [j, i, ...]
    idx = xp.arange(k)
    rows[idx, idx] = geo
    l_minus = _lse(rows, 1) - math.log(k)                  # [K, ...]
    return xp.moveaxis(l_k[None] - l_minus, 0, axis)


def _lse(x, axis):
    xp = _xp(x)
    m = xp.max(x, axis=axis, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0)
    return xp.squeeze(xp.log(xp.sum(xp.exp(x - m), axis=axis, keepdims=True)) + m, axis=axis)


def iw_objective(model, observed, variational=None, axis=None):
    """The importance-weighted bound ``E[log (1/K) sum_k p(x, z_k) / q(z_k)]``.

    Parameters
    ----------
    model : MetaBayesianNet or callable
        ``p(x, z)``; a callable gets ``{**observed, **z}`` and returns the log joint.
    observed : dict
        ``name -> value`` of the model's observed nodes.
    variational : BayesianNet
        ``q(z)`` with ``K`` samples per batch element along ``axis`` (e.g. nodes
        with ``n_samples=K`` and ``axis=0``).
    axis : int
        Required: the particle axis of the log weights.

    Returns
    -------
    ImportanceWeightedObjective
        ``.tensor`` (``L_K`` per batch element), ``.sgvb()``, ``.vimco()``, ``.bn``.

    Raises
    ------
    ValueError
        Without ``axis``.
    """
    return ImportanceWeightedObjective(model, observed, variational, axis)
