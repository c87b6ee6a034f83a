"""BatchNorm2D in the engine: the statistics of channels-last rows, two numba passes each way.

On NHWC activations the ``N*H*W`` values of a channel are the column of an ``(N*H*W, C)``
array, so the layer's formulas (:mod:`tinynet.layers.normalization`) run as column sums over
contiguous rows, accumulated in float64. At inference it is the layer's own affine map,
:func:`~tinynet.layers.normalization.inference_affine`, on those rows.
"""

from ..kernels import batchnorm_backward, batchnorm_forward
from ..layers.normalization import inference_affine
from .steps import Step, checked_channels_last

__all__ = ["BatchNormStep"]


class BatchNormStep(Step):
    """A BatchNorm2D on NHWC activations."""

    trainable = True

    def __init__(self, position, layer):
        super().__init__()
        self.positions, self.layer = (position,), layer

    def forward(self, x, training=False):
        self._saved = None
        layer = self.layer
        x = checked_channels_last(layer, x)
        rows = x.reshape(-1, layer.num_features)  # (N*H*W, C)
        gamma, beta = layer.params["gamma"], layer.params["beta"]
        if not training:
            scale, shift = inference_affine(gamma, beta, layer.running_mean, layer.running_var, layer.eps)
            return (rows * scale + shift).reshape(x.shape)
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
