"""The kernels the engine calls, chosen in one place.

The engine (:mod:`tinynet.engine`) imports ``im2col``, ``col2im``, the pooling and the
BatchNorm kernels (all on channels-last, NHWC, images) from here and never knows which
implementation it got: the numba-compiled loops of :mod:`.jitted` when numba is importable
and JIT is on, otherwise their readable twins in :mod:`.reference`, which are the layers'
own functions with the layout changed around them (correct, slower).
``NUMBA_DISABLE_JIT=1`` selects the reference kernels too, because numba's loops run
interpreted would be far slower than the vectorised references.

Both sets take the same arguments; see :mod:`.reference` for shapes, and the layers for
the formulas.
"""

import contextlib
import functools
import math
import os

import numpy as np

from .._checks import is_int
from ..errors import ArgumentError
from ..special import erf
from . import blas, reference
from .reference import output_size


def _load_jitted():
    """The jitted module, or None when numba is unavailable or switched off."""
    try:
        import numba
    except ImportError:
        return None
    if numba.config.DISABLE_JIT:
        return None
    from . import jitted

    return jitted


_jitted = _load_jitted()


def _load_gemm():
    """The register-tiled product of :mod:`.gemm`, or None where it cannot run or would not beat the BLAS:
    without numba, on a CPU with neither AVX-512 nor AVX2 and FMA, or when numba is told to compile for
    another CPU than this one; or where ``TINYNET_TILED_PRODUCTS=0`` is set when tinynet is imported: the
    engine then runs on the BLAS's products alone (no hold, the first layer on one thread), to compare the
    two or to keep the BLAS's rounding."""
    if _jitted is None or os.environ.get("TINYNET_TILED_PRODUCTS", "1") == "0":
        return None
    import llvmlite.binding as llvm
    from numba.core import config

    features = llvm.get_host_cpu_features()
    vectors = features.get("avx512f", False) or (features.get("avx2", False) and features.get("fma", False))
    if config.CPU_NAME not in (None, "host") or not vectors:
        return None
    from . import gemm

    return gemm


_gemm = _load_gemm()

#: Whether the engine's products run in register tiles on this CPU (:func:`matmul`; AVX-512 or AVX2, and numba),
#: where :func:`tiles_win`.
TILED_PRODUCTS = _gemm is not None
#: Whether the tiles beat the BLAS on every product here (AVX-512), or only where a prediction convolves (AVX2:
#: :func:`tiles_win`).
TILES_WIN_EVERYWHERE = TILED_PRODUCTS and _gemm.WIDE

#: Name of the kernel set in use: ``"numba"`` or ``"reference"``.
BACKEND = "numba" if _jitted is not None else "reference"


@contextlib.contextmanager
def use_backend(name):
    """Run the enclosed code on the ``"numba"`` or the ``"reference"`` kernels, then switch back.

    The tests run every model on both sets and compare them; ``"numba"`` needs numba
    (with JIT on).

    Examples
    --------
    >>> from tinynet import kernels
    >>> with kernels.use_backend("reference"):
    ...     kernels.BACKEND
    'reference'
    """
    global _jitted, BACKEND
    if name not in ("numba", "reference"):
        raise ArgumentError(f"use_backend expects 'numba' or 'reference'; received {name!r}.")
    wanted = _load_jitted() if name == "numba" else None
    if name == "numba" and wanted is None:
        raise ArgumentError("use_backend('numba') needs numba installed and NUMBA_DISABLE_JIT unset.")
    previous = _jitted, BACKEND
    _jitted, BACKEND = wanted, name
    try:
        yield
    finally:
        _jitted, BACKEND = previous


def _default_threads():
    # One kernel thread by default: the kernels are memory-bound and short, and OpenBLAS's
    # threads keep spinning between the GEMMs around them, so a second numba thread on a
    # 2-core machine fights BLAS for the cores (measured: 52 ms per CNN batch with 2+2
    # threads against 28 ms with 1 kernel thread and 2 BLAS threads).
    return max(1, int(os.environ.get("TINYNET_KERNEL_THREADS", "1")))


_threads = _default_threads()


def set_num_threads(count):
    """Use ``count`` threads in the numba kernels (default 1, or ``$TINYNET_KERNEL_THREADS``).

    Examples
    --------
    >>> previous = get_num_threads()
    >>> set_num_threads(1); get_num_threads()
    1
    >>> set_num_threads(previous)
    """
    global _threads
    if not is_int(count) or count < 1:
        raise ArgumentError(f"set_num_threads expects a positive int; received {count!r}.")
    _threads = count


def get_num_threads():
    """Number of threads the numba kernels run on.

    Examples
    --------
    >>> get_num_threads() >= 1
    True
    """
    return _threads


def _on_threads(kernel, *args):
    return _on_thread_count(_threads, kernel, *args)


def _on_thread_count(threads, kernel, *args):
    """``kernel(*args)`` on tinynet's thread count, then the caller's numba setting restored.

    Even on one image (one thread's work in every kernel's parallel loop) the count is set:
    a parallel launch wakes every thread of numba's pool, and right after a BLAS product,
    whose threads keep spinning, waking a second one took milliseconds on 2 cores (3.5 ms
    for keras_convnet's second convolution on one image, against 0.13 ms on one thread).
    """
    get_threads, set_threads, most = _numba_thread_count()
    previous = get_threads()
    wanted = min(threads, most)
    if wanted == previous:
        return kernel(*args)
    set_threads(wanted)
    try:
        return kernel(*args)
    finally:
        set_threads(previous)


@functools.cache
def _numba_thread_count():
    """``(get, set, most)``: the functions that read and set numba's thread count for the calling thread, and its
    most. numba's public pair checks its argument and that its pool is started at every call (0.5 and 0.9 us;
    a one-image prediction sets the count six times); once the pool is started, the functions they end in do the
    same in 0.2 us. Those are numba's own, not its documented API: where they are missing, the public pair."""
    import numba
    from numba.np.ufunc import parallel

    numba.get_num_threads()  # starts the pool
    get_threads, set_threads = (getattr(parallel, name, None) for name in ("_get_num_threads", "_set_num_threads"))
    if not (callable(get_threads) and callable(set_threads)) or get_threads() != numba.get_num_threads():
        get_threads, set_threads = numba.get_num_threads, numba.set_num_threads
    return get_threads, set_threads, numba.config.NUMBA_NUM_THREADS


#: Fewest rows a product needs before :func:`matmul` runs it in register tiles: below that (one image
#: through a dense layer) starting the compiled loop costs more than NumPy's whole product.
MIN_TILED_ROWS = 8
#: Fewest samples in a batch for the engine to hold the BLAS and run its products in tiles
#: (:func:`engine_threads`). One image of the MNIST CNN is faster with the BLAS as it is: holding it costs
#: 3 us a call and leaves the third convolution's 9-row product, whose filters are read transposed, on one
#: BLAS thread (24 us against 14 on two). Its convolutions still run in tiles, on the calling thread
#: (:func:`_convolution_threads`).
MIN_TILED_BATCH = 16


