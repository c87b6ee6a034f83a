"""The numba kernels equal their readable reference twins on every drawn shape."""

import numpy as np
import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

import tinynet
from tests.strategies import conv_geometry, pool_geometry
from tests.test_gemm import needs_tiles
from tinynet import kernels
from tinynet.kernels import reference

jitted = kernels._load_jitted()  # None without numba, or with NUMBA_DISABLE_JIT=1
needs_numba = pytest.mark.skipif(jitted is None, reason="numba is not installed or its JIT is off "
                                 "(NUMBA_DISABLE_JIT=1): no compiled kernel to compare with its twin")


def _with_compiled(pairs):
    """``pairs`` of (compiled, twin) functions by name: the compiled ones only when numba is there, then the twins."""
    compiled = [] if jitted is None else [tuple(getattr(jitted, name) for name in names) for names, _ in pairs]
    return compiled + [twin for _, twin in pairs]

DTYPES = st.sampled_from([np.float32, np.float64])
seeds = st.integers(0, 2**16)


def _random(shape, dtype, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _channels_last(shape):
    """The NHWC shape of a drawn NCHW shape ``(N, C, H, W)``: the kernels take channels last."""
    n, c, h, w = shape
    return n, h, w, c


@needs_numba
@given(conv_geometry(), DTYPES, seeds)
def test_im2col_matches_reference(geometry, dtype, seed):
    """im2col (numba) returns exactly the reference rows, in the input's dtype."""
    x_shape, window = geometry
    x = _random(_channels_last(x_shape), dtype, seed)
    fast = jitted.im2col(x, *window)
    assert fast.dtype == dtype
    np.testing.assert_array_equal(fast, reference.im2col_reference(x, *window))


@needs_numba
@given(conv_geometry(), DTYPES, seeds)
def test_im2col_transposed_matches_reference_and_im2col(geometry, dtype, seed):
    """The transposed unfolding (numba) equals its twin, and is im2col's rows as columns."""
    x_shape, window = geometry
    x = _random(_channels_last(x_shape), dtype, seed)
    fast = jitted.im2col_transposed(x, *window)
    np.testing.assert_array_equal(fast, reference.im2col_transposed_reference(x, *window))
    cols = reference.im2col_reference(x, *window)
    np.testing.assert_array_equal(fast, cols.reshape(-1, cols.shape[2]).T)


@needs_numba
@given(conv_geometry(), DTYPES, seeds)
def test_im2col_filter_order_matches_reference_and_im2col(geometry, dtype, seed):
    """The unfolding in the filters' order (numba) equals its twin, and is im2col's rows with each window's
    values reordered from (i, j, c) to (c, i, j)."""
    x_shape, window = geometry
    x = _random(_channels_last(x_shape), dtype, seed)
    fast = jitted.im2col_filter_order(x, *window)
    assert fast.dtype == dtype
    np.testing.assert_array_equal(fast, reference.im2col_filter_order_reference(x, *window))
    cols = reference.im2col_reference(x, *window)
    kh, kw = window[:2]
    reordered = cols.reshape(*cols.shape[:2], kh, kw, x.shape[3]).transpose(0, 1, 4, 2, 3).reshape(cols.shape)
    np.testing.assert_array_equal(fast, reordered)


@needs_numba
@given(conv_geometry(), DTYPES, seeds)
def test_col2im_matches_reference(geometry, dtype, seed):
    """col2im (numba) sums overlapping windows in the same order as the reference."""
    x_shape, window = geometry
    x_shape = _channels_last(x_shape)
    cols_shape = reference.im2col_reference(np.zeros(x_shape, dtype), *window).shape
    cols = _random(cols_shape, dtype, seed)
    fast = jitted.col2im(cols, x_shape, *window)
    assert fast.dtype == dtype
    np.testing.assert_array_equal(fast, reference.col2im_reference(cols, x_shape, *window))


@given(conv_geometry(), seeds)
def test_col2im_is_the_adjoint_of_im2col(geometry, seed):
    """<im2col(x), c> == <x, col2im(c)> for both kernel sets."""
    x_shape, window = geometry
    x_shape = _channels_last(x_shape)
    x = _random(x_shape, np.float64, seed)
    for im2col, col2im in _with_compiled([(("im2col", "col2im"),
                                           (reference.im2col_reference, reference.col2im_reference))]):
        cols = im2col(x, *window)
        c = _random(cols.shape, np.float64, seed + 1)
        np.testing.assert_allclose(np.vdot(cols, c), np.vdot(x, col2im(c, x_shape, *window)), rtol=1e-10)


@needs_numba
@given(pool_geometry(), DTYPES, seeds, st.booleans(), st.booleans())
def test_maxpool_matches_reference(geometry, dtype, seed, relu, with_bias):
    """Max-pool forward values, arg-max offsets and backward scatter agree exactly (fused ReLU and bias too)."""
    x_shape, window = geometry
    x_shape = _channels_last(x_shape)
    # Few distinct values (as after a ReLU, which leaves many zeros) make ties common.
    x = np.random.default_rng(seed).integers(-2, 3, x_shape).astype(dtype)
    bias = np.random.default_rng(seed).integers(-1, 2, x_shape[3]).astype(dtype) if with_bias else None
    out, argmax = jitted.maxpool_forward(x, *window, relu, np.zeros(x_shape[3], dtype) if bias is None else bias)
    ref_out, ref_argmax = reference.maxpool_forward_reference(x, *window, relu, bias)
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_array_equal(argmax, ref_argmax)
    grad = _random(out.shape, dtype, seed + 1)
    np.testing.assert_array_equal(
        jitted.maxpool_backward(grad, argmax, x_shape, *window),
        reference.maxpool_backward_reference(grad, argmax, x_shape, *window),
    )


@needs_numba
@given(pool_geometry(), DTYPES, seeds, st.booleans(), st.booleans())
def test_maxpool_infer_matches_reference(geometry, dtype, seed, relu, with_affine):
    """The inference pooling (no argmax, the BatchNorm after it as scale and shift) agrees with its twin exactly."""
    x_shape, window = geometry
    x_shape = _channels_last(x_shape)
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, x_shape).astype(dtype)
    bias = rng.integers(-1, 2, x_shape[3]).astype(dtype)
    scale, shift = (rng.integers(-2, 3, x_shape[3]).astype(dtype), rng.integers(-1, 2, x_shape[3]).astype(dtype)
                    ) if with_affine else (None, None)
    ones, zeros = np.ones(x_shape[3], dtype), np.zeros(x_shape[3], dtype)
    out = jitted.maxpool_infer(x, *window, relu, bias, ones if scale is None else scale,
                               zeros if shift is None else shift)
    np.testing.assert_array_equal(out, reference.maxpool_infer_reference(x, *window, relu, bias, scale, shift))
    trained, _ = reference.maxpool_forward_reference(x, *window, relu, bias)
    if not with_affine:  # the training pooling's values, without its argmax
        np.testing.assert_array_equal(out, trained)


