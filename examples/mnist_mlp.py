"""Train tinynet's basic dense model on MNIST: python examples/mnist_mlp.py [--help]

Flatten -> Dense 784->128 -> ReLU -> Dense 128->10, the reference notebook's "basic"
model (97.94%). Defaults, chosen on a validation split (benchmarks/tune.py): 40 epochs,
batch 128, Adam with a one-cycle learning rate peaking at 3e-3, each image randomly
rotated by up to 8 degrees, zoomed by up to 8% and shifted by up to 1.5 pixels. The test
set is evaluated once, at the end. Saves the model to mnist_mlp.npz.
"""

from cli import run
from mnist_run import Recipe, main

import tinynet

MLP = Recipe(
    name="mlp", build=tinynet.models.basic_mlp,
    reference_accuracy=0.9794, reference_name="Keras notebook, Model-1 [Basic]",
    epochs=40, batch_size=128, lr=3e-3, rotation=8, scale=0.08, shift=1.5,
)

if __name__ == "__main__":
    run(main, MLP)
