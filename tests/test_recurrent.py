"""RNN and LSTM: equal to torch.nn.RNN/LSTM(batch_first=True) in float64, and clear about bad arguments and inputs."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinynet
from tinynet import layers as L
from tinynet.errors import ArgumentError, ArgumentTypeError, ShapeError

KINDS = {"RNN": L.RNN, "LSTM": L.LSTM}


def torch_twin(torch, layer):
    """The torch module DESIGN.md names as ``layer``'s equal, in float64: ``weight_ih = W_xᵀ``,
    ``weight_hh = W_hᵀ``, ``bias_ih = b``, ``bias_hh = 0``."""
    kind = torch.nn.RNN if isinstance(layer, L.RNN) else torch.nn.LSTM
    module = kind(layer.input_size, layer.hidden_size, batch_first=True).double()
    with torch.no_grad():
        module.weight_ih_l0.copy_(torch.from_numpy(layer.params["W_x"].T.copy()))
        module.weight_hh_l0.copy_(torch.from_numpy(layer.params["W_h"].T.copy()))
        module.bias_ih_l0.copy_(torch.from_numpy(layer.params["b"]))
        module.bias_hh_l0.zero_()
    return module


@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", [(3, 7, 5), (1, 1, 2), (4, 28, 6)])
def test_forward_and_every_gradient_equal_pytorch_autograd(kind, return_sequences, shape):
    """Output, input gradient and every parameter gradient equal PyTorch autograd's in float64."""
    torch = pytest.importorskip("torch", reason="the comparison with PyTorch needs torch: pip install torch")
    n, steps, features = shape
    hidden = 4
    layer = KINDS[kind](features, hidden, return_sequences=return_sequences, rng=1).astype(np.float64)
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape)
    ours = layer.forward(x, training=True)
    grad_out = rng.standard_normal(ours.shape)
    grad_x = layer.backward(grad_out)

    module = torch_twin(torch, layer)
    x_torch = torch.from_numpy(x).requires_grad_()
    sequence = module(x_torch)[0]  # (N, T, H): every h_t
    theirs = sequence if return_sequences else sequence[:, -1]
    (theirs * torch.from_numpy(grad_out)).sum().backward()

    assert ours.shape == ((n, steps, hidden) if return_sequences else (n, hidden))
    np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grad_x, x_torch.grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(layer.grads["W_x"], module.weight_ih_l0.grad.numpy().T, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(layer.grads["W_h"], module.weight_hh_l0.grad.numpy().T, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(layer.grads["b"], module.bias_ih_l0.grad.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_initial_weights_are_seeded_and_within_pytorchs_bound(kind):
    """Every array is drawn from U(-1/sqrt(H), 1/sqrt(H)) as PyTorch's; the same seed gives the same weights."""
    first, second, other = (KINDS[kind](6, 16, rng=seed) for seed in (3, 3, 4))
    bound = 1 / np.sqrt(16)
    for key, array in first.params.items():
        assert array.dtype == np.float32
        assert np.abs(array).max() <= bound and np.abs(array).max() > 0.8 * bound  # uses the range, not a corner
        np.testing.assert_array_equal(array, second.params[key])
        assert not np.array_equal(array, other.params[key])
    assert not np.array_equal(first.params["W_x"][:6, :6], first.params["W_h"][:6, :6])  # separate draws


def test_one_step_rnn_is_a_dense_layer_and_tanh():
    """With T = 1 and h_0 = 0 the RNN is tanh(x W_x + b): the recurrence adds nothing."""
    layer = L.RNN(3, 2, rng=0)
    x = np.random.default_rng(0).standard_normal((4, 1, 3)).astype(np.float32)
    expected = np.tanh(x[:, 0] @ layer.params["W_x"] + layer.params["b"])
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-6)


def test_lstm_with_a_closed_forget_gate_forgets_the_past():
    """A forget gate held shut (f = 0) and h not fed back makes h_T depend on the last step only."""
    layer = L.LSTM(2, 3, rng=0).astype(np.float64)
    layer.params["W_h"][...] = 0
    layer.params["b"][3:6] = -1e3  # the f block: σ(-1000) = 0
    x = np.random.default_rng(0).standard_normal((5, 4, 2))
    changed = x.copy()
    changed[:, :3] = 7.0  # every step but the last
    np.testing.assert_allclose(layer.forward(changed), layer.forward(x), rtol=1e-12)


@pytest.mark.parametrize(
    "build, error, message",
    [
        (lambda kind: kind(0, 4), ArgumentError, "input_size"),
        (lambda kind: kind(4, -1), ArgumentError, "hidden_size"),
        (lambda kind: kind(4.0, 4), ArgumentTypeError, "input_size"),
        (lambda kind: kind(4, 4, return_sequences="yes"), ArgumentTypeError, "return_sequences"),
    ],
)
@pytest.mark.parametrize("kind", KINDS.values())
def test_constructors_reject_bad_arguments(kind, build, error, message):
    """Constructors name the bad argument and the value received."""
    with pytest.raises(error, match=message):
        build(kind)


@pytest.mark.parametrize(
    "x, message",
    [
        (np.zeros((5, 28), np.float32), r"Add a time axis: x\[:, None\]"),
        (np.zeros((5, 1, 28, 28), np.float32), r"Reshape\(\(28, 28\)\)"),
        (np.zeros((5, 28, 10), np.float32), "input_size=10"),
        (np.zeros((5, 0, 28), np.float32), "at least one time step"),
        (np.zeros((5, 28, 28), np.int64), "floating-point"),
    ],
)
@pytest.mark.parametrize("kind", KINDS.values())
def test_forward_rejects_wrong_inputs_with_a_fix(kind, x, message):
    """A wrong input shape or dtype raises a tinynet error that names the layer and the fix."""
    with pytest.raises((ShapeError, ArgumentTypeError), match=message):
        kind(28, 8).forward(x)


def test_models_with_recurrent_layers_save_and_load(tmp_path):
    """A model file keeps W_x, W_h and b under their state names and return_sequences in the
    architecture: the loaded model computes exactly what was saved."""
    model = tinynet.Sequential([L.Reshape((4, 6)), L.LSTM(6, 5, return_sequences=True, rng=0), L.RNN(5, 3, rng=1),
                                L.Dense(3, 2, rng=2)])
    assert sorted(model.state_dict()) == ["1.W_h", "1.W_x", "1.b", "2.W_h", "2.W_x", "2.b", "3.W", "3.b"]
    model.save(tmp_path / "recurrent.npz")
    loaded = tinynet.load_model(tmp_path / "recurrent.npz")
    assert [repr(layer) for layer in loaded.layers] == [repr(layer) for layer in model.layers]
    assert loaded.layers[1].return_sequences and not loaded.layers[2].return_sequences
    x = np.random.default_rng(0).random((3, 24), dtype=np.float32)
    np.testing.assert_array_equal(loaded.forward(x), model.forward(x))


@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_hidden_grads_are_the_gradient_at_every_state(kind, return_sequences):
    """hidden_grads[:, t] is dL/dh_t (both paths), as torch autograd gives it for a cell stepped by hand."""
    torch = pytest.importorskip("torch", reason="the comparison with PyTorch needs torch: pip install torch")
    layer = KINDS[kind](3, 4, return_sequences=return_sequences, rng=0).astype(np.float64)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 5, 3))
    out = layer.forward(x, training=True)
    grad_out = rng.standard_normal(out.shape)
    layer.backward(grad_out)
    cell = (torch.nn.RNNCell if kind == "RNN" else torch.nn.LSTMCell)(3, 4).double()
    with torch.no_grad():
        cell.weight_ih.copy_(torch.from_numpy(layer.params["W_x"].T.copy()))
        cell.weight_hh.copy_(torch.from_numpy(layer.params["W_h"].T.copy()))
        cell.bias_ih.copy_(torch.from_numpy(layer.params["b"]))
        cell.bias_hh.zero_()
    h = c = torch.zeros(2, 4, dtype=torch.float64)
    states = []
    for t in range(5):
        if kind == "RNN":
            h = cell(torch.from_numpy(x[:, t]), h)
        else:
            h, c = cell(torch.from_numpy(x[:, t]), (h, c))
        h.retain_grad()
        states.append(h)
    outputs = torch.stack(states, dim=1) if return_sequences else states[-1]
    (outputs * torch.from_numpy(grad_out)).sum().backward()
    expected = np.stack([state.grad.numpy() for state in states], axis=1)
    np.testing.assert_allclose(layer.hidden_grads, expected, rtol=1e-9, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(steps=st.integers(1, 6), batch=st.integers(1, 9), hidden=st.integers(1, 5), seed=st.integers(0, 2**16),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_the_last_state_loop_gives_the_full_loops_last_state_exactly(steps, batch, hidden, seed, dtype):
    """lstm_last_state keeps only h and c, yet its h_T is lstm_loop's h[-1] to the bit."""
    from tinynet.layers.recurrent import lstm_last_state, lstm_loop

    rng = np.random.default_rng(seed)
    x_part = rng.standard_normal((steps, batch, 4 * hidden)).astype(dtype)
    W_h = rng.standard_normal((hidden, 4 * hidden)).astype(dtype)
    last = lstm_last_state(x_part, W_h)
    assert last.shape == (batch, hidden) and last.dtype == dtype
    np.testing.assert_array_equal(last, lstm_loop(x_part, W_h)[0][-1])


def _engine_and_layer_loops(steps, batch, hidden, seed, dtype):
    """The engine's three loops over time and the layer's, on the same drawn values: pairs (engine's, layer's)."""
    from tinynet.engine.recurrent import backward_through_time, forward_last_state, forward_states
    from tinynet.layers.recurrent import input_share, lstm_backward, lstm_last_state, lstm_loop, recurrent_grads

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, steps, 3)).astype(dtype)
    W_x, W_h, b = (rng.standard_normal(shape).astype(dtype) for shape in ((3, 4 * hidden), (hidden, 4 * hidden),
                                                                          (4 * hidden,)))
    grad_states = rng.standard_normal((steps, batch, hidden)).astype(dtype)
    x_part = input_share(x, W_x, b)
    h, c, gates = lstm_loop(x_part, W_h)
    grad_pre, hidden_grads = backward_through_time(grad_states, c, gates, W_h)
    grad_x, grads = recurrent_grads(x, h, grad_pre, W_x)
    expected_x, expected_grads, expected_hidden = lstm_backward(grad_states, x, h, c, gates, W_x, W_h)
    return [
        *zip(forward_states(x_part, W_h), (h, c, gates), strict=True),
        (forward_last_state(x_part, W_h), lstm_last_state(x_part, W_h)),
        (grad_x, expected_x), (hidden_grads.swapaxes(0, 1), expected_hidden),
        *((grads[name], expected_grads[name]) for name in ("W_x", "W_h", "b")),
    ]