@needs_numba
@given(st.integers(1, 3), st.integers(2, 7), st.integers(2, 7), st.integers(1, 41), DTYPES, seeds, st.booleans())
def test_maxpool_2x2_matches_reference_for_any_channel_count(n, h, w, c, dtype, seed, relu):
    """The 2x2 pooling runs channel counts that are not a multiple of 8 in blocks of 8 with the last block
    done again: values and argmax still equal the twin's exactly, ties (small integers) and ReLU included."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, (n, h, w, c)).astype(dtype)
    bias = rng.integers(-1, 2, c).astype(dtype)
    out, argmax = jitted.maxpool_forward(x, 2, 2, 2, 2, relu, bias)
    expected, expected_argmax = reference.maxpool_forward_reference(x, 2, 2, 2, 2, relu, bias)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(argmax, expected_argmax)


@st.composite
def conv_pool_geometry(draw):
    """``(x_shape NHWC, conv window (kh, kw, sh, sw), pool window)``, with at least one pooled output."""
    kh, kw, sh, sw = (draw(st.integers(1, 3)) for _ in range(4))
    pool = tuple(draw(st.integers(1, 3)) for _ in range(4))
    conv_h, conv_w = draw(st.integers(pool[0], 7)), draw(st.integers(pool[1], 7))
    x_shape = (draw(st.integers(1, 3)), (conv_h - 1) * sh + kh + draw(st.integers(0, sh - 1)),
               (conv_w - 1) * sw + kw + draw(st.integers(0, sw - 1)), draw(st.integers(1, 3)))
    return x_shape, (kh, kw, sh, sw), pool


@needs_numba
@given(conv_pool_geometry(), DTYPES, seeds, st.booleans(), st.booleans())
def test_conv_maxpool_infer_matches_reference(geometry, dtype, seed, relu, with_affine):
    """The convolution computed inside its pooling windows equals columns, product and pooling exactly (small
    integer values make every sum exact, whatever its order), ties and fused ReLU included."""
    x_shape, conv, pool = geometry
    rng = np.random.default_rng(seed)
    filters = int(rng.integers(1, 20))
    x = rng.integers(-2, 3, x_shape).astype(dtype)
    taps = rng.integers(-2, 3, (conv[0] * conv[1] * x_shape[3], filters)).astype(dtype)
    bias = rng.integers(-1, 2, filters).astype(dtype)
    scale, shift = (rng.integers(-2, 3, filters).astype(dtype), rng.integers(-1, 2, filters).astype(dtype)
                    ) if with_affine else (None, None)
    out = kernels.conv_maxpool_infer(x, taps, *conv, *pool, relu, bias, scale, shift)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, reference.conv_maxpool_infer_reference(x, taps, *conv, *pool, relu, bias,
                                                                              scale, shift))


@needs_numba
@given(st.integers(1, 3), st.integers(3, 12), st.integers(3, 12), st.integers(1, 40),
       st.tuples(*(st.integers(1, 3) for _ in range(4))), DTYPES, seeds)
def test_conv_maxpool_infer_3x3_one_channel_matches_reference(n, h, w, filters, pool, dtype, seed):
    """The loops of their own for a 3x3, stride-1 convolution of one channel (the MNIST first layer), and for it
    with 2x2 pooling, equal columns, product and pooling exactly, for any number of filters (vector body and
    remainder)."""
    assume(h - 2 >= pool[0] and w - 2 >= pool[1])
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, (n, h, w, 1)).astype(dtype)
    taps = rng.integers(-2, 3, (9, filters)).astype(dtype)
    bias = rng.integers(-1, 2, filters).astype(dtype)
    for window in (pool, (2, 2, 2, 2)):  # any pooling, and the 2x2 one with a loop of its own
        out = kernels.conv_maxpool_infer(x, taps, 3, 3, 1, 1, *window, True, bias)
        np.testing.assert_array_equal(out, reference.conv_maxpool_infer_reference(x, taps, 3, 3, 1, 1, *window,
                                                                                  True, bias))


@needs_numba
@given(st.integers(16, 20), st.integers(4, 12), st.integers(4, 12), st.sampled_from([(3, 3, 1), (2, 2, 3)]),
       st.sampled_from([32, 64]), st.booleans(), st.booleans(), seeds)
def test_conv_maxpool_infer_of_a_batch_in_the_hold_matches_reference(n, h, w, window, filters, relu, with_affine,
                                                                     seed):
    """A batch of 16 images or more in the engine's hold, its 2x2 pooling in the pooled tiles where the CPU has
    them: columns, product and pooling exactly (small integers), a NaN pixel passed on to the outputs that read it."""
    kh, kw, channels = window
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, (n, h, w, channels)).astype(np.float32)
    x[n - 1, h // 2, w // 2, 0] = np.nan
    taps = rng.integers(-2, 3, (kh * kw * channels, filters)).astype(np.float32)
    bias = rng.integers(-1, 2, filters).astype(np.float32)
    scale, shift = (rng.integers(-2, 3, filters).astype(np.float32), rng.integers(-1, 2, filters).astype(np.float32)
                    ) if with_affine else (None, None)
    tiled = []  # the pooled tiles' calls, where the hold has them run
    route = kernels.convolution_maxpool
    kernels.convolution_maxpool = lambda *args: tiled.append(len(args[0])) or route(*args)
    try:
        with kernels.engine_threads(n):
            out = kernels.conv_maxpool_infer(x, taps, kh, kw, 1, 1, 2, 2, 2, 2, relu, bias, scale, shift)
            expect_tiles = kernels.TILED_PRODUCTS and kernels.blas.product_threads() > 1
    finally:
        kernels.convolution_maxpool = route
    assert sum(tiled) == (n if expect_tiles else 0)  # the whole batch through the tiles' route, or none of it
    np.testing.assert_array_equal(out, reference.conv_maxpool_infer_reference(x, taps, kh, kw, 1, 1, 2, 2, 2, 2, relu,
                                                                              bias, scale, shift))


@needs_numba
@given(st.integers(1, 3), st.integers(4, 13), st.integers(4, 13), st.integers(1, 40), DTYPES, seeds)
def test_conv_maxpool_forward_and_weight_grads_match_reference(n, h, w, filters, dtype, seed):
    """The MNIST first layer computed in its pooling windows for training (values, argmax, ReLU's cut-off) and its
    weight gradients straight from the pooled gradient equal columns, product, pooling and their backward exactly
    (small integers make every sum exact), odd sizes, ties and any number of filters included."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, (n, h, w, 1)).astype(dtype)
    taps = rng.integers(-2, 3, (9, filters)).astype(dtype)
    bias = rng.integers(-1, 2, filters).astype(dtype)
    out, argmax = kernels.conv_maxpool_forward(x, taps, bias)
    expected_out, expected_argmax = reference.conv_maxpool_forward_reference(x, taps, bias)
    assert out.dtype == dtype and argmax.dtype == np.int32
    np.testing.assert_array_equal(out, expected_out)
    np.testing.assert_array_equal(argmax, expected_argmax)
    grad = rng.integers(-3, 4, out.shape).astype(dtype)
    for got, expected in zip(kernels.conv_maxpool_weight_grads(x, grad, argmax),
                             reference.conv_maxpool_weight_grads_reference(x, grad, argmax), strict=True):
        np.testing.assert_array_equal(got, expected)


def test_conv_maxpool_infer_passes_nan_on():
    """A NaN pixel makes every pooled output whose windows read it NaN, in both twins (no fast-math shortcut)."""
    x = np.zeros((1, 6, 6, 1), np.float32)
    x[0, 0, 0, 0] = np.nan  # read by the first convolution output only
    taps = np.ones((9, 2), np.float32)
    for (function,) in _with_compiled([(("conv_maxpool_infer",), (reference.conv_maxpool_infer_reference,))]):
        ones, zeros = np.ones(2, np.float32), np.zeros(2, np.float32)
        out = function(x, taps, 3, 3, 1, 1, 2, 2, 2, 2, True, zeros, ones, zeros)
        np.testing.assert_array_equal(np.isnan(out[0, :, :, 0]), [[True, False], [False, False]])


@needs_numba
@given(pool_geometry(), seeds)
def test_maxpool_with_fused_relu_is_relu_after_maxpool(geometry, seed):
    """relu=True gives relu(maxpool(x)), and its backward the gradient of that composition."""
    x_shape, window = geometry
    x = _random(_channels_last(x_shape), np.float64, seed)
    out, argmax = reference.maxpool_forward_reference(x, *window)
    fused, fused_argmax = jitted.maxpool_forward(x, *window, True, np.zeros(x.shape[3]))
    np.testing.assert_array_equal(fused, np.maximum(out, 0))
    grad = _random(out.shape, np.float64, seed + 1)
    expected = reference.maxpool_backward_reference(grad * (out > 0), argmax, x.shape, *window)
    np.testing.assert_array_equal(jitted.maxpool_backward(grad, fused_argmax, x.shape, *window), expected)


def test_maxpool_ties_go_to_the_first_maximum():
    """A window of equal values routes its whole gradient to its first (top-left) input."""
    x = np.ones((1, 2, 2, 1), np.float32)
    for forward, backward in _with_compiled([(("maxpool_forward", "maxpool_backward"),
                                              (reference.maxpool_forward_reference,
                                               reference.maxpool_backward_reference))]):
        _, argmax = forward(x, 2, 2, 2, 2, False, np.zeros(1, np.float32))
        dx = backward(np.full((1, 1, 1, 1), 3.0, np.float32), argmax, x.shape, 2, 2, 2, 2)
        np.testing.assert_array_equal(dx[0, :, :, 0], [[3.0, 0.0], [0.0, 0.0]])


@needs_numba
@pytest.mark.parametrize("window", [(2, 2, 2, 2), (3, 3, 1, 1)], ids=["2x2 stride 2", "3x3 stride 1"])
@pytest.mark.parametrize("values", [[1, np.nan, 0, 2], [np.nan, 5, np.nan, 2], [3, 1, 2, np.nan]])
def test_maxpool_nan_wins_in_the_kernel_and_its_twin(window, values):
    """A NaN in a window is its maximum, at the first NaN's position, as np.argmax and PyTorch have it."""
    x = np.zeros((1, 3, 3, 1), np.float32)
    x[0, :2, :2, 0] = np.reshape(values, (2, 2))
    out, argmax = jitted.maxpool_forward(x, *window, False, np.zeros(1, np.float32))
    ref_out, ref_argmax = reference.maxpool_forward_reference(x, *window, False)
    assert np.isnan(out[0, 0, 0, 0]) and np.isnan(ref_out[0, 0, 0, 0])
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_array_equal(argmax, ref_argmax)
    row, column = divmod(int(np.flatnonzero(np.isnan(values))[0]), 2)  # the first NaN of the 2x2 corner
    assert argmax[0, 0, 0, 0] == row * window[1] + column


@needs_numba
@given(pool_geometry(), DTYPES, seeds)
def test_avgpool_matches_reference(geometry, dtype, seed):
    """Average-pool forward and backward agree up to float rounding of the window sums."""
    x_shape, window = geometry
    x_shape = _channels_last(x_shape)
    x = _random(x_shape, dtype, seed)
    atol = 1e-6 if dtype == np.float32 else 1e-14
    out = jitted.avgpool_forward(x, *window)
    assert out.dtype == dtype
    np.testing.assert_allclose(out, reference.avgpool_forward_reference(x, *window), rtol=1e-5, atol=atol)
    grad = _random(out.shape, dtype, seed + 1)
    np.testing.assert_allclose(
        jitted.avgpool_backward(grad, x_shape, *window),
        reference.avgpool_backward_reference(grad, x_shape, *window), rtol=1e-5, atol=atol,
    )


@needs_numba
def test_chooser_uses_numba_when_available():
    """With numba importable and JIT on, the layers get the jitted kernels."""
    assert kernels.BACKEND == "numba"


@needs_numba
def test_kernel_thread_count_is_settable_and_restored():
    """set_num_threads changes tinynet's kernel threads and leaves numba's own setting alone."""
    import numba

    before, previous = numba.get_num_threads(), kernels.get_num_threads()
    try:
        kernels.set_num_threads(2)
        assert kernels.get_num_threads() == 2
        kernels.im2col(np.zeros((2, 4, 4, 1), np.float32), 3, 3, 1, 1, 0, 0)
        assert numba.get_num_threads() == before
    finally:
        kernels.set_num_threads(previous)
    with pytest.raises(ValueError, match="positive int"):
        kernels.set_num_threads(0)


@needs_numba
def test_the_kernels_set_numbas_thread_count_as_its_public_functions_do():
    """The functions a kernel call sets numba's thread count through (its public pair's own ends) read and set
    the count numba.get_num_threads reports, for the calling thread, and a kernel call leaves it as it was."""
    import numba

    get_threads, set_threads, most = kernels._numba_thread_count()
    before = numba.get_num_threads()
    try:
        for count in range(1, most + 1):
            set_threads(count)
            assert get_threads() == numba.get_num_threads() == count
            kernels.im2col(np.zeros((2, 4, 4, 1), np.float32), 3, 3, 1, 1, 0, 0)  # on tinynet's count, then back
            assert numba.get_num_threads() == count
    finally:
        numba.set_num_threads(before)


@needs_numba
@given(st.integers(1, 300), DTYPES, seeds, st.sampled_from([0.0, 1e-2]), st.sampled_from([1.0, 0.99]),
       st.integers(1, 50))
def test_adam_update_matches_reference(size, dtype, seed, l2, decay, step):
    """The one-pass numba Adam step and optim.adam_update, its readable twin, update param, m and v alike."""
    rng = np.random.default_rng(seed)
    param, grad, m = (rng.standard_normal(size).astype(dtype) for _ in range(3))
    v = rng.random(size).astype(dtype)
    fast = [a.copy() for a in (param, m, v)]
    slow = [a.copy() for a in (param, m, v)]
    settings = dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, step=step, l2=l2, decay=decay)
    kernels.adam_update(fast[0], grad, fast[1], fast[2], **settings)
    tinynet.optim.adam_update(slow[0], grad, slow[1], slow[2], **settings)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    for a, b in zip(fast, slow, strict=True):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * 1e-2)
    assert not np.array_equal(fast[0], param)  # the step moved the parameter


