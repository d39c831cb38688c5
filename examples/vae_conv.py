"""A convolutional VAE: conv encoder, transposed-conv decoder, Bernoulli likelihood.

Same model, objective and evaluation as ``vae.py`` (its ``build_model`` and ``evaluate``
are reused: z ~ N(0, I), x ~ Bernoulli(logits = decoder(z)), trained by SGVB, test ELBO
and importance-sampled log-likelihood with k = 1000), with convolutional networks built
on ``autodiff.conv2d`` / ``autodiff.conv_transpose2d`` (NCHW, PyTorch's weight layouts):

* encoder: x [n, 1, S, S] -> conv 3x3 (C, stride 1) -> ReLU -> conv 4x4 (2C, stride 2)
  -> ReLU -> conv 4x4 (2C, stride 2) -> ReLU -> linear -> (mean, log sd) of q(z | x);
* decoder: z -> linear -> ReLU -> [2C, S/4, S/4] -> transposed conv 4x4 (2C, stride 2)
  -> ReLU -> transposed conv 4x4 (C, stride 2) -> ReLU -> conv 3x3 (1) -> logits [S * S];

C = ``--channels`` (16 on the digits, 32 on MNIST).

Data as in the other VAE examples (``_vae_common.load_binary``): scikit-learn's digits
thresholded at 0.5 (S = 8: binary pixels, not a continuous Bernoulli, so the numbers
compare with ``vae.py``'s table), or ``--data`` the fixed binarization of MNIST (S = 28;
7 x 7 after the two strided convolutions).

    python examples/vae_conv.py [--quick] [--data ../shared/data/mnist/binarized_mnist.npz]
        [--epochs 300] [--z-dim 10] [--channels 32] [--is-k 1000]
"""
import math
import time

import numpy as np

import autodiff as ad
import zsarray as zs

try:
    from examples import _vae_common as common
    from examples import vae as mlp_vae
except ImportError:  # run as a script from inside examples/
    import _vae_common as common
    import vae as mlp_vae


def _uniform(rng, shape, fan_in):
    """PyTorch's default init of conv and linear weights, U(-1/sqrt(fan_in), +)."""
    bound = 1 / math.sqrt(fan_in)
    return ad.tensor(rng.uniform(-bound, bound, shape).astype(np.float32), requires_grad=True)


def _conv_params(rng, c_out, c_in, k, transpose=False):
    """Weight and bias of a k x k conv (``[c_out, c_in, k, k]``) or transposed conv
    (``[c_in, c_out, k, k]``), PyTorch's init (fan_in = weight.shape[1] * k * k)."""
    shape = (c_in, c_out, k, k) if transpose else (c_out, c_in, k, k)
    fan_in = shape[1] * k * k
    return _uniform(rng, shape, fan_in), _uniform(rng, (c_out,), fan_in)


