"""A short tour of zsarray's autodiff tape: Bayesian logistic regression by MAP.

Fits the MAP estimate of a logistic regression with a N(0, 1) prior on scikit-learn's
breast-cancer data (569 x 30, ships inside scikit-learn) by gradient ascent with
gradients from ``autodiff.value_and_grad``, checks one gradient against finite
differences, and prints the training accuracy.

    python examples/autodiff_demo.py [--steps 300] [--lr 0.05]
"""
import argparse
import time

import numpy as np

import autodiff as ad

try:
    from examples._common import check_metrics, positive_float, positive_int, run_script
except ImportError:  # run as a script from inside examples/
    from _common import check_metrics, positive_float, positive_int, run_script


def load_breast_cancer_standardized():
    """Standardized features with an intercept column, and 0/1 labels."""
    from sklearn.datasets import load_breast_cancer
    data = load_breast_cancer()
    x = (data.data - data.data.mean(0)) / data.data.std(0)
    return np.hstack([np.ones((len(x), 1)), x]), data.target.astype(float)


def log_posterior(w, x, y):
    """log p(w | x, y) up to a constant; w [D], x [N, D], y [N]."""
    logits = x @ w
    loglik = ad.sum(y * ad.log_sigmoid(logits) + (1 - y) * ad.log_sigmoid(-logits))
    return loglik - 0.5 * ad.sum(w * w)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=positive_int, default=300)
    parser.add_argument("--lr", type=positive_float, default=0.05)
    args = parser.parse_args(argv)

    x, y = load_breast_cancer_standardized()
    w = np.zeros(x.shape[1])
    value_and_grad = ad.value_and_grad(log_posterior)
    analytic, numeric = ad.check_grads(lambda w: log_posterior(w, x, y), w + 0.1)
    print(f"gradient check: reverse mode {analytic:.6f}, finite differences {numeric:.6f}")

    start = time.perf_counter()
    for step in range(args.steps):
        value, g = value_and_grad(w, x, y)
        w = w + args.lr * g / len(y)
        if step % 100 == 0 or step == args.steps - 1:
            print(f"step {step:4d}  log posterior {float(value):10.3f}")
    elapsed = time.perf_counter() - start
    accuracy = np.mean((x @ w > 0) == (y > 0.5))
    print(f"{args.steps} gradient steps in {elapsed:.2f} s; training accuracy {accuracy:.3f}")
    return check_metrics({"accuracy": float(accuracy), "log_posterior": float(value)},
                         ["accuracy", "log_posterior"])


if __name__ == "__main__":
    run_script(main)
