"""Reliability: bad input changes nothing, checkpoints resume bit for bit, Ctrl-C stops cleanly, files are data."""

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tinynet
from tests.strategies import four_class_images
from tinynet.layers import Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU


def _data(n=256, seed=0):
    return four_class_images(n, seed)


def _cnn(seed=0):
    return tinynet.Sequential([
        Conv2D(1, 4, 3, rng=seed), ReLU(), MaxPool2D(2), Flatten(), Dropout(0.25), Dense(16, 4, rng=seed + 1),
    ])


def _weights(model):
    return {key: array.copy() for key, array in model.params.items()}


def _assert_same_weights(model, weights):
    assert model.params.keys() == weights.keys()
    for key, array in model.params.items():
        assert np.array_equal(array, weights[key]), f"{key} changed"


# -- bad input: a clear error, and the weights exactly as they were ----------------------------
X, Y = _data()
BAD_FIT_CALLS = {
    "labels out of range": (dict(x=X, y=Y + 10), ValueError, r"labels in 0\.\.3"),
    "float labels": (dict(x=X, y=Y.astype(float)), TypeError, "integer class labels"),
    "x/y length mismatch": (dict(x=X, y=Y[:-1]), ValueError, r"labels of shape \(256,\)"),
    "empty x": (dict(x=X[:0], y=Y[:0]), ValueError, "non-empty"),
    "NaN in x": (dict(x=np.where(np.arange(256)[:, None, None, None] == 7, np.nan, X), y=Y), ValueError, "NaN"),
    "inf in x": (dict(x=X + np.float32(np.inf), y=Y), ValueError, "inf"),
    "integer x": (dict(x=(X * 255).astype(np.int64), y=Y), TypeError, "uint8"),
    "object x": (dict(x=X.astype(object), y=Y), TypeError, "dtype object"),
    "flat x into a CNN": (dict(x=X.reshape(256, 36), y=Y), ValueError, r"Conv2D"),
    "missing channel axis": (dict(x=X[:, 0], y=Y), ValueError, r"x\[:, None\]"),
    "batch_size 0": (dict(x=X, y=Y, batch_size=0), ValueError, "batch_size"),
    "negative epochs": (dict(x=X, y=Y, epochs=-1), ValueError, "epochs"),
    "bad validation labels": (dict(x=X, y=Y, validation_data=(X, Y + 4)), ValueError, r"fit\(validation_data\)"),
    "validation not a pair": (dict(x=X, y=Y, validation_data=X), TypeError, r"\(x_val, y_val\)"),
    "resume without a path": (dict(x=X, y=Y, resume=True), ValueError, "checkpoint=PATH"),
    "unknown optimizer name": (dict(x=X, y=Y, optimizer="adamax"), ValueError, r"optimizer 'adamax'.*'adam'"),
    "optimizer of another kind": (dict(x=X, y=Y, optimizer=0.01), TypeError, r"optimizer.*tinynet Optimizer"),
    "unknown loss name": (dict(x=X, y=Y, loss="hinge"), ValueError, r"loss 'hinge'.*'mse'"),
    "loss of another kind": (dict(x=X, y=Y, loss=len), TypeError, r"loss.*tinynet Loss"),
    "schedule as a number": (dict(x=X, y=Y, lr_schedule=0.01), TypeError, "function of the step"),
    "schedule shorter than the run": (dict(x=X, y=Y, lr_schedule=tinynet.schedules.CosineDecay(0.01, 3)),
                                      ValueError, r"total_steps=3, shorter than the run: 2 epochs x 2 batches = 4"),
}


@pytest.mark.parametrize("case", list(BAD_FIT_CALLS))
def test_bad_fit_call_is_a_clear_error_and_changes_nothing(case):
    """Each wrong argument to fit raises a message naming it, before any weight moves."""
    kwargs, error, message = BAD_FIT_CALLS[case]
    model = _cnn()
    before = _weights(model)
    with pytest.raises(error, match=message):
        model.fit(epochs=kwargs.pop("epochs", 2), verbose=0, seed=0, **kwargs)
    _assert_same_weights(model, before)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m: m.predict(X[:, 0]), r"x\[:, None\]"),
        (lambda m: m.predict(X, batch_size=0), "batch_size"),
        (lambda m: m.evaluate(X, Y[:10]), r"labels of shape \(256,\)"),
        (lambda m: m.evaluate(np.full_like(X, np.nan), Y), "NaN"),
    ],
)
def test_bad_predict_or_evaluate_call_changes_nothing(call, message):
    """predict and evaluate check their input the same way and never touch the weights."""
    model = _cnn()
    before = _weights(model)
    with pytest.raises((ValueError, TypeError), match=message):
        call(model)
    _assert_same_weights(model, before)


