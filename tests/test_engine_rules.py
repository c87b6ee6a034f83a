"""Each rewrite rule of the engine, on its own, against the layers it replaces, on drawn geometries.

For every rule of the training and the inference table there is a small model whose plan
applies it (the test checks that it did), built on a drawn geometry: odd and even sizes,
strides different from the window, padding, batch 1. The plan's results must be the layers'
one by one, in float64, on both kernel sets: a training forward and backward (outputs,
input and parameter gradients, running statistics) for the training rules, a forward with
trained-looking statistics for the inference rules.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_engine import _assert_same, _run, backend  # noqa: F401  (backend is a fixture)

import tinynet
from tinynet.engine import INFERENCE_RULES, TRAINING_RULES
from tinynet.engine.conv import in_pooling_windows
from tinynet.engine.rules import LEAVE_OUT
from tinynet.engine.steps import ResidualStep
from tinynet.layers import (
    GELU,
    LSTM,
    AvgPool2D,
    BatchNorm1D,
    BatchNorm2D,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    LayerNorm,
    LeakyReLU,
    MaxPool2D,
    MultiHeadAttention,
    ReLU,
    Residual,
    Sigmoid,
    Softmax,
    Tanh,
)
from tinynet.layers.conv import output_size


@st.composite
def geometries(draw):
    """A batch, channels, image size, a convolution and a pooling window, each part drawn on its own."""
    kernel = draw(st.integers(1, 3))
    return {
        "batch": draw(st.sampled_from([1, 2, 3])),
        "channels": draw(st.integers(1, 3)), "filters": draw(st.integers(1, 4)),
        "height": draw(st.integers(5, 11)), "width": draw(st.integers(5, 11)),
        "kernel": kernel, "stride": draw(st.integers(1, 2)), "padding": draw(st.integers(0, kernel - 1)),
        "window": draw(st.integers(1, 3)), "pool_stride": draw(st.integers(1, 3)),
        "seed": draw(st.integers(0, 2**16)),
    }


def _conv(g, channels=None, filters=None):
    return Conv2D(channels or g["channels"], filters or g["filters"], g["kernel"], stride=g["stride"],
                  padding=g["padding"], rng=g["seed"])


def _conv_output(g):
    return (output_size(g["height"], g["kernel"], g["stride"], g["padding"]),
            output_size(g["width"], g["kernel"], g["stride"], g["padding"]))


def _pool(g, kind=MaxPool2D):
    return kind(g["window"], stride=g["pool_stride"])


def _images(g):
    return np.random.default_rng(g["seed"]).standard_normal((g["batch"], g["channels"], g["height"], g["width"]))


def _fits_pool(g, size):
    assume(min(size) >= g["window"])


# Each case: geometry -> (layers, input). The rule named by the key must appear in the plan.
def _conv_relu_pool(g, norm=False, training=False):
    _fits_pool(g, _conv_output(g))
    if training:  # the MNIST first layer's geometry has a training rule of its own
        assume(not in_pooling_windows(_conv(g), _pool(g)))
    return [_conv(g), ReLU(), _pool(g), *([BatchNorm2D(g["filters"])] if norm else [])], _images(g)


def _one_channel_conv_relu_pool(g):
    """The MNIST first layer's geometry (one channel, 3x3, stride 1, no padding; pooling 2x2, stride 2), any size:
    odd sizes leave a last row or column that no pooling window reads."""
    g = {**g, "channels": 1, "kernel": 3, "stride": 1, "padding": 0, "window": 2, "pool_stride": 2}
    return [_conv(g), ReLU(), _pool(g)], _images(g)


def _conv_alone(g):
    return [_conv(g)], _images(g)


def _norm_relu_pool(g):
    _fits_pool(g, (g["height"], g["width"]))
    return [BatchNorm2D(g["channels"]), ReLU(), _pool(g)], _images(g)


def _pool_alone(kind):
    def case(g):
        _fits_pool(g, (g["height"], g["width"]))
        return [_pool(g, kind)], _images(g)
    return case


def _norm_alone(g):
    return [BatchNorm2D(g["channels"])], _images(g)


def _flatten_after_images(g):
    _fits_pool(g, (g["height"], g["width"]))
    return [_pool(g), Flatten()], _images(g)


def _flatten_dense_from_images(outputs, norm=False, relu=False):
    """Flatten and a Dense after a channels-last step: with fewer outputs than images the Dense's weights are put in
    the activations' order (``outputs(g) == 1``), with more the activations in the weights' (``batch + 3``)."""
    def case(g):
        features = g["channels"] * g["height"] * g["width"]
        m = outputs(g)
        layers = [BatchNorm2D(g["channels"]), Flatten(), Dense(features, m, rng=g["seed"])]
        layers += [BatchNorm1D(m)] if norm else []
        layers += [ReLU()] if relu else []
        return layers, _images(g)
    return case


def _flatten_dense(g):
    features = g["channels"] * g["height"] * g["width"]
    return [Flatten(), Dense(features, g["filters"], rng=g["seed"])], _images(g)


def _dense(g, norm=False, relu=False):
    rows = np.random.default_rng(g["seed"]).standard_normal((g["batch"] + 1, g["height"]))
    layers = [Dense(g["height"], g["width"], rng=g["seed"])]
    layers += [BatchNorm1D(g["width"])] if norm else []
    layers += [ReLU()] if relu else []
    return layers, rows


def _residual(g):
    """A Residual in the user's layout (first) and one inside a channels-last run, with a layer run as written."""
    c, k = g["channels"], 2 * (g["kernel"] // 2) + 1  # an odd kernel keeps the size with padding k // 2
    return [Residual(Conv2D(c, c, k, padding=k // 2, rng=g["seed"]), BatchNorm2D(c), ReLU()),
            BatchNorm2D(c),
            Residual(Conv2D(c, c, 1, rng=g["seed"] + 1), Softmax(axis=1), Residual(Tanh()))], _images(g)


def _lstm(return_sequences):
    """An LSTM on sequences of ``window`` steps (1 to 3) of ``channels`` features, batch 1 to 3."""
    def case(g):
        x = np.random.default_rng(g["seed"]).standard_normal((g["batch"], g["window"], g["channels"]))
        return [LSTM(g["channels"], g["filters"], return_sequences, rng=g["seed"])], x
    return case


def _layer_norm(g):
    """A LayerNorm over the last axis of sequences and of rows, a Dense between."""
    x = np.random.default_rng(g["seed"]).standard_normal((g["batch"], g["window"], g["channels"])) * 3 + 1
    return [LayerNorm(g["channels"]), Dense(g["channels"], g["filters"], rng=g["seed"]), LayerNorm(g["filters"])], x


def _attention(causal):
    """Self-attention on sequences of ``height`` positions (5 to 11), ``channels`` heads of ``filters`` features."""
    def case(g):
        embed = g["channels"] * g["filters"]
        x = np.random.default_rng(g["seed"]).standard_normal((g["batch"], g["height"], embed))
        return [MultiHeadAttention(embed, g["channels"], causal, rng=g["seed"]), LayerNorm(embed),
                MultiHeadAttention(embed, 1, rng=g["seed"] + 1)], x
    return case


def _gelu(g):
    """GELU on sequences and after a convolution (channels last there); its tanh form runs as written."""
    x = np.random.default_rng(g["seed"]).standard_normal((g["batch"], g["window"], g["channels"])) * 2
    return [GELU(), Dense(g["channels"], g["filters"], rng=g["seed"]), GELU(approximate="tanh"), GELU()], x


def _gelu_after_conv(g):
    return [_conv(g), GELU(), BatchNorm2D(g["filters"])], _images(g)


def _elementwise(g):
    return [Tanh(), BatchNorm2D(g["channels"]), Sigmoid(), LeakyReLU(0.2)], _images(g)


def _as_written(g):
    return [Softmax(axis=1), Flatten(), Dropout(0.4, rng=g["seed"])], _images(g)


def _conv_epilogue(norm, relu):
    def case(g):
        return [_conv(g), *([BatchNorm2D(g["filters"])] if norm else []), *([ReLU()] if relu else [])], _images(g)
    return case


def _more_filters_than_outputs(g):
    """More filters than output rows in the batch (one image through the MNIST CNN's third convolution: 9 rows,
    128 filters): the windows are unfolded in the filters' own order, padding and strides included."""
    out_h, out_w = _conv_output(g)
    filters = g["batch"] * out_h * out_w + 1
    return [_conv(g, filters=filters), BatchNorm2D(filters), ReLU()], _images(g)


def _dropout_between(g):
    """Dropout left out at inference: the Conv2D, ReLU and MaxPool2D around it fuse."""
    _fits_pool(g, _conv_output(g))
    return [_conv(g), Dropout(0.5, rng=0), ReLU(), _pool(g)], _images(g)


TRAINING_CASES = {
    "Conv2D 3x3 of one channel + ReLU + MaxPool2D 2x2 in the pooling windows": [_one_channel_conv_relu_pool],
    "Conv2D + ReLU + MaxPool2D on a chunk of images at a time": [lambda g: _conv_relu_pool(g, training=True)],
    "Conv2D, channels last, chunked": [_conv_alone],
    "ReLU + MaxPool2D in one pass, channels last": [_norm_relu_pool],
    "MaxPool2D, channels last": [_pool_alone(MaxPool2D)],
    "AvgPool2D, channels last": [_pool_alone(AvgPool2D)],
    "BatchNorm2D over channels-last rows": [_norm_alone],
    "Flatten of channels-last activations, in NCHW order": [_flatten_after_images],
    "Dense + ReLU: the bias and the ReLU in the product's epilogue": [lambda g: _dense(g, relu=True)],
    "Dense that can skip its input gradient": [_dense],
    "LSTM: each step's gates and cell state in one compiled pass": [_lstm(False), _lstm(True)],
    "LayerNorm: each row's statistics in one compiled visit": [_layer_norm],
    "MultiHeadAttention: Q | K | V in one product, the softmax compiled": [_attention(False), _attention(True)],
    "GELU: its value and slope in one compiled pass": [_gelu, _gelu_after_conv],
    "a Residual runs its inner layers as a plan of their own, in the layout around it": [_residual],
    "an element-wise layer runs as written in any layout": [_elementwise],
    "any layer runs as written": [_as_written],
}

INFERENCE_CASES = {
    "Dropout is the identity at inference": [_dropout_between],
    "Conv2D + ReLU + MaxPool2D (+ BatchNorm2D) pooled as computed": [_conv_relu_pool,
                                                                     lambda g: _conv_relu_pool(g, norm=True)],
    "Conv2D (+ BatchNorm2D) (+ ReLU) in the product's epilogue": [
        *(_conv_epilogue(norm, relu) for norm in (False, True) for relu in (False, True)), _more_filters_than_outputs],
    "ReLU + MaxPool2D in one pass, channels last": [_norm_relu_pool],
    "MaxPool2D, channels last": [_pool_alone(MaxPool2D)],
    "AvgPool2D, channels last": [_pool_alone(AvgPool2D)],
    "BatchNorm2D over channels-last rows": [_norm_alone],
    "Flatten + Dense (+ BatchNorm1D) (+ ReLU) from channels-last: the weights' rows in the activations' order": [
        _flatten_dense_from_images(lambda g: 1), _flatten_dense_from_images(lambda g: g["batch"] + 3),
        _flatten_dense_from_images(lambda g: 1, norm=True, relu=True),
        _flatten_dense_from_images(lambda g: g["batch"] + 3, norm=True, relu=True)],
    "Flatten of channels-last activations, in NCHW order": [_flatten_after_images],
    "Flatten as a reshape": [_flatten_dense],
    "Dense (+ BatchNorm1D) (+ ReLU) in the product's epilogue": [
        lambda g, norm=norm, relu=relu: _dense(g, norm, relu) for norm in (False, True) for relu in (False, True)],
    "LSTM: each step's gates and cell state in one compiled pass": [_lstm(False), _lstm(True)],
    "LayerNorm: each row's statistics in one compiled visit": [_layer_norm],
    "MultiHeadAttention: Q | K | V in one product, the softmax compiled": [_attention(False), _attention(True)],
    "GELU: its value and slope in one compiled pass": [_gelu, _gelu_after_conv],
    "a Residual runs its inner layers as a plan of their own, in the layout around it": [_residual],
    "an element-wise layer runs as written in any layout": [_elementwise],
    "any layer runs as written": [_as_written],
}


def _steps(plan):
    """Every step of ``plan``, the inner plans of Residual steps included."""
    for step in plan:
        yield step
        if isinstance(step, ResidualStep):
            yield from _steps(step.inner)


def _applied(plan, layers):
    """The names of the rules applied in ``plan``; a rule that leaves layers out shows as the positions no step runs."""
    names = {step.rule.name for step in _steps(plan) if step.rule is not None}
    run = {position for step in plan for position in step.positions}
    names |= {rule.name for rule in INFERENCE_RULES if rule.build is LEAVE_OUT
              for position, layer in enumerate(layers) if position not in run and rule.match([layer], "NCHW")}
    return names


def _every_layer(layers):
    for layer in layers:
        yield layer
        yield from _every_layer(getattr(layer, "layers", ()))


def _trained_statistics(model, seed):
    """BatchNorm scales, shifts and running statistics far from their initial 1s and 0s, inner layers too."""
    rng = np.random.default_rng(seed)
    for layer in _every_layer(model.layers):
        if "running_var" in layer.buffers:
            layer.params["gamma"][...] = rng.standard_normal(layer.num_features)
            layer.params["beta"][...] = rng.standard_normal(layer.num_features)
            layer.buffers["running_mean"][...] = rng.standard_normal(layer.num_features)
            layer.buffers["running_var"][...] = rng.random(layer.num_features) + 0.1


def test_every_rule_has_its_case_and_every_case_its_rule():
    """A rule added to a table without a case here fails this test (and a case whose rule was renamed)."""
    assert {rule.name for rule in TRAINING_RULES} == set(TRAINING_CASES)
    assert {rule.name for rule in INFERENCE_RULES} == set(INFERENCE_CASES)


_RULE_SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.mark.parametrize("name, case", [(name, case) for name, cases in TRAINING_CASES.items() for case in cases],
                         ids=lambda value: value if isinstance(value, str) else "")
@_RULE_SETTINGS
@given(geometry=geometries())
def test_a_training_rule_computes_what_its_layers_compute(name, case, geometry, backend):  # noqa: F811
    layers, x = case(geometry)
    model = tinynet.Sequential(layers).astype(np.float64)
    assert name in _applied(model.execution_plan(), layers)
    grad = np.random.default_rng(geometry["seed"] + 1).standard_normal(model.forward(x).shape)
    _assert_same(_run(model, x, grad, by_layer=False), _run(model, x, grad, by_layer=True), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("return_sequences", [False, True])
@_RULE_SETTINGS
@given(batch=st.one_of(st.integers(1, 4), st.integers(8, 20)), steps=st.integers(1, 6), features=st.integers(1, 5),
       hidden=st.integers(1, 9), seed=st.integers(0, 2**16))
def test_the_lstm_step_agrees_with_the_layer_in_float32(return_sequences, batch, steps, features, hidden, seed,
                                                         backend):  # noqa: F811
    """In float32 (where the compiled cells run) the LSTM step's outputs and gradients are the layer's within
    rounding; the state gradients the layer keeps (hidden_grads) too. Batches of 1-4 run the compiled loop,
    8-20 the loops that write each step in place (in two parts from 16 with two BLAS threads); the prediction
    (of h_T alone, without return_sequences) is the layer's too."""
    model = tinynet.Sequential([LSTM(features, hidden, return_sequences, rng=seed)])
    x = np.random.default_rng(seed).standard_normal((batch, steps, features)).astype(np.float32) * 2
    _step_agrees_in_float32(model, x, "LSTM: each step's gates and cell state in one compiled pass", "hidden_grads",
                            seed, atol=1e-6)
    with model.layer_by_layer():
        expected = model.forward(x)
    np.testing.assert_allclose(model.forward(x), expected, rtol=1e-5, atol=1e-6)


def _step_agrees_in_float32(model, x, rule_name, kept, seed, atol):
    """The one-layer ``model``'s step (built by ``rule_name``) and the layer, float32: outputs and gradients within
    rounding, and what the layer keeps (``kept``: an attribute the engine fills as the layer's code would; None:
    nothing) too."""
    assert rule_name in _applied(model.execution_plan(), model.layers)
    grad = np.random.default_rng(seed + 1).standard_normal(model.forward(x).shape).astype(np.float32)
    engine = _run(model, x, grad, by_layer=False)
    engine_kept = getattr(model.layers[0], kept) if kept else None
    by_layer = _run(model, x, grad, by_layer=True)
    _assert_same(engine, by_layer, rtol=1e-5, atol=atol)
    if kept:
        np.testing.assert_allclose(engine_kept, getattr(model.layers[0], kept), rtol=1e-5, atol=1e-6)
    assert engine[0].dtype == engine[1].dtype == np.float32


@pytest.mark.parametrize("causal", [False, True])
@_RULE_SETTINGS
@given(batch=st.integers(1, 4), length=st.integers(1, 9), heads=st.integers(1, 4), head_dim=st.integers(1, 5),
       seed=st.integers(0, 2**16))
def test_the_attention_step_agrees_with_the_layer_in_float32(causal, batch, length, heads, head_dim, seed,
                                                             backend):  # noqa: F811
    """In float32 (where the compiled softmax runs) the attention step's outputs, gradients and attention weights
    are the layer's within rounding."""
    model = tinynet.Sequential([MultiHeadAttention(heads * head_dim, heads, causal, rng=seed)])
    x = np.random.default_rng(seed).standard_normal((batch, length, heads * head_dim)).astype(np.float32) * 2
    # atol 5e-5: with one feature a head, the query and key gradients are small differences of large
    # terms; the compiled softmax sums a row in another order than NumPy, and the two float32 results
    # differ by up to 1.2e-5 (both within 1.5e-5 of float64, the step's the closer).
    _step_agrees_in_float32(model, x, "MultiHeadAttention: Q | K | V in one product, the softmax compiled",
                            "attention", seed, atol=5e-5)


@_RULE_SETTINGS
@given(shape=st.lists(st.integers(1, 7), min_size=1, max_size=4), scale=st.sampled_from([0.3, 3.0, 30.0]),
       seed=st.integers(0, 2**16))
def test_the_gelu_step_agrees_with_the_layer_in_float32(shape, scale, seed, backend):  # noqa: F811
    """In float32 (where the compiled pass runs) the GELU step's output and input gradient are the layer's within
    rounding, for any number of axes."""
    model = tinynet.Sequential([GELU()])
    x = (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)
    _step_agrees_in_float32(model, x, "GELU: its value and slope in one compiled pass", None, seed, atol=1e-6)


@pytest.mark.parametrize("name, case", [(name, case) for name, cases in INFERENCE_CASES.items() for case in cases],
                         ids=lambda value: value if isinstance(value, str) else "")
@_RULE_SETTINGS
@given(geometry=geometries())
def test_an_inference_rule_computes_what_its_layers_compute(name, case, geometry, backend):  # noqa: F811
    layers, x = case(geometry)
    model = tinynet.Sequential(layers).astype(np.float64)
    _trained_statistics(model, geometry["seed"])
    assert name in _applied(model.inference_plan(), layers)
    with model.layer_by_layer():
        expected = model.forward(x)
    np.testing.assert_allclose(model.forward(x), expected, rtol=1e-10, atol=1e-10)


def test_a_new_rule_is_one_entry_in_a_table():
    """An engine made with a table of its own applies its rule: here Tanh runs as the negated Tanh of -x."""
    from tinynet.engine import AS_WRITTEN, Engine, Rule
    from tinynet.engine.steps import LayerStep

    class OddTanh(LayerStep):
        def forward(self, x, training=False):
            return -self.layer.forward(-x, training=training)

    rule = Rule("Tanh is odd", (Tanh,), lambda positions, layers, context: OddTanh(positions[0], layers[0]))
    engine = Engine(training_rules=(rule, AS_WRITTEN), inference_rules=(AS_WRITTEN,))
    layers = [Tanh(), ReLU()]
    plan = engine.training_plan(layers)
    assert [step.rule for step in plan] == [rule, AS_WRITTEN]
    x = np.linspace(-2, 2, 9).reshape(1, 9)
    np.testing.assert_allclose(engine.run(plan, x), np.maximum(np.tanh(x), 0), rtol=1e-15)
    assert [step.rule for step in engine.inference_plan(layers)] == [AS_WRITTEN, AS_WRITTEN]


def test_unknown_layers_run_as_written_in_the_users_layout():
    """A layer no rule knows (a user's own) gets NCHW images and its own forward and backward, between fused steps."""
    class Double(tinynet.layers.Layer):
        def forward(self, x, training=False):
            assert x.shape[1] == 2, f"expected NCHW with 2 channels, got {x.shape}"
            self._save(training, True)
            return 2 * x

        def backward(self, grad_out):
            self._saved_values()
            return 2 * grad_out

    model = tinynet.Sequential([Conv2D(1, 2, 3, rng=0), Double(), MaxPool2D(2)]).astype(np.float64)
    described = [step.describe() for step in model.execution_plan()]
    assert described == ["NCHW -> NHWC", "0 Conv2D (NHWC)", "NHWC -> NCHW", "1 Double", "NCHW -> NHWC",
                         "2 MaxPool2D (NHWC)", "NHWC -> NCHW"]
    x = np.random.default_rng(0).random((2, 1, 7, 7))
    grad = np.random.default_rng(1).standard_normal((2, 2, 2, 2))
    _assert_same(_run(model, x, grad, by_layer=False), _run(model, x, grad, by_layer=True), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
@pytest.mark.parametrize("layers, x_shape, message", [
    ([Conv2D(1, 4, 3, rng=0), ReLU(), Conv2D(3, 2, 3, rng=0)], (2, 1, 8, 8),
     r"Layer 2 \(Conv2D\): Conv2D expects 3 input channel\(s\); got input of shape \(2, 4, 6, 6\)"),
    ([Conv2D(1, 4, 3, rng=0), BatchNorm2D(3)], (2, 1, 8, 8),
     r"Layer 1 \(BatchNorm2D\): BatchNorm2D\(3\) expects 3 channels on axis 1; got input of shape \(2, 4, 6, 6\)"),
    ([Conv2D(1, 4, 3, rng=0), ReLU(), MaxPool2D(7)], (2, 1, 8, 8),
     r"Layer 2 \(MaxPool2D\): MaxPool2D pool_size=\(7, 7\) is larger than the input's \(6, 6\)"),
    ([Conv2D(1, 4, 3, rng=0), Residual(Conv2D(4, 3, 3, padding=1, rng=0))], (2, 1, 8, 8),
     r"Layer 1 \(Residual\): Residual adds .* \(2, 4, 6, 6\) became \(2, 3, 6, 6\)"),
    ([Conv2D(1, 4, 3, rng=0), Residual(Conv2D(3, 4, 3, padding=1, rng=0))], (2, 1, 8, 8),
     r"Layer 1 \(Residual\): Layer 0 \(Conv2D\): Conv2D expects 3 .* shape \(2, 4, 6, 6\)"),
    ([Conv2D(2, 4, 3, rng=0)], (2, 1, 8, 8), r"Layer 0 \(Conv2D\): Conv2D expects 2 .* shape \(2, 1, 8, 8\)"),
], ids=["conv channels", "batchnorm channels", "pool too large", "residual shape", "inside a residual",
        "first layer"])
def test_engine_errors_speak_nchw_and_name_the_layer(layers, x_shape, message, training):
    """A wrong shape met inside a channels-last run: the layer's own error, NCHW shapes, its position and name."""
    model = tinynet.Sequential(layers)
    with pytest.raises(tinynet.ShapeError, match=message) as raised:
        model.forward(np.zeros(x_shape, np.float32), training=training)
    assert "channels last" not in str(raised.value)


@pytest.mark.parametrize("rows", [3, 128])
def test_the_dense_relu_step_gives_the_two_steps_bits(rows, backend):  # noqa: F811
    """Dense + ReLU in one product, float32 (in the engine's hold from 16 rows, as in training: the tiles where the
    CPU has them): the output and every gradient are the bits of the Dense step and the ReLU's own, one after the
    other, NaN routed alike."""
    from tinynet.engine.steps import DenseReluStep, DenseStep, LayerStep

    rng = np.random.default_rng(rows)
    dense, relu = Dense(40, 64, rng=0), ReLU()
    x = rng.standard_normal((rows, 40)).astype(np.float32)
    x[1, 3] = np.nan
    grad = rng.standard_normal((rows, 64)).astype(np.float32)
    fused, apart = DenseReluStep((0, 1), dense), (DenseStep(0, dense), LayerStep(1, relu))
    with tinynet.kernels.engine_threads(rows), np.errstate(invalid="ignore"):
        y = fused.forward(x, training=True)
        grad_x = fused.backward(grad)
        grads = dict(dense.grads)
        y_apart = apart[1].forward(apart[0].forward(x, training=True), training=True)
        grad_x_apart = apart[0].backward(apart[1].backward(grad))
    for got, want in [(y, y_apart), (grad_x, grad_x_apart), *((grads[k], dense.grads[k]) for k in ("W", "b"))]:
        np.testing.assert_array_equal(got, want)
