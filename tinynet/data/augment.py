"""Data augmentation for image batches, applied by ``fit(..., augment=...)`` batch by batch.

An augmentation is any callable ``augment(x_batch, rng) -> x_batch`` taking an NCHW float
batch and a ``numpy.random.Generator``; it must return a new array (never modify its input).
"""

import math

import numpy as np

from .._checks import is_int, is_real
from ..errors import ArgumentError, ShapeError
from ..kernels import affine_warp

__all__ = ["random_shift", "random_affine"]


def random_shift(max_shift=2):
    """Shift each image by a random whole number of pixels, up to ``max_shift`` each way, filling with 0.

    MNIST digits are centred by their centre of mass, so small translations produce new,
    equally plausible digits: a cheap way to make a CNN generalise better.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.zeros((1, 1, 5, 5), np.float32); x[0, 0, 2, 2] = 1
    >>> shifted = random_shift(1)(x, np.random.default_rng(0))
    >>> float(shifted.sum()), shifted.shape
    (1.0, (1, 1, 5, 5))
    """
    if not is_int(max_shift) or max_shift < 0:
        raise ArgumentError(f"random_shift expects max_shift to be an int >= 0; received max_shift={max_shift!r}.")

    def shift(x, rng):
        _check_images(x, "random_shift")
        n, _, h, w = x.shape
        s = max_shift
        padded = np.pad(x, ((0, 0), (0, 0), (s, s), (s, s)))
        dy, dx = rng.integers(0, 2 * s + 1, size=(2, n))
        rows = (dy[:, None] + np.arange(h))[:, :, None]  # (N, H, 1)
        cols = (dx[:, None] + np.arange(w))[:, None, :]  # (N, 1, W)
        picked = padded[np.arange(n)[:, None, None], :, rows, cols]  # (N, H, W, C): advanced axes first
        return np.ascontiguousarray(picked.transpose(0, 3, 1, 2))

    return shift


def _check_images(x, owner):
    """A ShapeError unless ``x`` is a batch of images ``(N, C, H, W)``: augmentation moves pixels."""
    if getattr(x, "ndim", None) != 4:
        raise ShapeError(
            f"{owner} moves the pixels of images (N, C, H, W); got a batch of shape {tuple(np.shape(x))}. "
            f"Give fit images, e.g. x.reshape(-1, 1, 28, 28), with a Flatten() layer first in the model."
        )


def _range_check(value, name, low_ok, message):
    if not is_real(value) or not math.isfinite(value) or not low_ok(value):
        raise ArgumentError(f"random_affine expects {name} {message}; received {name}={value!r}.")
    return float(value)


def random_affine(rotation=10.0, scale=(0.9, 1.1), shift=2.0):
    """Rotate, scale and shift each image by its own random amounts (bilinear, zeros outside).

    Each image of a batch is turned by an angle drawn uniformly in ``[-rotation, rotation]``
    degrees, scaled by a factor in ``[scale[0], scale[1]]`` and moved by up to ``shift``
    pixels along each axis, all about the image centre. The warp samples every output pixel
    from the input point it came from (:func:`tinynet.kernels.affine_warp`, a numba loop
    with a NumPy twin); the draws come from the generator ``fit`` passes, so a seeded fit
    augments the same way every time.

    Parameters
    ----------
    rotation : float >= 0, default 10
        Largest angle, in degrees.
    scale : (float, float), default (0.9, 1.1)
        Smallest and largest zoom factor, ``0 < low <= high``.
    shift : float >= 0, default 2
        Largest translation, in pixels.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).random((4, 1, 28, 28), dtype=np.float32)
    >>> augment = random_affine(rotation=15, scale=(0.9, 1.1), shift=2)
    >>> out = augment(x, np.random.default_rng(1))
    >>> out.shape, out.dtype, bool(np.array_equal(out, augment(x, np.random.default_rng(1))))
    ((4, 1, 28, 28), dtype('float32'), True)
    """
    rotation = _range_check(rotation, "rotation", lambda v: 0 <= v <= 180, "to be an angle in degrees in [0, 180]")
    if not isinstance(scale, (tuple, list)) or len(scale) != 2:
        raise ArgumentError(f"random_affine expects scale=(low, high); received scale={scale!r}.")
    # Bounded so the warp's matrices stay finite: a zoom of 1e-300 or a shift of 1e308 pixels
    # would only overflow, never augment.
    low = _range_check(scale[0], "scale[0]", lambda v: 1e-3 <= v <= 1e3, "to be a zoom factor in [0.001, 1000]")
    high = _range_check(scale[1], "scale[1]", lambda v: low <= v <= 1e3, f"to be in [scale[0]={low}, 1000]")
    shift = _range_check(shift, "shift", lambda v: 0 <= v <= 1e4, "to be a number of pixels in [0, 10000]")

    def warp(x, rng):
        _check_images(x, "random_affine")
        n, _, h, w = x.shape
        angle = np.deg2rad(rng.uniform(-rotation, rotation, n))
        zoom = rng.uniform(low, high, n)
        moved = rng.uniform(-shift, shift, (n, 2))
        # The output pixel p shows the input point  c + A (p - c - t),  A = R(-angle) / zoom,
        # c the centre, t the shift: the inverse of  p = c + zoom R(angle) (q - c) + t.
        cos, sin = np.cos(angle) / zoom, np.sin(angle) / zoom
        centre = np.array([(h - 1) / 2, (w - 1) / 2])
        matrices = np.empty((n, 2, 3))
        matrices[:, 0, 0], matrices[:, 0, 1], matrices[:, 1, 0], matrices[:, 1, 1] = cos, sin, -sin, cos
        matrices[:, :, 2] = centre - np.einsum("nij,nj->ni", matrices[:, :, :2], centre[None, :] + moved)
        return affine_warp(x, matrices)

    return warp
