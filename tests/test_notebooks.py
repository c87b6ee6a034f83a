"""The notebooks run top to bottom (quick mode), and the committed copies carry a full run's outputs."""

import json
import os
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "examples" / "notebooks"
BACKPROP, DIGITS = NOTEBOOKS / "backprop_from_scratch.ipynb", NOTEBOOKS / "mnist_digits.ipynb"
SEES = NOTEBOOKS / "what_the_network_sees.ipynb"
#: The exercises of what_the_network_sees.ipynb, answered in solutions/what_the_network_sees.py.
SEES_EXERCISES = ("saliency", "targeted_fgsm", "fgsm_gain")


def _execute(path, monkeypatch, solutions=None):
    """Run the notebook in quick mode; with ``solutions`` (a module name), its answers replace the stubs."""
    nbformat = pytest.importorskip("nbformat", reason="nbformat is in the dev extra: pip install -e '.[dev]'")
    nbclient = pytest.importorskip("nbclient", reason="nbclient is in the dev extra: pip install -e '.[dev]'")
    pytest.importorskip("ipykernel", reason="a Jupyter kernel (ipykernel) is in the dev extra")
    monkeypatch.setenv("TINYNET_NOTEBOOK_QUICK", "1")
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells if solutions else ():
        for name in SEES_EXERCISES:
            if cell.source.startswith(f"def {name}(") and "raise NotImplementedError" in cell.source:
                # The learner's answer, as if typed below the stub: it replaces the stub's definition.
                cell.source = cell.source.replace("\n\n\n", f"\n\n\nfrom {solutions} import {name}\n", 1)
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    return notebook


def _text(notebook):
    return "\n".join(output.get("text", "") for cell in notebook.cells for output in cell.get("outputs", [])
                     if output.get("output_type") == "stream")


def test_the_backprop_notebook_runs_and_every_check_passes(monkeypatch):
    """The backprop notebook runs and every check passes."""
    text = _text(_execute(BACKPROP, monkeypatch))
    assert "DIFFERENT" not in text
    assert text.count("  ok") == 9  # every hand-written forward and backward agrees with tinynet
    assert "not written yet" in text  # the exercises are left for the reader, and say so


def test_the_mnist_notebook_runs_in_quick_mode(monkeypatch, mnist_dir):
    """The mnist notebook runs in quick mode."""
    monkeypatch.setenv("TINYNET_DATA", str(mnist_dir))
    notebook = _execute(DIGITS, monkeypatch)
    text = _text(notebook)
    assert "quick mode: True" in text and "reached" in text
    images = sum("image/png" in output.get("data", {}) for cell in notebook.cells for output in cell.get("outputs", []))
    assert images >= 5  # class counts, samples, learning curves, predictions, confusion matrix


@pytest.mark.parametrize("solved", [False, True], ids=["stubs", "solutions"])
def test_what_the_network_sees_runs_with_the_stubs_and_with_the_solutions(monkeypatch, mnist_dir, solved):
    """Quick mode: the stubs say "not done yet"; with the solutions injected every check passes."""
    monkeypatch.setenv("TINYNET_DATA", str(mnist_dir))
    notebook = _execute(SEES, monkeypatch, "solutions.what_the_network_sees" if solved else None)
    text = _text(notebook)
    assert "quick mode: True" in text and "accuracy" in text
    for name in SEES_EXERCISES:
        assert (f"{name}: ok" if solved else f"{name}: not done yet") in text
    assert "DIFFERENT" not in text and "WRONG" not in text and "raised" not in text
    images = sum("image/png" in output.get("data", {}) for cell in notebook.cells for output in cell.get("outputs", []))
    assert images >= 5  # saliency, class models, the FGSM curve, the smallest flips, the training comparison


@pytest.mark.parametrize("path", [BACKPROP, DIGITS, SEES], ids=lambda path: path.name)
def test_the_committed_notebooks_carry_a_full_runs_outputs(path):
    """Readable on a code host without running: outputs saved, pictures included, well under 1 MB."""
    notebook = json.loads(path.read_text())
    code_cells = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert all(cell["outputs"] for cell in code_cells[1:]), "a code cell has no saved output"
    assert any("image/png" in output.get("data", {}) for cell in code_cells for output in cell["outputs"])
    assert "quick mode: True" not in path.read_text(), "the saved outputs come from a quick run"
    assert path.stat().st_size < 1_000_000
    assert os.path.getsize(path) > 10_000


def test_the_exercise_checker_says_what_is_wrong(capsys, monkeypatch):
    """Not done, an exception, a wrong shape, a wrong dtype, a wrong value, a right answer: one line each."""
    import numpy as np

    monkeypatch.syspath_prepend(str(NOTEBOOKS))
    from exercise_checks import check_exercise

    reference = np.arange(6.0).reshape(2, 3)

    def not_done():
        raise NotImplementedError

    for function in (not_done, lambda: 1 / 0, lambda: reference.reshape(3, 2), lambda: reference.astype(np.float32),
                     lambda: reference + np.eye(2, 3), lambda: reference.copy()):
        check_exercise("exercise", function, (), reference)
    lines = capsys.readouterr().out.splitlines()
    expected = ["not done yet", "raised ZeroDivisionError", "WRONG SHAPE (3, 2)", "WRONG DTYPE float32",
                "DIFFERENT at index (0, 0)", ": ok"]
    assert len(lines) == len(expected) and all(part in line for part, line in zip(expected, lines, strict=True))
