"""VAE training step: zsarray vs PyTorch eager vs JAX jit (when installed).

One step = encoder 784-500-500-(40 mean, 40 log-std), one reparameterized sample,
decoder 40-500-500-784 with a Bernoulli likelihood, SGVB cost, backward, Adam update;
batch 128, float32 (Kingma & Welling 2014, as in ZhuSuan's vae example).

    python -m pytest bench/bench_vae.py --benchmark-enable --benchmark-columns=min,median
    python bench/bench_vae.py            # side-by-side table

The zsarray step uses the library as a user would: ``zs.nn.MLP`` networks, a
``@zs.meta_bayesian_net`` model, a ``BayesianNet`` variational posterior,
``zs.variational.elbo(...).sgvb()`` and ``zs.optim.Adam``.
"""
import time

import numpy as np
import pytest

import zsarray as zs

X_DIM, H_DIM, Z_DIM, BATCH = 784, 500, 40, 128


def make_zsarray_step(seed=0):
    rng = np.random.default_rng(seed)
    encoder = zs.nn.MLP([X_DIM, H_DIM, H_DIM, 2 * Z_DIM], activation="relu", rng=rng)
    decoder = zs.nn.MLP([Z_DIM, H_DIM, H_DIM, X_DIM], activation="relu", rng=rng)
    optimizer = zs.optim.Adam(encoder.parameters() + decoder.parameters(), lr=1e-3)

    @zs.meta_bayesian_net(scope="vae")
    def model(observed=None):
        bn = zs.BayesianNet(observed, rng=rng)
        z = bn.normal("z", np.zeros((BATCH, Z_DIM), np.float32), std=np.float32(1.0),
                      group_ndims=1)
        bn.bernoulli("x", decoder(z.tensor), group_ndims=1)
        return bn

    vae = model()
    x = (rng.random((BATCH, X_DIM)) < 0.3).astype(np.float32)

    def step():
        h = encoder(x)
        q = zs.BayesianNet(rng=rng)
        q.normal("z", h[:, :Z_DIM], logstd=h[:, Z_DIM:], group_ndims=1)
        cost = zs.variational.elbo(vae, {"x": x}, variational=q, axis=None).sgvb()
        optimizer.zero_grad()
        cost.backward()
        optimizer.step()
        return float(cost.data)
    return step


def make_torch_step(seed=0):
    torch = pytest.importorskip("torch", reason="PyTorch not installed")
    torch.manual_seed(seed)
    nn = torch.nn
    encoder = nn.Sequential(nn.Linear(X_DIM, H_DIM), nn.ReLU(), nn.Linear(H_DIM, H_DIM),
                            nn.ReLU(), nn.Linear(H_DIM, 2 * Z_DIM))
    decoder = nn.Sequential(nn.Linear(Z_DIM, H_DIM), nn.ReLU(), nn.Linear(H_DIM, H_DIM),
                            nn.ReLU(), nn.Linear(H_DIM, X_DIM))
    optimizer = torch.optim.Adam(list(encoder.parameters()) + list(decoder.parameters()),
                                 lr=1e-3)
    x = (torch.rand(BATCH, X_DIM) < 0.3).float()

    def step():
        h = encoder(x)
        mean, logstd = h[:, :Z_DIM], h[:, Z_DIM:]
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


def make_jax_step(seed=0):
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
                h = jax.nn.relu(h)
        return h

    key = jax.random.PRNGKey(seed)
    k1, k2, key = jax.random.split(key, 3)
    params = (mlp_init(k1, [X_DIM, H_DIM, H_DIM, 2 * Z_DIM]),
              mlp_init(k2, [Z_DIM, H_DIM, H_DIM, X_DIM]))
    x = (jax.random.uniform(key, (BATCH, X_DIM)) < 0.3).astype(jnp.float32)

    def cost_fn(params, key):
        h = mlp(params[0], x)
        mean, logstd = h[:, :Z_DIM], h[:, Z_DIM:]
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
    benchmark(make_zsarray_step())


def test_vae_step_torch(benchmark):
    benchmark(make_torch_step())


def test_vae_step_jax(benchmark):
    benchmark(make_jax_step())


def _rounds(steps, n=20, rounds=6):
    """Per-step ms of each step function, ``rounds`` interleaved rounds of ``n`` steps
    (interleaving spreads a busy machine's slow spells over all contenders)."""
    times = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            for _ in range(3):
                step()
            t = time.perf_counter()
            for _ in range(n):
                step()
            times[name].append((time.perf_counter() - t) / n * 1e3)
    return times


def main():
    steps = {"zsarray": make_zsarray_step()}
    for name, make in (("PyTorch eager", make_torch_step), ("JAX jit", make_jax_step)):
        try:
            steps[name] = make()
        except pytest.skip.Exception as e:
            print(f"{name} skipped: {e}")
    times = _rounds(steps)
    print("VAE step 784-500-500-40, batch 128, float32, SGVB + Adam (ms per step; best and "
          "median of 6 interleaved rounds of 20 steps)")
    best_zs, med_zs = min(times["zsarray"]), float(np.median(times["zsarray"]))
    for name, t in times.items():
        best, med = min(t), float(np.median(t))
        ratio = "" if name == "zsarray" else (f"   zsarray / {name}: {best_zs / best:.2f} best, "
                                             f"{med_zs / med:.2f} median")
        print(f"  {name:<14s} best {best:6.2f}  median {med:6.2f}{ratio}")


if __name__ == "__main__":
    import warnings
    warnings.simplefilter("ignore", UserWarning)    # torch's float(cost) note
    main()
