"""The readable twins of the numba kernels: the layers' own functions, on channels-last images.

The layers (:mod:`tinynet.layers`) are the definition of what a model computes; these
twins add nothing to their arithmetic. Each one changes the layout the kernels work in,
calls the layer's function, and changes the layout back: channels-last (NHWC) images in,
the layer's NCHW function, NHWC out (the kernels compute channels-last because there the
``C`` values of a pixel are adjacent, so a window is ``kh`` runs of ``kw*C`` floats). The
numba kernels in :mod:`tinynet.kernels.jitted` must return what these return (the tests
compare them on drawn geometries), and the engine runs on these when numba is missing or
``NUMBA_DISABLE_JIT=1``.

Shapes used throughout:

- ``x``: ``(N, H, W, C)`` input images, channels last.
- ``(kh, kw)``: window (kernel or pool) size; ``(sh, sw)``: stride; ``(ph, pw)``: zero padding.
- ``out_h = (H + 2*ph - kh) // sh + 1`` and ``out_w = (W + 2*pw - kw) // sw + 1``;
  ``P = out_h*out_w`` output positions per image.
- ``cols``: ``(N, P, kh*kw*C)``; row ``y*out_w + x'`` of image ``n`` holds its window,
  column ``(i*kw + j)*C + c`` the pixel under window offset ``(i, j)`` of channel ``c``
  (the layer's :func:`~tinynet.layers.conv.im2col` orders a window ``(c, i, j)``; here the
  channels come last, as in the images). That is the order of
  ``K.transpose(0, 2, 3, 1).reshape(F, kh*kw*C)`` for weights ``K`` ``(F, C, kh, kw)``.
"""

import numpy as np

from ..layers.activations import gelu, gelu_backward
from ..layers.attention import attention_weights, attention_weights_backward
from ..layers.conv import col2im, im2col, output_size
from ..layers.normalization import layer_norm, layer_norm_backward, normalize_batch, normalize_batch_backward
from ..layers.pooling import avg_pool, avg_pool_backward, max_pool, max_pool_backward
from ..layers.recurrent import lstm_cell, lstm_cell_backward, lstm_loop
from ..layers.softmax import softmax, softmax_cross_entropy
from ..special import erf_reference

__all__ = [
    "output_size",
    "im2col_reference",
    "im2col_transposed_reference",
    "im2col_filter_order_reference",
    "col2im_reference",
    "maxpool_forward_reference",
    "maxpool_infer_reference",
    "conv_maxpool_infer_reference",
    "conv_maxpool_forward_reference",
    "conv_maxpool_weight_grads_reference",
    "maxpool_backward_reference",
    "avgpool_forward_reference",
    "avgpool_backward_reference",
    "affine_warp_reference",
    "batchnorm_forward_reference",
    "batchnorm_backward_reference",
    "erf_reference",
    "lstm_cell_into_reference",
    "lstm_cell_backward_into_reference",
    "lstm_loop_reference",
    "layernorm_forward_reference",
    "layernorm_backward_reference",
    "attention_weights_reference",
    "attention_weights_backward_reference",
    "gelu_forward_reference",
    "softmax_rows_reference",
    "softmax_cross_entropy_reference",
    "all_finite_reference",
]


def _channels_first(x):
    """``(N, H, W, C) -> (N, C, H, W)``, a view."""
    return x.transpose(0, 3, 1, 2)


def _channels_last(x):
    """``(N, C, H, W) -> (N, H, W, C)``, contiguous."""
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def _nchw_shape(shape):
    n, h, w, c = shape
    return n, c, h, w


def im2col_reference(x, kh, kw, sh, sw, ph, pw):
    """Every ``kh x kw`` window of ``x`` as a row, ``(N, P, kh*kw*C)``: the layer's im2col, each row's
    values reordered from ``(c, i, j)`` to ``(i, j, c)``."""
    n, h, w, c = x.shape
    positions = output_size(h, kh, sh, ph) * output_size(w, kw, sw, pw)
    cols = im2col(_channels_first(x), (kh, kw), (sh, sw), (ph, pw))  # (N*P, C*kh*kw)
    windows = cols.reshape(n, positions, c, kh, kw).transpose(0, 1, 3, 4, 2)  # (c, i, j) -> (i, j, c)
    return np.ascontiguousarray(windows).reshape(n, positions, kh * kw * c)


def im2col_transposed_reference(x, kh, kw, sh, sw, ph, pw):
    """:func:`im2col_reference` laid out the other way: ``(kh*kw*C, N*out_h*out_w)``, one row per column.

    For a thin window (one channel: ``kh*kw*C`` = 9 for a 3x3 kernel) this is the faster
    layout to fill: each row is the image shifted by one kernel offset, copied in contiguous
    runs of a pixel row, where the ``(N*P, 9)`` layout would write nine scattered values per
    output position. The matrix product reads it transposed at no cost.
    """
    cols = im2col_reference(x, kh, kw, sh, sw, ph, pw)
    return np.ascontiguousarray(cols.reshape(-1, cols.shape[2]).T)


