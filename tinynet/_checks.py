"""Argument checks shared by the public constructors and entry points.

Checks live at the edges (constructors, ``fit``/``predict``, loaders), never inside
kernels. Each message says what was received, what was expected and how to fix it.
"""

import math
import numbers

import numpy as np

from .errors import ArgumentError, ArgumentTypeError, ShapeError


def is_int(value):
    """True for an integer that is not a bool (``True`` is an int to Python, never to a user)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def int_in(value, low, high):
    """True for an int (not a bool) with ``low <= value < high``: how a file's counts and states are checked."""
    return is_int(value) and low <= value < high


def is_real(value):
    """True for a real number that is not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def number(value, name, owner, *, low=None, high=None, low_open=False, high_open=True, integer=False):
    """``value`` as an int (``integer=True``) or a finite float within the bounds, or a clear error.

    ``low`` and ``high`` are inclusive unless ``low_open``/``high_open`` (``high`` is open by
    default: ``[low, high)``).

    Examples
    --------
    >>> number(3, "epochs", "fit", low=0, integer=True)
    3
    >>> number(-1.0, "lr", "SGD", low=0)
    Traceback (most recent call last):
    ...
    tinynet.errors.ArgumentError: SGD expects lr to be a finite number >= 0; received lr=-1.0.
    """
    fits_type = is_int(value) if integer else is_real(value) and math.isfinite(value)
    too_low = fits_type and low is not None and (value <= low if low_open else value < low)
    too_high = fits_type and high is not None and (value >= high if high_open else value > high)
    if not fits_type or too_low or too_high:  # the message is worked out only when there is one to give
        what = _described(low, high, low_open, high_open, integer)
        error = ArgumentTypeError if not is_real(value) else ArgumentError
        raise error(f"{owner} expects {name} to be {what}; received {name}={value!r}.")
    return int(value) if integer else float(value)


def _described(low, high, low_open, high_open, integer):
    """What :func:`number` expects, in words: "an int >= 1", "in [0, 1)", "a positive number", ..."""
    if integer:
        if low == 0 and low_open:
            return "a positive int"
        return "an int" + (f" >= {low}" if low is not None else "") + (f" < {high}" if high is not None else "")
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if low == 0 and low_open:
        return "a positive number"
    if low is not None:
        return f"a finite number {'>' if low_open else '>='} {low}"
    return "a finite number"


def positive_int(value, name, owner):
    """``value`` as an int, or a ValueError/TypeError naming ``owner`` and ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ArgumentTypeError(f"{owner} expects {name} to be a positive int; received {name}={value!r}.")
    if value <= 0:
        raise ArgumentError(f"{owner} expects {name} to be a positive int; received {name}={value}.")
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
        raise ArgumentTypeError(f"{owner} expects {name} to be an int or a pair of ints; received {name}={value!r}.")
    if any(v < minimum for v in pair):
        bound = "positive" if minimum == 1 else f">= {minimum}"
        raise ArgumentError(f"{owner} expects {name} to be {bound}; received {name}={value!r}.")
    return int(pair[0]), int(pair[1])


def float_array(x, owner, name="input"):
    """``x`` as a floating ndarray, or a TypeError naming ``owner`` and the dtype received."""
    x = np.asarray(x)
    if x.dtype.kind != "f":
        raise ArgumentTypeError(
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
