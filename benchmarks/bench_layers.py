"""Forward + backward of each layer type at the shapes the MNIST models feed it (batch 128).

Each layer is called on its own, through its public NCHW interface (the layout changes in
and out are timed with it); ``profile_layers.py`` shows what a model's execution plan runs.
"""

import numpy as np
import pytest

from tinynet.layers import Conv2D, Dense, MaxPool2D
from tinynet.losses import SoftmaxCrossEntropy

BATCH = 128
LAYERS = {
    "Dense 784->128": (lambda: Dense(784, 128, rng=0), (BATCH, 784)),
    "Dense 1600->128": (lambda: Dense(1600, 128, rng=0), (BATCH, 1600)),
    "Dense 5408->128": (lambda: Dense(5408, 128, rng=0), (BATCH, 5408)),
    "Conv2D 1->32 3x3": (lambda: Conv2D(1, 32, 3, rng=0), (BATCH, 1, 28, 28)),
    "Conv2D 32->64 3x3": (lambda: Conv2D(32, 64, 3, rng=0), (BATCH, 32, 13, 13)),
    "MaxPool2D 2 (pool1)": (lambda: MaxPool2D(2), (BATCH, 32, 26, 26)),
    "MaxPool2D 2 (pool2)": (lambda: MaxPool2D(2), (BATCH, 64, 11, 11)),
}


def _shape_text(shape):
    return "x".join(map(str, shape))


@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_forward_backward(benchmark, results, name):
    build, shape = LAYERS[name]
    layer = build()
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape, dtype=np.float32)
    grad_y = rng.standard_normal(layer.forward(x).shape, dtype=np.float32)

    def step():
        layer.forward(x, training=True)
        return layer.backward(grad_y)

    grad_x = step()  # warm-up: compiles the kernels outside the timing
    assert grad_x.shape == x.shape and grad_x.dtype == np.float32
    assert all(layer.grads[key].shape == value.shape for key, value in layer.params.items())
    benchmark.group = "layers"
    benchmark(step)
    if benchmark.stats is not None:
        results.record("layers", name, "forward_backward_ms", benchmark.stats.stats.median * 1e3, "ms",
                       detail=_shape_text(shape))


def test_softmax_cross_entropy(benchmark, results):
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((BATCH, 10), dtype=np.float32)
    labels = rng.integers(0, 10, BATCH)
    loss = SoftmaxCrossEntropy()

    def step():
        loss.forward(logits, labels)
        return loss.backward()

    grad = step()
    np.testing.assert_allclose(grad.sum(axis=1), 0, atol=1e-6)  # softmax - one-hot sums to zero per row
    benchmark.group = "layers"
    benchmark(step)
    if benchmark.stats is not None:
        results.record("layers", "SoftmaxCrossEntropy", "forward_backward_ms", benchmark.stats.stats.median * 1e3,
                       "ms", detail=_shape_text(logits.shape))
