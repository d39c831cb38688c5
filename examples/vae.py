"""Variational autoencoder (Kingma & Welling 2014) and importance-weighted autoencoder
(Burda, Grosse & Salakhutdinov 2016) on binarized digits or MNIST.

Model: ``z ~ N(0, I)``, ``x | z ~ Bernoulli(logits = MLP(z))``; variational posterior
``q(z | x) = N(mu(x), diag sigma(x)^2)``, optionally pushed through normalizing flows
(``--flow planar|iaf``: Rezende & Mohamed 2015; Kingma et al. 2016). Trained with the
SGVB estimator of the ELBO (``--objective elbo``, ``--k`` samples per data point) or of
the IWAE bound ``L_k`` (``--objective iwae``). The test set is scored by the ELBO, the
importance-sampled log-likelihood ``log p(x) ~ L_K`` with ``K = --is-k`` samples from
``q`` (1000 by default) and, with ``--ais``, annealed importance sampling from ``q``.

    python examples/vae.py [--quick] [--device cpu|gpu] [--data binarized_mnist.npz]
        [--objective elbo|iwae] [--k 5] [--flow none|planar|iaf] [--epochs N] [--ais]

Defaults: digits (64 pixels), networks 64-200-200-10; with MNIST 784-500-500-40.
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


class VAE(zs.nn.Module):
    """Encoder ``x -> (mu, log sigma)``, decoder ``z -> logits`` and optional flows."""

    def __init__(self, x_dim, z_dim, hidden, flow="none", n_flows=None, rng=0,
                 activation="relu"):
        rng = np.random.default_rng(rng)
        self.x_dim, self.z_dim = x_dim, z_dim
        self.encoder = zs.nn.MLP([x_dim, hidden, hidden, 2 * z_dim], activation=activation,
                                 rng=rng)
        self.decoder = zs.nn.MLP([z_dim, hidden, hidden, x_dim], activation=activation,
                                 rng=rng)
        self.flow = None
        if flow == "planar":
            self.flow = zs.flows.Sequential(
                [zs.flows.Planar(z_dim, rng=rng) for _ in range(n_flows or 8)])
        elif flow == "iaf":
            self.flow = zs.flows.Sequential(
                [zs.flows.IAF(z_dim, hidden_sizes=(2 * hidden // 5,),
                              order=None if i % 2 == 0 else "reverse", rng=rng)
                 for i in range(n_flows or 2)])
        elif flow != "none":
            raise ValueError(f"flow must be none, planar or iaf, got {flow!r}")

    def posterior_params(self, x):
        h = self.encoder(x)
        return h[..., :self.z_dim], h[..., self.z_dim:]

    def q_net(self, x, n_particles, rng):
        """``q(z | x)`` with ``n_particles`` samples per row: z [K, n, z_dim]."""
        bn = zs.BayesianNet(rng=rng)
        mean, logstd = self.posterior_params(x)
        if self.flow is None:
            bn.normal("z", mean, logstd=logstd, group_ndims=1, n_samples=n_particles)
        else:
            base = zs.distributions.Normal(mean, logstd=logstd, group_ndims=1)
            bn.stochastic("z", zs.distributions.FlowDistribution(base, [self.flow]),
                          n_samples=n_particles)
        return bn


@zs.meta_bayesian_net(scope="vae")
def build_model(vae, n, n_particles, xp=np, rng=None, observed=None):
    """``p(x, z)`` for ``n`` data points: z [K, n, z_dim], x [K, n, x_dim]."""
    bn = zs.BayesianNet(observed, rng=rng)
    z = bn.normal("z", xp.zeros((n, vae.z_dim), np.float32), std=xp.ones((), np.float32),
                  group_ndims=1, n_samples=n_particles)
    logits = bn.deterministic("x_logits", vae.decoder(z))
    bn.bernoulli("x", logits, group_ndims=1, dtype=np.float32)
    return bn


@zs.meta_bayesian_net(scope="proposal")
def build_gaussian_proposal(mean, logstd, n_particles, rng=None, observed=None):
    """The encoder's Gaussian ``q(z | x)`` with fixed parameters (AIS proposal)."""
    bn = zs.BayesianNet(observed, rng=rng)
    bn.normal("z", mean, logstd=logstd, group_ndims=1, n_samples=n_particles)
    return bn


