r"""Recurrent layers: a simple RNN and an LSTM, with backprop through time written out.

A sequence ``X`` ``(N, T, D)`` is read one step at a time; a hidden state ``h`` ``(N, H)``
carries what the layer remembers from step to step, starting at ``h_0 = 0``.

**RNN**::

    h_t = tanh(x_t W_x + h_{t-1} W_h + b)            # (N,D)@(D,H) + (N,H)@(H,H) + (H,) -> (N,H)

**LSTM** (Hochreiter & Schmidhuber, 1997, with the forget gate of Gers et al., 2000): four
gates from one product, in PyTorch's order ``i, f, g, o`` along the last axis, and a cell
state ``c`` (``c_0 = 0``) that is only ever scaled and added to::

    z_t = x_t W_x + h_{t-1} W_h + b                  # (N,D)@(D,4H) + (N,H)@(H,4H) + (4H,) -> (N,4H)
    i = σ(z_i)   f = σ(z_f)   g = tanh(z_g)   o = σ(z_o)      # each (N,H)
    c_t = f * c_{t-1} + i * g                        # (N,H)
    h_t = o * tanh(c_t)                              # (N,H)

The output is the last hidden state ``h_T`` ``(N, H)``, or every ``h_t`` ``(N, T, H)`` with
``return_sequences=True``.

**Backprop through time.** Unrolled over ``T`` steps, a recurrent layer is a ``T``-layer
network whose layers share one set of weights. Backward walks the steps from ``T`` down to
1. The loss reaches ``h_t`` along two paths, from the output at step ``t`` (``dH_t``, zero
except at ``T`` when only the last state is returned) and through ``h_{t+1}``; the chain
rule adds them, and each step hands its share back to the step before::

    dh = dH_t + dh_next                              # (N,H)

For the RNN, with ``a_t`` the argument of ``tanh`` and ``tanh' = 1 - h_t²``::

    da_t    = dh * (1 - h_t²)                        # (N,H)
    dh_next = da_t W_hᵀ                              # (N,H)@(H,H) -> (N,H): to step t-1

For the LSTM, ``h_t`` reaches ``c_t`` through ``tanh``, and ``c_t`` also reaches the loss
through ``c_{t+1} = f_{t+1} c_t + ...`` (``dc_next``)::

    dc   = dc_next + dh * o * (1 - tanh(c_t)²)       # (N,H)
    do   = dh * tanh(c_t)    di = dc * g    dg = dc * i    df = dc * c_{t-1}
    dz_t = [di σ'(z_i), df σ'(z_f), dg (1 - g²), do σ'(z_o)]      # σ' = σ(1 - σ); (N,4H)
    dc_next = dc * f                                 # (N,H): to step t-1
    dh_next = dz_t W_hᵀ                              # (N,4H)@(4H,H) -> (N,H): to step t-1

``dc_next = dc * f`` is why the LSTM remembers: along the cell the gradient is scaled by the
forget gate only, not multiplied by ``W_h`` and a ``tanh'`` at every step as in the RNN,
where it shrinks or grows geometrically with ``T`` (vanishing or exploding gradients).

Since ``W_x``, ``W_h`` and ``b`` are used at every step, their gradients are sums over the
steps; they need no state carried between steps, so they are taken after the loop, for all
steps at once (``da`` stands for ``dz`` in the LSTM)::

    dW_x = Σ_t x_tᵀ da_t                             # (D,N)@(N,H) summed over t -> (D,H)
    dW_h = Σ_t h_{t-1}ᵀ da_t                         # (H,N)@(N,H) summed over t -> (H,H)
    db   = Σ_t Σ_n da_t                              # (H,)
    dx_t = da_t W_xᵀ                                 # (N,H)@(H,D) -> (N,D), every t

Likewise the input's share of every step, ``x_t W_x + b``, is one product before the loop.

**Time first inside.** The layers take and return batch-first arrays, ``(N, T, ...)`` as
Keras does, but keep their states time-first, ``h`` ``(T+1, N, H)`` as PyTorch's default
layout: then ``h[t]``, step ``t``'s states for the whole batch, is one contiguous block that
the step's product reads and its cell writes whole, instead of ``N`` rows ``T+1`` rows apart.

The LSTM's maths is in module-level functions that the layer calls: :func:`lstm_cell` and
:func:`lstm_cell_backward` (one step, after its product), :func:`lstm_step` (the product and
the cell), :func:`lstm_forward` and :func:`lstm_backward` (the loops over time), and
:func:`recurrent_grads` (the sums over steps); :func:`lstm_last_state` is the forward's loop
keeping only the current state, what a prediction of ``h_T`` needs. The engine
(``tinynet.engine.recurrent``) runs the same loops, each step's cell compiled and written in
place into the arrays that keep every step's; the compiled cells' readable twins are
:func:`lstm_cell` and :func:`lstm_cell_backward`, and with the twins its loops give these
loops' values to the bit.
"""

