"""Learning-rate schedules with PyTorch's semantics (``torch.optim.lr_scheduler``).

>>> opt = SGD(params, lr=0.1)                               # doctest: +SKIP
>>> sched = StepLR(opt, step_size=30, gamma=0.1)
>>> for epoch in range(100):
...     train_one_epoch(opt)
...     sched.step()

Constructing a schedule records ``initial_lr`` in every parameter group and makes
the initial step (``last_epoch = 0``), which leaves the learning rate unchanged
except for :class:`LambdaLR` (``base_lr * lr_lambda(0)``). Each :meth:`LRScheduler.step`
then advances ``last_epoch`` by one and writes the new rates into
``optimizer.param_groups[i]["lr"]``. The updates are PyTorch's *chainable*
(recursive) forms, so lrs match ``torch.optim.lr_scheduler`` float for float and
another schedule (or the user) may also change ``group["lr"]`` in between.

Every rate a schedule sets must be finite and >= 0: a negative factor (``LambdaLR``), a
negative ``gamma`` or ``eta_min`` is an error naming the schedule, the epoch and the
group, never a silent ascent.
"""
import math

__all__ = ["LRScheduler", "StepLR", "ExponentialLR", "CosineAnnealingLR", "LambdaLR"]


class LRScheduler:
    """Base class: ``step()``, ``get_last_lr()``, ``state_dict()`` / ``load_state_dict()``.

    Subclasses implement ``_compute()``: the new lr of every group at ``last_epoch``.
    """

    def __init__(self, optimizer):
        if not hasattr(optimizer, "param_groups"):
            raise TypeError(f"{type(self).__name__}: expected an optimizer with "
                            f"param_groups, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = 0
        self._set(self._initial())
        self._step_count = 1

    def _initial(self):
        return [group["lr"] for group in self.optimizer.param_groups]

    def _compute(self):
        raise NotImplementedError

    def _set(self, lrs):
        lrs = list(lrs)
        for i, lr in enumerate(lrs):          # check all before changing any group
            try:
                ok = not isinstance(lr, bool) and math.isfinite(float(lr)) and float(lr) >= 0
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise ValueError(f"{type(self).__name__}: the learning rate of parameter group "
                                 f"{i} at epoch {self.last_epoch} would be {lr!r}; a rate must "
                                 f"be finite and >= 0")
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        self._last_lr = lrs

    def step(self):
        """Advance one epoch and set each group's lr."""
        self._step_count += 1
        self.last_epoch += 1
        self._set(self._compute())

    def get_last_lr(self):
        """The learning rates set by the last step, one per parameter group."""
        return list(self._last_lr)

    def state_dict(self):
        """The scheduler's counters and settings (not the optimizer, nor lambdas)."""
        return {k: v for k, v in vars(self).items()
                if k not in ("optimizer", "lr_lambdas")}

    def load_state_dict(self, state_dict):
        """Restore from :meth:`state_dict` (of the same schedule class, with one base lr
        per parameter group)."""
        name = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state_dict, dict):
            raise ValueError(f"{name}: expected a dict from state_dict(), got "
                             f"{type(state_dict).__name__}")
        own = set(self.state_dict())
        unknown, missing = set(state_dict) - own, own - set(state_dict)
        if unknown:
            raise ValueError(f"{name}: unexpected keys {sorted(unknown)}")
        if missing:
            raise ValueError(f"{name}: missing keys {sorted(missing)} (a state dict of "
                             f"another schedule?)")
        n = len(self.optimizer.param_groups)
        for key in ("base_lrs", "_last_lr"):
            if len(state_dict[key]) != n:
                raise ValueError(f"{name}: '{key}' has {len(state_dict[key])} entries, the "
                                 f"optimizer has {n} parameter groups")
            for i, lr in enumerate(state_dict[key]):
                _number(name, f"{key}[{i}]", lr)
        self.__dict__.update(state_dict)


def _groups(opt):
    return opt.param_groups


