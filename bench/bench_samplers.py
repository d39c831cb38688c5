"""Sampler benchmarks: Bayesian logistic regression on scikit-learn's breast cancer data.

Run (benchmarks are disabled by default in pyproject's addopts)::

    PYTHONPATH=. python -m pytest bench/bench_samplers.py --benchmark-enable \
        -p no:cacheprovider --benchmark-columns=mean,min,rounds
    PYTHONPATH=. python bench/bench_samplers.py    # interleaved repeats vs NumPyro: HMC at
                                                   # 256 chains, single-chain NUTS

Model: standardized features plus an intercept (D = 31), ``w ~ N(0, 1)``,
Bernoulli-logit likelihood, float64, log density written with autodiff ops.
Reported in ``extra_info`` (shown with ``--benchmark-json``) and printed:

* gradient evaluations per second for C in {1, 16, 256, 1024, 4096} chains;
* fixed-step HMC (10 leapfrogs, eps 0.062) chain-iterations per second for
  C in {1, 256, 4096};
* NUTS with 1 and 4 chains: minimum bulk ESS per second of sampling (warm: the
  sampling phase continued from the tuned state) and "cold" (ESS of the first run's
  draws over its whole wall time: warmup, sampling and, for NumPyro, compilation).

With ``numpyro`` importable the same quantities are measured for NumPyro
(``chain_method="vectorized"``) side by side; otherwise those cases skip.
"""
import time

import numpy as np
import pytest

import samplers
from samplers.base import LogDensity

ad = pytest.importorskip("autodiff")
datasets = pytest.importorskip("sklearn.datasets")

EPS_HMC = 0.062
N_LEAPFROG = 10


def _data():
    x, y = datasets.load_breast_cancer(return_X_y=True)
    x = (x - x.mean(0)) / x.std(0)
    x = np.concatenate([np.ones((x.shape[0], 1)), x], axis=1)
    return x, y.astype(np.float64)


X, Y = _data()
XT = np.ascontiguousarray(X.T)
D = X.shape[1]


def logdensity(w):
    """``[C, D] -> [C]``: N(0, 1) prior plus Bernoulli-logit likelihood."""
    logits = w @ XT                                          # [C, N]
    loglik = ad.sum(Y * logits - ad.softplus(logits), axis=1)
    return loglik - 0.5 * ad.sum(w * w, axis=1)


# A fused, differentiable Bernoulli-logit log likelihood: DESIGN's "Numba
# kernels become differentiable ops" via autodiff.primitive + defvjp. The
# forward pass is one loop; the VJP recomputes the residual y - sigmoid(logits)
# in a second loop, so no [C, N] temporary is kept between the passes. exp and
# log1p are autodiff.logistic's vectorizable polynomials (libm's are scalar calls,
# 3-4x slower here). Serial on purpose: Numba's prange threads and OpenBLAS's
# spinning threads fight for 2 cores (a parallel version ran 4-6x slower at 256
# chains, right after the matmul of the logits).
import numba  # noqa: E402

from autodiff.logistic import _exp_nonpos, _log1p_unit  # noqa: E402


