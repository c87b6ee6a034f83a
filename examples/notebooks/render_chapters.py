"""Render each chapter notebook for reading: docs/chapters/<name>.md, with its pictures and printed numbers.

The chapters are the notebooks named in ``CHAPTERS``. One without exercises (mnist_digits,
debugging) is committed with a full run's outputs and rendered from them. One with exercises
is committed without outputs, so that no saved picture or number gives an answer away: this
script runs it in full (its stubs in place, each check saying "not done yet") and renders that
run. In a chapter, a cell that holds an exercise's stub (``raise NotImplementedError``) is shown
as the stub alone, without the check below it and without its output, and points at the
solutions notebook: the answers stay there. Every other cell is shown as code, then what it
printed (as text) and drew (as a PNG beside the page, ``docs/chapters/<name>/figure-<k>.png``).
Links between notebooks and docs are rewritten so that they still land from docs/chapters/.
Each page names the fingerprint of the cells it was rendered from (their text, not their
outputs), so a page that no longer matches its notebook is found without running anything.

    python examples/notebooks/render_chapters.py                  # (re)write docs/chapters/, every chapter
    python examples/notebooks/render_chapters.py residual_connections   # one chapter (and the index)
    python examples/notebooks/render_chapters.py --check          # exit 1, naming the files, if they are stale

The last full run of a chapter is kept in examples/notebooks/.runs/ (not committed), so that a
change to its Markdown alone is rendered without running it again; ``--fresh`` runs it anyway.

A full run of a chapter with exercises takes minutes (it trains networks); the rendering needs
nbclient and ipykernel (the dev extra) and the MNIST files (``TINYNET_DATA``). The test suite
runs the check: after changing a chapter notebook, run this script and commit docs/chapters/
with it.
"""

import argparse
import base64
import hashlib
import json
import os
import re
import sys
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parent
ROOT = NOTEBOOKS.parents[1]
PAGES = ROOT / "docs" / "chapters"
STUB = "raise NotImplementedError"
#: The chapter notebooks, in the index's order.
CHAPTERS = ("mnist_digits", "training_dynamics", "residual_connections", "what_the_network_sees", "debugging",
            "backprop_through_time", "attention")
#: Where the last full run of each chapter saved without outputs is kept (not committed): a change to
#: the chapter's Markdown alone is rendered again with it, without running the chapter again.
RUNS = NOTEBOOKS / ".runs"
#: The page's first line, which names the cells' fingerprint.
HEADER = re.compile(r"^<!-- Rendered from examples/notebooks/(\S+) .* cells ([0-9a-f]{16}) -->$", re.MULTILINE)
#: ``[text](target)`` and ``![alt](target)`` in Markdown, the target relative to the notebook.
LINK = re.compile(r"(!?\[[^\]]*\]\()([^)\s]+)(\))")


def chapters(folder=NOTEBOOKS):
    """The chapter notebooks, in the index's order."""
    return [folder / f"{name}.ipynb" for name in CHAPTERS]


def has_outputs(notebook):
    """Whether a notebook (as JSON) carries saved outputs in any code cell."""
    return any(cell.get("outputs") for cell in notebook["cells"] if cell["cell_type"] == "code")


def fingerprint(notebook):
    """16 hex digits naming the text of a notebook's cells, whatever their outputs."""
    cells = [[cell["cell_type"], "".join(cell["source"])] for cell in notebook["cells"]]
    return hashlib.sha256(json.dumps(cells).encode()).hexdigest()[:16]


