"""The one table of distribution cases that drives most distribution tests.

Each :class:`Case` names a class, its parameters (float64 NumPy arrays, several with
broadcasting shapes), a reference log-density (``scipy.stats`` where it has the
distribution, else an independent NumPy formula) and which tests apply.
"""
from typing import Callable, NamedTuple, Optional

import numpy as np
import scipy.special as sps
from scipy import stats

import zsarray.distributions as zd

__all__ = ["Case", "CASES", "CASE_IDS", "bcast_loop"]

_r = np.random.default_rng(1234)


def _u(lo, hi, *shape):
    return _r.uniform(lo, hi, size=shape)


def _n(*shape):
    return _r.standard_normal(shape)


def _tril(*shape):
    n = shape[-1]
    a = 0.3 * _r.standard_normal(shape)
    a = np.tril(a, -1)
    idx = np.arange(n)
    a[..., idx, idx] = _r.uniform(0.5, 1.5, size=shape[:-1])
    return a


class Case(NamedTuple):
    cls: type
    params: dict
    ref: Optional[Callable]            # ref(params, x) -> log-density array
    kwargs: dict = {}
    moments: bool = True               # check mean/variance against samples
    var_ok: bool = True                # the variance is finite (and its estimate stable)
    entropy: bool = True               # check entropy against -E[log p]
    crn_params: tuple = ()             # parameters with smooth common-random-number samples
    fn: Callable = np.tanh             # test function for reparameterized gradients
    id: str = ""


def bcast_loop(fn, batch_shape, *arrays_and_ndims):
    """Evaluate ``fn(*per_element_args)`` over the broadcast batch (for scipy's
    non-broadcasting multivariate distributions)."""
    arrays = [a for a, _ in arrays_and_ndims]
    nds = [nd for _, nd in arrays_and_ndims]
    lead = np.broadcast_shapes(batch_shape, *[a.shape[:a.ndim - nd] for a, nd in zip(arrays, nds)])
    arrays = [np.broadcast_to(a, lead + a.shape[a.ndim - nd:]) for a, nd in zip(arrays, nds)]
    out = np.empty(lead)
    for i in np.ndindex(*lead):
        out[i] = fn(*[a[i] for a in arrays])
    return out


def _mvn_ref(p, x):
    cov = p["cov_tril"] @ np.swapaxes(p["cov_tril"], -1, -2)
    return bcast_loop(lambda m, c, xx: stats.multivariate_normal(m, c).logpdf(xx), (),
                      (p["mean"], 1), (cov, 2), (x, 1))


def _matnorm_ref(p, x):
    u = p["u_tril"] @ np.swapaxes(p["u_tril"], -1, -2)
    v = p["v_tril"] @ np.swapaxes(p["v_tril"], -1, -2)
    return bcast_loop(lambda m, a, b, xx: stats.matrix_normal(m, a, b).logpdf(xx), (),
                      (p["mean"], 2), (u, 2), (v, 2), (x, 2))


def _multinomial_ref(p, x):
    probs = sps.softmax(p["logits"], axis=-1)
    n = np.asarray(p["n_experiments"])
    return bcast_loop(lambda nn, q, xx: stats.multinomial(int(nn), q).logpmf(xx), (),
                      (n, 0), (probs, 1), (x, 1))


def _dirichlet_ref(p, x):
    return bcast_loop(lambda a, xx: stats.dirichlet(a).logpdf(xx), (), (p["alpha"], 1), (x, 1))


def _categorical_ref(p, x):
    lsm = sps.log_softmax(p["logits"], axis=-1)
    lsm, xi = np.broadcast_arrays(lsm, x.astype(int)[..., None])
    return np.take_along_axis(lsm, xi[..., :1], axis=-1)[..., 0]


def _lsm(p):
    return sps.log_softmax(p["logits"], axis=-1)


