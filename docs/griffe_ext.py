"""A Griffe extension for the API reference: docstrings that exist only at run time.

Griffe reads the source; a few public names get their docstrings at import time
(``cholesky.__doc__ = ...``, ``BinarizedMNIST.__doc__ = ...``, the SG-MCMC fronts made
by a factory) or are NumPy functions made differentiable (``autodiff.exp``). For a
module-level object without a docstring in the source, this extension uses, in order:
the ``#:`` comment block right above its assignment (Sphinx's attribute comments); its
run-time ``__doc__``; for a differentiable NumPy function, NumPy's summary
line; for an instance of one of our classes, that class's summary. It also turns the
Sphinx roles of the docstrings (``:func:`~autodiff.grad```) into code spans, and their
doctest examples into code blocks.
"""
import importlib
import re

import griffe

PACKAGES = ("autodiff", "samplers", "zsarray")
_ROLE = re.compile(r":(?:func|class|mod|meth|attr|data|obj|exc|py:\w+):`(~?)([^`]+)`")


def _plain_roles(text):
    text = _ROLE.sub(lambda m: "`" + (m.group(2).rsplit(".", 1)[-1] if m.group(1)
                                      else m.group(2)) + "`", text)
    return _fence_doctests(re.sub(r"(\S)::$", r"\1:", text, flags=re.M))


def _fence_doctests(text):
    """Runs of ``>>>`` / ``...`` lines become fenced ``pycon`` blocks (Markdown would
    read ``>>>`` as a quote); ``# doctest:`` directives are dropped."""
    out, block = [], []
    for line in text.split("\n") + [""]:
        stripped = line.strip()
        if stripped.startswith(">>>") or (block and stripped.startswith("...")):
            block.append(re.sub(r"\s*# doctest:.*$", "", line.rstrip()))
            continue
        if block:
            indent = block[0][:len(block[0]) - len(block[0].lstrip())]
            out += [indent + "```pycon", *block, indent + "```"]
            block = []
        out.append(line)
    return "\n".join(out[:-1])


def _summary(doc):
    """The first paragraph of ``doc`` that is not a NumPy-style signature line."""
    paras = [p.strip() for p in (doc or "").strip().split("\n\n") if p.strip()]
    for p in paras:
        if not re.match(r"^\w+\(.*\)$", p.splitlines()[0].strip()):
            return " ".join(line.strip() for line in p.splitlines())
    return ""


def runtime_docstring(obj, name):
    """The docstring the reference shows for the run-time object ``obj`` named ``name``."""
    import numpy as np
    own = getattr(obj, "__doc__", None)
    wrapped = getattr(obj, "__wrapped__", None)
    npfun = getattr(np, name, None)
    if callable(obj) and npfun is not None and own and own == getattr(npfun, "__doc__", None):
        return (f"Differentiable `numpy.{name}` on Tensors and arrays (returns a Tensor). "
                f"NumPy: {_summary(own)}")
    if wrapped is not None and own and own == getattr(wrapped, "__doc__", None) \
            and getattr(wrapped, "__module__", "").split(".")[0] not in PACKAGES:
        return (f"Differentiable `{getattr(wrapped, '__module__', '')}.{name}` on Tensors and "
                f"arrays (returns a Tensor): {_summary(own)}")
    cls = type(obj)
    if own and own is not getattr(cls, "__doc__", None):
        return own
    if cls.__module__.split(".")[0] in PACKAGES and cls.__doc__ and cls.__name__[0] == "_":
        return cls.__doc__
    if cls.__module__.split(".")[0] in PACKAGES and cls.__doc__:
        return f"An instance of `{cls.__module__}.{cls.__qualname__}`: {_summary(cls.__doc__)}"
    return None


class RuntimeDocstrings(griffe.Extension):
    """Fill missing module-level docstrings from run time; plain code spans for roles."""

    def on_package(self, *, pkg, **kwargs):
        if pkg.name not in PACKAGES:
            return
        self._walk(pkg)

    def _walk(self, obj):
        for member in list(obj.members.values()):
            if member.is_alias:
                continue
            if member.docstring is not None:
                member.docstring.value = _plain_roles(member.docstring.value)
            elif obj.is_module and not member.name.startswith("_"):
                text = (self._from_comment(obj, member)
                        or self._from_runtime(obj.path, member.name))
                if text:
                    member.docstring = griffe.Docstring(_plain_roles(text), parent=member)
            if member.is_module or member.is_class:
                self._walk(member)
        if obj.is_module and obj.docstring is not None and obj.parent is None:
            obj.docstring.value = _plain_roles(obj.docstring.value)

    @staticmethod
    def _from_comment(module, member):
        """The ``#:`` lines right above ``member``'s first line, joined."""
        try:
            lines = module.lines
            i = member.lineno - 2
        except Exception:
            return None
        block = []
        while i >= 0 and lines[i].lstrip().startswith("#:"):
            block.insert(0, lines[i].lstrip()[2:].strip())
            i -= 1
        return " ".join(block) or None

    @staticmethod
    def _from_runtime(module_path, name):
        try:
            value = getattr(importlib.import_module(module_path), name)
        except Exception:        # a module that cannot be imported here keeps its source docs
            return None
        return runtime_docstring(value, name)
