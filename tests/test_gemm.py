"""The engine's product in register tiles (tinynet.kernels.gemm) equals its twin, NumPy's ``a @ b``, on drawn shapes;
the engine holds the BLAS to one thread around it and gives the threads back."""

import contextlib
import threading

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinynet import errors as tinynet_errors
from tinynet import kernels
from tinynet.kernels import blas

gemm = kernels._load_gemm()
needs_tiles = pytest.mark.skipif(gemm is None, reason="no tiled product here (a CPU without AVX-512, numba off or "
                                 "told to compile for another CPU, or TINYNET_TILED_PRODUCTS=0): NumPy's product, "
                                 "its twin, runs in its place")
seeds = st.integers(0, 2**16)


def _rounding_bound(a, b):
    """Every entry's worst float32 rounding error in ``a @ b`` summed in any order: ``2 k eps (|a| @ |b|)``."""
    k = a.shape[1]
    return 2 * max(k, 1) * np.finfo(np.float32).eps * (np.abs(a).astype(np.float64) @ np.abs(b)) + 1e-30


def _operand(shape, seed, transposed):
    """A float32 matrix of ``shape``; ``transposed``: a transposed view of a C-ordered array (A's other layout)."""
    rng = np.random.default_rng(seed)
    if transposed:
        return rng.standard_normal(shape[::-1]).astype(np.float32).T
    return rng.standard_normal(shape).astype(np.float32)


@contextlib.contextmanager
def _without_tiles():
    """The kernels as on a CPU without the tiles: NumPy's product and im2col, the twins."""
    saved = kernels._gemm
    kernels._gemm = None
    try:
        yield
    finally:
        kernels._gemm = saved


def _no_epilogue(n):
    """The product's scale and shift arguments when it has no epilogue (read, not applied)."""
    return np.ones(n, np.float32), np.zeros(n, np.float32), False, False


@needs_tiles
@given(st.integers(1, 40), st.one_of(st.integers(0, 300), st.integers(2000, 4500)), st.integers(1, 3), st.booleans(),
       st.booleans(), seeds)
def test_the_tiled_product_equals_numpys_to_rounding(m, k, column_tiles, transposed, accumulate, seed):
    """Any rows (whole tiles and a tail), K in one block, across two or three (K_BLOCK is 2,048) and none, A in either
    layout, written or added."""
    n = column_tiles * gemm.COLUMNS
    a, b = _operand((m, k), seed, transposed), _operand((k, n), seed + 1, False)
    start = np.random.default_rng(seed + 2).standard_normal((m, n)).astype(np.float32)
    out = start.copy()
    gemm.product(a, b, out, accumulate, *_no_epilogue(n))
    expected = a.astype(np.float64) @ b + (start if accumulate else 0)
    assert np.all(np.abs(out - expected) <= _rounding_bound(a, b) + (1e-6 * np.abs(start) if accumulate else 0))


@needs_tiles
@given(st.integers(1, 40), st.one_of(st.integers(0, 300), st.integers(2000, 4500)), st.integers(1, 2),
       st.booleans(), st.booleans(), st.booleans(), seeds)
def test_the_tiles_epilogue_is_the_twins_scale_shift_and_relu(m, k, column_tiles, scaled, relu, accumulate, seed):
    """``(a @ b) * scale + shift`` and a ReLU in the tiles' store equal NumPy's product followed by ``*=``, ``+=`` and
    ``np.maximum`` (``matmul`` outside the hold) to rounding, applied once however many blocks K takes."""
    n = column_tiles * gemm.COLUMNS
    rng = np.random.default_rng(seed)
    a, b = _operand((m, k), seed, False), _operand((k, n), seed + 1, False)
    scale = rng.standard_normal(n).astype(np.float32) if scaled else None
    shift = rng.standard_normal(n).astype(np.float32)
    start = rng.standard_normal((m, n)).astype(np.float32)
    twin = kernels.matmul(a, b, start.copy() if accumulate else None, accumulate, scale, shift, relu)
    with kernels.engine_threads(kernels.MIN_TILED_BATCH):
        tiled = kernels.matmul(a, b, start.copy() if accumulate else None, accumulate, scale, shift, relu)
    size = (_rounding_bound(a, b) + (1e-6 * np.abs(start) if accumulate else 0)) * np.abs(1 if scale is None else scale)
    assert np.all(np.abs(tiled - twin) <= size + 1e-6 * np.abs(twin)), np.abs(tiled - twin).max()
    if relu:
        assert (tiled >= 0).all() and ((tiled == 0) == (twin == 0)).mean() > 0.99  # the same outputs cut to zero