_nb = numba.njit(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")


@_nb
def _value_serial(logits, y, out):
    buf = np.empty(logits.shape[1])
    for c in range(logits.shape[0]):
        for n in range(logits.shape[1]):        # vectorizes: no reduction in this loop
            t = logits[c, n]
            buf[n] = y[n] * t - (max(t, 0.0) + _log1p_unit(_exp_nonpos(-abs(t))))
        out[c] = buf.sum()


@_nb
def _resid_serial(logits, y, g, out):
    for c in range(logits.shape[0]):
        for n in range(logits.shape[1]):
            out[c, n] = _exp_nonpos(-abs(logits[c, n]))
        for n in range(logits.shape[1]):
            t, e = logits[c, n], out[c, n]
            out[c, n] = g[c] * (y[n] - (1.0 if t >= 0 else e) / (1.0 + e))


def _bern_logit_fwd(logits, y):
    out = np.empty(logits.shape[0])
    _value_serial(logits, y, out)
    return out


def _bern_logit_vjp(ans, logits, y):
    def vjp(g):
        out = np.empty_like(logits)
        _resid_serial(logits, y, np.ascontiguousarray(g), out)
        return out
    return vjp


bernoulli_logit_loglik = ad.primitive(_bern_logit_fwd, "bench_bernoulli_logit_loglik")
ad.defvjp(bernoulli_logit_loglik, _bern_logit_vjp, None)


def logdensity_fused(w):
    """As :func:`logdensity`, with the likelihood as one fused Numba primitive."""
    return bernoulli_logit_loglik(w @ XT, Y) - 0.5 * ad.sum(w * w, axis=1)


def _np_value(w):
    return _bern_logit_fwd(w @ XT, Y) - 0.5 * (w * w).sum(1)


def _np_grad(w):
    logits = w @ XT
    resid = np.empty_like(logits)
    _resid_serial(logits, Y, np.ones(w.shape[0]), resid)
    return resid @ X - w


#: name -> (logdensity, grad_fn, compile): autodiff ops on the tape; the same function
#: under ``autodiff.trace`` (recorded once, replayed without the tape's bookkeeping) and
#: ``autodiff.compile`` (the samplers' default: one compiled program per gradient);
#: autodiff with the fused likelihood primitive (on the tape); plain NumPy/Numba with a
#: hand-written gradient (no tape: the sampler's own overhead plus the arithmetic).
MODELS = {"tape": (logdensity, None, False), "traced": (ad.trace(logdensity), None, False),
          "compiled": (logdensity, None, True), "fused": (logdensity_fused, None, False),
          "grad_fn": (_np_value, _np_grad, False)}


def _init(c, seed=0):
    return np.random.default_rng(seed).normal(0.0, 0.1, (c, D))


def _report(benchmark, **info):
    benchmark.extra_info.update(info)
    print(" ".join(f"{k}={v:,.0f}" if isinstance(v, float) and v >= 100 else
                   f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                   for k, v in info.items()))


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("c", [1, 16, 256, 1024, 4096])
def test_grad_evals_per_second(benchmark, c, model):
    f, g, comp = MODELS[model]
    ld = LogDensity(f, g, compile=comp)
    w = _init(c)
    ld(w)
    benchmark(ld, w)
    mean = benchmark.stats.stats.mean if benchmark.stats else _time(ld, w)
    _report(benchmark, impl=f"zsarray-{model}", chains=c, grad_evals_per_s=c / mean)


def _time(f, *a, n=5):
    t = time.perf_counter()
    for _ in range(n):
        f(*a)
    return (time.perf_counter() - t) / n


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("c", [1, 256, 4096])
def test_hmc_chain_iterations_per_second(benchmark, c, model):
    f, g, comp = MODELS[model]
    k = samplers.HMC(f, step_size=EPS_HMC, n_leapfrogs=N_LEAPFROG, grad_fn=g, compile=comp)
    rng = np.random.default_rng(0)
    box = [k.init(_init(c))]
    box[0], _ = k.step(box[0], rng)

    def one():
        box[0], info = k.step(box[0], rng)
        return info

    info = benchmark(one)
    mean = benchmark.stats.stats.mean if benchmark.stats else _time(one)
    _report(benchmark, impl=f"zsarray-{model}", chains=c, chain_iters_per_s=c / mean,
            grad_evals_per_s=c * N_LEAPFROG / mean,
            accept=float(np.mean(info.acceptance_rate)))


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("c", [1, 4])
def test_nuts_min_ess_per_second(benchmark, c, model):
    from samplers.diagnostics import ess

    out = {}

    def run():
        t0 = time.perf_counter()
        f, g, comp = MODELS[model]
        res = samplers.sample(f, _init(c, 1), n_samples=1000, n_warmup=1000, rng=1,
                              progress=False, grad_fn=g, compile=comp)
        out["res"], out["total"] = res, time.perf_counter() - t0
        # time the sampling phase alone: continue from the tuned state
        rng = np.random.default_rng(2)
        st, k = res.state, res.kernel
        draws = np.empty((c, 1000, D))
        t0 = time.perf_counter()
        for i in range(1000):
            st, _ = k.step(st, rng)
            draws[:, i] = st.position
        out["sampling"], out["draws"] = time.perf_counter() - t0, draws

    benchmark.pedantic(run, rounds=1, iterations=1)
    min_ess = float(ess(out["draws"]).min())
    res = out["res"]
    cold_ess = float(ess(res.draws).min())
    _report(benchmark, impl=f"zsarray-{model}", chains=c, min_ess_bulk=min_ess,
            min_ess_per_s=min_ess / out["sampling"], sampling_s=out["sampling"],
            cold_min_ess_per_s=cold_ess / out["total"], total_s_with_warmup=out["total"],
            step_size=float(res.step_size[0]),
            mean_tree_depth=float(res.stats["tree_depth"].mean()))


# ------------------------------------------------------------------ NumPyro
def _numpyro():
    numpyro = pytest.importorskip("numpyro")
    import jax
    import jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)
    return numpyro, jax, jnp


