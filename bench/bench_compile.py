"""Compiled log densities: the 2-state HMM of :mod:`bench.hmm`, value and gradient.

Run::

    PYTHONPATH=. python bench/bench_compile.py            # warm table + cold compile times

Rows (4 chains, float64, ``value_and_grad`` of the summed log density):

* zsarray on the tape, replayed by ``ad.trace``, and compiled by ``ad.compile`` (the
  forward algorithm as a Python loop, and with ``ad.scan``);
* JAX ``jit(vmap(value_and_grad))`` with ``lax.scan`` and with the loop written out
  (optional: skipped when JAX is not installed).

Warm: median over interleaved rounds of the best of a batch of calls (this machine is
noisy; interleaving keeps the ratios fair). Cold: the first call in a fresh process
(for zsarray the first two calls: recording and lowering, then the first run of the
compiled program, checked against the tape; for JAX tracing and XLA compilation), run in
subprocesses; for zsarray once with Numba's on-disk cache of the machine warm (the
usual case) and once with an empty cache (the one-time compilation of the machine,
after installing).
"""
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import autodiff as ad  # noqa: E402
from bench import hmm  # noqa: E402

C = 4


def _positions(seed=0):
    return np.random.default_rng(seed).uniform(-2, 2, size=(C, 4))


def _contenders():
    out = {}
    tape = ad.value_and_grad(lambda u: ad.sum(hmm.hmm_loop(u)))
    out["zsarray tape (loop)"] = tape
    out["zsarray trace (loop)"] = ad.trace(hmm.hmm_loop).value_and_grad
    out["zsarray compile (loop)"] = ad.compile(hmm.hmm_loop).value_and_grad
    out["zsarray compile (scan)"] = ad.compile(hmm.hmm_scan).value_and_grad
    try:
        import jax
        jax.config.update("jax_enable_x64", True)
        for name, f in (("JAX jit (lax.scan)", hmm.jax_hmm), ("JAX jit (loop)", hmm.jax_hmm_loop)):
            vg = jax.jit(jax.vmap(jax.value_and_grad(f)))
            out[name] = (lambda vg: lambda u: jax.block_until_ready(vg(u)))(vg)
    except ImportError:
        pass
    return out


def warm(rounds=7, calls=30):
    """Median per-call seconds of each contender, interleaved rounds."""
    fs = _contenders()
    x = _positions()
    for f in fs.values():           # record / verify / compile
        for k in range(6):
            f(x + 0.01 * k)
    times = {k: [] for k in fs}
    for _ in range(rounds):
        for k, f in fs.items():
            n = 3 if "tape" in k or "trace" in k else calls
            t0 = time.perf_counter()
            for _ in range(n):
                f(x)
            times[k].append((time.perf_counter() - t0) / n)
    return {k: float(np.median(v)) for k, v in times.items()}


_COLD = """
import time, sys, json, numpy as np
t0 = time.perf_counter()
sys.path.insert(0, {root!r})
import autodiff as ad
from bench import hmm
t_import = time.perf_counter() - t0
x = np.random.default_rng(0).uniform(-2, 2, size=(4, 4))
which = {which!r}
if which.startswith("jax"):
    import jax
    jax.config.update("jax_enable_x64", True)
    f = hmm.jax_hmm if which == "jax-scan" else hmm.jax_hmm_loop
    vg = jax.jit(jax.vmap(jax.value_and_grad(f)))
    t0 = time.perf_counter(); jax.block_until_ready(vg(x)); first = time.perf_counter() - t0
else:
    f = ad.compile(hmm.hmm_scan if which == "scan" else hmm.hmm_loop).value_and_grad
    t0 = time.perf_counter(); f(x); first = time.perf_counter() - t0
    t0 = time.perf_counter(); f(x + 0.1); first += time.perf_counter() - t0
print(json.dumps({{"import": t_import, "first": first}}))
"""


def cold(which, cache_dir=None):
    """Seconds of the first call in a fresh process (and of importing autodiff)."""
    env = dict(os.environ)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", _COLD.format(root=root, which=which)],
                         capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    res = warm()
    base = res.get("JAX jit (lax.scan)")
    print(f"HMM (N={hmm.N}, {C} chains, float64): value and gradient, warm")
    print(f"{'':28s} {'us/call':>10s} {'x JAX scan':>11s}")
    for k, v in res.items():
        ratio = f"{v / base:10.2f}x" if base else ""
        print(f"{k:28s} {v * 1e6:10.1f} {ratio:>11s}")
    print("\ncold: first call in a fresh process (s)")
    for which in ("loop", "scan"):
        c = cold(which)
        print(f"  zsarray compile ({which}), machine cached: first calls {c['first']:.2f} s "
              f"(import {c['import']:.2f} s)")
    with tempfile.TemporaryDirectory() as d:
        c = cold("scan", cache_dir=d)
        print(f"  zsarray compile (scan), empty Numba cache: first calls {c['first']:.2f} s "
              f"(the one-time compilation of the machine)")
    try:
        import jax  # noqa: F401
        for which in ("jax-scan", "jax-loop"):
            c = cold(which)
            print(f"  {which}: first call {c['first']:.2f} s")
    except ImportError:
        pass


if __name__ == "__main__":
    main()
