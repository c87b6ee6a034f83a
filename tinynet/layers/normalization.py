r"""Batch normalisation: each feature (channel) scaled to zero mean and unit variance over the batch.

Forward in training, for ``x`` of ``N`` rows (``BatchNorm2D``: every pixel of every image is
a row, ``N*H*W`` of them) and ``C`` features, per feature::

    mu    = mean(x)                    var = mean((x - mu)^2)        (biased, over the N rows)
    x_hat = (x - mu) / sqrt(var + eps)
    y     = gamma * x_hat + beta

and the running statistics, used instead of the batch's at inference, move towards the
batch's: ``running = (1 - momentum) * running + momentum * batch`` (the variance unbiased,
``var * N / (N - 1)``), as in PyTorch.

Backward, with ``g = dY``, in its compact form (every row's ``x_hat`` depends on ``mu`` and
``var``, which depend on every row: the two sums carry those paths)::

    dbeta  = sum(g)                    dgamma = sum(g * x_hat)
    dx     = gamma / (N * sqrt(var + eps)) * (N * g - sum(g) - x_hat * sum(g * x_hat))

At inference ``mu`` and ``var`` are constants, so ``dx = gamma * g / sqrt(running_var + eps)``.
docs/backprop.md derives the training form step by step.
"""

import numbers

import numpy as np

from .._checks import expect_rank, float_array, positive_int
from ..errors import ShapeError
from ..kernels import batchnorm_backward, batchnorm_forward
from .base import ChannelsLast, Layer

__all__ = ["BatchNorm1D", "BatchNorm2D"]


class _BatchNorm(Layer):
    """The statistics and their backward, on rows ``(N, C)``; subclasses arrange the axes."""

    _rank, _layout = 2, "(N, C)"

    def __init__(self, num_features, momentum=0.1, eps=1e-5, *, dtype=np.float32):
        super().__init__()
        name = type(self).__name__
        self.num_features = positive_int(num_features, self._size_name, name)
        if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real) or not 0 < momentum <= 1:
            raise ValueError(
                f"{name} expects momentum in (0, 1] (the weight of each batch in the running statistics); "
                f"received momentum={momentum!r}. PyTorch's and tinynet's default is 0.1."
            )
        if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not eps > 0 or not np.isfinite(eps):
            raise ValueError(f"{name} expects eps > 0 (it keeps the division finite); received eps={eps!r}.")
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

    def _checked_input(self, x):
        name = type(self).__name__
        x = float_array(x, name)
        expect_rank(x, self._rank, name, self._layout)
        if x.shape[1] != self.num_features:
            raise ShapeError(
                f"{name}({self.num_features}) expects {self.num_features} {self._feature_word} on axis 1; "
                f"got input of shape {tuple(x.shape)}. Build it with {name}({x.shape[1]})."
            )
        return x.astype(self.dtype, copy=False)

    # -- the computation, on rows (M, C) -----------------------------------------------------
    def _forward_rows(self, rows, training):
        if not training:
            self._save(False)
            scale = self.params["gamma"] / np.sqrt(self.buffers["running_var"] + self.dtype.type(self.eps))
            return rows * scale + (self.params["beta"] - self.buffers["running_mean"] * scale)
        count = len(rows)
        if count < 2:
            raise ValueError(
                f"{type(self).__name__} in training needs more than one value per {self._feature_word[:-1]} to "
                f"estimate a variance; got {count}. Use a batch of two or more (or training=False)."
            )
        # y = gamma * x_hat + beta, x_hat = (x - mean) / sqrt(var + eps), var biased: two passes
        # of a numba loop (kernels.batchnorm_forward), or its NumPy twin.
        y, x_hat, mean, var, inv_std = batchnorm_forward(rows, self.params["gamma"], self.params["beta"], self.eps)
        momentum = self.dtype.type(self.momentum)
        self.buffers["running_mean"] *= 1 - momentum
        self.buffers["running_mean"] += momentum * mean
        self.buffers["running_var"] *= 1 - momentum
        self.buffers["running_var"] += momentum * var * self.dtype.type(count / (count - 1))
        self._save(True, x_hat, inv_std)
        return y

    def _backward_rows(self, grad):
        x_hat, inv_std = self._saved_values()
        grad = grad.astype(self.dtype, copy=False)
        # dbeta = sum(g), dgamma = sum(g * x_hat) over the M rows, and
        # dx = gamma * inv_std / M * (M * g - dbeta - x_hat * dgamma)                       (M, C)
        grad_x, grad_gamma, grad_beta = batchnorm_backward(grad, x_hat, self.params["gamma"], inv_std)
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

    def forward(self, x, training=False):
        return self._forward_rows(self._checked_input(x), training)

    def backward(self, grad_out):
        return self._backward_rows(grad_out)


class BatchNorm2D(ChannelsLast, _BatchNorm):
    """Batch normalisation of each channel of ``(N, C, H, W)`` images, as ``torch.nn.BatchNorm2d``.

    The statistics of a channel are taken over the batch and every pixel (``N*H*W`` values).
    Inside a ``Sequential`` it runs on channels-last activations, where those values are
    the rows of an ``(N*H*W, C)`` array (see :mod:`tinynet.plan`).

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
    _size_name, _feature_word = "num_channels", "channels"

    def __init__(self, num_channels, momentum=0.1, eps=1e-5, *, dtype=np.float32):
        super().__init__(num_channels, momentum, eps, dtype=dtype)

    def _forward_channels_last(self, x, training=False):
        """``(N, H, W, C)`` -> same; the channels are the columns of ``(N*H*W, C)`` rows."""
        if x.shape[3] != self.num_features:
            raise ShapeError(f"BatchNorm2D expects {self.num_features} channels; got {x.shape[3]}.")
        x = x.astype(self.dtype, copy=False)
        return self._forward_rows(x.reshape(-1, self.num_features), training).reshape(x.shape)

    def _backward_channels_last(self, grad_out):
        return self._backward_rows(grad_out.reshape(-1, self.num_features)).reshape(grad_out.shape)