@needs_numba
@given(st.integers(1, 5_000), st.integers(2, 3), DTYPES, seeds)
def test_adam_update_in_parts_gives_the_same_bits(size, parts, dtype, seed):
    """The step cut into ranges of the weights, one a thread, computes each weight as the one-pass loop does."""
    rng = np.random.default_rng(seed)
    param, grad, m = (rng.standard_normal(size).astype(dtype) for _ in range(3))
    v = rng.random(size).astype(dtype)
    whole, cut = [a.copy() for a in (param, m, v)], [a.copy() for a in (param, m, v)]
    scalars = kernels._adam_scalars(np.dtype(dtype), 1e-3, 0.9, 0.999, 1e-8, 3, 1e-2, 0.99)
    jitted.adam_update(whole[0], grad, whole[1], whole[2], *scalars)
    jitted.adam_update_in_parts(cut[0], grad, cut[1], cut[2], *scalars, parts)
    for a, b in zip(whole, cut, strict=True):
        np.testing.assert_array_equal(a, b)


@needs_tiles
def test_adam_update_runs_in_parts_inside_the_engines_hold(monkeypatch):
    """Inside the hold a large parameter's step takes the parts (and a small one the one-pass loop): same weights."""
    calls = []
    monkeypatch.setattr(jitted, "adam_update_in_parts",
                        lambda *args, cut=jitted.adam_update_in_parts: calls.append(args[-1]) or cut(*args))
    rng = np.random.default_rng(0)
    for size in (kernels.MIN_ADAM_PART * 2, 100):
        param, grad = rng.standard_normal(size).astype(np.float32), rng.standard_normal(size).astype(np.float32)
        inside, outside = [[param.copy(), np.zeros_like(param), np.zeros_like(param)] for _ in range(2)]
        settings = dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, step=1)
        with kernels.engine_threads(128):
            kernels.adam_update(inside[0], grad, inside[1], inside[2], **settings)
        kernels.adam_update(outside[0], grad, outside[1], outside[2], **settings)
        for a, b in zip(inside, outside, strict=True):
            np.testing.assert_array_equal(a, b)
    assert calls == [tinynet.kernels.blas.product_threads()]  # the large one only, on the hold's threads


