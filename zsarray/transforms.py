"""Bijections between the unconstrained space and constrained supports.

Samplers work on an unconstrained vector; each constrained latent is the image of an
unconstrained one under a bijection ``forward: u -> x`` whose log-Jacobian
``log|det dx/du|`` is added to the log density (Stan Reference Manual, "Constraint
Transforms"). Every transform here offers

* ``forward(u) -> (x, log_det)``: unconstrained to constrained, with the log-Jacobian
  summed over the transform's event dimensions (``event_ndim``);
* ``inverse(x) -> (u, log_det)``: constrained to unconstrained, with the log-Jacobian of
  the inverse map (``= -log_det`` of forward at ``u``);
* ``unconstrained_shape(shape)`` / ``constrained_shape(shape)``: event shapes differ for
  the simplex (K-1 -> K) and the correlation Cholesky factor (K(K-1)/2 -> K x K).

Inputs may be autodiff Tensors or raw NumPy/CuPy arrays; leading axes are batch axes.
:func:`biject_to` maps a distribution's ``support`` to its default transform.
"""
import numpy as np

import autodiff as ad

__all__ = ["Transform", "Identity", "Exp", "Affine", "Interval", "LowerBounded",
           "UpperBounded", "StickBreaking", "Ordered", "PositiveOrdered", "CholeskyCorr",
           "biject_to", "identity", "exp", "sigmoid", "interval", "stick_breaking",
           "ordered", "positive_ordered", "cholesky_corr"]


def _tensor(x):
    return x if isinstance(x, ad.Tensor) else ad.tensor(x)


def _sum_last(x, n):
    return ad.sum(x, axis=tuple(range(-n, 0))) if n else x


class Transform:
    """Base class: subclasses implement ``_forward(u) -> (x, ldj)`` on a Tensor ``u`` (ldj
    elementwise for elementwise transforms, or already summed over the event when
    ``_ldj_summed``) and ``_inverse(x) -> u`` on a Tensor ``x``."""
    event_ndim = 0
    _ldj_summed = False

    def forward(self, u):
        x, ldj = self._forward(_tensor(u))
        return x, ldj if self._ldj_summed else _sum_last(ldj, self.event_ndim)

    def inverse(self, x):
        u = self._inverse(_tensor(x))
        return u, -self.forward(u)[1]

    def unconstrained_shape(self, shape):
        return tuple(shape)

    def constrained_shape(self, shape):
        return tuple(shape)

    def __repr__(self):
        return f"{type(self).__name__}()"


class Identity(Transform):
    """The real line to itself."""

    def _forward(self, u):
        return u, u * 0.0

    def _inverse(self, x):
        return x


class Exp(Transform):
    """Positive reals: x = exp(u), log-Jacobian u."""

    def _forward(self, u):
        return ad.exp(u), u

    def _inverse(self, x):
        return ad.log(x)


class Affine(Transform):
    """x = loc + scale * u (scale != 0), log-Jacobian log|scale|."""

    def __init__(self, loc=0.0, scale=1.0):
        if np.any(np.asarray(ad.backend.asnumpy(scale)) == 0):
            raise ValueError("Affine: scale must be nonzero")
        self.loc, self.scale = loc, scale

    def _forward(self, u):
        return self.loc + u * self.scale, ad.log(ad.abs(self.scale)) + u * 0.0

    def _inverse(self, x):
        return (x - self.loc) / self.scale   # x is a Tensor: the result is one too


class Interval(Transform):
    """(low, high): x = low + (high - low) * sigmoid(u).

    log-Jacobian: log(high - low) + log_sigmoid(u) + log_sigmoid(-u), stable for large |u|.
    """

    def __init__(self, low=0.0, high=1.0):
        if not np.all(np.asarray(ad.backend.asnumpy(high)) > np.asarray(ad.backend.asnumpy(low))):
            raise ValueError(f"Interval: need high > low, got low={low!r}, high={high!r}")
        self.low, self.high = low, high

    def _forward(self, u):
        width = self.high - self.low
        x = self.low + width * ad.sigmoid(u)
        return x, ad.log(width) + ad.log_sigmoid(u) + ad.log_sigmoid(-u)

    def _inverse(self, x):
        p = (x - self.low) / (self.high - self.low)
        return ad.log(p) - ad.log1p(-p)

    def __repr__(self):
        return f"Interval({self.low!r}, {self.high!r})"


