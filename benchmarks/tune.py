"""Choose the examples' recipes on a validation split, never on the test set.

    python benchmarks/tune.py RECIPE [RECIPE ...] [--seed 0] [--epochs N]

Holds out the last 10,000 of the 60,000 training images, trains each named recipe on the
other 50,000 and prints its validation accuracy after every epoch, the accuracy of an
exponential moving average of the weights at the end (weight averaging, to see whether it
pays), and the wall time. The test set is not loaded. The recipes are below (``mlp-*`` for
the basic MLP, the others for the CNN); add one to try it. The winners become
``tinynet.models.cnn()`` and the defaults of ``examples/mnist_cnn.py`` and
``examples/mnist_mlp.py``, and only then is the test set evaluated, once, over seeds 0, 1, 2.
"""

import argparse
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import tinynet
from tinynet.layers import BatchNorm1D, BatchNorm2D, Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
from cli import whole_number  # noqa: E402 (the examples' argument types)

TRAIN, VALIDATION = slice(0, 50_000), slice(50_000, 60_000)


def today_cnn(rng):
    """tinynet.models.cnn() as it was before BatchNorm: the baseline."""
    return tinynet.Sequential([
        Conv2D(1, 32, 3, rng=rng), ReLU(), MaxPool2D(2),
        Conv2D(32, 64, 3, rng=rng), ReLU(), MaxPool2D(2),
        Flatten(), Dense(1600, 128, rng=rng), ReLU(), Dropout(0.5, rng=rng), Dense(128, 10, rng=rng),
    ])


def cnn_bn(rng, dropout=0.3):
    """The same blocks with BatchNorm after each pooling (the fused Conv + ReLU + MaxPool step stays)."""
    return tinynet.Sequential([
        Conv2D(1, 32, 3, rng=rng), ReLU(), MaxPool2D(2), BatchNorm2D(32),
        Conv2D(32, 64, 3, rng=rng), ReLU(), MaxPool2D(2), BatchNorm2D(64),
        Flatten(), Dense(1600, 128, rng=rng), BatchNorm1D(128), ReLU(), Dropout(dropout, rng=rng),
        Dense(128, 10, rng=rng),
    ])


def cnn_bn3(rng):
    """cnn_bn with a third 3x3 convolution (64 -> 128 on the 5x5 map): chosen, now ``tinynet.models.cnn()``."""
    return tinynet.models.cnn(rng=rng)


def basic_mlp(rng):
    return tinynet.models.basic_mlp(rng=rng)


def affine(rotation=10, scale=0.1, shift=2):
    return lambda: tinynet.augment.random_affine(rotation=rotation, scale=(1 - scale, 1 + scale), shift=shift)


def one_cycle(max_lr):
    return lambda steps, epochs: tinynet.schedules.OneCycle(max_lr, steps * epochs)


@dataclass
class Recipe:
    build: object
    epochs: int
    schedule: object          # (steps per epoch, epochs) -> lr_schedule
    augment: object           # () -> augment callable
    model_options: dict = field(default_factory=dict)
    batch_size: int = 128


