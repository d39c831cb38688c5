"""Univariate distributions (``value_shape == ()``).

Each class is its declarations (``arg_constraints``, ``support``, ``has_rsample``) plus
``_sample``, ``_log_prob`` and the closed-form moments; the template methods of
:class:`~.base.Distribution` do the rest. Formulas are written with :mod:`autodiff` ops so
that gradients reach the parameters (and, for ``has_rsample`` classes, flow from the
samples back to them).

Reparameterized sampling
------------------------
Location-scale families transform parameter-free noise (Kingma & Welling 2014). The
Gamma -- and through it Beta, Dirichlet, InverseGamma and StudentT -- has no such
transform; it uses *implicit reparameterization gradients* (Figurnov, Mohamed & Mnih
2018): :func:`gamma_sample` is a primitive whose VJP is
``dx/dalpha = -(dF/dalpha)(x; alpha) / p(x; alpha)`` with ``F`` the regularized lower
incomplete gamma function (the CDF) and ``p`` the density.
"""
import math

import numpy as np

import autodiff as ad
from autodiff import backend
from autodiff.core import Tensor

from .base import Distribution, constraints, draw
from .fused import fused_normal_sample_logprob, unfused_normal_sample_logprob
from .numerics import (digamma_half_term, guarded, lbeta as _lbeta, lgamma_half_ratio, log1p_over,
                       logistic_log_density, xlog1my as _xlog1my, xlogy as _xlogy,
                       xmul_log)

__all__ = ["Normal", "FoldNormal", "HalfNormal", "LogNormal", "Bernoulli", "Categorical",
           "Uniform", "Gamma", "Beta", "Poisson", "Binomial", "InverseGamma", "Laplace",
           "Exponential", "Logistic", "StudentT", "Cauchy", "HalfCauchy", "BinConcrete",
           "gamma_sample", "gamma_sample_grad", "log_gamma_sample",
           "log_gamma_sample_grad"]

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
_LOG_PI = math.log(math.pi)
c = constraints


# ----------------------------------------------------------------------------- helpers

def _raw(x):
    return x.data if type(x) is Tensor else x


def _logaddexp(a, b):
    return ad.logsumexp(ad.stack([a, b]), axis=0)


def _full_shape(self, shape):
    return shape + self.batch_shape + self.value_shape


def _normal(self, rng, shape):
    return draw(rng, self._xp, "standard_normal", size=_full_shape(self, shape),
                dtype=self.param_dtype)


def _open_uniform(self, rng, shape, extra=(), transform=None):
    """Uniform noise in the open interval (0, 1) of shape ``shape + batch + value +
    extra``, in ``param_dtype``, or ``transform(u)`` of it (a function of the noise
    alone: it is replayed with the draw under autodiff.trace). A Tensor (no gradient),
    so that what is computed from it is recorded too."""
    xp, tiny = self._xp, np.finfo(self.param_dtype).tiny

    def post(u):
        u = xp.maximum(u, tiny)
        return u if transform is None else transform(u)
    return Tensor(draw(rng, xp, "random", size=_full_shape(self, shape) + extra,
                       dtype=self.param_dtype, post=post))


def _std_exponential(self, rng, shape, extra=()):
    xp = self._xp
    return _open_uniform(self, rng, shape, extra, lambda u: -xp.log(u))


def _std_gumbel(self, rng, shape, extra=()):
    xp = self._xp
    return _open_uniform(self, rng, shape, extra, lambda u: -xp.log(-xp.log(u)))


def _std_logistic(self, rng, shape):
    xp = self._xp
    return _open_uniform(self, rng, shape, (), lambda u: xp.log(u) - xp.log1p(-u))


# ----------------------------------------------------------------------------- implicit reparameterization

def _gamma_fwd(alpha, rng):
    xp = backend.get_array_module(alpha)
    x = draw(rng, xp, "standard_gamma", alpha.astype(np.float64), size=alpha.shape)
    return x.astype(alpha.dtype, copy=False)


#: Relative step of the central difference of the incomplete gamma function in alpha.
GAMMA_GRAD_REL_STEP = 1e-5


