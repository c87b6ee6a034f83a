"""What the benchmark programs say about a run: the speedrun's verdict, the kernels that ran, bad arguments."""

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import frameworks  # noqa: E402
import speedrun  # noqa: E402


def test_verdict_met_only_when_accurate_and_in_time():
    runs = [{"train_seconds": 4.0}, {"train_seconds": 4.5}]
    assert speedrun.verdict("99.0", 0.9912, runs).startswith("met: 99.12% in 4.2 s")


@pytest.mark.parametrize(("accuracy", "seconds", "missed"), [
    (0.9899, 4.0, "mean accuracy 98.99% is below 99.0%"),
    (0.9920, 5.5, "mean training time 5.5 s is over the 5 s budget"),
])
def test_verdict_says_what_was_missed(accuracy, seconds, missed):
    verdict = speedrun.verdict("99.0", accuracy, [{"train_seconds": seconds}])
    assert verdict.startswith("MISSED: ") and missed in verdict


def test_the_time_of_test_time_augmentation_counts_toward_the_budget():
    verdict = speedrun.verdict("99.0", 0.9920, [{"train_seconds": 4.0, "tta_seconds": 1.5}])
    assert verdict.startswith("MISSED: ") and "training and test-time augmentation time 5.5 s" in verdict


def test_shifted_moves_images_and_brings_in_zeros():
    images = np.arange(1, 2 * 1 * 3 * 4 + 1, dtype=np.uint8).reshape(2, 1, 3, 4)
    down = speedrun.shifted(images, 1, 0)
    assert (down[:, :, 0] == 0).all() and (down[:, :, 1:] == images[:, :, :2]).all()
    left = speedrun.shifted(images, 0, -2)
    assert (left[..., 2:] == 0).all() and (left[..., :2] == images[..., 2:]).all()
    assert (speedrun.shifted(images, 0, 0) == images).all()


