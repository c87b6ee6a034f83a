"""Training and inference speed of each model in tinynet, PyTorch, Keras and ONNX Runtime, side by side.

Same architecture, batch size (128), optimizer (Adam, lr 1e-3; PyTorch's fused one), dtype
(float32) and thread count on every side. Each (framework, model) runs in a process of its
own (``worker.py``), started with the thread variables set and kept for that model's training
and inference tests, and the rounds interleave: tinynet, PyTorch, Keras (and ONNX Runtime at
inference), tinynet, ... ``TINYNET_BENCH_ROUNDS`` times (default 3), each round a fresh model
trained for one epoch after a 10-batch warm-up (JIT compilation and graph tracing stay out of
the timing). A worker is asked only once the one before has gone quiet: idle threads that spin
on after an answer would otherwise take a core from the next framework's timing.
Reported: the median epoch time, its interquartile range, and the ratio of medians; where
the two ranges overlap the table says "no difference" rather than a ratio nobody should quote.

The FLOP bound is an epoch's training FLOPs, ``3F - F_first`` per image (forward, weight
gradient and input gradient, less the input gradient of the first layer, which nobody
computes), at the float32 GEMM rate measured in the same run; the second bound times the
model's own matrix products at their real shapes, which a BLAS runs below its peak.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from frameworks import MODELS, SEQUENCE_MODELS, forward_flops, training_gemms, worker_environment

import tinynet

# The plain `pytest benchmarks` finishes in five minutes on two cores: 3 interleaved rounds,
# each training epoch timed over its first 6,400 images (50 batches) and scaled to 60,000.
# TINYNET_BENCH_ROUNDS=5 TINYNET_BENCH_IMAGES=60000 times whole epochs, as RESULTS.md reports.
ROUNDS = int(os.environ.get("TINYNET_BENCH_ROUNDS", "3"))
IMAGES = int(os.environ.get("TINYNET_BENCH_IMAGES", "6400"))
INFERENCE_BATCHES = (1, 128, 1000)
FRAMEWORK_NAMES = ("tinynet", "pytorch", "keras", "onnxruntime")
TRAINING_FRAMEWORKS = ("tinynet", "pytorch", "keras")  # ONNX Runtime only serves
WORKER = Path(__file__).with_name("worker.py")


class Worker:
    """A running ``worker.py``: send a request, read the answer."""

    def __init__(self, framework_name, model_name):
        self.name = framework_name
        self.process = subprocess.Popen(
            [sys.executable, str(WORKER), framework_name, model_name], env=worker_environment(WORKER.parent),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=WORKER.parent,
        )
        self.greeting = None

    def greet(self):
        """Wait for the worker to have loaded its framework and the data (its first line)."""
        self.greeting = self._read()

    def _read(self):
        line = self.process.stdout.readline()
        if not line:
            error = self.process.stderr.read()
            if "DatasetError" in error:
                pytest.skip("MNIST files not found; set TINYNET_DATA to the folder holding mnist/")
            raise RuntimeError(f"the {self.name} worker died:\n{error[-3000:]}")
        return json.loads(line)

    def ask(self, **request):
        """The worker's answer, once its threads have gone quiet: a framework's idle threads spin for a while
        after its work (ONNX Runtime's about 50 ms of a core), which would slow whichever worker is asked next."""
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        answer = self._read()
        self._wait_until_quiet()
        return answer

    def _wait_until_quiet(self, poll=0.02, longest=1.0):
        """Until the process's CPU time, counted in Linux's clock ticks (10 ms), did not move over one poll, at most
        ``longest`` seconds; where ``/proc`` is missing, a fixed pause of a tenth of a second."""
        stat = Path(f"/proc/{self.process.pid}/stat")
        if not stat.exists():
            time.sleep(0.1)
            return
        used = None
        deadline = time.perf_counter() + longest
        while time.perf_counter() < deadline:
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except FileNotFoundError:  # it has ended: nothing left to wait for
                return
            now = int(fields[11]) + int(fields[12])  # utime + stime of all the process's threads, in ticks
            if now == used:
                return
            used = now
            time.sleep(poll)

    def close(self):
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=60)


