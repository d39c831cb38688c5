"""VAE training step: zsarray vs PyTorch eager vs JAX jit (when installed).

One step = encoder 784-500-500-(40 mean, 40 log-std), one reparameterized sample,
decoder 40-500-500-784 with a Bernoulli likelihood, SGVB cost, backward, Adam update;
batch 128, float32, ReLU (Kingma & Welling 2014, as in ZhuSuan's vae example). The
script also times the IWAE paper's small-batch protocol (784-200-200-50, tanh, batch
20), where per-op overhead matters most, and zsarray's step under
``autodiff.trace(cost, params=...)`` ("zsarray traced") and
``autodiff.compile(cost, params=...)`` ("zsarray compiled": the whole step one run of
the compiled machine, the reparameterization noise drawn before it).

    python -m pytest bench/bench_vae.py --benchmark-enable --benchmark-columns=min,median
    python bench/bench_vae.py            # side-by-side table
    python bench/bench_vae.py --only compiled,jax    # two contenders interleaved

Each round starts after ``--pause`` seconds idle (0.5 by default): without it a round
started while the previous contender's BLAS or XLA threads were still spinning, and
whoever came right after the compiled step measured up to 1.3x slower.

On a small machine with anything else running, give every library one thread
(``OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 XLA_FLAGS=
"--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"``): with their
default thread pools fighting for 2 busy cores, every contender ran 10-100x slower here.
Measured that way on 2 cores with a training job on the other one (2026-11-25): batch 128,
zsarray 13.5 / traced 13.3 / PyTorch 15.0 / JAX 13.4 ms (best); batch 20, 1.67 / 1.32 /
2.33 / 1.56 ms.

The zsarray step uses the library as a user would: ``zs.nn.MLP`` networks, a
``@zs.meta_bayesian_net`` model, a ``BayesianNet`` variational posterior,
``zs.variational.elbo(...).sgvb()`` and ``zs.optim.Adam``.
"""
import time
from typing import NamedTuple

import numpy as np
import pytest

import autodiff as ad
import zsarray as zs



class Config(NamedTuple):
    x: int
    h: int
    z: int
    batch: int
    act: str


KINGMA = Config(784, 500, 40, 128, "relu")       # the default bench (ZhuSuan's vae)
IWAE = Config(784, 200, 50, 20, "tanh")          # Burda et al. 2016's MNIST protocol


def make_zsarray_step(c, seed=0, traced=False, compiled=False):
    rng = np.random.default_rng(seed)
    encoder = zs.nn.MLP([c.x, c.h, c.h, 2 * c.z], activation=c.act, rng=rng)
    decoder = zs.nn.MLP([c.z, c.h, c.h, c.x], activation=c.act, rng=rng)
    optimizer = zs.optim.Adam(encoder.parameters() + decoder.parameters(), lr=1e-3)

    @zs.meta_bayesian_net(scope="vae")
    def model(observed=None):
        bn = zs.BayesianNet(observed, rng=rng)
        z = bn.normal("z", np.zeros((c.batch, c.z), np.float32), std=np.float32(1.0),
                      group_ndims=1)
        bn.bernoulli("x", decoder(z.tensor), group_ndims=1)
        return bn

    vae = model()
    x = (rng.random((c.batch, c.x)) < 0.3).astype(np.float32)

    def cost(x):
        h = encoder(x)
        q = zs.BayesianNet(rng=rng)
        q.normal("z", h[:, :c.z], logstd=h[:, c.z:], group_ndims=1)
        return zs.variational.elbo(vae, {"x": x}, variational=q, axis=None).sgvb()

    params = optimizer.param_groups[0]["params"]
    traced_cost = (ad.compile if compiled else ad.trace)(cost, params=params)

    def step():
        optimizer.zero_grad()
        if traced or compiled:
            value = traced_cost.backward(x)
        else:
            c_ = cost(x)
            c_.backward()
            value = c_.data
        optimizer.step()
        return float(value)
    return step


