"""Watch gradients vanish: a deep Sigmoid network against the same network with Tanh and ReLU.

    python examples/vanishing_gradients.py [--plots DIR] [--epochs 3] [--images 10000]

First, at initialisation, the mechanism: one batch of 128 training images through the 8-layer
Sigmoid stack, layer by layer. Going backward, each Dense + Sigmoid block multiplies the
gradient by ``W^T`` and by ``sigma'(z)`` element by element. Glorot's scale is chosen so that
``W^T`` keeps a typical vector's length (its gain on a random vector is about 1; its largest
gain, the spectral norm, about 2, only bounds the worst direction), and the pre-activations
``z`` stay near 0, where ``sigma'`` is close to its maximum, 1/4. So each block divides the
gradient by about 4, and eight blocks by about ``4^8``: the example prints each layer's mean
``sigma'``, their product and the measured ratio of the first layer's weight gradient to the
last's, side by side.

Then it trains the three 8-layer MLPs on MNIST with ``fit(..., trace=True)``, which records
every layer's mean gradient norm per epoch. Tanh's derivative reaches 1 at 0, ReLU's is 1
wherever a unit is active: their gradients stay comparable from layer to layer. Prints the
first-to-last gradient ratio and test accuracy of each; ``--plots DIR`` draws
``gradient_norms.png``: the norm against depth, all on one log axis. A fourth run puts a
BatchNorm1D before every Sigmoid: each layer's pre-activations are re-centred and re-scaled,
the Sigmoids work in their steep middle, and the gradient reaches the first layers again.
"""

import argparse
from pathlib import Path

import numpy as np
from cli import data_folder, output_folder, whole_number

import tinynet
from tinynet.layers import BatchNorm1D, Dense, Flatten, ReLU, Sigmoid, Tanh
from tinynet.losses import SoftmaxCrossEntropy

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


def at_initialisation(model, x, y):
    """One forward and backward, layer by layer: each Sigmoid's mean slope and the gradient's size at both ends.

    Returns the slopes, the gradient leaving the first Sigmoid backward (dL/dz of the first block)
    over the gradient reaching the last Sigmoid's output (eight slopes and seven W^T between
    them), and the first Dense layer's ‖dW‖ over the last's.
    """
    slopes, outputs = [], x.astype(np.float32) / 255
    for layer in model.layers:
        outputs = layer.forward(outputs, training=True)
        if isinstance(layer, Sigmoid):
            slopes.append(float((outputs * (1 - outputs)).mean()))  # sigma'(z) = y (1 - y)
    loss = SoftmaxCrossEntropy()
    loss.forward(outputs, y)
    grad, reaching, leaving = loss.backward(), [], []
    for layer in reversed(model.layers):
        if isinstance(layer, Sigmoid):
            reaching.append(np.linalg.norm(grad))
        grad = layer.backward(grad)
        if isinstance(layer, Sigmoid):
            leaving.append(np.linalg.norm(grad))
    weights = [np.linalg.norm(layer.grads["W"]) for layer in model.layers if isinstance(layer, Dense)]
    return np.array(slopes), float(leaving[-1] / reaching[0]), float(weights[0] / weights[-1])


def glorot_gains(rng):
    """A 64x64 Glorot matrix's largest gain (spectral norm) and its gain on a typical random vector."""
    weights = Dense(WIDTH, WIDTH, init="glorot_uniform", rng=rng).params["W"].astype(np.float64)
    vectors = rng.standard_normal((1000, WIDTH))
    typical = np.median(np.linalg.norm(vectors @ weights, axis=1) / np.linalg.norm(vectors, axis=1))
    return float(np.linalg.norm(weights, 2)), float(typical)


def first_to_last(history):
    """Mean gradient norm of the first Dense layer over that of the last one, in the final epoch."""
    frame = history.trace_frame().dropna(subset=["grad_norm"])
    final = frame[frame.epoch == frame.epoch.max()]
    return final.grad_norm.iloc[0] / final.grad_norm.iloc[-1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=whole_number(1), default=3)
    parser.add_argument("--images", type=whole_number(2), default=10_000, help="training images used (2 to 60,000)")
    parser.add_argument("--data-dir", type=data_folder, default=None)
    parser.add_argument("--plots", type=output_folder, default=None, metavar="DIR")
    args = parser.parse_args(argv)
    if args.images > 60_000:
        parser.error(f"--images takes at most the 60,000 training images, got {args.images:,}")

    (x_train, y_train), (x_test, y_test) = tinynet.datasets.load_mnist(args.data_dir)
    x_train, y_train = x_train[: args.images, None], y_train[: args.images]
    spectral, typical = glorot_gains(np.random.default_rng(0))
    slopes, through, dense_ratio = at_initialisation(deep_mlp(Sigmoid), x_train[:128], y_train[:128])
    print(f"At initialisation, one batch of 128 images through the {DEPTH} Sigmoid layers:\n"
          f"  Glorot {WIDTH}x{WIDTH}: gain {typical:.2f} on a typical vector (largest gain, the spectral norm: "
          f"{spectral:.2f})\n"
          f"  mean sigma'(z) per layer: {' '.join(f'{slope:.3f}' for slope in slopes)}\n"
          f"  their product: {slopes.prod():.1e}   ((1/4)^{DEPTH} = {0.25 ** DEPTH:.1e})\n"
          f"  gradient leaving the first Sigmoid / reaching the last: {through:.1e}\n"
          f"  first Dense layer's ‖dW‖ / the last's: {dense_ratio:.1e}\n")
    print(f"After {args.epochs} epochs of SGD (momentum 0.9, lr 0.1) on {len(x_train):,} images:")
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
