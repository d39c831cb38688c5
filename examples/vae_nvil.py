"""VAE with binary latent variables trained by NVIL (Mnih & Gregor 2014): REINFORCE with
a moving-average baseline and an input-dependent baseline network.

Model: ``z ~ Bernoulli(1/2)^d``, ``x | z ~ Bernoulli(logits = MLP(z))``; variational
posterior ``q(z | x) = Bernoulli(logits = MLP(x))``. Discrete ``z`` has no pathwise
gradient, so the encoder learns from the score-function estimator of the ELBO,
``(l(x, z) - b(x) - m) grad log q(z | x)``, with the learning signal
``l = log p(x, z) - log q(z | x)``, the baseline network ``b(x)`` (trained to regress
``l``) and the moving mean ``m`` of ``l - b(x)``, carried across steps in a
``zs.variational.ReinforceState``.

    python examples/vae_nvil.py [--quick] [--device cpu|gpu] [--data binarized_mnist.npz]
        [--z-dim 20] [--epochs N]

Defaults: digits, 64-200-200-20 (20 latent bits); MNIST 784-500-500-200.

Evaluation: test ELBO and the importance-sampled log-likelihood (``--is-k`` samples from
q; AIS needs continuous latents for its HMC moves, so it is not offered here).
"""
import time

import numpy as np

import autodiff as ad
import zsarray as zs
from autodiff import backend

try:
    from examples import _vae_common as common
except ImportError:  # run as a script from inside examples/
    import _vae_common as common


class BinaryVAE(zs.nn.Module):
    def __init__(self, x_dim, z_dim, hidden, rng=0):
        rng = np.random.default_rng(rng)
        self.x_dim, self.z_dim = x_dim, z_dim
        self.encoder = zs.nn.MLP([x_dim, hidden, hidden, z_dim], activation="relu", rng=rng)
        self.decoder = zs.nn.MLP([z_dim, hidden, hidden, x_dim], activation="relu", rng=rng)
        # NVIL's input-dependent baseline b(x): one hidden layer, a scalar per data point
        self.baseline = zs.nn.MLP([x_dim, 100, 1], activation="tanh", rng=rng)

    def q_net(self, x, n_particles, rng):
        bn = zs.BayesianNet(rng=rng)
        bn.bernoulli("z", self.encoder(x), group_ndims=1, n_samples=n_particles,
                     dtype=np.float32)
        return bn


@zs.meta_bayesian_net(scope="binary_vae")
def build_model(vae, n, n_particles, xp=np, rng=None, observed=None):
    """``p(x, z)``: z [K, n, z_dim] in {0, 1}, x [K, n, x_dim]."""
    bn = zs.BayesianNet(observed, rng=rng)
    z = bn.bernoulli("z", xp.zeros((n, vae.z_dim), np.float32), group_ndims=1,
                     n_samples=n_particles, dtype=np.float32)
    logits = bn.deterministic("x_logits", vae.decoder(z))
    bn.bernoulli("x", logits, group_ndims=1, dtype=np.float32)
    return bn


def main(argv=None):
    p = common.base_parser(__doc__.splitlines()[0], z_dim=20, mnist_z_dim=200)
    p.add_argument("--decay", type=common.number(float, low=0, high=1, high_open=True),
                   default=0.8,
                   help="decay of the moving-mean baseline")
    args = p.parse_args(argv)
    common.fill_defaults(args, z_dim=20, epochs=(300, 50, 60), mnist_z_dim=200)
    with common.blas_threads(args.blas_threads):
        return run(args)


def run(args):
    x_train_np, x_test_np = common.load_binary(args)
    x_train = common.to_dev(x_train_np, args.device)
    x_test = common.to_dev(x_test_np, args.device)
    xp = backend.get_array_module(x_train)
    rng = common.make_rng(args.seed, args.device)
    vae = BinaryVAE(x_train.shape[1], args.z_dim, args.hidden, rng=args.seed)
    if args.device == "gpu":
        vae.to("gpu")
    state = zs.variational.ReinforceState()

    def step(x, epoch):
        obj = zs.variational.elbo(build_model(vae, len(x), 1, xp=xp), {"x": x},
                                  variational=vae.q_net(x, 1, rng), axis=0)
        baseline = ad.reshape(vae.baseline(x), (len(x),))
        cost, baseline_cost = obj.reinforce(state=state, baseline=baseline,
                                            decay=args.decay)
        with ad.no_grad():
            bound = float(ad.mean(obj.tensor).data)
        return {"cost": cost + baseline_cost, "elbo": bound,
                "baseline_cost": float(baseline_cost.data)}

    history, seconds = common.train(step, x_train, args, vae.parameters(), desc="NVIL",
                                    rngs=(rng,))

    def test_elbo(x):
        return zs.variational.elbo(build_model(vae, len(x), 10, xp=xp), {"x": x},
                                   variational=vae.q_net(x, 10, rng), axis=0).tensor

    def test_ll(x):
        return zs.evaluation.is_loglikelihood(build_model(vae, len(x), args.is_k, xp=xp),
                                              {"x": x}, proposal=vae.q_net(x, args.is_k, rng),
                                              axis=0)
    start = time.perf_counter()
    is_batch = max(1, int(1e7 // (args.is_k * args.hidden)))
    metrics = {"elbo_first_epoch": history["elbo"][0], "elbo_last_epoch": history["elbo"][-1],
               "cost_first_epoch": -history["elbo"][0], "cost_last_epoch": -history["elbo"][-1],
               "baseline_cost_first_epoch": history["baseline_cost"][0],
               "baseline_cost_last_epoch": history["baseline_cost"][-1],
               "elbo_per_epoch": history["elbo"], "train_seconds": seconds,
               "epochs": args.epochs, "z_dim": args.z_dim,
               "data": "mnist" if common.is_mnist(args) else "digits",
               "test_elbo": common.batched_mean(test_elbo, x_test, 500),
               "test_is_ll": common.batched_mean(test_ll, x_test, is_batch),
               "is_k": args.is_k, "n_test": int(len(x_test))}
    metrics["eval_seconds"] = time.perf_counter() - start
    metrics["test_nll"] = -metrics["test_is_ll"]

    with ad.no_grad():
        x_show = x_test[:16]
        z_mode = (vae.encoder(x_show).data > 0).astype(np.float32)
        recon = ad.sigmoid(vae.decoder(z_mode)).data
        gen = build_model(vae, 16, None, xp=xp, rng=args.seed + 3).observe()
        samples = ad.sigmoid(gen["x_logits"].tensor).data
    path = common.figure_path(args.out, "vae_nvil.png")
    common.plot_rows([("data", x_show), ("reconstruction", recon), ("prior samples", samples)],
                     path, title=f"binary-latent VAE (NVIL, {args.z_dim} bits), test log p(x) "
                                 f"= {metrics['test_is_ll']:.2f} nats")
    metrics["figure"] = path
    common.report(f"NVIL on {metrics['data']}, {args.epochs} epochs in {seconds:.1f} s",
                  metrics, ["elbo_first_epoch", "elbo_last_epoch", "baseline_cost_first_epoch",
                            "baseline_cost_last_epoch", "test_elbo", "test_is_ll", "test_nll",
                            "eval_seconds", "figure"])
    return common.check_metrics(metrics, ["elbo_last_epoch", "test_elbo", "test_is_ll"])


if __name__ == "__main__":
    common.run_script(main)
