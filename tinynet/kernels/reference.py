"""Readable reference kernels: plain NumPy, one slice per window offset.

These are the definitions. The numba kernels in :mod:`tinynet.kernels.jitted` must
return exactly what these return (the tests compare them on every shape they draw),
and the layers fall back to these when numba is missing or ``NUMBA_DISABLE_JIT=1``.

The kernels work on channels-last images (NHWC), the layout tinynet computes in behind
its NCHW interface: the ``C`` values of one pixel are adjacent in memory, so unfolding a
window copies ``kh`` runs of ``kw*C`` adjacent floats (one per window row) instead of
gathering single floats from ``C`` planes, and every output row of a convolution is one row of a single matrix product.

Shapes used throughout:

- ``x``: ``(N, H, W, C)`` input images, channels last.
- ``(kh, kw)``: window (kernel or pool) size; ``(sh, sw)``: stride; ``(ph, pw)``: zero padding.
- ``out_h = (H + 2*ph - kh) // sh + 1`` and ``out_w = (W + 2*pw - kw) // sw + 1``;
  ``P = out_h*out_w`` output positions per image.
- ``cols``: ``(N, P, kh*kw*C)``; row ``y*out_w + x'`` of image ``n`` holds its window,
  column ``(i*kw + j)*C + c`` the pixel under window offset ``(i, j)`` of channel ``c``.
  That is the order of ``K.transpose(0, 2, 3, 1).reshape(F, kh*kw*C)`` for weights ``K``
  ``(F, C, kh, kw)``, so the convolution of the whole batch is one matrix product
  ``cols.reshape(N*P, -1) @ Wmat.T``, whose result ``(N*P, F)`` is the output in NHWC.
"""

import math

import numpy as np

__all__ = [
    "output_size",
    "im2col_reference",
    "im2col_transposed_reference",
    "col2im_reference",
    "maxpool_forward_reference",
    "maxpool_infer_reference",
    "conv_maxpool_infer_reference",
    "maxpool_backward_reference",
    "avgpool_forward_reference",
    "avgpool_backward_reference",
    "affine_warp_reference",
    "batchnorm_forward_reference",
    "batchnorm_backward_reference",
    "erf_reference",
]


def output_size(size, window, stride, padding=0):
    """Number of window positions along one axis: ``(size + 2*padding - window) // stride + 1``.

    Examples
    --------
    >>> output_size(28, 3, 1), output_size(26, 2, 2), output_size(28, 3, 2, padding=1)
    (26, 13, 14)
    """
    return (size + 2 * padding - window) // stride + 1


def _window_slices(i, j, out_h, out_w, sh, sw):
    """The (rows, columns) slices that window offset ``(i, j)`` reads for every output position."""
    return slice(i, i + sh * out_h, sh), slice(j, j + sw * out_w, sw)


