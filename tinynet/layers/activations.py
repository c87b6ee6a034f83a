r"""Element-wise activations. Backward multiplies ``dY`` by the derivative at each input:
``dX = dY * f'(X)``.

=============  ==============================  ======================================
layer          ``f(x)``                        ``f'(x)``
=============  ==============================  ======================================
ReLU           ``max(x, 0)``                   ``1 if x > 0 else 0`` (0 at x = 0, as PyTorch)
LeakyReLU      ``x if x > 0 else alpha*x``     ``1 if x > 0 else alpha``
Sigmoid        ``1 / (1 + exp(-x))``           ``y * (1 - y)``, from the output ``y``
Tanh           ``tanh(x)``                     ``1 - y**2``, from the output ``y``
GELU           ``x * Phi(x)``                  ``Phi(x) + x * phi(x)`` (``Phi``, ``phi``: the normal's
                                               distribution and density; a tanh form too)
=============  ==============================  ======================================

Sigmoid and Tanh are computed without overflow for any input ("stable" here means only
that); their derivatives from ``y`` lose the far tails in float32 (``y`` rounds to 1, so
Sigmoid's derivative at ``x = 20`` comes out 0), where the true value is below 1e-8 anyway.
"""


import numpy as np

from .._checks import float_array, is_real
from ..errors import ArgumentError
from ..special import erf
from .base import Layer

__all__ = ["ReLU", "LeakyReLU", "Sigmoid", "Tanh", "GELU", "sigmoid", "gelu", "gelu_backward"]


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


def gelu(x, approximate="none"):
    """``(y, saved)``: ``y = x Phi(x)`` and what :func:`gelu_backward` needs, ``Phi(x)`` (or ``tanh(u)`` for
    ``approximate="tanh"``), in the dtype of ``x``.

    Examples
    --------
    >>> y, cdf = gelu(np.array([0.0, 1.0]))
    >>> y.round(4), cdf.round(4)
    (array([0.    , 0.8413]), array([0.5   , 0.8413]))
    """
    one, half = x.dtype.type(1), x.dtype.type(0.5)
    if approximate == "tanh":
        t = np.tanh(x.dtype.type(np.sqrt(2 / np.pi)) * (x + x.dtype.type(0.044715) * x**3))  # tanh(u)
        return half * x * (one + t), t
    cdf = half * (one + erf(x * x.dtype.type(1 / np.sqrt(2))))  # Phi(x)
    return x * cdf, cdf


def gelu_backward(grad_out, x, saved, approximate="none"):
    """``dX = dY * dy/dx`` of :func:`gelu`, from its input ``x`` and what it saved.

    Examples
    --------
    >>> x = np.array([0.0, 1.0])
    >>> gelu_backward(np.ones(2), x, gelu(x)[1]).round(4)          # Phi(x) + x phi(x)
    array([0.5   , 1.0833])
    """
    dtype = x.dtype.type
    if approximate == "tanh":
        t = saved
        du = dtype(np.sqrt(2 / np.pi)) * (1 + dtype(3 * 0.044715) * x * x)  # du/dx
        return grad_out * (dtype(0.5) * (1 + t) + dtype(0.5) * x * (1 - t * t) * du)
    density = np.exp(dtype(-0.5) * x * x) * dtype(1 / np.sqrt(2 * np.pi))  # phi(x)
    return grad_out * (saved + x * density)  # Phi(x) + x phi(x)


class GELU(Layer):
    r"""Gaussian error linear unit, ``y = x * Phi(x)``, as ``torch.nn.GELU``.

    ``Phi`` is the standard normal distribution function: the input is weighted by how likely
    a standard normal value is to be below it (Hendrycks & Gimpel, 2016). Two forms:

    - ``approximate="none"`` (exact): ``Phi(x) = (1 + erf(x / sqrt(2))) / 2``.
    - ``approximate="tanh"``: ``y = x * (1 + tanh(u)) / 2`` with ``u = sqrt(2/pi) * (x + 0.044715 x^3)``,
      the form of BERT and GPT-2.

    Parameters
    ----------
    approximate : {"none", "tanh"}, default "none"

    Shape
    -----
    - Input: any shape, e.g. ``(N, F)`` or ``(N, T, F)``.
    - Output: the input's shape and dtype.

    Notes
    -----
    The derivatives, by the product rule (``Phi' = phi``, the normal density
    ``phi(x) = exp(-x^2 / 2) / sqrt(2 pi)``; ``tanh' = 1 - tanh^2``)::

        exact:  dy/dx = Phi(x) + x * phi(x)
        tanh:   dy/dx = (1 + t) / 2 + x * (1 - t^2) / 2 * sqrt(2/pi) * (1 + 3 * 0.044715 x^2),   t = tanh(u)

    Examples
    --------
    >>> import numpy as np
    >>> GELU().forward(np.array([-1.0, 0.0, 1.0])).round(4)
    array([-0.1587,  0.    ,  0.8413])
    """

    elementwise = True
    _FORMS = ("none", "tanh")

    def __init__(self, approximate="none"):
        super().__init__()
        if approximate not in self._FORMS:
            raise ArgumentError(f"GELU expects approximate to be 'none' (exact, with erf) or 'tanh', as "
                                f"torch.nn.GELU; received approximate={approximate!r}.")
        self.approximate = approximate

    def forward(self, x, training=False):
        x = float_array(x, "GELU")
        y, saved = gelu(x, self.approximate)
        self._save(training, x, saved)
        return y

    def backward(self, grad_out):
        x, saved = self._saved_values()
        return gelu_backward(grad_out, x, saved, self.approximate)

    def get_config(self):
        return {"approximate": self.approximate}
