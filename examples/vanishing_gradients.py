"""Watch gradients vanish: a deep Sigmoid network against the same network with Tanh and ReLU.

    python examples/vanishing_gradients.py [--plots DIR] [--epochs 3] [--images 10000]

Trains three 8-layer MLPs on MNIST with ``fit(..., trace=True)``, which records every
layer's mean gradient norm per epoch. Each Dense + activation block multiplies the backward
signal by ``diag(f'(z)) W^T``; Sigmoid's derivative is at most 1/4, so through eight blocks
the gradient reaching the first layer of the Sigmoid network is orders of magnitude smaller
than the last layer's. Tanh's derivative reaches 1 at 0, ReLU's is 1 wherever a unit is
active: their gradients stay comparable from layer to layer. Prints the first-to-last
gradient ratio and test accuracy of each; ``--plots DIR`` draws ``gradient_norms.png``:
the norm against depth, all on one log axis. A fourth run puts a BatchNorm1D before every
Sigmoid: each layer's pre-activations are re-centred and re-scaled, the Sigmoids work in
their steep middle, and the gradient reaches the first layers again.
"""

import argparse
from pathlib import Path

from cli import whole_number

import tinynet
from tinynet.layers import BatchNorm1D, Dense, Flatten, ReLU, Sigmoid, Tanh

DEPTH, WIDTH = 8, 64


def deep_mlp(activation, seed=0, batchnorm=False):
    """Flatten, then DEPTH x (Dense [-> BatchNorm1D] -> activation), then Dense -> 10; Glorot-initialised."""
    layers, features = [Flatten()], 784
    for position in range(DEPTH):
        layers.append(Dense(features, WIDTH, init="glorot_uniform", rng=seed + position))
        layers += [BatchNorm1D(WIDTH)] if batchnorm else []
        layers.append(activation())
        features = WIDTH
    return tinynet.Sequential([*layers, Dense(WIDTH, 10, init="glorot_uniform", rng=seed + DEPTH)])


def first_to_last(history):
    """Mean gradient norm of the first Dense layer over that of the last one, in the final epoch."""
    frame = history.trace_frame().dropna(subset=["grad_norm"])
    final = frame[frame.epoch == frame.epoch.max()]
    return final.grad_norm.iloc[0] / final.grad_norm.iloc[-1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=whole_number(1), default=3)
    parser.add_argument("--images", type=whole_number(2), default=10_000, help="training images used (2 to 60,000)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--plots", default=None, metavar="DIR")
    args = parser.parse_args(argv)
    if args.images > 60_000:
        parser.error(f"--images takes at most the 60,000 training images, got {args.images:,}")

    (x_train, y_train), (x_test, y_test) = tinynet.datasets.load_mnist(args.data_dir)
    x_train, y_train = x_train[: args.images, None], y_train[: args.images]
    ratios, histories, accuracies = {}, {}, {}
    for activation, batchnorm in ((Sigmoid, False), (Tanh, False), (ReLU, False), (Sigmoid, True)):
        model = deep_mlp(activation, batchnorm=batchnorm)
        history = model.fit(x_train, y_train, epochs=args.epochs, seed=0, verbose=0, trace=True,
                            optimizer=tinynet.optim.SGD(lr=0.1, momentum=0.9))
        name = activation.__name__ + (" + BatchNorm" if batchnorm else "")
        ratios[name], histories[name] = first_to_last(history), history
        accuracies[name] = model.evaluate(x_test[:, None], y_test)["accuracy"]
        print(f"{name:20s} first/last layer gradient norm: {ratios[name]:.2e}   test accuracy: "
              f"{accuracies[name]:.2%}")
    if accuracies["Sigmoid"] < 0.2:
        print("\nWhy the Sigmoid network stays near chance (10%): its first layers get almost no gradient, so\n"
              "they keep their random weights; each Sigmoid then squeezes the signal into (0, 1) around 0.5,\n"
              "and after eight of them every digit reaches the last layers as nearly the same vector. With\n"
              "nothing left to tell the classes apart, the output layer learns only their frequencies.")
    if args.plots:
        from tinynet import plots

        path = plots.gradient_norms_by_depth(
            histories, Path(args.plots) / "gradient_norms.png",
            title=f"{DEPTH} hidden layers: gradient norm against depth (epoch {args.epochs})")
        print(f"Picture: {path}")
    return ratios


if __name__ == "__main__":
    from cli import run

    run(main)
