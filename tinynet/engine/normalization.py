"""BatchNorm2D and LayerNorm in the engine: statistics of rows, in numba passes.

On NHWC activations the ``N*H*W`` values of a channel are the column of an ``(N*H*W, C)``
array, so the layer's formulas (:mod:`tinynet.layers.normalization`) run as column sums over
contiguous rows, accumulated in float64. At inference it is the layer's own affine map,
:func:`~tinynet.layers.normalization.inference_affine`, on those rows.
"""

from ..kernels import batchnorm_backward, batchnorm_forward, layernorm_backward, layernorm_forward
from ..layers.normalization import inference_affine
from .steps import LayerStep, Step, checked_channels_last

__all__ = ["BatchNormStep", "LayerNormStep"]


def _backward_of_rows(step, kernel, grad, input_grad):
    """A normalisation step's backward: ``kernel(rows, x_hat, gamma, inv_std) -> (dx, dgamma, dbeta)`` on the
    rows the forward saved, the layer's ``grads`` filled, ``dx`` in ``grad``'s shape (None without ``input_grad``)."""
    x_hat, inv_std = step._saved_values()
    rows = grad.astype(step.layer.dtype, copy=False).reshape(x_hat.shape)
    grad_x, grad_gamma, grad_beta = kernel(rows, x_hat, step.layer.params["gamma"], inv_std)
    step.layer.grads = {"gamma": grad_gamma, "beta": grad_beta}
    return grad_x.reshape(grad.shape) if input_grad else None


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
        return _backward_of_rows(self, batchnorm_backward, grad, input_grad)

    def describe(self):
        return f"{self.positions[0]} BatchNorm2D (NHWC)"


class LayerNormStep(LayerStep):
    """A LayerNorm in a training forward and backward: each row's statistics in one compiled visit
    (:func:`tinynet.kernels.layernorm_forward`, whose twin is the layer's
    :func:`~tinynet.layers.normalization.layer_norm`), on ``(N, ..., F)`` seen as ``(R, F)`` rows."""

    def forward(self, x, training=False):
        self._saved = None
        layer = self.layer
        x = layer.check_input(x)
        rows = x.reshape(-1, layer.num_features)  # (R,F): every position a row
        y, x_hat, inv_std = layernorm_forward(rows, layer.params["gamma"], layer.params["beta"], layer.eps)
        if training:
            self._saved = (x_hat, inv_std)
        return y.reshape(x.shape)

    def backward(self, grad, input_grad=True):
        return _backward_of_rows(self, layernorm_backward, grad, input_grad)

    def describe(self):
        return f"{self.positions[0]} LayerNorm (rows)"