def gamma_sample_grad(x, alpha):
    """``dx/dalpha`` of a Gamma(alpha, 1) sample ``x`` at fixed CDF value (implicit
    reparameterization, Figurnov et al. 2018, eq. 9).

    ``dF/dalpha`` is a central difference of the regularized incomplete gamma function
    with relative step ``h = 1e-5 * alpha``, taken on ``P = gammainc`` where ``P <= 1/2``
    and on ``-Q = -gammaincc`` otherwise, so the difference never cancels against a value
    near 1. Truncation error ~ ``(h log x)^2 / 6`` and rounding ~ ``1e-16 / h`` relative:
    about 1e-8 relative for alpha in [0.01, 100] (tested against finite differences of
    ``gammaincinv`` to 1e-6). Computed in float64; 0 where ``x == 0`` (underflowed draws).

    Parameters
    ----------
    x, alpha : arrays of one shape

    Returns
    -------
    array, float64, the shape of ``x``
    """
    xp = backend.get_array_module(x)
    sp = backend.special(x)
    x = x.astype(np.float64)
    a = alpha.astype(np.float64)
    h = GAMMA_GRAD_REL_STEP * a
    upper = sp.gammainc(a, x) > 0.5

    def cdf(aa):
        return xp.where(upper, -sp.gammaincc(aa, x), sp.gammainc(aa, x))

    dfda = (cdf(a + h) - cdf(a - h)) / (2 * h)
    pos = x > 0
    xs = xp.where(pos, x, 1.0)
    log_pdf = (a - 1) * xp.log(xs) - xs - sp.gammaln(a)
    return xp.where(pos, -dfda * xp.exp(-log_pdf), 0.0)


gamma_sample = ad.primitive(_gamma_fwd, "gamma_sample")
ad.defvjp(gamma_sample, lambda ans, alpha, rng: lambda g: g * gamma_sample_grad(ans, alpha),
          None)
gamma_sample.__doc__ = """gamma_sample(alpha, rng): Gamma(alpha, 1) draws of alpha's shape.

Differentiable in ``alpha`` by implicit reparameterization (see
:func:`gamma_sample_grad`); ``rng`` is a NumPy or CuPy Generator. Broadcast ``alpha``
to the sample shape first (``ad.broadcast_to``) for several draws per alpha.
"""


def _log_gamma_fwd(alpha, rng):
    xp = backend.get_array_module(alpha)
    a = alpha.astype(np.float64)
    small = a < 1
    # Gamma(a) = Gamma(a + 1) U^(1/a) (Marsaglia & Tsang 2000, sec. 7) taken in log space:
    # for a << 1 the draw itself underflows to 0 (half of all Gamma(1e-3) draws do in
    # float64) but its logarithm, about log(U) / a, is a moderate number
    g = draw(rng, xp, "standard_gamma", xp.where(small, a + 1, a), size=a.shape)
    u = draw(rng, xp, "random", size=a.shape)
    tiny = np.finfo(np.float64).tiny
    lx = xp.log(g) + xp.where(small, xp.log(xp.maximum(u, tiny)) / a, 0.0)
    return lx.astype(alpha.dtype, copy=False)


#: Below this value of a Gamma(alpha) draw, d log x / d alpha uses the small-x form.
LOG_GAMMA_GRAD_SMALL_X = 1e-8


def log_gamma_sample_grad(log_x, alpha):
    """``d log x / d alpha`` of a Gamma(alpha, 1) draw given as ``log_x`` (implicit
    reparameterization at fixed CDF value, like :func:`gamma_sample_grad`).

    Where ``x = exp(log_x) >= 1e-8`` it is ``gamma_sample_grad(x, alpha) / x``. Below,
    where ``x`` may not even be representable, the CDF is ``x^alpha / Gamma(alpha + 1)``
    to relative ``O(x)``, which gives ``(digamma(alpha + 1) - log x) / alpha``.

    Returns
    -------
    array, float64, the shape of ``log_x``
    """
    xp = backend.get_array_module(log_x)
    sp = backend.special(log_x)
    lx = log_x.astype(np.float64)
    a = alpha.astype(np.float64)
    x = xp.exp(lx)
    small = x < LOG_GAMMA_GRAD_SMALL_X
    xs = xp.where(small, 1.0, x)
    general = gamma_sample_grad(xs, a) / xs
    return xp.where(small, (sp.digamma(a + 1) - lx) / a, general)


log_gamma_sample = ad.primitive(_log_gamma_fwd, "log_gamma_sample")
ad.defvjp(log_gamma_sample,
          lambda ans, alpha, rng: lambda g: g * log_gamma_sample_grad(ans, alpha), None)
log_gamma_sample.__doc__ = """log_gamma_sample(alpha, rng): logarithms of Gamma(alpha, 1)
draws of alpha's shape, finite even where the draws underflow (alpha << 1).

Differentiable in ``alpha`` (:func:`log_gamma_sample_grad`). Beta and Dirichlet sample
through it (a sigmoid or softmax of log-gammas), so small concentrations give no 0/0.
"""


def _gamma_noise(self, alpha, rng, shape):
    return gamma_sample(ad.broadcast_to(alpha, _full_shape(self, shape)), rng)


