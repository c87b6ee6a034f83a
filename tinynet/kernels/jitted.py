"""numba-compiled kernels: the same functions as :mod:`tinynet.kernels.reference`, as loops.

Each function here is the fast twin of the reference function with the same name minus
``_reference``, takes the same arguments and returns the same arrays (the tests check it
on every shape they draw). Why loops: the reference versions build ``kh*kw`` strided
slices and temporaries; a loop writes every output element once, in memory order, and
``prange`` splits the batch across threads (each image is independent, so there are no
write races, even in the scatter-adds of the backward kernels). Images are channels-last
(NHWC): the innermost loop of every kernel runs over the ``C`` adjacent values of a pixel.

All functions are compiled lazily on first call and cached on disk (``cache=True``), so a
later process starts without compiling. Integer arguments must be Python ints (int64)
and arrays C-contiguous: that keeps one compiled signature per dtype.
"""


import numpy as np
from numba import njit, prange

from ..special import erf_float32_value
from ..special import erf_loop as erf  # the error function's loop: layers use it, so it sits below them

__all__ = [
    "im2col",
    "im2col_transposed",
    "im2col_filter_order",
    "col2im",
    "maxpool_forward",
    "maxpool_infer",
    "conv_maxpool_infer",
    "maxpool_backward",
    "avgpool_forward",
    "avgpool_backward",
    "affine_warp",
    "adam_update",
    "batchnorm_forward",
    "batchnorm_backward",
    "erf",
    "lstm_cell_into",
    "lstm_cell_backward_into",
    "lstm_loop",
    "layernorm_forward",
    "layernorm_backward",
    "attention_weights",
    "attention_weights_backward",
    "gelu_forward",
    "softmax_rows",
]


