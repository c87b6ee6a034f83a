"""The MNIST examples run end to end: summary, training, comparison table, saved model, pictures."""

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import tinynet

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_mlp_example_trains_saves_and_draws(tmp_path, mnist_dir):
    """One epoch of examples/mnist_mlp.py: above 90% test accuracy, a loadable model, five PNGs."""
    model_path, plots = tmp_path / "mlp.npz", tmp_path / "plots"
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "mnist_mlp.py"), "--epochs", "1", "--verbose", "0",
         "--data-dir", str(mnist_dir), "--save", str(model_path), "--plots", str(plots)],
        capture_output=True, text=True, timeout=300, check=True,
    )
    assert "Total params: 101,770" in result.stdout
    assert "reference: Keras notebook, Model-1 [Basic]" in result.stdout and "97.94%" in result.stdout
    (_, _), (x_test, y_test) = tinynet.datasets.load_mnist(mnist_dir, download=False)
    accuracy = tinynet.load_model(model_path).evaluate(x_test[:, None], y_test)["accuracy"]
    assert accuracy > 0.9
    assert f"{accuracy:.2%}" in result.stdout
    pictures = sorted(p.name for p in plots.glob("*.png"))
    assert pictures == ["class_counts.png", "confusion_matrix.png", "dense_weights.png", "feature_maps.png",
                        "learning_curves.png", "most_wrong.png", "predictions.png", "samples.png"]
    assert all((plots / name).stat().st_size > 5000 for name in pictures)


