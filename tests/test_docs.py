"""The docs run, their code links land, they write out no exercise's answer, and the rendered chapters are current.

Links to code are written ``[`Dense.backward`](../tinynet/layers/dense.py#L82-L86)``; the
test finds ``Dense.backward`` in that file with ``ast`` and checks the line range. After
editing the code, ``python tests/test_docs.py --fix`` rewrites the ranges (and expands
``{{link:tinynet/layers/dense.py:Dense.backward}}`` placeholders into such links).
"""

import ast
import json
import re
import shutil
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


NOTEBOOKS = ROOT / "examples" / "notebooks"


def _normalised(line):
    """A line of code without its comment and without any whitespace."""
    return re.sub(r"\s+", "", line.split("  #")[0].split("# ")[0])


def _answer_lines(solutions):
    """Each solution function's body lines that compute something (an operator in 12 characters or more)."""
    found = {}
    for cell in json.loads(solutions.read_text())["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] != "code":
            continue
        for node in ast.parse(source).body:
            if isinstance(node, ast.FunctionDef):
                for statement in node.body:
                    for line in ast.get_source_segment(source, statement).splitlines():
                        text = _normalised(line)
                        if len(text) >= 12 and re.search(r"[-+*/@]", text):
                            found.setdefault(node.name, []).append(text)
    return found


def _exercise_notebooks():
    """Every notebook of examples/notebooks with a solutions twin."""
    return [path for path in sorted(NOTEBOOKS.glob("*.ipynb")) if (NOTEBOOKS / "solutions" / path.name).exists()]


@pytest.mark.parametrize("notebook", _exercise_notebooks(), ids=lambda path: path.stem)
def test_no_answer_is_written_out_in_the_docs_or_the_exercise_notebook(notebook):
    """No line of a solution's body appears in docs/ (the rendered chapters included) or in its exercise notebook."""
    answers = _answer_lines(NOTEBOOKS / "solutions" / notebook.name)
    assert answers, "the solutions notebook defines no function with a body to look for"
    cells = json.loads(notebook.read_text())["cells"]
    places = {notebook.name: "\n".join("".join(cell["source"]) for cell in cells if cell["cell_type"] == "code")}
    places.update({str(doc.relative_to(ROOT)): doc.read_text() for doc in (ROOT / "docs").rglob("*.md")})
    for place, text in places.items():
        lines = {_normalised(line) for line in text.splitlines()}
        for name, body in answers.items():
            shown = [line for line in body if line in lines]
            assert not shown, f"{place} writes out the answer to {name}: {shown}"


def _render_chapters():
    """examples/notebooks/render_chapters.py as a module."""
    sys.path.insert(0, str(NOTEBOOKS))
    try:
        import render_chapters
    finally:
        sys.path.remove(str(NOTEBOOKS))
    return render_chapters


def test_the_rendered_chapters_are_up_to_date():
    """docs/chapters/ is what render_chapters.py makes of the chapter notebooks as committed."""
    render_chapters = _render_chapters()
    stale = [str(path.relative_to(ROOT)) for path in render_chapters.stale()]
    assert not stale, f"out of date: {stale}; run python examples/notebooks/render_chapters.py"
    assert {path.stem for path in render_chapters.chapters()} >= {"what_the_network_sees", "residual_connections",
                                                                  "training_dynamics", "mnist_digits"}


def test_a_chapter_page_is_stale_once_its_notebook_changes(tmp_path):
    """A chapter saved without outputs is checked by its cells' fingerprint: an edited cell, a lost picture or a
    missing page is reported, a page left over from no chapter too."""
    render_chapters = _render_chapters()
    folder, out = tmp_path / "examples" / "notebooks", tmp_path / "docs" / "chapters"
    shutil.copytree(NOTEBOOKS, folder, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    shutil.copytree(ROOT / "docs" / "chapters", out)
    assert render_chapters.stale(folder, out) == []
    notebook = json.loads((folder / "residual_connections.ipynb").read_text())
    assert not render_chapters.has_outputs(notebook)
    notebook["cells"][-1]["source"].append("\nprint('one more line')")
    (folder / "residual_connections.ipynb").write_text(json.dumps(notebook))
    (out / "what_the_network_sees" / "figure-2.png").unlink()
    (out / "debugging.md").unlink()
    (out / "old_chapter.md").write_text("a page no chapter makes\n")
    assert render_chapters.stale(folder, out) == sorted([
        out / "residual_connections.md", out / "what_the_network_sees" / "figure-2.png",
        out / "debugging.md", out / "old_chapter.md"])


if __name__ == "__main__" and "--fix" in sys.argv:
    for doc in DOCS:
        doc.write_text(fixed(doc.read_text()))
        print(f"updated {doc.relative_to(ROOT)}")
