"""Tracers: arrays that record what is done to them, for :mod:`autodiff.program`.

A :class:`Tracer` stands for an array while a function is recorded. It carries the
*concrete* value (computed as usual, so recording a function also evaluates it) and a
:class:`Var` (the array's place in the recorded program). NumPy functions and ufuncs
applied to tracers reach :meth:`Tracer.__array_function__` / ``__array_ufunc__``,
which evaluate them on the concrete values and append an :class:`Eqn` to the
:class:`Builder` that owns the tracers; methods (``t.sum(axis=1)``, ``t[idx]``,
``t.astype(...)``) and operators do the same. The tape needs no separate code path:
a Tensor whose ``.data`` is a tracer records its primitive call in the builder
(``core`` checks the type of the data, so the state lives in the values, never in a
module global), and the backward pass run on such Tensors records the gradient.

Two ways to record a primitive (``Builder.atomic``):

* atomic (``autodiff.trace``): a primitive's raw function and its VJP closures are
  recorded as single calls, so replay runs exactly the tape's arithmetic;
* transparent (``autodiff.compile``): they are run on the tracers, so that what is
  recorded is NumPy-level operations a compiler can lower. A function that does
  something a tracer cannot follow (reads a value, writes into an array, calls a
  Numba kernel) is rolled back and recorded as one call instead.

Reading a traced value (``float(t)``, ``bool(t)``, ``np.asarray(t)``, ``t.item()``)
returns the concrete value and marks the recording *unsafe*: the recorded operations
may depend on the values, so the program is not replayed.
"""
import contextvars
import operator

import numpy as np

__all__ = ["Var", "Tracer", "Builder", "Eqn", "TensorRef", "array_op", "current_builder",
           "is_tracer", "concrete", "Fallback", "check"]

#: The builder recording on this thread/task (for random draws, which have no traced
#: input to find it from); None when nothing is recorded.
_CURRENT = contextvars.ContextVar("autodiff_builder", default=None)


def current_builder():
    """The :class:`Builder` recording in this context, or None."""
    return _CURRENT.get()


class Fallback(Exception):
    """Raised inside a transparent attempt when a tracer cannot follow the code."""


class Var:
    """An array in a recorded program: its shape and dtype (``shape`` None for an
    opaque Python object, such as a VJP closure)."""
    __slots__ = ("shape", "dtype", "__weakref__")

    def __init__(self, shape, dtype):
        self.shape, self.dtype = shape, dtype

    def __repr__(self):
        if self.shape is None:
            return "Var(object)"
        return f"Var({self.dtype}{list(self.shape)})"


class TensorRef:
    """A Tensor whose ``.data`` is read at every call of a program (not captured)."""
    __slots__ = ("tensor",)

    def __init__(self, tensor):
        self.tensor = tensor


class Eqn:
    """One recorded call ``outs = fn(*args, **kwargs)``.

    ``args``/``kwargs`` are templates: :class:`Var` where a traced value went, the
    constant itself elsewhere (tuples and lists are followed one level down). ``key``
    identifies the operation for lowering (the ufunc, ``(ufunc, "reduce")``, the NumPy
    function, or the function itself). ``multi`` is the type of a tuple result (None
    for one array). ``random`` marks calls that draw from a generator: they are
    replayed even when their result is unused, and a compiler cannot lower them.
    ``effect`` marks calls kept for what they do rather than what they return (checks
    that raise on invalid values, see :func:`check`).
    """
    __slots__ = ("fn", "args", "kwargs", "outs", "multi", "key", "name", "random", "source",
                 "effect")

    def __init__(self, fn, args, kwargs, outs, multi, key, name, random=False, source=False,
                 effect=False):
        self.fn, self.args, self.kwargs, self.outs = fn, args, kwargs, outs
        self.multi, self.key, self.name = multi, key, name
        self.random, self.source, self.effect = random, source, effect

    def inputs(self):
        """The Vars this equation reads."""
        return [v for v in _leaves(self.args) if type(v) is Var] + \
               [v for v in _leaves(tuple(self.kwargs.values())) if type(v) is Var]

    def __repr__(self):
        return f"Eqn({self.name}, {len(self.outs)} out)"


