"""PyMC twins of the diagonal-metric posteriors of :mod:`samplers.suite`, sampled by nutpie.

Run by :mod:`bench.bench_nutpie` with an interpreter that has ``pymc`` and ``nutpie``
(``python bench/nutpie_models.py NAME SEED LOW_RANK``): prints one JSON line with the
reported draws ``[chains, draws, params]`` (in the suite's ``param_names`` order), the
leapfrog steps of the sampling phase and the wall time of compilation and of sampling.
The data are the suite's packaged ``samplers/suite/data/<name>.npz``; the models are the
suite's (see ``samplers/suite/models.py``), written in PyMC: the same priors, likelihood
and reported quantities, and PyMC's default transforms give the suite's unconstrained
coordinates (log for positive scales, log-odds for theta, Stan's ordered transform for
the mixture means, logit of the interval for garch's alpha1 and beta1), so PyMC's log
density equals the suite's ``logdensity`` up to an additive constant. Two details:

- gp_pois_regr: ``sigma`` enters the covariance's diagonal as a variance, not squared,
  as in posteriordb's model;
- garch: the prior is flat on the triangle ``alpha1 + beta1 < 1``; ``beta1 ~
  Uniform(0, 1 - alpha1)`` gives Stan's transform, and a potential ``log(1 - alpha1)``
  cancels the uniform's density ``1 / (1 - alpha1)``. The variance recursion is the
  suite's whole-array scan rather than a sequential loop.

Excluded: the suite's dense-metric posteriors (kilpisjarvi, diamonds).
"""
import json
import os
import sys
import time

import numpy as np

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                    "samplers", "suite", "data")


def _data(name):
    with np.load(os.path.join(DATA, f"{name}.npz")) as z:
        return {k: z[k] for k in z.files}


