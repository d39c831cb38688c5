"""The tape: Tensor, primitives with staged VJP rules, and the backward pass.

Design (see STYLE.md 1-4):

* There is no global tape. A Tensor produced by a primitive from inputs that
  require a gradient keeps its parents and one VJP closure per parent; the graph
  is reachable only from outputs, and in ``no_grad`` mode nothing is recorded.
* One rule table, ``VJP_RULES``: primitive -> one *maker* per positional argument
  (keyed by the primitive object; its name is for messages only, so a user primitive
  named "exp" does not touch the built-in exp). A maker is staged like HIPS
  autograd's: ``maker(ans, *args, **kwargs)`` runs in the forward pass and returns
  ``vjp(g)``, which runs in the backward pass. A ``None`` maker means "no gradient
  flows to this argument". A missing rule raises when the op is recorded, naming the
  op and argument. Ops taking any number of arrays (concatenate, stack, einsum) get
  one rule indexed by position (:func:`defvjp_argnum`).
* Unbroadcasting and dtype restoration happen in exactly one place, the backward
  loop: a rule may return a cotangent of the broadcast output shape and the loop
  sums it down to the parent's shape and casts it to the parent's dtype.
* The backward pass is an iterative reference-counted topological walk (no
  recursion, so a 10,000-step recurrence is fine); each cotangent is popped as soon
  as it is used and each node's parents and closures are dropped once processed,
  so nothing from the forward pass stays alive after ``backward``.
* Nested differentiation (``grad`` of a function that itself calls ``grad``) is
  not supported and raises :class:`NestedGradError`: VJP rules are written on raw
  arrays, so a second-order tape would silently be wrong.
* Recording (:mod:`autodiff.tracer`): a primitive whose raw arguments include a
  tracer hands its call and its VJP makers to the tracer's builder, so running the tape
  on tracers records the forward *and* the backward pass as a program. The hot path
  pays one type check per argument; the recording state travels with the values.
"""
import threading
import warnings

import numpy as np

from . import backend

from .tracer import Tracer as _Tracer, has_tracer as _has_tracer, owner as _owner

__all__ = ["Tensor", "tensor", "register_tensor_like", "unwrap", "primitive", "defvjp",
           "defvjp_argnum", "nograd_primitive", "VJP_RULES", "grad", "value_and_grad",
           "no_grad", "enable_grad", "is_grad_enabled", "NestedGradError", "unbroadcast"]


class GradientWarning(UserWarning):
    """A gradient that is zero because the differentiated function's value does not
    reach its arguments through autodiff ops (e.g. a Tensor turned into a NumPy array
    by ``np.asarray`` or ``np.sum``)."""


class NestedGradError(NotImplementedError):
    """Raised when ``grad``/``value_and_grad`` is called while another is tracing."""


class _State(threading.local):
    # Per-thread: whether ops are recorded, and how many grad() calls are tracing.
    enabled = True
    depth = 0


_state = _State()

#: The one rule table: primitive (the wrapped function) -> list of VJP makers, one per
#: positional argument, or an :class:`ArgnumRule` for ops with any number of arguments.
VJP_RULES = {}
#: Types that stand for a Tensor (e.g. BayesianNet nodes): type -> converter.
_TENSOR_LIKE = {}


def register_tensor_like(cls, to_tensor):
    """Let instances of ``cls`` be passed to autodiff ops: ``to_tensor(obj) -> Tensor``.

    zsarray registers its BayesianNet nodes this way, so ``ad.exp(bn["z"])`` works
    like ``ad.exp(bn["z"].tensor)``. Only the slow path (non-Tensor arguments) pays
    for the lookup.
    """
    _TENSOR_LIKE[cls] = to_tensor


def unwrap(x):
    """``x`` as a Tensor if it is a registered Tensor-like (e.g. a BayesianNet node),
    otherwise ``x`` unchanged. Use it where code takes parameters that may be nodes."""
    conv = _TENSOR_LIKE.get(type(x))
    return x if conv is None else conv(x)