def _leaves(tree):
    for a in tree:
        if type(a) in (tuple, list):
            for b in a:
                if type(b) in (tuple, list):
                    yield from b
                else:
                    yield b
        else:
            yield a


def is_tracer(x):
    return type(x) is Tracer


def concrete(x):
    """The concrete value of a tracer (anything else unchanged), without marking a read."""
    return x.val if type(x) is Tracer else x


def _is_value(out):
    return isinstance(out, (np.ndarray, np.generic, int, float, complex, bool)) or \
        type(out).__module__.startswith("cupy")


_DYNAMIC = {"nonzero", "argwhere", "flatnonzero", "unique", "compress", "extract"}


class Builder:
    """Records equations over tracers.

    Parameters
    ----------
    atomic : bool
        Record primitives and VJP closures as single calls (replay) rather than
        following them (compilation).
    parent : Builder, optional
        The builder of an enclosing recording (a ``scan`` body): tracers of the parent
        used here become inputs of this builder (``captures``).
    """

    def __init__(self, atomic=True, parent=None):
        self.atomic = atomic
        self.parent = parent
        self.depth = 0 if parent is None else parent.depth + 1
        self.eqns = []
        self.inputs = []                # Vars
        self.captures = []              # (outer tracer, inner Var): closed-over values
        self._captured = {}             # id(outer Var) -> inner tracer
        self.refs = []                  # (Var, Tensor): read at every call
        self._refs = {}                 # id(Tensor) -> tracer
        self.cap_tensors = []           # (outer Tensor, inner leaf Tensor) of a scan body
        self._cap_tensors = {}
        self.rngs = []                  # generators drawn from (for verification)
        self.unsafe = None              # why the recording cannot be replayed
        self.dynamic = None             # an op whose output shape depends on values
        self._inside = 0                # > 0 while a recorded function runs concretely
        self._drew = False              # ... and it drew random numbers
        self._attempts = 0              # > 0 inside a transparent attempt
        self._saved_rngs = None         # generator states to restore on rollback

    # ------------------------------------------------------------------ values
    def new_input(self, value):
        """A tracer for a new program input with the concrete ``value``."""
        t = Tracer(value, Var(np.shape(value), _dtype(value)), self)
        self.inputs.append(t.var)
        return t

    def ref(self, tensor):
        """A tracer for ``tensor.data`` read at every call (a Tensor that is not an
        input but is used with traced values: a model parameter, say)."""
        root = self
        while root.parent is not None:
            root = root.parent
        t = root._refs.get(id(tensor))
        if t is None:
            data = tensor.data
            t = Tracer(data, Var(np.shape(data), _dtype(data)), root)
            root._refs[id(tensor)] = t
            root.refs.append((t.var, tensor))
        return self.lift(t)

    def lift(self, t):
        """``t`` as a tracer of this builder (capturing it from an enclosing one)."""
        if t.b is self:
            return t
        b = t.b
        while b is not None and b is not self:
            b = b.parent
        if b is self:          # t belongs to a builder nested in this one: it escaped
            raise ValueError("a value computed inside a scan body was used outside it; "
                             "return it from the body instead")
        inner = self._captured.get(id(t.var))
        if inner is None:
            outer = self.parent.lift(t) if t.b is not self.parent else t
            inner = Tracer(t.val, Var(t.var.shape, t.var.dtype), self)
            self._captured[id(t.var)] = inner
            self.captures.append((outer, inner.var))
        return inner

    def capture_tensor(self, t):
        """An outer Tensor (its data traced by an enclosing builder) used in a ``scan``
        body: a leaf of this recording standing for it, so that the body's backward pass
        stops there and hands its cotangent to the loop's."""
        leaf = self._cap_tensors.get(id(t))
        if leaf is None:
            from .core import Tensor
            d = t.data
            leaf = Tensor(Tracer(d.val, Var(d.var.shape, d.var.dtype), self),
                          requires_grad=t.requires_grad)
            self._cap_tensors[id(t)] = leaf
            self.cap_tensors.append((t, leaf))
        return leaf

    def read(self, how):
        """A traced value was converted to a concrete one (``how``)."""
        if self._attempts:
            raise Fallback(f"a traced value was converted with {how}")
        if self.unsafe is None:
            self.unsafe = f"a traced value was converted with {how}"

    # ------------------------------------------------------------------ recording
    def _template(self, x, cargs, depth=0):
        """``x`` with tracers replaced by Vars (returned) and by values (appended)."""
        t = type(x)
        if t is Tracer:
            x = self.lift(x)
            cargs.append(x.val)
            return x.var
        if t is Opaque:
            cargs.append(x.val)
            return x.var
        if (t is tuple or t is list) and depth < 2:
            out = []
            for a in x:
                out.append(self._template(a, cargs, depth + 1))
            return tuple(out) if t is tuple else out
        if t is slice and any(type(s) is Tracer for s in (x.start, x.stop, x.step)):
            self.read("a slice bound")
        cargs.append(x)
        return x

    @staticmethod
    def _fill(template, vals, depth=0):
        """Rebuild the concrete arguments from a template (inverse of ``_template``)."""
        t = type(template)
        if t is Var:
            return next(vals)
        if (t is tuple or t is list) and depth < 2:
            out = [Builder._fill(a, vals, depth + 1) for a in template]
            return tuple(out) if t is tuple else out
        return next(vals)

    def record(self, fn, args, kwargs=None, key=None, name=None, random=False):
        """Evaluate ``fn(*args, **kwargs)`` on the concrete values and record it.

        Returns the result with tracers for its arrays (a tuple of them for a tuple
        result)."""
        kwargs = kwargs or {}
        cargs = []
        targs = tuple(self._template(a, cargs) for a in args)
        tkw = {k: self._template(v, cargs) for k, v in kwargs.items()}
        it = iter(cargs)
        cpos = tuple(self._fill(a, it) for a in targs)
        ckw = {k: self._fill(v, it) for k, v in tkw.items()}
        self._inside += 1
        drew, self._drew = self._drew, False
        try:
            out = fn(*cpos, **ckw)
        finally:
            self._inside -= 1
            random = random or self._drew
            self._drew = drew or self._drew
        return self._emit(fn, targs, tkw, out, key or fn,
                          name or getattr(fn, "__name__", type(fn).__name__), random)

    def _emit(self, fn, targs, tkw, out, key, name, random, source=False):
        if out is None:                 # called for its effect (a check)
            self.eqns.append(Eqn(fn, targs, tkw, (), None, key, name, random, source, True))
            return None
        if _is_value(out):
            var = Var(np.shape(out), _dtype(out))
            self.eqns.append(Eqn(fn, targs, tkw, (var,), None, key, name, random, source))
            return Tracer(out, var, self)
        if isinstance(out, (tuple, list)) and out and all(_is_value(o) for o in out):
            vars_ = tuple(Var(np.shape(o), _dtype(o)) for o in out)
            self.eqns.append(Eqn(fn, targs, tkw, vars_, type(out), key, name, random, source))
            ts = [Tracer(o, v, self) for o, v in zip(out, vars_)]
            if type(out) is list:
                return ts
            return type(out)(*ts) if hasattr(out, "_fields") else tuple(ts)
        # an opaque object (a VJP closure): a Var without shape
        var = Var(None, None)
        self.eqns.append(Eqn(fn, targs, tkw, (var,), None, key, name, random, source))
        return Opaque(out, var, self)

    def source(self, fn, args, kwargs, rng):
        """A random draw ``fn(*args, **kwargs)`` from ``rng``: recorded and replayed
        (new numbers every call) even when its result is not used."""
        if not any(r is rng for r in self.rngs):
            self.rngs.append(rng)
        if self._inside:                 # inside a recorded call: that call is random
            self._drew = True
            cargs = [concrete(a) for a in args]
            return fn(*cargs, **{k: concrete(v) for k, v in kwargs.items()})
        if self._attempts and self._saved_rngs is not None:
            st = getattr(getattr(rng, "bit_generator", None), "state", None)
            if isinstance(st, dict) and not any(r is rng for r, _ in self._saved_rngs):
                self._saved_rngs.append((rng, st))
        out = self.record(fn, args, kwargs, random=True)
        self.eqns[-1].source = True
        return out

    def attempt(self, fn, args, kwargs=None, name=None):
        """Run ``fn`` on the tracers (transparent recording); if the tracers cannot
        follow it, roll back and record it as one call."""
        kwargs = kwargs or {}
        n_eqns, n_rngs, saved = len(self.eqns), len(self.rngs), self._saved_rngs
        self._attempts += 1
        self._saved_rngs = []
        token = _CURRENT.set(self)
        try:
            return fn(*args, **kwargs)
        except Exception:
            for rng, st in reversed(self._saved_rngs):   # the earliest state wins
                rng.bit_generator.state = st
            del self.eqns[n_eqns:]
            del self.rngs[n_rngs:]
        finally:
            _CURRENT.reset(token)
            self._attempts -= 1
            rolled, self._saved_rngs = self._saved_rngs, saved
            if saved is not None:
                saved.extend(rolled)
        return self.record(fn, args, kwargs, name=name)

    def apply(self, fn, args, kwargs=None, name=None):
        """Record a primitive's raw function: one call (atomic) or its operations."""
        if self.atomic:
            return self.record(fn, args, kwargs, name=name)
        return self.attempt(fn, args, kwargs, name=name)

    def vjp(self, maker, ans, args, kwargs, name):
        """The backward function of one edge of a recorded primitive."""
        if self.atomic:
            return _OpaqueVJP(self, maker, ans, args, kwargs, name)
        return _TransparentVJP(self, maker, ans, args, kwargs, name)

    def unsupported(self, what):
        if self._attempts:
            raise Fallback(what)
        if self.unsafe is None:
            self.unsafe = what


