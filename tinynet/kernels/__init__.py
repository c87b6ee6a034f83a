"""The kernels the layers call, chosen in one place.

Layers import ``im2col``, ``col2im`` and the pooling kernels from here and never know
which implementation they got: the numba-compiled loops of :mod:`.jitted` when numba is
importable and JIT is on, otherwise the plain-NumPy definitions of :mod:`.reference`
(correct, slower). ``NUMBA_DISABLE_JIT=1`` selects the reference kernels too, because
numba's loops run interpreted would be far slower than the vectorised references.

Both sets take the same arguments; see :mod:`.reference` for shapes and formulas.
"""

import numpy as np

from . import reference
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

#: Name of the kernel set in use: ``"numba"`` or ``"reference"``.
BACKEND = "numba" if _jitted is not None else "reference"


def _contiguous(array):
    # The jitted kernels are compiled for C-contiguous arrays; a strided view would
    # compile (and run) a second, slower specialisation.
    return np.ascontiguousarray(array)


def im2col(x, kh, kw, sh, sw, ph, pw):
    """``(N, C, H, W) -> (N, C*kh*kw, out_h*out_w)``; see :func:`.reference.im2col_reference`."""
    if _jitted is None:
        return reference.im2col_reference(x, kh, kw, sh, sw, ph, pw)
    return _jitted.im2col(_contiguous(x), kh, kw, sh, sw, ph, pw)


def col2im(cols, x_shape, kh, kw, sh, sw, ph, pw):
    """Adjoint of :func:`im2col`; see :func:`.reference.col2im_reference`."""
    if _jitted is None:
        return reference.col2im_reference(cols, x_shape, kh, kw, sh, sw, ph, pw)
    return _jitted.col2im(_contiguous(cols), tuple(x_shape), kh, kw, sh, sw, ph, pw)


def maxpool_forward(x, kh, kw, sh, sw):
    """``(out, argmax)``; see :func:`.reference.maxpool_forward_reference`."""
    if _jitted is None:
        return reference.maxpool_forward_reference(x, kh, kw, sh, sw)
    return _jitted.maxpool_forward(_contiguous(x), kh, kw, sh, sw)


def maxpool_backward(grad_out, argmax, x_shape):
    """Gradient routed to each window's maximum; see :func:`.reference.maxpool_backward_reference`."""
    if _jitted is None:
        return reference.maxpool_backward_reference(grad_out, argmax, x_shape)
    return _jitted.maxpool_backward(_contiguous(grad_out), argmax, tuple(x_shape))


def avgpool_forward(x, kh, kw, sh, sw):
    """Window means; see :func:`.reference.avgpool_forward_reference`."""
    if _jitted is None:
        return reference.avgpool_forward_reference(x, kh, kw, sh, sw)
    return _jitted.avgpool_forward(_contiguous(x), kh, kw, sh, sw)


def avgpool_backward(grad_out, x_shape, kh, kw, sh, sw):
    """Gradient spread evenly over each window; see :func:`.reference.avgpool_backward_reference`."""
    if _jitted is None:
        return reference.avgpool_backward_reference(grad_out, x_shape, kh, kw, sh, sw)
    return _jitted.avgpool_backward(_contiguous(grad_out), tuple(x_shape), kh, kw, sh, sw)


__all__ = [
    "BACKEND",
    "output_size",
    "im2col",
    "col2im",
    "maxpool_forward",
    "maxpool_backward",
    "avgpool_forward",
    "avgpool_backward",
]