import numpy as np

from .._checks import float_array, positive_int
from ..errors import ArgumentTypeError, ShapeError
from ..init import as_generator, recurrent_uniform
from .activations import sigmoid
from .base import Layer

__all__ = ["RNN", "LSTM", "lstm_cell", "lstm_cell_backward", "lstm_forward", "input_share", "lstm_step", "lstm_loop",
           "lstm_last_state",
           "lstm_backward", "recurrent_grads",
           "sequence_output", "states_gradient"]


def split_gates(z):
    """The four gates' blocks of columns ``i, f, g, o`` of ``z`` ``(..., 4H)``, as views ``(..., H)``."""
    width = z.shape[-1] // 4
    return tuple(z[..., k * width:(k + 1) * width] for k in range(4))


def lstm_cell(z, c_prev):
    """One LSTM step after its product: ``(gates, c_t, h_t)`` from ``z_t`` ``(N, 4H)`` and ``c_{t-1}`` ``(N, H)``.

    ``gates`` ``(N, 4H)`` holds ``i, f, g, o`` after their nonlinearities, as backward needs them.

    Examples
    --------
    >>> gates, c, h = lstm_cell(np.zeros((1, 4)), np.ones((1, 1)))   # every gate half open, g = 0
    >>> gates, c, h.round(4)
    (array([[0.5, 0.5, 0. , 0.5]]), array([[0.5]]), array([[0.2311]]))
    """
    z_i, z_f, z_g, z_o = split_gates(z)  # each (N,H)
    i, f, g, o = sigmoid(z_i), sigmoid(z_f), np.tanh(z_g), sigmoid(z_o)
    c = f * c_prev + i * g  # (N,H)
    h = o * np.tanh(c)  # (N,H)
    return np.concatenate((i, f, g, o), axis=-1), c, h


def lstm_cell_backward(grad_h, grad_c_next, gates, c_prev, c):
    """One step of the LSTM's backward: ``(dz_t, dL/dc_{t-1})`` ``(N, 4H), (N, H)``.

    ``grad_h`` is ``dL/dh_t`` (both paths), ``grad_c_next`` ``dL/dc_t`` through ``c_{t+1}``;
    ``gates``, ``c_prev``, ``c`` are the step's :func:`lstm_cell` values.
    """
    i, f, g, o = split_gates(gates)  # each (N,H)
    tanh_c = np.tanh(c)  # (N,H)
    grad_c = grad_c_next + grad_h * o * (1 - tanh_c**2)  # (N,H): via c_{t+1} and via h_t
    grad_z = np.concatenate((
        grad_c * g * i * (1 - i),  # dc * ∂c/∂i * σ'
        grad_c * c_prev * f * (1 - f),  # dc * ∂c/∂f * σ'
        grad_c * i * (1 - g**2),  # dc * ∂c/∂g * tanh'
        grad_h * tanh_c * o * (1 - o),  # dh * ∂h/∂o * σ'
    ), axis=-1)  # (N,4H)
    return grad_z, grad_c * f  # dc_next for step t-1: (N,H)


def time_first(x):
    """``(N, T, ...) -> (T, N, ...)`` as a contiguous array: step ``t`` of every sample in one block."""
    return np.ascontiguousarray(x.swapaxes(0, 1))


def lstm_forward(x, W_x, W_h, b):
    """The LSTM over time: ``(h, c, gates)``, time first, from ``x`` ``(N, T, D)``: ``h`` and ``c``
    ``(T+1, N, H)`` (``h[0] = c[0] = 0``), ``gates`` ``(T, N, 4H)``."""
    return lstm_loop(input_share(x, W_x, b), W_h)


def input_share(x, W_x, b, product=np.matmul):
    """``x_t W_x + b`` for every step at once, time first: ``(N, T, D) -> (T, N, 4H)`` (``product(a, b)`` the
    matrix product, as in :func:`~tinynet.layers.dense.affine`)."""
    n, steps, _ = x.shape
    # Each (step, sample) a row: (T·N,D)@(D,4H) + (4H,) -> (T,N,4H).
    x_part = product(time_first(x).reshape(-1, x.shape[2]), W_x)
    x_part += b  # in place: the rows are many (T·N), a second array of them costs a pass over memory
    return x_part.reshape(steps, n, W_x.shape[1])


