"""The public names of autodiff, samplers and zsarray, and where each is defined.

A public name is a name in a package's ``__all__``; a public module (one listed in an
``__all__``) contributes the names of its own ``__all__`` in turn. Each name is mapped to
its *canonical* path, the module and qualified name where it is defined, which is what
the API reference documents with a ``::: path`` directive.
"""
import functools
import importlib
import sys
import pathlib
import types

PACKAGES = ("autodiff", "samplers", "zsarray")


def public_names(packages=PACKAGES):
    """``{public path: object}`` for every public name, modules included, in order."""
    out = {}

    def walk(mod):
        for name in getattr(mod, "__all__", ()):
            obj = getattr(mod, name)
            path = f"{mod.__name__}.{name}"
            if isinstance(obj, types.ModuleType):
                if obj.__name__ in seen:
                    continue
                seen.add(obj.__name__)
                out[obj.__name__] = obj
                walk(obj)
            else:
                out[path] = obj

    seen = set(packages)
    for pkg in packages:
        mod = importlib.import_module(pkg)
        out[pkg] = mod
        walk(mod)
    return out


@functools.lru_cache(maxsize=None)
def griffe_package(name):
    """The package as the API reference sees it: Griffe's static view, with the site's
    extension (``docs/griffe_ext.py``) filling docstrings that exist only at run time."""
    import griffe
    root = pathlib.Path(__file__).resolve().parents[2]
    ext = griffe.load_extensions(f"{root / 'docs' / 'griffe_ext.py'}:RuntimeDocstrings")
    return griffe.load(name, search_paths=[str(root)], extensions=ext,
                       docstring_parser="numpy")


def _lookup(path):
    top, _, rest = path.partition(".")
    obj = griffe_package(top)
    return obj[rest] if rest else obj


def griffe_object(path):
    """Griffe's object at ``path`` with aliases followed, or None when there is none."""
    try:
        obj = _lookup(path)
        return obj.final_target if obj.is_alias else obj
    except Exception:       # not found statically (a lazy module attribute), or a bad alias
        return None


def canonical_path(path, obj):
    """Where the public name ``path`` (run-time value ``obj``) is defined, as the dotted
    path a ``::: path`` directive of the API reference takes; None when not found."""
    if isinstance(obj, types.ModuleType):
        return obj.__name__
    found = griffe_object(path)
    if found is not None:
        return found.path
    qual, mod = getattr(obj, "__qualname__", None), getattr(obj, "__module__", None)
    if qual and mod and mod.split(".")[0] in PACKAGES:     # a lazy alias of another package
        found = griffe_object(f"{mod}.{qual}")
        if found is not None:
            return found.path
    name = path.rsplit(".", 1)[1]
    top = path.split(".", 1)[0]
    for modname in sorted(m for m in sys.modules if m == top or m.startswith(top + ".")):
        mod = sys.modules[modname]
        if getattr(mod, "__dict__", {}).get(name) is not obj:
            continue
        found = griffe_object(f"{modname}.{name}")
        if found is not None and found.path == f"{modname}.{name}":
            return found.path
    return None
