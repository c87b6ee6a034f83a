"""Flatten: ``(N, d1, d2, ...) -> (N, d1*d2*...)``; backward reshapes the gradient back."""

import numpy as np

from .._checks import float_array
from ..errors import ShapeError
from .base import Layer

__all__ = ["Flatten"]


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
        return x.reshape(x.shape[0], int(np.prod(x.shape[1:])))

    def backward(self, grad_out):
        (x_shape,) = self._saved_values()
        return grad_out.reshape(x_shape)
