"""Models built, used or saved in ways that gave silent wrong answers or files that do not load: refused clearly."""

import copy
import json
import re

import numpy as np
import pytest

import tinynet
from tinynet.layers import Dense, ReLU, Residual, Softmax, Tanh


# -- one layer object at two places -------------------------------------------------------------
def _shared_dense():
    return Dense(4, 4, rng=0)


def _places():
    """Ways to put one layer object at two places of a model, and the two places as the state names them."""
    a, b, c, d, e, f = (_shared_dense() for _ in range(6))
    inner = Residual(Dense(4, 4, rng=1))
    return [
        ("top level twice", lambda: [a, ReLU(), a], "0 and 2"),
        ("top level and inside a Residual", lambda: [b, Residual(b)], "0 and 1.0"),
        ("inside two Residuals", lambda: [Residual(c), Residual(ReLU(), c)], "0.0 and 1.1"),
        ("inside a Residual and a Residual nested in it", lambda: [Residual(Residual(d), d)], "0.0 and 1"),
        ("two levels down and at the top", lambda: [Residual(Residual(ReLU(), e)), e], "0.0.1 and 1"),
        ("one Residual in two Residuals", lambda: [Residual(inner), Residual(inner)], "0.0 and 1.0"),
        ("a Residual and its inner layer", lambda: [Residual(f), Residual(Tanh()), f], "0.0 and 2"),
    ]


@pytest.mark.parametrize("build, places", [(build, places) for _, build, places in _places()],
                         ids=[name for name, _, _ in _places()])
def test_one_layer_object_at_two_places_is_refused_when_the_model_is_built(build, places):
    """The same layer at two places (one saved forward, one grads): an error naming both places and the fix."""
    with pytest.raises(tinynet.ArgumentError, match=rf"same \w+ object at positions {places}\b.*copy\.deepcopy"):
        tinynet.Sequential(build())


def test_a_shared_layer_inside_one_residual_names_the_residual():
    """Residual(Residual(d), d) is refused by the Residual itself, with the inner places."""
    dense = _shared_dense()
    with pytest.raises(tinynet.ArgumentError, match="Residual holds the same Dense object at positions 0.0 and 1"):
        Residual(Residual(dense), dense)


def test_a_layer_shared_after_building_is_refused_before_backprop():
    """A layer shared after building (or a Residual put in itself): refused by fit and input_gradient, weights kept."""
    dense = _shared_dense()
    model = tinynet.Sequential([dense, Residual(ReLU())])
    model.layers[1].layers.append(dense)
    x, y = np.random.default_rng(0).random((8, 4), dtype=np.float32), np.arange(8) % 4
    before = dense.params["W"].copy()
    with pytest.raises(tinynet.ArgumentError, match="fit holds the same Dense object at positions 0 and 1.1"):
        model.fit(x, y, verbose=0)
    with pytest.raises(tinynet.ArgumentError, match="positions 0 and 1.1"):
        tinynet.input_gradient(model, x, y)
    np.testing.assert_array_equal(dense.params["W"], before)
    loop = Residual(ReLU())
    loop.layers.append(loop)
    with pytest.raises(tinynet.ArgumentError, match="same Residual object at positions 0 and 0.1"):
        tinynet.Sequential([loop])


def test_a_deep_copy_is_the_fix_the_message_names():
    """copy.deepcopy gives a separate layer: the model builds and its gradients match finite differences."""
    dense = Dense(3, 3, rng=0)
    model = tinynet.Sequential([dense, Tanh(), Residual(copy.deepcopy(dense), Tanh())]).astype(np.float64)
    x = np.random.default_rng(1).standard_normal((2, 3))
    y = model.forward(x, training=True)
    model.backward(np.ones_like(y))
    analytic = model.layers[0].grads["W"].copy()
    numeric = np.zeros_like(analytic)
    weights = model.layers[0].params["W"]
    for index in np.ndindex(*weights.shape):
        saved = weights[index]
        weights[index] = saved + 1e-6
        up = model.forward(x).sum()
        weights[index] = saved - 1e-6
        down = model.forward(x).sum()
        weights[index] = saved
        numeric[index] = (up - down) / 2e-6
    assert np.abs(analytic - numeric).max() <= 1e-6 * np.abs(numeric).max()


# -- input_gradient ---------------------------------------------------------------------------------
def _negative_log_probability_gradient(model, x, labels, step=1e-6):
    """d(-log model.forward(x)[i, label_i])/dx_i by central differences (the model outputs probabilities)."""
    grad = np.zeros_like(x)
    rows = np.arange(len(x))
    for index in np.ndindex(*x.shape):
        saved = x[index]
        x[index] = saved + step
        up = -np.log(model.forward(x)[rows, labels])
        x[index] = saved - step
        down = -np.log(model.forward(x)[rows, labels])
        x[index] = saved
        grad[index] = (up - down)[index[0]] / (2 * step)
    return grad


