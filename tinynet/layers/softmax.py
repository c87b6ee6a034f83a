r"""Softmax along one axis, with the exact vector-Jacobian product as its backward.

Forward, along the chosen axis (shifted by the maximum so ``exp`` never overflows; the
shift cancels in the ratio)::

    y_i = exp(x_i - max(x)) / sum_k exp(x_k - max(x))

The Jacobian is not diagonal: every output ``i`` depends on every input ``j`` (quotient
rule), ``dy_i/dx_j = y_i * (delta_ij - y_j)``. Backward is the vector-Jacobian product
``dx = J^T dY``, summing over the outputs::

    dx_j = sum_i dY_i * y_i * (delta_ij - y_j) = y_j * (dY_j - sum_i dY_i * y_i)

which costs one dot product per row instead of a full ``K x K`` matrix. (This Jacobian is
symmetric, so ``J^T dY = J dY``; the formula is the general one.)

For classification, prefer logits plus :class:`tinynet.losses.SoftmaxCrossEntropy`: the
fused gradient ``(p - onehot) / N`` is cheaper and more accurate.
"""


import numpy as np

from .._checks import float_array, is_int
from ..errors import ArgumentTypeError, ShapeError
from .base import Layer

__all__ = ["Softmax", "softmax", "softmax_backward", "softmax_cross_entropy"]


def softmax(x, axis=-1):
    """``exp(x) / sum(exp(x))`` along ``axis``, computed stably, in the dtype of ``x``."""
    shifted = x - _reduce_rows(np.maximum, x, axis)
    e = np.exp(shifted)
    return e / _reduce_rows(np.add, e, axis)


def softmax_backward(y, grad_out, axis=-1):
    """``dx = y * (dY - sum_i dY_i y_i)`` along ``axis``: the vector-Jacobian product of ``y = softmax(x)``."""
    weighted_sum = (grad_out * y).sum(axis=axis, keepdims=True)  # sum_i dY_i y_i, per row
    return y * (grad_out - weighted_sum)


def softmax_cross_entropy(logits, labels, label_smoothing=0.0):
    """``(losses, p, wrong)``: each row's ``-log p[t]`` (label smoothing ``eps`` mixed in), ``p = softmax(logits)``
    and each row's probability of the wrong classes, ``1 - p[t]``, for logits ``(N, K)`` and labels ``t`` ``(N,)``.

    The formula behind :class:`tinynet.losses.SoftmaxCrossEntropy`; its gradient is ``(p - target) / N``.
    ``1 - p[t]`` is summed over the wrong classes rather than subtracted from 1, so a confident right
    answer keeps its digits in both the loss and the gradient.
    """
    rows = np.arange(len(logits))
    shifted = logits - _reduce_rows(np.maximum, logits, -1)  # every exp(.) <= 1
    exp = np.exp(shifted)
    sum_exp = exp.sum(axis=1)
    others = exp.copy()
    others[rows, labels] = 0
    others = others.sum(axis=1)  # sum of exp over the wrong classes
    # -log p[t] = log(1 + others / exp[t]): log1p keeps the digits of a confident right answer
    # (1 - p[t] ~ 1e-12), which log(sum_exp) - shifted[t] rounds to 0. A far-off label
    # (shifted[t] < -30, a loss above 30) takes the direct form, where exp[t] may underflow.
    shifted_true = shifted[rows, labels]
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        near = np.log1p(others / exp[rows, labels])
    losses = np.where(shifted_true > -30, near, np.log(sum_exp) - shifted_true)
    if label_smoothing:  # mean_k(-log p[k]) = log(sum_exp) - mean_k(shifted[k])
        eps = label_smoothing
        losses = (1 - eps) * losses + eps * (np.log(sum_exp) - shifted.mean(axis=1))
    return losses, exp / sum_exp[:, None], others / sum_exp


def _reduce_rows(ufunc, x, axis):
    """``ufunc.reduce(x, axis, keepdims=True)``, faster for many short rows (a batch's class scores).

    NumPy reduces short rows one at a time (0.4 ms for the maximum of 10,000 x 10 scores);
    combining the columns one at a time over the whole batch takes 0.035 ms. A few rows
    (one image's scores) are quicker reduced at once than in a call per column.
    """
    if x.ndim != 2 or axis not in (-1, 1) or not 0 < x.shape[1] <= 64 or len(x) < 32:
        return ufunc.reduce(x, axis=axis, keepdims=True)
    out = x[:, :1].copy()
    for column in range(1, x.shape[1]):
        ufunc(out[:, 0], x[:, column], out=out[:, 0])
    return out


class Softmax(Layer):
    """Softmax as a standalone layer: rows (along ``axis``) become probabilities.

    Parameters
    ----------
    axis : int, default -1

    Shape
    -----
    - Input: any shape with the ``axis`` dimension, e.g. ``(N, K)``.
    - Output: the input's shape and dtype; sums to 1 along ``axis``.

    Examples
    --------
    >>> import numpy as np
    >>> Softmax().forward(np.array([[0.0, np.log(3.0)]]))
    array([[0.25, 0.75]])
    """

    def __init__(self, axis=-1):
        super().__init__()
        if not is_int(axis):
            raise ArgumentTypeError(f"Softmax expects axis to be an int; received axis={axis!r}.")
        self.axis = int(axis)

    def forward(self, x, training=False):
        x = float_array(x, "Softmax")
        if not -x.ndim <= self.axis < x.ndim:
            raise ShapeError(f"Softmax(axis={self.axis}) cannot apply to input of shape {tuple(x.shape)}.")
        y = softmax(x, self.axis)
        self._save(training, y)
        return y

    def backward(self, grad_out):
        (y,) = self._saved_values()
        return softmax_backward(y, grad_out, self.axis)

    def get_config(self):
        return {"axis": self.axis}