def _numpyro_potential(jnp):
    xj, yj = jnp.asarray(X), jnp.asarray(Y)

    def potential(w):
        logits = xj @ w
        return -(jnp.sum(yj * logits - jnp.logaddexp(0.0, logits)) - 0.5 * jnp.sum(w * w))
    return potential


@pytest.mark.parametrize("c", [1, 16, 256, 1024, 4096])
def test_numpyro_grad_evals_per_second(benchmark, c):
    numpyro, jax, jnp = _numpyro()
    g = jax.jit(jax.vmap(jax.value_and_grad(_numpyro_potential(jnp))))
    w = jnp.asarray(_init(c))
    jax.block_until_ready(g(w))
    benchmark(lambda: jax.block_until_ready(g(w)))
    _report(benchmark, impl="numpyro", chains=c,
            grad_evals_per_s=c / benchmark.stats.stats.mean)


@pytest.mark.parametrize("c", [1, 256, 4096])
def test_numpyro_hmc_chain_iterations_per_second(benchmark, c):
    numpyro, jax, jnp = _numpyro()
    from numpyro.infer import HMC as NHMC, MCMC
    kernel = NHMC(potential_fn=_numpyro_potential(jnp), step_size=EPS_HMC,
                  num_steps=N_LEAPFROG, adapt_step_size=False, adapt_mass_matrix=False)
    n = 200
    mcmc = MCMC(kernel, num_warmup=0, num_samples=n, num_chains=c,
                chain_method="vectorized", progress_bar=False)
    init = jnp.asarray(_init(c))

    def run(key=1):
        mcmc.run(jax.random.PRNGKey(key), init_params=init if c > 1 else init[0])
        jax.block_until_ready(mcmc.get_samples())

    run(0)   # compile
    run(2)   # the second run is still slower than later ones (JAX caches settle): warm up

    benchmark.pedantic(run, rounds=1, iterations=1)
    _report(benchmark, impl="numpyro", chains=c,
            chain_iters_per_s=c * n / benchmark.stats.stats.mean)


