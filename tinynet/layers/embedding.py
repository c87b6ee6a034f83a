r"""An image as a sequence a transformer can read: its patches, and where each one came from.

``Patches`` cuts each image into non-overlapping ``p x p`` squares and lays each one out flat,
row-major (left to right, then top to bottom), each patch in ``(C, p, p)`` order::

    (N, C, H, W) -> (N, C, H/p, p, W/p, p) -> (N, H/p, W/p, C, p, p) -> (N, (H/p)(W/p), C*p*p)

It only moves numbers, so its backward moves the gradient back the same way.

Attention treats its input as a set: permuting the patches permutes the output and nothing
else. ``PositionalEmbedding`` adds a learned vector to each position, ``y = x + P``, so a
patch's features also say where it was; ``dP`` is the gradient summed over the batch.
"""

import numpy as np

from .._checks import expect_rank, float_array, positive_int
from ..errors import ShapeError
from ..init import initial_normal
from .base import Layer

__all__ = ["Patches", "PositionalEmbedding"]


class Patches(Layer):
    """Non-overlapping ``patch_size x patch_size`` patches of images, each flattened: the tokens of a ViT.

    Parameters
    ----------
    patch_size : int
        ``p``; ``H`` and ``W`` must be multiples of it.

    Shape
    -----
    - Input: ``(N, C, H, W)``.
    - Output: ``(N, (H/p)*(W/p), C*p*p)``: patch ``r*(W/p) + q`` is the square at patch-row
      ``r``, patch-column ``q``; its entry ``c*p*p + i*p + j`` is pixel ``(r*p + i, q*p + j)``
      of channel ``c`` (as ``torch.nn.functional.unfold(x, p, stride=p).transpose(1, 2)``).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> Patches(2).forward(x)[0]           # four 2x2 patches, each read row by row
    array([[ 0.,  1.,  4.,  5.],
           [ 2.,  3.,  6.,  7.],
           [ 8.,  9., 12., 13.],
           [10., 11., 14., 15.]])
    """

    def __init__(self, patch_size):
        super().__init__()
        self.patch_size = positive_int(patch_size, "patch_size", "Patches")

    def check_input(self, x):
        """``x`` as ``(N, C, H, W)`` floats with ``H`` and ``W`` multiples of ``patch_size``, or a ShapeError."""
        x = float_array(x, "Patches")
        expect_rank(x, 4, "Patches", "(N, C, H, W)")
        p, (h, w) = self.patch_size, x.shape[2:]
        if h % p or w % p:
            fitting = [size for size in range(2, min(h, w) + 1) if h % size == 0 and w % size == 0]
            raise ShapeError(
                f"Patches({p}) cuts images into {p}x{p} squares, so H and W must be multiples of {p}; got input of "
                f"shape {tuple(x.shape)}. Pad or crop the images to {-(-h // p) * p}x{-(-w // p) * p} or "
                f"{h // p * p}x{w // p * p}, or use a patch_size that divides both: {fitting or [1]}.")
        return x

    def forward(self, x, training=False):
        """``(N, C, H, W) -> (N, (H/p)(W/p), C p p)``."""
        x = self.check_input(x)
        n, c, h, w = x.shape
        p = self.patch_size
        self._save(training, x.shape)
        grid = x.reshape(n, c, h // p, p, w // p, p)  # (N, C, H/p, p, W/p, p): pixel (r*p+i, q*p+j) at [r, i, q, j]
        patches = grid.transpose(0, 2, 4, 1, 3, 5)  # (N, H/p, W/p, C, p, p): patch (r, q) holds its (C, p, p)
        return patches.reshape(n, (h // p) * (w // p), c * p * p)  # (N, patches, C*p*p), a copy

    def backward(self, grad_out):
        """The gradient of each patch entry back to its pixel: the forward's moves, undone."""
        (x_shape,) = self._saved_values()
        n, c, h, w = x_shape
        p = self.patch_size
        grid = grad_out.reshape(n, h // p, w // p, c, p, p)  # (N, H/p, W/p, C, p, p)
        return grid.transpose(0, 3, 1, 4, 2, 5).reshape(x_shape)  # (N, C, H/p, p, W/p, p) -> (N, C, H, W)

    def get_config(self):
        return {"patch_size": self.patch_size}


class PositionalEmbedding(Layer):
    """A learned vector added to each position of a sequence: ``y = x + P``.

    Parameters
    ----------
    length : int
        ``T``, the number of positions (16 patches of a 28x28 image cut into 7x7 squares).
    features : int
        ``F``, the features of each position.
    rng : numpy.random.Generator or int, optional
        Source of the initial ``P``; the same seed gives the same ``P``.
    dtype : default float32

    Shape
    -----
    - Input: ``(N, length, features)``.
    - Output: the input's shape and dtype.

    Attributes
    ----------
    params["P"] : ``(length, features)``, normal ``N(0, 0.02^2)`` (as ViT and BERT start theirs).

    Notes
    -----
    ``y[n, t, f] = x[n, t, f] + P[t, f]``: every output depends on one input with slope 1,
    so ``dX = dY``; ``P`` is shared by the ``N`` sequences, so ``dP = sum_n dY[n]``.

    Examples
    --------
    >>> import numpy as np
    >>> layer = PositionalEmbedding(16, 64, rng=0)
    >>> layer.forward(np.zeros((2, 16, 64), dtype=np.float32)).shape, layer.params["P"].shape
    ((2, 16, 64), (16, 64))
    """

    def __init__(self, length, features, *, rng=None, dtype=np.float32):
        super().__init__()
        self.length = positive_int(length, "length", "PositionalEmbedding")
        self.features = positive_int(features, "features", "PositionalEmbedding")
        self.params = {"P": initial_normal((self.length, self.features), 0.02, rng, dtype)}

    def check_input(self, x):
        """``x`` as ``(N, length, features)`` floats in the layer's dtype, or a ShapeError naming the fix."""
        x = float_array(x, "PositionalEmbedding")
        expect_rank(x, 3, "PositionalEmbedding", "(N, length, features)")
        if x.shape[1:] != (self.length, self.features):
            raise ShapeError(
                f"PositionalEmbedding({self.length}, {self.features}) holds one vector for each of {self.length} "
                f"positions of {self.features} features; got input of shape {tuple(x.shape)}. Build it with "
                f"PositionalEmbedding({x.shape[1]}, {x.shape[2]}) (for Patches(p) on HxW images, "
                f"length = (H/p)*(W/p)).")
        return x.astype(self.dtype, copy=False)

    def forward(self, x, training=False):
        x = self.check_input(x)
        self._save(training, True)
        return x + self.params["P"]  # (N,T,F) + (T,F) -> (N,T,F)

    def backward(self, grad_out):
        self._saved_values()
        grad = grad_out.astype(self.dtype, copy=False)
        self.grads = {"P": grad.sum(axis=0)}  # (N,T,F) -> (T,F): P is shared by every sequence
        return grad.copy()  # dX = dY (a copy: backward never hands out its argument)

    def get_config(self):
        return {"length": self.length, "features": self.features}
