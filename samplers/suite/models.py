"""The posteriordb reference posteriors as batched log densities on the unconstrained space.

Eleven posteriors of posteriordb (https://github.com/stan-dev/posteriordb, BSD-3-Clause,
see ``data/LICENSE-posteriordb.txt``), each written here as one function named after
it. The data ship with the package (``data/<name>.npz``, the posteriordb data unchanged)
together with summaries of posteriordb's reference draws (``data/references.json``:
mean, sd, MCSE of the mean and quantiles per reported quantity); the draws themselves
do not (:func:`load_draws` reads them from a posteriordb folder). Each function returns
a :class:`Model` with

- ``logdensity(u) -> [n_chains]`` for ``u`` of shape ``[n_chains, dim]``: the log posterior
  (additive constants dropped) on the unconstrained space, *including* the log-Jacobians of
  the transforms, written with :mod:`autodiff` ops and vectorized over chains;
- ``to_unconstrained(x) -> u``: constrained draws ``x [n, n_params]`` (columns in the order of
  the reference) to ``u [n, dim]`` (plain NumPy);
- ``to_reported(u) -> x``: the inverse, ``u [..., dim]`` to the reported quantities
  ``x [..., n_params]`` in ``param_names`` order (plain NumPy).

``MODELS[name]`` builds (and caches) a model; :func:`load_reference` reads the reference
summaries.

Conventions: ``sigma = exp(s)`` for every positive scale, with log-Jacobian ``+ s``; the
normal log density is written without its ``-log(2 pi)/2`` constant.
"""
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

import autodiff as ad

__all__ = ["Model", "MODELS", "POSTERIORS", "find_posteriordb", "build_model",
           "load_reference", "load_draws", "garch_sigma2_reference", "DATA"]

#: The folder of the packaged data and reference summaries.
DATA = Path(__file__).resolve().parent / "data"

#: The posteriors, in the README's suggested order of use.
POSTERIORS = (
    "kidiq-kidscore_momiq",
    "gp_pois_regr-gp_regr",
    "low_dim_gauss_mix-low_dim_gauss_mix",
    "arK-arK",
    "sblrc-blr",
    "eight_schools-eight_schools_noncentered",
    "nes2000-nes",
    "mesquite-logmesquite_logvas",
    "garch-garch11",
    "kilpisjarvi_mod-kilpisjarvi",
    "diamonds-diamonds",
)


# ----------------------------------------------------------------------------- locating data

def find_posteriordb():
    """A full posteriordb folder (with the reference draws), or None when none is found.

    Looks in ``$ZSARRAY_SHARED/posteriordb`` first, then ``<repo>/../shared/posteriordb``
    (``<repo>`` being the checkout holding this package). Only :func:`load_draws` needs
    it: the data and the reference summaries ship with the package.

    Returns
    -------
    pathlib.Path or None
    """
    candidates = []
    env = os.environ.get("ZSARRAY_SHARED")
    if env:
        candidates.append(Path(env) / "posteriordb")
    repo = Path(__file__).resolve().parents[2]      # samplers/suite/models.py -> repo
    candidates.append(repo.parent / "shared" / "posteriordb")
    for c in candidates:
        if (c / "README.md").is_file():
            return c
    return None


def _root(root=None):
    root = Path(root) if root is not None else find_posteriordb()
    if root is None:
        raise FileNotFoundError(
            "posteriordb data not found: set ZSARRAY_SHARED to the folder holding "
            "posteriordb/, or put it at <repo>/../shared/posteriordb")
    return root


_REFERENCES = {}


def load_reference(name, root=None):
    """Reference summaries of posterior ``name``: a dict with ``parameters`` (per reported
    quantity: ``mean``, ``sd``, ``mcse_mean``, ``q05``, ``median``, ``q95``, ``ess_bulk``,
    ``constraint``), ``source`` and ``reference_method``.

    From the packaged ``data/references.json``, or from ``<root>/<name>/reference.json``
    (posteriordb's layout, more fields) when ``root`` is given."""
    if root is not None:
        with open(Path(root) / name / "reference.json") as f:
            return json.load(f)
    if not _REFERENCES:
        with open(DATA / "references.json") as f:
            _REFERENCES.update(json.load(f))
    if name not in _REFERENCES:
        raise KeyError(f"unknown posterior {name!r}; known: {', '.join(POSTERIORS)}")
    return _REFERENCES[name]


