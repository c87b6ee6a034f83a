"""Read your own handwriting: the top three digits for each image, with probabilities.

    python examples/predict_digit.py IMAGE [IMAGE ...] [--model mnist_cnn.npz] [--plot digits.png]

Each image (any format, size or colour; dark ink on light paper or the reverse) is prepared
the way MNIST digits were (light on black, cropped, scaled into 20x20, centred by its centre
of mass: ``tinynet.datasets.load_images``), then read by a trained model: by default the one
``python examples/mnist_cnn.py`` saves as ``mnist_cnn.npz``. ``--plot PATH`` draws each
image as read, as prepared, and the model's probabilities.
"""

import argparse
from pathlib import Path

import numpy as np

import tinynet


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
    parser.add_argument("images", nargs="+", metavar="IMAGE")
    parser.add_argument("--model", default="mnist_cnn.npz",
                        help="a model saved by model.save (default: %(default)s, from examples/mnist_cnn.py)")
    parser.add_argument("--plot", default=None, metavar="PATH", help="draw the images, as prepared, and the bars")
    args = parser.parse_args(argv)

    if not Path(args.model).exists():
        raise tinynet.ModelFileError(f"No model file at {args.model}. Train one first: python examples/mnist_cnn.py "
                                     f"(it saves mnist_cnn.npz), or pass --model PATH.")
    model = tinynet.load_model(args.model)
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
