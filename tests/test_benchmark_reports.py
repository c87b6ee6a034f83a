"""What the benchmark programs say about a run: the speedrun's verdict and the kernels that ran."""

import sys
from pathlib import Path

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


def test_every_recipe_has_a_time_budget():
    assert set(speedrun.RECIPES) <= set(speedrun.TIME_BUDGETS)


def test_kernel_warning_names_each_forcing_variable():
    assert frameworks.kernel_warning({}) == ""
    warning = frameworks.kernel_warning({"OPENBLAS_CORETYPE": "Haswell", "HOME": "/root"})
    assert "OPENBLAS_CORETYPE=Haswell" in warning and "HOME" not in warning


def test_numba_target_names_a_cpu():
    assert frameworks.numba_target().strip()