class LowerBounded(Transform):
    """(low, inf): x = low + exp(u)."""

    def __init__(self, low=0.0):
        self.low = low

    def _forward(self, u):
        return self.low + ad.exp(u), u

    def _inverse(self, x):
        return ad.log(x - self.low)


class UpperBounded(Transform):
    """(-inf, high): x = high - exp(u)."""

    def __init__(self, high=0.0):
        self.high = high

    def _forward(self, u):
        return self.high - ad.exp(u), u

    def _inverse(self, x):
        return ad.log(self.high - x)


class StickBreaking(Transform):
    """The simplex of K components from K-1 reals (Stan's stick-breaking transform).

    z_k = sigmoid(u_k - log(K - k)) (k = 1..K-1, the offset centres u = 0 on the uniform
    simplex); x_k = z_k (1 - sum_{j<k} x_j); x_K = 1 - sum_{j<K} x_j.
    log-Jacobian: sum_k log z_k + log(1 - z_k) + log(1 - sum_{j<k} x_j).
    """
    event_ndim = 1
    _ldj_summed = True

    def _forward(self, u):
        u = u
        k1 = u.shape[-1]
        offset = np.log(np.arange(k1, 0, -1, dtype=float))
        v = u - offset
        z = ad.sigmoid(v)
        log_z, log_1mz = ad.log_sigmoid(v), ad.log_sigmoid(-v)
        # log of the remaining stick before each break: cumsum of log(1 - z)
        log_rest = ad.cumsum(log_1mz, axis=-1)
        log_rest_before = ad.concatenate(
            [ad.tensor(np.zeros(u.shape[:-1] + (1,), dtype=u.dtype)), log_rest[..., :-1]],
            axis=-1)
        x_head = z * ad.exp(log_rest_before)
        x_last = ad.exp(log_rest[..., -1:])
        x = ad.concatenate([x_head, x_last], axis=-1)
        ldj = ad.sum(log_z + log_1mz + log_rest_before, axis=-1)
        return x, ldj

    def _inverse(self, x):
        k1 = x.shape[-1] - 1
        offset = np.log(np.arange(k1, 0, -1, dtype=float))
        rest = 1 - ad.concatenate([ad.tensor(np.zeros(x.shape[:-1] + (1,), dtype=x.dtype)),
                                   ad.cumsum(x[..., :-2], axis=-1)], axis=-1)
        z = x[..., :-1] / rest
        return ad.log(z) - ad.log1p(-z) + offset

    def unconstrained_shape(self, shape):
        return tuple(shape[:-1]) + (shape[-1] - 1,)

    def constrained_shape(self, shape):
        return tuple(shape[:-1]) + (shape[-1] + 1,)


class Ordered(Transform):
    """Increasing vectors: x_1 = u_1, x_k = x_{k-1} + exp(u_k); log-Jacobian sum_{k>1} u_k."""
    event_ndim = 1
    _ldj_summed = True

    def _forward(self, u):
        u = u
        x = ad.cumsum(ad.concatenate([u[..., :1], ad.exp(u[..., 1:])], axis=-1), axis=-1)
        return x, ad.sum(u[..., 1:], axis=-1)

    def _inverse(self, x):
        return ad.concatenate([x[..., :1], ad.log(x[..., 1:] - x[..., :-1])], axis=-1)


class PositiveOrdered(Transform):
    """Positive increasing vectors: x = cumsum(exp(u)); log-Jacobian sum_k u_k."""
    event_ndim = 1
    _ldj_summed = True

    def _forward(self, u):
        u = u
        return ad.cumsum(ad.exp(u), axis=-1), ad.sum(u, axis=-1)

    def _inverse(self, x):
        return ad.log(ad.concatenate([x[..., :1], x[..., 1:] - x[..., :-1]], axis=-1))


