r"""Batch and layer normalisation: each feature (channel) scaled to zero mean and unit variance over the
batch (BatchNorm), or each row over its own features (LayerNorm, at the end of this file).

Forward in training, for ``x`` of ``M`` rows (``BatchNorm1D``: the batch's ``N`` examples;
``BatchNorm2D``: every pixel of every image is a row, ``M = N*H*W``) and ``C`` features, per
feature::

    mu    = mean(x)                    var = mean((x - mu)^2)        (biased, over the M rows)
    x_hat = (x - mu) / sqrt(var + eps)
    y     = gamma * x_hat + beta

and the running statistics, used instead of the batch's at inference, move towards the
batch's: ``running = (1 - momentum) * running + momentum * batch`` (the variance unbiased,
``var * M / (M - 1)``), as in PyTorch.

Backward, with ``g = dY``, in its compact form (every row's ``x_hat`` depends on ``mu`` and
``var``, which depend on every row: the two sums carry those paths)::

    dbeta  = sum(g)                    dgamma = sum(g * x_hat)
    dx     = gamma / (M * sqrt(var + eps)) * (M * g - sum(g) - x_hat * sum(g * x_hat))

At inference ``mu`` and ``var`` are constants, so ``dx = gamma * g / sqrt(running_var + eps)``.
docs/backprop.md derives the training form step by step. Inside a ``Sequential`` the engine
(:mod:`tinynet.engine`) runs the same formulas as two numba passes over channels-last rows;
the tests check that it agrees with this code.
"""


import numpy as np

from .._checks import expect_rank, float_array, is_real, positive_int
from ..errors import ArgumentError, ShapeError
from .base import Layer

__all__ = ["BatchNorm1D", "BatchNorm2D", "LayerNorm", "normalize_batch", "normalize_batch_backward", "inference_affine",
           "inverse_std", "layer_norm", "layer_norm_backward"]


def normalize_batch(x, gamma, beta, eps, axes):
    """Training: ``(y, x_hat, mean, var, inv_std)`` of ``x`` normalised over ``axes``, each feature on its own.

    ``gamma`` and ``beta`` broadcast against ``x`` (``(C,)`` for rows ``(M, C)``,
    ``(1, C, 1, 1)`` for images); ``mean``, ``var`` and ``inv_std`` keep ``axes`` as length 1.
    Sums in float64: a float32 sum over 100,000 values would lose digits the variance needs.
    Everything returned is in ``x``'s dtype.

    Examples
    --------
    >>> y, x_hat, mean, var, inv_std = normalize_batch(np.array([[1.0, 10.0], [3.0, 30.0]]), 1.0, 0.0, 1e-5, (0,))
    >>> y.round(3), mean, var
    (array([[-1., -1.],
           [ 1.,  1.]]), array([[ 2., 20.]]), array([[  1., 100.]]))
    """
    dtype = x.dtype
    mean = x.mean(axis=axes, keepdims=True, dtype=np.float64)
    centred = x - mean
    var = (centred**2).mean(axis=axes, keepdims=True)  # biased, as the normalisation uses
    inv_std = inverse_std(var, eps).astype(dtype)
    x_hat = centred.astype(dtype) * inv_std  # zero mean, unit variance per feature
    return gamma * x_hat + beta, x_hat, mean.astype(dtype), var.astype(dtype), inv_std


def normalize_batch_backward(grad, x_hat, gamma, inv_std, count, axes):
    """``(dx, dgamma, dbeta)`` of :func:`normalize_batch` (or of :func:`inference_affine`'s map, ``count`` None).

    Every ``x_hat`` depends on the batch's mean and variance, which depend on every row of
    the ``count`` a feature's statistics came from; the two sums carry those paths::

        dbeta  = sum(g)        dgamma = sum(g * x_hat)
        dx     = gamma * inv_std / M * (M * g - dbeta - x_hat * dgamma)

    At inference (``count`` None) the statistics are constants and ``dx = gamma * inv_std * g``.
    ``dgamma`` and ``dbeta`` are ``(C,)``, summed in float64, returned in ``grad``'s dtype.

    Examples
    --------
    A gradient that is the same for every row moves nothing: the batch mean takes it away.

    >>> dx, dgamma, dbeta = normalize_batch_backward(np.ones((2, 1)), np.array([[-1.0], [1.0]]), 1.0, 1.0, 2, (0,))
    >>> dx.ravel(), dgamma, dbeta
    (array([0., 0.]), array([0.]), array([2.]))
    """
    dtype = grad.dtype
    grad_beta = grad.sum(axis=axes, keepdims=True, dtype=np.float64).astype(dtype)
    grad_gamma = (grad * x_hat).sum(axis=axes, keepdims=True, dtype=np.float64).astype(dtype)
    if count is None:  # after an inference forward: y is affine in x
        grad_x = gamma * inv_std * grad
    else:
        scale = gamma * inv_std / dtype.type(count)
        grad_x = scale * (count * grad - grad_beta - x_hat * grad_gamma)
    return grad_x, grad_gamma.ravel(), grad_beta.ravel()


