"""The transformer's layers against PyTorch autograd in float64: outputs, input and parameter gradients, attention."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinynet
from tinynet import layers as L


@pytest.fixture(scope="module")
def torch():
    """PyTorch, or a skip naming the package (the comparisons need it; the layers do not)."""
    return pytest.importorskip("torch", reason="the comparisons with PyTorch need torch: pip install -e '.[export]'")


def _ours(layer, x, grad):
    """``(y, dX, grads)`` of a tinynet layer in float64 for the upstream gradient ``grad``."""
    layer.astype(np.float64)
    y = layer.forward(x, training=True)
    return y, layer.backward(grad), layer.grads


def _theirs(torch, module, x, grad):
    """``(y, dX)`` of a torch module (or function) in float64, its parameters' ``.grad`` filled."""
    tx = torch.tensor(x, requires_grad=True)
    ty = module(tx)
    ty.backward(torch.tensor(grad))
    return ty.detach().numpy(), tx.grad.numpy()


def _close(ours, theirs, what):
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12, err_msg=what)


def _mha_pair(torch, embed_dim, heads, causal, seed):
    """A tinynet MultiHeadAttention with random weights and biases, and torch's with the same numbers."""
    rng = np.random.default_rng(seed)
    ours = L.MultiHeadAttention(embed_dim, heads, causal=causal, rng=seed).astype(np.float64)
    for name in "qkvo":
        ours.params[f"b_{name}"][...] = rng.standard_normal(embed_dim) * 0.5
    theirs = torch.nn.MultiheadAttention(embed_dim, heads, batch_first=True, dtype=torch.float64)
    p = ours.params
    with torch.no_grad():  # DESIGN.md's equivalence: in_proj_weight = [W_qᵀ; W_kᵀ; W_vᵀ], out_proj.weight = W_oᵀ
        theirs.in_proj_weight.copy_(torch.tensor(np.concatenate([p["W_q"].T, p["W_k"].T, p["W_v"].T])))
        theirs.in_proj_bias.copy_(torch.tensor(np.concatenate([p["b_q"], p["b_k"], p["b_v"]])))
        theirs.out_proj.weight.copy_(torch.tensor(p["W_o"].T))
        theirs.out_proj.bias.copy_(torch.tensor(p["b_o"]))
    return ours, theirs


@pytest.mark.parametrize("causal_as", [None, "attn_mask", "is_causal"])
@settings(max_examples=15)
@given(heads=st.integers(1, 4), head_dim=st.integers(1, 5), steps=st.integers(1, 7), n=st.integers(1, 3),
       seed=st.integers(0, 2**16))
def test_multi_head_attention_matches_torch(torch, causal_as, heads, head_dim, steps, n, seed):
    """Output, attention weights (per head), dX and every weight's gradient equal torch's MultiheadAttention,
    plain and causal (the mask given as an upper-triangular attn_mask, or with is_causal)."""
    embed_dim = heads * head_dim
    ours, theirs = _mha_pair(torch, embed_dim, heads, causal_as is not None, seed)
    rng = np.random.default_rng(seed + 1)
    x, grad = rng.standard_normal((n, steps, embed_dim)), rng.standard_normal((n, steps, embed_dim))
    y, grad_x, grads = _ours(ours, x, grad)

    mask = torch.triu(torch.ones(steps, steps, dtype=torch.bool), diagonal=1) if causal_as else None
    weights = {}

    def attend(tx):
        out, weights["A"] = theirs(tx, tx, tx, need_weights=True, average_attn_weights=False, attn_mask=mask,
                                   is_causal=causal_as == "is_causal")
        return out

    their_y, their_grad_x = _theirs(torch, attend, x, grad)
    _close(y, their_y, "output")
    _close(ours.attention, weights["A"].detach().numpy(), "attention weights (N, heads, T, T)")
    _close(grad_x, their_grad_x, "dX")
    in_grad, in_bias_grad = theirs.in_proj_weight.grad.numpy(), theirs.in_proj_bias.grad.numpy()
    for i, name in enumerate("qkv"):
        rows = slice(i * embed_dim, (i + 1) * embed_dim)
        _close(grads[f"W_{name}"], in_grad[rows].T, f"dW_{name}")
        _close(grads[f"b_{name}"], in_bias_grad[rows], f"db_{name}")
    _close(grads["W_o"], theirs.out_proj.weight.grad.numpy().T, "dW_o")
    _close(grads["b_o"], theirs.out_proj.bias.grad.numpy(), "db_o")
    if causal_as:  # nothing flows from the future: position 0's output ignores every later input
        assert np.all(ours.attention[..., np.triu_indices(steps, 1)[0], np.triu_indices(steps, 1)[1]] == 0)


