"""GELU in the engine: its value and its slope in one compiled pass.

Run as written, ``GELU`` (exact form) makes five NumPy passes over its input in the forward
(``erf`` among them) and five more in the backward to rebuild ``dy/dx = Phi(x) + x phi(x)``.
This step computes ``y`` and ``dy/dx`` together in :func:`tinynet.kernels.gelu_forward` (whose
readable twin is the layer's :func:`~tinynet.layers.activations.gelu` and
:func:`~tinynet.layers.activations.gelu_backward`) and keeps the slope, so the backward is
``dX = dY * dy/dx``. At inference it computes ``y`` alone.
"""

from .. import kernels
from .._checks import float_array
from .steps import LayerStep

__all__ = ["GELUStep"]


class GELUStep(LayerStep):
    """A GELU layer (``approximate="none"``) in any layout: ``y`` and its slope from one compiled pass."""

    def forward(self, x, training=False):
        self._saved = None
        x = float_array(x, "GELU")
        y, slope = kernels.gelu_forward(x, with_slope=training)
        self._saved = slope  # dy/dx (None at inference)
        return y

    def backward(self, grad, input_grad=True):
        slope = self._saved_values()
        return grad.astype(slope.dtype, copy=False) * slope if input_grad else None  # dX = dY * dy/dx

    def describe(self):
        return f"{self.positions[0]} GELU (value and slope in one pass)"