_MISSING = object()


class Tensor:
    """An array with an optional place on the tape.

    Attributes
    ----------
    data : numpy.ndarray or cupy.ndarray
        The raw array.
    grad : array or None
        Accumulated gradient of a leaf created with ``requires_grad=True``,
        filled by :meth:`backward`.
    requires_grad : bool
        Whether gradients flow to (or through) this tensor.
    """
    # _edges: None for a leaf, ((parent, vjp), ...) for a recorded op, () once freed.
    __slots__ = ("data", "grad", "requires_grad", "_edges", "__weakref__")
    # NumPy must defer to our reflected operators (ndarray + Tensor -> Tensor.__radd__)
    __array_ufunc__ = None
    __array_priority__ = 1000

    def __init__(self, data, requires_grad=False):
        if type(data) is Tensor:
            data = data.data
        elif not (type(data) is _Tracer or hasattr(data, "__array_interface__")
                  or hasattr(data, "__cuda_array_interface__")):
            data = np.asarray(data)
        if requires_grad and data.dtype.kind not in "fc":
            raise TypeError(f"tensor: only floating-point tensors can require gradients, "
                            f"got dtype {data.dtype}")
        self.data = data
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self._edges = None

    shape = property(lambda self: self.data.shape)
    dtype = property(lambda self: self.data.dtype)
    ndim = property(lambda self: self.data.ndim)
    size = property(lambda self: self.data.size)
    T = property(lambda self: _ops().transpose(self))

    def __len__(self):
        return len(self.data)

    def __iter__(self):
        for i in range(len(self.data)):
            yield self[i]

    def __repr__(self):
        g = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({self.data!r}{g})"

    def __bool__(self):
        return bool(self.data)

    def __float__(self):
        return float(self.data)

    def __int__(self):
        return int(self.data)

    def __array__(self, dtype=None, copy=None):
        a = backend.asnumpy(self.data)
        return a.astype(dtype) if dtype is not None else a

    __hash__ = object.__hash__

    def item(self):
        return self.data.item()

    def numpy(self):
        """The data as a NumPy array on the host (detached from the tape)."""
        return backend.asnumpy(self.data)

    def detach(self):
        """A new leaf Tensor sharing ``data``, cut from the tape."""
        return Tensor(self.data)

    def backward(self, grad=None):
        """Accumulate d(self)/d(leaf) into ``.grad`` of every leaf that requires it.

        ``grad`` is the seed cotangent (shape of ``self``); it may be omitted only for
        a single-element tensor. The graph is freed afterwards.
        """
        if not self.requires_grad:
            raise RuntimeError("backward(): this tensor does not require grad (it depends on "
                               "no tensor created with requires_grad=True)")
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(f"backward(): called on a non-scalar Tensor of shape "
                                   f"{self.shape} without a seed gradient; pass "
                                   f"backward(grad) with an array of shape {self.shape}")
            grad = backend.get_array_module(self.data).ones_like(self.data)
        else:
            grad = grad.data if type(grad) is Tensor else grad
            if grad.shape != self.shape:
                raise ValueError(f"backward(): seed gradient has shape {grad.shape}, "
                                 f"expected {self.shape}")
        _backward(self, grad, None)


def _ops():
    from . import ops
    return ops


def tensor(data, requires_grad=False, dtype=None):
    """Make a leaf Tensor from an array, scalar or nested list.

    Parameters
    ----------
    data : array_like (NumPy or CuPy)
        Kept as is when it is already an array of the requested dtype (no copy).
    requires_grad : bool
        Record operations on it so that ``backward`` fills ``.grad``.
    dtype : optional
        Cast to this dtype.
    """
    if type(data) is Tensor:
        data = data.data
    if type(data) is _Tracer:
        if dtype is not None and np.dtype(dtype) != data.dtype:
            data = data.astype(dtype)
        return Tensor(data, requires_grad=requires_grad)
    xp = backend.get_array_module(data)
    if dtype is None and xp is not np and not hasattr(data, "dtype"):
        data = xp.asarray(data)         # Python scalars or lists on the GPU: float32
        if data.dtype.kind == "f":
            data = data.astype(backend.default_float(xp), copy=False)
        return Tensor(data, requires_grad=requires_grad)
    data = xp.asarray(data, dtype=dtype)
    return Tensor(data, requires_grad=requires_grad)