def test_lstm_example_trains_saves_and_draws(tmp_path, mnist_dir):
    """A quick run of examples/mnist_lstm.py (2,000 images, one epoch): the summary, a model whose saved
    provenance names lstm_rows and the clipping, the accuracy it prints, its pictures."""
    model_path, plots = tmp_path / "lstm.npz", tmp_path / "plots"
    result = _run_example("mnist_lstm.py", "--epochs", "1", "--images", "2000", "--verbose", "0",
                          "--data-dir", str(mnist_dir), "--save", str(model_path), "--plots", str(plots),
                          tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Total params: 81,674" in result.stdout and "2,000 training images" in result.stdout
    model = tinynet.load_model(model_path)
    recipe = model.metadata["recipe"]
    assert recipe["model"] == "tinynet.models.lstm_rows" and recipe["clip_norm"] == 1.0
    assert recipe["training_images"] == 2000
    (_, _), (x_test, y_test) = tinynet.datasets.load_mnist(mnist_dir, download=False)
    accuracy = model.evaluate(x_test[:, None], y_test)["accuracy"]
    assert accuracy > 0.2 and f"{accuracy:.2%}" in result.stdout  # ten classes: chance is 10%
    pictures = sorted(p.name for p in plots.glob("*.png"))
    assert pictures == ["class_counts.png", "confusion_matrix.png", "feature_maps.png", "learning_curves.png",
                        "most_wrong.png", "predictions.png", "samples.png"]


def test_vit_example_trains_saves_and_draws_its_attention(tmp_path, mnist_dir):
    """A quick run of examples/mnist_vit.py (10,000 images, one epoch): the summary, a model whose saved
    provenance names vit, the accuracy it prints, its pictures including where each patch looks."""
    model_path, plots = tmp_path / "vit.npz", tmp_path / "plots"
    result = _run_example("mnist_vit.py", "--epochs", "1", "--images", "10000", "--verbose", "0",
                          "--data-dir", str(mnist_dir), "--save", str(model_path), "--plots", str(plots),
                          tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Total params: 71,946" in result.stdout and "PositionalEmbedding" in result.stdout
    model = tinynet.load_model(model_path)
    assert model.metadata["recipe"]["model"] == "tinynet.models.vit" and model.metadata["recipe"]["epochs"] == 1
    assert model.metadata["made_by"].startswith("python examples/mnist_vit.py")
    (_, _), (x_test, y_test) = tinynet.datasets.load_mnist(mnist_dir, download=False)
    accuracy = model.evaluate(x_test[:, None], y_test)["accuracy"]
    assert accuracy > 0.3 and f"{accuracy:.2%}" in result.stdout  # ten classes: chance is 10%
    assert (plots / "attention_maps.png").stat().st_size > 5000 and (plots / "feature_maps.png").exists()


def test_mlp_example_resumes_from_its_checkpoint(tmp_path, mnist_dir):
    """--checkpoint then --resume with more epochs: the second run continues at epoch 2, not from scratch."""
    checkpoint = tmp_path / "run.npz"

    def run(epochs, *extra):
        return subprocess.run(
            [sys.executable, str(EXAMPLES / "mnist_mlp.py"), "--epochs", str(epochs), "--verbose", "2",
             "--data-dir", str(mnist_dir), "--save", "", "--checkpoint", str(checkpoint), *extra],
            capture_output=True, text=True, timeout=300, check=True,
        ).stdout

    first = run(1)
    assert "Epoch 1/1" in first and tinynet.load_checkpoint(checkpoint).epoch == 1
    second = run(2, "--resume")
    assert "Epoch 1/2" not in second and "Epoch 2/2" in second
    assert tinynet.load_checkpoint(checkpoint).epoch == 2


def test_the_test_set_stays_out_of_training_and_validation_is_held_out(tmp_path, mnist_dir):
    """By default no per-epoch score on test data; --validation N scores the last N training images instead."""
    def run(*extra):
        return _run_example("mnist_mlp.py", "--epochs", "1", "--verbose", "2", "--save", "",
                            "--data-dir", str(mnist_dir), *extra, tmp_path=tmp_path)

    plain = run()
    assert plain.returncode == 0 and "val_accuracy" not in plain.stdout
    assert "60,000 training images" in plain.stdout and "Test accuracy:" in plain.stdout
    held = run("--validation", "10000")
    assert held.returncode == 0
    assert "50,000 training images, 10,000 held out for validation" in held.stdout
    assert "val_accuracy=" in held.stdout
    refused = run("--validation", "60000")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr  # argparse's usage error
    assert "--validation takes at most 59,998 of the 60,000 training images, got 60,000" in refused.stderr


def test_examples_explain_their_options():
    """--help lists every option the examples promise."""
    for script in ("mnist_cnn.py", "mnist_mlp.py", "mnist_lstm.py", "mnist_vit.py"):
        text = subprocess.run([sys.executable, str(EXAMPLES / script), "--help"],
                              capture_output=True, text=True, timeout=120, check=True).stdout
        for option in ("--epochs", "--batch-size", "--lr", "--clip-norm", "--rotation", "--scale", "--shift",
                       "--images", "--validation", "--seed", "--data-dir", "--save", "--plots", "--checkpoint",
                       "--resume"):
            assert option in text


def test_random_shift_moves_whole_images():
    """random_shift keeps every pixel value, only moves it, and is reproducible from the generator."""
    x = np.zeros((3, 1, 6, 6), np.float32)
    x[:, 0, 2:4, 2:4] = 1.0
    shift = tinynet.augment.random_shift(2)
    a, b = shift(x, np.random.default_rng(5)), shift(x, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    assert a.shape == x.shape and a.sum() == x.sum() and x[:, 0, 2:4, 2:4].all()


def test_vanishing_gradients_example_shows_the_effect(tmp_path, mnist_dir):
    """One epoch on 2,000 digits: the Sigmoid stack's first-layer gradient is far smaller than ReLU's."""
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "vanishing_gradients.py"), "--epochs", "1", "--images", "2000",
         "--data-dir", str(mnist_dir), "--plots", str(tmp_path)],
        capture_output=True, text=True, timeout=300, check=True,
    )
    ratios = {line.split("first/last")[0].strip(): float(line.split(":")[1].split()[0])
              for line in result.stdout.splitlines() if "first/last" in line}
    assert ratios["Sigmoid"] < 1e-2 < ratios["ReLU"] and ratios["Tanh"] > 1e-2
    assert ratios["Sigmoid + BatchNorm"] > 100 * ratios["Sigmoid"]  # BatchNorm brings the gradient back
    # The mechanism at initialisation: eight slopes of about 1/4 account for the measured shrinkage.
    lines = {line.split(":")[0].strip(): line.split(":", 1)[1] for line in result.stdout.splitlines() if ":" in line}
    slopes = [float(value) for value in lines["mean sigma'(z) per layer"].split()]
    measured = float(lines["gradient leaving the first Sigmoid / reaching the last"])
    assert len(slopes) == 8 and all(0.2 < slope <= 0.25 for slope in slopes)
    assert 1 / 3 < measured / np.prod(slopes) < 3
    assert [p.name for p in tmp_path.glob("*.png")] == ["gradient_norms.png"]