def _call_maker(maker, ans, *args, **kwargs):
    """Lowering key of a recorded VJP maker call (the maker itself is the function)."""
    return maker(ans, *args, **kwargs)


def _call_vjp(vjp, g):
    """``vjp(g)``: a recorded call of a VJP closure (replay calls the closure directly)."""
    return vjp(g)


class _OpaqueVJP:
    """A VJP recorded as two calls: the maker (with the forward values) and the
    closure it returns (with the cotangent)."""
    __slots__ = ("b", "maker", "ans", "args", "kwargs", "name", "closure")

    def __init__(self, b, maker, ans, args, kwargs, name):
        self.b, self.maker, self.ans, self.args = b, maker, ans, args
        self.kwargs, self.name, self.closure = kwargs, name, None

    def __call__(self, g):
        b = self.b
        if self.closure is None:
            self.closure = b.record(self.maker, (self.ans, *self.args), self.kwargs,
                                    key=_call_maker, name=f"vjp_{self.name}")
        return b.record(_call_vjp, (self.closure, g), key=_call_vjp,
                        name=f"vjp_{self.name}_apply")


class _TransparentVJP(_OpaqueVJP):
    """A VJP whose maker and closure run on tracers when they can."""
    __slots__ = ("fn",)

    def __init__(self, b, maker, ans, args, kwargs, name):
        super().__init__(b, maker, ans, args, kwargs, name)
        self.fn = None
        n = len(b.eqns)
        b._attempts += 1
        try:
            self.fn = maker(ans, *args, **kwargs)
        except Exception:
            del b.eqns[n:]
        finally:
            b._attempts -= 1

    def __call__(self, g):
        if self.fn is not None:
            b = self.b
            n = len(b.eqns)
            b._attempts += 1
            try:
                out = self.fn(g)
                if type(out) is not Opaque:
                    return out
            except Exception:
                pass
            finally:
                b._attempts -= 1
            del b.eqns[n:]
            self.fn = None
        return _OpaqueVJP.__call__(self, g)


