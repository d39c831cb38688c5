"""autodiff.compile on a real GPU (CuPy inputs): skipped without one.

The same functions as the simulator test (``test_compile_cudasim.py``), at chain counts
the simulator cannot reach, against the CPU machine; and samplers using the compiled
GPU log density. Run by ``bench/device_check.sh`` when a GPU is lent.
"""
import warnings

import numpy as np
import pytest

import autodiff as ad
from autodiff import backend

pytestmark = pytest.mark.skipif(not backend.gpu_available(),
                                 reason="no CUDA device (needs CuPy and a GPU)")

RNG = np.random.default_rng(0)
X = RNG.normal(size=(31, 200))
Y = (RNG.random(200) < 0.5).astype(float)


def blr(w):
    logits = w @ X
    return ad.sum(Y * logits - ad.softplus(logits), axis=1) - 0.5 * ad.sum(w * w, axis=1)


def _hmm():
    from bench import hmm
    return hmm.hmm_scan


@pytest.mark.parametrize("name", ["blr", "hmm"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("chains", [7, 1000])
def test_gpu_compiled_matches_the_cpu(name, dtype, chains):
    import cupy as cp
    f = blr if name == "blr" else _hmm()
    d = 31 if name == "blr" else 4
    x = RNG.uniform(-1, 1, size=(chains, d)).astype(dtype)
    comp_gpu, comp_cpu = ad.compile(f), ad.compile(f)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ad.CompileWarning)
        for k in range(4):
            xk = (x + np.float32(0.01) * k).astype(dtype)
            vg, gg = comp_gpu.value_and_grad(cp.asarray(xk))
            vc, gc = comp_cpu.value_and_grad(xk)
            tol = 1e-10 if dtype == np.float64 else 2e-4
            assert isinstance(gg, cp.ndarray) and gg.dtype == dtype and gg.shape == x.shape
            np.testing.assert_allclose(cp.asnumpy(vg), vc, rtol=tol, atol=tol * 10)
            np.testing.assert_allclose(cp.asnumpy(gg), gc, rtol=tol, atol=tol * 10)
    entry = next(iter(comp_gpu._programs.values()))
    assert type(entry.exe[1]).__name__ == "GPUExecutable" and entry.broken is None


def test_nuts_on_the_gpu_with_a_compiled_log_density():
    import cupy as cp
    import samplers
    x0 = cp.asarray(RNG.uniform(-0.5, 0.5, size=(64, 31)))
    res = samplers.sample(blr, x0, n_samples=200, n_warmup=200, rng=0, progress=False)
    assert isinstance(res.draws, cp.ndarray)
    assert res.kernel.logdensity.logdensity.compiled
    ref = samplers.sample(blr, cp.asnumpy(x0), n_samples=200, n_warmup=200, rng=0,
                          progress=False)
    m_gpu, m_cpu = cp.asnumpy(res.draws).mean((0, 1)), ref.draws.mean((0, 1))
    sd = ref.draws.std((0, 1))
    assert np.max(np.abs(m_gpu - m_cpu) / sd) < 0.2        # both near the posterior mean