def inverse_std(var, eps):
    """``1 / sqrt(var + eps)``, in ``var``'s dtype."""
    return 1 / np.sqrt(var + var.dtype.type(eps))


def inference_affine(gamma, beta, running_mean, running_var, eps):
    """``(scale, shift)``: BatchNorm at inference as the affine map ``y = scale * x + shift`` per feature.

    With the running statistics fixed, ``gamma * (x - mean) / sqrt(var + eps) + beta`` is
    ``scale = gamma / sqrt(var + eps)`` times ``x``, plus ``shift = beta - mean * scale``.
    The engine applies the same map in the epilogue of the product before the layer.

    Examples
    --------
    >>> inference_affine(np.array([2.0]), np.array([1.0]), np.array([3.0]), np.array([4.0]), 0.0)
    (array([1.]), array([-2.]))
    """
    scale = gamma * inverse_std(running_var, eps)
    return scale, beta - running_mean * scale



def layer_norm(x, gamma, beta, eps):
    """LayerNorm's forward over the last axis of ``x`` ``(N, ..., F)``: ``(y, x_hat, inv_std)``, ``inv_std``
    ``(N, ..., 1)``, all in ``x``'s dtype.

    Examples
    --------
    >>> y, x_hat, inv_std = layer_norm(np.array([[1.0, 3.0]]), np.ones(2), np.zeros(2), 1e-5)
    >>> y.round(3)
    array([[-1.,  1.]])
    """
    mean = x.mean(axis=-1, keepdims=True)  # (N,...,1)
    centred = x - mean  # (N,...,F)
    var = (centred * centred).mean(axis=-1, keepdims=True)  # (N,...,1), biased
    inv_std = 1 / np.sqrt(var + x.dtype.type(eps))  # (N,...,1)
    x_hat = centred * inv_std  # (N,...,F): zero mean, unit variance per row
    return x_hat * gamma + beta, x_hat, inv_std


def layer_norm_backward(grad, x_hat, gamma, inv_std):
    """``(dx, dgamma, dbeta)`` of :func:`layer_norm` from ``grad = dL/dy`` ``(N, ..., F)``; LayerNorm's Notes derive it.

    Examples
    --------
    A gradient that is the same for every feature of a row moves nothing: the row's mean takes it away.

    >>> dx, dgamma, dbeta = layer_norm_backward(np.ones((1, 2)), np.array([[-1.0, 1.0]]), np.ones(2), np.ones((1, 1)))
    >>> dx, dgamma, dbeta
    (array([[0., 0.]]), array([-1.,  1.]), array([1., 1.]))
    """
    features = x_hat.shape[-1]
    grad_gamma = (grad * x_hat).reshape(-1, features).sum(axis=0)  # (R,F) -> (F,): over every row
    grad_beta = grad.reshape(-1, features).sum(axis=0)  # (R,F) -> (F,)
    grad_hat = grad * gamma  # h = dL/dx_hat: (N,...,F)
    sum_h = grad_hat.sum(axis=-1, keepdims=True)  # (N,...,1): the path through the mean
    sum_h_x_hat = (grad_hat * x_hat).sum(axis=-1, keepdims=True)  # (N,...,1): the path through the variance
    count = x_hat.dtype.type(features)
    return inv_std / count * (count * grad_hat - sum_h - x_hat * sum_h_x_hat), grad_gamma, grad_beta  # (N,...,F)