_new = Tensor.__new__


def _new_node(data, edges):
    t = _new(Tensor)
    t.data = data
    t.grad = None
    t.requires_grad = True
    t._edges = edges
    return t


def _leaf(data):
    t = _new(Tensor)
    t.data = data
    t.grad = None
    t.requires_grad = False
    t._edges = None
    return t


def _shape_of(a):
    return getattr(a, "shape", type(a).__name__)


def _reraise(name, err, raw):
    shapes = ", ".join(str(_shape_of(a)) for a in raw if not isinstance(a, (str, type(None))))
    msg = f"{name}: {err} (argument shapes: {shapes})"
    try:
        new = type(err)(msg)
    except Exception:
        new = ValueError(msg)
    raise new from err


def _missing(name, i):
    return NotImplementedError(f"no VJP rule for argument {i} of '{name}': it cannot be "
                               f"differentiated (define one with autodiff.defvjp)")


class ArgnumRule:
    """The VJP rule of an op taking any number of array arguments: ``rule(i, ans, *args,
    **kwargs) -> (g -> cotangent)`` for argument ``i``; ``no_grad`` lists positions
    that get no gradient (einsum's subscripts). See :func:`defvjp_argnum`."""
    __slots__ = ("rule", "no_grad")

    def __init__(self, rule, no_grad=()):
        self.rule, self.no_grad = rule, frozenset(no_grad)

    def maker(self, i):
        if i in self.no_grad:
            return None
        rule = self.rule
        return lambda ans, *args, **kwargs: rule(i, ans, *args, **kwargs)


def _maker(rules, name, i):
    """The VJP maker of argument ``i`` (None: no gradient); raises when there is none."""
    if type(rules) is ArgnumRule:
        return rules.maker(i)
    maker = rules[i] if i < len(rules) else _MISSING
    if maker is _MISSING:
        raise _missing(name, i)
    return maker


def _traced(prim, fun, name, args, raw, kwargs):
    """A primitive applied to raw arguments among which are tracers: the builder records
    the call (and, through :meth:`Builder.vjp`, its backward functions). Tensors with
    concrete data used beside traced values are read at every call of the program."""
    b = _owner(raw)
    args = list(args)
    for i, a in enumerate(args):
        if type(a) is Tensor:
            d = a.data
            if type(d) is not _Tracer:
                raw[i] = b.ref(a)
            elif d.b is not b and d.b.depth < b.depth:   # closed over by a scan body
                args[i] = b.capture_tensor(a)
                raw[i] = args[i].data
    try:
        ans = b.apply(fun, raw, kwargs, name=name)
    except (ValueError, TypeError) as err:
        _reraise(name, err, [getattr(a, "val", a) for a in raw])
    edges = None
    if prim is not None and _state.enabled:
        rules = VJP_RULES[prim]
        for i, a in enumerate(args):
            if type(a) is Tensor and a.requires_grad:
                maker = _maker(rules, name, i)
                if maker is not None:
                    e = (a, b.vjp(maker, ans, raw, kwargs, name))
                    edges = [e] if edges is None else edges + [e]
    return _leaf(ans) if edges is None else _new_node(ans, tuple(edges))