def test_input_gradient_of_a_model_ending_in_softmax_is_that_of_minus_log_p():
    """A final Softmax: the gradient of -log p[label] (what evaluate scores), checked by finite differences."""
    rng = np.random.default_rng(0)
    model = tinynet.Sequential([Dense(5, 6, rng=0), Tanh(), Dense(6, 3, rng=1), Softmax()]).astype(np.float64)
    x, labels = rng.standard_normal((4, 5)), np.array([0, 1, 2, 1])
    analytic = tinynet.input_gradient(model, x, labels, batch_size=3)
    numeric = _negative_log_probability_gradient(model, x.copy(), labels)
    assert np.abs(analytic - numeric).max() < 1e-6 * np.abs(numeric).max()


def test_input_gradient_of_a_confidently_wrong_softmax_model_does_not_vanish():
    """p[label] rounds to 0 in float32: the gradient is still p - onehot at the logits, not 0 or NaN."""
    model = tinynet.Sequential([Dense(2, 2, rng=0), Softmax()])
    model.layers[0].params["W"][...] = np.array([[200.0, -200.0], [0.0, 0.0]], np.float32)
    model.layers[0].params["b"][...] = 0
    grad = tinynet.input_gradient(model, np.array([[1.0, 0.0]], np.float32), np.array([1]))
    np.testing.assert_allclose(grad, [[400.0, 0.0]], rtol=1e-6)   # (p - onehot) @ W.T = [1, -1] @ W.T


def test_input_gradient_of_a_softmax_alone_is_p_minus_onehot():
    """A model that is one Softmax: dL/dx = softmax(x) - onehot(label)."""
    x, labels = np.array([[0.0, np.log(3.0)], [1.0, 1.0]], np.float32), np.array([1, 0])
    grad = tinynet.input_gradient(tinynet.Sequential([Softmax()]), x, labels)
    np.testing.assert_allclose(grad, [[0.25, -0.25], [-0.5, 0.5]], rtol=1e-6)


@pytest.mark.parametrize("call, error, message", [
    (lambda m, x, y: tinynet.input_gradient(m, x, y, batch_size=-1), tinynet.ArgumentError, "batch_size=-1"),
    (lambda m, x, y: tinynet.input_gradient(m, x, y, batch_size=0), tinynet.ArgumentError, "batch_size=0"),
    (lambda m, x, y: tinynet.input_gradient(m, x, y, batch_size=2.5), tinynet.ArgumentError, "batch_size=2.5"),
    (lambda m, x, y: tinynet.input_gradient(m, x, y, batch_size="8"), tinynet.ArgumentTypeError, "batch_size='8'"),
    (lambda m, x, y: tinynet.input_gradient(m, x, y, batch_size=True), tinynet.ArgumentTypeError, "batch_size=True"),
    (lambda m, x, y: tinynet.input_gradient(tinynet.Sequential([]), x, y), tinynet.ArgumentError, "no layers"),
    (lambda m, x, y: tinynet.input_gradient(m.layers, x, y), tinynet.ArgumentTypeError, "received list"),
    (lambda m, x, y: tinynet.input_gradient(tinynet.Sequential([Dense(4, 3, rng=0), Softmax(axis=0)]), x, y),
     tinynet.ArgumentError, "Softmax.axis=0."),
])
def test_input_gradient_refuses_what_it_cannot_compute(call, error, message):
    """Negative, zero or fractional batch sizes, no layers, a list for a model: a TinynetError, not garbage memory."""
    model = tinynet.Sequential([Dense(4, 3, rng=0)])
    with pytest.raises(error, match=message):
        call(model, np.ones((2, 4), np.float32), np.array([0, 1]))


# -- metadata that JSON would change --------------------------------------------------------------
@pytest.mark.parametrize("metadata, place", [
    ({"recipe": {1: "one", "1": "uno"}}, r"\['recipe'\] has the key 1 \(int\)"),
    ({"runs": [{"seed": 0}, {0.5: "half"}]}, r"\['runs'\]\[1\] has the key 0.5 \(float\)"),
    ({"a": {"b": {True: "yes", "true": "si"}}}, r"\['a'\]\['b'\] has the key True \(bool\).*'true'"),
    ({"a": {None: 1}}, r"has the key None .*'null'"),
    ({("x", 1): 1}, r"keys must be str"),
])
def test_metadata_whose_keys_json_would_rewrite_is_refused(tmp_path, metadata, place):
    """Keys that are not text at any depth (1 beside "1" would lose a value): refused on assignment and on save."""
    model = tinynet.Sequential([Dense(2, 2, rng=0)])
    with pytest.raises(tinynet.ArgumentError, match=place):
        model.metadata = metadata
    model.metadata["later"] = metadata
    with pytest.raises(tinynet.ArgumentError, match="JSON keys are text|keys must be str"):
        model.save(tmp_path / "m.npz")
    assert not list(tmp_path.iterdir())


