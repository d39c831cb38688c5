"""NUTS on the posteriordb posteriors: zsarray against NumPyro, ESS per second.

Run (needs ``../shared/posteriordb``; NumPyro/JAX optional)::

    PYTHONPATH=. python bench/bench_posteriordb.py [--posteriors a,b] [--rounds 2]

Both samplers run with their defaults on the same log densities (zsarray's autodiff
models of :mod:`tests.posteriordb.models`, NumPyro on their JAX twins of
:mod:`bench.posteriordb_jax`, checked equal by ``bench/check_posteriordb_jax.py``):
NUTS, 4 chains (NumPyro ``chain_method="vectorized"``), 1000 warmup and 1000 kept
draws, diagonal mass adaptation, target acceptance 0.8, initial points uniform(-2, 2)
on the unconstrained space from the same generator. zsarray runs through
``samplers.sample``'s defaults, which compile the log density.

For each run: wall time of the whole run (warmup and sampling), the minimum bulk ESS
over the unconstrained coordinates computed by the same function
(``samplers.diagnostics.ess``) for both, and their ratio (ESS/s). *Cold* is the first
run in a fresh process (zsarray: recording and lowering the log density, with Numba's
on-disk cache of the machine in place; NumPyro: JAX tracing and XLA compilation);
*warm* is the median over later runs in one process, the two samplers interleaved.
zsarray's draws are also checked against the reference means (max |z| over the
reported quantities, MCSE-scaled).
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def _init(name, dim, seed):
    return np.random.default_rng(1000 + seed).uniform(-2.0, 2.0, size=(4, dim))


def run_zsarray(name, seed, model=None):
    """``(seconds, min bulk ESS, n_divergent, result)`` of one zsarray NUTS run."""
    import samplers
    from samplers import diagnostics
    from tests.posteriordb.models import MODELS
    m = model or MODELS[name]
    t0 = time.perf_counter()
    res = samplers.sample(m.logdensity, _init(name, m.dim, seed), rng=seed, progress=False)
    dt = time.perf_counter() - t0
    return dt, float(diagnostics.ess(res.draws).min()), res.n_divergent, res


def _numpyro_mcmc(name):
    import jax
    from numpyro.infer import MCMC, NUTS
    from bench.posteriordb_jax import build_jax
    ld = build_jax(name)
    kernel = NUTS(potential_fn=lambda u: -ld(u))
    mcmc = MCMC(kernel, num_warmup=1000, num_samples=1000, num_chains=4,
                chain_method="vectorized", progress_bar=False)
    return mcmc, jax


def run_numpyro(name, seed, dim, mcmc=None):
    """``(seconds, min bulk ESS, n_divergent)`` of one NumPyro NUTS run."""
    from samplers import diagnostics
    if mcmc is None:
        mcmc, jax = _numpyro_mcmc(name)
    else:
        import jax
    init = jax.numpy.asarray(_init(name, dim, seed))
    t0 = time.perf_counter()
    mcmc.run(jax.random.PRNGKey(seed), init_params=init, extra_fields=("diverging",))
    draws = np.asarray(mcmc.get_samples(group_by_chain=True))
    dt = time.perf_counter() - t0
    div = int(np.asarray(mcmc.get_extra_fields()["diverging"]).sum())
    return dt, float(diagnostics.ess(draws).min()), div


def max_z(name, res):
    """Largest |z| of the reported means against the reference (MCSE-scaled)."""
    from samplers import diagnostics
    from tests.posteriordb.models import MODELS, load_reference
    m = MODELS[name]
    ref = load_reference(name)["parameters"]
    rep = m.to_reported(np.asarray(res.draws))                 # [C, S, P]
    zs = []
    for j, pname in enumerate(m.param_names):
        x = rep[..., j]
        mcse = float(diagnostics.mcse(x[..., None])[0]) if x.ndim == 2 else 0.0
        r = ref[pname]
        zs.append(abs(x.mean() - r["mean"]) / np.hypot(mcse, r["mcse_mean"]))
    return float(max(zs))


_CHILD = """
import sys, json, warnings
warnings.simplefilter("ignore")
sys.path.insert(0, {root!r})
from bench.bench_posteriordb import run_zsarray, run_numpyro, _numpyro_mcmc, _init
from tests.posteriordb.models import MODELS
name, which, rounds = {name!r}, {which!r}, {rounds}
m = MODELS[name]
out = []
if which == "prime":                   # fills Numba's cache: machine, NUTS transition
    import samplers
    samplers.sample(m.logdensity, _init(name, m.dim, 0), n_samples=20, n_warmup=20,
                    rng=0, progress=False)
    out.append(("prime",))