def test_backprop_by_hand_prints_every_layer_and_passes_gradcheck(tmp_path, mnist_dir):
    """The walkthrough prints each layer forward and backward, every gradient check passes, the figure is drawn."""
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "backprop_by_hand.py"), "--data-dir", str(mnist_dir), "--plots", str(tmp_path)],
        capture_output=True, text=True, timeout=300, check=True,
    )
    for name in ("Conv2D", "ReLU", "MaxPool2D", "Flatten", "Dense"):
        assert result.stdout.count(name) >= 3  # forward, backward, gradient check
    checks = result.stdout.split("Gradient check")[1].splitlines()[1:6]
    assert all(line.rstrip().endswith("ok") for line in checks), checks
    assert (tmp_path / "backprop_by_hand.png").stat().st_size > 10_000


def _run_example(script, *args, env_extra=None, tmp_path=None):
    import os

    env = {key: value for key, value in os.environ.items() if key != "TINYNET_DATA"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")  # an empty user cache
    env.update(env_extra or {})
    return subprocess.run([sys.executable, str(EXAMPLES / script), *args], capture_output=True, text=True,
                          timeout=300, env=env)


def test_an_example_without_data_prints_the_fix_not_a_traceback(tmp_path):
    """No MNIST files reachable: one message on stderr naming where it looked and the fix, exit status 1."""
    for script in ("mnist_cnn.py", "mnist_mlp.py"):
        result = _run_example(script, "--offline", "--data-dir", str(tmp_path / "empty"), tmp_path=tmp_path)
        assert result.returncode == 1
        assert "Traceback" not in result.stderr
        assert f"{script}: error: MNIST files are missing" in result.stderr
        assert "TINYNET_DATA" in result.stderr and str(tmp_path / "empty") in result.stderr


def test_an_example_saving_into_a_missing_folder_says_so_before_training(tmp_path):
    """--save into a folder that does not exist: argparse's usage line with the user's path, before any work."""
    target = tmp_path / "no" / "such" / "folder" / "m.npz"
    result = _run_example("mnist_lstm.py", "--offline", "--data-dir", str(tmp_path / "no data here"),
                          "--save", str(target), tmp_path=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr and "usage:" in result.stderr
    assert f"--save: cannot write {target}: the folder {target.parent} does not exist" in result.stderr
    assert "MNIST files are missing" not in result.stderr  # refused before looking for the data


def _refused_before_work(program, arguments, cwd, complaint):
    """Run an example with a bad argument: argparse's usage and one error line naming it, status 2, nothing done.

    Nothing done: no traceback, nothing on stdout (no summary, no data set read, no epoch).
    """
    result = subprocess.run([sys.executable, str(EXAMPLES / program), *arguments], capture_output=True, text=True,
                            timeout=120, cwd=cwd)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith(f"{program}: error: ") and complaint in errors[0], errors
    assert result.stderr.startswith("usage:") and "Traceback" not in result.stderr
    assert result.stdout == ""


def _paths(tmp_path):
    """A file, a folder and paths that cannot be written, for the argument tests below."""
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "a_folder").mkdir()
    return {"file": str(tmp_path / "a_file"), "folder": str(tmp_path / "a_folder"),
            "missing": str(tmp_path / "missing" / "out.npz"), "under_file": str(tmp_path / "a_file" / "out")}


_MNIST = ["--offline", "--data-dir", "{empty}"]  # were the arguments accepted, the data would be missing (status 1)


@pytest.mark.parametrize("program, arguments, complaint", [
    ("mnist_mlp.py", ["--save", "{missing}"], "argument --save: cannot write {missing}: the folder"),
    ("mnist_mlp.py", ["--save", "{folder}"], "argument --save: '{folder}' is a folder; give a file path"),
    ("mnist_mlp.py", ["--save", "{under_file}"], "argument --save: cannot write {under_file}: {file} is a file"),
    ("mnist_cnn.py", ["--checkpoint", "{missing}"], "argument --checkpoint: cannot write {missing}"),
    ("mnist_cnn.py", ["--checkpoint", "{folder}"], "argument --checkpoint: '{folder}' is a folder"),
    ("mnist_cnn.py", ["--checkpoint", "{folder}/c.npz", "--save", "{folder}/c.npz"], "name the same file"),
    ("mnist_cnn.py", ["--plots", "{file}"], "argument --plots: {file} is a file"),
    ("mnist_lstm.py", ["--checkpoint", "{under_file}"], "argument --checkpoint: cannot write {under_file}"),
    ("mnist_cnn.py", ["--plots", "{under_file}"], "argument --plots: cannot create or write {under_file}"),
    ("mnist_mlp.py", ["--mat", "{missing}"], "argument --mat: no file at {missing}"),
    ("mnist_mlp.py", ["--mat", "{folder}"], "argument --mat: {folder} is a folder"),
    ("mnist_mlp.py", ["--data-dir", "{file}"], "argument --data-dir: {file} is a file"),
    ("mnist_mlp.py", ["--verbose", "3"], "argument --verbose: invalid choice: 3"),
    ("mnist_mlp.py", ["--seed", "-1"], "argument --seed: must be at least 0"),
    ("mnist_mlp.py", ["--rotation", "inf"], "argument --rotation: must be a finite number"),
    ("mnist_mlp.py", ["--shift", "-2"], "argument --shift: must be a finite number >= 0"),
    ("mnist_mlp.py", ["--validation", "-5"], "argument --validation: must be at least 0"),
    ("mnist_mlp.py", ["--batch-size", "-128"], "argument --batch-size: must be at least 1"),
    ("backprop_by_hand.py", ["--plots", "{file}"], "argument --plots: {file} is a file"),
    ("backprop_by_hand.py", ["--data-dir", "{file}"], "argument --data-dir: {file} is a file"),
    ("vanishing_gradients.py", ["--plots", "{under_file}"], "argument --plots: cannot create or write"),
    ("vanishing_gradients.py", ["--data-dir", "{file}"], "argument --data-dir: {file} is a file"),
    ("predict_digit.py", ["{missing}"], "argument IMAGE: no file at {missing}"),
    ("predict_digit.py", ["{folder}"], "argument IMAGE: {folder} is a folder"),
    ("predict_digit.py", ["{file}", "--model", "{missing}"], "--model: no model file at {missing}. Train one with "
                                                             "python examples/mnist_cnn.py"),
    ("predict_digit.py", ["{file}", "--model", "{folder}"], "--model: no model file at {folder}"),
    ("predict_digit.py", ["{file}", "--plot", "{missing}"], "argument --plot: cannot write {missing}"),
    ("kaggle_digit_recognizer.py", ["--train", "{missing}", "--test", "{file}"], "argument --train: no file at"),
    ("kaggle_digit_recognizer.py", ["--train", "{file}", "--test", "{folder}"], "argument --test: {folder} is a"),
    ("kaggle_digit_recognizer.py", ["--train", "{file}", "--test", "{file}", "--out", "{missing}"],
     "argument --out: cannot write {missing}"),
    ("kaggle_digit_recognizer.py", ["--train", "{file}", "--test", "{file}", "--out", "{folder}"],
     "argument --out: '{folder}' is a folder; give a file path, e.g. {folder}/submission.csv"),
    ("kaggle_digit_recognizer.py", ["--train", "{file}", "--test", "{file}", "--seed", "x"],
     "argument --seed: expected a whole number"),
])
def test_every_example_checks_its_paths_and_numbers_before_any_work(program, arguments, complaint, tmp_path):
    """Files to read, places to write, numbers: a bad one is status 2 and one line, before data is read or trained."""
    paths = {**_paths(tmp_path), "empty": str(tmp_path / "empty")}
    extra = _MNIST if program.startswith(("mnist", "backprop", "vanishing")) and "--data-dir" not in arguments else []
    _refused_before_work(program, [argument.format(**paths) for argument in [*arguments, *extra]], tmp_path,
                         complaint.format(**paths))


def test_unexpected_errors_keep_their_traceback(tmp_path):
    """A bug is not dressed up as a user error: cli.run lets anything but tinynet's and OS errors through."""
    import runpy

    sys.path.insert(0, str(EXAMPLES))
    try:
        cli = runpy.run_path(str(EXAMPLES / "cli.py"))
    finally:
        sys.path.remove(str(EXAMPLES))

    def broken():
        raise ZeroDivisionError("a bug")

    try:
        cli["run"](broken)
    except ZeroDivisionError:
        pass
    else:
        raise AssertionError("run() swallowed an unexpected error")


def test_kaggle_example_trains_on_csv_and_writes_a_submission(tmp_path, mnist_dir):
    """Kaggle-format files made from real digits: one epoch, a valid submission for every test row."""
    (x_train, y_train), (x_test, _) = tinynet.datasets.load_mnist(mnist_dir, download=False)
    header = ",".join(f"pixel{i}" for i in range(784))
    train_rows = [f"{label}," + ",".join(map(str, image.reshape(-1))) for image, label in
                  zip(x_train[:1500], y_train[:1500], strict=True)]
    (tmp_path / "train.csv").write_text("label," + header + "\n" + "\n".join(train_rows) + "\n")
    (tmp_path / "test.csv").write_text(header + "\n" + "\n".join(",".join(map(str, image.reshape(-1)))
                                                               for image in x_test[:40]) + "\n")
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "kaggle_digit_recognizer.py"), "--train", str(tmp_path / "train.csv"),
         "--test", str(tmp_path / "test.csv"), "--out", str(tmp_path / "submission.csv"), "--epochs", "1",
         "--verbose", "0"], capture_output=True, text=True, timeout=300, check=True)
    lines = (tmp_path / "submission.csv").read_text().splitlines()
    assert lines[0] == "ImageId,Label" and len(lines) == 41
    assert [int(line.split(",")[0]) for line in lines[1:]] == list(range(1, 41))
    assert all(line.split(",")[1] in "0123456789" for line in lines[1:])
    assert "Validation accuracy" in result.stdout


