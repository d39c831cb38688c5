"""The documentation site builds with ``mkdocs build --strict`` (warnings are errors), has
at least 15 pages, and its gallery is generated from the examples' data files."""
import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import pytest

pytestmark = pytest.mark.docs

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _load_hooks():
    """``docs/hooks.py`` (the gallery's page generator), imported under a private name."""
    spec = importlib.util.spec_from_file_location("_zsarray_docs_hooks", ROOT / "docs" / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hooks = _load_hooks()


def _mkdocs():
    try:
        import material  # noqa: F401
        import mkdocs  # noqa: F401
        import mkdocstrings  # noqa: F401
    except ImportError as err:
        pytest.skip(f"the site build needs the docs extra (pip install '.[docs]'): {err}")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    _mkdocs()
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert proc.returncode == 0, "mkdocs build --strict failed:\n" + proc.stdout + proc.stderr
    return out


def test_strict_build_has_every_page(site):
    pages = sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html")
                   if p.name != "404.html")
    assert len(pages) >= 15, pages
    for page in ("index.html", "tutorials/concepts.html", "tutorials/migrating.html",
                 "api/autodiff-ops.html", "gallery/index.html", "gallery/vae.html"):
        assert page in pages, page


def test_the_api_reference_renders_docstrings(site):
    html = (site / "api" / "samplers.html").read_text()
    assert 'id="samplers.nuts.NUTS"' in html
    assert "Draws and statistics of" in html                 # Result's docstring
    ops = (site / "api" / "autodiff-ops.html").read_text()
    assert "Differentiable <code>numpy.exp</code>" in ops     # filled at run time
    assert "tied maxima share the gradient" in ops           # a source docstring


def test_gallery_lists_every_example(site):
    index = (site / "gallery" / "index.html").read_text()
    for name in hooks.example_names():
        assert f'href="{name}.html"' in index, name


def test_gallery_page_from_data(tmp_path, monkeypatch):
    monkeypatch.setattr(hooks, "GALLERY", tmp_path)
    (tmp_path / "data").mkdir()
    record = {"example": "toy_funnel", "date": "2026-12-06", "quick": True,
              "command": "python examples/toy_funnel.py --quick --no-progress",
              "seconds": 12.5, "figure": "img/toy_funnel.png",
              "metrics": {"vi_var_v": 1.6123456, "nuts_divergent": 3, "label": "x"}}
    (tmp_path / "data" / "toy_funnel.json").write_text(json.dumps(record))
    page = hooks.example_page("toy_funnel", hooks._load("toy_funnel"),
                              {"toy_funnel": {"note": "A note.", "rows": [
                                  {"quantity": "var(v)", "value": "9", "source": "Neal"}]}})
    assert "Measured on 2026-12-06, a `--quick` run, 12.5 s of wall time (" in page
    assert "![toy_funnel: the example's figure](img/toy_funnel.png)" in page
    assert "| `vi_var_v` | 1.612 |" in page and "| `nuts_divergent` | 3 |" in page
    assert "| var(v) | 9 | Neal |" in page and "A note." in page
    assert "Not yet generated" not in page


def test_gallery_page_without_data():
    page = hooks.example_page("no_such_example_yet", None, {})
    assert "Not yet generated" in page
    assert "python docs/gallery.py no_such_example_yet" in page
    assert "No published number" in page
    index = hooks.index_page(["toy_funnel"], {"toy_funnel": None})
    assert "| [toy_funnel](toy_funnel.md) |" in index and "not yet generated" in index


def _load_gallery():
    spec = importlib.util.spec_from_file_location("_zsarray_docs_gallery",
                                                  ROOT / "docs" / "gallery.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gallery_generator_keeps_json_values_and_shrinks_figures(tmp_path):
    np = pytest.importorskip("numpy")
    pil = pytest.importorskip("PIL.Image")
    gallery = _load_gallery()
    metrics = {"a": np.float64(1.5), "n": np.int64(3), "v": np.arange(3.0), "big": np.zeros(99),
               "t": (1, np.float32(2.0)), "obj": object(), "s": "x", "none": None}
    kept = gallery._jsonable(metrics)
    assert kept == {"a": 1.5, "n": 3, "v": [0.0, 1.0, 2.0], "big": None, "t": [1, 2.0],
                    "obj": None, "s": "x", "none": None}
    json.dumps(kept)                                          # all of it serializes
    noise = np.random.default_rng(0).integers(0, 256, (700, 700, 3), dtype=np.uint8)
    src, dst = tmp_path / "big.png", tmp_path / "small.png"
    pil.fromarray(noise).save(src)
    assert src.stat().st_size > 200_000
    gallery.shrink_png(src, dst)
    assert dst.stat().st_size <= 200_000
    with pil.open(dst) as img:
        assert img.width < 700 and img.width == img.height
    assert set(gallery.example_names()) >= {"vae", "bayesian_logistic_regression"}
    assert not any(n.startswith("_") for n in gallery.example_names())
