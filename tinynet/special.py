"""Special functions NumPy lacks, for the layers: the error function.

GELU's exact form, ``x * (1 + erf(x / sqrt(2))) / 2``, needs ``erf`` of every activation.
NumPy has none; :func:`erf_reference` calls Python's ``math.erf`` once per value (correct,
slow). When numba is there (JIT on), :func:`erf` runs the same C function over a float64 array
in one compiled loop, and over a float32 array two polynomials that loop vectorises (C's erf
is one call per value): within 3 float32 ulp of :func:`erf_reference` (tested). This module
sits below the layers and imports nothing of tinynet, so a layer can call it without importing
the engine's kernels (which are built on the layers).
"""

import math

import numpy as np

__all__ = ["erf", "erf_reference", "erf_loop", "erf_float32_loop", "erf_float32_value"]


def erf_reference(x):
    """The error function ``erf(x) = 2/sqrt(pi) * integral_0^x exp(-t^2) dt``, element by element.

    NumPy has no ``erf``; this calls Python's ``math.erf`` (float64) once per value, in the
    dtype of ``x``. GELU's exact form, ``x * (1 + erf(x / sqrt(2))) / 2``, is built on it.
    """
    return np.frompyfunc(math.erf, 1, 1)(x).astype(x.dtype) if x.size else x.copy()


#: erf in float32 as two polynomials, each a least-squares fit in float64 on 4,000 Chebyshev nodes
#: (``numpy.polynomial.polynomial.polyfit``), rounded to float32; lowest degree first.
#: ``|x| < 1``: ``erf(x) = x * P(x²)``, P of degree 6 (``erf(a) / a`` against ``a²`` in [0, 1]).
ERF_SMALL = np.array([1.1283791065216064, -0.3761262595653534, 0.11283597350120544, -0.02685432881116867,
                      0.005189312621951103, -0.0008018859080038965, 7.882500358391553e-05], np.float32)
#: ``1 <= |x| <= 4``: ``erf(|x|) = 1 - Q(t)``, ``t = (2|x| - 5) / 3`` in [-1, 1], Q of degree 12 (``erfc``
#: against ``t``). From 3.93 on, erf rounds to ±1 in float32 (erfc < 2.6e-8, under half an ulp of 1).
ERF_LARGE = np.array([0.0004069206479471177, -0.003266968997195363, 0.01225590892136097, -0.02819584682583809,
                      0.04360218718647957, -0.046322062611579895, 0.03216436877846718, -0.00981080811470747,
                      -0.007483717519789934, 0.010797679424285889, -0.0034260102547705173,
                      -0.001851575099863112, 0.0011299855541437864], np.float32)


def _compiled_loops():
    """The numba loops over a flat array (C's erf in float64; the polynomials in float32) and the float32
    polynomials for one value, or (None, None, None) without numba (or with NUMBA_DISABLE_JIT=1)."""
    try:
        import numba
    except ImportError:
        return None, None, None
    if numba.config.DISABLE_JIT:
        return None, None, None

    # C's erf (the function math.erf calls) on each value in float64, as erf_reference, without
    # a Python call per value (GELU takes it of every activation of a transformer's hidden
    # layer, 262,144 values a batch in the ViT).
    @numba.njit(cache=True)
    def erf_loop(flat):
        out = np.empty_like(flat)
        for i in range(flat.size):
            out[i] = math.erf(np.float64(flat[i]))
        return out

    small, large = ERF_SMALL, ERF_LARGE  # constants of the compiled code

    # Both polynomials for every value, then a choice: no branch, so LLVM vectorises a loop
    # that calls it. ±inf is clamped to 4 and gives ±1. "contract": a multiply and the add after it
    # are one fused instruction (one rounding instead of two), which halves Horner's chains
    # (262,144 values: 0.25 ms instead of 0.41).
    @numba.njit(inline="always", error_model="numpy", fastmath={"contract"})
    def erf_float32_value(x):
        a = min(abs(x), np.float32(4.0))
        square = a * a
        p = small[small.size - 1]
        for k in range(small.size - 2, -1, -1):
            p = p * square + small[k]
        t = (np.float32(2.0) * a - np.float32(5.0)) * np.float32(1.0 / 3.0)
        q = large[large.size - 1]
        for k in range(large.size - 2, -1, -1):
            q = q * t + large[k]
        # From 3.93 on, erfc < 2.6e-8 and erf rounds to 1 (Q's own error would show there).
        large_value = np.float32(1.0) - q if a < np.float32(3.93) else np.float32(1.0)
        value = np.copysign(a * p if a < np.float32(1.0) else large_value, x)
        return value if x == x else x  # NaN in, NaN out (the clamp above made it 4)

    @numba.njit(cache=True, error_model="numpy", fastmath={"contract"})
    def erf_float32_loop(flat):
        out = np.empty_like(flat)
        for i in range(flat.size):
            out[i] = erf_float32_value(flat[i])
        return out

    return erf_loop, erf_float32_loop, erf_float32_value


#: :func:`erf_reference` as one compiled loop over a flat array, the float32 polynomials' loop, and the
#: polynomials for one float32 value, which other compiled loops inline (GELU's kernel); all None without numba.
erf_loop, erf_float32_loop, erf_float32_value = _compiled_loops()


def erf(x):
    """The error function of every value of ``x``, in its dtype: :func:`erf_reference`, compiled when numba is there.

    Examples
    --------
    >>> erf(np.array([0.0, 1.0, -1.0])).round(6)
    array([ 0.      ,  0.842701, -0.842701])
    """
    if erf_loop is None:
        return erf_reference(x)
    flat = np.ascontiguousarray(x).reshape(-1)
    return (erf_float32_loop(flat) if flat.dtype == np.float32 else erf_loop(flat)).reshape(x.shape)
