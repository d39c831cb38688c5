"""Multivariate distributions (``value_shape != ()``).

The value dims are the trailing dims of one parameter (``value_param``); the other
parameters' event dims are checked against them in ``_check_shapes``. Linear algebra is
batched over all leading axes (:func:`autodiff.solve_triangular` on broadcast stacks).
"""
import math

import numpy as np

import autodiff as ad

from .base import Constraint, Distribution, constraints, draw
from .numerics import xlogy as _xlogy, xmul_log
from .univariate import _HALF_LOG_2PI, _log_gamma_noise, _normal, _raw, _std_gumbel

__all__ = ["MultivariateNormalCholesky", "MatrixVariateNormalCholesky", "Multinomial",
           "UnnormalizedMultinomial", "OnehotCategorical", "Dirichlet", "ExpConcrete",
           "Concrete"]

c = constraints
_counts = Constraint("nonnegative_integer_vector",
                     lambda x, closed: np.all((x >= 0) & (x == np.floor(x)), axis=-1), 1,
                     "a vector of nonnegative integer counts")


def _log_diag(tril):
    return ad.log(ad.diagonal(tril, 0, -2, -1))


def _tril_solve(tril, b, rhs_ndims):
    """``tril^{-1} b`` with the batch axes of both broadcast; ``b`` has ``rhs_ndims``
    (1: vectors, 2: matrices) trailing dims."""
    lead = np.broadcast_shapes(tril.shape[:-2], b.shape[:b.ndim - rhs_ndims])
    n = tril.shape[-1]
    tril = ad.broadcast_to(tril, lead + (n, n))
    b = ad.broadcast_to(b, lead + tuple(b.shape[b.ndim - rhs_ndims:]))
    return ad.solve_triangular(tril, b, lower=True)


def _check_square(name, what, t, n):
    if t.shape[-2:] != (n, n):
        raise ValueError(f"{name}: {what} must have shape [..., {n}, {n}] to match mean, "
                         f"got {t.shape}")


class MultivariateNormalCholesky(Distribution):
    """Multivariate normal ``N(mean, L L^T)`` with ``cov_tril = L`` lower triangular.

    Parameters
    ----------
    mean : Tensor or array, shape ``[..., n]``
    cov_tril : Tensor or array, shape ``[..., n, n]``
        Lower-triangular Cholesky factor of the covariance (positive diagonal).

    Notes
    -----
    Samples ``mean + L eps`` are reparameterized; ``variance`` is ``diag(L L^T)``.
    """
    arg_constraints = {"mean": c.real_vector, "cov_tril": c.lower_cholesky}
    param_ndims = {"mean": 1, "cov_tril": 2}
    support = c.real_vector
    has_rsample = True
    value_ndims = 1
    value_param = "mean"

    def __init__(self, mean, cov_tril, **kwargs):
        super().__init__(dict(mean=mean, cov_tril=cov_tril), **kwargs)

    def _check_shapes(self):
        _check_square("MultivariateNormalCholesky", "cov_tril", self.cov_tril,
                      self.value_shape[0])

    def _sample(self, shape, rng, p):
        eps = _normal(self, rng, shape)
        return p.mean + ad.matmul(p.cov_tril, eps[..., None])[..., 0]

    def _log_prob(self, x, p):
        n = self.value_shape[0]
        y = _tril_solve(p.cov_tril, x - p.mean, 1)
        return (-0.5 * ad.sum(ad.square(y), axis=-1) - ad.sum(_log_diag(p.cov_tril), axis=-1)
                - n * _HALF_LOG_2PI)

    def _mean(self, p):
        return p.mean

    def _variance(self, p):
        return ad.sum(ad.square(p.cov_tril), axis=-1)

    def _entropy(self, p):
        n = self.value_shape[0]
        return n * (0.5 + _HALF_LOG_2PI) + ad.sum(_log_diag(p.cov_tril), axis=-1)


