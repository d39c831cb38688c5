"""Trace a function of one array once, then replay its ops without the tape's bookkeeping.

``trace(f)`` is for functions evaluated many times at one input shape, such as a
sampler's log density: the first call for a given input shape and dtype runs ``f``
normally while recording every primitive it applies to values derived from the
input; the recording is compiled into straight-line Python (one line per raw
NumPy/CuPy call, per VJP closure and per cotangent accumulation; see a program's
``.source``) that later calls run. The arithmetic is the same (same functions, same
order, cotangents summed in the order of the tape's backward pass), so values and
gradients are identical bit for bit; what goes away is the per-op Tensor bookkeeping,
the Python code of ``f`` itself and the graph walk of the backward pass (a 10-op logistic
regression log density on one chain: 49 us per value and gradient with the tape,
30 us replayed, 23 us for the same NumPy calls written by hand).

Like ``jax.jit``, replay assumes ``f`` is *shape-static and pure in its input*:

* every value that does not derive from the input (data arrays, constants, the
  ``.data`` of other Tensors at the time of the call) is read at replay time from
  the objects captured while tracing, so rebinding a global or a closure variable to
  a new object is not seen; mutate arrays in place or trace again;
* the ops applied must not depend on the input's values. Converting a traced value
  to a Python or NumPy value (``bool``, ``float``, ``int``, ``.item()``,
  ``np.asarray``, ``.numpy()``) or calling a gradient-free primitive on it (``sign``,
  ``argmax``, ``isfinite``, ...) while tracing is detected: the function is then
  evaluated normally on every call, with a warning. Reading ``tensor.data`` directly
  cannot be detected.

A second safeguard: the calls after the recording are evaluated both ways and the
results compared until two calls at inputs other than the recorded ones agree (new
arguments or new values of the referenced parameters; at most eight calls); a mismatch (a value frozen at recording, ops that changed between calls,
a replay that cannot run) warns and turns replay off for that shape.

``trace(cost, params=[...])`` differentiates with respect to parameter Tensors instead
of the input: a training step, ``cost(x_batch) -> scalar``, whose ``backward(x)`` fills
the parameters' ``.grad`` as ``cost(x).backward()`` would. The parameters' ``.data``
are inputs of the program (read at every call), and random draws made through
``zsarray.distributions`` are recorded as *sources*: replay draws again from the same
generator, so a traced run consumes random numbers exactly as the tape does, and the
verifying call restores the generators' states between its two evaluations. A draw
whose array arguments are not traced values, or a generator whose state cannot be
saved (CuPy's: pass a NumPy Generator, whose draws are copied to the device), makes
the step fall back to normal evaluation. On a 784-200-200-50 VAE with
batches of 20, a traced ELBO step repeats the tape's costs and parameters bit for bit
over 600 steps and takes about a quarter less time.
"""
import warnings

import numpy as np

from . import core
from .core import Tensor
from .program import Program, record
from .tracer import Tracer

__all__ = ["trace", "Traced", "TracedStep", "TraceWarning"]


class TraceWarning(UserWarning):
    """A traced function cannot be replayed safely and is evaluated normally."""


class _Entry:
    """The recording of one input shape/dtype: the value program, the value-and-grad
    program, and the verification state."""

    __slots__ = ("value", "vg", "rngs", "verified", "broken", "recorded", "checks",
                 "new_checks", "exe")

    def __init__(self, value, vg, rngs):
        self.value, self.vg, self.rngs = value, vg, rngs
        self.verified, self.broken = False, None
        self.recorded, self.checks, self.new_checks = None, 0, 0
        self.exe = None          # compiled executables (value, value-and-grad), if any

    @property
    def source(self):
        """The generated Python of the value-and-grad program."""
        return self.vg.python().source

    def run(self, xs, want_grad):
        prog = self.vg if want_grad else self.value
        f = prog.python() if self.exe is None else self.exe[want_grad]
        return f(*prog.args(xs))

    def refs_changed(self):
        return any(_aval(t.data) != (v.shape, v.dtype) for v, t in self.vg.refs)


def _aval(a):
    return (np.shape(a), getattr(a, "dtype", None))


def _key(x):
    return (type(x), x.shape, x.dtype)


