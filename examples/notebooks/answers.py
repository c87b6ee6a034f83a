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


def solution_sources(notebook):
    """``{function name: source of the code cell defining it}`` in ``solutions/<notebook>.ipynb``."""
    cells = json.loads((SOLUTIONS / f"{Path(notebook).stem}.ipynb").read_text())["cells"]
    sources = ("".join(cell["source"]) for cell in cells if cell["cell_type"] == "code")
    return {name: source for source in sources for name in re.findall(r"^def (\w+)\(", source, re.MULTILINE)}


def solution(notebook, name):
    """The function ``name`` as ``solutions/<notebook>.ipynb`` answers it (its cell run in a fresh namespace)."""
    namespace = {}
    exec(solution_sources(notebook)[name], namespace)  # the repository's own solutions notebook
    return namespace[name]
