"""Render each chapter notebook for reading: docs/chapters/<name>.md, with its pictures and printed numbers.

A chapter is a notebook of this folder committed with a full run's outputs; the exercise notebooks,
committed without outputs, are not rendered. In a chapter, a cell that holds an exercise's stub
(``raise NotImplementedError``) is shown as the stub alone, without the check below it and without
its output, and points at the solutions notebook: the answers stay there. Every other cell is
shown as code, then what it printed (as text) and drew (as a PNG beside the page,
``docs/chapters/<name>/figure-<k>.png``).
Links between notebooks and docs are rewritten so that they still land from docs/chapters/.

    python examples/notebooks/render_chapters.py           # (re)write docs/chapters/
    python examples/notebooks/render_chapters.py --check   # exit 1, naming the files, if they are stale

The test suite runs the check: after changing a chapter notebook, run this script and commit
docs/chapters/ with it.
"""

import argparse
import base64
import json
import os
import re
import sys
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parent
ROOT = NOTEBOOKS.parents[1]
CHAPTERS = ROOT / "docs" / "chapters"
STUB = "raise NotImplementedError"
#: ``[text](target)`` and ``![alt](target)`` in Markdown, the target relative to the notebook.
LINK = re.compile(r"(!?\[[^\]]*\]\()([^)\s]+)(\))")


def chapters(folder=NOTEBOOKS):
    """The notebooks of ``folder`` committed with outputs, by name."""
    found = []
    for path in sorted(folder.glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        if any(cell.get("outputs") for cell in cells if cell["cell_type"] == "code"):
            found.append(path)
    return found


def render(path, out=CHAPTERS):
    """``{file: bytes}`` of one chapter: its page and its pictures, not yet written."""
    notebook = json.loads(path.read_text())
    name, files, parts = path.stem, {}, []
    notebook_link = _relative(path, out)
    solutions = NOTEBOOKS / "solutions" / path.name
    parts.append(f"<!-- Rendered from examples/notebooks/{path.name} by examples/notebooks/render_chapters.py: "
                 "edit the notebook and run the script, not this file. -->\n\n"
                 f"*Rendered from [{path.name}]({notebook_link}) with the outputs of its last full run. "
                 "Run the notebook to do its exercises; their answers are not shown here.*\n")
    for cell in notebook["cells"]:
        source = "".join(cell["source"]).rstrip()
        if cell["cell_type"] == "markdown":
            parts.append(_relink(source, path, out))
            continue
        if cell["cell_type"] != "code" or not source:
            continue
        if STUB in source:  # the stub alone: the rest of the cell is its check, which may hold the answer
            parts.append(f"```python\n{source.split(chr(10) * 3)[0]}\n```")
            answer = (f", and its worked answer is in [solutions/{path.name}]({_relative(solutions, out)})"
                      if solutions.exists() else "")
            parts.append(f"*An exercise: fill in the stub in [the notebook]({notebook_link}) and run the cell; "
                         f"its check says what is wrong{answer}.*")
            continue
        parts.append(f"```python\n{source}\n```")
        for kind, content in _outputs(cell):
            if kind == "text":
                parts.append(f"```text\n{content}\n```")
            else:
                figure = f"figure-{len(files) + 1}.png"
                files[out / name / figure] = content
                parts.append(f"![{name}, {figure[:-4].replace('-', ' ')}]({name}/{figure})")
    files[out / f"{name}.md"] = ("\n\n".join(parts) + "\n").encode()
    return files


def _outputs(cell):
    """``("text", str)`` and ``("png", bytes)`` in the order the cell produced them (stdout merged)."""
    found = []
    for output in cell.get("outputs", []):
        kind = output["output_type"]
        if kind == "stream" and output.get("name") == "stdout":
            text = _clean("".join(output["text"]))
            if found and found[-1][0] == "text":
                found[-1] = ("text", found[-1][1] + "\n" + text)
            elif text:
                found.append(("text", text))
        elif kind in ("display_data", "execute_result"):
            data = output.get("data", {})
            if "image/png" in data:
                found.append(("png", base64.b64decode("".join(data["image/png"]))))
            elif "text/plain" in data and not "".join(data["text/plain"]).startswith("<Figure"):
                found.append(("text", _clean("".join(data["text/plain"]))))
    return [(kind, content) for kind, content in found if content]


def _clean(text):
    """Printed text as a reader sees it: a progress line rewritten with \\r keeps its last state."""
    return "\n".join(line.split("\r")[-1] for line in text.rstrip().split("\n"))


def _relink(markdown, path, out):
    """Relative links of a notebook's Markdown, rewritten relative to ``out``."""
    def relink(match):
        target = match[2]
        if re.match(r"[a-z]+:|#|/", target):
            return match[0]
        file, _, anchor = target.partition("#")
        new = _relative(path.parent / file, out) + (f"#{anchor}" if anchor else "")
        return f"{match[1]}{new}{match[3]}"
    return LINK.sub(relink, markdown)


def _relative(target, out):
    return Path(os.path.relpath(target.resolve(), out)).as_posix()


def rendered(folder=NOTEBOOKS, out=CHAPTERS):
    """Every file docs/chapters/ should hold: the chapters' pages and pictures, and an index."""
    files, lines = {}, ["# The chapters, rendered for reading", "",
                        "Each page is a chapter notebook with the outputs of its last full run "
                        "(pictures and printed numbers); the exercises' answers are left out.", ""]
    for path in chapters(folder):
        files.update(render(path, out))
        cells = json.loads(path.read_text())["cells"]
        title = next((line.lstrip("# ").strip() for cell in cells if cell["cell_type"] == "markdown"
                      for line in "".join(cell["source"]).splitlines() if line.startswith("# ")), path.stem)
        lines.append(f"- [{title}]({path.stem}.md) (from [{path.name}]({_relative(path, out)}))")
    files[out / "README.md"] = ("\n".join(lines) + "\n").encode()
    return files


def stale(folder=NOTEBOOKS, out=CHAPTERS):
    """The files of ``out`` that differ from a fresh rendering, are missing, or should not be there."""
    expected = rendered(folder, out)
    present = {path for path in out.rglob("*") if path.is_file()} if out.exists() else set()
    changed = [path for path, content in expected.items() if not path.exists() or path.read_bytes() != content]
    return sorted(changed + sorted(present - set(expected)))


def write(folder=NOTEBOOKS, out=CHAPTERS):
    """Write docs/chapters/ afresh (files no chapter makes any more are removed); return the files written."""
    expected = rendered(folder, out)
    for path in (p for p in out.rglob("*") if p.is_file()) if out.exists() else ():
        if path not in expected:
            path.unlink()
    for path, content in expected.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_bytes() != content:
            temporary = path.with_suffix(path.suffix + ".tmp")
            temporary.write_bytes(content)
            temporary.replace(path)  # atomic: a reader never sees half a page
    return sorted(expected)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that docs/chapters/ is up to date")
    args = parser.parse_args(argv)
    if args.check:
        out_of_date = stale()
        for path in out_of_date:
            print(f"out of date: {path.relative_to(ROOT)}")
        if out_of_date:
            print("run: python examples/notebooks/render_chapters.py")
        return 1 if out_of_date else 0
    for path in write():
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
