"""Train tinynet's CNN on MNIST: python examples/mnist_cnn.py [--help]

Defaults, chosen on a validation split (benchmarks/tune.py): tinynet.models.cnn() (three
convolutions with BatchNorm), 12 epochs, batch 128, Adam with a one-cycle learning rate
peaking at 1e-2, each image randomly rotated by up to 10 degrees, zoomed by up to 10% and
shifted by up to 2 pixels. Prints the summary, a progress bar per epoch, the test accuracy
(evaluated once, at the end) against the reference Keras notebook's CNN (98.52%), and saves
the model to mnist_cnn.npz.
"""

from cli import run
from mnist_run import Recipe, main

import tinynet

CNN = Recipe(
    name="cnn", build=tinynet.models.cnn,
    reference_accuracy=0.9852, reference_name="Keras notebook, Model-2 [CNN]",
    epochs=12, batch_size=128, lr=1e-2, rotation=10, scale=0.1, shift=2,
)

if __name__ == "__main__":
    run(main, CNN)
