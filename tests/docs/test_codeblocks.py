"""Every Python block of every page of the site (and of the README) runs as written.

The blocks of one page run in order in one namespace, as a reader would paste them, in
a temporary working folder. Blocks marked ``<!-- docs-test: skip (reason) -->`` are
not run; there must be few of them, each with its reason.
"""
import pathlib

import pytest

from tests.docs.codeblocks import python_blocks

pytestmark = pytest.mark.docs

ROOT = pathlib.Path(__file__).resolve().parents[2]
PAGES = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").rglob("*.md"))
PAGES.append("README.md")


def test_the_parser_finds_blocks_and_markers():
    text = ("text\n\n```python\nx = 1\n```\n\n```bash\nls\n```\n\n"
            "<!-- docs-test: skip (needs a GPU) -->\n```python\nimport cupy\n```\n"
            "- item\n\n    ```python\n    y = x + 1\n    ```\n")
    blocks = python_blocks(text)
    assert [b.code for b in blocks] == ["x = 1", "import cupy", "y = x + 1"]
    assert [b.skip for b in blocks] == [None, "needs a GPU", None]
    assert [b.line for b in blocks] == [4, 13, 18]     # the first line of code
    with pytest.raises(ValueError, match="never closed"):
        python_blocks("```python\nx = 1\n")
    with pytest.raises(ValueError, match="docs-test marker"):
        python_blocks("<!-- docs-test: skip -->\n```python\nx = 1\n```\n")


def test_every_page_has_been_found():
    assert len(PAGES) >= 15
    assert "docs/index.md" in PAGES and "docs/tutorials/concepts.md" in PAGES


@pytest.fixture
def registries():
    """Names a page registers (``samplers.register_kernel``) are removed afterwards."""
    from samplers.registry import ADAPTATIONS, KERNELS
    saved = [(reg, dict(reg._entries)) for reg in (KERNELS, ADAPTATIONS)]
    yield
    for reg, entries in saved:
        reg._entries.clear()
        reg._entries.update(entries)


@pytest.mark.parametrize("page", PAGES)
def test_code_blocks_run(page, tmp_path, monkeypatch, registries):
    pytest.importorskip("matplotlib", reason="the pages' code needs the examples extra")
    pytest.importorskip("sklearn", reason="the pages' code needs the examples extra")
    import matplotlib
    matplotlib.use("Agg")
    blocks = python_blocks((ROOT / page).read_text())
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(ROOT))
    namespace = {"__name__": "__docs__"}
    for block in blocks:
        if block.skip:
            continue
        code = compile(block.code, f"{page}:{block.line}", "exec")
        try:
            exec(code, namespace)
        except Exception as err:
            raise AssertionError(f"{page}, the block at line {block.line} failed: "
                                 f"{type(err).__name__}: {err}") from err
    import matplotlib.pyplot as plt
    plt.close("all")