def lstm_step(h_prev, c_prev, x_share, W_h):
    """One step of the recurrence, ``(gates, c_t, h_t)``: ``z_t = x_t W_x + b + h_{t-1} W_h``, then the cell.

    ``x_share`` ``(N, 4H)`` is the step's ``x_t W_x + b`` (:func:`input_share`); ``h_prev``, ``c_prev`` ``(N, H)``.
    """
    z = h_prev @ W_h  # (N,H)@(H,4H) -> (N,4H)
    z += x_share  # z_t = x_t W_x + b + h_{t-1} W_h
    return lstm_cell(z, c_prev)


def lstm_loop(x_part, W_h):
    """The loop over time of :func:`lstm_forward` from every step's input share ``x_part`` ``(T, N, 4H)``
    (:func:`input_share`): ``(h, c, gates)``, time first."""
    steps, n, _ = x_part.shape
    h = np.zeros((steps + 1, n, W_h.shape[0]), dtype=x_part.dtype)  # h[t] = h_t, h[0] = h_0 = 0
    c = np.zeros_like(h)  # c[t] = c_t, c[0] = c_0 = 0
    gates = np.empty_like(x_part)  # i, f, g, o after their nonlinearities, every step: (T,N,4H)
    for t in range(1, steps + 1):
        gates[t - 1], c[t], h[t] = lstm_step(h[t - 1], c[t - 1], x_part[t - 1], W_h)
    return h, c, gates


def lstm_last_state(x_part, W_h):
    """``h_T`` ``(N, H)``: the loop of :func:`lstm_loop` keeping only the current ``h`` and ``c``.

    What a prediction of the last state needs: no step's states or gates are kept for a
    backward (only ``x_part``, the input's share, spans every step). Its ``h_T`` is
    :func:`lstm_loop`'s ``h[-1]``, the same operations in the same order.

    Examples
    --------
    >>> x_part = np.random.default_rng(0).standard_normal((3, 2, 4))    # 3 steps, 2 samples, H = 1
    >>> W_h = np.ones((1, 4))
    >>> bool((lstm_last_state(x_part, W_h) == lstm_loop(x_part, W_h)[0][-1]).all())
    True
    """
    _, n, _ = x_part.shape
    h = np.zeros((n, W_h.shape[0]), dtype=x_part.dtype)  # h_0 = 0
    c = np.zeros_like(h)  # c_0 = 0
    for x_share in x_part:  # (N,4H), step by step
        _, c, h = lstm_step(h, c, x_share, W_h)
    return h


def lstm_backward(grad_states, x, h, c, gates, W_x, W_h, input_grad=True):
    """Backprop through time: ``(dX, grads, hidden_grads)`` from ``dH`` ``(T, N, H)`` (:func:`states_gradient`)
    and :func:`lstm_forward`'s values; ``dX`` is ``(N, T, D)`` (None with ``input_grad=False``), ``hidden_grads``
    (``dL/dh_t``) ``(N, T, H)``."""
    steps, n, hidden = grad_states.shape
    grad_pre = np.empty_like(gates)  # dz_t for every step: (T,N,4H)
    hidden_grads = np.empty_like(grad_states)  # dL/dh_t for every step: (T,N,H)
    grad_h_next = np.zeros((n, hidden), dtype=grad_states.dtype)  # dL/dh_t through step t+1; none after T
    grad_c_next = np.zeros_like(grad_h_next)  # dL/dc_t through c_{t+1}
    for t in range(steps, 0, -1):  # t = T, ..., 1
        grad_h = hidden_grads[t - 1] = grad_states[t - 1] + grad_h_next  # (N,H): both paths into h_t
        grad_pre[t - 1], grad_c_next = lstm_cell_backward(grad_h, grad_c_next, gates[t - 1], c[t - 1], c[t])
        grad_h_next = grad_pre[t - 1] @ W_h.T  # (N,4H)@(4H,H) -> (N,H): to h_{t-1}
    grad_x, grads = recurrent_grads(x, h, grad_pre, W_x, input_grad)
    return grad_x, grads, hidden_grads.swapaxes(0, 1)


