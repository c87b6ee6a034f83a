r"""Element-wise activations. Backward multiplies ``dY`` by the derivative at each input:
``dX = dY * f'(X)``.

=============  ==============================  ======================================
layer          ``f(x)``                        ``f'(x)``
=============  ==============================  ======================================
ReLU           ``max(x, 0)``                   ``1 if x > 0 else 0`` (0 at x = 0, as PyTorch)
LeakyReLU      ``x if x > 0 else alpha*x``     ``1 if x > 0 else alpha``
Sigmoid        ``1 / (1 + exp(-x))``           ``y * (1 - y)``, from the output ``y``
Tanh           ``tanh(x)``                     ``1 - y**2``, from the output ``y``
=============  ==============================  ======================================

Sigmoid and Tanh are computed without overflow for any input ("stable" here means only
that); their derivatives from ``y`` lose the far tails in float32 (``y`` rounds to 1, so
Sigmoid's derivative at ``x = 20`` comes out 0), where the true value is below 1e-8 anyway.
"""


import numpy as np

from .._checks import float_array, is_real
from ..errors import ArgumentError
from .base import Layer

__all__ = ["ReLU", "LeakyReLU", "Sigmoid", "Tanh", "sigmoid"]


class ReLU(Layer):
    """Rectified linear unit, ``y = max(x, 0)``; backward ``dX = dY * (x > 0)``.

    Shape
    -----
    - Input: any shape, e.g. ``(N, F)`` or ``(N, C, H, W)``.
    - Output: the input's shape and dtype.


    Examples
    --------
    >>> import numpy as np
    >>> ReLU().forward(np.array([-1.0, 2.0]))
    array([0., 2.])
    """

    elementwise = True

    def forward(self, x, training=False):
        x = float_array(x, "ReLU")
        # The mask is only needed by backward: inference skips it.
        self._save(training, *((x > 0,) if self._keeps(training) else ()))
        return np.maximum(x, x.dtype.type(0))

    def backward(self, grad_out):
        (positive,) = self._saved_values()
        return grad_out * positive


class LeakyReLU(Layer):
    """Leaky ReLU, ``y = x`` for ``x > 0`` and ``alpha * x`` otherwise; ``dX = dY * slope``.

    Parameters
    ----------
    alpha : float, default 0.01
        Slope for negative inputs; must be finite and non-negative.

    Shape
    -----
    - Input: any shape, e.g. ``(N, F)`` or ``(N, C, H, W)``.
    - Output: the input's shape and dtype.

    Examples
    --------
    >>> import numpy as np
    >>> LeakyReLU(0.1).forward(np.array([-1.0, 2.0]))
    array([-0.1,  2. ])
    """

    elementwise = True

    def __init__(self, alpha=0.01):
        super().__init__()
        if not is_real(alpha) or not (0 <= alpha < np.inf):
            raise ArgumentError(f"LeakyReLU expects alpha to be a finite number >= 0; received alpha={alpha!r}.")
        self.alpha = float(alpha)

    def forward(self, x, training=False):
        x = float_array(x, "LeakyReLU")
        slope = np.where(x > 0, x.dtype.type(1), x.dtype.type(self.alpha))
        self._save(training, slope)
        return x * slope

    def backward(self, grad_out):
        (slope,) = self._saved_values()
        return grad_out * slope

    def get_config(self):
        return {"alpha": self.alpha}


class Sigmoid(Layer):
    """Logistic sigmoid, ``y = 1 / (1 + exp(-x))``, stable for large ``|x|``.

    ``exp`` is only ever taken of ``-|x|``, so it cannot overflow:
    ``y = 1 / (1 + e)`` for ``x >= 0`` and ``e / (1 + e)`` for ``x < 0``, with ``e = exp(-|x|)``.
    Backward: ``dX = dY * y * (1 - y)``; the derivative is at most 1/4.

    Shape
    -----
    - Input: any shape, e.g. ``(N, F)`` or ``(N, C, H, W)``.
    - Output: the input's shape and dtype.

    Examples
    --------
    >>> import numpy as np
    >>> Sigmoid().forward(np.array([-1000.0, 0.0, 1000.0]))
    array([0. , 0.5, 1. ])
    """

    elementwise = True

    def forward(self, x, training=False):
        y = sigmoid(float_array(x, "Sigmoid"))
        self._save(training, y)
        return y

    def backward(self, grad_out):
        (y,) = self._saved_values()
        return grad_out * y * (1 - y)


def sigmoid(x):
    """``1 / (1 + exp(-x))`` in ``x``'s dtype, without overflow (``exp`` only of ``-|x|``); the LSTM's gates use it too.

    Examples
    --------
    >>> sigmoid(np.array([-1000.0, 0.0, 1000.0]))
    array([0. , 0.5, 1. ])
    """
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


class Tanh(Layer):
    """Hyperbolic tangent, ``y = tanh(x)``; ``dX = dY * (1 - y**2)``.

    Shape
    -----
    - Input: any shape, e.g. ``(N, F)`` or ``(N, C, H, W)``.
    - Output: the input's shape and dtype.

    Examples
    --------
    >>> import numpy as np
    >>> Tanh().forward(np.array([0.0]))
    array([0.])
    """

    elementwise = True

    def forward(self, x, training=False):
        x = float_array(x, "Tanh")
        y = np.tanh(x)
        self._save(training, y)
        return y

    def backward(self, grad_out):
        (y,) = self._saved_values()
        return grad_out * (1 - y * y)