@needs_tiles
def test_fit_runs_adam_in_parts_beside_tiled_products_only(monkeypatch):
    """Training a feed-forward model, Adam's step takes the tiled products' threads (where the tiles win on every
    product); training an LSTM, whose batch runs in parts on threads of its own, it stays on one (those threads
    would spin on beside the parts')."""
    if tinynet.kernels.blas.threads() < 2:
        pytest.skip("the BLAS has one thread here: the tiled products, and Adam's step, run on one")
    calls = []
    monkeypatch.setattr(jitted, "adam_update_in_parts",
                        lambda *args, cut=jitted.adam_update_in_parts: calls.append(args[-1]) or cut(*args))
    rng = np.random.default_rng(0)
    x, y = rng.random((256, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, 256)
    tinynet.models.lstm_rows(rng=0).fit(x, y, epochs=1, batch_size=128, verbose=0)
    assert calls == []
    tinynet.models.basic_mlp(rng=0).fit(x, y, epochs=1, batch_size=128, verbose=0)
    if tinynet.kernels.TILES_WIN_EVERYWHERE:
        assert calls == [tinynet.kernels.blas.product_threads()] * 2  # the first layer's weights, once a batch
    else:  # with AVX2 training keeps the BLAS's products, and its threads: no hold, Adam on one thread
        assert calls == []


def test_adam_update_refuses_arrays_of_different_sizes():
    """The compiled loop has no bounds checks: mismatched arrays are refused before it runs."""
    param, small = np.zeros(8, np.float32), np.zeros(4, np.float32)
    with pytest.raises(ValueError, match="one shape"):
        kernels.adam_update(param, param.copy(), small, small.copy(), lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
                            step=1)


@needs_numba
def test_training_never_recompiles_across_batch_sizes():
    """Batches of any size reuse the compiled kernels: no new numba signature after the first batch."""
    from tinynet.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU

    def signatures():
        return {name: list(getattr(jitted, name).signatures) for name in jitted.__all__}

    rng = np.random.default_rng(0)
    x, y = rng.random((300, 1, 8, 8), dtype=np.float32), rng.integers(0, 3, 300)
    model = tinynet.Sequential([Conv2D(1, 4, 3, rng=0), ReLU(), MaxPool2D(2), Conv2D(4, 4, 3, padding=1, rng=1),
                                ReLU(), MaxPool2D(2), Flatten(), Dense(4, 3, rng=2)])
    model.fit(x, y, epochs=1, batch_size=128, verbose=0)  # batches of 128, 128 and 44
    model.predict(x, batch_size=1000)
    compiled = signatures()
    assert all(compiled[name] for name in ("im2col", "col2im", "maxpool_forward", "maxpool_backward", "adam_update"))
    for batch_size in (1, 7, 50, 299):
        model.fit(x, y, epochs=1, batch_size=batch_size, verbose=0)
        model.predict(x[:batch_size], batch_size=batch_size)
    assert signatures() == compiled


@needs_numba
@given(st.integers(2, 300), st.integers(1, 40), DTYPES, seeds)
def test_batchnorm_kernels_match_reference(rows, channels, dtype, seed):
    """BatchNorm's two numba passes (float64 column sums) and the NumPy twin agree, forward and backward."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((rows, channels)) * 3 + rng.standard_normal(channels) * 5).astype(dtype)
    gamma, beta = rng.standard_normal(channels).astype(dtype), rng.standard_normal(channels).astype(dtype)
    grad = rng.standard_normal((rows, channels)).astype(dtype)
    fast = jitted.batchnorm_forward(x, gamma, beta, 1e-5)
    slow = reference.batchnorm_forward_reference(x, gamma, beta, 1e-5)
    rtol = 1e-5 if dtype == np.float32 else 1e-10
    for a, b in zip(fast, slow, strict=True):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol)
    x_hat, inv_std = slow[1], slow[4]
    fast = jitted.batchnorm_backward(grad, x_hat, gamma, inv_std)
    slow = reference.batchnorm_backward_reference(grad, x_hat, gamma, inv_std)
    for a, b in zip(fast, slow, strict=True):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.abs(b).max())


@needs_numba
@given(st.lists(st.floats(-30, 30), max_size=50), DTYPES)
def test_erf_kernel_matches_python(values, dtype):
    """The numba error function and its twin (math.erf per value) agree, in the input's dtype and shape."""
    x = np.array(values, dtype=dtype).reshape(-1, 1)
    fast, slow = jitted.erf(x.reshape(-1)).reshape(x.shape), reference.erf_reference(x)
    assert fast.dtype == slow.dtype == dtype and fast.shape == slow.shape
    np.testing.assert_allclose(fast, slow, rtol=1e-15, atol=0)
    known = {0.5: 0.5204998778130465, -2.0: -0.9953222650189527}  # erf's tables
    np.testing.assert_allclose(reference.erf_reference(np.array(list(known))), list(known.values()), rtol=1e-15)


def _ulps_from_erf(values):
    """How far tinynet.special.erf of float32 ``values`` is from erf in float64, in float32 ulps of the result."""
    from tinynet.special import erf, erf_reference

    fast = erf(values)
    exact = erf_reference(values.astype(np.float64))
    assert fast.dtype == np.float32
    return np.abs(fast - exact) / np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)


