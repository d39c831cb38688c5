"""``Module``: a container of parameters found by attribute, with state dicts and devices.

A parameter is any autodiff ``Tensor`` with ``requires_grad=True`` reachable from
a module's attributes, directly or through sub-modules and (nested) lists,
tuples and dicts. Nothing needs registering and there is no metaclass: walking
``vars(self)`` in insertion order gives a deterministic order and dotted names
(``"layers.0.weight"``). A Tensor reachable twice (shared weights) is listed once,
under its first name; cycles between modules are followed once.

*Buffers* are state that is not trained (BatchNorm's running statistics): Tensors
with ``requires_grad=False`` held in the attributes a class names in
``_buffer_names``. They are in :meth:`Module.state_dict` (so saved and loaded) and move
with :meth:`Module.to`; being Tensors, a traced or compiled function reads their
current ``.data`` at every call.

>>> class Affine(Module):                                   # doctest: +SKIP
...     def __init__(self, rng):
...         self.w = ad.tensor(rng.standard_normal((3, 2)), requires_grad=True)
...     def forward(self, x):
...         return x @ self.w
"""
import numpy as np

from autodiff import backend
from autodiff.core import Tensor

__all__ = ["Module"]

_DEVICES = ("cpu", "gpu")


def _walk(value, path, seen, out_params, out_modules):
    """Collect ``(name, Tensor)`` and ``(name, Module)`` pairs reachable from ``value``."""
    if isinstance(value, Tensor):
        if value.requires_grad and id(value) not in seen:
            seen.add(id(value))
            out_params.append((path, value))
    elif isinstance(value, Module):
        if id(value) in seen:
            return
        seen.add(id(value))
        out_modules.append((path, value))
        prefix = path + "." if path else ""
        for name, v in vars(value).items():
            _walk(v, prefix + name, seen, out_params, out_modules)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _walk(v, f"{path}.{i}", seen, out_params, out_modules)
    elif isinstance(value, dict):
        for k, v in value.items():
            _walk(v, f"{path}.{k}", seen, out_params, out_modules)


def _npz(path):
    path = str(path)
    return path if path.endswith(".npz") else path + ".npz"


def _copy_into(param, value):
    """Copy ``value`` into ``param.data`` in place (cast to its dtype, on its device)."""
    data = param.data
    if backend.is_cupy(data):
        value = backend.get_array_module(data).asarray(value, dtype=data.dtype)
    else:
        value = np.asarray(backend.asnumpy(value), dtype=data.dtype)
    if getattr(data.flags, "writeable", True):
        data[...] = value
    else:
        param.data = value.copy()