def test_kaggle_example_with_a_broken_csv_says_which_file(tmp_path):
    """Kaggle example with a broken csv says which file."""
    (tmp_path / "train.csv").write_text("label,pixel0\n1,0\n")
    result = _run_example("kaggle_digit_recognizer.py", "--train", str(tmp_path / "train.csv"), "--test",
                          str(tmp_path / "train.csv"), tmp_path=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "train.csv does not have Kaggle's Digit Recognizer columns" in result.stderr


def test_mnist_example_reads_the_reference_notebooks_mat_file(tmp_path, mnist_dir):
    """--mat PATH: Kaggle's mnist-original.mat (here rebuilt from the canonical files) instead of the IDX files."""
    scipy_io = __import__("pytest").importorskip("scipy.io", reason="scipy reads MATLAB files: pip install scipy")
    (x_train, y_train), (x_test, y_test) = tinynet.datasets.load_mnist(mnist_dir, download=False)
    data = np.concatenate([x_train, x_test]).reshape(70000, 784).T
    label = np.concatenate([y_train, y_test]).astype(np.float64)[None]
    scipy_io.savemat(tmp_path / "mnist-original.mat", {"data": data, "label": label}, do_compression=True)
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "mnist_mlp.py"), "--mat", str(tmp_path / "mnist-original.mat"),
         "--epochs", "1", "--verbose", "0", "--save", ""], capture_output=True, text=True, timeout=300, check=True)
    accuracy = float(result.stdout.split("tinynet mlp (this run)")[1].split("%")[0]) / 100
    assert accuracy > 0.9