@needs_tiles
def test_the_tiles_relu_keeps_nan_as_numpys_maximum_does():
    a, b = np.full((8, 4), np.nan, np.float32), np.ones((4, 32), np.float32)
    with kernels.engine_threads(kernels.MIN_TILED_BATCH):
        out = kernels.matmul(a, b, shift=np.zeros(32, np.float32), relu=True)
    assert np.isnan(out).all()


@needs_tiles
@needs_tiles
@given(st.integers(1, 20), st.integers(1, 3), st.integers(1, 3), st.integers(1, 2), st.integers(1, 2),
       st.integers(0, 8), st.integers(0, 8), st.sampled_from([1, 3, 32, 40]), st.integers(1, 2), st.booleans(),
       st.booleans(), seeds)
def test_a_convolution_read_in_place_is_im2col_then_the_product(n, kh, kw, sh, sw, extra_h, extra_w, channels,
                                                               column_tiles, affine, relu, seed):
    """``convolution_matmul`` in the tiles, each window read where it lies in the images, equals its twin, im2col's
    rows times the filters (NumPy's product and epilogue), to rounding: any window, stride, channel count (K from
    1 to 360), output rows in whole tiles and a tail."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, kh + extra_h, kw + extra_w, channels)).astype(np.float32)
    filters = column_tiles * gemm.COLUMNS
    columns = rng.standard_normal((kh * kw * channels, filters)).astype(np.float32)
    scale, shift = (rng.standard_normal(filters).astype(np.float32) if affine else None for _ in range(2))
    with _without_tiles():
        twin = kernels.convolution_matmul(x, kh, kw, sh, sw, columns, scale=scale, shift=shift, relu=relu)
    with kernels.engine_threads(kernels.MIN_TILED_BATCH):
        tiled = kernels.convolution_matmul(x, kh, kw, sh, sw, columns, scale=scale, shift=shift, relu=relu)
    rows = kernels.im2col(x, kh, kw, sh, sw, 0, 0).reshape(-1, columns.shape[0])
    assert tiled.shape == twin.shape == (len(rows), filters)
    bound = _rounding_bound(rows, columns) * np.abs(1 if scale is None else scale)
    assert np.all(np.abs(tiled - twin) <= bound + 1e-6 * np.abs(twin)), np.abs(tiled - twin).max()


@needs_tiles
@given(st.integers(1, 12), st.integers(1, 3), st.integers(1, 3), st.integers(1, 2), st.integers(1, 2),
       st.integers(1, 9), st.integers(1, 9), st.sampled_from([1, 3, 32]), st.integers(1, 2), st.booleans(),
       st.booleans(), seeds)
def test_a_convolution_pooled_in_the_tiles_store_is_the_convolution_then_the_pooling(
        n, kh, kw, sh, sw, extra_h, extra_w, channels, column_tiles, relu, normalised, seed):
    """``convolution_maxpool`` in the tiles (two 2x2 windows a tile, their maxima stored) equals its twin, the
    convolution's output pooled by ``maxpool_infer`` with its bias, ReLU and BatchNorm map: odd and even
    output sizes (an odd last row and column belong to no window), one window left over, any stride."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, kh + extra_h, kw + extra_w, channels)).astype(np.float32)
    filters = column_tiles * gemm.COLUMNS
    columns = rng.standard_normal((kh * kw * channels, filters)).astype(np.float32)
    bias = rng.standard_normal(filters).astype(np.float32)
    scale, shift = (rng.standard_normal(filters).astype(np.float32) if normalised else None for _ in range(2))
    with _without_tiles():
        twin = kernels.convolution_maxpool(x, kh, kw, sh, sw, columns, relu, bias, scale, shift)
    tiled = kernels.convolution_maxpool(x, kh, kw, sh, sw, columns, relu, bias, scale, shift)  # alone, on this thread
    with kernels.engine_threads(kernels.MIN_TILED_BATCH):  # in the hold, on its threads
        held = kernels.convolution_maxpool(x, kh, kw, sh, sw, columns, relu, bias, scale, shift)
    assert n >= kernels.MIN_TILED_BATCH or np.array_equal(held, tiled)  # one tile's sums: the same either way
    assert tiled.shape == twin.shape and tiled.shape[1:3] == tuple(
        kernels.output_size(size, k, s, 0) // 2 for size, k, s in ((x.shape[1], kh, sh), (x.shape[2], kw, sw)))
    rows = kernels.im2col(x, kh, kw, sh, sw, 0, 0).reshape(-1, columns.shape[0])
    largest = _rounding_bound(rows, columns).max(initial=0)  # any pixel of a window may be its maximum
    assert np.all(np.abs(tiled - twin) <= largest * np.abs(1 if scale is None else scale) + 1e-6 * np.abs(twin))


@needs_tiles
@pytest.mark.parametrize("shape", [(20, 12, 12, 32, 64), (17, 7, 9, 3, 32), (16, 5, 5, 64, 128)])
def test_the_pooled_store_is_the_tiles_convolution_then_the_compiled_pooling_bit_for_bit(shape):
    """Given the same sums (the tiles add each pixel's terms in one order either way), the pooled store's bias, maximum,
    ReLU and BatchNorm map are the compiled ``maxpool_infer``'s, rounded as there: equal, not only close."""
    n, height, width, channels, filters = shape
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, height, width, channels)).astype(np.float32)
    columns = rng.standard_normal((9 * channels, filters)).astype(np.float32)
    bias, scale, shift = (rng.standard_normal(filters).astype(np.float32) for _ in range(3))
    with kernels.engine_threads(kernels.MIN_TILED_BATCH):
        convolved = kernels.convolution_matmul(x, 3, 3, 1, 1, columns).reshape(n, height - 2, width - 2, filters)
        twin = kernels.maxpool_infer(convolved, 2, 2, 2, 2, True, bias, scale, shift)
        pooled = kernels.convolution_maxpool(x, 3, 3, 1, 1, columns, True, bias, scale, shift)
    assert np.array_equal(pooled, twin)