def im2col_filter_order_reference(x, kh, kw, sh, sw, ph, pw):
    """The windows of channels-last images in the layer's own column order ``(c, i, j)``: ``(N, P, C*kh*kw)``.

    That is the order of the filters as they are stored, ``K.reshape(F, C*kh*kw)``, so the
    matrix product needs no re-laid-out copy of them (see :mod:`tinynet.engine.conv`).
    """
    n, h, w, _ = x.shape
    positions = output_size(h, kh, sh, ph) * output_size(w, kw, sw, pw)
    return im2col(_channels_first(x), (kh, kw), (sh, sw), (ph, pw)).reshape(n, positions, -1)


def col2im_reference(cols, x_shape, kh, kw, sh, sw, ph, pw):
    """The adjoint of :func:`im2col_reference`: the layer's col2im, rows reordered back to ``(c, i, j)``.

    Returns ``dx`` of shape ``x_shape`` ``(N, H, W, C)`` in the dtype of ``cols``.
    """
    n, h, w, c = x_shape
    positions = output_size(h, kh, sh, ph) * output_size(w, kw, sw, pw)
    windows = cols.reshape(n * positions, kh, kw, c).transpose(0, 3, 1, 2)  # (i, j, c) -> (c, i, j)
    images = col2im(windows.reshape(n * positions, c * kh * kw), (n, c, h, w), (kh, kw), (sh, sw), (ph, pw))
    return _channels_last(images)


def maxpool_forward_reference(x, kh, kw, sh, sw, relu=False, bias=None):
    """``(out, argmax)`` of the layer's max pooling, NHWC, ``argmax`` int32 (the offset ``i*kw + j``).

    Two fusions of the engine: ``bias`` ``(C,)``, if given, is added to every input first
    (the bias of a convolution whose output goes straight into the pooling), and with
    ``relu=True`` a ReLU after the pooling (``relu(maxpool(x)) == maxpool(relu(x))``): the
    outputs are clipped at 0 and ``argmax`` is -1 where the clip cut the gradient off
    (maximum <= 0).
    """
    if bias is not None:
        x = x + bias
    out, argmax = max_pool(_channels_first(x), (kh, kw), (sh, sw))
    out, argmax = _channels_last(out), _channels_last(argmax).astype(np.int32)
    if relu:
        argmax[out <= 0] = -1
        out = np.where(out < 0, out.dtype.type(0), out)  # NaN stays NaN
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


def conv_maxpool_forward_reference(x, taps, bias):
    """A 3x3 convolution of one channel (stride 1, no padding), ReLU and 2x2 max pooling (stride 2), for
    training: ``(out, argmax)`` of :func:`maxpool_forward_reference` (``relu=True``, the convolution's ``bias``)
    on ``cols @ taps``.

    ``x`` is ``(N, H, W, 1)``, ``taps`` ``(9, F)`` the filters in the columns' order (``Wmat.T``).
    The fast twin sums each pooling window's four convolution outputs from the 16 pixels they
    read, so neither the columns nor the convolution's output are stored.
    """
    n, h, w, _ = x.shape
    y = (im2col_reference(x, 3, 3, 1, 1, 0, 0) @ taps).reshape(n, h - 2, w - 2, taps.shape[1])
    return maxpool_forward_reference(y, 2, 2, 2, 2, relu=True, bias=bias)


def conv_maxpool_weight_grads_reference(x, grad, argmax):
    """``(taps_grad, bias_grad)`` ``(9, F), (F,)``: the backward of :func:`conv_maxpool_forward_reference` to its
    filters and bias: the pooling's backward (:func:`maxpool_backward_reference`), then the convolution's
    ``colsᵀ dY`` and the sum of ``dY``."""
    n, h, w, _ = x.shape
    filters = grad.shape[3]
    grad_y = maxpool_backward_reference(grad, argmax, (n, h - 2, w - 2, filters), 2, 2, 2, 2).reshape(-1, filters)
    cols = im2col_reference(x, 3, 3, 1, 1, 0, 0).reshape(-1, 9)  # (N*P, 9)
    return cols.T @ grad_y, grad_y.sum(axis=0)


def maxpool_backward_reference(grad_out, argmax, x_shape, kh, kw, sh, sw):
    """The layer's max-pooling backward, NHWC: each gradient to its window's maximum (nothing where ``argmax``
    is -1). Returns ``dx`` of shape ``x_shape`` in the dtype of ``grad_out``."""
    grad_x = max_pool_backward(_channels_first(grad_out), _channels_first(argmax), _nchw_shape(x_shape),
                               (kh, kw), (sh, sw))
    return _channels_last(grad_x)


def avgpool_forward_reference(x, kh, kw, sh, sw):
    """The layer's average pooling, NHWC: ``(N, H, W, C) -> (N, out_h, out_w, C)``."""
    return _channels_last(avg_pool(_channels_first(x), (kh, kw), (sh, sw)))