@pytest.mark.parametrize("c", [1, 4])
def test_numpyro_nuts_min_ess_per_second(benchmark, c):
    numpyro, jax, jnp = _numpyro()
    from numpyro.infer import MCMC, NUTS as NNUTS
    from samplers.diagnostics import ess
    mcmc = MCMC(NNUTS(potential_fn=_numpyro_potential(jnp)), num_warmup=1000,
                num_samples=1000, num_chains=c, chain_method="vectorized",
                progress_bar=False)
    init = jnp.asarray(_init(c, 1))
    t0 = time.perf_counter()
    mcmc.run(jax.random.PRNGKey(0), init_params=init if c > 1 else init[0])   # warmup+compile
    jax.block_until_ready(mcmc.get_samples())
    cold_s = time.perf_counter() - t0
    cold_ess = float(ess(np.asarray(mcmc.get_samples(group_by_chain=True)).reshape(
        c, 1000, D)).min())
    mcmc.post_warmup_state = mcmc.last_state        # later runs: sampling phase only
    mcmc.run(jax.random.PRNGKey(1), init_params=init if c > 1 else init[0])   # warm
    t = {}

    def run():
        t0 = time.perf_counter()
        mcmc.run(jax.random.PRNGKey(2), init_params=init if c > 1 else init[0])
        jax.block_until_ready(mcmc.get_samples())
        t["s"] = time.perf_counter() - t0

    benchmark.pedantic(run, rounds=1, iterations=1)
    draws = np.asarray(mcmc.get_samples(group_by_chain=True)).reshape(c, 1000, D)
    min_ess = float(ess(draws).min())
    _report(benchmark, impl="numpyro", chains=c, min_ess_bulk=min_ess,
            min_ess_per_s=min_ess / t["s"], sampling_s=t["s"],
            cold_min_ess_per_s=cold_ess / cold_s, total_s_with_warmup=cold_s)


# ------------------------------------------------------- script: repeated NUTS comparison
def _nuts_ess_rates(n_repeats=4, n_draws=1000):
    """Single-chain warm NUTS, min bulk ESS per second of sampling, ``n_repeats`` sampling
    runs from one tuned state (different random streams), for zsarray (tape, traced,
    compiled) and
    NumPyro, interleaved so that a busy spell of the machine hits all of them."""
    from samplers.diagnostics import ess
    runners = {}
    for model in ("tape", "traced", "compiled"):
        f, g, comp = MODELS[model]
        res = samplers.sample(f, _init(1, 1), n_samples=200, n_warmup=1000, rng=1,
                              progress=False, grad_fn=g, compile=comp)

        def run(seed, res=res):
            st, k, rng = res.state, res.kernel, np.random.default_rng(seed)
            draws = np.empty((1, n_draws, D))
            t0 = time.perf_counter()
            for i in range(n_draws):
                st, _ = k.step(st, rng)
                draws[:, i] = st.position
            return float(ess(draws).min()), time.perf_counter() - t0
        runners[f"zsarray-{model}"] = run
    try:
        import jax
        import jax.numpy as jnp
        from numpyro.infer import MCMC, NUTS as NNUTS
        jax.config.update("jax_enable_x64", True)
        mcmc = MCMC(NNUTS(potential_fn=_numpyro_potential(jnp)), num_warmup=1000,
                    num_samples=n_draws, num_chains=1, progress_bar=False)
        init = jnp.asarray(_init(1, 1))[0]
        mcmc.run(jax.random.PRNGKey(0), init_params=init)
        mcmc.post_warmup_state = mcmc.last_state
        mcmc.run(jax.random.PRNGKey(1), init_params=init)      # compile the sampling run

        def run_numpyro(seed):
            t0 = time.perf_counter()
            mcmc.run(jax.random.PRNGKey(100 + seed), init_params=init)
            d = np.asarray(mcmc.get_samples(group_by_chain=True)).reshape(1, n_draws, D)
            return float(ess(d).min()), time.perf_counter() - t0
        runners["numpyro"] = run_numpyro
    except ImportError as e:
        print(f"NumPyro skipped: {e}")
    return _interleave(runners, n_repeats)


def _interleave(runners, rounds):
    """``{name: [run(i) for i in range(rounds)]}``, the runners taking turns each round."""
    out = {name: [] for name in runners}
    for i in range(rounds):
        for name, run in runners.items():
            out[name].append(run(i))
    return out


