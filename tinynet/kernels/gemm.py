"""A matrix product ``C = A @ B`` in vector registers: the engine's product with AVX-512, and with AVX2
every product of a prediction of a model that convolves.

What it computes is NumPy's ``a @ b`` (the layers' product, and this kernel's readable twin,
which the tests compare it with); how is what a BLAS does inside, written for numba:

- **A register tile.** ``C`` is cut into tiles of ``ROWS x COLUMNS`` values: with AVX-512, 8 rows,
  each two vectors of 16 floats (32 columns); with AVX2, whose 16 registers hold half as many
  vectors of half the width, 4 rows of two vectors of 8 (16 columns). A tile's accumulators
  stay in registers while ``k`` runs along ``K``: at each ``k`` the two vectors of
  ``B[k, j:j+COLUMNS]`` are loaded once and each ``A[i, k]`` of the tile's rows is broadcast
  to a vector and multiplied into its row with a fused multiply-add. With AVX-512, 16
  accumulators, 2 of ``B`` and a broadcast use 19 of the 32 vector registers; with AVX2, 8,
  2 and 1 use 11 of 16. Every value loaded feeds at least 2 multiply-adds, so the loop runs
  at the CPU's multiply-add rate instead of its load rate.
- **Written as LLVM vectors.** numba does not vectorise such a tile by itself: its loop
  vectoriser turns the loop over ``k`` into a reduction, and a tile of scalar accumulators
  was left scalar (both measured at 16-19 GFLOP/s on two cores against 490 for this, AVX-512 on a
  Zen 5). So
  :func:`_tile_product` is a numba *intrinsic*: a function that emits the LLVM vector
  instructions of one tile itself (``<16 x float>`` or ``<8 x float>`` loads, ``llvm.fma``,
  stores), inlined into the compiled loop over tiles.
- **Blocks of K.** ``K`` is taken ``K_BLOCK`` values at a time (the tile adds each block to
  what the blocks before it left in ``C``), so the part of ``B`` the tiles of a block read
  stays in cache however long ``K`` is (a weight gradient sums over a chunk's 15,000 rows).
- **Strips of B, with AVX2** (:data:`PACKED`). A tile's 16 columns of ``B`` are read 64 bytes a
  row, rows ``N`` floats apart: with AVX2 the whole tiles (not the narrow ones, nor a tail's) read
  a copy of ``B`` whose strips of 16
  columns have their rows adjacent (:func:`_packed`), and each thread runs a group of row tiles
  along one strip before the next, so the strip (18 KB for K = 288) stays in L1. On an AMD EPYC
  Zen 3 (two threads) a convolution's 128-image product (15,488 x 288 by 288 x 64) ran at a median
  127 GFLOP/s this way, OpenBLAS's at 120 in the same nine interleaved rounds.
- **Tails.** Rows past the last whole tile are copied into a tile of zeros, multiplied,
  and copied back; columns must come in whole tiles (:func:`tinynet.kernels.matmul` sends
  other products to NumPy), but for products of at most 16 columns (a 10-class output
  layer): :func:`narrow_product` runs tiles of ``NARROW_ROWS`` rows of ``NARROW_VECTORS``
  vectors, whose loads of ``B`` and stores of ``C`` are masked to the columns there are.
- **An epilogue in the store.** When the last block of ``K`` is stored, each column can be
  multiplied by a scale and shifted, ``C = (A @ B) * scale + shift`` (a bias; a bias and a
  BatchNorm at inference), and put through a ReLU, while the tile is still in registers:
  no second pass over ``C``. The multiply-add is fused (rounded once), so it may differ from
  NumPy's ``y * scale + shift`` in the last bit.

The same tile serves a convolution without its im2col columns (:func:`convolution`: the rows are read
where they lie in the images) and with a 2x2 max pooling after it (:func:`pooled_convolution`: a tile's
rows are pooling windows, and it stores their maxima).

On an AMD EPYC Zen 5 (AVX-512, two threads) this kernel ran the MNIST CNN's convolution products about
twice as fast as OpenBLAS held to its AVX2 kernels by ``OPENBLAS_CORETYPE=Haswell``, and faster than
OpenBLAS's own AVX-512 kernels: the engine runs every product in it there. With AVX2, OpenBLAS's own
kernels multiply a plain product as fast or faster (a 128 x 784 by 784 x 128 one at 153 GFLOP/s against the
tiles' 120 on that Zen 3), and a training step is mostly such products; what the tiles win there is a prediction's
convolutions, read in place, pooled in the store, with the first layer on both threads: a 128-image
prediction of the MNIST CNN in about 1/1.7 of the time, of the Keras convnet 1/1.8
(:func:`tinynet.kernels.tiles_win`; the figures: benchmarks/RESULTS.md).
"""

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from .jitted import lstm_cell_into as _lstm_cell_into

