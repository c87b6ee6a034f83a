r"""Multi-head self-attention: every position of a sequence looks at every other (or every earlier) one.

Forward, for a batch of sequences ``X`` of shape ``(N, T, E)``, ``h`` heads of ``d = E / h``
features each::

    Q = X W_q + b_q     K = X W_k + b_k     V = X W_v + b_v        # (N, T, E) each
    Q, K, V split into heads                                        # (N, h, T, d)
    S = Q Kᵀ / √d                                                   # (N, h, T, T): scores
    A = softmax(S) along the last axis                              # (N, h, T, T): attention weights
    O = A V, heads joined                                           # (N, h, T, d) -> (N, T, E)
    Y = O W_o + b_o                                                 # (N, T, E)

Row ``t`` of ``A`` says how much position ``t`` takes from each position: its output is a
weighted mean of the values ``V``. Causal attention masks the future: ``S[t, s] = -inf`` for
``s > t``, so ``A[t, s] = 0`` there and position ``t`` sees only positions ``0 .. t``.

Backward, given ``dY`` ``(N, T, E)``. The projections are Dense layers on every position, so
their gradients are Dense's (``dW = Xᵀ dY`` summed over every position, ``db = Σ dY``). In
between, per head, with ``dO`` split into heads::

    dA = dO Vᵀ                          # (N,h,T,d) @ (N,h,d,T) -> (N,h,T,T)
    dV = Aᵀ dO                          # (N,h,T,T) @ (N,h,T,d) -> (N,h,T,d)
    dS = A * (dA - Σ_s dA A)            # softmax's vector-Jacobian product, row by row
    dQ = dS K / √d                      # (N,h,T,T) @ (N,h,T,d) -> (N,h,T,d)
    dK = dSᵀ Q / √d                     # (N,h,T,T) @ (N,h,T,d) -> (N,h,T,d)
    dX = dQ W_qᵀ + dK W_kᵀ + dV W_vᵀ    # X feeds all three projections: the three paths add

Where does each line come from? ``O = A V`` is a matrix product, so ``dA = dO Vᵀ`` and
``dV = Aᵀ dO`` (as Dense's ``dX = dY Wᵀ``, ``dW = Xᵀ dY``). ``S = Q Kᵀ / √d`` is another:
``dQ = dS K / √d`` and ``dKᵀ = Qᵀ dS / √d``, i.e. ``dK = dSᵀ Q / √d``. A masked score has
``A = 0``, so ``dS = 0`` there: the mask needs no code in backward. docs/backprop.md derives
the softmax step.
"""

import numpy as np

from .._checks import expect_rank, float_array, positive_int
from ..errors import ArgumentError, ArgumentTypeError, ShapeError
from ..init import as_generator, initial_weights
from .base import Layer
from .dense import affine, dense_grads, dense_input_grad
from .softmax import softmax, softmax_backward

__all__ = ["MultiHeadAttention", "split_heads", "join_heads", "future_mask", "attention_weights",
           "attention_weights_backward", "attention_heads", "attention_heads_backward"]

_PROJECTIONS = ("q", "k", "v", "o")


