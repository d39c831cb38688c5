"""PyMC twins of three posteriors of :mod:`samplers.suite`, sampled by nutpie.

Run by :mod:`bench.bench_nutpie` with an interpreter that has ``pymc`` and ``nutpie``
(``python bench/nutpie_models.py NAME SEED LOW_RANK``): prints one JSON line with the
reported draws ``[chains, draws, params]`` (in the suite's ``param_names`` order), the
leapfrog steps of the sampling phase and the wall time of compilation and of sampling.
The data are the suite's packaged ``samplers/suite/data/<name>.npz``; the models are the
suite's (see ``samplers/suite/models.py``), written in PyMC.
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