def make_torch_step(c, seed=0):
    torch = pytest.importorskip("torch", reason="PyTorch not installed")
    torch.manual_seed(seed)
    nn = torch.nn
    act = nn.ReLU if c.act == "relu" else nn.Tanh
    encoder = nn.Sequential(nn.Linear(c.x, c.h), act(), nn.Linear(c.h, c.h),
                            act(), nn.Linear(c.h, 2 * c.z))
    decoder = nn.Sequential(nn.Linear(c.z, c.h), act(), nn.Linear(c.h, c.h),
                            act(), nn.Linear(c.h, c.x))
    optimizer = torch.optim.Adam(list(encoder.parameters()) + list(decoder.parameters()),
                                 lr=1e-3)
    x = (torch.rand(c.batch, c.x) < 0.3).float()

    def step():
        h = encoder(x)
        mean, logstd = h[:, :c.z], h[:, c.z:]
        z = mean + torch.exp(logstd) * torch.randn_like(mean)
        logits = decoder(z)
        log_px = -nn.functional.binary_cross_entropy_with_logits(logits, x,
                                                                  reduction="none").sum(1)
        log_pz = (-0.5 * z ** 2 - 0.5 * np.log(2 * np.pi)).sum(1)
        log_qz = (-0.5 * ((z - mean) / torch.exp(logstd)) ** 2 - logstd
                  - 0.5 * np.log(2 * np.pi)).sum(1)
        cost = -(log_px + log_pz - log_qz).mean()
        optimizer.zero_grad()
        cost.backward()
        optimizer.step()
        return float(cost)
    return step


def make_jax_step(c, seed=0):
    jax = pytest.importorskip("jax", reason="JAX not installed")
    import jax.numpy as jnp

    def mlp_init(key, sizes):
        params = []
        for m, n in zip(sizes[:-1], sizes[1:]):
            key, sub = jax.random.split(key)
            bound = 1 / np.sqrt(m)
            params.append((jax.random.uniform(sub, (m, n), jnp.float32, -bound, bound),
                           jnp.zeros(n, jnp.float32)))
        return params

    def mlp(params, h):
        for i, (w, b) in enumerate(params):
            h = h @ w + b
            if i < len(params) - 1:
                h = jax.nn.relu(h) if c.act == "relu" else jnp.tanh(h)
        return h

    key = jax.random.PRNGKey(seed)
    k1, k2, key = jax.random.split(key, 3)
    params = (mlp_init(k1, [c.x, c.h, c.h, 2 * c.z]),
              mlp_init(k2, [c.z, c.h, c.h, c.x]))
    x = (jax.random.uniform(key, (c.batch, c.x)) < 0.3).astype(jnp.float32)

    def cost_fn(params, key):
        h = mlp(params[0], x)
        mean, logstd = h[:, :c.z], h[:, c.z:]
        eps = jax.random.normal(key, mean.shape)
        z = mean + jnp.exp(logstd) * eps
        logits = mlp(params[1], z)
        log_px = jnp.sum(x * logits - jnp.logaddexp(0.0, logits), 1)
        log_pz = jnp.sum(-0.5 * z ** 2, 1)
        log_qz = jnp.sum(-0.5 * eps ** 2 - logstd, 1)
        return -jnp.mean(log_px + log_pz - log_qz)

    b1, b2, eps_adam, lr = 0.9, 0.999, 1e-8, 1e-3

    @jax.jit
    def update(params, m, v, t, key):
        cost, g = jax.value_and_grad(cost_fn)(params, key)
        m = jax.tree_util.tree_map(lambda m, g: b1 * m + (1 - b1) * g, m, g)
        v = jax.tree_util.tree_map(lambda v, g: b2 * v + (1 - b2) * g * g, v, g)
        mhat = jax.tree_util.tree_map(lambda m: m / (1 - b1 ** t), m)
        vhat = jax.tree_util.tree_map(lambda v: v / (1 - b2 ** t), v)
        params = jax.tree_util.tree_map(lambda p, m, v: p - lr * m / (jnp.sqrt(v) + eps_adam),
                                        params, mhat, vhat)
        return params, m, v, cost

    state = {"params": params, "t": 0, "key": key,
             "m": jax.tree_util.tree_map(jnp.zeros_like, params),
             "v": jax.tree_util.tree_map(jnp.zeros_like, params)}

    def step():
        state["t"] += 1
        state["key"], sub = jax.random.split(state["key"])
        state["params"], state["m"], state["v"], cost = update(
            state["params"], state["m"], state["v"], state["t"], sub)
        return float(cost)          # blocks until the step is done
    step()                          # compile outside the timing
    return step