elif which == "cold-zs":
    dt, ess, div, res = run_zsarray(name, 0)
    out.append(("zs", dt, ess, div))
elif which == "cold-np":
    dt, ess, div = run_numpyro(name, 0, m.dim)
    out.append(("np", dt, ess, div))
else:
    from bench.bench_posteriordb import max_z
    mcmc, _ = _numpyro_mcmc(name)
    run_zsarray(name, 100)
    run_numpyro(name, 100, m.dim, mcmc)
    for r in range(rounds):
        dt, ess, div, res = run_zsarray(name, r + 1)
        out.append(("zs", dt, ess, div, max_z(name, res)))
        dt, ess, div = run_numpyro(name, r + 1, m.dim, mcmc)
        out.append(("np", dt, ess, div))
print("RESULT " + json.dumps(out))
"""


def _child(name, which, rounds=2):
    code = _CHILD.format(root=ROOT, name=name, which=which, rounds=rounds)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    if not lines:
        raise RuntimeError(f"{name} {which} failed:\n{out.stderr[-3000:]}")
    return json.loads(lines[-1][7:])


def main(argv=None):
    from tests.posteriordb.models import POSTERIORS, find_posteriordb
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--posteriors", default=",".join(POSTERIORS))
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--json", default=None, help="write the results to this file")
    a = p.parse_args(argv)
    if find_posteriordb() is None:
        sys.exit("posteriordb not found (set ZSARRAY_SHARED)")
    names = a.posteriors.split(",")
    unknown = [n for n in names if n not in POSTERIORS]
    if unknown:
        p.error(f"--posteriors: unknown {', '.join(unknown)}; known: {', '.join(POSTERIORS)}")
    # "cold" means Numba's cache of the machine in place (see the module's text): after
    # a change to the package's sources the first process compiles the machine and the
    # NUTS transition (about a minute, once per installation), not counted in any run
    t0 = time.perf_counter()
    _child(names[0], "prime")
    print(f"(Numba's cache checked / filled first in a separate process: "
          f"{time.perf_counter() - t0:.1f} s)")
    rows = []
    hdr = (f"{'posterior':40s} {'zs s':>6s} {'np s':>6s} {'zs ESS/s':>9s} {'np ESS/s':>9s} "
           f"{'ratio':>6s} | {'cold zs':>7s} {'cold np':>7s} {'ratio':>6s} | {'max|z|':>6s} "
           f"{'div zs/np':>9s}")
    print(hdr)
    for name in names:
        cz = _child(name, "cold-zs")[0]
        cn = _child(name, "cold-np")[0]
        warm = _child(name, "warm", a.rounds)
        zs = [w for w in warm if w[0] == "zs"]
        nps = [w for w in warm if w[0] == "np"]
        zs_rate = float(np.median([w[2] / w[1] for w in zs]))
        np_rate = float(np.median([w[2] / w[1] for w in nps]))
        row = dict(name=name, zs_s=float(np.median([w[1] for w in zs])),
                   np_s=float(np.median([w[1] for w in nps])), zs_rate=zs_rate,
                   np_rate=np_rate, warm_ratio=zs_rate / np_rate,
                   cold_zs=cz[2] / cz[1], cold_np=cn[2] / cn[1],
                   cold_ratio=(cz[2] / cz[1]) / (cn[2] / cn[1]),
                   max_z=max(w[4] for w in zs), div_zs=sum(w[3] for w in zs),
                   div_np=sum(w[3] for w in nps), cold_zs_s=cz[1], cold_np_s=cn[1])
        rows.append(row)
        print(f"{name:40s} {row['zs_s']:6.1f} {row['np_s']:6.1f} {zs_rate:9.0f} "
              f"{np_rate:9.0f} {row['warm_ratio']:6.2f} | {row['cold_zs']:7.0f} "
              f"{row['cold_np']:7.0f} {row['cold_ratio']:6.2f} | {row['max_z']:6.2f} "
              f"{row['div_zs']:4d}/{row['div_np']:<4d}", flush=True)
    gw = float(np.exp(np.mean([np.log(r["warm_ratio"]) for r in rows])))
    gc = float(np.exp(np.mean([np.log(r["cold_ratio"]) for r in rows])))
    print(f"geometric mean of ESS/s ratios (zsarray / NumPyro): warm {gw:.2f}, cold {gc:.2f}; "
          f"lowest warm {min(r['warm_ratio'] for r in rows):.2f}, "
          f"lowest cold {min(r['cold_ratio'] for r in rows):.2f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