def full_run(path):
    """The chapter at ``path`` run top to bottom, not in quick mode, as notebook JSON with its outputs."""
    import nbclient
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    quick = os.environ.pop("TINYNET_NOTEBOOK_QUICK", None)  # the kernel inherits this process's environment
    try:
        nbclient.NotebookClient(notebook, timeout=None, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:
        if quick is not None:
            os.environ["TINYNET_NOTEBOOK_QUICK"] = quick
    return json.loads(nbformat.writes(notebook))


def _code(notebook):
    return ["".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "code"]


def with_last_run(path, fresh=False):
    """The chapter at ``path`` with the outputs of a full run: the last one kept in ``RUNS`` when its code
    cells are the notebook's as they are now (the Markdown may have changed), else a new run, then kept."""
    notebook = json.loads(path.read_text())
    kept = RUNS / path.name
    run = None if fresh or not kept.exists() else json.loads(kept.read_text())
    if run is None or _code(run) != _code(notebook):
        run = full_run(path)
        kept.parent.mkdir(exist_ok=True)
        temporary = kept.with_suffix(".tmp")
        temporary.write_text(json.dumps(run))
        temporary.replace(kept)
    outputs = iter([cell.get("outputs", []) for cell in run["cells"] if cell["cell_type"] == "code"])
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"] = next(outputs)
    return notebook


def render(path, out=PAGES, notebook=None):
    """``{file: bytes}`` of one chapter: its page and its pictures, not yet written.

    ``notebook``: the chapter's JSON with the outputs to show (default: as committed)."""
    notebook = json.loads(path.read_text()) if notebook is None else notebook
    name, files, parts = path.stem, {}, []
    notebook_link = _relative(path, out)
    solutions = NOTEBOOKS / "solutions" / path.name
    parts.append(f"<!-- Rendered from examples/notebooks/{path.name} by examples/notebooks/render_chapters.py: "
                 f"edit the notebook and run the script, not this file. cells {fingerprint(notebook)} -->\n\n"
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


def index(folder=NOTEBOOKS, out=PAGES):
    """``{file: bytes}`` of docs/chapters/README.md, the list of chapters."""
    lines = ["# The chapters, rendered for reading", "",
             "Each page is a chapter notebook with the outputs of its last full run "
             "(pictures and printed numbers); the exercises' answers are left out.", ""]
    for path in chapters(folder):
        cells = json.loads(path.read_text())["cells"]
        title = next((line.lstrip("# ").strip() for cell in cells if cell["cell_type"] == "markdown"
                      for line in "".join(cell["source"]).splitlines() if line.startswith("# ")), path.stem)
        lines.append(f"- [{title}]({path.stem}.md) (from [{path.name}]({_relative(path, out)}))")
    return {out / "README.md": ("\n".join(lines) + "\n").encode()}


def stale(folder=NOTEBOOKS, out=PAGES):
    """The files of ``out`` that differ from what the chapters as committed make, are missing, or should not be there.

    A chapter committed with outputs is rendered again and compared byte for byte; one committed
    without (it has exercises) is not run: its page must name the fingerprint of the notebook's
    cells as they are now, and every picture the page shows must be there."""
    expected, changed = index(folder, out), []
    for path in chapters(folder):
        notebook = json.loads(path.read_text())
        if has_outputs(notebook):
            expected.update(render(path, out, notebook))
            continue
        page = out / f"{path.stem}.md"
        expected[page] = None
        if not page.exists():
            continue
        text = page.read_text()
        header = HEADER.search(text)
        if header is None or header[2] != fingerprint(notebook):
            changed.append(page)
        for figure in re.findall(rf"\]\(({re.escape(path.stem)}/figure-\d+\.png)\)", text):
            expected[out / figure] = None
    present = {path for path in out.rglob("*") if path.is_file()} if out.exists() else set()
    changed += [path for path, content in expected.items()
                if not path.exists() or (content is not None and path.read_bytes() != content)]
    return sorted(set(changed) | (present - set(expected)))


def write(names=CHAPTERS, folder=NOTEBOOKS, out=PAGES, fresh=False):
    """Render the chapters ``names`` and the index, replacing each chapter's old page and pictures; a chapter
    without saved outputs shows its last full run (:func:`with_last_run`; ``fresh``: run it again whatever
    is kept). Return the files written."""
    files = index(folder, out)
    for name in names:
        path = folder / f"{name}.ipynb"
        notebook = json.loads(path.read_text())
        chapter = render(path, out, notebook if has_outputs(notebook) else with_last_run(path, fresh))
        for old in (out / name).glob("*") if (out / name).exists() else ():
            if old not in chapter:
                old.unlink()
        files.update(chapter)
    for path, content in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_bytes() != content:
            temporary = path.with_suffix(path.suffix + ".tmp")
            temporary.write_bytes(content)
            temporary.replace(path)  # atomic: a reader never sees half a page
    return sorted(files)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chapters", nargs="*", metavar="CHAPTER",
                        help=f"the chapters to render (default: all): {', '.join(CHAPTERS)}")
    parser.add_argument("--check", action="store_true", help="only check that docs/chapters/ is up to date")
    parser.add_argument("--fresh", action="store_true",
                        help="run each chapter saved without outputs again, even if its last full run is kept")
    args = parser.parse_args(argv)
    unknown = [name for name in args.chapters if name not in CHAPTERS]
    if unknown:
        parser.error(f"no chapter named {', '.join(unknown)}: choose from {', '.join(CHAPTERS)}")
    if args.check:
        out_of_date = stale()
        for path in out_of_date:
            print(f"out of date: {path.relative_to(ROOT)}")
        if out_of_date:
            print("run: python examples/notebooks/render_chapters.py")
        return 1 if out_of_date else 0
    for path in write(args.chapters or CHAPTERS, fresh=args.fresh):
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
