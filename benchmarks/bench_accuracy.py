"""Accuracy: the examples' default runs over seeds 0, 1, 2, and time to accuracy against PyTorch.

Selected with ``pytest benchmarks -m accuracy`` (left out with ``-m "not accuracy"``; about an
hour on two cores). Each seed runs each example below exactly as a user would, with
``--plots``, in a process of its own; the wall time is the whole process's, start-up, data
loading and pictures included. The test set is evaluated once per run, at its end. Targets
(issue: a 99.6% CNN in four minutes):

- basic MLP: mean >= 98.6%, every seed >= 98.5%;
- CNN: mean >= 99.6%, every seed >= 99.5%, every run <= 4 minutes wall;
- LSTM reading rows (``mnist_lstm.py``): mean >= 98.8%, every run <= 10 minutes wall;
- vision transformer (``mnist_vit.py``): mean >= 98.0%, every run <= 10 minutes wall.

The time-to-accuracy case trains the CNN's recipe in tinynet and in PyTorch
(``benchmarks/time_to_accuracy.py``) and reports the training time each needs to reach 99.0%
and 99.5% test accuracy.
"""

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from frameworks import worker_environment

BENCHMARKS = Path(__file__).resolve().parent
EXAMPLES = BENCHMARKS.parent / "examples"
SEEDS = (0, 1, 2)
TEST_ACCURACY = re.compile(r"^Test accuracy: (\d+\.\d+)%", re.MULTILINE)

CASES = {
    # script: (model, reference accuracy, target mean, target for every seed, wall-time limit in s)
    "mnist_mlp.py": ("basic_mlp", 0.9794, 0.986, 0.985, None),
    "mnist_cnn.py": ("cnn", 0.9852, 0.996, 0.995, 240.0),
    "mnist_lstm.py": ("lstm_rows", 0.9852, 0.988, 0.0, 600.0),  # the issue sets no floor for a single seed
    "mnist_vit.py": ("vit", 0.9852, 0.980, 0.0, 600.0),
}


def _run_example(script, seed, folder):
    folder.mkdir(parents=True)
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script), "--seed", str(seed), "--verbose", "0",
         "--plots", str(folder / "plots"), "--save", str(folder / "model.npz"), "--offline"],
        capture_output=True, text=True, env=worker_environment(BENCHMARKS), check=False,
    )
    wall = time.perf_counter() - started
    assert result.returncode == 0, f"{script} --seed {seed} failed:\n{result.stdout}\n{result.stderr}"
    found = TEST_ACCURACY.search(result.stdout)
    assert found, f"{script} printed no 'Test accuracy:' line:\n{result.stdout}"
    return float(found.group(1)) / 100, wall


@pytest.mark.accuracy
@pytest.mark.parametrize("script", sorted(CASES))
def test_default_runs_over_three_seeds(results, mnist, tmp_path, script):
    model_name, reference, target_mean, target_each, wall_limit = CASES[script]
    accuracies, walls = [], []
    for seed in SEEDS:
        accuracy, wall = _run_example(script, seed, tmp_path / f"seed{seed}")
        accuracies.append(accuracy)
        walls.append(wall)
        results.record("accuracy", model_name, "test_accuracy", accuracy, "fraction", detail=f"seed {seed}")
        results.record("accuracy", model_name, "wall_s", wall, "s", detail=f"seed {seed}")
    results.record("accuracy", model_name, "reference_accuracy", reference, "fraction")
    mean, std = np.mean(accuracies), np.std(accuracies, ddof=1)
    summary = (f"{script}: test accuracy {mean:.2%} ± {std:.2%} over seeds {SEEDS} "
               f"({', '.join(f'{a:.2%}' for a in accuracies)}), wall {', '.join(f'{w:.0f} s' for w in walls)}")
    assert mean > reference, f"{summary}: below the reference {reference:.2%}"
    assert mean >= target_mean and min(accuracies) >= target_each, (
        f"{summary}: the target is a mean >= {target_mean:.1%} with every seed >= {target_each:.1%}")
    if wall_limit is not None:
        assert max(walls) <= wall_limit, f"{summary}: the target is every run within {wall_limit:.0f} s"


def _time_to_accuracy(framework, seed):
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "time_to_accuracy.py"), framework, "--seed", str(seed)],
        capture_output=True, text=True, env=worker_environment(BENCHMARKS), check=False,
    )
    assert result.returncode == 0, f"time_to_accuracy.py {framework} failed:\n{result.stderr}"
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


@pytest.mark.accuracy
def test_time_to_accuracy_against_pytorch(results, mnist):
    pytest.importorskip("torch", reason="PyTorch is not installed; pip install torch to compare with it")
    final = {}
    for framework in ("tinynet", "pytorch"):
        epochs = _time_to_accuracy(framework, seed=0)
        final[framework] = epochs[-1]["test_accuracy"]
        for threshold in (0.990, 0.995):
            reached = next((epoch for epoch in epochs if epoch["test_accuracy"] >= threshold), None)
            detail = (f"{reached['epoch']} epochs" if reached else f"not reached in {len(epochs)} epochs "
                      f"(best {max(epoch['test_accuracy'] for epoch in epochs):.2%})")
            results.record("time_to_accuracy", "cnn", f"seconds_to_{threshold:.1%}",
                           reached["train_seconds"] if reached else float("nan"), "s", framework=framework,
                           detail=detail)
        results.record("time_to_accuracy", "cnn", "final_test_accuracy", epochs[-1]["test_accuracy"], "fraction",
                       framework=framework, detail=f"{len(epochs)} epochs")
    assert final["tinynet"] >= 0.99, "tinynet's CNN recipe did not reach 99.0% test accuracy"


@pytest.mark.accuracy
def test_fashion_mnist_plain_fit(results):
    """``tinynet.models.cnn()`` on Fashion-MNIST, trained by a plain ``fit(epochs=5)`` (every default)."""
    import tinynet

    try:
        (x_train, y_train), (x_test, y_test) = tinynet.datasets.load_fashion_mnist(download=False)
    except tinynet.errors.DatasetError as error:
        pytest.skip(f"Fashion-MNIST files not found; put them in <TINYNET_DATA>/fashion-mnist/ ({error})")
    model = tinynet.models.cnn(rng=0)
    model.fit(x_train[:, None], y_train, epochs=5, seed=0, verbose=0)
    accuracy = model.evaluate(x_test[:, None], y_test)["accuracy"]
    results.record("accuracy", "cnn on Fashion-MNIST (plain fit, 5 epochs)", "test_accuracy", accuracy, "fraction",
                   detail="seed 0")
    # PyTorch, the same protocol: 88.9% for a net like the earlier cnn(), 90.9% with BatchNorm.
    assert accuracy >= 0.889, f"Fashion-MNIST test accuracy {accuracy:.2%} is below 88.9%"
