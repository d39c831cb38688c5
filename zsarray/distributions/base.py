"""The :class:`Distribution` base class, its shape rule, and support constraints.

Every distribution is a small subclass that declares, as class data (NumPyro's
``arg_constraints`` / ``support`` style, STYLE.md 10):

* ``arg_constraints``: parameter name -> :class:`Constraint`, in constructor order;
* ``param_ndims``: parameter name -> number of trailing non-batch dims (``cov_tril``: 2);
* ``support``: a :class:`Constraint` naming the set the values live in;
* ``is_continuous``, ``has_rsample`` (pathwise gradients available), ``value_ndims``;

and implements ``_sample(shape, rng, p)`` and ``_log_prob(given, p)`` (``p`` is a
namespace of the parameters), plus optional ``_mean``, ``_variance``, ``_entropy``.
The public template methods here (ZhuSuan's ``zhusuan/distributions/base.py``, STYLE.md
11) do everything else once: parameter conversion and validation, the dtype and device
rule, the shape rule, ``group_ndims``, ``is_reparameterized`` and ``use_path_derivative``.

Shape rule (ZhuSuan's)
----------------------
``sample(n_samples)`` has shape ``[n_samples] + batch_shape + value_shape``; the leading
axis is kept when ``n_samples == 1`` and absent when ``n_samples is None``.
``log_prob(given)`` broadcasts ``given`` against ``batch_shape + value_shape`` and sums the
last ``group_ndims`` batch axes: its shape is
``broadcast(given.shape[:-len(value_shape)], batch_shape)[:-group_ndims]``.

Arrays and devices
------------------
Parameters and values may be :class:`autodiff.Tensor` s or raw NumPy/CuPy arrays (or
Python scalars). Results are always Tensors (leaves when nothing requires a gradient)
and live on the parameters' device. dtype follows the parameters: float32 parameters
give float32 samples and log-probabilities; when only Python scalars are given, the
``dtype=`` argument (default float64) decides.
"""
import math
import types

import numpy as np

import autodiff as ad
from autodiff import backend
from autodiff import tracer as ad_tracer
from autodiff.core import Tensor

__all__ = ["Distribution", "Constraint", "constraints", "make_rng"]


# ----------------------------------------------------------------------------- constraints

class Constraint:
    """A named set, checked elementwise over the batch.

    Parameters
    ----------
    name : str
        Its name ('real', 'positive', 'unit_interval', 'simplex', ...); a constraint
        compares equal to its name, so ``dist.support == 'positive'`` works.
    check : callable
        ``check(x, closed) -> bool array`` over the array ``x``; ``closed=True`` accepts
        the boundary (values: log_prob is defined there by its limit, e.g. Beta at 0),
        ``closed=False`` is the strict test used for parameters.
    event_ndims : int
        Trailing dims that form one element (1 for 'simplex', 2 for 'lower_cholesky');
        ``check`` returns a result over the remaining dims.
    description : str
        What is expected, for error messages.
    vanishes_at_inf : bool
        As a support: every density on it tends to 0 at infinite values, so
        ``log_prob`` is ``-inf`` wherever a value has an infinite entry (the base class
        applies this once, instead of each formula meeting ``inf - inf``).
    interior : callable or None
        As a support: ``interior(x)`` is a point of the support that broadcasts
        against ``x``. ``log_prob`` evaluates its formula there instead of at the
        values it sets to ``-inf``, so that their gradients are 0, not NaN.
    """
    __slots__ = ("name", "check", "event_ndims", "description", "lower", "upper",
                 "vanishes_at_inf", "interior")

    def __init__(self, name, check, event_ndims=0, description=None, lower=None, upper=None,
                 vanishes_at_inf=False, interior=None):
        self.name, self.check, self.event_ndims = name, check, event_ndims
        self.description = description or name
        # bounds of interval-like supports, for the unconstraining transform
        self.lower, self.upper = lower, upper
        self.vanishes_at_inf, self.interior = vanishes_at_inf, interior

    def __eq__(self, other):
        if isinstance(other, str):
            return self.name == other
        return isinstance(other, Constraint) and other.name == self.name

    def __hash__(self):
        return hash(self.name)

    def __repr__(self):
        return f"Constraint({self.name!r})"

    def __str__(self):
        return self.name


def _tol(x):
    return 1e-4 if x.dtype == np.float32 or x.dtype == np.float16 else 1e-8


