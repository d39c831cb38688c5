"""Logistic-normal topic model fitted by Monte Carlo EM with an HMC E-step (ZhuSuan's lntm_mcem).

Model (a correlated-topic-model variant with a diagonal covariance; Blei & Lafferty 2006):

    eta_d ~ N(mu, diag(sigma^2))                 topic logits of document d, K topics
    x_d   ~ Multinomial(N_d, softmax(eta_d) @ softmax(beta))

``beta`` [K, V] are topic-word logits. Monte Carlo EM: the E-step runs a few HMC
transitions on the topic logits of *all* documents at once (one chain per document:
``samplers.HMC`` on a ``[D, K]`` position, a per-document step size tuned towards 70 %
acceptance); the M-step takes an Adam step (``zs.optim.Adam``) on ``beta`` at the current
sample and sets ``mu`` and ``sigma`` in closed form (their maximizers given the sample).

The default corpus is generated from known topics (K=5, V=200, 300 documents of about
120 words, sparse Dirichlet(0.05) topics), so topic recovery can be checked. 20 % of the
tokens of every document are held out ("document completion"); the script reports the
per-word perplexity of the held-out tokens under the posterior predictive (averaged over
HMC draws of eta), against a unigram baseline and the true model, and the cosine
similarity between the learned and the true topics after optimal matching.

    python examples/topic_model.py [--quick] [--device cpu|gpu] [--data counts.csv]
        [--topics 5] [--iters 600] [--out outputs]

``--data`` takes a CSV document-term count matrix (one document a row, one word a column);
no ground-truth topics are then known and only perplexities are reported.
"""
import math
import time

import numpy as np

import autodiff as ad
import samplers
import zsarray as zs
from autodiff import backend

try:
    from examples._common import (blas_threads, check_metrics, existing_file, figure_path,
                                  fill_quick, number, parser, positive_float, positive_int,
                                  run_script, to_device)
except ImportError:  # run as a script from inside examples/
    from _common import (blas_threads, check_metrics, existing_file, figure_path, fill_quick,
                         number, parser, positive_float, positive_int, run_script, to_device)


# --------------------------------------------------------------------------- data
def generate_corpus(n_docs=300, n_topics=5, n_vocab=200, doc_length=120, topic_conc=0.05,
                    eta_std=1.5, seed=0):
    """A bag-of-words corpus from the model itself with known parameters.

    Returns
    -------
    counts : int array [n_docs, n_vocab]
    truth : dict with ``phi`` [K, V] (topic-word probabilities), ``theta`` [D, K]
    """
    rng = np.random.default_rng(seed)
    phi = rng.dirichlet(np.full(n_vocab, topic_conc), size=n_topics)
    eta = rng.normal(0.0, eta_std, size=(n_docs, n_topics))
    theta = np.exp(eta - eta.max(1, keepdims=True))
    theta /= theta.sum(1, keepdims=True)
    lengths = rng.poisson(doc_length, size=n_docs) + 10
    counts = np.stack([rng.multinomial(n, t @ phi) for n, t in zip(lengths, theta)])
    return counts, {"phi": phi, "theta": theta}


def split_tokens(counts, held_out=0.2, seed=0):
    """Split every document's tokens at random into observed and held-out counts."""
    rng = np.random.default_rng(seed + 1)
    test = rng.binomial(counts, held_out)
    return counts - test, test


# --------------------------------------------------------------------------- model
def make_log_density(x, phi, mu, sigma):
    """log p(eta_d, x_d | beta, mu, sigma) up to a constant, one chain per document.

    ``x`` [D, V] counts, ``phi`` [K, V] topic-word probabilities: eta [D, K] -> [D].
    """
    def log_density(eta):
        theta = ad.softmax(eta, axis=1)                              # [D, K]
        loglik = ad.sum(x * ad.log(theta @ phi), axis=1)             # [D]
        z = (eta - mu) / sigma
        return loglik - 0.5 * ad.sum(z * z, axis=1)
    return log_density