__all__ = ["ROWS", "COLUMNS", "K_BLOCK", "NARROW_ROWS", "product", "narrow_product", "convolution",
           "pooled_convolution"]

#: Whether this CPU has AVX-512: 16 floats a vector register (32 registers) instead of AVX2's 8 (16 registers).
WIDE = llvm.get_host_cpu_features().get("avx512f", False)
#: Floats in one vector register.
LANES = 16 if WIDE else 8
#: Rows of ``C`` in one register tile: 8 (16 accumulators) with AVX-512, 4 (8) in AVX2's 16 registers; a
#: multiple of 4 either way, for the pooled tiles' windows.
ROWS = 8 if WIDE else 4
#: Vectors per tile row: a tile is ``ROWS x COLUMNS`` values.
VECTORS = 2
#: Columns of ``C`` in one register tile.
COLUMNS = LANES * VECTORS
#: Values of ``K`` a tile sums before the next block of ``B`` is read.
K_BLOCK = 2048
#: How an intrinsic's name spells a pointer argument: from LLVM 17 every pointer is opaque (``p0``); before,
#: llvmlite's IR names its pointee (``p0v16f32``). (LLVM's reader renames a masked load or store whose name
#: does not fit its types; this was run with LLVM 22 only.)
_POINTER_SUFFIX = "p0" if llvm.llvm_version_info >= (17,) else f"p0v{LANES}f32"
#: Rows of a narrow tile (:func:`narrow_product`), and its vectors a row: 16 x 1 with AVX-512, 4 x 2 with AVX2
#: (as many accumulators as a whole tile).
NARROW_ROWS = 16 if WIDE else 4
NARROW_VECTORS = 1 if WIDE else 2
#: Most columns of a narrow tile's product.
NARROW_COLUMNS = LANES * NARROW_VECTORS


@intrinsic
def _tile_product(typingctx, a, b, c, top, left, k_start, k_stop, a_layout, b_row, c_row, accumulate, scale, shift,
                  affine, relu, b_start):
    """One tile: ``C[rows, columns] (+)= A[rows, k_start:k_stop] @ B[k_start:k_stop, columns]``, for the rows
    ``top:top+ROWS`` and the columns ``left:left+COLUMNS``; then, with ``affine``, ``* scale + shift`` per
    column (one fused multiply-add), and with ``relu`` a ReLU (NaN stays NaN, as in ``np.maximum``).

    ``a_layout`` says where ``A[r, k]`` is in ``a``'s data, counted in floats: either A's ``(row, column)``
    strides (``r * row + k * column``), or ``(row_offsets, window_offsets, C)``, two integer arrays and
    a count, for ``k = w * C + c`` at ``row_offsets[r] + window_offsets[w] + c``: a convolution's
    windows read where they lie in its images (:func:`convolution`), ``k_start:k_stop`` then counting
    windows ``w``, each ``C`` values of K. ``b_row`` and ``c_row`` are the row strides of B and C (their
    columns are adjacent). With ``accumulate`` the tile starts from what ``C`` holds, otherwise from zero.
    ``scale`` and ``shift`` are read at the tile's columns whether or not ``affine`` is set. ``b_start`` is
    where the tile's first column of B starts in ``b``'s data (``left``, or a strip's start in a packed
    copy: :func:`_packed`), counted in floats.
    """
    signature = types.void(a, b, c, top, left, k_start, k_stop, a_layout, b_row, c_row, accumulate, scale, shift,
                           affine, relu, b_start)
    return signature, _tile_codegen(gathered=len(a_layout) == 3, pooled=False)