class _BatchNorm(Layer):
    """The statistics and their backward; subclasses say which axes are the rows."""

    _rank, _layout = 2, "(N, C)"
    #: The axes a feature's statistics are taken over: every axis but the features' (axis 1).
    _row_axes = (0,)

    def __init__(self, num_features, momentum=0.1, eps=1e-5, *, dtype=np.float32):
        super().__init__()
        name = type(self).__name__
        self.num_features = positive_int(num_features, self._size_name, name)
        if not is_real(momentum) or not 0 < momentum <= 1:
            raise ArgumentError(
                f"{name} expects momentum in (0, 1] (the weight of each batch in the running statistics); "
                f"received momentum={momentum!r}. PyTorch's and tinynet's default is 0.1."
            )
        if not is_real(eps) or not eps > 0 or not np.isfinite(eps):
            raise ArgumentError(f"{name} expects eps > 0 (it keeps the division finite); received eps={eps!r}.")
        self.momentum, self.eps = float(momentum), float(eps)
        self.params = {"gamma": np.ones(self.num_features, dtype), "beta": np.zeros(self.num_features, dtype)}
        self.buffers = {"running_mean": np.zeros(self.num_features, dtype),
                        "running_var": np.ones(self.num_features, dtype)}

    @property
    def running_mean(self):
        """Running mean of each feature (a buffer: saved with the model, not trained)."""
        return self.buffers["running_mean"]

    @property
    def running_var(self):
        """Running (unbiased) variance of each feature (a buffer)."""
        return self.buffers["running_var"]

    def load_state_dict(self, state):
        """As :meth:`Layer.load_state_dict`, refusing running statistics no batch could give.

        A NaN, an infinity or a negative variance would make every prediction NaN; such a
        state comes from a diverged run or a damaged file, never from training.
        """
        for key in ("running_mean", "running_var"):
            value = state.get(key) if isinstance(state, dict) else None
            if isinstance(value, np.ndarray) and value.dtype.kind == "f" and (
                    not np.isfinite(value).all() or (key == "running_var" and (value < 0).any())):
                raise ArgumentError(f"{type(self).__name__}.load_state_dict: {key} must be finite"
                                    f"{' and >= 0' if key == 'running_var' else ''}; this state holds "
                                    f"{'NaN or inf' if not np.isfinite(value).all() else 'negative values'}.")
        super().load_state_dict(state)

    def check_input(self, x):
        """``x`` as a float array of the layer's rank and features, in its dtype, or a clear error."""
        name = type(self).__name__
        x = float_array(x, name)
        expect_rank(x, self._rank, name, self._layout)
        if x.shape[1] != self.num_features:
            raise ShapeError(
                f"{name}({self.num_features}) expects {self.num_features} {self._feature_word} on axis 1; "
                f"got input of shape {tuple(x.shape)}. Build it with {name}({x.shape[1]})."
            )
        return x.astype(self.dtype, copy=False)

    def check_batch(self, count):
        """A ValueError unless ``count`` values per feature (at least two) can estimate a variance."""
        if count < 2:
            raise ArgumentError(
                f"{type(self).__name__} in training needs more than one value per {self._feature_word[:-1]} to "
                f"estimate a variance; got {count}. Use a batch of two or more (or training=False)."
            )

    def update_running_statistics(self, mean, var, count):
        """Move the running statistics towards a training batch's ``mean`` and biased ``var`` of ``count`` values.

        ``running = (1 - momentum) * running + momentum * batch``, the variance made unbiased
        (``var * count / (count - 1)``), as PyTorch does.
        """
        momentum = self.dtype.type(self.momentum)
        self.buffers["running_mean"] *= 1 - momentum
        self.buffers["running_mean"] += momentum * mean.astype(self.dtype, copy=False)
        self.buffers["running_var"] *= 1 - momentum
        self.buffers["running_var"] += momentum * var.astype(self.dtype, copy=False) * self.dtype.type(
            count / (count - 1))

    def _per_feature(self, values):
        """``(C,)`` values shaped to broadcast against the input: ``(1, C)`` or ``(1, C, 1, 1)``."""
        return values.reshape(1, -1, *([1] * (self._rank - 2)))

    def forward(self, x, training=False):
        """Normalise each feature: by the batch's statistics in training, by the running ones otherwise."""
        x = self.check_input(x)
        gamma, beta = self._per_feature(self.params["gamma"]), self._per_feature(self.params["beta"])
        if not training:  # y = scale * x + shift, the statistics constants
            scale, shift = (self._per_feature(values) for values in inference_affine(
                self.params["gamma"], self.params["beta"], self.running_mean, self.running_var, self.eps))
            if self._keeps(training):  # recorded for backward: the x_hat that dgamma needs
                inv_std = self._per_feature(inverse_std(self.running_var, self.eps))
                self._save(False, (x - self._per_feature(self.running_mean)) * inv_std, inv_std, None)
            return x * scale + shift
        count = x.size // self.num_features  # values per feature: N (1D) or N*H*W (2D)
        self.check_batch(count)
        y, x_hat, mean, var, inv_std = normalize_batch(x, gamma, beta, self.eps, self._row_axes)
        self.update_running_statistics(mean.ravel(), var.ravel(), count)
        self._save(True, x_hat, inv_std, count)
        return y

    def backward(self, grad_out):
        """``dX`` from ``dY`` (the input's shape); fills ``grads`` with ``dgamma`` and ``dbeta``.

        See :func:`normalize_batch_backward`. After an inference forward (recorded by
        ``Sequential.gradients_at_inference``) the statistics are constants and
        ``dx = gamma * inv_std * g``.
        """
        x_hat, inv_std, count = self._saved_values()  # count M: the rows each feature's statistics came from
        grad_x, grad_gamma, grad_beta = normalize_batch_backward(
            grad_out.astype(self.dtype, copy=False), x_hat, self._per_feature(self.params["gamma"]), inv_std, count,
            self._row_axes)
        self.grads = {"gamma": grad_gamma, "beta": grad_beta}
        return grad_x

    def get_config(self):
        return {self._size_name: self.num_features, "momentum": self.momentum, "eps": self.eps}


