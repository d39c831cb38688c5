"""Sparse variational Gaussian-process regression (SVGP; Hensman et al. 2013, 2015).

Model: f ~ GP(0, k) with an ARD RBF kernel ``k(x, x') = s^2 exp(-1/2 sum_d ((x_d - x'_d)
/ l_d)^2)`` (lengthscales ``l`` and variance ``s^2`` learned), ``y_n ~ N(f(x_n), noise^2)``.
M = 100 inducing inputs Z (learned) carry ``u = f(Z)``, written in the whitened form
``u = L_Z v`` (``L_Z = cholesky(K_ZZ)``, Hensman et al. 2015) with ``q(v) = N(m, S)``,
``S = L L^T`` and L a lower-triangular parameter with a positive diagonal. The minibatch
ELBO uses the analytic Gaussian expectation

    E_q[log N(y_n | f_n, noise^2)] = log N(y_n | mu_n, noise^2) - var_n / (2 noise^2),
    mu_n = a_n^T m,   var_n = k(x_n, x_n) - |a_n|^2 + |L^T a_n|^2,   a_n = L_Z^{-1} k(Z, x_n),

    ELBO ~= (N / B) sum_{n in batch} E_q[log p(y_n | f_n)] - KL(N(m, S) || N(0, I)),

built with ``ad.cholesky`` and ``ad.solve_triangular`` and maximized with
``zs.optim.Adam`` over all of m, L, Z, kernel and noise parameters.

The default data is a generated 1-D regression problem (2000 noisy observations of a wiggly
function, with a gap in the inputs so the predictive band widens there); ``--data diabetes``
uses scikit-learn's diabetes data (442 x 10), and ``--data file.csv`` any CSV whose last
column is the target. Reported: test RMSE (against the constant train-mean predictor) and
the mean test log-likelihood of the predictive ``N(mu_n, var_n + noise^2)``.

    python examples/svgp.py [--quick] [--device cpu|gpu] [--data diabetes|file.csv]
        [--inducing 100] [--steps 4000] [--batch 256] [--lr 0.01] [--out outputs]
"""
import math
import time

import numpy as np

import autodiff as ad
import zsarray as zs
from autodiff import backend

try:
    from examples._common import (blas_threads, check_metrics, existing_file, figure_path,
                                  fill_quick, parser, positive_float, positive_int, run_script,
                                  to_device)
except ImportError:  # run as a script from inside examples/
    from _common import (blas_threads, check_metrics, existing_file, figure_path, fill_quick,
                         parser, positive_float, positive_int, run_script, to_device)


# --------------------------------------------------------------------------- data
def true_function(x):
    return np.sin(3.0 * x) + 0.5 * np.cos(7.0 * x) * np.exp(-0.1 * x ** 2) + 0.2 * x


def generate_1d(n_train=2000, n_test=500, noise_std=0.3, seed=0):
    """y = f(x) + noise on x in [-3, 3] with the gap (0.8, 1.6) left out of the training set."""
    rng = np.random.default_rng(seed)

    def draw(n):
        x = rng.uniform(-3.0, 3.0, 3 * n)
        x = x[(x < 0.8) | (x > 1.6)][:n]
        return x[:, None], true_function(x) + noise_std * rng.normal(size=n)
    x_tr, y_tr = draw(n_train)
    x_te, y_te = draw(n_test)
    return x_tr, y_tr, x_te, y_te


def load_data(name, seed=0, test_fraction=0.2):
    if name is None:
        return generate_1d(seed=seed)
    if name == "diabetes":
        from sklearn.datasets import load_diabetes
        x, y = load_diabetes(return_X_y=True)
    else:
        table = np.loadtxt(name, delimiter=",")
        x, y = table[:, :-1], table[:, -1]
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = int(round(test_fraction * len(y)))
    te, tr = order[:n_test], order[n_test:]
    return x[tr], y[tr], x[te], y[te]


