"""Train tinynet's LSTM on MNIST, each image read row by row: python examples/mnist_lstm.py [--help]

tinynet.models.lstm_rows(): Reshape((28, 28)) -> LSTM(28, 128) -> Dense(128, 10), the image
read as a sequence of 28 rows of 28 pixels and classified from the state after the last row.
Defaults: 8 epochs, batch 128, Adam with a one-cycle learning rate peaking at 1e-2, the
gradient's global norm clipped at 1, no augmentation. Prints the summary, a progress bar per
epoch, the test accuracy (evaluated once, at the end) against the reference Keras notebook's
CNN (98.52%), and saves the model to mnist_lstm.npz.
"""

from cli import run
from mnist_run import Recipe, main

import tinynet

LSTM = Recipe(
    name="lstm", build=tinynet.models.lstm_rows,
    reference_accuracy=0.9852, reference_name="Keras notebook, Model-2 [CNN]",
    epochs=8, batch_size=128, lr=1e-2, rotation=0, scale=0, shift=0, clip_norm=1.0,
)

if __name__ == "__main__":
    run(main, LSTM)