class Module:
    """Base class of layers and models: subclass it and define :meth:`forward`.

    Attributes
    ----------
    training : bool
        Set by :meth:`train` / :meth:`eval` on the module and all its sub-modules
        (for layers that behave differently in training, e.g. dropout).
    """

    training = True   # a class default, so subclasses need not call super().__init__()
    #: Attributes holding buffers (Tensors that are state but not parameters).
    _buffer_names = ()

    def forward(self, *args, **kwargs):
        """The computation; ``module(x)`` calls it."""
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def extra_repr(self):
        """Settings shown by ``repr`` (override in layers)."""
        return ""

    def __repr__(self):
        children = _children(self)
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not children:
            return head + ")"
        lines = [f"  ({n}): " + repr(m).replace("\n", "\n  ") for n, m in children]
        return head + "\n" + "\n".join(lines) + "\n)"

    # ------------------------------------------------------------- discovery
    def _collect(self):
        params, modules = [], []
        _walk(self, "", set(), params, modules)
        return params, modules

    def named_parameters(self):
        """``[(name, Tensor)]`` of every parameter, in attribute order, without duplicates."""
        return self._collect()[0]

    def parameters(self):
        """``[Tensor]`` of every parameter (the order of :meth:`named_parameters`)."""
        return [p for _, p in self._collect()[0]]

    def named_modules(self):
        """``[(name, Module)]``: this module (name ``""``) and every sub-module."""
        return self._collect()[1]

    def modules(self):
        """``[Module]``: this module and every sub-module."""
        return [m for _, m in self._collect()[1]]

    def named_buffers(self):
        """``[(name, Tensor)]`` of every buffer (``_buffer_names`` of each sub-module)."""
        out = []
        for mname, m in self.named_modules():
            prefix = mname + "." if mname else ""
            for b in type(m)._buffer_names:
                t = getattr(m, b, None)
                if t is not None:
                    out.append((prefix + b, t))
        return out

    def buffers(self):
        """``[Tensor]`` of every buffer (the order of :meth:`named_buffers`)."""
        return [t for _, t in self.named_buffers()]

    def zero_grad(self):
        """Set ``grad = None`` on every parameter."""
        for p in self.parameters():
            p.grad = None

    def train(self, mode=True):
        """Set ``training = mode`` on this module and its sub-modules; returns ``self``."""
        for m in self.modules():
            m.training = bool(mode)
        return self

    def eval(self):
        """Shorthand for ``train(False)``; returns ``self``."""
        return self.train(False)

    # ------------------------------------------------------------- state
    def state_dict(self):
        """``{name: array}``: copies of the parameter and buffer arrays, on their device."""
        return {name: p.data.copy() for name, p in self._state_tensors().items()}

    def _state_tensors(self):
        own = dict(self.named_parameters())
        own.update(self.named_buffers())
        return own

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays into the parameters and buffers in place (cast to each parameter's dtype).

        Parameters
        ----------
        state_dict : mapping of str to array
            As returned by :meth:`state_dict` (NumPy or CuPy arrays).
        strict : bool
            Require the keys to match exactly; with ``strict=False`` missing and
            unexpected keys are ignored (shapes must still match).

        Returns
        -------
        (list of str, list of str)
            The missing and unexpected keys.

        Raises
        ------
        ValueError
            On missing or unexpected keys (strict) and on shape mismatches; nothing
            is copied when it raises.
        """
        own = self._state_tensors()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        name = type(self).__name__
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append(f"missing keys {missing}")
            if unexpected:
                parts.append(f"unexpected keys {unexpected}")
            raise ValueError(f"{name}.load_state_dict: " + "; ".join(parts)
                             + f" (the module's keys are {list(own)})")
        for k, p in own.items():
            if k in state_dict:
                shape = tuple(np.shape(state_dict[k]))
                if shape != p.shape:
                    raise ValueError(f"{name}.load_state_dict: '{k}' has shape {shape} in the "
                                     f"state dict but {p.shape} in the module")
        for k, p in own.items():
            if k in state_dict:
                _copy_into(p, state_dict[k])
        return missing, unexpected

    def save(self, path):
        """Write :meth:`state_dict` to an ``.npz`` file (arrays copied to the host).

        ``".npz"`` is appended to ``path`` when missing (as ``numpy.savez`` does);
        returns the path written.
        """
        path = _npz(path)
        np.savez(path, **{k: backend.asnumpy(v) for k, v in self.state_dict().items()})
        return path

    def load(self, path, strict=True):
        """Read an ``.npz`` file written by :meth:`save` into the parameters; returns ``self``.

        See :meth:`load_state_dict` for ``strict`` and the errors raised.
        """
        with np.load(_npz(path), allow_pickle=False) as f:
            state = {k: f[k] for k in f.files}
        self.load_state_dict(state, strict=strict)
        return self

    def to(self, device):
        """Move every parameter (and its gradient) and buffer to ``"cpu"`` or ``"gpu"``; returns ``self``.

        The Tensor objects stay the same (their ``data`` is replaced), so references
        held elsewhere follow; make optimizers after moving, or they move their
        state on the next step.

        Raises
        ------
        ValueError
            For a device other than "cpu" or "gpu".
        RuntimeError
            For "gpu" when CuPy sees no CUDA device.
        """
        if device not in _DEVICES:
            raise ValueError(f"{type(self).__name__}.to: device must be 'cpu' or 'gpu', got "
                             f"{device!r}")
        if device == "gpu" and not backend.gpu_available():
            raise RuntimeError(f"{type(self).__name__}.to('gpu'): no CUDA device available "
                               f"(install zsarray[gpu] and check that CuPy sees a GPU)")
        for p in self.parameters():
            p.data = backend.to_device(p.data, device)
            if p.grad is not None:
                p.grad = backend.to_device(p.grad, device)
        for b in self.buffers():
            b.data = backend.to_device(b.data, device)
        return self


def _children(module):
    """``[(name, Module)]`` held directly by ``module`` or in its lists/tuples/dicts."""
    out = []
    for name, v in vars(module).items():
        if isinstance(v, Module):
            out.append((name, v))
        elif isinstance(v, (list, tuple)):
            out += [(f"{name}.{i}", m) for i, m in enumerate(v) if isinstance(m, Module)]
        elif isinstance(v, dict):
            out += [(f"{name}.{k}", m) for k, m in v.items() if isinstance(m, Module)]
    return out