def test_causal_attention_ignores_the_future():
    """Changing the last position's input changes no earlier causal output (and does change plain attention's)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 8))
    changed = x.copy()
    changed[:, -1] += 1.0
    causal = L.MultiHeadAttention(8, 2, causal=True, rng=0).astype(np.float64)
    np.testing.assert_array_equal(causal.forward(x)[:, :-1], causal.forward(changed)[:, :-1])
    plain = L.MultiHeadAttention(8, 2, rng=0).astype(np.float64)
    assert not np.allclose(plain.forward(x)[:, :-1], plain.forward(changed)[:, :-1])
    np.testing.assert_allclose(causal.attention.sum(axis=-1), 1.0, rtol=1e-12)


def test_attention_weights_follow_the_last_forward():
    """layer.attention is (N, heads, T, T) for the last forward, at inference too, each row summing to 1."""
    mha = L.MultiHeadAttention(6, 3, rng=1)
    assert mha.attention is None
    mha.forward(np.ones((4, 7, 6), np.float32))
    mha.forward(np.random.default_rng(0).random((2, 3, 6), dtype=np.float32))
    assert mha.attention.shape == (2, 3, 3, 3) and mha.attention.dtype == np.float32
    np.testing.assert_allclose(mha.attention.sum(axis=-1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("shape", [(4, 10), (3, 5, 10), (2, 3, 4, 10)])
def test_layer_norm_matches_torch(torch, shape):
    """LayerNorm over the last axis, with random gamma and beta: y, dX, dgamma and dbeta as torch.nn.LayerNorm."""
    rng = np.random.default_rng(len(shape))
    ours = L.LayerNorm(10, eps=1e-5).astype(np.float64)
    ours.params["gamma"][...] = rng.standard_normal(10)
    ours.params["beta"][...] = rng.standard_normal(10)
    theirs = torch.nn.LayerNorm(10, eps=1e-5, dtype=torch.float64)
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(ours.params["gamma"]))
        theirs.bias.copy_(torch.tensor(ours.params["beta"]))
    x, grad = rng.standard_normal(shape) * 3 + 1, rng.standard_normal(shape)
    y, grad_x, grads = _ours(ours, x, grad)
    their_y, their_grad_x = _theirs(torch, theirs, x, grad)
    _close(y, their_y, "output")
    _close(grad_x, their_grad_x, "dX")
    _close(grads["gamma"], theirs.weight.grad.numpy(), "dgamma")
    _close(grads["beta"], theirs.bias.grad.numpy(), "dbeta")


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_matches_torch(torch, approximate):
    """Both forms of GELU and their derivatives equal torch.nn.GELU's, from -8 to 8 and at 0."""
    x = np.concatenate([np.linspace(-8, 8, 401), [0.0, -1e-9, 1e-9]]).reshape(4, -1)
    grad = np.random.default_rng(0).standard_normal(x.shape)
    y, grad_x, _ = _ours(L.GELU(approximate), x, grad)
    their_y, their_grad_x = _theirs(torch, torch.nn.GELU(approximate=approximate), x, grad)
    _close(y, their_y, "output")
    _close(grad_x, their_grad_x, "dX")


@pytest.mark.parametrize("shape", [(4, 6), (3, 5, 6), (2, 3, 4, 6)])
def test_dense_on_sequences_matches_torch_linear(torch, shape):
    """Dense on (N, ..., in_features) is nn.Linear: y, dX, and dW, db summed over every leading position."""
    rng = np.random.default_rng(len(shape))
    ours = L.Dense(6, 3, rng=0).astype(np.float64)
    ours.params["b"][...] = rng.standard_normal(3)
    theirs = torch.nn.Linear(6, 3, dtype=torch.float64)
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(ours.params["W"].T))
        theirs.bias.copy_(torch.tensor(ours.params["b"]))
    x, grad = rng.standard_normal(shape), rng.standard_normal((*shape[:-1], 3))
    y, grad_x, grads = _ours(ours, x, grad)
    their_y, their_grad_x = _theirs(torch, theirs, x, grad)
    _close(y, their_y, "output")
    _close(grad_x, their_grad_x, "dX")
    _close(grads["W"], theirs.weight.grad.numpy().T, "dW")
    _close(grads["b"], theirs.bias.grad.numpy(), "db")


