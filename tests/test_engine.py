"""The engine runs every model as the layers one by one would: outputs, gradients and running statistics."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import tinynet
from tinynet import kernels
from tinynet.engine import conv as engine_conv
from tinynet.layers import (
    AvgPool2D,
    BatchNorm2D,
    Conv2D,
    Dropout,
    Flatten,
    LeakyReLU,
    MaxPool2D,
    ReLU,
    Residual,
    Sigmoid,
)
from tinynet.layers.softmax import softmax


def every_step(rng=0):
    """A model that has each kind of engine step: fused and plain convolutions and pools, BatchNorm2D, Dropout."""
    return tinynet.Sequential([
        Conv2D(1, 3, 3, rng=rng), BatchNorm2D(3), ReLU(), MaxPool2D(2),             # 28 -> 26 -> 13
        Residual(Conv2D(3, 3, 3, padding=1, rng=rng + 4), BatchNorm2D(3), ReLU(), Conv2D(3, 3, 1, rng=rng + 5)),
        Conv2D(3, 4, 3, stride=2, padding=1, rng=rng + 1), Sigmoid(), AvgPool2D(2),  # 13 -> 7 -> 3
        MaxPool2D(2, stride=1), Dropout(0.3), Conv2D(4, 2, 1, rng=rng + 2), LeakyReLU(0.1),  # 3 -> 2
        Flatten(), tinynet.layers.Dense(8, 10, rng=rng + 3),
    ])


def image_rows(rng=0):
    """Dense layers on a sequence: each image as 28 rows, a Dense on every row's pixels, then a classifier."""
    return tinynet.Sequential([
        tinynet.layers.Reshape((28, 28)), tinynet.layers.Dense(28, 6, rng=rng), ReLU(),
        tinynet.layers.Dense(6, 3, rng=rng + 1), Flatten(), tinynet.layers.Dense(84, 10, rng=rng + 2),
    ])


BUILDERS = [tinynet.models.basic_mlp, tinynet.models.small_cnn, tinynet.models.keras_convnet, tinynet.models.cnn,
            every_step, image_rows, tinynet.models.vit]


def _backends():
    """Both kernel sets where numba's JIT is on; the reference set alone where it is off."""
    numba = pytest.param("numba", marks=pytest.mark.skipif(
        kernels._load_jitted() is None, reason="numba's JIT is off (NUMBA_DISABLE_JIT=1): only the reference kernels"))
    return [numba, "reference"]


@pytest.fixture(params=_backends())
def backend(request):
    """Run the test on one kernel set: the numba loops or their NumPy twins."""
    with kernels.use_backend(request.param):
        yield request.param


def _run(model, x, grad, by_layer):
    """Output, input gradient, every layer's gradients and the state after one training forward and backward."""
    for layer in model.layers:  # the same dropout masks in every run
        if isinstance(layer, Dropout):
            layer.rng = np.random.default_rng(0)
    start = {name: array.copy() for name, array in model.state_dict().items()}
    if by_layer:
        with model.layer_by_layer():
            out = model.forward(x, training=True)
            grad_x = model.backward(grad)
    else:
        out = model.forward(x, training=True)
        grad_x = model.backward(grad)
    grads = {f"{i}.{k}": g.copy() for i, layer in enumerate(model.layers) for k, g in layer.grads.items()}
    state = {name: array.copy() for name, array in model.state_dict().items()}
    model.load_state_dict(start)  # the running statistics as they were, for the other run
    return out, grad_x, grads, state


def _assert_same(engine, by_layer, rtol, atol):
    """Outputs, input gradients and every parameter gradient agree; ``atol`` is relative to the array's largest
    value (at least 1), as float rounding is (a float32 attention gradient of 7.5 differs by 1e-5 between two
    summation orders, both within 2e-5 of float64)."""
    for got, expected in zip(engine[:2], by_layer[:2], strict=True):
        np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol * max(np.abs(expected).max(), 1.0))
    for got, expected in zip(engine[2:], by_layer[2:], strict=True):
        assert got.keys() == expected.keys()
        for name in got:
            scale = np.abs(expected[name]).max()
            np.testing.assert_allclose(got[name], expected[name], rtol=rtol, atol=atol * max(scale, 1.0),
                                       err_msg=name)


