"""Sequential: training on a synthetic problem, reproducibility, summary, save and load."""

import io
import zipfile

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import tinynet
from tests.strategies import layer_by_layer
from tinynet.layers import Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU


def _blobs(n=600, seed=0):
    """Three Gaussian blobs in 2-D: linearly separable enough for 95%+ accuracy."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centers = np.array([[2.0, 0.0], [-2.0, 1.0], [0.0, -2.5]])
    x = centers[y] + rng.standard_normal((n, 2)) * 0.6
    return x.astype(np.float32), y


def _mlp(seed=0):
    return tinynet.Sequential([Dense(2, 16, rng=seed), ReLU(), Dropout(0.1), Dense(16, 3, rng=seed + 1)])


def test_fit_drives_the_loss_down_and_learns():
    """A seeded fit on three blobs lowers the loss and reaches 95% accuracy."""
    x, y = _blobs()
    model = _mlp()
    history = model.fit(x, y, epochs=15, batch_size=32, seed=0, verbose=0,
                        optimizer=tinynet.optim.Adam(lr=0.01), validation_data=_blobs(200, seed=1))
    losses = history.history["loss"]
    assert losses[-1] < 0.5 * losses[0]
    assert history.history["val_accuracy"][-1] >= 0.95
    assert model.evaluate(*_blobs(200, seed=2))["accuracy"] >= 0.95
    frame = history.to_frame()
    assert list(frame.index) == list(range(1, 16)) and {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(frame)


def test_same_seed_gives_identical_weights():
    """Two fits with the same seed (shuffling and dropout) end with bit-identical weights."""
    x, y = _blobs()
    a, b = _mlp(), _mlp()
    a.fit(x, y, epochs=2, batch_size=50, seed=3, verbose=0)
    b.fit(x, y, epochs=2, batch_size=50, seed=3, verbose=0)
    for key, value in a.params.items():
        np.testing.assert_array_equal(value, b.params[key])
    c = _mlp()
    c.fit(x, y, epochs=2, batch_size=50, seed=4, verbose=0)
    assert not np.array_equal(a.params["0.W"], c.params["0.W"])


def test_uint8_images_are_scaled_like_floats():
    """uint8 images train and predict as the same images divided by 255."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (20, 1, 6, 6), dtype=np.uint8)
    model = tinynet.Sequential([Conv2D(1, 2, 3, rng=0), ReLU(), Flatten(), Dense(32, 4, rng=1)])
    np.testing.assert_allclose(model.predict(images), model.predict(images.astype(np.float32) / 255), rtol=1e-6)


def test_predict_returns_probabilities():
    """predict gives rows that sum to 1, of shape (N, classes)."""
    probabilities = _mlp().predict(_blobs(10)[0])
    assert probabilities.shape == (10, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)


def test_summary_lists_shapes_and_counts():
    """summary shows each layer's output shape and the parameter total."""
    text = tinynet.models.cnn(rng=0).summary((1, 28, 28))
    assert "(N, 32, 26, 26)" in text and "(N, 128, 3, 3)" in text and "Total params: 242,250" in text
    assert "Total params: 101,770" in tinynet.models.basic_mlp(rng=0).summary((None, 1, 28, 28))


def test_summary_names_both_layers_that_do_not_fit():
    """Incompatible consecutive layers are found by summary, which names both."""
    model = tinynet.Sequential([Conv2D(1, 4, 3), MaxPool2D(2), Flatten(), Dense(100, 10)])
    with pytest.raises(tinynet.ShapeError, match=r"Layer 3 \(Dense\).*layer 2 \(Flatten\)"):
        model.summary((1, 28, 28))


def test_save_and_load_give_identical_predictions(tmp_path):
    """load_model(save(model)) predicts exactly what the model predicted."""
    model = tinynet.models.cnn(rng=0)
    x = np.random.default_rng(0).random((8, 1, 28, 28), dtype=np.float32)
    path = tmp_path / "cnn.npz"
    model.save(path)
    loaded = tinynet.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert [type(a) for a in loaded] == [type(b) for b in model]
    assert not list(tmp_path.glob(".*tmp")), "the temporary file of the atomic write was left behind"