def test_metadata_with_text_keys_comes_back_equal(tmp_path):
    """Nested text keys, including "1" and "true", survive save and load value for value."""
    model = tinynet.Sequential([Dense(2, 2, rng=0)])
    model.metadata = {"recipe": {"1": "uno", "true": [1, {"null": None}]}}
    model.save(tmp_path / "m.npz")
    assert tinynet.load_model(tmp_path / "m.npz").metadata == json.loads(json.dumps(model.metadata))
    assert tinynet.load_model(tmp_path / "m.npz").metadata == model.metadata


# -- pretrained ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [3, None, ["cnn"], {"cnn"}, b"cnn"])
def test_pretrained_with_a_name_that_is_not_text_is_refused(name):
    """pretrained(["cnn"]) and friends: an ArgumentTypeError naming the names, not 'unhashable type'."""
    with pytest.raises(tinynet.ArgumentTypeError, match=r"pretrained\(\) expects a name, one of \['cnn', 'mlp'\]"):
        tinynet.models.pretrained(name)


# -- Residuals nested deeply: what save writes, load_model reads -------------------------------------
def _nested(depth, inner=None):
    block = inner if inner is not None else Dense(3, 3, rng=0)
    for _ in range(depth):
        block = Residual(block, Tanh())
    return block


def test_residuals_nested_to_the_limit_save_and_load(tmp_path):
    """Eight levels (MAX_NESTING): written by save, read by load_model, the same predictions."""
    model = tinynet.Sequential([_nested(tinynet.layers.residual.MAX_NESTING), Dense(3, 2, rng=1)])
    model.save(tmp_path / "deep.npz")
    x = np.random.default_rng(0).random((4, 3), dtype=np.float32)
    np.testing.assert_array_equal(tinynet.load_model(tmp_path / "deep.npz").predict(x), model.predict(x))


@pytest.mark.parametrize("depth", [9, 10, 2000])
def test_residuals_nested_past_the_limit_are_refused_when_built(depth):
    """Nine levels or two thousand: an ArgumentError naming the limit and the fix, not a file that will not load."""
    with pytest.raises(tinynet.ArgumentError, match="nest at most 8 deep.*one after another"):
        _nested(depth)


def test_a_tree_nested_deeper_after_building_is_refused_by_save(tmp_path):
    """An inner list changed to nest nine deep: save refuses it with load_model's message, writing nothing."""
    model = tinynet.Sequential([_nested(8)])
    deepest = model.layers[0]
    while isinstance(deepest.layers[0], Residual):
        deepest = deepest.layers[0]
    deepest.layers[0] = Residual(Dense(3, 3, rng=0))
    with pytest.raises(tinynet.ArgumentError, match=r"save\(\): Residual layers nest at most 8 deep"):
        model.save(tmp_path / "deep.npz")
    assert not list(tmp_path.iterdir())
    model = tinynet.Sequential([Dense(3, 3, rng=0), Residual(ReLU())])
    model.layers[1].layers.append(model.layers[1])
    with pytest.raises(tinynet.ArgumentError, match=r"save\(\) holds the same Residual object at positions 1 and 1.1"):
        model.save(tmp_path / "loop.npz")
    assert not list(tmp_path.iterdir())


def _file_nested(tmp_path, depth):
    """A model file, not written by save, whose one layer is Residuals nested ``depth`` deep around a Dense."""
    entry, name = {"class": "Dense", "config": {"in_features": 3, "out_features": 3}}, "0"
    for _ in range(depth):
        entry, name = {"class": "Residual", "config": {"layers": [entry]}}, name + ".0"
    document = {"format": "tinynet.model", "version": 1, "layers": [entry]}
    arrays = {"__architecture__": np.array(json.dumps(document)),
              f"{name}.W": np.zeros((3, 3), np.float32), f"{name}.b": np.zeros(3, np.float32)}
    np.savez(tmp_path / f"nested{depth}.npz", **arrays)
    return tmp_path / f"nested{depth}.npz"


@pytest.mark.parametrize("depth", [9, 200])
def test_a_file_nested_past_the_limit_is_refused_with_the_same_message(tmp_path, depth):
    """load_model names the file, the ninth Residual's place and save's own message, once."""
    path = _file_nested(tmp_path, depth)
    with pytest.raises(tinynet.ModelFileError) as refused:
        tinynet.load_model(path)
    message = str(refused.value)
    assert message.startswith(f"{path}: layer 0{'.0' * 8} (Residual) has an invalid configuration: ")
    assert message.endswith(tinynet.layers.residual.TOO_DEEP) and message.count(str(path)) == 1
    assert isinstance(tinynet.load_model(_file_nested(tmp_path, 8))[0], Residual)


