r"""Max and average pooling over ``kh x kw`` windows with stride ``(sh, sw)``, no padding.

Max pooling keeps the largest value of each window::

    Y[n, c, r, q] = max_{i,j} X[n, c, r*sh + i, q*sw + j]

Its derivative is 1 for the input that was the maximum and 0 for the others, so backward
routes each ``dY`` entry to that one input (ties: the first maximum in row-major order;
overlapping windows that share a maximum add their gradients)::

    dX[n, c, argmax(r, q)] += dY[n, c, r, q]

Average pooling takes the window mean, so every input of a window gets an equal share::

    Y[n, c, r, q] = mean_{i,j} X[n, c, r*sh + i, q*sw + j]
    dX[n, c, r*sh + i, q*sw + j] += dY[n, c, r, q] / (kh*kw)

Output size along each axis: ``out = (size - pool) // stride + 1``.

``GlobalAvgPool1D`` is the mean over a sequence's time axis: ``(N, T, F) -> (N, F)``.

This file is the definition; inside a ``Sequential`` the engine (:mod:`tinynet.engine`)
runs the same pooling as numba loops over channels-last images, fused with the ReLU or
convolution before it, and the tests check that it agrees with this code.
"""

import numpy as np

from .._checks import expect_rank, float_array, int_pair
from ..errors import ShapeError
from .base import Layer
from .conv import output_size

__all__ = ["MaxPool2D", "AvgPool2D", "GlobalAvgPool1D", "pooling_windows", "max_pool", "max_pool_backward", "avg_pool",
           "avg_pool_backward"]