class BatchNorm1D(_BatchNorm):
    """Batch normalisation of ``(N, C)`` features, as ``torch.nn.BatchNorm1d``.

    Parameters
    ----------
    num_features : int
        ``C``.
    momentum : float in (0, 1], default 0.1
        Weight of each batch in the running statistics.
    eps : float > 0, default 1e-5
        Added to the variance before the square root.

    Shape
    -----
    - Input: ``(N, C)``; in training ``N >= 2``.
    - Output: ``(N, C)``, the input's dtype.

    Attributes
    ----------
    params["gamma"], params["beta"] : ``(C,)``, ones and zeros.
    buffers["running_mean"], buffers["running_var"] : ``(C,)``, zeros and ones; also
        ``layer.running_mean`` and ``layer.running_var``.

    Examples
    --------
    >>> import numpy as np
    >>> bn = BatchNorm1D(2)
    >>> y = bn.forward(np.array([[1.0, 10.0], [3.0, 30.0]]), training=True)
    >>> y.round(3)                                  # computed in the layer's dtype, float32
    array([[-1., -1.],
           [ 1.,  1.]], dtype=float32)
    >>> bn.running_mean.round(3)                    # 0.9 * 0 + 0.1 * the batch mean
    array([0.2, 2. ], dtype=float32)
    """

    _size_name, _feature_word = "num_features", "features"

    def __init__(self, num_features, momentum=0.1, eps=1e-5, *, dtype=np.float32):
        super().__init__(num_features, momentum, eps, dtype=dtype)


class BatchNorm2D(_BatchNorm):
    """Batch normalisation of each channel of ``(N, C, H, W)`` images, as ``torch.nn.BatchNorm2d``.

    The statistics of a channel are taken over the batch and every pixel (``N*H*W`` values).
    Inside a ``Sequential`` the engine runs it on channels-last activations, where those
    values are the rows of an ``(N*H*W, C)`` array (see :mod:`tinynet.engine`).

    Parameters
    ----------
    num_channels : int
        ``C``.
    momentum : float in (0, 1], default 0.1
    eps : float > 0, default 1e-5

    Shape
    -----
    - Input: ``(N, C, H, W)``; in training ``N*H*W >= 2``.
    - Output: the input's shape and dtype.

    Attributes
    ----------
    params["gamma"], params["beta"] : ``(C,)``, ones and zeros.
    buffers["running_mean"], buffers["running_var"] : ``(C,)``, zeros and ones.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).standard_normal((8, 3, 4, 4)) * 5 + 2
    >>> y = BatchNorm2D(3).forward(x, training=True)
    >>> bool(np.allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-6)), bool(np.allclose(y.std(axis=(0, 2, 3)), 1, atol=1e-3))
    (True, True)
    """

    _rank, _layout = 4, "(N, C, H, W)"
    _row_axes = (0, 2, 3)
    _size_name, _feature_word = "num_channels", "channels"

    def __init__(self, num_channels, momentum=0.1, eps=1e-5, *, dtype=np.float32):
        super().__init__(num_channels, momentum, eps, dtype=dtype)