def recurrent_grads(x, h, grad_pre, W_x, input_grad=True):
    """``(dX, grads)`` from ``x`` ``(N, T, D)``, the states ``h`` ``(T+1, N, H)`` and the pre-activation gradients
    ``grad_pre`` ``(T, N, K)`` of every step, all steps at once; ``dX`` is ``(N, T, D)``, or None with
    ``input_grad=False`` (the first layer of a model: nothing needs it)."""
    # A sum over steps and samples is one product once both are laid out as rows, (step, sample) each: (T·N, ·).
    rows = grad_pre.reshape(-1, grad_pre.shape[2])  # (T·N,K)
    grads = {
        "W_x": time_first(x).reshape(-1, x.shape[2]).T @ rows,  # Σ_t x_tᵀ dz_t: (D,T·N)@(T·N,K) -> (D,K)
        "W_h": h[:-1].reshape(-1, h.shape[2]).T @ rows,  # Σ_t h_{t-1}ᵀ dz_t: (H,T·N)@(T·N,K) -> (H,K)
        "b": rows.sum(axis=0),  # (T·N,K) -> (K,)
    }
    if not input_grad:
        return None, grads
    grad_x = (rows @ W_x.T).reshape(*grad_pre.shape[:2], W_x.shape[0])  # dx_t = dz_t W_xᵀ: (T·N,K)@(K,D) -> (T,N,D)
    return grad_x.swapaxes(0, 1), grads


def sequence_output(h, return_sequences):
    """Every ``h_t`` ``(N, T, H)`` or the last ``(N, H)``, from the states ``h`` ``(T+1, N, H)`` (``h_0`` first).

    A copy: the caller may write into it without changing what backward saved."""
    return np.ascontiguousarray(h[1:].swapaxes(0, 1)) if return_sequences else h[-1].copy()


def states_gradient(grad_out, steps, return_sequences, dtype):
    """``dH`` ``(T, N, H)``, time first: the loss's gradient at every ``h_t`` from the output alone (zero before
    ``T`` when only ``h_T`` is returned), from ``grad_out`` ``(N, T, H)`` or ``(N, H)``."""
    grad_out = grad_out.astype(dtype, copy=False)
    if return_sequences:
        return time_first(grad_out)
    grad_states = np.zeros((steps, len(grad_out), grad_out.shape[-1]), dtype=dtype)
    grad_states[-1] = grad_out
    return grad_states


class _Recurrent(Layer):
    """What RNN and LSTM share: arguments, parameters ``W_x``, ``W_h``, ``b`` with ``gates``
    blocks of ``hidden_size`` columns, the input check and the choice of output."""

    gates = 1

    def __init__(self, input_size, hidden_size, return_sequences=False, *, rng=None, dtype=np.float32):
        super().__init__()
        self.hidden_grads = None
        owner = type(self).__name__
        self.input_size = positive_int(input_size, "input_size", owner)
        self.hidden_size = positive_int(hidden_size, "hidden_size", owner)
        if not isinstance(return_sequences, (bool, np.bool_)):
            raise ArgumentTypeError(f"{owner} expects return_sequences to be True or False; "
                                    f"received return_sequences={return_sequences!r}.")
        self.return_sequences = bool(return_sequences)
        width = self.gates * self.hidden_size  # every gate's columns side by side
        shapes = {"W_x": (self.input_size, width), "W_h": (self.hidden_size, width), "b": (width,)}
        rng = as_generator(rng)  # one generator for the three arrays, so each gets its own draws
        self.params = {key: recurrent_uniform(shape, self.hidden_size, rng, dtype) for key, shape in shapes.items()}

    def check_input(self, x):
        """``x`` as ``(N, T, input_size)`` in the layer's dtype, or a ShapeError that says how to fix it."""
        owner = f"{type(self).__name__}({self.input_size}, {self.hidden_size})"
        x = float_array(x, owner)
        if x.ndim != 3:
            hint = {
                2: f" Add a time axis: x[:, None] reads each row as one step of {x.shape[-1]} features, or "
                   f"Reshape((T, {self.input_size})) before this layer makes T steps of each row.",
                4: f" Read images row by row with Reshape((H, W)) before this layer (input_size=W), e.g. "
                   f"Reshape((28, {self.input_size})) for MNIST.",
            }.get(x.ndim, "")
            raise ShapeError(f"{owner} expects input of shape (N, T, input_size); got {tuple(x.shape)}.{hint}")
        if x.shape[2] != self.input_size:
            raise ShapeError(f"{owner} expects {self.input_size} features per step; got input of shape "
                             f"{tuple(x.shape)}. Set input_size={x.shape[2]} to match the layer before.")
        if x.shape[1] == 0:
            raise ShapeError(f"{owner} needs at least one time step; got input of shape {tuple(x.shape)}.")
        return x.astype(self.dtype, copy=False)

    def _output(self, h):
        return sequence_output(h, self.return_sequences)

    def get_config(self):
        return {"input_size": self.input_size, "hidden_size": self.hidden_size,
                "return_sequences": self.return_sequences}