def pooling_windows(x, pool_size, stride):
    """The windows of ``x`` ``(N, C, H, W)`` side by side: ``(N, C, out_h, out_w, kh*kw)``.

    Entry ``[..., i*kw + j]`` is the pixel at offset ``(i, j)`` inside the window.

    Examples
    --------
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> pooling_windows(x, (2, 2), (2, 2))[0, 0, 0, 0]     # the top-left 2x2 window
    array([0., 1., 4., 5.])
    """
    (kh, kw), (sh, sw) = pool_size, stride
    n, c, h, w = x.shape
    out_h, out_w = output_size(h, kh, sh), output_size(w, kw, sw)
    windows = np.empty((n, c, out_h, out_w, kh * kw), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            windows[..., i * kw + j] = x[:, :, i : i + sh * out_h : sh, j : j + sw * out_w : sw]
    return windows


def _input_slices(i, j, out_h, out_w, stride):
    """The input rows and columns that window offset ``(i, j)`` reads, one per output."""
    (sh, sw) = stride
    return slice(i, i + sh * out_h, sh), slice(j, j + sw * out_w, sw)


def max_pool(x, pool_size, stride):
    """``(out, argmax)``: the maximum of each window of ``x`` ``(N, C, H, W)``, and its offset ``i*kw + j``.

    Ties go to the first maximum in row-major window order; a NaN is the maximum of its
    window (the first NaN, as ``np.argmax`` and PyTorch).

    Examples
    --------
    >>> out, argmax = max_pool(np.array([1.0, 5.0, 3.0, 4.0]).reshape(1, 1, 2, 2), (2, 2), (2, 2))
    >>> float(out[0, 0, 0, 0]), int(argmax[0, 0, 0, 0])
    (5.0, 1)
    """
    windows = pooling_windows(x, pool_size, stride)  # (N, C, out_h, out_w, kh*kw)
    argmax = windows.argmax(axis=-1)  # (N, C, out_h, out_w): offset i*kw + j of each maximum
    return np.take_along_axis(windows, argmax[..., None], axis=-1)[..., 0], argmax


def max_pool_backward(grad_out, argmax, x_shape, pool_size, stride):
    """``dX`` of ``x_shape``: each ``dY`` entry goes to its window's maximum, the rest get 0 (nothing where
    ``argmax`` is -1); overlapping windows that share a maximum add up."""
    kh, kw = pool_size
    out_h, out_w = argmax.shape[2:]
    grad_x = np.zeros(x_shape, dtype=grad_out.dtype)
    for i in range(kh):
        for j in range(kw):
            rows, columns = _input_slices(i, j, out_h, out_w, stride)
            # Where offset (i, j) was the maximum, the gradient flows to it; overlapping windows add up.
            grad_x[:, :, rows, columns] += np.where(argmax == i * kw + j, grad_out, 0)
    return grad_x


def avg_pool(x, pool_size, stride):
    """The mean of each window of ``x`` ``(N, C, H, W)``, in ``x``'s dtype."""
    return pooling_windows(x, pool_size, stride).mean(axis=-1, dtype=x.dtype)


def avg_pool_backward(grad_out, x_shape, pool_size, stride):
    """``dX`` of ``x_shape``: each input gets ``1/(kh*kw)`` of the gradient of every window it is in."""
    kh, kw = pool_size
    out_h, out_w = grad_out.shape[2:]
    share = grad_out / grad_out.dtype.type(kh * kw)
    grad_x = np.zeros(x_shape, dtype=grad_out.dtype)
    for i in range(kh):
        for j in range(kw):
            rows, columns = _input_slices(i, j, out_h, out_w, stride)
            grad_x[:, :, rows, columns] += share
    return grad_x


class _Pool2D(Layer):
    """Shared argument handling of the two pooling layers."""

    def __init__(self, pool_size=2, stride=None):
        super().__init__()
        name = type(self).__name__
        self.pool_size = int_pair(pool_size, "pool_size", name)
        self.stride = self.pool_size if stride is None else int_pair(stride, "stride", name)

    def check_input(self, x):
        """``x`` as an NCHW float array, or a ShapeError that says how to fix it."""
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

    def forward(self, x, training=False):
        """``(N, C, H, W) -> (N, C, out_h, out_w)``; keeps which input of each window won."""
        x = self.check_input(x)
        out, argmax = max_pool(x, self.pool_size, self.stride)
        self._save(training, x.shape, argmax)
        return out

    def backward(self, grad_out):
        """``dX`` ``(N, C, H, W)``: each ``dY`` entry goes to its window's maximum, the rest get 0."""
        x_shape, argmax = self._saved_values()
        return max_pool_backward(grad_out, argmax, x_shape, self.pool_size, self.stride)


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

    def forward(self, x, training=False):
        """``(N, C, H, W) -> (N, C, out_h, out_w)``."""
        x = self.check_input(x)
        self._save(training, x.shape)
        return avg_pool(x, self.pool_size, self.stride)

    def backward(self, grad_out):
        """``dX`` ``(N, C, H, W)``: each input gets ``1/(kh*kw)`` of the gradient of every window it is in."""
        (x_shape,) = self._saved_values()
        return avg_pool_backward(grad_out, x_shape, self.pool_size, self.stride)


class GlobalAvgPool1D(Layer):
    """The mean over time of a sequence: ``(N, T, F) -> (N, F)``.

    Forward and backward: every one of the ``T`` positions has weight ``1/T`` in the mean,
    so each receives that share of the gradient::

        Y[n, f] = (1/T) sum_t X[n, t, f]            dX[n, t, f] = dY[n, f] / T

    As ``keras.layers.GlobalAveragePooling1D`` on ``(N, T, F)``, or ``x.mean(dim=1)`` in PyTorch.

    Shape
    -----
    - Input: ``(N, T, F)`` with ``T >= 1``.
    - Output: ``(N, F)``, the input's dtype.

    Examples
    --------
    >>> import numpy as np
    >>> GlobalAvgPool1D().forward(np.array([[[1.0, 10.0], [3.0, 30.0]]]))
    array([[ 2., 20.]])
    """

    def forward(self, x, training=False):
        x = float_array(x, "GlobalAvgPool1D")
        expect_rank(x, 3, "GlobalAvgPool1D", "(N, T, F)")
        if x.shape[1] == 0:
            raise ShapeError(f"GlobalAvgPool1D takes the mean over time, so it needs T >= 1; got {tuple(x.shape)}.")
        self._save(training, x.shape)
        return x.mean(axis=1, dtype=x.dtype)  # (N,T,F) -> (N,F)

    def backward(self, grad_out):
        (x_shape,) = self._saved_values()
        steps = x_shape[1]
        share = grad_out / grad_out.dtype.type(steps)  # (N,F): each position's share of the mean
        return np.broadcast_to(share[:, None, :], x_shape).copy()  # (N,1,F) -> (N,T,F)