class LayerNorm(Layer):
    r"""Layer normalisation: each sample's (each position's) features scaled to zero mean and unit variance.

    Forward, over the last axis (the ``F`` features of one row; every other axis is a row)::

        mu    = mean(x)                var = mean((x - mu)^2)         (biased, over the F features)
        x_hat = (x - mu) / sqrt(var + eps)
        y     = gamma * x_hat + beta

    Unlike BatchNorm, the statistics are the row's own: no batch, no running statistics, the
    same computation in training and at inference. As ``torch.nn.LayerNorm(num_features)``.

    Parameters
    ----------
    num_features : int
        ``F``, the size of the last axis.
    eps : float > 0, default 1e-5
        Added to the variance before the square root.
    dtype : default float32

    Shape
    -----
    - Input: ``(N, ..., F)``, e.g. ``(N, F)`` or a sequence ``(N, T, F)``.
    - Output: the input's shape and dtype.

    Attributes
    ----------
    params["gamma"], params["beta"] : ``(F,)``, ones and zeros.

    Notes
    -----
    Backward, with ``g = dY`` and sums over the ``F`` features of a row. ``beta`` and ``gamma``
    are shared by every row, so their gradients sum over the rows::

        dbeta = sum_rows g              dgamma = sum_rows g * x_hat

    The input's gradient is BatchNorm's derivation with the roles of the axes swapped. Write
    ``h = g * gamma`` (``dL/dx_hat``). Each ``x_hat_i`` depends on ``x_i`` directly and on every
    ``x_j`` of its row through ``mu`` and ``var``; with ``dmu/dx_j = 1/F`` and
    ``dvar/dx_j = 2 (x_j - mu) / F``, the chain rule gives::

        dx = inv_std / F * (F * h - sum(h) - x_hat * sum(h * x_hat))

    ``sum(h)`` carries the path through the mean, ``sum(h * x_hat)`` the path through the
    variance (docs/backprop.md goes step by step).

    Examples
    --------
    >>> import numpy as np
    >>> LayerNorm(2).forward(np.array([[1.0, 3.0], [10.0, 30.0]])).round(3)
    array([[-1.,  1.],
           [-1.,  1.]], dtype=float32)
    """

    def __init__(self, num_features, eps=1e-5, *, dtype=np.float32):
        super().__init__()
        self.num_features = positive_int(num_features, "num_features", "LayerNorm")
        if not is_real(eps) or not eps > 0 or not np.isfinite(eps):
            raise ArgumentError(f"LayerNorm expects eps > 0 (it keeps the division finite); received eps={eps!r}.")
        self.eps = float(eps)
        self.params = {"gamma": np.ones(self.num_features, dtype), "beta": np.zeros(self.num_features, dtype)}

    def check_input(self, x):
        """``x`` as ``(N, ..., num_features)`` floats in the layer's dtype, or a ShapeError naming the fix."""
        x = float_array(x, "LayerNorm")
        if x.ndim < 2 or x.shape[-1] != self.num_features:
            raise ShapeError(
                f"LayerNorm({self.num_features}) normalises the last axis of (N, ..., {self.num_features}); got input "
                f"of shape {tuple(x.shape)}. Build it with LayerNorm({x.shape[-1] if x.ndim else 1}) to match.")
        return x.astype(self.dtype, copy=False)

    def forward(self, x, training=False):
        """``(N, ..., F) -> (N, ..., F)``: every row normalised by its own mean and variance."""
        x = self.check_input(x)
        y, x_hat, inv_std = layer_norm(x, self.params["gamma"], self.params["beta"], self.eps)
        self._save(training, x_hat, inv_std)
        return y

    def backward(self, grad_out):
        """``dX`` from ``dY`` (both ``(N, ..., F)``); fills ``grads`` with ``dgamma`` and ``dbeta`` ``(F,)``."""
        x_hat, inv_std = self._saved_values()
        grad = grad_out.astype(self.dtype, copy=False)
        grad_x, grad_gamma, grad_beta = layer_norm_backward(grad, x_hat, self.params["gamma"], inv_std)
        self.grads = {"gamma": grad_gamma, "beta": grad_beta}
        return grad_x

    def get_config(self):
        return {"num_features": self.num_features, "eps": self.eps}