def _log_gamma_noise(self, alpha, rng, shape):
    return log_gamma_sample(ad.broadcast_to(alpha, _full_shape(self, shape)), rng)


# ----------------------------------------------------------------------------- normal family

class _NormalFamily(Distribution):
    """Shared parameterization ``(mean, std=None, logstd=None)``: exactly one of std
    and logstd; the other is derived on use."""
    arg_constraints = {"mean": c.real, "std": c.positive, "logstd": c.real}
    has_rsample = True
    optional_params = ("std", "logstd")

    def __init__(self, mean, std=None, logstd=None, **kwargs):
        if (std is None) == (logstd is None):
            raise ValueError(f"{type(self).__name__}: pass exactly one of std and logstd "
                             f"(got {'both' if std is not None else 'neither'})")
        super().__init__(dict(mean=mean, std=std, logstd=logstd), **kwargs)

    @staticmethod
    def _std(p):
        return p.std if p.std is not None else ad.exp(p.logstd)

    @staticmethod
    def _logstd(p):
        return p.logstd if p.logstd is not None else ad.log(p.std)

    def _normal_log_prob(self, x, p):
        return (-0.5 * ad.square((x - p.mean) / self._std(p)) - self._logstd(p)
                - _HALF_LOG_2PI)


class _FusedNormal(_NormalFamily):
    """Sampling (and the log-density of the sample) through the fused kernel."""
    _lognormal = False

    def _sample(self, shape, rng, p):
        eps = _normal(self, rng, shape)
        # while autodiff.compile records, the tape ops (which it lowers) replace the
        # fused kernel (which it could only call back into Python)
        b = ad.tracer.current_builder()
        sample_logprob = unfused_normal_sample_logprob if b is not None and not b.atomic \
            else fused_normal_sample_logprob
        return sample_logprob(
            p.mean, self._logstd(p), eps, lognormal=self._lognormal,
            reparameterized=self.is_reparameterized,
            path_derivative=self.use_path_derivative)


class Normal(_FusedNormal):
    """Normal ``N(mean, std^2)``, parameterized by ``std`` or ``logstd``.

    Samples are ``mean + std * eps`` through the fused kernel of :mod:`.fused`, which
    also computes their log-density: ``log_prob`` of the very Tensor just sampled (as a
    BayesianNet does) reuses it, and :meth:`sample_and_log_prob` returns both.

    Parameters
    ----------
    mean : Tensor or array, batch-broadcastable
    std, logstd : Tensor or array
        Exactly one of them.
    **kwargs
        ``group_ndims``, ``is_reparameterized``, ``use_path_derivative``,
        ``validate_args``, ``dtype`` (see :class:`~.base.Distribution`).
    """
    support = c.real

    def _log_prob(self, x, p):
        return self._normal_log_prob(x, p)

    def _mean(self, p):
        return p.mean

    def _variance(self, p):
        return ad.square(self._std(p))

    def _entropy(self, p):
        return 0.5 + _HALF_LOG_2PI + self._logstd(p)


class LogNormal(_FusedNormal):
    """Log-normal: ``exp`` of a ``N(mean, std^2)`` variable (fused kernel like Normal).

    ``mean`` and ``std`` are those of ``log x``; the ``mean`` *property* is
    ``exp(mean + std^2 / 2)`` (the parameter is ``params['mean']``).
    """
    support = c.positive
    _lognormal = True

    def _log_prob(self, x, p):
        def lp(xs):                                # -inf at x = 0, its limit
            lx = ad.log(xs)
            return self._normal_log_prob(lx, p) - lx
        return guarded(ad.greater(x, 0), x, 1.0, lp, -np.inf)

    def _mean(self, p):
        return ad.exp(p.mean + 0.5 * ad.square(self._std(p)))

    def _variance(self, p):
        s2 = ad.square(self._std(p))
        return ad.expm1(s2) * ad.exp(2 * p.mean + s2)

    def _entropy(self, p):
        return p.mean + 0.5 + _HALF_LOG_2PI + self._logstd(p)


class FoldNormal(_NormalFamily):
    """Folded normal: ``|y|`` for ``y ~ N(mean, std^2)``.

    Samples are ``|mean + std * eps|`` (ZhuSuan's FoldNormal returned the unfolded
    normal sample, which is outside the support half the time).
    """
    support = c.nonnegative

    def _sample(self, shape, rng, p):
        return ad.abs(p.mean + self._std(p) * _normal(self, rng, shape))

    def _log_prob(self, x, p):
        return _logaddexp(self._normal_log_prob(x, p), self._normal_log_prob(-x, p))

    def _mean(self, p):
        s = self._std(p)
        r = p.mean / s
        return (s * math.sqrt(2 / math.pi) * ad.exp(-0.5 * ad.square(r))
                + p.mean * ad.erf(r / math.sqrt(2)))

    def _variance(self, p):
        return ad.square(p.mean) + ad.square(self._std(p)) - ad.square(self._mean(p))


