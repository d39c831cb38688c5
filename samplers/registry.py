"""Names of kernels and warmup strategies, resolved lazily.

A kernel is one module plus one line here (or one :func:`register_kernel` call from
outside the package); likewise a warmup strategy. :func:`samplers.sample` looks names
up in :data:`KERNELS` and :data:`ADAPTATIONS`, and also accepts the classes (or a
strategy object) themselves.

What :func:`samplers.sample` needs from a kernel class (see ``docs`` and
``tests/samplers/test_registry.py`` for a kernel written outside the package):

- ``Kernel(logdensity, <step size name>=..., inverse_mass=..., grad_fn=..., compile=...,
  **options)``;
- ``init(position [C, D]) -> state`` (a NamedTuple with ``position`` and ``logdensity``);
- ``params(position, **overrides) -> KernelParams`` and
  ``step(state, rng, params) -> (state, info)``, the info having ``acceptance_rate``,
  ``is_divergent``, ``energy`` and ``n_grad_evals`` (``[C]`` each);
- ``trial(state, rng, params) -> (state, info)``: the cheapest move whose acceptance the
  step-size heuristic reads (one integrator step);
- class attributes ``target_accept`` (default acceptance target), ``adaptation``
  (default strategy name), ``step_size_name`` (``"step_size"``, RWMH ``"scale"``),
  ``sample_defaults`` (constructor defaults under :func:`samplers.sample`) and
  ``extra_params`` (the ``KernelParams`` fields beyond step size and mass it reads);
  optionally ``needs_grad = False`` when it never uses the gradient.
"""
import importlib
from collections.abc import Mapping

__all__ = ["KERNELS", "ADAPTATIONS", "register_kernel", "register_adaptation",
           "get_kernel", "get_adaptation"]


class _Registry(Mapping):
    """Name -> object, where the object may be given as ``"module:attribute"``."""

    def __init__(self, what, entries):
        self.what = what
        self._entries = dict(entries)

    def __getitem__(self, name):
        obj = self._entries[name]
        if isinstance(obj, str):
            mod, attr = obj.split(":")
            obj = self._entries[name] = getattr(importlib.import_module(mod), attr)
        return obj

    def __contains__(self, name):
        return name in self._entries

    def __iter__(self):
        return iter(self._entries)

    def __len__(self):
        return len(self._entries)

    def __repr__(self):
        return f"{self.what}({sorted(self._entries)})"

    def lookup(self, name, unknown, valid, alternative):
        """The entry ``name`` (a class is returned as it is), else a ValueError
        ``"<unknown> <name>; <valid>: [...] <alternative>"``."""
        if isinstance(name, type):
            return name
        if not isinstance(name, str) or name not in self._entries:
            raise ValueError(f"{unknown} {name!r}; {valid}: {sorted(self._entries)} "
                             f"{alternative}")
        return self[name]

    def add(self, name, obj, replace):
        if not isinstance(name, str) or not name:
            raise TypeError(f"name: expected a non-empty str, got {name!r}")
        if name in self._entries and not replace:
            raise ValueError(f"{self.what}: {name!r} is already registered (pass "
                             f"replace=True to replace it)")
        self._entries[name] = obj


#: Kernel names accepted by :func:`samplers.sample`.
KERNELS = _Registry("KERNELS", {
    "nuts": "samplers.nuts:NUTS",
    "hmc": "samplers.hmc:HMC",
    "mala": "samplers.mala:MALA",
    "rwmh": "samplers.rwmh:RWMH",
    "ghmc": "samplers.ghmc:GHMC",
})

#: Warmup strategy names accepted by ``samplers.sample(adaptation=...)``.
ADAPTATIONS = _Registry("ADAPTATIONS", {
    "stan": "samplers.strategies.stan:StanAdaptation",
    "chees": "samplers.strategies.chees:ChEESAdaptation",
    "meads": "samplers.strategies.meads:MEADSAdaptation",
    "fisher": "samplers.strategies.fisher:FisherAdaptation",
    "none": "samplers.strategies:NoAdaptation",
})


def register_kernel(name, kernel, replace=False):
    """Make ``samplers.sample(kernel=name)`` build ``kernel`` (a class, see the module
    docstring for what it needs)."""
    if not (isinstance(kernel, type) and hasattr(kernel, "init") and hasattr(kernel, "step")):
        raise TypeError(f"kernel: expected a kernel class with init and step, got "
                        f"{kernel!r}")
    KERNELS.add(name, kernel, replace)


def register_adaptation(name, adaptation, replace=False):
    """Make ``samplers.sample(adaptation=name)`` use ``adaptation`` (a strategy class,
    built with ``target_accept=`` and ``dense_mass=``)."""
    if not (isinstance(adaptation, type) and all(hasattr(adaptation, m)
                                                 for m in ("init", "update", "final"))):
        raise TypeError(f"adaptation: expected a class with init, update and final, got "
                        f"{adaptation!r}")
    ADAPTATIONS.add(name, adaptation, replace)


def get_kernel(kernel):
    """The kernel class named ``kernel`` (or ``kernel`` itself when it is a class)."""
    return KERNELS.lookup(kernel, "kernel: unknown kernel", "valid kernels",
                          "(or a kernel class)")


def get_adaptation(adaptation):
    """The strategy class named ``adaptation`` (or ``adaptation`` itself when it is a
    class)."""
    return ADAPTATIONS.lookup(adaptation, "adaptation: unknown strategy", "valid",
                              "(or an object with init, update and final)")
