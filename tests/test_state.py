"""Model state done once: state_dict round trips, optimizer state by name, and the moves that used to corrupt a run."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tinynet
from tests.strategies import four_class_images
from tinynet.layers import Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU, Softmax
from tinynet.optim import SGD, Adam, AdamW


def _data(n=128, seed=0):
    return four_class_images(n, seed)


def _cnn(seed=0, dropout=0.25, width=4):
    return tinynet.Sequential([
        Conv2D(1, width, 3, rng=seed), ReLU(), MaxPool2D(2), Flatten(), Dropout(dropout),
        Dense(4 * width, 4, rng=seed + 1),
    ])


def _copy(state):
    return {name: array.copy() for name, array in state.items()}


def _assert_equal_states(a, b):
    assert sorted(a) == sorted(b)
    for name in a:
        assert np.array_equal(a[name], b[name]), name


# -- state_dict ------------------------------------------------------------------------------
def test_model_state_dict_round_trips_into_another_model():
    """Sequential.state_dict names every layer's arrays by position; load_state_dict copies them in."""
    trained, fresh = _cnn(), _cnn(seed=7)
    trained.fit(*_data(), epochs=1, verbose=0, seed=0)
    assert sorted(trained.state_dict()) == ["0.W", "0.b", "5.W", "5.b"]
    fresh.load_state_dict(trained.state_dict())
    x = _data()[0]
    np.testing.assert_array_equal(fresh.predict(x), trained.predict(x))


def test_model_load_state_dict_changes_nothing_when_one_entry_does_not_fit():
    """Model load state dict changes nothing when one entry does not fit."""
    model = _cnn()
    before = _copy(model.state_dict())
    wrong = {**_copy(model.state_dict()), "5.W": np.zeros((3, 3), np.float32)}
    wrong["0.W"][...] = 9.0
    with pytest.raises(ValueError, match="5.W"):
        model.load_state_dict(wrong)
    _assert_equal_states(model.state_dict(), before)


@pytest.mark.parametrize("make", [lambda: SGD(0.1, momentum=0.9), lambda: Adam(1e-2), lambda: AdamW(1e-2)],
                         ids=["SGD", "Adam", "AdamW"])
def test_optimizer_state_dict_round_trips_and_continues_identically(make):
    """Two optimizers, one restored from the other's state_dict, take identical further steps."""
    x, y = _data()
    a, b = _cnn(), _cnn()
    opt_a = make()
    a.fit(x, y, epochs=1, batch_size=32, optimizer=opt_a, verbose=0, seed=0, shuffle=False)
    b.load_state_dict(a.state_dict())
    opt_b = make()
    opt_b.load_state_dict(opt_a.state_dict())
    assert opt_b.steps == opt_a.steps == 4
    assert all(name.split(".")[-1] in opt_a.STATE_NAMES for name in opt_a.state_dict()["state"])
    for model, optimizer in ((a, opt_a), (b, opt_b)):
        model.fit(x, y, epochs=1, batch_size=32, optimizer=optimizer, verbose=0, seed=1)
    _assert_equal_states(a.state_dict(), b.state_dict())


def test_optimizer_load_state_dict_refuses_bad_state():
    """Unknown names, NaN moments, negative second moments and half-present state are refused."""
    layer = Dense(2, 1, rng=0)
    layer.grads = {"W": np.ones((2, 1), np.float32), "b": np.ones(1, np.float32)}
    good = Adam()
    good.step([layer])
    state = good.state_dict()
    for edit, message in [
        (lambda s: s["state"].update({"0.W.m": s["state"]["0.W.exp_avg"]}), "unexpected"),
        (lambda s: s["state"]["0.W.exp_avg"].__setitem__(0, np.nan), "finite"),
        (lambda s: s["state"]["0.W.exp_avg_sq"].__setitem__(0, -1.0), "negative"),
        (lambda s: s["state"].pop("0.b.exp_avg"), "all of"),
        (lambda s: s.update(steps=10**1000), "steps"),
    ]:
        broken = {"config": state["config"], "steps": state["steps"], "state": _copy(state["state"])}
        edit(broken)
        fresh = Adam()
        with pytest.raises(ValueError, match=message):
            fresh.load_state_dict(broken)
        assert fresh.steps == 0 and fresh.state == {}