@njit(inline="always")
def _output_size(h, w, kh, kw, sh, sw, ph, pw):
    """``(out_h, out_w)`` of a window sliding over ``(h, w)`` padded images (the layer's output_size)."""
    return (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1


@njit(parallel=True, cache=True)
def im2col(x, kh, kw, sh, sw, ph, pw):
    n, h, w, c = x.shape
    out_h, out_w = _output_size(h, w, kh, kw, sh, sw, ph, pw)
    cols = np.empty((n, out_h * out_w, kh * kw * c), dtype=x.dtype)
    rows = x.reshape(n, h, w * c)  # the kw*c values of a window row are adjacent: one run
    span = kw * c
    for b in prange(n):
        for y in range(out_h):
            for xo in range(out_w):
                p = y * out_w + xo
                left = xo * sw - pw
                for i in range(kh):
                    src_y = y * sh - ph + i
                    start = i * span
                    if 0 <= src_y < h and left >= 0 and left + kw <= w:
                        first = left * c
                        for t in range(span):  # the window row inside the image: one contiguous copy
                            cols[b, p, start + t] = rows[b, src_y, first + t]
                    else:  # at the padded border: pixel by pixel, zeros outside
                        for j in range(kw):
                            src_x = left + j
                            inside = 0 <= src_y < h and 0 <= src_x < w
                            for ch in range(c):
                                cols[b, p, start + j * c + ch] = x[b, src_y, src_x, ch] if inside else 0
    return cols


@njit(parallel=True, cache=True)
def im2col_transposed(x, kh, kw, sh, sw, ph, pw):
    n, h, w, c = x.shape
    out_h, out_w = _output_size(h, w, kh, kw, sh, sw, ph, pw)
    positions = out_h * out_w
    cols = np.empty((kh * kw * c, n * positions), dtype=x.dtype)
    for b in prange(n):
        for i in range(kh):
            for j in range(kw):
                for ch in range(c):
                    row = cols[(i * kw + j) * c + ch]
                    for y in range(out_h):
                        src_y = y * sh - ph + i
                        start = b * positions + y * out_w
                        inside_y = 0 <= src_y < h
                        if inside_y and sw == 1 and pw == 0:
                            # A whole row inside the image, read in a run: no test per pixel, so
                            # the copy is vector code (the MNIST first layer: 0.28 ms against
                            # 0.49 ms for 62 images, one thread, Zen 3).
                            for xo in range(out_w):
                                row[start + xo] = x[b, src_y, xo + j, ch]
                            continue
                        for xo in range(out_w):  # one pixel row of the shifted image
                            src_x = xo * sw - pw + j
                            row[start + xo] = x[b, src_y, src_x, ch] if inside_y and 0 <= src_x < w else 0
    return cols


@njit(parallel=True, cache=True)
def im2col_filter_order(x, kh, kw, sh, sw, ph, pw):
    # The columns in the order (c, i, j) of the filters as stored: each pixel's C adjacent
    # values are read in one run and written kh*kw apart.
    n, h, w, c = x.shape
    out_h, out_w = _output_size(h, w, kh, kw, sh, sw, ph, pw)
    window = kh * kw
    cols = np.empty((n, out_h * out_w, c * window), dtype=x.dtype)
    for b in prange(n):
        for y in range(out_h):
            for xo in range(out_w):
                row = cols[b, y * out_w + xo]
                for i in range(kh):
                    src_y = y * sh - ph + i
                    for j in range(kw):
                        src_x = xo * sw - pw + j
                        offset = i * kw + j
                        if 0 <= src_y < h and 0 <= src_x < w:
                            pixel = x[b, src_y, src_x]
                            for ch in range(c):
                                row[ch * window + offset] = pixel[ch]
                        else:  # in the zero padding
                            for ch in range(c):
                                row[ch * window + offset] = 0
    return cols


@njit(parallel=True, cache=True)
def col2im(cols, x_shape, kh, kw, sh, sw, ph, pw):
    n, h, w, c = x_shape
    out_h, out_w = _output_size(h, w, kh, kw, sh, sw, ph, pw)
    dx = np.zeros((n, h, w, c), dtype=cols.dtype)
    for b in prange(n):
        # Window offsets outermost, as in the reference: overlapping windows add up in the
        # same order, so the sums agree to the last bit.
        for i in range(kh):
            for j in range(kw):
                start = (i * kw + j) * c
                for y in range(out_h):
                    src_y = y * sh - ph + i
                    if src_y < 0 or src_y >= h:
                        continue
                    for xo in range(out_w):
                        src_x = xo * sw - pw + j
                        if 0 <= src_x < w:
                            p = y * out_w + xo
                            # Indexed, not through views of a pixel and a row: a view made for every
                            # window kept the 16-channel loop of the MNIST convolutions 3x slower.
                            for ch in range(c):
                                dx[b, src_y, src_x, ch] += cols[b, p, start + ch]
    return dx


@njit(inline="always")
def _beats(value, best):
    """True when ``value`` takes the place of the window's maximum so far: larger, or the first NaN."""
    # Bitwise, not short-circuit: every pick becomes a select. With `or`/`and` the 2x2
    # pooling's vector body took 24 channels at a time on AVX2 and 8 to 20 channels ran as
    # scalar code (4.6 ns a value on random activations); with selects it takes 8 at a time
    # (0.15-0.25 ns a value for 8 and 16 channels, one thread, Zen 3).
    return (value > best) | ((value != value) & (best == best))


@njit(inline="always")
def _pool_pick(x, b, row, column, ch, bias, k, best, best_at):
    """The (value, offset) that leads after reading offset ``k`` at ``(row, column)``."""
    value = x[b, row, column, ch] + bias
    take = _beats(value, best)
    return (value if take else best), (k if take else best_at)


@njit(parallel=True, cache=True)
def _maxpool_forward_2x2(x, relu, bias):
    # The 2x2, stride-2 window of nearly every CNN, written out with the channel loop
    # innermost and the running maximum in registers: the compiler turns the four
    # comparisons into vector selects over the channels (4x faster than the general loop
    # below on a (128, 26, 26, 32) batch: 0.38 ms against 1.5 ms).
    n, h, w, c = x.shape
    out_h, out_w = h // 2, w // 2
    out = np.empty((n, out_h, out_w, c), dtype=x.dtype)
    argmax = np.empty((n, out_h, out_w, c), dtype=np.int32)
    # A channel count that is not a multiple of 8 would leave its last channels to scalar
    # code, several times slower a value (12 channels: 1.7 ns a value against 0.15 for 16,
    # one thread, Zen 3). Such counts run in blocks of 8 channels, and the last 8 channels
    # are done again as one more block, writing the same values (12 channels: 0.3 ns).
    whole = c - c % 8
    for b in prange(n):
        for y in range(out_h):
            for xo in range(out_w):
                if c % 8 == 0 or c < 8:
                    for ch in range(c):
                        _pool_2x2(x, b, y, xo, ch, relu, bias, out, argmax)
                    continue
                for block in range(0, whole, 8):
                    for ch in range(block, block + 8):
                        _pool_2x2(x, b, y, xo, ch, relu, bias, out, argmax)
                for ch in range(c - 8, c):  # the last 8 channels again, as one block
                    _pool_2x2(x, b, y, xo, ch, relu, bias, out, argmax)
    return out, argmax


@njit(inline="always")
def _pool_2x2(x, b, y, xo, ch, relu, bias, out, argmax):
    """One channel of one 2x2 window: row-major order, strict comparisons, so the first maximum (or NaN) wins."""
    top, left = 2 * y, 2 * xo
    best, best_at = x[b, top, left, ch] + bias[ch], 0
    best, best_at = _pool_pick(x, b, top, left + 1, ch, bias[ch], 1, best, best_at)
    best, best_at = _pool_pick(x, b, top + 1, left, ch, bias[ch], 2, best, best_at)
    best, best_at = _pool_pick(x, b, top + 1, left + 1, ch, bias[ch], 3, best, best_at)
    # A fused ReLU: clip, and no gradient where it clipped (selects, not branches).
    out[b, y, xo, ch] = 0 if relu & (best < 0) else best
    argmax[b, y, xo, ch] = -1 if relu & (not best > 0) else best_at


@njit(parallel=True, cache=True)
def maxpool_forward(x, kh, kw, sh, sw, relu, bias):
    if kh == 2 and kw == 2 and sh == 2 and sw == 2:
        return _maxpool_forward_2x2(x, relu, bias)
    n, h, w, c = x.shape
    out_h = (h - kh) // sh + 1
    out_w = (w - kw) // sw + 1
    out = np.empty((n, out_h, out_w, c), dtype=x.dtype)
    argmax = np.empty((n, out_h, out_w, c), dtype=np.int32)
    for b in prange(n):
        for y in range(out_h):
            for xo in range(out_w):
                best, best_at = out[b, y, xo], argmax[b, y, xo]
                first = x[b, y * sh, xo * sw]
                for ch in range(c):
                    best[ch] = first[ch] + bias[ch]
                    best_at[ch] = 0
                # Row-major window order with strict comparisons: the first maximum wins
                # ties, and the first NaN wins over everything (as np.argmax and PyTorch).
                for i in range(kh):
                    for j in range(kw):
                        pixel = x[b, y * sh + i, xo * sw + j]
                        for ch in range(c):
                            value = pixel[ch] + bias[ch]
                            if _beats(value, best[ch]):
                                best[ch] = value
                                best_at[ch] = i * kw + j
                if relu:  # a ReLU fused after the pooling: clip, and cut the gradient where it clipped
                    for ch in range(c):
                        if best[ch] <= 0:
                            best_at[ch] = -1
                            if best[ch] < 0:
                                best[ch] = 0
    return out, argmax


@njit(parallel=True, cache=True)
def _maxpool_infer_2x2(x, relu, bias, scale, shift):
    # The 2x2 pooling of a model that predicts: no argmax to write, and the BatchNorm after
    # the pooling (scale, shift) applied to each value as it is written.
    n, h, w, c = x.shape
    out_h, out_w = h // 2, w // 2
    out = np.empty((n, out_h, out_w, c), dtype=x.dtype)
    for b in prange(n):
        for y in range(out_h):
            for xo in range(out_w):
                top, left = 2 * y, 2 * xo
                for ch in range(c):
                    best = x[b, top, left, ch] + bias[ch]
                    for value in (x[b, top, left + 1, ch] + bias[ch], x[b, top + 1, left, ch] + bias[ch],
                                  x[b, top + 1, left + 1, ch] + bias[ch]):
                        best = value if _beats(value, best) else best
                    best = 0 if relu & (best < 0) else best
                    out[b, y, xo, ch] = best * scale[ch] + shift[ch]
    return out


@njit(parallel=True, cache=True)
def maxpool_infer(x, kh, kw, sh, sw, relu, bias, scale, shift):
    if kh == 2 and kw == 2 and sh == 2 and sw == 2:
        return _maxpool_infer_2x2(x, relu, bias, scale, shift)
    # Other windows are rare: the training pooling's values, then the affine map.
    out, _ = maxpool_forward(x, kh, kw, sh, sw, relu, bias)
    n, out_h, out_w, c = out.shape
    for b in prange(n):
        for y in range(out_h):
            for xo in range(out_w):
                for ch in range(c):
                    out[b, y, xo, ch] = out[b, y, xo, ch] * scale[ch] + shift[ch]
    return out


@njit(inline="always", fastmath={"contract"})
def _row_3x3_one_channel(x, b, top, taps, row):
    """One row of a 3x3, stride-1 convolution of a one-channel image, into ``row`` ``(conv_w, filters)``."""
    r0, r1, r2 = x[b, top, :, 0], x[b, top + 1, :, 0], x[b, top + 2, :, 0]
    t0, t1, t2, t3, t4, t5, t6, t7, t8 = taps[0], taps[1], taps[2], taps[3], taps[4], taps[5], taps[6], taps[7], taps[8]
    for xc in range(row.shape[0]):
        a0, a1, a2 = r0[xc], r0[xc + 1], r0[xc + 2]
        a3, a4, a5 = r1[xc], r1[xc + 1], r1[xc + 2]
        a6, a7, a8 = r2[xc], r2[xc + 1], r2[xc + 2]
        out = row[xc]
        for f in range(row.shape[1]):  # the window's nine pixels stay in registers over the filters
            out[f] = (a0 * t0[f] + a1 * t1[f] + a2 * t2[f] + a3 * t3[f] + a4 * t4[f] + a5 * t5[f]
                      + a6 * t6[f] + a7 * t7[f] + a8 * t8[f])


@njit(inline="always", fastmath={"contract"})
def _row_general(x, b, top, taps, kh, kw, sw, row):
    """One row of any convolution without padding into ``row``, tap by tap."""
    row[:] = 0
    k = 0  # the column, in im2col's (i, j, c) order
    for i in range(kh):
        for j in range(kw):
            for ch in range(x.shape[3]):
                for xc in range(row.shape[0]):
                    value = x[b, top + i, xc * sw + j, ch]
                    for f in range(row.shape[1]):
                        row[xc, f] += value * taps[k, f]
                k += 1


@njit(cache=True, nogil=True, fastmath={"contract"})
def _conv_maxpool_3x3_images(x, taps, bias, relu, scale, shift, with_argmax, out, argmax, start, stop):
    """:func:`conv_maxpool_3x3` for the images ``start:stop``, into ``out`` (and ``argmax``)."""
    out_h, out_w, filters = out.shape[1], out.shape[2], out.shape[3]
    zero = np.zeros(1, x.dtype)[0]  # typed: a literal 0 would make the clipped value float64
    for b in range(start, stop):
        for y in range(out_h):
            for xo in range(out_w):
                pixels = _pixels_4x4(x, b, 2 * y, 2 * xo)
                for f in range(filters):
                    best, at = _window_max_3x3(pixels, taps, f, bias[f])
                    if with_argmax:  # the ReLU cuts the gradient off at <= 0
                        argmax[b, y, xo, f] = -1 if relu & (best <= zero) else at
                    best = zero if relu & (best < zero) else best  # NaN stays NaN
                    out[b, y, xo, f] = best * scale[f] + shift[f]


@njit(cache=True, parallel=True, nogil=True)
def conv_maxpool_3x3(x, taps, bias, relu, scale, shift, with_argmax, parts):
    # The MNIST first layer (a 3x3 convolution of one channel, then 2x2 max pooling with stride
    # 2), in training and at inference: (out, argmax), the argmax (for training's backward) an
    # empty array unless `with_argmax`. As columns and a product the layer writes its whole
    # output (26x26xF floats an image) and reads it back to pool it, 75% of it to be dropped;
    # here each pooling window's four outputs are summed from the 16 pixels they read, held in
    # registers (_window_max_3x3), and pooled at once; the filter loop, innermost, becomes
    # vector multiply-adds ("contract" allows fused multiply-add and nothing else, so NaNs
    # behave). At inference, 1,000 images on one thread (Zen 3 with AVX2): 15-19 ms for 32
    # filters against 27-43 ms with conv_maxpool_infer's row-buffer loop, 9-12 ms for 16
    # against 19-29, alternating processes. The images are cut into `parts` ranges, one a
    # thread: each range's loop is compiled on its own (_conv_maxpool_3x3_images), so its
    # filter loop stays vector code (written as one parallel loop over the images, the
    # compiler kept it scalar; see conv_maxpool_infer).
    n, h, w, _ = x.shape
    filters = taps.shape[1]
    out_h, out_w = (h - 2) // 2, (w - 2) // 2
    out = np.empty((n, out_h, out_w, filters), dtype=x.dtype)
    argmax = np.empty((n, out_h, out_w, filters) if with_argmax else (0, 0, 0, 0), dtype=np.int32)
    for part in prange(parts):
        _conv_maxpool_3x3_images(x, taps, bias, relu, scale, shift, with_argmax, out, argmax,
                                 n * part // parts, n * (part + 1) // parts)
    return out, argmax


@njit(cache=True, fastmath={"contract"})
def conv_maxpool_infer(x, taps, kh, kw, sh, sw, pool_h, pool_w, pool_sh, pool_sw, relu, bias, scale, shift):
    # A thin convolution (one input channel, 3x3: 9 products an output) is little arithmetic
    # on a large output: as columns and a matrix product it writes its whole output (26x26x32
    # floats an MNIST image) and reads it back to pool it. Here one row of convolution
    # outputs at a time is summed in a small buffer and pooled at once; nothing else is
    # stored. The innermost loop runs over the filters, which the compiler turns into vector
    # multiply-adds ("contract" allows fused multiply-add and nothing else, so NaNs behave).
    # A plain loop over the images, not prange: as a parallel loop the compiler kept the
    # filter loop scalar (1,000 MNIST images, one thread: 18 ms here, 23-30 ms in parallel
    # form, 27 ms as columns and a product).
    n, h, w, c = x.shape
    filters = taps.shape[1]
    if kh == 3 and kw == 3 and sh == 1 and sw == 1 and c == 1 and pool_h == pool_w == pool_sh == pool_sw == 2:
        out = np.empty((n, (h - 2) // 2, (w - 2) // 2, filters), dtype=x.dtype)
        _conv_maxpool_3x3_images(x, taps, bias, relu, scale, shift, False, out, np.empty((0, 0, 0, 0), np.int32), 0, n)
        return out
    conv_w = (w - kw) // sw + 1
    out_h = ((h - kh) // sh + 1 - pool_h) // pool_sh + 1
    out_w = (conv_w - pool_w) // pool_sw + 1
    out = np.empty((n, out_h, out_w, filters), dtype=x.dtype)
    row = np.empty((conv_w, filters), dtype=x.dtype)  # one row of convolution outputs
    best = np.empty((out_w, filters), dtype=x.dtype)  # the pooling windows' maxima so far
    # The MNIST first layer (3x3, stride 1, one channel) has a loop of its own: it holds a
    # window's nine pixels in registers and writes each output once, where the general one
    # reads and writes the row once per tap (1,000 images, one thread, Zen 3 with AVX2: 17 ms
    # against 33 ms for 16 filters, 26 against 34 for 32).
    three_by_three = kh == 3 and kw == 3 and sh == 1 and sw == 1 and c == 1
    for b in range(n):
        for y in range(out_h):
            for wi in range(pool_h):
                top = (y * pool_sh + wi) * sh
                if three_by_three:
                    _row_3x3_one_channel(x, b, top, taps, row)
                else:
                    _row_general(x, b, top, taps, kh, kw, sw, row)
                for xo in range(out_w):
                    for wj in range(pool_w):  # row-major window order: the first maximum (or NaN) wins
                        xc = xo * pool_sw + wj
                        first = (wi == 0) & (wj == 0)  # the window's first value starts its maximum
                        for f in range(filters):
                            value = row[xc, f] + bias[f]
                            best[xo, f] = value if first | _beats(value, best[xo, f]) else best[xo, f]
            for xo in range(out_w):
                for f in range(filters):
                    value = best[xo, f]
                    if relu and value < 0:
                        value = 0
                    out[b, y, xo, f] = value * scale[f] + shift[f]
    return out


@njit(inline="always")
def _pixels_4x4(x, b, top, left):
    """The 16 pixels (one channel, row by row) that a 2x2 pooling window of 3x3 convolution outputs reads."""
    return (x[b, top, left, 0], x[b, top, left + 1, 0], x[b, top, left + 2, 0], x[b, top, left + 3, 0],
            x[b, top + 1, left, 0], x[b, top + 1, left + 1, 0], x[b, top + 1, left + 2, 0], x[b, top + 1, left + 3, 0],
            x[b, top + 2, left, 0], x[b, top + 2, left + 1, 0], x[b, top + 2, left + 2, 0], x[b, top + 2, left + 3, 0],
            x[b, top + 3, left, 0], x[b, top + 3, left + 1, 0], x[b, top + 3, left + 2, 0], x[b, top + 3, left + 3, 0])


@njit(inline="always", fastmath={"contract"})
def _window_max_3x3(pixels, taps, f, bias):
    """``(maximum, offset)`` of filter ``f``'s four 3x3 outputs (plus ``bias``) in a 2x2 pooling window, from the
    window's 16 pixels (:func:`_pixels_4x4`); offsets row-major, the first maximum (or NaN) wins.

    The sums are written out, not looped over: with the taps and the pixels as named scalars, a
    loop over the filters around this becomes vector multiply-adds."""
    (p00, p01, p02, p03, p10, p11, p12, p13, p20, p21, p22, p23, p30, p31, p32, p33) = pixels
    t0, t1, t2 = taps[0, f], taps[1, f], taps[2, f]
    t3, t4, t5 = taps[3, f], taps[4, f], taps[5, f]
    t6, t7, t8 = taps[6, f], taps[7, f], taps[8, f]
    # The window's four outputs, row-major: top-left, top-right, bottom-left, bottom-right.
    v0 = p00 * t0 + p01 * t1 + p02 * t2 + p10 * t3 + p11 * t4 + p12 * t5 + p20 * t6 + p21 * t7 + p22 * t8
    v1 = p01 * t0 + p02 * t1 + p03 * t2 + p11 * t3 + p12 * t4 + p13 * t5 + p21 * t6 + p22 * t7 + p23 * t8
    v2 = p10 * t0 + p11 * t1 + p12 * t2 + p20 * t3 + p21 * t4 + p22 * t5 + p30 * t6 + p31 * t7 + p32 * t8
    v3 = p11 * t0 + p12 * t1 + p13 * t2 + p21 * t3 + p22 * t4 + p23 * t5 + p31 * t6 + p32 * t7 + p33 * t8
    best, at = v0 + bias, 0
    for k, value in ((1, v1 + bias), (2, v2 + bias), (3, v3 + bias)):
        take = _beats(value, best)
        best, at = (value if take else best), (k if take else at)
    return best, at


@njit(cache=True, nogil=True, fastmath={"contract"})
def conv_maxpool_weight_grads(x, grad, argmax):
    # The first layer's backward to its weights (after conv_maxpool_3x3 with its argmax): each
    # pooled gradient reaches one of its window's four convolution outputs (argmax) and from
    # there the nine pixels under that output's filter. The pooling's full-size gradient is
    # never written (75% zeros, and a product over them): each window's gradient goes to its
    # four outputs as four values of which three are zero, selects the compiler vectorises over
    # the filters.
    n = x.shape[0]
    _, out_h, out_w, filters = grad.shape
    taps_grad = np.zeros((9, filters), dtype=grad.dtype)
    bias_grad = np.zeros(filters, dtype=grad.dtype)
    # Typed constants: a literal 0 in `g if ... else 0` made every sum float64 (float32 and int
    # unify to float64), and comparing the int32 argmax with int64 literals widened it: 3.1 ms
    # instead of 1.1 for the speedrun's 256 images and 16 filters (one thread, Zen 3).
    zero = np.zeros(1, grad.dtype)[0]
    first, second, third, fourth = np.int32(0), np.int32(1), np.int32(2), np.int32(3)
    for b in range(n):
        for y in range(out_h):
            for xo in range(out_w):
                (p00, p01, p02, p03, p10, p11, p12, p13,
                 p20, p21, p22, p23, p30, p31, p32, p33) = _pixels_4x4(x, b, 2 * y, 2 * xo)
                for f in range(filters):
                    g, at = grad[b, y, xo, f], argmax[b, y, xo, f]
                    g0, g1 = (g if at == first else zero), (g if at == second else zero)
                    g2, g3 = (g if at == third else zero), (g if at == fourth else zero)
                    bias_grad[f] += (g0 + g1) + (g2 + g3)
                    taps_grad[0, f] += g0 * p00 + g1 * p01 + g2 * p10 + g3 * p11
                    taps_grad[1, f] += g0 * p01 + g1 * p02 + g2 * p11 + g3 * p12
                    taps_grad[2, f] += g0 * p02 + g1 * p03 + g2 * p12 + g3 * p13
                    taps_grad[3, f] += g0 * p10 + g1 * p11 + g2 * p20 + g3 * p21
                    taps_grad[4, f] += g0 * p11 + g1 * p12 + g2 * p21 + g3 * p22
                    taps_grad[5, f] += g0 * p12 + g1 * p13 + g2 * p22 + g3 * p23
                    taps_grad[6, f] += g0 * p20 + g1 * p21 + g2 * p30 + g3 * p31
                    taps_grad[7, f] += g0 * p21 + g1 * p22 + g2 * p31 + g3 * p32
                    taps_grad[8, f] += g0 * p22 + g1 * p23 + g2 * p32 + g3 * p33
    return taps_grad, bias_grad


@njit(parallel=True, cache=True)
def _maxpool_backward_2x2(grad_out, argmax, x_shape):
    # Every input pixel is in exactly one window (or, in an odd last row or column, in
    # none): each is written once, channels innermost, no zeroing pass first.
    n, h, w, c = x_shape
    out_h, out_w = grad_out.shape[1], grad_out.shape[2]
    dx = np.empty((n, h, w, c), dtype=grad_out.dtype)
    # Typed constants, as in conv_maxpool_weight_grads: literal ints made each select float64.
    zero = np.zeros(1, grad_out.dtype)[0]
    first, second, third, fourth = np.int32(0), np.int32(1), np.int32(2), np.int32(3)
    for b in prange(n):
        dx[b, 2 * out_h :] = 0
        dx[b, :, 2 * out_w :] = 0
        for y in range(out_h):
            for xo in range(out_w):
                top, left = 2 * y, 2 * xo
                for ch in range(c):
                    grad, at = grad_out[b, y, xo, ch], argmax[b, y, xo, ch]
                    dx[b, top, left, ch] = grad if at == first else zero
                    dx[b, top, left + 1, ch] = grad if at == second else zero
                    dx[b, top + 1, left, ch] = grad if at == third else zero
                    dx[b, top + 1, left + 1, ch] = grad if at == fourth else zero
    return dx


@njit(parallel=True, cache=True)
def maxpool_backward(grad_out, argmax, x_shape, kh, kw, sh, sw):
    if kh == 2 and kw == 2 and sh == 2 and sw == 2:
        return _maxpool_backward_2x2(grad_out, argmax, x_shape)
    n, h, w, c = x_shape
    out_h, out_w = grad_out.shape[1], grad_out.shape[2]
    if sh >= kh and sw >= kw:
        # Windows that do not overlap (the usual 2x2, stride 2): every input pixel is in at
        # most one window, so each is written exactly once, with no zeroing pass first.
        dx = np.empty((n, h, w, c), dtype=grad_out.dtype)
        for b in prange(n):
            dx[b, out_h * sh:] = 0  # rows and columns that no window covers
            dx[b, :, out_w * sw:] = 0
            for y in range(out_h):
                for xo in range(out_w):
                    grad, at = grad_out[b, y, xo], argmax[b, y, xo]
                    for i in range(min(sh, h - y * sh)):
                        for j in range(min(sw, w - xo * sw)):
                            pixel = dx[b, y * sh + i, xo * sw + j]
                            k = i * kw + j if i < kh and j < kw else -2
                            for ch in range(c):
                                pixel[ch] = grad[ch] if at[ch] == k else 0
        return dx
    # Overlapping windows: window offsets outermost, as in the reference, so the sums of
    # gradients that reach one input agree to the last bit.
    dx = np.zeros((n, h, w, c), dtype=grad_out.dtype)
    for b in prange(n):
        for i in range(kh):
            for j in range(kw):
                k = i * kw + j
                for y in range(out_h):
                    for xo in range(out_w):
                        grad, at, pixel = grad_out[b, y, xo], argmax[b, y, xo], dx[b, y * sh + i, xo * sw + j]
                        for ch in range(c):
                            if at[ch] == k:
                                pixel[ch] += grad[ch]
    return dx


@njit(parallel=True, cache=True)
def avgpool_forward(x, kh, kw, sh, sw):
    n, h, w, c = x.shape
    out_h = (h - kh) // sh + 1
    out_w = (w - kw) // sw + 1
    out = np.zeros((n, out_h, out_w, c), dtype=x.dtype)
    for b in prange(n):
        for y in range(out_h):
            for xo in range(out_w):
                total = out[b, y, xo]
                for i in range(kh):
                    for j in range(kw):
                        pixel = x[b, y * sh + i, xo * sw + j]
                        for ch in range(c):
                            total[ch] += pixel[ch]
                for ch in range(c):
                    total[ch] /= kh * kw
    return out


@njit(parallel=True, cache=True)
def avgpool_backward(grad_out, x_shape, kh, kw, sh, sw):
    n, h, w, c = x_shape
    out_h, out_w = grad_out.shape[1], grad_out.shape[2]
    dx = np.zeros((n, h, w, c), dtype=grad_out.dtype)
    for b in prange(n):
        for y in range(out_h):
            for xo in range(out_w):
                grad = grad_out[b, y, xo]
                for i in range(kh):
                    for j in range(kw):
                        pixel = dx[b, y * sh + i, xo * sw + j]
                        for ch in range(c):
                            pixel[ch] += grad[ch] / (kh * kw)
    return dx


@njit(parallel=True, cache=True)
def affine_warp(x, matrices):
    n, c, h, w = x.shape
    out = np.empty_like(x)
    for b in prange(n):
        m00, m01, m02 = matrices[b, 0, 0], matrices[b, 0, 1], matrices[b, 0, 2]
        m10, m11, m12 = matrices[b, 1, 0], matrices[b, 1, 1], matrices[b, 1, 2]
        for ch in range(c):
            image, target = x[b, ch], out[b, ch]
            for row in range(h):
                for col in range(w):
                    src_r = m00 * row + m01 * col + m02
                    src_c = m10 * row + m11 * col + m12
                    top, left = int(np.floor(src_r)), int(np.floor(src_c))
                    fr, fc = src_r - top, src_c - left
                    # Summed into the output pixel in the reference's neighbour order, each
                    # term rounded to x's dtype as it lands: the same value to the last bit.
                    target[row, col] = 0
                    if 0 <= top and top + 1 < h and 0 <= left and left + 1 < w:
                        # All four neighbours inside (most pixels): no bounds tests (0.84 ms
                        # a batch of 128 MNIST digits against 1.22 ms with them).
                        target[row, col] += (1 - fr) * (1 - fc) * image[top, left]
                        target[row, col] += (1 - fr) * fc * image[top, left + 1]
                        target[row, col] += fr * (1 - fc) * image[top + 1, left]
                        target[row, col] += fr * fc * image[top + 1, left + 1]
                        continue
                    for dr in range(2):
                        r = top + dr
                        if r < 0 or r >= h:
                            continue
                        weight_r = fr if dr else 1 - fr
                        for dc in range(2):
                            q = left + dc
                            if 0 <= q < w:
                                target[row, col] += weight_r * (fc if dc else 1 - fc) * image[r, q]
    return out


# error_model="numpy": no Python zero-division checks, so the loop vectorises (5x faster
# than NumPy's ten passes over the arrays: 0.15 ms against 0.8 ms for the small CNN's weights).
@njit(cache=True, error_model="numpy")
def adam_update(param, grad, m, v, step_size, beta1, one_minus_beta1, beta2, one_minus_beta2, eps, root_bias2,
                l2, decay):
    # One pass over flat (1-D) arrays of one size (the chooser checks it); the scalars arrive
    # cast to the parameter's dtype. The rule is tinynet.optim.adam_update's.
    for i in range(param.size):
        g = grad[i] + l2 * param[i]
        m_i = beta1 * m[i] + one_minus_beta1 * g
        v_i = beta2 * v[i] + one_minus_beta2 * g * g
        m[i] = m_i
        v[i] = v_i
        param[i] = decay * param[i] - step_size * m_i / (np.sqrt(v_i) / root_bias2 + eps)


# The same step in `parts` ranges of the weights, one a thread: inside the engine's hold the
# tiled products' threads are free between products (a training step's Adam took 65-145 us of
# the basic MLP's 590-650 on one thread). Each range is the loop above, so the weights are the
# same bits whichever the count.
@njit(parallel=True, cache=True, error_model="numpy")
def adam_update_in_parts(param, grad, m, v, step_size, beta1, one_minus_beta1, beta2, one_minus_beta2, eps,
                         root_bias2, l2, decay, parts):
    n = param.size
    for part in prange(parts):
        # 16-value boundaries: every range but the last a whole number of vectors
        start, stop = (n * part // parts) // 16 * 16, (n * (part + 1) // parts) // 16 * 16
        if part == parts - 1:
            stop = n
        adam_update(param[start:stop], grad[start:stop], m[start:stop], v[start:stop], step_size, beta1,
                    one_minus_beta1, beta2, one_minus_beta2, eps, root_bias2, l2, decay)


# The two BatchNorm passes over an (M, C) array of rows, one feature a column: column sums
# in float64 (M is up to 128 * 13 * 13 = 21,632 rows), then one pass that writes. NumPy
# needs eight passes and four temporaries for the same (2.2 ms against 0.4 ms for the CNN's
# first BatchNorm). The formulas are batchnorm_forward_reference's and backward's.
@njit(cache=True, error_model="numpy")
def batchnorm_forward(rows, gamma, beta, eps):
    m, c = rows.shape
    total = np.zeros(c)
    for i in range(m):
        for j in range(c):
            total[j] += rows[i, j]
    mean64 = total / m
    squares = np.zeros(c)
    for i in range(m):
        for j in range(c):
            d = rows[i, j] - mean64[j]
            squares[j] += d * d
    var64 = squares / m
    mean = mean64.astype(rows.dtype)
    var = var64.astype(rows.dtype)
    inv_std = (1.0 / np.sqrt(var64 + eps)).astype(rows.dtype)
    y = np.empty_like(rows)
    x_hat = np.empty_like(rows)
    for i in range(m):
        for j in range(c):
            h = (rows[i, j] - mean[j]) * inv_std[j]
            x_hat[i, j] = h
            y[i, j] = h * gamma[j] + beta[j]
    return y, x_hat, mean, var, inv_std


@njit(cache=True, error_model="numpy")
def batchnorm_backward(grad, x_hat, gamma, inv_std):
    m, c = grad.shape
    sum_g = np.zeros(c)
    sum_gx = np.zeros(c)
    for i in range(m):
        for j in range(c):
            g = grad[i, j]
            sum_g[j] += g
            sum_gx[j] += g * x_hat[i, j]
    grad_beta = sum_g.astype(grad.dtype)
    grad_gamma = sum_gx.astype(grad.dtype)
    scale = (gamma * inv_std / m).astype(grad.dtype)
    count = np.full(1, m, grad.dtype)[0]  # M in the gradient's dtype: float32 stays float32
    dx = np.empty_like(grad)
    for i in range(m):
        for j in range(c):
            dx[i, j] = scale[j] * (count * grad[i, j] - grad_beta[j] - x_hat[i, j] * grad_gamma[j])
    return dx, grad_gamma, grad_beta


# The LSTM's cell, one pass over a step's (N, 4H) pre-activations instead of some twenty NumPy
# passes, for float32 (float64, the gradient checks' dtype, runs the NumPy twin). numba has no
# vectorised exp or tanh here (no SVML): a scalar expf costs ~5 ns and tanhf ~20 ns, more than
# NumPy's SIMD passes. So the cell takes exp from Cephes' expf polynomial (within 2 float32 ulp
# of the library's), plain arithmetic that LLVM vectorises, a row at a time: short loops over
# few arrays (LLVM gives up on a loop whose stores might alias too many of its loads), and
# error_model="numpy" (a division that cannot raise keeps a loop vectorised), and "contract" (a multiply
# and the add after it are one fused instruction: the polynomials' chains are half as long, a
# (64, 512) step's cell about a fifth faster). nogil: the engine runs
# the parts of a batch on threads side by side (tinynet.engine.parallel). The formulas are
# lstm_cell_into_reference's and lstm_cell_backward_into_reference's (the layer's cell and its backward).
_ONE = np.float32(1.0)  # a Python 1 would make the float32 arithmetic float64


@njit(inline="always")
def _exp(a, sign, out, exponent_bits):
    """``out[k] = exp(sign * a[k])``, the argument clamped to [-87, 88]: Cephes expf, ``exp(r) 2**n`` with
    ``|r| <= ln(2)/2``, ``2**n`` made from its float32 bits (in ``exponent_bits``, as long as ``a``)."""
    for k in range(a.size):
        # Below -87, exp < 2**-125 is clamped instead of denormal; above 88 it would overflow float32.
        x = min(max(sign * a[k], np.float32(-87.0)), np.float32(88.0))
        n = np.floor(x * np.float32(1.44269504088896341) + np.float32(0.5))  # x / ln 2, rounded
        r = x - n * np.float32(0.693359375) - n * np.float32(-2.12194440e-4)  # x - n ln 2, ln 2 in two parts
        p = np.float32(1.9875691500e-4)
        p = p * r + np.float32(1.3981999507e-3)
        p = p * r + np.float32(8.3334519073e-3)
        p = p * r + np.float32(4.1665795894e-2)
        p = p * r + np.float32(1.6666665459e-1)
        p = p * r + np.float32(5.0000001201e-1)
        out[k] = p * r * r + r + _ONE
        exponent_bits[k] = (np.int32(n) + np.int32(127)) << np.int32(23)
    powers = exponent_bits.view(np.float32)
    for k in range(a.size):
        out[k] *= powers[k]


@njit(inline="always")
def _tanh(a, e):
    """``tanh(a)`` given ``e = exp(-2|a|)``, as Cephes tanhf: an odd polynomial below ``|a| = 0.625``
    (where ``1 - e`` would cancel), else ``(1 - e) / (1 + e)`` with ``a``'s sign."""
    s = a * a
    small = ((((np.float32(-5.70498872745e-3) * s + np.float32(2.06390887954e-2)) * s
               - np.float32(5.37397155531e-2)) * s + np.float32(1.33314422036e-1)) * s
             - np.float32(3.33332819422e-1)) * s * a + a
    large = np.copysign((_ONE - e) / (_ONE + e), a)
    return small if abs(a) < np.float32(0.625) else large


@njit(inline="always")
def _tanh_row(a, out, scratch, exponent_bits):
    """``out = tanh(a)`` for a row ``a``; ``scratch`` and ``exponent_bits`` at least as long as ``a``."""
    m = a.size
    for k in range(m):
        scratch[k] = abs(a[k])
    _exp(scratch[:m], np.float32(-2.0), out, exponent_bits[:m])
    for k in range(a.size):
        out[k] = _tanh(a[k], out[k])


@njit(inline="always", fastmath={"contract"})
def _lstm_cell_row(z_row, c_prev_row, gates_row, c_row, h_row, scratch, exponent_bits):
    """One sample's step: ``gates_row`` ``(4H,)``, ``c_row`` and ``h_row`` ``(H,)`` from ``z_row``, ``c_prev_row``."""
    hidden = c_row.size
    # σ(z) = 1 / (1 + exp(-z)) for i and f (columns [0, 2H)) and o ([3H, 4H)): no branch on z's sign,
    # so the loops vectorise; exp's clamp keeps 1 + exp(-z) finite. g = tanh(z) in [2H, 3H).
    for start, stop in ((0, 2 * hidden), (3 * hidden, 4 * hidden)):
        block = gates_row[start:stop]
        _exp(z_row[start:stop], np.float32(-1.0), block, exponent_bits[:stop - start])
        for k in range(stop - start):
            block[k] = _ONE / (_ONE + block[k])
    _tanh_row(z_row[2 * hidden:3 * hidden], gates_row[2 * hidden:3 * hidden], scratch, exponent_bits)
    for j in range(hidden):  # c_t = f c_{t-1} + i g
        c_row[j] = gates_row[hidden + j] * c_prev_row[j] + gates_row[j] * gates_row[2 * hidden + j]
    _tanh_row(c_row, h_row, scratch, exponent_bits)
    for j in range(hidden):  # h_t = o tanh(c_t)
        h_row[j] *= gates_row[3 * hidden + j]


# A step of the engine's loop over time (tinynet.engine.recurrent) writes into the arrays that
# keep every step's values (gates[t-1], c[t], h[t]) instead of returning new ones the loop then
# copies, and takes the input's share here instead of in a NumPy pass of its own: the forward's
# loop of lstm_rows' 64-row part a thread in 15-19% less time. z, h_{t-1} W_h, is overwritten with z_t.
@njit(cache=True, error_model="numpy", nogil=True, fastmath={"contract"})
def lstm_cell_into(z, x_share, c_prev, gates, c, h):
    n, hidden = c_prev.shape
    scratch = np.empty(2 * hidden, z.dtype)
    exponent_bits = np.empty(2 * hidden, np.int32)
    for row in range(n):
        z_row, share_row = z[row], x_share[row]
        for j in range(z_row.size):  # z_t = h_{t-1} W_h + (x_t W_x + b)
            z_row[j] += share_row[j]
        _lstm_cell_row(z_row, c_prev[row], gates[row], c[row], h[row], scratch, exponent_bits)


# The whole loop over time for a few samples (one image a call, as a server predicts): a step's
# product h_{t-1} W_h of one row is too small for a BLAS call to pay (about 10 us of call and
# setup each, against 1-3 us for the multiply-adds here, W_h read from cache), so the product
# and the cell run in one compiled loop: one image's 28 steps of lstm_rows in 0.17-0.21 ms
# against 0.44 ms. From 8 rows on the BLAS's products are as fast. The formulas are
# lstm_loop_reference's (the layer's loop with its cell).
@njit(cache=True, error_model="numpy", nogil=True, fastmath={"contract"})
def lstm_loop(x_part, W_h):
    steps, n, four = x_part.shape
    hidden = W_h.shape[0]
    h = np.zeros((steps + 1, n, hidden), x_part.dtype)
    c = np.zeros((steps + 1, n, hidden), x_part.dtype)
    gates = np.empty_like(x_part)
    z = np.empty(four, x_part.dtype)
    scratch = np.empty(2 * hidden, x_part.dtype)
    exponent_bits = np.empty(2 * hidden, np.int32)
    for t in range(1, steps + 1):
        for row in range(n):
            z[:] = x_part[t - 1, row]  # z_t = x_t W_x + b + h_{t-1} W_h
            h_prev = h[t - 1, row]
            for k in range(hidden):
                weight, row_k = h_prev[k], W_h[k]
                for j in range(four):
                    z[j] += weight * row_k[j]
            _lstm_cell_row(z, c[t - 1, row], gates[t - 1, row], c[t, row], h[t, row], scratch, exponent_bits)
    return h, c, gates


# The backward's step likewise: dL/dh_t (both paths) written into grad_h, dz_t into grad_z,
# and dL/dc_{t-1} over dL/dc_t in grad_c (a row's dL/dc_t is read before its dL/dc_{t-1} is written).
@njit(cache=True, error_model="numpy", nogil=True, fastmath={"contract"})
def lstm_cell_backward_into(grad_state, grad_h_next, grad_c, gates, c_prev, c, grad_z, grad_h):
    n, hidden = c.shape
    tanh_c = np.empty(hidden, c.dtype)
    grad_c_row = np.empty(hidden, c.dtype)  # dL/dc_t of the row
    scratch = np.empty(hidden, c.dtype)
    exponent_bits = np.empty(hidden, np.int32)
    for row in range(n):
        gates_row, grad_z_row, grad_h_row = gates[row], grad_z[row], grad_h[row]
        for j in range(hidden):  # dL/dh_t: from the output at t and through step t+1
            grad_h_row[j] = grad_state[row, j] + grad_h_next[row, j]
        _tanh_row(c[row], tanh_c, scratch, exponent_bits)
        for j in range(hidden):  # dc = dc_next + dh o (1 - tanh(c)²)
            o = gates_row[3 * hidden + j]
            grad_c_row[j] = grad_c[row, j] + grad_h_row[j] * o * (_ONE - tanh_c[j] * tanh_c[j])
        for j in range(hidden):
            i, g = gates_row[j], gates_row[2 * hidden + j]
            grad_z_row[j] = grad_c_row[j] * g * i * (_ONE - i)
            grad_z_row[2 * hidden + j] = grad_c_row[j] * i * (_ONE - g * g)
        for j in range(hidden):
            f = gates_row[hidden + j]
            grad_z_row[hidden + j] = grad_c_row[j] * c_prev[row, j] * f * (_ONE - f)
            grad_c[row, j] = grad_c_row[j] * f  # dL/dc_{t-1}
        for j in range(hidden):
            o = gates_row[3 * hidden + j]
            grad_z_row[3 * hidden + j] = grad_h_row[j] * tanh_c[j] * o * (_ONE - o)


# LayerNorm over (R, F) rows, F small (the ViT's 64): a row's mean, variance and normalised
# values in one visit while the row is in L1, instead of NumPy's eight passes over all rows and
# their (R, 1) temporaries. The row sums are float64, dgamma and dbeta's column sums too. The
# sums may be reassociated ("reassoc"): summed in order, each addition waits for the one before
# (64 of them a row), while in any order LLVM keeps several partial sums in vector registers
# (a ViT batch's 2,048 rows: forward 0.10 ms instead of 0.32, backward 0.10 instead of 0.21).
# nogil: a vision transformer's training plan runs on parts of the batch side by side
# (tinynet.engine.split), as attention's softmax and GELU below. The formulas are
# layernorm_forward_reference's and layernorm_backward_reference's.
@njit(cache=True, error_model="numpy", nogil=True, fastmath={"reassoc"})
def layernorm_forward(rows, gamma, beta, eps):
    r, f = rows.shape
    y = np.empty_like(rows)
    x_hat = np.empty_like(rows)
    inv_std = np.empty((r, 1), rows.dtype)
    for i in range(r):
        total = 0.0
        for j in range(f):
            total += rows[i, j]
        mean = rows.dtype.type(total / f)
        squares = 0.0
        for j in range(f):
            d = rows[i, j] - mean
            squares += d * d
        scale = rows.dtype.type(1.0 / np.sqrt(rows.dtype.type(squares / f) + eps))
        inv_std[i, 0] = scale
        for j in range(f):
            h = (rows[i, j] - mean) * scale
            x_hat[i, j] = h
            y[i, j] = h * gamma[j] + beta[j]
    return y, x_hat, inv_std


@njit(cache=True, error_model="numpy", nogil=True, fastmath={"reassoc"})
def layernorm_backward(grad, x_hat, gamma, inv_std):
    r, f = grad.shape
    sum_g = np.zeros(f)
    sum_gx = np.zeros(f)
    dx = np.empty_like(grad)
    count = grad.dtype.type(f)
    for i in range(r):
        sum_h = 0.0
        sum_hx = 0.0
        for j in range(f):
            g = grad[i, j]
            sum_g[j] += g
            sum_gx[j] += g * x_hat[i, j]
            h = g * gamma[j]
            sum_h += h
            sum_hx += h * x_hat[i, j]
        through_mean, through_var = grad.dtype.type(sum_h), grad.dtype.type(sum_hx)
        scale = inv_std[i, 0] / count
        for j in range(f):
            dx[i, j] = scale * (count * grad[i, j] * gamma[j] - through_mean - x_hat[i, j] * through_var)
    return dx, sum_gx.astype(grad.dtype), sum_g.astype(grad.dtype)


# Attention's softmax over (N, h, T, T) scores: rows of T (16 in the ViT) are too short for
# NumPy, which takes a pass over all of them per operation (0.9 ms for a ViT batch's 8,192
# rows) and reduces short rows one at a time. Here each head's T x T block is visited while
# it sits in L1: every row's maximum, the shifted scores, one exp over the block (Cephes'
# float32 polynomial, _exp, as the LSTM's cells, its multiply-adds fused), every row's maximum and
# sum reassociated so they vectorise. The formulas are
# attention_weights_reference's and attention_weights_backward_reference's.
@njit(cache=True, error_model="numpy", nogil=True, fastmath={"contract", "reassoc"})
def attention_weights(scores, causal):
    t = scores.shape[-1]
    attention = np.empty_like(scores)
    blocks = scores.reshape(-1, t * t)
    out = attention.reshape(-1, t * t)
    exponent_bits = np.empty(t * t, np.int32)
    for b in range(blocks.shape[0]):
        block, weights = blocks[b], out[b]
        for i in range(t):
            seen = i + 1 if causal else t  # causal: row i sees positions 0 .. i
            row = block[i * t:(i + 1) * t]
            best = row[0]
            for s in range(1, seen):
                best = max(best, row[s])
            shifted = weights[i * t:(i + 1) * t]
            for s in range(t):
                shifted[s] = row[s] - best  # <= 0 where seen; the rest is zeroed below
        _exp(weights, _ONE, weights, exponent_bits)
        for i in range(t):
            seen = i + 1 if causal else t
            row = weights[i * t:(i + 1) * t]
            total = np.float32(0.0)
            for s in range(seen):
                total += row[s]
            for s in range(seen):
                row[s] /= total
            for s in range(seen, t):
                row[s] = 0
    return attention


@njit(cache=True, error_model="numpy", nogil=True, fastmath={"reassoc"})
def attention_weights_backward(attention, grad_attention):
    t = attention.shape[-1]
    rows = attention.reshape(-1, t)
    grad_rows = grad_attention.reshape(-1, t)
    grad_scores = np.empty_like(attention)
    out = grad_scores.reshape(-1, t)
    for r in range(rows.shape[0]):
        weighted = np.float32(0.0)  # Σ_s dA A along the row
        for s in range(t):
            weighted += grad_rows[r, s] * rows[r, s]
        for s in range(t):
            out[r, s] = rows[r, s] * (grad_rows[r, s] - weighted)
    return grad_scores


# GELU (exact form) over a flat array of float32 values, y = x Phi(x) and its slope dy/dx = Phi(x) + x phi(x) in one
# pass, a block at a time: NumPy makes five passes for y and five more for the slope in backward
# (a ViT batch's 262,144 values: 0.6 ms forward, 0.8 ms backward). Phi from erf's float32
# polynomials (tinynet.special), phi = exp(-x^2 / 2) / sqrt(2 pi) from _exp. Keeping the slope
# instead of Phi leaves the backward one product, dX = dY * slope. The formulas are
# gelu_forward_reference's: the layer's gelu and gelu_backward.
_GELU_BLOCK = 512


@njit(inline="always", fastmath={"contract"})
def _normal_cdf(v):
    return np.float32(0.5) + np.float32(0.5) * erf_float32_value(v * np.float32(0.7071067811865476))  # Phi(v)


@njit(cache=True, error_model="numpy", nogil=True, fastmath={"contract"})
def gelu_forward(flat, with_slope):
    y = np.empty_like(flat)
    if not with_slope:
        for k in range(flat.size):
            y[k] = flat[k] * _normal_cdf(flat[k])
        return y, np.empty(0, np.float32)
    slope = np.empty_like(flat)
    density = np.empty(_GELU_BLOCK, np.float32)
    exponent_bits = np.empty(_GELU_BLOCK, np.int32)
    for start in range(0, flat.size, _GELU_BLOCK):
        stop = min(start + _GELU_BLOCK, flat.size)
        block, out, part = flat[start:stop], y[start:stop], slope[start:stop]
        m = stop - start
        for k in range(m):  # short loops, one store each: LLVM vectorises them
            part[k] = _normal_cdf(block[k])
        for k in range(m):
            out[k] = block[k] * part[k]
        for k in range(m):
            density[k] = np.float32(0.5) * block[k] * block[k]
        _exp(density[:m], np.float32(-1.0), density[:m], exponent_bits[:m])  # exp(-v^2 / 2)
        for k in range(m):
            part[k] += block[k] * density[k] * np.float32(0.3989422804014327)  # Phi + v phi, 1/sqrt(2 pi)
    return y, slope


@njit(cache=True, nogil=True, error_model="numpy")
def softmax_cross_entropy(logits, labels):
    # A training batch's loss (N, classes) in one pass a row: the maximum, the exponentials and
    # their two sums, the loss, the probabilities. NumPy's fifteen small passes over a (128, 10)
    # batch took 40 us, 5% of the basic MLP's training step. The formula is the twin's
    # (layers.softmax.softmax_cross_entropy without label smoothing): exp(x - max) summed over
    # the wrong classes apart, -log p[t] as log1p(others / exp[t]) unless the label is far off.
    n, c = logits.shape
    losses = np.empty(n, logits.dtype)
    probs = np.empty_like(logits)
    wrong = np.empty(n, logits.dtype)
    for i in range(n):
        best = logits[i, 0]
        for j in range(1, c):
            best = max(best, logits[i, j])
        label = labels[i]
        total = logits.dtype.type(0.0)
        others = logits.dtype.type(0.0)
        for j in range(c):
            e = np.exp(logits[i, j] - best)
            probs[i, j] = e
            total += e
            if j != label:
                others += e
        shifted_true = logits[i, label] - best
        if shifted_true > -30:
            losses[i] = np.log1p(others / probs[i, label])
        else:
            losses[i] = np.log(total) - shifted_true
        for j in range(c):
            probs[i, j] /= total
        wrong[i] = others / total
    return losses, probs, wrong


@njit(cache=True, nogil=True)
def softmax_rows(x):
    # The classes' probabilities of a batch of float32 scores (N, classes): a prediction's last
    # pass. NumPy's seven passes over a (128, 10) batch took 26 us, more than a fifth of a
    # basic_mlp prediction; here one pass finds each row's maximum, one exponentiates the
    # whole batch as one vector loop (Cephes expf, as the attention weights'), one normalises.
    n, c = x.shape
    out = np.empty_like(x)
    flat = out.reshape(-1)
    exponent_bits = np.empty(n * c, np.int32)
    undefined = np.zeros(n, np.bool_)
    for i in range(n):
        best = x[i, 0]
        for j in range(c):
            value = x[i, j]
            undefined[i] |= value != value  # a NaN anywhere
            best = max(best, value)
        undefined[i] |= not np.isfinite(best)  # inf - inf: the formula's NaN
        for j in range(c):
            out[i, j] = x[i, j] - best
    _exp(flat, _ONE, flat, exponent_bits)
    for i in range(n):
        if undefined[i]:
            out[i, :] = np.nan
            continue
        total = np.float32(0.0)
        for j in range(c):
            total += out[i, j]
        for j in range(c):
            out[i, j] /= total
    return out


@njit(fastmath={"reassoc"}, cache=True, nogil=True)
def all_finite(values):
    # Whether no value of a flat float array is NaN or inf. value - value is 0 for a finite value and
    # NaN for NaN or inf, so the sum is 0 exactly when every value is finite (and it keeps the values'
    # type: no constant to convert). Reassociating the sum (the only fast-math flag) lets LLVM add in
    # vector lanes; as every term is 0 or NaN, the order changes nothing. The flags "nnan" or "nsz"
    # (or "fast") would let LLVM fold x - x to 0: never add them here. One read of the batch, no
    # temporary array: 1.8 us for 128 MNIST images where np.isfinite(x).all() took 7.
    if len(values) == 0:
        return True
    total = values[0] - values[0]
    for i in range(1, len(values)):
        total += values[i] - values[i]
    return total == 0
