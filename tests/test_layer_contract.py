"""One contract, checked over every layer: gradients, dtypes, no mutation, clear misuse errors."""

import copy

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinynet
from tests.strategies import LAYER_KINDS, away_from_kinks, layer_and_input_shape
from tinynet import layers as L

seeds = st.integers(0, 2**16)


def _input(shape, dtype, seed):
    return away_from_kinks(np.random.default_rng(seed).standard_normal(shape)).astype(dtype)


@pytest.mark.parametrize("kind", LAYER_KINDS)
@given(data=st.data(), seed=seeds)
def test_gradients_match_finite_differences(kind, data, seed):
    """Every layer's backward agrees with central differences in float64 (relative error < 1e-6)."""
    layer, shape = data.draw(layer_and_input_shape(kind))
    # G from another stream than x: drawn from the same seed, G would be x itself, which
    # BatchNorm maps to a gradient of zero (it removes every affine function of its input).
    result = tinynet.gradcheck(layer, _input(shape, np.float64, seed), seed=seed + 1)
    assert result.passed(1e-6), f"{layer!r} on {shape}:\n{result}"


@pytest.mark.parametrize("kind", LAYER_KINDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(data=st.data(), seed=seeds)
def test_output_and_gradients_keep_the_dtype(kind, dtype, data, seed):
    """Forward output, input gradient and parameter gradients are in the model's dtype."""
    layer, shape = data.draw(layer_and_input_shape(kind))
    layer.astype(dtype)
    y = layer.forward(_input(shape, dtype, seed), training=True)
    assert y.dtype == dtype
    assert layer.backward(np.ones_like(y)).dtype == dtype
    assert all(g.dtype == dtype for g in layer.grads.values())
    assert set(layer.grads) == set(layer.params)
    assert all(layer.grads[k].shape == layer.params[k].shape for k in layer.params)


@pytest.mark.parametrize("kind", LAYER_KINDS)
@given(data=st.data(), seed=seeds)
def test_forward_and_backward_leave_their_arguments_alone(kind, data, seed):
    """Neither forward nor backward writes into the arrays it is given, nor into params."""
    layer, shape = data.draw(layer_and_input_shape(kind))
    x = _input(shape, np.float32, seed)
    x_before, params_before = x.copy(), copy.deepcopy(layer.params)
    y = layer.forward(x, training=True)
    grad = np.random.default_rng(seed).standard_normal(y.shape).astype(np.float32)
    grad_before = grad.copy()
    layer.backward(grad)
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(grad, grad_before)
    for key, value in params_before.items():
        np.testing.assert_array_equal(layer.params[key], value)


@pytest.mark.parametrize("kind", LAYER_KINDS)
@given(data=st.data())
def test_backward_without_a_training_forward_is_a_clear_error(kind, data):
    """backward before forward(training=True), or after an inference forward, says what to do."""
    layer, shape = data.draw(layer_and_input_shape(kind))
    with pytest.raises(tinynet.NotTrainedForwardError, match="forward\\(x, training=True\\)"):
        layer.backward(np.ones(shape, np.float32))
    layer.forward(_input(shape, np.float32, 0), training=False)
    with pytest.raises(tinynet.NotTrainedForwardError):
        layer.backward(np.ones(shape, np.float32))


def _built_from_config(name, config, depth=0):
    """A fresh layer from its class name and get_config(), as a model file rebuilds it (layers of layers too)."""
    kind = getattr(L, name)
    if hasattr(kind, "from_config"):
        return kind.from_config(
            config, lambda entry, position, level: _built_from_config(entry["class"], entry["config"], level), depth)
    return kind(**config)


@pytest.mark.parametrize("kind", LAYER_KINDS)
@given(data=st.data(), seed=st.integers(0, 2**16))
def test_state_dict_round_trips_into_a_fresh_layer(kind, data, seed):
    """state_dict names params and buffers; load_state_dict into another layer makes it compute the same."""
    layer, shape = data.draw(layer_and_input_shape(kind))
    state = layer.state_dict()
    assert set(state) == set(layer.params) | set(layer.buffers)
    other = _built_from_config(type(layer).__name__, layer.get_config())
    for array in other.params.values():
        array[...] = 0.5  # anything but the first layer's values
    other.load_state_dict({key: value.astype(np.float64) for key, value in state.items()})  # converted on the way
    x = _input(shape, np.float32, seed)
    np.testing.assert_array_equal(other.forward(x), layer.forward(x))
    assert all(other.state_dict()[key].dtype == np.float32 for key in state)
    if state:
        wrong = {**state, next(iter(state)): np.zeros((7, 7, 7), np.float32)}
        before = {key: value.copy() for key, value in other.state_dict().items()}
        with pytest.raises(ValueError, match="shape"):
            other.load_state_dict(wrong)
        assert all(np.array_equal(other.state_dict()[key], before[key]) for key in before)  # nothing changed
        with pytest.raises(ValueError, match="missing"):
            other.load_state_dict({})


@pytest.mark.parametrize("kind", LAYER_KINDS)
@given(data=st.data())
def test_an_empty_batch_gives_an_empty_output_and_gradient(kind, data):
    """N = 0 flows through forward and backward with the right trailing shape, in every layer."""
    layer, shape = data.draw(layer_and_input_shape(kind))
    full = layer.forward(_input(shape, np.float32, 0))
    empty = np.zeros((0, *shape[1:]), np.float32)
    if kind == "Softmax" and layer.axis in (0, -len(shape)):
        return  # a softmax across the batch axis of an empty batch has nothing to normalise
    for training in (False, True):
        if kind.startswith("BatchNorm") and training:  # no variance to estimate: a clear error instead
            with pytest.raises(ValueError, match="more than one value"):
                layer.forward(empty, training=True)
            return
        out = layer.forward(empty, training=training)
        assert out.shape == (0, *full.shape[1:]) and out.dtype == np.float32
    assert layer.backward(np.zeros(out.shape, np.float32)).shape == empty.shape


def test_writing_into_params_changes_the_layer():
    """params are the arrays the layer computes with: an in-place write takes effect."""
    dense = L.Dense(2, 1, rng=0)
    dense.params["W"][...] = [[1.0], [2.0]]
    dense.params["b"][...] = 0.5
    np.testing.assert_allclose(dense.forward(np.array([[1.0, 1.0]], np.float32)), [[3.5]])


def test_gradcheck_catches_a_wrong_backward():
    """A layer whose backward is off by a factor fails gradcheck: the check can fail."""

    class WrongReLU(L.ReLU):
        def backward(self, grad_out):
            return 1.01 * super().backward(grad_out)

    x = away_from_kinks(np.random.default_rng(0).standard_normal((3, 4)))
    assert not tinynet.gradcheck(WrongReLU(), x).passed(1e-6)
    assert tinynet.gradcheck(L.ReLU(), x).passed(1e-6)


def test_gradcheck_leaves_the_layer_unchanged():
    """gradcheck works on a float64 copy; the layer keeps its dtype and weights."""
    dense = L.Dense(3, 2, rng=0)
    before = dense.params["W"].copy()
    tinynet.gradcheck(dense, np.ones((2, 3)))
    assert dense.params["W"].dtype == np.float32
    np.testing.assert_array_equal(dense.params["W"], before)


def test_sigmoid_is_stable_for_large_inputs():
    """Sigmoid gives finite 0 and 1 for |x| = 1e4, in float32, without overflow warnings."""
    y = L.Sigmoid().forward(np.array([-1e4, 0.0, 1e4], np.float32))
    np.testing.assert_array_equal(y, np.array([0.0, 0.5, 1.0], np.float32))


@given(st.integers(1, 5), st.integers(1, 6), seeds, st.floats(-50, 50))
def test_softmax_rows_sum_to_one_and_ignore_shifts(n, k, seed, shift):
    """Softmax rows are probabilities, and adding a constant to a row changes nothing."""
    x = np.random.default_rng(seed).standard_normal((n, k))
    y = L.Softmax().forward(x)
    np.testing.assert_allclose(y.sum(axis=-1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(L.Softmax().forward(x + shift), y, rtol=1e-9, atol=1e-15)


def test_softmax_backward_is_the_full_jacobian_product():
    """Softmax backward equals J^T g with the full Jacobian, not just its diagonal."""
    x = np.array([[0.2, -1.0, 0.5]])
    g = np.array([[1.0, -2.0, 0.3]])
    layer = L.Softmax()
    y = layer.forward(x, training=True)[0]
    jacobian = np.diag(y) - np.outer(y, y)
    np.testing.assert_allclose(layer.backward(g)[0], jacobian.T @ g[0], rtol=1e-12)


def test_dropout_is_seeded_and_inverted():
    """Dropout keeps about 1-rate of inputs scaled by 1/(1-rate); same seed, same mask."""
    x = np.ones((200, 50), np.float32)
    a = L.Dropout(0.3, rng=7).forward(x, training=True)
    b = L.Dropout(0.3, rng=7).forward(x, training=True)
    np.testing.assert_array_equal(a, b)
    assert set(np.unique(a)) <= {0.0, np.float32(1 / 0.7)}
    assert abs((a > 0).mean() - 0.7) < 0.02
    assert abs(a.mean() - 1.0) < 0.03


def test_reshape_keeps_the_values_in_c_order():
    """Reshape((28, 28)) of an MNIST image gives its rows in order, as numpy's reshape; -1 is worked out."""
    x = np.arange(2 * 784, dtype=np.float32).reshape(2, 1, 28, 28)
    np.testing.assert_array_equal(L.Reshape((28, 28)).forward(x), x[:, 0])
    assert L.Reshape((-1, 7)).forward(x).shape == (2, 112, 7)
    assert L.Reshape(784).forward(x).shape == (2, 784)


def test_conv2d_matches_a_direct_loop():
    """Conv2D with stride and padding equals the definition of cross-correlation, summed by loops."""
    rng = np.random.default_rng(0)
    conv = L.Conv2D(2, 3, (3, 2), stride=(2, 1), padding=(1, 0), rng=0).astype(np.float64)
    conv.params["b"][...] = rng.standard_normal(3)
    x = rng.standard_normal((2, 2, 5, 4))
    y = conv.forward(x)
    xpad = np.pad(x, ((0, 0), (0, 0), (1, 1), (0, 0)))
    expected = np.zeros_like(y)
    for n in range(2):
        for f in range(3):
            for i in range(y.shape[2]):
                for j in range(y.shape[3]):
                    window = xpad[n, :, 2 * i : 2 * i + 3, j : j + 2]
                    expected[n, f, i, j] = np.sum(window * conv.params["W"][f]) + conv.params["b"][f]
    np.testing.assert_allclose(y, expected, rtol=1e-12)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: L.Dense(0, 3), "in_features"),
        (lambda: L.Conv2D(1, 8, 0), "kernel_size"),
        (lambda: L.Conv2D(1, 8, 3, stride=0), "stride"),
        (lambda: L.Conv2D(1, 8, 3, padding=-1), "padding"),
        (lambda: L.Conv2D(1, 8, 3, padding=3), "padding smaller than kernel_size"),
        (lambda: L.Conv2D(1, 8, (3, 1), padding=(1, 1)), "padding smaller than kernel_size"),
        (lambda: L.MaxPool2D(0), "pool_size"),
        (lambda: L.Dropout(1.0), "rate"),
        (lambda: L.Dropout(-0.1), "rate"),
        (lambda: L.Dense(3, 3, init="zeros"), "init"),
        (lambda: L.Reshape("28x28"), r"tuple of ints.*Reshape\(\(28, 28\)\)"),
        (lambda: L.Reshape((28, 0)), "positive sizes"),
        (lambda: L.Reshape((-1, -1)), "at most one -1"),
        (lambda: L.MultiHeadAttention(64, 5), r"num_heads must divide it.*embed_dim=65"),
        (lambda: L.MultiHeadAttention(64, 0), "num_heads"),
        (lambda: L.MultiHeadAttention(64, 4, causal="yes"), "causal to be True or False"),
        (lambda: L.LayerNorm(0), "num_features"),
        (lambda: L.LayerNorm(8, eps=0), "eps > 0"),
        (lambda: L.GELU("erf"), "'none'.*'tanh'"),
        (lambda: L.Patches(0), "patch_size"),
        (lambda: L.PositionalEmbedding(16, 0), "features"),
    ],
)
def test_constructors_reject_bad_arguments(build, message):
    """Constructors name the bad argument and the value received."""
    with pytest.raises((ValueError, TypeError), match=message):
        build()


