"""Time ``import tinynet`` plus the first trained batch, then (optionally) a whole epoch.

Run as a fresh process by ``bench_startup.py``, so that what is measured is what a user
waits for: imports, numba loading (or compiling) its kernels, and the first Adam step.
Prints one JSON object: import_s, first_batch_s (model built and one batch trained),
startup_s (their sum), and with ``--epoch`` also epoch_s and peak_rss_mib, the peak
resident memory of the whole process, data set included, after a full training epoch.

    python benchmarks/first_batch.py --model cnn [--epoch]
"""

import argparse
import json
import os
import sys
import time

started = time.perf_counter()
import tinynet  # noqa: E402 - the import is part of what is timed

imported = time.perf_counter()


def peak_rss_mib():
    """Peak resident memory of this process in MiB.

    Linux's VmHWM belongs to this program's address space; ``ru_maxrss`` is not used
    because Linux carries it over from the parent process across ``exec``.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    import resource

    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale / 1024


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cnn", choices=["basic_mlp", "small_cnn", "keras_convnet", "cnn"])
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples"))
    from cli import whole_number  # here: tinynet's import above is what is timed

    parser.add_argument("--batch-size", type=whole_number(2), default=128)
    parser.add_argument("--epoch", action="store_true", help="also train one full epoch and report peak memory")
    args = parser.parse_args(argv)

    loading = time.perf_counter()
    # uint8 images, as the examples use them: fit scales each batch to [0, 1].
    (x_train, y_train), _ = tinynet.datasets.load_mnist(download=False)
    x_train = x_train[:, None]
    load_s = time.perf_counter() - loading

    building = time.perf_counter()
    model = getattr(tinynet.models, args.model)(rng=0)
    batch = slice(0, args.batch_size)
    model.fit(x_train[batch], y_train[batch], epochs=1, batch_size=args.batch_size, verbose=0, seed=0)
    first_batch_s = time.perf_counter() - building
    report = {
        "model": args.model,
        "import_s": imported - started,
        "first_batch_s": first_batch_s,
        "startup_s": imported - started + first_batch_s,
        "data_load_s": load_s,
    }
    if args.epoch:
        history = model.fit(x_train, y_train, epochs=1, batch_size=args.batch_size, verbose=0, seed=0)
        report["epoch_s"] = history.history["seconds"][-1]
        report["train_accuracy"] = history.history["accuracy"][-1]
        report["peak_rss_mib"] = peak_rss_mib()
    json.dump(report, sys.stdout)
    print()


if __name__ == "__main__":
    main()
