"""One conv VAE training step: zsarray (autodiff tape; conv2d as im2col or channels-last
rows + BLAS, see autodiff/conv.py) against PyTorch eager on the CPU, in the same
process, rounds interleaved.

The networks are ``examples/vae_conv.py``'s ``ConvVAE`` (its MNIST setting: 28 x 28
images, C = 32 channels, z_dim = 40), batch 64, float32:

* encoder: conv 1->32 3x3 (padding 1), relu, conv 32->64 4x4 (stride 2, padding 1), relu,
  conv 64->64 4x4 (stride 2, padding 1), relu, linear 3136->80 (mean, log sd);
* decoder: linear 40->3136, relu, transposed conv 64->64 and 64->32 4x4 (stride 2,
  padding 1), relu after each, conv 32->1 3x3 (padding 1): Bernoulli logits.

One step is one SGVB step with one particle: the negative ELBO per image
``-mean(log p(x | z) + log N(z; 0, I) - log q(z | x))`` at ``z = mean + exp(log sd) eps``,
its backward pass to every parameter, and one Adam update (lr 1e-3). The PyTorch twin
has the same weights, and each round feeds both the same ``eps``; the two losses and the
first step's gradients are checked equal before timing (the two sets of weights then
take the same Adam steps, up to float rounding). Inputs: binary pixels drawn with
probability 0.13 (MNIST's mean; the timing does not depend on the values). Reported:
the median and the best of the warm steps per library, their ratios (zsarray / torch),
the first (cold) step of each and, with one thread, the median CPU time of the calling
thread per step (steadier than the wall time on a shared machine: it leaves out the time
spent waiting for a core).

    python bench/bench_vae_conv.py --threads 1 --rounds 15
"""
import argparse

import numpy as np

import autodiff as ad
import zsarray as zs
from bench.bench_conv import cpu_line, timed
from examples.vae_conv import ConvVAE


def loss_zs(vae, x, eps):
    """The negative ELBO per image (one particle), a scalar Tensor."""
    mean, logstd = vae.posterior_params(x)
    z = mean + ad.exp(logstd) * eps
    logits = vae.decoder(z)
    log_px = ad.sum(x * logits - ad.softplus(logits), axis=-1)
    log_pz = ad.sum(-0.5 * z * z, axis=-1)
    log_qz = ad.sum(-0.5 * eps * eps - logstd, axis=-1)     # the 2 pi terms cancel
    return -ad.mean(log_px + log_pz - log_qz)


