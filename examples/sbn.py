"""Sigmoid belief network (Neal 1992) trained with VIMCO (Mnih & Rezende 2016) or with
reweighted wake-sleep (Bornschein & Bengio 2015).

Model (two stochastic layers of binary units, linear sigmoid links):
``z2 ~ Bernoulli(sigmoid(b))``, ``z1 | z2 ~ Bernoulli(sigmoid(W2 z2 + c2))``,
``x | z1 ~ Bernoulli(sigmoid(W1 z1 + c1))``; the recognition net mirrors it:
``q(z1 | x) q(z2 | z1)``.

``--method vimco``: model and recognition net both ascend the importance-weighted bound
``L_K`` (``zs.variational.iw_objective(...).vimco()``: score-function gradients with
VIMCO's leave-one-out control variates).

``--method rws``: the model ascends ``L_K`` with ``z`` held fixed (gradient
``sum_k w~_k grad log p(x, z_k)``); the recognition net minimises the inclusive
``KL(p(z | x) || q(z | x))`` by self-normalized importance sampling
(``zs.variational.klpq(...).importance()``, the wake-phase q update).

    python examples/sbn.py [--quick] [--device cpu|gpu] [--data binarized_mnist.npz]
        [--method vimco|rws] [--k 10] [--layers 50,10] [--epochs N]

Defaults: digits with layers 64-50-10; MNIST with 784-200-200. Evaluation: the
importance-sampled test log-likelihood with ``--is-k`` samples from q (AIS needs
continuous latents, so it is not offered for this discrete model).
"""
import time

import numpy as np

import autodiff as ad
import zsarray as zs
from autodiff import backend
from zsarray.variational import log_mean_exp

try:
    from examples import _vae_common as common
except ImportError:  # run as a script from inside examples/
    import _vae_common as common


class SBN(zs.nn.Module):
    """Generative links ``z2 -> z1 -> x`` and recognition links ``x -> z1 -> z2``."""

    def __init__(self, x_dim, layers, rng=0):
        rng = np.random.default_rng(rng)
        self.x_dim, self.layers = x_dim, tuple(layers)
        h1, h2 = self.layers
        self.top_logits = ad.tensor(np.zeros(h2, np.float32), requires_grad=True)
        self.p_z1 = zs.nn.Linear(h2, h1, rng=rng)
        self.p_x = zs.nn.Linear(h1, x_dim, rng=rng)
        self.q_z1 = zs.nn.Linear(x_dim, h1, rng=rng)
        self.q_z2 = zs.nn.Linear(h1, h2, rng=rng)

    def model_parameters(self):
        return [self.top_logits] + self.p_z1.parameters() + self.p_x.parameters()

    def q_net(self, x, n_particles, rng):
        bn = zs.BayesianNet(rng=rng)
        z1 = bn.bernoulli("z1", self.q_z1(x), group_ndims=1, n_samples=n_particles,
                          dtype=np.float32)
        bn.bernoulli("z2", self.q_z2(z1), group_ndims=1, dtype=np.float32)
        return bn


@zs.meta_bayesian_net(scope="sbn")
def build_model(sbn, n, n_particles, xp=np, rng=None, observed=None):
    """``p(x, z1, z2)``: z1 [K, n, h1], z2 [K, n, h2], x [K, n, x_dim]."""
    bn = zs.BayesianNet(observed, rng=rng)
    top = sbn.top_logits + xp.zeros((n, sbn.layers[1]), np.float32)
    z2 = bn.bernoulli("z2", top, group_ndims=1, n_samples=n_particles, dtype=np.float32)
    z1 = bn.bernoulli("z1", sbn.p_z1(z2), group_ndims=1, dtype=np.float32)
    bn.deterministic("x_logits", sbn.p_x(z1))
    bn.bernoulli("x", bn["x_logits"], group_ndims=1, dtype=np.float32)
    return bn


def main(argv=None):
    # linear SBNs with score-function gradients like a larger step: lr 3e-3
    p = common.base_parser(__doc__.splitlines()[0], lr=3e-3)
    p.add_argument("--method", choices=("vimco", "rws"), default="vimco")
    p.add_argument("--k", type=common.number(int, low=2), default=10,
                   help="samples per data point (K >= 2)")
    p.add_argument("--layers", type=common.int_list(2), default=None,
                   help="sizes of the stochastic layers z1,z2 (default 50,10 on digits, "
                        "200,200 on MNIST)")
    args = p.parse_args(argv)
    common.fill_defaults(args, epochs=(300, 50, 20), lr=3e-3)
    if args.layers is None:
        args.layers = [200, 200] if common.is_mnist(args) else [50, 10]
    with common.blas_threads(args.blas_threads):
        return run(args)