def test_float64_models_round_trip(tmp_path):
    """A model converted with astype(float64) saves and loads as float64."""
    model = tinynet.models.basic_mlp(rng=0).astype(np.float64)
    model.save(tmp_path / "m.npz")
    assert tinynet.load_model(tmp_path / "m.npz").dtype == np.float64


def test_loading_never_unpickles(tmp_path):
    """A file whose arrays need pickle (object dtype) is refused with ModelFileError, not executed."""
    buffer = io.BytesIO()
    np.savez(buffer, __architecture__=np.array([{"format": "tinynet.model"}], dtype=object))
    path = tmp_path / "pickled.npz"
    path.write_bytes(buffer.getvalue())
    with pytest.raises(tinynet.ModelFileError):
        tinynet.load_model(path)


def test_loading_rejects_unknown_layers_and_wrong_shapes(tmp_path):
    """Unknown layer types and arrays of the wrong shape are refused, naming what is wrong."""
    path = tmp_path / "m.npz"
    tinynet.models.basic_mlp(rng=0).save(path)
    with zipfile.ZipFile(path) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    arrays = dict(np.load(path, allow_pickle=False))
    arrays["1.W"] = np.zeros((3, 3), np.float32)
    np.savez(tmp_path / "shape.npz", **arrays)
    with pytest.raises(tinynet.ModelFileError, match="1.W"):
        tinynet.load_model(tmp_path / "shape.npz")
    arrays = dict(np.load(path, allow_pickle=False))
    arrays["__architecture__"] = np.array(str(arrays["__architecture__"]).replace("ReLU", "os.system"))
    np.savez(tmp_path / "unknown.npz", **arrays)
    with pytest.raises(tinynet.ModelFileError, match="unknown type 'os.system'"):
        tinynet.load_model(tmp_path / "unknown.npz")
    assert entries  # the original archive was readable


def test_truncated_model_file_is_a_clear_error(tmp_path):
    """A model file cut short raises ModelFileError naming the file."""
    path = tmp_path / "m.npz"
    tinynet.models.basic_mlp(rng=0).save(path)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(tinynet.ModelFileError, match="m.npz"):
        tinynet.load_model(path)


def test_divergence_stops_fit_and_keeps_finite_weights():
    """A huge learning rate makes the loss non-finite: fit stops and the weights stay finite."""
    x, y = _blobs()
    x = x * 1e20
    model = _mlp()
    with pytest.raises(tinynet.TrainingDivergedError, match="epoch 1, batch 1.*lower learning rate"):
        model.fit(x, y, epochs=1, verbose=0, optimizer=tinynet.optim.SGD(lr=1e30))
    assert all(np.isfinite(v).all() for v in model.params.values())


@pytest.mark.parametrize(
    "kwargs, message",
    [({"epochs": -1}, "epochs"), ({"batch_size": 0}, "batch_size")],
)
def test_fit_rejects_bad_arguments(kwargs, message):
    """Negative epochs or a non-positive batch size are named in the error."""
    with pytest.raises(ValueError, match=message):
        _mlp().fit(*_blobs(), verbose=0, **kwargs)


@pytest.mark.parametrize("build", [tinynet.models.basic_mlp, tinynet.models.small_cnn])
def test_backward_without_input_grad_gives_the_same_parameter_gradients(build):
    """input_grad=False (what fit uses) skips only the input gradient: every parameter gradient is unchanged."""
    model = build(rng=0)
    x = np.random.default_rng(1).random((4, 1, 28, 28), dtype=np.float32)
    grad = np.random.default_rng(2).standard_normal((4, 10)).astype(np.float32)
    model.forward(x, training=True)
    grad_x = model.backward(grad)
    full = {i: {k: g.copy() for k, g in layer.grads.items()} for i, layer in enumerate(model.layers)}
    model.forward(x, training=True)
    assert model.backward(grad, input_grad=False) is None
    assert grad_x.shape == x.shape
    for i, layer in enumerate(model.layers):
        for key, value in full[i].items():
            np.testing.assert_array_equal(layer.grads[key], value)