def _patches_by_loops(x, p):
    """Patches by their definition: patch r*(W/p) + q holds pixel (r*p + i, q*p + j) of channel c at c*p*p + i*p + j."""
    n, c, h, w = x.shape
    out = np.zeros((n, (h // p) * (w // p), c * p * p))
    for r in range(h // p):
        for q in range(w // p):
            for ch in range(c):
                for i in range(p):
                    for j in range(p):
                        out[:, r * (w // p) + q, ch * p * p + i * p + j] = x[:, ch, r * p + i, q * p + j]
    return out


@pytest.mark.parametrize("shape, p", [((2, 1, 28, 28), 7), ((3, 2, 6, 4), 2), ((1, 3, 5, 5), 5), ((2, 2, 3, 6), 1)])
def test_patches_follow_their_definition(shape, p):
    """Patches equal the loops of their definition; backward puts each gradient back on its pixel."""
    x = np.random.default_rng(0).standard_normal(shape)
    layer = L.Patches(p)
    y = layer.forward(x, training=True)
    np.testing.assert_array_equal(y, _patches_by_loops(x, p))
    grad = np.random.default_rng(1).standard_normal(y.shape)
    back = layer.backward(grad)
    np.testing.assert_array_equal(_patches_by_loops(back, p), grad)  # the same moves, so the adjoint is the inverse


@pytest.mark.parametrize("shape, p", [((2, 1, 28, 28), 7), ((3, 2, 6, 4), 2)])
def test_patches_match_torch_unfold(torch, shape, p):
    """Patches are F.unfold(x, p, stride=p) with the patch axis first, forward and backward."""
    x = np.random.default_rng(0).standard_normal(shape)
    grad = np.random.default_rng(1).standard_normal((shape[0], (shape[2] // p) * (shape[3] // p), shape[1] * p * p))
    y, grad_x, _ = _ours(L.Patches(p), x, grad)
    their_y, their_grad_x = _theirs(torch, lambda t: torch.nn.functional.unfold(t, p, stride=p).transpose(1, 2),
                                    x, grad)
    np.testing.assert_array_equal(y, their_y)
    np.testing.assert_array_equal(grad_x, their_grad_x)


def test_positional_embedding_and_the_mean_over_time_match_torch(torch):
    """x + P (dP summed over the batch) and the mean over time, as torch computes them."""
    rng = np.random.default_rng(0)
    x, grad = rng.standard_normal((3, 16, 8)), rng.standard_normal((3, 16, 8))
    embedding = L.PositionalEmbedding(16, 8, rng=0)
    y, grad_x, grads = _ours(embedding, x, grad)
    table = torch.tensor(embedding.params["P"], requires_grad=True)
    their_y, their_grad_x = _theirs(torch, lambda t: t + table, x, grad)
    _close(y, their_y, "output")
    _close(grad_x, their_grad_x, "dX")
    _close(grads["P"], table.grad.numpy(), "dP")
    pooled_grad = rng.standard_normal((3, 8))
    y, grad_x, _ = _ours(L.GlobalAvgPool1D(), x, pooled_grad)
    their_y, their_grad_x = _theirs(torch, lambda t: t.mean(dim=1), x, pooled_grad)
    _close(y, their_y, "mean over time")
    _close(grad_x, their_grad_x, "dX of the mean")


def test_positional_embedding_is_seeded_and_small():
    """The same seed gives the same P, drawn from N(0, 0.02^2); another seed gives another."""
    a, b = L.PositionalEmbedding(64, 64, rng=3), L.PositionalEmbedding(64, 64, rng=3)
    np.testing.assert_array_equal(a.params["P"], b.params["P"])
    assert not np.array_equal(a.params["P"], L.PositionalEmbedding(64, 64, rng=4).params["P"])
    assert abs(a.params["P"].std() - 0.02) < 0.002 and abs(a.params["P"].mean()) < 0.002


def test_the_four_attention_projections_differ():
    """One seed gives four different weight matrices (not one matrix four times)."""
    mha = L.MultiHeadAttention(8, 2, rng=0)
    matrices = [mha.params[f"W_{name}"] for name in "qkvo"]
    assert all(not np.array_equal(a, b) for i, a in enumerate(matrices) for b in matrices[i + 1:])
    np.testing.assert_array_equal(L.MultiHeadAttention(8, 2, rng=0).params["W_v"], mha.params["W_v"])


def test_a_transformer_block_trains_through_fit():
    """Patches -> Dense -> PositionalEmbedding -> a pre-norm attention block -> mean -> Dense learns 4 classes."""
    from tests.strategies import four_class_images

    x, y = four_class_images(256, seed=0)
    model = tinynet.Sequential([
        L.Patches(2), L.Dense(4, 8, rng=0), L.PositionalEmbedding(9, 8, rng=1),
        L.Residual(L.LayerNorm(8), L.MultiHeadAttention(8, 2, rng=2)),
        L.Residual(L.LayerNorm(8), L.Dense(8, 16, rng=3), L.GELU(), L.Dense(16, 8, rng=4)),
        L.LayerNorm(8), L.GlobalAvgPool1D(), L.Dense(8, 4, rng=5),
    ])
    history = model.fit(x, y, epochs=8, batch_size=32, verbose=0, seed=0, optimizer=tinynet.optim.Adam(3e-3))
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert model.evaluate(x, y)["accuracy"] > 0.9