def build(name):
    """``(pymc.Model, list of (variable name, size))`` in reported order."""
    import pymc as pm
    import pytensor.tensor as pt
    d = _data(name)
    with pm.Model() as model:
        if name == "eight_schools-eight_schools_noncentered":
            y, se = d["y"].astype(float), d["sigma"].astype(float)
            mu = pm.Normal("mu", 0.0, 5.0)
            tau = pm.HalfCauchy("tau", 5.0)
            tt = pm.Normal("theta_trans", 0.0, 1.0, shape=len(y))
            theta = pm.Deterministic("theta", mu + tau * tt)
            pm.Normal("y", theta, se, observed=y)
            order = [("theta", len(y)), ("mu", 1), ("tau", 1)]
        elif name == "kidiq-kidscore_momiq":
            x, y = d["mom_iq"].astype(float), d["kid_score"].astype(float)
            beta = pm.Flat("beta", shape=2)
            sigma = pm.HalfCauchy("sigma", 2.5)
            pm.Normal("y", beta[0] + beta[1] * x, sigma, observed=y)
            order = [("beta", 2), ("sigma", 1)]
        elif name == "arK-arK":
            k, y = int(d["K"]), d["y"].astype(float)
            t = len(y)
            lags = np.stack([y[k - j - 1: t - j - 1] for j in range(k)], axis=1)
            alpha = pm.Normal("alpha", 0.0, 10.0)
            beta = pm.Normal("beta", 0.0, 10.0, shape=k)
            sigma = pm.HalfCauchy("sigma", 2.5)
            pm.Normal("y", alpha + lags @ beta, sigma, observed=y[k:])
            order = [("alpha", 1), ("beta", k), ("sigma", 1)]
        elif name == "gp_pois_regr-gp_regr":
            x, y = d["x"].astype(float), d["y"].astype(float)
            rho = pm.Gamma("rho", alpha=25.0, beta=4.0)
            alpha = pm.HalfNormal("alpha", 2.0)
            sigma = pm.HalfNormal("sigma", 1.0)
            sqdist = np.square(x[:, None] - x[None, :])
            # sigma enters the diagonal as a variance, not squared (posteriordb's model)
            cov = alpha ** 2 * pm.math.exp(-sqdist / (2.0 * rho ** 2)) + sigma * np.eye(len(x))
            pm.MvNormal("y", mu=np.zeros(len(x)), cov=cov, observed=y)
            order = [("rho", 1), ("alpha", 1), ("sigma", 1)]
        elif name == "low_dim_gauss_mix-low_dim_gauss_mix":
            y = d["y"].astype(float)
            # Stan's ordered transform: mu[1] = a, mu[2] = a + exp(b)
            mu = pm.Normal("mu", 0.0, 2.0, shape=2,
                           transform=pm.distributions.transforms.ordered,
                           initval=np.array([-1.0, 1.0]))
            sigma = pm.HalfNormal("sigma", 2.0, shape=2)
            theta = pm.Beta("theta", 5.0, 5.0)          # weight of component 1
            pm.NormalMixture("y", w=pm.math.stack([theta, 1.0 - theta]), mu=mu, sigma=sigma,
                             observed=y)
            order = [("mu", 2), ("sigma", 2), ("theta", 1)]
        elif name == "sblrc-blr":
            x, y = d["X"].astype(float), d["y"].astype(float)
            beta = pm.Normal("beta", 0.0, 10.0, shape=x.shape[1])
            sigma = pm.HalfNormal("sigma", 10.0)
            pm.Normal("y", x @ beta, sigma, observed=y)
            order = [("beta", x.shape[1]), ("sigma", 1)]
        elif name in ("nes2000-nes", "mesquite-logmesquite_logvas"):
            v = {k: d[k].astype(float) for k in d}
            if name == "nes2000-nes":
                age = v["age_discrete"]
                design = np.stack([np.ones_like(age), v["real_ideo"], v["race_adj"],
                                   (age == 2).astype(float), (age == 3).astype(float),
                                   (age == 4).astype(float), v["educ1"], v["gender"],
                                   v["income"]], axis=1)
                y = v["partyid7"]
            else:
                d1, d2 = v["diam1"], v["diam2"]
                design = np.stack([np.ones_like(d1), np.log(d1 * d2 * v["canopy_height"]),
                                   np.log(d1 * d2), np.log(d1 / d2), np.log(v["total_height"]),
                                   np.log(v["density"]), v["group"]], axis=1)
                y = np.log(v["weight"])
            p = design.shape[1]
            beta = pm.Flat("beta", shape=p)             # flat priors on beta and sigma
            sigma = pm.HalfFlat("sigma")
            pm.Normal("y", design @ beta, sigma, observed=y)
            order = [("beta", p), ("sigma", 1)]
        elif name == "garch-garch11":
            y, sigma1 = d["y"].astype(float), float(d["sigma1"])
            t_len = len(y)
            mu = pm.Flat("mu")
            alpha0 = pm.HalfFlat("alpha0")
            alpha1 = pm.Uniform("alpha1", 0.0, 1.0)
            # Stan's parameterisation: beta1 in (0, 1 - alpha1) through logit; the prior is
            # flat on the triangle, so Uniform's density 1 / (1 - alpha1) is cancelled
            beta1 = pm.Uniform("beta1", 0.0, 1.0 - alpha1)
            pm.Potential("flat_triangle", pt.log1p(-alpha1))
            # sigma_t^2 = alpha0 + alpha1 (y[t-1] - mu)^2 + beta1 sigma_{t-1}^2, sigma_1 = sigma1:
            # h_t = beta1 h_{t-1} + c_t, computed by the same log2(T)-pass Hillis-Steele scan
            # as the suite (whole-array ops, no sequential loop)
            resid = y - mu
            h = pm.math.concatenate([np.full(1, sigma1 ** 2),
                                     alpha0 + alpha1 * pm.math.sqr(resid[:-1])])
            power, shift = beta1, 1
            while shift < t_len:
                h = pm.math.concatenate([h[:shift], h[shift:] + power * h[:-shift]])
                power = power * power
                shift *= 2
            pm.Normal("y", mu, pm.math.sqrt(h), observed=y)
            order = [("mu", 1), ("alpha0", 1), ("alpha1", 1), ("beta1", 1)]
        else:
            raise KeyError(f"no PyMC twin for {name!r}")
    return model, order


def main():
    import nutpie
    name, seed, low_rank = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
    model, order = build(name)
    t0 = time.perf_counter()
    compiled = nutpie.compile_pymc_model(model)
    t1 = time.perf_counter()
    kw = {"low_rank_modified_mass_matrix": True} if low_rank else {}
    trace = nutpie.sample(compiled, chains=4, tune=1000, draws=1000, seed=seed,
                          progress_bar=False, **kw)
    t2 = time.perf_counter()
    post = trace.posterior
    cols = [np.asarray(post[v]).reshape(4, 1000, size) for v, size in order]
    draws = np.concatenate(cols, axis=-1)
    steps = int(np.asarray(trace.sample_stats["n_steps"]).sum())
    print("RESULT " + json.dumps({"draws": draws.tolist(), "n_steps": steps,
                                  "compile_s": t1 - t0, "sample_s": t2 - t1}))


if __name__ == "__main__":
    main()