def _is_int(x):
    return (x == np.floor(x)) if x.dtype.kind == "f" else np.ones(x.shape, bool)


def _lower_cholesky(x, closed):
    xp = backend.get_array_module(x)
    upper_zero = np.all(np.triu(x, 1) == 0, axis=(-2, -1))
    d = np.diagonal(x, axis1=-2, axis2=-1)
    return upper_zero & np.all(d > 0, axis=-1) & xp.all(~np.isnan(x), axis=(-2, -1))


def _zero(x):
    return 0.0


def _one(x):
    return 1.0


def _first_onehot(x):
    xp = backend.get_array_module(x)
    return (xp.arange(x.shape[-1]) == 0).astype(x.dtype)


def _simplex(x, closed):
    return np.all(x >= 0, axis=-1) & (np.abs(np.sum(x, axis=-1) - 1) <= _tol(x) * x.shape[-1])


def _log_simplex(x, closed):
    s = np.log(np.sum(np.exp(x), axis=-1))
    return np.all(x <= 0, axis=-1) & (np.abs(s) <= _tol(x) * x.shape[-1])


def _onehot(x, closed):
    return np.all((x == 0) | (x == 1), axis=-1) & (np.sum(x, axis=-1) == 1)


class _Constraints(types.SimpleNamespace):
    """The predefined constraints (``constraints.real``, ``constraints.positive``, ...)."""

    @staticmethod
    def interval(low, high):
        """Values in ``[low, high)`` (the Uniform support; bounds may be arrays)."""
        def check(x, closed):
            return (x >= low) & ((x <= high) if closed else (x < high))
        return Constraint("interval", check, description="in [minval, maxval)",
                          lower=low, upper=high, interior=lambda x: 0.5 * (low + high))

    @staticmethod
    def integer_interval(low, high):
        """Integers in ``[low, high]`` (Categorical, Binomial; bounds may be arrays)."""
        def check(x, closed):
            return (x >= low) & (x <= high) & _is_int(x)
        return Constraint("integer_interval", check,
                          description="an integer in [low, high]", interior=lambda x: low)

    @staticmethod
    def multinomial(n):
        """Nonnegative integer count vectors summing to ``n``."""
        def check(x, closed):
            return (np.all((x >= 0) & _is_int(x), axis=-1)
                    & (np.sum(x, axis=-1) == n))
        return Constraint("multinomial", check, 1,
                          "nonnegative integer counts summing to n_experiments")


constraints = _Constraints(
    real=Constraint("real", lambda x, c: ~np.isnan(x), description="real (not NaN)",
                    vanishes_at_inf=True, interior=_zero),
    real_vector=Constraint("real_vector", lambda x, c: np.all(~np.isnan(x), axis=-1), 1,
                           "a real vector", vanishes_at_inf=True, interior=_zero),
    real_matrix=Constraint("real_matrix", lambda x, c: np.all(~np.isnan(x), axis=(-2, -1)),
                           2, "a real matrix", vanishes_at_inf=True, interior=_zero),
    positive=Constraint("positive", lambda x, c: (x >= 0) if c else (x > 0),
                        description="positive (> 0)", vanishes_at_inf=True, interior=_one),
    nonnegative=Constraint("nonnegative", lambda x, c: x >= 0,
                           description="nonnegative (>= 0)", vanishes_at_inf=True,
                           interior=_one),
    unit_interval=Constraint("unit_interval",
                             lambda x, c: ((x >= 0) & (x <= 1)) if c else ((x > 0) & (x < 1)),
                             description="in the unit interval (0, 1)",
                             interior=lambda x: 0.5),
    probability=Constraint("probability", lambda x, c: (x >= 0) & (x <= 1),
                           description="a probability in [0, 1]"),
    simplex=Constraint("simplex", _simplex, 1,
                       "on the simplex (nonnegative, summing to 1 over the last axis)",
                       interior=lambda x: 1.0 / x.shape[-1]),
    log_simplex=Constraint("log_simplex", _log_simplex, 1,
                           "on the log-simplex (logsumexp over the last axis is 0)",
                           interior=lambda x: -math.log(x.shape[-1])),
    onehot=Constraint("onehot", _onehot, 1, "a one-hot vector", interior=_first_onehot),
    boolean=Constraint("boolean", lambda x, c: (x == 0) | (x == 1), description="0 or 1",
                       interior=_zero),
    nonnegative_integer=Constraint("nonnegative_integer",
                                   lambda x, c: (x >= 0) & _is_int(x),
                                   description="a nonnegative integer",
                                   vanishes_at_inf=True, interior=_one),
    lower_cholesky=Constraint("lower_cholesky", _lower_cholesky, 2,
                              "lower triangular with a positive diagonal"),
    positive_definite=Constraint(
        "positive_definite",
        lambda x, c: np.all(np.linalg.eigvalsh(x) > 0, axis=-1), 2,
        "symmetric positive definite"),
    any=Constraint("any", lambda x, c: np.ones(x.shape, bool), description="anything"),
)


