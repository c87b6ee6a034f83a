"""Readable reference kernels: plain NumPy, one slice per kernel offset.

These are the definitions. The numba kernels in :mod:`tinynet.kernels.jitted` must
return exactly what these return (the tests compare them on every shape they draw),
and the layers fall back to these when numba is missing or ``NUMBA_DISABLE_JIT=1``.

Shapes used throughout:

- ``x``: ``(N, C, H, W)`` input images, NCHW.
- ``(kh, kw)``: window (kernel or pool) size; ``(sh, sw)``: stride; ``(ph, pw)``: zero padding.
- ``out_h = (H + 2*ph - kh) // sh + 1`` and ``out_w = (W + 2*pw - kw) // sw + 1``.
- ``cols``: ``(N, C*kh*kw, out_h*out_w)``; row ``(c*kh + i)*kw + j`` holds, for every
  output position, the input pixel under kernel offset ``(i, j)`` of channel ``c``. That is
  the order of ``W.reshape(F, C*kh*kw)``, so a convolution is one matrix product per image.
"""

import numpy as np

__all__ = [
    "output_size",
    "im2col_reference",
    "col2im_reference",
    "maxpool_forward_reference",
    "maxpool_backward_reference",
    "avgpool_forward_reference",
    "avgpool_backward_reference",
    "adam_update_reference",
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
    """The (rows, columns) slices that kernel offset ``(i, j)`` reads for every output position."""
    return slice(i, i + sh * out_h, sh), slice(j, j + sw * out_w, sw)


def im2col_reference(x, kh, kw, sh, sw, ph, pw):
    """Unfold every ``kh x kw`` window of ``x`` into a column.

    ``cols[n, (c*kh + i)*kw + j, y*out_w + x'] = xpad[n, c, y*sh + i, x'*sw + j]``, where
    ``xpad`` is ``x`` with ``ph``/``pw`` zeros around each image.

    Returns ``cols`` of shape ``(N, C*kh*kw, out_h*out_w)`` in the dtype of ``x``.
    """
    n, c, h, w = x.shape
    out_h, out_w = output_size(h, kh, sh, ph), output_size(w, kw, sw, pw)
    xpad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    cols = np.empty((n, c, kh, kw, out_h, out_w), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            rows, columns = _window_slices(i, j, out_h, out_w, sh, sw)
            cols[:, :, i, j] = xpad[:, :, rows, columns]
    return cols.reshape(n, c * kh * kw, out_h * out_w)


def col2im_reference(cols, x_shape, kh, kw, sh, sw, ph, pw):
    """Fold columns back into images, summing where windows overlap.

    The adjoint of :func:`im2col_reference`: ``<im2col(x), cols> == <x, col2im(cols)>``.
    In a convolution's backward pass it turns the gradient with respect to the columns
    into the gradient with respect to the input.

    Returns ``dx`` of shape ``x_shape`` ``(N, C, H, W)`` in the dtype of ``cols``.
    """
    n, c, h, w = x_shape
    out_h, out_w = output_size(h, kh, sh, ph), output_size(w, kw, sw, pw)
    cols = cols.reshape(n, c, kh, kw, out_h, out_w)
    dxpad = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            rows, columns = _window_slices(i, j, out_h, out_w, sh, sw)
            dxpad[:, :, rows, columns] += cols[:, :, i, j]
    return dxpad[:, :, ph : ph + h, pw : pw + w].copy()


def _stacked_windows(x, kh, kw, sh, sw):
    """Every pooling window of ``x`` along a last axis: ``(N, C, out_h, out_w, kh*kw)``."""
    _, _, h, w = x.shape
    out_h, out_w = output_size(h, kh, sh), output_size(w, kw, sw)
    offsets = [_window_slices(i, j, out_h, out_w, sh, sw) for i in range(kh) for j in range(kw)]
    return np.stack([x[:, :, rows, columns] for rows, columns in offsets], axis=-1)


def maxpool_forward_reference(x, kh, kw, sh, sw):
    """Max over each ``kh x kw`` window, and where it was.

    Returns ``(out, argmax)``: ``out`` is ``(N, C, out_h, out_w)``; ``argmax`` (int64, same
    shape) is the flat index ``row*W + col`` of the maximum inside its ``(H, W)`` plane. On
    ties the first maximum in row-major window order wins, so the gradient goes to one input.
    """
    _, _, h, w = x.shape
    out_h, out_w = output_size(h, kh, sh), output_size(w, kw, sw)
    windows = _stacked_windows(x, kh, kw, sh, sw)
    k = windows.argmax(axis=-1)
    out = np.take_along_axis(windows, k[..., None], axis=-1)[..., 0]
    rows = np.arange(out_h)[:, None] * sh + k // kw
    columns = np.arange(out_w)[None, :] * sw + k % kw
    return out, (rows * w + columns).astype(np.int64)


def maxpool_backward_reference(grad_out, argmax, x_shape):
    """Route each output gradient to the input that was the maximum of its window.

    ``dx[n, c].flat[argmax[n, c, y, x']] += grad_out[n, c, y, x']``; overlapping windows that
    share a maximum add up. Returns ``dx`` of shape ``x_shape`` in the dtype of ``grad_out``.
    """
    n, c, h, w = x_shape
    dx = np.zeros((n * c, h * w), dtype=grad_out.dtype)
    planes = np.arange(n * c)[:, None]
    np.add.at(dx, (planes, argmax.reshape(n * c, -1)), grad_out.reshape(n * c, -1))
    return dx.reshape(x_shape)


def avgpool_forward_reference(x, kh, kw, sh, sw):
    """Mean over each ``kh x kw`` window: ``(N, C, H, W) -> (N, C, out_h, out_w)``."""
    return _stacked_windows(x, kh, kw, sh, sw).mean(axis=-1, dtype=x.dtype)


def avgpool_backward_reference(grad_out, x_shape, kh, kw, sh, sw):
    """Spread each output gradient evenly over its window: ``dx += grad_out / (kh*kw)``."""
    n, c, h, w = x_shape
    out_h, out_w = grad_out.shape[2:]
    share = grad_out / grad_out.dtype.type(kh * kw)
    dx = np.zeros(x_shape, dtype=grad_out.dtype)
    for i in range(kh):
        for j in range(kw):
            rows, columns = _window_slices(i, j, out_h, out_w, sh, sw)
            dx[:, :, rows, columns] += share
    return dx


def adam_update_reference(param, grad, m, v, step_size, beta1, beta2, eps, root_bias2, l2, decay):
    """One Adam step on one parameter, in place (``param``, ``m`` and ``v`` are updated).

    The bias corrections arrive computed by :class:`tinynet.optim.Adam`:
    ``step_size = lr / (1 - beta1^t)`` and ``root_bias2 = sqrt(1 - beta2^t)``. With
    ``g = grad + l2 * param`` (Adam's L2 weight decay) and ``decay = 1 - lr * weight_decay``
    (AdamW's decoupled decay; 1 for Adam)::

        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g^2
        param = decay * param - step_size * m / (sqrt(v) / root_bias2 + eps)

    Computed in the parameter's dtype (the scalars are cast to it first).
    """
    dtype = param.dtype.type
    if l2:
        grad = grad + dtype(l2) * param
    m *= dtype(beta1)
    m += dtype(1 - beta1) * grad
    v *= dtype(beta2)
    v += dtype(1 - beta2) * grad * grad
    denom = np.sqrt(v) / dtype(root_bias2)
    denom += dtype(eps)
    if decay != 1:
        param *= dtype(decay)
    param -= dtype(step_size) * m / denom
