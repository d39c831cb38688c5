"""Command-line checks of the examples: every numeric option is range-checked by argparse
(usage error, exit status 2, naming the option) before any work starts; ``--quick`` only
fills the options not given explicitly; a failed run exits with status 1 and a message.

The bad-argument tests stop in ``parse_args``; the ``--quick`` tests replace the first
expensive call with a stub that raises, so no example trains here.
"""
import argparse
import os
import subprocess
import sys

import numpy as np
import pytest

from examples import _common as cli

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_example(name, *args, timeout=300):
    env = dict(os.environ, PYTHONPATH=ROOT, MPLBACKEND="Agg")
    return subprocess.run([sys.executable, os.path.join(ROOT, "examples", name), *args],
                          capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)


# --------------------------------------------------------------------------- the types
@pytest.mark.parametrize("kind, good, bad", [
    (cli.positive_int, {"1": 1, "17": 17}, ["0", "-3", "2.5", "x", ""]),
    (cli.nonneg_int, {"0": 0, "4": 4}, ["-1", "1e3", "nan"]),
    (cli.positive_float, {"1e-4": 1e-4, "2": 2.0}, ["0", "-0.1", "nan", "inf", "-inf", "a"]),
    (cli.nonneg_float, {"0": 0.0, "0.5": 0.5}, ["-1e-9", "nan", "inf"]),
    (cli.fraction, {"0.25": 0.25, "0.999": 0.999}, ["0", "1", "1.5", "-0.5", "nan"]),
    (cli.probability, {"0": 0.0, "1": 1.0}, ["1.0001", "-0.1", "nan"]),
    (cli.number(int, low=2, high=5), {"2": 2, "5": 5}, ["1", "6"]),
    (cli.number(float, low=0, high=1, high_open=True), {"0": 0.0}, ["1", "1.0"]),
])
def test_types_accept_the_range_and_reject_the_rest(kind, good, bad):
    for text, value in good.items():
        assert kind(text) == value and type(kind(text)) is type(value)
    for text in bad:
        with pytest.raises(argparse.ArgumentTypeError, match="expected"):
            kind(text)


def test_list_types():
    assert cli.int_list(2)("50, 10") == [50, 10]
    for text in ("50", "50,10,5", "50,0", "50,x"):
        with pytest.raises(argparse.ArgumentTypeError):
            cli.int_list(2)(text)
    eps = cli.float_list(cli.number(float, low=0, high=1), increasing=True, first=0)
    assert eps("0, 0.1,1") == [0.0, 0.1, 1.0]
    for text, why in (("0.1,0.2", "starting at 0"), ("0,0.2,0.2", "increasing"),
                      ("0,1.5", "<= 1"), ("0,nan", "<= 1"), ("0,", "got ''")):
        with pytest.raises(argparse.ArgumentTypeError, match=why):
            eps(text)
    assert cli.float_list()("3,1") == [3.0, 1.0]
    pick = cli.choice_list(("vi", "sghmc"))
    assert pick("sghmc, vi,vi") == ["sghmc", "vi"]
    with pytest.raises(argparse.ArgumentTypeError, match="'mcmc'"):
        pick("vi,mcmc")
    with pytest.raises(argparse.ArgumentTypeError, match="one or more"):
        pick(" , ")


def test_fill_quick_keeps_explicit_options():
    ns = argparse.Namespace(quick=True, epochs=3, batch=None, lr=None)
    cli.fill_quick(ns, quick={"epochs": 10, "batch": 8}, full={"epochs": 100, "batch": 32,
                                                              "lr": 0.1})
    assert (ns.epochs, ns.batch, ns.lr) == (3, 8, 0.1)
    ns = argparse.Namespace(quick=False, epochs=None, batch=4)
    cli.fill_quick(ns, quick={"epochs": 10, "batch": 8}, full={"epochs": 100, "batch": 32})
    assert (ns.epochs, ns.batch) == (100, 4)