class Traced:
    """``f`` traced per input shape and dtype; see :func:`trace`.

    Calling it with a raw array returns the value (no tape); with a Tensor it runs
    ``f`` normally (so it composes with other autodiff code). :meth:`value_and_grad`
    gives the value and the gradient of its sum.
    """

    _ad_traced = True

    def __init__(self, fun, max_shapes=8, warn=True):
        if not callable(fun):
            raise TypeError(f"trace: expected a callable, got {type(fun).__name__}")
        self.fun = fun
        self.max_shapes = int(max_shapes)
        self.warn = bool(warn)
        self._programs = {}
        self.__wrapped__ = fun
        self.__doc__ = getattr(fun, "__doc__", None)

    def __repr__(self):
        return f"trace({getattr(self.fun, '__name__', self.fun)!r})"

    def __call__(self, x, *args):
        if type(x) in (Tensor, Tracer) or core._state.depth or \
                any(type(a) is Tracer for a in args):
            return self.fun(x, *args)
        return self._evaluate((x, *args), want_grad=False)

    def value_and_grad(self, x, *args):
        """``(value, grad)``: ``value = f(x, *args)`` as a raw array of any shape, ``grad``
        the gradient of ``value.sum()`` with respect to ``x`` (shape and dtype of ``x``).
        For a log density over chains, ``[C, D] -> ([C], [C, D])``. ``args``: more input
        arrays, new at every call and not differentiated (a minibatch, a temperature)."""
        fast = self._fast
        if fast is not None and type(x) is np.ndarray and x.shape == fast[0] and \
                x.dtype == fast[1] and len(args) == fast[2]:
            # a verified compiled program whose outputs are fresh arrays
            return fast[3](x, *args)
        dtype = x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype
        core.check_float(dtype, 0, f"{type(self).__name__.lower()}.value_and_grad")
        return self._evaluate((x, *args), want_grad=True)

    _fast = None

    #: record primitives as single calls (exact replay); compile follows them instead
    _atomic = True

    # what differs between tracing a function of its input and of parameters; ``xs`` is
    # the tuple of input arrays
    def _key(self, xs):
        return tuple(_key(x) for x in xs)

    def _record(self, xs):
        """Record ``fun`` at ``xs``: ``(builder, outputs)``, the outputs being the value
        then the gradients (tracers or constants)."""
        b, value, grads = record(self.fun, xs, wrt=(0,), atomic=self._atomic)
        return b, [value, *grads]

    def _first(self, outs, xs, want_grad, entry=None):
        """What the recording call returns, from the outputs' concrete values."""
        vals = [o.val if type(o) is Tracer else o for o in outs]
        return self._from_replay(tuple(vals), xs, want_grad)

    def _from_replay(self, res, xs, want_grad):
        return _finish(res[0], res[1], xs[0]) if want_grad else res[0]

    def _program_args(self, xs):
        return xs

    def _inputs(self, entry, xs):
        """What makes a call's input new for verification: the arguments and the
        referenced Tensors' values (a training step's batch may stay, its parameters
        move)."""
        return tuple(xs) + tuple(t.data for _, t in entry.vg.refs)

    def _plain(self, xs, want_grad):
        return _plain(self.fun, xs, want_grad)

    def _same(self, a, b):
        return _close(a[0], b[0]) and _close(a[1], b[1])

    # shared machinery
    def _prepare(self, xs):
        return tuple(x.data if type(x) is Tensor else x if hasattr(x, "shape")
                     else np.asarray(x) for x in xs)

    def _evaluate(self, x, want_grad):
        x = self._prepare(x)
        key = self._key(x)
        entry = self._programs.get(key)
        if entry is None or entry.refs_changed():
            return self._trace(x, key, want_grad)
        if entry.broken is not None:
            return self._plain(x, want_grad)
        if not entry.verified:
            out = self._verify(entry, x, want_grad)
            if entry.verified and entry.broken is None:
                self._set_fast(entry, x)
            return out
        return self._replay(entry, x, want_grad)

    def _set_fast(self, entry, x):
        """Remember the entry of arrays shaped like ``x`` for the shortest call path
        (compiled programs with no referenced Tensors, whose outputs are fresh)."""
        if entry.exe is None or entry.vg.refs or not isinstance(x[0], np.ndarray) \
                or not x[0].shape:
            return
        if any(not isinstance(a, np.ndarray) for a in x[1:]):
            return
        exe = entry.exe[1]

        def call(*xs):
            try:
                value, g = exe(*xs)
            except Exception:
                self._fast = None
                return self._evaluate(xs, want_grad=True)
            return value, g
        self._fast = (x[0].shape, x[0].dtype, len(x) - 1, call, exe)

    def _replay(self, entry, x, want_grad):
        return self._from_replay(entry.run(self._program_args(x), want_grad), x, want_grad)

    def _trace(self, x, key, want_grad):
        if core._state.depth:
            raise core.NestedGradError("trace: cannot record inside another grad")
        self._fast = None
        b, outs = self._record(x)
        entry = self._entry(b, outs)
        entry.recorded = tuple(_copy(a) for a in self._inputs(entry, x))
        self._programs.pop(key, None)
        if len(self._programs) >= self.max_shapes:
            self._programs.pop(next(iter(self._programs)))
        self._programs[key] = entry
        unsafe = b.unsafe
        if unsafe is None and b.rngs and _rng_states(b.rngs) is None:
            unsafe = "a random draw came from a generator whose state cannot be saved"
        if unsafe is not None:
            entry.broken = unsafe
            if self.warn:
                warnings.warn(f"trace({getattr(self.fun, '__name__', 'f')}): {unsafe} while "
                              f"tracing, so the ops may depend on the input's values; it "
                              f"is evaluated normally on every call", TraceWarning,
                              stacklevel=4)
        return self._first(outs, x, want_grad, entry)

    def _entry(self, b, outs):
        return _Entry(Program.from_builder(b, outs[:1]), Program.from_builder(b, outs),
                      b.rngs)

    def _verify(self, entry, x, want_grad):
        """Evaluate normally and by replay from the same generator states; compare.

        Replay counts as verified after two agreeing calls at inputs other than the
        recorded ones (a value frozen at recording shows only at a new input; a frozen
        discrete sample may agree once by chance), or after eight calls in all."""
        states = _rng_states(entry.rngs)
        plain = self._plain(x, True)
        after = _rng_states(entry.rngs)
        _set_rng_states(entry.rngs, states)
        try:
            replay = self._from_replay(entry.run(self._program_args(x), True), x, True)
            same = self._same(replay, plain)
        except Exception:                     # replay cannot even run: a mismatch
            same = False
        _set_rng_states(entry.rngs, after)
        entry.checks += 1
        if entry.recorded is not None and not all(
                _equal(a, b) for a, b in zip(self._inputs(entry, x), entry.recorded)):
            entry.new_checks += 1
        if not same or entry.new_checks >= 2 or entry.checks >= 8:
            entry.verified, entry.recorded = True, None
        if not same:
            entry.broken = "replay disagreed with a normal evaluation"
            if self.warn:
                warnings.warn(f"trace({getattr(self.fun, '__name__', 'f')}): the replayed ops "
                              f"disagree with a normal evaluation at a new input (the "
                              f"function's ops depend on its input or on state that "
                              f"changed); it is evaluated normally from now on",
                              TraceWarning, stacklevel=4)
        return self._deliver(self._verified_result(entry, plain, replay if same else None),
                             want_grad)

    def _verified_result(self, entry, plain, replay):
        """What a verifying call returns: the normal evaluation (a replay runs the very
        same arithmetic); ``replay`` is the agreeing replay's result, or None."""
        return plain

    def _deliver(self, plain, want_grad):
        return plain if want_grad else plain[0]


