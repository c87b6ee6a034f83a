"""Layer-by-layer profile of one training batch: where a model's time goes.

    python benchmarks/profile_layers.py keras_convnet [--batch 128] [--repeats 30] [--threads 2]

Runs ``fit``'s own step (``tinynet.training.train_step``: forward, loss, backward without
the input gradient, optimizer step, divergence guard) on random MNIST-shaped data and
reports, per step of the model's execution plan, the median forward and backward
milliseconds, then the whole step. The plan is what ``Sequential`` really runs (fused steps
and layout changes included), so the rows add up to the batch. Not a test: speed goals are
measured by ``pytest benchmarks``; this says why.
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np


def _timed(function, log):
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        result = function(*args, **kwargs)
        log.append(time.perf_counter() - started)
        return result

    return wrapper


def _layers_as_steps(model):
    """For a tinynet without execution plans (to profile an older revision): the layers, named."""
    for position, layer in enumerate(model.layers):
        layer.describe = lambda position=position, layer=layer: f"{position} {type(layer).__name__}"
    return model.layers


def profile(model_name, batch, repeats, seed=0):
    import tinynet
    from tinynet import training
    try:
        from tinynet.training._allocator import keep_freed_memory
    except ImportError:  # revisions before the package was grouped into rooms
        from tinynet._allocator import keep_freed_memory
    from tinynet.losses import SoftmaxCrossEntropy

    keep_freed_memory()  # as fit does before its first batch
    model = getattr(tinynet.models, model_name)(rng=seed)
    rng = np.random.default_rng(seed)
    x = rng.random((batch, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, batch)
    loss, optimizer = SoftmaxCrossEntropy(), tinynet.optim.Adam()
    if hasattr(training, "train_step"):
        guard = getattr(training, "DivergenceGuard", None) or training._DivergenceGuard
        guard = guard(model, optimizer)

        def train_once():
            training.train_step(model, loss, optimizer, guard, x, y)
    else:  # an older revision: its fit loop, written out
        guard = training._DivergenceGuard(model)

        def train_once():
            logits = model.forward(x, training=True)
            value = loss.forward(logits, y)
            model.backward(loss.backward(), input_grad=False)
            guard.check_gradients(value, 1, 1)
            guard.step(optimizer, 1, 1)
    steps = model.execution_plan() if hasattr(model, "execution_plan") else _layers_as_steps(model)
    logs = []
    for step in steps:
        forward_log, backward_log = [], []
        step.forward = _timed(step.forward, forward_log)
        step.backward = _timed(step.backward, backward_log)
        if hasattr(step, "_backward_params_only"):  # revisions before the engine's backward(grad, input_grad)
            step._backward_params_only = _timed(step._backward_params_only, backward_log)
        logs.append((step, forward_log, backward_log))
    totals = []
    for _ in range(repeats + 3):
        started = time.perf_counter()
        train_once()
        totals.append(time.perf_counter() - started)
    rows = []
    for step, forward_log, backward_log in logs:
        forward = np.median(forward_log[3:]) * 1e3
        backward = np.median(backward_log[3:]) * 1e3 if backward_log[3:] else 0.0
        rows.append((step.describe(), forward, backward))
    return rows, np.median(totals[3:]) * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", default="keras_convnet",
                        choices=["basic_mlp", "small_cnn", "keras_convnet", "cnn"])
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
    from cli import whole_number

    parser.add_argument("--batch", type=whole_number(1), default=128)
    parser.add_argument("--repeats", type=whole_number(4), default=30, help="the median of all but the first 3 is kept")
    parser.add_argument("--threads", type=whole_number(1), default=2,
                        help="BLAS threads (numba kernels keep their own)")
    args = parser.parse_args()
    from threadpoolctl import threadpool_info, threadpool_limits

    with threadpool_limits(limits=args.threads, user_api="blas"):
        rows, total = profile(args.model, args.batch, args.repeats)
        blas = next((f"{i['internal_api']} {i.get('architecture', '')}" for i in threadpool_info()
                     if i["user_api"] == "blas"), "?")
    print(f"{args.model}, batch {args.batch}, BLAS {args.threads} threads ({blas}), "
          f"numba kernel threads {os.environ.get('TINYNET_KERNEL_THREADS', '1')}; median of {args.repeats}")
    print(f"{'step':<44} {'forward ms':>10} {'backward ms':>11}")
    for name, forward, backward in rows:
        print(f"{name:<44} {forward:>10.2f} {backward:>11.2f}")
    listed = sum(f + b for _, f, b in rows)
    print(f"{'sum of the steps':<44} {listed:>22.2f}")
    print(f"{'whole training step (loss, Adam, guard too)':<44} {total:>22.2f}")


if __name__ == "__main__":
    main()
