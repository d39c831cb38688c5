"""Distributions without a usual density: Empirical, Implicit, FlowDistribution."""
import numpy as np

import autodiff as ad
from autodiff.core import Tensor

from .base import Distribution, constraints

__all__ = ["Empirical", "Implicit", "FlowDistribution"]


class Empirical(Distribution):
    """A variable that is only ever observed (ZhuSuan's Empirical): data whose
    distribution has no explicit form, e.g. the inputs of a model.

    ``sample``, ``log_prob`` and ``prob`` raise a clear error; the class only carries the
    shapes and dtype for a BayesianNet.

    Parameters
    ----------
    batch_shape : tuple of int
    dtype : dtype
        The dtype of observations.
    value_shape : tuple of int
    is_continuous : bool or None
        None: continuous iff ``dtype`` is a float dtype.
    group_ndims : int
    """
    support = constraints.any

    def __init__(self, batch_shape, dtype, value_shape=(), is_continuous=None, group_ndims=0):
        self._batch, self._value = tuple(batch_shape), tuple(value_shape)
        dtype = np.dtype(dtype)
        self.is_continuous = dtype.kind == "f" if is_continuous is None else bool(is_continuous)
        super().__init__({}, group_ndims=group_ndims, is_reparameterized=False,
                         validate_args=False)
        self.dtype = self.param_dtype = dtype

    def _batch_shape(self):
        return self._batch

    def _value_shape(self):
        return self._value

    def _sample(self, shape, rng, p):
        raise ValueError("Empirical: cannot sample from an Empirical distribution; it stands "
                         "for data that is always observed")

    def log_prob(self, given):
        """Raises ValueError: an Empirical distribution has no density."""
        raise ValueError("Empirical: an Empirical distribution has no log-probability "
                         "(it stands for data that is always observed)")

    prob = log_prob


class Implicit(Distribution):
    """A variable given by samples only (ZhuSuan's Implicit), e.g. a GAN generator's
    output.

    ``sample(None)`` returns the samples, ``sample(1)`` them with a leading axis; any
    other ``n_samples`` raises. ``log_prob`` is the Dirac log-density: for continuous
    dtypes ``+inf`` where ``given`` equals the samples and ``-inf`` elsewhere; for
    discrete ones ``0`` and ``-inf``. Gradients flow through the samples (they are
    whatever Tensor was passed).

    Parameters
    ----------
    samples : Tensor or array, shape ``batch_shape + value_shape``
    value_shape : tuple of int
    group_ndims : int
    """
    arg_constraints = {"samples": constraints.any}
    support = constraints.any
    has_rsample = True

    def __init__(self, samples, value_shape=(), group_ndims=0, **kwargs):
        self._value = tuple(value_shape)
        raw = samples.data if type(samples) is Tensor else np.asarray(samples) \
            if not hasattr(samples, "dtype") else samples
        self.is_continuous = raw.dtype.kind == "f"
        if not self.is_continuous:   # keep integer samples as they are
            self.int_params = ("samples",)
            kwargs.setdefault("dtype", raw.dtype)
        super().__init__(dict(samples=samples), group_ndims=group_ndims, **kwargs)

    def _batch_shape(self):
        s = tuple(self._p.samples.shape)
        nv = len(self._value)
        if nv and s[len(s) - nv:] != self._value:
            raise ValueError(f"Implicit: samples of shape {s} must end with value_shape "
                             f"{self._value}")
        return s[:len(s) - nv]

    def _value_shape(self):
        return self._value

    def _sample(self, shape, rng, p):
        if shape == ():
            return p.samples
        if shape == (1,):
            return ad.expand_dims(p.samples, 0)
        raise ValueError(f"Implicit: n_samples must be None or 1 (the distribution is its "
                         f"samples), got {shape[0]}")

    def _log_prob(self, x, p):
        eq = x.data == (p.samples.data if type(p.samples) is Tensor else p.samples)
        if self._value:
            eq = np.all(eq, axis=tuple(range(-len(self._value), 0)))
        hit = np.inf if self.is_continuous else 0.0
        return self._xp.where(eq, hit, -np.inf).astype(self.param_dtype)


