"""Train tinynet's CNN on MNIST: python examples/mnist_cnn.py [--help]

Defaults: 15 epochs, batch 128, Adam from lr 2e-3 decayed by 0.85 per epoch, random shifts
of up to 2 pixels. Prints the summary, a progress bar per epoch, the test accuracy against
the reference Keras notebook's CNN (98.52%), and saves the model to mnist_cnn.npz.
"""

from cli import run
from mnist_run import Recipe, main

import tinynet

CNN = Recipe(
    name="cnn", build=tinynet.models.cnn,
    reference_accuracy=0.9852, reference_name="Keras notebook, Model-2 [CNN]",
    epochs=12, batch_size=128, lr=5e-3, rotation=10, scale=0.1, shift=2,
)

if __name__ == "__main__":
    run(main, CNN)