class HalfNormal(Distribution):
    """Half-normal: ``|y|`` for ``y ~ N(0, std^2)``."""
    arg_constraints = {"std": c.positive}
    support = c.nonnegative
    has_rsample = True

    def __init__(self, std, **kwargs):
        super().__init__(dict(std=std), **kwargs)

    def _sample(self, shape, rng, p):
        return ad.abs(p.std * _normal(self, rng, shape))

    def _log_prob(self, x, p):
        return 0.5 * math.log(2 / math.pi) - ad.log(p.std) - 0.5 * ad.square(x / p.std)

    def _mean(self, p):
        return p.std * math.sqrt(2 / math.pi)

    def _variance(self, p):
        return ad.square(p.std) * (1 - 2 / math.pi)

    def _entropy(self, p):
        return 0.5 * math.log(math.pi * math.e / 2) + ad.log(p.std)


# ----------------------------------------------------------------------------- discrete

class Bernoulli(Distribution):
    """Bernoulli over {0, 1}, parameterized by ``logits`` or ``probs`` (exactly one).

    Samples have ``dtype`` (default int32)."""
    arg_constraints = {"logits": c.real, "probs": c.probability}
    support = c.boolean
    optional_params = ("logits", "probs")
    is_continuous = False

    def __init__(self, logits=None, probs=None, **kwargs):
        if (logits is None) == (probs is None):
            raise ValueError(f"Bernoulli: pass exactly one of logits and probs (got "
                             f"{'both' if logits is not None else 'neither'})")
        super().__init__(dict(logits=logits, probs=probs), **kwargs)

    @staticmethod
    def _probs(p):
        return p.probs if p.probs is not None else ad.sigmoid(p.logits)

    @staticmethod
    def _log_p01(p):
        if p.logits is not None:
            return ad.log_sigmoid(p.logits), ad.log_sigmoid(-p.logits)
        return ad.log(p.probs), ad.log1p(-p.probs)

    def _sample(self, shape, rng, p):
        u = draw(rng, self._xp, "random", size=_full_shape(self, shape),
                 dtype=self.param_dtype)
        return ad.cast(ad.less(u, self._probs(p)), self.dtype)     # primitives: replayable

    def _log_prob(self, x, p):
        if p.logits is not None:
            # x log sigmoid(l) + (1 - x) log sigmoid(-l) = -softplus((1 - 2x) l) for x in
            # {0, 1}: one softplus pass, and the limits 0 / -inf at l = +-inf (the form
            # x l - softplus(l) is inf - inf there). Comparisons and casts are autodiff
            # primitives: ad.trace follows x through them.
            logits = p.logits
            dtype = getattr(_raw(logits), "dtype", np.float64)
            return -ad.softplus((1 - 2 * ad.cast(ad.equal(x, 1), dtype)) * logits)
        # one log of the chosen probability: the gradient at probs = 0 (or 1) of the
        # value not taken is finite (log(probs) there would give 0 * inf)
        q = p.probs
        return ad.log(ad.where(ad.equal(x, 1), q, 1 - q))

    def _mean(self, p):
        return self._probs(p)

    def _variance(self, p):
        q = self._probs(p)
        return q * (1 - q)

    def _entropy(self, p):
        q = self._probs(p)
        l1, l0 = self._log_p01(p)
        return -(xmul_log(q, l1) + xmul_log(1 - q, l0))


_xlogy_safe = xmul_log


def _gumbel_argmax(self, logits, rng, shape):
    """Indices ``argmax(logits + Gumbel noise)`` of shape ``shape + batch`` (Gumbel-max)."""
    g = _std_gumbel(self, rng, shape, (logits.shape[-1],))
    return ad.argmax(logits + g, axis=-1)


