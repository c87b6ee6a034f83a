"""A matrix product ``C = A @ B`` in 512-bit vector registers: the engine's product on CPUs with AVX-512.

What it computes is NumPy's ``a @ b`` (the layers' product, and this kernel's readable twin,
which the tests compare it with); how is what a BLAS does inside, written for numba:

- **A register tile.** ``C`` is cut into tiles of ``ROWS x 32`` values: 8 rows, each two
  vectors of 16 floats. A tile's 16 vectors stay in registers while ``k`` runs along ``K``:
  at each ``k`` the two vectors of ``B[k, j:j+32]`` are loaded once and each of the 8
  ``A[i, k]`` is broadcast to a vector and multiplied into its row with a fused
  multiply-add. 16 accumulators, 2 of ``B`` and a broadcast use 19 of the 32 vector
  registers, and every value loaded feeds at least 2 multiply-adds, so the loop runs at
  the CPU's multiply-add rate instead of its load rate.
- **Written as LLVM vectors.** numba does not vectorise such a tile by itself: its loop
  vectoriser turns the loop over ``k`` into a reduction, and a tile of scalar accumulators
  was left scalar (both measured at 16-19 GFLOP/s on two cores against 490 for this). So
  :func:`_tile_product` is a numba *intrinsic*: a function that emits the LLVM vector
  instructions of one tile itself (``<16 x float>`` loads, ``llvm.fma``, stores), inlined
  into the compiled loop over tiles.
- **Blocks of K.** ``K`` is taken ``K_BLOCK`` values at a time (the tile adds each block to
  what the blocks before it left in ``C``), so the part of ``B`` the tiles of a block read
  stays in cache however long ``K`` is (a weight gradient sums over a chunk's 15,000 rows).
- **Tails.** Rows past the last whole tile are copied into a tile of zeros, multiplied,
  and copied back; columns must come in whole tiles (:func:`tinynet.kernels.matmul` sends
  other products to NumPy).

On a CPU without AVX-512, ``<16 x float>`` would be split into halves that no longer fit
the registers, and OpenBLAS's own AVX2 kernels are as fast as such a tile can be: there the
engine keeps NumPy's product (:data:`tinynet.kernels.TILED_PRODUCTS`). On an AMD EPYC Zen 5
(AVX-512, two threads) this kernel ran the MNIST CNN's convolution products about twice as
fast as OpenBLAS held to its AVX2 kernels by ``OPENBLAS_CORETYPE=Haswell``, and faster than
OpenBLAS's own AVX-512 kernels (the figures: benchmarks/RESULTS.md).
"""

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["ROWS", "COLUMNS", "K_BLOCK", "product"]

#: Rows of ``C`` in one register tile.
ROWS = 8
#: Floats in one vector register (512 bits).
LANES = 16
#: Vectors per tile row: a tile is ``ROWS x COLUMNS`` values.
VECTORS = 2
#: Columns of ``C`` in one register tile.
COLUMNS = LANES * VECTORS
#: Values of ``K`` a tile sums before the next block of ``B`` is read.
K_BLOCK = 2048