def test_predict_digit_prints_the_top_three_and_draws(tmp_path, mnist_dir):
    """A model saved by fit, two drawn digits: three guesses each with probabilities, and the picture."""
    image_module = __import__("pytest").importorskip("PIL.Image", reason="Pillow reads images: pip install pillow")
    (x_train, y_train), (x_test, y_test) = tinynet.datasets.load_mnist(mnist_dir, download=False)
    model = tinynet.models.basic_mlp(rng=0)
    model.fit(x_train[:, None], y_train, epochs=1, seed=0, verbose=0)
    model.save(tmp_path / "mlp.npz")
    paths = []
    for number in range(2):
        page = image_module.new("L", (100, 80), 255)
        page.paste(image_module.fromarray(255 - x_test[number]).resize((60, 60)), (5 + 20 * number, 10))
        page.save(tmp_path / f"digit{number}.png")
        paths.append(str(tmp_path / f"digit{number}.png"))
    result = subprocess.run([sys.executable, str(EXAMPLES / "predict_digit.py"), *paths, "--model",
                             str(tmp_path / "mlp.npz"), "--plot", str(tmp_path / "read.png")],
                            capture_output=True, text=True, timeout=300, check=True)
    lines = [line for line in result.stdout.splitlines() if line.startswith(str(tmp_path / "digit"))]
    assert len(lines) == 2 and all(line.count("%") == 3 for line in lines)
    assert lines[0].split(": ")[1].startswith(str(y_test[0])) and lines[1].split(": ")[1].startswith(str(y_test[1]))
    assert (tmp_path / "read.png").stat().st_size > 5000


