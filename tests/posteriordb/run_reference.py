"""Run NUTS on posteriordb posteriors and compare with the reference draws.

Used as a module by ``test_nuts_reference.py`` (:func:`run_nuts`, :func:`compare`) and as a
script that prints, per posterior, a table of z-scores per reported parameter and the
runtime::

    python tests/posteriordb/run_reference.py                 # all 11 posteriors
    python tests/posteriordb/run_reference.py kidiq-kidscore_momiq garch-garch11
    python tests/posteriordb/run_reference.py --seed 3 --chains 4 --warmup 1000 --samples 1000

z-scores (posteriordb README, step 3):

- mean: ``z = (mean_test - mean_ref) / sqrt(mcse_test^2 + mcse_ref^2)`` with ``mcse_test``
  from :func:`samplers.diagnostics.mcse` (ESS-based) and ``mcse_ref`` from ``reference.json``;
- sd: the same with the standard errors of the sds: :func:`samplers.diagnostics.mcse_sd`
  for the test run (delta method with the ESS of the squared centred draws; using the bulk
  ESS there overstates the precision, since NUTS's anti-correlation helps means, not
  squares) and ``sd * sqrt((kurt - 1) / (4 ess_bulk))`` for the reference (``kurt`` from
  ``draws.npz``).
"""
import argparse
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

if __package__:
    from .models import MODELS, POSTERIORS, load_draws, load_reference
else:   # run as a script: python tests/posteriordb/run_reference.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))   # the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from models import MODELS, POSTERIORS, load_draws, load_reference   # noqa: E402

__all__ = ["Comparison", "run_nuts", "compare", "initial_positions", "format_table"]


@dataclass
class Comparison:
    """Outcome of one NUTS run on one posterior.

    Attributes
    ----------
    name : str
    param_names : list of str
    mean, sd, mcse, ess : ndarray [P]
        Test-run summaries of the reported quantities.
    z_mean, z_sd : ndarray [P]
        z-scores against the reference (see module docstring).
    seconds : float
        Wall time of ``samplers.sample``.
    n_divergent : int
        Divergent transitions after warmup (all chains).
    rhat : ndarray [P]
    mean_tree_depth : float
    """

    name: str
    param_names: list
    mean: np.ndarray
    sd: np.ndarray
    mcse: np.ndarray
    ess: np.ndarray
    z_mean: np.ndarray
    z_sd: np.ndarray
    seconds: float
    n_divergent: int
    rhat: np.ndarray
    mean_tree_depth: float

    @property
    def max_abs_z_mean(self):
        return float(np.max(np.abs(self.z_mean)))

    @property
    def max_abs_z_sd(self):
        return float(np.max(np.abs(self.z_sd)))


def initial_positions(name, n_chains, rng):
    """``n_chains`` random reference draws of ``name`` mapped to the unconstrained space.

    Starting in the typical set isolates the sampler's stationary behaviour (and the
    warmup's adaptation) from the initial transient, which is not what these tests check.

    Returns
    -------
    ndarray [n_chains, dim]
    """
    x, _, _ = load_draws(name)
    idx = np.random.default_rng(rng).choice(x.shape[0], size=n_chains, replace=False)
    return MODELS[name].to_unconstrained(x[idx])


def run_nuts(name, n_chains=4, n_warmup=1000, n_samples=1000, seed=0, init="reference",
             **options):
    """Sample posterior ``name`` with NUTS and compare with the reference.

    Parameters
    ----------
    name : str
        posteriordb posterior name.
    n_chains, n_warmup, n_samples : int
    seed : int
        Seeds both the choice of initial draws and the sampler.
    init : {"reference", "uniform"}
        Start at random reference draws, or Stan's uniform(-2, 2) on u.
    **options
        Passed to :func:`samplers.sample`; ``dense_mass`` defaults to the model's hint.

    Returns
    -------
    Comparison
    result : samplers.Result
    """
    import samplers

    m = MODELS[name]
    options.setdefault("dense_mass", bool(m.notes.get("dense_mass", False)))
    if init == "reference":
        q0 = initial_positions(name, n_chains, seed)
    else:
        q0 = np.random.default_rng(seed).uniform(-2.0, 2.0, size=(n_chains, m.dim))
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        # divergences are counted in the Comparison; silence the driver's warning
        warnings.simplefilter("ignore", category=getattr(samplers, "DivergenceWarning",
                                                         RuntimeWarning))
        res = samplers.sample(m.logdensity, q0, n_samples=n_samples, n_warmup=n_warmup,
                              kernel="nuts", rng=seed, progress=False, **options)
    seconds = time.perf_counter() - t0
    draws = np.asarray(res.draws)
    reported = m.to_reported(draws)                                      # [C, S, P]
    depth = float(np.mean(np.asarray(res.stats["tree_depth"])))
    return compare(name, reported, seconds, res.n_divergent, depth), res