RECIPES = {
    "today": Recipe(today_cnn, 15, lambda steps, epochs: tinynet.schedules.ExponentialDecay(2e-3, 0.85, steps),
                    lambda: tinynet.augment.random_shift(2)),
    "bn-onecycle-affine": Recipe(cnn_bn, 15, one_cycle(5e-3), affine()),
    "bn-onecycle-shift": Recipe(cnn_bn, 15, one_cycle(5e-3), lambda: tinynet.augment.random_shift(2)),
    # Twelve epochs: what four minutes hold on two cores with 60,000 images, plots included.
    "bn-12": Recipe(cnn_bn, 12, one_cycle(5e-3), affine()),
    "bn-12-nodrop": Recipe(cnn_bn, 12, one_cycle(5e-3), affine(), {"dropout": 0.0}),
    "bn-12-lr1e-2": Recipe(cnn_bn, 12, one_cycle(1e-2), affine()),
    "bn3-12": Recipe(cnn_bn3, 12, one_cycle(5e-3), affine()),
    "bn3-12-lr1e-2": Recipe(cnn_bn3, 12, one_cycle(1e-2), affine()),
    "bn3-12-lr1e-2-strong": Recipe(cnn_bn3, 12, one_cycle(1e-2), affine(rotation=15, scale=0.15, shift=3)),
    "bn-12-lr2e-2": Recipe(cnn_bn, 12, one_cycle(2e-2), affine()),
    "bn3-15-lr1e-2": Recipe(cnn_bn3, 15, one_cycle(1e-2), affine()),
    "bn-15-lr2e-2": Recipe(cnn_bn, 15, one_cycle(2e-2), affine()),
    # The basic MLP (784-128-10, the reference notebook's architecture, is fixed).
    "mlp-today": Recipe(basic_mlp, 40, lambda steps, epochs: tinynet.schedules.ExponentialDecay(2e-3, 0.92, steps),
                        lambda: tinynet.augment.random_shift(1)),
    "mlp-onecycle-shift": Recipe(basic_mlp, 40, one_cycle(3e-3), lambda: tinynet.augment.random_shift(1)),
    "mlp-onecycle-affine": Recipe(basic_mlp, 40, one_cycle(3e-3), affine(rotation=8, scale=0.08, shift=1.5)),
    "mlp-onecycle-affine-60": Recipe(basic_mlp, 60, one_cycle(3e-3), affine(rotation=8, scale=0.08, shift=1.5)),
}


class AveragedAdam(tinynet.optim.Adam):
    """Adam that also keeps an exponential moving average of the model's weights and buffers."""

    def __init__(self, model, decay=0.999, **options):
        super().__init__(**options)
        self.model, self.decay = model, decay
        self.average = {name: array.copy() for name, array in model.state_dict().items()}

    def step(self, layers):
        super().step(layers)
        for name, array in self.model.state_dict().items():
            self.average[name] += (1 - self.decay) * (array - self.average[name])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipes", nargs="+", choices=sorted(RECIPES))
    parser.add_argument("--seed", type=whole_number(0), default=0)
    parser.add_argument("--epochs", type=whole_number(1), default=None, help="override the recipe's epochs")
    parser.add_argument("--verbose", type=int, default=2, choices=[0, 1, 2],
                        help="fit's verbosity (2: a line per epoch)")
    args = parser.parse_args(argv)
    (x, y), _ = tinynet.datasets.load_mnist(download=False)
    x = x[:, None]
    for name in args.recipes:
        recipe = RECIPES[name]
        epochs = args.epochs or recipe.epochs
        steps = math.ceil((TRAIN.stop - TRAIN.start) / recipe.batch_size)
        model = recipe.build(np.random.default_rng(args.seed), **recipe.model_options)
        optimizer = AveragedAdam(model)
        started = time.perf_counter()
        history = model.fit(x[TRAIN], y[TRAIN], epochs=epochs, batch_size=recipe.batch_size, seed=args.seed,
                            verbose=args.verbose, optimizer=optimizer, lr_schedule=recipe.schedule(steps, epochs),
                            augment=recipe.augment(), validation_data=(x[VALIDATION], y[VALIDATION]))
        seconds = time.perf_counter() - started
        model.load_state_dict(optimizer.average)
        averaged = model.evaluate(x[VALIDATION], y[VALIDATION])["accuracy"]
        curve = " ".join(f"{value:.4f}" for value in history.history["val_accuracy"])
        print(f"{name} (seed {args.seed}): validation accuracy by epoch {curve}; last "
              f"{history.history['val_accuracy'][-1]:.2%}, best {max(history.history['val_accuracy']):.2%}, "
              f"weight average (decay {optimizer.decay}) {averaged:.2%}; {seconds:.0f} s for {epochs} epochs",
              flush=True)


if __name__ == "__main__":
    main()