@pytest.mark.parametrize("chunk_bytes", [None, 1], ids=["cache-sized chunks", "one image per chunk"])
@pytest.mark.parametrize("build", BUILDERS, ids=lambda b: b.__name__)
def test_the_engine_and_the_layers_agree_in_float64(build, chunk_bytes, backend, monkeypatch):
    """In float64 every output, gradient and running statistic agrees to 1e-10: the same maths, another order."""
    if chunk_bytes is not None:
        monkeypatch.setattr(engine_conv, "_CHUNK_BYTES", chunk_bytes)
    model = build(rng=0).astype(np.float64)
    rng = np.random.default_rng(3)
    x, grad = rng.random((5, 1, 28, 28)), rng.standard_normal((5, 10))
    # Sums taken in another order differ by a few float64 ulps per operation; through 17
    # layers that stays far below 1e-10, while any wrong term (a missed window, a wrong
    # transpose) is of the size of the values themselves.
    _assert_same(_run(model, x, grad, by_layer=False), _run(model, x, grad, by_layer=True), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("build", BUILDERS, ids=lambda b: b.__name__)
def test_the_engine_and_the_layers_agree_in_float32(build, backend):
    """In float32 they agree to float32 rounding: 1e-3 relative after a whole model's products and sums."""
    model = build(rng=0)
    rng = np.random.default_rng(4)
    x, grad = rng.random((6, 1, 28, 28), dtype=np.float32), rng.standard_normal((6, 10)).astype(np.float32)
    engine, by_layer = _run(model, x, grad, by_layer=False), _run(model, x, grad, by_layer=True)
    assert engine[0].dtype == by_layer[0].dtype == np.float32
    # float32 keeps 7 digits; a convolution sums up to 800 products in another order (error
    # about sqrt(800) * 6e-8 relative), and BatchNorm divides by small standard deviations,
    # which can multiply that: 1e-3 of the largest value is rounding, a real error is not.
    _assert_same(engine, by_layer, rtol=1e-3, atol=1e-3 * max(np.abs(by_layer[1]).max(), 1e-3))


def test_every_step_kind_is_in_the_test_model():
    """The model the agreement tests run has each step the engine can choose, so none goes untested."""
    kinds = {type(step).__name__ for step in every_step().execution_plan()}
    assert kinds == {"ToChannelsLast", "ToChannelsFirst", "FlattenChannelsLast", "ConvStep", "BatchNormStep",
                     "MaxPoolStep", "AvgPoolStep", "LayerStep", "DenseStep", "ResidualStep"}
    assert "2 ReLU + 3 MaxPool2D (fused, NHWC)" in [step.describe() for step in every_step().execution_plan()]
    fused = tinynet.Sequential([Conv2D(2, 2, 3, rng=0), ReLU(), MaxPool2D(2)]).execution_plan()
    assert type(fused[1]).__name__ == "ConvReluMaxPoolStep"
    first_layer = tinynet.Sequential([Conv2D(1, 2, 3, rng=0), ReLU(), MaxPool2D(2)]).execution_plan()
    assert type(first_layer[1]).__name__ == "OneChannelConvReluMaxPoolStep"


def test_the_plan_fuses_and_the_layer_by_layer_plan_does_not():
    """The engine's plan lists fused channels-last steps; inside layer_by_layer() one step per layer, undone after."""
    model = tinynet.models.cnn(rng=0)
    described = [step.describe() for step in model.execution_plan()]
    assert described[0] == "NCHW -> NHWC"
    assert "0 Conv2D + 1 ReLU + 2 MaxPool2D (fused, NHWC, in the pooling windows)" in described
    with model.layer_by_layer():
        plain = [step.describe() for step in model.execution_plan()]
    assert plain == [f"{i} {type(layer).__name__}" for i, layer in enumerate(model.layers)]
    assert [step.describe() for step in model.execution_plan()] == described


def test_fit_and_predict_run_layer_by_layer_too():
    """fit and predict inside layer_by_layer() give what the engine gives (float64, same seed)."""
    x = np.random.default_rng(0).random((40, 1, 12, 12))
    y = np.random.default_rng(1).integers(0, 3, 40)

    def train(by_layer):
        model = tinynet.Sequential([Conv2D(1, 4, 3, rng=0), ReLU(), MaxPool2D(2), BatchNorm2D(4), Flatten(),
                                    tinynet.layers.Dense(100, 3, rng=1)]).astype(np.float64)
        if by_layer:
            with model.layer_by_layer():
                model.fit(x, y, epochs=2, batch_size=16, seed=0, verbose=0)
                return model.predict(x)
        model.fit(x, y, epochs=2, batch_size=16, seed=0, verbose=0)
        return model.predict(x)

    np.testing.assert_allclose(train(by_layer=False), train(by_layer=True), rtol=1e-9, atol=1e-12)


def test_elementwise_layers_stay_in_the_channels_last_run():
    """Layers that declare elementwise = True run inside a channels-last run; Dropout ends it (its masks)."""
    model = tinynet.Sequential([Conv2D(1, 2, 3, rng=0), Sigmoid(), LeakyReLU(), AvgPool2D(2), Dropout(0.5),
                                MaxPool2D(2)])
    described = [step.describe() for step in model.execution_plan()]
    assert described == ["NCHW -> NHWC", "0 Conv2D (NHWC)", "1 Sigmoid", "2 LeakyReLU", "3 AvgPool2D (NHWC)",
                         "NHWC -> NCHW", "4 Dropout", "NCHW -> NHWC", "5 MaxPool2D (NHWC)", "NHWC -> NCHW"]


@pytest.mark.parametrize("kept_bytes", [0, 2**40], ids=["unfolded again", "kept"])
def test_kept_and_unfolded_again_columns_give_the_same_gradients(kept_bytes, monkeypatch):
    """Backward reads the columns a training forward kept, or unfolds them again: the same bits."""
    def run():
        model = tinynet.models.keras_convnet(rng=0)
        for layer in model.layers:
            if isinstance(layer, Dropout):
                layer.rng = np.random.default_rng(0)
        x = np.random.default_rng(0).random((7, 1, 28, 28), dtype=np.float32)
        model.forward(x, training=True)
        grad_x = model.backward(np.random.default_rng(1).standard_normal((7, 10)).astype(np.float32))
        return grad_x, {f"{i}.{k}": g for i, layer in enumerate(model.layers) for k, g in layer.grads.items()}

    grad_x, grads = run()
    monkeypatch.setattr(engine_conv, "_KEPT_COLUMNS_BYTES", kept_bytes)
    grad_x_again, grads_again = run()
    np.testing.assert_array_equal(grad_x, grad_x_again)
    for key, value in grads.items():
        np.testing.assert_array_equal(value, grads_again[key])


def test_the_first_trainable_step_can_skip_the_input_gradient():
    """backward(grad, input_grad=False) returns None and leaves every parameter gradient as the full backward's."""
    for build in (tinynet.models.basic_mlp, tinynet.models.cnn, tinynet.models.lstm_rows, tinynet.models.vit):
        model = build(rng=0)
        x = np.random.default_rng(1).random((4, 1, 28, 28), dtype=np.float32)
        grad = np.random.default_rng(2).standard_normal((4, 10)).astype(np.float32)
        for layer in model.layers:
            if isinstance(layer, Dropout):
                layer.rng = np.random.default_rng(0)
        model.forward(x, training=True)
        assert model.backward(grad).shape == x.shape
        full = {i: {k: g.copy() for k, g in layer.grads.items()} for i, layer in enumerate(model.layers)}
        for layer in model.layers:
            if isinstance(layer, Dropout):
                layer.rng = np.random.default_rng(0)
        model.forward(x, training=True)
        assert model.backward(grad, input_grad=False) is None
        for i, layer in enumerate(model.layers):
            for key, value in full[i].items():
                np.testing.assert_array_equal(layer.grads[key], value)


@pytest.mark.parametrize("build, infer", [
    (tinynet.models.small_cnn, lambda model, x: model.forward(x)),
    (tinynet.models.cnn, lambda model, x: model.predict(x)),
], ids=["small_cnn forward", "cnn predict"])
def test_a_step_without_a_training_forward_says_so(build, infer):
    """A training forward, then an inference one (forward or predict): backward is a clear
    NotTrainedForwardError rather than a crash on, or a use of, the first one's values."""
    model = build(rng=0)
    x = np.zeros((2, 1, 28, 28), np.float32)
    model.forward(x, training=True)
    infer(model, x)
    with pytest.raises(tinynet.NotTrainedForwardError, match="training=True"):
        model.backward(np.zeros((2, 10), np.float32))


def test_the_engine_never_touches_a_layers_private_state():
    """After an engine run the layers hold nothing saved: every step kept its own values."""
    model = tinynet.models.cnn(rng=0)
    model.forward(np.zeros((2, 1, 28, 28), np.float32), training=True)
    run_as_written = {position for step in model.execution_plan() if type(step).__name__ == "LayerStep"
                      for position in step.positions}
    for position, layer in enumerate(model.layers):
        if position not in run_as_written:
            with pytest.raises(tinynet.NotTrainedForwardError):
                layer.backward(np.zeros((2, 10), np.float32))


@settings(max_examples=40, deadline=None)
@given(size=st.integers(4, 13), kernel=st.integers(1, 3), conv_stride=st.integers(1, 2),
       padding=st.integers(0, 1), window=st.integers(1, 3), pool_stride=st.integers(1, 3), seed=st.integers(0, 99))
def test_a_fused_convolution_computes_only_what_its_pooling_reads(size, kernel, conv_stride, padding, window,
                                                                   pool_stride, seed):
    """Conv2D + ReLU + MaxPool2D fused, its input cropped to what the pooling reads: the layers' results (float64)."""
    padding = min(padding, kernel - 1)
    conv_out = (size + 2 * padding - kernel) // conv_stride + 1
    assume(conv_out >= window)
    rng = np.random.default_rng(seed)
    model = tinynet.Sequential([Conv2D(2, 3, kernel, stride=conv_stride, padding=padding, rng=seed), ReLU(),
                                MaxPool2D(window, stride=pool_stride)]).astype(np.float64)
    assert "fused" in model.execution_plan()[1].describe()
    x = rng.standard_normal((3, 2, size, size))
    grad = rng.standard_normal(model.forward(x).shape)
    _assert_same(_run(model, x, grad, by_layer=False), _run(model, x, grad, by_layer=True), rtol=1e-12, atol=1e-12)


def _with_statistics(model, seed=0):
    """``model`` with BatchNorm scales, shifts and running statistics far from their initial 1s and 0s."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if "running_var" in getattr(layer, "buffers", {}):
            layer.params["gamma"][...] = rng.standard_normal(layer.num_features)  # negative scales too
            layer.params["beta"][...] = rng.standard_normal(layer.num_features)
            layer.buffers["running_mean"][...] = rng.standard_normal(layer.num_features)
            layer.buffers["running_var"][...] = rng.random(layer.num_features) + 0.1
    return model


@pytest.mark.parametrize("chunk_bytes", [None, 1], ids=["cache-sized chunks", "one image per chunk"])
@pytest.mark.parametrize("build", BUILDERS, ids=lambda b: b.__name__)
def test_the_inference_plan_and_the_layers_agree_in_float64(build, chunk_bytes, backend, monkeypatch):
    """Each rewrite of the inference plan (Dropout left out, BatchNorm, bias and ReLU as an epilogue, pooling
    without argmax) gives what the layers give one by one at inference, to 1e-10 in float64."""
    if chunk_bytes is not None:
        monkeypatch.setattr(engine_conv, "_CHUNK_BYTES", chunk_bytes)
    model = _with_statistics(build(rng=0).astype(np.float64))
    x = np.random.default_rng(5).random((7, 1, 28, 28))
    with model.layer_by_layer():
        expected = model.forward(x)
    np.testing.assert_allclose(model.forward(x), expected, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(model.predict(x), softmax(expected), rtol=1e-10, atol=1e-12)


def test_the_inference_plan_rewrites_what_it_says():
    """cnn()'s inference plan: BatchNorm and ReLU joined to the products, Dropout gone, positions kept."""
    described = [step.describe() for step in tinynet.models.cnn(rng=0).inference_plan()]
    assert described == [
        "NCHW -> NHWC",
        "0 Conv2D + 1 ReLU + 2 MaxPool2D + 3 BatchNorm2D (inference, NHWC, in the pooling windows)",
        "4 Conv2D + 5 ReLU + 6 MaxPool2D + 7 BatchNorm2D (inference, NHWC, chunked)",
        "8 Conv2D + 9 BatchNorm2D + 10 ReLU (inference, NHWC, chunked)",
        "11 Flatten + 12 Dense + 13 BatchNorm1D + 14 ReLU (inference, from NHWC)",
        "16 Dense (inference)",
    ]
    kinds = {type(step).__name__ for step in every_step().inference_plan()}
    assert {"ConvEpilogueStep", "ConvPoolInferenceStep", "DenseEpilogueStep"} <= kinds | {
        type(step).__name__ for step in tinynet.models.cnn(rng=0).inference_plan()}


@pytest.mark.parametrize("batch", [1, 3, 200])
@pytest.mark.parametrize("how", ["in place", "by assignment"])
def test_predictions_follow_weights_changed_by_hand(batch, how):
    """Nothing is folded into a copy of the weights: a weight or a statistic changed in place, or replaced by a
    new array, shows at the next call, one image or several (200: more images than the Dense layer after the
    Flatten has outputs, so its weights are the ones reordered)."""
    model = _with_statistics(tinynet.models.cnn(rng=0))
    x = np.random.default_rng(6).random((batch, 1, 28, 28), dtype=np.float32)
    before = model.predict(x)
    changes = [(model.layers[9].buffers, "running_var", 4.0),  # the third convolution's BatchNorm
               (model.layers[3].params, "gamma", -1.0),  # the BatchNorm after the first pooling
               (model.layers[8].params, "W", 1.5),
               (model.layers[0].params, "W", 2.0),  # the first convolution, computed inside its pooling
               (model.layers[12].params, "W", 0.5), (model.layers[13].buffers, "running_mean", 3.0)]
    for arrays, key, factor in changes:
        if how == "in place":
            arrays[key][...] *= factor
        else:
            arrays[key] = arrays[key] * arrays[key].dtype.type(factor)
    with model.layer_by_layer():
        expected = model.predict(x)
    after = model.predict(x)
    assert not np.allclose(after, before)
    np.testing.assert_allclose(after, expected, rtol=1e-4, atol=1e-6)


def test_an_inference_plan_that_asks_for_chunks_predicts_a_large_batch_chunk_by_chunk(monkeypatch):
    """An attention step asks for chunks of samples at inference (its arrays stay in cache): a batch larger than
    a chunk goes through the plan chunk by chunk, last chunk shorter, with the whole batch's results."""
    from tinynet.engine.attention import AttentionStep
    from tinynet.layers import Dense, LayerNorm, MultiHeadAttention, Residual

    def model_made():  # a plan reads its steps' chunk once: each setting gets a model of its own
        return tinynet.Sequential([Residual(LayerNorm(8), MultiHeadAttention(8, 2, rng=0)),
                                   Dense(8, 3, rng=1)]).astype(np.float64)

    x = np.random.default_rng(0).standard_normal((10, 5, 8))
    monkeypatch.setattr(AttentionStep, "inference_chunk", None)
    model = model_made()
    whole = model.forward(x)
    weights = model.layers[0].layers[1].attention  # (10, 2, 5, 5)
    sizes = []
    original = AttentionStep.forward
    monkeypatch.setattr(AttentionStep, "forward", lambda self, x, training=False: sizes.append(len(x)) or original(
        self, x, training))
    monkeypatch.setattr(AttentionStep, "inference_chunk", 4)
    model = model_made()
    np.testing.assert_allclose(model.forward(x), whole, rtol=1e-12, atol=1e-12)
    assert sizes == [4, 4, 2]
    np.testing.assert_allclose(model.layers[0].layers[1].attention, weights, rtol=1e-12)  # every sample's
    sizes.clear()
    model.forward(x[:4])
    assert sizes == [4]  # a batch that fits runs whole
