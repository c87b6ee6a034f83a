"""Read your own handwriting: the top three digits for each image, with probabilities.

    python examples/predict_digit.py IMAGE [IMAGE ...] [--model PATH] [--plot digits.png]

Each image (any format, size or colour; dark ink on light paper or the reverse) is prepared
the way MNIST digits were (light on black, cropped, scaled into 20x20, centred by its centre
of mass: ``tinynet.datasets.load_images``), then read by a trained model: ``--model PATH``,
else the ``mnist_cnn.npz`` that ``python examples/mnist_cnn.py`` saves when there is one here,
else the CNN shipped with tinynet (``tinynet.models.pretrained("cnn")``). ``--plot PATH``
draws each image as read, as prepared, and the model's probabilities. Two digits to try
ship beside this file: ``examples/digits/seven.png`` and ``examples/digits/three.jpg``.
"""

import argparse
from pathlib import Path

import numpy as np
from cli import input_file, output_file

import tinynet

#: What examples/mnist_cnn.py saves, read when --model is not given.
TRAINED_HERE = "mnist_cnn.npz"


def draw(paths, prepared, probabilities, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    figure, axes = plt.subplots(len(paths), 3, figsize=(9, 2.4 * len(paths)), squeeze=False)
    for row, (image_path, digit, probs) in enumerate(zip(paths, prepared, probabilities, strict=True)):
        with Image.open(image_path) as original:
            axes[row, 0].imshow(original.convert("RGB"))
        axes[row, 0].set_title(f"{Path(image_path).name}, as read", fontsize=8)
        axes[row, 1].imshow(digit[0], cmap="gray", vmin=0, vmax=1)
        axes[row, 1].set_title("as prepared (MNIST style, 28x28)", fontsize=8)
        for axis in axes[row, :2]:
            axis.axis("off")
        axes[row, 2].bar(range(10), probs, color=["tab:red" if d == probs.argmax() else "tab:blue" for d in range(10)])
        axes[row, 2].set(xticks=range(10), ylim=(0, 1), title=f"read as {probs.argmax()} ({probs.max():.0%})")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+", type=input_file, metavar="IMAGE")
    parser.add_argument("--model", default=None,
                        help="a model saved by model.save (default: mnist_cnn.npz from examples/mnist_cnn.py "
                             "when it is here, else the CNN shipped with tinynet)")
    parser.add_argument("--plot", type=output_file("digits.png"), default=None, metavar="PATH",
                        help="draw the images, as prepared, and the bars")
    args = parser.parse_args(argv)
    if args.model is not None and not Path(args.model).is_file():
        parser.error(f"--model: no model file at {args.model}. Train one with python examples/mnist_cnn.py "
                     f"(it saves {TRAINED_HERE}), or leave --model out to use the shipped CNN.")

    if args.model is None and not Path(TRAINED_HERE).exists():
        model = tinynet.models.pretrained("cnn")
        print(f"Reading with the CNN shipped with tinynet ({model.metadata['test_accuracy']:.2%} on the MNIST "
              f"test set); train your own with python examples/mnist_cnn.py.")
    else:
        path = args.model or TRAINED_HERE
        model = tinynet.load_model(path)
        print(f"Reading with {path}.")
    prepared = tinynet.datasets.load_images(args.images)
    probabilities = model.predict(prepared)
    for path, probs in zip(args.images, probabilities, strict=True):
        top = np.argsort(probs)[::-1][:3]
        print(f"{path}: " + ", ".join(f"{digit} ({probs[digit]:.1%})" for digit in top))
    if args.plot:
        print(f"Picture: {draw(args.images, prepared, probabilities, args.plot)}")
    return probabilities


if __name__ == "__main__":
    from cli import run

    run(main)