@needs_numba
def test_the_float32_erf_is_within_3_ulp_everywhere():
    """The float32 polynomials against C's erf in float64: a dense grid across both pieces and the clamp,
    the edges between them, tiny and huge values; ±inf give ±1 and NaN stays NaN."""
    grid = np.linspace(-6, 6, 400_001, dtype=np.float32)
    edges = np.array([0.0, -0.0, 1.0, -1.0, np.nextafter(np.float32(1), np.float32(0)), 3.93, 3.9299998, 4.0,
                      1e-30, -1e-38, 1e-45, 3e38, -3e38], np.float32)
    assert _ulps_from_erf(np.concatenate([grid, edges])).max() <= 3
    from tinynet.special import erf

    np.testing.assert_array_equal(erf(np.array([np.inf, -np.inf, np.nan], np.float32)), [1.0, -1.0, np.nan])


@needs_numba
@given(st.lists(st.floats(width=32, allow_nan=False, allow_infinity=False), min_size=1, max_size=64))
def test_the_float32_erf_is_within_3_ulp_of_any_value(values):
    assert _ulps_from_erf(np.array(values, np.float32)).max() <= 3


def test_the_float32_erfs_coefficients_are_the_fits_they_say():
    """ERF_SMALL and ERF_LARGE are the least-squares fits their comment describes, rounded to float32."""
    import math

    from numpy.polynomial import polynomial

    from tinynet.special import ERF_LARGE, ERF_SMALL

    nodes = np.cos(np.linspace(0, np.pi, 4000))
    squares = nodes * 0.5 + 0.5
    ratio = [math.erf(a) / a if a > 0 else 2 / math.sqrt(math.pi) for a in np.sqrt(squares)]
    np.testing.assert_allclose(ERF_SMALL, polynomial.polyfit(squares, ratio, 6), rtol=1e-6, atol=1e-9)
    erfc = [math.erfc((3 * t + 5) / 2) for t in nodes]
    np.testing.assert_allclose(ERF_LARGE, polynomial.polyfit(nodes, erfc, 12), rtol=1e-6, atol=1e-9)


def _lstm_step_values(n, hidden, scale, seed):
    """Pre-activations spread over every range the cell's exp and tanh treat apart (|a| < 0.625, past the clamp
    at -87, ...), a previous cell state, and the step's gradients, in float32."""
    rng = np.random.default_rng(seed)
    z = (rng.standard_normal((n, 4 * hidden)) * scale).astype(np.float32)
    z.flat[::7] = rng.choice([0.0, 0.6249, 0.6251, -0.6251, 90.0, -90.0, 1e-6], size=z.flat[::7].shape)
    c_prev, grad_h, grad_c = (rng.standard_normal((n, hidden)).astype(np.float32) * scale for _ in range(3))
    return z, c_prev, grad_h, grad_c


def _lstm_cell_outputs(n, hidden, dtype=np.float32):
    """Arrays for a step's cell to write into: ``(gates, c, h)`` forward, ``(grad_z, grad_h)`` backward."""
    return (np.full((n, 4 * hidden), np.nan, dtype), np.full((n, hidden), np.nan, dtype),
            np.full((n, hidden), np.nan, dtype))


def _lstm_cells_both_ways(module, names, z, x_share, c_prev, grad_state, grad_h_next, grad_c):
    """``(gates, c, h, z_t)`` of a step's cell and ``(grad_z, grad_h, grad_c_prev)`` of its backward, each written
    by ``module``'s two kernels (``names``: the forward's and the backward's) into new arrays."""
    n, hidden = c_prev.shape
    forward, backward = (getattr(module, name) for name in names)
    z_t, (gates, c, h) = z.copy(), _lstm_cell_outputs(n, hidden, z.dtype)
    forward(z_t, x_share, c_prev, gates, c, h)
    grad_c_prev, (grad_z, grad_h, _) = grad_c.copy(), _lstm_cell_outputs(n, hidden, z.dtype)
    backward(grad_state, grad_h_next, grad_c_prev, gates, c_prev, c, grad_z, grad_h)
    return (gates, c, h, z_t), (grad_z, grad_h, grad_c_prev)