def test_check_metrics_and_run_script(capsys):
    good = {"loss": 1.5, "draws": np.ones(3), "name": "x"}
    assert cli.check_metrics(good, ["loss", "draws"]) is good
    for bad in ({"loss": float("nan")}, {"loss": np.array([1.0, np.inf])}, {},
                {"loss": np.array([])}, {"loss": "high"}):
        with pytest.raises(cli.RunFailed, match="loss"):
            cli.check_metrics(bad, ["loss"])
    with pytest.raises(cli.RunFailed, match="every NUTS transition diverged"):
        cli.check_divergences(40, 40, "NUTS")
    cli.check_divergences(39, 40)

    def failing(argv):
        raise cli.RunFailed("the run failed: non-finite result (loss = nan)")
    with pytest.raises(SystemExit) as e:
        cli.run_script(failing)
    assert e.value.code == 1
    assert "loss = nan" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        cli.run_script(lambda argv: {"loss": 1.0})
    assert e.value.code == 0


# --------------------------------------------------------------------------- bad options
BAD = [
    ("autodiff_demo", ["--steps", "0"], "--steps"),
    ("autodiff_demo", ["--lr", "-0.1"], "--lr"),
    ("bayesian_logistic_regression", ["--chains", "0"], "--chains"),
    ("bayesian_logistic_regression", ["--samples", "-5"], "--samples"),
    ("bnn_regression", ["--epochs", "0"], "--epochs"),
    ("bnn_regression", ["--batch-size", "0"], "--batch-size"),
    ("bnn_regression", ["--splits", "0"], "--splits"),
    ("bnn_regression", ["--splits", "3"], "--splits 3: the default data"),
    ("bnn_regression", ["--methods", "vi,mcmc"], "--methods"),
    ("bnn_regression", ["--methods", ""], "--methods"),
    ("bnn_regression", ["--step-size", "nan"], "--step-size"),
    ("distributed_chains", ["--workers", "0"], "--workers"),
    ("pmf", ["--rank", "0"], "--rank"),
    ("pmf", ["--noise-std", "0"], "--noise-std"),
    ("pmf", ["--warmup", "-1"], "--warmup"),
    ("sbn", ["--k", "1"], "--k"),
    ("sbn", ["--layers", "50"], "--layers"),
    ("sbn", ["--epochs", "-2"], "--epochs"),
    ("svgp", ["--batch", "0"], "--batch"),
    ("svgp", ["--inducing", "-1"], "--inducing"),
    ("topic_model", ["--topics", "1"], "--topics"),
    ("topic_model", ["--lr", "inf"], "--lr"),
    ("toy_funnel", ["--target-accept", "1.5"], "--target-accept"),
    ("toy_funnel", ["--dim", "1"], "--dim"),
    ("toy_gaussian_hmc", ["--leapfrogs", "0"], "--leapfrogs"),
    ("toy_gaussian_hmc", ["--jitter", "-0.1"], "--jitter"),
    ("toy_mixture_sgnht", ["--thin", "0"], "--thin"),
    ("toy_mixture_sgnht", ["--step-size", "0"], "--step-size"),
    ("vae", ["--batch-size", "0"], "--batch-size"),
    ("vae", ["--lr", "0"], "--lr"),
    ("vae", ["--n-train", "0"], "--n-train"),
    ("vae", ["--train-ll", "-1"], "--train-ll"),
    ("vae_nvil", ["--decay", "1"], "--decay"),
    ("vae_ssl", ["--n-labeled", "5"], "--n-labeled"),
    ("vae_ssl", ["--checkpoint-every", "0"], "--checkpoint-every"),
    ("vae_ssl", ["--seed", "-1"], "--seed"),
    ("svgp", ["--data", "no-such-file.csv"], "--data"),
    ("pmf", ["--data", ROOT], "--data"),
    ("topic_model", ["--data", "no-such-file.csv"], "--data"),
]


