"""Conv2D in the engine: channels-last, numba im2col, a cache-sized chunk of images at a time.

The arithmetic is the layer's (:mod:`tinynet.layers.conv`): ``Y = cols @ Wmat.T + b`` and
its backward. What changes is how it is laid out:

- **channels-last.** On NHWC images the ``C`` values of a pixel are adjacent, so im2col
  copies each window as ``kh`` runs of ``kw*C`` adjacent floats (one per window row) instead
  of gathering single floats from ``C`` planes, and the product's ``(N*P, F)`` result already is the next layer's NHWC
  input. The columns run over ``(i, j, c)``, so the filters are read as
  ``Wmat = K.transpose(0, 2, 3, 1).reshape(F, kh*kw*C)``.
- **chunks.** A few images at a time, so their columns and outputs stay in cache from the
  unfolding to the product (and, in the fused step, to the pooling).
- **kept columns.** A training forward keeps its columns for backward when they are small
  enough; larger batches unfold them again.
- **thin windows** (``kh*kw*C`` <= 16, a 3x3 kernel on one channel) are unfolded transposed,
  ``(CKK, N*P)``, filled in contiguous runs; the products read them transposed.
- **few outputs, filters as they are.** Re-laying out the filters into ``(i, j, c)`` order
  copies ``F*CKK`` values at every call (nothing is cached, so a changed weight shows at
  once). When a forward without kept columns has fewer output rows than filters (one image
  through the MNIST CNN's third convolution: 9 rows, 128 filters) the columns are unfolded in
  the filters' own ``(c, i, j)`` order instead (the numba kernel
  :func:`~tinynet.kernels.im2col_filter_order`) and multiplied by a free view of the weights:
  that step took 70 us for one image against 104 us with NumPy's sliding windows (one
  thread, a shared machine).

:class:`ConvReluMaxPoolStep` runs a Conv2D, the ReLU and the MaxPool2D after it on each chunk
while it is in cache; the convolution's output never exists for the whole batch.
"""

import numpy as np

from ..kernels import (
    col2im,
    conv_maxpool_forward,
    conv_maxpool_weight_grads,
    convolution_matmul,
    im2col,
    im2col_filter_order,
    im2col_transposed,
    matmul,
    maxpool_backward,
    maxpool_forward,
    output_size,
)
from .pool import check_pool_fits
from .steps import Step, checked_channels_last

__all__ = ["ConvStep", "ConvReluMaxPoolStep", "OneChannelConvReluMaxPoolStep", "in_pooling_windows"]

# A chunk's columns and outputs take at most this many bytes, so they stay in cache instead
# of a whole batch's tens of megabytes making trips to memory. (The Keras convnet predicted
# 6k images/s at batch 1000 when the 139 MB of columns of the whole batch were built at
# once, 13k with 4 MB chunks.)
_CHUNK_BYTES = 4 * 1024 * 1024
# A training forward keeps its columns for backward when the whole batch's take at most
# this many bytes: reading them back costs less than unfolding them again (the MNIST CNN's
# second convolution, 18 MB at batch 128: 8.2 ms for its backward products against 8.9 ms
# with the unfolding). Larger batches unfold again, so memory stays bounded by the chunks.
_KEPT_COLUMNS_BYTES = 32 * 1024 * 1024
# Windows of at most this many values are unfolded transposed, (CKK, N*P): filled in
# contiguous runs instead of CKK scattered values per row (the first MNIST convolution:
# 0.74 ms against 1.17 ms, and its weight gradient 0.95 ms against 1.10 ms, batch 128).
_THIN_DEPTH = 16