def compare(name, reported, seconds=float("nan"), n_divergent=0, mean_tree_depth=float("nan")):
    """z-scores of the means and sds of ``reported [n_chains, n_draws, P]`` vs the reference.

    Returns
    -------
    Comparison
    """
    from samplers import diagnostics

    ref = load_reference(name)
    names = list(ref["parameters"].keys())
    p = ref["parameters"]
    ref_mean = np.array([p[k]["mean"] for k in names])
    ref_sd = np.array([p[k]["sd"] for k in names])
    ref_mcse = np.array([p[k]["mcse_mean"] for k in names])
    ref_ess = np.array([p[k]["ess_bulk"] for k in names])
    x_ref, _, _ = load_draws(name)
    kurt = np.mean((x_ref - x_ref.mean(0)) ** 4, axis=0) / x_ref.var(axis=0) ** 2

    flat = reported.reshape(-1, reported.shape[-1])
    mean, sd = flat.mean(axis=0), flat.std(axis=0, ddof=1)
    mcse = np.asarray(diagnostics.mcse(reported))
    ess = np.asarray(diagnostics.ess(reported))
    rhat = np.asarray(diagnostics.rhat(reported))
    z_mean = (mean - ref_mean) / np.sqrt(mcse ** 2 + ref_mcse ** 2)
    if hasattr(diagnostics, "mcse_sd"):
        # delta method with the ESS of the squared centred draws: NUTS draws can be
        # anti-correlated for the mean (ESS > n) but not for the squares
        se_sd_test = np.asarray(diagnostics.mcse_sd(reported))
    else:
        se_sd_test = sd * np.sqrt((kurt - 1.0) / (4.0 * ess))
    se_sd_ref = ref_sd * np.sqrt((kurt - 1.0) / (4.0 * ref_ess))
    z_sd = (sd - ref_sd) / np.sqrt(se_sd_test ** 2 + se_sd_ref ** 2)
    return Comparison(name, names, mean, sd, mcse, ess, z_mean, z_sd, seconds,
                      int(n_divergent), rhat, mean_tree_depth)


def format_table(c):
    """A text table of one :class:`Comparison`."""
    ref = load_reference(c.name)["parameters"]
    lines = [f"{c.name}: {c.seconds:.1f} s, {c.n_divergent} divergent, mean tree depth "
             f"{c.mean_tree_depth:.2f}, max|z| mean {c.max_abs_z_mean:.2f}, "
             f"max|z| sd {c.max_abs_z_sd:.2f}",
             f"  {'param':<10} {'ref mean':>11} {'mean':>11} {'mcse':>9} {'z mean':>7} "
             f"{'ref sd':>10} {'sd':>10} {'z sd':>6} {'ess':>7} {'rhat':>6}"]
    for j, k in enumerate(c.param_names):
        lines.append(f"  {k:<10} {ref[k]['mean']:>11.4g} {c.mean[j]:>11.4g} {c.mcse[j]:>9.2g} "
                     f"{c.z_mean[j]:>+7.2f} {ref[k]['sd']:>10.4g} {c.sd[j]:>10.4g} "
                     f"{c.z_sd[j]:>+6.2f} {c.ess[j]:>7.0f} {c.rhat[j]:>6.3f}")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", help="posteriors (default: all)")
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=1000)
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--init", choices=("reference", "uniform"), default="reference")
    ap.add_argument("--dense", choices=("auto", "yes", "no"), default="auto",
                    help="dense mass matrix (auto: the model's hint)")
    ap.add_argument("--max-tree-depth", type=int, default=None)
    args = ap.parse_args(argv)
    names = args.names or list(POSTERIORS)
    unknown = [n for n in names if n not in POSTERIORS]
    if unknown:
        ap.error(f"unknown posteriors {unknown}; known: {', '.join(POSTERIORS)}")
    opts = {}
    if args.dense != "auto":
        opts["dense_mass"] = args.dense == "yes"
    if args.max_tree_depth is not None:
        opts["max_tree_depth"] = args.max_tree_depth
    rows = []
    for n in names:
        c, _ = run_nuts(n, args.chains, args.warmup, args.samples, args.seed, args.init, **opts)
        print(format_table(c), flush=True)
        rows.append(c)
    print(f"\n{'posterior':<42} {'time s':>7} {'div':>4} {'depth':>5} {'max|z| mean':>11} "
          f"{'max|z| sd':>9}")
    for c in rows:
        print(f"{c.name:<42} {c.seconds:>7.1f} {c.n_divergent:>4d} {c.mean_tree_depth:>5.2f} "
              f"{c.max_abs_z_mean:>11.2f} {c.max_abs_z_sd:>9.2f}")
    return rows


if __name__ == "__main__":
    main()