@intrinsic
def _tile_pooled(typingctx, a, b, c, top, left, k_start, k_stop, a_layout, b_row, c_row, bias, scale, shift, relu,
                 b_start):
    """One tile of a convolution followed by a 2x2 max pooling: its ``ROWS`` rows are the 4 pixels of
    ``ROWS / 4`` pooling windows (two with AVX-512, one with AVX2), each in the order ``(0, 0), (0, 1),
    (1, 0), (1, 1)``; stored are the windows' maxima plus ``bias``, through a ReLU with ``relu``, times
    ``scale`` plus ``shift`` (BatchNorm after the pooling, one fused multiply-add), as the compiled
    :func:`tinynet.kernels.maxpool_infer` computes them from the convolution's output, into rows
    ``top / 4`` onwards of C. ``a_layout`` is a convolution's and ``b_start`` as for :func:`_tile_product`;
    the tile starts from zero.
    """
    signature = types.void(a, b, c, top, left, k_start, k_stop, a_layout, b_row, c_row, bias, scale, shift, relu,
                           b_start)
    return signature, _tile_codegen(gathered=True, pooled=True)


@intrinsic
def _tile_narrow(typingctx, a, b, c, top, left, k_start, k_stop, a_layout, b_row, c_row, accumulate, scale, shift,
                 affine, relu, width, b_start):
    """One narrow tile: as :func:`_tile_product` for the rows ``top:top+NARROW_ROWS`` and ``NARROW_VECTORS``
    vectors of columns, ``left:left+NARROW_COLUMNS`` (16), of which B, C, ``scale`` and ``shift`` have
    ``width``: every load and store of them is masked to those lanes (the others hold zeros, never stored).
    The tile starts from zero (``accumulate`` off)."""
    signature = types.void(a, b, c, top, left, k_start, k_stop, a_layout, b_row, c_row, accumulate, scale, shift,
                           affine, relu, width, b_start)
    return signature, _tile_codegen(gathered=False, pooled=False, rows=NARROW_ROWS, vectors=NARROW_VECTORS, narrow=True)