class RNN(_Recurrent):
    r"""Simple (Elman) recurrent layer, ``h_t = tanh(x_t W_x + h_{t-1} W_h + b)``, ``h_0 = 0``.

    Parameters
    ----------
    input_size : int
        Features per step, ``D``.
    hidden_size : int
        Size of the hidden state, ``H``.
    return_sequences : bool, default False
        Return every ``h_t`` instead of the last one only.
    rng : numpy.random.Generator or int, optional
        Source of the initial weights; the same seed gives the same weights.
    dtype : default float32
        dtype of the parameters, in which the layer computes.

    Shape
    -----
    - Input: ``(N, T, input_size)``, batch first.
    - Output: ``(N, hidden_size)``, or ``(N, T, hidden_size)`` with ``return_sequences=True``.

    Attributes
    ----------
    params["W_x"] : ``(input_size, hidden_size)``
    params["W_h"] : ``(hidden_size, hidden_size)``
    params["b"] : ``(hidden_size,)``
        Each drawn from ``U(-k, k)``, ``k = 1/sqrt(hidden_size)``, as PyTorch's.
    hidden_grads : ``(N, T, hidden_size)``
        After a backward, ``dL/dh_t`` for every step (both paths added): how much gradient
        each step's state received, to see it vanish or explode.

    Notes
    -----
    Backward is backprop through time (see the module's text for the derivation)::

        dh      = dH_t + dh_next            # from the output at t and from step t+1
        da_t    = dh * (1 - h_t²)           # through tanh
        dh_next = da_t W_hᵀ                 # to step t-1

    then ``dW_x = Σ_t x_tᵀ da_t``, ``dW_h = Σ_t h_{t-1}ᵀ da_t``, ``db = Σ da_t``,
    ``dx_t = da_t W_xᵀ``. It equals ``torch.nn.RNN(D, H, batch_first=True)`` with
    ``weight_ih_l0 = W_xᵀ``, ``weight_hh_l0 = W_hᵀ``, ``bias_ih_l0 = b``, ``bias_hh_l0 = 0``.

    Examples
    --------
    >>> import numpy as np
    >>> layer = RNN(28, 16, rng=0)
    >>> x = np.zeros((5, 28, 28), dtype=np.float32)       # 5 images, read as 28 rows of 28 pixels
    >>> layer.forward(x).shape, RNN(28, 16, return_sequences=True, rng=0).forward(x).shape
    ((5, 16), (5, 28, 16))
    """

    def forward(self, x, training=False):
        """``(N, T, D) -> (N, H)``, or ``(N, T, H)`` with ``return_sequences``."""
        x = self.check_input(x)
        n, steps, _ = x.shape
        W_h = self.params["W_h"]
        x_part = time_first(x) @ self.params["W_x"] + self.params["b"]  # (T,N,D)@(D,H) + (H,) -> (T,N,H): every step
        h = np.zeros((steps + 1, n, self.hidden_size), dtype=self.dtype)  # h[t] is h_t; h[0] = h_0 = 0 (time first)
        for t in range(1, steps + 1):
            h[t] = np.tanh(x_part[t - 1] + h[t - 1] @ W_h)  # (N,H) + (N,H)@(H,H) -> (N,H)
        self._save(training, x, h)
        return self._output(h)

    def backward(self, grad_out):
        """``dX`` ``(N, T, D)`` from the gradient of the output; fills ``grads`` (backprop through time)."""
        x, h = self._saved_values()
        n, steps, _ = x.shape
        grad_states = states_gradient(grad_out, steps, self.return_sequences, self.dtype)  # dH: (T,N,H)
        grad_pre = np.empty_like(grad_states)  # da_t for every step: (T,N,H)
        hidden_grads = np.empty_like(grad_states)  # dL/dh_t for every step: (T,N,H)
        grad_next = np.zeros((n, self.hidden_size), dtype=self.dtype)  # dL/dh_t through step t+1; none after T
        for t in range(steps, 0, -1):  # t = T, ..., 1
            grad_h = hidden_grads[t - 1] = grad_states[t - 1] + grad_next  # (N,H): both paths into h_t
            grad_pre[t - 1] = grad_h * (1 - h[t] ** 2)  # (N,H): through tanh
            grad_next = grad_pre[t - 1] @ self.params["W_h"].T  # (N,H)@(H,H) -> (N,H): to h_{t-1}
        self.hidden_grads = hidden_grads.swapaxes(0, 1)  # (N,T,H), kept to be looked at
        grad_x, self.grads = recurrent_grads(x, h, grad_pre, self.params["W_x"])
        return grad_x