def matmul(a, b, out=None, accumulate=False, scale=None, shift=None, relu=False):
    """``a @ b`` for 2-D ``a`` ``(M, K)`` and ``b`` ``(K, N)``: written into ``out`` when given, added to it with
    ``accumulate=True``; then, per column, times ``scale`` and plus ``shift`` (``(N,)`` arrays, each optional)
    and, with ``relu=True``, a ReLU.

    Where the tiles run (:data:`TILED_PRODUCTS`), inside the hold of :func:`engine_threads` (or, with AVX-512,
    a part of a batch in parts), float32 products with ``N`` a multiple of :data:`.gemm.COLUMNS` (32 with
    AVX-512, 16 with AVX2; or at most 16 and not that, without ``accumulate``: a 10-class output layer),
    ``b``'s and ``out``'s columns adjacent and at least :data:`MIN_TILED_ROWS` rows run in register tiles
    (:mod:`.gemm`, on as many threads as the BLAS had, or one in a part of a batch in parts), the scale,
    shift and ReLU applied as each tile is stored; everything else is NumPy's product followed by ``*=``,
    ``+=`` and ``np.maximum``, the kernel's readable twin.

    Examples
    --------
    >>> a, b = np.ones((2, 3), np.float32), np.ones((3, 4), np.float32)
    >>> matmul(a, b)
    array([[3., 3., 3., 3.],
           [3., 3., 3., 3.]], dtype=float32)
    >>> matmul(a, b, shift=np.array([-4, -3, 0, 1], np.float32), relu=True)[0]   # a bias, then a ReLU
    array([0., 0., 3., 4.], dtype=float32)
    """
    if accumulate and out is None:
        raise ArgumentError("matmul(accumulate=True) adds into out: pass the array to add into as out=.")
    if _tiles(a, b, out, accumulate) and _per_column(scale, b) and _per_column(shift, b):
        if out is None:
            out = np.empty((a.shape[0], b.shape[1]), np.float32)
        if _narrow(b):
            _on_thread_count(blas.product_threads(), _gemm.narrow_product, a, b, out,
                             *_tile_epilogue(b, scale, shift), bool(relu))
        else:
            _on_thread_count(blas.product_threads(), _gemm.product, a, b, out, bool(accumulate),
                             *_tile_epilogue(b, scale, shift), bool(relu))
        return out
    if accumulate:
        out += a @ b
    else:
        out = np.matmul(a, b, out=out)
    if scale is not None:
        out *= scale
    if shift is not None:
        out += shift
    if relu:
        np.maximum(out, 0, out=out)
    return out


def _tile_epilogue(b, scale, shift):
    """``(scale, shift, affine)`` as the tiles take them: arrays always (the identity's where not given, read
    but not applied), and whether to apply them."""
    affine = scale is not None or shift is not None
    return (_identity(b.shape[1], np.float32, 1) if scale is None else scale,
            _identity(b.shape[1], np.float32, 0) if shift is None else shift, affine)


def _per_column(vector, b):
    """Whether ``vector`` (None, or a per-column scale or shift) can be read by the tiles as it is."""
    return vector is None or (vector.dtype == np.float32 and vector.shape == (b.shape[1],) and vector.strides == (4,))


def tiled_layout(b):
    """``b`` with adjacent columns (a copy) where :func:`matmul` would multiply by it in register tiles now, ``b``
    itself elsewhere: for a right factor read transposed (``W.T``) by many products in a row, laid out once.

    Examples
    --------
    >>> w = np.ones((64, 32), np.float32)
    >>> tiled_layout(w.T).shape                          # the same values, whichever layout
    (32, 64)
    """
    if not _tiles_allowed() or b.dtype != np.float32:
        return b
    return np.ascontiguousarray(b)


def tiles_win(training, convolves):
    """Whether a plan's batches run faster with the BLAS held and the products in register tiles
    (:func:`engine_threads`): with AVX-512 always; with AVX2 only for a prediction of a plan that convolves.

    OpenBLAS's own AVX2 kernels multiply a plain product as fast as these tiles or faster (a 128 x 784 by
    784 x 128 one at 153 GFLOP/s against their 120), and a training step is mostly such products (weight gradients,
    input gradients): on an AMD EPYC Zen 3 training small_cnn, keras_convnet, cnn or basic_mlp took 1.07-1.28
    times as long with the tiles. A prediction's convolutions are the tiles' own: their windows read where
    they lie, the pooling taken in the store, the first layer on both threads (benchmarks/RESULTS.md).

    Examples
    --------
    >>> tiles_win(training=False, convolves=True) == TILED_PRODUCTS     # a convnet's prediction: wherever they run
    True
    >>> tiles_win(training=True, convolves=True) == TILES_WIN_EVERYWHERE
    True
    """
    return TILES_WIN_EVERYWHERE or (TILED_PRODUCTS and convolves and not training)


def engine_threads(samples, tiles_win=True):
    """The thread setting the engine runs a batch of ``samples`` under: where products run in register tiles,
    :func:`tiles_win` says they pay (``tiles_win``, from the plan) and the batch has at least
    :data:`MIN_TILED_BATCH` samples, the BLAS held to one thread and the tiles on the threads it had (see
    :mod:`.blas`; ``tiles_win`` left True holds wherever the tiles run: the engine passes its plan's);
    otherwise the BLAS as it is, and tiles only for the convolutions of fewer images than
    that, on the calling thread (:func:`_convolution_threads`).

    Examples
    --------
    >>> a, b = np.ones((64, 8), np.float32), np.ones((8, 32), np.float32)
    >>> with engine_threads(len(a)):                     # a batch of 64: in tiles where they run
    ...     float(matmul(a, b)[0, 0])
    8.0
    """
    if not _tiles_here() or not tiles_win or samples < MIN_TILED_BATCH:
        return contextlib.nullcontext()
    return blas.held_to_one_thread()


def _tiles_here():
    """Whether the register tiles exist here: compiled for this CPU, and the numba kernels in use."""
    return _gemm is not None and _jitted is not None


def _tiles_allowed():
    """Whether this thread's products may run in register tiles now: inside the engine's hold, or in a part of a
    batch in parts where the tiles win on every product (:data:`TILES_WIN_EVERYWHERE`; with AVX2 a part's
    products stay the BLAS's)."""
    return _tiles_here() and (blas.tiles_allowed() if TILES_WIN_EVERYWHERE else blas.in_hold())


def _tiles(a, b, out, accumulate=False):
    """Whether :func:`matmul` runs ``a @ b`` in register tiles (narrow ones for at most 16 columns, which do not
    add into ``out``)."""
    return (_tiles_allowed() and a.dtype == np.float32 and a.ndim == 2
            and a.shape[1] == b.shape[0] and a.strides[0] % 4 == 0 and a.strides[1] % 4 == 0
            and _tiled_output(a, a.shape[0], b, out, narrow=not accumulate))


def _narrow(b):
    """Whether a tiled product by ``b`` runs in narrow tiles (:func:`.gemm.narrow_product`): 1 to 16 columns, and
    not whole tiles."""
    return 0 < b.shape[1] <= _gemm.NARROW_COLUMNS and b.shape[1] % _gemm.COLUMNS != 0


