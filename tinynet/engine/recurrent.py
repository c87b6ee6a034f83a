"""The LSTM in the engine: the layer's loops over time, each step's cell compiled and written in place.

Run as written, an LSTM step is one small product (``h_{t-1} W_h``, ``(N,H)@(H,4H)``) and
some twenty NumPy passes over ``(N, 4H)`` and ``(N, H)`` arrays for the gates, the cell and
their derivatives; the passes dominate. The loops here are the layer's
(:func:`~tinynet.layers.recurrent.lstm_loop`, :func:`~tinynet.layers.recurrent.lstm_last_state`
and the loop of :func:`~tinynet.layers.recurrent.lstm_backward`), step for step: each step's
product written into one array made before the loop, then one compiled pass,
:func:`tinynet.kernels.lstm_cell_into` or :func:`tinynet.kernels.lstm_cell_backward_into`, that
adds the step's input share (or the output's gradient) and writes the cell's values straight
into the arrays that keep every step's (``gates[t-1]``, ``c[t]``, ``h[t]``; ``dz_t``,
``dL/dh_t``). Their readable twins are adapters over the layer's
:func:`~tinynet.layers.recurrent.lstm_cell` and :func:`~tinynet.layers.recurrent.lstm_cell_backward`;
the layer's loops copy what the cell returns into those arrays instead (written in place, the
forward's loop of a 64-row part takes 15-19% less time). The values are the layer's to the bit,
given the same cell (tests/test_recurrent.py). The weight gradients,
sums over every step, are the layer's :func:`~tinynet.layers.recurrent.recurrent_grads`.

The samples never meet inside the loops, so the batch runs in parts, one per BLAS thread
(:mod:`.parallel`): each part's loops on a thread of their own. The weight gradients, sums
over every sample, are the parts' sums added. A few samples (one image a call) run the layer's loop
with the step's product compiled too, :func:`tinynet.kernels.lstm_loop` (twin: the layer's
:func:`~tinynet.layers.recurrent.lstm_loop`). The first trainable layer of a model (lstm_rows'
LSTM) skips its input gradient, ``dz W_xᵀ`` over every step, as a first Dense does. A
prediction of the last state (``training=False`` without ``return_sequences``) of 8 samples or
more keeps two ``h`` and ``c`` (the step's and the one before) and one step's gates, as the
layer's :func:`~tinynet.layers.recurrent.lstm_last_state` keeps only the current state; fewer
samples run the compiled loop, which keeps every step's.
"""

import numpy as np

from .. import kernels
from ..layers.recurrent import input_share, recurrent_grads, sequence_output, states_gradient
from .parallel import batch_parts, joined, run_in_parts
from .steps import LayerStep

__all__ = ["LSTMStep", "COMPILED_LOOP_ROWS", "forward_states", "forward_last_state", "backward_through_time"]

#: Fewer samples than this run the whole loop over time compiled (``tinynet.kernels.lstm_loop``): each
#: step's product is too small for a BLAS call to pay (one image: 0.17-0.21 ms for lstm_rows' 28 steps
#: against 0.44); at 8 rows the BLAS's products are as fast.
COMPILED_LOOP_ROWS = 8


def forward_states(x_part, W_h):
    """:func:`~tinynet.layers.recurrent.lstm_loop`'s ``(h, c, gates)``, time first, from every step's input share
    ``x_part`` ``(T, N, 4H)``, each step's cell written in place (:func:`tinynet.kernels.lstm_steps`)."""
    steps, n, four = x_part.shape
    h = np.empty((steps + 1, n, W_h.shape[0]), dtype=x_part.dtype)  # h[t] = h_t
    c = np.empty_like(h)  # c[t] = c_t
    h[0] = c[0] = 0  # h_0 = c_0 = 0
    gates = np.empty_like(x_part)  # i, f, g, o after their nonlinearities, every step: (T,N,4H)
    kernels.lstm_steps(x_part, W_h, h, c, gates)
    return h, c, gates


