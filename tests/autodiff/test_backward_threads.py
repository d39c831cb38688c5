"""Backward passes in several threads through shared parameters (thread-safety contract:
parameters may be shared; each pass keeps its scratch to itself and .grad only adds)."""
import numpy as np

import autodiff as ad
from tests.threads import run_in_threads


def _loss(w, b, x):
    h = ad.tanh(x @ w + b)            # w, b shared by every thread
    return ad.sum(h * h) + ad.sum(w * w)


def test_backward_from_many_threads_accumulates_every_contribution():
    rng = np.random.default_rng(0)
    w = ad.tensor(rng.normal(size=(5, 3)), requires_grad=True)
    b = ad.tensor(rng.normal(size=3), requires_grad=True)
    xs = [rng.normal(size=(4, 5)) for _ in range(8)]
    reps = 20

    def work(k):
        for _ in range(reps):
            _loss(w, b, xs[k]).backward()
    run_in_threads(work)
    # the same sum computed in one thread
    gw = gb = 0
    for x in xs:
        g = ad.grad(lambda w_, b_: _loss(w_, b_, x), argnums=(0, 1))(w.data, b.data)
        gw, gb = gw + g[0], gb + g[1]
    np.testing.assert_allclose(w.grad, reps * gw, rtol=1e-12)
    np.testing.assert_allclose(b.grad, reps * gb, rtol=1e-12)


def test_shared_intermediate_across_threads_grads_are_per_pass():
    """ad.grad in many threads through one shared parameter: every thread gets exactly its
    own gradient (no partial cotangent from another thread's pass)."""
    rng = np.random.default_rng(1)
    w = ad.tensor(rng.normal(size=(3, 3)), requires_grad=True)

    def f(x):
        return ad.sum(ad.exp(x @ w) * x)

    def work(k):
        x = np.full((2, 3), 0.1 * (k + 1))
        ref = ad.grad(f)(x)
        for _ in range(30):
            np.testing.assert_array_equal(ad.grad(f)(x), ref)
    run_in_threads(work)