class MatrixVariateNormalCholesky(Distribution):
    """Matrix normal ``MN(mean, U U^T, V V^T)``: ``X = mean + U E V^T``, E iid N(0, 1).

    Parameters
    ----------
    mean : shape ``[..., n, p]``
    u_tril : shape ``[..., n, n]``
        Cholesky factor of the row covariance.
    v_tril : shape ``[..., p, p]``
        Cholesky factor of the column covariance.
    """
    arg_constraints = {"mean": c.real_matrix, "u_tril": c.lower_cholesky,
                       "v_tril": c.lower_cholesky}
    param_ndims = {"mean": 2, "u_tril": 2, "v_tril": 2}
    support = c.real_matrix
    has_rsample = True
    value_ndims = 2
    value_param = "mean"

    def __init__(self, mean, u_tril, v_tril, **kwargs):
        super().__init__(dict(mean=mean, u_tril=u_tril, v_tril=v_tril), **kwargs)

    def _check_shapes(self):
        n, q = self.value_shape
        _check_square("MatrixVariateNormalCholesky", "u_tril", self.u_tril, n)
        _check_square("MatrixVariateNormalCholesky", "v_tril", self.v_tril, q)

    def _sample(self, shape, rng, p):
        e = _normal(self, rng, shape)
        return p.mean + ad.matmul(ad.matmul(p.u_tril, e), ad.swapaxes(p.v_tril, -1, -2))

    def _log_prob(self, x, p):
        n, q = self.value_shape
        a = _tril_solve(p.u_tril, x - p.mean, 2)                 # U^{-1} D
        b = _tril_solve(p.v_tril, ad.swapaxes(a, -1, -2), 2)     # V^{-1} D^T U^{-T}
        return (-0.5 * ad.sum(ad.square(b), axis=(-2, -1)) - self._half_logdet(p)
                - n * q * _HALF_LOG_2PI)

    def _half_logdet(self, p):
        n, q = self.value_shape
        return (q * ad.sum(_log_diag(p.u_tril), axis=-1)
                + n * ad.sum(_log_diag(p.v_tril), axis=-1))

    def _mean(self, p):
        return p.mean

    def _variance(self, p):
        ru = ad.sum(ad.square(p.u_tril), axis=-1)
        rv = ad.sum(ad.square(p.v_tril), axis=-1)
        return ad.expand_dims(ru, -1) * ad.expand_dims(rv, -2)

    def _entropy(self, p):
        n, q = self.value_shape
        return n * q * (0.5 + _HALF_LOG_2PI) + self._half_logdet(p)


def _log_probs(p, normalize):
    return ad.log_softmax(p.logits) if normalize else p.logits


class Multinomial(Distribution):
    """Multinomial counts over K categories.

    Parameters
    ----------
    logits : shape ``[..., K]``
        Unnormalized log-probabilities (normalized log-probabilities when
        ``normalize_logits=False``, which skips the normalization).
    n_experiments : int or integer array (batch-broadcastable)
        Number of draws; samples sum to it over the last axis.
    """
    arg_constraints = {"logits": c.real_vector, "n_experiments": c.nonnegative_integer}
    param_ndims = {"logits": 1}
    int_params = ("n_experiments",)
    is_continuous = False
    value_ndims = 1
    value_param = "logits"

    def __init__(self, logits, n_experiments, normalize_logits=True, **kwargs):
        self.normalize_logits = bool(normalize_logits)
        super().__init__(dict(logits=logits, n_experiments=n_experiments), **kwargs)
        self.support = c.multinomial(self.n_experiments)

    def _sample(self, shape, rng, p):
        full = shape + self.batch_shape
        probs = _raw(ad.softmax(p.logits) if self.normalize_logits else ad.exp(p.logits))
        probs = self._xp.broadcast_to(probs.astype(np.float64), full + self.value_shape)
        n = self._xp.broadcast_to(p.n_experiments, full)
        return draw(rng, self._xp, "multinomial", n, probs).astype(self.dtype)

    def _log_prob(self, x, p):
        n = self._xp.asarray(p.n_experiments, dtype=self.param_dtype)
        return (ad.lgamma(n + 1) - ad.sum(ad.lgamma(x + 1), axis=-1)
                + ad.sum(_xlogy_counts(x, _log_probs(p, self.normalize_logits)), axis=-1))

    def _mean(self, p):
        return ad.expand_dims(self._xp.asarray(p.n_experiments), -1) * ad.softmax(p.logits)

    def _variance(self, p):
        q = ad.softmax(p.logits)
        return ad.expand_dims(self._xp.asarray(p.n_experiments), -1) * q * (1 - q)