def _lstm_backward_rounding_bounds(gates, c_prev, c, grad_h, grad_c_next):
    """How far two float32 computations of a step's backward may differ: bounds on ``(dz_t, dL/dh_t, dL/dc_{t-1})``.

    Each is 16 float32 ulps (eight a side) of the size of the terms that make the value, the usual bound of
    a rounded sum, not of the value (plus 16 of the smallest normal float32): ``1 - tanh(c)**2`` of a
    saturated cell is 8e-4 made of 1 and 0.9992, and its few ulps of 1, times a ``dL/dh_t`` of 36, were 2e-6
    of a ``dL/dc_{t-1}`` of 1.53.
    """
    ulp = float(np.finfo(np.float32).eps)
    gates, c_prev, c, grad_h, grad_c_next = (np.abs(a.astype(np.float64)) for a in (gates, c_prev, c, grad_h,
                                                                                      grad_c_next))
    i, f, g, o = np.split(gates, 4, axis=-1)
    tanh_c = np.tanh(c)

    def one_minus(x):  # the size of 1 - x's terms
        return 1 + x

    grad_c = grad_c_next + grad_h * o * one_minus(tanh_c**2)  # the size of dL/dc_t's terms
    grad_z = np.concatenate((grad_c * g * i * one_minus(i), grad_c * c_prev * f * one_minus(f),
                             grad_c * i * one_minus(g**2), grad_h * tanh_c * o * one_minus(o)), axis=-1)
    floor = 16 * float(np.finfo(np.float32).tiny)  # subnormal results keep fewer bits than ulps of themselves
    return tuple(16 * ulp * size + floor for size in (grad_z, grad_h, grad_c * f))


@needs_numba
@given(st.integers(1, 40), st.integers(1, 24), st.sampled_from([0.1, 1.0, 5.0, 40.0]), seeds)
@example(1, 1, 40.0, 351)  # the saturated cell a bound on the value failed on
def test_lstm_cell_kernels_match_the_layers_cell(n, hidden, scale, seed):
    """The compiled LSTM cell and its backward, writing in place, agree with the layer's (NumPy) cell to a few
    float32 ulp: the forward given the same z_t, the backward given the same step values."""
    z, c_prev, grad_h, grad_c = _lstm_step_values(n, hidden, scale, seed)
    share = np.random.default_rng(seed + 1).standard_normal(z.shape).astype(np.float32)
    grad_next = np.random.default_rng(seed + 2).standard_normal(grad_h.shape).astype(np.float32)
    fast_forward, fast_backward = _lstm_cells_both_ways(jitted, ("lstm_cell_into", "lstm_cell_backward_into"),
                                                        z - share, share, c_prev, grad_h, grad_next, grad_c)
    slow_forward, slow_backward = _lstm_cells_both_ways(
        reference, ("lstm_cell_into_reference", "lstm_cell_backward_into_reference"), z - share, share, c_prev,
        grad_h, grad_next, grad_c)
    for a, b in zip(fast_forward, slow_forward, strict=True):  # gates, c_t, h_t, z_t
        assert a.dtype == np.float32 and a.shape == b.shape and np.isfinite(b).all()  # NaN == NaN would pass
        np.testing.assert_allclose(a, b, rtol=5e-7, atol=3e-7 * max(1.0, np.abs(b).max()))
    # The backward from the same step values (the twin's), so only the backward's rounding is compared.
    gates, c, _, _ = slow_forward
    grad_c_prev, (grad_z, grad_h_out, _) = grad_c.copy(), _lstm_cell_outputs(n, hidden)
    jitted.lstm_cell_backward_into(grad_h, grad_next, grad_c_prev, gates, c_prev, c, grad_z, grad_h_out)
    bounds = _lstm_backward_rounding_bounds(gates, c_prev, c, np.abs(grad_h) + np.abs(grad_next), grad_c)
    for a, b, bound in zip((grad_z, grad_h_out, grad_c_prev), slow_backward, bounds, strict=True):  # dz_t, dL/dh_t,
        assert a.dtype == np.float32 and a.shape == b.shape and np.isfinite(b).all()  # and dL/dc_{t-1}
        gap = np.abs(a.astype(np.float64) - b)
        assert (gap <= bound).all(), (gap[gap > bound], bound[gap > bound], b[gap > bound])
    # The fast backward of the fast forward's values is the same computation: nothing left unwritten.
    assert all(np.isfinite(a).all() for a in fast_backward)


@needs_numba
@given(st.integers(1, 12), st.integers(1, 9), st.integers(1, 17), st.sampled_from([0.3, 1.0, 4.0]), seeds)
def test_lstm_loop_kernel_matches_the_layers_loop(steps, n, hidden, scale, seed):
    """The compiled loop over time (each step's product and cell) gives the layer's loop's states and gates,
    step after step, to float32 rounding."""
    rng = np.random.default_rng(seed)
    x_part = (rng.standard_normal((steps, n, 4 * hidden)) * scale).astype(np.float32)
    W_h = (rng.standard_normal((hidden, 4 * hidden)) / np.sqrt(hidden)).astype(np.float32)
    fast, slow = jitted.lstm_loop(x_part, W_h), reference.lstm_loop_reference(x_part, W_h)
    for a, b in zip(fast, slow, strict=True):  # h, c, gates
        assert a.dtype == np.float32 and a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(b).max()))
    assert not fast[0][0].any() and not fast[1][0].any()  # h_0 = c_0 = 0


def test_lstm_loop_chooser_runs_the_twin_for_float64():
    rng = np.random.default_rng(0)
    x_part, W_h = rng.standard_normal((4, 2, 12)), rng.standard_normal((3, 12))
    for got, expected in zip(kernels.lstm_loop(x_part, W_h), reference.lstm_loop_reference(x_part, W_h), strict=True):
        np.testing.assert_array_equal(got, expected)