class Categorical(Distribution):
    """Categorical over ``{0, ..., K-1}`` with ``logits [..., K]`` (unnormalized).

    ``value_shape == ()``; samples are integer indices of ``dtype`` (default int32),
    drawn by the Gumbel-max trick. ``mean``/``variance`` are those of the index.
    """
    arg_constraints = {"logits": c.real_vector}
    param_ndims = {"logits": 1}
    is_continuous = False

    def __init__(self, logits, **kwargs):
        super().__init__(dict(logits=logits), **kwargs)
        self.n_categories = self.logits.shape[-1]
        self.support = c.integer_interval(0, self.n_categories - 1)

    def _sample(self, shape, rng, p):
        # the batch axes come from the broadcast, the class axis from the logits
        return ad.cast(_gumbel_argmax(self, p.logits, rng, shape), self.dtype)

    def _log_prob(self, x, p):
        lsm = ad.log_softmax(p.logits)
        k = self._xp.arange(self.n_categories)
        onehot = ad.equal(ad.expand_dims(x, -1), k)
        return ad.sum(ad.where(onehot, lsm, 0.0), axis=-1)

    def _index_moments(self, p):
        q = ad.softmax(p.logits)
        k = self._xp.arange(self.n_categories, dtype=self.param_dtype)
        m = ad.sum(q * k, axis=-1)
        return m, ad.sum(q * ad.square(k - ad.expand_dims(m, -1)), axis=-1)

    def _mean(self, p):
        return self._index_moments(p)[0]

    def _variance(self, p):
        return self._index_moments(p)[1]

    def _entropy(self, p):
        lsm = ad.log_softmax(p.logits)
        return -ad.sum(xmul_log(ad.exp(lsm), lsm), axis=-1)


class Poisson(Distribution):
    """Poisson with ``rate > 0``; samples of ``dtype`` (default int32)."""
    arg_constraints = {"rate": c.positive}
    support = c.nonnegative_integer
    is_continuous = False

    def __init__(self, rate, **kwargs):
        super().__init__(dict(rate=rate), **kwargs)

    def _sample(self, shape, rng, p):
        lam = self._xp.broadcast_to(_raw(p.rate), _full_shape(self, shape))
        return draw(rng, self._xp, "poisson", lam).astype(self.dtype)

    def _log_prob(self, x, p):
        return x * ad.log(p.rate) - p.rate - ad.lgamma(x + 1)

    def _mean(self, p):
        return p.rate

    _variance = _mean


class Binomial(Distribution):
    """Binomial with success ``logits`` and integer ``n_experiments >= 0``."""
    arg_constraints = {"logits": c.real, "n_experiments": c.nonnegative_integer}
    int_params = ("n_experiments",)
    is_continuous = False

    def __init__(self, logits, n_experiments, **kwargs):
        super().__init__(dict(logits=logits, n_experiments=n_experiments), **kwargs)
        self.support = c.integer_interval(0, self.n_experiments)

    def _sample(self, shape, rng, p):
        full = _full_shape(self, shape)
        q = self._xp.broadcast_to(_raw(ad.sigmoid(p.logits)), full).astype(np.float64)
        n = self._xp.broadcast_to(p.n_experiments, full)
        return draw(rng, self._xp, "binomial", n, q).astype(self.dtype)

    def _log_prob(self, x, p):
        n = self._xp.asarray(p.n_experiments, dtype=self.param_dtype)
        return (ad.lgamma(n + 1) - ad.lgamma(x + 1) - ad.lgamma(n - x + 1)
                + xmul_log(x, ad.log_sigmoid(p.logits))
                + xmul_log(n - x, ad.log_sigmoid(-p.logits)))

    def _mean(self, p):
        return p.n_experiments * ad.sigmoid(p.logits)

    def _variance(self, p):
        q = ad.sigmoid(p.logits)
        return p.n_experiments * q * (1 - q)


# ----------------------------------------------------------------------------- continuous

def _uniform_error(ok, lo, hi):
    bad = backend.asnumpy(~ok)
    at = lambda v: np.broadcast_to(backend.asnumpy(v), bad.shape)[bad][0].item()   # noqa: E731
    return ValueError(f"Uniform: maxval must be greater than minval; got "
                      f"minval={at(lo)!r}, maxval={at(hi)!r}")


class Uniform(Distribution):
    """Uniform on ``[minval, maxval)``; reparameterized ``minval + (maxval - minval) u``."""
    arg_constraints = {"minval": c.real, "maxval": c.real}
    has_rsample = True

    def __init__(self, minval, maxval, **kwargs):
        super().__init__(dict(minval=minval, maxval=maxval), **kwargs)
        self.support = c.interval(_raw(self.minval), _raw(self.maxval))

    def _validate_extra(self):
        ad.tracer.check(_raw(self._p.maxval) > _raw(self._p.minval), _uniform_error,
                        _raw(self._p.minval), _raw(self._p.maxval))

    def _sample(self, shape, rng, p):
        u = draw(rng, self._xp, "random", size=_full_shape(self, shape),
                 dtype=self.param_dtype)
        return p.minval + (p.maxval - p.minval) * u

    def _log_prob(self, x, p):
        inside = ad.logical_and(ad.greater_equal(x, p.minval), ad.less(x, p.maxval))
        return ad.where(inside, -ad.log(p.maxval - p.minval), -np.inf)

    def _mean(self, p):
        return 0.5 * (p.minval + p.maxval)

    def _variance(self, p):
        return ad.square(p.maxval - p.minval) / 12

    def _entropy(self, p):
        return ad.log(p.maxval - p.minval)


