"""Check that the JAX twins of the posteriordb log densities equal the autodiff versions.

For every posterior, at N_POINTS random unconstrained points (uniform(-2, 2), fixed seed),
the value and ``jax.grad`` of ``bench.posteriordb_jax.build_jax(name)`` (jitted, one point
at a time) must equal the autodiff ``Model.logdensity`` values and the gradient of their sum
(:func:`autodiff.value_and_grad` on the ``[N_POINTS, dim]`` batch) to RTOL, with an absolute
tolerance of RTOL times the largest magnitude in the compared array (guards against
cancellation in values or gradient entries near zero).

Run as a script (prints name, dim and the largest errors, exits 1 on a mismatch)::

    PYTHONPATH=. python bench/check_posteriordb_jax.py

or under pytest (skips without JAX or without ``../shared/posteriordb``)::

    PYTHONPATH=. python -m pytest bench/check_posteriordb_jax.py
"""
import sys
from pathlib import Path

import numpy as np
import pytest

if __package__ in (None, ""):     # run as a script or by pytest: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import autodiff as ad  # noqa: E402
from tests.posteriordb.models import POSTERIORS, build_model, find_posteriordb  # noqa: E402

N_POINTS = 5
SEED = 0
RTOL = 1e-9


def max_rel_error(got, want):
    """Largest ``|got - want| / (|want| + max|want|)``: at most RTOL iff ``np.allclose``
    with ``rtol=RTOL, atol=RTOL * max|want|``."""
    want = np.asarray(want)
    return float(np.max(np.abs(np.asarray(got) - want) / (np.abs(want) + np.max(np.abs(want)))))


def compare(name, root):
    """Errors of the JAX twin of ``name`` against the autodiff model.

    Returns
    -------
    dim : int
    value_error, grad_error : float
        :func:`max_rel_error` of the values [N_POINTS] and the gradients [N_POINTS, dim].
    """
    import jax

    from bench.posteriordb_jax import build_jax

    model = build_model(name, root)
    u = np.random.default_rng(SEED).uniform(-2.0, 2.0, size=(N_POINTS, model.dim))
    with ad.no_grad():
        value = np.asarray(model.logdensity(u).data)
    _, grad = ad.value_and_grad(lambda v: ad.sum(model.logdensity(v)))(u)

    value_and_grad = jax.jit(jax.value_and_grad(build_jax(name, root)))
    jax_value, jax_grad = zip(*(value_and_grad(row) for row in u))
    return (model.dim, max_rel_error(np.array(jax_value), value),
            max_rel_error(np.stack(jax_grad), grad))


def test_jax_twins_match_autodiff():
    pytest.importorskip("jax", reason="the JAX twins need jax (an optional benchmark "
                                      "dependency)")
    root = find_posteriordb()
    if root is None:
        pytest.skip("posteriordb reference data not found: set ZSARRAY_SHARED to the folder "
                    "that holds posteriordb/ (or place it at <repo>/../shared/posteriordb)")
    for name in POSTERIORS:
        _, value_error, grad_error = compare(name, root)
        assert value_error <= RTOL, f"{name}: value error {value_error:.2e}"
        assert grad_error <= RTOL, f"{name}: gradient error {grad_error:.2e}"


def main():
    """Print the table of errors; 1 when a posterior does not match, else 0."""
    root = find_posteriordb()
    if root is None:
        print("posteriordb reference data not found (set ZSARRAY_SHARED)")
        return 1
    print(f"{'posterior':42s} {'dim':>4s} {'value rel err':>14s} {'grad rel err':>13s}")
    failed = False
    for name in POSTERIORS:
        dim, value_error, grad_error = compare(name, root)
        ok = value_error <= RTOL and grad_error <= RTOL
        failed |= not ok
        print(f"{name:42s} {dim:4d} {value_error:14.2e} {grad_error:13.2e}"
              f"{'' if ok else '  MISMATCH'}")
    return int(failed)


if __name__ == "__main__":
    sys.exit(main())
