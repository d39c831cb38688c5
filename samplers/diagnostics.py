"""MCMC convergence diagnostics: rank-normalized split R-hat, ESS and MCSE.

Implements Vehtari, Gelman, Simpson, Carpenter & Bürkner (2021),
"Rank-normalization, folding, and localization: an improved R-hat for
assessing convergence of MCMC", Bayesian Analysis 16(2), following the
reference implementations in Stan, the R package ``posterior`` and ArviZ
(same split, rank offset 3/8, Geyer truncation and monotone sequence, and the
``1/log10(N)`` lower bound on the autocorrelation time).

All functions take draws of shape ``[n_chains, n_draws, ...]``; trailing
dimensions are independent quantities and the result has the trailing shape
(a 0-d array for ``[n_chains, n_draws]`` input). Everything is vectorized over
the quantities: autocovariances by FFT along the draw axis, and Geyer's
initial monotone sequence with cumulative operations instead of a per-quantity
Python loop. CuPy input is copied to the host first (diagnostics run once per
sampling run, on arrays small compared with the sampling work).

Non-finite draws give NaN for that quantity.
"""

import numpy as np
from scipy import special, stats

__all__ = ["ess", "ess_tail", "ess_basic", "rhat", "nested_rhat", "mcse", "mcse_sd",
           "stuck_chains", "summary", "Summary"]

_MIN_DRAWS = 4


# ------------------------------------------------------------------ helpers
def _as_draws(draws):
    """Validate and return ``(x [C, N, K] float64, trailing shape)``."""
    if type(draws).__module__.startswith("cupy"):
        draws = draws.get()
    x = np.asarray(draws, dtype=np.float64)
    if x.ndim < 2:
        raise ValueError(f"draws: expected an array of shape [n_chains, n_draws, ...], got shape {x.shape}")
    if x.shape[1] < _MIN_DRAWS:
        raise ValueError(f"draws: expected at least {_MIN_DRAWS} draws per chain, got shape {x.shape}")
    if x.shape[0] < 1:
        raise ValueError(f"draws: expected at least 1 chain, got shape {x.shape}")
    trailing = x.shape[2:]
    return x.reshape(x.shape[0], x.shape[1], -1), trailing


def _split_chains(x):
    """``[C, N, K] -> [2C, N//2, K]``; the middle draw of an odd N is dropped."""
    half = x.shape[1] // 2
    return np.concatenate([x[:, :half], x[:, x.shape[1] - half :]], axis=0)


def _average_ranks(y):
    """Ranks (1-based, ties averaged) of each column of ``y [M, K]``: one argsort per
    column, with ``scipy.stats.rankdata`` only for the columns that have ties (its tie
    handling costs several times an argsort: this matters at 10,000 chains)."""
    m, k = y.shape
    out = np.empty((k, m))
    steps = np.arange(1.0, m + 1.0)
    for j in range(k):
        col = np.ascontiguousarray(y[:, j])
        order = np.argsort(col)
        srt = col[order]
        if (srt[1:] == srt[:-1]).any():
            out[j] = stats.rankdata(col, method="average")
        else:
            out[j, order] = steps
    return out.T


def _z_scale(x):
    """Rank-normalize each quantity over all chains and draws (ties get average ranks)."""
    c, n, k = x.shape
    ranks = _average_ranks(x.reshape(c * n, k))
    # Blom's offset 3/8, as in the paper's equation (14).
    return special.ndtri((ranks - 0.375) / (c * n + 0.25)).reshape(c, n, k)


def _autocov(x):
    """Biased (1/N) autocovariance of each chain and quantity along axis 1 by FFT."""
    n = x.shape[1]
    m = 2 * n  # zero padding to 2N avoids circular wrap-around
    xc = x - x.mean(axis=1, keepdims=True)
    f = np.fft.rfft(xc, n=m, axis=1)
    return np.fft.irfft(f * np.conj(f), n=m, axis=1)[:, :n] / n