@needs_tiles
def test_the_engine_on_tiles_predicts_what_the_layers_compute():
    """A float32 convnet predicting a batch inside the hold (direct convolutions, epilogues in the tiles' store)
    gives the layers' outputs, run one by one, to float32 rounding."""
    from tinynet import Sequential
    from tinynet.layers import BatchNorm1D, BatchNorm2D, Conv2D, Dense, Flatten, MaxPool2D, ReLU

    rng = np.random.default_rng(0)
    model = Sequential([Conv2D(3, 32, 3, rng=1), BatchNorm2D(32), ReLU(), MaxPool2D(2), Conv2D(32, 64, 3, stride=2,
                        rng=2), BatchNorm2D(64), ReLU(), Flatten(), Dense(64 * 2 * 2, 32, rng=3), BatchNorm1D(32),
                        ReLU(), Dense(32, 10, rng=4)])
    for layer in model.layers:  # statistics as after training, so BatchNorm's map is not the identity
        if isinstance(layer, (BatchNorm1D, BatchNorm2D)):
            features = layer.params["gamma"].shape
            layer.running_mean[...] = rng.standard_normal(features)
            layer.running_var[...] = rng.uniform(0.5, 2.0, features)
            layer.params["gamma"][...] = rng.uniform(0.5, 1.5, features)
            layer.params["beta"][...] = rng.standard_normal(features)
    x = rng.standard_normal((kernels.MIN_TILED_BATCH + 5, 3, 13, 13)).astype(np.float32)
    expected = x
    for layer in model.layers:
        expected = layer.forward(expected, training=False)
    got = model.forward(x, training=False)
    np.testing.assert_allclose(got, expected, rtol=2e-4, atol=2e-4 * np.abs(expected).max())


@needs_tiles
@given(st.integers(1, 40), st.integers(0, 300), st.integers(1, 16), st.booleans(), st.booleans(), st.booleans(),
       seeds)