def load_draws(name, root=None):
    """Reference draws of ``name``.

    Returns
    -------
    draws : ndarray, shape [10000, n_params], float64
        Constrained draws, columns in ``param_names`` order.
    param_names : list of str
    chain : ndarray, shape [10000]
        Reference chain index (0..9) of each row.
    """
    z = np.load(_root(root) / name / "draws.npz")
    return z["draws"].astype(np.float64), [str(p) for p in z["param_names"]], z["chain"]


# ----------------------------------------------------------------------------- model type

@dataclass
class Model:
    """One posterior on the unconstrained space.

    Attributes
    ----------
    name : str
        posteriordb posterior name (``<data>-<model>``).
    dim : int
        Number of unconstrained coordinates.
    logdensity : callable
        ``u [n_chains, dim]`` (Tensor or array) -> Tensor ``[n_chains]``.
    to_unconstrained : callable
        Reported draws ``[..., n_params]`` -> ``u [..., dim]`` (NumPy).
    to_reported : callable
        ``u [..., dim]`` -> reported quantities ``[..., n_params]`` (NumPy).
    param_names : list of str
        Names of the reported quantities, as in ``reference.json``.
    notes : dict
        Sampler hints (e.g. ``{"dense_mass": True}``).
    data : dict
        Arrays of the model's data that tests reuse (e.g. garch's ``y``, ``sigma1``).
    """

    name: str
    dim: int
    logdensity: Callable
    to_unconstrained: Callable
    to_reported: Callable
    param_names: list
    notes: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- helpers

def _normal_ll(y, mean, s):
    """Sum over the last axis of log Normal(y | mean, exp(s)), constant dropped.

    Parameters
    ----------
    y : array [N]
    mean : Tensor [C, N]
    s : Tensor [C]
        Log standard deviation.

    Returns
    -------
    Tensor [C]
    """
    n = y.shape[-1]
    rss = ad.sum(ad.square(y - mean), axis=-1)
    return -0.5 * rss * ad.exp(-2.0 * s) - n * s


def _half_cauchy_lp(sigma, scale):
    """log half-Cauchy(sigma | 0, scale) up to a constant; ``sigma`` [C]."""
    return -ad.log1p(ad.square(sigma / scale))


def _student_t_lp(x, nu, loc, scale):
    """log Student-t(x | nu, loc, scale) up to a constant (scale fixed)."""
    return -0.5 * (nu + 1.0) * ad.log1p(ad.square((x - loc) / scale) / nu)


def _logit(p):
    return np.log(p) - np.log1p(-p)


def _expit(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))   # stable logistic, no overflow warnings


def _exp_last(u):
    """u with its last coordinate replaced by exp of it (s -> sigma)."""
    out = np.array(u, dtype=np.float64, copy=True)
    out[..., -1] = np.exp(out[..., -1])
    return out


def _log_last(x):
    """x with its last coordinate replaced by log of it (sigma -> s)."""
    out = np.array(x, dtype=np.float64, copy=True)
    out[..., -1] = np.log(out[..., -1])
    return out


def _data(root, name):
    if root is not None:
        with open(Path(root) / name / "data.json") as f:
            return json.load(f)
    with np.load(DATA / f"{name}.npz") as z:
        return {k: z[k] for k in z.files}


def _param_names(root, name):
    return list(load_reference(name, root)["parameters"].keys())


