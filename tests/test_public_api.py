"""The public surface: what DESIGN.md promises is importable, and nothing private leaks into __all__."""

import subprocess
import sys

import pytest

import tinynet


def test_all_names_exist_and_are_public():
    """Every name in tinynet.__all__ exists and none starts with an underscore."""
    for name in tinynet.__all__:
        assert hasattr(tinynet, name) and not name.startswith("_")


@pytest.mark.parametrize(
    "module, names",
    [
        ("layers", ["Dense", "Conv2D", "MaxPool2D", "AvgPool2D", "Flatten", "ReLU", "LeakyReLU", "Sigmoid",
                    "Tanh", "Softmax", "Dropout"]),
        ("losses", ["SoftmaxCrossEntropy", "MeanSquaredError"]),
        ("optim", ["SGD", "Adam"]),
        ("models", ["basic_mlp", "cnn"]),
        ("datasets", ["load_mnist", "load_fashion_mnist"]),
    ],
)
def test_design_names_are_exported(module, names):
    """The names of the public contract are importable and listed in each module's __all__."""
    submodule = getattr(tinynet, module)
    for name in names:
        assert name in submodule.__all__ and callable(getattr(submodule, name))


def test_library_runs_without_the_jit():
    """With NUMBA_DISABLE_JIT=1 the reference kernels are used and a CNN still trains a step."""
    code = (
        "import numpy as np, tinynet\n"
        "assert tinynet.kernels.BACKEND == 'reference', tinynet.kernels.BACKEND\n"
        "m = tinynet.models.cnn(rng=0)\n"
        "x = np.random.default_rng(0).random((16, 1, 28, 28), dtype=np.float32)\n"
        "h = m.fit(x, np.arange(16) % 10, epochs=1, batch_size=8, verbose=0, seed=0)\n"
        "assert np.isfinite(h.history['loss'][0])\n"
    )
    env = {"NUMBA_DISABLE_JIT": "1", "PATH": ""}
    import os

    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=300)
