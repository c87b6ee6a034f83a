"""The MNIST training run shared by ``mnist_cnn.py``, ``mnist_mlp.py`` and ``mnist_lstm.py``.

Loads MNIST, prints the model summary, trains with a progress bar, evaluates on the
10,000 test images, compares with the reference Keras notebook, saves the model and,
with ``--plots DIR``, draws pictures of the data, the training and the mistakes.

The test set is evaluated once, after training: nothing is chosen by it. The defaults of
both examples were chosen on a validation split (``benchmarks/tune.py``: trained on the
first 50,000 training images, judged on the last 10,000); ``--validation N`` holds out the
last N training images here too and reports their accuracy after every epoch.
"""

import argparse
import datetime
import math
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from cli import data_folder, input_file, output_file, output_folder, real_number, whole_number

import tinynet


@dataclass(frozen=True)
class Recipe:
    """Everything that defines a default run of one model."""

    name: str
    build: callable
    reference_accuracy: float  # the Keras notebook this project replaces
    reference_name: str
    epochs: int
    batch_size: int
    lr: float  # the peak of the one-cycle schedule
    rotation: float  # random affine augmentation: largest angle in degrees,
    scale: float  # largest zoom away from 1 (0.1: 0.9 to 1.1),
    shift: float  # and largest translation in pixels (all three 0: none)
    clip_norm: float | None = None  # Adam's bound on the gradient's global L2 norm (None: no clipping)


#: MNIST's training set (load_mnist and load_mnist_original both return it).
TRAINING_IMAGES = 60_000


def one_cycle(lr, epochs, n_images, batch_size):
    """Adam's rate: up to ``lr`` over the first 30% of the run's steps, then annealed (cosine) to nearly 0."""
    return tinynet.schedules.OneCycle(lr, epochs * math.ceil(n_images / batch_size))


def augmentation(rotation, scale, shift):
    """The augment callable for fit (rotate, zoom, shift each image), or None when all three are 0."""
    if rotation == scale == shift == 0:
        return None
    return tinynet.augment.random_affine(rotation=rotation, scale=(1 - scale, 1 + scale), shift=shift)


def parse_args(recipe, argv=None):
    parser = argparse.ArgumentParser(description=f"Train tinynet's {recipe.name} on MNIST and evaluate it.")
    parser.add_argument("--epochs", type=whole_number(1), default=recipe.epochs,
                        help="passes over the 60,000 training images")
    parser.add_argument("--batch-size", type=whole_number(1), default=recipe.batch_size)
    parser.add_argument("--lr", type=real_number(0, low_open=True), default=recipe.lr,
                        help="peak learning rate of Adam's one-cycle schedule (default: %(default)s)")
    parser.add_argument("--rotation", type=real_number(0, 180), default=recipe.rotation,
                        help="random rotation up to this many degrees (default: %(default)s)")
    parser.add_argument("--scale", type=real_number(0, 0.9), default=recipe.scale,
                        help="random zoom between 1 - SCALE and 1 + SCALE (default: %(default)s)")
    parser.add_argument("--shift", type=real_number(0, 14), default=recipe.shift,
                        help="random shift up to this many pixels (default: %(default)s; all three 0: no augmentation)")
    parser.add_argument("--clip-norm", type=real_number(0, low_open=True), default=recipe.clip_norm,
                        help="scale each step's gradients so their global L2 norm is at most this (default: "
                             "%(default)s)")
    parser.add_argument("--images", type=whole_number(2), default=TRAINING_IMAGES, metavar="N",
                        help="use only the first N training images, for a quick trial (default: all %(default)s)")
    parser.add_argument("--validation", type=whole_number(0), default=0, metavar="N",
                        help="hold out the last N training images and report their accuracy after every epoch")
    parser.add_argument("--seed", type=whole_number(0), default=0,
                        help="seeds weights, shuffling, dropout and augmentation")
    parser.add_argument("--data-dir", type=data_folder, default=None,
                        help="folder holding mnist/ (default: $TINYNET_DATA, then the user cache, then download)")
    parser.add_argument("--offline", action="store_true", help="never download: use the files that are there")
    parser.add_argument("--mat", type=input_file, default=None, metavar="PATH",
                        help="read Kaggle's mnist-original.mat (the reference notebook's file) instead (needs scipy)")
    parser.add_argument("--save", type=output_file("model.npz", optional=True),
                        default=f"mnist_{recipe.name}.npz", metavar="PATH",
                        help='where to save the trained model (default: %(default)s; "" saves nothing)')
    parser.add_argument("--checkpoint", type=output_file("checkpoint.npz"), default=None, metavar="PATH",
                        help="write a checkpoint there after every epoch (weights, optimizer, history, RNG state)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from --checkpoint if it exists (Ctrl-C stops at the end of a batch)")
    parser.add_argument("--plots", type=output_folder, default=None, metavar="DIR",
                        help="write PNG pictures to DIR (created if missing)")
    parser.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2], help="0 quiet, 1 progress bars, 2 lines")
    args = parser.parse_args(argv)
    # Checked before any work starts, with argparse's usage line, like the types above.
    if args.resume and not args.checkpoint:
        parser.error("--resume needs --checkpoint PATH: the file to resume from")
    if args.checkpoint and args.save and Path(args.checkpoint).resolve() == Path(args.save).resolve():
        parser.error(f"--checkpoint and --save name the same file, {args.save}; the model would overwrite the "
                     f"checkpoint it resumes from. Give them different paths.")
    if args.images > TRAINING_IMAGES:
        parser.error(f"--images takes at most the {TRAINING_IMAGES:,} training images, got {args.images:,}")
    if args.validation >= args.images - 1:
        parser.error(f"--validation takes at most {args.images - 2:,} of the {args.images:,} training "
                     f"images, got {args.validation:,}")
    return args


