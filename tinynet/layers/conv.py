r"""2-D convolution (cross-correlation, as PyTorch ``conv2d``) by im2col and one GEMM per pass.

Forward, for input ``X`` ``(N, C, H, W)``, weights ``K`` ``(F, C, kh, kw)`` and bias ``b``::

    Y[n, f, y, x'] = b[f] + sum_{c,i,j} K[f, c, i, j] * Xpad[n, c, y*sh + i, x'*sw + j]   (y, x': output row, column)

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

A window of few values (``kh*kw*C`` <= 16, as a 3x3 kernel on one channel) is unfolded the
other way round, ``(CKK, N*P)``, which is filled in contiguous runs; the products read it
transposed, so the equations are the same.

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
from ..kernels import col2im, im2col, im2col_transposed, output_size
from .base import ChannelsLast, Layer, to_channels_last

__all__ = ["Conv2D"]

# The convolution runs a chunk of images at a time whose columns and outputs take at most
# this many bytes: they stay in cache from the unfolding to the product (and, in a fused
# step, to the pooling), instead of a whole batch's tens of megabytes making trips to
# memory. Backward goes chunk by chunk too, on the columns a training forward kept (see
# below) or unfolded again from the small input. (Before: the Keras convnet predicted 6k
# images/s at batch 1000 when the 139 MB of columns of the whole batch were built at
# once, 13k with 4 MB chunks.)
_CHUNK_BYTES = 4 * 1024 * 1024
# A training forward keeps its columns for backward when the whole batch's take at most
# this many bytes: reading them back costs less than unfolding them again (the MNIST CNN's
# second convolution, 18 MB at batch 128: 8.2 ms for its backward products against 8.9 ms
# with the unfolding). Larger batches unfold again, so memory stays bounded by the chunks.
_KEPT_COLUMNS_BYTES = 32 * 1024 * 1024
# Windows of at most this many values (a 3x3 kernel on one or a few channels) are unfolded
# transposed, (CKK, N*P): filled in contiguous runs instead of CKK scattered values per row
# (the first MNIST convolution: 0.74 ms against 1.17 ms, and its weight gradient 0.95 ms
# against 1.10 ms, batch 128).
_THIN_DEPTH = 16


class Conv2D(ChannelsLast, Layer):
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

    def _backward_params_only(self, grad_out):
        self._backward_params_only_channels_last(to_channels_last(grad_out))

    # -- the computation, on NHWC activations -------------------------------------------------
    def _weight_rows(self):
        """``Wmat`` ``(F, kh*kw*C)``: each filter as a row in im2col's column order ``(i, j, c)``."""
        return self.params["W"].transpose(0, 2, 3, 1).reshape(self.out_channels, -1)

    def _thin(self):
        return self.in_channels * self.kernel_size[0] * self.kernel_size[1] <= _THIN_DEPTH

    def _rows(self, x):
        """The columns of NHWC images ``x`` as ``(n*P, CKK)`` rows (a transposed view for thin windows)."""
        kh, kw, sh, sw, ph, pw = self._window()
        if self._thin():
            return im2col_transposed(x, kh, kw, sh, sw, ph, pw).T
        cols = im2col(x, kh, kw, sh, sw, ph, pw)  # (n, P, CKK)
        return cols.reshape(-1, cols.shape[2])

    def _output_shape(self, x_shape):
        kh, kw, sh, sw, ph, pw = self._window()
        return x_shape[0], output_size(x_shape[1], kh, sh, ph), output_size(x_shape[2], kw, sw, pw), self.out_channels

    def _images_per_chunk(self, x_shape):
        """How many images to convolve at a time so their columns and outputs stay in cache."""
        _, out_h, out_w, filters = self._output_shape(x_shape)
        per_image = out_h * out_w * (self.in_channels * self.kernel_size[0] * self.kernel_size[1] + filters)
        return max(1, _CHUNK_BYTES // (per_image * np.dtype(self.dtype).itemsize))

    def _forward_channels_last(self, x, training=False):
        """``(N, H, W, C) -> (N, out_h, out_w, F)``."""
        out = np.empty(self._output_shape(x.shape), dtype=self.dtype)
        for _ in self._convolve_chunks(x, training, out):
            pass
        out += self.params["b"]
        return out

    def _convolve_chunks(self, x, training, out=None):
        """Yield ``(start, y)`` chunk by chunk: ``y = cols @ Wmat.T`` for the images from ``start``,
        ``(n, out_h, out_w, F)`` without the bias, written into ``out`` when given. A chunk's
        columns and output stay in cache for whatever the caller does next (a fused max-pool);
        once every chunk is done, what backward needs is kept."""
        x = self._checked_channels_last(x)
        weights_t = self._weight_rows().T  # (CKK, F)
        shape = self._output_shape(x.shape)
        chunk = self._images_per_chunk(x.shape)
        kept = [] if training and self._keeps_columns(x.shape) else None
        for start in range(0, len(x), chunk):
            rows = self._rows(x[start : start + chunk])  # (nP, CKK)
            target = None if out is None else out[start : start + chunk].reshape(len(rows), -1)
            y = np.matmul(rows, weights_t, out=target)  # (nP,CKK) @ (CKK,F) -> (nP,F)
            if kept is not None:
                kept.append(rows)
            yield start, y.reshape(-1, *shape[1:])
        self._save(training, x, kept)

    def _keeps_columns(self, x_shape):
        """Whether a training forward keeps its columns for backward rather than unfolding them again."""
        if self._thin():  # thin windows' columns are few: always cheaper kept than unfolded again
            return True
        _, out_h, out_w, _ = self._output_shape(x_shape)
        depth = self.in_channels * self.kernel_size[0] * self.kernel_size[1]
        return x_shape[0] * out_h * out_w * depth * np.dtype(self.dtype).itemsize <= _KEPT_COLUMNS_BYTES

    def _checked_channels_last(self, x):
        if x.shape[3] != self.in_channels:
            raise ShapeError(f"Conv2D expects {self.in_channels} input channel(s); got {x.shape[3]}.")
        return np.ascontiguousarray(x, dtype=self.dtype)

    def _backward_params_only_channels_last(self, grad_out):
        """Fill ``grads`` from ``dY`` ``(N, out_h, out_w, F)``."""
        self._backward_chunks(grad_out, input_grad=False)

    def _backward_channels_last(self, grad_out):
        """``dX`` ``(N, H, W, C)`` from ``dY`` ``(N, out_h, out_w, F)``; fills ``grads``."""
        return self._backward_chunks(grad_out, input_grad=True)

    def _backward_chunks(self, grad_out, input_grad, grad_chunk=None):
        """The backward, a cache-sized chunk of images at a time, on the kept columns or unfolded again.

        ``grad_chunk(start, stop)``, if given, produces ``dY`` for those images (a fused
        max-pool's backward), so not even ``dY`` exists for the whole batch at once.
        """
        x, kept_rows = self._saved_values()
        weight_rows = self._weight_rows()  # (F, CKK)
        grad_weights = np.zeros(weight_rows.shape[::-1], dtype=self.dtype)  # (CKK, F)
        grad_bias = np.zeros(self.out_channels, dtype=self.dtype)
        grad_x = np.empty_like(x) if input_grad else None
        chunk = self._images_per_chunk(x.shape)
        for number, start in enumerate(range(0, len(x), chunk)):
            stop = min(start + chunk, len(x))
            grad = grad_chunk(start, stop) if grad_chunk else grad_out[start:stop]
            grad = grad.astype(self.dtype, copy=False).reshape(-1, self.out_channels)  # (nP, F)
            rows = kept_rows[number] if kept_rows is not None else self._rows(x[start:stop])  # (nP, CKK)
            grad_weights += rows.T @ grad  # (CKK,nP) @ (nP,F) -> (CKK,F)
            # The column sums as a matrix-vector product: one BLAS pass, several times faster
            # than a NumPy reduction down the rows of a tall (nP, F) array.
            grad_bias += np.ones(len(grad), self.dtype) @ grad  # (nP,) @ (nP,F) -> (F,)
            if input_grad:
                grad_cols = grad @ weight_rows  # (nP,F) @ (F,CKK) -> (nP,CKK)
                grad_x[start:stop] = col2im(grad_cols.reshape(stop - start, -1, weight_rows.shape[1]),
                                            (stop - start, *x.shape[1:]), *self._window())
        kh, kw = self.kernel_size
        self.grads = {
            "W": np.ascontiguousarray(
                grad_weights.reshape(kh, kw, self.in_channels, self.out_channels).transpose(3, 2, 0, 1)),
            "b": grad_bias,
        }
        return grad_x

    def get_config(self):
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": list(self.kernel_size),
            "stride": list(self.stride),
            "padding": list(self.padding),
            "init": self.init,
        }
