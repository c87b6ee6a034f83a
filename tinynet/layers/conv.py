r"""2-D convolution (cross-correlation, as PyTorch ``conv2d``) by im2col and one matrix product.

For input ``X`` ``(N, C, H, W)``, filters ``K`` ``(F, C, kh, kw)``, bias ``b`` ``(F,)``,
stride ``(sh, sw)`` and zero padding ``(ph, pw)``, each output value is a window of the
padded input weighted by one filter::

    Y[n, f, r, q] = b[f] + sum_{c,i,j} K[f, c, i, j] * Xpad[n, c, r*sh + i, q*sw + j]

with ``r`` and ``q`` the output row and column. Along each axis
``out = (size + 2*padding - kernel) // stride + 1``; ``P = out_h*out_w`` windows per image.

**im2col** turns that sum into one matrix product. Every window becomes a row of ``cols``,
``(N*P, C*kh*kw)`` (``CKK = C*kh*kw`` values a window), in the order ``(c, i, j)`` that
``K.reshape(F, CKK)`` gives each filter, so for the whole batch at once::

    cols = im2col(X)                   # (N*P, CKK)
    Wmat = K.reshape(F, CKK)           # (F, CKK): one filter a row
    Y    = cols @ Wmat.T + b           # (N*P, CKK) @ (CKK, F) -> (N*P, F), then (N, F, out_h, out_w)

**Backward** is the backward of that product (``dY`` arranged as ``(N*P, F)``, one row a
window, like ``cols``)::

    dWmat = dY.T @ cols                # (F, N*P) @ (N*P, CKK) -> (F, CKK), reshaped to (F, C, kh, kw)
    db    = sum of dY over its rows    # (F,)
    dcols = dY @ Wmat                  # (N*P, F) @ (F, CKK) -> (N*P, CKK)
    dX    = col2im(dcols)              # the adjoint of im2col: overlapping windows add up

This file is the definition of what a convolution computes. Inside a ``Sequential`` the
engine (:mod:`tinynet.engine`) runs the same arithmetic faster (channels-last, numba
kernels, in cache-sized chunks, fused with a ReLU and a max-pool); the tests check that it
agrees with this code.
"""

import numpy as np

from .._checks import expect_rank, float_array, int_pair, positive_int
from ..errors import ShapeError
from ..init import initial_weights
from .base import Layer

__all__ = ["Conv2D", "im2col", "col2im", "output_size"]


def output_size(size, window, stride, padding=0):
    """Number of window positions along one axis: ``(size + 2*padding - window) // stride + 1``.

    Examples
    --------
    >>> output_size(28, 3, 1), output_size(26, 2, 2), output_size(28, 3, 2, padding=1)
    (26, 13, 14)
    """
    return (size + 2 * padding - window) // stride + 1


def im2col(x, kernel_size, stride, padding):
    """Every ``kh x kw`` window of the padded images ``x`` ``(N, C, H, W)`` as a row: ``(N*P, C*kh*kw)``.

    Row ``n*P + r*out_w + q`` is the window under output ``(r, q)`` of image ``n``; its
    columns run over ``(c, i, j)``, the order of ``K.reshape(F, -1)``.

    Examples
    --------
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)        # one 4x4 image
    >>> cols = im2col(x, (3, 3), (1, 1), (0, 0))       # 3x3 windows: 4 of them
    >>> cols.shape, cols[0]                            # the first window, row by row
    ((4, 9), array([ 0.,  1.,  2.,  4.,  5.,  6.,  8.,  9., 10.]))
    """
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    n, c, h, w = x.shape
    out_h, out_w = output_size(h, kh, sh, ph), output_size(w, kw, sw, pw)
    padded = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    windows = np.empty((n, c, kh, kw, out_h, out_w), dtype=x.dtype)
    for i in range(kh):  # offset (i, j) inside the window: the pixel it sees, for every output at once
        for j in range(kw):
            windows[:, :, i, j] = padded[:, :, i : i + sh * out_h : sh, j : j + sw * out_w : sw]
    # (N, C, kh, kw, out_h, out_w) -> (N, out_h, out_w, C, kh, kw) -> (N*P, CKK)
    return windows.transpose(0, 4, 5, 1, 2, 3).reshape(n * out_h * out_w, c * kh * kw)


def col2im(cols, x_shape, kernel_size, stride, padding):
    """The adjoint of :func:`im2col`: each window's row added back onto the pixels it came from.

    ``cols`` ``(N*P, C*kh*kw)`` -> ``(N, C, H, W)``; a pixel covered by several windows
    receives the sum of their values (that is the chain rule for a value used several times).

    Examples
    --------
    >>> counts = col2im(np.ones((4, 9)), (1, 1, 4, 4), (3, 3), (1, 1), (0, 0))
    >>> counts[0, 0]                                   # how many 3x3 windows cover each pixel
    array([[1., 2., 2., 1.],
           [2., 4., 4., 2.],
           [2., 4., 4., 2.],
           [1., 2., 2., 1.]])
    """
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    n, c, h, w = x_shape
    out_h, out_w = output_size(h, kh, sh, ph), output_size(w, kw, sw, pw)
    # (N*P, CKK) -> (N, out_h, out_w, C, kh, kw) -> (N, C, kh, kw, out_h, out_w)
    windows = cols.reshape(n, out_h, out_w, c, kh, kw).transpose(0, 3, 4, 5, 1, 2)
    padded = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            padded[:, :, i : i + sh * out_h : sh, j : j + sw * out_w : sw] += windows[:, :, i, j]
    return padded[:, :, ph : ph + h, pw : pw + w]


