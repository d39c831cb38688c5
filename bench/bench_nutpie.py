"""The ``fisher`` warmup against nutpie itself, on the suite's diagonal-metric posteriors.

Run (nutpie and PyMC may live in another environment; give its interpreter)::

    PYTHONPATH=. python bench/bench_nutpie.py --nutpie-python /path/to/venv/bin/python \
        [--rounds 2]

The posteriors: every one of :data:`samplers.suite.POSTERIORS` whose Stan metric is
diagonal, i.e. all but those marked ``dense_mass`` (kilpisjarvi, diamonds), each written
in PyMC with the suite's priors, likelihood and unconstrained parameterisation.

Per posterior (:mod:`bench.nutpie_models` holds the PyMC twins), 4 chains x (1000 +
1000), NUTS: zsarray ``sample(adaptation="stan" | "fisher" | FisherAdaptation(low_rank=True))``
from :func:`samplers.suite.run`, and nutpie with its diagonal and its low-rank mass
matrix. Reported: minimum bulk ESS over the reported (constrained) quantities, computed
by the same function (``samplers.diagnostics.ess``) for all, per 1000 gradient
evaluations of the sampling phase (nutpie's ``n_steps``), and per second of the whole
run (nutpie: sampling only, its compilation shown apart). Medians over ``--rounds``
seeds.
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def diagonal_posteriors():
    """The posteriors of ``samplers.suite.POSTERIORS`` (same order) whose Stan metric is
    diagonal: all but those marked ``notes["dense_mass"]``."""
    from samplers import suite
    return tuple(n for n in suite.POSTERIORS if not suite.MODELS[n].notes.get("dense_mass"))


def run_nutpie(python, name, seed, low_rank):
    out = subprocess.run([python, os.path.join(ROOT, "bench", "nutpie_models.py"), name,
                          str(seed), "1" if low_rank else "0"], capture_output=True, text=True)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    if not lines:
        raise RuntimeError(f"nutpie on {name} failed:\n{out.stderr[-3000:]}")
    r = json.loads(lines[-1][7:])
    return np.asarray(r["draws"]), r["n_steps"], r["sample_s"], r["compile_s"]


def run_zs(name, seed, adaptation):
    from samplers import suite
    r = suite.run(name, adaptation=adaptation, seed=seed)
    rep = suite.MODELS[name].to_reported(np.asarray(r.result.draws))
    return rep, r.n_grad, r.seconds


def main(argv=None):
    from samplers import diagnostics
    from samplers.strategies.fisher import FisherAdaptation
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nutpie-python", default=sys.executable)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--posteriors", default=",".join(diagonal_posteriors()))
    a = p.parse_args(argv)
    print(f"{'posterior':40s} {'contender':26s} {'ESS/1k grad':>11s} {'ESS/s':>9s} "
          f"{'min ESS':>8s} {'compile s':>9s}")
    for name in a.posteriors.split(","):
        rows = {"zsarray stan": [], "zsarray fisher": [], "zsarray fisher low-rank": [],
                "nutpie diag": [], "nutpie low-rank": []}
        comp = {}
        for seed in range(1, a.rounds + 1):
            for label, adapt in (("zsarray stan", "stan"), ("zsarray fisher", "fisher"),
                                 ("zsarray fisher low-rank", FisherAdaptation(low_rank=True))):
                rep, n_grad, sec = run_zs(name, seed, adapt)
                ess = float(diagnostics.ess(rep).min())
                rows[label].append((ess / n_grad, ess / sec, ess))
            for label, lr in (("nutpie diag", False), ("nutpie low-rank", True)):
                rep, steps, sec, csec = run_nutpie(a.nutpie_python, name, seed, lr)
                ess = float(diagnostics.ess(rep).min())
                rows[label].append((ess / steps, ess / sec, ess))
                comp[label] = csec
        for label, vals in rows.items():
            v = np.median(np.asarray(vals), axis=0)
            c = f"{comp[label]:9.1f}" if label in comp else f"{'':9s}"
            print(f"{name:40s} {label:26s} {1000 * v[0]:11.1f} {v[1]:9.0f} {v[2]:8.0f} {c}",
                  flush=True)


if __name__ == "__main__":
    main()
