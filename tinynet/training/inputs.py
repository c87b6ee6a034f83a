"""What ``fit``, ``evaluate`` and ``predict`` accept: inputs checked once at the edge, batches.

Inputs may be float arrays or uint8 images; uint8 is scaled to [0, 1] (divided by 255)
batch by batch, so a 60,000-image uint8 data set is never copied whole as floats.
"""

import numpy as np

from ..errors import ArgumentError, ArgumentTypeError, ShapeError
from ..kernels import all_finite

__all__ = ["prepare_inputs", "refuse_non_finite", "as_batch", "batches", "training_batches",
           "training_batch_count"]


def prepare_inputs(x, owner, check_finite=True):
    """Check ``x`` once at the edge: a non-empty array of floats (finite) or uint8 images.

    ``check_finite=False`` leaves the NaN/inf check to the caller (see :func:`predict_logits`).
    """
    x = np.asarray(x)
    if x.dtype != np.uint8 and x.dtype.kind != "f":  # the kind, not np.issubdtype: a tenth of the time
        raise ArgumentTypeError(
            f"{owner} expects float images (scaled to [0, 1]) or uint8 images (scaled here by 1/255); "
            f"received dtype {x.dtype}. Convert with x.astype(np.float32) / 255 or pass uint8."
        )
    if x.ndim < 2 or x.shape[0] == 0:
        raise ShapeError(f"{owner} expects a non-empty batch of samples (N, ...); got shape {tuple(x.shape)}.")
    if check_finite:
        refuse_non_finite(x, owner)
    return x


def refuse_non_finite(x, owner):
    if x.dtype != np.uint8 and not all_finite(x):
        raise ArgumentError(f"{owner} received inputs containing NaN or inf; clean or drop those samples first.")


def as_batch(x, dtype):
    """A batch in the model's dtype; uint8 images are scaled to [0, 1]."""
    if x.dtype == np.uint8:
        return x.astype(dtype) * dtype.type(1 / 255)
    return x if x.dtype == dtype else x.astype(dtype)


def batches(n, batch_size, order=None):
    """Index slices (or index arrays, given an ``order``) of consecutive batches of ``n`` samples."""
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        yield slice(start, stop) if order is None else order[start:stop]


def training_batch_count(n, batch_size):
    """How many batches :func:`training_batches` makes of ``n`` samples."""
    full, rest = divmod(n, batch_size)
    return max(1, full + (rest > 1))


def training_batches(n, batch_size, order=None):
    """The batches of a training epoch: as :func:`batches`, but a last batch of one sample joins the one before.

    A BatchNorm cannot estimate a variance from a single sample, so a run whose last batch
    held one (129 samples in batches of 128) would stop after its weights had moved; one
    batch of ``batch_size + 1`` keeps every sample in the epoch instead (Keras trains on the
    lone sample, PyTorch's users drop it with ``drop_last``).

    Examples
    --------
    >>> [(s.start, s.stop) for s in training_batches(129, 128)]
    [(0, 129)]
    >>> [(s.start, s.stop) for s in training_batches(130, 128)]
    [(0, 128), (128, 130)]
    """
    count = training_batch_count(n, batch_size)
    for number in range(count):
        start, stop = number * batch_size, n if number == count - 1 else (number + 1) * batch_size
        yield slice(start, stop) if order is None else order[start:stop]