def im2col_reference(x, kh, kw, sh, sw, ph, pw):
    """Unfold every ``kh x kw`` window of ``x`` into a row.

    ``cols[n, y*out_w + x', (i*kw + j)*C + c] = xpad[n, y*sh + i, x'*sw + j, c]``, where
    ``xpad`` is ``x`` with ``ph``/``pw`` zeros around each image.

    Returns ``cols`` of shape ``(N, out_h*out_w, kh*kw*C)`` in the dtype of ``x``.
    """
    n, h, w, c = x.shape
    out_h, out_w = output_size(h, kh, sh, ph), output_size(w, kw, sw, pw)
    xpad = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
    cols = np.empty((n, out_h, out_w, kh, kw, c), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            rows, columns = _window_slices(i, j, out_h, out_w, sh, sw)
            cols[:, :, :, i, j, :] = xpad[:, rows, columns, :]
    return cols.reshape(n, out_h * out_w, kh * kw * c)


def im2col_transposed_reference(x, kh, kw, sh, sw, ph, pw):
    """:func:`im2col_reference` laid out the other way: ``(kh*kw*C, N*out_h*out_w)``, one row per column.

    For a thin window (one channel: ``kh*kw*C`` = 9 for a 3x3 kernel) this is the faster
    layout to fill: each row is the image shifted by one kernel offset, copied in contiguous
    runs of a pixel row, where the ``(N*P, 9)`` layout would write nine scattered values per
    output position. The matrix product reads it transposed at no cost.
    """
    cols = im2col_reference(x, kh, kw, sh, sw, ph, pw)
    return np.ascontiguousarray(cols.reshape(-1, cols.shape[2]).T)


def col2im_reference(cols, x_shape, kh, kw, sh, sw, ph, pw):
    """Fold rows back into images, summing where windows overlap.

    The adjoint of :func:`im2col_reference`: ``<im2col(x), cols> == <x, col2im(cols)>``.
    In a convolution's backward pass it turns the gradient with respect to the columns
    into the gradient with respect to the input.

    Returns ``dx`` of shape ``x_shape`` ``(N, H, W, C)`` in the dtype of ``cols``.
    """
    n, h, w, c = x_shape
    out_h, out_w = output_size(h, kh, sh, ph), output_size(w, kw, sw, pw)
    cols = cols.reshape(n, out_h, out_w, kh, kw, c)
    dxpad = np.zeros((n, h + 2 * ph, w + 2 * pw, c), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            rows, columns = _window_slices(i, j, out_h, out_w, sh, sw)
            dxpad[:, rows, columns, :] += cols[:, :, :, i, j, :]
    return dxpad[:, ph : ph + h, pw : pw + w, :].copy()


def _stacked_windows(x, kh, kw, sh, sw):
    """Every pooling window of ``x`` along a last axis: ``(N, out_h, out_w, C, kh*kw)``."""
    _, h, w, _ = x.shape
    out_h, out_w = output_size(h, kh, sh), output_size(w, kw, sw)
    offsets = [_window_slices(i, j, out_h, out_w, sh, sw) for i in range(kh) for j in range(kw)]
    return np.stack([x[:, rows, columns, :] for rows, columns in offsets], axis=-1)


def maxpool_forward_reference(x, kh, kw, sh, sw, relu=False, bias=None):
    """Max over each ``kh x kw`` window, and where it was; with ``relu``, ``max(0, that)``.

    Returns ``(out, argmax)``: ``out`` is ``(N, out_h, out_w, C)``; ``argmax`` (int32, same
    shape) is the window offset ``i*kw + j`` of the maximum. On ties the first maximum in
    row-major window order wins, so the gradient goes to one input; a NaN is the maximum of
    its window (the first NaN, as ``np.argmax`` and PyTorch). With ``relu=True`` (a ReLU
    fused after the pooling: ``relu(maxpool(x)) == maxpool(relu(x))``) the outputs are
    clipped at 0 and ``argmax`` is -1 where the clip cut the gradient off (maximum <= 0).
    ``bias`` ``(C,)``, if given, is added to every input first: the bias of a convolution
    whose output goes straight into the pooling, added where the values are read anyway.
    """
    if bias is not None:
        x = x + bias
    windows = _stacked_windows(x, kh, kw, sh, sw)
    argmax = windows.argmax(axis=-1).astype(np.int32)
    out = np.take_along_axis(windows, argmax[..., None], axis=-1)[..., 0]
    if relu:
        argmax[out <= 0] = -1
        out = np.where(out < 0, out.dtype.type(0), out)
    return out, argmax


def maxpool_infer_reference(x, kh, kw, sh, sw, relu=False, bias=None, scale=None, shift=None):
    """The pooled values of :func:`maxpool_forward_reference` alone (no argmax), then ``* scale + shift``.

    What a model that predicts needs: ``scale`` and ``shift`` ``(C,)``, if given, are the
    BatchNorm after the pooling as an affine map per channel.
    """
    out, _ = maxpool_forward_reference(x, kh, kw, sh, sw, relu, bias)
    if scale is not None:
        out = out * scale
    if shift is not None:
        out = out + shift
    return out


def conv_maxpool_infer_reference(x, taps, kh, kw, sh, sw, pool_h, pool_w, pool_sh, pool_sw, relu=False, bias=None,
                                 scale=None, shift=None):
    """A convolution (no padding) and the max pooling after it, at inference: ``maxpool_infer(cols @ taps)``.

    ``taps`` ``(kh*kw*C, F)`` are the filters in the columns' order (``Wmat.T``); ``(sh, sw)``
    is the convolution's stride, ``pool_*`` the pooling's window and stride; ``relu``,
    ``bias``, ``scale`` and ``shift`` are :func:`maxpool_infer_reference`'s. The fast twin
    computes each convolution output inside the pooling window that reads it, so neither
    the columns nor the convolution's output are ever stored.
    """
    n, h, w, _ = x.shape
    out_h, out_w = output_size(h, kh, sh), output_size(w, kw, sw)
    y = (im2col_reference(x, kh, kw, sh, sw, 0, 0) @ taps).reshape(n, out_h, out_w, taps.shape[1])
    return maxpool_infer_reference(y, pool_h, pool_w, pool_sh, pool_sw, relu, bias, scale, shift)


def maxpool_backward_reference(grad_out, argmax, x_shape, kh, kw, sh, sw):
    """Route each output gradient to the input that was the maximum of its window.

    ``dx[n, y*sh + i, x'*sw + j, c] += grad_out[n, y, x', c]`` where ``argmax == i*kw + j``
    (nothing where ``argmax`` is -1); overlapping windows that share a maximum add up.
    Returns ``dx`` of shape ``x_shape`` in the dtype of ``grad_out``.
    """
    out_h, out_w = grad_out.shape[1:3]
    dx = np.zeros(x_shape, dtype=grad_out.dtype)
    for i in range(kh):
        for j in range(kw):
            rows, columns = _window_slices(i, j, out_h, out_w, sh, sw)
            dx[:, rows, columns, :] += np.where(argmax == i * kw + j, grad_out, 0)
    return dx


def avgpool_forward_reference(x, kh, kw, sh, sw):
    """Mean over each ``kh x kw`` window: ``(N, H, W, C) -> (N, out_h, out_w, C)``."""
    return _stacked_windows(x, kh, kw, sh, sw).mean(axis=-1, dtype=x.dtype)


def avgpool_backward_reference(grad_out, x_shape, kh, kw, sh, sw):
    """Spread each output gradient evenly over its window: ``dx += grad_out / (kh*kw)``."""
    out_h, out_w = grad_out.shape[1:3]
    share = grad_out / grad_out.dtype.type(kh * kw)
    dx = np.zeros(x_shape, dtype=grad_out.dtype)
    for i in range(kh):
        for j in range(kw):
            rows, columns = _window_slices(i, j, out_h, out_w, sh, sw)
            dx[:, rows, columns, :] += share
    return dx


def affine_warp_reference(x, matrices):
    """Warp each image by its own affine map, sampling bilinearly, zeros outside.

    ``x`` is ``(N, C, H, W)``; ``matrices`` ``(N, 2, 3)`` map every *output* pixel ``(row,
    col)`` to the *input* point it takes its value from (the inverse of the transformation
    the image appears to undergo)::

        src_row = m[0, 0] * row + m[0, 1] * col + m[0, 2]
        src_col = m[1, 0] * row + m[1, 1] * col + m[1, 2]

    The value there is the bilinear mix of the four surrounding pixels, a pixel outside the
    image counting as 0. Returns an array of ``x``'s shape and dtype.
    """
    n, c, h, w = x.shape
    rows, cols = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    src_r = matrices[:, 0, 0, None, None] * rows + matrices[:, 0, 1, None, None] * cols + matrices[:, 0, 2, None, None]
    src_c = matrices[:, 1, 0, None, None] * rows + matrices[:, 1, 1, None, None] * cols + matrices[:, 1, 2, None, None]
    top, left = np.floor(src_r), np.floor(src_c)
    fr, fc = src_r - top, src_c - left  # (N, H, W) fractions
    top, left = top.astype(np.int64), left.astype(np.int64)
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))  # a ring of zeros: neighbours just outside
    out = np.zeros(x.shape, dtype=np.float64)
    images = np.arange(n)[:, None, None]
    for dr, dc, weight in ((0, 0, (1 - fr) * (1 - fc)), (0, 1, (1 - fr) * fc), (1, 0, fr * (1 - fc)), (1, 1, fr * fc)):
        r, q = top + dr, left + dc
        inside = (r >= 0) & (r < h) & (q >= 0) & (q < w)
        values = padded[images, :, np.clip(r + 1, 0, h + 1), np.clip(q + 1, 0, w + 1)]  # (N, H, W, C)
        out += np.moveaxis(values * (weight * inside)[..., None], -1, 1)
    return out.astype(x.dtype)


