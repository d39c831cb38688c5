"""MkDocs hooks: the example gallery, built from ``docs/gallery/data/*.json``.

``python docs/gallery.py`` runs the examples and writes one JSON file (metrics, date,
command, ``--quick`` or not) and one figure per example; at build time this hook turns
them into ``gallery/index.md`` and one page per example, with the published numbers of
``docs/gallery/published.json`` next to the measured ones. An example script without a
data file is listed as "not yet generated". Nothing here is written by hand per example.
"""
import json
import pathlib


ROOT = pathlib.Path(__file__).resolve().parent.parent
GALLERY = ROOT / "docs" / "gallery"


def example_names():
    """The runnable scripts of ``examples/`` (helpers start with ``_``)."""
    return sorted(p.stem for p in (ROOT / "examples").glob("*.py") if not p.stem.startswith("_"))


def _load(name):
    path = GALLERY / "data" / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _published():
    path = GALLERY / "published.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _summary_line(name):
    """The first paragraph of the example's module docstring, on one line."""
    import ast
    path = ROOT / "examples" / f"{name}.py"
    if not path.exists():
        return ""
    src = path.read_text()
    doc = ast.get_docstring(ast.parse(src)) or ""
    return " ".join(doc.strip().split("\n\n")[0].split()) if doc.strip() else ""


def _fmt(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value[:8]) + (", ..." if len(value) > 8 else "") + "]"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items())
    return str(value)


def example_page(name, record, published):
    """The Markdown of one example's gallery page."""
    lines = [f"# {name}", "", _summary_line(name), "",
             f"Source: `examples/{name}.py`.", ""]
    if record is None:
        lines += ["!!! note \"Not yet generated\"",
                  f"    Run `python docs/gallery.py {name}` to measure this example.", ""]
    else:
        kind = "a `--quick` run" if record.get("quick") else "a full run"
        where = f" on {record['machine']}" if record.get("machine") else ""
        lines += [f"Measured on {record['date']}, {kind}, {record['seconds']} s of wall time"
                  f"{where} (first-use Numba compilation included): `{record['command']}`", ""]
        if record.get("figure"):
            lines += [f"![{name}: the example's figure]({record['figure']})", ""]
        lines += ["## Measured", "", "| metric | value |", "|---|---|"]
        lines += [f"| `{k}` | {_fmt(v)} |" for k, v in record["metrics"].items()]
        lines.append("")
    entry = published.get(name)
    lines += ["## Published", ""]
    if entry:
        if entry.get("note"):
            lines += [entry["note"], ""]
        lines += ["| quantity | published | source |", "|---|---|---|"]
        lines += [f"| {r['quantity']} | {r['value']} | {r['source']} |" for r in entry["rows"]]
    else:
        lines.append("No published number to compare with; the example's own checks are in "
                     "`tests/examples/`.")
    return "\n".join(lines) + "\n"


def index_page(names, records):
    """The Markdown of the gallery's index."""
    lines = ["# Example gallery", "",
             "One page per script of `examples/`: its figure and the numbers it measured, "
             "next to the published ones where there are any. The pages are generated from "
             "`docs/gallery/data/*.json` (written by `python docs/gallery.py`, which runs "
             "every example with `--quick` unless given `--full`); nothing is pasted by hand.",
             "", "| example | what it shows | data |", "|---|---|---|"]
    for name in names:
        rec = records[name]
        data = ("not yet generated" if rec is None else
                f"{rec['date']}, {'quick run' if rec.get('quick') else 'full run'}")
        lines.append(f"| [{name}]({name}.md) | {_summary_line(name)} | {data} |")
    return "\n".join(lines) + "\n"


def on_config(config, **kwargs):
    """Put one gallery page per example under "Example gallery" in the navigation."""
    pages = [{"Overview": "gallery/index.md"}] + [f"gallery/{n}.md" for n in example_names()]
    for i, item in enumerate(config["nav"] or []):
        if isinstance(item, dict) and "Example gallery" in item:
            config["nav"][i] = {"Example gallery": pages}
    return config


def on_files(files, config, **kwargs):
    """Add the generated gallery pages (the figures in ``gallery/img/`` are ordinary files)."""
    from mkdocs.structure.files import File
    names = example_names()
    records = {n: _load(n) for n in names}
    published = _published()
    for uri in ["gallery/index.md"] + [f"gallery/{n}.md" for n in names]:
        old = files.get_file_from_path(uri)
        if old is not None:
            files.remove(old)
    files.append(File.generated(config, "gallery/index.md", content=index_page(names, records)))
    for name in names:
        files.append(File.generated(config, f"gallery/{name}.md",
                                    content=example_page(name, records[name], published)))
    return files
