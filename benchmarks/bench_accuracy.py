"""Accuracy: the examples' default runs against the reference Keras notebook (slow: about 5 minutes).

Selected with ``pytest benchmarks -m accuracy`` (and left out with ``-m "not accuracy"``).
Each case trains a model exactly as ``examples/mnist_mlp.py`` and ``examples/mnist_cnn.py``
do by default and fails if its test accuracy is below the notebook's (97.94% and 98.52%).
"""

import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _recipe(module_name, attribute):
    sys.path.insert(0, str(EXAMPLES))
    try:
        module = __import__(module_name)
    finally:
        sys.path.remove(str(EXAMPLES))
    return getattr(module, attribute), sys.modules["mnist_run"].main


@pytest.mark.accuracy
@pytest.mark.parametrize(("module_name", "attribute"), [("mnist_mlp", "MLP"), ("mnist_cnn", "CNN")])
def test_default_run_beats_reference(results, mnist, module_name, attribute):
    recipe, run = _recipe(module_name, attribute)
    accuracy = run(recipe, ["--verbose", "0", "--save", ""])
    model_name = {"mlp": "basic_mlp", "cnn": "cnn"}[recipe.name]
    results.record("accuracy", model_name, "test_accuracy", accuracy, "fraction", detail=f"{recipe.epochs} epochs")
    results.record("accuracy", model_name, "reference_accuracy", recipe.reference_accuracy, "fraction")
    assert accuracy > recipe.reference_accuracy, (
        f"{recipe.name}: test accuracy {accuracy:.2%} is below the reference {recipe.reference_accuracy:.2%}"
    )
