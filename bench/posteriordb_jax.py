"""JAX twins of the posteriordb log densities, for benchmarks against NumPyro.

The benchmarks that compare zsarray's NUTS with NumPyro's need NumPyro to sample exactly the
same posteriors. :func:`build_jax` returns, for each posterior of
:mod:`tests.posteriordb.models`, its log density for ONE chain written with :mod:`jax.numpy`:
``logdensity(u [dim]) -> scalar``, on the same unconstrained space, with the same
parametrization, the same log-Jacobians and the same dropped constants as the autodiff
``Model.logdensity`` (which maps ``[n_chains, dim]`` to ``[n_chains]``). Hand it to NumPyro
as a ``potential_fn`` (its negative).

JAX is an optional benchmark dependency: this module imports it at the top and turns on
float64 (``jax_enable_x64``), so import it only from benchmarks.

The data is read from ``../shared/posteriordb`` (posteriordb, BSD-3-Clause; see its
``LICENSE-posteriordb.txt``), located by :func:`tests.posteriordb.models.find_posteriordb`,
and preprocessed in NumPy exactly as the autodiff builders do (the design matrices, diamonds'
centring, arK's lag matrix). ``bench/check_posteriordb_jax.py`` checks that values and
gradients agree with the autodiff versions to 1e-9 relative at random points::

    PYTHONPATH=. python bench/check_posteriordb_jax.py
"""
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular

from tests.posteriordb.models import POSTERIORS, find_posteriordb

jax.config.update("jax_enable_x64", True)

__all__ = ["JAX_MODELS", "build_jax"]


# ----------------------------------------------------------------------------- helpers

def _data(root, name):
    with open(root / name / "data.json") as f:
        return json.load(f)


def _normal_ll(y, mean, s):
    """Sum of log Normal(y | mean, exp(s)) over ``y [N]``, constant dropped."""
    rss = jnp.sum(jnp.square(y - mean))
    return -0.5 * rss * jnp.exp(-2.0 * s) - y.shape[0] * s


def _half_cauchy_lp(sigma, scale):
    """log half-Cauchy(sigma | 0, scale) up to a constant."""
    return -jnp.log1p(jnp.square(sigma / scale))


def _student_t_lp(x, nu, loc, scale):
    """log Student-t(x | nu, loc, scale) up to a constant (scale fixed)."""
    return -0.5 * (nu + 1.0) * jnp.log1p(jnp.square((x - loc) / scale) / nu)


def _regression(design, y, log_prior=None):
    """Gaussian linear regression ``y ~ Normal(design @ beta, sigma)``, u = (beta, log sigma).

    Parameters
    ----------
    design : ndarray [N, P]
        Design matrix (intercept column included when the model has one).
    y : array_like [N]
    log_prior : callable, optional
        ``(beta [P], sigma scalar) -> scalar``; flat priors when None.

    Returns
    -------
    callable
        ``u [P + 1] -> scalar``.
    """
    design = jnp.asarray(design, dtype=jnp.float64)
    y = jnp.asarray(y, dtype=jnp.float64)
    p = design.shape[1]

    def logdensity(u):
        beta, s = u[:p], u[p]
        lp = _normal_ll(y, design @ beta, s) + s               # + s: Jacobian of sigma = exp(s)
        if log_prior is not None:
            lp = lp + log_prior(beta, jnp.exp(s))
        return lp

    return logdensity


# ----------------------------------------------------------------------------- posteriors

def kidiq_kidscore_momiq(root):
    """kid_score ~ Normal(beta1 + beta2 mom_iq, sigma); u = (beta[1], beta[2], log sigma)."""
    d = _data(root, "kidiq-kidscore_momiq")
    x = np.asarray(d["mom_iq"], dtype=np.float64)
    design = np.stack([np.ones_like(x), x], axis=1)
    return _regression(design, d["kid_score"],
                       log_prior=lambda beta, sigma: _half_cauchy_lp(sigma, 2.5))