@intrinsic
def _tile_product(typingctx, a, b, c, top, left, k_start, k_stop, a_strides, b_row, c_row, accumulate):
    """One tile: ``C[rows, columns] (+)= A[rows, k_start:k_stop] @ B[k_start:k_stop, columns]``, for the rows
    ``top:top+ROWS`` and the columns ``left:left+COLUMNS``.

    ``a_strides`` are A's ``(row, column)`` strides and ``b_row``, ``c_row`` the row strides of
    B and C, all counted in floats (B's and C's columns are adjacent). With ``accumulate``
    the tile starts from what ``C`` holds, otherwise from zero.
    """
    signature = types.void(a, b, c, top, left, k_start, k_stop, a_strides, b_row, c_row, accumulate)

    def codegen(context, builder, sig, args):
        a_array, b_array, c_array, top, left, k_start, k_stop, a_strides, b_row, c_row, accumulate = args
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
        a_row_stride, a_k_stride = cgutils.unpack_tuple(builder, a_strides, 2)
        c_rows = [at(c_data, builder.add(builder.mul(builder.add(top, constant(i)), c_row), left)) for i in range(ROWS)]

        # The accumulators: C's tile or zeros. Stack slots that LLVM keeps in registers (mem2reg).
        zero = ir.Constant(vector, None)
        accumulators = []
        for i in range(ROWS):
            row = []
            for v in range(VECTORS):
                slot = cgutils.alloca_once(builder, vector)
                held = builder.load(as_vector(at(c_rows[i], constant(v * LANES))), align=4)
                builder.store(builder.select(accumulate, held, zero), slot)
                row.append(slot)
            accumulators.append(row)

        a_rows = [at(a_data, builder.mul(builder.add(top, constant(i)), a_row_stride)) for i in range(ROWS)]
        b_tile = at(b_data, left)
        lane_zero = ir.Constant(ir.IntType(32), 0)
        broadcast = ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES)
        with cgutils.for_range_slice(builder, k_start, k_stop, constant(1)) as (k, _):
            b_k = at(b_tile, builder.mul(k, b_row))
            b_vectors = [builder.load(as_vector(at(b_k, constant(v * LANES))), align=4) for v in range(VECTORS)]
            a_offset = builder.mul(k, a_k_stride)
            for i in range(ROWS):
                a_value = builder.load(at(a_rows[i], a_offset))
                a_vector = builder.shuffle_vector(builder.insert_element(ir.Constant(vector, ir.Undefined), a_value,
                                                                         lane_zero), ir.Constant(vector, ir.Undefined),
                                                  broadcast)
                for v in range(VECTORS):
                    slot = accumulators[i][v]
                    builder.store(builder.call(fma, [a_vector, b_vectors[v], builder.load(slot)]), slot)

        for i in range(ROWS):
            for v in range(VECTORS):
                builder.store(builder.load(accumulators[i][v]), as_vector(at(c_rows[i], constant(v * LANES))), align=4)
        return context.get_dummy_value()

    return signature, codegen


@njit(inline="always")
def _strides(array):
    """An array's strides in floats (its itemsize is 4)."""
    return array.strides[0] // 4, array.strides[1] // 4


@njit(parallel=True, nogil=True, cache=True)  # nogil: the parts of a batch in parts call it side by side
def product(a, b, out, accumulate):
    """``out (+)= a @ b`` for float32 ``a`` ``(M, K)`` (any strides), ``b`` ``(K, N)`` and ``out`` ``(M, N)``
    with adjacent columns, ``N`` a multiple of :data:`COLUMNS`."""
    m, k = a.shape
    n = b.shape[1]
    whole_rows = m - m % ROWS
    column_tiles = n // COLUMNS
    tiles = (whole_rows // ROWS) * column_tiles
    a_strides, b_row, out_row = _strides(a), _strides(b)[0], _strides(out)[0]
    for k_start in range(0, k, K_BLOCK):
        k_stop = min(k, k_start + K_BLOCK)
        adding = accumulate or k_start > 0
        for tile in prange(tiles):  # row-major: a thread's tiles share rows of A
            top = (tile // column_tiles) * ROWS
            left = (tile % column_tiles) * COLUMNS
            _tile_product(a, b, out, top, left, k_start, k_stop, a_strides, b_row, out_row, adding)
    if whole_rows < m:  # the last rows, through a tile of zeros (a few rows: B is read once, blocks need not be)
        rows = m - whole_rows
        padded = np.zeros((ROWS, k), np.float32)
        padded[:rows] = a[whole_rows:]
        tail = np.zeros((ROWS, n), np.float32)
        if accumulate:
            tail[:rows] = out[whole_rows:]
        for column_tile in prange(column_tiles):
            _tile_product(padded, b, tail, 0, column_tile * COLUMNS, 0, k, _strides(padded), b_row, n, accumulate)
        out[whole_rows:] = tail[:rows]
    if k == 0 and not accumulate:
        out[:] = 0