class LSTM(_Recurrent):
    r"""Long short-term memory layer: gates ``i, f, g, o`` (PyTorch's order), ``c_0 = h_0 = 0``.

    ``z_t = x_t W_x + h_{t-1} W_h + b``; ``i, f, o = σ(z_i), σ(z_f), σ(z_o)``,
    ``g = tanh(z_g)``; ``c_t = f c_{t-1} + i g``; ``h_t = o tanh(c_t)``.

    Parameters
    ----------
    input_size : int
        Features per step, ``D``.
    hidden_size : int
        Size of the hidden and cell states, ``H``.
    return_sequences : bool, default False
        Return every ``h_t`` instead of the last one only.
    rng : numpy.random.Generator or int, optional
        Source of the initial weights; the same seed gives the same weights.
    dtype : default float32
        dtype of the parameters, in which the layer computes.

    Shape
    -----
    - Input: ``(N, T, input_size)``, batch first.
    - Output: ``(N, hidden_size)``, or ``(N, T, hidden_size)`` with ``return_sequences=True``.

    Attributes
    ----------
    params["W_x"] : ``(input_size, 4*hidden_size)``
    params["W_h"] : ``(hidden_size, 4*hidden_size)``
    params["b"] : ``(4*hidden_size,)``
        Columns ``[0:H]`` feed gate ``i``, ``[H:2H]`` ``f``, ``[2H:3H]`` ``g``, ``[3H:4H]`` ``o``;
        each drawn from ``U(-k, k)``, ``k = 1/sqrt(hidden_size)``, as PyTorch's.
    hidden_grads : ``(N, T, hidden_size)``
        After a backward, ``dL/dh_t`` for every step, as the RNN's.

    Notes
    -----
    Backward is backprop through time (the module's text derives it); at each step, from
    ``T`` down to 1::

        dh   = dH_t + dh_next
        dc   = dc_next + dh * o * (1 - tanh(c_t)²)
        dz_t = [dc g i(1-i), dc c_{t-1} f(1-f), dc i (1-g²), dh tanh(c_t) o(1-o)]
        dc_next = dc * f          dh_next = dz_t W_hᵀ

    then the weight and input gradients as the RNN's, with ``dz`` for ``da``. It equals
    ``torch.nn.LSTM(D, H, batch_first=True)`` with ``weight_ih_l0 = W_xᵀ``,
    ``weight_hh_l0 = W_hᵀ``, ``bias_ih_l0 = b``, ``bias_hh_l0 = 0``.

    Examples
    --------
    >>> import numpy as np
    >>> layer = LSTM(28, 128, rng=0)
    >>> layer.params["W_x"].shape, layer.params["W_h"].shape
    ((28, 512), (128, 512))
    >>> layer.forward(np.zeros((5, 28, 28), dtype=np.float32)).shape
    (5, 128)
    """

    gates = 4

    def forward(self, x, training=False):
        """``(N, T, D) -> (N, H)``, or ``(N, T, H)`` with ``return_sequences``: :func:`lstm_forward`."""
        x = self.check_input(x)
        h, c, gates = lstm_forward(x, self.params["W_x"], self.params["W_h"], self.params["b"])
        self._save(training, x, h, c, gates)
        return self._output(h)

    def backward(self, grad_out):
        """``dX`` ``(N, T, D)`` from the gradient of the output; fills ``grads`` (:func:`lstm_backward`)."""
        x, h, c, gates = self._saved_values()
        grad_states = states_gradient(grad_out, x.shape[1], self.return_sequences, self.dtype)  # dH: (T,N,H)
        grad_x, self.grads, self.hidden_grads = lstm_backward(grad_states, x, h, c, gates, self.params["W_x"],
                                                              self.params["W_h"])
        return grad_x