def gp_pois_regr_gp_regr(root):
    """Marginalised GP regression y ~ MVN(0, K + sigma I); u = (log rho, log alpha, log sigma).

    ``sigma`` enters the diagonal as a variance (posteriordb's quirk).
    """
    d = _data(root, "gp_pois_regr-gp_regr")
    x = np.asarray(d["x"], dtype=np.float64)
    y = jnp.asarray(d["y"], dtype=jnp.float64)
    sqdist = jnp.asarray(np.square(x[:, None] - x[None, :]))  # [N, N]
    eye = jnp.eye(x.shape[0])

    def logdensity(u):
        rho, alpha, sigma = jnp.exp(u[0]), jnp.exp(u[1]), jnp.exp(u[2])
        cov = jnp.square(alpha) * jnp.exp(-sqdist * (0.5 / jnp.square(rho))) + sigma * eye
        chol = jnp.linalg.cholesky(cov)
        z = solve_triangular(chol, y, lower=True)
        lik = -0.5 * jnp.sum(jnp.square(z)) - jnp.sum(jnp.log(jnp.diagonal(chol)))
        prior = (24.0 * u[0] - 4.0 * rho                      # Gamma(25, 4) on rho
                 - jnp.square(alpha) / 8.0                     # half-Normal(0, 2)
                 - 0.5 * jnp.square(sigma))                    # half-Normal(0, 1)
        return lik + prior + jnp.sum(u)                        # + Jacobians of the three exps

    return logdensity


def low_dim_gauss_mix_low_dim_gauss_mix(root):
    """Two-component normal mixture with ordered means.

    u = (a, b, log sigma1, log sigma2, logit theta); mu1 = a, mu2 = a + exp(b).
    """
    y = jnp.asarray(_data(root, "low_dim_gauss_mix-low_dim_gauss_mix")["y"], dtype=jnp.float64)

    def logdensity(u):
        a, b, s1, s2, c = u
        mu1, mu2 = a, a + jnp.exp(b)
        sigma1, sigma2 = jnp.exp(s1), jnp.exp(s2)
        log_theta, log_1m_theta = jax.nn.log_sigmoid(c), jax.nn.log_sigmoid(-c)
        lp1 = log_theta - s1 - 0.5 * jnp.square((y - mu1) / sigma1)   # [N], constant dropped
        lp2 = log_1m_theta - s2 - 0.5 * jnp.square((y - mu2) / sigma2)
        lik = jnp.sum(jnp.logaddexp(lp1, lp2))
        prior = (-0.125 * (jnp.square(mu1) + jnp.square(mu2))           # Normal(0, 2)
                 - 0.125 * (jnp.square(sigma1) + jnp.square(sigma2))     # half-Normal(0, 2)
                 + 4.0 * (log_theta + log_1m_theta))                     # Beta(5, 5)
        jacobian = b + s1 + s2 + log_theta + log_1m_theta   # ordered, two scales, logistic
        return lik + prior + jacobian

    return logdensity


def ark_ark(root):
    """AR(5): y[t] ~ Normal(alpha + sum_k beta[k] y[t-k], sigma); u = (alpha, beta, log sigma)."""
    d = _data(root, "arK-arK")
    k, y = int(d["K"]), np.asarray(d["y"], dtype=np.float64)
    t = y.shape[0]
    lags = np.stack([y[k - j - 1: t - j - 1] for j in range(k)], axis=1)   # [T-K, K]
    design = np.concatenate([np.ones((t - k, 1)), lags], axis=1)

    def log_prior(coef, sigma):
        return (-0.5 / 100.0 * jnp.sum(jnp.square(coef))    # alpha, beta ~ Normal(0, 10)
                + _half_cauchy_lp(sigma, 2.5))

    return _regression(design, y[k:], log_prior)


def sblrc_blr(root):
    """y ~ Normal(X beta, sigma), Normal(0, 10) priors; u = (beta[1..5], log sigma)."""
    d = _data(root, "sblrc-blr")

    def log_prior(beta, sigma):
        return -0.5 / 100.0 * (jnp.sum(jnp.square(beta)) + jnp.square(sigma))

    return _regression(np.asarray(d["X"], dtype=np.float64), d["y"], log_prior)


