"""The two reference MNIST architectures, ready for ``(N, 1, 28, 28)`` input."""

from .init import as_generator
from .layers import Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU
from .model import Sequential

__all__ = ["basic_mlp", "cnn"]


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
    """A small CNN for 28x28 digits: two 3x3 convolution blocks, then a dense classifier.

    ::

        Conv2D 1->32 3x3, ReLU, MaxPool 2      (N, 32, 13, 13)
        Conv2D 32->64 3x3, ReLU, MaxPool 2     (N, 64, 5, 5)
        Flatten, Dense 1600->128, ReLU, Dropout 0.5, Dense 128->10

    225,034 parameters, about 5.3 MFLOP per image forward; outputs logits.
    ``rng`` (Generator or int) seeds the weights.

    Examples
    --------
    >>> cnn(rng=0).count_params()
    225034
    """
    rng = as_generator(rng)
    return Sequential([
        Conv2D(1, 32, 3, rng=rng),
        ReLU(),
        MaxPool2D(2),
        Conv2D(32, 64, 3, rng=rng),
        ReLU(),
        MaxPool2D(2),
        Flatten(),
        Dense(1600, 128, rng=rng),
        ReLU(),
        Dropout(0.5, rng=rng),
        Dense(128, 10, rng=rng),
    ])