# -- an optimizer used on a model it does not fit --------------------------------------------
REUSED_OPTIMIZER = textwrap.dedent(
    """
    import numpy as np, tinynet
    from tinynet.layers import Dense, Flatten
    rng = np.random.default_rng(0)
    x, y = rng.random((64, 1, 6, 6), dtype=np.float32), rng.integers(0, 4, 64)
    optimizer = tinynet.optim.Adam()
    small = tinynet.Sequential([Flatten(), Dense(36, 4, rng=0)])
    small.fit(x, y, epochs=1, optimizer=optimizer, verbose=0)
    large = tinynet.Sequential([Flatten(), Dense(36, 4096, rng=0), Dense(4096, 4, rng=1)])
    try:
        large.fit(x, y, epochs=1, optimizer=optimizer, verbose=0)
    except ValueError as error:
        print("refused:", error)
        raise SystemExit(3)
    """
)


def test_an_optimizer_reused_on_another_model_is_refused_not_a_crash():
    """The numba Adam loop is never handed moments of another model's shapes (this used to segfault)."""
    result = subprocess.run([sys.executable, "-c", REUSED_OPTIMIZER], capture_output=True, text=True, timeout=300)
    assert result.returncode == 3, result.stderr[-2000:]
    assert "used with another model" in result.stdout and "reset()" in result.stdout


def test_reset_lets_an_optimizer_start_fresh_on_another_model():
    """Reset lets an optimizer start fresh on another model."""
    x, y = _data()
    optimizer = Adam()
    _cnn().fit(x, y, epochs=1, optimizer=optimizer, verbose=0)
    other = _cnn(width=8)
    with pytest.raises(ValueError, match="another model"):
        other.fit(x, y, epochs=1, optimizer=optimizer, verbose=0)
    optimizer.reset()
    other.fit(x, y, epochs=1, optimizer=optimizer, verbose=0)
    assert optimizer.steps == 1 and optimizer.state["0.W"]["exp_avg"].shape == (8, 1, 3, 3)


def test_astype_after_training_then_checkpointing_with_the_same_optimizer_resumes(tmp_path):
    """Moments follow the parameters' dtype, so the checkpoint written after astype loads again."""
    x, y = _data()
    model, optimizer = _cnn(), Adam()
    model.fit(x, y, epochs=1, optimizer=optimizer, verbose=0, seed=0)
    model.astype(np.float64)
    model.fit(x, y, epochs=1, optimizer=optimizer, verbose=0, seed=0, checkpoint=tmp_path / "c.npz")
    saved = tinynet.load_checkpoint(tmp_path / "c.npz")
    assert saved.model.dtype == np.float64
    assert all(a.dtype == np.float64 for a in saved.optimizer.state_dict()["state"].values())


# -- the divergence guard ---------------------------------------------------------------------
@pytest.mark.parametrize("make_optimizer", [lambda: SGD(0.01, momentum=0.9), lambda: Adam(1e-3)],
                         ids=["SGD momentum", "Adam"])
def test_divergence_restores_the_optimizer_with_the_weights(make_optimizer):
    """Weights that overflow after a step are put back, and so are the momenta and the step count."""
    x, y = _data()
    model, optimizer = _cnn(), make_optimizer()
    model.fit(x, y, epochs=1, batch_size=32, optimizer=optimizer, verbose=0, seed=0)
    weights, state = _copy(model.state_dict()), optimizer.state_dict()
    momenta, steps = _copy(state["state"]), state["steps"]
    optimizer.lr = 1e300  # finite gradients, weights past float32's range after the step
    with pytest.raises(tinynet.TrainingDivergedError, match="a weight"):
        model.fit(x, y, epochs=1, batch_size=32, optimizer=optimizer, verbose=0, seed=0)
    _assert_equal_states(model.state_dict(), weights)
    _assert_equal_states(optimizer.state_dict()["state"], momenta)
    assert optimizer.steps == steps


