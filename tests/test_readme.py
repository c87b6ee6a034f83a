"""The README's Python code runs as shown, so what a new user copies works."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run(mnist_dir, monkeypatch):
    """Every ```python block of the README runs on the real MNIST files; the quick-start model learns."""
    monkeypatch.setenv("TINYNET_DATA", str(mnist_dir))
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README should show Python code"
    for block in blocks:
        namespace = {}
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 - our own README
        if "model" in namespace and "x_test" in namespace:
            scores = namespace["model"].evaluate(namespace["x_test"][:, None], namespace["y_test"])
            assert scores["accuracy"] > 0.9, "one epoch of the README's CNN should pass 90%"