def _hmc_rates(c=256, n_iter=200, rounds=5,
               models=("tape", "traced", "compiled", "compiled-1t")):
    """Fixed-step HMC chain-iterations per second at ``c`` chains, ``rounds`` interleaved
    rounds of ``n_iter`` iterations for zsarray (tape, traced, compiled) and NumPyro."""
    from autodiff.lower import fuse
    runners = {}
    # "compiled-1t": the compiled program with its large fused rows and matrix products
    # kept whole (lowered with fuse.PART_MIN and MATMUL_PART_MIN out of reach), against
    # "compiled" (rows in parts)
    for model in models:
        f, g, comp = MODELS[model.replace("-1t", "")]
        k = samplers.HMC(f, step_size=EPS_HMC, n_leapfrogs=N_LEAPFROG, grad_fn=g,
                         compile=comp)
        box = [None, np.random.default_rng(0)]

        def run(k=k, box=box, n=n_iter):
            st, rng = box
            for _ in range(n):
                st, _ = k.step(st, rng)
            box[0] = st
        part_min = fuse.PART_MIN, fuse.MATMUL_PART_MIN
        if model.endswith("-1t"):
            fuse.PART_MIN = fuse.MATMUL_PART_MIN = 2 ** 62
        try:                               # records, verifies and lowers the program
            box[0] = k.init(_init(c))
            run(n=3)
        finally:
            fuse.PART_MIN, fuse.MATMUL_PART_MIN = part_min
        run()
        runners[f"zsarray-{model}"] = run
    try:
        import jax
        import jax.numpy as jnp
        from numpyro.infer import HMC as NHMC, MCMC
        jax.config.update("jax_enable_x64", True)
        kernel = NHMC(potential_fn=_numpyro_potential(jnp), step_size=EPS_HMC,
                      num_steps=N_LEAPFROG, adapt_step_size=False, adapt_mass_matrix=False)
        mcmc = MCMC(kernel, num_warmup=0, num_samples=n_iter, num_chains=c,
                    chain_method="vectorized", progress_bar=False)
        init = jnp.asarray(_init(c))
        keys = iter(range(10, 10 ** 6))

        def run_numpyro():
            mcmc.run(jax.random.PRNGKey(next(keys)), init_params=init)
            jax.block_until_ready(mcmc.get_samples())
        run_numpyro()
        run_numpyro()
        runners["numpyro"] = run_numpyro
    except ImportError as e:
        print(f"NumPyro skipped: {e}")
    def timed(run):
        def rate(_):
            t0 = time.perf_counter()
            run()
            return c * n_iter / (time.perf_counter() - t0)
        return rate
    return _interleave({name: timed(run) for name, run in runners.items()}, rounds)


def main(argv=None):
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds of HMC")
    ap.add_argument("--hmc-only", action="store_true",
                    help="fixed-step HMC, compiled variants and NumPyro only")
    args = ap.parse_args(argv)
    models = ("compiled", "compiled-1t") if args.hmc_only else \
        ("tape", "traced", "compiled", "compiled-1t")
    for c, n_iter in ((256, 200), (4096, 30)):
        rates = _hmc_rates(c, n_iter, rounds=args.rounds, models=models)
        print(f"BLR, fixed-step HMC ({N_LEAPFROG} leapfrogs), {c} chains, chain-iterations/s "
              f"({args.rounds} interleaved rounds of {n_iter} iterations):")
        for name, r in rates.items():
            print(f"  {name:<20s} median {np.median(r):8,.0f}  best {max(r):8,.0f}   "
                  + " ".join(f"{x:,.0f}" for x in r))
    if args.hmc_only:
        return
    rates = _nuts_ess_rates()
    print("BLR (breast cancer, D = 31), single-chain NUTS, warm, 1000 draws per run:")
    print(f"  {'':<16s} {'ms/draw':>8s} {'min ESS':>8s} {'ESS/s':>7s}  (median of runs; ESS/s per run)")
    for name, runs in rates.items():
        ess_, secs = np.array(runs).T
        r = ess_ / secs
        print(f"  {name:<16s} {np.median(secs):8.3f} {np.median(ess_):8.0f} {np.median(r):7.0f}  "
              + " ".join(f"{x:.0f}" for x in r))


if __name__ == "__main__":
    main()
