"""Bad, hostile or unusual input to the newer features: a clear TinynetError, never an internal exception."""


import numpy as np
import pytest

import tinynet
from tinynet.augment import random_affine, random_shift
from tinynet.layers import BatchNorm1D, BatchNorm2D, Dense
from tinynet.schedules import ExponentialDecay

PIXELS = ",".join(f"pixel{i}" for i in range(784))


@pytest.mark.parametrize("shape", [(4, 28, 28), (4, 784)], ids=["3-D batch", "flat rows"])
@pytest.mark.parametrize("augment", [random_affine(), random_shift(1)], ids=["affine", "shift"])
def test_augmentation_of_a_batch_that_is_not_images_names_the_shape(shape, augment):
    """A 3-D or flat batch: a ShapeError naming the shape and the reshape, not 'not enough values to unpack'."""
    with pytest.raises(tinynet.ShapeError, match=r"\(N, C, H, W\).*reshape"):
        augment(np.zeros(shape, np.float32), np.random.default_rng(0))


def test_fit_with_augmentation_on_flat_rows_is_a_clear_error():
    """fit(augment=...) on (N, 784) rows: the ShapeError, before any weight moves."""
    model = tinynet.Sequential([Dense(784, 10, rng=0)])
    before = model.layers[0].params["W"].copy()
    with pytest.raises(tinynet.ShapeError, match="random_affine"):
        model.fit(np.zeros((8, 784), np.float32), np.zeros(8, int), augment=random_affine(), verbose=0)
    np.testing.assert_array_equal(model.layers[0].params["W"], before)


@pytest.mark.parametrize("arguments", [dict(rotation=1e308), dict(rotation=-1), dict(scale=(1e-300, 1.0)),
                                       dict(scale=(0.9, 1e308)), dict(shift=1e308), dict(rotation=float("nan"))])
def test_affine_ranges_that_could_only_overflow_are_refused(arguments):
    """Angles beyond 180 degrees, zooms and shifts past any image: ArgumentError at construction, no OverflowError."""
    with pytest.raises(tinynet.ArgumentError, match="random_affine expects"):
        random_affine(**arguments)


def test_an_exponential_decay_that_overflows_says_so():
    """ExponentialDecay(0.1, rate=10)(400): an ArgumentError naming the step and the rate, not OverflowError."""
    with pytest.raises(tinynet.ArgumentError, match="overflows at step 400"):
        ExponentialDecay(0.1, rate=10)(400)
    assert ExponentialDecay(0.1, rate=10)(2) == pytest.approx(10.0)


@pytest.mark.parametrize("data", [
    {"config": {}, "steps": 0, "state": []},
    {"config": [], "steps": 0, "state": {}},
    {"config": {"momentum_typo": 1}, "steps": 0, "state": {}},
], ids=["state a list", "config a list", "unknown setting"])
def test_an_optimizer_state_of_the_wrong_shape_is_refused(data):
    """Adam().load_state_dict with a list or unknown settings: ArgumentError, not AttributeError or TypeError."""
    optimizer = tinynet.optim.Adam()
    with pytest.raises(tinynet.ArgumentError, match="Adam.load_state_dict"):
        optimizer.load_state_dict(data)
    assert optimizer.steps == 0 and optimizer.state == {}


def _optimizers():
    return [tinynet.optim.Adam(), tinynet.optim.AdamW(), tinynet.optim.SGD(lr=0.1, momentum=0.9)]


def _moments(optimizer, shape=(2, 3), name="0.W"):
    return {f"{name}.{state_name}": np.zeros(shape, np.float32) for state_name in optimizer.STATE_NAMES}


