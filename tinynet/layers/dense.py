r"""Fully connected layer: :math:`Y = X W + b`.

Forward, for a batch ``X`` of shape ``(N, D)`` and weights ``W`` of shape ``(D, M)``::

    Y = X @ W + b                      # (N, D) @ (D, M) + (M,) -> (N, M)

Backward, given ``dY = dL/dY`` of shape ``(N, M)``: ``Y[n, m] = sum_d X[n, d] W[d, m] + b[m]``,
so ``dY[n, m]/dW[d, m] = X[n, d]``, ``dY[n, m]/dX[n, d] = W[d, m]`` and ``dY[n, m]/db[m] = 1``;
summing each over the outputs it reaches::

    dW = X.T @ dY                      # (D, N) @ (N, M) -> (D, M)
    db = dY.sum(axis=0)                # (M,)
    dX = dY @ W.T                      # (N, M) @ (M, D) -> (N, D)

On a sequence ``(N, T, D)`` (or any ``(N, ..., D)``) the same map is applied to the last axis
at every position, with the same ``W`` and ``b``, as ``torch.nn.Linear``. Every position is
then a row like a sample's: the leading axes are flattened into ``R = N*T*...`` rows, and
``dW`` and ``db`` sum over all of them, since every row used the same weights::

    dW = X_rows.T @ dY_rows            # (D, R) @ (R, M) -> (D, M)
    db = dY_rows.sum(axis=0)           # (M,)
    dX = dY @ W.T                      # (N, ..., M) @ (M, D) -> (N, ..., D)
"""

import math

import numpy as np

from .._checks import expect_rank, float_array, positive_int
from ..errors import ShapeError
from ..init import initial_weights
from .base import Layer

__all__ = ["Dense", "affine", "dense_grads", "dense_input_grad"]


def affine(x, weights, bias, product=np.matmul):
    """``x @ W + b`` on ``(N, ..., D)`` with ``W`` ``(D, M)`` and ``b`` ``(M,)``: ``(N, ..., M)``.

    ``product(a, b)`` is the matrix product; the engine passes its own (:func:`tinynet.kernels.matmul`).

    Examples
    --------
    >>> import numpy as np
    >>> affine(np.ones((2, 3)), np.ones((3, 4)), np.arange(4.0))
    array([[3., 4., 5., 6.],
           [3., 4., 5., 6.]])
    """
    # Every position is a row, as in dense_grads: one (R,D) @ (D,M) product. (On (N, T, D),
    # NumPy's stacked matmul makes N products of T rows, at about half the speed.)
    out = product(x.reshape(-1, x.shape[-1]), weights).reshape(*x.shape[:-1], weights.shape[1])  # (N,...,M)
    out += bias  # in place: one (N,...,M) array, not two
    return out


def dense_input_grad(grad_out, weights, product=np.matmul):
    """``dX = dY Wᵀ`` on ``(N, ..., M)`` with ``W`` ``(D, M)``: ``(N, ..., D)``, every position a row
    (``product`` as in :func:`affine`).

    Examples
    --------
    >>> import numpy as np
    >>> dense_input_grad(np.ones((2, 3, 4)), np.ones((5, 4))).shape
    (2, 3, 5)
    """
    grad_rows = grad_out.reshape(-1, grad_out.shape[-1])  # (R,M)
    return product(grad_rows, weights.T).reshape(*grad_out.shape[:-1], weights.shape[0])  # (R,M) @ (M,D) -> (N,...,D)


def dense_grads(x, grad_out, product=np.matmul):
    """``(dW, db)`` of ``y = x @ W + b`` on ``(N, ..., D)``: every position is a row, and the rows' terms add
    (``product`` as in :func:`affine`).

    Examples
    --------
    >>> import numpy as np
    >>> x, grad = np.ones((2, 3, 4)), np.ones((2, 3, 5))    # 2 sequences of 3 positions
    >>> grad_w, grad_b = dense_grads(x, grad)
    >>> grad_w.shape, grad_b                              # each entry sums 6 positions
    ((4, 5), array([6., 6., 6., 6., 6.]))
    """
    x_rows = x.reshape(-1, x.shape[-1])  # (R,D): R = N, or N*T... for a sequence
    grad_rows = grad_out.reshape(-1, grad_out.shape[-1])  # (R,M)
    return product(x_rows.T, grad_rows), grad_rows.sum(axis=0)  # (D,R) @ (R,M) -> (D,M); (R,M) -> (M,)