def word_probabilities(eta, phi):
    """softmax(eta) @ phi as raw arrays: [D, V]."""
    xp = backend.get_array_module(eta)
    theta = xp.exp(eta - eta.max(1, keepdims=True))
    theta /= theta.sum(1, keepdims=True)
    return theta @ phi


def perplexity(counts, probs):
    """exp(- mean log-probability per token) of ``counts`` under ``probs`` [D, V]."""
    xp = backend.get_array_module(probs)
    logp = xp.log(xp.maximum(probs, 1e-300))
    return float(math.exp(-float(xp.sum(counts * logp)) / float(xp.sum(counts))))


def match_topics(phi_learned, phi_true):
    """Optimal one-to-one matching by cosine similarity; returns (perm, cosines).

    ``phi_learned[perm[k]]`` is the learned topic matched to true topic ``k``.
    """
    from scipy.optimize import linear_sum_assignment
    a = phi_learned / np.linalg.norm(phi_learned, axis=1, keepdims=True)
    b = phi_true / np.linalg.norm(phi_true, axis=1, keepdims=True)
    cos = b @ a.T                                                     # [K_true, K_learned]
    rows, cols = linear_sum_assignment(-cos)
    return cols, cos[rows, cols]


# --------------------------------------------------------------------------- MC-EM
def init_beta(x_train, n_topics, rng, docs_per_topic=3):
    """Topic logits seeded from the smoothed word frequencies of a few random documents
    per topic (breaks the topics' symmetry far better than small random logits)."""
    picks = rng.permutation(x_train.shape[0])[:n_topics * docs_per_topic]
    seeds = x_train[picks].reshape(n_topics, docs_per_topic, -1).sum(1) + 0.5
    beta = np.log(seeds / seeds.sum(1, keepdims=True))
    return beta - beta.mean(1, keepdims=True)


def fit(x_train, x_test, n_topics, n_iters, n_hmc=2, n_leapfrogs=10, lr=0.05, seed=0,
        device="cpu", progress=True, eval_every=10):
    """Monte Carlo EM; returns the fitted parameters, the last E-step state and a history."""
    from tqdm.auto import tqdm
    xp = backend.get_array_module(to_device(np.zeros(1), device))
    n_docs, n_vocab = x_train.shape
    rng_np = np.random.default_rng(seed)
    rng = xp.random.default_rng(seed)

    x = to_device(x_train, device)
    xt = to_device(x_test, device)
    beta = ad.tensor(to_device(init_beta(x_train, n_topics, rng_np), device),
                     requires_grad=True)
    optimizer = zs.optim.Adam([beta], lr=lr)
    mu = xp.zeros(n_topics)
    sigma = xp.ones(n_topics)
    eta = to_device(rng_np.normal(0.0, 0.1, (n_docs, n_topics)), device)
    step_size = xp.full(n_docs, 0.05)
    n_tokens = float(xp.sum(x))
    history = {"iteration": [], "perplexity": [], "train_loglik": [], "accept": []}

    def m_step_loss(b):
        # -(1/N) sum_d sum_v x_dv log (theta_d @ softmax(beta))_v at the current sample
        return -ad.sum(x * ad.log(theta @ ad.softmax(b, axis=1))) / n_tokens

    bar = tqdm(range(n_iters), desc="MC-EM", disable=None if progress else True,
               leave=False)
    for it in bar:
        # E-step: a few HMC transitions of every document's eta, beta/mu/sigma fixed.
        phi = xp.exp(beta.data - beta.data.max(1, keepdims=True))
        phi /= phi.sum(1, keepdims=True)
        kernel = samplers.HMC(make_log_density(x, phi, mu, sigma), step_size=step_size,
                              n_leapfrogs=n_leapfrogs)
        state = kernel.init(eta)
        accept = 0.0
        for _ in range(n_hmc):
            state, info = kernel.step(state, rng)
            # per-document Robbins-Monro step-size tuning towards 70 % acceptance
            step_size = step_size * xp.exp(0.5 / math.sqrt(it + 1) * (info.acceptance_rate - 0.7))
            kernel = kernel.with_params(step_size=step_size)
            accept += float(xp.mean(info.acceptance_rate)) / n_hmc
        eta = state.position

        # M-step: closed-form mu and sigma, an Adam step on beta.
        mu = eta.mean(0)
        sigma = xp.sqrt(eta.var(0) + 1e-3)
        theta = xp.exp(eta - eta.max(1, keepdims=True))
        theta /= theta.sum(1, keepdims=True)
        optimizer.zero_grad()
        loss = m_step_loss(beta)
        loss.backward()
        optimizer.step()

        if it % eval_every == 0 or it == n_iters - 1:
            ppl = perplexity(xt, theta @ phi)
            history["iteration"].append(it)
            history["perplexity"].append(ppl)
            history["train_loglik"].append(-float(loss.data))
            history["accept"].append(accept)
            bar.set_postfix(perplexity=f"{ppl:.1f}", accept=f"{accept:.2f}")
    bar.close()
    return {"beta": beta.data, "mu": mu, "sigma": sigma, "eta": eta,
            "step_size": step_size, "rng": rng}, history


