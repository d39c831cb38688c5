"""NumPy reference updates, transcribed from PyTorch's single-tensor optimizer code.

Each ``step(p, g, state, **hyper) -> new p`` works on one parameter array in its
own dtype (NumPy 2 keeps float32 with Python-float scalars) and updates ``state``
(a dict) like ``torch.optim`` does. Used by the CPU kernel tests and, in a
subprocess, by the CUDA-simulator tests.
"""
import numpy as np

__all__ = ["STEPS", "CASES", "SHAPES", "lerp", "sgd", "adam", "adamax", "rmsprop", "problem",
           "run_reference", "run_zsarray"]


def lerp(start, end, w):
    """``torch.lerp``: ``start + w (end - start)`` if ``w < 0.5``,
    else ``end - (end - start)(1 - w)``.

    (The second form is exact at ``w = 1``.)
    """
    return start + w * (end - start) if w < 0.5 else end - (end - start) * (1 - w)


def sgd(p, g, state, lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0):
    if weight_decay:
        g = g + weight_decay * p
    if momentum:
        buf = state.get("momentum_buffer")
        buf = g.copy() if buf is None else buf * momentum + (1 - dampening) * g
        state["momentum_buffer"] = buf
        g = g + momentum * buf if nesterov else buf
    return p - lr * g


def adam(p, g, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False):
    b1, b2 = betas
    if not state:
        state.update(step=0, exp_avg=np.zeros_like(p), exp_avg_sq=np.zeros_like(p))
        if amsgrad:
            state["max_exp_avg_sq"] = np.zeros_like(p)
    state["step"] += 1
    t = state["step"]
    if weight_decay:
        g = g + weight_decay * p
    state["exp_avg"] = m = lerp(state["exp_avg"], g, 1 - b1)
    state["exp_avg_sq"] = v = state["exp_avg_sq"] * b2 + (1 - b2) * g * g
    if amsgrad:
        state["max_exp_avg_sq"] = v = np.maximum(state["max_exp_avg_sq"], v)
    denom = np.sqrt(v) / (1 - b2 ** t) ** 0.5 + eps
    return p - (lr / (1 - b1 ** t)) * m / denom


def adamax(p, g, state, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    b1, b2 = betas
    if not state:
        state.update(step=0, exp_avg=np.zeros_like(p), exp_inf=np.zeros_like(p))
    state["step"] += 1
    if weight_decay:
        g = g + weight_decay * p
    state["exp_avg"] = m = lerp(state["exp_avg"], g, 1 - b1)
    state["exp_inf"] = u = np.maximum(state["exp_inf"] * b2, np.abs(g) + eps)
    return p - (lr / (1 - b1 ** state["step"])) * m / u


def rmsprop(p, g, state, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
            centered=False):
    if not state:
        state.update(step=0, square_avg=np.zeros_like(p))
        if momentum > 0:
            state["momentum_buffer"] = np.zeros_like(p)
        if centered:
            state["grad_avg"] = np.zeros_like(p)
    state["step"] += 1
    if weight_decay:
        g = g + weight_decay * p
    state["square_avg"] = sq = state["square_avg"] * alpha + (1 - alpha) * g * g
    if centered:
        state["grad_avg"] = ga = lerp(state["grad_avg"], g, 1 - alpha)
        avg = np.sqrt(sq - ga * ga) + eps
    else:
        avg = np.sqrt(sq) + eps
    if momentum > 0:
        state["momentum_buffer"] = buf = state["momentum_buffer"] * momentum + g / avg
        return p - lr * buf
    return p - lr * g / avg


STEPS = {"SGD": sgd, "Adam": adam, "Adamax": adamax, "RMSprop": rmsprop}

#: (optimizer name, hyperparameters): every variant the step-by-step tests cover.
CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.5, dampening=0.3, weight_decay=0.1)),
    ("Adam", dict()),
    ("Adam", dict(lr=0.01, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("Adam", dict(lr=0.02, betas=(0.3, 0.9), eps=1e-6)),   # lerp weight >= 0.5 branch
    ("Adamax", dict()),
    ("Adamax", dict(lr=0.01, betas=(0.4, 0.99), weight_decay=0.05)),
    ("RMSprop", dict()),
    ("RMSprop", dict(momentum=0.9)),
    ("RMSprop", dict(centered=True)),
    ("RMSprop", dict(lr=0.005, centered=True, momentum=0.5, weight_decay=0.1)),
]

SHAPES = [(3, 4), (5,), ()]


def problem(dtype, seed=0):
    """Initial parameters and a gradient function ``grad(t, i, p)`` that feeds back on ``p``.

    The noise shrinks with ``t`` so second moments decrease (AMSGrad's maximum matters).
    """
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    noise = [[rng.standard_normal(s).astype(dtype) for s in SHAPES] for _ in range(20)]

    def grad(t, i, p):
        return np.asarray(np.cos(p) * 0.5 + noise[t][i] * (2.0 / (1 + t)), dtype=dtype)
    return params, grad


def run_reference(name, hyper, dtype, n_steps):
    """Parameter arrays after each of ``n_steps`` reference steps: ``[step][param]``."""
    params, grad = problem(dtype)
    states = [{} for _ in params]
    out = []
    for t in range(n_steps):
        params = [STEPS[name](p, grad(t, i, p), s, **hyper)
                  for i, (p, s) in enumerate(zip(params, states))]
        assert all(p.dtype == dtype for p in params)
        out.append([p.copy() for p in params])
    return out


def run_zsarray(name, hyper, dtype, n_steps):
    """The same trajectory with ``zsarray.optim`` (whatever kernels it dispatches to)."""
    import autodiff as ad
    from zsarray import optim
    params, grad = problem(dtype)
    tensors = [ad.tensor(p.copy(), requires_grad=True) for p in params]
    opt = getattr(optim, name)(tensors, **hyper)
    out = []
    for t in range(n_steps):
        for i, p in enumerate(tensors):
            p.grad = grad(t, i, p.data)
        opt.step()
        out.append([p.data.copy() for p in tensors])
    return out