def eight_schools_eight_schools_noncentered(root):
    """Non-centred eight schools; u = (theta_trans[1..8], mu, log tau)."""
    d = _data(root, "eight_schools-eight_schools_noncentered")
    y = jnp.asarray(d["y"], dtype=jnp.float64)
    se = jnp.asarray(d["sigma"], dtype=jnp.float64)
    j = y.shape[0]

    def logdensity(u):
        tt, mu, s = u[:j], u[j], u[j + 1]
        tau = jnp.exp(s)
        lik = -0.5 * jnp.sum(jnp.square((y - (mu + tau * tt)) / se))
        prior = (-0.5 * jnp.sum(jnp.square(tt))               # theta_trans ~ N(0, 1)
                 - 0.5 * jnp.square(mu / 5.0)                  # mu ~ N(0, 5)
                 + _half_cauchy_lp(tau, 5.0))                  # tau ~ half-Cauchy(0, 5)
        return lik + prior + s                                 # + s: tau = exp(s)

    return logdensity


def nes2000_nes(root):
    """Party-id regression on 8 predictors (age as 3 indicators), flat priors; dim 10."""
    d = {k: np.asarray(v, dtype=np.float64) for k, v in _data(root, "nes2000-nes").items()}
    age = d["age_discrete"]
    design = np.stack([np.ones_like(age), d["real_ideo"], d["race_adj"],
                       (age == 2).astype(float), (age == 3).astype(float),
                       (age == 4).astype(float), d["educ1"], d["gender"], d["income"]], axis=1)
    return _regression(design, d["partyid7"])


def mesquite_logmesquite_logvas(root):
    """log weight on log canopy volume/area/shape, log height, log density, group; dim 8."""
    d = {k: np.asarray(v, dtype=np.float64)
         for k, v in _data(root, "mesquite-logmesquite_logvas").items()}
    d1, d2 = d["diam1"], d["diam2"]
    design = np.stack([np.ones_like(d1), np.log(d1 * d2 * d["canopy_height"]),
                       np.log(d1 * d2), np.log(d1 / d2), np.log(d["total_height"]),
                       np.log(d["density"]), d["group"]], axis=1)
    return _regression(design, np.log(d["weight"]))


def garch_garch11(root):
    """GARCH(1,1), flat prior on the triangle alpha1, beta1 > 0, alpha1 + beta1 < 1.

    u = (mu, log alpha0, logit alpha1, logit(beta1 / (1 - alpha1))). The variance recursion
    is a :func:`jax.lax.scan` over time.
    """
    d = _data(root, "garch-garch11")
    y = jnp.asarray(d["y"], dtype=jnp.float64)
    sigma1_sq = jnp.asarray(float(d["sigma1"]) ** 2)

    def logdensity(u):
        mu, a, b, c = u
        alpha0, alpha1 = jnp.exp(a), jax.nn.sigmoid(b)
        beta1 = jax.nn.sigmoid(-b) * jax.nn.sigmoid(c)
        resid = y - mu                                                   # [T]

        def step(h_prev, drive):
            h = drive + beta1 * h_prev
            return h, h

        # sigma_t^2 = alpha0 + alpha1 (y[t-1] - mu)^2 + beta1 sigma_{t-1}^2, t = 2..T
        _, h = jax.lax.scan(step, sigma1_sq, alpha0 + alpha1 * jnp.square(resid[:-1]))
        sigma2 = jnp.concatenate([sigma1_sq[None], h])                   # [T]
        lik = -0.5 * jnp.sum(jnp.square(resid) / sigma2 + jnp.log(sigma2))
        # Jacobians of alpha0 = e^a, alpha1 = logistic(b), beta1 = (1 - alpha1) logistic(c)
        jacobian = (a + jax.nn.log_sigmoid(b) + 2.0 * jax.nn.log_sigmoid(-b)
                    + jax.nn.log_sigmoid(c) + jax.nn.log_sigmoid(-c))
        return lik + jacobian

    return logdensity


