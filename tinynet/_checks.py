"""Argument checks shared by the public constructors and entry points.

Checks live at the edges (constructors, ``fit``/``predict``, loaders), never inside
kernels. Each message says what was received, what was expected and how to fix it.
"""

import numbers

import numpy as np

from .errors import ShapeError


def positive_int(value, name, owner):
    """``value`` as an int, or a ValueError/TypeError naming ``owner`` and ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{owner} expects {name} to be a positive int; received {name}={value!r}.")
    if value <= 0:
        raise ValueError(f"{owner} expects {name} to be a positive int; received {name}={value}.")
    return int(value)


def int_pair(value, name, owner, minimum=1):
    """An int or a pair of ints as a pair ``(rows, columns)``, each ``>= minimum``."""
    if isinstance(value, numbers.Integral):
        pair = (value, value)
    elif isinstance(value, (tuple, list)):
        pair = tuple(value)
    else:
        pair = ()
    if len(pair) != 2 or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in pair):
        raise TypeError(f"{owner} expects {name} to be an int or a pair of ints; received {name}={value!r}.")
    if any(v < minimum for v in pair):
        bound = "positive" if minimum == 1 else f">= {minimum}"
        raise ValueError(f"{owner} expects {name} to be {bound}; received {name}={value!r}.")
    return int(pair[0]), int(pair[1])


def float_array(x, owner, name="input"):
    """``x`` as a floating ndarray, or a TypeError naming ``owner`` and the dtype received."""
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(
            f"{owner} expects a floating-point {name}; received dtype {x.dtype}. "
            f"Convert it first, e.g. x.astype(np.float32) (scale uint8 images by 1/255)."
        )
    return x


def expect_rank(x, rank, owner, layout):
    """Raise a ShapeError unless ``x.ndim == rank``; ``layout`` names the axes, e.g. ``"(N, C, H, W)"``."""
    if x.ndim != rank:
        hint = ""
        if rank == 4 and x.ndim == 2:
            hint = (" A single image (H, W) needs batch and channel axes: x[None, None]; rows of"
                    " flattened images (N, H*W) need reshaping: x.reshape(-1, 1, H, W).")
        elif rank == 2 and x.ndim > 2:
            hint = " Flatten images first: put a Flatten() layer before this one."
        elif rank == 4 and x.ndim == 3:
            hint = " Add a channel axis: x[:, None] (one grayscale channel)."
        raise ShapeError(f"{owner} expects input of shape {layout}; got {tuple(x.shape)}.{hint}")