def batchnorm_forward_reference(rows, gamma, beta, eps):
    """Batch normalisation in training of the columns of ``rows`` ``(M, C)``: one feature a column.

    ::

        mean = sum_i x_i / M            var = sum_i (x_i - mean)^2 / M      (biased)
        inv_std = 1 / sqrt(var + eps)   x_hat = (x - mean) * inv_std        y = gamma * x_hat + beta

    Returns ``(y, x_hat, mean, var, inv_std)``, all in the dtype of ``rows``.
    """
    dtype = rows.dtype
    mean = rows.mean(axis=0, dtype=np.float64)  # sums in float64, as the numba passes do
    centred = rows - mean
    var = np.mean(centred * centred, axis=0)
    inv_std = 1 / np.sqrt(var + eps)
    x_hat = (centred * inv_std).astype(dtype)
    return (x_hat * gamma + beta).astype(dtype), x_hat, mean.astype(dtype), var.astype(dtype), inv_std.astype(dtype)


def batchnorm_backward_reference(grad, x_hat, gamma, inv_std):
    """The gradients of :func:`batchnorm_forward_reference`, given ``grad = dL/dy`` ``(M, C)``.

    ::

        dbeta = sum_i g_i               dgamma = sum_i g_i * x_hat_i
        dx = gamma * inv_std / M * (M * g - dbeta - x_hat * dgamma)

    (the compact form derived in docs/backprop.md). Returns ``(dx, dgamma, dbeta)``.
    """
    count = len(grad)
    grad_beta = grad.sum(axis=0, dtype=np.float64)
    grad_gamma = (grad * x_hat).sum(axis=0, dtype=np.float64)
    scale = gamma * inv_std / grad.dtype.type(count)
    grad_x = scale * (count * grad - grad_beta.astype(grad.dtype) - x_hat * grad_gamma.astype(grad.dtype))
    return grad_x, grad_gamma.astype(grad.dtype), grad_beta.astype(grad.dtype)


def erf_reference(x):
    """The error function ``erf(x) = 2/sqrt(pi) * integral_0^x exp(-t^2) dt``, element by element.

    NumPy has no ``erf``; this calls Python's ``math.erf`` (float64) once per value, in the
    dtype of ``x``. GELU's exact form, ``x * (1 + erf(x / sqrt(2))) / 2``, is built on it.
    """
    return np.frompyfunc(math.erf, 1, 1)(x).astype(x.dtype) if x.size else x.copy()
