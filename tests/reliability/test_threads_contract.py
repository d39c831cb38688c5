"""The thread-safety contract of docs/guides/threads.md, checked with many threads and a
tiny switch interval: what it says may be shared gives the same numbers as a run alone."""
import numpy as np

import autodiff as ad
import samplers
import zsarray as zs
from tests.threads import run_in_threads

A = np.array([[2.0, 0.3], [0.3, 0.5]])


def gaussian(x):                                  # x [C, 2]
    return -0.5 * ad.sum((x @ A) * x, axis=-1)


def test_one_log_density_shared_by_threads_that_each_run_sample():
    shared = ad.compile(gaussian)

    def run(seed):
        res = samplers.sample(shared, np.zeros((2, 2)), n_samples=60, n_warmup=60,
                              rng=seed, progress=False)
        return res.draws

    alone = {k: run(k) for k in range(6)}
    got = {}

    def work(k):
        got[k] = run(k)
    run_in_threads(work, n=6)
    for k in range(6):
        np.testing.assert_array_equal(got[k], alone[k])


def test_a_module_shared_for_forward_and_backward_in_threads():
    net = zs.nn.MLP([3, 8, 1], dtype=np.float64, rng=0)
    rng = np.random.default_rng(0)
    xs = [rng.normal(size=(5, 3)) for _ in range(8)]

    def grads(x):
        for p in net.parameters():
            p.grad = None
        loss = ad.sum(net(x) ** 2)
        loss.backward()
        return [p.grad.copy() for p in net.parameters()]

    alone = [grads(x) for x in xs]
    # shared parameters, one loss per thread: the .grad sums are what matters here
    for p in net.parameters():
        p.grad = None

    def work(k):
        ad.sum(net(xs[k]) ** 2).backward()
    run_in_threads(work, n=8)
    total = [sum(a[i] for a in alone) for i in range(len(alone[0]))]
    for p, want in zip(net.parameters(), total):
        np.testing.assert_allclose(p.grad, want, rtol=1e-10, atol=1e-12)
