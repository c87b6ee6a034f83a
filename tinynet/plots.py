"""Pictures of data, training and mistakes, drawn with matplotlib (imported only when drawing).

Every function takes plain arrays or a History, draws one figure, writes it as PNG to
``path`` and returns the path. Nothing below the model imports this module.
"""

from pathlib import Path

import numpy as np

__all__ = [
    "class_counts",
    "sample_grid",
    "prediction_grid",
    "learning_curves",
    "confusion_matrix",
    "mnist_report",
]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: works with no display
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    _pyplot().close(figure)
    return path


def _images(x):
    """``(N, 28, 28)`` from ``(N, 1, 28, 28)`` or ``(N, 28, 28)`` images."""
    x = np.asarray(x)
    return x[:, 0] if x.ndim == 4 else x


def class_counts(labels, path, title="Training labels per class"):
    """Bar chart of how many samples each class has (counted with pandas)."""
    import pandas as pd

    plt = _pyplot()
    counts = pd.Series(np.asarray(labels)).value_counts().sort_index()
    figure, axis = plt.subplots(figsize=(6, 3.5))
    counts.plot.bar(ax=axis, color="tab:blue")
    axis.set(title=title, xlabel="class", ylabel="samples")
    for position, value in enumerate(counts):
        axis.text(position, value, f"{value:,}", ha="center", va="bottom", fontsize=7)
    return _save(figure, path)


def sample_grid(images, labels, path, rows=4, columns=8, title="Sample training digits"):
    """The first ``rows * columns`` images with their labels."""
    plt = _pyplot()
    images = _images(images)
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 1.1, rows * 1.25))
    for axis, image, label in zip(axes.flat, images, labels, strict=False):
        axis.imshow(image, cmap="gray_r")
        axis.set_title(str(label), fontsize=9)
        axis.axis("off")
    figure.suptitle(title)
    return _save(figure, path)


def prediction_grid(images, labels, predicted, path, rows=4, columns=8, title="Test predictions"):
    """Test digits titled ``true / predicted``; mistakes in red with a red frame."""
    plt = _pyplot()
    images = _images(images)
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 1.1, rows * 1.3))
    for axis, image, label, guess in zip(axes.flat, images, labels, predicted, strict=False):
        wrong = label != guess
        axis.imshow(image, cmap="gray_r")
        axis.set_title(f"{label} / {guess}", fontsize=9, color="red" if wrong else "black")
        axis.set_xticks([])
        axis.set_yticks([])
        for spine in axis.spines.values():
            spine.set_edgecolor("red" if wrong else "white")
            spine.set_linewidth(2.5 if wrong else 0)
    figure.suptitle(f"{title} (true / predicted; mistakes in red)")
    return _save(figure, path)


def learning_curves(history, path, title="Learning curves"):
    """Loss and accuracy per epoch, training against test (validation) data."""
    plt = _pyplot()
    frame = history.to_frame()
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for axis, metric in ((left, "loss"), (right, "accuracy")):
        axis.plot(frame.index, frame[metric], "o-", label="train")
        if f"val_{metric}" in frame:
            axis.plot(frame.index, frame[f"val_{metric}"], "s-", label="test")
        axis.set(xlabel="epoch", ylabel=metric, title=metric)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(title)
    return _save(figure, path)


def confusion_matrix(labels, predicted, path, classes=10, title="Confusion matrix (test set)"):
    """Counts of (true, predicted) pairs; the diagonal is right, everything else a mistake."""
    plt = _pyplot()
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels), np.asarray(predicted)), 1)
    figure, axis = plt.subplots(figsize=(6.5, 5.5))
    shown = axis.imshow(np.log1p(matrix), cmap="Blues")
    for (row, column), count in np.ndenumerate(matrix):
        if count:
            axis.text(column, row, str(count), ha="center", va="center", fontsize=7,
                      color="white" if row == column else "black")
    axis.set(xticks=range(classes), yticks=range(classes), xlabel="predicted", ylabel="true", title=title)
    figure.colorbar(shown, ax=axis, label="log(1 + count)")
    return _save(figure, path)


def mnist_report(model, history, train, test, folder):
    """All the pictures of an MNIST run in ``folder``; returns their paths."""
    folder = Path(folder)
    (x_train, y_train), (x_test, y_test) = train, test
    predicted = model.predict(x_test).argmax(axis=1)
    # Half the grid for mistakes (the interesting part), the rest for correct answers.
    wrong = np.flatnonzero(predicted != y_test)[:16]
    order = np.concatenate([wrong, np.flatnonzero(predicted == y_test)[: 32 - len(wrong)]])
    return [
        class_counts(y_train, folder / "class_counts.png"),
        sample_grid(x_train, y_train, folder / "samples.png"),
        prediction_grid(x_test[order], y_test[order], predicted[order], folder / "predictions.png"),
        learning_curves(history, folder / "learning_curves.png"),
        confusion_matrix(y_test, predicted, folder / "confusion_matrix.png"),
    ]