def test_divergence_at_the_first_step_leaves_a_fresh_optimizer_and_the_batchnorm_statistics():
    """Diverging at the first batch puts back the weights and the BatchNorm's running statistics (which its forward
    moved) and leaves the optimizer as new: no moments (they did not exist before), no step counted."""
    x, y = _data()
    model = tinynet.Sequential([Conv2D(1, 4, 3, rng=0), tinynet.layers.BatchNorm2D(4), ReLU(), MaxPool2D(2),
                                Flatten(), Dense(4 * 2 * 2, 4, rng=1)])
    before, optimizer = _copy(model.state_dict()), Adam(1e300)
    with pytest.raises(tinynet.TrainingDivergedError, match="epoch 1, batch 1"):
        model.fit(x, y, epochs=1, batch_size=32, optimizer=optimizer, verbose=0, seed=0)
    _assert_equal_states(model.state_dict(), before)
    assert optimizer.state_dict()["state"] == {} and optimizer.steps == 0
    model.fit(x, y, epochs=1, batch_size=32, optimizer=Adam(1e-3), verbose=0, seed=0)  # and it trains on


# -- resume compares configurations -------------------------------------------------------------
def test_resume_refuses_a_checkpoint_with_other_layer_settings(tmp_path):
    """Dropout(0.5) does not resume into Dropout(0.1): the configurations are compared, not only the shapes."""
    x, y = _data()
    _cnn(dropout=0.5).fit(x, y, epochs=1, verbose=0, seed=0, checkpoint=tmp_path / "c.npz")
    other = _cnn(dropout=0.1)
    before = _copy(other.state_dict())
    difference = r"configuration: layer 4 is Dropout\(rate=0\.5\) there, Dropout\(rate=0\.1\) here"
    with pytest.raises(tinynet.ModelFileError, match=difference):
        other.fit(x, y, epochs=2, verbose=0, seed=0, checkpoint=tmp_path / "c.npz", resume=True)
    _assert_equal_states(other.state_dict(), before)


# -- models that would train wrongly ------------------------------------------------------------
def test_the_same_layer_object_twice_is_refused():
    """The same layer object twice is refused."""
    relu = ReLU()
    with pytest.raises(ValueError, match="positions 1 and 3.*its own layer"):
        tinynet.Sequential([Dense(4, 4, rng=0), relu, Dense(4, 4, rng=1), relu])


def test_a_final_softmax_is_refused_by_fit_and_evaluated_correctly():
    """fit refuses softmax-then-cross-entropy; evaluate scores the probabilities as -log p[label]."""
    x, y = _data()
    logits_model = tinynet.Sequential([Flatten(), Dense(36, 4, rng=0)])
    softmax_model = tinynet.Sequential([Flatten(), Dense(36, 4, rng=0), Softmax()])
    with pytest.raises(ValueError, match="ends in a Softmax layer.*Remove the final Softmax"):
        softmax_model.fit(x, y, verbose=0)
    expected, found = logits_model.evaluate(x, y), softmax_model.evaluate(x, y)
    assert found["loss"] == pytest.approx(expected["loss"], rel=1e-5)
    assert found["accuracy"] == expected["accuracy"]