def primitive(fun, name=None, nargs=None):
    """Wrap a function on raw arrays into a tape op.

    The wrapped function accepts Tensors or raw arrays/scalars in any positional
    argument, always returns a Tensor, and records itself when some Tensor argument
    requires a gradient. Give it VJP rules with :func:`defvjp`.

    ``nargs=1`` or ``2`` selects a specialised wrapper for unary (with keyword
    options) and binary (no options) elementwise ops: the per-op path is the hot
    path of small-array code, so it avoids building argument lists.
    """
    name = name or fun.__name__
    rules = []

    if nargs == 1:
        def wrapped(x, **kwargs):
            if type(x) is not Tensor:
                conv = _TENSOR_LIKE.get(type(x))
                if conv is None:
                    return _leaf(_call(fun, name, (x,), kwargs))
                x = conv(x)
            xd = x.data
            if type(xd) is _Tracer:
                return _traced(wrapped, fun, name, (x,), [xd], kwargs)
            try:
                ans = fun(xd, **kwargs) if kwargs else fun(xd)
            except (ValueError, TypeError) as err:
                _reraise(name, err, (xd,))
            if x.requires_grad and _state.enabled:
                maker = rules[0] if rules else _maker(rules, name, 0)
                if maker is not None:
                    return _new_node(ans, ((x, maker(ans, xd, **kwargs) if kwargs
                                            else maker(ans, xd)),))
            return _leaf(ans)
    elif nargs == 2:
        def wrapped(x, y):
            tx, ty = type(x) is Tensor, type(y) is Tensor
            if not tx and type(x) in _TENSOR_LIKE:
                x, tx = _TENSOR_LIKE[type(x)](x), True
            if not ty and type(y) in _TENSOR_LIKE:
                y, ty = _TENSOR_LIKE[type(y)](y), True
            xd = x.data if tx else x
            yd = y.data if ty else y
            if type(xd) is _Tracer or type(yd) is _Tracer:
                return _traced(wrapped, fun, name, (x, y), [xd, yd], {})
            try:
                ans = fun(xd, yd)
            except (ValueError, TypeError) as err:
                _reraise(name, err, (xd, yd))
            gx = tx and x.requires_grad
            gy = ty and y.requires_grad
            if (gx or gy) and _state.enabled:
                try:
                    rx = rules[0] if gx else None
                    ry = rules[1] if gy else None
                except IndexError:
                    raise _missing(name, 0 if gx and not rules else 1) from None
                if rx is not None:
                    if ry is not None:
                        return _new_node(ans, ((x, rx(ans, xd, yd)), (y, ry(ans, xd, yd))))
                    return _new_node(ans, ((x, rx(ans, xd, yd)),))
                if ry is not None:
                    return _new_node(ans, ((y, ry(ans, xd, yd)),))
            return _leaf(ans)
    else:
        def wrapped(*args, **kwargs):
            if _TENSOR_LIKE:
                args = [_TENSOR_LIKE[type(a)](a) if type(a) in _TENSOR_LIKE else a
                        for a in args]
            raw = [a.data if type(a) is Tensor else a for a in args]
            if _has_tracer(raw):
                return _traced(wrapped, fun, name, args, raw, kwargs)
            ans = _call(fun, name, raw, kwargs)
            parents = None
            if _state.enabled:
                for i, a in enumerate(args):
                    if type(a) is Tensor and a.requires_grad:
                        maker = _maker(VJP_RULES[wrapped], name, i)
                        if maker is None:
                            continue
                        if parents is None:
                            parents = [(a, maker(ans, *raw, **kwargs))]
                        else:
                            parents.append((a, maker(ans, *raw, **kwargs)))
            return _leaf(ans) if parents is None else _new_node(ans, tuple(parents))

    wrapped.__name__ = name
    wrapped.__qualname__ = name
    wrapped.__doc__ = fun.__doc__
    wrapped.__wrapped__ = fun
    wrapped._ad_name = name
    VJP_RULES[wrapped] = rules
    return wrapped


def _call(fun, name, raw, kwargs):
    try:
        if _has_tracer(raw):
            return _owner(raw).apply(fun, list(raw), kwargs, name=name)
        return fun(*raw, **kwargs)
    except (ValueError, TypeError) as err:
        _reraise(name, err, raw)


