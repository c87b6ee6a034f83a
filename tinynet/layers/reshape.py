"""Flatten and Reshape: new shapes for the same numbers; backward reshapes the gradient back.

Both keep the batch axis and the order of the values (C order, NumPy's and PyTorch's): a
reshape moves no number, so its backward is the inverse reshape of the gradient::

    Flatten:  (N, d1, d2, ...) -> (N, d1*d2*...)
    Reshape:  (N, d1, d2, ...) -> (N, *shape)          prod(shape) == d1*d2*...
"""

import math
import numbers

from .._checks import float_array
from ..errors import ArgumentError, ArgumentTypeError, ShapeError
from .base import Layer

__all__ = ["Flatten", "Reshape", "flatten"]


def flatten(x):
    """``(N, d1, d2, ...) -> (N, d1*d2*...)``: a view when ``x`` is contiguous.

    Examples
    --------
    >>> import numpy as np
    >>> flatten(np.zeros((2, 1, 28, 28))).shape
    (2, 784)
    """
    return x.reshape(x.shape[0], math.prod(x.shape[1:]))


class Flatten(Layer):
    """Flatten every axis but the first (the batch).

    Shape
    -----
    - Input: ``(N, *dims)``, at least 2-D.
    - Output: ``(N, prod(dims))``

    Examples
    --------
    >>> import numpy as np
    >>> Flatten().forward(np.zeros((2, 1, 28, 28), dtype=np.float32)).shape
    (2, 784)
    """

    def forward(self, x, training=False):
        x = float_array(x, "Flatten")
        if x.ndim < 2:
            raise ShapeError(f"Flatten expects input of shape (N, ...) with a batch axis; got {tuple(x.shape)}.")
        self._save(training, x.shape)
        return flatten(x)

    def backward(self, grad_out):
        (x_shape,) = self._saved_values()
        return grad_out.reshape(x_shape)


class Reshape(Layer):
    """Give each sample a new shape: ``(N, ...) -> (N, *shape)``, as Keras ``Reshape``.

    Parameters
    ----------
    shape : tuple of int
        One sample's new shape, without the batch axis; one entry may be ``-1`` (worked out
        from the others, as in NumPy).

    Shape
    -----
    - Input: ``(N, *dims)`` with ``prod(dims) == prod(shape)``.
    - Output: ``(N, *shape)``, the input's dtype.

    Examples
    --------
    An MNIST image as a sequence of 28 rows of 28 pixels:

    >>> import numpy as np
    >>> Reshape((28, 28)).forward(np.zeros((2, 1, 28, 28), dtype=np.float32)).shape
    (2, 28, 28)
    """

    def __init__(self, shape):
        super().__init__()
        if isinstance(shape, numbers.Integral) and not isinstance(shape, bool):
            shape = (shape,)
        if not isinstance(shape, (tuple, list)) or not shape or not all(
                isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in shape):
            raise ArgumentTypeError(
                f"Reshape expects shape to be a tuple of ints (one sample's shape, without the batch axis), "
                f"e.g. Reshape((28, 28)); received shape={shape!r}.")
        if any(v == 0 or v < -1 for v in shape) or list(shape).count(-1) > 1:
            raise ArgumentError(
                f"Reshape expects positive sizes, with at most one -1 (inferred); received shape={tuple(shape)!r}.")
        self.shape = tuple(int(v) for v in shape)

    def output_shape(self, x_shape):
        """``(N, *shape)`` for an input of shape ``x_shape``, the ``-1`` worked out, or a ShapeError."""
        size, known = math.prod(x_shape[1:]), math.prod(v for v in self.shape if v != -1)
        fits = size % known == 0 if -1 in self.shape else size == known
        if len(x_shape) < 2 or not fits:
            raise ShapeError(
                f"Reshape({self.shape}) cannot reshape input of shape {tuple(x_shape)}: each sample has {size} "
                f"values and {self.shape} holds {'a multiple of ' if -1 in self.shape else ''}{known}. Give a "
                f"shape with as many values as one sample (model.summary(input_shape) shows each layer's output).")
        return (x_shape[0], *(size // known if v == -1 else v for v in self.shape))

    def forward(self, x, training=False):
        x = float_array(x, "Reshape")
        out_shape = self.output_shape(x.shape)
        self._save(training, x.shape)
        return x.reshape(out_shape)

    def backward(self, grad_out):
        (x_shape,) = self._saved_values()
        return grad_out.reshape(x_shape)  # the same numbers, back in the input's shape

    def get_config(self):
        return {"shape": list(self.shape)}