# -- neighbours: other things in a model's place, and paths that are not files --------------------
@pytest.mark.parametrize("build, message", [
    (lambda model: tinynet.Sequential([model]), r"(?s)item 0 is Sequential.*unpack it, Sequential\(\[\*model"),
    (lambda model: Residual(model), r"inner item 0 is Sequential.*Residual\(\*model\)"),
])
def test_a_model_inside_a_model_names_the_unpacking_fix(build, message):
    """A Sequential where a layer goes: an ArgumentTypeError saying to unpack its layers."""
    with pytest.raises(tinynet.ArgumentTypeError, match=message):
        build(tinynet.Sequential([Dense(3, 3, rng=0)]))


@pytest.mark.parametrize("stranger", ["x", None, tinynet.Sequential([ReLU()])], ids=["text", "None", "a model"])
def test_something_else_put_among_the_layers_later_is_refused_before_work(tmp_path, stranger):
    """model.layers or a Residual's layers given a non-layer after building: fit and save name its place."""
    model = tinynet.Sequential([Dense(4, 4, rng=0), Residual(ReLU())])
    model.layers[1].layers.append(stranger)
    x, y = np.ones((4, 4), np.float32), np.arange(4)
    with pytest.raises(tinynet.ArgumentTypeError, match=r"(?s)fit: position 1.1 holds .*not a tinynet layer"):
        model.fit(x, y, verbose=0)
    with pytest.raises(tinynet.ArgumentTypeError, match=r"save\(\): position 1.1 holds"):
        model.save(tmp_path / "m.npz")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("call", [
    lambda model, folder: model.save(folder),
    lambda model, folder: model.fit(np.ones((4, 4), np.float32), np.arange(4), verbose=0, checkpoint=folder),
], ids=["save", "fit checkpoint"])
def test_writing_a_model_to_a_folder_is_refused_before_work(tmp_path, call):
    """save(folder) or fit(checkpoint=folder): an ArgumentError naming a file path instead, weights unchanged."""
    model = tinynet.Sequential([Dense(4, 4, rng=0)])
    before = model.layers[0].params["W"].copy()
    with pytest.raises(tinynet.ArgumentError, match=rf"Cannot write {re.escape(str(tmp_path))}: it is a folder"):
        call(model, tmp_path)
    np.testing.assert_array_equal(model.layers[0].params["W"], before)
    with pytest.raises(tinynet.FolderNotFoundError, match="does not exist"):
        call(model, tmp_path / "missing" / "m.npz")
    np.testing.assert_array_equal(model.layers[0].params["W"], before)


@pytest.mark.parametrize("path", [None, 3, ["m.npz"]], ids=["None", "int", "list"])
def test_a_path_that_is_not_a_path_is_a_type_error(path):
    """save, load_model and load_checkpoint given None, a number or a list: ArgumentTypeError, not AttributeError."""
    model = tinynet.Sequential([Dense(2, 2, rng=0)])
    for call in (model.save, tinynet.load_model, tinynet.load_checkpoint):
        with pytest.raises(tinynet.ArgumentTypeError, match=r"(str or pathlib.Path).*received"):
            call(path)


@pytest.mark.parametrize("ends_in_softmax, label", [(False, "(logits)"), (True, "(probabilities)")])
def test_feature_maps_calls_a_final_softmax_s_output_probabilities(tmp_path, monkeypatch, ends_in_softmax, label):
    """The last bar chart of plots.feature_maps says logits or probabilities, as the model's last layer outputs."""
    matplotlib = pytest.importorskip("matplotlib", reason="the pictures need matplotlib")
    matplotlib.use("Agg")
    from matplotlib.axes import Axes

    from tinynet import plots

    titles = []
    original = Axes.set_title

    def set_title(axis, text, *args, **kwargs):
        titles.append(text)
        return original(axis, text, *args, **kwargs)

    monkeypatch.setattr(Axes, "set_title", set_title)
    layers = [tinynet.layers.Flatten(), Dense(784, 10, rng=0)] + ([Softmax()] if ends_in_softmax else [])
    plots.feature_maps(tinynet.Sequential(layers), np.zeros((1, 1, 28, 28), np.float32), tmp_path / "f.png")
    named = [title for title in titles if title.endswith(("(logits)", "(probabilities)"))]
    assert named == [f"{len(layers) - 1} {type(layers[-1]).__name__} (10,) {label}"], titles
