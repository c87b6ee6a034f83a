"""The MNIST files users bring from elsewhere: Kaggle's CSVs and the old ``mnist-original.mat``.

Re-exported by :mod:`tinynet.datasets`. Each reader checks the file before trusting it and
names the file, what was wrong and how to fix it in a :class:`~tinynet.errors.DatasetError`;
the submission writer writes atomically.
"""

import io

import numpy as np

from .._io import atomic_write
from ..errors import ArgumentError, DatasetError

__all__ = ["load_kaggle_csv", "write_kaggle_submission", "load_mnist_original"]

PIXELS = [f"pixel{i}" for i in range(784)]


def load_kaggle_csv(path):
    """Kaggle's "Digit Recognizer" ``train.csv`` or ``test.csv``: ``x`` uint8 ``(N, 28, 28)`` and ``y``.

    The file has a header row, an optional ``label`` column, and ``pixel0`` .. ``pixel783``
    (row-major 28x28, values 0..255). ``y`` is int64 ``(N,)``, or None for a file without a
    ``label`` column (Kaggle's ``test.csv``).

    Raises
    ------
    DatasetError
        Naming the file: missing, not CSV, missing or extra columns, values that are not
        whole numbers in 0..255, labels outside 0..9.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "train.csv"
    >>> _ = path.write_text("label," + ",".join(f"pixel{i}" for i in range(784)) + "\\n7," + ",".join(["0"] * 784))
    >>> x, y = load_kaggle_csv(path)
    >>> x.shape, x.dtype, y
    ((1, 28, 28), dtype('uint8'), array([7]))
    """
    import pandas as pd

    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise DatasetError(f"No file at {path}; download train.csv and test.csv from Kaggle's Digit Recognizer "
                           f"competition and give their paths.") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as error:
        raise DatasetError(f"{path} is not a readable CSV file ({error}).") from error
    if not frame.index.equals(pd.RangeIndex(len(frame))):
        # pandas reads rows with more fields than the header as having an index column: the
        # labels would silently become the index and the pixels shift by one.
        raise DatasetError(f"{path}: its rows have more fields than its header (an extra column, or a comma at "
                           f"the end of each row); Kaggle's files have 'label' and pixel0..pixel783 only.")
    columns = [str(name) for name in frame.columns]
    missing = [name for name in PIXELS if name not in columns]
    extra = [name for name in columns if name not in PIXELS and name != "label"]
    if missing or extra:
        shown = [name if len(name) <= 30 else name[:27] + "..." for name in extra[:5]]
        separator = next((mark for mark in ";\t|" if any(mark in name for name in columns)), None)
        hint = f" The columns seem separated by {separator!r}; Kaggle's files use commas." if separator else ""
        raise DatasetError(
            f"{path} does not have Kaggle's Digit Recognizer columns: "
            f"{f'missing {len(missing)} of them ({missing[:3]}...)' if missing else ''}"
            f"{' and ' if missing and extra else ''}{f'unexpected {shown}' if extra else ''}. "
            f"Expected an optional 'label' and pixel0..pixel783.{hint}"
        )
    x = _whole_numbers(frame[PIXELS], path, "pixel values", 0, 255).astype(np.uint8).reshape(-1, 28, 28)
    y = None
    if "label" in columns:
        y = _whole_numbers(frame[["label"]], path, "labels", 0, 9).astype(np.int64).reshape(-1)
    return x, y


def _whole_numbers(part, path, what, low, high):
    values = part.apply(lambda column: _numeric(column, path, what)).to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values) | (values != np.round(values)) | (values < low) | (values > high)
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise DatasetError(
            f"{path}: {what} must be whole numbers in {low}..{high}; row {row + 1} (after the header), column "
            f"{part.columns[column]!r} holds {values[row, column]!r}."
        )
    return values


def _numeric(column, path, what):
    import pandas as pd

    converted = pd.to_numeric(column, errors="coerce")
    if converted.isna().any():
        row = int(np.flatnonzero(converted.isna().to_numpy())[0])
        raise DatasetError(
            f"{path}: {what} must be numbers; row {row + 1} (after the header), column {column.name!r} "
            f"holds {column.iloc[row]!r}."
        )
    return converted