class TracedStep(Traced):
    """``f(x)`` traced with respect to parameter Tensors; see :func:`trace` (``params=``).

    :meth:`backward` evaluates ``f(x)`` and adds the gradient of its sum to each
    parameter's ``.grad``, as ``f(x).sum().backward()`` would; calling it gives the value
    only. The parameters' ``.data`` are read at every call (optimizers update them in
    place or rebind them; both are seen); their shapes and dtypes must not change.
    """

    def __init__(self, fun, params, max_shapes=8, warn=True):
        super().__init__(fun, max_shapes, warn)
        params = list(params)
        for i, p in enumerate(params):
            if type(p) is not Tensor or not p.requires_grad:
                raise TypeError(f"trace: params[{i}] must be a Tensor with requires_grad=True, "
                                f"got {type(p).__name__}")
            if p._edges is not None:
                raise ValueError(f"trace: params[{i}] is computed from other Tensors; give "
                                 f"the leaf Tensors it comes from (those an optimizer updates)")
        if len({id(p) for p in params}) != len(params):
            raise ValueError("trace: params lists a Tensor twice")
        self.params = params

    def __repr__(self):
        return (f"trace({getattr(self.fun, '__name__', self.fun)!r}, "
                f"params=[{len(self.params)} Tensors])")

    def __call__(self, *xs):
        if any(type(x) in (Tensor, Tracer) for x in xs) or core._state.depth:
            return self.fun(*xs)
        return self._evaluate(xs, want_grad=False)[0]

    def value_and_grad(self, *xs):
        raise TypeError("trace(f, params=...): use .backward(*inputs), which fills the "
                        "parameters' .grad; value_and_grad is for functions of x")

    def backward(self, *xs):
        """``f(*xs)`` as a raw array (``xs``: the step's input arrays, e.g. a minibatch's
        inputs and targets, or none for a cost of the parameters alone); the gradient
        of its sum with respect to each parameter is added to the parameter's ``.grad``
        (set when None)."""
        value, grads = self._evaluate(xs, want_grad=True)
        delivered = set()        # one array never becomes the .grad of two parameters
        for p, g in zip(self.params, grads):
            if g is not None:            # a compiled machine's own view: no copy
                core._deliver(p, g, None, _NO_SEED, delivered, owned=self._handed_out(g))
        return value

    def _handed_out(self, g):
        return False

    def _key(self, xs):
        return super()._key(xs) + tuple(_key(p.data) for p in self.params)

    def _record(self, xs):
        b, value, grads = record(self.fun, xs, wrt=(), params=self.params,
                                 atomic=self._atomic)
        return b, [value, *grads]

    def _program_args(self, xs):
        return (*xs, *[p.data for p in self.params])

    def _inputs(self, entry, xs):
        return super()._inputs(entry, xs) + tuple(p.data for p in self.params)

    def _from_graph(self, out):
        value = out.data if type(out) is Tensor else out
        return value, _param_grads(out, self.params)

    def _from_replay(self, res, x, want_grad):
        value = res[0]
        grads = tuple(res[1:]) if want_grad else None
        return (np.asarray(value) if isinstance(value, np.generic) else value), grads

    def _plain(self, xs, want_grad):
        if not want_grad:
            with core.no_grad():
                out = self.fun(*[Tensor(x) for x in xs])
            return (out.data if type(out) is Tensor else out), None
        prev = core._state.enabled
        core._state.enabled = True
        core._state.depth += 1
        try:
            out = self.fun(*[Tensor(x) for x in xs])
        finally:
            core._state.depth -= 1
            core._state.enabled = prev
        return self._from_graph(out)

    def _same(self, a, b):
        if not _close(a[0], b[0]):
            return False
        return all((ga is None and gb is None) or (ga is not None and gb is not None
                                                   and _close(ga, gb))
                   for ga, gb in zip(a[1], b[1]))

    def _deliver(self, plain, want_grad):
        return plain


