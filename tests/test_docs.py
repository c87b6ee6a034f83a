"""The docs run: every Python block in docs/*.md executes, and every link to code points at its function.

Links to code are written ``[`Dense.backward`](../tinynet/layers/dense.py#L82-L86)``; the
test finds ``Dense.backward`` in that file with ``ast`` and checks the line range. After
editing the code, ``python tests/test_docs.py --fix`` rewrites the ranges (and expands
``{{link:tinynet/layers/dense.py:Dense.backward}}`` placeholders into such links).
"""

import ast
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md"))
LINK = re.compile(r"\[`(?P<name>[\w.]+)`\]\(\.\./(?P<path>[\w/]+\.py)#L(?P<start>\d+)-L(?P<end>\d+)\)")
PLACEHOLDER = re.compile(r"\{\{link:(?P<path>[\w/]+\.py):(?P<name>[\w.]+)\}\}")


def python_blocks(text):
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def definition_lines(path, dotted_name):
    """(first, last) line of the function or class ``dotted_name`` (e.g. ``Dense.backward``) in ``path``."""
    tree = ast.parse((ROOT / path).read_text())
    scope = tree.body
    node = None
    for part in dotted_name.split("."):
        node = next((n for n in scope if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == part), None)
        if node is None:
            raise LookupError(f"{dotted_name} is not defined in {path}")
        scope = node.body
    first = min([node.lineno] + [d.lineno for d in node.decorator_list])
    return first, node.end_lineno


def link(path, name):
    first, last = definition_lines(path, name)
    return f"[`{name}`](../{path}#L{first}-L{last})"


def fixed(text):
    text = PLACEHOLDER.sub(lambda m: link(m["path"], m["name"]), text)
    return LINK.sub(lambda m: link(m["path"], m["name"]), text)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_python_blocks_run(doc):
    """The Python blocks of each page run in order, in one namespace, without error."""
    namespace = {"__name__": f"docs.{doc.stem}"}
    blocks = python_blocks(doc.read_text())
    assert blocks, f"{doc.name} has no Python examples"
    for number, block in enumerate(blocks, start=1):
        exec(compile(block, f"{doc.name} block {number}", "exec"), namespace)  # noqa: S102 - our own docs


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_code_links_point_at_their_definitions(doc):
    """Each link names a function or class and the exact lines that define it."""
    text = doc.read_text()
    assert not PLACEHOLDER.search(text), "unexpanded {{link:...}}: run python tests/test_docs.py --fix"
    links = list(LINK.finditer(text))
    for match in links:
        expected = definition_lines(match["path"], match["name"])
        assert (int(match["start"]), int(match["end"])) == expected, (
            f"{doc.name}: {match['name']} is at lines {expected} of {match['path']}, the link says "
            f"{match['start']}-{match['end']}; run python tests/test_docs.py --fix"
        )


if __name__ == "__main__" and "--fix" in sys.argv:
    for doc in DOCS:
        doc.write_text(fixed(doc.read_text()))
        print(f"updated {doc.relative_to(ROOT)}")