class FlowDistribution(Distribution):
    """A base distribution pushed through invertible transforms (normalizing flows;
    Rezende & Mohamed 2015).

    Contract of a transform: ``forward(x) -> (y, log_det)`` and
    ``inverse(y) -> (x, log_det)``, with ``log_det`` the log |det Jacobian| of that
    direction, shapes of ``x`` preserved. A flow on vectors (``zs.flows``) returns
    ``log_det`` of shape ``x.shape[:-1]``; an elementwise transform (``zs.transforms``)
    may return it elementwise. Then::

        sample      = forward(base.sample())           (composed left to right)
        log_prob(y) = grouped base.log_prob(x) + sum of the inverse log-dets, x = inverse(y)

    where the base log-probability is grouped with this distribution's ``group_ndims``
    (default: the base's) and each log-det is summed over its trailing axes down to
    that grouped shape. So a flow on the last axis needs ``group_ndims >= 1``:
    ``FlowDistribution(Normal(mu, std, group_ndims=1), flows)``.

    The log-probability of a sample is computed in the forward direction while
    sampling and reused when ``log_prob`` is called on that very Tensor, so flows
    without a closed-form inverse (Planar) can score their own samples and IAF needs
    no sequential inverse there.

    Parameters
    ----------
    base : Distribution
    transforms : sequence of transform objects (or one)
    group_ndims : int or None
    support : Constraint or str
        Of the output (default: the base's support). Values are not validated.
    """
    def __init__(self, base, transforms, group_ndims=None, support=None):
        if not isinstance(base, Distribution):
            raise TypeError(f"FlowDistribution: base must be a Distribution, got "
                            f"{type(base).__name__}")
        if not isinstance(transforms, (list, tuple)):
            transforms = [transforms]
        for i, t in enumerate(transforms):
            if not (callable(getattr(t, "forward", None)) and callable(getattr(t, "inverse", None))):
                raise TypeError(f"FlowDistribution: transforms[{i}] ({type(t).__name__}) must "
                                f"have forward(x) -> (y, log_det) and inverse(y) -> (x, log_det)")
        self.base, self.transforms = base, tuple(transforms)
        self.is_continuous = base.is_continuous
        self.has_rsample = base.is_reparameterized
        self._xp = base._xp
        self.batch_shape, self.value_shape = base.batch_shape, base.value_shape
        self.param_dtype = self.dtype = base.param_dtype
        self.group_ndims = self._check_group_ndims(
            base.group_ndims if group_ndims is None else group_ndims)
        self.is_reparameterized = base.is_reparameterized
        self.use_path_derivative = base.use_path_derivative
        self.validate_args = False
        self.support = base.support if support is None else support
        self._p = base._p
        self._cache = None

    def sample(self, n_samples=None, rng=None):
        """``forward(base.sample(n_samples, rng))``; its log-probability is cached."""
        x = self.base.sample(n_samples, rng)
        lp = self._group(self.base._elementwise_log_prob(x))
        for t in self.transforms:
            x, ld = t.forward(x)
            lp = lp - _align(ld, lp, type(t).__name__)
        self._cache = (x, lp)
        return x

    def log_prob(self, given):
        """Grouped log-density of ``given`` (see the class docstring for the shapes)."""
        cache = self._cache
        if cache is not None and given is cache[0]:
            return cache[1]
        x = given if type(given) is Tensor else Tensor(self._xp.asarray(given))
        log_dets = []
        for t in reversed(self.transforms):
            x, ld = t.inverse(x)
            log_dets.append((t, ld))
        lp = self._group(self.base._elementwise_log_prob(x))
        for t, ld in log_dets:
            lp = lp + _align(ld, lp, type(t).__name__)
        return lp

    def _sample(self, shape, rng, p):   # sample() is overridden
        raise NotImplementedError


def _align(log_det, lp, name):
    """Sum ``log_det`` over its trailing axes down to the rank of the grouped ``lp``."""
    if type(log_det) is not Tensor:
        log_det = Tensor(log_det)
    extra = log_det.ndim - lp.ndim
    if extra < 0:
        raise ValueError(f"FlowDistribution: the log-det of {name} has shape "
                         f"{tuple(log_det.shape)}, fewer axes than the grouped base "
                         f"log-probability {tuple(lp.shape)}; a flow on the last axis needs "
                         f"group_ndims >= 1 (e.g. FlowDistribution(Normal(mu, std, "
                         f"group_ndims=1), flows))")
    if extra:
        log_det = ad.sum(log_det, axis=tuple(range(-extra, 0)))
    return log_det
