"""The worked answers of solutions/, for checks whose reference is the solution itself.

Most checks compare an exercise with tinynet's own layers. Where tinynet has nothing to compare
with (a formula, an attack written in one line), the reference is the solutions notebook's
function, run on the check's cases, so that no check holds its answer written out in its own
code. Reading this module's result gives the answer away just as opening the solutions does.
"""

import json
import re
from pathlib import Path

__all__ = ["solution", "solution_sources"]

SOLUTIONS = Path(__file__).resolve().parent / "solutions"


def _code_cells(notebook):
    cells = json.loads((SOLUTIONS / f"{Path(notebook).stem}.ipynb").read_text())["cells"]
    return ["".join(cell["source"]) for cell in cells if cell["cell_type"] == "code"]


def solution_sources(notebook):
    """``{function name: source of the code cell defining it}`` in ``solutions/<notebook>.ipynb``."""
    return {name: source for source in _code_cells(notebook)
            for name in re.findall(r"^def (\w+)\(", source, re.MULTILINE)}


def solution(notebook, name):
    """The function ``name`` as ``solutions/<notebook>.ipynb`` answers it.

    Every code cell of the solutions notebook runs, in order, in one fresh namespace (a cell may
    use an import made by an earlier one), as when the solutions notebook itself is run.
    """
    namespace = {}
    for source in _code_cells(notebook):
        exec(source, namespace)  # the repository's own solutions notebook
    return namespace[name]
