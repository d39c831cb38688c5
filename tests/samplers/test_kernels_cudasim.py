"""CUDA leapfrog kernels under Numba's CUDA simulator, against the NumPy reference.

``NUMBA_ENABLE_CUDASIM=1`` must be set before Numba is imported, so the
kernels run in a subprocess with that variable in its environment. The
simulator accepts host (NumPy) arrays and runs each thread as a Python
thread, so the sizes are kept small.
"""

import textwrap

import pytest

from tests.cudasim import SKIP_CODE, run_under_cudasim

__all__ = []

  # the script's "simulator unavailable" exit status

SCRIPT = textwrap.dedent(
    """
    import sys
    try:
        from numba import cuda
        assert cuda.simulator_is_available if hasattr(cuda, "simulator_is_available") else True
    except Exception as exc:
        print(f"numba.cuda simulator not importable: {exc!r}")
        sys.exit(SKIP_CODE)
    import numpy as np
    from samplers.kernels import cuda as kc, reference as ref

    rtol = {np.float64: 1e-12, np.float32: 1e-5}
    rng = np.random.default_rng(0)
    n_checked = 0
    for dtype in (np.float64, np.float32):
        for dense in (False, True):
            for c, d in ((1, 1), (5, 3), (3, 7)):
                q, p, g = (rng.standard_normal((c, d)).astype(dtype) for _ in range(3))
                if dense:  # not symmetric on purpose: tests the M^{-1} p orientation
                    inv_mass = (np.eye(d) + 0.3 * rng.standard_normal((d, d))).astype(dtype)
                else:
                    inv_mass = rng.uniform(0.2, 3.0, d).astype(dtype)
                eps = rng.uniform(-0.3, 0.3, c).astype(dtype)
                eps[::2] = 0.0
                tol = dict(rtol=rtol[dtype], atol=rtol[dtype] * 10)

                q0, q_ref, p_ref = q.copy(), q.copy(), p.copy()
                kc.kick_drift(q, p, g, inv_mass, eps, 0.6, 1.3)
                ref.kick_drift(q_ref, p_ref, g, inv_mass, eps, 0.6, 1.3)
                np.testing.assert_allclose(p, p_ref, **tol)
                np.testing.assert_allclose(q, q_ref, **tol)
                assert q.dtype == dtype and p.dtype == dtype
                assert np.array_equal(np.any(q != q0, axis=1), eps != 0)

                kc.kick(p, g, eps, 0.5)
                ref.kick(p_ref, g, eps, 0.5)
                np.testing.assert_allclose(p, p_ref, **tol)

                ke = kc.kinetic_energy(p, inv_mass)
                assert ke.shape == (c,) and ke.dtype == dtype
                np.testing.assert_allclose(ke, ref.kinetic_energy(p, inv_mass), **tol)
                n_checked += 1
    print(f"CUDASIM OK {n_checked}")
    """
).replace("SKIP_CODE", str(SKIP_CODE))


@pytest.mark.cudasim
def test_cuda_kernels_match_reference_under_simulator():
    run_under_cudasim(SCRIPT, "CUDASIM OK 12")