def split_heads(z, num_heads):
    """``(N, T, E) -> (N, h, T, d)``: each head's slice of the features (a view), ``d = E / h``.

    Examples
    --------
    >>> split_heads(np.arange(8.0).reshape(1, 2, 4), 2)[0, 1]      # head 1: features 2 and 3
    array([[2., 3.],
           [6., 7.]])
    """
    n, t, e = z.shape
    return z.reshape(n, t, num_heads, e // num_heads).transpose(0, 2, 1, 3)


def join_heads(z):
    """``(N, h, T, d) -> (N, T, E)``: the heads side by side again (the inverse of :func:`split_heads`)."""
    n, heads, t, d = z.shape
    return z.transpose(0, 2, 1, 3).reshape(n, t, heads * d)


def future_mask(length):
    """``(T, T)`` booleans, True where position ``t`` would see a later position ``s > t`` (masked when causal).

    Examples
    --------
    >>> future_mask(3).astype(int)
    array([[0, 1, 1],
           [0, 0, 1],
           [0, 0, 0]])
    """
    return np.triu(np.ones((length, length), dtype=bool), k=1)


def attention_weights(scores, causal=False):
    """``A = softmax(S)`` along each row of the scores ``(N, h, T, T)``; with ``causal``, ``S[t, s] = -inf`` for
    ``s > t`` first, so ``A[t, s] = 0`` there.

    Examples
    --------
    >>> attention_weights(np.zeros((1, 1, 2, 2)), causal=True)[0, 0]
    array([[1. , 0. ],
           [0.5, 0.5]])
    """
    if causal:
        scores = np.where(future_mask(scores.shape[-1]), -np.inf, scores).astype(scores.dtype, copy=False)
    return softmax(scores, axis=-1)


def attention_weights_backward(attention, grad_attention):
    """``dS = A * (dA - Σ_s dA A)`` row by row: softmax's vector-Jacobian product, ``(N, h, T, T)``.

    A masked score has ``A = 0``, so its ``dS = 0``: causal attention needs nothing more here.
    """
    return softmax_backward(attention, grad_attention, axis=-1)


def attention_heads(q, k, v, causal=False, weights=attention_weights):
    """Scaled dot-product attention of every head: ``(O, A)`` from ``Q``, ``K``, ``V`` ``(N, h, T, d)`` each.

    ``O`` ``(N, h, T, d)`` are the heads' outputs, ``A`` ``(N, h, T, T)`` the attention weights
    (each row sums to 1; with ``causal``, 0 wherever ``s > t``). ``weights`` computes ``A`` from
    the scores: :func:`attention_weights`, or a function that returns the same (the engine's
    compiled one).
    """
    scale = q.dtype.type(1 / np.sqrt(q.shape[-1]))
    scores = q @ k.swapaxes(-1, -2)  # Q Kᵀ: (N,h,T,d) @ (N,h,d,T) -> (N,h,T,T)
    scores *= scale  # S = Q Kᵀ / √d
    attention = weights(scores, causal)  # A = softmax(S) along each row: (N,h,T,T)
    return attention @ v, attention  # O = A V: (N,h,T,T) @ (N,h,T,d) -> (N,h,T,d)


def attention_heads_backward(grad_out, q, k, v, attention, weights_backward=attention_weights_backward):
    """``(dQ, dK, dV)`` ``(N, h, T, d)`` each of :func:`attention_heads`, given ``dO`` ``(N, h, T, d)`` and its ``A``;
    ``weights_backward`` is :func:`attention_weights_backward` or a function that returns the same."""
    scale = q.dtype.type(1 / np.sqrt(q.shape[-1]))
    grad_attention = grad_out @ v.swapaxes(-1, -2)  # dA = dO Vᵀ: (N,h,T,d) @ (N,h,d,T) -> (N,h,T,T)
    grad_v = attention.swapaxes(-1, -2) @ grad_out  # dV = Aᵀ dO: (N,h,T,T) @ (N,h,T,d) -> (N,h,T,d)
    grad_scores = weights_backward(attention, grad_attention)  # dS = A*(dA - Σ dA A): (N,h,T,T)
    grad_scores *= scale  # dS / √d, for both products below
    grad_q = grad_scores @ k  # dQ = dS K / √d: (N,h,T,T) @ (N,h,T,d) -> (N,h,T,d)
    grad_k = grad_scores.swapaxes(-1, -2) @ q  # dK = dSᵀ Q / √d: (N,h,T,T) @ (N,h,T,d) -> (N,h,T,d)
    return grad_q, grad_k, grad_v


class MultiHeadAttention(Layer):
    """Self-attention with ``num_heads`` heads, as ``torch.nn.MultiheadAttention(batch_first=True)``
    called as ``mha(x, x, x)``.

    Parameters
    ----------
    embed_dim : int
        ``E``, the features of each position (in and out).
    num_heads : int
        ``h``; must divide ``embed_dim``: each head attends with ``d = embed_dim / num_heads``
        features.
    causal : bool, default False
        Mask the future: position ``t`` attends to positions ``0 .. t`` only.
    init : {"glorot_uniform", "he_normal"}, default "glorot_uniform"
        Initial distribution of the four weight matrices (each ``(E, E)``); biases start at zero.
    rng : numpy.random.Generator or int, optional
        Source of the initial weights.
    dtype : default float32

    Shape
    -----
    - Input: ``(N, T, embed_dim)``, a batch of sequences of ``T`` positions.
    - Output: ``(N, T, embed_dim)``, the input's dtype.

    Attributes
    ----------
    params["W_q"], params["W_k"], params["W_v"], params["W_o"] : ``(E, E)``, Glorot uniform
        ``U(-a, a)``, ``a = sqrt(6 / (2E))``, by default. ``y = x @ W + b`` as in Dense, so
        PyTorch's ``in_proj_weight`` is ``[W_qᵀ; W_kᵀ; W_vᵀ]`` and ``out_proj.weight`` is ``W_oᵀ``.
    params["b_q"], params["b_k"], params["b_v"], params["b_o"] : ``(E,)``, zeros.
    attention : ``(N, num_heads, T, T)``
        The attention weights ``A`` of the last forward (each row sums to 1); None before one.

    Examples
    --------
    >>> import numpy as np
    >>> mha = MultiHeadAttention(8, 2, causal=True, rng=0)
    >>> y = mha.forward(np.ones((3, 5, 8), dtype=np.float32))
    >>> y.shape, mha.attention.shape
    ((3, 5, 8), (3, 2, 5, 5))
    >>> mha.attention[0, 0, 1].round(2)     # position 1 attends to positions 0 and 1 only
    array([0.5, 0.5, 0. , 0. , 0. ], dtype=float32)
    """

    def __init__(self, embed_dim, num_heads, causal=False, *, init="glorot_uniform", rng=None, dtype=np.float32):
        super().__init__()
        self.embed_dim = positive_int(embed_dim, "embed_dim", "MultiHeadAttention")
        self.num_heads = positive_int(num_heads, "num_heads", "MultiHeadAttention")
        if self.embed_dim % self.num_heads:
            divisors = [h for h in range(1, self.embed_dim + 1) if self.embed_dim % h == 0]
            multiple = -(-self.embed_dim // self.num_heads) * self.num_heads  # the next multiple up
            raise ArgumentError(
                f"MultiHeadAttention splits embed_dim among the heads, so num_heads must divide it; received "
                f"embed_dim={self.embed_dim}, num_heads={self.num_heads}. Use num_heads in {divisors[:12]}, or an "
                f"embed_dim that is a multiple of {self.num_heads} (e.g. embed_dim={multiple}).")
        if not isinstance(causal, (bool, np.bool_)):
            raise ArgumentTypeError(
                f"MultiHeadAttention expects causal to be True or False; received causal={causal!r}.")
        self.causal = bool(causal)
        self.init = init
        self.attention = None
        e, rng = self.embed_dim, as_generator(rng)  # one generator for the four: four different matrices
        for name in _PROJECTIONS:
            self.params[f"W_{name}"] = initial_weights(init, (e, e), e, e, rng, dtype, "MultiHeadAttention")
            self.params[f"b_{name}"] = np.zeros(e, dtype=dtype)

    @property
    def head_dim(self):
        """``d = embed_dim / num_heads``: the features each head compares and mixes."""
        return self.embed_dim // self.num_heads

    def forward(self, x, training=False):
        """``(N, T, E) -> (N, T, E)``; the attention weights are kept in ``self.attention``."""
        x = self.check_input(x)
        q, k, v = (split_heads(affine(x, self.params[f"W_{name}"], self.params[f"b_{name}"]), self.num_heads)
                   for name in "qkv")  # X W + b on every position: (N,T,E) @ (E,E) + (E,) -> (N,T,E) -> (N,h,T,d)
        heads, attention = attention_heads(q, k, v, self.causal)  # (N,h,T,d), A (N,h,T,T)
        heads = join_heads(heads)  # (N,h,T,d) -> (N,T,E)
        self.attention = attention
        self._save(training, x, q, k, v, attention, heads)
        return affine(heads, self.params["W_o"], self.params["b_o"])  # (N,T,E) @ (E,E) + (E,) -> (N,T,E)

    def backward(self, grad_out):
        """``dX`` ``(N, T, E)`` from ``dY`` ``(N, T, E)``; fills ``grads`` for the four projections."""
        x, q, k, v, attention, heads = self._saved_values()
        grad_out = grad_out.astype(self.dtype, copy=False)
        grads = dict(zip(("W_o", "b_o"), dense_grads(heads, grad_out), strict=True))  # Oᵀ dY (E,E), Σ dY (E,)
        grad_heads = split_heads(dense_input_grad(grad_out, self.params["W_o"]), self.num_heads)  # dO: (N,h,T,d)
        grad_qkv = attention_heads_backward(grad_heads, q, k, v, attention)  # dQ, dK, dV: (N,h,T,d) each
        grad_x = np.zeros_like(x)
        for name, grad in zip("qkv", grad_qkv, strict=True):
            grad = join_heads(grad)  # (N,h,T,d) -> (N,T,E)
            grads.update(zip((f"W_{name}", f"b_{name}"), dense_grads(x, grad), strict=True))  # Xᵀ dQ (E,E), Σ dQ (E,)
            grad_x += dense_input_grad(grad, self.params[f"W_{name}"])  # (N,T,E) @ (E,E) -> (N,T,E): paths add
        self.grads = {key: grads[key] for key in self.params}
        return grad_x

    @staticmethod
    def future_mask(length):
        """``(T, T)`` booleans, True where position ``t`` would see a later position ``s > t``; see
        :func:`future_mask`.

        Examples
        --------
        >>> MultiHeadAttention.future_mask(3).astype(int)
        array([[0, 1, 1],
               [0, 0, 1],
               [0, 0, 0]])
        """
        return future_mask(length)

    def check_input(self, x):
        """``x`` as ``(N, T, embed_dim)`` floats in the layer's dtype, or a ShapeError that says how to fix it."""
        x = float_array(x, "MultiHeadAttention")
        expect_rank(x, 3, "MultiHeadAttention", "(N, T, embed_dim)")
        if x.shape[2] != self.embed_dim:
            raise ShapeError(
                f"MultiHeadAttention(embed_dim={self.embed_dim}) expects {self.embed_dim} features at each position; "
                f"got input of shape {tuple(x.shape)}. Build it with embed_dim={x.shape[2]}, or put a "
                f"Dense({x.shape[2]}, {self.embed_dim}) before it.")
        if x.shape[1] == 0:
            raise ShapeError("MultiHeadAttention needs sequences of at least one position; got T = 0.")
        return x.astype(self.dtype, copy=False)

    def astype(self, dtype):
        self.attention = None
        return super().astype(dtype)

    def get_config(self):
        return {"embed_dim": self.embed_dim, "num_heads": self.num_heads, "causal": self.causal, "init": self.init}