@pytest.mark.parametrize("optimizer", _optimizers(), ids=lambda optimizer: type(optimizer).__name__)
@pytest.mark.parametrize("edit, error, message", [
    (lambda data: data["state"].update({1: np.zeros(3, np.float32)}), tinynet.ArgumentTypeError,
     r"named by text.*received the name 1 \(int\)"),
    (lambda data: data["state"].update({("0.W", "exp_avg"): np.zeros(3)}), tinynet.ArgumentTypeError,
     r"received the name \('0.W', 'exp_avg'\) \(tuple\)"),
    (lambda data: data["state"].update({b"0.W.exp_avg": np.zeros(3)}), tinynet.ArgumentTypeError, "bytes"),
    (lambda data: data.pop("steps"), tinynet.ArgumentError, "missing 'steps', unexpected none"),
    (lambda data: data.update(epoch=3), tinynet.ArgumentError, "missing none, unexpected 'epoch'"),
], ids=["int name", "tuple name", "bytes name", "missing key", "unknown key"])
def test_an_optimizer_state_with_bad_names_or_keys_is_refused(optimizer, edit, error, message):
    """Adam, AdamW and SGD: names that are not text, missing or unknown keys: refused clearly, nothing loaded."""
    data = {"config": optimizer.get_config(), "steps": 3, "state": _moments(optimizer)}
    edit(data)
    with pytest.raises(error, match=message):
        optimizer.load_state_dict(data)
    assert optimizer.steps == 0 and optimizer.state == {}


@pytest.mark.parametrize("optimizer", _optimizers()[:2], ids=["Adam", "AdamW"])
@pytest.mark.parametrize("state, message", [
    ({"0.W.exp_avg": np.zeros((2, 3), np.float32)}, r"all of \('exp_avg', 'exp_avg_sq'\) or none; 0.W has"),
    ({"0.W.exp_avg": np.zeros((2, 3), np.float32), "0.W.exp_avg_sq": np.zeros(7, np.float32)},
     r"0.W have different shapes \[\(2, 3\), \(7,\)\]"),
], ids=["one moment", "two shapes"])
def test_adam_moments_that_do_not_pair_up_are_refused(optimizer, state, message):
    """A parameter with one of its two moments, or moments of two shapes: refused when loaded."""
    with pytest.raises(tinynet.ArgumentError, match=message):
        optimizer.load_state_dict({"config": optimizer.get_config(), "steps": 3, "state": state})
    assert optimizer.steps == 0 and optimizer.state == {}


@pytest.mark.parametrize("optimizer", _optimizers(), ids=lambda optimizer: type(optimizer).__name__)
def test_an_optimizer_state_for_other_shapes_is_refused_at_the_next_step(optimizer):
    """Moments of shape (5, 5) for a (2, 3) weight: loaded (the optimizer has not seen the model), refused at step."""
    optimizer.load_state_dict({"config": optimizer.get_config(), "steps": 3,
                               "state": {**_moments(optimizer, (5, 5)), **_moments(optimizer, (3,), "0.b")}})
    layer = Dense(2, 3, rng=0)
    layer.grads = {"W": np.ones((2, 3), np.float32), "b": np.ones(3, np.float32)}
    before = layer.params["W"].copy()
    with pytest.raises(tinynet.ArgumentError, match=r"0.W has shape \(5, 5\), the parameter \(2, 3\)"):
        optimizer.step([layer])
    np.testing.assert_array_equal(layer.params["W"], before)


def test_sgd_loads_momentum_its_loaded_settings_call_for():
    """SGD(lr=0.1).load_state_dict of a momentum run: the loaded settings decide which arrays belong."""
    source = tinynet.optim.SGD(lr=0.1, momentum=0.9)
    target = tinynet.optim.SGD(lr=0.1)
    target.load_state_dict({"config": source.get_config(), "steps": 3, "state": _moments(source)})
    assert target.momentum == 0.9 and set(target.state["0.W"]) == {"momentum_buffer"}
    with pytest.raises(tinynet.ArgumentError, match=r"unexpected state array '0.W.momentum_buffer'.*has \[\]"):
        source.load_state_dict({"config": target.get_config() | {"momentum": 0.0}, "steps": 3,
                                "state": _moments(source)})


@pytest.mark.parametrize("call, message", [
    (lambda: tinynet.gradcheck(Dense(2, 2, rng=0), np.ones((3, 2)), eps=0), "eps"),
    (lambda: tinynet.gradcheck(Dense(2, 2, rng=0), np.ones((3, 2)), entries=0), "entries"),
    (lambda: tinynet.gradcheck("Dense", np.ones((3, 2))), "a tinynet layer"),
    (lambda: tinynet.gradcheck(Dense(2, 2, rng=0), "not numbers"), "array of numbers"),
])
def test_gradcheck_refuses_what_it_cannot_check(call, message):
    """eps=0, entries=0, a string for the layer or for x: a TinynetError naming it, not ZeroDivisionError."""
    with pytest.raises(tinynet.TinynetError, match=message):
        call()


