r"""Max and average pooling over ``kh x kw`` windows with stride ``(sh, sw)``, no padding.

Max pooling keeps the largest value of each window::

    Y[n, c, y, x] = max_{i,j} X[n, c, y*sh + i, x*sw + j]

Its derivative is 1 for the input that was the maximum and 0 for the others, so backward
routes each ``dY`` entry to that one input (ties: the first maximum in row-major order;
overlapping windows that share a maximum add their gradients)::

    dX[n, c, argmax(y, x)] += dY[n, c, y, x]

Average pooling takes the window mean, so every input of a window gets an equal share::

    Y[n, c, y, x] = mean_{i,j} X[n, c, y*sh + i, x*sw + j]
    dX[n, c, y*sh + i, x*sw + j] += dY[n, c, y, x] / (kh*kw)

Output size: ``out = (size - pool) // stride + 1``.

Both compute channels-last (NHWC) inside, the layout the kernels and a ``Sequential`` use
(see :mod:`tinynet.plan`): each window reads ``pool`` runs of ``C`` adjacent values.
Called directly, ``forward``/``backward`` take and return NCHW.
"""


from .._checks import expect_rank, float_array, int_pair
from ..errors import ShapeError
from ..kernels import avgpool_backward, avgpool_forward, maxpool_backward, maxpool_forward
from .base import ChannelsLast, Layer

__all__ = ["MaxPool2D", "AvgPool2D"]


class _Pool2D(ChannelsLast, Layer):
    """Shared argument handling of the two pooling layers."""

    def __init__(self, pool_size=2, stride=None):
        super().__init__()
        name = type(self).__name__
        self.pool_size = int_pair(pool_size, "pool_size", name)
        self.stride = self.pool_size if stride is None else int_pair(stride, "stride", name)

    def _checked_input(self, x):
        name = type(self).__name__
        x = float_array(x, name)
        expect_rank(x, 4, name, "(N, C, H, W)")
        if x.shape[2] < self.pool_size[0] or x.shape[3] < self.pool_size[1]:
            raise ShapeError(
                f"{name} pool_size={self.pool_size} is larger than the input's {tuple(x.shape[2:])} "
                f"images; use a smaller pool_size or fewer pooling layers."
            )
        return x

    def get_config(self):
        return {"pool_size": list(self.pool_size), "stride": list(self.stride)}

    def _check_channels_last(self, x):
        if x.ndim != 4 or x.shape[1] < self.pool_size[0] or x.shape[2] < self.pool_size[1]:
            raise ShapeError(
                f"{type(self).__name__} pool_size={self.pool_size} is larger than the input's "
                f"{tuple(x.shape[1:3])} images; use a smaller pool_size or fewer pooling layers."
            )


class MaxPool2D(_Pool2D):
    """Maximum over each pooling window, per channel.

    Parameters
    ----------
    pool_size : int or (int, int), default 2
    stride : int or (int, int), optional
        Defaults to ``pool_size`` (non-overlapping windows).

    Shape
    -----
    - Input: ``(N, C, H, W)``
    - Output: ``(N, C, (H - kh) // sh + 1, (W - kw) // sw + 1)`` for a ``(kh, kw)`` pool, stride ``(sh, sw)``

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    >>> MaxPool2D(2).forward(x)[0, 0]
    array([[ 5.,  7.],
           [13., 15.]], dtype=float32)
    """

    def _forward_channels_last(self, x, training=False, relu=False, bias=None):
        """``(N, H, W, C) -> (N, out_h, out_w, C)``; fused into the pass: a ReLU after it
        (``relu=True``), a convolution's per-channel ``bias`` before it."""
        self._check_channels_last(x)
        out, argmax = maxpool_forward(x, *self.pool_size, *self.stride, relu=relu, bias=bias)
        self._save(training, argmax, x.shape)
        return out

    def _backward_channels_last(self, grad_out):
        argmax, x_shape = self._saved_values()
        return maxpool_backward(grad_out, argmax, x_shape, *self.pool_size, *self.stride)


class AvgPool2D(_Pool2D):
    """Mean over each pooling window, per channel.

    Parameters
    ----------
    pool_size : int or (int, int), default 2
    stride : int or (int, int), optional
        Defaults to ``pool_size``.

    Shape
    -----
    - Input: ``(N, C, H, W)``
    - Output: ``(N, C, (H - kh) // sh + 1, (W - kw) // sw + 1)`` for a ``(kh, kw)`` pool, stride ``(sh, sw)``

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    >>> AvgPool2D(2).forward(x)[0, 0]
    array([[ 2.5,  4.5],
           [10.5, 12.5]], dtype=float32)
    """

    def _forward_channels_last(self, x, training=False):
        """``(N, H, W, C) -> (N, out_h, out_w, C)``."""
        self._check_channels_last(x)
        self._save(training, x.shape)
        return avgpool_forward(x, *self.pool_size, *self.stride)

    def _backward_channels_last(self, grad_out):
        (x_shape,) = self._saved_values()
        return avgpool_backward(grad_out, x_shape, *self.pool_size, *self.stride)