class Opaque:
    """A recorded Python object that is not an array (a VJP closure in atomic mode)."""
    __slots__ = ("val", "var", "b")

    def __init__(self, val, var, b):
        self.val, self.var, self.b = val, var, b


def _dtype(x):
    d = getattr(x, "dtype", None)
    return d if d is not None else np.asarray(x).dtype


def owner(items):
    """The deepest builder among the tracers in ``items`` (one level of nesting)."""
    best = None
    for a in items:
        t = type(a)
        if t is Tracer or t is Opaque:
            if best is None or a.b.depth > best.depth:
                best = a.b
        elif t is tuple or t is list:
            for c in a:
                if type(c) is Tracer and (best is None or c.b.depth > best.depth):
                    best = c.b
    return best


def has_tracer(items):
    for a in items:
        t = type(a)
        if t is Tracer:
            return True
        if (t is tuple or t is list) and any(type(c) is Tracer for c in a):
            return True
    return False


def check(ok, make_error, *values):
    """Raise ``make_error(ok, *values)`` unless every element of ``ok`` is true.

    The check of a value that is being recorded (a distribution's support check on a
    traced sample, say) becomes part of the program: it runs again at every call instead
    of making the recording unsafe (as ``bool(ok)`` would)."""
    if has_tracer((ok,) + values):
        owner((ok,) + values).record(_check_all, (ok, make_error, *values), key=_check_all,
                                     name="check")
    else:
        _check_all(ok, make_error, *values)