def nograd_primitive(fun, name=None):
    """Wrap a function whose output carries no gradient (sign, floor, argmax, ...).

    Tensor arguments are unwrapped and the raw result is returned as is.
    """
    def wrapped(*args, **kwargs):
        raw = [a.data if type(a) is Tensor else a for a in args]
        if _has_tracer(raw):
            return _traced(None, fun, wrapped.__name__, args, raw, kwargs).data
        return fun(*raw, **kwargs)
    wrapped.__name__ = name or fun.__name__
    wrapped.__doc__ = fun.__doc__
    wrapped.__wrapped__ = fun
    return wrapped


def defvjp(prim, *makers):
    """Define the VJP makers of a primitive, one per positional argument.

    Each maker is ``maker(ans, *args, **kwargs) -> (g -> cotangent)``; pass ``None``
    for arguments that get no gradient. Cotangents may have the broadcast (output)
    shape: the backward pass sums them down to the argument's shape.

    Example
    -------
    >>> square = primitive(lambda x: x * x, name="my_square")
    >>> defvjp(square, lambda ans, x: lambda g: 2 * x * g)
    """
    rules = VJP_RULES.get(prim) if callable(prim) else None
    if rules is None:
        raise TypeError(f"defvjp: {prim!r} is not an autodiff primitive (wrap it with "
                        f"autodiff.primitive first)")
    if type(rules) is not list:        # replacing an argnum rule by positional makers
        rules = VJP_RULES[prim] = []
    rules[:] = makers


def defvjp_argnum(prim, rule, no_grad=()):
    """Define one VJP rule for every argument of a primitive taking any number of
    arrays: ``rule(i, ans, *args, **kwargs) -> (g -> cotangent)`` gives the backward
    function of argument ``i``; positions in ``no_grad`` get no gradient.

    Example
    -------
    >>> cat = primitive(lambda *xs: np.concatenate(xs), name="my_concat")
    >>> def rule(i, ans, *xs):
    ...     start = sum(len(x) for x in xs[:i])
    ...     return lambda g: g[start:start + len(xs[i])]
    >>> defvjp_argnum(cat, rule)
    """
    if getattr(prim, "_ad_name", None) is None or prim not in VJP_RULES:
        raise TypeError(f"defvjp_argnum: {prim!r} is not an autodiff primitive (wrap it "
                        f"with autodiff.primitive first)")
    VJP_RULES[prim] = ArgnumRule(rule, no_grad)