def test_test_time_augmentation_averages_the_shifted_views():
    """A predict that knows only the image moved one pixel right: the average of the views finds it."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 1, 8, 8)).astype(np.uint8)
    labels = rng.integers(0, 3, 6)
    right = speedrun.shifted(images, 0, 1)

    def predict(batch):  # confident and right on the right-moved images, uniform on anything else
        known = (batch == right).all(axis=(1, 2, 3))
        probabilities = np.full((len(batch), 3), 1 / 3)
        probabilities[known] = np.eye(3)[labels[known]]
        return probabilities

    plain = dataclasses.replace(speedrun.RECIPES["99.0"], tta=0)
    accuracy, seconds, without = speedrun.evaluate(plain, predict, images, labels)
    assert seconds == 0.0 and accuracy == without == (labels == 0).mean()  # argmax of a uniform row: class 0
    accuracy, seconds, without = speedrun.evaluate(dataclasses.replace(plain, tta=1), predict, images, labels)
    assert accuracy == 1.0 and seconds > 0 and without == (labels == 0).mean()


def test_an_ensemble_averages_its_members_and_counts_each_ones_training():
    """Members trained from seeds 1000 apart; the average of their probabilities, the seconds summed."""
    calls = []

    def trainer(recipe, train, seed):
        calls.append(seed)
        return (lambda images: np.eye(3)[np.full(len(images), seed % 3)]), 1.5

    recipe = dataclasses.replace(speedrun.RECIPES["99.0"], ensemble=3)
    predict, seconds, members = speedrun.train_ensemble(trainer, recipe, None, 7)
    assert calls == [7, 1007, 2007] and seconds == 4.5 and len(members) == 3
    # the members vote classes 1, 2 and 0 (their seeds mod 3): a third each
    np.testing.assert_allclose(predict(np.zeros((2, 1, 4, 4))), np.full((2, 3), 1 / 3))
    single, seconds, members = speedrun.train_ensemble(trainer, dataclasses.replace(recipe, ensemble=1), None, 4)
    assert calls[-1] == 4 and seconds == 1.5 and (single(np.zeros((1, 1, 4, 4))) == [[0, 1, 0]]).all()


def test_the_ensemble_curve_shows_what_each_member_added():
    """Three members, each right on a different third of the images and unsure elsewhere."""
    labels = np.arange(6) % 2
    images = np.arange(6).reshape(6, 1, 1, 1).astype(np.uint8)

    def member(right_on):
        def predict(batch):
            index = batch[:, 0, 0, 0].astype(int)
            probabilities = np.tile([0.45, 0.55], (len(batch), 1))  # unsure, leaning to class 1
            known = np.isin(index, right_on)
            probabilities[known] = np.eye(2)[labels[index[known]]]
            return probabilities
        return predict

    members = [member([0, 1]), member([2, 3]), member([4, 5])]
    alone, first_k = speedrun.ensemble_curve(dataclasses.replace(speedrun.RECIPES["99.0"], tta=0), members,
                                             images, labels)
    # alone: its own two right, and class 1 elsewhere (right on the other odd images): 4/6 each
    assert alone == [4 / 6] * 3
    # first two: each confident pair outweighs one unsure vote; the last pair leans to 1 (one right)
    assert first_k == [4 / 6, 5 / 6, 1.0]


@pytest.mark.parametrize("target", ["99.0", "99.7"])
def test_the_keras_network_computes_what_the_recipes_network_computes(target):
    """Same logits from the same weights and running statistics, NCHW in tinynet and NHWC in Keras."""
    pytest.importorskip("tensorflow", reason="the speedrun's Keras side needs TensorFlow: pip install tensorflow-cpu")
    keras = frameworks.framework("keras").keras
    model = speedrun.RECIPES[target].build(rng=3)
    rng = np.random.default_rng(1)
    for layer in model.layers:  # statistics away from 0 and 1, so a misplaced one shows
        if "running_mean" in layer.buffers:
            layer.buffers["running_mean"][...] = rng.normal(size=layer.buffers["running_mean"].shape)
            layer.buffers["running_var"][...] = rng.uniform(0.5, 2, size=layer.buffers["running_var"].shape)
    images = rng.random((5, 1, 28, 28), dtype=np.float32)
    logits = np.asarray(speedrun.keras_network(model, keras)(np.moveaxis(images, 1, -1), training=False))
    np.testing.assert_allclose(logits, model.forward(images, training=False), rtol=1e-4, atol=1e-4)


def test_every_recipe_has_a_time_budget():
    assert set(speedrun.RECIPES) <= set(speedrun.TIME_BUDGETS)


def test_the_blas_named_is_numpys_even_when_scipys_loaded_first(monkeypatch):
    threadpoolctl = pytest.importorskip("threadpoolctl", reason="the BLAS is read through threadpoolctl")
    found = [{"user_api": "openmp", "internal_api": "openmp", "filepath": "/lib/libgomp.so"},
             {"user_api": "blas", "internal_api": "openblas", "version": "0.3.30", "architecture": "Haswell",
              "filepath": "/site-packages/scipy.libs/libscipy_openblas.so"},
             {"user_api": "blas", "internal_api": "openblas", "version": "0.3.31", "architecture": "SkylakeX",
              "filepath": "/site-packages/numpy.libs/libscipy_openblas64_.so"}]
    monkeypatch.setattr(threadpoolctl, "threadpool_info", lambda: found)
    assert frameworks.blas_description() == "openblas 0.3.31 (SkylakeX kernels)"
    monkeypatch.setattr(threadpoolctl, "threadpool_info", lambda: found[:2])  # no NumPy entry: the BLAS there is
    assert frameworks.blas_description() == "openblas 0.3.30 (Haswell kernels)"
    monkeypatch.setattr(threadpoolctl, "threadpool_info", lambda: found[:1])
    assert frameworks.blas_description() == "unknown"


def test_kernel_warning_names_each_forcing_variable():
    assert frameworks.kernel_warning({}) == ""
    warning = frameworks.kernel_warning({"OPENBLAS_CORETYPE": "Haswell", "HOME": "/root"})
    assert "OPENBLAS_CORETYPE=Haswell" in warning and "HOME" not in warning


def test_numba_target_names_a_cpu():
    assert frameworks.numba_target().strip()


@pytest.mark.parametrize("arguments, complaint", [
    (["99.0", "--seeds", "0"], "argument --seeds: must be at least 1, got 0"),
    (["99.0", "--seeds", "-1"], "argument --seeds: must be at least 1, got -1"),
    (["99.0", "--seeds", "2.5"], "argument --seeds: expected a whole number, got '2.5'"),
    (["99.0", "--first-seed", "-5"], "argument --first-seed: must be at least 0, got -5"),
    (["99.0", "--set", "epochs=abc"], "--set epochs=abc: epochs takes a whole number, got 'abc'"),
    (["99.0", "--set", "lr=fast"], "--set lr=fast: lr takes a number, got 'fast'"),
    (["99.0", "--set", "batchnorm=maybe"], "--set batchnorm=maybe: batchnorm takes true or false"),
    (["99.0", "--set", "unknown=1"], "--set unknown=1: no recipe field 'unknown'; the fields are width, dense"),
    (["99.0", "--set", "epochs"], "--set takes FIELD=VALUE, got 'epochs'"),
    (["99.0", "--set", "epochs=0"], "--set epochs=0: epochs must be at least 1"),
    (["99.0", "--set", "batch_size=-1"], "--set batch_size=-1: batch_size must be at least 1"),
    (["99.0", "--set", "ensemble=0"], "--set ensemble=0: ensemble must be at least 1"),
    (["99.0", "--set", "lr=-1"], "the recipe does not build: OneCycle expects max_lr to be a positive number"),
    (["99.0", "--set", "width=0"], "the recipe does not build: Conv2D expects out_channels to be a positive int"),
    (["99.0", "--set", "beta2=1"], "the recipe does not build: Adam expects beta2"),
    (["99.0", "--set", "dropout=1.5"], "the recipe does not build: Dropout expects rate"),
    (["99.0", "--set", "rotation=nan"], "the recipe does not build: random_affine expects rotation"),
    (["99.0", "--set", "pct_start=0"], "the recipe does not build: OneCycle expects pct_start"),
    (["99.0", "--set", "label_smoothing=1"], "the recipe does not build: SoftmaxCrossEntropy expects label_smoothing"),
    (["99.0", "--set", "second=-2"], "the recipe does not build: Conv2D expects out_channels to be a positive int"),
    (["99.0", "--set", "tta=-1"], "--set tta=-1: tta is a shift in pixels, from 0 (none) to 27"),
    (["99.0", "--set", "tta=28"], "--set tta=28: tta is a shift in pixels, from 0 (none) to 27"),
    (["98"], "argument target: invalid choice: '98'"),
    (["99.0", "--framework", "jax"], "argument --framework: invalid choice: 'jax'"),
])
def test_the_speedrun_checks_its_arguments_before_loading_data(tmp_path, arguments, complaint):
    """A bad argument: argparse's usage and one error line, status 2, no traceback, before MNIST is read.

    MNIST is made unreachable (an empty TINYNET_DATA and cache): had the arguments been
    accepted, loading would have failed with status 1 instead.
    """
    env = {**os.environ, "TINYNET_DATA": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, str(Path(speedrun.__file__)), *arguments], capture_output=True,
                            text=True, timeout=120, env=env)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith("speedrun.py: error: ") and complaint in errors[0], errors
    assert result.stderr.startswith("usage:") and "Traceback" not in result.stderr and result.stdout == ""


@pytest.mark.parametrize("program, arguments, complaint", [
    ("tune.py", ["today", "--seed", "-1"], "argument --seed: must be at least 0"),
    ("tune.py", ["today", "--epochs", "0"], "argument --epochs: must be at least 1"),
    ("time_to_accuracy.py", ["tinynet", "--epochs", "-3"], "argument --epochs: must be at least 1"),
    ("time_to_accuracy.py", ["tinynet", "--threads", "0"], "argument --threads: must be at least 1"),
    ("time_to_accuracy.py", ["tinynet", "--seed", "x"], "argument --seed: expected a whole number"),
    ("first_batch.py", ["--batch-size", "1"], "argument --batch-size: must be at least 2"),
    ("profile_layers.py", ["cnn", "--repeats", "3"], "argument --repeats: must be at least 4"),
    ("profile_layers.py", ["cnn", "--batch", "0"], "argument --batch: must be at least 1"),
    ("compare_revisions.py", ["{tmp}"], "is not a checkout of tinynet"),
    ("compare_revisions.py", [".", "--models", "cnn,resnet"], "--models: unknown ['resnet']"),
    ("compare_revisions.py", [".", "--pairs", "0"], "argument --pairs: must be at least 1"),
    ("profile_inference.py", ["cnn", "--rounds", "0"], "argument --rounds: must be at least 1"),
    ("profile_inference.py", ["cnn", "--batches", "128", "0"], "argument --batches: must be at least 1"),
    ("profile_inference.py", ["cnn", "--threads", "two"], "argument --threads: expected a whole number"),
    ("profile_inference.py", ["resnet"], "argument model: invalid choice: 'resnet'"),
    ("profile_lstm.py", ["--batch", "4"], "argument --batch: must be at least 8"),
    ("profile_lstm.py", ["--rounds", "0"], "argument --rounds: must be at least 1"),
])
def test_the_other_benchmark_programs_check_their_arguments_first(tmp_path, program, arguments, complaint):
    """Negative seeds, zero epochs, threads or repeats, a folder that is no checkout: status 2, before any work."""
    env = {**os.environ, "TINYNET_DATA": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, str(Path(speedrun.__file__).parent / program),
                             *[argument.format(tmp=tmp_path) for argument in arguments]],
                            capture_output=True, text=True, timeout=120, env=env,
                            cwd=Path(speedrun.__file__).parent.parent)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith(f"{program}: error: ") and complaint in errors[0], errors
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_the_lstm_profile_times_every_piece_of_a_prediction():
    """profile_lstm.py's pieces: PyTorch and tinynet whole, the input product, the steps, their products and cells."""
    pytest.importorskip("torch", reason="the profile puts PyTorch's prediction beside tinynet's: pip install torch")
    import profile_lstm

    medians, flops = profile_lstm.profile(batch=8, rounds=1)
    assert len(medians) == 6 and all(seconds > 0 for seconds in medians.values())
    assert any(name.startswith("PyTorch") for name in medians)
    assert "  of which 28 cells (compiled, products reset)" in medians
    assert flops == 2 * 8 * 128 * 4 * 128 * 28  # 28 products (8, 128) @ (128, 512)