def test_keras_names_for_optimizer_and_loss_are_accepted():
    """optimizer="adam" and loss="sparse_categorical_crossentropy" train as the objects would."""
    by_name, by_object = _cnn(), _cnn()
    by_name.fit(X, Y, epochs=1, seed=0, verbose=0, optimizer="adam", loss="sparse_categorical_crossentropy")
    by_object.fit(X, Y, epochs=1, seed=0, verbose=0, optimizer=tinynet.optim.Adam(),
                  loss=tinynet.losses.SoftmaxCrossEntropy())
    _assert_same_weights(by_name, _weights(by_object))
    assert isinstance(by_name.loss, tinynet.losses.SoftmaxCrossEntropy)


def test_a_model_without_layers_is_a_clear_error():
    """A model without layers is a clear error."""
    empty = tinynet.Sequential([])
    for call in (lambda: empty.fit(X, Y, verbose=0), lambda: empty.predict(X), lambda: empty.evaluate(X, Y)):
        with pytest.raises(ValueError, match="no layers"):
            call()


# -- checkpoints -----------------------------------------------------------------------------
def _fit(model, path, epochs, **kwargs):
    return model.fit(*_data(), epochs=epochs, batch_size=32, seed=3, verbose=0, checkpoint=path,
                     augment=tinynet.augment.random_shift(1), **kwargs)


def test_resumed_run_ends_bit_for_bit_like_an_uninterrupted_one(tmp_path):
    """Train 2 epochs, stop, resume to 5 in a fresh model: weights and history equal a straight 5-epoch run."""
    straight = _cnn()
    straight_history = _fit(straight, tmp_path / "straight.npz", epochs=5)

    first_half = _cnn()
    _fit(first_half, tmp_path / "run.npz", epochs=2)
    resumed = _cnn(seed=99)  # different initial weights: everything must come from the checkpoint
    history = _fit(resumed, tmp_path / "run.npz", epochs=5, resume=True)

    _assert_same_weights(resumed, straight.params)
    assert history.epochs == 5
    for key in ("loss", "accuracy", "lr"):
        assert history.history[key] == straight_history.history[key]
    assert tinynet.load_checkpoint(tmp_path / "run.npz").epoch == 5


def test_resume_without_a_checkpoint_file_starts_from_scratch(tmp_path):
    """resume=True with no file yet is a first run (so one command serves both)."""
    fresh, resumed = _cnn(), _cnn()
    _fit(fresh, None, epochs=2)
    _fit(resumed, tmp_path / "new.npz", epochs=2, resume=True)
    _assert_same_weights(resumed, fresh.params)


def test_checkpoint_holds_weights_optimizer_epoch_history_and_rng(tmp_path):
    """load_checkpoint gives back everything needed to continue, and load_model reads its model."""
    model = _cnn()
    optimizer = tinynet.optim.Adam(lr=3e-3)
    _fit(model, tmp_path / "c.npz", epochs=2, optimizer=optimizer)
    saved = tinynet.load_checkpoint(tmp_path / "c.npz")
    _assert_same_weights(saved.model, model.params)
    assert saved.epoch == 2 and saved.history.epochs == 2
    assert isinstance(saved.optimizer, tinynet.optim.Adam) and saved.optimizer.steps == optimizer.steps == 16
    assert saved.optimizer.lr == 3e-3
    mine, theirs = optimizer.state_dict()["state"], saved.optimizer.state_dict()["state"]
    assert sorted(mine) == sorted(theirs) and "0.W.exp_avg_sq" in mine
    assert all(np.array_equal(mine[name], theirs[name]) for name in mine)
    assert saved.layer_rng_states[4] == model.layers[4].rng.bit_generator.state  # the Dropout layer
    _assert_same_weights(tinynet.load_model(tmp_path / "c.npz"), model.params)


def test_resume_refuses_a_checkpoint_of_another_model_and_changes_nothing(tmp_path):
    """Resume refuses a checkpoint of another model and changes nothing."""
    _fit(_cnn(), tmp_path / "c.npz", epochs=1)
    other = tinynet.Sequential([Flatten(), Dense(36, 4, rng=0)])
    before = _weights(other)
    with pytest.raises(tinynet.ModelFileError, match="different model"):
        _fit(other, tmp_path / "c.npz", epochs=2, resume=True)
    _assert_same_weights(other, before)
    with pytest.raises(tinynet.ModelFileError, match="SGD"):
        _fit(_cnn(), tmp_path / "c.npz", epochs=2, resume=True, optimizer=tinynet.optim.SGD(lr=0.1))