class _Convolution:
    """The channels-last, chunked arithmetic of one Conv2D layer, read from its public attributes."""

    def __init__(self, layer):
        self.layer = layer
        self.window = (*layer.kernel_size, *layer.stride, *layer.padding)  # kh, kw, sh, sw, ph, pw
        self.depth = layer.in_channels * layer.kernel_size[0] * layer.kernel_size[1]  # CKK
        self.thin = self.depth <= _THIN_DEPTH

    def checked(self, x):
        """NHWC ``x`` as a contiguous array in the layer's dtype; the layer's own error (in NCHW) otherwise."""
        return checked_channels_last(self.layer, x)

    def weight_rows(self):
        """``Wmat`` ``(F, kh*kw*C)``: each filter as a row in channels-last im2col's column order ``(i, j, c)``."""
        weights = self.layer.params["W"]
        return weights.transpose(0, 2, 3, 1).reshape(len(weights), -1)

    def weight_columns(self):
        """``Wmat.T`` ``(kh*kw*C, F)``, contiguous: each filter as a column, the right factor of ``cols @ Wmat.T``."""
        weights = self.layer.params["W"]
        return weights.transpose(2, 3, 1, 0).reshape(-1, len(weights))

    def rows(self, x):
        """The columns of NHWC images ``x`` as ``(n*P, CKK)`` rows (a transposed view for thin windows)."""
        if self.thin:
            return im2col_transposed(x, *self.window).T
        cols = im2col(x, *self.window)  # (n, P, CKK)
        return cols.reshape(-1, cols.shape[2])

    def output_shape(self, x_shape):
        kh, kw, sh, sw, ph, pw = self.window
        return (x_shape[0], output_size(x_shape[1], kh, sh, ph), output_size(x_shape[2], kw, sw, pw),
                self.layer.out_channels)

    def images_per_chunk(self, x_shape):
        """How many images to convolve at a time so their columns and outputs stay in cache."""
        _, out_h, out_w, filters = self.output_shape(x_shape)
        per_image = out_h * out_w * (self.depth + filters) * self.layer.dtype.itemsize
        return max(1, _CHUNK_BYTES // per_image)

    def keeps_columns(self, x_shape):
        """Whether a training forward keeps its columns for backward rather than unfolding them again."""
        if self.thin:  # thin windows' columns are few: always cheaper kept than unfolded again
            return True
        _, out_h, out_w, _ = self.output_shape(x_shape)
        return x_shape[0] * out_h * out_w * self.depth * self.layer.dtype.itemsize <= _KEPT_COLUMNS_BYTES

    def rows_in_filter_order(self, x):
        """The columns of NHWC ``x`` as ``(n*P, CKK)`` rows in the order ``(c, i, j)`` of ``K.reshape(F, CKK)``."""
        return im2col_filter_order(x, *self.window).reshape(-1, self.depth)

    def chunks(self, x, kept=None, out=None, scale=None, shift=None, relu=False, in_place=False):
        """Yield ``(start, y)``: ``y = cols @ Wmat.T`` ``(n, out_h, out_w, F)`` for the images from
        ``start``, without the bias (or with the epilogue ``* scale + shift`` per filter and a ReLU, as
        :func:`~tinynet.kernels.matmul` applies them), written into ``out`` when given; each chunk's
        columns are appended to ``kept`` when it is a list. ``in_place`` (inference): without padding,
        the windows are read where they lie (:func:`~tinynet.kernels.convolution_matmul`); training
        leaves it off, so that its output is the same bits whether a backward reads kept columns or
        unfolds them again."""
        shape = self.output_shape(x.shape)
        if kept is None and len(x) * shape[1] * shape[2] < shape[3]:  # fewer output rows than filters
            weights = self.layer.params["W"]
            target = None if out is None else out.reshape(-1, shape[3])
            y = matmul(self.rows_in_filter_order(x), weights.reshape(len(weights), -1).T, out=target, scale=scale,
                       shift=shift, relu=relu)
            yield 0, y.reshape(shape)  # (nP,CKK) @ (CKK,F) -> (nP,F)
            return
        weight_columns = self.weight_columns()  # (CKK, F)
        chunk = self.images_per_chunk(x.shape)
        kh, kw, sh, sw, ph, pw = self.window
        straight = in_place and kept is None and not self.thin and not (ph or pw)  # the windows read in x
        for start in range(0, len(x), chunk):
            images = x[start : start + chunk]
            target = None if out is None else out[start : start + chunk].reshape(-1, shape[3])
            if straight:  # (nP,CKK) @ (CKK,F), the rows read where they lie (or im2col's, where not tiled)
                y = convolution_matmul(images, kh, kw, sh, sw, weight_columns, out=target, scale=scale, shift=shift,
                                       relu=relu)
            else:
                rows = self.rows(images)  # (nP, CKK)
                y = matmul(rows, weight_columns, out=target, scale=scale, shift=shift, relu=relu)  # (nP,CKK) @ (CKK,F)
                if kept is not None:
                    kept.append(rows)
            yield start, y.reshape(-1, *shape[1:])

    def backward(self, x, kept, grad_chunk, input_grad):
        """``(dX or None, grads)``, chunk by chunk; ``grad_chunk(start, stop)`` gives ``dY`` of those images."""
        layer = self.layer
        dtype = layer.dtype
        weight_rows = self.weight_rows()  # (F, CKK)
        grad_weights = np.zeros(weight_rows.shape[::-1], dtype=dtype)  # (CKK, F)
        grad_bias = np.zeros(layer.out_channels, dtype=dtype)
        grad_x = np.empty_like(x) if input_grad else None
        chunk = self.images_per_chunk(x.shape)
        for number, start in enumerate(range(0, len(x), chunk)):
            stop = min(start + chunk, len(x))
            grad = grad_chunk(start, stop).astype(dtype, copy=False).reshape(-1, layer.out_channels)  # (nP, F)
            rows = kept[number] if kept is not None else self.rows(x[start:stop])  # (nP, CKK)
            matmul(rows.T, grad, out=grad_weights, accumulate=True)  # += (CKK,nP) @ (nP,F) -> (CKK,F)
            # The column sums as a matrix-vector product: one BLAS pass, several times faster
            # than a NumPy reduction down the rows of a tall (nP, F) array.
            grad_bias += np.ones(len(grad), dtype) @ grad  # (nP,) @ (nP,F) -> (F,)
            if input_grad:
                grad_cols = matmul(grad, weight_rows)  # (nP,F) @ (F,CKK) -> (nP,CKK)
                grad_x[start:stop] = col2im(grad_cols.reshape(stop - start, -1, self.depth),
                                            (stop - start, *x.shape[1:]), *self.window)
        kh, kw = layer.kernel_size
        grads = {
            "W": np.ascontiguousarray(
                grad_weights.reshape(kh, kw, layer.in_channels, layer.out_channels).transpose(3, 2, 0, 1)),
            "b": grad_bias,
        }
        return grad_x, grads


class ConvStep(Step):
    """A Conv2D on NHWC activations, chunked."""

    convolves = True

    trainable = True

    def __init__(self, position, layer):
        super().__init__()
        self.positions, self.layer = (position,), layer

    def forward(self, x, training=False):
        self._saved = None
        conv = _Convolution(self.layer)
        x = conv.checked(x)
        out = np.empty(conv.output_shape(x.shape), dtype=self.layer.dtype)
        kept = [] if training and conv.keeps_columns(x.shape) else None
        for _ in conv.chunks(x, kept, out):
            pass
        out += self.layer.params["b"]
        if training:
            self._saved = (x, kept)
        return out

    def backward(self, grad, input_grad=True):
        x, kept = self._saved_values()
        grad_x, self.layer.grads = _Convolution(self.layer).backward(
            x, kept, lambda start, stop: grad[start:stop], input_grad)
        return grad_x

    def describe(self):
        return f"{self.positions[0]} Conv2D (NHWC)"


class ConvReluMaxPoolStep(Step):
    """Conv2D, ReLU, MaxPool2D on a cache-sized chunk of images at a time.

    Each chunk is unfolded, multiplied by the filters, and pooled, clipped and given its bias
    (``relu(maxpool(conv(x)))``, ``+ b`` added as the pooling reads each value; ReLU is
    monotonic, so it commutes with the max) while it is still in cache: the convolution's
    output, the largest activation of an MNIST CNN (11 MB for 128 images after the first
    layer), never exists for the whole batch. Backward goes the same way, chunk by chunk:
    the pooling routes the gradient to each window's maximum where it was positive, the
    convolution takes the columns it kept (or unfolds them again), and the weight gradients
    are summed over the chunks.

    Only the convolution outputs the pooling reads are computed. Pooling 2x2 with stride 2
    keeps ``floor(size / 2)`` windows, so an odd-sized map loses its last row and column (the
    MNIST CNN's second convolution: 11x11, of which the windows cover 10x10); the input rows
    and columns that feed only those outputs are left out of the convolution, and get a zero
    gradient, which is exactly theirs. 17% less work for that convolution; the weight
    gradient then sums over fewer zero terms, so it can differ from the layer-by-layer run's
    in the last bits.
    """

    convolves = True

    trainable = True

    def __init__(self, positions, conv, pool):
        super().__init__()
        self.positions, self.conv, self.pool = positions, conv, pool
        self.layer = conv

    def forward(self, x, training=False):
        self._saved = None
        conv = _Convolution(self.conv)
        x = conv.checked(x)
        input_shape = x.shape  # backward's gradient covers the rows and columns left out too
        x = np.ascontiguousarray(x[:, : self._rows_read(x.shape[1], 0), : self._rows_read(x.shape[2], 1)])
        y_shape = conv.output_shape(x.shape)
        window, bias = (*self.pool.pool_size, *self.pool.stride), self.conv.params["b"]
        check_pool_fits(self, self.positions[2], self.pool, y_shape[1], y_shape[2])
        kept = [] if training and conv.keeps_columns(x.shape) else None
        pooled = [maxpool_forward(y, *window, relu=True, bias=bias) for _, y in conv.chunks(x, kept)]
        if pooled:
            out, argmax = (np.concatenate(parts) for parts in zip(*pooled, strict=True))
        else:  # an empty batch
            out_h, out_w = output_size(y_shape[1], window[0], window[2]), output_size(y_shape[2], window[1], window[3])
            out = np.empty((0, out_h, out_w, y_shape[3]), self.conv.dtype)
            argmax = np.empty(out.shape, np.int32)
        if training:
            self._saved = (input_shape, x, kept, argmax, y_shape)
        return out

    def backward(self, grad, input_grad=True):
        input_shape, x, kept, argmax, y_shape = self._saved_values()
        window = (*self.pool.pool_size, *self.pool.stride)

        def grad_chunk(start, stop):  # the pooling's backward, one chunk at a time
            return maxpool_backward(grad[start:stop], argmax[start:stop], (stop - start, *y_shape[1:]), *window)

        grad_x, self.conv.grads = _Convolution(self.conv).backward(x, kept, grad_chunk, input_grad)
        if grad_x is None or grad_x.shape == input_shape:
            return grad_x
        whole = np.zeros(input_shape, grad_x.dtype)  # the rows and columns no pooled output saw
        whole[:, : grad_x.shape[1], : grad_x.shape[2]] = grad_x
        return whole

    def _rows_read(self, size, axis):
        """How many input rows (``axis`` 0) or columns (1) of ``size`` feed the outputs the pooling reads."""
        conv, pool = self.conv, self.pool
        kernel, stride, padding = conv.kernel_size[axis], conv.stride[axis], conv.padding[axis]
        window, step = pool.pool_size[axis], pool.stride[axis]
        outputs = output_size(size, kernel, stride, padding)
        if padding or outputs < window:  # padded images, or too small to pool: as they are
            return size
        read = (outputs - window) // step * step + window  # outputs inside some pooling window
        return (read - 1) * stride + kernel

    def describe(self):
        first, second, third = self.positions
        return f"{first} Conv2D + {second} ReLU + {third} MaxPool2D (fused, NHWC, chunked)"


def in_pooling_windows(conv, pool):
    """Whether a Conv2D and the MaxPool2D after it are the MNIST first layer's: one input channel, 3x3, stride 1,
    no padding, then 2x2 windows with stride 2. :class:`OneChannelConvReluMaxPoolStep` computes those in the
    pooling windows."""
    return (conv.in_channels == 1 and conv.kernel_size == (3, 3) and conv.stride == (1, 1)
            and conv.padding == (0, 0) and pool.pool_size == (2, 2) and pool.stride == (2, 2))


class OneChannelConvReluMaxPoolStep(ConvReluMaxPoolStep):
    """The first layer of the MNIST CNNs in training, Conv2D (one channel, 3x3), ReLU and MaxPool2D 2x2, computed
    in the pooling windows.

    As columns and a product (:class:`ConvReluMaxPoolStep`) this layer is little arithmetic (9
    products an output) on a large output (26x26xF an image), written, read back and pooled,
    three quarters of it to be dropped, and its weight gradient a product over the pooling's
    full-size gradient, three quarters zeros. Here :func:`~tinynet.kernels.conv_maxpool_forward`
    sums each pooling window's four outputs from the 16 pixels they read and pools them at once,
    and :func:`~tinynet.kernels.conv_maxpool_weight_grads` sends each pooled gradient straight to
    the nine pixels under its window's maximum: neither the columns nor the convolution's output
    exist. The input gradient, when asked for, goes the general way (pooling's backward, then
    ``dY Wmat`` and col2im).
    """

    def forward(self, x, training=False):
        self._saved = None
        conv = _Convolution(self.conv)
        x = conv.checked(x)
        check_pool_fits(self, self.positions[2], self.pool, x.shape[1] - 2, x.shape[2] - 2)
        out, argmax = conv_maxpool_forward(x, conv.weight_rows().T, self.conv.params["b"])
        if training:
            self._saved = (x, argmax)
        return out

    def backward(self, grad, input_grad=True):
        x, argmax = self._saved_values()
        grad = grad.astype(self.conv.dtype, copy=False)
        taps_grad, bias_grad = conv_maxpool_weight_grads(x, grad, argmax)  # (9, F), (F,)
        filters = self.conv.out_channels
        self.conv.grads = {"W": np.ascontiguousarray(taps_grad.T).reshape(filters, 1, 3, 3), "b": bias_grad}
        if not input_grad:
            return None
        n, h, w, _ = x.shape
        grad_y = maxpool_backward(grad, argmax, (n, h - 2, w - 2, filters), 2, 2, 2, 2)  # (n, h-2, w-2, F)
        grad_cols = grad_y.reshape(-1, filters) @ _Convolution(self.conv).weight_rows()  # (nP,F) @ (F,9)
        return col2im(grad_cols.reshape(n, -1, 9), x.shape, 3, 3, 1, 1, 0, 0)

    def describe(self):
        first, second, third = self.positions
        return f"{first} Conv2D + {second} ReLU + {third} MaxPool2D (fused, NHWC, in the pooling windows)"
