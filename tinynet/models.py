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
from .layers import (
    GELU,
    LSTM,
    BatchNorm1D,
    BatchNorm2D,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool1D,
    LayerNorm,
    MaxPool2D,
    MultiHeadAttention,
    Patches,
    PositionalEmbedding,
    ReLU,
    Reshape,
    Residual,
)
from .model import Sequential

__all__ = ["basic_mlp", "cnn", "lstm_rows", "small_cnn", "keras_convnet", "vit", "pretrained", "PRETRAINED"]

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


def vit(rng=None, *, patch_size=7, embed_dim=64, depth=2, num_heads=4, mlp_dim=128, image_size=28, channels=1,
        classes=10):
    """A small vision transformer: the image cut into patches, read by pre-norm attention blocks.

    With the defaults::

        Patches(7)                                           (N, 16, 49)   16 patches of 7x7 pixels
        Dense(49, 64), PositionalEmbedding(16, 64)           (N, 16, 64)   each patch embedded, where it was added
        2 x [Residual(LayerNorm(64), MultiHeadAttention(64, 4)),             patches look at each other
             Residual(LayerNorm(64), Dense(64, 128), GELU(), Dense(128, 64))]   then each is transformed alone
        LayerNorm(64), GlobalAvgPool1D()                     (N, 64)       the mean over the patches
        Dense(64, 10)                                        (N, 10)       logits

    Each block is "pre-norm" (Xiong et al., 2020): the normalisation is inside the residual
    branch, so the path from the input to the output is a sum of branches with no
    normalisation on it, and the gradient reaches the first block undiminished.
    71,946 parameters with the defaults. The Dense layers start Glorot uniform, as the
    attention's projections. ``rng`` (Generator or int) seeds the weights.

    Parameters
    ----------
    rng : numpy.random.Generator or int, optional
    patch_size, embed_dim, depth, num_heads, mlp_dim : int
        The square patches' side, the features of each patch, the number of blocks, the
        attention heads (must divide ``embed_dim``) and the hidden size of each block's MLP.
    image_size, channels, classes : int
        Input images ``(N, channels, image_size, image_size)``; ``image_size`` must be a
        multiple of ``patch_size``. ``classes`` logits out.

    Examples
    --------
    >>> model = vit(rng=0)
    >>> model.count_params(), model.output_shapes((1, 28, 28))[-1]
    (71946, (10,))
    """
    rng = as_generator(rng)
    tokens, patch_features = (image_size // patch_size) ** 2, channels * patch_size**2

    def dense(fan_in, fan_out):
        return Dense(fan_in, fan_out, init="glorot_uniform", rng=rng)

    if image_size % patch_size:
        raise ArgumentError(f"vit cuts {image_size}x{image_size} images into patches, so patch_size must divide "
                            f"image_size; received patch_size={patch_size}, image_size={image_size}.")
    blocks = []
    for _ in range(depth):
        blocks += [
            Residual(LayerNorm(embed_dim), MultiHeadAttention(embed_dim, num_heads, rng=rng)),
            Residual(LayerNorm(embed_dim), dense(embed_dim, mlp_dim), GELU(), dense(mlp_dim, embed_dim)),
        ]
    return Sequential([
        Patches(patch_size),
        dense(patch_features, embed_dim),
        PositionalEmbedding(tokens, embed_dim, rng=rng),
        *blocks,
        LayerNorm(embed_dim),
        GlobalAvgPool1D(),
        dense(embed_dim, classes),
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
