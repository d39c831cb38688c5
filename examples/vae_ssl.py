"""Semi-supervised VAE "M2" (Kingma, Rezende, Mohamed & Welling 2014) on the digits.

Model: ``y ~ Categorical(1/10)`` (one-hot), ``z ~ N(0, I)``,
``x | y, z ~ Bernoulli(logits = MLP([z, y]))``. Recognition: a classifier
``q(y | x) = Cat(softmax(MLP(x)))`` and ``q(z | x, y) = N(MLP([x, y]))``.

* Labelled ``(x, y)``: ``L(x, y) = E_q(z|x,y)[log p(x, y, z) - log q(z | x, y)]``
  (``zs.variational.elbo(...).sgvb()`` with ``y`` observed).
* Unlabelled ``x``: ``U(x) = sum_y q(y | x) L(x, y) + H(q(y | x))``, the sum over the
  ten classes done exactly (every ``x`` is paired with every ``y`` in one batch).
* Classifier: ``alpha * E_labelled[-log q(y | x)]`` with ``alpha = 0.1 N`` (the paper's
  choice), since ``L`` alone does not train ``q(y | x)`` on the labelled data.

Only ``--n-labeled`` training images (default 100, balanced) keep their labels. Reported:
test classification accuracy of ``q(y | x)``, the test bound ``U(x)`` and the
importance-sampled ``log p(x)`` (proposal ``q(y | x) q(z | x, y)``, ``--is-k`` samples).

    python examples/vae_ssl.py [--quick] [--device cpu|gpu] [--n-labeled 100] [--epochs N]

The fixed-binarization MNIST file carries no labels, so ``--data`` is not supported here;
the default networks are 64-200-200-10 (``--z-dim``, ``--hidden``).
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

N_CLASSES = 10


class M2(zs.nn.Module):
    def __init__(self, x_dim, z_dim, hidden, rng=0):
        rng = np.random.default_rng(rng)
        self.x_dim, self.z_dim = x_dim, z_dim
        self.classifier = zs.nn.MLP([x_dim, hidden, hidden, N_CLASSES], activation="relu",
                                    rng=rng)
        self.encoder = zs.nn.MLP([x_dim + N_CLASSES, hidden, hidden, 2 * z_dim],
                                 activation="relu", rng=rng)
        self.decoder = zs.nn.MLP([z_dim + N_CLASSES, hidden, hidden, x_dim],
                                 activation="relu", rng=rng)

    def qz_params(self, x, y):
        h = self.encoder(ad.concatenate([x, y], axis=-1))
        return h[..., :self.z_dim], h[..., self.z_dim:]

    def qz_net(self, x, y, n_particles, rng):
        """``q(z | x, y)`` with ``y`` given: z [K, n, z_dim]."""
        bn = zs.BayesianNet(rng=rng)
        mean, logstd = self.qz_params(x, y)
        bn.normal("z", mean, logstd=logstd, group_ndims=1, n_samples=n_particles)
        return bn

    def qyz_net(self, x, n_particles, rng):
        """``q(y | x) q(z | x, y)``: y [K, n, 10] one-hot, z [K, n, z_dim]."""
        bn = zs.BayesianNet(rng=rng)
        y = bn.onehot_categorical("y", self.classifier(x), n_samples=n_particles,
                                  dtype=np.float32)
        xk = ad.broadcast_to(x, (n_particles,) + tuple(x.shape))
        mean, logstd = self.qz_params(xk, y)
        bn.normal("z", mean, logstd=logstd, group_ndims=1)
        return bn


@zs.meta_bayesian_net(scope="m2")
def build_model(m2, n, n_particles, xp=np, rng=None, observed=None):
    """``p(x, y, z)`` for ``n`` points: y [K, n, 10], z [K, n, z_dim], x [K, n, x_dim]."""
    bn = zs.BayesianNet(observed, rng=rng)
    y = bn.onehot_categorical("y", xp.zeros((n, N_CLASSES), np.float32),
                              n_samples=n_particles, dtype=np.float32)
    z = bn.normal("z", xp.zeros((n, m2.z_dim), np.float32), std=xp.ones((), np.float32),
                  group_ndims=1, n_samples=n_particles)
    yz = ad.broadcast_to(y, tuple(z.shape[:-1]) + (N_CLASSES,))
    bn.deterministic("x_logits", m2.decoder(ad.concatenate([z, yz], axis=-1)))
    bn.bernoulli("x", bn["x_logits"], group_ndims=1, dtype=np.float32)
    return bn


def labeled_bound(m2, x, y, n_particles, rng, xp):
    """``L(x, y)`` per row (mean over ``n_particles`` samples of z)."""
    obj = zs.variational.elbo(build_model(m2, len(x), n_particles, xp=xp), {"x": x, "y": y},
                              variational=m2.qz_net(x, y, n_particles, rng), axis=0)
    return obj


def unlabeled_bound(m2, x, n_particles, rng, xp):
    """``U(x) = sum_y q(y|x) L(x, y) + H(q(y|x))`` per row, and the logits of q(y|x)."""
    n = len(x)
    eye = xp.eye(N_CLASSES, dtype=np.float32)
    x_all = ad.reshape(ad.broadcast_to(x, (N_CLASSES,) + tuple(x.shape)), (N_CLASSES * n, -1))
    y_all = xp.repeat(eye, n, axis=0)                                   # [10 n, 10]
    lb = labeled_bound(m2, x_all, y_all, n_particles, rng, xp).tensor   # [10 n]
    lb = ad.transpose(ad.reshape(lb, (N_CLASSES, n)))                   # [n, 10]
    logits = m2.classifier(x)
    log_qy = ad.log_softmax(logits)
    qy = ad.exp(log_qy)
    return ad.sum(qy * (lb - log_qy), axis=-1), logits


def balanced_subset(y, n_labeled, rng):
    per = max(1, n_labeled // N_CLASSES)
    idx = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:per]
                          for c in range(N_CLASSES)])
    return np.sort(idx)


def main(argv=None):
    p = common.base_parser(__doc__.splitlines()[0])
    p.add_argument("--n-labeled", type=common.number(int, low=N_CLASSES), default=100,
                   help=f"labelled training images, n_labeled // {N_CLASSES} per class")
    p.add_argument("--alpha", type=common.positive_float, default=None,
                   help="weight of the classification cost (default 0.1 * N_train)")
    args = p.parse_args(argv)
    if args.data is not None:
        raise SystemExit("vae_ssl.py: --data is not supported (binarized_mnist.npz has no "
                         "labels); the example runs on the scikit-learn digits")
    common.fill_defaults(args, z_dim=10, epochs=(200, 50, 15))
    with common.blas_threads(args.blas_threads):
        return run(args)


def run(args):
    x_tr, y_tr, x_te, y_te = common.load_binary(args, with_labels=True)
    lab = balanced_subset(y_tr, args.n_labeled, np.random.default_rng(args.seed + 2))
    wanted = args.n_labeled // N_CLASSES * N_CLASSES
    if len(lab) < wanted:
        raise SystemExit(f"vae_ssl.py: --n-labeled {args.n_labeled} asks for "
                         f"{args.n_labeled // N_CLASSES} images per class, but the "
                         f"{len(y_tr)} training images have only {len(lab)} to pick from "
                         f"(fewer labels or a larger --n-train)")
    dev = args.device
    x_train, x_test = common.to_dev(x_tr, dev), common.to_dev(x_te, dev)
    xp = backend.get_array_module(x_train)
    eye = np.eye(N_CLASSES, dtype=np.float32)
    x_lab, y_lab = x_train[lab], common.to_dev(eye[y_tr[lab]], dev)
    alpha = 0.1 * len(x_tr) if args.alpha is None else args.alpha
    rng = common.make_rng(args.seed, dev)
    m2 = M2(x_train.shape[1], args.z_dim, args.hidden, rng=args.seed)
    if dev == "gpu":
        m2.to("gpu")
    pick = np.random.default_rng(args.seed + 4)
    lab_batch = min(len(lab), args.batch_size)

    def step(x, epoch):
        i = pick.choice(len(lab), lab_batch, replace=False)
        xl, yl = x_lab[i], y_lab[i]
        lb_l = ad.mean(labeled_bound(m2, xl, yl, 1, rng, xp).tensor)
        lb_u, _ = unlabeled_bound(m2, x, 1, rng, xp)
        lb_u = ad.mean(lb_u)
        log_qy = ad.log_softmax(m2.classifier(xl))
        ce = -ad.mean(ad.sum(yl * log_qy, axis=-1))
        cost = -(lb_l + lb_u) + alpha * ce
        return {"cost": cost, "labeled_bound": float(lb_l.data),
                "unlabeled_bound": float(lb_u.data), "classifier_ce": float(ce.data)}

    history, seconds = common.train(step, x_train, args, m2.parameters(), desc="M2",
                                    rngs=(rng, pick))

    start = time.perf_counter()
    with ad.no_grad():
        pred = backend.asnumpy(xp.argmax(m2.classifier(x_test).data, axis=-1))
    accuracy = float(np.mean(pred == y_te))

    def test_u(x):
        return unlabeled_bound(m2, x, 10, rng, xp)[0]

    def test_ll(x):
        return zs.evaluation.is_loglikelihood(build_model(m2, len(x), args.is_k, xp=xp),
                                              {"x": x}, proposal=m2.qyz_net(x, args.is_k, rng),
                                              axis=0)
    is_batch = max(1, int(1e7 // (args.is_k * args.hidden)))
    metrics = {"unlabeled_bound_first_epoch": history["unlabeled_bound"][0],
               "unlabeled_bound_last_epoch": history["unlabeled_bound"][-1],
               "labeled_bound_first_epoch": history["labeled_bound"][0],
               "labeled_bound_last_epoch": history["labeled_bound"][-1],
               "classifier_ce_first_epoch": history["classifier_ce"][0],
               "classifier_ce_last_epoch": history["classifier_ce"][-1],
               "unlabeled_bound_per_epoch": history["unlabeled_bound"],
               "train_seconds": seconds, "epochs": args.epochs, "n_labeled": int(len(lab)),
               "test_accuracy": accuracy,
               "test_elbo": common.batched_mean(test_u, x_test, 200),
               "test_is_ll": common.batched_mean(test_ll, x_test, is_batch),
               "is_k": args.is_k, "n_test": int(len(x_test))}
    metrics["eval_seconds"] = time.perf_counter() - start
    metrics["test_nll"] = -metrics["test_is_ll"]

    # figure: test images, reconstructions with the predicted class, and one row of
    # "analogies": the style z of a test image rendered as every class 0..9
    with ad.no_grad():
        x_show = x_test[:16]
        y_hat = common.to_dev(eye[pred[:16]], dev)
        recon = ad.sigmoid(m2.decoder(ad.concatenate(
            [m2.qz_params(x_show, y_hat)[0], y_hat], axis=-1))).data
        rows = [("data", x_show), ("reconstruction", recon)]
        for j in range(3):
            zj = m2.qz_params(x_show[j:j + 1], y_hat[j:j + 1])[0].data
            zs_ = xp.repeat(zj, N_CLASSES, axis=0)
            styles = ad.sigmoid(m2.decoder(ad.concatenate(
                [zs_, common.to_dev(eye, dev)], axis=-1))).data
            rows.append((f"style of #{j}, y=0..9", styles))
    path = common.figure_path(args.out, "vae_ssl.png")
    common.plot_rows(rows, path, title=f"M2 with {len(lab)} labels: test accuracy "
                                       f"{accuracy:.3f}, log p(x) = {metrics['test_is_ll']:.2f}")
    metrics["figure"] = path
    common.report(f"M2 on digits ({len(lab)} labels), {args.epochs} epochs in {seconds:.1f} s",
                  metrics, ["unlabeled_bound_first_epoch", "unlabeled_bound_last_epoch",
                            "classifier_ce_last_epoch", "test_accuracy", "test_elbo",
                            "test_is_ll", "test_nll", "eval_seconds", "figure"])
    return common.check_metrics(metrics, ["unlabeled_bound_last_epoch", "test_accuracy",
                                          "test_elbo", "test_is_ll"])


if __name__ == "__main__":
    common.run_script(main)
