"""Training speed: a full 60,000-image epoch of each model in tinynet, PyTorch and Keras.

Same architecture, batch size (128), optimizer (Adam, lr 1e-3), dtype (float32) and thread
count in every framework, timed in the same run. A few batches are trained first so that
JIT compilation (numba's, TensorFlow's graph tracing) stays out of the timing. The table
shows the epoch times, the ratios tinynet/PyTorch and tinynet/Keras, and how close each
tinynet epoch comes to the FLOP lower bound: the epoch's training FLOPs (3 x forward) at
the machine's measured float32 matrix-product rate.
"""

import os

import numpy as np
import pytest
from frameworks import COMPARED_MODELS, MODELS, Unavailable, forward_flops, framework

import tinynet

BATCH = 128
# Timed epochs per model and framework (the median is reported). The MLP's epoch is so short
# that one epoch is at the mercy of a noisy machine, so it gets more.
EPOCH_ROUNDS = int(os.environ.get("TINYNET_BENCH_EPOCHS", "1"))
SHORT_MODEL_ROUNDS = {"basic_mlp": max(EPOCH_ROUNDS, 5)}
WARM_UP_IMAGES = 10 * BATCH


def _adapter(name):
    try:
        return framework(name)
    except Unavailable as error:
        pytest.skip(str(error))


def _cases():
    for model in MODELS:
        for name in ("tinynet", "pytorch", "keras"):
            if name == "tinynet" or model in COMPARED_MODELS:
                yield pytest.param(name, model, id=f"{model}-{name}")


@pytest.mark.parametrize(("framework_name", "model_name"), list(_cases()))
def test_train_epoch(benchmark, results, mnist, framework_name, model_name):
    adapter = _adapter(framework_name)
    (x_train, y_train), (x_test, y_test) = mnist
    data = adapter.prepare(x_train, y_train)
    warm_up = adapter.prepare(x_train[:WARM_UP_IMAGES], y_train[:WARM_UP_IMAGES])
    model = adapter.build(model_name, seed=0)
    adapter.train_epoch(model, warm_up, BATCH)

    benchmark.group = f"train epoch {model_name}"
    benchmark.extra_info.update(images=len(x_train), batch_size=BATCH, threads=adapter.threads())
    rounds = SHORT_MODEL_ROUNDS.get(model_name, EPOCH_ROUNDS)
    benchmark.pedantic(adapter.train_epoch, args=(model, data, BATCH), rounds=rounds, iterations=1)

    # What was timed really trained: after one epoch every model is far above chance (10%).
    scores = adapter.predict(model, adapter.prepare(x_test[:2000], y_test[:2000]), 1000)
    accuracy = float((scores.argmax(axis=1) == y_test[:2000]).mean())
    assert accuracy > 0.9, f"{framework_name} {model_name} reached only {accuracy:.1%} after one epoch"
    if benchmark.stats is not None:
        seconds = benchmark.stats.stats.median
        results.record("training", model_name, "epoch_s", seconds, "s", framework_name, detail=f"batch {BATCH}")
        results.record("training", model_name, "img_s", len(x_train) / seconds, "img/s", framework_name)


@pytest.mark.parametrize("model_name", MODELS)
def test_flop_lower_bound(results, gemm_rate, model_name):
    """Not a timing: the epoch's training FLOPs at the machine's float32 GEMM rate."""
    flops = forward_flops(getattr(tinynet.models, model_name)(rng=0))
    assert flops > 0
    bound = 3 * flops * 60_000 / gemm_rate
    results.record("training", model_name, "forward_mflop", flops / 1e6, "MFLOP/image")
    results.record("training", model_name, "flop_bound_s", bound, "s", detail=f"{gemm_rate / 1e9:.0f} GFLOP/s")


INFERENCE_BATCHES = (128, 1000)


def _inference_cases():
    for model in MODELS:
        for name in ("tinynet", "pytorch", "keras"):
            if name == "tinynet" or model in COMPARED_MODELS:
                for batch in INFERENCE_BATCHES:
                    yield pytest.param(name, model, batch, id=f"{model}-{name}-{batch}")


@pytest.mark.parametrize(("framework_name", "model_name", "batch_size"), list(_inference_cases()))
def test_inference(benchmark, results, mnist, framework_name, model_name, batch_size):
    adapter = _adapter(framework_name)
    _, (x_test, y_test) = mnist
    data = adapter.prepare(x_test, y_test)
    model = adapter.build(model_name, seed=0)
    first = adapter.predict(model, data, batch_size)  # warm-up, and a check of what is timed
    assert first.shape == (len(x_test), 10) and np.isfinite(first).all()

    benchmark.group = f"inference {model_name} batch {batch_size}"
    benchmark.pedantic(adapter.predict, args=(model, data, batch_size), rounds=3, iterations=1)
    if benchmark.stats is not None:
        results.record("inference", model_name, "img_s", len(x_test) / benchmark.stats.stats.median, "img/s",
                       framework_name, detail=str(batch_size))