class Gamma(Distribution):
    """Gamma with shape ``alpha`` and *rate* ``beta`` (density ~ x^(alpha-1) e^(-beta x)).

    Reparameterized by implicit gradients (:func:`gamma_sample`)."""
    arg_constraints = {"alpha": c.positive, "beta": c.positive}
    support = c.positive
    has_rsample = True

    def __init__(self, alpha, beta, **kwargs):
        super().__init__(dict(alpha=alpha, beta=beta), **kwargs)

    def _sample(self, shape, rng, p):
        return _gamma_noise(self, p.alpha, rng, shape) / p.beta

    def _log_prob(self, x, p):
        return (p.alpha * ad.log(p.beta) + _xlogy(p.alpha - 1, x) - p.beta * x
                - ad.lgamma(p.alpha))

    def _mean(self, p):
        return p.alpha / p.beta

    def _variance(self, p):
        return p.alpha / ad.square(p.beta)

    def _entropy(self, p):
        return (p.alpha - ad.log(p.beta) + ad.lgamma(p.alpha)
                + (1 - p.alpha) * ad.digamma(p.alpha))


class Beta(Distribution):
    """Beta on [0, 1]; samples ``X / (X + Y)`` with X ~ Gamma(alpha), Y ~ Gamma(beta),
    computed as ``sigmoid(log X - log Y)`` from :func:`log_gamma_sample` (finite for
    tiny concentrations; implicitly reparameterized). ``log_prob`` is exact at 0 and 1:
    e.g. ``alpha = 1`` gives ``log(beta)`` at 0, ``alpha < 1`` gives ``+inf``."""
    arg_constraints = {"alpha": c.positive, "beta": c.positive}
    support = c.unit_interval
    has_rsample = True

    def __init__(self, alpha, beta, **kwargs):
        super().__init__(dict(alpha=alpha, beta=beta), **kwargs)

    def _sample(self, shape, rng, p):
        # X / (X + Y) as sigmoid(log X - log Y): no 0 / 0 when both draws underflow
        lx = _log_gamma_noise(self, p.alpha, rng, shape)
        ly = _log_gamma_noise(self, p.beta, rng, shape)
        return ad.sigmoid(lx - ly)

    def _log_prob(self, x, p):
        return (_xlogy(p.alpha - 1, x) + _xlog1my(p.beta - 1, x)
                - _lbeta(p.alpha, p.beta))

    def _mean(self, p):
        return p.alpha / (p.alpha + p.beta)

    def _variance(self, p):
        s = p.alpha + p.beta
        return p.alpha * p.beta / (ad.square(s) * (s + 1))

    def _entropy(self, p):
        s = p.alpha + p.beta
        return (_lbeta(p.alpha, p.beta) - (p.alpha - 1) * ad.digamma(p.alpha)
                - (p.beta - 1) * ad.digamma(p.beta) + (s - 2) * ad.digamma(s))


class InverseGamma(Distribution):
    """Inverse gamma: ``1 / X`` for X ~ Gamma(alpha, rate=beta), i.e. density
    ~ x^(-alpha-1) e^(-beta/x). Implicitly reparameterized."""
    arg_constraints = {"alpha": c.positive, "beta": c.positive}
    support = c.positive
    has_rsample = True

    def __init__(self, alpha, beta, **kwargs):
        super().__init__(dict(alpha=alpha, beta=beta), **kwargs)

    def _sample(self, shape, rng, p):
        return p.beta / _gamma_noise(self, p.alpha, rng, shape)

    def _log_prob(self, x, p):
        return guarded(ad.greater(x, 0), x, 1.0, lambda xs: (
            p.alpha * ad.log(p.beta) - ad.lgamma(p.alpha) - (p.alpha + 1) * ad.log(xs)
            - p.beta / xs), -np.inf)

    def _mean(self, p):
        return ad.where(_raw(p.alpha) > 1, p.beta / (p.alpha - 1), np.inf)

    def _variance(self, p):
        v = ad.square(p.beta) / (ad.square(p.alpha - 1) * (p.alpha - 2))
        return ad.where(_raw(p.alpha) > 2, v, np.inf)

    def _entropy(self, p):
        return (p.alpha + ad.log(p.beta) + ad.lgamma(p.alpha)
                - (1 + p.alpha) * ad.digamma(p.alpha))


