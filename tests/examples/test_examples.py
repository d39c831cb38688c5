"""Every example runs with --quick and reaches sane metrics; its figure is a valid PNG."""
import pytest

pytest.importorskip("sklearn", reason="examples need scikit-learn (pip install .[examples])")
pytest.importorskip("matplotlib", reason="examples need matplotlib (pip install .[examples])")

pytestmark = pytest.mark.examples

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == PNG_SIGNATURE, f"{path} is not a PNG file"
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    assert width > 100 and height > 100


def test_autodiff_demo():
    from examples import autodiff_demo
    assert autodiff_demo.main(["--steps", "200"]) > 0.95


def test_bayesian_logistic_regression(tmp_path):
    from examples import bayesian_logistic_regression as blr
    out = blr.main(["--quick", "--no-progress", "--out", str(tmp_path)])
    assert out["accuracy"] > 0.9
    assert out["max_rhat"] < 1.05 and out["min_ess"] > 200
    assert out["divergences"] == 0
    assert_png(out["figure"])