def test_a_crash_while_writing_a_checkpoint_leaves_the_previous_one(tmp_path, monkeypatch):
    """The write goes to a temporary file first: a failure half-way leaves the old checkpoint loadable."""
    path = tmp_path / "c.npz"
    _fit(_cnn(), path, epochs=1)
    before = path.read_bytes()

    def half_written(handle, **arrays):
        handle.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(tinynet.checkpoint.np, "savez", half_written)
    with pytest.raises(OSError, match="disk full"):
        _fit(_cnn(), path, epochs=1)
    assert path.read_bytes() == before
    assert tinynet.load_checkpoint(path).epoch == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]  # no temporary file left behind


KILLED_RUN = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np
    import tinynet
    from tinynet.layers import Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU

    path, out, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 256)
    x = rng.random((256, 1, 6, 6), dtype=np.float32) * 0.3
    for label in range(4):
        x[y == label, 0, label, :] += 0.7
    model = tinynet.Sequential([Conv2D(1, 4, 3, rng=0), ReLU(), MaxPool2D(2), Flatten(), Dropout(0.25),
                                Dense(16, 4, rng=1)])
    calls = 0

    def shift_or_die(batch, generator):
        global calls
        calls += 1
        if calls == kill_at:  # the process dies mid-epoch, as on a power cut or an OOM kill
            os.kill(os.getpid(), signal.SIGKILL)
        return tinynet.augment.random_shift(1)(batch, generator)

    model.fit(x, y, epochs=5, batch_size=32, seed=3, verbose=0, checkpoint=path, resume=True,
              augment=shift_or_die, lr_schedule=tinynet.schedules.ExponentialDecay(1e-2, 0.8, steps=8))
    model.save(out)
    """
)


def test_a_killed_training_process_resumes_to_the_same_weights(tmp_path):
    """SIGKILL a training subprocess in its 3rd epoch, run it again: same final weights as an unkilled run."""
    script = tmp_path / "train.py"
    script.write_text(KILLED_RUN)

    def run(checkpoint, out, kill_at):
        return subprocess.run([sys.executable, str(script), str(checkpoint), str(out), str(kill_at)],
                              capture_output=True, text=True, timeout=300, check=False)

    straight = run(tmp_path / "straight.npz", tmp_path / "straight_model.npz", kill_at=0)
    assert straight.returncode == 0, straight.stderr

    killed = run(tmp_path / "run.npz", tmp_path / "model.npz", kill_at=8 * 2 + 5)  # 8 batches per epoch
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "model.npz").exists()
    assert tinynet.load_checkpoint(tmp_path / "run.npz").epoch == 2  # epochs 1 and 2 were saved

    resumed = run(tmp_path / "run.npz", tmp_path / "model.npz", kill_at=0)
    assert resumed.returncode == 0, resumed.stderr
    _assert_same_weights(tinynet.load_model(tmp_path / "model.npz"),
                         tinynet.load_model(tmp_path / "straight_model.npz").params)


# -- Ctrl-C ----------------------------------------------------------------------------------
def _interrupting_augment(at_calls):
    calls = {"n": 0}

    def augment(batch, generator):
        calls["n"] += 1
        if calls["n"] in at_calls:
            signal.raise_signal(signal.SIGINT)
        return batch

    return augment


@pytest.fixture
def ctrl_c_raises():
    """SIGINT handled as in an interactive Python, whatever the test runner was started with."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_stops_at_the_end_of_the_batch_and_keeps_the_history(ctrl_c_raises):
    """Ctrl-C in epoch 2, batch 3: that batch finishes, fit raises KeyboardInterrupt saying so, history kept."""
    model, optimizer = _cnn(), tinynet.optim.Adam()
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt, match="after epoch 2, batch 3 of 8"):
        model.fit(*_data(), epochs=5, batch_size=32, seed=0, verbose=0, optimizer=optimizer,
                  augment=_interrupting_augment({8 + 3}))
    assert optimizer.steps == 8 + 3  # whole batches only
    assert model.history.epochs == 1
    assert all(np.isfinite(array).all() for array in model.params.values())
    assert model.evaluate(*_data())["accuracy"] > 0.25  # still a working model
    assert signal.getsignal(signal.SIGINT) is before  # the handler fit found is back