# ----------------------------------------------------------------------------- helpers

def make_rng(rng, xp=np):
    """A random Generator from ``rng``.

    Parameters
    ----------
    rng : None, int, numpy.random.Generator or cupy.random.Generator
        ``None`` gives a fresh ``xp.random.default_rng()`` seeded from OS entropy (so
        results differ between calls; pass a seed or a Generator for reproducibility);
        an int seeds a new ``xp.random.default_rng(seed)``; a Generator is used as is.
        There is never a global seed.
    xp : module
        numpy or cupy: where a new generator is made.

    Raises
    ------
    TypeError
        For any other type (``numpy.random.RandomState`` included).
    """
    if rng is None:
        return xp.random.default_rng()
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return xp.random.default_rng(int(rng))
    if isinstance(rng, np.random.Generator) or (backend.is_cupy(rng)
                                                 and hasattr(rng, "standard_normal")):
        return rng
    raise TypeError(f"rng: expected None, an int seed, a numpy.random.Generator or a "
                    f"cupy.random.Generator, got {type(rng).__name__}")


def draw(rng, xp, method, *args, post=None, **kwargs):
    """``rng.<method>(*args, **kwargs)`` moved to the array module ``xp``, then
    ``post(out)`` if given (a transform of the noise alone, e.g. ``-log u``).

    A NumPy generator with CuPy parameters draws on the host and copies the result to
    the device (and the other way round), so any generator works with any device.

    Under :func:`autodiff.trace` the draw and ``post`` are recorded as one random
    source: replay draws again from the same generator and transforms again instead of
    reusing these numbers. Anything else computed from the result must go through
    autodiff primitives (``ad.less``, ``ad.cast``, ...) to be replayed.
    """
    builder = ad_tracer.current_builder()
    if builder is not None:
        return builder.source(_draw_post, (rng, xp, method, post, *args), kwargs, rng)
    return _draw_post(rng, xp, method, post, *args, **kwargs)


def _draw_post(rng, xp, method, post, *args, **kwargs):
    out = _draw(rng, xp, method, *args, **kwargs)
    if not hasattr(out, "shape"):          # a Python scalar from a 0-d argument
        out = xp.asarray(out)
    return out if post is None else post(out)


def _draw(rng, xp, method, *args, **kwargs):
    rng_xp = backend.get_array_module(rng) if backend.is_cupy(rng) else np
    if rng_xp is not xp:
        args = [backend.asnumpy(a) if backend.is_cupy(a) else a for a in args] \
            if rng_xp is np else [rng_xp.asarray(a) if hasattr(a, "shape") else a
                                  for a in args]
    out = getattr(rng, method)(*args, **kwargs)
    if rng_xp is not xp:
        out = xp.asarray(backend.asnumpy(out)) if xp is not np else backend.asnumpy(out)
    return out


def _data(x):
    return x.data if type(x) is Tensor else x


def _summary(bad, values):
    """'-1.0 (at index (1,)); 2 of 6 entries' for an error message."""
    bad = backend.asnumpy(bad)
    idx = np.argwhere(bad)
    first = tuple(int(i) for i in idx[0]) if len(idx) else ()
    v = backend.asnumpy(values)
    try:
        val = np.broadcast_to(v, bad.shape)[first]
    except ValueError:      # values with event dims: show the offending event
        val = v[first]
    return f"{np.asarray(val).tolist()!r} at index {first}; {len(idx)} of {bad.size} entries"


def _name(self):
    return type(self).__name__


def _describe(v):
    r = repr(v)
    return f"{r if len(r) <= 40 else r[:37] + '...'} ({type(v).__name__})"


