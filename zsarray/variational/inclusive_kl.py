"""The inclusive KL divergence ``KL(p(z | x) || q(z))`` and its importance estimator.

``grad_phi KL(p || q) = -E_{p(z | x)}[grad_phi log q(z)]``, estimated with
self-normalized importance weights ``w~_k ∝ p(x, z_k) / q(z_k)`` over ``K`` samples
``z_k ~ q``: ``-sum_k w~_k grad_phi log q(z_k)``. This is the wake-phase update of the
proposal in reweighted wake-sleep (Bornschein & Bengio 2015, "Reweighted wake-sleep");
it works for discrete latents too. The estimate is biased for finite ``K`` (the
normalisation), consistent as ``K`` grows.

Reduction: the weighted sum runs over the particle axis; the cost is averaged over the
remaining (batch) axes, a scalar.
"""
import autodiff as ad

from .base import VariationalObjective, _raw, _xp

__all__ = ["klpq", "InclusiveKLObjective"]


class InclusiveKLObjective(VariationalObjective):
    """``KL(p || q)`` over one set of ``K`` samples per batch element.

    Build with :func:`klpq`.
    """
    _name = "klpq"

    def __init__(self, model, observed, variational, axis=None):
        if axis is None:
            raise ValueError("klpq: axis is required: the particle axis of the variational "
                             "samples over which the importance weights are normalised")
        super().__init__(model, observed, variational, axis)

    def importance(self):
        """Self-normalized importance-sampling cost for ``q``'s parameters.

        ``-sum_k stop(w~_k) log q(z_k)`` with ``z_k`` held constant, averaged over the
        batch axes. Only ``q``'s parameters get gradients (the model enters through
        the constant weights); train the model with ``iw_objective(...).sgvb()`` or
        ``.vimco()``, as RWS does.

        Returns
        -------
        autodiff.Tensor, shape ()
        """
        _, log_joint, log_q = self._parts("score")
        log_w = _raw(log_joint - log_q)
        xp = _xp(log_w)
        m = xp.max(log_w, axis=self.axis, keepdims=True)
        w = xp.exp(log_w - m)
        w = w / xp.sum(w, axis=self.axis, keepdims=True)
        lq = log_q if tuple(log_q.shape) == tuple(log_w.shape) \
            else ad.broadcast_to(log_q, log_w.shape)
        return -ad.mean(ad.sum(w * lq, axis=self.axis))


def klpq(model, observed, variational=None, axis=None):
    """The inclusive KL objective ``KL(p(z | x) || q(z))``.

    Parameters
    ----------
    model : MetaBayesianNet or callable
        ``p(x, z)`` (known up to a constant); a callable gets ``{**observed, **z}``
        and returns the log joint.
    observed : dict
    variational : BayesianNet
        The proposal ``q(z)`` with ``K`` samples along ``axis``.
    axis : int
        Required: the particle axis.

    Returns
    -------
    InclusiveKLObjective
        ``.importance()``, ``.bn``.
    """
    return InclusiveKLObjective(model, observed, variational, axis)
