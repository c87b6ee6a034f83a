r"""2-D convolution (cross-correlation, as PyTorch ``conv2d``) by im2col and one GEMM per pass.

Forward, for input ``X`` ``(N, C, H, W)``, weights ``K`` ``(F, C, kh, kw)`` and bias ``b``::

    Y[n, f, y, x] = b[f] + sum_{c,i,j} K[f, c, i, j] * Xpad[n, c, y*sh + i, x*sw + j]

The layer computes channels-last (NHWC) inside: ``X`` is read as ``(N, H, W, C)``. im2col
unfolds every window into a row, ``cols`` of shape ``(N*P, kh*kw*C)`` with
``P = out_h*out_w`` (row = output position, column ``(i*kw + j)*C + c``), and the weights are
viewed in the same order, ``Wmat = K.transpose(0, 2, 3, 1).reshape(F, kh*kw*C)``, so the whole
batch is a single matrix product whose result is already the NHWC output::

    Y = cols @ Wmat.T + b              # (N*P, CKK) @ (CKK, F) -> (N*P, F) = (N, out_h, out_w, F)

Backward, given ``dY`` as ``(N*P, F)``, is the backward of that product, again one GEMM each::

    dWmat = dY.T @ cols                # (F, N*P) @ (N*P, CKK) -> (F, CKK), back to (F, C, kh, kw)
    db    = dY.sum over N*P            # (F,)
    dcols = dY @ Wmat                  # (N*P, F) @ (F, CKK) -> (N*P, CKK)
    dX    = col2im(dcols)              # the adjoint of im2col: sums overlapping windows

Why channels-last: the ``C`` values of a pixel are adjacent, so im2col copies ``kh*kw`` runs
of ``C`` floats per window instead of gathering single floats from ``C`` planes, and the
GEMMs see ``M = N*P`` rows (15,488 for the MNIST convnet's second layer) instead of 128
small per-image products. Inside a ``Sequential`` the activations stay NHWC from layer to
layer (see :mod:`tinynet.plan`); ``forward``/``backward`` called directly take and return NCHW.

Output size along each axis: ``out = (size + 2*padding - kernel) // stride + 1``.
"""

import numpy as np

from .._checks import expect_rank, float_array, int_pair, positive_int
from ..errors import ShapeError
from ..init import initial_weights
from ..kernels import col2im, im2col, output_size
from .base import Layer

__all__ = ["Conv2D"]

# Inference needs no columns after the product, so it unfolds at most this many bytes at a
# time: the columns stay in cache for the GEMM and large batches never allocate hundreds of
# megabytes (measured: the Keras convnet predicts 13k images/s at batch 1000 this way, 6k
# when the 139 MB of columns for the whole batch are built at once).
_INFERENCE_COLUMN_BYTES = 4 * 1024 * 1024


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
            raise ValueError(
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

    def _window(self):
        """Kernel arguments in the order the kernels take them: ``kh, kw, sh, sw, ph, pw``."""
        return (*self.kernel_size, *self.stride, *self.padding)

    def _checked_input(self, x):
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

    def forward(self, x, training=False):
        x = self._checked_input(x)
        out = self._forward_channels_last(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), training)
        return np.ascontiguousarray(out.transpose(0, 3, 1, 2))

    def backward(self, grad_out):
        grad_x = self._backward_channels_last(np.ascontiguousarray(grad_out.transpose(0, 2, 3, 1)))
        return np.ascontiguousarray(grad_x.transpose(0, 3, 1, 2))

    def _backward_params_only(self, grad_out):
        self._backward_params_only_channels_last(np.ascontiguousarray(grad_out.transpose(0, 2, 3, 1)))

    # -- the computation, on NHWC activations -------------------------------------------------
    def _weight_rows(self):
        """``Wmat`` ``(F, kh*kw*C)``: each filter as a row in im2col's column order ``(i, j, c)``."""
        return self.params["W"].transpose(0, 2, 3, 1).reshape(self.out_channels, -1)

    def _forward_channels_last(self, x, training=False, add_bias=True):
        """``(N, H, W, C) -> (N, out_h, out_w, F)``; ``add_bias=False`` leaves ``+ b`` to the
        next pass over the output (a fused max-pool adds it as it reads)."""
        if x.shape[3] != self.in_channels:
            raise ShapeError(f"Conv2D expects {self.in_channels} input channel(s); got {x.shape[3]}.")
        x = x.astype(self.dtype, copy=False)
        kh, kw, sh, sw, ph, pw = self._window()
        n, h, w, _ = x.shape
        out_h, out_w = output_size(h, kh, sh, ph), output_size(w, kw, sw, pw)
        positions, depth = out_h * out_w, self.in_channels * kh * kw
        weights_t = self._weight_rows().T  # (CKK, F)
        out = np.empty((n * positions, self.out_channels), dtype=self.dtype)
        chunk = max(1, n if training else _INFERENCE_COLUMN_BYTES // (positions * depth * x.dtype.itemsize))
        cols = np.empty((0, positions, depth), dtype=self.dtype)  # an empty batch's
        for start in range(0, n, chunk):
            cols = im2col(x[start : start + chunk], kh, kw, sh, sw, ph, pw)  # (n, P, CKK)
            rows = slice(start * positions, (start + len(cols)) * positions)
            np.matmul(cols.reshape(-1, depth), weights_t, out=out[rows])  # (nP,CKK) @ (CKK,F) -> (nP,F)
        if add_bias:
            out += self.params["b"]
        self._save(training, cols, x.shape)
        return out.reshape(n, out_h, out_w, self.out_channels)

    def _backward_params_only_channels_last(self, grad_out):
        """Fill ``grads`` from ``dY`` ``(N, out_h, out_w, F)``; returns ``dY`` as ``(N*P, F)``."""
        cols, x_shape = self._saved_values()
        kh, kw = self.kernel_size
        grad_out = grad_out.astype(self.dtype, copy=False).reshape(-1, self.out_channels)  # (N*P, F)
        grad_weights = cols.reshape(len(grad_out), cols.shape[2]).T @ grad_out  # (CKK,N*P) @ (N*P,F) -> (CKK,F)
        self.grads = {
            "W": np.ascontiguousarray(
                grad_weights.reshape(kh, kw, self.in_channels, self.out_channels).transpose(3, 2, 0, 1)),
            # The column sums as a matrix-vector product: one BLAS pass, several times faster
            # than a NumPy reduction down the rows of a tall (N*P, F) array.
            "b": np.ones(len(grad_out), self.dtype) @ grad_out,  # (N*P,) @ (N*P,F) -> (F,)
        }
        return grad_out

    def _backward_channels_last(self, grad_out):
        """``dX`` ``(N, H, W, C)`` from ``dY`` ``(N, out_h, out_w, F)``; fills ``grads``."""
        grad_out = self._backward_params_only_channels_last(grad_out)
        cols, x_shape = self._saved
        grad_cols = grad_out @ self._weight_rows()  # (N*P,F) @ (F,CKK) -> (N*P,CKK)
        return col2im(grad_cols.reshape(cols.shape), x_shape, *self._window())

    def get_config(self):
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": list(self.kernel_size),
            "stride": list(self.stride),
            "padding": list(self.padding),
            "init": self.init,
        }