def _kind(v):
    """The dtype kind of ``v`` ('f', 'i', 'b', ...), or None for a string, a bool or
    anything NumPy cannot turn into a numeric array (checked before converting, so
    NumPy's own conversion error, which names no argument, is never what the user
    sees)."""
    if type(v) is Tensor:
        return v.dtype.kind
    if isinstance(v, (str, bytes)):
        return None
    if isinstance(v, bool):
        return "b"
    if isinstance(v, (int, np.integer)):
        return "i"
    if isinstance(v, (float, np.floating)):
        return "f"
    if hasattr(v, "dtype") and hasattr(v, "shape"):
        return np.dtype(v.dtype).kind
    try:
        return np.asarray(v).dtype.kind
    except (ValueError, TypeError):
        return None


def _check_numeric(self, k, v):
    """Raise TypeError naming the distribution and argument unless ``v`` is a real
    number, a real (or, for integer parameters, integer) array or a Tensor: strings,
    None (for a required parameter), booleans, complex numbers and other objects are
    refused before NumPy's conversion would fail (or silently succeed) without saying
    which argument was wrong."""
    what = ("an integer or an integer array" if k in self.int_params else
            "a real number, a real array or a Tensor")
    if v is None:
        if k in self.optional_params:
            return
        raise TypeError(f"{_name(self)}: {k} must be {what}; got None")
    if self.arg_constraints.get(k) == "any":      # Implicit's samples: any array
        return
    kind = _kind(v)
    if kind is None or kind not in "iuf":
        raise TypeError(f"{_name(self)}: {k} must be {what}; got {_got(v)}")


def _got(v):
    if hasattr(v, "shape") and hasattr(v, "dtype") and not isinstance(v, np.generic):
        return f"an array of dtype {np.dtype(v.dtype)}"
    return _describe(v)


def _param_error(name, k, c):
    return lambda ok, raw: ValueError(f"{name}: {k} must be {c.description}; got "
                                      f"{_summary(~ok, raw)}")


# ----------------------------------------------------------------------------- base class

