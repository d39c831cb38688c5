"""``python -m samplers.suite``: run a kernel and a warmup strategy on the posterior suite.

Prints, per posterior, the wall time, the smallest bulk ESS, ESS per second, ESS per 1000
gradient evaluations (sampling phase) and the largest |z| of the reported means against
posteriordb's reference; exits with status 1 when some |z| >= 4.
"""
import argparse
import json
import sys

from . import POSTERIORS, format_table, run


def _options(parser, pairs):
    """``["key=value", ...]`` -> dict, values as Python literals (else strings)."""
    import ast
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            parser.error(f"expected KEY=VALUE, got {pair!r}")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m samplers.suite", description=__doc__.splitlines()[0])
    p.add_argument("--kernel", default=None, help="kernel name (default: nuts, or the "
                   "strategy's own: hmc for chees, ghmc for meads)")
    p.add_argument("--adaptation", default=None, help="stan | fisher | chees | meads | none")
    p.add_argument("--adapt-option", action="append", default=[], metavar="KEY=VALUE",
                   help="an option of the strategy's class, e.g. low_rank=True for fisher "
                   "(repeatable; values are Python literals)")
    p.add_argument("--kernel-option", action="append", default=[], metavar="KEY=VALUE",
                   help="an option of the kernel, e.g. max_tree_depth=8 (repeatable)")
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--warmup", type=int, default=1000)
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--posteriors", default=",".join(POSTERIORS),
                   help="comma-separated names (default: all eleven)")
    p.add_argument("--json", default=None, help="also write the scores to this file")
    a = p.parse_args(argv)
    names = [n for n in a.posteriors.split(",") if n]
    unknown = [n for n in names if n not in POSTERIORS]
    if unknown:
        p.error(f"unknown posterior(s) {unknown}; known: {', '.join(POSTERIORS)}")
    adaptation = a.adaptation
    if a.adapt_option:
        from ..registry import get_adaptation
        adaptation = get_adaptation(a.adaptation or "stan")(**_options(p, a.adapt_option))
    rows = []
    for name in names:
        r = run(name, kernel=a.kernel, adaptation=adaptation, n_chains=a.chains,
                n_warmup=a.warmup, n_samples=a.samples, seed=a.seed,
                **_options(p, a.kernel_option))
        rows.append(r)
        print(f"{name}: {r.seconds:.1f} s, min ESS {r.min_ess:.0f}, "
              f"{1000 * r.ess_per_grad:.2f} ESS/1k grad, max|z| {r.max_abs_z:.2f}",
              file=sys.stderr, flush=True)
    print(f"kernel={a.kernel or 'default'} adaptation={a.adaptation or 'default'} "
          f"{' '.join(a.adapt_option + a.kernel_option)} "
          f"chains={a.chains} warmup={a.warmup} samples={a.samples} seed={a.seed}")
    print(format_table(rows))
    if a.json:
        with open(a.json, "w") as f:
            json.dump([{k: v for k, v in r._asdict().items() if k != "result"} for r in rows],
                      f, indent=1)
    return 1 if any(r.max_abs_z >= 4 for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