_xlogy_counts = xmul_log     # x * log q, 0 where x == 0 (log q may be -inf there)


class UnnormalizedMultinomial(Distribution):
    """ZhuSuan's UnnormalizedMultinomial: the probability of one *ordered* sequence
    with the given counts, ``sum_k x_k log p_k`` (no ``n! / prod x_k!`` factor), for
    bag-of-words likelihoods where ``n_experiments`` varies per row.
    Sampling is not possible (``n_experiments`` is unknown): use :class:`Multinomial`.
    """
    arg_constraints = {"logits": c.real_vector}
    param_ndims = {"logits": 1}
    support = _counts
    is_continuous = False
    value_ndims = 1
    value_param = "logits"

    def __init__(self, logits, normalize_logits=True, **kwargs):
        self.normalize_logits = bool(normalize_logits)
        super().__init__(dict(logits=logits), **kwargs)

    def _sample(self, shape, rng, p):
        raise NotImplementedError("UnnormalizedMultinomial cannot be sampled: it has no "
                                  "n_experiments; use Multinomial(logits, n_experiments)")

    def _log_prob(self, x, p):
        return ad.sum(_xlogy_counts(x, _log_probs(p, self.normalize_logits)), axis=-1)


class OnehotCategorical(Distribution):
    """Categorical with one-hot values ``[..., K]`` (Gumbel-max samples of ``dtype``)."""
    arg_constraints = {"logits": c.real_vector}
    param_ndims = {"logits": 1}
    support = c.onehot
    is_continuous = False
    value_ndims = 1
    value_param = "logits"

    def __init__(self, logits, **kwargs):
        super().__init__(dict(logits=logits), **kwargs)

    def _sample(self, shape, rng, p):
        idx = ad.argmax(p.logits + _std_gumbel(self, rng, shape), axis=-1)
        k = self._xp.arange(self.value_shape[0])
        return ad.cast(ad.equal(ad.expand_dims(idx, -1), k), self.dtype)   # replayable

    def _log_prob(self, x, p):
        return ad.sum(_xlogy_counts(x, ad.log_softmax(p.logits)), axis=-1)

    def _mean(self, p):
        return ad.softmax(p.logits)

    def _variance(self, p):
        q = ad.softmax(p.logits)
        return q * (1 - q)

    def _entropy(self, p):
        lsm = ad.log_softmax(p.logits)
        return -ad.sum(xmul_log(ad.exp(lsm), lsm), axis=-1)