def test_the_other_frameworks_get_the_batches_and_augmentation_of_tinynets_fit():
    """fit_batches after fit_generator: the images, in the order and with the augmentation draws fit makes,
    its Dropout seeded first and a last batch of one sample joining the one before."""
    import tinynet
    from tinynet.layers import Dense, Dropout, Flatten

    def network():
        return tinynet.Sequential([Flatten(), Dense(16, 8, rng=0), Dropout(0.5, rng=0), Dense(8, 10, rng=0)])

    def recording(seen):
        def augment(images, rng):
            seen.append(images + rng.random())  # the draw shows whether the generators are in step
            return seen[-1]
        return augment

    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (9, 1, 4, 4), dtype=np.uint8), rng.integers(0, 10, 9)
    by_fit, by_helper = [], []
    network().fit(x, y, epochs=2, batch_size=4, seed=5, verbose=0, augment=recording(by_fit))
    generator = frameworks.fit_generator(network(), 5)
    for _ in range(2):
        for _ in frameworks.fit_batches(x, 4, generator, recording(by_helper)):
            pass
    assert [len(images) for images in by_fit] == [4, 5, 4, 5]
    assert len(by_helper) == len(by_fit)
    for ours, theirs in zip(by_helper, by_fit, strict=True):
        np.testing.assert_array_equal(ours, theirs)
