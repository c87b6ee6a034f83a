"""Hypothesis strategies shared by the tests: window geometries, layers and their inputs."""

import numpy as np
from hypothesis import strategies as st

from tinynet.layers import (
    GELU,
    LSTM,
    RNN,
    AvgPool2D,
    BatchNorm1D,
    BatchNorm2D,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool1D,
    LayerNorm,
    LeakyReLU,
    MaxPool2D,
    MultiHeadAttention,
    Patches,
    PositionalEmbedding,
    ReLU,
    Reshape,
    Residual,
    Sigmoid,
    Softmax,
    Tanh,
)

small = st.integers(1, 3)


@st.composite
def conv_geometry(draw, max_channels=3):
    """``(x_shape, (kh, kw, sh, sw, ph, pw))`` for a valid convolution with at least one output."""
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(small), draw(small)
    ph, pw = draw(st.integers(0, min(2, kh - 1))), draw(st.integers(0, min(2, kw - 1)))
    h = draw(st.integers(max(1, kh - 2 * ph), 8))
    w = draw(st.integers(max(1, kw - 2 * pw), 8))
    n, c = draw(small), draw(st.integers(1, max_channels))
    return (n, c, h, w), (kh, kw, sh, sw, ph, pw)


@st.composite
def pool_geometry(draw):
    """``(x_shape, (kh, kw, sh, sw))`` for a valid pooling window (overlapping or not)."""
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    sh, sw = draw(small), draw(small)
    h, w = draw(st.integers(kh, 7)), draw(st.integers(kw, 7))
    return (draw(small), draw(small), h, w), (kh, kw, sh, sw)


def four_class_images(n=256, seed=0):
    """Four classes of 1x6x6 'images' (a bright row per class) that a small CNN separates."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    x = rng.random((n, 1, 6, 6), dtype=np.float32) * 0.3
    for label in range(4):
        x[y == label, 0, label, :] += 0.7
    return x, y


def layer_by_layer(layers, x, grad, training=True):
    """``(output, input gradient)`` of ``layers`` run one at a time, in their declared order.

    What a model's execution plan (channels-last runs, fused steps) must reproduce.
    """
    out = x
    for layer in layers:
        out = layer.forward(out, training=training)
    for layer in reversed(layers):
        grad = layer.backward(grad)
    return out, grad


def away_from_kinks(x, margin=0.05):
    """Move values off 0 by ``margin`` so finite differences never straddle ReLU's kink."""
    return np.where(x >= 0, x + margin, x - margin)


