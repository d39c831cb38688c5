"""Gradient-descent optimizers over lists of autodiff Tensors, with PyTorch's update rules.

>>> opt = Adam(model.parameters(), lr=1e-3)                 # doctest: +SKIP
>>> for x, y in batches:
...     opt.zero_grad()
...     loss(model(x), y).backward()
...     opt.step()

Each optimizer holds ``param_groups`` (a list of dicts: ``"params"`` plus the
hyperparameters, which a schedule may change between steps, PyTorch-style) and a
per-parameter ``state``. :meth:`Optimizer.step` updates ``Tensor.data`` **in
place** (the Tensor objects and their arrays stay the same, so a model keeps
seeing its parameters) with one fused kernel per parameter: :mod:`.kernels_cpu`
(Numba) for NumPy arrays, :mod:`.kernels_cuda` for CuPy arrays. Parameters whose
``grad`` is ``None`` are skipped and their step count does not advance, as in PyTorch.
A step checks every parameter before it updates any: one that raises (a gradient
of the wrong shape) changes no parameter and no state.

The update formulas are PyTorch's (``torch.optim`` single-tensor code), including
its L2 ``weight_decay`` (added to the gradient) and its state names, so
``state_dict`` s read the same. Supported dtypes: float32 and float64.
"""
import math

import numpy as np

from autodiff import backend
from autodiff.core import Tensor, enable_grad

from . import kernels_cpu

__all__ = ["Optimizer", "SGD", "Adam", "Adamax", "RMSprop", "clip_grad_norm_",
           "clip_grad_value_"]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _kernels_for(a):
    """The kernel module for array ``a``: CUDA for CuPy arrays, Numba CPU otherwise."""
    if backend.is_cupy(a):
        from . import kernels_cuda
        return kernels_cuda
    return kernels_cpu


_EMPTY = {}


def _empty(xp, dtype):
    """A cached ``[0]`` array standing for an unused state slot of a kernel."""
    key = (xp.__name__, dtype)
    if key not in _EMPTY:
        _EMPTY[key] = xp.empty(0, dtype=dtype)
    return _EMPTY[key]


def _flat(a):
    """``a`` as a 1-D view (``a`` is C-contiguous: params and states are made so)."""
    return a.reshape(-1)


