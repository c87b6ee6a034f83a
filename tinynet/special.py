"""Special functions NumPy lacks, for the layers: the error function.

GELU's exact form, ``x * (1 + erf(x / sqrt(2))) / 2``, needs ``erf`` of every activation.
NumPy has none; :func:`erf_reference` calls Python's ``math.erf`` once per value (correct,
slow), and when numba is there (JIT on) :func:`erf` runs the same C function over the array
in one compiled loop. This module sits below the layers and imports nothing of tinynet, so
a layer can call it without importing the engine's kernels (which are built on the layers).
"""

import math

import numpy as np

__all__ = ["erf", "erf_reference", "erf_loop"]


def erf_reference(x):
    """The error function ``erf(x) = 2/sqrt(pi) * integral_0^x exp(-t^2) dt``, element by element.

    NumPy has no ``erf``; this calls Python's ``math.erf`` (float64) once per value, in the
    dtype of ``x``. GELU's exact form, ``x * (1 + erf(x / sqrt(2))) / 2``, is built on it.
    """
    return np.frompyfunc(math.erf, 1, 1)(x).astype(x.dtype) if x.size else x.copy()


def _compiled_loop():
    """The numba loop of C's erf over a flat array, or None without numba (or with NUMBA_DISABLE_JIT=1)."""
    try:
        import numba
    except ImportError:
        return None
    if numba.config.DISABLE_JIT:
        return None

    # C's erf (the function math.erf calls) on each value in float64, as erf_reference, without
    # a Python call per value (GELU takes it of every activation of a transformer's hidden
    # layer, 262,144 values a batch in the ViT).
    @numba.njit(cache=True)
    def erf_loop(flat):
        out = np.empty_like(flat)
        for i in range(flat.size):
            out[i] = math.erf(np.float64(flat[i]))
        return out

    return erf_loop


#: :func:`erf_reference` as one compiled loop over a flat array (None without numba).
erf_loop = _compiled_loop()


def erf(x):
    """The error function of every value of ``x``, in its dtype: :func:`erf_reference`, compiled when numba is there.

    Examples
    --------
    >>> erf(np.array([0.0, 1.0, -1.0])).round(6)
    array([ 0.      ,  0.842701, -0.842701])
    """
    if erf_loop is None:
        return erf_reference(x)
    return erf_loop(np.ascontiguousarray(x).reshape(-1)).reshape(x.shape)