def _tile_codegen(gathered, pooled, rows=ROWS, vectors=VECTORS, narrow=False):
    """The LLVM code of one tile of ``rows`` rows of ``vectors`` vectors (:func:`_tile_product`,
    :func:`_tile_pooled` with ``pooled``, :func:`_tile_narrow` with ``narrow``)."""

    def codegen(context, builder, sig, args):
        if pooled:
            (a_array, b_array, c_array, top, left, k_start, k_stop, a_layout, b_row, c_row, bias_array, scale_array,
             shift_array, relu) = args[:14]
            accumulate = ir.Constant(ir.IntType(1), 0)
        else:
            (a_array, b_array, c_array, top, left, k_start, k_stop, a_layout, b_row, c_row, accumulate, scale_array,
             shift_array, affine, relu) = args[:15]
        if narrow:
            accumulate = ir.Constant(ir.IntType(1), 0)
        vector = ir.VectorType(ir.FloatType(), LANES)
        vector_pointer = vector.as_pointer()
        index = ir.IntType(64)
        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vector, [vector] * 3),
                                             f"llvm.fma.v{LANES}f32")

        def data(position, value):
            return cgutils.create_struct_proxy(sig.args[position])(context, builder, value=value).data

        def at(pointer, offset):
            return builder.gep(pointer, [offset])

        def as_vector(pointer):
            return builder.bitcast(pointer, vector_pointer)

        def constant(number):
            return ir.Constant(index, number)

        a_data, b_data, c_data = data(0, a_array), data(1, b_array), data(2, c_array)
        stored_rows = rows // 4 if pooled else rows  # a pooled tile stores its windows' maxima
        first_row = builder.udiv(top, constant(4)) if pooled else top
        c_rows = [at(c_data, builder.add(builder.mul(builder.add(first_row, constant(i)), c_row), left))
                  for i in range(stored_rows)]

        # The accumulators: C's tile or zeros. Stack slots that LLVM keeps in registers (mem2reg).
        zero = ir.Constant(vector, None)
        accumulators = []
        for i in range(rows):
            row = []
            for v in range(vectors):
                slot = cgutils.alloca_once(builder, vector)
                if pooled or narrow:
                    builder.store(zero, slot)
                else:
                    held = builder.load(as_vector(at(c_rows[i], constant(v * LANES))), align=4)
                    builder.store(builder.select(accumulate, held, zero), slot)
                row.append(slot)
            accumulators.append(row)

        b_tile = at(b_data, args[-1])  # B's first column of the tile: b_start
        lane_zero = ir.Constant(ir.IntType(32), 0)
        broadcast = ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES)

        if narrow:  # the lanes below `width`: the columns there are (B and C have no room for 16)
            lanes = ir.VectorType(index, LANES)
            width = builder.shuffle_vector(builder.insert_element(ir.Constant(lanes, ir.Undefined), args[15],
                                                                  lane_zero), ir.Constant(lanes, ir.Undefined),
                                           broadcast)
            masks = [builder.icmp_unsigned("<", ir.Constant(lanes, [v * LANES + i for i in range(LANES)]), width)
                     for v in range(vectors)]
            mask = masks[0]
            alignment = ir.Constant(ir.IntType(32), 4)

            def masked(operation, result, arguments):  # LLVM's masked load or store of a vector
                return cgutils.get_or_insert_function(builder.module, ir.FunctionType(result, arguments),
                                                      f"llvm.masked.{operation}.v{LANES}f32.{_POINTER_SUFFIX}")

            masked_load = masked("load", vector, [vector_pointer, alignment.type, mask.type, vector])
            masked_store = masked("store", ir.VoidType(), [vector, vector_pointer, alignment.type, mask.type])

        def load(pointer, v):  # the tile row's vector v from `pointer` (its first column; zeros past `width`, narrow)
            pointer = at(pointer, constant(v * LANES))
            if narrow:
                return builder.call(masked_load, [as_vector(pointer), alignment, masks[v], zero])
            return builder.load(as_vector(pointer), align=4)

        def store(value, pointer, v):
            pointer = at(pointer, constant(v * LANES))
            if narrow:
                builder.call(masked_store, [value, as_vector(pointer), alignment, masks[v]])
            else:
                builder.store(value, as_vector(pointer), align=4)

        def multiply_add(a_values, b_k):  # the tile += A's column (`rows` values) times B's row (`vectors` vectors)
            b_vectors = [load(b_k, v) for v in range(vectors)]
            for i in range(rows):
                a_value = builder.load(a_values[i])
                a_vector = builder.shuffle_vector(builder.insert_element(ir.Constant(vector, ir.Undefined), a_value,
                                                                         lane_zero), ir.Constant(vector, ir.Undefined),
                                                  broadcast)
                for v in range(vectors):
                    slot = accumulators[i][v]
                    builder.store(builder.call(fma, [a_vector, b_vectors[v], builder.load(slot)]), slot)

        if gathered:  # k_start:k_stop count windows: each a run of C adjacent values in every row
            row_part, window_part, channels = cgutils.unpack_tuple(builder, a_layout, 3)
            row_offsets = cgutils.create_struct_proxy(sig.args[7][0])(context, builder, value=row_part).data
            window_offsets = cgutils.create_struct_proxy(sig.args[7][1])(context, builder, value=window_part).data
            a_rows = [at(a_data, builder.load(at(row_offsets, builder.add(top, constant(i))))) for i in range(rows)]
            with cgutils.for_range_slice(builder, k_start, k_stop, constant(1)) as (window, _):
                window_offset = builder.load(at(window_offsets, window))
                a_window = [at(a_row, window_offset) for a_row in a_rows]
                b_window = at(b_tile, builder.mul(builder.mul(window, channels), b_row))
                with cgutils.for_range(builder, channels) as loop:
                    multiply_add([at(a, loop.index) for a in a_window], at(b_window, builder.mul(loop.index, b_row)))
        else:
            row_stride, k_stride = cgutils.unpack_tuple(builder, a_layout, 2)
            a_rows = [at(a_data, builder.mul(builder.add(top, constant(i)), row_stride)) for i in range(rows)]
            with cgutils.for_range_slice(builder, k_start, k_stop, constant(1)) as (k, _):
                a_offset = builder.mul(k, k_stride)
                multiply_add([at(a, a_offset) for a in a_rows], at(b_tile, builder.mul(k, b_row)))

        def per_column(position, array):  # a (N,) array's two vectors at the tile's columns
            pointer = data(position, array)
            return [load(at(pointer, left), v) for v in range(vectors)]

        def relu_of(value):
            below_zero = builder.fcmp_ordered("<", value, zero)  # false for NaN: it stays
            return builder.select(relu, builder.select(below_zero, zero, value), value)

        if pooled:
            biases, scales = per_column(10, bias_array), per_column(11, scale_array)
            shifts = per_column(12, shift_array)
            for window in range(rows // 4):
                for v in range(VECTORS):
                    best = builder.fadd(builder.load(accumulators[4 * window][v]), biases[v])
                    for i in range(4 * window + 1, 4 * window + 4):  # larger, or the first NaN (kernels' _beats)
                        value = builder.fadd(builder.load(accumulators[i][v]), biases[v])
                        larger = builder.fcmp_ordered(">", value, best)
                        first_nan = builder.and_(builder.fcmp_unordered("uno", value, value),
                                                 builder.fcmp_ordered("ord", best, best))
                        best = builder.select(builder.or_(larger, first_nan), value, best)
                    best = builder.call(fma, [relu_of(best), scales[v], shifts[v]])  # as the compiled pooling's
                    builder.store(best, as_vector(at(c_rows[window], constant(v * LANES))), align=4)
        else:
            scales, shifts = per_column(11, scale_array), per_column(12, shift_array)
            for i in range(rows):
                for v in range(vectors):
                    value = builder.load(accumulators[i][v])
                    value = builder.select(affine, builder.call(fma, [value, scales[v], shifts[v]]), value)
                    store(relu_of(value), c_rows[i], v)
        return context.get_dummy_value()

    return codegen


@njit(inline="always")
def _strides(array):
    """An array's strides in floats (its itemsize is 4)."""
    return array.strides[0] // 4, array.strides[1] // 4


#: Whether the tiles read B from a copy laid out in strips of :data:`COLUMNS` (:func:`_packed`): with AVX2.
PACKED = not WIDE
#: Row tiles a thread runs along one strip of B before it goes on to the next strip (with :data:`PACKED`).
STRIP_TILES = 8


@njit(inline="always")
def _packed(b):
    """``b`` ``(K, N)`` as ``(N / COLUMNS * K, COLUMNS)``: each strip of :data:`COLUMNS` columns with its K rows
    adjacent, a strip's rows starting at ``strip * K``."""
    k, n = b.shape
    packed = np.empty((n // COLUMNS * k, COLUMNS), np.float32)
    for strip in range(n // COLUMNS):
        packed[strip * k : (strip + 1) * k] = b[:, strip * COLUMNS : (strip + 1) * COLUMNS]
    return packed


@njit(inline="always")
def _whole_tiles(a, a_layout, m, k, block, b, out, accumulate, scale, shift, affine, relu):
    """The tiles of ``out``'s first ``m - m % ROWS`` rows, in parallel, ``block`` of K's ``k`` units (values, or a
    convolution's windows) at a time; returns that row count."""
    n = b.shape[1]
    whole_rows = m - m % ROWS
    column_tiles = n // COLUMNS
    tiles = (whole_rows // ROWS) * column_tiles
    b_row, out_row = _strides(b)[0], _strides(out)[0]
    if PACKED:
        packed, b_rows = _packed(b), b.shape[0]
        row_tiles = whole_rows // ROWS
        groups = (row_tiles + STRIP_TILES - 1) // STRIP_TILES
    for k_start in range(0, max(k, 1), block):  # K = 0: one empty block, which still writes (and its epilogue)
        k_stop = min(k, k_start + block)
        adding = accumulate or k_start > 0
        last = k_stop == k  # the epilogue goes with the last block's store
        if PACKED:  # a group of row tiles along each strip of B in turn: the strip stays in L1
            for group in prange(groups):
                for strip in range(column_tiles):
                    for row_tile in range(group * STRIP_TILES, min(row_tiles, (group + 1) * STRIP_TILES)):
                        _tile_product(a, packed, out, row_tile * ROWS, strip * COLUMNS, k_start, k_stop, a_layout,
                                      COLUMNS, out_row, adding, scale, shift, affine and last, relu and last,
                                      strip * b_rows * COLUMNS)
        else:
            for tile in prange(tiles):  # row-major: a thread's tiles share rows of A
                top = (tile // column_tiles) * ROWS
                left = (tile % column_tiles) * COLUMNS
                _tile_product(a, b, out, top, left, k_start, k_stop, a_layout, b_row, out_row, adding, scale, shift,
                              affine and last, relu and last, left)
    return whole_rows


@njit(inline="always")
def _tail_tiles(padded, rows, b, out, accumulate, scale, shift, affine, relu):
    """The last ``rows`` rows of ``out`` (fewer than a tile) from their rows of A copied into ``padded``
    ``(ROWS, K)``, zeros below: one tile of each column block (a few rows: B is read once, no K blocks)."""
    n = b.shape[1]
    first = out.shape[0] - rows
    tail = np.zeros((ROWS, n), np.float32)
    if accumulate:
        tail[:rows] = out[first:]
    for column_tile in prange(n // COLUMNS):
        _tile_product(padded, b, tail, 0, column_tile * COLUMNS, 0, padded.shape[1], _strides(padded),
                      _strides(b)[0], n, accumulate, scale, shift, affine, relu, column_tile * COLUMNS)
    out[first:] = tail[:rows]


@njit(inline="always")
def _product(a, b, out, accumulate, scale, shift, affine, relu):
    m, k = a.shape
    whole_rows = _whole_tiles(a, _strides(a), m, k, K_BLOCK, b, out, accumulate, scale, shift, affine, relu)
    if whole_rows < m:
        padded = np.zeros((ROWS, k), np.float32)
        padded[: m - whole_rows] = a[whole_rows:]
        _tail_tiles(padded, m - whole_rows, b, out, accumulate, scale, shift, affine, relu)


@njit(parallel=True, nogil=True, cache=True)  # nogil: the parts of a batch in parts call it side by side
def product(a, b, out, accumulate, scale, shift, affine, relu):
    """``out (+)= a @ b`` for float32 ``a`` ``(M, K)`` (any strides), ``b`` ``(K, N)`` and ``out`` ``(M, N)``
    with adjacent columns, ``N`` a multiple of :data:`COLUMNS`; then, with ``affine``, ``out = out * scale +
    shift`` per column and, with ``relu``, a ReLU. ``scale`` and ``shift`` are float32 ``(N,)`` arrays, read
    even when ``affine`` is off."""
    _product(a, b, out, accumulate, scale, shift, affine, relu)


@njit(nogil=True, cache=True)
def lstm_steps(x_part, W_h, h, c, gates):
    """An LSTM's steps ``t = 1 .. T`` on the calling thread, each ``z = h[t-1] W_h`` in the tiles above, then the
    compiled cell :func:`~tinynet.kernels.jitted.lstm_cell_into` (``z + x_part[t-1]``, written into
    ``gates[t-1]``, ``c[t]`` and ``h[t]``); ``h``, ``c`` and ``gates`` indexed modulo their length (two states
    and one step's gates when only the last state is wanted). The loop of :func:`tinynet.kernels.lstm_steps`,
    compiled whole: a 64-row part's 28 steps took 3.02 ms this way against 3.55 as a Python call of the product
    and one of the cell a step, and the two parts' threads no longer wait for each other at the interpreter."""
    steps, n, four = x_part.shape
    z = np.empty((n, four), np.float32)
    unused = np.zeros(four, np.float32)  # the product's scale and shift, read but not applied
    for t in range(1, steps + 1):
        _product(h[(t - 1) % len(h)], W_h, z, False, unused, unused, False, False)
        _lstm_cell_into(z, x_part[t - 1], c[(t - 1) % len(c)], gates[(t - 1) % len(gates)], c[t % len(c)],
                        h[t % len(h)])


@njit(parallel=True, nogil=True, cache=True)
def narrow_product(a, b, out, scale, shift, affine, relu):
    """``out = a @ b`` (then the epilogue, as :func:`product`) for float32 ``a`` ``(M, K)`` (any strides), ``b``
    ``(K, width)`` and ``out`` ``(M, width)`` with adjacent columns, ``width`` at most 16 (``NARROW_VECTORS``
    vectors, their loads and stores masked to the columns there are), ``scale`` and ``shift`` ``(width,)``. Rows
    past the last whole tile are copied into a padded one."""
    m, k = a.shape
    width = out.shape[1]
    whole_rows = m - m % NARROW_ROWS
    a_layout, b_row, out_row = _strides(a), _strides(b)[0], _strides(out)[0]
    for tile in prange(whole_rows // NARROW_ROWS):
        _tile_narrow(a, b, out, tile * NARROW_ROWS, 0, 0, k, a_layout, b_row, out_row, False, scale, shift, affine,
                     relu, width, 0)
    if whole_rows < m:
        padded = np.zeros((NARROW_ROWS, k), np.float32)
        padded[: m - whole_rows] = a[whole_rows:]
        tail = np.empty((NARROW_ROWS, width), np.float32)
        _tile_narrow(padded, b, tail, 0, 0, 0, k, _strides(padded), b_row, width, False, scale, shift, affine, relu,
                     width, 0)
        out[whole_rows:] = tail[: m - whole_rows]


@njit(parallel=True, nogil=True, cache=True)
def convolution(x, row_offsets, window_offsets, channels, b, out, scale, shift, affine, relu):
    """``out = A @ b`` (then the epilogue, as :func:`product`) for ``A[r, w * C + c] = x[row_offsets[r] +
    window_offsets[w] + c]``: a convolution's im2col rows read where they lie in its images ``x`` (flat
    float32), not copied out (but for the last few rows, fewer than a tile, gathered into a padded one).

    For NHWC images, ``row_offsets`` holds each output pixel's first input value, ``window_offsets`` where
    each ``(i, j)`` of the window starts from there, and ``C`` values follow: its channels
    (:func:`tinynet.kernels.convolution_matmul`)."""
    m, windows = len(row_offsets), len(window_offsets)
    block = max(1, K_BLOCK // max(channels, 1))  # whole windows a block
    whole_rows = _whole_tiles(x, (row_offsets, window_offsets, channels), m, windows, block, b, out, False, scale,
                              shift, affine, relu)
    if whole_rows < m:
        padded = np.zeros((ROWS, windows * channels), np.float32)
        for r in range(m - whole_rows):
            for w in range(windows):
                start = row_offsets[whole_rows + r] + window_offsets[w]
                padded[r, w * channels : (w + 1) * channels] = x[start : start + channels]
        _tail_tiles(padded, m - whole_rows, b, out, False, scale, shift, affine, relu)


@njit(parallel=True, nogil=True, cache=True)
def pooled_convolution(x, row_offsets, window_offsets, channels, b, out, bias, scale, shift, relu):
    """A convolution read as in :func:`convolution`, then a 2x2 max pooling with ``bias``, a ReLU and ``* scale
    + shift`` (see :func:`_tile_pooled`) into ``out`` ``(M / 4, N)``: ``row_offsets`` lists each pooling
    window's four pixels in turn, and the pixels no window reads are never computed.

    K is not cut into blocks here: a tile stores its pooled values once, after the whole sum."""
    m, windows = len(row_offsets), len(window_offsets)
    n = b.shape[1]
    whole_rows = m - m % ROWS
    column_tiles = n // COLUMNS
    tiles = (whole_rows // ROWS) * column_tiles
    b_row, out_row = _strides(b)[0], _strides(out)[0]
    layout = (row_offsets, window_offsets, channels)
    if PACKED:  # as in _whole_tiles
        packed, b_rows = _packed(b), b.shape[0]
        row_tiles = whole_rows // ROWS
        for group in prange((row_tiles + STRIP_TILES - 1) // STRIP_TILES):
            for strip in range(column_tiles):
                for row_tile in range(group * STRIP_TILES, min(row_tiles, (group + 1) * STRIP_TILES)):
                    _tile_pooled(x, packed, out, row_tile * ROWS, strip * COLUMNS, 0, windows, layout, COLUMNS,
                                 out_row, bias, scale, shift, relu, strip * b_rows * COLUMNS)
    else:
        for tile in prange(tiles):
            top = (tile // column_tiles) * ROWS
            left = (tile % column_tiles) * COLUMNS
            _tile_pooled(x, b, out, top, left, 0, windows, layout, b_row, out_row, bias, scale, shift, relu, left)
    if whole_rows < m:  # with AVX-512, one window left (4 rows): through a tile whose second window (its first
        # pixel, four times) is not stored; with AVX2 a tile is one window and none is ever left
        padded_offsets = np.empty(ROWS, np.int64)
        padded_offsets[:4] = row_offsets[whole_rows:]
        padded_offsets[4:] = row_offsets[whole_rows]
        tail = np.empty((ROWS // 4, n), np.float32)
        for column_tile in prange(column_tiles):
            _tile_pooled(x, b, tail, 0, column_tile * COLUMNS, 0, windows, (padded_offsets, window_offsets, channels),
                         b_row, n, bias, scale, shift, relu, column_tile * COLUMNS)
        out[whole_rows // 4] = tail[0]
