"""MNIST architectures, ready for ``(N, 1, 28, 28)`` input.

``basic_mlp``, ``cnn`` and ``lstm_rows`` are the models of the examples. ``small_cnn`` and
``keras_convnet`` are the other two architectures the benchmarks time against PyTorch and
Keras (the same layers, sizes and order as their reference implementations).
``pretrained("cnn" | "mlp")`` loads the examples' models, trained, from files shipped with
the package.
"""

from importlib import resources

from .errors import ArgumentError, ArgumentTypeError
from .files.loading import load_model
from .init import as_generator
from .layers import LSTM, BatchNorm1D, BatchNorm2D, Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU, Reshape
from .model import Sequential

__all__ = ["basic_mlp", "cnn", "lstm_rows", "small_cnn", "keras_convnet", "pretrained", "PRETRAINED"]

#: The trained models shipped in the package: name -> file in tinynet/pretrained/. Each was
#: made by the example named in its metadata (``made_by``), on the full training set, with
#: the example's recipe and seed.
PRETRAINED = {"cnn": "cnn.npz", "mlp": "mlp.npz"}


def _conv_block(in_channels, out_channels, rng):
    """Conv2D 3x3 (no padding), ReLU, MaxPool 2: the building block of every CNN here."""
    return [Conv2D(in_channels, out_channels, 3, rng=rng), ReLU(), MaxPool2D(2)]


def basic_mlp(rng=None):
    """The "basic" sequential model: Flatten -> Dense 784->128 -> ReLU -> Dense 128->10.

    101,770 parameters; outputs logits. ``rng`` (Generator or int) seeds the weights.

    Examples
    --------
    >>> basic_mlp(rng=0).count_params()
    101770
    """
    rng = as_generator(rng)
    return Sequential([
        Flatten(),
        Dense(784, 128, rng=rng),
        ReLU(),
        Dense(128, 10, rng=rng),
    ])


def cnn(rng=None):
    """A small CNN for 28x28 digits: three 3x3 convolutions with BatchNorm, then a dense classifier.

    ::

        Conv2D 1->32 3x3, ReLU, MaxPool 2, BatchNorm2D      (N, 32, 13, 13)
        Conv2D 32->64 3x3, ReLU, MaxPool 2, BatchNorm2D     (N, 64, 5, 5)
        Conv2D 64->128 3x3, BatchNorm2D, ReLU               (N, 128, 3, 3)
        Flatten, Dense 1152->128, BatchNorm1D, ReLU, Dropout 0.3, Dense 128->10

    242,250 parameters (plus BatchNorm's running statistics), about 6.5 MFLOP per image
    forward; outputs logits. ``rng`` (Generator or int) seeds the weights.

    Chosen on a validation split (``benchmarks/tune.py``): the first two blocks keep the order
    Conv, ReLU, MaxPool, which tinynet runs as one fused step, and normalise after the pooling
    (a quarter of the values to normalise); the third convolution adds capacity for 16% more
    time a batch and was worth it on the held-out images (README, "How the recipes were chosen").

    Examples
    --------
    >>> cnn(rng=0).count_params()
    242250
    """
    rng = as_generator(rng)
    return Sequential([
        *_conv_block(1, 32, rng), BatchNorm2D(32),
        *_conv_block(32, 64, rng), BatchNorm2D(64),
        Conv2D(64, 128, 3, rng=rng), BatchNorm2D(128), ReLU(),
        Flatten(),
        Dense(1152, 128, rng=rng),
        BatchNorm1D(128),
        ReLU(),
        Dropout(0.3, rng=rng),
        Dense(128, 10, rng=rng),
    ])


def lstm_rows(rng=None, *, hidden_size=128):
    """An LSTM reading each image row by row: 28 steps of 28 pixels, then a dense classifier.

    ::

        Reshape((28, 28))                       (N, 28, 28): row t is step t
        LSTM(28, hidden_size)                   (N, hidden_size): the state after the last row
        Dense(hidden_size, 10)                  (N, 10)

    81,674 parameters with ``hidden_size=128``; outputs logits. ``rng`` (Generator or int)
    seeds the weights.

    Examples
    --------
    >>> lstm_rows(rng=0).count_params()
    81674
    >>> import numpy as np
    >>> lstm_rows(rng=0).forward(np.zeros((2, 1, 28, 28), np.float32)).shape
    (2, 10)
    """
    rng = as_generator(rng)
    return Sequential([
        Reshape((28, 28)),
        LSTM(28, hidden_size, rng=rng),
        Dense(hidden_size, 10, rng=rng),
    ])


def small_cnn(rng=None):
    """One convolution block and a dense classifier (the seed notebook's CNN shape).

    ::

        Conv2D 1->32 3x3, ReLU, MaxPool 2      (N, 32, 13, 13)
        Flatten, Dense 5408->128, ReLU, Dense 128->10

    693,962 parameters, about 1.8 MFLOP per image forward; outputs logits.

    Examples
    --------
    >>> small_cnn(rng=0).count_params()
    693962
    """
    rng = as_generator(rng)
    return Sequential([
        *_conv_block(1, 32, rng),
        Flatten(),
        Dense(5408, 128, rng=rng),
        ReLU(),
        Dense(128, 10, rng=rng),
    ])


def keras_convnet(rng=None):
    """The Keras "simple MNIST convnet": two convolution blocks, dropout, one dense layer.

    ::

        Conv2D 1->32 3x3, ReLU, MaxPool 2      (N, 32, 13, 13)
        Conv2D 32->64 3x3, ReLU, MaxPool 2     (N, 64, 5, 5)
        Flatten, Dropout 0.5, Dense 1600->10

    34,826 parameters, about 4.9 MFLOP per image forward; outputs logits.

    Examples
    --------
    >>> keras_convnet(rng=0).count_params()
    34826
    """
    rng = as_generator(rng)
    return Sequential([
        *_conv_block(1, 32, rng),
        *_conv_block(32, 64, rng),
        Flatten(),
        Dropout(0.5, rng=rng),
        Dense(1600, 10, rng=rng),
    ])


def pretrained(name="cnn"):
    """A trained MNIST model shipped with tinynet: ``"cnn"`` (:func:`cnn`) or ``"mlp"`` (:func:`basic_mlp`).

    No download and no training: the weights are a file inside the package. Where the model
    came from is in ``model.metadata``: the command that made it (``made_by``), the recipe,
    the seed, the revision of tinynet, the accuracy on the 10,000 MNIST test images, the
    training time and the CPU. Each call returns a new model, free to train or change.

    Examples
    --------
    >>> model = pretrained("cnn")
    >>> model.metadata["test_accuracy"] > 0.99, model.metadata["recipe"]["model"]
    (True, 'tinynet.models.cnn')
    """
    if not isinstance(name, str):
        raise ArgumentTypeError(f"pretrained() expects a name, one of {sorted(PRETRAINED)}; received {name!r} "
                                f"({type(name).__name__}). Call it as pretrained(\"cnn\").")
    if name not in PRETRAINED:
        raise ArgumentError(f"pretrained() knows {sorted(PRETRAINED)}; received {name!r}.")
    with resources.as_file(resources.files(__package__) / "pretrained" / PRETRAINED[name]) as path:
        return load_model(path)
