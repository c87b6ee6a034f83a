"""Pooling in the engine: numba loops over channels-last images.

The maths is the layers' (:mod:`tinynet.layers.pooling`). On NHWC images each window reads
``kw`` runs of ``C`` adjacent values. A ReLU right before a MaxPool2D runs inside the same
pass, ``relu(maxpool(x))``, which equals ``maxpool(relu(x))`` exactly (ReLU is monotonic)
and touches a quarter of the data; its backward routes each gradient to the window's
maximum only where that maximum was positive, which is the same gradient.
"""

from ..errors import ShapeError
from ..kernels import avgpool_backward, avgpool_forward, maxpool_backward, maxpool_forward
from .steps import Step

__all__ = ["MaxPoolStep", "AvgPoolStep", "check_pool_fits"]


def check_pool_fits(pool, height, width):
    """A ShapeError unless a ``height x width`` map holds at least one of ``pool``'s windows."""
    if height < pool.pool_size[0] or width < pool.pool_size[1]:
        raise ShapeError(
            f"{type(pool).__name__} pool_size={pool.pool_size} is larger than the input's {(height, width)} "
            f"images; use a smaller pool_size or fewer pooling layers."
        )


class _PoolStep(Step):
    def __init__(self, positions, pool):
        super().__init__()
        self.positions, self.pool = positions, pool
        self.window = (*pool.pool_size, *pool.stride)  # kh, kw, sh, sw

    def _check(self, x):
        if x.ndim != 4:
            raise ShapeError(f"{type(self.pool).__name__} expects images; got activations of shape {tuple(x.shape)}.")
        check_pool_fits(self.pool, x.shape[1], x.shape[2])


class MaxPoolStep(_PoolStep):
    """A MaxPool2D on NHWC activations; with ``relu=True`` also the ReLU before it."""

    def __init__(self, positions, pool, relu=False):
        super().__init__(positions, pool)
        self.relu = relu

    def forward(self, x, training=False):
        self._check(x)
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
        self._check(x)
        self._saved = x.shape if training else None
        return avgpool_forward(x, *self.window)

    def backward(self, grad, input_grad=True):
        x_shape = self._saved_values()
        return avgpool_backward(grad, x_shape, *self.window) if input_grad else None

    def describe(self):
        return f"{self.positions[0]} AvgPool2D (NHWC)"