def _convolution_threads(images):
    """Threads for a convolution's tiles (0: none). Where products may run in tiles (the engine's hold, or with
    AVX-512 a part of a batch in parts), the tiled products' (:func:`.blas.product_threads`); with AVX2 none in
    a part, whose products are the BLAS's. Elsewhere, for fewer images than :data:`MIN_TILED_BATCH` (a small
    batch, or a chunk of one), one: the calling thread's own under numba's OpenMP layer, which wakes no other
    thread to spin beside the BLAS's. On an AMD EPYC Zen 5 (AVX-512) a one-image prediction of ``cnn()`` spent
    40 us in its second convolution this way against 55-81 us of im2col, the BLAS's product and the pooling; on
    a Zen 3 (AVX2) one-image predictions of the convnets were level either way (0.99-1.08, tiles off over on)."""
    if not _tiles_here():
        return 0
    if _tiles_allowed():
        return blas.product_threads()
    if blas.tiles_allowed():  # a part of a batch in parts, with AVX2
        return 0
    return 1 if images < MIN_TILED_BATCH else 0


def _tiled_output(a, rows, b, out, narrow=False):
    """Whether the tiles can multiply ``rows`` rows read from ``a`` by ``b`` into ``out`` (None: a new array);
    with ``narrow``, the narrow tiles too."""
    float32 = np.float32
    return (b.dtype == float32 and b.ndim == 2 and rows >= MIN_TILED_ROWS
            and (b.shape[1] % _gemm.COLUMNS == 0 or (narrow and _narrow(b)))
            and b.strides[1] == 4 and b.strides[0] % 4 == 0
            and (out is None or (out.dtype == float32 and out.strides[1] == 4 and out.strides[0] % 4 == 0
                                 and out.shape == (rows, b.shape[1])
                                 # the tiles write while they read: an out over a or b is NumPy's to handle
                                 and not np.may_share_memory(out, a) and not np.may_share_memory(out, b))))


def convolution_matmul(x, kh, kw, sh, sw, columns, out=None, scale=None, shift=None, relu=False):
    """``im2col(x, kh, kw, sh, sw, 0, 0)`` as ``(n*P, kh*kw*C)`` rows times ``columns`` ``(kh*kw*C, F)`` (the
    filters, a column each), with :func:`matmul`'s ``out``, ``scale``, ``shift`` and ``relu``: a convolution
    without padding of NHWC images ``x``, ``(n*P, F)``.

    Where the tiles run (inside :func:`engine_threads` on their threads, or for fewer images than
    :data:`MIN_TILED_BATCH` on the calling thread alone), they read each window where it lies in ``x``
    (:func:`.gemm.convolution`) and the columns are never written; elsewhere this is :func:`im2col` then
    :func:`matmul`, its readable twin.

    Examples
    --------
    >>> x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)   # one 4x4 image, NHWC
    >>> convolution_matmul(x, 3, 3, 1, 1, np.ones((9, 1), np.float32)).ravel()   # each 3x3 window's sum
    array([45., 54., 81., 90.], dtype=float32)
    """
    n, height, width, channels = x.shape
    rows = n * output_size(height, kh, sh, 0) * output_size(width, kw, sw, 0)
    threads = _convolution_threads(n)
    if (threads and x.dtype == np.float32 and x.flags.c_contiguous and columns.shape[0] == kh * kw * channels
            and _tiled_output(x, rows, columns, out) and _per_column(scale, columns) and _per_column(shift, columns)):
        row_offsets, window_offsets = _window_offsets(n, height, width, channels, kh, kw, sh, sw)
        if out is None:
            out = np.empty((rows, columns.shape[1]), np.float32)
        _on_thread_count(threads, _gemm.convolution, x.reshape(-1), row_offsets, window_offsets, channels, columns,
                         out, *_tile_epilogue(columns, scale, shift), bool(relu))
        return out
    cols = im2col(x, kh, kw, sh, sw, 0, 0)
    return matmul(cols.reshape(-1, cols.shape[2]), columns, out=out, scale=scale, shift=shift, relu=relu)