def unbroadcast(g, shape):
    """Sum a cotangent ``g`` of a broadcast result down to ``shape``."""
    if g.shape == shape:
        return g
    extra = g.ndim - len(shape)
    if extra > 0:
        g = g.sum(axis=tuple(range(extra)))
    elif extra < 0:  # a rule returned fewer dims (e.g. a scalar): broadcast up
        return np.broadcast_to(g, shape).copy()     # (dispatches to CuPy and tracers)
    axes = tuple(i for i, (s, gs) in enumerate(zip(shape, g.shape)) if s == 1 and gs != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    if g.shape != shape:
        g = np.broadcast_to(g, shape).copy()
    return g


def _maybe_shared(g):
    """True when ``g`` is a view of another array or read-only (NumPy or CuPy)."""
    if getattr(g, "base", None) is not None:
        return True
    flags = getattr(g, "flags", None)
    return flags is not None and not getattr(flags, "writeable", True)


def _backward(root, seed, wanted):
    """Propagate ``seed`` from ``root``.

    ``wanted`` is None (accumulate into ``.grad`` of leaves, as Tensor.backward) or a
    dict ``id(leaf) -> None`` filled in place with the leaves' cotangents (grad()).
    """
    _backward_roots(((root, seed),), wanted)


def _backward_roots(pairs, wanted):
    """Propagate one seed from each of several roots ``(root, seed)`` in one pass (a
    root may also lie below another; its seed then adds to what reaches it). With one
    root this is the order described in the module docstring.

    The pass keeps its counts and partial cotangents in its own dictionaries (keyed by
    node identity; ``touched`` keeps the nodes alive), never on the Tensors: two threads
    running backward through shared parameters do not see each other's scratch."""
    delivered = set()
    roots = []
    for root, seed in pairs:
        if root._edges is None:      # the root is itself a leaf
            _deliver(root, seed, wanted, seed, delivered)
        else:
            roots.append((root, seed))
    if not roots:
        return
    # Count, for every node, how many recorded consumers it has.
    touched, stack, pending, acc = [], [], {}, {}
    for root, _ in roots:
        if id(root) not in pending:
            pending[id(root)] = 0
            touched.append(root)
            stack.append(root)
    while stack:
        for p, _ in stack.pop()._edges:
            k = id(p)
            n = pending.get(k)
            if n is None:
                pending[k] = 1
                touched.append(p)
                if p._edges:
                    stack.append(p)
                elif p._edges is not None:
                    raise RuntimeError(_FREED)
            else:
                pending[k] = n + 1
    for root, seed in roots:
        prev = acc.get(id(root))
        acc[id(root)] = seed if prev is None else prev + seed
    ready, seen = [], set()
    for root, _ in roots:
        if pending[id(root)] == 0 and id(root) not in seen:
            seen.add(id(root))
            ready.append(root)
    seed = roots[0][1] if len(roots) == 1 else None
    while ready:
        t = ready.pop()
        g = acc.pop(id(t))
        edges = t._edges
        if edges is None:
            _deliver(t, g, wanted, seed, delivered)
            continue
        if not edges:
            raise RuntimeError(_FREED)
        t._edges = ()   # free the graph as we go
        for p, vjp in edges:
            gp = vjp(g)
            d = p.data
            if gp.shape != d.shape:
                gp = unbroadcast(gp, d.shape)
            if gp.dtype is not d.dtype and gp.dtype != d.dtype:
                gp = gp.astype(d.dtype)
            k = id(p)
            prev = acc.get(k)
            acc[k] = gp if prev is None else prev + gp
            n = pending[k] - 1
            pending[k] = n
            if n == 0:
                ready.append(p)
    del touched


_FREED = ("backward(): part of this graph was already freed by an earlier backward pass; "
          "recompute the forward pass")


_GRAD_LOCK = threading.Lock()


def _deliver(leaf, g, wanted, seed=None, delivered=None, owned=False):
    """Add ``g`` into ``leaf.grad`` (``wanted`` None) or into ``wanted``. ``owned``: ``g``
    is the caller's to give away as it is (a compiled step's gradient view), never
    copied for being a view."""
    if wanted is None:
        with _GRAD_LOCK:       # .grad is shared: concurrent passes add, never overwrite
            _deliver_grad(leaf, g, seed, delivered, owned)
    elif id(leaf) in wanted:
        w = wanted[id(leaf)]
        wanted[id(leaf)] = g if w is None else w + g


def _deliver_grad(leaf, g, seed, delivered, owned=False):
    if leaf.grad is not None:
        leaf.grad = leaf.grad + g
        return
    if isinstance(g, np.generic):
        g = np.array(g)
    elif owned:
        pass
    elif g is seed or _maybe_shared(g) or (delivered is not None and id(g) in delivered):
        # .grad may be modified in place (clipping): never hand out the caller's seed,
        # one array to two leaves, a view of another array, or a read-only array
        g = g.copy()
    if delivered is not None:
        delivered.add(id(g))
    leaf.grad = g


class no_grad:
    """Context manager (and decorator) in which no operation is recorded."""

    def __enter__(self):
        self._prev = _state.enabled
        _state.enabled = False

    def __exit__(self, *exc):
        _state.enabled = self._prev

    def __call__(self, fun):
        kind = type(self)

        def wrapper(*args, **kwargs):
            with kind():
                return fun(*args, **kwargs)
        wrapper.__name__ = getattr(fun, "__name__", "wrapper")
        wrapper.__doc__ = getattr(fun, "__doc__", None)
        return wrapper


class enable_grad(no_grad):
    """Context manager in which operations are recorded (undoes an outer no_grad)."""

    def __enter__(self):
        self._prev = _state.enabled
        _state.enabled = True


def is_grad_enabled():
    """Whether operations are currently recorded on this thread."""
    return _state.enabled


def value_and_grad(fun, argnums=0, has_aux=False):
    """Make ``f(*args) -> (value, grad)`` from a scalar-valued ``fun``.

    Parameters
    ----------
    fun : callable
        Takes Tensors in the positions ``argnums`` (raw arrays elsewhere) and returns
        a single-element Tensor, or ``(scalar, aux)`` when ``has_aux``.
    argnums : int or tuple of int
        Which positional arguments to differentiate.
    has_aux : bool
        ``fun`` returns ``(scalar, aux)``; aux is returned with Tensors replaced by
        their raw arrays.

    Returns
    -------
    callable
        ``f(*args, **kwargs)`` returning ``(value, grad)`` — or ``((value, aux), grad)``
        with ``has_aux`` — where value is a raw array and grad is a raw array shaped
        like its argument (a tuple of them when ``argnums`` is a tuple). NumPy in,
        NumPy out; CuPy in, CuPy out. Gradients have the dtype of their argument.

    Raises
    ------
    NestedGradError
        When called while another ``grad``/``value_and_grad`` is tracing.
    """
    multi = isinstance(argnums, (tuple, list))
    nums = check_argnums(argnums, "value_and_grad")

    def wrapped(*args, **kwargs):
        if _state.depth:
            raise NestedGradError(
                "nested differentiation is not supported: grad/value_and_grad was called "
                "inside a function that another grad is differentiating. autodiff records "
                "first-order VJPs only; for Hessian-vector products use finite differences "
                "of grad")
        args = list(args)
        leaves = []
        for i in nums:
            if i >= len(args):
                raise TypeError(f"value_and_grad: argnums={argnums} but only {len(args)} "
                                f"positional arguments were given")
            t = _as_leaf(args[i], i)
            args[i] = t
            leaves.append(t)
        prev = _state.enabled
        _state.enabled = True
        _state.depth += 1
        try:
            out = fun(*args, **kwargs)
        finally:
            _state.depth -= 1
            _state.enabled = prev
        aux = None
        if has_aux:
            if not (isinstance(out, tuple) and len(out) == 2):
                raise TypeError("value_and_grad(has_aux=True): fun must return (scalar, aux)")
            out, aux = out
            aux = _strip(aux)
        val = out.data if type(out) is Tensor else out
        if getattr(val, "size", 1) != 1:
            raise TypeError(f"value_and_grad: fun must return a scalar, got shape "
                            f"{val.shape}; sum or average it first")
        wanted = {id(t): None for t in leaves}
        if type(out) is Tensor and out.requires_grad:
            _backward(out, _ones_like(val), wanted)
        warn_disconnected(out, [wanted[id(t)] for t in leaves], fun, "value_and_grad")
        val, grads = hand_back(val, [wanted[id(t)] for t in leaves], [t.data for t in leaves])
        grads = tuple(grads) if multi else grads[0]
        if has_aux:
            return (val, aux), grads
        return val, grads

    wrapped.__name__ = f"value_and_grad({getattr(fun, '__name__', 'fun')})"
    return wrapped


def hand_back(value, grads, xs):
    """``(value, grads)`` as :func:`value_and_grad` and the traced and compiled functions
    hand them out: arrays rather than NumPy scalars, zeros (the shape and dtype of the
    input) where the gradient did not reach, and never one array twice, an input itself
    or a read-only view (callers may modify what they get in place)."""
    out, seen = [], set()
    for g, x in zip(grads, xs):
        if g is None:
            g = _zeros_like(x)
        elif isinstance(g, np.generic):
            g = np.asarray(g)              # 0-d argument: a 0-d array, not a NumPy scalar
        elif id(g) in seen or g is x or (type(g) is np.ndarray and not g.flags.writeable):
            g = g.copy()
        seen.add(id(g))
        out.append(g)
    if isinstance(value, np.generic):
        value = np.asarray(value)
    return value, out


def check_argnums(argnums, who):
    """``argnums`` (an int or a tuple/list of ints) as a tuple of distinct ints."""
    nums = tuple(argnums) if isinstance(argnums, (tuple, list)) else (argnums,)
    for n in nums:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise TypeError(f"{who}: argnums must be a non-negative int or a tuple of them, "
                            f"got {argnums!r}")
    if not nums:
        raise ValueError(f"{who}: argnums=() differentiates nothing; give at least one "
                         f"argument position")
    dup = sorted({n for n in nums if nums.count(n) > 1})
    if dup:
        raise ValueError(f"{who}: argnums={tuple(argnums)!r} lists argument(s) {dup} more "
                         f"than once; each position can be differentiated once")
    return tuple(int(n) for n in nums)


def check_float(dtype, i, who):
    """Raise unless arrays of ``dtype`` can be differentiated (argument ``i``)."""
    if np.dtype(dtype).kind not in "fc":
        raise TypeError(f"{who}: argument {i} has dtype {np.dtype(dtype)}; only floating-point "
                        f"arguments can be differentiated (cast it, e.g. x.astype(float))")


def warn_disconnected(out, grads, fun, who):
    """Warn when ``fun`` returned a plain array, not a Tensor, so that no differentiated
    argument reached it (all of ``grads`` None) and the gradient handed back is zero.
    (A Tensor that does not depend on the arguments, e.g. through ``stop_gradient``,
    is a legitimate zero gradient and gives no warning.)"""
    if type(out) is Tensor or type(out) in (int, float, complex) or \
            any(g is not None for g in grads):
        return          # a Python constant is a legitimate zero gradient too
    name = getattr(fun, "__name__", "fun")
    warnings.warn(f"{who}({name}): the gradient is zero because the function returned a "
                  f"plain {type(out).__name__}, not a Tensor: a Tensor was turned into a "
                  f"NumPy array (np.asarray, np.sum or another NumPy function applied to "
                  f"Tensors) and the tape lost track of it; use the autodiff functions "
                  f"(ad.sum, ad.exp, ...)", GradientWarning, stacklevel=3)


def _as_leaf(a, i):
    """A fresh leaf requiring grad for argument ``i`` of a function being differentiated."""
    a = a.data if type(a) is Tensor else a
    if type(a) is not np.ndarray and type(a) is not _Tracer and not backend.is_cupy(a):
        a = np.asarray(a)
        if a.dtype.kind in "biu":
            a = a.astype(float)
    check_float(a.dtype, i, "value_and_grad")
    t = _new(Tensor)
    t.data, t.grad, t.requires_grad, t._edges = a, None, True, None
    return t


def _ones_like(x):
    if type(x) is np.ndarray or isinstance(x, np.generic):
        out = np.empty(x.shape, x.dtype)          # np.ones is a Python-level wrapper
        out.fill(1)
        return out
    return np.ones_like(x)          # (dispatches to CuPy and tracers)


def _zeros_like(x):
    if type(x) is np.ndarray:
        return np.zeros(x.shape, x.dtype)
    return np.zeros_like(x)


def grad(fun, argnums=0):
    """Make ``f(*args) -> grad`` from a scalar-valued ``fun`` (see :func:`value_and_grad`)."""
    vg = value_and_grad(fun, argnums)

    def wrapped(*args, **kwargs):
        return vg(*args, **kwargs)[1]

    wrapped.__name__ = f"grad({getattr(fun, '__name__', 'fun')})"
    return wrapped


def _strip(x):
    if type(x) is Tensor:
        return x.data
    if isinstance(x, tuple) and not hasattr(x, "_fields"):
        return tuple(_strip(v) for v in x)
    if isinstance(x, list):
        return [_strip(v) for v in x]
    if isinstance(x, dict):
        return {k: _strip(v) for k, v in x.items()}
    return x