# --------------------------------------------------------------------------- model
class SVGP:
    """Parameters of the whitened SVGP and its ELBO / predictive (autodiff Tensors)."""

    def __init__(self, z, dim, device, jitter=1e-4):
        m = z.shape[0]
        t = lambda a: ad.tensor(to_device(a, device), requires_grad=True)  # noqa: E731
        self.z = t(z)                                   # inducing inputs [M, D]
        self.log_lengthscale = t(np.zeros(dim))
        self.log_variance = t(np.zeros(()))
        self.log_noise = t(np.full((), math.log(0.3)))
        self.q_mean = t(np.zeros(m))                    # m
        self.q_tril = t(np.zeros((m, m)))               # strictly lower part of L
        self.q_log_diag = t(np.zeros(m))                # log diag(L)
        xp = backend.get_array_module(self.z.data)
        self.eye = xp.eye(m)
        self.jitter = jitter

    def parameters(self):
        return [self.z, self.log_lengthscale, self.log_variance, self.log_noise, self.q_mean,
                self.q_tril, self.q_log_diag]

    def kernel(self, a, b):
        """ARD RBF kernel matrix k(a, b) [A, B]."""
        ls = ad.exp(self.log_lengthscale)
        a, b = a / ls, b / ls
        sq = (ad.sum(a * a, axis=1)[:, None] + ad.sum(b * b, axis=1)[None, :]
              - 2.0 * (a @ ad.transpose(b)))
        return ad.exp(self.log_variance - 0.5 * ad.maximum(sq, 0.0))

    def q_sqrt(self):
        """L: lower triangular with a positive diagonal, S = L L^T."""
        return ad.tril(self.q_tril, -1) + self.eye * ad.exp(self.q_log_diag)

    def predict_f(self, x):
        """Mean and variance of q(f(x)) for x [B, D]: two [B] Tensors."""
        kzz = self.kernel(self.z, self.z) + self.jitter * self.eye
        lz = ad.cholesky(kzz)
        a = ad.solve_triangular(lz, self.kernel(self.z, x), lower=True)      # [M, B]
        mean = self.q_mean @ a
        lta = ad.transpose(self.q_sqrt()) @ a
        var = (ad.exp(self.log_variance) - ad.sum(a * a, axis=0)
               + ad.sum(lta * lta, axis=0))
        return mean, var

    def kl(self):
        """KL(N(m, L L^T) || N(0, I))."""
        lq = self.q_sqrt()
        m = self.q_mean.shape[0]
        return 0.5 * (ad.sum(lq * lq) + ad.sum(self.q_mean * self.q_mean) - m
                      - 2.0 * ad.sum(self.q_log_diag))

    def elbo(self, x, y, n_total):
        """Minibatch estimate of the ELBO (unbiased for the full-data one)."""
        mean, var = self.predict_f(x)
        noise2 = ad.exp(2.0 * self.log_noise)
        resid = y - mean
        ell = (-0.5 * math.log(2 * math.pi) - self.log_noise
               - 0.5 * (resid * resid + var) / noise2)
        return n_total / y.shape[0] * ad.sum(ell) - self.kl()

    def predict_y(self, x, batch=1000):
        """Predictive mean and variance (noise included) as raw arrays."""
        xp = backend.get_array_module(self.z.data)
        means, variances = [], []
        with ad.no_grad():
            for i in range(0, x.shape[0], batch):
                mu, var = self.predict_f(x[i:i + batch])
                means.append(mu.data)
                variances.append(xp.maximum(var.data, 0.0)
                                 + float(np.exp(2 * float(self.log_noise.data))))
        return xp.concatenate(means), xp.concatenate(variances)


def train(model, x, y, n_steps, batch, lr, seed=0, progress=True):
    from tqdm.auto import tqdm
    xp = backend.get_array_module(x)
    optimizer = zs.optim.Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    n = x.shape[0]
    history = []
    bar = tqdm(range(n_steps), desc="SVGP", disable=None if progress else True,
               leave=False)
    for step in bar:
        idx = xp.asarray(rng.choice(n, size=min(batch, n), replace=False))
        optimizer.zero_grad()
        loss = -model.elbo(x[idx], y[idx], n) / n
        loss.backward()
        optimizer.step()
        history.append(-float(loss.data))
        if step % 50 == 0:
            bar.set_postfix(elbo_per_point=f"{history[-1]:.3f}")
    bar.close()
    return history


# --------------------------------------------------------------------------- figure
def plot(x_tr, y_tr, x_te, y_te, model, x_mean, x_std, y_mean, y_std, history, device, path,
         show_truth=False):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [2.2, 1]})
    ax = axes[0]
    z = backend.asnumpy(model.z.data) * x_std + x_mean
    if x_tr.shape[1] == 1:
        grid = np.linspace(x_tr.min() - 0.3, x_tr.max() + 0.3, 400)[:, None]
        mu, var = model.predict_y(to_device((grid - x_mean) / x_std, device))
        mu = backend.asnumpy(mu) * y_std + y_mean
        sd = np.sqrt(backend.asnumpy(var)) * y_std
        ax.scatter(x_tr[:, 0], y_tr, s=3, alpha=0.25, color="gray", label="training data")
        ax.plot(grid[:, 0], mu, color="C0", label="predictive mean")
        ax.fill_between(grid[:, 0], mu - 2 * sd, mu + 2 * sd, color="C0", alpha=0.25,
                        label="mean +- 2 sd")
        if show_truth:
            ax.plot(grid[:, 0], true_function(grid[:, 0]), "k--", lw=0.8, label="true f")
        lo = ax.get_ylim()[0]
        ax.plot(z[:, 0], np.full(len(z), lo), "|", color="C3", ms=12,
                label="inducing inputs")
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        ax.set_title(f"SVGP predictive, M = {len(z)} inducing points")
        ax.legend(fontsize=8, loc="upper left")
    else:
        mu, var = model.predict_y(to_device((x_te - x_mean) / x_std, device))
        mu = backend.asnumpy(mu) * y_std + y_mean
        sd = np.sqrt(backend.asnumpy(var)) * y_std
        ax.errorbar(y_te, mu, yerr=2 * sd, fmt="o", ms=3, alpha=0.5, lw=0.6)
        lim = [y_te.min(), y_te.max()]
        ax.plot(lim, lim, "k--", lw=0.8)
        ax.set_xlabel("test target")
        ax.set_ylabel("predictive mean +- 2 sd")
        ax.set_title("SVGP test predictions")
    axes[1].plot(history, lw=0.5)
    axes[1].set_xlabel("Adam step")
    axes[1].set_ylabel("minibatch ELBO / N")
    axes[1].set_ylim(np.percentile(history, 2), max(history) + 0.05 * abs(max(history)))
    axes[1].set_title("training objective")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# --------------------------------------------------------------------------- main