def avgpool_backward_reference(grad_out, x_shape, kh, kw, sh, sw):
    """The layer's average-pooling backward, NHWC: each output gradient spread evenly over its window."""
    return _channels_last(avg_pool_backward(_channels_first(grad_out), _nchw_shape(x_shape), (kh, kw), (sh, sw)))


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
    """The layer's batch normalisation in training of the columns of ``rows`` ``(M, C)``: one feature a column.

    Returns ``(y, x_hat, mean, var, inv_std)``, the last three ``(C,)``, all in the dtype of ``rows``.
    """
    y, x_hat, mean, var, inv_std = normalize_batch(rows, gamma, beta, eps, (0,))
    return y, x_hat, mean.ravel(), var.ravel(), inv_std.ravel()


def batchnorm_backward_reference(grad, x_hat, gamma, inv_std):
    """The layer's gradients of :func:`batchnorm_forward_reference`, given ``grad = dL/dy`` ``(M, C)``.

    Returns ``(dx, dgamma, dbeta)``.
    """
    return normalize_batch_backward(grad, x_hat, gamma, inv_std, len(grad), (0,))


def lstm_cell_into_reference(z, x_share, c_prev, gates, c, h):
    """A step of the LSTM after its product, written into the given arrays: the layer's
    :func:`~tinynet.layers.recurrent.lstm_cell` of ``z_t = z + x_share`` (``z`` is ``h_{t-1} W_h``
    ``(N, 4H)`` and becomes ``z_t``), its ``(gates, c_t, h_t)`` into ``gates`` ``(N, 4H)``, ``c``
    and ``h`` ``(N, H)``."""
    z += x_share  # z_t = h_{t-1} W_h + (x_t W_x + b)
    gates[...], c[...], h[...] = lstm_cell(z, c_prev)


def lstm_cell_backward_into_reference(grad_state, grad_h_next, grad_c, gates, c_prev, c, grad_z, grad_h):
    """A step of the LSTM's backward, written into the given arrays: ``dL/dh_t = grad_state + grad_h_next``
    into ``grad_h`` ``(N, H)``, then the layer's :func:`~tinynet.layers.recurrent.lstm_cell_backward`, its
    ``dz_t`` into ``grad_z`` ``(N, 4H)`` and its ``dL/dc_{t-1}`` into ``grad_c``, which held ``dL/dc_t``."""
    np.add(grad_state, grad_h_next, out=grad_h)  # dL/dh_t: from the output at t and through step t+1
    grad_z[...], grad_c[...] = lstm_cell_backward(grad_h, grad_c, gates, c_prev, c)


def lstm_loop_reference(x_part, W_h):
    """The LSTM layer's loop over time, :func:`~tinynet.layers.recurrent.lstm_loop` with its cell: ``(h, c, gates)``
    from every step's input share ``(T, N, 4H)``."""
    return lstm_loop(x_part, W_h)


def layernorm_forward_reference(rows, gamma, beta, eps):
    """The layer's :func:`~tinynet.layers.normalization.layer_norm` of each row of ``rows`` ``(R, F)``:
    ``(y, x_hat, inv_std)``, ``inv_std`` ``(R, 1)``."""
    return layer_norm(rows, gamma, beta, eps)


def layernorm_backward_reference(grad, x_hat, gamma, inv_std):
    """The layer's :func:`~tinynet.layers.normalization.layer_norm_backward` on rows: ``(dx, dgamma, dbeta)``."""
    return layer_norm_backward(grad, x_hat, gamma, inv_std)


def attention_weights_reference(scores, causal):
    """The attention layer's :func:`~tinynet.layers.attention.attention_weights`: ``A = softmax(S)`` along each row
    of ``(N, h, T, T)``, the future masked with ``causal`` (no change of layout)."""
    return attention_weights(scores, causal)


def attention_weights_backward_reference(attention, grad_attention):
    """The layer's :func:`~tinynet.layers.attention.attention_weights_backward`: ``dS`` ``(N, h, T, T)``."""
    return attention_weights_backward(attention, grad_attention)


def gelu_forward_reference(x):
    """The GELU layer's :func:`~tinynet.layers.activations.gelu` (exact form) and its slope from
    :func:`~tinynet.layers.activations.gelu_backward`: ``(y, dy/dx)``, each shaped as ``x``."""
    y, cdf = gelu(x)
    return y, gelu_backward(np.ones_like(x), x, cdf)


def softmax_rows_reference(x):
    """Each row of ``x`` ``(N, classes)`` as probabilities: the layer's softmax along the last axis."""
    return softmax(x, axis=-1)


def softmax_cross_entropy_reference(logits, labels, label_smoothing=0.0):
    """The loss's :func:`~tinynet.layers.softmax.softmax_cross_entropy`: each row's loss, its probabilities and its
    wrong classes' probability, ``(losses (N,), p (N, classes), wrong (N,))``."""
    return softmax_cross_entropy(logits, labels, label_smoothing)


def all_finite_reference(x):
    """Whether no value of ``x`` is NaN or inf."""
    return bool(np.isfinite(x).all())
