"""Generate the example gallery's data: run each example, keep its metrics and figure.

    python docs/gallery.py                  # every example, --quick, one at a time
    python docs/gallery.py vae sbn          # only these
    python docs/gallery.py --full vae       # the full run (slow: hours for the VAE family)

Each example's ``main(argv)`` returns a dict of metrics (``figure`` is the path of its
PNG). This script writes ``docs/gallery/data/<name>.json`` (metrics, date, command, whether
it was a ``--quick`` run, wall time) and copies the figure to ``docs/gallery/img/<name>.png``,
shrunk below 200 KB. The gallery pages are built from these files at site-build time by
``docs/hooks.py``; an example without a data file is listed as "not yet generated".
Each example runs in its own subprocess, so one that fails is reported and skipped.
"""
import argparse
import datetime
import json
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = ROOT / "docs" / "gallery" / "data"
IMG = ROOT / "docs" / "gallery" / "img"
MAX_PNG_BYTES = 200_000


def example_names():
    """Every runnable script in ``examples/`` (private helpers start with ``_``)."""
    return sorted(p.stem for p in (ROOT / "examples").glob("*.py") if not p.stem.startswith("_"))


def _jsonable(value):
    try:
        import numpy as np
        if isinstance(value, np.generic):
            value = value.item()
        elif isinstance(value, np.ndarray):
            value = value.tolist() if value.size <= 50 else None
    except ImportError:
        pass
    if isinstance(value, (tuple, list)):
        items = [_jsonable(v) for v in value]
        return None if any(i is None and v is not None for i, v in zip(items, value)) else items
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return None


def shrink_png(src, dst, max_bytes=MAX_PNG_BYTES):
    """Copy ``src`` to ``dst``, halving its size in pixels until it is below ``max_bytes``."""
    shutil.copyfile(src, dst)
    if os.path.getsize(dst) <= max_bytes:
        return
    from PIL import Image
    img = Image.open(src)
    scale = 0.75
    while True:
        small = img.resize((max(1, int(img.width * scale)), max(1, int(img.height * scale))),
                           Image.LANCZOS)
        small.save(dst, optimize=True)
        if os.path.getsize(dst) <= max_bytes or scale < 0.1:
            return
        scale *= 0.75


def run_one(name, full):
    """Run ``examples/<name>.py`` in this process and write its JSON and figure."""
    import importlib
    sys.path.insert(0, str(ROOT))
    module = importlib.import_module(f"examples.{name}")
    with tempfile.TemporaryDirectory() as out:
        argv = ([] if full else ["--quick"]) + ["--no-progress", "--out", out]
        if name == "autodiff_demo":      # no figure, no --quick: a fixed number of steps
            argv = ["--steps", "200"]
        start = time.perf_counter()
        result = module.main(argv)
        seconds = time.perf_counter() - start
        metrics = result if isinstance(result, dict) else {"result": result}
        figure = metrics.get("figure")
        record = {
            "example": name,
            "date": datetime.date.today().isoformat(),
            "quick": not full and name != "autodiff_demo",
            "command": f"python examples/{name}.py " + " ".join(
                a for a in argv if a not in ("--out", out)),
            "seconds": round(seconds, 1),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
            "metrics": {k: v for k, v in ((k, _jsonable(v)) for k, v in metrics.items()
                                          if k != "figure") if v is not None},
            "figure": None,
        }
        if figure and os.path.exists(figure):
            IMG.mkdir(parents=True, exist_ok=True)
            shrink_png(figure, IMG / f"{name}.png")
            record["figure"] = f"img/{name}.png"
    DATA.mkdir(parents=True, exist_ok=True)
    (DATA / f"{name}.json").write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return record


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("names", nargs="*", help="examples to run (default: all)")
    p.add_argument("--full", action="store_true", help="full runs instead of --quick")
    p.add_argument("--one", help=argparse.SUPPRESS)   # the subprocess's entry point
    args = p.parse_args(argv)
    if args.one:
        run_one(args.one, args.full)
        return 0
    failed = []
    for name in args.names or example_names():
        cmd = [sys.executable, __file__, "--one", name] + (["--full"] if args.full else [])
        print(f"[gallery] {name} ...", flush=True)
        start = time.perf_counter()
        rc = subprocess.call(cmd, cwd=ROOT)
        print(f"[gallery] {name}: {'ok' if rc == 0 else f'FAILED ({rc})'} "
              f"in {time.perf_counter() - start:.0f} s", flush=True)
        if rc:
            failed.append(name)
    if failed:
        print("[gallery] failed: " + ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