def test_predict_digit_reads_the_sample_digits_with_the_shipped_cnn(tmp_path):
    """The README's command, right after install: no model trained, the two sample digits read as 7 and 3."""
    samples = [str(EXAMPLES / "digits" / "seven.png"), str(EXAMPLES / "digits" / "three.jpg")]
    result = subprocess.run([sys.executable, str(EXAMPLES / "predict_digit.py"), *samples], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300, check=True)
    assert "CNN shipped with tinynet" in result.stdout
    readings = [line.split(": ")[1][0] for line in result.stdout.splitlines() if line.startswith(tuple(samples))]
    assert readings == ["7", "3"]


@pytest.mark.parametrize("program, arguments, complaint", [
    ("mnist_cnn.py", ["--epochs", "0"], "--epochs: must be at least 1"),
    ("mnist_cnn.py", ["--epochs", "-1"], "--epochs: must be at least 1"),
    ("mnist_cnn.py", ["--batch-size", "0"], "--batch-size: must be at least 1"),
    ("mnist_cnn.py", ["--lr", "-1"], "--lr: must be a finite number > 0"),
    ("mnist_cnn.py", ["--lr", "nan"], "--lr: must be a finite number > 0"),
    ("mnist_mlp.py", ["--epochs", "two"], "--epochs: expected a whole number"),
    ("mnist_mlp.py", ["--scale", "1.5"], "--scale: must be a finite number >= 0 and <= 0.9"),
    ("mnist_mlp.py", ["--validation", "60000"], "--validation takes at most 59,998"),
    ("mnist_mlp.py", ["--resume"], "--resume needs --checkpoint"),
    ("mnist_lstm.py", ["--clip-norm", "0"], "--clip-norm: must be a finite number > 0"),
    ("mnist_lstm.py", ["--images", "70000"], "--images takes at most the 60,000"),
    ("mnist_lstm.py", ["--images", "1000", "--validation", "999"], "--validation takes at most 998 of the 1,000"),
    ("mnist_lstm.py", ["--save", "no/such/m.npz"], "--save: cannot write no/such/m.npz: the folder no/such does"),
    ("mnist_vit.py", ["--lr", "0"], "--lr: must be a finite number > 0"),
    ("kaggle_digit_recognizer.py", ["--epochs", "0", "--train", "a.csv", "--test", "b.csv"],
     "--epochs: must be at least 1"),
    ("backprop_by_hand.py", ["--digit-index", "10000"], "--digit-index picks one of the 10,000"),
    ("backprop_by_hand.py", ["--digit-index", "-1"], "--digit-index: must be at least 0"),
    ("vanishing_gradients.py", ["--epochs", "0"], "--epochs: must be at least 1"),
    ("vanishing_gradients.py", ["--images", "1"], "--images: must be at least 2"),
    ("vanishing_gradients.py", ["--images", "70000"], "--images takes at most the 60,000"),
])
def test_example_arguments_are_checked_before_any_work(program, arguments, complaint, tmp_path):
    """A bad argument is argparse's usage line and one message, exit status 2, no traceback, no data read."""
    result = subprocess.run([sys.executable, str(EXAMPLES / program), *arguments, "--data-dir", str(tmp_path)]
                            if program != "kaggle_digit_recognizer.py" else
                            [sys.executable, str(EXAMPLES / program), *arguments],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert complaint in result.stderr and "usage:" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("content", [b"", b"this is not a MATLAB file\n"], ids=["empty", "text"])
def test_a_mat_file_that_is_not_one_is_a_message_not_a_traceback(content, tmp_path):
    """--mat on an empty or a text file: exit status 1 and a message naming the file."""
    pytest.importorskip("scipy", reason="reading .mat files needs scipy")
    path = tmp_path / "mnist-original.mat"
    path.write_bytes(content)
    result = subprocess.run([sys.executable, str(EXAMPLES / "mnist_mlp.py"), "--mat", str(path), "--epochs", "1"],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "mnist-original.mat" in result.stderr and "error:" in result.stderr


def test_the_kaggle_example_refuses_a_one_row_train_csv_with_a_message(tmp_path):
    """A train.csv of one row leaves nothing to train on: a message, exit status 1, no traceback."""
    header = "label," + ",".join(f"pixel{i}" for i in range(784))
    (tmp_path / "train.csv").write_text(header + "\n" + "3," + ",".join(["0"] * 784) + "\n")
    (tmp_path / "test.csv").write_text(header.split(",", 1)[1] + "\n" + ",".join(["0"] * 784) + "\n")
    result = subprocess.run([sys.executable, str(EXAMPLES / "kaggle_digit_recognizer.py"), "--train", "train.csv",
                             "--test", "test.csv", "--epochs", "1", "--verbose", "0"],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "train.csv" in result.stderr


NUMBER = re.compile(r"[-+]?\d[\d,]*\.?\d*(?:e[-+]?\d+)?%?")


def _same_output(printed, quoted):
    """The same words and, number by number, the same values to printing precision (another CPU may round
    a last digit differently; values below 1e-6, such as gradient-check errors, are rounding themselves)."""
    if NUMBER.sub("#", printed) != NUMBER.sub("#", quoted):
        return False
    for mine, theirs in zip(NUMBER.findall(printed), NUMBER.findall(quoted), strict=True):
        a, b = (float(value.replace(",", "").rstrip("%")) for value in (mine, theirs))
        if max(abs(a), abs(b)) > 1e-6 and abs(a - b) > max(1e-2 * abs(b), 2e-4):
            return False
    return True


@pytest.mark.parametrize("example, first_line", [("backprop_by_hand.py", "An untrained tiny CNN"),
                                                 ("vanishing_gradients.py", "At initialisation")])
def test_the_docs_quote_the_examples_output_as_they_print_it(tmp_path, mnist_dir, example, first_line):
    """docs/backprop.md pastes each example's output: rerunning the command it names prints the same."""
    docs = (EXAMPLES.parent / "docs" / "backprop.md").read_text()
    blocks = [textwrap.dedent(block).strip() for block in re.findall(r"```text\n(.*?)```", docs, flags=re.S)]
    (quoted,) = [block for block in blocks if block.startswith(first_line)]
    result = subprocess.run([sys.executable, str(EXAMPLES / example), "--data-dir", str(mnist_dir),
                             "--plots", str(tmp_path)], capture_output=True, text=True, timeout=300, check=True)
    printed = "\n".join(line for line in result.stdout.splitlines() if not line.startswith("Picture:"))
    printed = printed.split("\nWhy the Sigmoid")[0].strip()
    quoted = "\n".join(line for line in quoted.splitlines() if not line.startswith("Picture:")).strip()
    if example == "vanishing_gradients.py":
        # The ReLU network's figures follow the CPU's rounding (the docs say so and give six runs' figures, 70-88%):
        # checked for what the docs claim of them, every other line to printing precision.
        printed, relu = _without_relu_row(printed)
        quoted, _ = _without_relu_row(quoted)
        norm_ratio, accuracy = map(float, re.search(r"norm: ([\d.e+-]+)\s+test accuracy: ([\d.]+)%", relu).groups())
        assert 0.3 <= norm_ratio <= 30 and accuracy >= 60, f"the ReLU network trained worse than the docs say: {relu}"
    assert _same_output(printed, quoted), f"docs/backprop.md quotes an older output of {example}:\n{printed}"


def _without_relu_row(output):
    """``(output without its ReLU row, that row)``."""
    lines = output.splitlines()
    (relu,) = [line for line in lines if line.startswith("ReLU ")]
    return "\n".join(line for line in lines if line is not relu), relu