def comparison_table(recipe, accuracy, seconds, epochs):
    """This run against the reference notebook, as printable text."""
    import pandas as pd

    table = pd.DataFrame(
        {
            "test accuracy": [f"{accuracy:.2%}", f"{recipe.reference_accuracy:.2%}"],
            "epochs": [epochs, ""],
            "train time": [f"{seconds / 60:.1f} min", ""],
        },
        index=[f"tinynet {recipe.name} (this run)", f"reference: {recipe.reference_name}"],
    )
    margin = (accuracy - recipe.reference_accuracy) * 100
    verdict = "above" if margin > 0 else "below"
    return f"{table.to_string()}\n\n{abs(margin):.2f} percentage points {verdict} the reference."


def revision():
    """The git commit of this checkout, marked when files differ from it; "unknown" outside a checkout."""
    def git(*words):
        return subprocess.run(["git", *words], cwd=Path(__file__).parent, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
    try:
        commit = git("rev-parse", "HEAD")
        return commit + (" with uncommitted changes" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def cpu_name():
    """The processor's model name (Linux's /proc/cpuinfo), else what the platform module says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance(recipe, args, argv, code_revision, test_accuracy, train_seconds, training_images, test_images):
    """What a saved model carries in ``model.metadata``: how it was made and how well it did."""
    return {
        "made_by": shlex.join(["python", f"examples/mnist_{recipe.name}.py", *argv]),
        "recipe": {"model": f"tinynet.models.{recipe.build.__name__}", "epochs": args.epochs,
                   "batch_size": args.batch_size, "optimizer": "Adam", "clip_norm": args.clip_norm,
                   "lr_schedule": f"one-cycle, peak {args.lr}",
                   "rotation": args.rotation, "scale": args.scale, "shift": args.shift,
                   "training_images": training_images},
        "seed": args.seed,
        "revision": code_revision,
        "tinynet_version": tinynet.__version__,
        "test_accuracy": round(float(test_accuracy), 6),
        "test_images": test_images,
        "train_seconds": round(train_seconds, 1),
        "cpu": cpu_name(),
        "date": datetime.date.today().isoformat(),
    }


def main(recipe, argv=None):
    args = parse_args(recipe, argv)
    started = time.perf_counter()
    code_revision = revision()  # of the code that runs now, before anyone edits the checkout
    if args.mat:
        (x_train, y_train), (x_test, y_test) = tinynet.datasets.load_mnist_original(args.mat)
    else:
        (x_train, y_train), (x_test, y_test) = tinynet.datasets.load_mnist(args.data_dir, download=not args.offline)
    # uint8 (N, 28, 28) -> (N, 1, 28, 28); fit and evaluate scale uint8 to [0, 1] batch by batch.
    x_train, x_test = x_train[:args.images, None], x_test[:, None]
    y_train = y_train[:args.images]
    validation_data = None
    if args.validation:
        validation_data = (x_train[-args.validation:], y_train[-args.validation:])
        x_train, y_train = x_train[:-args.validation], y_train[:-args.validation]

    model = recipe.build(rng=args.seed)
    held_out = f", {args.validation:,} held out for validation" if args.validation else ""
    print(f"tinynet {recipe.name} on MNIST: {len(x_train):,} training images{held_out}, {len(x_test):,} test images")
    print(model.summary((1, 28, 28)), end="\n\n")

    initial = {name: array.copy() for name, array in model.state_dict().items()}  # for the pictures
    history = model.fit(
        x_train, y_train,
        epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, verbose=args.verbose,
        optimizer=tinynet.optim.Adam(lr=args.lr, clip_norm=args.clip_norm),
        lr_schedule=one_cycle(args.lr, args.epochs, len(x_train), args.batch_size),
        augment=augmentation(args.rotation, args.scale, args.shift),
        validation_data=validation_data,
        checkpoint=args.checkpoint, resume=args.resume,
    )
    train_seconds = sum(history.history.get("seconds", []))
    scores = model.evaluate(x_test, y_test)  # the one look at the test set
    print(f"\nTest accuracy: {scores['accuracy']:.2%} on the {len(x_test):,} test images (seed {args.seed})")
    print()
    print(comparison_table(recipe, scores["accuracy"], train_seconds, args.epochs))
    if history.history.get("accuracy") and history.history["accuracy"][-1] < scores["accuracy"]:
        print("(The training accuracy above is lower than the test accuracy because it is measured while training:"
              "\n with dropout and augmentation on, and averaged over an epoch in which the weights kept improving."
              "\n The test accuracy is measured afterwards, with both off.)")

    if args.save:
        command = sys.argv[1:] if argv is None else argv
        model.metadata = provenance(recipe, args, command, code_revision, scores["accuracy"], train_seconds,
                                    len(x_train), len(x_test))
        model.save(args.save)
        print(f"Model saved to {args.save} (load it with tinynet.load_model).")
    if args.plots:
        from tinynet import plots

        written = plots.mnist_report(model, history, (x_train, y_train), (x_test, y_test), Path(args.plots),
                                     initial=initial)
        print(f"Pictures written to {args.plots}: " + ", ".join(p.name for p in written))
    print(f"Total wall time: {time.perf_counter() - started:.0f} s")
    return scores["accuracy"]


__all__ = ["Recipe", "main", "comparison_table", "augmentation", "one_cycle", "provenance"]