def test_vae_step_zsarray(benchmark):
    benchmark(make_zsarray_step(KINGMA))


def test_vae_step_zsarray_traced(benchmark):
    benchmark(make_zsarray_step(KINGMA, traced=True))


def test_vae_step_zsarray_compiled(benchmark):
    benchmark(make_zsarray_step(KINGMA, compiled=True))


def test_vae_step_torch(benchmark):
    benchmark(make_torch_step(KINGMA))


def test_vae_step_jax(benchmark):
    benchmark(make_jax_step(KINGMA))


def _rounds(steps, n=20, rounds=6, pause=0.5):
    """Per-step ms of each step function, ``rounds`` interleaved rounds of ``n`` steps
    (interleaving spreads a busy machine's slow spells over all contenders), each round
    after ``pause`` seconds idle: the BLAS and XLA thread pools of the contender before
    keep spinning for a while after its last step, and would slow the next one's first
    steps (OpenBLAS's wait is about 0.1 s)."""
    times = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            time.sleep(pause)
            for _ in range(3):
                step()
            t = time.perf_counter()
            for _ in range(n):
                step()
            times[name].append((time.perf_counter() - t) / n * 1e3)
    return times


_OURS = {"zsarray": {}, "zsarray traced": {"traced": True},
         "zsarray compiled": {"compiled": True}}
_OTHERS = {"PyTorch eager": make_torch_step, "JAX jit": make_jax_step}
_SHORT = {"zsarray": "zsarray", "traced": "zsarray traced", "compiled": "zsarray compiled",
          "torch": "PyTorch eager", "jax": "JAX jit"}


def main(argv=None):
    import argparse
    p = argparse.ArgumentParser(description="VAE training step: zsarray vs PyTorch vs JAX")
    p.add_argument("--only", default=",".join(_SHORT),
                   help="contenders to interleave, of " + ", ".join(_SHORT) + " (all by "
                   "default); e.g. 'compiled,jax' to time two without the others' "
                   "thread pools spinning between their rounds")
    p.add_argument("--pause", type=float, default=0.5,
                   help="seconds idle before each round (default 0.5), so that no "
                   "contender's timing includes the previous one's spinning threads")
    a = p.parse_args(argv)
    unknown = [k for k in a.only.split(",") if k.strip() not in _SHORT]
    if unknown:
        p.error(f"--only: expected names among {', '.join(_SHORT)}, got {', '.join(unknown)}")
    names = [_SHORT[k.strip()] for k in a.only.split(",")]
    for cfg, title, n in ((KINGMA, "784-500-500-40 ReLU, batch 128", 20),
                          (IWAE, "784-200-200-50 tanh, batch 20", 100)):
        steps = {k: make_zsarray_step(cfg, **kw) for k, kw in _OURS.items() if k in names}
        for name, make in _OTHERS.items():
            if name not in names:
                continue
            try:
                steps[name] = make(cfg)
            except pytest.skip.Exception as e:
                print(f"{name} skipped: {e}")
        times = _rounds(steps, n=n, pause=a.pause)
        ours = {k: (min(times[k]), float(np.median(times[k]))) for k in _OURS if k in times}
        print(f"VAE step {title}, float32, SGVB + Adam (ms per step; best and median of 6 "
              f"interleaved rounds of {n} steps, {a.pause:g} s idle before each; ratios: "
              + " / ".join(k.replace("zsarray ", "") for k in ours) + " over the other)")
        for name, t in times.items():
            best, med = min(t), float(np.median(t))
            ratio = "" if name in _OURS else (
                "   " + " / ".join(f"{ours[k][0] / best:.2f}" for k in ours) + " best, "
                + " / ".join(f"{ours[k][1] / med:.2f}" for k in ours) + " median")
            print(f"  {name:<17s} best {best:6.2f}  median {med:6.2f}{ratio}")


if __name__ == "__main__":
    import warnings
    warnings.simplefilter("ignore", UserWarning)    # torch's float(cost) note
    main()