class Exponential(Distribution):
    """Exponential with ``rate``; reparameterized ``E / rate``."""
    arg_constraints = {"rate": c.positive}
    support = c.nonnegative
    has_rsample = True

    def __init__(self, rate, **kwargs):
        super().__init__(dict(rate=rate), **kwargs)

    def _sample(self, shape, rng, p):
        return _std_exponential(self, rng, shape) / p.rate

    def _log_prob(self, x, p):
        return ad.log(p.rate) - p.rate * x

    def _mean(self, p):
        return 1 / p.rate

    def _variance(self, p):
        return 1 / ad.square(p.rate)

    def _entropy(self, p):
        return 1 - ad.log(p.rate)


class Laplace(Distribution):
    """Laplace ``(loc, scale)``; reparameterized ``loc + scale * (E1 - E2)``."""
    arg_constraints = {"loc": c.real, "scale": c.positive}
    has_rsample = True

    def __init__(self, loc, scale, **kwargs):
        super().__init__(dict(loc=loc, scale=scale), **kwargs)

    def _sample(self, shape, rng, p):
        e = _std_exponential(self, rng, shape) - _std_exponential(self, rng, shape)
        return p.loc + p.scale * e

    def _log_prob(self, x, p):
        return -math.log(2) - ad.log(p.scale) - ad.abs(x - p.loc) / p.scale

    def _mean(self, p):
        return p.loc

    def _variance(self, p):
        return 2 * ad.square(p.scale)

    def _entropy(self, p):
        return 1 + math.log(2) + ad.log(p.scale)


class Logistic(Distribution):
    """Logistic ``(loc, scale)``; reparameterized ``loc + scale * log(u / (1 - u))``."""
    arg_constraints = {"loc": c.real, "scale": c.positive}
    has_rsample = True

    def __init__(self, loc, scale, **kwargs):
        super().__init__(dict(loc=loc, scale=scale), **kwargs)

    def _sample(self, shape, rng, p):
        return p.loc + p.scale * _std_logistic(self, rng, shape)

    def _log_prob(self, x, p):
        return logistic_log_density((x - p.loc) / p.scale) - ad.log(p.scale)

    def _mean(self, p):
        return p.loc

    def _variance(self, p):
        return ad.square(p.scale) * (math.pi ** 2 / 3)

    def _entropy(self, p):
        return ad.log(p.scale) + 2


class StudentT(Distribution):
    """Student's t with ``df``, ``loc``, ``scale``.

    Reparameterized as ``loc + scale * eps * sqrt(df / V)`` with ``V = 2 G``,
    ``G ~ Gamma(df / 2, 1)`` (implicit gradients, so ``df`` is differentiable too).
    ``mean`` is NaN for df <= 1; ``variance`` is inf for 1 < df <= 2 and NaN for df <= 1.
    """
    arg_constraints = {"df": c.positive, "loc": c.real, "scale": c.positive}
    has_rsample = True

    def __init__(self, df, loc, scale, **kwargs):
        super().__init__(dict(df=df, loc=loc, scale=scale), **kwargs)

    def _sample(self, shape, rng, p):
        # df = inf is the Normal: the chi-square ratio is exactly 1 there
        finite = ad.isfinite(p.df)
        df = ad.where(finite, p.df, 1.0)
        g = _gamma_noise(self, 0.5 * df, rng, shape)
        t = _normal(self, rng, shape) * ad.where(finite, ad.sqrt(0.5 * df / g), 1.0)
        return p.loc + p.scale * t

    def _log_prob(self, x, p):
        # lgamma((df+1)/2) - lgamma(df/2) - log(df pi)/2 - (df+1)/2 log1p(z^2/df), written
        # so that df -> inf gives the Normal: the lgamma difference through
        # lgamma_half_ratio and (df+1)/2 log1p(t) as (1 + 1/df) z^2/2 * log1p(t)/t
        z2 = ad.square((x - p.loc) / p.scale)
        inv_df = 1.0 / p.df
        return (lgamma_half_ratio(0.5 * p.df) - _HALF_LOG_2PI - ad.log(p.scale)
                - 0.5 * (1 + inv_df) * z2 * log1p_over(z2 * inv_df))

    def _mean(self, p):
        return ad.where(_raw(p.df) > 1, p.loc, np.nan)

    def _variance(self, p):
        df = _raw(p.df)
        v = ad.square(p.scale) / (1 - 2 / ad.where(df > 2, p.df, 3.0))   # inf: scale^2
        return ad.where(df > 2, v, ad.where(df > 1, np.inf, np.nan))

    def _entropy(self, p):
        # h (psi(h) - psi(df/2)) + log(df)/2 + lbeta(df/2, 1/2) with h = (df+1)/2, as
        # functions of x = df/2 that stay finite at df = inf (the Normal's entropy)
        x = 0.5 * p.df
        return (digamma_half_term(x) + _HALF_LOG_2PI - lgamma_half_ratio(x)
                + ad.log(p.scale))