_NO_SEED = object()


def _param_grads(out, params):
    """Gradients of ``out.sum()`` with respect to ``params`` (None where unreached),
    without touching their ``.grad``."""
    wanted = {id(p): None for p in params}
    if type(out) is Tensor and out.requires_grad:
        core._backward(out, core._ones_like(out.data), wanted)
    return tuple(wanted[id(p)] for p in params)


def _rng_states(rngs):
    """The generators' states, or None when one of them cannot report it."""
    states = []
    for r in rngs:
        st = getattr(getattr(r, "bit_generator", None), "state", None)
        if not isinstance(st, dict):
            return None
        states.append(st)
    return states


def _set_rng_states(rngs, states):
    if states is not None:
        for r, st in zip(rngs, states):
            r.bit_generator.state = st


def _copy(a):
    return a.copy() if hasattr(a, "copy") else a


def _equal(a, b):
    xp = core.backend.get_array_module(a, b)
    return a.shape == b.shape and a.dtype == b.dtype and bool(xp.array_equal(a, b))


def _close(a, b):
    """Equal up to rounding: relative 1e-9 in float64, 64 ulp in float32 (relative to
    the largest magnitude for the absolute part). Replay normally matches the tape bit
    for bit; the slack is for VJP rules whose own arithmetic is not deterministic."""
    xp = core.backend.get_array_module(a, b)
    a, b = xp.asarray(a), xp.asarray(b)
    if a.shape != b.shape:
        return False
    finite = xp.isfinite(b)
    scale = float(xp.abs(b[finite]).max()) if bool(finite.any()) else 0.0
    eps = 64 * float(np.finfo(b.dtype).eps) if b.dtype.kind == "f" else 0.0
    return bool(xp.allclose(a, b, rtol=max(1e-9, eps), atol=max(1e-12, eps) * scale,
                            equal_nan=True))


