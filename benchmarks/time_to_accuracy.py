"""Time to accuracy: the CNN of ``examples/mnist_cnn.py`` trained by tinynet and by PyTorch.

    python benchmarks/time_to_accuracy.py tinynet|pytorch [--seed 0] [--epochs N]

Both frameworks train the same model from the same initial weights (tinynet's, copied into
PyTorch with ``tinynet.export.to_torch``) with the example's whole recipe: batch size, Adam,
the one-cycle learning rate set before every step, and batches shuffled and augmented by the
same code (a NumPy generator seeded alike, ``tinynet.augment.random_affine``), so only the
framework differs. tinynet trains through ``model.fit``, as a user would; PyTorch through the
plain loop its tutorials teach, with its fused Adam. After every epoch the test accuracy is
measured, off the clock (this reports how fast each gets there; nothing is chosen by it), and
one JSON line is printed: ``{"epoch", "train_seconds", "test_accuracy"}``, the seconds
counting training only, summed over the epochs so far.

``pytest benchmarks -m accuracy`` runs both, each in a process of its own with the same thread
counts, and reports the training time until the test accuracy first reaches 99.0% and 99.5%.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

import tinynet

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
from cli import whole_number  # noqa: E402
from frameworks import fit_generator, torch_epoch  # noqa: E402 (the benchmarks folder, this script's own)
from mnist_cnn import CNN  # noqa: E402
from mnist_run import augmentation, one_cycle  # noqa: E402


def _report(epoch, seconds, accuracy):
    print(json.dumps({"epoch": epoch, "train_seconds": seconds, "test_accuracy": accuracy}), flush=True)


def train_tinynet(recipe, train, test, seed, epochs):
    model = recipe.build(rng=seed)
    history = model.fit(*train, epochs=epochs, batch_size=recipe.batch_size, seed=seed, verbose=0,
                        optimizer=tinynet.optim.Adam(lr=recipe.lr),
                        lr_schedule=one_cycle(recipe.lr, epochs, len(train[0]), recipe.batch_size),
                        augment=augmentation(recipe.rotation, recipe.scale, recipe.shift), validation_data=test)
    seconds = np.cumsum(history.history["seconds"])
    for epoch, (elapsed, accuracy) in enumerate(zip(seconds, history.history["val_accuracy"], strict=True), start=1):
        _report(epoch, float(elapsed), accuracy)


def train_pytorch(recipe, train, test, seed, epochs, threads):
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(seed)  # dropout's masks
    model = recipe.build(rng=seed)
    net = tinynet.export.to_torch(model)
    optimizer = torch.optim.Adam(net.parameters(), lr=recipe.lr, fused=True)
    schedule = one_cycle(recipe.lr, epochs, len(train[0]), recipe.batch_size)
    augment = augmentation(recipe.rotation, recipe.scale, recipe.shift)
    rng = fit_generator(model, seed)  # the batches and augmentation tinynet's fit(seed=seed) draws
    (x, y), (x_test, y_test) = train, test
    labels = torch.from_numpy(y.astype(np.int64))
    test_images = torch.from_numpy(x_test.astype(np.float32) * np.float32(1 / 255))
    step, seconds = 0, 0.0
    for epoch in range(1, epochs + 1):
        net.train()
        started = time.perf_counter()
        step = torch_epoch(net, optimizer, x, labels, recipe.batch_size, rng, schedule, augment, step)
        seconds += time.perf_counter() - started
        net.eval()
        with torch.inference_mode():
            predicted = torch.cat([net(test_images[i:i + 1000]).argmax(dim=1) for i in range(0, len(x_test), 1000)])
        _report(epoch, seconds, float((predicted.numpy() == y_test).mean()))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("framework", choices=["tinynet", "pytorch"])
    parser.add_argument("--seed", type=whole_number(0), default=0)
    parser.add_argument("--epochs", type=whole_number(1), default=CNN.epochs)
    parser.add_argument("--threads", type=whole_number(1), default=2, help="PyTorch's intra-op threads")
    args = parser.parse_args(argv)
    (x, y), (x_test, y_test) = tinynet.datasets.load_mnist(download=False)
    train, test = (x[:, None], y), (x_test[:, None], y_test)
    if args.framework == "tinynet":
        train_tinynet(CNN, train, test, args.seed, args.epochs)
    else:
        train_pytorch(CNN, train, test, args.seed, args.epochs, args.threads)


if __name__ == "__main__":
    main()