def _number(owner, name, value, lo=0.0, lo_open=False, integer=False):
    """``value`` as a float (or int) checked finite and ``>= lo`` (``> lo``); a TypeError or
    ValueError naming ``owner`` and ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not (
            hasattr(value, "dtype") and getattr(value, "shape", None) == ()):
        raise TypeError(f"{owner}: {name} must be {'an integer' if integer else 'a number'}, "
                        f"got {type(value).__name__} {value!r}")
    v = float(value)
    ok = math.isfinite(v) and (v > lo if lo_open else v >= lo)
    if integer:
        ok = ok and v == int(v)
    if not ok:
        what = "a positive integer" if integer else f"finite and {'>' if lo_open else '>='} {lo}"
        raise ValueError(f"{owner}: {name} must be {what}, got {value!r}")
    return int(v) if integer else v


class StepLR(LRScheduler):
    """Multiply the lr by ``gamma`` every ``step_size`` epochs.

    Parameters
    ----------
    optimizer : Optimizer
    step_size : int
        Period of the decay (>= 1).
    gamma : float
        Multiplicative factor (finite, >= 0).
    """

    def __init__(self, optimizer, step_size, gamma=0.1):
        self.step_size = _number("StepLR", "step_size", step_size, 1, integer=True)
        self.gamma = _number("StepLR", "gamma", gamma)
        super().__init__(optimizer)

    def _compute(self):
        if self.last_epoch == 0 or self.last_epoch % self.step_size:
            return [g["lr"] for g in _groups(self.optimizer)]
        return [g["lr"] * self.gamma for g in _groups(self.optimizer)]


class ExponentialLR(LRScheduler):
    """Multiply the lr by ``gamma`` every epoch.

    Parameters
    ----------
    optimizer : Optimizer
    gamma : float
        Multiplicative factor (finite, >= 0).
    """

    def __init__(self, optimizer, gamma):
        self.gamma = _number("ExponentialLR", "gamma", gamma)
        super().__init__(optimizer)

    def _compute(self):
        if self.last_epoch == 0:
            return [g["lr"] for g in _groups(self.optimizer)]
        return [g["lr"] * self.gamma for g in _groups(self.optimizer)]


class CosineAnnealingLR(LRScheduler):
    """Cosine annealing from the base lr to ``eta_min`` over ``T_max`` epochs (no restarts).

    ``lr_t = eta_min + (base_lr - eta_min) (1 + cos(pi t / T_max)) / 2`` for
    ``t <= T_max``, continued as a cosine of period ``2 T_max`` afterwards,
    computed with PyTorch's recursive form.

    Parameters
    ----------
    optimizer : Optimizer
    T_max : int
        Half period, in epochs (>= 1).
    eta_min : float
        Minimum learning rate (finite, >= 0).
    """

    def __init__(self, optimizer, T_max, eta_min=0.0):
        self.T_max = _number("CosineAnnealingLR", "T_max", T_max, 1, integer=True)
        self.eta_min = _number("CosineAnnealingLR", "eta_min", eta_min)
        super().__init__(optimizer)

    def _compute(self):
        t, T, e = self.last_epoch, self.T_max, self.eta_min
        groups = _groups(self.optimizer)
        if t == 0:
            return [g["lr"] for g in groups]
        if (t - 1 - T) % (2 * T) == 0:
            return [g["lr"] + (b - e) * (1 - math.cos(math.pi / T)) / 2
                    for b, g in zip(self.base_lrs, groups)]
        return [(1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T))
                * (g["lr"] - e) + e for g in groups]


class LambdaLR(LRScheduler):
    """Set the lr to ``base_lr * lr_lambda(epoch)``.

    Parameters
    ----------
    optimizer : Optimizer
    lr_lambda : callable or list of callable
        ``epoch -> factor``; one per parameter group when a list. A factor that is
        negative or not finite is a ValueError at the epoch it appears.
    """

    def __init__(self, optimizer, lr_lambda):
        n = len(optimizer.param_groups) if hasattr(optimizer, "param_groups") else 0
        if isinstance(lr_lambda, (list, tuple)):
            if len(lr_lambda) != n:
                raise ValueError(f"LambdaLR: expected {n} lr_lambdas (one per parameter "
                                 f"group), got {len(lr_lambda)}")
            self.lr_lambdas = list(lr_lambda)
        else:
            self.lr_lambdas = [lr_lambda] * n
        for f in self.lr_lambdas:
            if not callable(f):
                raise TypeError(f"LambdaLR: lr_lambda must be callable, got {type(f).__name__}")
        super().__init__(optimizer)

    def _initial(self):
        return self._compute()

    def _compute(self):
        lrs = []
        for i, (b, f) in enumerate(zip(self.base_lrs, self.lr_lambdas)):
            factor = f(self.last_epoch)
            if isinstance(factor, bool) or not isinstance(factor, (int, float)) and not (
                    hasattr(factor, "dtype") and getattr(factor, "shape", None) == ()):
                raise ValueError(f"LambdaLR: lr_lambda of parameter group {i} at epoch "
                                 f"{self.last_epoch} returned {factor!r}; the learning rate "
                                 f"of group {i} at epoch {self.last_epoch} would be "
                                 f"{factor!r}: expected a finite number >= 0")
            lrs.append(b * factor)
        return lrs