class Dense(Layer):
    """Affine map ``y = x @ W + b``.

    Parameters
    ----------
    in_features, out_features : int
        Sizes ``D`` and ``M`` of each input and output row.
    init : {"he_normal", "glorot_uniform"}, default "he_normal"
        Initial distribution of ``W`` (``b`` starts at zero).
    rng : numpy.random.Generator or int, optional
        Source of the initial weights; the same seed gives the same weights.
    dtype : default float32
        dtype of the parameters, in which the layer computes.

    Shape
    -----
    - Input: ``(N, in_features)``, or ``(N, ..., in_features)`` (applied to the last axis).
    - Output: ``(N, out_features)``, or ``(N, ..., out_features)``.

    Attributes
    ----------
    params["W"] : ``(in_features, out_features)``, He normal ``N(0, 2/in_features)`` by default.
    params["b"] : ``(out_features,)``, zeros.

    Examples
    --------
    >>> import numpy as np
    >>> layer = Dense(3, 2, rng=0)
    >>> layer.forward(np.ones((4, 3), dtype=np.float32)).shape
    (4, 2)
    >>> layer.forward(np.ones((4, 5, 3), dtype=np.float32)).shape     # a sequence: every step alike
    (4, 5, 2)
    """

    def __init__(self, in_features, out_features, *, init="he_normal", rng=None, dtype=np.float32):
        super().__init__()
        self.in_features = positive_int(in_features, "in_features", "Dense")
        self.out_features = positive_int(out_features, "out_features", "Dense")
        self.init = init
        shape = (self.in_features, self.out_features)
        self.params = {
            "W": initial_weights(init, shape, self.in_features, self.out_features, rng, dtype, "Dense"),
            "b": np.zeros(self.out_features, dtype=dtype),
        }

    def forward(self, x, training=False):
        """``(N, ..., in_features) -> (N, ..., out_features)``."""
        x = self.check_input(x)
        self._save(training, x)
        return affine(x, self.params["W"], self.params["b"])  # (N,...,D) @ (D,M) + (M,) -> (N,...,M)

    def backward(self, grad_out):
        """``dX`` ``(N, ..., in_features)`` from ``dY`` ``(N, ..., out_features)``; fills ``grads``."""
        (x,) = self._saved_values()
        grad_out = grad_out.astype(self.dtype, copy=False)
        grad_w, grad_b = dense_grads(x, grad_out)
        self.grads = {"W": grad_w, "b": grad_b}
        return dense_input_grad(grad_out, self.params["W"])  # (N,...,M) @ (M,D) -> (N,...,D)

    def check_input(self, x):
        """``x`` as ``(N, ..., in_features)`` floats in the layer's dtype, or a ShapeError that says how to fix it."""
        x = float_array(x, "Dense")
        if x.ndim < 2:
            expect_rank(x, 2, "Dense", "(N, in_features)")
        if x.shape[-1] != self.in_features:
            hint = (f"Flatten images first: put a Flatten() layer before this one (it gives "
                    f"{math.prod(x.shape[1:])} features), or set in_features={x.shape[-1]} to apply the layer to "
                    f"the last axis." if x.ndim > 2 else f"Set in_features={x.shape[-1]} to match the layer before.")
            raise ShapeError(
                f"Dense({self.in_features}, {self.out_features}) expects input of shape (N, in_features) or "
                f"(N, ..., in_features) with {self.in_features} features on the last axis; got input of shape "
                f"{tuple(x.shape)}. {hint} (model.summary(input_shape) shows every layer's output shape.)"
            )
        return x.astype(self.dtype, copy=False)

    def get_config(self):
        return {"in_features": self.in_features, "out_features": self.out_features, "init": self.init}
