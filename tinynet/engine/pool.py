"""Pooling in the engine: numba loops over channels-last images.

The maths is the layers' (:mod:`tinynet.layers.pooling`). On NHWC images each window reads
``kw`` runs of ``C`` adjacent values. A ReLU right before a MaxPool2D runs inside the same
pass, ``relu(maxpool(x))``, which equals ``maxpool(relu(x))`` exactly (ReLU is monotonic)
and touches a quarter of the data; its backward routes each gradient to the window's
maximum only where that maximum was positive, which is the same gradient.
"""

import numpy as np

from ..errors import ShapeError
from ..kernels import avgpool_backward, avgpool_forward, maxpool_backward, maxpool_forward
from .steps import Step, checked_channels_last, located

__all__ = ["MaxPoolStep", "AvgPoolStep", "check_pool_fits"]


def check_pool_fits(step, position, pool, height, width):
    """The pooling layer's own ShapeError, raised by fused ``step`` for the layer at ``position``, unless a
    ``height x width`` map holds at least one of ``pool``'s windows."""
    try:
        pool.check_input(np.empty((0, 1, height, width)))  # no values: the layer checks the sizes only
    except ShapeError as error:
        raise located(error, step, position, type(pool).__name__) from error


class _PoolStep(Step):
    def __init__(self, positions, pool):
        super().__init__()
        self.positions, self.pool = positions, pool
        self.window = (*pool.pool_size, *pool.stride)  # kh, kw, sh, sw

    def _check(self, x):
        """NHWC ``x``, contiguous; the layer's own error (in NCHW) when it cannot take it."""
        return checked_channels_last(self.pool, x)

    def where(self):
        return self.positions[-1], type(self.pool).__name__


class MaxPoolStep(_PoolStep):
    """A MaxPool2D on NHWC activations; with ``relu=True`` also the ReLU before it."""

    def __init__(self, positions, pool, relu=False):
        super().__init__(positions, pool)
        self.relu = relu

    def forward(self, x, training=False):
        x = self._check(x)
        out, argmax = maxpool_forward(x, *self.window, relu=self.relu)
        self._saved = (argmax, x.shape) if training else None
        return out

    def backward(self, grad, input_grad=True):
        argmax, x_shape = self._saved_values()
        return maxpool_backward(grad, argmax, x_shape, *self.window) if input_grad else None

    def describe(self):
        if self.relu:
            return f"{self.positions[0]} ReLU + {self.positions[1]} MaxPool2D (fused, NHWC)"
        return f"{self.positions[0]} MaxPool2D (NHWC)"


class AvgPoolStep(_PoolStep):
    """An AvgPool2D on NHWC activations."""

    def forward(self, x, training=False):
        x = self._check(x)
        self._saved = x.shape if training else None
        return avgpool_forward(x, *self.window)

    def backward(self, grad, input_grad=True):
        x_shape = self._saved_values()
        return avgpool_backward(grad, x_shape, *self.window) if input_grad else None

    def describe(self):
        return f"{self.positions[0]} AvgPool2D (NHWC)"
