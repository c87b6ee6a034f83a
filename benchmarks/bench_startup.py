"""Start-up and memory: JIT compilation timed on its own, and the peak memory of an epoch.

Each measurement runs ``first_batch.py`` in a fresh Python process with its own numba
cache folder: the first run finds the cache empty and compiles every kernel (cold), the
second loads them from disk (warm). The warm run then trains a full epoch of the CNN and
reports the process's peak resident memory, data set included. About 40 seconds: marked
``slow``, so it runs with ``pytest benchmarks --long`` (or ``-m slow``).
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from frameworks import worker_environment

SCRIPT = Path(__file__).with_name("first_batch.py")


def _run(cache_dir, *args):
    env = dict(worker_environment(SCRIPT.parent), NUMBA_CACHE_DIR=str(cache_dir))
    done = subprocess.run([sys.executable, str(SCRIPT), *args], env=env, capture_output=True, text=True,
                          timeout=600, check=False)
    if done.returncode != 0:
        if "DatasetError" in done.stderr:
            pytest.skip("MNIST files not found; set TINYNET_DATA to the folder holding mnist/")
        raise AssertionError(f"{SCRIPT.name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("model", ["basic_mlp", "cnn"])
def test_startup_cold_then_warm_and_epoch_memory(results, tmp_path, model):
    cold = _run(tmp_path, "--model", model)
    warm = _run(tmp_path, "--model", model, "--epoch")
    assert warm["train_accuracy"] > 0.9, "the measured epoch did not train the model"
    how = "fresh process: import tinynet, build, train one batch of 128"
    results.record("startup", model, "cold-cache start-up s", cold["startup_s"], "s",
                   detail=how + " (kernels compiled)")
    results.record("startup", model, "warm-cache start-up s", warm["startup_s"], "s", detail=how + " (kernels cached)")
    results.record("startup", model, "import tinynet s", warm["import_s"], "s", detail="warm cache")
    results.record("startup", model, "peak RSS MiB", warm["peak_rss_mib"], "MiB",
                   detail="whole process after one 60,000-image epoch from uint8 data")
    results.record("startup", model, "epoch s (uint8 input)", warm["epoch_s"], "s", detail="same process, batch 128")