@settings(max_examples=25, deadline=None)
@given(steps=st.integers(1, 6), batch=st.integers(1, 9), hidden=st.integers(1, 5), seed=st.integers(0, 2**16),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_the_engines_loops_are_the_layers_loops_to_the_bit_with_the_twin_cells(steps, batch, hidden, seed, dtype):
    """The engine's loops over time write each step in place; with the kernels' readable twins (the layer's
    cell and its backward) every state, gate, gradient and last state is the layer's loops' to the bit."""
    from tinynet import kernels

    with kernels.use_backend("reference"):
        pairs = _engine_and_layer_loops(steps, batch, hidden, seed, dtype)
    for got, expected in pairs:
        assert got.shape == expected.shape and got.dtype == dtype
        np.testing.assert_array_equal(got, expected)


@pytest.mark.skipif(tinynet.kernels._load_jitted() is None, reason="numba's JIT is off: no compiled cell to compare")
@settings(max_examples=25, deadline=None)
@given(steps=st.integers(1, 6), batch=st.integers(1, 9), hidden=st.integers(1, 17), seed=st.integers(0, 2**16))
def test_the_engines_loops_with_the_compiled_cells_agree_with_the_layers_loops(steps, batch, hidden, seed):
    """With the compiled cells (float32), the engine's loops give the layer's loops' values to float32 rounding."""
    from tinynet import kernels

    with kernels.use_backend("numba"):
        pairs = _engine_and_layer_loops(steps, batch, hidden, seed, np.float32)
    for got, expected in pairs:
        assert got.shape == expected.shape and got.dtype == np.float32 and np.isfinite(expected).all()
        np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-5 * max(1.0, np.abs(expected).max()))


def test_a_prediction_of_the_last_state_keeps_nothing_and_equals_the_layer():
    """The engine predicts h_T without keeping any step's states (nothing saved for a backward), and gives what
    the layer's own forward gives."""
    model = tinynet.Sequential([L.LSTM(5, 4, rng=0), L.Dense(4, 3, rng=1)])
    x = np.random.default_rng(0).standard_normal((20, 6, 5)).astype(np.float32)
    with model.layer_by_layer():
        expected = model.forward(x)
    np.testing.assert_allclose(model.forward(x), expected, rtol=1e-5, atol=1e-6)
    step = next(step for step in model.inference_plan() if "LSTM" in step.describe())
    assert step._saved is None