# -- what save writes, load_model reads ---------------------------------------------------------
def test_save_refuses_mixed_dtypes_and_non_finite_weights(tmp_path):
    """Save refuses mixed dtypes and non finite weights."""
    mixed = tinynet.Sequential([Dense(3, 3, rng=0), Dense(3, 2, rng=1).astype(np.float64)])
    with pytest.raises(ValueError, match=r"all float32 or all float64.*astype"):
        mixed.save(tmp_path / "mixed.npz")
    broken = tinynet.Sequential([Dense(3, 2, rng=0)])
    broken[0].params["W"][0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        broken.save(tmp_path / "nan.npz")
    assert list(tmp_path.iterdir()) == []  # nothing written, not even a temporary file
    mixed.astype(np.float32).save(tmp_path / "fixed.npz")
    assert tinynet.load_model(tmp_path / "fixed.npz").dtype == np.float32


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_vision_transformer_round_trips_through_a_file(dtype, tmp_path):
    """vit() with a causal attention block, trained a step: configs, every state array and predictions come back."""
    model = tinynet.models.vit(rng=0, depth=1)
    model.layers.insert(5, tinynet.layers.Residual(tinynet.layers.LayerNorm(64, eps=1e-3),
                                                   tinynet.layers.MultiHeadAttention(64, 2, causal=True, rng=1)))
    model.layers.insert(6, tinynet.layers.GELU("tanh"))
    model = tinynet.Sequential(model.layers).astype(dtype)
    x = np.random.default_rng(0).random((8, 1, 28, 28)).astype(dtype)
    model.fit(x, np.arange(8) % 10, epochs=1, batch_size=4, verbose=0, seed=0)
    model.save(tmp_path / "vit.npz")
    loaded = tinynet.load_model(tmp_path / "vit.npz")
    assert [repr(layer) for layer in loaded] == [repr(layer) for layer in model]
    _assert_equal_states(loaded.state_dict(), model.state_dict())
    assert loaded.dtype == dtype
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_float64_models_with_every_layer_type_round_trip(tmp_path):
    """Float64 models with every layer type round trip."""
    model = tinynet.Sequential([
        Conv2D(1, 2, 3, padding=1, rng=0), ReLU(), tinynet.layers.AvgPool2D(2), MaxPool2D(1),
        tinynet.layers.Reshape((3, -1)), Flatten(), Dropout(0.1), Dense(18, 5, rng=0),
        tinynet.layers.LeakyReLU(0.2), tinynet.layers.Tanh(),
        tinynet.layers.Sigmoid(), Dense(5, 3, rng=1), Softmax(),
    ]).astype(np.float64)
    model.save(tmp_path / "m.npz")
    loaded = tinynet.load_model(tmp_path / "m.npz")
    assert [layer.get_config() for layer in loaded] == [layer.get_config() for layer in model]
    _assert_equal_states(loaded.state_dict(), model.state_dict())
    x = np.random.default_rng(0).random((2, 1, 6, 6))
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_checkpoints_of_version_1_still_load(tmp_path):
    """A checkpoint that named Adam's moments by position (optimizer.<p>.m) resumes as before."""
    import io
    import json

    x, y = _data()
    model = _cnn()
    model.fit(x, y, epochs=1, verbose=0, seed=0, checkpoint=tmp_path / "new.npz")
    with np.load(tmp_path / "new.npz") as archive:
        arrays = {name: archive[name] for name in archive.files}
    meta = json.loads(str(arrays.pop("__checkpoint__")))
    meta["version"] = 1
    meta["optimizer"]["parameters"] = 4
    positions = ["0.W", "0.b", "5.W", "5.b"]
    old = {}
    for name in list(arrays):
        if name.startswith("optimizer."):
            param, state_name = name[len("optimizer."):].rsplit(".", 1)
            old[f"optimizer.{positions.index(param)}.{ {'exp_avg': 'm', 'exp_avg_sq': 'v'}[state_name]}"] = (
                arrays.pop(name))
    buffer = io.BytesIO()
    np.savez(buffer, __checkpoint__=np.array(json.dumps(meta)), **arrays, **old)
    (tmp_path / "old.npz").write_bytes(buffer.getvalue())
    new, old_loaded = tinynet.load_checkpoint(tmp_path / "new.npz"), tinynet.load_checkpoint(tmp_path / "old.npz")
    _assert_equal_states(old_loaded.optimizer.state_dict()["state"], new.optimizer.state_dict()["state"])