def torch_twin(vae):
    """``vae``'s networks in torch with the same weights (Linear weights transposed)."""
    import torch
    tn = torch.nn
    c1, c2, side = vae.c2 // 2, vae.c2, vae.side

    class Twin(tn.Module):
        def __init__(self):
            super().__init__()
            self.e1 = tn.Conv2d(1, c1, 3, padding=1)
            self.e2 = tn.Conv2d(c1, c2, 4, 2, 1)
            self.e3 = tn.Conv2d(c2, c2, 4, 2, 1)
            self.e_out = tn.Linear(c2 * (side // 4) ** 2, 2 * vae.z_dim)
            self.d_in = tn.Linear(vae.z_dim, c2 * (side // 4) ** 2)
            self.d1 = tn.ConvTranspose2d(c2, c2, 4, 2, 1)
            self.d2 = tn.ConvTranspose2d(c2, c1, 4, 2, 1)
            self.d3 = tn.Conv2d(c1, 1, 3, padding=1)

        def loss(self, x, eps):
            n, q = x.shape[0], side // 4
            h = torch.relu(self.e1(x.reshape(n, 1, side, side)))
            h = torch.relu(self.e2(h))
            h = torch.relu(self.e3(h))
            out = self.e_out(h.reshape(n, -1))
            mean, logstd = out[:, :vae.z_dim], out[:, vae.z_dim:]
            z = mean + torch.exp(logstd) * eps
            h = torch.relu(self.d_in(z)).reshape(n, c2, q, q)
            h = torch.relu(self.d1(h))
            h = torch.relu(self.d2(h))
            logits = self.d3(h).reshape(n, -1)
            log_px = (x * logits - torch.nn.functional.softplus(logits)).sum(-1)
            log_pz = (-0.5 * z * z).sum(-1)
            log_qz = (-0.5 * eps * eps - logstd).sum(-1)
            return -(log_px + log_pz - log_qz).mean()

    t = Twin()
    pairs = [(t.e1, vae.e1_w, vae.e1_b), (t.e2, vae.e2_w, vae.e2_b), (t.e3, vae.e3_w, vae.e3_b),
             (t.d1, vae.d1_w, vae.d1_b), (t.d2, vae.d2_w, vae.d2_b), (t.d3, vae.d3_w, vae.d3_b),
             (t.e_out, vae.e_out.weight, vae.e_out.bias), (t.d_in, vae.d_in.weight, vae.d_in.bias)]
    for mod, w, b in pairs:
        wd = w.data.T if isinstance(mod, tn.Linear) else w.data
        mod.weight.data = torch.from_numpy(np.ascontiguousarray(wd).copy())
        mod.bias.data = torch.from_numpy(b.data.copy())
    return t, pairs


def step_zs(vae, opt, x, eps):
    opt.zero_grad()
    loss = loss_zs(vae, x, eps)
    loss.backward()
    opt.step()
    return float(loss.data)


def step_torch(twin, opt, x, eps):
    opt.zero_grad(set_to_none=True)
    loss = twin.loss(x, eps)
    loss.backward()
    opt.step()
    return loss.item()


def run(rounds, threads, batch, side=28, channels=32, z_dim=40):
    import torch
    from threadpoolctl import threadpool_limits
    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    vae = ConvVAE(side, z_dim, channels, rng=0)
    twin, pairs = torch_twin(vae)
    opt = zs.optim.Adam(vae.parameters(), lr=1e-3)
    topt = torch.optim.Adam(twin.parameters(), lr=1e-3)
    x = (rng.random((batch, side * side)) < 0.13).astype(np.float32)
    tx = torch.from_numpy(x.copy())
    eps = [rng.standard_normal((batch, z_dim)).astype(np.float32) for _ in range(rounds + 1)]
    teps = [torch.from_numpy(e.copy()) for e in eps]
    with threadpool_limits(threads):
        # the first (cold) step of each, checked: the losses and the gradients of the
        # first encoder and the first decoder conv agree (Adam leaves the gradients)
        cold_zs, _, v_zs = timed(step_zs, vae, opt, x, eps[0])
        cold_t, _, v_t = timed(step_torch, twin, topt, tx, teps[0])
        assert abs(v_zs - v_t) <= 1e-4 * abs(v_t), (v_zs, v_t)
        for mod, w, _ in (pairs[0], pairs[3]):
            g_t = mod.weight.grad.numpy()
            assert np.allclose(w.grad, g_t, rtol=1e-3, atol=1e-4 * np.abs(g_t).max())
        zs_t, torch_t, zs_c, torch_c, gap = [], [], [], [], 0.0
        for r in range(1, rounds + 1):
            dz, cz, lz = timed(step_zs, vae, opt, x, eps[r])
            dt, ct, lt = timed(step_torch, twin, topt, tx, teps[r])
            zs_t.append(dz)
            torch_t.append(dt)
            zs_c.append(cz)
            torch_c.append(ct)
            gap = max(gap, abs(lz - lt) / abs(lt))
    mz, mt = np.median(zs_t), np.median(torch_t)
    bz, bt = min(zs_t), min(torch_t)
    print(f"conv VAE step threads={threads} batch={batch} ({side}x{side}, C={channels}, "
          f"z={z_dim}): zsarray {mz * 1e3:7.2f} ms, torch {mt * 1e3:7.2f} ms, ratio "
          f"{mz / mt:5.2f}  | best: zsarray {bz * 1e3:7.2f} ms, torch {bt * 1e3:7.2f} ms, "
          f"ratio {bz / bt:5.2f}  | cold: zsarray {cold_zs * 1e3:7.1f} ms, torch "
          f"{cold_t * 1e3:7.1f} ms | loss first {v_zs:.4f} vs {v_t:.4f}, largest relative "
          f"gap over the timed steps {gap:.1e}" + cpu_line(zs_c, torch_c, threads))
    return mz, mt


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--threads", type=int, nargs="+", default=[1])
    p.add_argument("--batch", type=int, default=64)
    a = p.parse_args()
    for threads in a.threads:
        run(a.rounds, threads, a.batch)


if __name__ == "__main__":
    main()