class CholeskyCorr(Transform):
    """Cholesky factors of K x K correlation matrices from K(K-1)/2 reals (Stan's).

    Canonical partial correlations z = tanh(u) fill the strict lower triangle row by
    row; row i of L is w_ij = z_ij sqrt(1 - sum_{k<j} w_ik^2) for j < i and
    w_ii = sqrt(1 - sum_{k<i} w_ik^2). log-Jacobian:
    sum log(1 - z^2) (from tanh) + sum_{i>j} 0.5 log(1 - sum_{k<j} w_ik^2).
    """
    event_ndim = 1          # on the unconstrained side: one vector per matrix
    _ldj_summed = True

    @staticmethod
    def _k(n):
        k = int(round((1 + np.sqrt(1 + 8 * n)) / 2))
        if k * (k - 1) // 2 != n:
            raise ValueError(f"CholeskyCorr: {n} unconstrained values do not make a "
                             f"K(K-1)/2 vector")
        return k

    def _forward(self, u):
        u = u
        k = self._k(u.shape[-1])
        batch = u.shape[:-1]
        z = ad.tanh(u)
        ldj = ad.sum(ad.log1p(-z * z), axis=-1)
        zero = ad.tensor(np.zeros(batch + (1,), dtype=u.dtype))
        one = ad.tensor(np.ones(batch + (1,), dtype=u.dtype))
        rows, pos = [ad.concatenate([one] + [zero] * (k - 1), axis=-1)], 0
        for i in range(1, k):
            remaining = one[..., 0]
            entries = []
            for j in range(i):
                ldj = ldj + 0.5 * ad.log(remaining)
                w = z[..., pos] * ad.sqrt(remaining)
                remaining = remaining - w * w
                entries.append(w[..., None])
                pos += 1
            entries.append(ad.sqrt(remaining)[..., None])
            rows.append(ad.concatenate(entries + [zero] * (k - 1 - i), axis=-1))
        return ad.stack(rows, axis=-2), ldj

    def _inverse(self, x):
        k = x.shape[-1]
        out = []
        for i in range(1, k):
            remaining = 1.0
            for j in range(i):
                z = x[..., i, j] / ad.sqrt(remaining)
                out.append(ad.log1p(z) * 0.5 - ad.log1p(-z) * 0.5)     # atanh
                remaining = remaining - x[..., i, j] * x[..., i, j]
        return ad.stack(out, axis=-1)

    def unconstrained_shape(self, shape):
        k = shape[-1]
        return tuple(shape[:-2]) + (k * (k - 1) // 2,)

    def constrained_shape(self, shape):
        k = self._k(shape[-1])
        return tuple(shape[:-1]) + (k, k)


identity = Identity()
"""The identity transform (an unconstrained real)."""
exp = Exp()
"""``exp``: the real line onto the positive reals."""
sigmoid = Interval(0.0, 1.0)
"""The logistic sigmoid: the real line onto the unit interval (0, 1)."""
stick_breaking = StickBreaking()
"""Stick breaking: ``K - 1`` reals onto the ``K``-simplex."""
ordered = Ordered()
"""Reals onto increasing vectors (first element, then exp of the gaps)."""
positive_ordered = PositiveOrdered()
"""Reals onto increasing vectors of positive numbers."""
cholesky_corr = CholeskyCorr()
"""Reals onto Cholesky factors of correlation matrices."""


def interval(low, high):
    """The (low, high) interval transform (a scaled sigmoid)."""
    return Interval(low, high)


_BY_NAME = {"real": identity, "real_vector": identity, "real_matrix": identity,
            "positive": exp, "nonnegative": exp, "unit_interval": sigmoid,
            "probability": sigmoid, "simplex": stick_breaking, "ordered": ordered,
            "positive_ordered": positive_ordered, "corr_cholesky": cholesky_corr}


def biject_to(support):
    """The default transform from the unconstrained space onto ``support``.

    ``support`` is a name ('real', 'positive', 'unit_interval', 'simplex', 'ordered',
    'positive_ordered', 'corr_cholesky', 'interval', 'greater_than', 'less_than') or an
    object with a ``name`` attribute and, for bounded supports, ``lower``/``upper``.
    Discrete supports have no transform and raise ValueError.
    """
    name = getattr(support, "name", support)
    if name in _BY_NAME:
        return _BY_NAME[name]
    if name == "interval":
        if getattr(support, "lower", None) is None or getattr(support, "upper", None) is None:
            raise ValueError(f"biject_to: the interval support {support!r} does not carry its "
                             f"bounds (lower/upper)")
        return Interval(support.lower, support.upper)
    if name == "greater_than":
        return LowerBounded(support.lower)
    if name == "less_than":
        return UpperBounded(support.upper)
    raise ValueError(f"biject_to: no transform to the support {support!r} (discrete or "
                     f"unknown supports cannot be sampled on an unconstrained space); known: "
                     f"{sorted(_BY_NAME) + ['interval', 'greater_than', 'less_than']}")
