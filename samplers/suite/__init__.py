"""A posterior suite for sampler research: eleven posteriordb posteriors, one command.

>>> from samplers import suite                                        # doctest: +SKIP
>>> r = suite.run("eight_schools-eight_schools_noncentered", kernel="nuts",
...               adaptation="fisher")                                # doctest: +SKIP
>>> r.max_abs_z, r.ess_per_grad                                       # doctest: +SKIP

or from a shell (every posterior, a table of ESS/s, ESS per gradient and z-scores)::

    python -m samplers.suite --kernel nuts --adaptation fisher
    python -m samplers.suite --kernel hmc --adaptation chees --chains 128 --warmup 500 \\
        --samples 200

The posteriors (:data:`POSTERIORS`, models in :mod:`samplers.suite.models`) are written
with :mod:`autodiff` on the unconstrained space; their data and the summaries of
posteriordb's reference draws (Stan, 10 x 1000 draws) ship with the package (BSD-3-Clause,
``samplers/suite/data/LICENSE-posteriordb.txt``). :func:`run` samples one posterior
through :func:`samplers.sample` from Stan's uniform(-2, 2) inits and scores it:

- ``min_ess``: the smallest bulk ESS over the unconstrained coordinates;
- ``ess_per_second`` over the whole run (warmup included), ``ess_per_grad``: ``min_ess``
  per gradient evaluation of the sampling phase (the measure of nutpie's paper);
- ``z``: per reported quantity, ``(mean - ref_mean) / sqrt(mcse^2 + ref_mcse^2)``; a
  correct sampler keeps every ``|z| < 4``.

A kernel or a strategy written outside the package runs through the same call
(``kernel=MyKernel, adaptation=MyStrategy()``).
"""
import math
import time
import warnings
from typing import NamedTuple

import numpy as np

from .models import MODELS, POSTERIORS, Model, load_reference

__all__ = ["POSTERIORS", "MODELS", "Model", "load_reference", "run", "SuiteResult",
           "z_scores", "format_table"]


class SuiteResult(NamedTuple):
    """Scores of one run of :func:`run`.

    Attributes
    ----------
    name : str
    seconds : float
        Wall time of the whole run (warmup and sampling).
    min_ess : float
        Smallest bulk ESS over the unconstrained coordinates.
    ess_per_second : float
    n_grad : int
        Gradient evaluations of the sampling phase, all chains.
    ess_per_grad : float
        ``min_ess / n_grad``.
    z : dict of str to float
        z-score of each reported quantity's mean against the reference.
    max_abs_z : float
    n_divergent : int
        Divergent transitions after warmup.
    result : samplers.Result
    """
    name: str
    seconds: float
    min_ess: float
    ess_per_second: float
    n_grad: int
    ess_per_grad: float
    z: dict
    max_abs_z: float
    n_divergent: int
    result: object


def z_scores(model, draws, reference=None):
    """z-scores of the reported quantities' means against the reference.

    Parameters
    ----------
    model : Model
    draws : array, shape [C, S, dim]
        Unconstrained draws.
    reference : dict, optional
        :func:`load_reference` of the model (default).

    Returns
    -------
    dict of str to float
        ``(mean - ref_mean) / sqrt(mcse^2 + ref_mcse^2)``, ``mcse`` from
        :func:`samplers.diagnostics.mcse` (ESS-based) of the chains.
    """
    from .. import diagnostics
    ref = (reference or load_reference(model.name))["parameters"]
    rep = model.to_reported(np.asarray(draws))                 # [C, S, P]
    mcse = diagnostics.mcse(rep)
    out = {}
    for j, pname in enumerate(model.param_names):
        r = ref[pname]
        out[pname] = float((rep[..., j].mean() - r["mean"]) / math.hypot(mcse[j],
                                                                           r["mcse_mean"]))
    return out


def run(name, kernel=None, adaptation=None, n_chains=4, n_warmup=1000, n_samples=1000,
        seed=0, **options):
    """Sample posterior ``name`` with :func:`samplers.sample` and score the draws.

    Parameters
    ----------
    name : str
        One of :data:`POSTERIORS`.
    kernel, adaptation
        As in :func:`samplers.sample` (names, classes or a strategy object).
    n_chains, n_warmup, n_samples : int
    seed : int
        Seeds the uniform(-2, 2) inits and the sampler.
    **options
        More arguments of :func:`samplers.sample`. A model that asks for it
        (kilpisjarvi, diamonds: correlations near -1) gets ``dense_mass=True`` unless
        given, under the strategies named by a string that estimate a dense mass
        (``"stan"``, ``"chees"``).

    Returns
    -------
    SuiteResult
    """
    import samplers
    from .. import diagnostics
    model = MODELS[name]
    if model.notes.get("dense_mass") and (adaptation in (None, "stan", "chees")) and \
            kernel in (None, "nuts", "hmc", "mala"):
        options.setdefault("dense_mass", True)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", samplers.DivergenceWarning)
        res = samplers.sample(model.logdensity, n_chains=n_chains, dim=model.dim,
                              n_samples=n_samples, n_warmup=n_warmup, kernel=kernel,
                              adaptation=adaptation, rng=seed, progress=False, **options)
    seconds = time.perf_counter() - t0
    draws = np.asarray(res.draws)
    min_ess = float(diagnostics.ess(draws).min())
    n_grad = int(np.asarray(res.stats["n_grad_evals"]).sum())
    z = z_scores(model, draws)
    return SuiteResult(name, seconds, min_ess, min_ess / seconds, n_grad,
                       min_ess / max(n_grad, 1), z, max(abs(v) for v in z.values()),
                       res.n_divergent, res)


def format_table(results):
    """Text table of :class:`SuiteResult` rows with geometric means at the bottom."""
    head = (f"{'posterior':42s} {'s':>7s} {'min ESS':>8s} {'ESS/s':>8s} {'ESS/1k grad':>11s} "
            f"{'max|z|':>7s} {'div':>5s}")
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(f"{r.name:42s} {r.seconds:7.1f} {r.min_ess:8.0f} {r.ess_per_second:8.1f} "
                     f"{1000 * r.ess_per_grad:11.2f} {r.max_abs_z:7.2f} {r.n_divergent:5d}")
    if results:
        def gmean(v):
            v = [max(x, 1e-12) for x in v]
            return math.exp(sum(math.log(x) for x in v) / len(v))
        lines.append("-" * len(head))
        lines.append(f"{'geometric mean':42s} {'':7s} {'':8s} "
                     f"{gmean([r.ess_per_second for r in results]):8.1f} "
                     f"{1000 * gmean([r.ess_per_grad for r in results]):11.2f} "
                     f"{max(r.max_abs_z for r in results):7.2f}")
    return "\n".join(lines)
