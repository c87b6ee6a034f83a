"""The LSTM in the engine: the layer's loops over time, each step's gates and cell in one compiled pass.

Run as written, an LSTM step is one small product (``h_{t-1} W_h``, ``(N,H)@(H,4H)``) and
some twenty NumPy passes over ``(N, 4H)`` and ``(N, H)`` arrays for the gates, the cell and
their derivatives; the passes dominate. This step runs the layer's own loops,
:func:`~tinynet.layers.recurrent.lstm_forward` and :func:`~tinynet.layers.recurrent.lstm_backward`,
with the cell functions swapped for :func:`tinynet.kernels.lstm_cell` and
:func:`tinynet.kernels.lstm_cell_backward`, whose readable twins are the layer's
:func:`~tinynet.layers.recurrent.lstm_cell` and :func:`~tinynet.layers.recurrent.lstm_cell_backward`.

The samples never meet inside the loops, so the batch runs in parts, one per BLAS thread
(:mod:`.parallel`): each part's loops on a thread of their own. The weight gradients, sums
over every sample, are the parts' sums added. A few samples (one image a call) run the layer's loop
with the step's product compiled too, :func:`tinynet.kernels.lstm_loop` (twin: the layer's
:func:`~tinynet.layers.recurrent.lstm_loop`). The first trainable layer of a model (lstm_rows'
LSTM) skips its input gradient, ``dz W_xᵀ`` over every step, as a first Dense does. A
prediction of the last state (``training=False`` without ``return_sequences``) runs the layer's
:func:`~tinynet.layers.recurrent.lstm_last_state`, which writes no step's states or gates.
"""

from .. import kernels
from ..layers.recurrent import (
    input_share,
    lstm_backward,
    lstm_forward,
    lstm_last_state,
    sequence_output,
    states_gradient,
)
from .parallel import batch_parts, joined, run_in_parts
from .steps import LayerStep

__all__ = ["LSTMStep", "COMPILED_LOOP_ROWS"]

#: Fewer samples than this run the whole loop over time compiled (``tinynet.kernels.lstm_loop``): each
#: step's product is too small for a BLAS call to pay (one image: 0.17-0.21 ms for lstm_rows' 28 steps
#: against 0.44); at 8 rows the BLAS's products are as fast.
COMPILED_LOOP_ROWS = 8


class LSTMStep(LayerStep):
    """An LSTM layer in a training forward and backward, its cells compiled, the batch in parts on threads."""

    in_parts = True

    def forward(self, x, training=False):
        self._saved = None
        layer = self.layer
        x = layer.check_input(x)
        params = layer.params
        parts = batch_parts(len(x))

        def forward_part(part):
            rows = x[part]
            if len(rows) < COMPILED_LOOP_ROWS:  # a few samples: the step's products compiled with the cells
                return kernels.lstm_loop(input_share(rows, params["W_x"], params["b"]), params["W_h"])
            return lstm_forward(rows, params["W_x"], params["W_h"], params["b"], cell=kernels.lstm_cell)

        def last_state_part(part):  # a prediction of h_T: nothing kept for a backward
            rows = x[part]
            if len(rows) < COMPILED_LOOP_ROWS:
                return forward_part(part)[0][-1]
            return lstm_last_state(input_share(rows, params["W_x"], params["b"]), params["W_h"],
                                   cell=kernels.lstm_cell)

        if not training and not layer.return_sequences:
            return joined(run_in_parts(last_state_part, parts))
        states = run_in_parts(forward_part, parts)  # (h, c, gates) of each part, time first
        if training:
            self._saved = (x, parts, states)
        return joined([sequence_output(h, layer.return_sequences) for h, _, _ in states])

    def backward(self, grad, input_grad=True):
        x, parts, states = self._saved_values()
        layer = self.layer
        grad_states = states_gradient(grad, x.shape[1], layer.return_sequences, layer.dtype)  # dH: (T,N,H)

        def backward_part(part_and_states):
            part, (h, c, gates) = part_and_states
            return lstm_backward(grad_states[:, part], x[part], h, c, gates, layer.params["W_x"],
                                 layer.params["W_h"], cell_backward=kernels.lstm_cell_backward, input_grad=input_grad)

        results = run_in_parts(backward_part, list(zip(parts, states, strict=True)))  # (dX, grads, dL/dh) each
        layer.grads = {name: sum(grads[name] for _, grads, _ in results) for name in results[0][1]}
        layer.hidden_grads = joined([hidden for _, _, hidden in results])
        return joined([grad_x for grad_x, _, _ in results]) if input_grad else None

    def describe(self):
        return f"{self.positions[0]} LSTM (compiled cells)"