def _ess_raw(x):
    """ESS of ``[C, N, K]`` (already split) draws, Geyer's initial monotone sequence.

    Vectorized version of Stan's ``compute_effective_sample_size``/ArviZ's
    ``_ess``: with pair sums ``P_j = rho_{2j} + rho_{2j+1}`` (``rho_0 = 1``), the
    sequence is truncated at the first ``j`` with ``P_j <= 0`` (or at the
    longest lag Stan looks at), the kept pair sums are made monotone with a
    running minimum, and ``tau = -1 + 2 sum_{j<J} P_j + rho_{2J}^+``.
    """
    c, n, k = x.shape
    acov = _autocov(x)
    chain_mean = x.mean(axis=1)  # [C, K]
    mean_var = acov[:, 0].mean(axis=0) * n / (n - 1.0)  # W, mean within-chain variance
    var_plus = mean_var * (n - 1.0) / n
    if c > 1:
        var_plus = var_plus + chain_mean.var(axis=0, ddof=1)  # + B / n
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = 1.0 - (mean_var - acov.mean(axis=0)) / var_plus  # [N, K]
    rho[0] = 1.0

    n_pairs = max((n - 3) // 2, 0) + 1  # pairs j = 0..j_cap that Stan's loop can visit
    pairs = rho[0 : 2 * n_pairs : 2] + rho[1 : 2 * n_pairs : 2]  # [n_pairs, K]
    nonpos = pairs <= 0
    # J: index of the first non-positive pair, or the last visitable one.
    last = np.where(nonpos.any(axis=0), nonpos.argmax(axis=0), n_pairs - 1)
    keep = np.arange(n_pairs)[:, None] < last[None, :]  # pairs 0..J-1, all positive
    monotone = np.minimum.accumulate(np.where(keep, pairs, np.inf), axis=0)
    tau = -1.0 + 2.0 * np.where(keep, monotone, 0.0).sum(axis=0)
    # The even term of pair J is added when positive or when the whole pair
    # was kept (pair 0 always: rho_0 = 1).
    cols = np.arange(k)
    rho_even = rho[2 * last, cols]
    pair_last = pairs[last, cols]
    tau = tau + np.where((rho_even > 0) | (pair_last >= 0), rho_even, 0.0)
    n_total = c * n
    tau = np.maximum(tau, 1.0 / np.log10(n_total))
    out = n_total / tau
    # Constant quantities (e.g. an indicator that is never true) have zero
    # variance; Stan and ArviZ report the number of draws for them.
    constant = np.ptp(x.reshape(c * n, k), axis=0) < np.finfo(np.float64).resolution
    out = np.where(constant, float(n_total), out)
    return np.where(np.isnan(rho).any(axis=0) & ~constant, np.nan, out)


def _shape(values, trailing):
    return np.asarray(values, dtype=np.float64).reshape(trailing)


def _with_finite(x, fn, bad=np.nan):
    """Apply ``fn`` to ``x`` with non-finite draws zeroed, then set those quantities to
    ``bad``."""
    ok = np.isfinite(x).all(axis=(0, 1))
    return np.where(ok, fn(np.where(ok, x, 0.0)), bad)


# ---------------------------------------------------------------- public API
def ess(draws):
    """Bulk effective sample size: rank-normalized split-chain ESS.

    Parameters
    ----------
    draws : array, shape [n_chains, n_draws, ...]
        At least 4 draws per chain.

    Returns
    -------
    ndarray, shape ``draws.shape[2:]``
        Bulk ESS per quantity (Vehtari et al. 2021, Sec. 4.3).

    Raises
    ------
    ValueError
        If ``draws`` has fewer than 2 dimensions or fewer than 4 draws per chain.
    """
    x, trailing = _as_draws(draws)
    return _shape(_with_finite(x, lambda y: _ess_raw(_z_scale(_split_chains(y)))), trailing)


def ess_basic(draws):
    """Split-chain ESS without rank normalization (used for the MCSE of the mean).

    Parameters and errors as :func:`ess`.
    """
    x, trailing = _as_draws(draws)
    return _shape(_with_finite(x, lambda y: _ess_raw(_split_chains(y))), trailing)


def _quantile_indicator_ess(x, prob):
    q = np.quantile(x.reshape(-1, x.shape[2]), prob, axis=0)  # pooled, type 7 as Stan/ArviZ
    return _ess_raw(_split_chains((x <= q).astype(np.float64)))


def ess_tail(draws):
    """Tail ESS: the minimum of the ESS of the 5% and 95% quantile indicators.

    Parameters and errors as :func:`ess`.
    """
    x, trailing = _as_draws(draws)

    def tail(y):
        return np.minimum(_quantile_indicator_ess(y, 0.05), _quantile_indicator_ess(y, 0.95))

    return _shape(_with_finite(x, tail), trailing)


def _rhat_raw(x):
    """Classic split R-hat of ``[C, N, K]`` (already split) draws."""
    n = x.shape[1]
    between = n * x.mean(axis=1).var(axis=0, ddof=1)
    within = x.var(axis=1, ddof=1).mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.sqrt((between / within + n - 1.0) / n)
    # chains stuck at different constants: no within-chain spread, but the chains
    # disagree -- the limit of R-hat is +inf (NaN would pass an `rhat > 1.01` check)
    # (relative: z-scaled tied ranks leave a within-chain variance of rounding size)
    return np.where((between > 0) & (within <= 1e-14 * between), np.inf, out)


def rhat(draws):
    """Rank-normalized split R-hat: the maximum of the bulk and folded (tail) R-hat.

    Parameters
    ----------
    draws : array, shape [n_chains, n_draws, ...]
        At least 4 draws per chain (a single chain is split in two).

    Returns
    -------
    ndarray, shape ``draws.shape[2:]``
        R-hat per quantity; values above about 1.01 signal non-convergence
        (Vehtari et al. 2021, Sec. 4.2). ``inf`` where a quantity has non-finite
        draws or its chains sit at different constants; NaN only where every draw of
        every chain is the same constant (undefined, as in ArviZ).

    Raises
    ------
    ValueError
        As :func:`ess`.
    """
    x, trailing = _as_draws(draws)

    def rank_rhat(y):
        bulk = _rhat_raw(_z_scale(_split_chains(y)))
        folded = np.abs(y - np.median(y.reshape(-1, y.shape[2]), axis=0))
        tail = _rhat_raw(_z_scale(_split_chains(folded)))
        return np.fmax(bulk, tail)         # a constant folded draw (NaN) must not hide bulk

    # a quantity with non-finite draws has not converged: +inf, which every
    # `rhat > threshold` check catches (NaN would pass it)
    return _shape(_with_finite(x, rank_rhat, bad=np.inf), trailing)


def nested_rhat(draws, n_superchains):
    """Nested R-hat (Margossian, Hoffman, Sountsov, Riou-Durand, Vehtari & Gelman 2024),
    for many short chains grouped in superchains.

    Chains ``k * M .. (k + 1) * M - 1`` form superchain ``k`` (``M = n_chains /
    n_superchains``; chains of a superchain usually start from one point). With ``B``
    the variance of the superchain means and ``W`` the mean over superchains of their
    within-chain variance plus the variance of their chain means (each term 0 when a
    superchain has one chain, or chains one draw),
    ``nested R-hat = sqrt(1 + B / W)``. Unlike :func:`rhat` it is not split,
    rank-normalized or folded, and it works with a single draw per chain.

    Parameters
    ----------
    draws : array, shape [n_chains, n_draws, ...]
    n_superchains : int
        At least 2, dividing ``n_chains``.

    Returns
    -------
    ndarray, shape ``draws.shape[2:]``
        Values near 1 (the paper suggests below about 1.01 with many chains) mean the
        superchains agree; NaN where a draw is not finite.

    Raises
    ------
    ValueError
        When ``n_superchains`` does not divide the chains into groups of equal size,
        or ``draws`` is not ``[n_chains, n_draws, ...]``.
    """
    if type(draws).__module__.startswith("cupy"):
        draws = draws.get()
    x = np.asarray(draws, dtype=np.float64)
    if x.ndim < 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"draws: expected an array of shape [n_chains, n_draws, ...], got shape {x.shape}")
    c = x.shape[0]
    if int(n_superchains) != n_superchains or not 2 <= n_superchains <= c or c % n_superchains:
        raise ValueError(f"n_superchains: expected an integer >= 2 that divides the {c} chains, "
                         f"got {n_superchains!r}")
    trailing = x.shape[2:]
    k = int(n_superchains)
    y = x.reshape(k, c // k, x.shape[1], -1)               # [K, M, N, Q]
    chain_mean = y.mean(axis=2)                              # [K, M, Q]
    within_chain = y.var(axis=2, ddof=1).mean(axis=1) if y.shape[2] > 1 else 0.0
    between_chain = chain_mean.var(axis=1, ddof=1) if y.shape[1] > 1 else 0.0
    superchain_mean = chain_mean.mean(axis=1)                # [K, Q]
    b = superchain_mean.var(axis=0, ddof=1)
    w = np.mean(within_chain + between_chain, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.sqrt(1.0 + b / w)
    out = np.where(np.isfinite(y).all(axis=(0, 1, 2)), out, np.nan)
    return _shape(out, trailing)


def stuck_chains(draws, acceptance=None, min_acceptance=0.05):
    """Chains that did not move: every draw identical, or (given the per-transition
    ``acceptance [n_chains, n_draws]``) a mean acceptance below ``min_acceptance``.

    Returns
    -------
    ndarray of int
        The chain indices, ascending.
    """
    if type(draws).__module__.startswith("cupy"):
        draws = draws.get()
    x = np.asarray(draws)
    x = x.reshape(x.shape[0], x.shape[1], -1)
    frozen = (x == x[:, :1]).all(axis=(1, 2)) if x.shape[1] > 1 else np.zeros(x.shape[0], bool)
    if acceptance is not None:
        if type(acceptance).__module__.startswith("cupy"):
            acceptance = acceptance.get()
        a = np.nan_to_num(np.asarray(acceptance, dtype=np.float64), nan=0.0)
        frozen |= a.mean(axis=1) < min_acceptance
    return np.nonzero(frozen)[0]


def mcse(draws):
    """Monte Carlo standard error of the mean: ``sd / sqrt(ess_basic)``.

    ``sd`` is the standard deviation (ddof=1) of all draws pooled. Parameters
    and errors as :func:`ess`.
    """
    x, trailing = _as_draws(draws)
    sd = x.reshape(-1, x.shape[2]).std(axis=0, ddof=1)
    return _shape(sd / np.sqrt(ess_basic(x)), trailing)


def mcse_sd(draws):
    """Monte Carlo standard error of the standard deviation.

    The ``posterior``/ArviZ estimator: delta method on the variance, with the
    ESS of the squared centred draws (Vehtari et al. 2021, Sec. 4.4).
    Parameters and errors as :func:`ess`.
    """
    x, trailing = _as_draws(draws)

    def f(y):
        sq = (y - y.mean(axis=(0, 1))) ** 2
        n_eff = _ess_raw(_split_chains(sq))
        ev = sq.mean(axis=(0, 1))
        varvar = ((sq**2).mean(axis=(0, 1)) - ev**2) / n_eff
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(ev > 0, np.sqrt(varvar / ev / 4.0), 0.0)

    return _shape(_with_finite(x, f), trailing)


# ------------------------------------------------------------------ summary
class Summary:
    """A small table of per-quantity statistics (what :func:`summary` returns).

    Attributes
    ----------
    names : list of str
        Row names, one per quantity.
    columns : dict of str -> ndarray, shape [n_quantities]
        Column name to values, in display order.
    """

    __slots__ = ("names", "columns")

    def __init__(self, names, columns):
        self.names = list(names)
        self.columns = dict(columns)

    def __getitem__(self, column):
        return self.columns[column]

    def __len__(self):
        return len(self.names)

    def __str__(self):
        def fmt(name, v):
            if name.startswith("ess"):
                return "nan" if not np.isfinite(v) else f"{v:.0f}"
            return f"{v:.3g}" if name != "r_hat" else f"{v:.3f}"

        header = ["", *self.columns]
        rows = [[n, *(fmt(c, v[i]) for c, v in self.columns.items())] for i, n in enumerate(self.names)]
        widths = [max(len(r[j]) for r in [header, *rows]) for j in range(len(header))]
        lines = [
            "  ".join(s.ljust(w) if j == 0 else s.rjust(w) for j, (s, w) in enumerate(zip(r, widths)))
            for r in [header, *rows]
        ]
        return "\n".join(lines)

    __repr__ = __str__


def summary(draws, names=None, quantiles=(0.05, 0.5, 0.95)):
    """Per-quantity table: mean, sd, mcse, quantiles, ess_bulk, ess_tail, r_hat.

    Parameters
    ----------
    draws : array, shape [n_chains, n_draws, ...]
        At least 4 draws per chain.
    names : sequence of str, optional
        One name per quantity (trailing dims flattened in C order). Default
        ``x[i]`` (or ``x[i,j]`` for several trailing dims, ``x`` for none).
    quantiles : sequence of float
        Probabilities of the quantile columns, named like ``"5%"``.

    Returns
    -------
    Summary
        ``str(result)`` is an aligned text table; ``result["ess_bulk"]`` a column.

    Raises
    ------
    ValueError
        As :func:`ess`, or if ``names`` does not have one entry per quantity.
    """
    x, trailing = _as_draws(draws)
    k = x.shape[2]
    if names is None:
        if not trailing:
            names = ["x"]
        else:
            names = ["x[" + ",".join(map(str, i)) + "]" for i in np.ndindex(*trailing)]
    names = list(names)
    if len(names) != k:
        raise ValueError(f"names: expected {k} names (one per quantity), got {len(names)}")
    flat = x.reshape(-1, k)
    columns = {"mean": flat.mean(axis=0), "sd": flat.std(axis=0, ddof=1), "mcse": mcse(x).reshape(k)}
    qs = np.quantile(flat, quantiles, axis=0)
    for prob, q in zip(quantiles, qs):
        columns[f"{100 * prob:g}%"] = q
    columns["ess_bulk"] = ess(x).reshape(k)
    columns["ess_tail"] = ess_tail(x).reshape(k)
    columns["r_hat"] = rhat(x).reshape(k)
    return Summary(names, columns)