def _regression(name, root, design, y, log_prior=None, notes=None):
    """Gaussian linear regression ``y ~ Normal(design @ beta, sigma)``, u = (beta, log sigma).

    Parameters
    ----------
    design : ndarray [N, P]
        Design matrix (intercept column included when the model has one).
    y : ndarray [N]
    log_prior : callable, optional
        ``(beta [C, P] Tensor, sigma [C] Tensor) -> [C]``; flat priors when None.
    """
    design = np.asarray(design, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    p = design.shape[1]

    def logdensity(u):
        beta, s = u[:, :p], u[:, p]
        mean = beta @ design.T                                # [C, N]
        lp = _normal_ll(y, mean, s) + s                       # + s: Jacobian of sigma = exp(s)
        if log_prior is not None:
            lp = lp + log_prior(beta, ad.exp(s))
        return lp

    return Model(name, p + 1, logdensity, _log_last, _exp_last, _param_names(root, name),
                 dict(notes or {}))


# ----------------------------------------------------------------------------- posteriors

def kidiq_kidscore_momiq(root):
    """kid_score ~ Normal(beta1 + beta2 mom_iq, sigma); flat beta, half-Cauchy(0, 2.5) sigma.

    u = (beta[1], beta[2], log sigma), dim 3.
    """
    name = "kidiq-kidscore_momiq"
    d = _data(root, name)
    x = np.asarray(d["mom_iq"], dtype=np.float64)
    design = np.stack([np.ones_like(x), x], axis=1)
    return _regression(name, root, design, d["kid_score"],
                       log_prior=lambda beta, sigma: _half_cauchy_lp(sigma, 2.5))


def gp_pois_regr_gp_regr(root):
    """GP regression with the latent function marginalised: y ~ MVN(0, K + sigma I).

    u = (log rho, log alpha, log sigma), dim 3. ``sigma`` enters the diagonal as a
    *variance* (posteriordb's quirk), not squared.
    """
    name = "gp_pois_regr-gp_regr"
    d = _data(root, name)
    x = np.asarray(d["x"], dtype=np.float64)
    y = np.asarray(d["y"], dtype=np.float64)
    n = x.shape[0]
    sqdist = np.square(x[:, None] - x[None, :])               # [N, N]
    eye = np.eye(n)

    def logdensity(u):
        c = u.shape[0]
        rho, alpha, sigma = ad.exp(u[:, 0]), ad.exp(u[:, 1]), ad.exp(u[:, 2])
        inv_2rho2 = ad.reshape(0.5 / ad.square(rho), (c, 1, 1))
        cov = (ad.reshape(ad.square(alpha), (c, 1, 1)) * ad.exp(-sqdist * inv_2rho2)
               + ad.reshape(sigma, (c, 1, 1)) * eye)          # [C, N, N]
        chol = ad.cholesky(cov)
        # b of shape [C, N] = ndim(chol) - 1: a stack of right-hand-side vectors
        z = ad.solve_triangular(chol, np.broadcast_to(y, (c, n)), lower=True)
        half_logdet = ad.sum(ad.log(ad.diagonal(chol, 0, 1, 2)), axis=-1)
        lik = -0.5 * ad.sum(ad.square(z), axis=-1) - half_logdet
        prior = (24.0 * u[:, 0] - 4.0 * rho                   # Gamma(25, 4) on rho
                 - ad.square(alpha) / 8.0                      # half-Normal(0, 2)
                 - 0.5 * ad.square(sigma))                     # half-Normal(0, 1)
        jacobian = u[:, 0] + u[:, 1] + u[:, 2]
        return lik + prior + jacobian

    return Model(name, 3, logdensity, np.log, np.exp, _param_names(root, name))


def low_dim_gauss_mix_low_dim_gauss_mix(root):
    """Two-component 1-D normal mixture with ordered means.

    u = (a, b, log sigma1, log sigma2, logit theta), dim 5, with mu1 = a, mu2 = a + exp(b)
    (Stan's ordered transform, log-Jacobian b) and theta the weight of component 1.
    """
    name = "low_dim_gauss_mix-low_dim_gauss_mix"
    y = np.asarray(_data(root, name)["y"], dtype=np.float64)

    def logdensity(u):
        a, b, s1, s2, c = (u[:, k] for k in range(5))
        mu1, mu2 = a, a + ad.exp(b)
        sigma1, sigma2 = ad.exp(s1), ad.exp(s2)
        log_theta, log_1m_theta = ad.log_sigmoid(c), ad.log_sigmoid(-c)

        def comp(log_w, mu, sigma, s):                        # [C, N], constant dropped
            z = (y - ad.reshape(mu, (-1, 1))) / ad.reshape(sigma, (-1, 1))
            return ad.reshape(log_w - s, (-1, 1)) - 0.5 * ad.square(z)

        lp1 = comp(log_theta, mu1, sigma1, s1)
        lp2 = comp(log_1m_theta, mu2, sigma2, s2)
        # log(e^lp1 + e^lp2) = lp1 + softplus(lp2 - lp1): a two-term logsumexp in 2 ops
        lik = ad.sum(lp1 + ad.softplus(lp2 - lp1), axis=-1)
        prior = (-0.125 * (ad.square(mu1) + ad.square(mu2))             # Normal(0, 2)
                 - 0.125 * (ad.square(sigma1) + ad.square(sigma2))       # half-Normal(0, 2)
                 + 4.0 * (log_theta + log_1m_theta))                     # Beta(5, 5)
        # Jacobians: ordered (b), two scales (s1 + s2), logistic (log th + log(1 - th))
        jacobian = b + s1 + s2 + log_theta + log_1m_theta
        return lik + prior + jacobian

    def to_unconstrained(x):
        x = np.asarray(x, dtype=np.float64)
        return np.stack([x[..., 0], np.log(x[..., 1] - x[..., 0]), np.log(x[..., 2]),
                         np.log(x[..., 3]), _logit(x[..., 4])], axis=-1)

    def to_reported(u):
        u = np.asarray(u, dtype=np.float64)
        return np.stack([u[..., 0], u[..., 0] + np.exp(u[..., 1]), np.exp(u[..., 2]),
                         np.exp(u[..., 3]), _expit(u[..., 4])], axis=-1)

    return Model(name, 5, logdensity, to_unconstrained, to_reported, _param_names(root, name))


def ark_ark(root):
    """AR(K) with K = 5: y[t] ~ Normal(alpha + sum_k beta[k] y[t-k], sigma), t = K+1..T.

    u = (alpha, beta[1..K], log sigma), dim K + 2.
    """
    name = "arK-arK"
    d = _data(root, name)
    k, y = int(d["K"]), np.asarray(d["y"], dtype=np.float64)
    t = y.shape[0]
    # Lag matrix over the T-K modelled time points (0-based t = K..T-1):
    # lags[i, j] = y[(K + i) - (j + 1)], so column j (beta[j+1]) holds lag j+1 and
    # column 0 is the most recent observation, y[t-1].
    lags = np.stack([y[k - j - 1: t - j - 1] for j in range(k)], axis=1)   # [T-K, K]
    target = y[k:]                                                        # [T-K]
    design = np.concatenate([np.ones((t - k, 1)), lags], axis=1)

    def log_prior(coef, sigma):
        return (-0.5 / 100.0 * ad.sum(ad.square(coef), axis=-1)   # alpha, beta ~ Normal(0, 10)
                + _half_cauchy_lp(sigma, 2.5))

    return _regression(name, root, design, target, log_prior)


def sblrc_blr(root):
    """y ~ Normal(X beta, sigma), beta ~ Normal(0, 10), sigma ~ half-Normal(0, 10).

    u = (beta[1..5], log sigma), dim 6.
    """
    name = "sblrc-blr"
    d = _data(root, name)

    def log_prior(beta, sigma):
        return -0.5 / 100.0 * (ad.sum(ad.square(beta), axis=-1) + ad.square(sigma))

    return _regression(name, root, np.asarray(d["X"], dtype=np.float64), d["y"], log_prior)


def eight_schools_eight_schools_noncentered(root):
    """Non-centred eight schools: theta = mu + tau theta_trans.

    u = (theta_trans[1..8], mu, log tau), dim 10. Reported: theta[1..8] (derived), mu, tau.
    """
    name = "eight_schools-eight_schools_noncentered"
    d = _data(root, name)
    y = np.asarray(d["y"], dtype=np.float64)
    se = np.asarray(d["sigma"], dtype=np.float64)
    j = y.shape[0]

    def logdensity(u):
        tt, mu, s = u[:, :j], u[:, j], u[:, j + 1]
        tau = ad.exp(s)
        theta = ad.reshape(mu, (-1, 1)) + ad.reshape(tau, (-1, 1)) * tt      # [C, J]
        lik = -0.5 * ad.sum(ad.square((y - theta) / se), axis=-1)
        prior = (-0.5 * ad.sum(ad.square(tt), axis=-1)            # theta_trans ~ N(0, 1)
                 - 0.5 * ad.square(mu / 5.0)                      # mu ~ N(0, 5)
                 + _half_cauchy_lp(tau, 5.0))                     # tau ~ half-Cauchy(0, 5)
        return lik + prior + s                                    # + s: tau = exp(s)

    def to_unconstrained(x):
        x = np.asarray(x, dtype=np.float64)
        theta, mu, tau = x[..., :j], x[..., j], x[..., j + 1]
        tt = (theta - mu[..., None]) / tau[..., None]             # recover the sampled variable
        return np.concatenate([tt, mu[..., None], np.log(tau)[..., None]], axis=-1)

    def to_reported(u):
        u = np.asarray(u, dtype=np.float64)
        tt, mu, tau = u[..., :j], u[..., j], np.exp(u[..., j + 1])
        theta = mu[..., None] + tau[..., None] * tt
        return np.concatenate([theta, mu[..., None], tau[..., None]], axis=-1)

    return Model(name, j + 2, logdensity, to_unconstrained, to_reported,
                 _param_names(root, name))


def nes2000_nes(root):
    """Party-id regression on 8 predictors (age as 3 indicators), flat priors.

    u = (beta[1..9], log sigma), dim 10.
    """
    name = "nes2000-nes"
    d = {k: np.asarray(v, dtype=np.float64) for k, v in _data(root, name).items()}
    age = d["age_discrete"]
    design = np.stack([np.ones_like(age), d["real_ideo"], d["race_adj"],
                       (age == 2).astype(float), (age == 3).astype(float),
                       (age == 4).astype(float), d["educ1"], d["gender"], d["income"]], axis=1)
    return _regression(name, root, design, d["partyid7"])


def mesquite_logmesquite_logvas(root):
    """log weight on log canopy volume/area/shape, log height, log density, group; flat priors.

    u = (beta[1..7], log sigma), dim 8.
    """
    name = "mesquite-logmesquite_logvas"
    d = {k: np.asarray(v, dtype=np.float64) for k, v in _data(root, name).items()}
    d1, d2 = d["diam1"], d["diam2"]
    design = np.stack([np.ones_like(d1), np.log(d1 * d2 * d["canopy_height"]),
                       np.log(d1 * d2), np.log(d1 / d2), np.log(d["total_height"]),
                       np.log(d["density"]), d["group"]], axis=1)
    return _regression(name, root, design, np.log(d["weight"]))


def garch_sigma2_reference(y, sigma1, mu, alpha0, alpha1, beta1):
    """Plain NumPy GARCH(1,1) variance recursion (a loop over t), for testing.

    Parameters are arrays of shape [C]; returns sigma_t^2 of shape [C, T].
    """
    mu, alpha0, alpha1, beta1 = (np.asarray(v, dtype=np.float64)[:, None]
                                 for v in (mu, alpha0, alpha1, beta1))
    out = np.empty((mu.shape[0], len(y)))
    out[:, 0] = sigma1 ** 2
    for t in range(1, len(y)):
        out[:, t] = (alpha0[:, 0] + alpha1[:, 0] * (y[t - 1] - mu[:, 0]) ** 2
                     + beta1[:, 0] * out[:, t - 1])
    return out


def garch_garch11(root):
    """GARCH(1,1) with a flat prior on the triangle {alpha1, beta1 > 0, alpha1 + beta1 < 1}.

    u = (mu, log alpha0, logit alpha1, logit(beta1 / (1 - alpha1))), dim 4.
    """
    name = "garch-garch11"
    d = _data(root, name)
    y = np.asarray(d["y"], dtype=np.float64)
    sigma1 = float(d["sigma1"])
    t_len = y.shape[0]

    def logdensity(u):
        mu, a, b, c = (u[:, k] for k in range(4))
        alpha0, alpha1 = ad.exp(a), ad.sigmoid(b)
        one_m_alpha1 = ad.sigmoid(-b)
        beta1 = one_m_alpha1 * ad.sigmoid(c)
        col = lambda v: ad.reshape(v, (-1, 1))   # noqa: E731  [C] -> [C, 1]

        # sigma_t^2 = alpha0 + alpha1 (y[t-1] - mu)^2 + beta1 sigma_{t-1}^2 for t = 2..T is
        # the affine recursion h_t = beta1 h_{t-1} + c_t with h_1 = sigma1^2, i.e.
        #   h_t = sum_{j <= t} beta1^(t-j) c_j,   c_1 = sigma1^2.
        # Instead of T sequential tape steps it is computed by a Hillis-Steele scan:
        # after the pass with shift d, h_t holds sum_{t-2d < j <= t} beta1^(t-j) c_j, so
        # ceil(log2 T) = 8 passes of whole-array ops suffice (all terms are >= 0: no
        # cancellation, and no inverse powers of beta1). Checked against the loop
        # garch_sigma2_reference in test_stein.py.
        resid = y - col(mu)                                                 # [C, T]
        drive = col(alpha0) + col(alpha1) * ad.square(resid[:, :-1])        # c_2..c_T
        h = ad.concatenate([np.full((u.shape[0], 1), sigma1 ** 2), drive], axis=1)  # c_1..c_T
        power = col(beta1)                                                  # beta1^d
        shift = 1
        while shift < t_len:
            h = ad.concatenate([h[:, :shift], h[:, shift:] + power * h[:, :-shift]], axis=1)
            power = ad.square(power)
            shift *= 2
        sigma2 = h                                                          # [C, T]

        lik = -0.5 * ad.sum(ad.square(resid) / sigma2 + ad.log(sigma2), axis=-1)
        # Jacobians: alpha0 = e^a -> a; alpha1 = logistic(b) -> log a1 + log(1 - a1);
        # beta1 = (1 - a1) l, l = logistic(c) -> log(1 - a1) + log l + log(1 - l).
        # Together they make the implied prior flat on the triangle.
        jacobian = (a + ad.log_sigmoid(b) + 2.0 * ad.log_sigmoid(-b)
                    + ad.log_sigmoid(c) + ad.log_sigmoid(-c))
        return lik + jacobian

    def to_unconstrained(x):
        x = np.asarray(x, dtype=np.float64)
        mu, alpha0, alpha1, beta1 = (x[..., k] for k in range(4))
        return np.stack([mu, np.log(alpha0), _logit(alpha1), _logit(beta1 / (1.0 - alpha1))],
                        axis=-1)

    def to_reported(u):
        u = np.asarray(u, dtype=np.float64)
        alpha1 = _expit(u[..., 2])
        return np.stack([u[..., 0], np.exp(u[..., 1]), alpha1,
                         (1.0 - alpha1) * _expit(u[..., 3])], axis=-1)

    return Model(name, 4, logdensity, to_unconstrained, to_reported, _param_names(root, name),
                 data={"y": y, "sigma1": sigma1})


def kilpisjarvi_mod_kilpisjarvi(root):
    """y ~ Normal(alpha + beta x, sigma) with x ~ 4000; normal priors, flat sigma.

    u = (alpha, beta, log sigma), dim 3. Posterior corr(alpha, beta) ~ -0.99999: needs a
    dense mass matrix.
    """
    name = "kilpisjarvi_mod-kilpisjarvi"
    d = _data(root, name)
    x = np.asarray(d["x"], dtype=np.float64)
    design = np.stack([np.ones_like(x), x], axis=1)
    mu_a, sd_a = float(d["pmualpha"]), float(d["psalpha"])
    mu_b, sd_b = float(d["pmubeta"]), float(d["psbeta"])

    def log_prior(beta, sigma):
        return (-0.5 * ad.square((beta[:, 0] - mu_a) / sd_a)
                - 0.5 * ad.square((beta[:, 1] - mu_b) / sd_b))

    return _regression(name, root, design, d["y"], log_prior, {"dense_mass": True})


def diamonds_diamonds(root):
    """brms regression of log price on 24 centred, collinear predictors.

    u = (b[1..24], Intercept, log sigma), dim 26. ``Intercept`` belongs to the centred design.
    """
    name = "diamonds-diamonds"
    d = _data(root, name)
    x = np.asarray(d["X"], dtype=np.float64)[:, 1:]        # drop the intercept column
    xc = x - x.mean(axis=0)                                  # centre (brms transformed data)
    y = np.asarray(d["Y"], dtype=np.float64)
    k = xc.shape[1]
    design = np.concatenate([xc, np.ones((xc.shape[0], 1))], axis=1)   # coefficients (b, Icpt)

    def log_prior(coef, sigma):
        b, icpt = coef[:, :k], coef[:, k]
        return (-0.5 * ad.sum(ad.square(b), axis=-1)         # b ~ Normal(0, 1)
                + _student_t_lp(icpt, 3.0, 8.0, 10.0)        # Intercept ~ t_3(8, 10)
                + _student_t_lp(sigma, 3.0, 0.0, 10.0))      # sigma ~ half-t_3(0, 10)

    return _regression(name, root, design, y, log_prior, {"dense_mass": True})


_BUILDERS = {
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
assert tuple(_BUILDERS) == POSTERIORS


def build_model(name, root=None):
    """Build the :class:`Model` of posterior ``name`` from the packaged data (or from
    ``<root>/<name>/data.json`` when a posteriordb folder ``root`` is given).

    Raises
    ------
    KeyError
        Unknown posterior name.
    """
    if name not in _BUILDERS:
        raise KeyError(f"unknown posterior {name!r}; known: {', '.join(POSTERIORS)}")
    return _BUILDERS[name](None if root is None else Path(root))


class _Registry(Mapping):
    """``MODELS[name]``: models built lazily from the located data and cached."""

    def __init__(self):
        self._cache = {}

    def __getitem__(self, name):
        if name not in self._cache:
            self._cache[name] = build_model(name)
        return self._cache[name]

    def __iter__(self):
        return iter(POSTERIORS)

    def __len__(self):
        return len(POSTERIORS)


#: posterior name -> :class:`Model`, built on first access (needs the data folder).
MODELS = _Registry()
