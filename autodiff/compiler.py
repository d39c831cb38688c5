"""``autodiff.compile``: record a function once per input shape and run it as compiled code.

Recording is :func:`autodiff.program.record` in *transparent* mode: primitives and
their VJP rules are followed down to NumPy-level operations, so that the program (the
forward pass and the tape's backward pass, cotangent fix-ups included) can be lowered
to the Numba machine of :mod:`autodiff.lower`. A call then costs one machine run: no
Python per operation, no temporaries allocated, the workspace reused across calls.

The contract is :func:`autodiff.trace`'s (shape-static, pure in its inputs; the first
calls are verified against the tape) with one difference: arrays the function closes
over are copied into the compiled program when it is built, as ``jax.jit`` embeds
constants, so changing them in place afterwards is not seen (Tensors used with the
input, such as parameters, are read at every call). Values are equal to the tape's up to
rounding (the machine sums in a different order than NumPy's pairwise reductions).

What cannot be lowered falls back, with a :class:`CompileWarning`:

* an operation without a lowering rule (a user primitive whose function calls SciPy or
  a Numba kernel, say) runs as a Python call between compiled segments;
* a program whose shapes depend on the values (boolean masks as indices,
  ``np.nonzero``) or that draws random numbers from traced arguments is replayed
  (:func:`autodiff.trace`) instead of compiled.

Random draws whose arguments are not traced (the reparameterization noise of a
variational net) are made before the machine runs, in program order, from the same
generator: a compiled training step consumes random numbers as the tape does.
"""
import warnings

import numpy as np

from . import backend
from .lower import CompileWarning, NotLowerable, lower
from .lower.cpu import _Check
from .program import record
from .trace import Traced, TracedStep

#: Tests under Numba's CUDA simulator set this to run NumPy inputs on the GPU lowering.
_GPU_FOR_NUMPY = False

__all__ = ["compile", "Compiled", "CompiledStep", "CompileWarning"]


class _Lowered:
    """What compiled functions and steps share: lowering each recording, and a failed
    check in the machine handed to the tape (which raises the proper error)."""

    _atomic = False
    _per_chain = False           # set while recording a per-chain (GPU) program

    def _entry(self, b, outs):
        entry = super()._entry(b, outs)
        why = b.dynamic and f"{b.dynamic} makes a shape depend on the values"
        if not why and b.unsafe is None:
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", CompileWarning)
                    gpu = self._per_chain
                    entry.exe = (lower(entry.value, gpu=gpu), lower(entry.vg, gpu=gpu))
                for w in caught[:1]:
                    if self.warn:
                        warnings.warn(f"compile({self._name()}): {w.message}", CompileWarning,
                                      stacklevel=5)
            except NotLowerable as err:
                why = str(err)
        if why and self.warn:
            warnings.warn(f"compile({self._name()}): {why}; the function is replayed "
                          f"(autodiff.trace) instead of compiled", CompileWarning,
                          stacklevel=5)
        return entry

    def _name(self):
        return getattr(self.fun, "__name__", "f")

    def _gpu(self, x):
        """Whether ``x`` (the differentiated input) runs on the GPU machine: CuPy arrays
        with a leading chain axis (functions of other inputs and steps do not)."""
        return (backend.is_cupy(x) or _GPU_FOR_NUMPY) and getattr(x, "ndim", 0) >= 1 \
            and type(self) is Compiled

    def _record(self, xs):
        """On the GPU: the program of one chain (``x[:1]``), run by one thread per chain."""
        self._per_chain = self._gpu(xs[0])
        if not self._per_chain:
            return super()._record(xs)
        b, value, grads = record(self.fun, (xs[0][:1], *xs[1:]), wrt=(0,), atomic=False)
        return b, [value, *grads]

    def _first(self, outs, xs, want_grad, entry=None):
        if self._per_chain:
            return self._deliver(self._plain(xs, True), want_grad)   # the whole batch
        if entry is not None and self._machine_ok(entry):
            # the machine's result from the first call on: its rounding differs from the
            # tape's by ulps, and a run that restarts (a resumed checkpoint, a new
            # process) must see the same numbers at every call as one that went on
            return self._replay(entry, xs, want_grad)
        return super()._first(outs, xs, want_grad, entry)

    def _verified_result(self, entry, plain, replay):
        # the same reason: what every later call returns, not the tape's rounding
        if replay is not None and not self._per_chain and self._machine_ok(entry):
            return replay
        return plain

    @staticmethod
    def _machine_ok(entry):
        """A compiled entry whose calls can be repeated: no random draws inside (the
        recording's draws are what the first call must return), nothing unsafe."""
        return entry.exe is not None and entry.broken is None and not entry.rngs

    def _replay(self, entry, x, want_grad):
        try:
            return super()._replay(entry, x, want_grad)
        except _Check:               # a check failed: the tape raises the proper error
            return self._deliver(self._plain(x, True), want_grad)