def _workers(model_name, results, names=FRAMEWORK_NAMES):
    """The workers for the frameworks that are installed; the others' reasons go into the results.

    All of them start at once: a worker's start is mostly imports and loading MNIST, one core each."""
    started = [Worker(name, model_name) for name in names]
    workers = []
    for worker in started:
        worker.greet()
        if "unavailable" in worker.greeting:
            results.context[worker.name] = f"not compared: {worker.greeting['unavailable']}"
            worker.close()
            continue
        info = worker.ask(task="info")
        extra = ", ".join(f"{key} {value}" for key, value in info.items() if key not in ("version", "threads"))
        key = "tinynet worker" if worker.name == "tinynet" else worker.name  # "tinynet" holds the revision
        results.context[key] = f"{info['version']} ({info['threads']}{', ' + extra if extra else ''})"
        workers.append(worker)
    return workers


@pytest.fixture(scope="module", params=MODELS + SEQUENCE_MODELS)
def model_workers(request, results):
    """``(model name, workers)``: one process per installed framework for one model, shared by the training
    and inference tests of that model (pytest runs them back to back), closed after them."""
    workers = _workers(request.param, results)
    yield request.param, workers
    for worker in workers:
        worker.close()


def _interleaved(workers, rounds, **request):
    """``{framework: [answer per round]}``, the frameworks taking turns within each round."""
    answers = {worker.name: [] for worker in workers}
    for seed in range(rounds):
        for worker in workers:
            answers[worker.name].append(worker.ask(seed=seed, **request))
    return answers


def _record_spread(results, section, model_name, framework, seconds, detail):
    q1, median, q3 = np.percentile(seconds, [25, 50, 75])
    for metric, value in (("seconds", median), ("seconds_q1", q1), ("seconds_q3", q3)):
        results.record(section, model_name, metric, value, "s", framework, detail=detail)


def test_training_epochs(results, model_workers):
    model_name, workers = model_workers
    training = [worker for worker in workers if worker.name in TRAINING_FRAMEWORKS]
    answers = _interleaved(training, ROUNDS, task="train", images=IMAGES)
    for name, rounds in answers.items():
        # What was timed really trained: after 60 batches every model is far above chance (10%);
        # the LSTM and the transformer start slower (about 55% and 65% after 6,400 images).
        if IMAGES >= 6_400:
            worst = min(answer["accuracy"] for answer in rounds)
            floor = (0.9 if IMAGES >= 60_000 else 0.7) - (0.2 if model_name in SEQUENCE_MODELS else 0)
            assert worst > floor, f"{name} {model_name} reached only {worst:.1%} after {IMAGES:,} images"
        _record_spread(results, "training", model_name, name, [a["seconds"] for a in rounds],
                       f"{ROUNDS} rounds, batch 128")


def test_inference(results, model_workers):
    model_name, workers = model_workers
    for batch in INFERENCE_BATCHES:
        answers = _interleaved(workers, ROUNDS, task="predict", batch=batch)
        for name, rounds in answers.items():
            assert all(answer["rows_sum_to_one"] for answer in rounds), f"{name} did not return probabilities"
            # Seconds per 10,000 images, whatever number was timed (batch 1 times 0.2 s worth).
            _record_spread(results, "inference", model_name, name,
                           [a["seconds"] * 10_000 / a["images"] for a in rounds], str(batch))


def _gemm_seconds(m, k, n, repeats=7):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((m, k), dtype=np.float32), rng.standard_normal((k, n), dtype=np.float32)
    a @ b
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - started)
    return float(np.median(times))


@pytest.mark.parametrize("model_name", MODELS)
def test_flop_lower_bounds(results, gemm_rate, model_name):
    """Not a timing of tinynet: what an epoch's matrix products cost at best, two ways."""
    model = getattr(tinynet.models, model_name)(rng=0)
    per_layer = [forward_flops(tinynet.Sequential([layer]), shape) for layer, shape in _layers_with_inputs(model)]
    trainable = [flops for flops in per_layer if flops]
    training_flops = 3 * sum(trainable) - trainable[0]
    batches = 60_000 / 128
    results.record("training", model_name, "forward_mflop", sum(trainable) / 1e6, "MFLOP/image")
    results.record("training", model_name, "flop_bound_s", training_flops * 60_000 / gemm_rate, "s",
                   detail=f"(3F - F_first) at {gemm_rate / 1e9:.0f} GFLOP/s")
    at_shapes = sum(_gemm_seconds(*shape) for shape in training_gemms(model)) * batches
    results.record("training", model_name, "gemm_bound_s", at_shapes, "s", detail="its GEMMs at their real shapes")


def _layers_with_inputs(model, input_shape=(1, 28, 28)):
    shapes = [input_shape, *model.output_shapes(input_shape)[:-1]]
    return list(zip(model.layers, shapes, strict=True))