class ConvVAE(zs.nn.Module):
    """The encoder and decoder networks (see the module docstring) for S x S images."""

    def __init__(self, side, z_dim, channels=32, rng=0):
        if side % 4:
            raise ValueError(f"ConvVAE: the image side must be a multiple of 4, got {side}")
        rng = np.random.default_rng(rng)
        c1, c2 = channels, 2 * channels
        self.side, self.z_dim, self.c2 = side, z_dim, c2
        self.x_dim = side * side
        flat = c2 * (side // 4) ** 2
        # encoder
        self.e1_w, self.e1_b = _conv_params(rng, c1, 1, 3)
        self.e2_w, self.e2_b = _conv_params(rng, c2, c1, 4)
        self.e3_w, self.e3_b = _conv_params(rng, c2, c2, 4)
        self.e_out = zs.nn.Linear(flat, 2 * z_dim, rng=rng)
        # decoder
        self.d_in = zs.nn.Linear(z_dim, flat, rng=rng)
        self.d1_w, self.d1_b = _conv_params(rng, c2, c2, 4, transpose=True)
        self.d2_w, self.d2_b = _conv_params(rng, c1, c2, 4, transpose=True)
        self.d3_w, self.d3_b = _conv_params(rng, 1, c1, 3)

    def posterior_params(self, x):
        """``x [n, S*S] -> (mean, log sd)``, each [n, z_dim]."""
        h = ad.reshape(x, (x.shape[0], 1, self.side, self.side))
        h = ad.relu(ad.conv2d(h, self.e1_w, self.e1_b, padding=1))
        h = ad.relu(ad.conv2d(h, self.e2_w, self.e2_b, stride=2, padding=1))
        h = ad.relu(ad.conv2d(h, self.e3_w, self.e3_b, stride=2, padding=1))
        out = self.e_out(ad.reshape(h, (x.shape[0], -1)))
        return out[..., :self.z_dim], out[..., self.z_dim:]

    def decoder(self, z):
        """``z [..., z_dim] -> logits [..., S*S]`` (leading axes flattened through the convs)."""
        lead = tuple(z.shape[:-1])
        n = int(np.prod(lead))
        q = self.side // 4
        h = ad.relu(self.d_in(ad.reshape(z, (n, self.z_dim))))
        h = ad.reshape(h, (n, self.c2, q, q))
        h = ad.relu(ad.conv_transpose2d(h, self.d1_w, self.d1_b, stride=2, padding=1))
        h = ad.relu(ad.conv_transpose2d(h, self.d2_w, self.d2_b, stride=2, padding=1))
        h = ad.conv2d(h, self.d3_w, self.d3_b, padding=1)
        return ad.reshape(h, lead + (self.x_dim,))

    def q_net(self, x, n_particles, rng):
        """``q(z | x)`` with ``n_particles`` samples per row: z [K, n, z_dim]."""
        bn = zs.BayesianNet(rng=rng)
        mean, logstd = self.posterior_params(x)
        bn.normal("z", mean, logstd=logstd, group_ndims=1, n_samples=n_particles)
        return bn


def parse(argv):
    p = common.base_parser(__doc__.splitlines()[0])
    p.add_argument("--channels", type=common.positive_int, default=None,
                   help="channels of the first conv layer, the others have twice as many "
                        "(default 16 on digits, 32 on MNIST)")
    args = p.parse_args(argv)
    if args.channels is None:
        args.channels = 32 if common.is_mnist(args) else 16
    if args.quick and args.n_test is None and not common.is_mnist(args):
        args.n_test = 100
    common.fill_defaults(args, z_dim=10, epochs=(300, 50, 15), mnist_z_dim=40)
    if args.device != "cpu":
        p.error("--device gpu: not run yet with the conv ops on CuPy; use --device cpu")
    args.ais = False
    return args


def main(argv=None):
    args = parse(argv)
    with common.blas_threads(args.blas_threads):
        return run(args)


def run(args):
    x_train_np, x_test_np = common.load_binary(args)
    x_train = common.to_dev(x_train_np, args.device)
    x_test = common.to_dev(x_test_np, args.device)
    side = int(round(math.sqrt(x_train.shape[1])))
    rng = common.make_rng(args.seed, "cpu")
    vae = ConvVAE(side, args.z_dim, args.channels, rng=args.seed)

    def cost(x):
        model = mlp_vae.build_model(vae, x.shape[0], 1, xp=np)
        return zs.variational.elbo(model, {"x": x}, variational=vae.q_net(x, 1, rng),
                                   axis=0).sgvb()

    def step(x, epoch):
        c = cost(x)
        return {"cost": c, "bound": -float(c.data)}

    history, seconds = common.train(step, x_train, args, vae.parameters(), desc="conv VAE",
                                    rngs=(rng,), cost=cost)
    metrics = {"train_bound_first_epoch": history["bound"][0],
               "train_bound_last_epoch": history["bound"][-1],
               "bound_per_epoch": history["bound"], "train_seconds": seconds,
               "epochs": args.epochs, "data": "mnist" if common.is_mnist(args) else "digits",
               "n_test": int(len(x_test)), "is_k": args.is_k,
               "n_params": int(sum(p.data.size for p in vae.parameters()))}
    start = time.perf_counter()
    # vae.evaluate sizes its IS batches by args.hidden (floats per sample per layer): here
    # the largest activation per sample is the decoder's last [channels, S, S]
    args.hidden = args.channels * side * side
    metrics.update(mlp_vae.evaluate(vae, x_test, args, np, rng, False))
    metrics["eval_seconds"] = time.perf_counter() - start
    metrics["test_nll"] = -metrics["test_is_ll"]

    with ad.no_grad():
        x_show = x_test[:16]
        recon = ad.sigmoid(vae.decoder(vae.posterior_params(x_show)[0])).data
        gen = mlp_vae.build_model(vae, 16, None, xp=np, rng=args.seed + 3).observe()
        samples = ad.sigmoid(gen["x_logits"].tensor).data
    path = common.figure_path(args.out, f"vae_conv_{metrics['data']}.png")
    common.plot_rows([("data", x_show), ("reconstruction", recon), ("prior samples", samples)],
                     path, title=f"conv VAE, test log p(x) = {metrics['test_is_ll']:.2f} nats")
    metrics["figure"] = path
    metrics["curve_figure"] = common.plot_curve({"train bound": history["bound"]},
                                                path[:-4] + "_curve.png",
                                                title="conv VAE: training ELBO per epoch")
    common.report(f"conv VAE on {metrics['data']} ({metrics['n_params']} parameters), "
                  f"{args.epochs} epochs in {seconds:.1f} s", metrics,
                  ["train_bound_first_epoch", "train_bound_last_epoch", "test_elbo",
                   "test_is_ll", "test_nll", "eval_seconds", "figure", "curve_figure"])
    return common.check_metrics(metrics, ["train_bound_last_epoch", "test_elbo", "test_is_ll"])


if __name__ == "__main__":
    common.run_script(main)