def test_lstm_cell_choosers_run_the_twins_for_float64_and_for_outputs_they_cannot_write_in_place():
    """The compiled cells are float32's and write into C-contiguous arrays; float64 (the gradient checks') and
    a strided output (any of them, z_t included) get the layer's cell, value for value, written where the
    caller asked."""
    z, c_prev, grad_h, grad_c = (array.astype(np.float64) for array in _lstm_step_values(3, 5, 3.0, 0))
    names = ("lstm_cell_into", "lstm_cell_backward_into")
    twins = ("lstm_cell_into_reference", "lstm_cell_backward_into_reference")
    args = (z, z / 2, c_prev, grad_h, grad_h / 2, grad_c)
    for got, expected in zip(_lstm_cells_both_ways(kernels, names, *args),
                             _lstm_cells_both_ways(reference, twins, *args), strict=True):
        for a, b in zip(got, expected, strict=True):
            np.testing.assert_array_equal(a, b)
    # Each output in turn a strided view (every other column of a wider array: not C-contiguous).
    z, c_prev, grad_h, grad_c = _lstm_step_values(3, 5, 3.0, 1)
    share, grad_next = z / 2, grad_h / 2

    def strided(array):
        wide = np.full((array.shape[0], 2 * array.shape[1]), np.nan, array.dtype)
        wide[:, ::2] = array
        return wide[:, ::2]

    expected_forward = (z.copy(), *_lstm_cell_outputs(3, 5))  # z_t, gates, c_t, h_t
    reference.lstm_cell_into_reference(*expected_forward[:1], share, c_prev, *expected_forward[1:])
    for which in range(4):
        arrays = [z.copy(), *_lstm_cell_outputs(3, 5)]
        arrays[which] = strided(arrays[which])
        kernels.lstm_cell_into(arrays[0], share, c_prev, *arrays[1:])
        for got, expected in zip(arrays, expected_forward, strict=True):
            np.testing.assert_array_equal(got, expected)
    assert all(np.isfinite(array).all() for array in expected_forward)  # every output written (NaN == NaN here)
    _, gates, c, _ = expected_forward
    grad_z, grad_h_out, _ = _lstm_cell_outputs(3, 5)
    expected_backward = [grad_c.copy(), grad_z, grad_h_out]  # dL/dc_{t-1}, dz_t, dL/dh_t
    reference.lstm_cell_backward_into_reference(grad_h, grad_next, expected_backward[0], gates, c_prev, c,
                                                *expected_backward[1:])
    assert all(np.isfinite(array).all() for array in expected_backward)
    for which in range(3):
        grad_z, grad_h_out, _ = _lstm_cell_outputs(3, 5)
        arrays = [grad_c.copy(), grad_z, grad_h_out]
        arrays[which] = strided(arrays[which])
        kernels.lstm_cell_backward_into(grad_h, grad_next, arrays[0], gates, c_prev, c, *arrays[1:])
        for got, expected in zip(arrays, expected_backward, strict=True):
            np.testing.assert_array_equal(got, expected)


@needs_numba
@given(st.integers(1, 60), st.integers(1, 70), DTYPES, st.sampled_from([1e-3, 1.0, 1e3]), seeds)
def test_layernorm_kernels_match_the_layers_functions(rows, features, dtype, scale, seed):
    """LayerNorm's compiled row visits (float64 row sums) and the layer's NumPy functions agree, forward and
    backward, in the input's dtype."""
    rng = np.random.default_rng(seed)
    x = ((rng.standard_normal((rows, features)) + rng.standard_normal((rows, 1)) * 3) * scale).astype(dtype)
    gamma, beta = rng.standard_normal(features).astype(dtype), rng.standard_normal(features).astype(dtype)
    grad = rng.standard_normal((rows, features)).astype(dtype)
    rtol = 2e-4 if dtype == np.float32 else 1e-10
    fast = jitted.layernorm_forward(x, gamma, beta, 1e-5)
    slow = reference.layernorm_forward_reference(x, gamma, beta, 1e-5)
    for a, b in zip(fast, slow, strict=True):  # y, x_hat, inv_std
        assert a.dtype == dtype and a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.abs(b).max())
    x_hat, inv_std = slow[1], slow[2]
    fast = jitted.layernorm_backward(grad, x_hat, gamma, inv_std)
    slow = reference.layernorm_backward_reference(grad, x_hat, gamma, inv_std)
    for a, b in zip(fast, slow, strict=True):  # dx, dgamma, dbeta
        assert a.dtype == dtype and a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.abs(b).max())


@needs_numba
@given(st.integers(1, 6), st.integers(1, 4), st.integers(1, 20), st.booleans(),
       st.sampled_from([0.1, 1.0, 10.0, 100.0]), seeds)
def test_attention_weights_kernels_match_the_layers_functions(n, heads, length, causal, scale, seed):
    """Attention's compiled softmax (each head's T x T block in one visit) and its backward agree with the layer's
    NumPy functions to a few float32 ulp, the future masked to exact zeros."""
    rng = np.random.default_rng(seed)
    scores = (rng.standard_normal((n, heads, length, length)) * scale).astype(np.float32)
    scores.flat[::5] = rng.choice([0.0, 95.0, -95.0], size=scores.flat[::5].shape)  # past the exp's clamps
    grad = rng.standard_normal(scores.shape).astype(np.float32)
    fast, slow = jitted.attention_weights(scores, causal), reference.attention_weights_reference(scores, causal)
    assert fast.dtype == np.float32 and fast.shape == slow.shape
    np.testing.assert_allclose(fast, slow, rtol=1e-6, atol=1e-7)
    if causal:
        assert not fast[..., np.triu_indices(length, 1)[0], np.triu_indices(length, 1)[1]].any()
    fast = jitted.attention_weights_backward(slow, grad)
    expected = reference.attention_weights_backward_reference(slow, grad)
    assert fast.dtype == np.float32
    np.testing.assert_allclose(fast, expected, rtol=1e-6, atol=1e-6 * max(1.0, np.abs(expected).max()))


def test_attention_weights_chooser_runs_the_twin_for_float64():
    """The compiled softmax is float32's; float64 (the gradient checks') gets the layer's function, value for value."""
    scores = np.random.default_rng(0).standard_normal((2, 3, 4, 4))
    np.testing.assert_array_equal(kernels.attention_weights(scores, True), reference.attention_weights_reference(
        scores, True))


@needs_numba
@given(st.integers(0, 2000), st.sampled_from([0.1, 1.0, 3.0, 30.0]), seeds)
def test_gelu_kernel_matches_the_layers_functions(size, scale, seed):
    """GELU's compiled pass (erf's float32 polynomials, exp's) gives the layer's value and slope to a few float32
    ulp, at every length (whole blocks and a remainder) and past exp's clamp; y alone at inference."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(size) * scale).astype(np.float32)
    x[::7] = rng.choice([0.0, 15.0, -15.0], size=x[::7].shape)
    y, slope = jitted.gelu_forward(x, True)
    expected_y, expected_slope = reference.gelu_forward_reference(x)
    assert y.dtype == slope.dtype == np.float32 and y.shape == slope.shape == x.shape
    np.testing.assert_allclose(y, expected_y, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(slope, expected_slope, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(jitted.gelu_forward(x, False)[0], y)


def test_gelu_chooser_runs_the_twin_for_float64_and_keeps_the_shape():
    """The compiled pass is float32's; float64 (the gradient checks') gets the layer's functions, value for value;
    either way y and the slope have the input's shape, and no slope is made at inference."""
    x = np.random.default_rng(0).standard_normal((2, 3, 4))
    y, slope = kernels.gelu_forward(x)
    expected = reference.gelu_forward_reference(x)
    np.testing.assert_array_equal(y, expected[0])
    np.testing.assert_array_equal(slope, expected[1])
    y32, slope32 = kernels.gelu_forward(x.astype(np.float32), with_slope=False)
    assert y32.shape == x.shape and y32.dtype == np.float32 and slope32 is None