@pytest.mark.parametrize("chunk_bytes", [None, 1], ids=["one chunk", "one image per chunk"])
@pytest.mark.parametrize("build", [tinynet.models.cnn, tinynet.models.small_cnn, tinynet.models.keras_convnet])
def test_the_execution_plan_gives_the_declared_orders_results(build, chunk_bytes, monkeypatch):
    """Channels-last runs and fused ReLU + MaxPool2D: outputs and every gradient equal the layers run one by one."""
    model = build(rng=0)
    rng = np.random.default_rng(3)
    x = rng.random((6, 1, 28, 28), dtype=np.float32)
    grad = rng.standard_normal((6, 10)).astype(np.float32)
    if chunk_bytes is not None:  # the convolutions then work image by image, fused or not
        monkeypatch.setattr(tinynet.layers.conv, "_CHUNK_BYTES", chunk_bytes)
    described = [step.describe() for step in model.execution_plan()]
    assert "NCHW -> NHWC" in described and any("fused" in text for text in described)

    def declared_order():
        return layer_by_layer(model.layers, x, grad)

    for layer in model.layers:  # the same dropout mask in both runs
        if hasattr(layer, "rng"):
            layer.rng = np.random.default_rng(0)
    expected_out, expected_grad_x = declared_order()
    expected_grads = _weights_grads(model)
    for layer in model.layers:
        if hasattr(layer, "rng"):
            layer.rng = np.random.default_rng(0)
    out = model.forward(x, training=True)
    grad_x = model.backward(grad)
    np.testing.assert_array_equal(out, expected_out)
    np.testing.assert_array_equal(grad_x, expected_grad_x)
    # A fused step that leaves out the rows its pooling never reads sums its weight gradient
    # over fewer (zero) terms: the same values up to float32 rounding; everything else to the bit.
    cropped = {step.positions[0] for step in model.execution_plan()
               if hasattr(step, "conv") and step.conv._saved_values()[0].shape != step._input_shape}
    for key, value in _weights_grads(model).items():
        if int(key.split(".")[0]) in cropped:
            np.testing.assert_allclose(value, expected_grads[key], rtol=1e-4, atol=1e-6)
        else:
            np.testing.assert_array_equal(value, expected_grads[key])
    if build is not tinynet.models.small_cnn:  # 28 -> 26 -> 13 -> 11: the second convolution is cropped
        assert cropped


def _weights_grads(model):
    return {f"{i}.{k}": v.copy() for i, layer in enumerate(model.layers) for k, v in layer.grads.items()}