def evaluate(vae, x_test, args, xp, rng, ais):
    """Test ELBO (mean over 10 samples), IS log-likelihood and, with ``ais``, AIS (all
    in nats, means per image)."""
    def test_elbo(x):
        obj = zs.variational.elbo(build_model(vae, len(x), 10, xp=xp), {"x": x},
                                  variational=vae.q_net(x, 10, rng), axis=0)
        return obj.tensor

    def test_ll(x):
        return zs.evaluation.is_loglikelihood(build_model(vae, len(x), args.is_k, xp=xp),
                                              {"x": x}, proposal=vae.q_net(x, args.is_k, rng),
                                              axis=0)
    # keep the [K, batch, hidden] activations around 40 MB
    is_batch = max(1, int(1e7 // (args.is_k * args.hidden)))
    out = {"test_elbo": common.batched_mean(test_elbo, x_test, 500),
           "test_is_ll": common.batched_mean(test_ll, x_test, is_batch)}
    if ais:
        out.update(run_ais(vae, x_test, args, xp))
        # IS on the same images as AIS, for a like-for-like comparison
        out["test_is_ll_ais_images"] = common.batched_mean(test_ll, x_test[:args.ais_n],
                                                           is_batch)
    return out


def run_ais(vae, x_test, args, xp):
    """AIS from the encoder's Gaussian to the posterior: ``--ais-chains`` chains per test
    image, ``--ais-temps`` temperatures of one HMC transition each."""
    x = x_test[:args.ais_n]
    with ad.no_grad():
        mean, logstd = vae.posterior_params(x)
    proposal = build_gaussian_proposal(mean.data, logstd.data, args.ais_chains,
                                       rng=args.seed + 7)
    model = build_model(vae, len(x), args.ais_chains, xp=xp)
    ais = zs.evaluation.AIS(model, proposal, {"step_size": 0.05, "n_leapfrogs": 10},
                            {"x": x}, "z", n_temperatures=args.ais_temps,
                            n_adapt=min(30, args.ais_temps))
    start = time.perf_counter()
    res = ais.run(rng=args.seed + 8)
    ll = backend.asnumpy(res.log_marginal)
    return {"test_ais_ll": float(np.mean(ll)), "ais_n": int(len(ll)),
            "ais_seconds": time.perf_counter() - start,
            "ais_acceptance": float(np.mean(res.acceptance))}


def main(argv=None):
    args = parse(argv)
    with common.blas_threads(args.blas_threads):
        return run(args)


def parse(argv):
    p = common.base_parser(__doc__.splitlines()[0])
    p.add_argument("--objective", choices=("elbo", "iwae"), default="elbo")
    p.add_argument("--k", type=common.positive_int, default=None,
                   help="samples per data point in the training objective (default 1 for "
                        "elbo, 5 for iwae)")
    p.add_argument("--flow", choices=("none", "planar", "iaf"), default="none")
    p.add_argument("--n-flows", type=common.positive_int, default=None,
                   help="flow layers (default 8 planar, 2 IAF)")
    p.add_argument("--ais", action="store_true", help="also estimate log p(x) by AIS")
    p.add_argument("--ais-temps", type=common.number(int, low=2), default=None,
                   help="AIS temperatures (default 200; 50 with --quick)")
    p.add_argument("--ais-chains", type=common.positive_int, default=None,
                   help="AIS chains per image (default 8; 4 with --quick)")
    p.add_argument("--ais-n", type=common.positive_int, default=None,
                   help="AIS on the first N test images (default 100; 50 with --quick)")
    p.add_argument("--train-ll", type=common.nonneg_int, default=0, metavar="N",
                   help="also estimate the ELBO and IS log-likelihood on the first N "
                        "(shuffled) training images, to show the train-test gap (default 0: "
                        "off)")
    args = p.parse_args(argv)
    common.fill_defaults(args, z_dim=10, epochs=(300, 50, 40))
    if args.k is None:
        args.k = 5 if args.objective == "iwae" else 1
    if args.ais_temps is None:
        args.ais_temps = 50 if args.quick else 200
    if args.ais_chains is None:
        args.ais_chains = 4 if args.quick else 8
    if args.ais_n is None:
        args.ais_n = 50 if args.quick else 100
    return args


def run(args):
    x_train_np, x_test_np = common.load_binary(args)
    x_train = common.to_dev(x_train_np, args.device)
    x_test = common.to_dev(x_test_np, args.device)
    xp = backend.get_array_module(x_train)
    # A NumPy generator even on the GPU when tracing: its state can be saved, which the
    # traced step's verification and the checkpoints need (CuPy's cannot); draws are
    # made on the host and copied to the device (zsarray.distributions.base.draw).
    rng = common.make_rng(args.seed, "cpu" if args.trace else args.device)
    x_dim = x_train.shape[1]
    vae = VAE(x_dim, args.z_dim, args.hidden, args.flow, args.n_flows, rng=args.seed,
              activation=args.activation)
    if args.device == "gpu":
        vae.to("gpu")

    def cost(x):
        model = build_model(vae, x.shape[0], args.k, xp=xp)
        q = vae.q_net(x, args.k, rng)
        if args.objective == "elbo":
            return zs.variational.elbo(model, {"x": x}, variational=q, axis=0).sgvb()
        return zs.variational.iw_objective(model, {"x": x}, variational=q, axis=0).sgvb()

    def step(x, epoch):
        c = cost(x)
        return {"cost": c, "bound": -float(c.data)}

    name = f"{'VAE' if args.objective == 'elbo' else 'IWAE'} (k={args.k}, flow={args.flow})"
    history, seconds = common.train(step, x_train, args, vae.parameters(), desc=name,
                                    rngs=(rng,), cost=cost)
    metrics = {"train_bound_first_epoch": history["bound"][0],
               "train_bound_last_epoch": history["bound"][-1],
               "bound_per_epoch": history["bound"], "train_seconds": seconds,
               "epochs": args.epochs, "objective": args.objective, "k": args.k,
               "flow": args.flow, "data": "mnist" if common.is_mnist(args) else "digits",
               "n_test": int(len(x_test)), "is_k": args.is_k}
    start = time.perf_counter()
    metrics.update(evaluate(vae, x_test, args, xp, rng, args.ais))
    metrics["eval_seconds"] = time.perf_counter() - start
    metrics["test_nll"] = -metrics["test_is_ll"]
    if args.train_ll:          # the same estimates on training images: the overfitting gap
        train = evaluate(vae, x_train[:args.train_ll], args, xp, rng, False)
        metrics.update(train_elbo=train["test_elbo"], train_is_ll=train["test_is_ll"],
                       train_ll_images=int(min(args.train_ll, len(x_train))))

    # figure: test images, their reconstructions (decoder mean at the posterior mean),
    # and samples from the prior (Bernoulli means)
    with ad.no_grad():
        x_show = x_test[:16]
        recon = ad.sigmoid(vae.decoder(vae.posterior_params(x_show)[0])).data
        gen = build_model(vae, 16, None, xp=xp, rng=args.seed + 3).observe()
        samples = ad.sigmoid(gen["x_logits"].tensor).data
    path = common.figure_path(args.out, f"vae_{args.objective}_k{args.k}_{args.flow}.png")
    common.plot_rows([("data", x_show), ("reconstruction", recon), ("prior samples", samples)],
                     path, title=f"{name}, test log p(x) = {metrics['test_is_ll']:.2f} nats")
    metrics["figure"] = path
    schedule = common.iwae_lr_factors(args.epochs) if args.lr_schedule == "iwae" else None
    metrics["curve_figure"] = common.plot_curve(
        {"train bound": history["bound"]}, path[:-4] + "_curve.png", lr_factors=schedule,
        title=f"{name}: training bound per epoch (grey: lr drops)" if schedule is not None
        else f"{name}: training bound per epoch")
    common.report(f"{name} on {metrics['data']}, {args.epochs} epochs in {seconds:.1f} s",
                  metrics, ["train_bound_first_epoch", "train_bound_last_epoch", "test_elbo",
                            "test_is_ll", "test_nll", "train_elbo", "train_is_ll",
                            "test_ais_ll", "test_is_ll_ais_images",
                            "ais_acceptance",
                            "eval_seconds", "figure", "curve_figure"])
    return common.check_metrics(metrics, ["train_bound_last_epoch", "test_elbo", "test_is_ll"]
                                + (["test_ais_ll"] if args.ais else []))


if __name__ == "__main__":
    common.run_script(main)
