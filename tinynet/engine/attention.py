"""Multi-head attention in the engine: the three projections as one product, the softmax compiled.

Run as written, a ``MultiHeadAttention`` makes three ``(R, E) @ (E, E)`` products for ``Q``,
``K`` and ``V`` (and three for their input gradients, three for their weight gradients), and
its softmax is a handful of NumPy passes over ``(N, h, T, T)`` scores whose rows are too
short for NumPy (16 in the ViT). This step puts ``W_q | W_k | W_v`` side by side, so each of
those triples is one ``(R, E) @ (E, 3E)`` product (or its transpose), and runs the layer's own
:func:`~tinynet.layers.attention.attention_heads` and
:func:`~tinynet.layers.attention.attention_heads_backward` with the weights functions swapped
for :func:`tinynet.kernels.attention_weights` and :func:`tinynet.kernels.attention_weights_backward`,
whose readable twins are the layer's :func:`~tinynet.layers.attention.attention_weights` and
:func:`~tinynet.layers.attention.attention_weights_backward`.
"""

import numpy as np

from .. import kernels
from ..layers.attention import attention_heads, attention_heads_backward, join_heads, split_heads
from ..layers.dense import affine, dense_grads, dense_input_grad
from .steps import LayerStep

__all__ = ["AttentionStep"]

_QKV = ("q", "k", "v")


def _side_by_side(params, kind):
    """``W_q | W_k | W_v`` ``(E, 3E)`` (``kind="W"``) or ``b_q | b_k | b_v`` ``(3E,)`` (``kind="b"``), read now."""
    return np.concatenate([params[f"{kind}_{name}"] for name in _QKV], axis=-1)


class AttentionStep(LayerStep):
    """A MultiHeadAttention layer, forward and backward: ``Q | K | V`` from one product, its softmax compiled."""

    # Predicting 1,000 images, a vision transformer's plan took 53 ms whole and 45 ms in chunks of
    # 125-250: its (N, T, 3E) projections, (N, h, T, T) weights and the MLP's (N, T, 2E) arrays of
    # a chunk stay in cache between steps (basic_mlp and lstm_rows were slower in chunks).
    inference_chunk = 256
    kept_per_sample = ("attention",)

    def forward(self, x, training=False):
        self._saved = None
        layer = self.layer
        x = layer.check_input(x)
        params = layer.params
        qkv = affine(x, _side_by_side(params, "W"), _side_by_side(params, "b"), kernels.matmul)  # (N,T,E)@(E,3E)
        q, k, v = (split_heads(part, layer.num_heads) for part in np.split(qkv, 3, axis=-1))  # (N,h,T,d) each
        heads, attention = attention_heads(q, k, v, layer.causal, weights=kernels.attention_weights)
        heads = join_heads(heads)  # (N,h,T,d) -> (N,T,E)
        layer.attention = attention  # as the layer's forward keeps it
        if training:
            self._saved = (x, q, k, v, attention, heads)
        return affine(heads, params["W_o"], params["b_o"], kernels.matmul)  # (N,T,E) @ (E,E) + (E,) -> (N,T,E)

    def backward(self, grad, input_grad=True):
        x, q, k, v, attention, heads = self._saved_values()
        layer = self.layer
        params = layer.params
        grad = grad.astype(layer.dtype, copy=False)
        grads = dict(zip(("W_o", "b_o"), dense_grads(heads, grad, kernels.matmul), strict=True))  # Oᵀ dY, Σ dY
        grad_heads = split_heads(dense_input_grad(grad, params["W_o"], kernels.matmul), layer.num_heads)  # (N,h,T,d)
        grad_qkv = np.concatenate([join_heads(part) for part in attention_heads_backward(
            grad_heads, q, k, v, attention, weights_backward=kernels.attention_weights_backward)], axis=-1)  # (N,T,3E)
        grad_w, grad_b = dense_grads(x, grad_qkv, kernels.matmul)  # Xᵀ [dQ | dK | dV] (E,3E), Σ (3E,)
        e = layer.embed_dim
        for index, name in enumerate(_QKV):
            grads[f"W_{name}"] = np.ascontiguousarray(grad_w[:, index * e:(index + 1) * e])
            grads[f"b_{name}"] = grad_b[index * e:(index + 1) * e].copy()
        layer.grads = {key: grads[key] for key in params}
        if not input_grad:
            return None
        # [dQ | dK | dV] [W_q | W_k | W_v]ᵀ: (N,T,E)
        return dense_input_grad(grad_qkv, _side_by_side(params, "W"), kernels.matmul)

    def describe(self):
        return f"{self.positions[0]} MultiHeadAttention (Q | K | V in one product, softmax compiled)"