def test_the_narrow_tiles_are_the_twins_product_scale_shift_and_relu(m, k, n, transposed, scaled, relu, seed):
    """Products of 1 to 16 columns (a 10-class output layer) in narrow tiles, whole ones and a tail of rows, A in
    either layout: NumPy's product followed by ``*=``, ``+=`` and ``np.maximum`` (``matmul`` outside the hold) to
    rounding. Adding into ``out`` is left to NumPy, but for a whole tile's width (16 columns with AVX2), which the
    whole tiles add."""
    rng = np.random.default_rng(seed)
    a, b = _operand((m, k), seed, transposed), _operand((k, n), seed + 1, False)
    scale = rng.standard_normal(n).astype(np.float32) if scaled else None
    shift = rng.standard_normal(n).astype(np.float32)
    twin = kernels.matmul(a, b, scale=scale, shift=shift, relu=relu)
    with kernels.engine_threads(kernels.MIN_TILED_BATCH):
        assert kernels._tiles(a, b, None) == (m >= kernels.MIN_TILED_ROWS and k > 0)  # (empty B has no strides)
        whole_tile = n % gemm.COLUMNS == 0 and m >= kernels.MIN_TILED_ROWS and k > 0  # 16 columns with AVX2
        assert kernels._tiles(a, b, np.zeros((m, n), np.float32), accumulate=True) == whole_tile
        tiled = kernels.matmul(a, b, scale=scale, shift=shift, relu=relu)
    size = _rounding_bound(a, b) * np.abs(1 if scale is None else scale)
    assert np.all(np.abs(tiled - twin) <= size + 1e-6 * np.abs(twin)), np.abs(tiled - twin).max()


@needs_tiles
def test_the_narrow_tiles_read_and_write_only_their_columns():
    """B and out as slices of wider arrays (NaN beside B, 7 beside out): the product is that of B's own columns and
    out's neighbours are not written. (A load past the end of B would not show here; its masks are the kernel's.)"""
    a = _operand((37, 50), 0, False)
    wide_b = np.full((50, 24), np.nan, np.float32)
    wide_b[:, 3:13] = _operand((50, 10), 1, False)
    wide = np.full((37, 24), 7.0, np.float32)
    gemm.narrow_product(a, wide_b[:, 3:13], wide[:, 5:15], *_no_epilogue(10))
    assert np.all(wide[:, :5] == 7) and np.all(wide[:, 15:] == 7)
    expected = a.astype(np.float64) @ wide_b[:, 3:13]
    assert np.all(np.abs(wide[:, 5:15] - expected) <= _rounding_bound(a, wide_b[:, 3:13]))


@needs_tiles
def test_the_tiled_product_writes_only_its_output():
    """Columns beside ``out`` (a slice of a wider array) and the operands stay as they were."""
    a, b = _operand((19, 70), 0, False), _operand((70, 32), 1, False)
    wide = np.full((19, 40), 7.0, np.float32)
    a_before, b_before = a.copy(), b.copy()
    gemm.product(a, b, wide[:, 4:36], False, *_no_epilogue(32))
    assert np.all(wide[:, :4] == 7) and np.all(wide[:, 36:] == 7)
    assert np.array_equal(a, a_before) and np.array_equal(b, b_before)


@needs_tiles
@given(st.integers(1, 6), st.integers(8, 40), st.sampled_from([8, 16, 24]), st.booleans(), seeds)
def test_the_compiled_lstm_loop_is_its_twins_loop_bit_for_bit(steps, n, hidden, last_only, seed):
    """The LSTM's steps compiled whole (a part's loop over time, its products in tiles) give the bits of the loop of
    Python calls they replace, every step's states kept or only the last one (a ring of two)."""
    rng = np.random.default_rng(seed)
    x_part = rng.standard_normal((steps, n, 4 * hidden)).astype(np.float32)
    W_h = (rng.standard_normal((hidden, 4 * hidden)) / hidden**0.5).astype(np.float32)
    kept = 2 if last_only else steps + 1

    def states(loop):
        h, c = np.zeros((2, kept, n, hidden), np.float32)
        c[0] = rng.standard_normal((n, hidden)).astype(np.float32)  # a state to start from, not zeros
        gates = np.empty((1 if last_only else steps, n, 4 * hidden), np.float32)
        # As in a part, tiles on one thread (with AVX2 a part's products stay the BLAS's: the hold's tiles instead)
        one_thread = blas.single_thread_products() if kernels.TILES_WIN_EVERYWHERE else contextlib.nullcontext()
        with blas.held_to_one_thread(), one_thread:
            loop(x_part, W_h, h, c, gates)
        return h, c, gates

    seed_state = rng.bit_generator.state
    compiled = states(gemm.lstm_steps)
    rng.bit_generator.state = seed_state  # the same starting c
    for got, want in zip(compiled, states(kernels.lstm_steps_loop), strict=True):
        np.testing.assert_array_equal(got, want)


@given(st.integers(1, 40), st.integers(1, 70), st.sampled_from([1, 10, 32, 33, 64, 96]),
       st.sampled_from([np.float32, np.float64]), seeds)
