"""Data augmentation for image batches, applied by ``fit(..., augment=...)`` batch by batch.

An augmentation is any callable ``augment(x_batch, rng) -> x_batch`` taking an NCHW float
batch and a ``numpy.random.Generator``; it must return a new array (never modify its input).
"""

import numpy as np

__all__ = ["random_shift"]


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
    if isinstance(max_shift, bool) or not isinstance(max_shift, int) or max_shift < 0:
        raise ValueError(f"random_shift expects max_shift to be an int >= 0; received max_shift={max_shift!r}.")

    def shift(x, rng):
        n, _, h, w = x.shape
        s = max_shift
        padded = np.pad(x, ((0, 0), (0, 0), (s, s), (s, s)))
        dy, dx = rng.integers(0, 2 * s + 1, size=(2, n))
        rows = (dy[:, None] + np.arange(h))[:, :, None]  # (N, H, 1)
        cols = (dx[:, None] + np.arange(w))[:, None, :]  # (N, 1, W)
        picked = padded[np.arange(n)[:, None, None], :, rows, cols]  # (N, H, W, C): advanced axes first
        return np.ascontiguousarray(picked.transpose(0, 3, 1, 2))

    return shift
