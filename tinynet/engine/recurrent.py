"""The LSTM in the engine: the layer's loops over time, each step's gates and cell in one compiled pass.

Run as written, an LSTM step is one small product (``h_{t-1} W_h``, ``(N,H)@(H,4H)``) and
some twenty NumPy passes over ``(N, 4H)`` and ``(N, H)`` arrays for the gates, the cell and
their derivatives; the passes dominate. This step runs the layer's own loops,
:func:`~tinynet.layers.recurrent.lstm_forward` and :func:`~tinynet.layers.recurrent.lstm_backward`,
with the cell functions swapped for :func:`tinynet.kernels.lstm_cell` and
:func:`tinynet.kernels.lstm_cell_backward`, whose readable twins are the layer's
:func:`~tinynet.layers.recurrent.lstm_cell` and :func:`~tinynet.layers.recurrent.lstm_cell_backward`.
"""

from .. import kernels
from ..layers.recurrent import lstm_backward, lstm_forward, sequence_output, states_gradient
from .steps import LayerStep

__all__ = ["LSTMStep"]


class LSTMStep(LayerStep):
    """An LSTM layer in a training forward and backward, its cells compiled."""

    def forward(self, x, training=False):
        self._saved = None
        layer = self.layer
        x = layer.check_input(x)
        params = layer.params
        h, c, gates = lstm_forward(x, params["W_x"], params["W_h"], params["b"], cell=kernels.lstm_cell)
        if training:
            self._saved = (x, h, c, gates)
        return sequence_output(h, layer.return_sequences)

    def backward(self, grad, input_grad=True):
        x, h, c, gates = self._saved_values()
        layer = self.layer
        grad_states = states_gradient(grad, x.shape[1], layer.return_sequences, layer.dtype)  # dH: (T,N,H)
        grad_x, layer.grads, layer.hidden_grads = lstm_backward(
            grad_states, x, h, c, gates, layer.params["W_x"], layer.params["W_h"],
            cell_backward=kernels.lstm_cell_backward)
        return grad_x if input_grad else None

    def describe(self):
        return f"{self.positions[0]} LSTM (compiled cells)"