def kilpisjarvi_mod_kilpisjarvi(root):
    """y ~ Normal(alpha + beta x, sigma), x ~ 4000; u = (alpha, beta, log sigma)."""
    d = _data(root, "kilpisjarvi_mod-kilpisjarvi")
    x = np.asarray(d["x"], dtype=np.float64)
    design = np.stack([np.ones_like(x), x], axis=1)
    mu_a, sd_a = float(d["pmualpha"]), float(d["psalpha"])
    mu_b, sd_b = float(d["pmubeta"]), float(d["psbeta"])

    def log_prior(beta, sigma):
        return (-0.5 * jnp.square((beta[0] - mu_a) / sd_a)
                - 0.5 * jnp.square((beta[1] - mu_b) / sd_b))

    return _regression(design, d["y"], log_prior)


def diamonds_diamonds(root):
    """brms regression of log price on 24 centred predictors; u = (b, Intercept, log sigma)."""
    d = _data(root, "diamonds-diamonds")
    x = np.asarray(d["X"], dtype=np.float64)[:, 1:]        # drop the intercept column
    xc = x - x.mean(axis=0)                                  # centre (brms transformed data)
    k = xc.shape[1]
    design = np.concatenate([xc, np.ones((xc.shape[0], 1))], axis=1)   # coefficients (b, Icpt)

    def log_prior(coef, sigma):
        return (-0.5 * jnp.sum(jnp.square(coef[:k]))         # b ~ Normal(0, 1)
                + _student_t_lp(coef[k], 3.0, 8.0, 10.0)     # Intercept ~ t_3(8, 10)
                + _student_t_lp(sigma, 3.0, 0.0, 10.0))      # sigma ~ half-t_3(0, 10)

    return _regression(design, d["Y"], log_prior)


#: posterior name -> builder ``(root: Path) -> logdensity``.
JAX_MODELS = {
    "kidiq-kidscore_momiq": kidiq_kidscore_momiq,
    "gp_pois_regr-gp_regr": gp_pois_regr_gp_regr,
    "low_dim_gauss_mix-low_dim_gauss_mix": low_dim_gauss_mix_low_dim_gauss_mix,
    "arK-arK": ark_ark,
    "sblrc-blr": sblrc_blr,
    "eight_schools-eight_schools_noncentered": eight_schools_eight_schools_noncentered,
    "nes2000-nes": nes2000_nes,
    "mesquite-logmesquite_logvas": mesquite_logmesquite_logvas,
    "garch-garch11": garch_garch11,
    "kilpisjarvi_mod-kilpisjarvi": kilpisjarvi_mod_kilpisjarvi,
    "diamonds-diamonds": diamonds_diamonds,
}
assert tuple(JAX_MODELS) == POSTERIORS


def build_jax(name, root=None):
    """The JAX log density of posterior ``name`` for one chain.

    Parameters
    ----------
    name : str
        posteriordb posterior name, one of ``POSTERIORS``.
    root : str or pathlib.Path, optional
        The posteriordb folder; :func:`find_posteriordb` when None.

    Returns
    -------
    callable
        ``logdensity(u)``: ``u [dim]`` (float64 JAX array) -> scalar, the same function as
        ``build_model(name).logdensity`` for one chain (log-Jacobians included, the same
        constants dropped). Differentiable and jit-able.

    Raises
    ------
    KeyError
        Unknown posterior name.
    FileNotFoundError
        The posteriordb folder cannot be located.
    """
    if name not in JAX_MODELS:
        raise KeyError(f"unknown posterior {name!r}; known: {', '.join(POSTERIORS)}")
    root = Path(root) if root is not None else find_posteriordb()
    if root is None:
        raise FileNotFoundError(
            "posteriordb data not found: set ZSARRAY_SHARED to the folder holding "
            "posteriordb/, or put it at <repo>/../shared/posteriordb")
    return JAX_MODELS[name](root)