def _grad_from_graph(out, leaf, x):
    value = out.data if type(out) is Tensor else out
    wanted = {id(leaf): None}
    if type(out) is Tensor and out.requires_grad:
        core._backward(out, core._ones_like(value), wanted)
    return _finish(value, wanted[id(leaf)], x)


def _finish(value, g, x):
    """``(value, grad)`` as handed out (see :func:`autodiff.core.hand_back`)."""
    value, (g,) = core.hand_back(value, [g], [x])
    return value, g


def _plain(fun, xs, want_grad):
    """``fun(*xs)`` on the tape: the value, or the value and the gradient of its sum with
    respect to ``xs[0]``."""
    rest = [Tensor(a) for a in xs[1:]]
    if not want_grad:
        with core.no_grad():
            out = fun(Tensor(xs[0]), *rest)
        return out.data if type(out) is Tensor else out
    leaf = Tensor(xs[0], requires_grad=xs[0].dtype.kind in "fc")
    prev = core._state.enabled
    core._state.enabled = True
    core._state.depth += 1
    try:
        out = fun(leaf, *rest)
    finally:
        core._state.depth -= 1
        core._state.enabled = prev
    return _grad_from_graph(out, leaf, xs[0])


def trace(fun, max_shapes=8, warn=True, params=None):
    """Record ``fun`` once per input shape and dtype and replay it afterwards.

    Parameters
    ----------
    fun : callable
        ``Tensor -> Tensor`` built from autodiff ops, shape-static and pure in its
        input (see the module docstring for what that means and what is checked).
    params : list of Tensor, optional
        Differentiate with respect to these parameters (``requires_grad=True``
        Tensors that ``fun`` uses, e.g. ``module.parameters()``) instead of the input:
        returns a :class:`TracedStep` whose ``backward(x)`` fills their ``.grad`` (a
        training step: ``cost = step.backward(x_batch); optimizer.step()``). Random
        draws made through ``zsarray.distributions`` are replayed with fresh numbers
        from the same generator, so a replayed step consumes random numbers exactly as
        a normal one.
    max_shapes : int
        How many input shapes/dtypes to keep programs for (oldest dropped first).
    warn : bool
        Warn (:class:`TraceWarning`) when a shape cannot be replayed and falls back
        to normal evaluation; libraries tracing on the user's behalf pass False.

    Returns
    -------
    Traced
        ``traced(x)`` gives ``fun(x)`` as a raw array for a raw ``x``;
        ``traced.value_and_grad(x)`` gives ``(fun(x), d sum(fun(x)) / dx)``. More
        arrays after ``x`` (``traced.value_and_grad(x, rows, temperature)``) are inputs
        too, new at every call and not differentiated: a minibatch, say.
        :class:`samplers.LogDensity` uses the latter when given a Traced log density.
        With ``params``, a :class:`TracedStep`.

    Example
    -------
    >>> ld = trace(lambda w: ad.sum(y * (w @ XT) - ad.softplus(w @ XT), axis=1))  # doctest: +SKIP
    >>> lp, g = ld.value_and_grad(np.zeros((4, 31)))                             # doctest: +SKIP
    """
    if params is not None:
        return TracedStep(fun, params, max_shapes=max_shapes, warn=warn)
    return Traced(fun, max_shapes=max_shapes, warn=warn)
