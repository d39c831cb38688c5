"""Every public name of autodiff, samplers and zsarray has a docstring and a place in the
API reference (``docs/api/*.md``).

Public names are those of the packages' ``__all__`` and, for the public modules listed
there, of theirs (``tests/docs/public_names.py``). The reference documents each name
where it is defined, with a ``::: module`` directive whose ``members`` list names it (or
a ``::: module.name`` directive of its own).
"""
import pathlib
import re

import pytest

pytest.importorskip("griffe", reason="the API reference needs mkdocstrings "
                    "(pip install .[docs])")

from tests.docs.public_names import canonical_path, griffe_object, public_names  # noqa: E402

pytestmark = pytest.mark.docs

ROOT = pathlib.Path(__file__).resolve().parents[2]


def reference_directives(folder=ROOT / "docs" / "api"):
    """``{documented path}`` from the ``:::`` directives of the reference pages: the
    directive's own path, and ``path.member`` for each entry of its ``members`` list."""
    documented = set()
    for page in sorted(folder.glob("*.md")):
        lines = page.read_text().split("\n")
        for i, line in enumerate(lines):
            m = re.match(r"^::: ([\w.]+)\s*$", line)
            if not m:
                continue
            path = m.group(1)
            documented.add(path)
            j = i + 1
            in_members = False
            while j < len(lines) and (lines[j].startswith(" ") or not lines[j].strip()):
                if not lines[j].strip():
                    break
                if re.match(r"^\s+members:\s*$", lines[j]):
                    in_members = True
                elif in_members and re.match(r"^\s+- [\w.]+\s*$", lines[j]):
                    documented.add(f"{path}.{lines[j].split('-', 1)[1].strip()}")
                elif not re.match(r"^\s+- ", lines[j]):
                    in_members = False
                j += 1
    return documented


NAMES = public_names()


def test_the_public_names_are_many_and_include_each_kind():
    assert len(NAMES) > 400
    for path in ("autodiff.grad", "autodiff.exp", "autodiff.backend", "samplers.NUTS",
                 "samplers.strategies", "samplers.suite.run", "zsarray.BayesianNet",
                 "zsarray.nn.Linear", "zsarray.distributions.Normal", "zsarray.sample"):
        assert path in NAMES, path


def test_every_public_name_has_a_docstring():
    missing = []
    for path, obj in NAMES.items():
        where = canonical_path(path, obj)
        found = griffe_object(where) if where else None
        doc = found.docstring.value.strip() if found is not None and found.docstring else ""
        if not doc:
            missing.append(f"{path} (defined at {where})")
    assert not missing, "public names without a docstring:\n  " + "\n  ".join(missing)


def test_every_public_name_is_in_the_reference():
    documented = reference_directives()
    missing = sorted(f"{path} (add {where} to a docs/api page)"
                     for path, obj in NAMES.items()
                     for where in [canonical_path(path, obj)] if where not in documented)
    assert not missing, "public names missing from the API reference:\n  " + "\n  ".join(missing)


def test_the_directive_parser_reads_members_lists(tmp_path):
    (tmp_path / "a.md").write_text("# A\n\n::: pkg.mod\n    options:\n      members:\n"
                                   "        - f\n        - G\n      heading_level: 2\n\n"
                                   "::: pkg.other.h\n\ntext\n")
    assert reference_directives(tmp_path) == {"pkg.mod", "pkg.mod.f", "pkg.mod.G",
                                              "pkg.other.h"}
