"""BatchNorm2D in the engine: the statistics of channels-last rows, two numba passes each way.

On NHWC activations the ``N*H*W`` values of a channel are the column of an ``(N*H*W, C)``
array, so the layer's formulas (:mod:`tinynet.layers.normalization`) run as column sums over
contiguous rows, accumulated in float64.
"""

import numpy as np

from ..errors import ShapeError
from ..kernels import batchnorm_backward, batchnorm_forward
from .steps import Step

__all__ = ["BatchNormStep"]


class BatchNormStep(Step):
    """A BatchNorm2D on NHWC activations."""

    trainable = True

    def __init__(self, position, layer):
        super().__init__()
        self.positions, self.layer = (position,), layer

    def forward(self, x, training=False):
        layer = self.layer
        channels = layer.num_features
        if x.ndim != 4 or x.shape[3] != channels:
            raise ShapeError(f"BatchNorm2D expects {channels} channels; got activations of shape "
                             f"{tuple(x.shape)} (channels last).")
        rows = np.ascontiguousarray(x, dtype=layer.dtype).reshape(-1, channels)  # (N*H*W, C)
        gamma, beta = layer.params["gamma"], layer.params["beta"]
        if not training:
            self._saved = None
            scale = gamma / np.sqrt(layer.running_var + layer.dtype.type(layer.eps))
            return (rows * scale + (beta - layer.running_mean * scale)).reshape(x.shape)
        layer.check_batch(len(rows))
        y, x_hat, mean, var, inv_std = batchnorm_forward(rows, gamma, beta, layer.eps)
        layer.update_running_statistics(mean, var, len(rows))
        self._saved = (x_hat, inv_std)
        return y.reshape(x.shape)

    def backward(self, grad, input_grad=True):
        x_hat, inv_std = self._saved_values()
        rows = grad.astype(self.layer.dtype, copy=False).reshape(x_hat.shape)
        grad_x, grad_gamma, grad_beta = batchnorm_backward(rows, x_hat, self.layer.params["gamma"], inv_std)
        self.layer.grads = {"gamma": grad_gamma, "beta": grad_beta}
        return grad_x.reshape(grad.shape) if input_grad else None

    def describe(self):
        return f"{self.positions[0]} BatchNorm2D (NHWC)"