class Conv2D(Layer):
    """2-D cross-correlation of NCHW images with ``out_channels`` learned filters.

    Parameters
    ----------
    in_channels, out_channels : int
        ``C`` and ``F``.
    kernel_size : int or (int, int)
        ``(kh, kw)``.
    stride : int or (int, int), default 1
    padding : int or (int, int), default 0
        Zeros added on each side of each image; smaller than ``kernel_size`` on each axis.
    init : {"he_normal", "glorot_uniform"}, default "he_normal"
    rng : numpy.random.Generator or int, optional
    dtype : default float32

    Shape
    -----
    - Input: ``(N, C, H, W)``
    - Output: ``(N, F, out_h, out_w)`` with ``out_h = (H + 2*ph - kh) // sh + 1`` (same for w).

    Attributes
    ----------
    params["W"] : ``(F, C, kh, kw)``, He normal ``N(0, 2/(C*kh*kw))`` by default.
    params["b"] : ``(F,)``, zeros.

    Examples
    --------
    >>> import numpy as np
    >>> conv = Conv2D(1, 8, kernel_size=3, padding=1, rng=0)
    >>> conv.forward(np.zeros((2, 1, 28, 28), dtype=np.float32)).shape
    (2, 8, 28, 28)
    """

    def __init__(
        self, in_channels, out_channels, kernel_size, stride=1, padding=0, *,
        init="he_normal", rng=None, dtype=np.float32,
    ):
        super().__init__()
        self.in_channels = positive_int(in_channels, "in_channels", "Conv2D")
        self.out_channels = positive_int(out_channels, "out_channels", "Conv2D")
        self.kernel_size = int_pair(kernel_size, "kernel_size", "Conv2D")
        self.stride = int_pair(stride, "stride", "Conv2D")
        self.padding = int_pair(padding, "padding", "Conv2D", minimum=0)
        # Padding of a whole kernel or more adds outputs that see only zeros; bounding it also
        # keeps a model file from making predict() allocate gigabytes of padding.
        if any(p >= k for p, k in zip(self.padding, self.kernel_size, strict=True)):
            raise ShapeError(
                f"Conv2D expects padding smaller than kernel_size on each axis (kernel_size // 2 keeps the "
                f"image size); received padding={padding!r} with kernel_size={kernel_size!r}."
            )
        self.init = init
        kh, kw = self.kernel_size
        shape = (self.out_channels, self.in_channels, kh, kw)
        fan_in, fan_out = self.in_channels * kh * kw, self.out_channels * kh * kw
        self.params = {
            "W": initial_weights(init, shape, fan_in, fan_out, rng, dtype, "Conv2D"),
            "b": np.zeros(self.out_channels, dtype=dtype),
        }

    def forward(self, x, training=False):
        """``(N, C, H, W) -> (N, F, out_h, out_w)``."""
        x = self.check_input(x)
        n, _, h, w = x.shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        out_h, out_w = output_size(h, kh, sh, ph), output_size(w, kw, sw, pw)
        cols = im2col(x, self.kernel_size, self.stride, self.padding)  # (N*P, CKK)
        weights = self.params["W"].reshape(self.out_channels, -1)  # (F, CKK)
        y = cols @ weights.T + self.params["b"]  # (N*P, CKK) @ (CKK, F) -> (N*P, F)
        self._save(training, x.shape, cols)
        return y.reshape(n, out_h, out_w, self.out_channels).transpose(0, 3, 1, 2)  # -> (N, F, out_h, out_w)

    def backward(self, grad_out):
        """``dX`` ``(N, C, H, W)`` from ``dY`` ``(N, F, out_h, out_w)``; fills ``grads``."""
        x_shape, cols = self._saved_values()
        weights = self.params["W"].reshape(self.out_channels, -1)  # (F, CKK)
        grad = grad_out.astype(self.dtype, copy=False)
        grad = grad.transpose(0, 2, 3, 1).reshape(-1, self.out_channels)  # (N, F, out_h, out_w) -> (N*P, F)
        self.grads = {
            "W": (grad.T @ cols).reshape(self.params["W"].shape),  # (F, N*P) @ (N*P, CKK) -> (F, C, kh, kw)
            "b": grad.sum(axis=0),  # (N*P, F) -> (F,)
        }
        grad_cols = grad @ weights  # (N*P, F) @ (F, CKK) -> (N*P, CKK)
        return col2im(grad_cols, x_shape, self.kernel_size, self.stride, self.padding)  # (N, C, H, W)

    def check_input(self, x):
        """``x`` as an NCHW array in the layer's dtype, or a ShapeError that says how to fix it."""
        x = float_array(x, "Conv2D")
        expect_rank(x, 4, "Conv2D", "(N, C, H, W)")
        if x.shape[1] != self.in_channels:
            raise ShapeError(
                f"Conv2D expects {self.in_channels} input channel(s); got input of shape "
                f"{tuple(x.shape)} with {x.shape[1]}. Images are NCHW: (N, channels, height, width)."
            )
        (kh, kw), (ph, pw) = self.kernel_size, self.padding
        if x.shape[2] + 2 * ph < kh or x.shape[3] + 2 * pw < kw:
            raise ShapeError(
                f"Conv2D kernel_size={self.kernel_size} is larger than the padded input "
                f"{(x.shape[2] + 2 * ph, x.shape[3] + 2 * pw)}; use a smaller kernel or more padding."
            )
        return x.astype(self.dtype, copy=False)

    def get_config(self):
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": list(self.kernel_size),
            "stride": list(self.stride),
            "padding": list(self.padding),
            "init": self.init,
        }