def _check_all(ok, make_error, *values):
    if not bool(np.all(ok)):
        raise make_error(ok, *values)


def _record_numpy(fn, args, kwargs, key=None, name=None):
    b = owner(list(args) + list(kwargs.values()))
    return b.record(fn, args, kwargs, key=key, name=name)


def array_op(fn=None, *, name=None, host=False):
    """Decorate a function on raw arrays so that tracers record it as one operation.

    Use it for helpers that a tracer cannot follow (they write into arrays, call Numba
    kernels or read values): called with tracers, the call is evaluated on the concrete
    values and recorded whole; otherwise it runs as is.

    ``host=True`` declares the operation a *host step*: a large operation that is best
    run by its own NumPy/BLAS code (a convolution), so :func:`autodiff.compile` runs it
    as a Python step between machine segments without a :class:`CompileWarning`
    (operations without a lowering rule otherwise warn)."""
    def deco(f):
        label = name or f.__name__
        if host:
            f._ad_host = True

        def wrapped(*args, **kwargs):
            if has_tracer(args) or has_tracer(kwargs.values()):
                return _record_numpy(f, args, kwargs, key=f, name=label)
            return f(*args, **kwargs)
        wrapped.__name__ = f.__name__
        wrapped.__qualname__ = f.__qualname__
        wrapped.__doc__ = f.__doc__
        wrapped.__wrapped__ = f
        return wrapped
    return deco if fn is None else deco(fn)


# ----------------------------------------------------------------------------- methods
# Functions standing for ndarray methods in recorded programs (lowering keys).
def astype(x, dtype):
    return x.astype(dtype)


def getitem(x, idx):
    return x[idx]


def flatten(x):
    return x.ravel().copy() if hasattr(x, "ravel") else np.ravel(x).copy()


_METADATA = {np.shape, np.ndim, np.size, np.result_type, np.iscomplexobj, np.isrealobj,
             np.may_share_memory, np.shares_memory, np.min_scalar_type, np.can_cast}


_SPECIAL = {}