def main(argv=None):
    p = parser(__doc__.splitlines()[0], blas_option=True)
    p.add_argument("--data", type=existing_file("diabetes"), default=None,
                   help="'diabetes' (scikit-learn) or a CSV whose last column is the target "
                        "(default: generated 1-D data)")
    p.add_argument("--inducing", type=positive_int, default=100,
                   help="number of inducing points M")
    p.add_argument("--steps", type=positive_int, default=None,
                   help="Adam steps (default 4000; 800 with --quick)")
    p.add_argument("--batch", type=positive_int, default=256, help="minibatch size")
    p.add_argument("--lr", type=positive_float, default=0.01)
    args = p.parse_args(argv)
    fill_quick(args, quick={"steps": 800}, full={"steps": 4000})
    with blas_threads(args.blas_threads):
        return _run(args)


def _run(args):
    x_tr, y_tr, x_te, y_te = load_data(args.data, seed=args.seed)
    x_mean, x_std = x_tr.mean(0), x_tr.std(0)
    x_std[x_std == 0] = 1.0
    y_mean, y_std = y_tr.mean(), y_tr.std()
    xs = to_device((x_tr - x_mean) / x_std, args.device)
    ys = to_device((y_tr - y_mean) / y_std, args.device)
    m = min(args.inducing, len(y_tr))
    rng = np.random.default_rng(args.seed)
    z0 = ((x_tr - x_mean) / x_std)[rng.choice(len(y_tr), m, replace=False)]
    model = SVGP(z0, x_tr.shape[1], args.device)
    print(f"data: {len(y_tr)} training / {len(y_te)} test points, {x_tr.shape[1]} inputs; "
          f"{m} inducing points")

    start = time.perf_counter()
    history = train(model, xs, ys, args.steps, args.batch, args.lr, seed=args.seed,
                    progress=not args.no_progress)
    elapsed = time.perf_counter() - start

    mu, var = model.predict_y(to_device((x_te - x_mean) / x_std, args.device))
    mu = backend.asnumpy(mu) * y_std + y_mean
    var = backend.asnumpy(var) * y_std ** 2
    test_rmse = float(np.sqrt(np.mean((mu - y_te) ** 2)))
    const_rmse = float(np.sqrt(np.mean((y_mean - y_te) ** 2)))
    test_ll = float(np.mean(-0.5 * np.log(2 * np.pi * var) - 0.5 * (y_te - mu) ** 2 / var))
    const_ll = float(np.mean(-0.5 * np.log(2 * np.pi * y_std ** 2)
                             - 0.5 * (y_te - y_mean) ** 2 / y_std ** 2))
    lengthscales = np.exp(backend.asnumpy(model.log_lengthscale.data)) * x_std
    noise = float(np.exp(float(model.log_noise.data))) * y_std

    metrics = {"rmse": test_rmse, "constant_rmse": const_rmse, "test_loglik": test_ll,
               "constant_loglik": const_ll, "elbo_per_point": float(np.mean(history[-50:])),
               "noise_std": noise, "seconds": elapsed}
    print(f"\n{args.steps} Adam steps (batch {args.batch}) in {elapsed:.1f} s; "
          f"final ELBO / N {metrics['elbo_per_point']:.3f}")
    print(f"test RMSE {test_rmse:.4f} (constant predictor {const_rmse:.4f}); "
          f"test log-likelihood per point {test_ll:.4f} (constant Gaussian {const_ll:.4f})")
    print("learned noise sd {:.3f}, kernel sd {:.3f}, lengthscales {}".format(
        noise, float(np.exp(0.5 * float(model.log_variance.data))) * y_std,
        np.array2string(lengthscales, precision=3)))
    path = figure_path(args.out, "svgp.png")
    plot(x_tr, y_tr, x_te, y_te, model, x_mean, x_std, y_mean, y_std, history, args.device,
         path, show_truth=args.data is None)
    print(f"figure: {path}")
    metrics["figure"] = path
    return check_metrics(metrics, ["rmse", "test_loglik", "elbo_per_point", "noise_std"])


if __name__ == "__main__":
    run_script(main)
