"""Fused optimizer updates as Numba CPU kernels (``numba.njit(cache=True)``).

Each kernel makes one pass over a flat parameter: it reads the gradient, updates
the optimizer state and the parameter **in place**, and allocates nothing. The
NumPy equivalent of one Adam step is about ten array expressions, each a full
pass over memory with a temporary; fusing them is what makes the kernel faster
(see ``bench/bench_optim.py``).

All arrays are 1-D and contiguous (:mod:`zsarray.optim.optimizers` passes
``reshape(-1)`` views) and share the parameter's dtype (float32 or float64).
Scalars are cast to that dtype by the caller, so float32 parameters are updated in
float32 arithmetic, as PyTorch does. Boolean flags are loop-invariant, so LLVM
unswitches them out of the loops.

``error_model="numpy"`` matters for speed as much as for semantics: under Numba's
default Python error model every float division is guarded by a zero test that
raises ``ZeroDivisionError``, and that exit keeps LLVM from vectorizing the loop
(about 7x slower here). With NumPy's model ``x / 0`` gives ``inf``/``nan`` exactly
as in NumPy and PyTorch, and the loops compile to SIMD ``sqrt``/``div``.

The formulas are PyTorch's single-tensor ones, operation for operation
(``torch.optim.{sgd,adam,adamax,rmsprop}._single_tensor_*``), including
``lerp`` for the first-moment averages: ``m + w * (g - m)`` when ``w < 0.5``,
else ``g - (g - m) * (1 - w)``. Unused state arrays (e.g. the AMSGrad maximum
when ``amsgrad`` is off) are passed as empty arrays and never touched.
"""
import math

import autodiff._jitcache  # noqa: F401,I001  (Numba's cache keyed by the whole package)
import numba

__all__ = ["sgd", "adam", "adamax", "rmsprop"]


@numba.njit(cache=True, error_model="numpy")
def _lerp(start, end, w, one_minus_w):
    if w < 0.5:
        return start + w * (end - start)
    return end - (end - start) * one_minus_w


@numba.njit(cache=True, error_model="numpy")
def sgd(p, g, buf, lr, momentum, one_minus_dampening, weight_decay, nesterov, first):
    """SGD step: ``d = g + wd p``; ``buf = d`` (first) or ``mu buf + (1 - damp) d``;
    ``p -= lr * (d + mu buf if nesterov else buf)``. ``buf`` is ignored when ``mu == 0``.

    Shapes: ``p, g, buf`` are ``[n]`` (``buf`` may be ``[0]`` when ``momentum == 0``).
    """
    use_wd = weight_decay != 0
    use_mom = momentum != 0
    for i in range(p.shape[0]):
        d = g[i]
        if use_wd:
            d = d + weight_decay * p[i]
        if use_mom:
            if first:
                b = d
            else:
                b = buf[i] * momentum + one_minus_dampening * d
            buf[i] = b
            if nesterov:
                d = d + momentum * b
            else:
                d = b
        p[i] = p[i] - lr * d


@numba.njit(cache=True, error_model="numpy")
def adam(p, g, m, v, vmax, step_size, beta1_w, one_minus_beta1_w, beta2, one_minus_beta2,
         eps, bc2_sqrt, weight_decay, amsgrad):
    """Adam step (L2 weight decay as PyTorch's ``Adam``, not AdamW).

    ``m = lerp(m, g, 1 - beta1)``, ``v = beta2 v + (1 - beta2) g^2``,
    ``p -= step_size * m / (sqrt(max(vmax, v)) / bc2_sqrt + eps)`` with
    ``step_size = lr / (1 - beta1^t)`` and ``bc2_sqrt = sqrt(1 - beta2^t)``.

    Shapes: ``p, g, m, v`` are ``[n]``; ``vmax`` is ``[n]`` with ``amsgrad`` else ``[0]``.
    """
    use_wd = weight_decay != 0
    for i in range(p.shape[0]):
        gi = g[i]
        if use_wd:
            gi = gi + weight_decay * p[i]
        mi = _lerp(m[i], gi, beta1_w, one_minus_beta1_w)
        m[i] = mi
        vi = v[i] * beta2 + one_minus_beta2 * gi * gi
        v[i] = vi
        if amsgrad:
            if vmax[i] > vi:
                vi = vmax[i]
            vmax[i] = vi
        denom = math.sqrt(vi) / bc2_sqrt + eps
        p[i] = p[i] - step_size * mi / denom


@numba.njit(cache=True, error_model="numpy")
def adamax(p, g, m, u, clr, beta1_w, one_minus_beta1_w, beta2, eps, weight_decay):
    """Adamax step: ``m = lerp(m, g, 1 - beta1)``, ``u = max(beta2 u, |g| + eps)``,
    ``p -= clr * m / u`` with ``clr = lr / (1 - beta1^t)``.

    Shapes: ``p, g, m, u`` are ``[n]``.
    """
    use_wd = weight_decay != 0
    for i in range(p.shape[0]):
        gi = g[i]
        if use_wd:
            gi = gi + weight_decay * p[i]
        mi = _lerp(m[i], gi, beta1_w, one_minus_beta1_w)
        m[i] = mi
        ui = u[i] * beta2
        a = abs(gi) + eps
        if a > ui:
            ui = a
        u[i] = ui
        p[i] = p[i] - clr * mi / ui


@numba.njit(cache=True, error_model="numpy")
def rmsprop(p, g, sq, gavg, buf, lr, alpha, one_minus_alpha, eps, weight_decay, momentum,
            centered):
    """RMSprop step: ``sq = alpha sq + (1 - alpha) g^2``; ``avg = sqrt(sq - gavg^2) + eps``
    (centered, with ``gavg = lerp(gavg, g, 1 - alpha)``) or ``sqrt(sq) + eps``; then
    ``buf = mu buf + g / avg; p -= lr buf`` (momentum) or ``p -= lr g / avg``.

    Shapes: ``p, g, sq`` are ``[n]``; ``gavg`` is ``[n]`` when centered else ``[0]``;
    ``buf`` is ``[n]`` when ``momentum > 0`` else ``[0]``.
    """
    use_wd = weight_decay != 0
    use_mom = momentum > 0
    for i in range(p.shape[0]):
        gi = g[i]
        if use_wd:
            gi = gi + weight_decay * p[i]
        s = sq[i] * alpha + one_minus_alpha * gi * gi
        sq[i] = s
        if centered:
            ga = _lerp(gavg[i], gi, one_minus_alpha, alpha)
            gavg[i] = ga
            avg = math.sqrt(s - ga * ga) + eps
        else:
            avg = math.sqrt(s) + eps
        if use_mom:
            b = buf[i] * momentum + gi / avg
            buf[i] = b
            p[i] = p[i] - lr * b
        else:
            p[i] = p[i] - lr * gi / avg
