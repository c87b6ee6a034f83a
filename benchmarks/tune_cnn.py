"""Choose the CNN recipe on a validation split, never on the test set.

    python benchmarks/tune_cnn.py RECIPE [RECIPE ...] [--seed 0] [--epochs N]

Holds out the last 10,000 of the 60,000 training images, trains each named recipe on the
other 50,000 and prints its validation accuracy after every epoch and its wall time. The
test set is not loaded. The recipes are below; add one to try it. The winner becomes
``tinynet.models.cnn()`` and ``examples/mnist_cnn.py``'s defaults, and only then is the test
set evaluated, once, over seeds 0, 1, 2.
"""

import argparse
import math
import time

import numpy as np

import tinynet
from tinynet.layers import BatchNorm1D, BatchNorm2D, Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU


def today_cnn(rng):
    """tinynet.models.cnn() as it is: the baseline."""
    return tinynet.models.cnn(rng=rng)


def cnn_bn(rng):
    """The same blocks with BatchNorm after each pooling (the fused Conv + ReLU + MaxPool step stays)."""
    return tinynet.Sequential([
        Conv2D(1, 32, 3, rng=rng), ReLU(), MaxPool2D(2), BatchNorm2D(32),
        Conv2D(32, 64, 3, rng=rng), ReLU(), MaxPool2D(2), BatchNorm2D(64),
        Flatten(), Dense(1600, 128, rng=rng), BatchNorm1D(128), ReLU(), Dropout(0.3, rng=rng), Dense(128, 10, rng=rng),
    ])


RECIPES = {
    # name: (model, epochs, schedule(steps_per_epoch, epochs), augmentation)
    "today": (today_cnn, 15, lambda steps, epochs: tinynet.schedules.ExponentialDecay(2e-3, 0.85, steps),
              lambda: tinynet.augment.random_shift(2)),
    "bn-onecycle-affine": (cnn_bn, 15, lambda steps, epochs: tinynet.schedules.OneCycle(5e-3, steps * epochs),
                           lambda: tinynet.augment.random_affine(rotation=10, scale=(0.9, 1.1), shift=2)),
    "bn-onecycle-shift": (cnn_bn, 15, lambda steps, epochs: tinynet.schedules.OneCycle(5e-3, steps * epochs),
                          lambda: tinynet.augment.random_shift(2)),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipes", nargs="+", choices=sorted(RECIPES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    args = parser.parse_args(argv)
    (x, y), _ = tinynet.datasets.load_mnist(download=False)
    x = x[:, None]
    train, validation = slice(0, 50_000), slice(50_000, 60_000)
    for name in args.recipes:
        build, epochs, schedule, augment = RECIPES[name]
        epochs = args.epochs or epochs
        steps = math.ceil(50_000 / 128)
        model = build(np.random.default_rng(args.seed))
        started = time.perf_counter()
        history = model.fit(x[train], y[train], epochs=epochs, seed=args.seed, verbose=0,
                            optimizer=tinynet.optim.Adam(), lr_schedule=schedule(steps, epochs), augment=augment(),
                            validation_data=(x[validation], y[validation]))
        seconds = time.perf_counter() - started
        curve = " ".join(f"{value:.4f}" for value in history.history["val_accuracy"])
        print(f"{name}: validation accuracy by epoch {curve}; last {history.history['val_accuracy'][-1]:.2%}, "
              f"best {max(history.history['val_accuracy']):.2%}; {seconds:.0f} s for {epochs} epochs", flush=True)


if __name__ == "__main__":
    main()
