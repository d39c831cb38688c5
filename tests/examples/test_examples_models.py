"""The topic-model, PMF and SVGP examples run with --quick and reach sane metrics."""
import numpy as np
import pytest

from tests.examples.helpers import assert_png

pytest.importorskip("sklearn", reason="examples need scikit-learn (pip install .[examples])")
pytest.importorskip("matplotlib", reason="examples need matplotlib (pip install .[examples])")
pytest.importorskip("tqdm", reason="examples need tqdm (pip install .[examples])")

pytestmark = pytest.mark.examples


def test_topic_model(tmp_path):
    from examples import topic_model
    out = topic_model.main(["--quick", "--no-progress", "--out", str(tmp_path)])
    history = out["perplexity_history"]
    assert np.all(np.isfinite(history))
    # held-out perplexity falls during MC-EM and ends well below the unigram baseline
    assert out["perplexity"] < 0.9 * out["initial_perplexity"]
    assert out["perplexity"] < 0.85 * out["unigram_perplexity"]
    # ... and close to that of the true generating model
    assert out["perplexity"] < 1.1 * out["true_perplexity"]
    assert out["topic_cosine"] > 0.9
    assert 0.4 < out["accept"] < 0.95
    assert_png(out["figure"])


def test_pmf(tmp_path):
    from examples import pmf
    out = pmf.main(["--quick", "--no-progress", "--out", str(tmp_path)])
    assert out["rmse"] < 0.8 * out["global_mean_rmse"]
    # averaging over the posterior beats the single MAP point and single draws
    assert out["rmse"] < out["map_rmse"]
    assert out["rmse"] < out["single_draw_rmse"]
    assert out["divergences"] == 0
    assert_png(out["figure"])


def test_svgp(tmp_path):
    from examples import svgp
    out = svgp.main(["--quick", "--no-progress", "--out", str(tmp_path)])
    assert out["rmse"] < 0.5 * out["constant_rmse"]
    assert out["rmse"] < 0.4            # the noise sd of the generated data is 0.3
    assert out["test_loglik"] > out["constant_loglik"] + 0.5
    assert 0.2 < out["noise_std"] < 0.45
    assert_png(out["figure"])