CASES = [
    Case(zd.Normal, dict(mean=_n(2, 3), std=_u(0.5, 2, 3)),
         lambda p, x: stats.norm(p["mean"], p["std"]).logpdf(x),
         crn_params=("mean", "std"), id="Normal-std"),
    Case(zd.Normal, dict(mean=_n(3), logstd=_u(-0.5, 0.5, 2, 1)),
         lambda p, x: stats.norm(p["mean"], np.exp(p["logstd"])).logpdf(x),
         crn_params=("mean", "logstd"), id="Normal-logstd"),
    Case(zd.FoldNormal, dict(mean=np.array([-1.0, 0.3, 2.0]), std=_u(0.5, 1.5, 3)),
         lambda p, x: stats.foldnorm(np.abs(p["mean"]) / p["std"], scale=p["std"]).logpdf(x),
         entropy=False, crn_params=("mean", "std"), id="FoldNormal"),
    Case(zd.HalfNormal, dict(std=_u(0.5, 2, 2, 3)),
         lambda p, x: stats.halfnorm(scale=p["std"]).logpdf(x), crn_params=("std",),
         id="HalfNormal"),
    Case(zd.LogNormal, dict(mean=0.3 * _n(2, 3), std=_u(0.2, 0.6, 3)),
         lambda p, x: stats.lognorm(p["std"], scale=np.exp(p["mean"])).logpdf(x),
         crn_params=("mean", "std"), id="LogNormal"),
    Case(zd.Bernoulli, dict(logits=_n(2, 3)),
         lambda p, x: stats.bernoulli(sps.expit(p["logits"])).logpmf(x), id="Bernoulli-logits"),
    Case(zd.Bernoulli, dict(probs=_u(0.1, 0.9, 3)),
         lambda p, x: stats.bernoulli(p["probs"]).logpmf(x), id="Bernoulli-probs"),
    Case(zd.Categorical, dict(logits=_n(2, 4)), _categorical_ref, id="Categorical"),
    Case(zd.Uniform, dict(minval=_n(2, 1), maxval=_u(2, 3, 3)),
         lambda p, x: stats.uniform(p["minval"], p["maxval"] - p["minval"]).logpdf(x),
         crn_params=("minval", "maxval"), id="Uniform"),
    Case(zd.Gamma, dict(alpha=_u(0.5, 3, 2, 3), beta=_u(0.5, 2, 3)),
         lambda p, x: stats.gamma(p["alpha"], scale=1 / p["beta"]).logpdf(x),
         crn_params=("beta",), id="Gamma"),
    Case(zd.Beta, dict(alpha=_u(0.5, 3, 3), beta=_u(0.5, 3, 2, 1)),
         lambda p, x: stats.beta(p["alpha"], p["beta"]).logpdf(x), id="Beta"),
    Case(zd.Poisson, dict(rate=_u(0.5, 5, 2, 3)),
         lambda p, x: stats.poisson(p["rate"]).logpmf(x), entropy=False, id="Poisson"),
    Case(zd.Binomial, dict(logits=_n(2, 3), n_experiments=np.array([3, 7, 10])),
         lambda p, x: stats.binom(p["n_experiments"], sps.expit(p["logits"])).logpmf(x),
         entropy=False, id="Binomial"),
    Case(zd.InverseGamma, dict(alpha=_u(5, 8, 3), beta=_u(0.5, 2, 2, 1)),
         lambda p, x: stats.invgamma(p["alpha"], scale=p["beta"]).logpdf(x),
         crn_params=("beta",), id="InverseGamma"),
    Case(zd.Laplace, dict(loc=_n(2, 3), scale=_u(0.5, 2, 3)),
         lambda p, x: stats.laplace(p["loc"], p["scale"]).logpdf(x),
         crn_params=("loc", "scale"), id="Laplace"),
    Case(zd.Exponential, dict(rate=_u(0.5, 2, 2, 3)),
         lambda p, x: stats.expon(scale=1 / p["rate"]).logpdf(x), crn_params=("rate",),
         id="Exponential"),
    Case(zd.Logistic, dict(loc=_n(3), scale=_u(0.5, 2, 2, 1)),
         lambda p, x: stats.logistic(p["loc"], p["scale"]).logpdf(x),
         crn_params=("loc", "scale"), id="Logistic"),
    Case(zd.StudentT, dict(df=_u(5, 9, 3), loc=_n(2, 3), scale=_u(0.5, 2, 3)),
         lambda p, x: stats.t(p["df"], p["loc"], p["scale"]).logpdf(x),
         crn_params=("loc", "scale"), id="StudentT"),
    Case(zd.Cauchy, dict(loc=_n(2, 3), scale=_u(0.5, 2, 3)),
         lambda p, x: stats.cauchy(p["loc"], p["scale"]).logpdf(x), moments=False,
         crn_params=("loc", "scale"), id="Cauchy"),
    Case(zd.HalfCauchy, dict(scale=_u(0.5, 2, 2, 3)),
         lambda p, x: stats.halfcauchy(scale=p["scale"]).logpdf(x), moments=False,
         crn_params=("scale",), id="HalfCauchy"),
    Case(zd.BinConcrete, dict(temperature=np.array(0.7), logits=_n(2, 3)), None,
         moments=False, entropy=False, crn_params=("temperature", "logits"),
         id="BinConcrete"),
    Case(zd.MultivariateNormalCholesky, dict(mean=_n(2, 3), cov_tril=_tril(3, 3)), _mvn_ref,
         crn_params=("mean", "cov_tril"), id="MVN"),
    Case(zd.MatrixVariateNormalCholesky,
         dict(mean=_n(2, 3, 2), u_tril=_tril(3, 3), v_tril=_tril(2, 2, 2)), _matnorm_ref,
         crn_params=("mean", "u_tril", "v_tril"), id="MatrixNormal"),
    Case(zd.Multinomial, dict(logits=_n(2, 4), n_experiments=np.array([5, 9])),
         _multinomial_ref, entropy=False, id="Multinomial"),
    Case(zd.OnehotCategorical, dict(logits=_n(2, 4)),
         lambda p, x: np.sum(np.where(x == 1, _lsm(p), 0), -1), id="OnehotCategorical"),
    Case(zd.Dirichlet, dict(alpha=_u(0.5, 3, 2, 4)), _dirichlet_ref, id="Dirichlet"),
    Case(zd.ExpConcrete, dict(temperature=np.array([0.5, 1.5]), logits=_n(4)), None,
         moments=False, entropy=False, crn_params=("temperature", "logits"),
         id="ExpConcrete"),
    Case(zd.Concrete, dict(temperature=np.array([0.7, 1.5]), logits=_n(4)), None,
         moments=False, entropy=False, crn_params=("temperature", "logits"), id="Concrete"),
]
CASE_IDS = [c.id for c in CASES]
