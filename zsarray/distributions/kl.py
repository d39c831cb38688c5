"""Closed-form KL divergences ``KL(p || q)`` and their registry.

``register_kl(P, Q)`` registers a function ``f(p, q) -> Tensor`` of the *elementwise*
KL (shape: the broadcast batch shape); :func:`kl_divergence` finds the most specific
registered pair along both classes' MROs (as ``torch.distributions.kl``), evaluates it,
and sums the last ``group_ndims`` batch axes (p and q must agree on ``group_ndims``).
Formulas are written with autodiff ops, so they are differentiable in both parameter
sets.
"""
import math

import autodiff as ad

from .multivariate import (Dirichlet, MultivariateNormalCholesky, OnehotCategorical,
                           _log_diag, _tril_solve)
from .numerics import lbeta as _lbeta, xmul_log
from .univariate import (Bernoulli, Beta, Categorical, Exponential, Gamma, Laplace, Normal,
                         Uniform)

__all__ = ["kl_divergence", "register_kl", "KL_REGISTRY"]

#: (P, Q) -> f(p, q): the registered closed forms.
KL_REGISTRY = {}


def register_kl(p_cls, q_cls):
    """Decorator registering ``f(p, q)`` as ``KL(p || q)`` for instances of the classes.

    Example
    -------
    >>> @register_kl(Normal, Normal)          # doctest: +SKIP
    ... def _kl_normal_normal(p, q): ...
    """
    def deco(f):
        KL_REGISTRY[(p_cls, q_cls)] = f
        return f
    return deco


def _lookup(tp, tq):
    for a in tp.__mro__:
        for b in tq.__mro__:
            f = KL_REGISTRY.get((a, b))
            if f is not None:
                return f
    return None


def kl_divergence(p, q):
    """``KL(p || q)``, shape ``broadcast(p.batch_shape, q.batch_shape)`` minus the last
    ``group_ndims`` axes (summed).

    Raises
    ------
    NotImplementedError
        When no closed form is registered for the pair (the message lists those
        registered for ``type(p)``).
    ValueError
        When p and q have different ``group_ndims`` or ``value_shape``.
    """
    tp, tq = type(p), type(q)
    f = _lookup(tp, tq)
    if f is None:
        have = sorted(b.__name__ for a, b in KL_REGISTRY if issubclass(tp, a))
        raise NotImplementedError(
            f"kl_divergence: no closed form registered for KL({tp.__name__} || "
            f"{tq.__name__}); registered for {tp.__name__}: "
            f"{', '.join(have) if have else 'none'} (add one with @register_kl)")
    if p.group_ndims != q.group_ndims:
        raise ValueError(f"kl_divergence: p and q must have the same group_ndims, got "
                         f"{p.group_ndims} and {q.group_ndims}")
    if p.value_shape != q.value_shape:
        raise ValueError(f"kl_divergence: p and q must have the same value_shape, got "
                         f"{p.value_shape} and {q.value_shape}")
    return p._group(f(p, q))


@register_kl(Normal, Normal)
def _kl_normal(p, q):
    a, b = p._p, q._p
    ratio = ad.exp(2 * (Normal._logstd(a) - Normal._logstd(b)))
    return 0.5 * (ratio + ad.square((a.mean - b.mean) / Normal._std(b)) - 1
                  - ad.log(ratio))


@register_kl(MultivariateNormalCholesky, MultivariateNormalCholesky)
def _kl_mvn(p, q):
    n = p.value_shape[0]
    lp, lq = p._p.cov_tril, q._p.cov_tril
    m = _tril_solve(lq, lp, 2)                                   # Lq^{-1} Lp
    d = _tril_solve(lq, q._p.mean - p._p.mean, 1)
    trace = ad.sum(ad.square(m), axis=(-2, -1))
    logdet = ad.sum(_log_diag(lq), axis=-1) - ad.sum(_log_diag(lp), axis=-1)
    return 0.5 * (trace + ad.sum(ad.square(d), axis=-1) - n) + logdet


@register_kl(Bernoulli, Bernoulli)
def _kl_bernoulli(p, q):
    a1, a0 = Bernoulli._log_p01(p._p)
    b1, b0 = Bernoulli._log_p01(q._p)
    pr = Bernoulli._probs(p._p)
    return _xlogq(pr, a1 - b1) + _xlogq(1 - pr, a0 - b0)


_xlogq = xmul_log     # w * log(p/q), 0 where w == 0


def _kl_categorical_logits(lp, lq):
    a, b = ad.log_softmax(lp), ad.log_softmax(lq)
    return ad.sum(_xlogq(ad.exp(a), a - b), axis=-1)


@register_kl(Categorical, Categorical)
def _kl_categorical(p, q):
    return _kl_categorical_logits(p._p.logits, q._p.logits)


@register_kl(OnehotCategorical, OnehotCategorical)
def _kl_onehot(p, q):
    return _kl_categorical_logits(p._p.logits, q._p.logits)


@register_kl(Gamma, Gamma)
def _kl_gamma(p, q):
    a1, b1, a2, b2 = p._p.alpha, p._p.beta, q._p.alpha, q._p.beta
    return ((a1 - a2) * ad.digamma(a1) - ad.lgamma(a1) + ad.lgamma(a2)
            + a2 * (ad.log(b1) - ad.log(b2)) + a1 * (b2 - b1) / b1)


@register_kl(Beta, Beta)
def _kl_beta(p, q):
    a1, b1, a2, b2 = p._p.alpha, p._p.beta, q._p.alpha, q._p.beta
    s = ad.digamma(a1 + b1)
    return (_lbeta(a2, b2) - _lbeta(a1, b1) + (a1 - a2) * (ad.digamma(a1) - s)
            + (b1 - b2) * (ad.digamma(b1) - s))


@register_kl(Dirichlet, Dirichlet)
def _kl_dirichlet(p, q):
    a, b = p._p.alpha, q._p.alpha
    a0 = ad.sum(a, axis=-1)
    return (ad.lgamma(a0) - ad.sum(ad.lgamma(a), axis=-1) - ad.lgamma(ad.sum(b, axis=-1))
            + ad.sum(ad.lgamma(b), axis=-1)
            + ad.sum((a - b) * (ad.digamma(a) - ad.expand_dims(ad.digamma(a0), -1)), axis=-1))


@register_kl(Exponential, Exponential)
def _kl_exponential(p, q):
    r = q._p.rate / p._p.rate
    return r - ad.log(r) - 1


@register_kl(Laplace, Laplace)
def _kl_laplace(p, q):
    # Gil, Alajaji & Hoholdt (2013), Table 3
    d = ad.abs(p._p.loc - q._p.loc)
    b1, b2 = p._p.scale, q._p.scale
    return ad.log(b2 / b1) + d / b2 + b1 / b2 * ad.exp(-d / b1) - 1


@register_kl(Uniform, Uniform)
def _kl_uniform(p, q):
    """log((b2 - a2)/(b1 - a1)) when [a1, b1] lies inside [a2, b2], +inf otherwise."""
    a1, b1, a2, b2 = p._p.minval, p._p.maxval, q._p.minval, q._p.maxval
    inside = ad.logical_and(ad.less_equal(a2, a1), ad.less_equal(b1, b2))
    return ad.where(inside, ad.log((b2 - a2) / (b1 - a1)), math.inf)