@pytest.mark.parametrize(
    "layer, x, message",
    [
        (L.Conv2D(1, 4, 3), np.zeros((28, 28), np.float32), r"x\[None, None\]"),
        (L.Conv2D(1, 4, 3), np.zeros((5, 28, 28), np.float32), r"x\[:, None\]"),
        (L.Conv2D(3, 4, 3), np.zeros((5, 1, 28, 28), np.float32), "3 input channel"),
        (L.Conv2D(1, 4, 5), np.zeros((5, 1, 3, 3), np.float32), "larger than the padded input"),
        (L.Dense(784, 10), np.zeros((5, 1, 28, 28), np.float32), r"\(N, in_features\)"),
        (L.Dense(784, 10), np.zeros((5, 100), np.float32), "in_features=100"),
        (L.Dense(784, 10), np.zeros((5, 1, 28, 28), np.float32), r"Flatten\(\) layer"),
        (L.MaxPool2D(4), np.zeros((1, 1, 3, 3), np.float32), "larger than"),
        (L.ReLU(), np.zeros((2, 2), np.int64), "floating-point"),
        (L.Reshape((28, 28)), np.zeros((5, 1, 28, 27), np.float32), r"756 values and \(28, 28\) holds 784"),
        (L.Reshape((-1, 5)), np.zeros((5, 12), np.float32), "a multiple of 5"),
        (L.Dense(28, 10), np.zeros((5, 28, 27), np.float32), r"in_features=27 to apply the layer to the last axis"),
        (L.MultiHeadAttention(64, 4), np.zeros((5, 16, 49), np.float32), r"embed_dim=49.*Dense\(49, 64\)"),
        (L.MultiHeadAttention(64, 4), np.zeros((5, 64), np.float32), r"\(N, T, embed_dim\)"),
        (L.LayerNorm(64), np.zeros((5, 16, 32), np.float32), r"LayerNorm\(32\)"),
        (L.Patches(7), np.zeros((5, 1, 28, 30), np.float32), r"multiples of 7.*28x35 or 28x28.*\[2\]"),
        (L.Patches(7), np.zeros((5, 28, 28), np.float32), r"x\[:, None\]"),
        (L.PositionalEmbedding(16, 64), np.zeros((5, 49, 64), np.float32), r"PositionalEmbedding\(49, 64\)"),
        (L.GlobalAvgPool1D(), np.zeros((5, 64), np.float32), r"\(N, T, F\)"),
    ],
)
def test_forward_rejects_wrong_inputs_with_a_fix(layer, x, message):
    """A wrong input shape or dtype raises an error that names the layer and the fix."""
    with pytest.raises((ValueError, TypeError), match=message):
        layer.forward(x)


@given(st.integers(1, 50), st.integers(1, 70), st.integers(0, 2**16))
def test_softmax_row_reductions_equal_numpy(n, k, seed):
    """The column-by-column row max and sum used by softmax equal NumPy's own reductions."""
    from tinynet.layers.softmax import _reduce_rows

    x = np.random.default_rng(seed).standard_normal((n, k)).astype(np.float32)
    np.testing.assert_array_equal(_reduce_rows(np.maximum, x, -1), x.max(axis=-1, keepdims=True))
    np.testing.assert_allclose(_reduce_rows(np.add, x, 1), x.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-5)
