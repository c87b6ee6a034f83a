"""Every public class and function has a numpydoc docstring with Examples; layers also give their Shape."""

import inspect

import pytest

import tinynet
from tinynet import augment, datasets, init, kernels, layers, losses, models, optim, plots, trace

MODULES = {"tinynet": tinynet, "layers": layers, "losses": losses, "optim": optim, "models": models,
           "datasets": datasets, "augment": augment, "plots": plots, "trace": trace, "kernels": kernels, "init": init}


def _public_objects():
    for module_name, module in MODULES.items():
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj) and issubclass(obj, Exception):
                continue  # exceptions are documented together in tinynet.errors
            if inspect.isclass(obj) or inspect.isfunction(obj):
                yield pytest.param(obj, id=f"{module_name}.{name}")


@pytest.mark.parametrize("obj", list(_public_objects()))
def test_public_docstring_has_examples(obj):
    """Public docstring has examples."""
    doc = inspect.getdoc(obj) or ""
    assert doc, "no docstring"
    assert "Examples\n--------" in doc, "no numpydoc Examples section"
    if inspect.isclass(obj) and issubclass(obj, layers.Layer):
        assert "Shape\n-----" in doc, "a layer documents its input and output Shape"
