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
                    "Tanh", "Softmax", "Dropout", "RNN", "LSTM"]),
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
        "from tinynet.training import _allocator\n"
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


def _imports_within_tinynet(path):
    """The tinynet modules that the module at ``path`` imports, anywhere in it (functions included)."""
    import ast

    module = ".".join(path.with_suffix("").parts).removesuffix(".__init__")
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            if node.module:
                found.add(".".join([*base, node.module]))
            else:
                found.update(".".join([*base, alias.name]) for alias in node.names)
    return module, found


def test_imports_go_one_way():
    """No import loop among tinynet's modules (package re-exports aside), lazy imports included."""
    from pathlib import Path

    root = Path(tinynet.__file__).parent
    graph = dict(_imports_within_tinynet(path.relative_to(root.parent)) for path in root.rglob("*.py"))
    for module, targets in graph.items():  # a name imported from a module's package means that module
        graph[module] = {t if t in graph else t.rpartition(".")[0] for t in targets} - {module, "tinynet"}
    state, loops = {}, []

    def visit(module, path):
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                loops.append(path[path.index(target):] + [target])
            elif target in graph and target not in state:
                visit(target, [*path, target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not loops, f"import loops: {loops}"
    assert "tinynet.model" not in graph["tinynet.files.serialization"] | graph["tinynet.files.checkpoint"]


def test_imports_go_down_the_layers_only():
    """model -> files, engine -> kernels -> layers: nothing below imports upward; layers know no engine
    and no kernels (the kernels' readable twins are the layers' functions); files/ never imports the model."""
    from pathlib import Path

    root = Path(tinynet.__file__).parent
    graph = dict(_imports_within_tinynet(path.relative_to(root.parent)) for path in root.rglob("*.py"))

    def imports_of(package):
        return {target for module, targets in graph.items() if module.startswith(package) for target in targets}

    upward = ("tinynet.model", "tinynet.training", "tinynet.files", "tinynet.engine", "tinynet.plots")
    assert not {t for t in imports_of("tinynet.layers") if t.startswith(upward)}
    assert not {t for t in imports_of("tinynet.engine") if t.startswith(upward[:3] + upward[4:])}
    assert not {t for t in imports_of("tinynet.kernels") if t.startswith(upward)}
    assert not {t for t in imports_of("tinynet.layers") if t.startswith("tinynet.kernels")}
    assert not {t for t in imports_of("tinynet.files") if t.startswith(("tinynet.model", "tinynet.training"))}
    assert not {t for t in imports_of("tinynet.data") if t.startswith(upward + ("tinynet.layers",))}