def _check_range(owner, name, value, lo, hi=None, hi_open=True, lo_open=False, finite=True):
    """Raise ``TypeError`` unless ``value`` is a real number (not a bool), and
    ``ValueError`` unless ``lo <= value`` (``lo < value`` when ``lo_open``) and
    ``value < hi`` (or ``<= hi``), and it is finite (unless ``finite=False``: inf allowed)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{owner}: {name} must be a real number, got {type(value).__name__} "
                        f"{value!r}")
    ok = (value > lo if lo_open else value >= lo) and (
        hi is None or (value < hi if hi_open else value <= hi))
    if not ok or (finite and not math.isfinite(value)):
        low = f"> {lo}" if lo_open else f">= {lo}"
        rng = (low if hi is None else
               f"in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}")
        raise ValueError(f"{owner}: {name} must be {rng}{' and finite' if finite else ''}, "
                         f"got {value!r}")


class Optimizer:
    """Base class: parameter groups, per-parameter state, ``zero_grad``, ``state_dict``.

    Parameters
    ----------
    params : iterable of Tensor, or iterable of dict
        Tensors to optimize (e.g. ``module.parameters()``), or parameter groups:
        dicts with a ``"params"`` list and optional per-group hyperparameters.
    defaults : dict
        Hyperparameters used by groups that do not set them.

    Notes
    -----
    Subclasses implement ``_validate(group)`` and ``_kernel(p, g, state, group)``,
    where ``p`` is the parameter array, ``g`` its (contiguous, same-dtype) gradient
    and ``state`` the parameter's state dict: it advances the state's bookkeeping and
    returns ``(kernel, args)``, the fused update that :meth:`step` runs once every
    parameter has passed its checks. Subclasses also list the names of that state:
    ``_state_arrays`` (arrays shaped like the parameter), ``_state_required`` (those a
    non-empty state must hold; ``"step"`` is the one integer entry).
    """

    _state_arrays = frozenset()
    _state_required = frozenset()

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.param_groups = []
        self.state = {}        # id(param) -> dict of arrays and ints
        if isinstance(params, Tensor):
            raise TypeError(f"{type(self).__name__}: params must be an iterable of Tensors "
                            f"or of dicts, got a single Tensor; wrap it in a list")
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def __repr__(self):
        hyper = ", ".join(f"{k}={v!r}" for k, v in self.defaults.items())
        return f"{type(self).__name__}({hyper}, n_groups={len(self.param_groups)})"

    def _params(self):
        return [p for group in self.param_groups for p in group["params"]]

    def add_param_group(self, group):
        """Add a dict ``{"params": [...], **hyperparameters}``; missing ones come from defaults."""
        name = type(self).__name__
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError(f"{name}: a parameter group must be a dict with a 'params' key, "
                            f"got {type(group).__name__}")
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        seen = {id(p) for p in self._params()}
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"{name}: parameter {i} must be an autodiff Tensor, got "
                                f"{type(p).__name__}")
            if p.dtype not in _FLOATS:
                raise TypeError(f"{name}: parameter {i} has dtype {p.dtype}; only float32 "
                                f"and float64 parameters are supported")
            if not p.requires_grad:       # its grad stays None: step() would skip it forever
                raise ValueError(f"{name}: parameter {i} has requires_grad=False, so it never "
                                 f"gets a gradient and would never be updated; create it with "
                                 f"requires_grad=True")
            if id(p) in seen:
                raise ValueError(f"{name}: parameter {i} appears more than once (in this "
                                 f"group or an earlier one)")
            seen.add(id(p))
        unknown = set(group) - set(self.defaults) - {"params", "initial_lr"}
        if unknown:
            raise ValueError(f"{name}: unknown hyperparameters {sorted(unknown)} in a "
                             f"parameter group; expected some of {sorted(self.defaults)}")
        full = dict(self.defaults)
        full.update(group)
        full["params"] = params
        self._validate(full)
        self.param_groups.append(full)

    def _validate(self, group):
        raise NotImplementedError

    def _kernel(self, p, g, state, group):
        raise NotImplementedError

    def zero_grad(self, set_to_none=True):
        """Reset the gradients: ``grad = None`` (default) or zero them in place."""
        for p in self._params():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                _writable_grad(p)[...] = 0

    def step(self, closure=None):
        """Update every parameter that has a gradient, in place.

        Parameters
        ----------
        closure : callable, optional
            Re-evaluates the model and returns the loss (run with gradients enabled).

        Returns
        -------
        The closure's loss, or None.
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        jobs = []
        for group in self.param_groups:
            # a schedule or the user may have changed the group since the last step:
            # a negative or NaN lr would otherwise ascend or poison every parameter
            self._validate(group)
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                data = p.data
                if g.shape != data.shape:
                    raise ValueError(f"{type(self).__name__}.step: a gradient has shape "
                                     f"{g.shape} but its parameter has shape {data.shape}")
                jobs.append((p, g, group))
        # every check passed: no state advances for a step that raises
        for p, g, group in jobs:
            data = p.data
            xp = backend.get_array_module(data)
            if not data.flags.c_contiguous:   # e.g. a transposed view assigned by a user
                p.data = data = xp.ascontiguousarray(data)
            if g.dtype != data.dtype or not g.flags.c_contiguous:
                g = xp.ascontiguousarray(g, dtype=data.dtype)
            state = self.state.setdefault(id(p), {})
            for k, v in state.items():     # after Module.to(): follow the parameter
                if hasattr(v, "shape") and type(v) is not type(data):
                    state[k] = backend.to_device(v, "gpu" if backend.is_cupy(data) else "cpu")
            kernel, args = self._kernel(data, g, state, group)
            kernel(*args)
        return loss

    # ---------------------------------------------------------------- state dicts
    def state_dict(self):
        """A copy of the optimizer state, with parameters referred to by index.

        Returns
        -------
        dict
            ``{"state": {index: {name: array or int}}, "param_groups": [{...,
            "params": [index, ...]}]}``, indices counting parameters across groups in
            order (PyTorch's layout). Arrays are copies on the parameters' device.
        """
        index = {id(p): i for i, p in enumerate(self._params())}
        state = {}
        for p in self._params():
            s = self.state.get(id(p))
            if s:
                state[index[id(p)]] = {k: (v.copy() if hasattr(v, "copy") else v)
                                       for k, v in s.items()}
        groups = []
        for group in self.param_groups:
            g = {k: v for k, v in group.items() if k != "params"}
            g["params"] = [index[id(p)] for p in group["params"]]
            groups.append(g)
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore hyperparameters and state from :meth:`state_dict` (strict).

        Nothing changes unless the whole state dict loads.

        Raises
        ------
        ValueError
            When the state dict comes from another optimizer class (its hyperparameter
            or state names differ: e.g. Adam's into SGD), or the number of groups, of
            parameters per group, a state array's shape, a step count or a
            hyperparameter does not fit this optimizer and its parameters; the message
            names what differs.
        """
        name = type(self).__name__
        where = f"{name}.load_state_dict"
        if not isinstance(state_dict, dict) or set(state_dict) != {"state", "param_groups"}:
            raise ValueError(f"{where}: expected a dict with keys 'state' and "
                             f"'param_groups' (from state_dict())")
        groups = state_dict["param_groups"]
        if not isinstance(groups, (list, tuple)) or not all(
                isinstance(g, dict) and "params" in g for g in groups):
            raise ValueError(f"{where}: 'param_groups' must be a list of dicts with a "
                             f"'params' list (from state_dict())")
        if len(groups) != len(self.param_groups):
            raise ValueError(f"{where}: the state has {len(groups)} parameter "
                             f"groups, this optimizer has {len(self.param_groups)}")
        expected = set(self.defaults)
        offset = 0
        for i, (saved, group) in enumerate(zip(groups, self.param_groups)):
            keys = set(saved) - {"params", "initial_lr"}
            if keys != expected:
                raise ValueError(
                    f"{where}: parameter group {i} of the state has hyperparameters "
                    f"{sorted(keys)}, {name} has {sorted(expected)} (extra: "
                    f"{sorted(keys - expected)}, missing: {sorted(expected - keys)}); "
                    f"is it another optimizer's state dict?")
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"{where}: parameter group {i} has "
                                 f"{len(saved['params'])} parameters in the state, "
                                 f"{len(group['params'])} in this optimizer")
            if [int(j) for j in saved["params"]] != list(range(offset, offset +
                                                               len(group["params"]))):
                raise ValueError(f"{where}: parameter group {i} lists parameters "
                                 f"{list(saved['params'])}, expected indices {offset}.."
                                 f"{offset + len(group['params']) - 1} in order")
            offset += len(group["params"])
        params = self._params()
        if not isinstance(state_dict["state"], dict):
            raise ValueError(f"{where}: 'state' must be a dict {{parameter index: state}}")
        new_state = {}
        for idx, s in state_dict["state"].items():
            try:
                idx = int(idx)
            except (TypeError, ValueError):
                raise ValueError(f"{where}: state key {idx!r} is not a parameter "
                                 f"index") from None
            if not 0 <= idx < len(params):
                raise ValueError(f"{where}: state for parameter index {idx}, "
                                 f"but there are {len(params)} parameters")
            new_state[id(params[idx])] = self._load_param_state(params[idx], idx, s)
        candidates = []
        for saved, group in zip(groups, self.param_groups):
            hyper = {k: v for k, v in saved.items() if k != "params"}
            candidate = dict(group, **hyper)
            self._validate(candidate)
            candidates.append(hyper)
        for hyper, group in zip(candidates, self.param_groups):
            group.update(hyper)
        self.state = new_state

    def _load_param_state(self, p, idx, s):
        """One parameter's saved state, checked against ``_state_arrays`` /
        ``_state_required`` and the parameter's shape, as arrays on its device."""
        where = f"{type(self).__name__}.load_state_dict"
        if not isinstance(s, dict):
            raise ValueError(f"{where}: the state of parameter {idx} must be a dict, got "
                             f"{type(s).__name__}")
        known = self._state_arrays | {"step"} if "step" in self._state_required \
            else self._state_arrays
        unknown = set(s) - known
        if unknown:
            raise ValueError(f"{where}: parameter {idx} has state {sorted(unknown)}, which "
                             f"{type(self).__name__} does not keep (it keeps {sorted(known)}); "
                             f"is it another optimizer's state dict?")
        missing = self._state_required - set(s) if s else set()
        if missing:
            raise ValueError(f"{where}: the state of parameter {idx} lacks {sorted(missing)}")
        xp = backend.get_array_module(p.data)
        entry = {}
        for k, v in s.items():
            if k == "step":
                step = v.item() if hasattr(v, "item") else v
                if isinstance(step, bool) or not isinstance(step, (int, np.integer)) \
                        or step < 0:
                    raise ValueError(f"{where}: state 'step' of parameter {idx} must be a "
                                     f"non-negative integer, got {v!r}")
                entry[k] = int(step)
                continue
            if v is None:
                entry[k] = None
                continue
            if not hasattr(v, "shape") or tuple(v.shape) != p.shape:
                got = tuple(v.shape) if hasattr(v, "shape") else type(v).__name__
                raise ValueError(f"{where}: state '{k}' of parameter {idx} has shape {got}, "
                                 f"the parameter has shape {p.shape}")
            host = v if backend.is_cupy(v) else backend.asnumpy(v)
            arr = xp.array(host, dtype=p.dtype)
            if not bool(xp.all(xp.isfinite(arr))):
                raise ValueError(f"{where}: state '{k}' of parameter {idx} holds NaN or inf")
            entry[k] = arr
        return entry


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum, as ``torch.optim.SGD``.

    ``d = g + weight_decay * p``; with momentum ``buf = d`` at the first step, then
    ``buf = momentum * buf + (1 - dampening) * d``, and ``d = buf`` (or
    ``d + momentum * buf`` with ``nesterov``); ``p -= lr * d``.

    Parameters
    ----------
    params : iterable of Tensor or of dict
    lr : float
        Learning rate (>= 0).
    momentum, dampening, weight_decay : float
        All >= 0.
    nesterov : bool
        Needs ``momentum > 0`` and ``dampening == 0``.
    """

    def __init__(self, params, lr, momentum=0.0, dampening=0.0, nesterov=False,
                 weight_decay=0.0):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      nesterov=nesterov, weight_decay=weight_decay))

    _state_arrays = frozenset({"momentum_buffer"})

    def _validate(self, group):
        for k in ("lr", "momentum", "dampening", "weight_decay"):
            _check_range("SGD", k, group[k], 0.0)
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(f"SGD: nesterov=True needs momentum > 0 and dampening == 0, got "
                             f"momentum={group['momentum']!r}, dampening={group['dampening']!r}")

    def _kernel(self, p, g, state, group):
        t = p.dtype.type
        mom = group["momentum"]
        buf = state.get("momentum_buffer")
        first = buf is None
        if mom != 0 and first:
            buf = state["momentum_buffer"] = backend.get_array_module(p).empty_like(p)
        elif mom == 0:
            buf = _empty(backend.get_array_module(p), p.dtype)
        return _kernels_for(p).sgd, (_flat(p), _flat(g), _flat(buf), t(group["lr"]), t(mom),
                                     t(1 - group["dampening"]), t(group["weight_decay"]),
                                     bool(group["nesterov"]), first)


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with optional AMSGrad, as ``torch.optim.Adam``.

    ``weight_decay`` is L2 (added to the gradient), not AdamW's decoupled decay.

    Parameters
    ----------
    params : iterable of Tensor or of dict
    lr : float
        Learning rate (>= 0).
    betas : (float, float)
        Decay rates of the first and second moment averages, each in [0, 1).
    eps : float
        Added to the denominator (> 0: with 0, a coordinate whose gradients are all zero
        gets 0 / 0 = NaN).
    weight_decay : float
        L2 penalty (>= 0).
    amsgrad : bool
        Normalize by the running maximum of the second moment (Reddi et al., 2018).
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay, amsgrad=amsgrad))

    _state_arrays = frozenset({"exp_avg", "exp_avg_sq", "max_exp_avg_sq"})
    _state_required = frozenset({"step", "exp_avg", "exp_avg_sq"})

    def _validate(self, group):
        _validate_adam_like(type(self).__name__, group)

    def _kernel(self, p, g, state, group):
        xp = backend.get_array_module(p)
        if not state:
            state.update(step=0, exp_avg=xp.zeros_like(p), exp_avg_sq=xp.zeros_like(p))
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = xp.zeros_like(p)
        state["step"] = step = state["step"] + 1
        beta1, beta2 = group["betas"]
        bc1 = 1 - beta1 ** step
        bc2 = 1 - beta2 ** step
        amsgrad = bool(group["amsgrad"])
        if amsgrad and state.get("max_exp_avg_sq") is None:   # amsgrad switched on later
            state["max_exp_avg_sq"] = xp.zeros_like(p)
        vmax = state["max_exp_avg_sq"] if amsgrad else _empty(xp, p.dtype)
        t = p.dtype.type
        return _kernels_for(p).adam, (_flat(p), _flat(g), _flat(state["exp_avg"]),
                                      _flat(state["exp_avg_sq"]), _flat(vmax),
                                      t(group["lr"] / bc1), t(1 - beta1), t(1) - t(1 - beta1),
                                      t(beta2), t(1 - beta2), t(group["eps"]), t(bc2 ** 0.5),
                                      t(group["weight_decay"]), amsgrad)


class Adamax(Optimizer):
    """Adamax, Adam's infinity-norm variant (Kingma & Ba, 2015), as ``torch.optim.Adamax``.

    Parameters
    ----------
    params : iterable of Tensor or of dict
    lr : float
        Learning rate (>= 0); PyTorch's default 2e-3.
    betas : (float, float)
        Each in [0, 1).
    eps : float
        Added to ``|g|`` inside the running maximum (> 0).
    weight_decay : float
        L2 penalty (>= 0).
    """

    _state_arrays = frozenset({"exp_avg", "exp_inf"})
    _state_required = frozenset({"step", "exp_avg", "exp_inf"})

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay))

    def _validate(self, group):
        _validate_adam_like("Adamax", group)

    def _kernel(self, p, g, state, group):
        xp = backend.get_array_module(p)
        if not state:
            state.update(step=0, exp_avg=xp.zeros_like(p), exp_inf=xp.zeros_like(p))
        state["step"] = step = state["step"] + 1
        beta1, beta2 = group["betas"]
        t = p.dtype.type
        return _kernels_for(p).adamax, (_flat(p), _flat(g), _flat(state["exp_avg"]),
                                        _flat(state["exp_inf"]),
                                        t(group["lr"] / (1 - beta1 ** step)), t(1 - beta1),
                                        t(1) - t(1 - beta1), t(beta2), t(group["eps"]),
                                        t(group["weight_decay"]))


def _validate_adam_like(name, group):
    _check_range(name, "lr", group["lr"], 0.0)
    _check_range(name, "eps", group["eps"], 0.0, lo_open=True)
    _check_range(name, "weight_decay", group["weight_decay"], 0.0)
    betas = group["betas"]
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"{name}: betas must be a pair (beta1, beta2), got {betas!r}")
    for i, b in enumerate(betas):
        _check_range(name, f"betas[{i}]", b, 0.0, 1.0)


class RMSprop(Optimizer):
    """RMSprop (Hinton, 2012) with optional momentum and centering, as ``torch.optim.RMSprop``.

    Parameters
    ----------
    params : iterable of Tensor or of dict
    lr : float
        Learning rate (>= 0).
    alpha : float
        Smoothing constant of the squared-gradient average, in [0, 1].
    eps : float
        Added to the denominator (> 0).
    weight_decay, momentum : float
        Both >= 0.
    centered : bool
        Normalize by an estimate of the gradient's variance instead of its second moment.
    """

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered))

    _state_arrays = frozenset({"square_avg", "momentum_buffer", "grad_avg"})
    _state_required = frozenset({"step", "square_avg"})

    def _validate(self, group):
        _check_range("RMSprop", "eps", group["eps"], 0.0, lo_open=True)
        for k in ("lr", "weight_decay", "momentum"):
            _check_range("RMSprop", k, group[k], 0.0)
        _check_range("RMSprop", "alpha", group["alpha"], 0.0, 1.0, hi_open=False)

    def _kernel(self, p, g, state, group):
        xp = backend.get_array_module(p)
        if not state:
            state.update(step=0, square_avg=xp.zeros_like(p))
        for key, on in (("momentum_buffer", group["momentum"] > 0),
                        ("grad_avg", group["centered"])):
            if on and state.get(key) is None:
                state[key] = xp.zeros_like(p)
        state["step"] += 1
        empty = _empty(xp, p.dtype)
        gavg = state["grad_avg"] if group["centered"] else empty
        buf = state["momentum_buffer"] if group["momentum"] > 0 else empty
        t = p.dtype.type
        alpha = group["alpha"]
        return _kernels_for(p).rmsprop, (_flat(p), _flat(g), _flat(state["square_avg"]),
                                         _flat(gavg), _flat(buf), t(group["lr"]), t(alpha),
                                         t(1 - alpha), t(group["eps"]),
                                         t(group["weight_decay"]), t(group["momentum"]),
                                         bool(group["centered"]))


# -------------------------------------------------------------------- gradient clipping
def _as_params(params, owner):
    params = [params] if isinstance(params, Tensor) else list(params)
    for i, p in enumerate(params):
        if not isinstance(p, Tensor):
            raise TypeError(f"{owner}: parameter {i} must be an autodiff Tensor, got "
                            f"{type(p).__name__}")
    return params


def _writable_grad(p):
    g = p.grad
    if not getattr(g.flags, "writeable", True):   # e.g. a broadcast view set by hand
        p.grad = g = g.copy()
    return g


def clip_grad_norm_(params, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale gradients in place so that their joint norm is at most ``max_norm``.

    As ``torch.nn.utils.clip_grad_norm_``: the total norm is the ``norm_type``-norm
    of the per-parameter gradient norms; gradients are multiplied by
    ``max_norm / (total + 1e-6)`` when that is below 1.

    Parameters
    ----------
    params : Tensor or iterable of Tensor
        Parameters whose ``grad`` is clipped (``None`` grads are skipped).
    max_norm : float
        Largest allowed total norm (>= 0).
    norm_type : float
        Order of the norm (> 0, ``inf`` allowed).
    error_if_nonfinite : bool
        Raise instead of clipping when the total norm is nan or inf.

    Returns
    -------
    float
        The total norm of the gradients before clipping.
    """
    params = _as_params(params, "clip_grad_norm_")
    _check_range("clip_grad_norm_", "max_norm", max_norm, 0.0, finite=False)
    norm_type = float(norm_type)
    if not norm_type > 0:
        raise ValueError(f"clip_grad_norm_: norm_type must be > 0 (or inf), got {norm_type!r}")
    grads = [p for p in params if p.grad is not None]
    if not grads:
        return 0.0
    xp = backend.get_array_module(grads[0].grad)
    norms = xp.stack([xp.linalg.norm(p.grad.reshape(-1), ord=norm_type).astype(np.float64)
                      for p in grads])
    total = float(xp.linalg.norm(norms, ord=norm_type))
    if not math.isfinite(total):
        if error_if_nonfinite:
            raise RuntimeError(f"clip_grad_norm_: the total gradient norm is {total}; set "
                               f"error_if_nonfinite=False to clip anyway")
    coef = max_norm / (total + 1e-6)
    if coef < 1:
        for p in grads:
            g = _writable_grad(p)
            g *= g.dtype.type(coef)
    return total


def clip_grad_value_(params, clip_value):
    """Clip every gradient element to ``[-clip_value, clip_value]`` in place.

    Parameters
    ----------
    params : Tensor or iterable of Tensor
    clip_value : float
        Non-negative bound.
    """
    params = _as_params(params, "clip_grad_value_")
    _check_range("clip_grad_value_", "clip_value", clip_value, 0.0, finite=False)
    for p in params:
        if p.grad is not None:
            g = _writable_grad(p)
            xp = backend.get_array_module(g)
            xp.clip(g, -clip_value, clip_value, out=g)
