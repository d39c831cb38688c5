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
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        self._last_lr = list(lrs)

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
        """Restore from :meth:`state_dict`."""
        unknown = set(state_dict) - set(self.state_dict())
        if unknown:
            raise ValueError(f"{type(self).__name__}.load_state_dict: unexpected keys "
                             f"{sorted(unknown)}")
        self.__dict__.update(state_dict)


def _groups(opt):
    return opt.param_groups


class StepLR(LRScheduler):
    """Multiply the lr by ``gamma`` every ``step_size`` epochs.

    Parameters
    ----------
    optimizer : Optimizer
    step_size : int
        Period of the decay (>= 1).
    gamma : float
        Multiplicative factor.
    """

    def __init__(self, optimizer, step_size, gamma=0.1):
        if int(step_size) != step_size or step_size < 1:
            raise ValueError(f"StepLR: step_size must be a positive integer, got {step_size!r}")
        self.step_size, self.gamma = int(step_size), gamma
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
        Multiplicative factor.
    """

    def __init__(self, optimizer, gamma):
        self.gamma = gamma
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
        Minimum learning rate.
    """

    def __init__(self, optimizer, T_max, eta_min=0.0):
        if int(T_max) != T_max or T_max < 1:
            raise ValueError(f"CosineAnnealingLR: T_max must be a positive integer, got "
                             f"{T_max!r}")
        self.T_max, self.eta_min = int(T_max), eta_min
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
        ``epoch -> factor``; one per parameter group when a list.
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
        return [b * f(self.last_epoch) for b, f in zip(self.base_lrs, self.lr_lambdas)]
