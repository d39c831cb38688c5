"""Fenced Python code blocks of Markdown pages, for the executed-docs tests.

A block is a fence opened by a line of three backticks followed by ``python`` (or ``py``)
and closed by three backticks at the same indentation. A block that must not run in the
tests (it needs a GPU, a cluster or a large download) says so on the line right above
its fence, visibly in the page source::

    <!-- docs-test: skip (needs a CUDA device) -->

and the reason in parentheses is required.
"""
import re

_FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w+-]*)[^\n`]*$")
_SKIP = re.compile(r"<!--\s*docs-test:\s*skip\s*\((?P<reason>[^)]+)\)\s*-->")


class Block:
    """One fenced Python block: its code, first line number and skip reason (or None)."""

    def __init__(self, code, line, skip):
        self.code, self.line, self.skip = code, line, skip

    def __repr__(self):
        return f"Block(line={self.line}, skip={self.skip!r})"


def python_blocks(text):
    """The Python blocks of the Markdown ``text``, in order."""
    lines = text.split("\n")
    blocks, i = [], 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m or not m.group("lang"):
            i += 1
            continue
        indent, lang, start = m.group("indent"), m.group("lang"), i
        i += 1
        body = []
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i])
            i += 1
        if i == len(lines):
            raise ValueError(f"line {start + 1}: the fence opened here is never closed")
        i += 1
        if lang not in ("python", "py"):
            continue
        above = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        skip = _SKIP.search(above)
        if "docs-test" in above and skip is None:
            raise ValueError(f"line {start}: a docs-test marker needs the form "
                             "<!-- docs-test: skip (reason) -->")
        blocks.append(Block("\n".join(body), start + 2, skip and skip.group("reason").strip()))
    return blocks