def test_matmul_is_numpys_product_wherever_it_runs(m, k, n, dtype, seed):
    """Inside the engine's hold (tiles where they fit) and outside it (NumPy's), ``kernels.matmul`` is ``a @ b``."""
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)
    outside = kernels.matmul(a, b)
    with kernels.engine_threads(kernels.MIN_TILED_BATCH):
        fits = dtype == np.float32 and m >= kernels.MIN_TILED_ROWS and (n % 32 == 0 or n <= 16)
        assert kernels._tiles(a, b, None) == (kernels.TILED_PRODUCTS and fits)  # tiled exactly where it should be
        inside = kernels.matmul(a, b)
    assert np.array_equal(outside, a @ b)  # no hold, no tiles: NumPy's own
    assert np.all(np.abs(inside - a.astype(np.float64) @ b) <= _rounding_bound(a, b) * (1 if dtype == np.float32
                                                                                         else 1e-8) + 1e-12)


def test_matmul_refuses_to_add_into_nothing_and_leaves_overlapping_products_to_numpy():
    a = _operand((20, 32), 0, False)
    with pytest.raises(tinynet_errors.ArgumentError, match="out="):
        kernels.matmul(a, a.T.copy(), accumulate=True)
    square = _operand((32, 32), 1, False)
    expected = square @ square
    with kernels.engine_threads(kernels.MIN_TILED_BATCH):
        assert not kernels._tiles(square, square, square)  # out is an operand: the tiles would read what they wrote
        np.testing.assert_allclose(kernels.matmul(square, square.copy(), out=square[:, ::1]), expected, rtol=1e-5,
                                   atol=1e-5)


def test_matmul_adds_into_out_when_asked():
    a, b = _operand((20, 5), 0, False), _operand((5, 32), 1, False)
    out = np.ones((20, 32), np.float32)
    with kernels.engine_threads(kernels.MIN_TILED_BATCH):
        kernels.matmul(a, b, out=out, accumulate=True)
    np.testing.assert_allclose(out, 1 + a @ b, rtol=1e-5, atol=1e-5)


def _running_blas_threads():
    return min((lib.num_threads for lib in blas.controller().lib_controllers), default=1)


@pytest.fixture
def two_blas_threads_to_hold():
    """The BLAS on two threads for the test, so holding it to one shows (one core gives one: nothing to test)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(2, user_api="blas"):
        if _running_blas_threads() < 2:
            pytest.skip("this BLAS runs on one thread here (one core): holding it to one changes nothing to see")
        yield


def test_a_hold_gives_the_blas_its_threads_back_even_after_an_error(two_blas_threads_to_hold):
    with pytest.raises(RuntimeError), blas.held_to_one_thread():
        assert _running_blas_threads() == 1 and blas.threads() == 2 and blas.tiles_allowed()
        raise RuntimeError("a step failed")
    assert _running_blas_threads() == blas.threads() == 2 and not blas.tiles_allowed()


@pytest.mark.parametrize("holder_leaves_first", [True, False])
def test_a_second_thread_runs_beside_a_hold_without_taking_it_and_the_holder_gives_it_back(
        two_blas_threads_to_hold, holder_leaves_first):
    """Two predictions at once (a server's threads): the first holds the BLAS; the second neither tiles nor takes
    the hold, and the count is back once both have left, whichever leaves last."""
    first_in, second_in, first_out, second_out = (threading.Event() for _ in range(4))
    seen = {}

    def first():
        with blas.held_to_one_thread():
            seen["first tiles"] = blas.tiles_allowed()
            first_in.set()
            second_in.wait(5)
            if not holder_leaves_first:
                second_out.wait(5)
        first_out.set()

    def second():
        first_in.wait(5)
        with blas.held_to_one_thread():
            seen["second tiles"] = blas.tiles_allowed()
            second_in.set()
            if holder_leaves_first:
                first_out.wait(5)
        second_out.set()

    workers = [threading.Thread(target=first), threading.Thread(target=second)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(10)
    assert seen == {"first tiles": True, "second tiles": False}
    assert _running_blas_threads() == 2


def test_small_batches_and_cpus_without_tiles_leave_the_blas_as_it_is(two_blas_threads_to_hold):
    with kernels.engine_threads(kernels.MIN_TILED_BATCH - 1):
        assert _running_blas_threads() == 2 and not blas.tiles_allowed()
    with kernels.engine_threads(kernels.MIN_TILED_BATCH):
        assert _running_blas_threads() == (1 if kernels.TILED_PRODUCTS else 2)
