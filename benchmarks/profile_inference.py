"""Where a prediction's time goes: tinynet's inference plan step by step, beside ONNX Runtime and PyTorch.

    python benchmarks/profile_inference.py cnn [--batches 1 128 1000] [--rounds 5] [--threads 2]

For each batch size, ``model.predict`` (what a user calls: checks, the inference plan, the
softmax), ONNX Runtime serving tinynet's own exported graph with a Softmax appended, and
PyTorch's model in ``eval()`` mode take turns in one process, ``--rounds`` times, so a busy
minute of a shared machine hits all three; each round keeps the fastest of a few calls and
the table shows the median round. Then each step of the inference plan is timed alone on
the activations the step before it gave. Every side's probabilities are compared first.
Not a test: the speed goals are measured by ``pytest benchmarks`` (each framework in its own
process); this says why.
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

# Each call is timed this many times in a round at these batch sizes; the fastest counts.
CALLS = {1: 200, 128: 10, 1000: 2}


def _fastest(calls, function, *args):
    """The shortest of ``calls`` runs of ``function(*args)``, in seconds."""
    best = float("inf")
    for _ in range(calls):
        started = time.perf_counter()
        function(*args)
        best = min(best, time.perf_counter() - started)
    return best


def profile(model_name, batches, rounds, seed=0):
    """``{batch: {"tinynet": s, "onnxruntime": s, "pytorch": s, "steps": [(description, s), ...]}}``."""
    from frameworks import Unavailable, framework

    sides = {}
    for name in ("tinynet", "onnxruntime", "pytorch"):
        try:
            adapter = framework(name)
        except Unavailable as error:
            print(f"{name} left out: {error}")
            continue
        sides[name] = (adapter, adapter.build(model_name, seed))
    tinynet_model = sides["tinynet"][1]
    rng = np.random.default_rng(seed)
    results = {}
    for batch in batches:
        images = rng.random((batch, 1, 28, 28), dtype=np.float32)
        data = {name: adapter.prepare(images, np.zeros(batch, np.int64)) for name, (adapter, _) in sides.items()}
        calls = CALLS.get(batch, max(2, 2000 // batch))
        expected = None
        for name, (adapter, model) in sides.items():
            if name == "pytorch":  # its own initial weights: only the shape and the row sums can be compared
                assert adapter.predict(model, data[name], batch).shape == (batch, 10)
                continue
            probabilities = adapter.predict(model, data[name], batch)
            if expected is None:
                expected = probabilities
            np.testing.assert_allclose(probabilities, expected, rtol=1e-3, atol=1e-5)
        seconds = {name: [] for name in sides}
        for _ in range(rounds):
            for name, (adapter, model) in sides.items():
                seconds[name].append(_fastest(calls, adapter.predict, model, data[name], batch))
        results[batch] = {name: float(np.median(values)) for name, values in seconds.items()}
        steps, activations = [], images
        with tinynet_model._inference_threads(batch):  # the thread setting predict runs the plan under
            for step in tinynet_model.inference_plan():
                given = activations
                steps.append((step.describe(), _fastest(calls, step.forward, given)))
                activations = step.forward(given)
        results[batch]["steps"] = steps
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", default="cnn", choices=["basic_mlp", "small_cnn", "keras_convnet", "cnn"])
    here = Path(__file__).resolve().parent
    sys.path.insert(0, str(here.parent / "examples"))
    from cli import whole_number

    parser.add_argument("--batches", type=whole_number(1), nargs="+", default=[1, 128, 1000])
    parser.add_argument("--rounds", type=whole_number(1), default=5)
    parser.add_argument("--threads", type=whole_number(1), default=2,
                        help="BLAS, ONNX Runtime and PyTorch threads (numba kernels keep their own)")
    args = parser.parse_args()
    os.environ["TINYNET_BENCH_THREADS"] = str(args.threads)  # read by frameworks.py when it is imported
    sys.path.insert(0, str(here))
    from frameworks import blas_description
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=args.threads, user_api="blas"):
        results = profile(args.model, args.batches, args.rounds)
        blas = blas_description()
    print(f"{args.model}: BLAS {blas}, {args.threads} threads; numba kernel threads "
          f"{os.environ.get('TINYNET_KERNEL_THREADS', '1')}; OPENBLAS_CORETYPE "
          f"{os.environ.get('OPENBLAS_CORETYPE', 'unset')}; median of {args.rounds} interleaved rounds")
    for batch, row in results.items():
        sides = [name for name in ("tinynet", "onnxruntime", "pytorch") if name in row]
        timings = ", ".join(f"{name} {row[name] * 1e3:.3f} ms" for name in sides)
        ratios = ", ".join(f"tinynet/{name} {row[name] / row['tinynet']:.2f}" for name in sides[1:])
        print(f"\nbatch {batch}: {timings} (images/s ratios: {ratios})")
        for description, seconds in row["steps"]:
            print(f"  {seconds * 1e3:9.3f} ms  {description}")
        print(f"  {sum(seconds for _, seconds in row['steps']) * 1e3:9.3f} ms  sum of the steps")


if __name__ == "__main__":
    main()