@pytest.mark.parametrize("layer", [BatchNorm1D(3), BatchNorm2D(3)], ids=["1D", "2D"])
@pytest.mark.parametrize("key, value", [("running_mean", np.nan), ("running_var", np.inf), ("running_var", -1.0)])
def test_batchnorm_refuses_running_statistics_no_batch_could_give(layer, key, value):
    """NaN, inf or negative running statistics through load_state_dict: refused, the layer unchanged."""
    state = {name: array.copy() for name, array in layer.state_dict().items()}
    state[key][1] = value
    with pytest.raises(tinynet.ArgumentError, match=key):
        layer.load_state_dict(state)
    assert np.isfinite(layer.running_var).all() and (layer.running_var == 1).all()


def test_a_model_with_bad_running_statistics_is_refused_too():
    """Sequential.load_state_dict goes through the layer: predict never sees the NaN."""
    model = tinynet.Sequential([Dense(2, 3, rng=0), BatchNorm1D(3)])
    state = {name: array.copy() for name, array in model.state_dict().items()}
    state["1.running_var"][0] = np.nan
    with pytest.raises(tinynet.ArgumentError, match="running_var"):
        model.load_state_dict(state)
    assert np.isfinite(model.predict(np.ones((2, 2), np.float32))).all()


@pytest.mark.parametrize("input_shape, expected", [((None, 1, 28, 28), ["N", 1, 28, 28]), (784, ["N", 784]),
                                                    ([784], ["N", 784])])
def test_to_onnx_takes_an_int_or_a_keras_shape(input_shape, expected, tmp_path):
    """input_shape=784 and (None, 1, 28, 28) mean one sample's shape: the graph's input has rank 2 or 4."""
    onnx = pytest.importorskip("onnx", reason="exporting needs onnx: pip install onnx")
    layers = [tinynet.layers.Flatten(), Dense(784, 10, rng=0)] if len(expected) == 4 else [Dense(784, 10, rng=0)]
    path = tmp_path / "model.onnx"
    tinynet.export.to_onnx(tinynet.Sequential(layers), path, input_shape=input_shape)
    dims = onnx.load(path).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == expected


@pytest.mark.parametrize("input_shape", [(0, 28), "784", (1.5, 2), ()])
def test_to_onnx_refuses_a_shape_that_is_not_one(input_shape, tmp_path):
    """A zero, a string, a float or an empty shape: ExportError saying what input_shape means."""
    pytest.importorskip("onnx", reason="exporting needs onnx: pip install onnx")
    with pytest.raises(tinynet.export.ExportError, match="one sample's shape"):
        tinynet.export.to_onnx(tinynet.Sequential([Dense(784, 10, rng=0)]), tmp_path / "m.onnx",
                               input_shape=input_shape)


def test_a_csv_whose_rows_have_an_extra_field_is_refused(tmp_path):
    """One field more per row than the header: refused (pandas would make the labels an index of zeros)."""
    path = tmp_path / "train.csv"
    row = ",".join(["0"] * 784)
    path.write_text(f"label,{PIXELS}\n" + "".join(f"{label},{row},\n" for label in (3, 5, 7)))
    with pytest.raises(tinynet.DatasetError, match="more fields than its header"):
        tinynet.datasets.load_kaggle_csv(path)


def test_a_semicolon_csv_gets_a_short_message_that_names_the_separator(tmp_path):
    """A ';'-separated file: a message under 400 characters that says which separator it seems to use."""
    path = tmp_path / "train.csv"
    path.write_text("label;" + PIXELS.replace(",", ";") + "\n" + "3;" + ";".join(["0"] * 784) + "\n")
    with pytest.raises(tinynet.DatasetError, match="separated by ';'") as caught:
        tinynet.datasets.load_kaggle_csv(path)
    assert len(str(caught.value)) < 400


def _mat(tmp_path, data):
    scipy_io = pytest.importorskip("scipy.io", reason="reading .mat files needs scipy")
    path = tmp_path / "mnist-original.mat"
    labels = np.repeat(np.arange(10), 7000)[None].astype(np.float64)
    scipy_io.savemat(path, {"data": data, "label": labels})
    return path