def run(args):
    x_train_np, x_test_np = common.load_binary(args)
    x_train = common.to_dev(x_train_np, args.device)
    x_test = common.to_dev(x_test_np, args.device)
    xp = backend.get_array_module(x_train)
    rng = common.make_rng(args.seed, args.device)
    sbn = SBN(x_train.shape[1], args.layers, rng=args.seed)
    if args.device == "gpu":
        sbn.to("gpu")

    def step(x, epoch):
        model = build_model(sbn, len(x), args.k, xp=xp)
        q = sbn.q_net(x, args.k, rng)
        if args.method == "vimco":
            obj = zs.variational.iw_objective(model, {"x": x}, variational=q, axis=0)
            cost = obj.vimco()
            with ad.no_grad():
                bound = float(ad.mean(obj.tensor).data)
            return {"cost": cost, "bound": bound}
        # RWS. Model: -L_K with log q held constant (the samples are discrete, so this
        # differentiates only log p(x, z_k), weighted by the normalized weights).
        log_p = zs.variational.iw_objective(model, {"x": x}, variational=q, axis=0) \
            .bn.log_joint()
        log_q = q["z1"].cond_log_p + q["z2"].cond_log_p
        lower = log_mean_exp(log_p - ad.stop_gradient(log_q), axis=0)
        model_cost = -ad.mean(lower)
        # Recognition net: the inclusive KL by self-normalized importance sampling.
        q_cost = zs.variational.klpq(model, {"x": x}, variational=q, axis=0).importance()
        return {"cost": model_cost + q_cost, "bound": -float(model_cost.data),
                "q_cost": float(q_cost.data)}

    name = f"SBN {args.layers} ({args.method.upper()}, K={args.k})"
    history, seconds = common.train(step, x_train, args, sbn.parameters(), desc=name,
                                    rngs=(rng,))

    def test_ll(x):
        return zs.evaluation.is_loglikelihood(build_model(sbn, len(x), args.is_k, xp=xp),
                                              {"x": x}, proposal=sbn.q_net(x, args.is_k, rng),
                                              axis=0)

    def test_elbo(x):
        return zs.variational.elbo(build_model(sbn, len(x), 10, xp=xp), {"x": x},
                                   variational=sbn.q_net(x, 10, rng), axis=0).tensor

    def test_bound(x):
        return zs.variational.iw_objective(build_model(sbn, len(x), args.k, xp=xp), {"x": x},
                                           variational=sbn.q_net(x, args.k, rng),
                                           axis=0).tensor
    start = time.perf_counter()
    is_batch = max(1, int(1e7 // (args.is_k * max(args.layers + [x_train.shape[1]]))))
    metrics = {"bound_first_epoch": history["bound"][0], "bound_last_epoch": history["bound"][-1],
               "cost_first_epoch": -history["bound"][0], "cost_last_epoch": -history["bound"][-1],
               "bound_per_epoch": history["bound"], "train_seconds": seconds,
               "method": args.method, "k": args.k, "epochs": args.epochs,
               "data": "mnist" if common.is_mnist(args) else "digits",
               "test_elbo": common.batched_mean(test_elbo, x_test, 500),
               "test_bound_k": common.batched_mean(test_bound, x_test, 500),
               "test_is_ll": common.batched_mean(test_ll, x_test, is_batch),
               "is_k": args.is_k, "n_test": int(len(x_test))}
    if "q_cost" in history:
        metrics["q_cost_first_epoch"] = history["q_cost"][0]
        metrics["q_cost_last_epoch"] = history["q_cost"][-1]
    metrics["eval_seconds"] = time.perf_counter() - start
    metrics["test_nll"] = -metrics["test_is_ll"]

    with ad.no_grad():
        x_show = x_test[:16]
        q = sbn.q_net(x_show, None, rng)
        recon = ad.sigmoid(sbn.p_x(q["z1"].tensor)).data
        gen = build_model(sbn, 16, None, xp=xp, rng=args.seed + 3).observe()
        samples = ad.sigmoid(gen["x_logits"].tensor).data
    path = common.figure_path(args.out, f"sbn_{args.method}.png")
    common.plot_rows([("data", x_show), ("reconstruction", recon), ("samples", samples)],
                     path, title=f"{name}, test log p(x) = {metrics['test_is_ll']:.2f} nats")
    metrics["figure"] = path
    common.report(f"{name} on {metrics['data']}, {args.epochs} epochs in {seconds:.1f} s",
                  metrics, ["bound_first_epoch", "bound_last_epoch", "q_cost_first_epoch",
                            "q_cost_last_epoch", "test_elbo", "test_bound_k", "test_is_ll",
                            "test_nll", "eval_seconds", "figure"])
    return common.check_metrics(metrics, ["bound_last_epoch", "test_elbo", "test_bound_k",
                                          "test_is_ll"])


if __name__ == "__main__":
    common.run_script(main)