def forward_last_state(x_part, W_h):
    """:func:`~tinynet.layers.recurrent.lstm_last_state`'s ``h_T`` ``(N, H)``: the loop of :func:`forward_states`
    keeping two ``h`` and ``c`` (the step's and the one before), one step's gates."""
    steps, n, four = x_part.shape
    h = np.zeros((2, n, W_h.shape[0]), dtype=x_part.dtype)  # h_0 = 0 in h[0]; step t writes h[t % 2]
    c = np.zeros_like(h)
    gates = np.empty((1, n, four), dtype=x_part.dtype)
    kernels.lstm_steps(x_part, W_h, h, c, gates)
    return h[steps % 2]


def backward_through_time(grad_states, c, gates, W_h):
    """The loop of :func:`~tinynet.layers.recurrent.lstm_backward`: ``(dz, dL/dh)``, ``(T, N, 4H)`` and
    ``(T, N, H)``, from ``dH`` ``(T, N, H)`` and :func:`forward_states`' ``c`` and ``gates``, each step
    written in place."""
    steps, n, hidden = grad_states.shape
    grad_pre = np.empty_like(gates)  # dz_t for every step: (T,N,4H)
    hidden_grads = np.empty_like(grad_states)  # dL/dh_t for every step: (T,N,H)
    grad_h_next = np.zeros((n, hidden), dtype=grad_states.dtype)  # dL/dh_t through step t+1; none after T
    grad_c = np.zeros_like(grad_h_next)  # dL/dc_t through c_{t+1}, then dL/dc_{t-1} after the step
    W_h_t = kernels.tiled_layout(W_h.T)  # (4H,H), laid out once for the T products where they run in tiles
    for t in range(steps, 0, -1):  # t = T, ..., 1
        kernels.lstm_cell_backward_into(grad_states[t - 1], grad_h_next, grad_c, gates[t - 1], c[t - 1], c[t],
                                        grad_pre[t - 1], hidden_grads[t - 1])
        kernels.matmul(grad_pre[t - 1], W_h_t, out=grad_h_next)  # (N,4H)@(4H,H) -> (N,H): to h_{t-1}
    return grad_pre, hidden_grads


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
            return forward_states(input_share(rows, params["W_x"], params["b"], kernels.matmul), params["W_h"])

        def last_state_part(part):  # a prediction of h_T: nothing kept for a backward
            rows = x[part]
            if len(rows) < COMPILED_LOOP_ROWS:
                return forward_part(part)[0][-1]
            return forward_last_state(input_share(rows, params["W_x"], params["b"], kernels.matmul), params["W_h"])

        if not training and not layer.return_sequences:
            return joined(run_in_parts(last_state_part, parts))
        part_states = run_in_parts(forward_part, parts)  # (h, c, gates) of each part, time first
        if training:
            self._saved = (x, parts, part_states)
        return joined([sequence_output(h, layer.return_sequences) for h, _, _ in part_states])

    def backward(self, grad, input_grad=True):
        x, parts, part_states = self._saved_values()
        layer = self.layer
        grad_states = states_gradient(grad, x.shape[1], layer.return_sequences, layer.dtype)  # dH: (T,N,H)

        def backward_part(part_and_states):
            part, (h, c, gates) = part_and_states
            grad_pre, hidden_grads = backward_through_time(grad_states[:, part], c, gates, layer.params["W_h"])
            grad_x, grads = recurrent_grads(x[part], h, grad_pre, layer.params["W_x"], input_grad)
            return grad_x, grads, hidden_grads.swapaxes(0, 1)

        results = run_in_parts(backward_part, list(zip(parts, part_states, strict=True)))  # (dX, grads, dL/dh) each
        layer.grads = {name: sum(grads[name] for _, grads, _ in results) for name in results[0][1]}
        layer.hidden_grads = joined([hidden for _, _, hidden in results])
        return joined([grad_x for grad_x, _, _ in results]) if input_grad else None

    def describe(self):
        return f"{self.positions[0]} LSTM (compiled cells)"