class Distribution:
    """Base class of all distributions (see the module docstring for the contract).

    Parameters common to every subclass (keyword-only)
    --------------------------------------------------
    group_ndims : int
        Number of trailing batch axes that form one event: ``log_prob`` (and
        ``entropy``) sum over them. ``0 <= group_ndims <= len(batch_shape)``.
    is_reparameterized : bool or None
        Whether gradients flow from samples to the parameters (pathwise). None (the
        default) means "when the class supports it" (``has_rsample``); False stops the
        gradient at the sample; True on a class without pathwise gradients raises.
    use_path_derivative : bool
        ZhuSuan's ``use_path_derivative`` ("sticking the landing", Roeder, Wu &
        Duvenaud 2017): when True, ``log_prob`` treats the parameters as constants
        (``stop_gradient``), so the gradient of ``log_prob(given)`` reaches the
        parameters only through ``given`` -- for a reparameterized sample, the path
        derivative. The value is unchanged.
    validate_args : bool
        Check parameters against ``arg_constraints`` (strictly) at construction and
        ``log_prob`` values against ``support`` (the closure of it: boundary values
        such as 0 for Gamma or 0 and 1 for Beta are accepted), raising ValueError with
        the argument name, the expected set and an offending value. Default True; turn
        it off in hot loops (each check reads the data, a device sync on the GPU).
    dtype : dtype or None
        Continuous distributions: the float dtype when no array parameter decides
        (default float64), or a dtype to cast the parameters to. Discrete ones: the dtype
        of samples (default int32; the parameters keep their float dtype).

    Attributes
    ----------
    batch_shape, value_shape : tuple of int
    group_ndims : int
    dtype : numpy.dtype
        dtype of samples.
    param_dtype : numpy.dtype
        Float dtype of the parameters and of ``log_prob``.
    params : dict
        Parameter name -> Tensor or raw array (converted); also available as
        attributes (``dist.std``), except a parameter called ``mean``, which is the
        ``mean`` property (the distribution's mean) -- use ``dist.params['mean']``.
    """
    arg_constraints = {}
    param_ndims = {}
    int_params = ()
    #: parameters that may be None (alternatives: std / logstd, logits / probs)
    optional_params = ()
    support = constraints.real
    is_continuous = True
    has_rsample = False
    value_ndims = 0
    #: parameter whose trailing ``value_ndims`` dims give ``value_shape``
    value_param = None

    def __init__(self, params, *, group_ndims=0, is_reparameterized=None,
                 use_path_derivative=False, validate_args=True, dtype=None):
        self.validate_args = bool(validate_args)
        # BayesianNet nodes stand for their tensors: unwrap them so the tape is kept
        params = {k: ad.unwrap(v) for k, v in params.items()}
        for k, v in params.items():
            _check_numeric(self, k, v)
        self._xp = backend.get_array_module(*[v for v in params.values() if v is not None])
        self._set_params(params, dtype)
        self.batch_shape = self._batch_shape()
        self.value_shape = self._value_shape()
        self._check_shapes()
        if self.validate_args:
            self._validate_params()
        self.group_ndims = self._check_group_ndims(group_ndims)
        if is_reparameterized is None:
            is_reparameterized = self.has_rsample
        elif is_reparameterized and not self.has_rsample:
            raise ValueError(f"{_name(self)}: is_reparameterized=True is not supported (no "
                             f"pathwise gradient for {'discrete' if not self.is_continuous else 'this'} "
                             f"samples); pass is_reparameterized=False or None")
        self.is_reparameterized = bool(is_reparameterized)
        self.use_path_derivative = bool(use_path_derivative)
        self._cache = None

    # ------------------------------------------------------------------ construction
    def _set_params(self, params, dtype):
        floats = [_data(v) for k, v in params.items()
                  if v is not None and k not in self.int_params]
        # arrays and Tensors decide the dtype; Python and NumPy scalars do not
        float_dtypes = [a.dtype for a in floats
                        if hasattr(a, "ndim") and not isinstance(a, np.generic)
                        and a.dtype.kind == "f"]
        if self.is_continuous and dtype is not None:
            pdt = np.dtype(dtype)
            if pdt.kind != "f":
                raise ValueError(f"{_name(self)}: dtype must be a float dtype, got {pdt}")
        elif float_dtypes:
            pdt = np.result_type(*float_dtypes)
        else:
            pdt = np.dtype(np.float64)
        self.param_dtype = pdt
        if self.is_continuous:
            self.dtype = pdt
        else:
            self.dtype = np.dtype(np.int32 if dtype is None else dtype)
            if self.dtype.kind not in "iuf":
                raise ValueError(f"{_name(self)}: dtype must be an integer or float dtype, "
                                 f"got {self.dtype}")
        xp = self._xp
        conv = {}
        for k, v in params.items():
            if v is None:
                conv[k] = None
            elif k in self.int_params:
                conv[k] = v.data if type(v) is Tensor else xp.asarray(v)
            elif type(v) is Tensor:
                conv[k] = v if v.dtype == pdt else ad.cast(v, pdt)
            else:
                conv[k] = xp.asarray(v, dtype=pdt)
        self._p = types.SimpleNamespace(**conv)
        for k, v in conv.items():
            if not hasattr(type(self), k):
                setattr(self, k, v)

    @property
    def params(self):
        """Parameter name -> Tensor or raw array (None for an unused alternative)."""
        return dict(vars(self._p))

    def _present(self):
        return {k: v for k, v in vars(self._p).items() if v is not None}

    def _batch_shape(self):
        shapes = {}
        for k, v in self._present().items():
            nd = self.param_ndims.get(k, 0)
            if v.ndim < nd:
                raise ValueError(f"{_name(self)}: {k} must have at least {nd} dimension(s) "
                                 f"(its last {nd} are not batch axes), got shape {v.shape}")
            if nd and 0 in v.shape[v.ndim - nd:]:
                raise ValueError(f"{_name(self)}: {k} must have nonempty event dims (its last "
                                 f"{nd}), got shape {tuple(v.shape)}")
            shapes[k] = tuple(v.shape[:v.ndim - nd])
        try:
            return tuple(np.broadcast_shapes(*shapes.values())) if shapes else ()
        except ValueError:
            desc = ", ".join(f"{k} {s}" for k, s in shapes.items())
            raise ValueError(f"{_name(self)}: parameter batch shapes do not broadcast: "
                             f"{desc}") from None

    def _value_shape(self):
        if not self.value_ndims:
            return ()
        v = getattr(self._p, self.value_param)
        return tuple(v.shape[v.ndim - self.value_ndims:])

    def _check_shapes(self):
        """Hook: check the event dims of the parameters against each other."""

    def _validate_params(self):
        for k, c in self.arg_constraints.items():
            v = getattr(self._p, k, None)
            if v is None:
                continue
            raw = _data(v)
            ad_tracer.check(c.check(raw, False), _param_error(_name(self), k, c), raw)
        self._validate_extra()

    def _validate_extra(self):
        """Hook: checks that involve several parameters (Uniform: maxval > minval)."""

    def _check_group_ndims(self, g):
        if not isinstance(g, (int, np.integer)) or isinstance(g, bool) \
                or not 0 <= g <= len(self.batch_shape):
            raise ValueError(f"{_name(self)}: group_ndims must be an int in "
                             f"[0, {len(self.batch_shape)}] (the batch rank), got {g!r} "
                             f"(batch_shape {self.batch_shape})")
        return int(g)

    # ------------------------------------------------------------------ sampling
    def sample(self, n_samples=None, rng=None):
        """Draw samples.

        Parameters
        ----------
        n_samples : int or None
            None: one draw of shape ``batch_shape + value_shape``; an int n >= 1: shape
            ``[n] + batch_shape + value_shape`` (the axis is kept for n = 1).
        rng : None, int, numpy.random.Generator or cupy.random.Generator
            Source of randomness (see :func:`make_rng`; None means a fresh,
            OS-seeded ``default_rng()``).

        Returns
        -------
        autodiff.Tensor
            Differentiable w.r.t. the parameters when ``is_reparameterized``;
            otherwise a leaf. dtype ``self.dtype``; on the parameters' device.
        """
        if n_samples is None:
            shape = ()
        elif isinstance(n_samples, (int, np.integer)) and not isinstance(n_samples, bool) \
                and n_samples >= 1:
            shape = (int(n_samples),)
        else:
            raise ValueError(f"{_name(self)}.sample: n_samples must be None or a positive "
                             f"int, got {n_samples!r}")
        rng = make_rng(rng, self._xp)
        out = self._sample(shape, rng, self._p)
        x, lp = out if isinstance(out, tuple) else (out, None)
        if type(x) is not Tensor:
            x = Tensor(x)
        if x.requires_grad and not self.is_reparameterized:
            x = x.detach()
        if x.dtype != self.dtype:
            x = ad.cast(x, self.dtype)
        self._cache = None if lp is None else (x, lp)
        return x

    def _sample(self, shape, rng, p):
        raise NotImplementedError

    def sample_and_log_prob(self, n_samples=None, rng=None):
        """``x = sample(n_samples, rng)`` and ``log_prob(x)``, fused where supported
        (Normal, LogNormal: one Numba kernel, see :mod:`.fused`)."""
        x = self.sample(n_samples, rng)
        return x, self.log_prob(x)

    # ------------------------------------------------------------------ densities
    def log_prob(self, given):
        """Log density (or mass) of ``given``, summed over the last ``group_ndims``
        batch axes.

        Parameters
        ----------
        given : Tensor or array, shape ``[...] + value_shape``
            Must broadcast against ``batch_shape + value_shape``. When it is the very
            Tensor this distribution just sampled, a log-probability computed with the
            sample (fused Normal kernels) is reused.

        Returns
        -------
        autodiff.Tensor, shape ``broadcast(given.shape[:-len(value_shape)],
        batch_shape)[:len - group_ndims]``, dtype ``param_dtype``.

        Raises
        ------
        ValueError
            When the value shape or the broadcast fails, or (``validate_args``) a
            value is outside the support.
        """
        return self._group(self._elementwise_log_prob(given))

    def _elementwise_log_prob(self, given):
        cache = self._cache
        if cache is not None and given is cache[0]:
            return cache[1]
        given, out_shape = self._check_given(given)
        p = self._p
        if self.use_path_derivative:
            p = types.SimpleNamespace(**{k: (ad.stop_gradient(v) if type(v) is Tensor else v)
                                         for k, v in vars(p).items()})
        edge = self._edge_mask(given)
        if edge is not None:
            # evaluate the formula at a harmless point there, so gradients stay finite
            inner = self.support.interior
            if inner is not None:
                full = edge.reshape(edge.shape + (1,) * self.support.event_ndims)
                given = ad.where(full, inner(given.data), given)
        lp = self._log_prob(given, p)
        if type(lp) is not Tensor:
            lp = Tensor(lp)
        if edge is not None:
            lp = ad.where(edge, -np.inf, lp)
        if lp.shape != out_shape:
            lp = ad.broadcast_to(lp, out_shape)
        return lp

    def _log_prob(self, given, p):
        raise NotImplementedError

    def _edge_mask(self, given):
        """Where ``log_prob`` is ``-inf`` by a rule of the support rather than by the
        formula: values with an infinite entry when the support ``vanishes_at_inf``,
        and (``validate_args=False``; with it they raise) values outside the support.
        NaN values are left to the formula (NaN in, NaN out). A boolean array over the
        batch dims of ``given``, or None when no value needs it (known only for
        concrete values; while tracing the mask is always applied)."""
        c = self.support
        check_outside = not self.validate_args and c.name != "any"
        if not (c.vanishes_at_inf or check_outside):
            return None
        x = given.data
        xp = backend.get_array_module(x)
        tracing = ad_tracer.is_tracer(x)
        if not check_outside and not tracing and bool(xp.isfinite(x).all()):
            return None                                   # the common case: one pass
        axes = tuple(range(-c.event_ndims, 0))
        nan = xp.isnan(x)
        if axes:
            nan = xp.any(nan, axis=axes)
        bad = None
        if c.vanishes_at_inf:
            bad = xp.isinf(x)
            if axes:
                bad = xp.any(bad, axis=axes)
        if check_outside:
            out = ~c.check(x, True) & ~nan
            bad = out if bad is None else (bad | out)
        else:
            bad = bad & ~nan
        if not tracing and not bool(xp.any(bad)):
            return None
        return bad

    def prob(self, given):
        """``exp(log_prob(given))``."""
        return ad.exp(self.log_prob(given))

    def _check_given(self, given):
        name = _name(self)
        xp = self._xp
        given = ad.unwrap(given)
        kind = _kind(given) if given is not None else None
        if kind is None or kind not in "biuf":
            raise TypeError(f"{name}.log_prob: given must be a real or integer number, "
                            f"array or Tensor; got {_got(given)}")
        if type(given) is not Tensor:
            given = Tensor(xp.asarray(given))
        if given.dtype != self.param_dtype:
            given = ad.cast(given, self.param_dtype)
        vn = len(self.value_shape)
        gs = tuple(given.shape)
        if len(gs) < vn or gs[len(gs) - vn:] != self.value_shape:
            raise ValueError(f"{name}.log_prob: given must end with the value shape "
                             f"{self.value_shape}, got shape {gs}")
        full = self.batch_shape + self.value_shape
        try:
            out = np.broadcast_shapes(gs, full)
        except ValueError:
            raise ValueError(f"{name}.log_prob: given of shape {gs} does not broadcast "
                             f"against batch_shape + value_shape = {full}") from None
        if self.validate_args:
            self._validate_given(given.data)
        return given, tuple(out[:len(out) - vn])

    def _validate_given(self, x):
        c, name = self.support, _name(self)
        ad_tracer.check(c.check(x, True), lambda ok, x: ValueError(
            f"{name}.log_prob: given must be in the support '{c.name}' ({c.description}); "
            f"got {_summary(~ok, x)}"), x)

    def _group(self, lp):
        g = self.group_ndims
        if g == 0:
            return lp
        return ad.sum(lp, axis=tuple(range(-g, 0)))

    # ------------------------------------------------------------------ moments
    _mean = _variance = _entropy = None

    def _moment(self, which):
        f = getattr(self, "_" + which)
        if f is None:
            raise NotImplementedError(f"{_name(self)} has no closed-form {which}")
        out = f(self._p)
        if type(out) is not Tensor:
            out = Tensor(out)
        shape = self.batch_shape + (self.value_shape if which != "entropy" else ())
        if out.dtype != self.param_dtype:
            out = ad.cast(out, self.param_dtype)
        return out if out.shape == shape else ad.broadcast_to(out, shape)

    @property
    def mean(self):
        """The mean, shape ``batch_shape + value_shape`` (NotImplementedError when the
        class has no closed form, e.g. Cauchy)."""
        return self._moment("mean")

    @property
    def variance(self):
        """The (elementwise) variance, shape ``batch_shape + value_shape``."""
        return self._moment("variance")

    def entropy(self):
        """Differential (or Shannon) entropy, summed over ``group_ndims`` like log_prob."""
        return self._group(self._moment("entropy"))

    def __repr__(self):
        return (f"{_name(self)}(batch_shape={self.batch_shape}, "
                f"value_shape={self.value_shape}, dtype={self.dtype})")