def _ufunc_fn(ufunc):
    """The function recorded for a ufunc: NumPy's own (it dispatches to CuPy), or, for a
    ufunc of another library (``scipy.special``), one that calls CuPy's version
    (``cupyx.scipy.special``) on CuPy arrays, which SciPy's ufuncs do not accept."""
    if getattr(np, ufunc.__name__, None) is ufunc:
        return ufunc
    fn = _SPECIAL.get(ufunc)
    if fn is None:
        def fn(*args, **kwargs):
            if any(type(a).__module__.startswith("cupy") for a in args):
                import cupyx.scipy.special as csp
                return getattr(csp, ufunc.__name__)(*args, **kwargs)
            return ufunc(*args, **kwargs)
        fn.__name__ = ufunc.__name__
        _SPECIAL[ufunc] = fn
    return fn


def _binop(ufunc, swap=False):
    def f(self, other):
        if not _arraylike(other):
            return NotImplemented
        return ufunc(other, self) if swap else ufunc(self, other)
    return f


def _arraylike(x):
    return type(x) is Tracer or isinstance(x, (np.ndarray, np.generic, int, float, complex,
                                               bool)) or type(x).__module__.startswith("cupy")


class Tracer:
    """An array being recorded: concrete value ``val``, program variable ``var``,
    recording builder ``b`` (see the module docstring)."""
    __slots__ = ("val", "var", "b")
    __array_priority__ = 100

    def __init__(self, val, var, b):
        self.val, self.var, self.b = val, var, b

    shape = property(lambda self: self.var.shape)
    dtype = property(lambda self: self.var.dtype)
    ndim = property(lambda self: len(self.var.shape))
    size = property(lambda self: int(np.prod(self.var.shape, dtype=np.int64)))
    T = property(lambda self: np.transpose(self))
    __hash__ = object.__hash__

    def __repr__(self):
        return f"Tracer({self.var.dtype}{list(self.var.shape)})"

    def __len__(self):
        if not self.var.shape:
            raise TypeError("len() of a 0-d traced array")
        return self.var.shape[0]

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    # --- NumPy protocols
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if any(not _arraylike(x) for x in inputs):
            return NotImplemented
        if kwargs.get("out") is not None or method == "at":
            owner(inputs).unsupported(f"np.{ufunc.__name__}.{method} writes into an array")
            return getattr(ufunc, method)(*[concrete(x) for x in inputs],
                                          **{k: concrete(v) for k, v in kwargs.items()})
        kwargs.pop("out", None)
        if method == "__call__":
            return _record_numpy(_ufunc_fn(ufunc), inputs, kwargs, key=ufunc,
                                 name=ufunc.__name__)
        return _record_numpy(getattr(ufunc, method), inputs, kwargs, key=(ufunc, method),
                             name=f"{ufunc.__name__}.{method}")

    def __array_function__(self, func, types, args, kwargs):
        if func in _METADATA:
            return func(*[concrete(a) for a in args],
                        **{k: concrete(v) for k, v in kwargs.items()})
        if any(issubclass(t, np.ndarray) is False and t is not Tracer
               and not t.__module__.startswith("cupy") for t in types):
            return NotImplemented
        b = owner(list(args) + list(kwargs.values()))
        if func.__name__ in _DYNAMIC and b.dynamic is None:
            b.dynamic = f"np.{func.__name__}"
        out = b.record(func, args, kwargs, key=func, name=func.__name__)
        if type(out) is Opaque:          # a Python value computed from the data
            b.read(f"np.{func.__name__}")
            return out.val
        return out

    # --- reads of the value
    def _read(self, how):
        self.b.read(how)
        return self.val

    def __array__(self, dtype=None, copy=None):
        v = np.asarray(self._read("__array__"))
        return v.astype(dtype) if dtype is not None else v

    def __bool__(self):
        return bool(self._read("__bool__"))

    def __float__(self):
        return float(self._read("__float__"))

    def __int__(self):
        return int(self._read("__int__"))

    def __index__(self):
        return operator.index(self._read("__index__"))

    def __complex__(self):
        return complex(self._read("__complex__"))

    def item(self, *args):
        return self._read("item").item(*args)

    def tolist(self):
        return self._read("tolist").tolist()

    def __setitem__(self, idx, value):
        self.b.unsupported("a traced array was written into (x[...] = ...)")
        self.val[concrete(idx)] = concrete(value)

    # --- methods recorded as NumPy functions
    def __getitem__(self, idx):
        b = owner([self, idx])
        if type(idx) is Tracer and idx.dtype == bool or (
                type(idx) is tuple and any(type(i) is Tracer and i.dtype == bool for i in idx)):
            if b.dynamic is None:
                b.dynamic = "boolean indexing"
        return b.record(getitem, (self, idx), key=getitem, name="getitem")

    def reshape(self, *shape, order="C"):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return np.reshape(self, shape, order=order)

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return np.transpose(self, axes or None)

    def swapaxes(self, a1, a2):
        return np.swapaxes(self, a1, a2)

    def sum(self, axis=None, dtype=None, keepdims=False):
        return np.sum(self, axis=axis, dtype=dtype, keepdims=keepdims)

    def mean(self, axis=None, dtype=None, keepdims=False):
        return np.mean(self, axis=axis, dtype=dtype, keepdims=keepdims)

    def max(self, axis=None, keepdims=False):
        return np.max(self, axis=axis, keepdims=keepdims)

    def min(self, axis=None, keepdims=False):
        return np.min(self, axis=axis, keepdims=keepdims)

    def prod(self, axis=None, keepdims=False):
        return np.prod(self, axis=axis, keepdims=keepdims)

    def any(self, axis=None, keepdims=False):
        return np.any(self, axis=axis, keepdims=keepdims)

    def all(self, axis=None, keepdims=False):
        return np.all(self, axis=axis, keepdims=keepdims)

    def cumsum(self, axis=None):
        return np.cumsum(self, axis=axis)

    def squeeze(self, axis=None):
        return np.squeeze(self, axis=axis)

    def ravel(self):
        return np.ravel(self)

    def flatten(self):
        return self.b.record(flatten, (self,), key=flatten, name="flatten")

    def copy(self):
        return np.copy(self)

    def astype(self, dtype, copy=True):
        return owner([self]).record(astype, (self, np.dtype(dtype)), key=astype,
                                    name="astype")

    def dot(self, other):
        return np.dot(self, other)

    def conj(self):
        return np.conj(self)

    real = property(lambda self: np.real(self))

    __add__, __radd__ = _binop(np.add), _binop(np.add, True)
    __sub__, __rsub__ = _binop(np.subtract), _binop(np.subtract, True)
    __mul__, __rmul__ = _binop(np.multiply), _binop(np.multiply, True)
    __truediv__, __rtruediv__ = _binop(np.true_divide), _binop(np.true_divide, True)
    __floordiv__, __rfloordiv__ = _binop(np.floor_divide), _binop(np.floor_divide, True)
    __mod__, __rmod__ = _binop(np.remainder), _binop(np.remainder, True)
    __pow__, __rpow__ = _binop(np.power), _binop(np.power, True)
    __matmul__, __rmatmul__ = _binop(np.matmul), _binop(np.matmul, True)
    __and__, __rand__ = _binop(np.bitwise_and), _binop(np.bitwise_and, True)
    __or__, __ror__ = _binop(np.bitwise_or), _binop(np.bitwise_or, True)
    __xor__ = _binop(np.bitwise_xor)
    __lt__, __le__ = _binop(np.less), _binop(np.less_equal)
    __gt__, __ge__ = _binop(np.greater), _binop(np.greater_equal)
    __eq__, __ne__ = _binop(np.equal), _binop(np.not_equal)

    def __neg__(self):
        return np.negative(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return np.absolute(self)

    def __invert__(self):
        return np.invert(self)