def test_convolving_in_chunks_changes_only_the_rounding():
    """Image by image or the whole batch at once: the same outputs, and gradients to float64 rounding."""
    def run():
        model = tinynet.models.keras_convnet(rng=0).astype(np.float64)
        for layer in model.layers:
            if hasattr(layer, "rng"):
                layer.rng = np.random.default_rng(0)
        x = np.random.default_rng(0).random((5, 1, 28, 28))
        out = model.forward(x, training=True)
        grad_x = model.backward(np.random.default_rng(1).standard_normal((5, 10)))
        return out, grad_x, model[3].grads["W"]

    whole = run()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tinynet.layers.conv, "_CHUNK_BYTES", 1)
        by_image = run()
    for a, b in zip(whole, by_image, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("build", [tinynet.models.cnn, tinynet.models.keras_convnet])
def test_kept_and_unfolded_again_columns_give_the_same_gradients(build, monkeypatch):
    """Backward reads the columns a training forward kept, or unfolds them again above the limit: the same bits."""
    def run():
        model = build(rng=0)
        for layer in model.layers:
            if hasattr(layer, "rng"):
                layer.rng = np.random.default_rng(0)
        x = np.random.default_rng(0).random((7, 1, 28, 28), dtype=np.float32)
        model.forward(x, training=True)
        wide = [layer for layer in model.layers if isinstance(layer, Conv2D) and not layer._thin()]
        kept = [layer._saved_values()[1] is not None for layer in wide]
        grad_x = model.backward(np.random.default_rng(1).standard_normal((7, 10)).astype(np.float32))
        return kept, grad_x, _weights_grads(model)

    kept, grad_x, grads = run()
    monkeypatch.setattr(tinynet.layers.conv, "_KEPT_COLUMNS_BYTES", 0)
    unfolded, grad_x_again, grads_again = run()
    assert kept and all(kept) and not any(unfolded)
    np.testing.assert_array_equal(grad_x, grad_x_again)
    for key, value in grads.items():
        np.testing.assert_array_equal(value, grads_again[key])


def test_saving_into_a_missing_folder_names_the_users_path(tmp_path):
    """The error names the path the user gave and its missing folder, never an internal temporary file."""
    target = tmp_path / "missing" / "model.npz"
    with pytest.raises(FileNotFoundError, match="Cannot write .*model.npz: the folder .*missing does not exist"):
        tinynet.models.basic_mlp(rng=0).save(target)
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize("build", [tinynet.models.basic_mlp, tinynet.models.small_cnn, tinynet.models.keras_convnet,
                                   tinynet.models.cnn])
def test_gradcheck_of_a_whole_model(build):
    """gradcheck(model, x): the whole backprop, fused steps and dropout included, against finite differences."""
    x = np.random.default_rng(0).random((2, 1, 28, 28))
    result = tinynet.gradcheck(build(rng=0), x, entries=8)
    assert result.passed(1e-6), str(result)
    assert "input" in result.errors and any(name.endswith(".W") for name in result.errors)


def test_gradcheck_of_a_whole_model_catches_a_wrong_layer(monkeypatch):
    """A backward off by a factor in one layer shows up in that layer's weights and everything below it."""
    model = tinynet.Sequential([Dense(3, 4, rng=0), tinynet.layers.Tanh(), Dense(4, 2, rng=1)])
    original = tinynet.layers.Tanh.backward
    monkeypatch.setattr(tinynet.layers.Tanh, "backward", lambda self, grad: 1.5 * original(self, grad))
    result = tinynet.gradcheck(model, np.random.default_rng(1).standard_normal((5, 3)))
    assert result.errors["2.W"] < 1e-6  # above the wrong layer: still right
    assert result.errors["0.W"] > 0.1 and result.errors["input"] > 0.1


def test_gradcheck_treats_an_exactly_zero_gradient_as_zero_not_as_noise(monkeypatch):
    """A bias before BatchNorm has gradient 0 (the batch mean removes it): reported 0, yet a lost gradient fails."""
    model = tinynet.Sequential([Dense(3, 4, rng=0), tinynet.layers.BatchNorm1D(4), tinynet.layers.Tanh(),
                                Dense(4, 2, rng=1)])
    x = np.random.default_rng(1).standard_normal((6, 3))
    result = tinynet.gradcheck(model, x)
    assert result.errors["0.b"] == 0.0 and result.passed(1e-6), str(result)

    original = tinynet.layers.Dense.backward

    def backward_losing_the_bias_gradient(self, grad):
        out = original(self, grad)
        self.grads["b"] = np.zeros_like(self.grads["b"])
        return out

    monkeypatch.setattr(tinynet.layers.Dense, "backward", backward_losing_the_bias_gradient)
    assert tinynet.gradcheck(model, x).errors["3.b"] > 0.5  # a real gradient set to 0 is still caught


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
    out = model.forward(x, training=True)
    grad = rng.standard_normal(out.shape)
    grad_x = model.backward(grad)
    fused_grads = dict(model.layers[0].grads)
    expected_out, expected_grad_x = layer_by_layer(model.layers, x, grad)
    np.testing.assert_allclose(out, expected_out, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grad_x, expected_grad_x, rtol=1e-12, atol=1e-12)
    for name, value in fused_grads.items():
        np.testing.assert_allclose(value, model.layers[0].grads[name], rtol=1e-12, atol=1e-12)