def test_a_mat_file_with_nan_pixels_is_refused(tmp_path):
    """NaN pixels in mnist-original.mat: a DatasetError, not black images."""
    data = np.zeros((784, 70000))
    data[5, 7] = np.nan
    with pytest.raises(tinynet.DatasetError, match="NaN"):
        tinynet.datasets.load_mnist_original(_mat(tmp_path, data))


def test_a_mat_file_scaled_to_one_reads_as_mnist_pixels(tmp_path):
    """Pixels saved in [0, 1]: scaled back to 0..255 (a stroke stays a stroke), not truncated to black."""
    data = np.zeros((784, 70000))
    data[100:110, :] = 1.0
    data[200, :] = 0.5
    (x_train, _), _ = tinynet.datasets.load_mnist_original(_mat(tmp_path, data))
    assert x_train.dtype == np.uint8 and x_train.reshape(60000, -1)[0, 100] == 255
    assert x_train.reshape(60000, -1)[0, 200] in (127, 128)


@pytest.fixture(name="PIL")
def pillow():
    """PIL.Image; the tests that make pictures are skipped without Pillow (tinynet reads images with it)."""
    return pytest.importorskip("PIL.Image", reason="reading images needs Pillow")


def _upright_one():
    """A dark vertical stroke on white paper with a flag at its top left: an upright '1', no symmetry."""
    paper = np.full((60, 40), 255, np.uint8)
    paper[8:52, 18:23] = 0
    paper[8:13, 10:18] = 0
    return paper


@pytest.mark.parametrize("orientation, turn", [(6, "ROTATE_90"), (8, "ROTATE_270"), (3, "ROTATE_180")])
def test_a_phone_photo_is_turned_upright_by_its_exif_orientation(orientation, turn, tmp_path, PIL):  # noqa: N803
    """A photo stored sideways with its EXIF orientation tag: prepared upright, tall, as the same '1'."""
    upright = tinynet.datasets.load_images([_save(tmp_path / "upright.png", PIL.fromarray(_upright_one()))])[0, 0]
    stored = PIL.fromarray(_upright_one()).transpose(getattr(PIL.Transpose, turn))  # what the sensor saw
    exif = PIL.Exif()
    exif[0x0112] = orientation  # "turn me this way to show me upright"
    path = tmp_path / "photo.jpg"
    stored.convert("RGB").save(path, exif=exif.tobytes(), quality=95)
    prepared = tinynet.datasets.load_images([path])[0, 0]
    rows, columns = np.nonzero(prepared > 0.5)
    assert np.ptp(rows) > 3 * max(np.ptp(columns), 1)  # tall, not a bar lying down
    assert np.abs(prepared - upright).max() < 0.35


def _save(path, image):
    image.save(path)
    return path


@pytest.mark.parametrize("ink, paper", [(10_000, 60_000), (60_000, 2_000)], ids=["dark ink", "light ink"])
def test_a_16_bit_greyscale_png_is_scaled_not_clipped(ink, paper, tmp_path, PIL):  # noqa: N803
    """16-bit grey (ink at 10000 on paper at 60000): the stroke is found, as in the 8-bit picture."""
    picture = np.where(_upright_one() == 0, ink, paper).astype(np.uint16)
    path = tmp_path / "deep.png"
    PIL.fromarray(picture).save(path)
    assert PIL.open(path).mode.startswith("I")
    eight_bit = _save(tmp_path / "flat.png", PIL.fromarray((picture // 257).astype(np.uint8)))
    prepared, reference = tinynet.datasets.load_images([path, eight_bit])[:, 0]
    assert prepared.max() > 0.9
    np.testing.assert_allclose(prepared, reference, atol=0.02)


def test_a_decompression_bomb_is_a_dataset_error(tmp_path, monkeypatch, PIL):  # noqa: N803
    """An image claiming more pixels than Pillow's limit: a DatasetError naming the file, not Pillow's own error."""
    monkeypatch.setattr(PIL, "MAX_IMAGE_PIXELS", 1000)  # the same check a 30000x30000 header trips
    path = _save(tmp_path / "bomb.png", PIL.fromarray(np.zeros((100, 100), np.uint8)))
    with pytest.raises(tinynet.DatasetError, match="bomb.png"):
        tinynet.datasets.load_images([path])