def test_an_ignored_ctrl_c_stays_ignored():
    """Started in the background (SIGINT ignored), fit leaves it ignored, trains to the end, restores nothing else."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        model, optimizer = _cnn(), tinynet.optim.Adam()
        model.fit(*_data(), epochs=2, batch_size=32, seed=0, verbose=0, optimizer=optimizer,
                  augment=_interrupting_augment({3}))
        assert optimizer.steps == 16 and model.history.epochs == 2
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_second_ctrl_c_stops_at_once(ctrl_c_raises):
    """Two Ctrl-C in a row do not wait for the batch to end."""
    model, optimizer = _cnn(), tinynet.optim.Adam()
    with pytest.raises(KeyboardInterrupt, match="second Ctrl-C"):
        model.fit(*_data(), epochs=1, batch_size=32, seed=0, verbose=0, optimizer=optimizer,
                  augment=_double_interrupt(at_call=2))
    assert optimizer.steps == 1  # the second batch never reached its optimizer step


def _double_interrupt(at_call):
    calls = {"n": 0}

    def augment(batch, generator):
        calls["n"] += 1
        if calls["n"] == at_call:
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)
        return batch

    return augment


# -- files from elsewhere are data, never code ----------------------------------------------
def _model_file_bytes():
    buffer = io.BytesIO()
    np.savez(buffer, **tinynet.serialization.model_arrays(_cnn()))
    return buffer.getvalue()


MODEL_BYTES = _model_file_bytes()


def _checkpoint_bytes(tmp_dir):
    path = tmp_dir / "c.npz"
    _fit(_cnn(), path, epochs=1)
    return path.read_bytes()


def _load_and_expect_only_tinynet_errors(path, loader):
    try:
        loader(path)
    except tinynet.ModelFileError:
        pass


FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(data=st.binary(max_size=2000))
def test_random_bytes_give_only_model_file_errors(tmp_path, data):
    """Random bytes give only model file errors."""
    path = tmp_path / "random.npz"
    path.write_bytes(data)
    for loader in (tinynet.load_model, tinynet.load_checkpoint):
        _load_and_expect_only_tinynet_errors(path, loader)


@FUZZ
@given(cut=st.integers(0, len(MODEL_BYTES) - 1))
def test_truncated_model_files_give_model_file_errors(tmp_path, cut):
    """Truncated model files give model file errors."""
    path = tmp_path / "cut.npz"
    path.write_bytes(MODEL_BYTES[:cut])
    with pytest.raises(tinynet.ModelFileError):
        tinynet.load_model(path)


@FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, len(MODEL_BYTES) - 1), st.integers(0, 255)), min_size=1, max_size=8))
def test_corrupted_model_files_give_model_file_errors_or_load(tmp_path, edits):
    """Overwritten bytes anywhere: a ModelFileError, or (if only weight bytes changed) a loaded model."""
    corrupted = bytearray(MODEL_BYTES)
    for position, value in edits:
        corrupted[position] = value
    path = tmp_path / "edited.npz"
    path.write_bytes(bytes(corrupted))
    _load_and_expect_only_tinynet_errors(path, tinynet.load_model)


@settings(max_examples=40, deadline=None)
@given(cut=st.floats(0, 1, exclude_max=True), edit=st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)))
def test_truncated_or_corrupted_checkpoints_give_model_file_errors(tmp_path_factory, cut, edit):
    """Truncated or corrupted checkpoints give model file errors."""
    folder = tmp_path_factory.mktemp("checkpoint")
    original = _checkpoint_bytes(folder)
    truncated = folder / "cut.npz"
    truncated.write_bytes(original[: int(cut * len(original))])
    with pytest.raises(tinynet.ModelFileError):
        tinynet.load_checkpoint(truncated)
    corrupted = bytearray(original)
    corrupted[int(edit[0] * len(original))] = edit[1]
    edited = folder / "edited.npz"
    edited.write_bytes(bytes(corrupted))
    _load_and_expect_only_tinynet_errors(edited, tinynet.load_checkpoint)


def _with_architecture(layers, arrays=None):
    buffer = io.BytesIO()
    architecture = {"format": "tinynet.model", "version": 1, "layers": layers}
    np.savez(buffer, __architecture__=np.array(json.dumps(architecture)), **(arrays or {}))
    return buffer.getvalue()


@pytest.mark.parametrize(
    "layers, message",
    [
        ([{"class": "Dense", "config": {"in_features": 20_000, "out_features": 10_000}}], "missing"),
        ([{"class": "Dense", "config": {"in_features": 30_000, "out_features": 10_000}}], "more than"),
        ([{"class": "Dense", "config": {"in_features": 10**6, "out_features": 10**6}}], "too large"),
        ([{"class": "Dense", "config": {"in_features": 10**12, "out_features": 10**12}}], "too large|invalid"),
        ([{"class": "Dense", "config": {"in_features": "784", "out_features": 10}}], "invalid configuration"),
        ([{"class": "Dense", "config": {"in_features": 4, "out_features": 2, "evil": 1}}], "invalid configuration"),
        (["Dense"], "not described"),
        ([{"class": ["Dense"]}], "unknown type"),
        ({"class": "Dense"}, "no list of layers"),
    ],
)
def test_lying_architectures_are_refused_without_allocating(tmp_path, layers, message):
    """An architecture that describes huge or malformed layers is refused quickly, nothing allocated."""
    path = tmp_path / "lying.npz"
    path.write_bytes(_with_architecture(layers))
    with pytest.raises(tinynet.ModelFileError, match=message):
        tinynet.load_model(path)


def test_a_model_file_is_not_a_checkpoint(tmp_path):
    """A model file is not a checkpoint."""
    path = tmp_path / "m.npz"
    path.write_bytes(MODEL_BYTES)
    with pytest.raises(tinynet.ModelFileError, match="not a checkpoint"):
        tinynet.load_checkpoint(path)
    with zipfile.ZipFile(path) as archive:
        assert "__architecture__.npy" in archive.namelist()


def test_checkpoint_writes_only_data(tmp_path):
    """Every array in a checkpoint loads with allow_pickle=False."""
    path = tmp_path / "c.npz"
    path.write_bytes(_checkpoint_bytes(tmp_path))
    with np.load(path, allow_pickle=False) as archive:
        assert all(archive[name].dtype != object for name in archive.files)
    assert os.path.getsize(path) > 0


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_non_finite_value_anywhere_is_found(value, dtype):
    """A single NaN or inf among many ordinary values is refused by fit, evaluate and predict alike."""
    x = np.random.default_rng(0).random((50, 1, 6, 6)).astype(dtype)
    x[37, 0, 4, 1] = value
    model = _cnn()
    with pytest.raises(ValueError, match="NaN or inf"):
        model.predict(x)
    with pytest.raises(ValueError, match="NaN or inf"):
        model.evaluate(x, np.zeros(50, int))


def _dense_first(seed=0):
    return tinynet.Sequential([Flatten(), Dense(36, 32, rng=seed), ReLU(), Dense(32, 4, rng=seed + 1)])


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("rows, batch_size", [(1, 1000), (40, 1000), (300, 128)])
def test_a_dense_first_model_refuses_one_non_finite_value_in_any_batch(value, rows, batch_size):
    """One NaN or inf refused by a model whose first layer is a Dense layer (the ReLU after it would turn -inf into
    0): one image, a batch of several (in tiles where the CPU has them), a later batch of several."""
    x = np.random.default_rng(0).random((rows, 1, 6, 6)).astype(np.float32)
    x[rows - 1, 0, 5, 2] = value
    with pytest.raises(ValueError, match="NaN or inf"):
        _dense_first().predict(x, batch_size=batch_size)
    with pytest.raises(ValueError, match="NaN or inf"):
        _dense_first().evaluate(x, np.zeros(rows, int), batch_size=batch_size)


def test_a_dense_first_model_takes_inputs_whose_sums_overflow():
    """Finite inputs whose first sums overflow float32 are not refused: the inputs are looked at, not the sums."""
    x = np.full((40, 1, 6, 6), 1e38, np.float32)
    model = _dense_first()
    with np.errstate(over="ignore", invalid="ignore"):  # the overflow is the point; NumPy's product says so
        assert not np.isfinite(x.reshape(40, -1) @ model.layers[1].params["W"]).all()
        assert model.predict(x).shape == (40, 4)


def test_huge_but_finite_inputs_are_accepted():
    """Values of 1e20, whose squares would overflow float32, are finite, and are taken."""
    x = np.full((4, 1, 6, 6), 1e20, np.float32)  # x . x = 1.4e42 overflows float32
    assert _cnn().predict(x).shape == (4, 4)