class Dirichlet(Distribution):
    """Dirichlet with concentration ``alpha [..., K]`` on the simplex.

    Samples are normalized Gamma(alpha_k, 1) draws, a softmax of
    :func:`~.univariate.log_gamma_sample` (finite for tiny alpha), implicitly
    reparameterized (Figurnov et al. 2018).
    """
    arg_constraints = {"alpha": c.positive}
    param_ndims = {"alpha": 1}
    support = c.simplex
    has_rsample = True
    value_ndims = 1
    value_param = "alpha"

    def __init__(self, alpha, **kwargs):
        super().__init__(dict(alpha=alpha), **kwargs)

    def _sample(self, shape, rng, p):
        # normalized Gamma draws as a softmax of their logarithms: no 0 / 0 when every
        # draw of a row underflows (alpha << 1)
        return ad.softmax(_log_gamma_noise(self, p.alpha, rng, shape), axis=-1)

    def _log_prob(self, x, p):
        return (ad.sum(_xlogy(p.alpha - 1, x), axis=-1) + ad.lgamma(ad.sum(p.alpha, axis=-1))
                - ad.sum(ad.lgamma(p.alpha), axis=-1))

    def _mean(self, p):
        return p.alpha / ad.sum(p.alpha, axis=-1, keepdims=True)

    def _variance(self, p):
        a0 = ad.sum(p.alpha, axis=-1, keepdims=True)
        return p.alpha * (a0 - p.alpha) / (ad.square(a0) * (a0 + 1))

    def _entropy(self, p):
        k = self.value_shape[0]
        a0 = ad.sum(p.alpha, axis=-1)
        lbeta = ad.sum(ad.lgamma(p.alpha), axis=-1) - ad.lgamma(a0)
        return (lbeta + (a0 - k) * ad.digamma(a0)
                - ad.sum((p.alpha - 1) * ad.digamma(p.alpha), axis=-1))


class _ConcreteBase(Distribution):
    """Shared parameters of the Concrete family (Maddison, Mnih & Teh 2017)."""
    arg_constraints = {"temperature": c.positive, "logits": c.real_vector}
    param_ndims = {"logits": 1}
    has_rsample = True
    value_ndims = 1
    value_param = "logits"

    def __init__(self, temperature, logits, **kwargs):
        super().__init__(dict(temperature=temperature, logits=logits), **kwargs)

    def _log_sample(self, shape, rng, p):
        gumbel = _std_gumbel(self, rng, shape)
        return ad.log_softmax((p.logits + gumbel) / ad.expand_dims(p.temperature, -1))

    def _log_norm(self, p):
        k = self.value_shape[0]
        return math.lgamma(k) + (k - 1) * ad.log(p.temperature)


class ExpConcrete(_ConcreteBase):
    """ExpConcrete: the log of a Concrete variable, on the log-simplex.

    ``y = log_softmax((logits + G) / temperature)``, G iid Gumbel; density w.r.t. the
    Lebesgue measure of the first K-1 coordinates (as Concrete's)::

        log p(y) = log (K-1)! + (K-1) log t + sum_k (l_k - t y_k) - K logsumexp(l - t y) - y_K

    Numerically safer than Concrete at low t. Note: Maddison et al. (2017, appendix C),
    TensorFlow's ExpRelaxedOneHotCategorical and ZhuSuan omit the ``- y_K`` term, so
    their density does not integrate to 1 over the first K-1 coordinates (it integrates
    to ``E[exp(y_K)]``); the term cancels in a KL between two ExpConcretes with the
    same K, so variational objectives are unaffected.
    """
    support = c.log_simplex

    def _sample(self, shape, rng, p):
        return self._log_sample(shape, rng, p)

    def _log_prob(self, y, p):
        k = self.value_shape[0]
        u = p.logits - ad.expand_dims(p.temperature, -1) * y
        return (self._log_norm(p) + ad.sum(u, axis=-1) - k * ad.logsumexp(u, axis=-1)
                - y[..., -1])


class Concrete(_ConcreteBase):
    """Concrete (Gumbel-softmax; Maddison et al. 2017, Jang et al. 2017) on the simplex.

    ``x = softmax((logits + G) / temperature)``; density w.r.t. the Lebesgue measure of
    the first K-1 coordinates:
    ``log (K-1)! + (K-1) log t + sum_k (l_k - (t+1) log x_k) - K logsumexp(l - t log x)``.
    """
    support = c.simplex

    def _sample(self, shape, rng, p):
        return ad.exp(self._log_sample(shape, rng, p))

    def _log_prob(self, x, p):
        k = self.value_shape[0]
        lx = ad.log(x)
        u = p.logits - ad.expand_dims(p.temperature, -1) * lx
        return self._log_norm(p) + ad.sum(u - lx, axis=-1) - k * ad.logsumexp(u, axis=-1)