@st.composite
def layer_and_input_shape(draw, kind):
    """A freshly built layer of the named kind and an input shape it accepts."""
    seed = draw(st.integers(0, 2**16))
    if kind == "Dense":
        d, m = draw(st.integers(1, 6)), draw(st.integers(1, 6))
        leading = draw(st.lists(small, max_size=2))  # (N, D), or a sequence (N, T, D) and more axes
        return Dense(d, m, rng=seed), (draw(small), *leading, d)
    if kind == "Conv2D":
        x_shape, (kh, kw, sh, sw, ph, pw) = draw(conv_geometry())
        layer = Conv2D(x_shape[1], draw(st.integers(1, 3)), (kh, kw), (sh, sw), (ph, pw), rng=seed)
        return layer, x_shape
    if kind in ("MaxPool2D", "AvgPool2D"):
        x_shape, (kh, kw, sh, sw) = draw(pool_geometry())
        cls = MaxPool2D if kind == "MaxPool2D" else AvgPool2D
        return cls((kh, kw), (sh, sw)), x_shape
    if kind == "Dropout":
        return Dropout(draw(st.sampled_from([0.0, 0.3, 0.5])), rng=seed), (draw(small), draw(st.integers(1, 6)))
    if kind == "Softmax":
        shape = (draw(small), draw(st.integers(1, 5)), draw(st.integers(1, 4)))
        return Softmax(axis=draw(st.integers(-3, 2))), shape
    # BatchNorm: at least four values per feature. With two, x_hat is +-1 whatever the input
    # and the input gradient vanishes: a relative error between two near-zero vectors means nothing.
    if kind == "BatchNorm1D":
        features = draw(st.integers(1, 5))
        return BatchNorm1D(features, momentum=draw(st.sampled_from([0.1, 1.0]))), (draw(st.integers(4, 8)), features)
    if kind == "BatchNorm2D":
        channels = draw(st.integers(1, 3))
        shape = (draw(small), channels, draw(st.integers(2, 3)), draw(st.integers(2, 3)))
        return BatchNorm2D(channels, eps=draw(st.sampled_from([1e-5, 1e-3]))), shape
    if kind == "Flatten":
        return Flatten(), (draw(small), draw(small), draw(small), draw(small))
    if kind == "Reshape":  # a sample of a*b*c values as (c, a*b), or with the -1 worked out
        a, b, c = draw(small), draw(small), draw(small)
        shape = draw(st.sampled_from([(c, a * b), (-1, a), (a * b * c,), (a, 1, -1)]))
        return Reshape(shape), (draw(small), a, b, c)
    if kind in ("RNN", "LSTM"):  # (N, T, D) sequences, returning the last state or every state
        steps, features, hidden = draw(st.integers(1, 5)), draw(st.integers(1, 4)), draw(st.integers(1, 5))
        cls = RNN if kind == "RNN" else LSTM
        return cls(features, hidden, return_sequences=draw(st.booleans()), rng=seed), (draw(small), steps, features)
    if kind == "Residual":  # shape-keeping inner layers: a convolution block or a dense block
        if draw(st.booleans()):
            channels, size = draw(st.integers(1, 3)), draw(st.integers(3, 6))
            kernel = draw(st.sampled_from([1, 3]))
            second = Conv2D(channels, channels, kernel, padding=kernel // 2, rng=seed + 1)
            # Near the identity map, as the dense block below, so the first layer's gradient is not tiny.
            second.params["W"][...] = 0.2 * np.random.default_rng(seed).standard_normal(second.params["W"].shape)
            second.params["W"][range(channels), range(channels), kernel // 2, kernel // 2] += 1
            inner = [Conv2D(channels, channels, kernel, padding=kernel // 2, rng=seed), Tanh(), second]
            return Residual(*inner), (draw(small), channels, size, size)
        width = draw(st.integers(2, 6))
        second = Dense(width, width, rng=seed + 1)
        # Near the identity: the gradient reaching the first layer then has the size of the
        # output's, not a product of small random weights that finite differences cannot resolve.
        second.params["W"][...] = np.eye(width) + 0.2 * np.random.default_rng(seed).standard_normal((width, width))
        return Residual(Dense(width, width, rng=seed), Sigmoid(), second), (draw(st.integers(2, 3)), width)
    if kind in SEQUENCE_KINDS:
        return draw(sequence_layer_and_input_shape(kind, seed))
    simple = {"ReLU": ReLU(), "LeakyReLU": LeakyReLU(0.1), "Sigmoid": Sigmoid(), "Tanh": Tanh()}
    return simple[kind], (draw(small), draw(st.integers(1, 5)), draw(small))


def _random_params(layer, seed):
    """Every parameter drawn at random (ones and zeros would hide a missing gamma or bias term); returns the layer."""
    rng = np.random.default_rng(seed)
    for array in layer.params.values():
        array[...] = rng.uniform(0.5, 1.5, array.shape) * rng.choice([-1, 1], array.shape)
    return layer


@st.composite
def sequence_layer_and_input_shape(draw, kind, seed):
    """A layer of the transformer family (sequences ``(N, T, F)``, or images cut into patches) and its input shape."""
    n, steps = draw(small), draw(st.integers(1, 4))
    if kind == "LayerNorm":  # three features or more: with two, x_hat is +-1 whatever the input (dX = 0)
        features, leading = draw(st.integers(3, 6)), draw(st.lists(small, max_size=1))
        layer = LayerNorm(features, eps=draw(st.sampled_from([1e-5, 1e-3])))
        return _random_params(layer, seed), (n, *leading, features)
    if kind == "GELU":
        return GELU(draw(st.sampled_from(["none", "tanh"]))), (n, steps, draw(st.integers(1, 5)))
    if kind == "MultiHeadAttention":
        heads, head_dim = draw(st.integers(1, 3)), draw(st.integers(1, 3))
        layer = MultiHeadAttention(heads * head_dim, heads, causal=draw(st.booleans()), rng=seed)
        rng = np.random.default_rng(seed)
        for name in "qkvo":  # biases away from zero, so their gradients are tested too
            layer.params[f"b_{name}"][...] = rng.standard_normal(heads * head_dim)
        return layer, (n, steps, heads * head_dim)
    if kind == "Patches":
        p = draw(st.integers(1, 3))
        return Patches(p), (n, draw(st.integers(1, 2)), p * draw(small), p * draw(small))
    if kind == "PositionalEmbedding":
        features = draw(st.integers(1, 4))
        return PositionalEmbedding(steps, features, rng=seed), (n, steps, features)
    if kind == "GlobalAvgPool1D":
        return GlobalAvgPool1D(), (n, steps, draw(st.integers(1, 4)))
    raise ValueError(kind)


SEQUENCE_KINDS = ["LayerNorm", "GELU", "MultiHeadAttention", "Patches", "PositionalEmbedding", "GlobalAvgPool1D"]

LAYER_KINDS = [
    "Dense", "Conv2D", "MaxPool2D", "AvgPool2D", "Flatten", "Reshape", "ReLU", "LeakyReLU",
    "Sigmoid", "Tanh", "Softmax", "Dropout", "BatchNorm1D", "BatchNorm2D", "Residual",
    "RNN", "LSTM", *SEQUENCE_KINDS,
]
