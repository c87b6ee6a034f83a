"""Kaggle's Digit Recognizer: train tinynet's CNN on train.csv, write submission.csv for test.csv.

    python examples/kaggle_digit_recognizer.py --train train.csv --test test.csv --out submission.csv

Reads the competition's files (a ``label`` column and ``pixel0`` .. ``pixel783``), holds out
a tenth of train.csv to report an honest validation accuracy, trains ``tinynet.models.cnn()``
with the recipe of ``examples/mnist_cnn.py`` (its epochs, Adam's one-cycle rate, random
rotation, zoom and shift), predicts every row of test.csv and writes ``ImageId,Label``
(atomically: a failure leaves no half-written file).
"""

import argparse

import numpy as np
from cli import input_file, output_file, whole_number
from mnist_cnn import CNN
from mnist_run import augmentation, one_cycle

import tinynet


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=input_file, required=True, metavar="CSV",
                        help="Kaggle's train.csv (with a label column)")
    parser.add_argument("--test", type=input_file, required=True, metavar="CSV", help="Kaggle's test.csv (pixels only)")
    parser.add_argument("--out", type=output_file("submission.csv"), default="submission.csv", metavar="CSV",
                        help="where to write the submission")
    parser.add_argument("--epochs", type=whole_number(1), default=CNN.epochs)
    parser.add_argument("--seed", type=whole_number(0), default=0)
    parser.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2])
    args = parser.parse_args(argv)

    x, y = tinynet.datasets.load_kaggle_csv(args.train)
    if y is None:
        raise tinynet.DatasetError(f"{args.train} has no 'label' column; --train takes Kaggle's train.csv.")
    if len(x) < 3:  # a tenth (at least one row) is held out, and a training batch needs two
        raise tinynet.DatasetError(f"{args.train} holds {len(x)} labelled row(s); training needs at least 3 "
                                   f"(Kaggle's train.csv has 42,000).")
    x_test, _ = tinynet.datasets.load_kaggle_csv(args.test)
    order = np.random.default_rng(args.seed).permutation(len(x))
    held_out = max(1, len(x) // 10)
    validation, training = order[:held_out], order[held_out:]
    x, x_test = x[:, None], x_test[:, None]  # (N, 1, 28, 28); fit scales uint8 to [0, 1]
    print(f"{len(training):,} training images, {held_out:,} held out for validation, {len(x_test):,} to predict")

    model = tinynet.models.cnn(rng=args.seed)
    model.fit(x[training], y[training], epochs=args.epochs, batch_size=CNN.batch_size, seed=args.seed,
              verbose=args.verbose, optimizer=tinynet.optim.Adam(lr=CNN.lr),
              lr_schedule=one_cycle(CNN.lr, args.epochs, len(training), CNN.batch_size),
              augment=augmentation(CNN.rotation, CNN.scale, CNN.shift), validation_data=(x[validation], y[validation]))
    accuracy = model.evaluate(x[validation], y[validation])["accuracy"]
    print(f"Validation accuracy (the held-out tenth of train.csv): {accuracy:.2%}")
    labels = model.predict(x_test).argmax(axis=1)
    tinynet.datasets.write_kaggle_submission(args.out, labels, rows=len(x_test))
    print(f"Wrote {args.out}: {len(labels):,} predictions, ImageId from 1.")
    return accuracy


if __name__ == "__main__":
    from cli import run

    run(main)