def convolution_maxpool(x, kh, kw, sh, sw, columns, relu=False, bias=None, scale=None, shift=None):
    """A convolution without padding of NHWC images ``x`` by ``columns`` (as :func:`convolution_matmul`), then a 2x2
    max pooling of stride 2 with :func:`maxpool_infer`'s ``relu``, ``bias``, ``scale`` and ``shift``:
    ``(n, out_h // 2, out_w // 2, F)``.

    Where the tiles run (as for :func:`convolution_matmul`), each tile holds the four pixels of two pooling
    windows and stores their maxima (:func:`.gemm.pooled_convolution`): neither the convolution's output nor its
    columns are written, and the pixels no window reads (an odd last row and column) are not computed.
    Elsewhere it is :func:`convolution_matmul` then :func:`maxpool_infer`, its readable twin.

    Examples
    --------
    >>> x = np.arange(25, dtype=np.float32).reshape(1, 5, 5, 1)
    >>> convolution_maxpool(x, 2, 2, 1, 1, np.ones((4, 1), np.float32))[0, :, :, 0]   # 2x2 sums, then their maxima
    array([[36., 44.],
           [76., 84.]], dtype=float32)
    """
    n, height, width, channels = x.shape
    out_h, out_w = output_size(height, kh, sh, 0), output_size(width, kw, sw, 0)
    filters = columns.shape[1]
    bias, scale, shift = _per_channel(filters, columns.dtype, bias, scale, shift)
    rows = n * (out_h // 2) * (out_w // 2) * 4
    threads = _convolution_threads(n)
    if (threads and x.dtype == np.float32 and x.flags.c_contiguous and columns.shape[0] == kh * kw * channels
            and rows and _tiled_output(x, rows, columns, None)
            and all(_per_column(v, columns) for v in (bias, scale, shift))):
        row_offsets, window_offsets = _window_offsets(n, height, width, channels, kh, kw, sh, sw, pooled=True)
        out = np.empty((rows // 4, filters), np.float32)
        _on_thread_count(threads, _gemm.pooled_convolution, x.reshape(-1), row_offsets, window_offsets, channels,
                         columns, out, bias, scale, shift, bool(relu))
        return out.reshape(n, out_h // 2, out_w // 2, filters)
    y = convolution_matmul(x, kh, kw, sh, sw, columns).reshape(n, out_h, out_w, filters)
    return maxpool_infer(y, 2, 2, 2, 2, relu, bias, scale, shift)


@functools.lru_cache(maxsize=32)
def _window_offsets(n, height, width, channels, kh, kw, sh, sw, pooled=False):
    """``(row_offsets, window_offsets)`` of :func:`.gemm.convolution` for NHWC images: where each output pixel's
    window starts in the flat images, and where each ``(i, j)`` of it starts from there (int64, read-only).
    ``pooled``: the pixels of each 2x2 pooling window in turn, ``(0, 0), (0, 1), (1, 0), (1, 1)``, those of
    no window left out (:func:`.gemm.pooled_convolution`)."""
    out_h, out_w = output_size(height, kh, sh, 0), output_size(width, kw, sw, 0)
    if pooled:
        image, row, column, down, right = np.ogrid[:n, : out_h // 2, : out_w // 2, :2, :2]
        row, column = 2 * row + down, 2 * column + right
    else:
        image, row, column = np.ogrid[:n, :out_h, :out_w]
    row_offsets = (((image * height + row * sh) * width + column * sw) * channels).astype(np.int64).ravel()
    i, j = np.ogrid[:kh, :kw]
    window_offsets = ((i * width + j) * channels).astype(np.int64).ravel()
    for offsets in (row_offsets, window_offsets):
        offsets.flags.writeable = False
    return row_offsets, window_offsets


def _contiguous(array):
    # The jitted kernels are compiled for C-contiguous arrays; a strided view would
    # compile (and run) a second, slower specialisation.
    return np.ascontiguousarray(array)


def im2col(x, kh, kw, sh, sw, ph, pw):
    """``(N, H, W, C) -> (N, out_h*out_w, kh*kw*C)``; see :func:`.reference.im2col_reference`.

    Examples
    --------
    >>> x = np.arange(16.0).reshape(1, 4, 4, 1)        # one 4x4 image, one channel, NHWC
    >>> cols = im2col(x, 3, 3, 1, 1, 0, 0)            # 3x3 windows, stride 1, no padding
    >>> cols.shape, cols[0, 0]                         # the first window, row by row
    ((1, 4, 9), array([ 0.,  1.,  2.,  4.,  5.,  6.,  8.,  9., 10.]))
    """
    if _jitted is None:
        return reference.im2col_reference(x, kh, kw, sh, sw, ph, pw)
    return _on_thread_count(_threads_in_hold(x, _threads), _jitted.im2col, _contiguous(x), kh, kw, sh, sw, ph, pw)


def im2col_transposed(x, kh, kw, sh, sw, ph, pw):
    """``(N, H, W, C) -> (kh*kw*C, N*out_h*out_w)``; see :func:`.reference.im2col_transposed_reference`.

    Examples
    --------
    >>> x = np.arange(16.0).reshape(1, 4, 4, 1)
    >>> im2col_transposed(x, 3, 3, 1, 1, 0, 0)[:, 0]   # the first window, as a column
    array([ 0.,  1.,  2.,  4.,  5.,  6.,  8.,  9., 10.])
    """
    if _jitted is None:
        return reference.im2col_transposed_reference(x, kh, kw, sh, sw, ph, pw)
    return _on_threads(_jitted.im2col_transposed, _contiguous(x), kh, kw, sh, sw, ph, pw)


def im2col_filter_order(x, kh, kw, sh, sw, ph, pw):
    """``(N, H, W, C) -> (N, out_h*out_w, C*kh*kw)``, each window in the filters' order ``(c, i, j)``; see
    :func:`.reference.im2col_filter_order_reference`.

    Examples
    --------
    >>> x = np.arange(8.0).reshape(1, 2, 2, 2)          # 2x2 pixels, 2 channels: channel 0 holds 0, 2, 4, 6
    >>> im2col_filter_order(x, 2, 2, 1, 1, 0, 0)[0, 0]  # channel 0's window, then channel 1's
    array([0., 2., 4., 6., 1., 3., 5., 7.])
    """
    if _jitted is None:
        return reference.im2col_filter_order_reference(x, kh, kw, sh, sw, ph, pw)
    return _on_threads(_jitted.im2col_filter_order, _contiguous(x), kh, kw, sh, sw, ph, pw)


def col2im(cols, x_shape, kh, kw, sh, sw, ph, pw):
    """Adjoint of :func:`im2col`; see :func:`.reference.col2im_reference`.

    Examples
    --------
    Each input pixel receives the sum over every window that covered it:

    >>> counts = col2im(np.ones((1, 4, 9)), (1, 4, 4, 1), 3, 3, 1, 1, 0, 0)
    >>> counts[0, :, :, 0]
    array([[1., 2., 2., 1.],
           [2., 4., 4., 2.],
           [2., 4., 4., 2.],
           [1., 2., 2., 1.]])
    """
    if _jitted is None:
        return reference.col2im_reference(cols, x_shape, kh, kw, sh, sw, ph, pw)
    return _on_threads(_jitted.col2im, _contiguous(cols), tuple(x_shape), kh, kw, sh, sw, ph, pw)


def maxpool_forward(x, kh, kw, sh, sw, relu=False, bias=None):
    """``(out, argmax)`` of NHWC images; see :func:`.reference.maxpool_forward_reference`.

    Examples
    --------
    >>> x = np.array([1.0, 5.0, 3.0, 4.0]).reshape(1, 2, 2, 1)
    >>> out, argmax = maxpool_forward(x, 2, 2, 2, 2)
    >>> float(out[0, 0, 0, 0]), int(argmax[0, 0, 0, 0])   # the max, and its offset in the window
    (5.0, 1)
    """
    if _jitted is None:
        return reference.maxpool_forward_reference(x, kh, kw, sh, sw, relu, bias)
    # No bias is a bias of zeros: one compiled signature, and x + 0 == x exactly.
    bias = np.zeros(x.shape[3], x.dtype) if bias is None else _contiguous(bias.astype(x.dtype, copy=False))
    return _on_threads(_jitted.maxpool_forward, _contiguous(x), kh, kw, sh, sw, bool(relu), bias)


def maxpool_infer(x, kh, kw, sh, sw, relu=False, bias=None, scale=None, shift=None):
    """The pooled values only, ``* scale + shift`` per channel; see :func:`.reference.maxpool_infer_reference`.

    Examples
    --------
    >>> x = np.array([1.0, 5.0, 3.0, 4.0]).reshape(1, 2, 2, 1)
    >>> float(maxpool_infer(x, 2, 2, 2, 2, scale=np.array([2.0]), shift=np.array([1.0]))[0, 0, 0, 0])
    11.0
    """
    if _jitted is None:
        return reference.maxpool_infer_reference(x, kh, kw, sh, sw, relu, bias, scale, shift)
    bias, scale, shift = _per_channel(x.shape[3], x.dtype, bias, scale, shift)
    return _on_threads(_jitted.maxpool_infer, _contiguous(x), kh, kw, sh, sw, bool(relu), bias, scale, shift)


def conv_maxpool_infer(x, taps, kh, kw, sh, sw, pool_h, pool_w, pool_sh, pool_sw, relu=False, bias=None,
                       scale=None, shift=None):
    """A convolution (no padding) computed straight into the max pooling after it, at inference;
    see :func:`.reference.conv_maxpool_infer_reference`. A float32 batch of :data:`MIN_TILED_BATCH` images or
    more in the engine's hold on two threads or more, pooled 2x2 with stride 2, its filters a multiple of
    :data:`.gemm.COLUMNS` (32 with AVX-512, 16 with AVX2),
    runs through :func:`convolution_maxpool` (the pooled register tiles where they run), at most 1,024 images
    at a time; everything else in one compiled pass over the pooling windows.

    Examples
    --------
    >>> x = np.arange(16.0).reshape(1, 4, 4, 1)
    >>> taps = np.zeros((9, 1)); taps[4] = 1.0             # a 3x3 filter that keeps the centre pixel
    >>> conv_maxpool_infer(x, taps, 3, 3, 1, 1, 2, 2, 2, 2)[0, :, :, 0]   # max of pixels 5, 6, 9, 10
    array([[10.]])
    """
    if _jitted is None:
        return reference.conv_maxpool_infer_reference(x, taps, kh, kw, sh, sw, pool_h, pool_w, pool_sh, pool_sw,
                                                      relu, bias, scale, shift)
    filters, dtype = taps.shape[1], x.dtype
    bias, scale, shift = _per_channel(filters, dtype, bias, scale, shift)
    x, taps = _contiguous(x), _contiguous(taps.astype(dtype, copy=False))
    parts = _threads_in_hold(x, 1)
    if (parts > 1 and _tiles_here() and dtype == np.float32 and (pool_h, pool_w, pool_sh, pool_sw) == (2, 2, 2, 2)
            and filters % _gemm.COLUMNS == 0):
        # A batch in the hold: the pooled tiles (one window's taps a row of K) are faster than the loops below
        # even for 9 taps (128 MNIST images, 32 filters: 186-214 us against 300-355). In parts of at most
        # _THIN_TILED_IMAGES images: the tiles' table of window offsets (cached) stays bounded.
        pooled = [convolution_maxpool(x[start : start + _THIN_TILED_IMAGES], kh, kw, sh, sw, taps, relu, bias,
                                      scale, shift) for start in range(0, len(x), _THIN_TILED_IMAGES)]
        return np.concatenate(pooled) if len(pooled) > 1 else pooled[0]
    if parts > 1 and (kh, kw, sh, sw, x.shape[3], pool_h, pool_w, pool_sh, pool_sw) == (3, 3, 1, 1, 1, 2, 2, 2, 2):
        return _on_thread_count(parts, _jitted.conv_maxpool_3x3, x, taps, bias, bool(relu), scale, shift, False,
                                parts)[0]
    # A plain loop, not a parallel one (see its comment): no thread count to set.
    return _jitted.conv_maxpool_infer(x, taps, kh, kw, sh, sw, pool_h, pool_w, pool_sh, pool_sw, bool(relu), bias,
                                      scale, shift)


#: Images a thin convolution's batch sends to the pooled tiles at a time (:func:`conv_maxpool_infer`): their window
#: offsets, 32 bytes a pooled pixel (5.5 MB for 1,024 MNIST images), are cached per batch shape. A batch of
#: ``predict``'s 1,000 goes in one call: parts of 256 cost 4-14% of a keras_convnet prediction in joining them.
_THIN_TILED_IMAGES = 1024


def _threads_in_hold(x, elsewhere):
    """Threads for a compiled pass over the batch ``x``: the tiled products' inside the engine's hold (the BLAS's
    threads idle there) for a batch of :data:`MIN_TILED_BATCH` or more, ``elsewhere`` otherwise (a second thread
    would spin beside the BLAS's). The first layer's loop (:func:`conv_maxpool_forward`,
    :func:`conv_maxpool_infer`) is cut into that many ranges of images, one a thread."""
    return blas.product_threads() if blas.tiles_allowed() and len(x) >= MIN_TILED_BATCH else elsewhere


def conv_maxpool_forward(x, taps, bias):
    """A 3x3 convolution of one channel (stride 1, no padding), its bias, ReLU and 2x2 max pooling (stride 2) in
    one pass, for training: ``(out, argmax)``; see :func:`.reference.conv_maxpool_forward_reference`.

    Examples
    --------
    >>> x = np.arange(16.0).reshape(1, 4, 4, 1)
    >>> taps = np.zeros((9, 1)); taps[4] = 1.0             # a 3x3 filter that keeps the centre pixel
    >>> out, argmax = conv_maxpool_forward(x, taps, np.zeros(1))
    >>> float(out[0, 0, 0, 0]), int(argmax[0, 0, 0, 0])   # pixels 5, 6, 9, 10: the last (offset 3) is largest
    (10.0, 3)
    """
    if _jitted is None:
        return reference.conv_maxpool_forward_reference(x, taps, bias)
    filters, dtype = taps.shape[1], x.dtype
    _, scale, shift = _per_channel(filters, dtype, None, None, None)  # no BatchNorm after it in training
    parts = _threads_in_hold(x, 1)
    taps, bias = (_contiguous(array.astype(dtype, copy=False)) for array in (taps, bias))
    return _on_thread_count(parts, _jitted.conv_maxpool_3x3, _contiguous(x), taps, bias, True, scale, shift, True,
                            parts)


def conv_maxpool_weight_grads(x, grad, argmax):
    """``(taps_grad, bias_grad)`` ``(9, F), (F,)``: :func:`conv_maxpool_forward`'s backward to its filters and bias
    from the pooled gradient ``grad`` and the forward's ``argmax``; see
    :func:`.reference.conv_maxpool_weight_grads_reference`.

    Examples
    --------
    >>> x = np.arange(16.0).reshape(1, 4, 4, 1)
    >>> taps = np.zeros((9, 1)); taps[4] = 1.0
    >>> out, argmax = conv_maxpool_forward(x, taps, np.zeros(1))  # the window's maximum: pixel 10, under tap 4
    >>> taps_grad, bias_grad = conv_maxpool_weight_grads(x, np.ones_like(out), argmax)
    >>> taps_grad[:, 0], bias_grad                         # each tap gets the pixel it saw at that output
    (array([ 5.,  6.,  7.,  9., 10., 11., 13., 14., 15.]), array([1.]))
    """
    if _jitted is None:
        return reference.conv_maxpool_weight_grads_reference(x, grad, argmax)
    return _jitted.conv_maxpool_weight_grads(_contiguous(x), _contiguous(grad.astype(x.dtype, copy=False)),
                                             _contiguous(argmax))


def _per_channel(channels, dtype, bias, scale, shift):
    """``(bias, scale, shift)`` as contiguous arrays; what is not given is the identity (+ 0, * 1), which changes
    no value and keeps one compiled signature."""
    return tuple(_identity(channels, dtype, fill) if given is None else _contiguous(given.astype(dtype, copy=False))
                 for given, fill in ((bias, 0), (scale, 1), (shift, 0)))


_identities = {}  # (channels, dtype, 0 or 1) -> the array: made once, only ever read by the kernels


def _identity(channels, dtype, fill):
    key = (channels, np.dtype(dtype), fill)
    if key not in _identities:
        _identities[key] = np.full(channels, fill, dtype)
    return _identities[key]


def maxpool_backward(grad_out, argmax, x_shape, kh, kw, sh, sw):
    """Gradient routed to each window's maximum; see :func:`.reference.maxpool_backward_reference`.

    Examples
    --------
    >>> dx = maxpool_backward(np.full((1, 1, 1, 1), 7.0), np.ones((1, 1, 1, 1), np.int32), (1, 2, 2, 1),
    ...                       2, 2, 2, 2)
    >>> dx[0, :, :, 0]
    array([[0., 7.],
           [0., 0.]])
    """
    if _jitted is None:
        return reference.maxpool_backward_reference(grad_out, argmax, x_shape, kh, kw, sh, sw)
    return _on_threads(_jitted.maxpool_backward, _contiguous(grad_out), _contiguous(argmax), tuple(x_shape),
                       kh, kw, sh, sw)


def avgpool_forward(x, kh, kw, sh, sw):
    """Window means of NHWC images; see :func:`.reference.avgpool_forward_reference`.

    Examples
    --------
    >>> avgpool_forward(np.array([1.0, 5.0, 3.0, 3.0]).reshape(1, 2, 2, 1), 2, 2, 2, 2).ravel()
    array([3.])
    """
    if _jitted is None:
        return reference.avgpool_forward_reference(x, kh, kw, sh, sw)
    return _on_threads(_jitted.avgpool_forward, _contiguous(x), kh, kw, sh, sw)


def avgpool_backward(grad_out, x_shape, kh, kw, sh, sw):
    """Gradient spread evenly over each window; see :func:`.reference.avgpool_backward_reference`.

    Examples
    --------
    >>> avgpool_backward(np.full((1, 1, 1, 1), 8.0), (1, 2, 2, 1), 2, 2, 2, 2)[0, :, :, 0]
    array([[2., 2.],
           [2., 2.]])
    """
    if _jitted is None:
        return reference.avgpool_backward_reference(grad_out, x_shape, kh, kw, sh, sw)
    return _on_threads(_jitted.avgpool_backward, _contiguous(grad_out), tuple(x_shape), kh, kw, sh, sw)


def affine_warp(x, matrices):
    """Each image warped by its own affine map, bilinear; see :func:`.reference.affine_warp_reference`.

    Examples
    --------
    >>> x = np.zeros((1, 1, 3, 3)); x[0, 0, 1, 1] = 1.0
    >>> shift_right = np.array([[[1.0, 0.0, 0.0], [0.0, 1.0, -1.0]]])   # output (r, c) reads input (r, c - 1)
    >>> affine_warp(x, shift_right)[0, 0]
    array([[0., 0., 0.],
           [0., 0., 1.],
           [0., 0., 0.]])
    """
    if _jitted is None:
        return reference.affine_warp_reference(x, matrices)
    return _on_threads(_jitted.affine_warp, _contiguous(x), _contiguous(matrices.astype(np.float64)))


def adam_update(param, grad, m, v, lr, beta1, beta2, eps, step, l2=0.0, decay=1.0):
    """One Adam step on one parameter, in place, as one numba loop: the rule of :func:`tinynet.optim.adam_update`.

    ``param``, ``grad``, ``m`` and ``v`` must have one shape (a ValueError otherwise: the
    compiled loop has no bounds checks, so it is never handed arrays that do not match).
    Needs numba (``BACKEND == "numba"``); :class:`tinynet.optim.Adam` chooses.

    Examples
    --------
    >>> p, g = np.ones(2, np.float32), np.array([0.5, -0.5], np.float32)
    >>> m, v = np.zeros(2, np.float32), np.zeros(2, np.float32)
    >>> from tinynet import optim
    >>> step = adam_update if BACKEND == "numba" else optim.adam_update   # without numba: the rule it compiles
    >>> step(p, g, m, v, lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8, step=1)
    >>> p.round(6)                                     # the first step moves each weight by lr
    array([0.9, 1.1], dtype=float32)
    """
    if not (param.shape == grad.shape == m.shape == v.shape) or not (param.dtype == m.dtype == v.dtype):
        raise ArgumentError(
            f"adam_update needs param, grad and moments of one shape and dtype; received "
            f"{param.dtype}{param.shape}, {grad.dtype}{grad.shape}, {m.dtype}{m.shape}, {v.dtype}{v.shape}."
        )
    if _jitted is None or not (param.flags.c_contiguous and m.flags.c_contiguous and v.flags.c_contiguous):
        raise ArgumentError("kernels.adam_update needs numba and contiguous arrays; use tinynet.optim.adam_update.")
    # Flat views: one compiled signature per dtype, whatever the parameter's shape.
    flat = (param.reshape(-1), _contiguous(grad.astype(param.dtype, copy=False)).reshape(-1), m.reshape(-1),
            v.reshape(-1))
    scalars = _adam_scalars(param.dtype, lr, beta1, beta2, eps, step, l2, decay)
    parts = blas.product_threads() if blas.tiles_allowed() else 1
    if parts > 1 and param.size >= MIN_ADAM_PART * parts:  # inside the engine's hold: the tiled products' threads
        _on_thread_count(parts, _jitted.adam_update_in_parts, *flat, *scalars, parts)
    else:
        _jitted.adam_update(*flat, *scalars)


#: Fewest weights a thread's share of an Adam step gets: below that, starting the threads costs more than the
#: share saves (a Dense layer's bias, a LayerNorm's scale).
MIN_ADAM_PART = 16_384


@functools.lru_cache(maxsize=16)
def _adam_scalars(dtype, lr, beta1, beta2, eps, step, l2, decay):
    """The compiled Adam step's scalars in the parameters' dtype, worked out once a step for all of a
    model's parameters (a transformer has dozens of small ones; each call's setup counts)."""
    dtype = dtype.type
    return (dtype(lr / (1 - beta1**step)), dtype(beta1), dtype(1 - beta1), dtype(beta2), dtype(1 - beta2),
            dtype(eps), dtype(math.sqrt(1 - beta2**step)), dtype(l2), dtype(decay))


def batchnorm_forward(rows, gamma, beta, eps):
    """Training-mode BatchNorm of the columns of ``(M, C)`` rows; see :func:`.reference.batchnorm_forward_reference`.

    Returns ``(y, x_hat, mean, var, inv_std)``.

    Examples
    --------
    >>> rows = np.array([[1.0, 10.0], [3.0, 30.0]])
    >>> y, x_hat, mean, var, inv_std = batchnorm_forward(rows, np.ones(2), np.zeros(2), 1e-5)
    >>> mean, var, y.round(3)
    (array([ 2., 20.]), array([  1., 100.]), array([[-1., -1.],
           [ 1.,  1.]]))
    """
    if _jitted is None:
        return reference.batchnorm_forward_reference(rows, gamma, beta, eps)
    return _jitted.batchnorm_forward(_contiguous(rows), gamma, beta, float(eps))


def batchnorm_backward(grad, x_hat, gamma, inv_std):
    """``(dx, dgamma, dbeta)`` of :func:`batchnorm_forward`; see :func:`.reference.batchnorm_backward_reference`.

    Examples
    --------
    A gradient that is the same for every row moves nothing: the batch mean takes it away.

    >>> x_hat = np.array([[-1.0], [1.0]])
    >>> dx, dgamma, dbeta = batchnorm_backward(np.ones((2, 1)), x_hat, np.ones(1), np.ones(1))
    >>> dx.ravel(), dgamma, dbeta
    (array([0., 0.]), array([0.]), array([2.]))
    """
    if _jitted is None:
        return reference.batchnorm_backward_reference(grad, x_hat, gamma, inv_std)
    return _jitted.batchnorm_backward(_contiguous(grad), _contiguous(x_hat), gamma, inv_std)


def _compiled_lstm_step(inputs, outputs):
    """Whether an LSTM step's arrays suit its compiled kernel: float32 (float64, the gradient checks', runs the
    twin), and outputs the kernel can write in place (C-contiguous; a copy would not reach the caller)."""
    return (_jitted is not None and all(array.dtype == np.float32 for array in inputs + outputs)
            and all(array.flags.c_contiguous for array in outputs))


def lstm_cell_into(z, x_share, c_prev, gates, c, h):
    """A step of the LSTM after its product, written into ``gates``, ``c`` and ``h``; see
    :func:`.reference.lstm_cell_into_reference`.

    Examples
    --------
    >>> z, gates = np.zeros((1, 4), np.float32), np.empty((1, 4), np.float32)
    >>> c, h = np.empty((1, 1), np.float32), np.empty((1, 1), np.float32)
    >>> lstm_cell_into(z, np.zeros((1, 4), np.float32), np.ones((1, 1), np.float32), gates, c, h)
    >>> gates, c                                       # every gate half open, g = tanh(0) = 0
    (array([[0.5, 0.5, 0. , 0.5]], dtype=float32), array([[0.5]], dtype=float32))
    """
    if not _compiled_lstm_step((x_share, c_prev), (z, gates, c, h)):
        return reference.lstm_cell_into_reference(z, x_share, c_prev, gates, c, h)
    # One thread: a step is too short to split.
    _jitted.lstm_cell_into(z, _contiguous(x_share), _contiguous(c_prev), gates, c, h)


def lstm_steps(x_part, W_h, h, c, gates):
    """An LSTM's steps ``t = 1 .. T`` in place: ``z = h[t-1] W_h`` (:func:`matmul`), then
    :func:`lstm_cell_into` of ``z`` and ``x_part[t-1]`` into ``gates[t-1]``, ``c[t]`` and ``h[t]``;
    ``h`` and ``c`` ``(S, N, H)`` hold ``h_0`` and ``c_0`` in their first entry, and ``h``, ``c`` and
    ``gates`` ``(G, N, 4H)`` are indexed modulo their length: ``S = T + 1`` and ``G = T`` keep every step's,
    ``S = 2`` and ``G = 1`` only the current state (a prediction of the last one).

    Where the step's product runs in register tiles on one thread with AVX-512 (a part of a batch in parts,
    or a hold of a one-thread BLAS), the whole loop runs compiled (:func:`.gemm.lstm_steps`): the same products and
    cells, the same bits, without a Python call a step. Elsewhere :func:`lstm_steps_loop`, its readable twin.

    Examples
    --------
    >>> x_part, W_h = np.zeros((3, 2, 4), np.float32), np.zeros((1, 4), np.float32)   # T=3, N=2, H=1
    >>> h, c, gates = np.zeros((2, 2, 1), np.float32), np.zeros((2, 2, 1), np.float32), np.empty((1, 2, 4), np.float32)
    >>> c[0] = 1.0; lstm_steps(x_part, W_h, h, c, gates)    # every gate half open, g = 0: c halves each step
    >>> float(c[3 % 2][0, 0])
    0.125
    """
    n, four = x_part.shape[1:]
    if (TILES_WIN_EVERYWHERE and _tiles_allowed() and blas.product_threads() == 1 and n >= MIN_TILED_ROWS
            and four % _gemm.COLUMNS == 0 and _compiled_lstm_step((x_part, W_h), (h, c, gates))
            and x_part.flags.c_contiguous and W_h.flags.c_contiguous):
        _on_thread_count(1, _gemm.lstm_steps, x_part, W_h, h, c, gates)
    else:
        lstm_steps_loop(x_part, W_h, h, c, gates)


def lstm_steps_loop(x_part, W_h, h, c, gates):
    """:func:`lstm_steps` as a Python loop over time, a call of the product and one of the cell a step: the compiled
    loop's readable twin, and what runs where that one does not."""
    steps, n, four = x_part.shape
    z = np.empty((n, four), dtype=x_part.dtype)
    for t in range(1, steps + 1):
        matmul(h[(t - 1) % len(h)], W_h, out=z)  # h_{t-1} W_h: (N,H)@(H,4H) -> (N,4H)
        lstm_cell_into(z, x_part[t - 1], c[(t - 1) % len(c)], gates[(t - 1) % len(gates)], c[t % len(c)],
                       h[t % len(h)])


def lstm_cell_backward_into(grad_state, grad_h_next, grad_c, gates, c_prev, c, grad_z, grad_h):
    """A step of the LSTM's backward, written into ``grad_z``, ``grad_h`` and ``grad_c``; see
    :func:`.reference.lstm_cell_backward_into_reference`.

    Examples
    --------
    >>> one, zero = np.ones((1, 1), np.float32), np.zeros((1, 1), np.float32)
    >>> gates, c = np.array([[0.5, 0.5, 0.0, 0.5]], np.float32), np.array([[0.5]], np.float32)
    >>> grad_c, grad_z, grad_h = zero.copy(), np.empty((1, 4), np.float32), np.empty((1, 1), np.float32)
    >>> lstm_cell_backward_into(one, zero, grad_c, gates, one, c, grad_z, grad_h)
    >>> grad_h, grad_z.shape
    (array([[1.]], dtype=float32), (1, 4))
    """
    inputs, outputs = (grad_state, grad_h_next, gates, c_prev, c), (grad_c, grad_z, grad_h)
    if not _compiled_lstm_step(inputs, outputs):
        return reference.lstm_cell_backward_into_reference(grad_state, grad_h_next, grad_c, gates, c_prev, c,
                                                           grad_z, grad_h)
    grad_state, grad_h_next, gates, c_prev, c = (_contiguous(array) for array in inputs)
    _jitted.lstm_cell_backward_into(grad_state, grad_h_next, grad_c, gates, c_prev, c, grad_z, grad_h)


def lstm_loop(x_part, W_h):
    """The LSTM's loop over time with its product and cell compiled, ``(h, c, gates)``; see
    :func:`.reference.lstm_loop_reference`. For a few samples (the BLAS's products are as fast from 8 rows
    on); float32's (other dtypes run the twin).

    Examples
    --------
    >>> h, c, gates = lstm_loop(np.zeros((3, 1, 4), np.float32), np.ones((1, 4), np.float32))
    >>> h.shape, gates[0]                              # h_0 = 0, so the first step's gates are sigma(0), tanh(0)
    ((4, 1, 1), array([[0.5, 0.5, 0. , 0.5]], dtype=float32))
    """
    if _jitted is None or x_part.dtype != np.float32 or W_h.dtype != np.float32:
        return reference.lstm_loop_reference(x_part, W_h)
    return _jitted.lstm_loop(_contiguous(x_part), _contiguous(W_h))


def layernorm_forward(rows, gamma, beta, eps):
    """LayerNorm of each row of ``(R, F)``, ``(y, x_hat, inv_std)``; see :func:`.reference.layernorm_forward_reference`.

    Examples
    --------
    >>> y, x_hat, inv_std = layernorm_forward(np.array([[1.0, 3.0], [10.0, 30.0]]), np.ones(2), np.zeros(2), 1e-5)
    >>> y.round(3)
    array([[-1.,  1.],
           [-1.,  1.]])
    """
    if _jitted is None:
        return reference.layernorm_forward_reference(rows, gamma, beta, eps)
    return _jitted.layernorm_forward(_contiguous(rows), gamma, beta, float(eps))


def layernorm_backward(grad, x_hat, gamma, inv_std):
    """``(dx, dgamma, dbeta)`` of :func:`layernorm_forward`; see :func:`.reference.layernorm_backward_reference`.

    Examples
    --------
    >>> dx, dgamma, dbeta = layernorm_backward(np.ones((1, 2)), np.array([[-1.0, 1.0]]), np.ones(2), np.ones((1, 1)))
    >>> dx, dbeta
    (array([[0., 0.]]), array([1., 1.]))
    """
    if _jitted is None:
        return reference.layernorm_backward_reference(grad, x_hat, gamma, inv_std)
    return _jitted.layernorm_backward(_contiguous(grad), _contiguous(x_hat), gamma, _contiguous(inv_std))


def attention_weights(scores, causal):
    """Attention's weights ``A`` ``(N, h, T, T)``, each row the softmax of a row of scores; see
    :func:`.reference.attention_weights_reference`.

    The compiled kernel is float32's; other dtypes (float64 for gradient checks) run the twin.

    Examples
    --------
    >>> attention_weights(np.zeros((1, 1, 3, 3), np.float32), causal=True)[0, 0]   # equal scores: equal shares
    array([[1.        , 0.        , 0.        ],
           [0.5       , 0.5       , 0.        ],
           [0.33333334, 0.33333334, 0.33333334]], dtype=float32)
    """
    if _jitted is None or scores.dtype != np.float32:
        return reference.attention_weights_reference(scores, causal)
    return _jitted.attention_weights(_contiguous(scores), bool(causal))


def attention_weights_backward(attention, grad_attention):
    """``dS`` ``(N, h, T, T)`` of :func:`attention_weights` from ``A`` and ``dA``; see
    :func:`.reference.attention_weights_backward_reference`.

    Examples
    --------
    >>> attention = np.full((1, 1, 2, 2), 0.5, np.float32)
    >>> attention_weights_backward(attention, np.ones((1, 1, 2, 2), np.float32))[0, 0]  # shifting every score
    array([[0., 0.],
           [0., 0.]], dtype=float32)
    """
    if _jitted is None or attention.dtype != np.float32 or grad_attention.dtype != np.float32:
        return reference.attention_weights_backward_reference(attention, grad_attention)
    return _jitted.attention_weights_backward(_contiguous(attention), _contiguous(grad_attention))


def gelu_forward(x, with_slope=True):
    """GELU's exact form of every value, ``(y, dy/dx)`` (``dy/dx`` None without ``with_slope``); see
    :func:`.reference.gelu_forward_reference`.

    The compiled pass is float32's; other dtypes (float64 for gradient checks) run the twin.

    Examples
    --------
    >>> y, slope = gelu_forward(np.array([0.0, 1.0], np.float32))
    >>> y.round(4), slope.round(4)                       # x Phi(x), Phi(x) + x phi(x)
    (array([0.    , 0.8413], dtype=float32), array([0.5   , 1.0833], dtype=float32))
    """
    if _jitted is None or x.dtype != np.float32:
        y, slope = reference.gelu_forward_reference(x)
        return y, slope if with_slope else None
    y, slope = _jitted.gelu_forward(_contiguous(x).reshape(-1), bool(with_slope))
    return y.reshape(x.shape), slope.reshape(x.shape) if with_slope else None


def softmax_rows(x):
    """Each row of scores ``x`` ``(N, classes)`` as probabilities; see :func:`.reference.softmax_rows_reference`.

    The compiled call takes float32 rows (other dtypes and shapes run the twin, the layer's softmax).
    Its exponential is clamped below at ``exp(-87)``: a score 87 or more below its row's maximum
    (``-inf`` included) gets about ``1.6e-38`` where the layer's gives 0 or a smaller denormal.

    Examples
    --------
    >>> softmax_rows(np.array([[0.0, 0.0], [0.0, np.log(3.0)]], np.float32)).round(4)
    array([[0.5 , 0.5 ],
           [0.25, 0.75]], dtype=float32)
    """
    if _jitted is None or x.dtype != np.float32 or x.ndim != 2 or x.shape[1] == 0:
        return reference.softmax_rows_reference(x)
    return _jitted.softmax_rows(_contiguous(x))


def softmax_cross_entropy(logits, labels, label_smoothing=0.0):
    """``(losses, p, wrong)`` of :func:`tinynet.layers.softmax.softmax_cross_entropy`, the softmax cross-entropy of
    logits ``(N, classes)`` against int64 labels ``(N,)`` already checked to lie in ``0 .. classes-1``.

    The compiled call takes float32 and float64 logits without label smoothing (others run the
    twin, the formula itself); its exponentials and sums may differ from NumPy's in the last bit.

    Examples
    --------
    >>> losses, p, wrong = softmax_cross_entropy(np.zeros((1, 4), np.float32), np.array([0]))
    >>> round(float(losses[0]), 4), p.round(2), wrong.round(2)                  # log(4), uniform, 3/4
    (1.3863, array([[0.25, 0.25, 0.25, 0.25]], dtype=float32), array([0.75], dtype=float32))
    """
    if (_jitted is None or label_smoothing or logits.dtype not in (np.float32, np.float64) or logits.ndim != 2
            or 0 in logits.shape or labels.dtype != np.int64):
        return reference.softmax_cross_entropy_reference(logits, labels, label_smoothing)
    return _jitted.softmax_cross_entropy(_contiguous(logits), _contiguous(labels))


def all_finite(x):
    """Whether no value of the float array ``x`` is NaN or inf (:func:`.reference.all_finite_reference`).

    The compiled call reads C-contiguous float32 and float64 arrays, once, without a temporary array;
    others (strided, Fortran-ordered, float16) run the twin.

    Examples
    --------
    >>> all_finite(np.array([0.5, -1e30], np.float32)), all_finite(np.array([0.5, np.inf]))
    (True, False)
    """
    if _jitted is None or x.dtype not in (np.float32, np.float64) or not x.flags.c_contiguous:
        return reference.all_finite_reference(x)
    return bool(_jitted.all_finite(x.reshape(-1)))


__all__ = [
    "BACKEND",
    "use_backend",
    "set_num_threads",
    "get_num_threads",
    "output_size",
    "matmul",
    "convolution_matmul",
    "convolution_maxpool",
    "tiled_layout",
    "TILED_PRODUCTS",
    "TILES_WIN_EVERYWHERE",
    "tiles_win",
    "MIN_TILED_BATCH",
    "engine_threads",
    "im2col",
    "im2col_transposed",
    "im2col_filter_order",
    "col2im",
    "maxpool_forward",
    "maxpool_infer",
    "conv_maxpool_infer",
    "conv_maxpool_forward",
    "conv_maxpool_weight_grads",
    "maxpool_backward",
    "avgpool_forward",
    "avgpool_backward",
    "affine_warp",
    "adam_update",
    "batchnorm_forward",
    "batchnorm_backward",
    "erf",
    "lstm_cell_into",
    "lstm_steps",
    "lstm_cell_backward_into",
    "lstm_loop",
    "layernorm_forward",
    "layernorm_backward",
    "attention_weights",
    "attention_weights_backward",
    "gelu_forward",
    "softmax_rows",
    "softmax_cross_entropy",
    "all_finite",
]
