"""Sequential: training on a synthetic problem, reproducibility, summary, save and load."""

import io
import zipfile

import numpy as np
import pytest

import tinynet
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


def test_metadata_is_saved_and_loaded(tmp_path):
    """model.metadata (where the model came from) survives save and load; a model without any loads {}."""
    model = tinynet.models.basic_mlp(rng=0)
    model.metadata = {"recipe": {"epochs": 12, "lr": 0.01}, "seed": 0, "test_accuracy": 0.9951}
    model.save(tmp_path / "m.npz")
    assert tinynet.load_model(tmp_path / "m.npz").metadata == model.metadata
    tinynet.models.basic_mlp(rng=0).save(tmp_path / "plain.npz")
    assert tinynet.load_model(tmp_path / "plain.npz").metadata == {}


@pytest.mark.parametrize("metadata, message", [
    ({"accuracy": float("nan")}, "only JSON values"), ({"weights": np.zeros(2)}, "only JSON values"),
    ({1: "one"}, "key 1 .int.; JSON keys are text"), (["seed", 0], "dict"), ({"notes": "x" * 70_000}, "at most 65,536"),
])
def test_metadata_json_cannot_hold_is_refused_before_writing(tmp_path, metadata, message):
    """Metadata a file could not hold: refused when assigned, and by save() (writing nothing) when put in later."""
    model = tinynet.models.basic_mlp(rng=0)
    with pytest.raises(tinynet.ArgumentError, match=message):
        model.metadata = metadata
    assert model.metadata == {}
    if isinstance(metadata, dict):
        model.metadata.update(metadata)
        with pytest.raises(tinynet.ArgumentError, match=message):
            model.save(tmp_path / "m.npz")
    assert not list(tmp_path.iterdir())


def test_a_file_whose_metadata_is_not_a_dict_is_refused(tmp_path):
    """Metadata of the wrong kind in a file is a ModelFileError naming it."""
    arrays = tinynet.serialization.model_arrays(tinynet.models.basic_mlp(rng=0))
    arrays["__architecture__"] = np.array(str(arrays["__architecture__"])[:-1] + ', "metadata": [1, 2]}')
    np.savez(tmp_path / "m.npz", **arrays)
    with pytest.raises(tinynet.ModelFileError, match="metadata must be a dict"):
        tinynet.load_model(tmp_path / "m.npz")


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
    with model.layer_by_layer():  # the layers' own code, where the patched backward runs
        assert tinynet.gradcheck(model, x).errors["3.b"] > 0.5  # a real gradient set to 0 is still caught


def test_a_model_with_residual_blocks_saves_loads_and_resumes(tmp_path):
    """Residual blocks (one inside another, with Dropout): save/load, state_dict names and checkpoints round-trip."""
    def build():
        return tinynet.Sequential([
            Conv2D(1, 3, 3, padding=1, rng=0), ReLU(),
            tinynet.layers.Residual(Conv2D(3, 3, 3, padding=1, rng=1), ReLU(), Dropout(0.2),
                                    tinynet.layers.Residual(Conv2D(3, 3, 1, rng=2))),
            Flatten(), Dense(3 * 6 * 6, 4, rng=3),
        ])

    rng = np.random.default_rng(0)
    x, y = rng.random((40, 1, 6, 6), dtype=np.float32), rng.integers(0, 4, 40)
    model = build()
    assert {"2.0.W", "2.3.0.W", "2.3.0.b"} <= set(model.state_dict())
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, seed=1)
    model.save(tmp_path / "residual.npz")
    np.testing.assert_array_equal(tinynet.load_model(tmp_path / "residual.npz").predict(x), model.predict(x))
    whole = build()
    whole.fit(x, y, epochs=3, batch_size=16, verbose=0, seed=1)
    first = build()
    first.fit(x, y, epochs=2, batch_size=16, verbose=0, seed=1, checkpoint=tmp_path / "run.npz")
    resumed = build()
    resumed.fit(x, y, epochs=3, batch_size=16, verbose=0, seed=1, checkpoint=tmp_path / "run.npz", resume=True)
    for name, array in whole.state_dict().items():
        np.testing.assert_array_equal(resumed.state_dict()[name], array)


def test_a_residual_block_that_changes_the_shape_or_nests_too_deep_is_refused(tmp_path):
    """A shape-changing inner layer is a ShapeError naming the fix; Residuals nested 9 deep are refused."""
    with pytest.raises(tinynet.ShapeError, match="keep the shape"):
        tinynet.layers.Residual(Dense(3, 4, rng=0)).forward(np.ones((2, 3), np.float32))
    with pytest.raises(tinynet.ShapeError, match="keep the shape"):
        tinynet.Sequential([tinynet.layers.Residual(Dense(3, 4, rng=0))]).predict(np.ones((2, 3), np.float32))
    block = Dense(2, 2, rng=0)
    for _ in range(8):
        block = tinynet.layers.Residual(block)
    with pytest.raises(tinynet.ArgumentError, match="nest at most 8 deep"):
        tinynet.layers.Residual(block)
