"""The public surface: what DESIGN.md promises is importable, and nothing private leaks into __all__."""

import os
import platform
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


def test_allocator_tuning_can_be_switched_off():
    """TINYNET_KEEP_FREED_MEMORY=0 leaves the C allocator alone; otherwise fit tunes it once (glibc only)."""
    code = (
        "import numpy as np, tinynet\n"
        "from tinynet import _allocator\n"
        "m = tinynet.Sequential([tinynet.layers.Dense(2, 2, rng=0)])\n"
        "m.fit(np.zeros((4, 2), np.float32), np.zeros(4, int), verbose=0)\n"
        "print(_allocator._done)\n"
    )
    off = subprocess.run([sys.executable, "-c", code], env={**os.environ, "TINYNET_KEEP_FREED_MEMORY": "0"},
                         capture_output=True, text=True, check=True, timeout=120)
    assert off.stdout.strip() == "False"
    on = subprocess.run([sys.executable, "-c", code], env={**os.environ, "TINYNET_KEEP_FREED_MEMORY": "1"},
                        capture_output=True, text=True, check=True, timeout=120)
    expected = "True" if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc" else "False"
    assert on.stdout.strip() == expected