@needs_numba
@given(st.integers(1, 300), st.integers(1, 40), st.sampled_from([0.1, 1.0, 10.0, 100.0]), seeds)
def test_softmax_rows_kernel_matches_the_layers_softmax(n, classes, scale, seed):
    """A prediction's probabilities: the layer's softmax to a few float32 ulp, and NaN in the same rows (a NaN
    score, an infinite maximum), a row with some -inf still a distribution."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n, classes)) * scale).astype(np.float32)
    special = rng.integers(0, n, size=min(n, 4))
    for row, value in zip(special, [np.nan, np.inf, -np.inf, -np.inf], strict=False):
        x[row, rng.integers(0, classes)] = value
    with np.errstate(invalid="ignore"):
        expected = reference.softmax_rows_reference(x)
    got = jitted.softmax_rows(x)
    assert got.dtype == np.float32 and got.shape == x.shape
    assert np.array_equal(np.isnan(got), np.isnan(expected))
    finite = ~np.isnan(expected)
    np.testing.assert_allclose(got[finite], expected[finite], rtol=2e-6, atol=1e-37)


@needs_numba
@given(st.integers(1, 200), st.sampled_from([np.float32, np.float64]),
       st.sampled_from([None, np.nan, np.inf, -np.inf]), st.sampled_from([1.0, 1e30, 3e38]), seeds)
@example(33, np.float32, np.nan, 1.0, 0)  # past two vectors of 16, in the loop's scalar tail
def test_all_finite_kernel_matches_its_twin(n, dtype, special, scale, seed):
    """The finite check of every prediction's inputs: the twin's answer for a NaN or an inf at any place (the
    vector lanes and the tail), and for large finite values, whose squares or sums would overflow."""
    rng = np.random.default_rng(seed)
    values = (rng.uniform(-1, 1, n) * scale).astype(dtype)
    if special is not None:
        values[rng.integers(0, n)] = special
    assert jitted.all_finite(values) == reference.all_finite_reference(values) == (special is None)


def test_all_finite_chooser_reads_any_array():
    """Strided and float16 arrays (the twin's) and arrays of several axes (the compiled pass's) get the same answer."""
    x = np.ones((4, 6))
    x[1, 3] = np.nan
    assert not kernels.all_finite(x) and kernels.all_finite(x[:, ::2]) and not kernels.all_finite(x[:, 1::2])
    assert not kernels.all_finite(np.array([1, np.inf], np.float16)) and kernels.all_finite(np.zeros((2, 3, 4)))
    assert kernels.all_finite(np.zeros((0, 3), np.float32))  # nothing there is not finite


@needs_numba
@given(st.integers(1, 300), st.integers(1, 40), st.sampled_from([np.float32, np.float64]),
       st.sampled_from([0.1, 1.0, 10.0, 100.0]), seeds)
@example(4, 3, np.float32, 100.0, 0)  # far-off labels: losses above 30 take the direct form
def test_softmax_cross_entropy_kernel_matches_the_loss_formula(n, classes, dtype, scale, seed):
    """Every training batch's loss: each row's loss, probabilities and wrong classes' probability those of the
    formula the loss is defined by, to a few ulp, for confident rows (1 - p[t] far below the float's epsilon),
    far-off labels and a NaN logit; and with ``-inf`` logits the probabilities still sum to 1."""
    rng = np.random.default_rng(seed)
    logits = (rng.standard_normal((n, classes)) * scale).astype(dtype)
    labels = rng.integers(0, classes, n)
    logits[0] = 0
    logits[0, labels[0]] = 40  # a confident right answer: 1 - p[t] = (classes - 1) exp(-40)
    if n > 2 and classes > 1:
        logits[1, rng.integers(0, classes)] = np.nan
        logits[2, (labels[2] + 1) % classes] = -np.inf
    with np.errstate(invalid="ignore", over="ignore"):
        expected = reference.softmax_cross_entropy_reference(logits, labels)
        got = jitted.softmax_cross_entropy(logits, labels)
    tolerance = 8 * np.finfo(dtype).eps
    for value, want in zip(got, expected, strict=True):
        assert value.dtype == dtype and value.shape == want.shape
        assert np.array_equal(np.isnan(value), np.isnan(want))
        finite = ~np.isnan(want)
        np.testing.assert_allclose(value[finite], want[finite], rtol=tolerance, atol=np.finfo(dtype).tiny)
    if classes > 1:
        assert 0 < got[2][0] < np.finfo(dtype).eps  # the confident row kept its digits
    if n > 2 and classes > 1:
        np.testing.assert_allclose(got[1][2].sum(), 1, rtol=tolerance)


def test_softmax_cross_entropy_chooser_runs_the_twin_with_label_smoothing():
    """Label smoothing (and a float16 batch) take the formula itself, value for value."""
    logits, labels = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32), np.array([0, 1, 2, 3, 0])
    for args in ((logits, labels, 0.1), (logits.astype(np.float16), labels, 0.0)):
        for got, want in zip(kernels.softmax_cross_entropy(*args), reference.softmax_cross_entropy_reference(*args),
                             strict=True):
            np.testing.assert_array_equal(got, want)


def test_softmax_rows_chooser_runs_the_twin_for_float64_and_other_shapes():
    """float64 (and any array that is not a batch of rows) gets the layer's softmax, value for value."""
    x = np.random.default_rng(0).standard_normal((3, 5))
    np.testing.assert_array_equal(kernels.softmax_rows(x), reference.softmax_rows_reference(x))
    x3 = x.reshape(1, 3, 5).astype(np.float32)
    np.testing.assert_array_equal(kernels.softmax_rows(x3), reference.softmax_rows_reference(x3))


@needs_numba
@given(st.integers(1, 7), st.integers(4, 11), st.integers(4, 11), st.integers(1, 40), st.integers(1, 3),
       st.booleans(), seeds)
def test_the_first_layer_in_ranges_of_images_equals_the_reference(n, h, w, filters, parts, with_argmax, seed):
    """The MNIST first layer's batch cut into ranges, one a thread (inside the engine's hold), gives the whole
    batch's values and argmax exactly, more ranges than images included."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, (n, h, w, 1)).astype(np.float32)
    taps = rng.integers(-2, 3, (9, filters)).astype(np.float32)
    bias = rng.integers(-1, 2, filters).astype(np.float32)
    ones, zeros = np.ones(filters, np.float32), np.zeros(filters, np.float32)
    out, argmax = jitted.conv_maxpool_3x3(x, taps, bias, True, ones, zeros, with_argmax, parts)
    expected_out, expected_argmax = reference.conv_maxpool_forward_reference(x, taps, bias)
    np.testing.assert_array_equal(out, expected_out)
    if with_argmax:
        np.testing.assert_array_equal(argmax, expected_argmax)
