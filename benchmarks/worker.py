"""One framework and one model in a process of their own, timed on request.

``pytest benchmarks`` starts one worker per (framework, model) with the thread variables
set, then asks them in turn (tinynet, PyTorch, Keras, tinynet, ...) for one round each, so
the rounds of the frameworks interleave and a slow minute of a shared machine hits all of
them. Nothing is shared between frameworks: not the OpenMP runtime, not the allocator
settings, not the import order. Each request builds a fresh model from the round's seed.

Protocol: one JSON object per line on stdin, one JSON answer per line on stdout.

    {"task": "info"}                              versions, threads, CPU capability
    {"task": "train", "seed": 0, "images": 60000}  one timed epoch after a 10-batch warm-up
    {"task": "predict", "seed": 0, "batch": 128}   class probabilities for the 10,000 test images
                                                  (batch 1: one image a call, for 0.2 s)

    python benchmarks/worker.py pytorch keras_convnet
"""

import json
import sys
import time

BATCH = 128
WARM_UP_BATCHES = 10
ONE_AT_A_TIME = 1000  # test images predicted one per call at "batch 1"
MIN_TIMED_SECONDS = 0.2


def _answer(payload):
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def _data():
    import numpy as np

    import tinynet

    (x_train, y_train), (x_test, y_test) = tinynet.datasets.load_mnist(download=False)
    scale = np.float32(1 / 255)
    x_train, x_test = x_train[:, None] * scale, x_test[:, None] * scale
    return (x_train, y_train), (x_test, y_test)


def _one_at_a_time(adapter, model, x_test, y_test):
    """``(seconds, images, probabilities)`` of test images predicted one per call, as a server answers
    requests: after 20 calls to warm up, as many as 0.2 s takes (at most ONE_AT_A_TIME)."""
    import numpy as np

    single = [adapter.prepare(x_test[i:i + 1], y_test[i:i + 1]) for i in range(ONE_AT_A_TIME)]
    first = np.concatenate([adapter.predict(model, image, 1) for image in single[:20]])
    started = time.perf_counter()
    for count, image in enumerate(single, start=1):
        adapter.predict(model, image, 1)
        if count % 10 == 0 and time.perf_counter() - started >= MIN_TIMED_SECONDS:
            break
    return time.perf_counter() - started, count, first


def serve(framework_name, model_name):
    from frameworks import Unavailable, framework

    try:
        adapter = framework(framework_name)
    except Unavailable as error:
        _answer({"unavailable": str(error)})
        return
    try:
        adapter.build(model_name, seed=0)
    except Unavailable as error:  # this framework has no such model
        _answer({"unavailable": str(error)})
        return
    (x_train, y_train), (x_test, y_test) = _data()
    train = adapter.prepare(x_train, y_train)
    warm_up = adapter.prepare(x_train[: WARM_UP_BATCHES * BATCH], y_train[: WARM_UP_BATCHES * BATCH])
    test = adapter.prepare(x_test, y_test)
    check = adapter.prepare(x_test[:2000], y_test[:2000])
    _answer({"ready": True})
    for line in sys.stdin:
        request = json.loads(line)
        task = request["task"]
        if task == "info":
            _answer({"version": adapter.version, "threads": adapter.threads(), **adapter.details()})
        elif task == "train":
            model = adapter.build(model_name, seed=request["seed"])
            adapter.train_epoch(model, warm_up, BATCH, seed=request["seed"])
            images = request.get("images", len(x_train))
            part = train if images >= len(x_train) else adapter.prepare(x_train[:images], y_train[:images])
            started = time.perf_counter()
            adapter.train_epoch(model, part, BATCH, seed=request["seed"])
            seconds = time.perf_counter() - started
            scores = adapter.predict(model, check, 1000)
            accuracy = float((scores.argmax(axis=1) == y_test[:2000]).mean())
            _answer({"seconds": seconds * len(x_train) / images, "accuracy": accuracy})
        elif task == "predict":
            model = adapter.build(model_name, seed=request["seed"])
            batch = request["batch"]
            if batch == 1:
                seconds, images, first = _one_at_a_time(adapter, model, x_test, y_test)
            else:
                started = time.perf_counter()
                first = adapter.predict(model, test, batch)  # warm-up, and a check of what is timed
                # Passes enough for 0.2 s: a fast model's single pass (10 ms) is mostly timer noise.
                passes = max(1, min(50, round(MIN_TIMED_SECONDS / (time.perf_counter() - started))))
                started = time.perf_counter()
                for _ in range(passes):
                    adapter.predict(model, test, batch)
                seconds, images = (time.perf_counter() - started) / passes, len(x_test)
            _answer({"seconds": seconds, "images": images, "rows_sum_to_one": bool(
                abs(float(first.sum(axis=1).mean()) - 1) < 1e-3)})
        else:
            _answer({"error": f"unknown task {task!r}"})


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2])