def write_kaggle_submission(path, labels, rows=None):
    """Write Kaggle's ``submission.csv``: a header ``ImageId,Label``, then one row per image from 1.

    ``labels`` are the predicted digits, in the order of ``test.csv``. ``rows``, if given, is
    the number of images the submission must have (Kaggle's test set: 28,000). Written
    atomically: a failure leaves no half-written file.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "submission.csv"
    >>> write_kaggle_submission(path, np.array([7, 2, 1]))
    >>> print(path.read_text())
    ImageId,Label
    1,7
    2,2
    3,1
    <BLANKLINE>
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or not (np.issubdtype(labels.dtype, np.integer) or labels.size == 0):
        raise ArgumentError(
            f"write_kaggle_submission expects integer labels of shape (N,); received dtype {labels.dtype}, "
            f"shape {labels.shape}. Pass model.predict(x).argmax(axis=1)."
        )
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ArgumentError(f"write_kaggle_submission expects digits 0..9; received values from {labels.min()} "
                         f"to {labels.max()}.")
    if rows is not None and len(labels) != rows:
        raise ArgumentError(f"write_kaggle_submission was given {len(labels)} labels for {rows} test images; "
                         f"predict every row of test.csv, in its order.")
    text = io.StringIO()
    text.write("ImageId,Label\n")
    for image_id, label in enumerate(labels.tolist(), start=1):
        text.write(f"{image_id},{label}\n")
    with atomic_write(path) as handle:
        handle.write(text.getvalue().encode())


def load_mnist_original(path):
    """Kaggle's ``mnist-original.mat`` (the old mldata.org file): what :func:`load_mnist` returns.

    The MATLAB file holds ``data`` ``(784, 70000)`` uint8 (one image per column, row-major)
    and ``label`` ``(1, 70000)``; the first 60,000 are the training set, the last 10,000 the
    test set. Reading it needs scipy (``pip install scipy``, or ``pip install -e ".[formats]"``).

    Returns
    -------
    ``(x_train, y_train), (x_test, y_test)``: uint8 ``(60000, 28, 28)``, ``(60000,)``,
    ``(10000, 28, 28)``, ``(10000,)``.

    Raises
    ------
    DatasetError
        Naming the file: missing, not a MATLAB file, without ``data``/``label``, of other sizes.

    Examples
    --------
    Not a doctest (it needs the 55 MB file)::

        (x_train, y_train), (x_test, y_test) = load_mnist_original("mnist-original.mat")
        x_train.shape, y_test.shape      # ((60000, 28, 28), (10000,))
    """
    try:
        from scipy.io import loadmat
    except ImportError as error:
        raise DatasetError(f"Reading {path} (a MATLAB file) needs scipy: pip install scipy") from error
    from scipy.io.matlab import MatReadError

    try:
        content = loadmat(path)
    except FileNotFoundError:
        raise DatasetError(f"No file at {path}; it is Kaggle's 'mnist-original.mat' (dataset 'MNIST original').") \
            from None
    except (MatReadError, ValueError, TypeError, OSError, NotImplementedError, IndexError, KeyError,
            EOFError) as error:
        # scipy's reader reports a short or foreign file in several ways, IndexError among them.
        raise DatasetError(f"{path} is not a readable MATLAB file ({type(error).__name__}: {error}).") from error
    missing = [name for name in ("data", "label") if name not in content]
    if missing:
        raise DatasetError(f"{path} has no {' or '.join(repr(name) for name in missing)} entry; mnist-original.mat "
                           f"holds 'data' (784, 70000) and 'label' (1, 70000).")
    data, label = np.asarray(content["data"]), np.asarray(content["label"])
    if data.shape != (784, 70000) or label.size != 70000:
        raise DatasetError(f"{path}: 'data' is {data.shape} and 'label' {label.shape}; mnist-original.mat holds "
                           f"(784, 70000) and (1, 70000). Is it another file?")
    label = label.reshape(-1)
    if not (np.isfinite(data).all() and np.isfinite(label).all()):
        raise DatasetError(f"{path}: its pixels or labels hold NaN or inf; the file is corrupted.")
    if data.dtype.kind == "f" and data.max() <= 1 and data.any():
        # Already scaled to [0, 1] (a re-saved copy): back to MNIST's 0..255, not read as black.
        data = np.round(data * 255)
    if not (np.all(label == np.round(label)) and label.min() >= 0 and label.max() <= 9) or (
            data.min() < 0 or data.max() > 255 or not np.all(data == np.round(data))):
        raise DatasetError(f"{path}: labels must be digits 0..9 and pixels whole numbers 0..255; the file is "
                           f"corrupted.")
    images = data.T.reshape(70000, 28, 28).astype(np.uint8)
    labels = label.astype(np.uint8)
    return (images[:60000], labels[:60000]), (images[60000:], labels[60000:])
