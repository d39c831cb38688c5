"""ChEES-HMC with many chains against NUTS with 4 chains and BlackJAX's ChEES, CPU.

Run (needs ``optax`` and ``blackjax`` for the BlackJAX rows, skipped otherwise)::

    PYTHONPATH=. python bench/bench_chees.py [--chains 1024] [--warmup 300] [--samples 100]
        [--targets blr,eight_schools-eight_schools_noncentered,...] [--rounds 1]

For each target: minimum bulk ESS over the coordinates per second of the whole run
(warmup + sampling), *cold* (first run in the process: compilation and tracing included)
and *warm* (the median of ``--rounds`` later runs), for

- zsarray ``sample(kernel="hmc", adaptation="chees")`` with ``--chains`` chains,
- zsarray ``sample()`` defaults: NUTS, Stan's warmup, 4 chains x (1000 + 1000),
- BlackJAX ``chees_adaptation`` (Adam, learning rate 0.025) then ``dynamic_hmc`` with the
  tuned parameters, ``jax.vmap`` over the same number of chains, ``lax.scan`` over draws.

Targets: Bayesian logistic regression on scikit-learn's breast cancer data (D = 31,
``bench_samplers.logdensity``) and posteriors of :mod:`samplers.suite` (their JAX twins in
:mod:`bench.posteriordb_jax`). The ESS function is the same for all
(``samplers.diagnostics.ess``, rank-normalized split bulk ESS).
"""
import argparse
import os
import sys
import time
import warnings

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def _target(name):
    """``(zsarray log density [C, D] -> [C], JAX log density [D] -> scalar, dim)``."""
    if name == "blr":
        from bench.bench_samplers import XT, Y, D, logdensity
        import jax.numpy as jnp
        x, y = jnp.asarray(XT.T), jnp.asarray(Y)

        def jax_ld(w):
            logits = x @ w
            return jnp.sum(y * logits - jnp.logaddexp(0.0, logits)) - 0.5 * jnp.sum(w * w)
        return logdensity, jax_ld, D
    from samplers.suite import MODELS
    from bench.posteriordb_jax import build_jax
    m = MODELS[name]
    return m.logdensity, build_jax(name, root=None), m.dim


def run_zs(ld, dim, chains, warmup, samples, seed, adaptation):
    import samplers
    from samplers import diagnostics
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if adaptation == "chees":
            res = samplers.sample(ld, n_chains=chains, dim=dim, kernel="hmc",
                                  adaptation="chees", n_warmup=warmup, n_samples=samples,
                                  rng=seed, progress=False)
        else:
            res = samplers.sample(ld, n_chains=4, dim=dim, rng=seed, progress=False)
    dt = time.perf_counter() - t0
    return dt, float(diagnostics.ess(np.asarray(res.draws)).min())


def run_blackjax(jax_ld, dim, chains, warmup, samples, seed):
    import jax
    import jax.numpy as jnp
    import optax
    import blackjax
    from samplers import diagnostics
    jax.config.update("jax_enable_x64", True)
    t0 = time.perf_counter()
    key = jax.random.PRNGKey(seed)
    k_init, k_warm, k_samp = jax.random.split(key, 3)
    init = jax.random.uniform(k_init, (chains, dim), minval=-2.0, maxval=2.0,
                              dtype=jnp.float64)
    warm = blackjax.chees_adaptation(jax_ld, num_chains=chains)
    (states, params), _ = warm.run(k_warm, init, step_size=0.1,
                                   optim=optax.adam(0.025), num_steps=warmup)
    step = jax.vmap(blackjax.dynamic_hmc(jax_ld, **params).step)

    def body(st, k):
        st, _ = step(jax.random.split(k, chains), st)
        return st, st.position
    _, draws = jax.lax.scan(body, states, jax.random.split(k_samp, samples))
    draws = np.asarray(draws).transpose(1, 0, 2)            # [C, S, D]
    dt = time.perf_counter() - t0
    return dt, float(diagnostics.ess(draws).min())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--targets", default="blr,eight_schools-eight_schools_noncentered,"
                   "arK-arK,garch-garch11")
    p.add_argument("--chains", type=int, default=1024)
    p.add_argument("--warmup", type=int, default=300)
    p.add_argument("--samples", type=int, default=100)
    p.add_argument("--rounds", type=int, default=1)
    a = p.parse_args(argv)
    try:
        import blackjax  # noqa: F401
        import optax  # noqa: F401
        have_bj = True
    except ImportError:
        have_bj = False
    print(f"{'target':42s} {'contender':28s} {'cold ESS/s':>10s} {'warm ESS/s':>10s} "
          f"{'warm s':>7s} {'min ESS':>8s}")
    for name in a.targets.split(","):
        ld, jax_ld, dim = _target(name)
        runs = {f"zsarray ChEES {a.chains} ch": lambda s: run_zs(ld, dim, a.chains, a.warmup,
                                                                 a.samples, s, "chees"),
                "zsarray NUTS 4 ch": lambda s: run_zs(ld, dim, 4, 0, 0, s, "nuts")}
        if have_bj:
            runs[f"BlackJAX ChEES {a.chains} ch"] = lambda s: run_blackjax(
                jax_ld, dim, a.chains, a.warmup, a.samples, s)
        cold = {k: f(0) for k, f in runs.items()}
        warm = {k: [] for k in runs}
        for r in range(a.rounds):                            # interleaved rounds
            for k, f in runs.items():
                warm[k].append(f(r + 1))
        for k in runs:
            dt = float(np.median([w[0] for w in warm[k]]))
            rate = float(np.median([w[1] / w[0] for w in warm[k]]))
            print(f"{name:42s} {k:28s} {cold[k][1] / cold[k][0]:10.1f} {rate:10.1f} "
                  f"{dt:7.1f} {np.median([w[1] for w in warm[k]]):8.0f}", flush=True)


if __name__ == "__main__":
    main()
