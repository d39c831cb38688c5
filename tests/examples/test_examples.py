"""Every example runs with --quick and reaches sane metrics; its figure is a valid PNG."""
import pytest

from tests.examples.helpers import assert_png

pytest.importorskip("sklearn", reason="examples need scikit-learn (pip install .[examples])")
pytest.importorskip("matplotlib", reason="examples need matplotlib (pip install .[examples])")

pytestmark = pytest.mark.examples


def test_autodiff_demo():
    from examples import autodiff_demo
    assert autodiff_demo.main(["--steps", "200"])["accuracy"] > 0.95


def test_bayesian_logistic_regression(tmp_path):
    from examples import bayesian_logistic_regression as blr
    out = blr.main(["--quick", "--no-progress", "--out", str(tmp_path)])
    assert out["accuracy"] > 0.9
    assert out["max_rhat"] < 1.05 and out["min_ess"] > 200
    assert out["divergences"] == 0
    assert_png(out["figure"])


def test_distributed_chains(tmp_path):
    pytest.importorskip("distributed", reason="needs dask.distributed")
    from examples import distributed_chains as dc
    out = dc.main(["--quick", "--no-progress", "--out", str(tmp_path)])
    assert out["shards"] == [(0, 2), (2, 4), (4, 6), (6, 8)]
    assert out["max_rhat"] < 1.05 and out["min_ess"] > 200
    assert out["max_mean_diff"] < 0.5
    assert_png(out["figure"])
