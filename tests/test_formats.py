"""Files from elsewhere: Kaggle's CSVs and submission, and the old mnist-original.mat."""

import numpy as np
import pytest

import tinynet
from tinynet.datasets import load_kaggle_csv, load_mnist_original, write_kaggle_submission

HEADER = ",".join(f"pixel{i}" for i in range(784))


def _csv(path, images, labels=None):
    rows = [("label," if labels is not None else "") + HEADER]
    for number, image in enumerate(images):
        prefix = f"{labels[number]}," if labels is not None else ""
        rows.append(prefix + ",".join(str(v) for v in image.reshape(-1)))
    path.write_text("\n".join(rows) + "\n")
    return path


def test_kaggle_csv_round_trip(tmp_path):
    """Kaggle csv round trip."""
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (5, 28, 28)), rng.integers(0, 10, 5)
    x, y = load_kaggle_csv(_csv(tmp_path / "train.csv", images, labels))
    assert x.dtype == np.uint8 and np.array_equal(x, images) and np.array_equal(y, labels) and y.dtype == np.int64
    x, y = load_kaggle_csv(_csv(tmp_path / "test.csv", images))
    assert y is None and np.array_equal(x, images)


@pytest.mark.parametrize(
    "text, message",
    [
        ("label," + HEADER.replace(",pixel783", "") + "\n1" + ",0" * 783, r"missing 1 of them \(\['pixel783'\]"),
        ("label,id," + HEADER + "\n1,5" + ",0" * 784, r"unexpected \['id'\]"),
        ("label," + HEADER + "\n1,dark" + ",0" * 783, "must be numbers; row 1.*'pixel0'.*'dark'"),
        ("label," + HEADER + "\n1,256" + ",0" * 783, r"whole numbers in 0\.\.255; row 1.*'pixel0'"),
        ("label," + HEADER + "\n1,0.5" + ",0" * 783, "whole numbers"),
        ("label," + HEADER + "\n10" + ",0" * 784, r"labels must be whole numbers in 0\.\.9"),
        ("", "not a readable CSV"),
    ],
)
def test_bad_kaggle_csvs_name_the_file_and_the_problem(tmp_path, text, message):
    """Bad kaggle csvs name the file and the problem."""
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(tinynet.DatasetError, match=message) as caught:
        load_kaggle_csv(path)
    assert "bad.csv" in str(caught.value)


def test_submission_is_kaggles_format_and_checked(tmp_path):
    """Submission is kaggles format and checked."""
    path = tmp_path / "submission.csv"
    write_kaggle_submission(path, np.array([3, 0, 9]), rows=3)
    assert path.read_text() == "ImageId,Label\n1,3\n2,0\n3,9\n"
    for labels, kwargs, message in [(np.array([1, 2]), dict(rows=3), "2 labels for 3 test images"),
                                    (np.array([1, 12]), {}, r"digits 0\.\.9"),
                                    (np.array([[1, 2]]), {}, r"shape \(N,\)"),
                                    (np.array([0.5]), {}, "integer labels")]:
        with pytest.raises(ValueError, match=message):
            write_kaggle_submission(tmp_path / "other.csv", labels, **kwargs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["submission.csv"]  # nothing half-written


def _mat(path, data, label):
    scipy_io = pytest.importorskip("scipy.io", reason="scipy reads MATLAB files: pip install scipy")
    scipy_io.savemat(path, {"data": data, "label": label}, do_compression=True)
    return path


def test_mnist_original_mat_splits_like_load_mnist(tmp_path):
    """784 x 70000 columns become (70000, 28, 28) images, row-major; 60,000 train, 10,000 test."""
    data = np.zeros((784, 70000), np.uint8)
    data[:, 0] = np.arange(784) % 256  # the first image: 0, 1, 2, ... row by row
    data[5, 65000] = 200
    label = (np.arange(70000) % 10).astype(np.float64)[None]
    (x_train, y_train), (x_test, y_test) = load_mnist_original(_mat(tmp_path / "mnist-original.mat", data, label))
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28) and x_train.dtype == np.uint8
    assert y_train.shape == (60000,) and y_train.dtype == np.uint8 and y_test[:3].tolist() == [0, 1, 2]
    assert x_train[0, 0, :3].tolist() == [0, 1, 2] and x_train[0, 1, 0] == 28
    assert x_test[5000, 0, 5] == 200


@pytest.mark.parametrize(
    "content, message",
    [
        (dict(data=np.zeros((784, 70000), np.uint8)), "no 'label' entry"),
        (dict(data=np.zeros((784, 100), np.uint8), label=np.zeros((1, 100))), r"\(784, 100\).*another file"),
        (dict(data=np.zeros((784, 70000), np.uint8), label=np.full((1, 70000), 11.0)), r"digits 0\.\.9"),
    ],
)
def test_bad_mat_files_name_the_file(tmp_path, content, message):
    """Bad mat files name the file."""
    scipy_io = pytest.importorskip("scipy.io", reason="scipy reads MATLAB files: pip install scipy")
    path = tmp_path / "odd.mat"
    scipy_io.savemat(path, content, do_compression=True)
    with pytest.raises(tinynet.DatasetError, match=message) as caught:
        load_mnist_original(path)
    assert "odd.mat" in str(caught.value)
    path.write_bytes(b"not a MATLAB file at all")
    with pytest.raises(tinynet.DatasetError, match="not a readable MATLAB file"):
        load_mnist_original(path)