def predictive(params, x_train, n_draws=20, n_leapfrogs=10, device="cpu"):
    """Posterior-predictive word probabilities [D, V], averaged over HMC draws of eta
    with the learned beta, mu, sigma fixed."""
    xp = backend.get_array_module(params["eta"])
    beta = params["beta"]
    phi = xp.exp(beta - beta.max(1, keepdims=True))
    phi /= phi.sum(1, keepdims=True)
    kernel = samplers.HMC(make_log_density(to_device(x_train, device), phi, params["mu"],
                                           params["sigma"]),
                          step_size=params["step_size"], n_leapfrogs=n_leapfrogs)
    state = kernel.init(params["eta"])
    probs = xp.zeros((x_train.shape[0], phi.shape[1]))
    for _ in range(n_draws):
        state, _ = kernel.step(state, params["rng"])
        probs += word_probabilities(state.position, phi) / n_draws
    return probs, phi


# --------------------------------------------------------------------------- figure
def plot(phi_learned, phi_true, history, baseline, oracle, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    n_rows = 3 if phi_true is not None else 2
    fig, axes = plt.subplots(n_rows, 1, figsize=(11, 2.2 * n_rows + 1.5))
    order = (np.argsort(np.argmax(phi_true, axis=0) * 10.0 - phi_true.max(0))
             if phi_true is not None else np.argsort(np.argmax(phi_learned, axis=0)))
    vmax = np.percentile(np.concatenate([phi_learned.ravel()] + (
        [phi_true.ravel()] if phi_true is not None else [])), 99.5)
    ax = axes[0]
    if phi_true is not None:
        axes[0].imshow(phi_true[:, order], aspect="auto", cmap="viridis", vmin=0, vmax=vmax,
                       interpolation="nearest")
        axes[0].set_title("true topic-word probabilities (words sorted by dominant topic)")
        axes[0].set_ylabel("topic")
        ax = axes[1]
    ax.imshow(phi_learned[:, order], aspect="auto", cmap="viridis", vmin=0, vmax=vmax,
              interpolation="nearest")
    ax.set_title("learned softmax(beta), topics matched to the true ones")
    ax.set_ylabel("topic")
    ax.set_xlabel("word")
    ax = axes[-1]
    ax.plot(history["iteration"], history["perplexity"], label="model (one HMC draw)")
    ax.axhline(baseline, color="C1", ls="--", label=f"unigram baseline ({baseline:.1f})")
    if oracle is not None:
        ax.axhline(oracle, color="C2", ls=":", label=f"true model ({oracle:.1f})")
    ax.set_xlabel("MC-EM iteration")
    ax.set_ylabel("held-out perplexity")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# --------------------------------------------------------------------------- main
def main(argv=None):
    p = parser(__doc__.splitlines()[0], blas_option=True)
    p.add_argument("--data", type=existing_file(), default=None,
                   help="CSV document-term count matrix (default: a generated corpus)")
    p.add_argument("--topics", type=number(int, low=2), default=5)
    p.add_argument("--iters", type=positive_int, default=None,
                   help="MC-EM iterations (default 600; 200 with --quick)")
    p.add_argument("--hmc-steps", type=positive_int, default=2,
                   help="HMC transitions per E-step")
    p.add_argument("--leapfrogs", type=positive_int, default=10)
    p.add_argument("--lr", type=positive_float, default=0.05, help="Adam learning rate of beta")
    args = p.parse_args(argv)
    fill_quick(args, quick={"iters": 200}, full={"iters": 600})
    with blas_threads(args.blas_threads):
        return _run(args)


def _run(args):
    truth = None
    if args.data is None:
        counts, truth = generate_corpus(n_topics=args.topics, seed=args.seed)
    else:
        counts = np.loadtxt(args.data, delimiter=",").astype(np.int64)
    x_train, x_test = split_tokens(counts, seed=args.seed)
    print(f"corpus: {counts.shape[0]} documents, {counts.shape[1]} words, "
          f"{int(x_train.sum())} observed / {int(x_test.sum())} held-out tokens")

    # unigram baseline: one add-1/2 smoothed word distribution for every document
    unigram = (x_train.sum(0) + 0.5) / (x_train.sum() + 0.5 * x_train.shape[1])
    baseline = perplexity(x_test, np.broadcast_to(unigram, x_test.shape))
    oracle = perplexity(x_test, truth["theta"] @ truth["phi"]) if truth is not None else None

    start = time.perf_counter()
    params, history = fit(x_train, x_test, args.topics, args.iters, n_hmc=args.hmc_steps,
                          n_leapfrogs=args.leapfrogs, lr=args.lr, seed=args.seed,
                          device=args.device, progress=not args.no_progress)
    probs, phi = predictive(params, x_train, n_leapfrogs=args.leapfrogs, device=args.device)
    elapsed = time.perf_counter() - start
    final = perplexity(to_device(x_test, args.device), probs)
    phi = backend.asnumpy(phi)

    metrics = {"perplexity": final, "initial_perplexity": history["perplexity"][0],
               "unigram_perplexity": baseline, "perplexity_history": history["perplexity"],
               "accept": history["accept"][-1], "seconds": elapsed}
    print(f"\n{args.iters} MC-EM iterations ({args.hmc_steps} HMC x {args.leapfrogs} leapfrogs "
          f"per E-step, {counts.shape[0]} documents as chains) in {elapsed:.1f} s; "
          f"E-step acceptance {metrics['accept']:.2f}")
    print(f"held-out per-word perplexity: {final:.1f} (first iteration "
          f"{metrics['initial_perplexity']:.1f}, unigram baseline {baseline:.1f}"
          + (f", true model {oracle:.1f})" if oracle is not None else ")"))
    phi_plot = phi
    if truth is not None:
        perm, cosines = match_topics(phi, truth["phi"])
        phi_plot = phi[perm]
        metrics.update(true_perplexity=oracle, topic_cosine=float(cosines.mean()),
                       min_topic_cosine=float(cosines.min()))
        print("topic recovery (cosine of matched learned vs true topics): "
              + " ".join(f"{c:.3f}" for c in cosines) + f"; mean {cosines.mean():.3f}")
    path = figure_path(args.out, "topic_model.png")
    plot(phi_plot, truth["phi"] if truth is not None else None, history, baseline, oracle, path)
    print(f"figure: {path}")
    metrics["figure"] = path
    return check_metrics(metrics, ["perplexity", "perplexity_history", "accept"])


if __name__ == "__main__":
    run_script(main)