@pytest.mark.parametrize("name, argv, option", BAD, ids=[f"{n}{a}" for n, a, _ in BAD])
def test_bad_option_is_a_usage_error(name, argv, option, capsys):
    import importlib
    module = importlib.import_module(f"examples.{name}")
    with pytest.raises(SystemExit) as e:
        module.main(argv + ["--no-progress"] if name != "autodiff_demo" else argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert (option if " " in option else f"argument {option}") in err and "usage:" in err


# The deep-learning examples (issue 17): their ``run`` is replaced by a stub that raises,
# so an option that got through parsing fails the test at once instead of training.
BAD_DEEP = [
    ("bnn_adversarial", ["--epochs", "0"], "--epochs"),
    ("bnn_adversarial", ["--hidden", "0"], "--hidden"),
    ("bnn_adversarial", ["--batch-size", "-1"], "--batch-size"),
    ("bnn_adversarial", ["--lr", "0"], "--lr"),
    ("bnn_adversarial", ["--weight-decay", "-0.5"], "--weight-decay"),
    ("bnn_adversarial", ["--weight-decay", "nan"], "--weight-decay"),
    ("bnn_adversarial", ["--particles", "0"], "--particles"),
    ("bnn_adversarial", ["--init-logstd", "inf"], "--init-logstd"),
    ("bnn_adversarial", ["--samples", "0"], "--samples"),
    ("bnn_adversarial", ["--eps", "0.1,0.2"], "--eps"),
    ("bnn_adversarial", ["--eps", "0,0.2,0.1"], "--eps"),
    ("bnn_adversarial", ["--eps", "0,x"], "--eps"),
    ("bnn_adversarial", ["--eps", "0,1.5"], "--eps"),
    ("bnn_adversarial", ["--pgd-steps", "0"], "--pgd-steps"),
    ("bnn_adversarial", ["--n-test", "0"], "--n-test"),
    ("gan", ["--epochs", "0"], "--epochs"),
    ("gan", ["--batch-size", "0"], "--batch-size"),
    ("gan", ["--z-dim", "0"], "--z-dim"),
    ("gan", ["--hidden", "-4"], "--hidden"),
    ("gan", ["--lr", "-1e-3"], "--lr"),
    ("gan", ["--channels", "0"], "--channels"),
    ("gan", ["--gp-lambda", "-1"], "--gp-lambda"),
    ("gan", ["--gp-h", "0"], "--gp-h"),
    # 5 critic batches of 300 per generator step need 1500 images; the digits have 1438
    ("gan", ["--loss", "wgan-gp", "--batch-size", "300"], "--batch-size 300: wgan-gp takes 5"),
    ("vae_conv", ["--channels", "0"], "--channels"),
    ("vae_conv", ["--epochs", "0"], "--epochs"),
    ("vae_conv", ["--is-k", "0"], "--is-k"),
    ("variational_dropout", ["--epochs", "0"], "--epochs"),
    ("variational_dropout", ["--kl-warmup", "-1"], "--kl-warmup"),
    ("variational_dropout", ["--batch-size", "0"], "--batch-size"),
    ("variational_dropout", ["--lr", "nan"], "--lr"),
    ("variational_dropout", ["--hidden", "300,0"], "--hidden"),
    ("variational_dropout", ["--hidden", "300,x"], "--hidden"),
]


@pytest.mark.parametrize("name, argv, option", BAD_DEEP, ids=[f"{n}{a}" for n, a, _ in BAD_DEEP])
def test_bad_option_of_a_deep_example_is_a_usage_error(name, argv, option, capsys, monkeypatch):
    # before: argparse took type=int / float (or a plain string), so these reached training
    import importlib
    module = importlib.import_module(f"examples.{name}")
    monkeypatch.setattr(module, "run", stub)
    with pytest.raises(SystemExit) as e:
        module.main(argv + ["--no-progress"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert (option if " " in option else f"argument {option}") in err and "usage:" in err


def test_bad_option_exits_2_as_a_script():
    # before: --epochs 0 trained nothing and crashed with a KeyError (history["bound"][0])
    done = run_example("vae.py", "--epochs", "0", "--no-progress")
    assert done.returncode == 2
    assert "argument --epochs: expected an integer >= 1, got '0'" in done.stderr


# --------------------------------------------------------------------------- --quick
class Stop(Exception):
    """Raised by a stub in place of the first expensive call."""


def stub(*args, **kwargs):
    raise Stop(args, kwargs)


def test_quick_keeps_explicit_epochs_bnn(monkeypatch):
    # before: --quick replaced --epochs 3 (and --batch-size) by 40 (and 32)
    from examples import bnn_regression
    monkeypatch.setattr(bnn_regression, "fit_vi", stub)
    with pytest.raises(Stop) as e:
        bnn_regression.main(["--quick", "--epochs", "3", "--batch-size", "7", "--methods",
                             "vi", "--no-progress"])
    args = e.value.args[0][2]
    assert (args.epochs, args.batch_size, args.test_samples) == (3, 7, 200)
    with pytest.raises(Stop) as e:
        bnn_regression.main(["--methods", "vi", "--no-progress"])
    args = e.value.args[0][2]
    assert (args.epochs, args.batch_size, args.test_samples) == (500, 10, 1000)


def test_quick_keeps_explicit_sizes_mixture(monkeypatch):
    from examples import toy_mixture_sgnht

    class FakeSamplers:
        SGNHT = staticmethod(lambda *a, **k: None)
        sample_sgmcmc = staticmethod(stub)
    monkeypatch.setattr(toy_mixture_sgnht, "samplers", FakeSamplers)
    with pytest.raises(Stop) as e:
        toy_mixture_sgnht.main(["--quick", "--chains", "3", "--samples", "20", "--no-progress"])
    (_, init), kw = e.value.args
    assert init.shape == (3, 1) and kw["n_samples"] == 20 and kw["burnin"] == 300


def test_quick_keeps_explicit_draws_pmf(monkeypatch):
    # before: --quick capped --samples 300 at 150
    from examples import pmf

    class FakeSamplers:
        sample = staticmethod(stub)
    monkeypatch.setattr(pmf, "samplers", FakeSamplers)
    with pytest.raises(Stop) as e:
        pmf.main(["--quick", "--samples", "300", "--no-progress"])
    assert e.value.args[1]["n_samples"] == 300 and e.value.args[1]["n_warmup"] == 150


def test_quick_keeps_explicit_steps_svgp_and_topic_model(monkeypatch):
    from examples import svgp, topic_model
    monkeypatch.setattr(svgp, "train", stub)
    with pytest.raises(Stop) as e:
        svgp.main(["--quick", "--steps", "1000", "--no-progress"])
    assert e.value.args[0][3] == 1000
    monkeypatch.setattr(topic_model, "fit", stub)
    with pytest.raises(Stop) as e:
        topic_model.main(["--quick", "--iters", "250", "--no-progress"])
    assert e.value.args[0][3] == 250


def test_sbn_explicit_lr_is_kept(monkeypatch):
    # before: an explicit --lr 1e-3 was silently replaced by 3e-3 (it equalled the default)
    from examples import sbn, vae
    monkeypatch.setattr(sbn, "run", stub)
    with pytest.raises(Stop) as e:
        sbn.main(["--lr", "1e-3", "--no-progress"])
    args = e.value.args[0][0]
    assert args.lr == 1e-3 and args.layers == [50, 10]
    with pytest.raises(Stop) as e:
        sbn.main(["--quick", "--layers", "20,5", "--no-progress"])
    args = e.value.args[0][0]
    assert (args.lr, args.layers, args.epochs) == (3e-3, [20, 5], 20)
    assert vae.parse(["--quick", "--epochs", "3"]).epochs == 3


def test_quick_keeps_explicit_options_bnn_adversarial(monkeypatch):
    # before: --eps was split by hand after parsing, and the options were plain ints
    from examples import bnn_adversarial
    monkeypatch.setattr(bnn_adversarial, "run", stub)
    with pytest.raises(Stop) as e:
        bnn_adversarial.main(["--quick", "--epochs", "3", "--samples", "7", "--eps", "0,0.25",
                              "--weight-decay", "-1", "--no-progress"])
    args, eps = e.value.args[0]
    assert (args.epochs, args.samples, args.pgd_steps, args.hidden, args.n_test) == \
        (3, 7, 5, 100, None)
    assert eps == [0.0, 0.25] and args.weight_decay == -1.0
    with pytest.raises(Stop) as e:
        bnn_adversarial.main(["--no-progress"])
    args, eps = e.value.args[0]
    assert (args.epochs, args.samples, args.pgd_steps, args.hidden) == (300, 100, 10, 100)
    assert eps == [0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3]


def test_quick_keeps_explicit_options_gan(monkeypatch):
    from examples import gan
    monkeypatch.setattr(gan, "run", stub)
    with pytest.raises(Stop) as e:
        gan.main(["--quick", "--epochs", "3", "--z-dim", "4", "--no-progress"])
    args, data = e.value.args[0]
    assert (args.epochs, args.z_dim, args.hidden, args.lr) == (3, 4, 256, None)
    assert data[0].shape == (1438, 64) and data[3] == 8
    with pytest.raises(Stop) as e:
        gan.main(["--no-progress"])
    assert (e.value.args[0][0].epochs, e.value.args[0][0].z_dim) == (200, 16)
    with pytest.raises(Stop) as e:
        gan.main(["--quick", "--no-progress"])
    assert e.value.args[0][0].epochs == 40


def test_quick_keeps_explicit_options_vae_conv():
    from examples import vae_conv
    args = vae_conv.parse(["--quick", "--epochs", "3", "--channels", "4", "--n-test", "50"])
    assert (args.epochs, args.channels, args.n_test, args.is_k) == (3, 4, 50, 100)
    args = vae_conv.parse(["--quick"])
    assert (args.epochs, args.channels, args.n_test, args.is_k) == (15, 16, 100, 100)
    args = vae_conv.parse([])
    assert (args.epochs, args.channels, args.n_test, args.is_k) == (300, 16, None, 1000)


def test_quick_keeps_explicit_options_variational_dropout(monkeypatch):
    from examples import variational_dropout
    monkeypatch.setattr(variational_dropout, "run", stub)
    for argv, expected in ((["--quick", "--epochs", "9"], (9, 2, [300, 100])),
                           (["--quick", "--hidden", "20"], (30, 7, [20])),
                           (["--quick", "--kl-warmup", "0"], (30, 0, [300, 100])),
                           ([], (200, 50, [300, 100]))):
        with pytest.raises(Stop) as e:
            variational_dropout.main(argv + ["--no-progress"])
        args = e.value.args[0][0]
        assert (args.epochs, args.kl_warmup, args.hidden) == expected, argv


# --------------------------------------------------------------------------- failed runs
def test_failed_run_exits_1_with_a_message():
    # before: a diverged run (log posterior nan) printed its accuracy and exited 0
    done = run_example("autodiff_demo.py", "--steps", "3", "--lr", "1e300")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "autodiff_demo.py: error: the run failed: non-finite" in done.stderr
    assert "log_posterior" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.filterwarnings("ignore::RuntimeWarning")        # overflow: on purpose
def test_diverged_gan_and_variational_dropout_fail(tmp_path):
    # before: the GAN crashed in the Frechet distance / classifier on nan samples, and
    # variational dropout printed an accuracy (argmax of nan logits) and exited 0
    from examples import gan, variational_dropout
    with pytest.raises(cli.RunFailed, match="samples are not finite after epoch 1"):
        gan.main(["--epochs", "1", "--hidden", "16", "--lr", "1e30", "--grids", "last",
                  "--no-progress", "--out", str(tmp_path)])
    with pytest.raises(cli.RunFailed, match=r"train_cost_last_epoch = nan"):
        variational_dropout.main(["--epochs", "1", "--hidden", "20", "--lr", "1e30",
                                  "--no-baseline", "--no-progress", "--out", str(tmp_path)])


# --------------------------------------------------------------------------- checkpoints
def test_vae_checkpoint_damaged_or_truncated(tmp_path):
    # before: a bare UnpicklingError / EOFError (or KeyError for a partial dict)
    import pickle

    from examples import _vae_common as common
    path = tmp_path / "run.ckpt"
    whole = pickle.dumps({"version": 1, "config": {}, "epoch": 1, "params": [],
                          "optimizer": {}, "schedule": None, "shuffle": {}, "rngs": [],
                          "history": {}, "seconds": 0.0})
    for cut in (0, 5, len(whole) - 1):
        path.write_bytes(whole[:cut])
        with pytest.raises(SystemExit, match="the file is damaged or truncated") as e:
            common.load_checkpoint(str(path), None, [], None, None, None, ())
        assert str(path) in str(e.value)
    path.write_bytes(pickle.dumps({"version": 1, "config": {}, "epoch": 1}))
    with pytest.raises(SystemExit, match=r"damaged \(no \['history', 'optimizer'"):
        common.load_checkpoint(str(path), None, [], None, None, None, ())
