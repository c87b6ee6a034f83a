"""The steps a plan is made of: the contract, a layer run as written, and the layout changes.

A step runs one layer, or a few fused ones, forward and backward. It keeps what its
backward needs on itself (never in a layer), and it fills the ``grads`` of the layers it
runs, as their own backward would, so an optimizer cannot tell the difference.
"""

import numpy as np

from ..errors import NotTrainedForwardError
from ..layers.dense import dense_grads

__all__ = ["Step", "LayerStep", "DenseStep", "ToChannelsLast", "ToChannelsFirst", "FlattenChannelsLast",
           "to_channels_last", "to_channels_first"]


def to_channels_last(x):
    """``(N, C, H, W) -> (N, H, W, C)``, contiguous."""
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def to_channels_first(x):
    """``(N, H, W, C) -> (N, C, H, W)``, contiguous."""
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


class Step:
    """One step of a plan: a layer (or a fused group) in a given layout, or a layout change."""

    #: Positions in the model of the layers this step runs.
    positions = ()
    #: Whether the step runs a layer with parameters (backward fills its ``grads``).
    trainable = False

    def __init__(self):
        self._saved = None

    def forward(self, x, training=False):
        raise NotImplementedError

    def backward(self, grad, input_grad=True):
        """The gradient with respect to the step's input (None with ``input_grad=False``, which
        only fills the layers' ``grads``: the first trainable step of a training backward)."""
        raise NotImplementedError

    def describe(self):
        raise NotImplementedError

    def forget(self):
        """Drop what the last training forward kept: a backward after this one refuses."""
        self._saved = None

    def _saved_values(self):
        if self._saved is None:
            raise NotTrainedForwardError(
                f"The step '{self.describe()}' has no values from a training forward; call "
                f"model.forward(x, training=True) before model.backward(grad)."
            )
        return self._saved


class LayerStep(Step):
    """A layer run as written: its own ``forward`` and ``backward`` (NCHW, or element-wise on any layout)."""

    def __init__(self, position, layer):
        super().__init__()
        self.positions, self.layer = (position,), layer
        self.trainable = bool(layer.params)

    def forward(self, x, training=False):
        return self.layer.forward(x, training=training)

    def backward(self, grad, input_grad=True):
        grad_x = self.layer.backward(grad)
        return grad_x if input_grad else None

    def describe(self):
        return f"{self.positions[0]} {type(self.layer).__name__}"


class DenseStep(LayerStep):
    """A Dense layer whose backward can skip the input gradient (``dX = dY Wᵀ``) when nothing needs it.

    The first layer of an MLP is the first trainable step: its input gradient, a
    ``(N, 784)`` product, would only be thrown away.
    """

    def forward(self, x, training=False):
        x = self.layer.check_input(x)
        self._saved = x if training else None
        out = x @ self.layer.params["W"]  # (N,...,D) @ (D,M) -> (N,...,M)
        out += self.layer.params["b"]
        return out

    def backward(self, grad, input_grad=True):
        x = self._saved_values()
        grad = grad.astype(x.dtype, copy=False)
        grad_w, grad_b = dense_grads(x, grad)  # (D,M), (M,): Dense's own formula
        self.layer.grads = {"W": grad_w, "b": grad_b}
        return grad @ self.layer.params["W"].T if input_grad else None  # (N,...,M) @ (M,D) -> (N,...,D)


class ToChannelsLast(Step):
    """NCHW -> NHWC on the way into a run of image layers (free for one channel)."""

    def __init__(self, first_layer):
        super().__init__()
        self.first_layer = first_layer

    def forward(self, x, training=False):
        return to_channels_last(self.first_layer.check_input(x))  # the layer's own errors, in NCHW terms

    def backward(self, grad, input_grad=True):
        return to_channels_first(grad) if input_grad else None

    def describe(self):
        return "NCHW -> NHWC"


class ToChannelsFirst(Step):
    """NHWC -> NCHW on the way out of a run, for a layer that needs NCHW."""

    def forward(self, x, training=False):
        return to_channels_first(x)

    def backward(self, grad, input_grad=True):
        return to_channels_last(grad) if input_grad else None

    def describe(self):
        return "NHWC -> NCHW"


class FlattenChannelsLast(Step):
    """Flatten of NHWC activations into NCHW order ``(c, h, w)``, so Dense weights keep their meaning."""

    def __init__(self, position, layer):
        super().__init__()
        self.positions, self.layer = (position,), layer

    def forward(self, x, training=False):
        self._saved = x.shape if training else None
        return to_channels_first(x).reshape(x.shape[0], -1)

    def backward(self, grad, input_grad=True):
        n, h, w, c = self._saved_values()
        return to_channels_last(grad.reshape(n, c, h, w)) if input_grad else None

    def describe(self):
        return f"{self.positions[0]} Flatten (from NHWC)"