class Compiled(_Lowered, Traced):
    """``f`` compiled per input shape and dtype; see :func:`compile`."""

    def __repr__(self):
        return f"compile({self._name()!r})"

    @property
    def compiled(self):
        """True when every recorded shape runs compiled (not replayed or on the tape)."""
        return bool(self._programs) and all(e.exe is not None and e.broken is None
                                            for e in self._programs.values())


class CompiledStep(_Lowered, TracedStep):
    """A training step compiled with respect to parameter Tensors; see :func:`compile`.

    After a compiled :meth:`backward`, each parameter's ``.data`` is a view of its place
    in the machine's workspace (same values, shape and dtype), so the next step reads it
    without a copy; an optimizer updating ``.data`` in place writes there directly. A
    parameter whose ``.data`` was rebound since is copied in as before.

    The gradients are handed to ``.grad`` the same way, as writable views of the places
    the machine computed them in (no copy of the gradients; see
    :meth:`autodiff.lower.Executable.hand_out`). They never change afterwards: a step
    taken while an array still sees an earlier step's gradients (a ``.grad`` kept, or
    ``zero_grad(set_to_none=False)``) runs in a fresh workspace; the usual loop
    (``zero_grad()``, ``backward``, ``step``) drops them first and copies nothing. A
    kept gradient keeps its whole workspace alive (for the VAE step of
    ``bench/bench_vae.py``: 15 MB per step kept, against 5 MB of gradients): to keep
    gradients for long, keep copies.
    """

    def _handed_out(self, g):
        return any(e.exe is not None and getattr(e.exe[1], "handed", None)
                   and e.exe[1].handed_out(g) for e in self._programs.values())

    def __repr__(self):
        return f"compile({self._name()!r}, params=[{len(self.params)} Tensors])"

    def _replay(self, entry, x, want_grad):
        if want_grad and entry.exe is not None and getattr(entry.exe[1], "handed", 0) is None:
            exe = entry.exe[1]
            exe.hand_out(range(1, len(exe.out_views)))      # the gradients
        out = super()._replay(entry, x, want_grad)
        if want_grad and entry.exe is not None and entry.broken is None:
            exe = entry.exe[1]
            for k, p in enumerate(self.params, start=len(x)):
                view = exe.resident(k)
                d = p.data
                if (view is not None and d is not view and type(d) is np.ndarray
                        and d.dtype == view.dtype and d.shape == view.shape):
                    p.data = view                  # holds d's values: the input's copy
        return out


def compile(fun, params=None, max_shapes=8, warn=True):
    """Compile ``fun`` per input shape and dtype (see the module docstring).

    Parameters
    ----------
    fun : callable
        ``Tensor -> Tensor`` built from autodiff ops (and NumPy functions on their
        data), shape-static and pure in its inputs.
    params : list of Tensor, optional
        Compile a training step instead: ``step.backward(*inputs)`` fills these
        parameters' ``.grad`` (as :func:`autodiff.trace` with ``params``).
    max_shapes : int
        How many input shapes/dtypes to keep programs for.
    warn : bool
        Warn (:class:`CompileWarning`, :class:`~autodiff.TraceWarning`) when part of the
        function cannot be compiled or replayed; libraries compiling on the user's
        behalf pass False.

    Returns
    -------
    Compiled or CompiledStep
        ``compiled(x, *rest)`` gives the value, ``compiled.value_and_grad(x, *rest)``
        the value and the gradient of its sum with respect to ``x`` (the other inputs
        are new at every call and not differentiated: a minibatch, a temperature).

    Example
    -------
    >>> ld = compile(lambda w: ad.sum(y * (w @ XT) - ad.softplus(w @ XT), axis=1))  # doctest: +SKIP
    >>> lp, g = ld.value_and_grad(np.zeros((4, 31)))                               # doctest: +SKIP
    """
    if params is not None:
        return CompiledStep(fun, params, max_shapes=max_shapes, warn=warn)
    return Compiled(fun, max_shapes=max_shapes, warn=warn)