class Cauchy(Distribution):
    """Cauchy ``(loc, scale)``; reparameterized ``loc + scale * tan(pi (u - 1/2))``.
    It has no mean or variance (NotImplementedError)."""
    arg_constraints = {"loc": c.real, "scale": c.positive}
    has_rsample = True

    def __init__(self, loc, scale, **kwargs):
        super().__init__(dict(loc=loc, scale=scale), **kwargs)

    def _sample(self, shape, rng, p):
        xp = self._xp
        return p.loc + p.scale * _open_uniform(self, rng, shape, (),
                                               lambda u: xp.tan(math.pi * (u - 0.5)))

    def _log_prob(self, x, p):
        return -_LOG_PI - ad.log(p.scale) - ad.log1p(ad.square((x - p.loc) / p.scale))

    def _entropy(self, p):
        return math.log(4 * math.pi) + ad.log(p.scale)


class HalfCauchy(Distribution):
    """Half-Cauchy ``|y|``, y ~ Cauchy(0, scale); reparameterized. No mean or variance."""
    arg_constraints = {"scale": c.positive}
    support = c.nonnegative
    has_rsample = True

    def __init__(self, scale, **kwargs):
        super().__init__(dict(scale=scale), **kwargs)

    def _sample(self, shape, rng, p):
        xp = self._xp
        return p.scale * _open_uniform(self, rng, shape, (), lambda u: xp.tan(0.5 * math.pi * u))

    def _log_prob(self, x, p):
        return (math.log(2) - _LOG_PI - ad.log(p.scale)
                - ad.log1p(ad.square(x / p.scale)))

    def _entropy(self, p):
        return math.log(2 * math.pi) + ad.log(p.scale)


class BinConcrete(Distribution):
    """Binary Concrete (relaxed Bernoulli) on (0, 1) with ``temperature`` and ``logits``
    (Maddison, Mnih & Teh 2017; Jang, Gu & Poole 2017).

    Samples are ``sigmoid((logits + log u - log(1 - u)) / temperature)``
    (reparameterized); the density is
    ``tau a x^(-tau-1) (1-x)^(-tau-1) / (a x^(-tau) + (1-x)^(-tau))^2`` with
    ``a = exp(logits)``. No closed-form moments.
    """
    arg_constraints = {"temperature": c.positive, "logits": c.real}
    support = c.unit_interval
    has_rsample = True

    def __init__(self, temperature, logits, **kwargs):
        super().__init__(dict(temperature=temperature, logits=logits), **kwargs)

    def _sample(self, shape, rng, p):
        return ad.sigmoid((p.logits + _std_logistic(self, rng, shape)) / p.temperature)

    def _log_prob(self, x, p):
        # In logit space u = t logit(x) - logits is standard logistic; with the Jacobian
        # of the logit, log p = log t + u - 2 softplus(u) - log x - log(1 - x). Expanded
        # on the side of the sign of u (the density is symmetric in u), the unbounded
        # terms become (t - 1) log x or (t - 1) log(1 - x) (xlogy: 0 at t = 1), so x = 0
        # and x = 1 give the limit (+inf, finite or -inf) instead of inf - inf.
        t, lg = p.temperature, p.logits
        pos, below1 = ad.greater(x, 0), ad.less(x, 1)
        inner = ad.logical_and(pos, below1)
        xs = ad.where(inner, x, 0.5)
        u = t * (ad.log(xs) - ad.log1p(-xs)) - lg          # finite stand-in at 0 and 1
        neg = ad.where(inner, ad.less_equal(u, 0), ad.logical_not(pos))   # x = 0: left
        xl, xr = ad.where(neg, x, 0.5), ad.where(neg, 0.5, x)
        # softplus(u) -> 0 as x -> 0 (u -> -inf) and softplus(-u) -> 0 as x -> 1
        sl = ad.where(inner, ad.softplus(ad.where(neg, u, 0.0)), 0.0)
        sr = ad.where(inner, ad.softplus(-ad.where(neg, 0.0, u)), 0.0)
        left = _xlogy(t - 1, xl) - (t + 1) * ad.log1p(-xl) - lg - 2 * sl
        right = -(t + 1) * ad.log(xr) + _xlog1my(t - 1, xr) + lg - 2 * sr
        return ad.log(t) + ad.where(neg, left, right)
