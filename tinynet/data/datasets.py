"""MNIST and Fashion-MNIST: find, download, verify and parse the canonical IDX files.

Where files are looked for, in order: ``data_dir``, then ``$TINYNET_DATA``, then the user
cache (``$XDG_CACHE_HOME/tinynet`` or ``~/.cache/tinynet``), each holding a subfolder
``mnist/`` (or ``fashion-mnist/``) with the files under their canonical names, gzipped or
plain. Fashion-MNIST is also found in Debian's ``dataset-fashion-mnist`` package folder.

Missing files are downloaded (``download=True``) from a list of public mirrors, the next
mirror tried when one fails, checked against the canonical checksums while they stream,
and written atomically, so an interrupted or corrupted download never leaves a file behind.

Files from elsewhere: Kaggle's ``train.csv``/``test.csv`` (:func:`load_kaggle_csv`, and
:func:`write_kaggle_submission` for the answer) and the old ``mnist-original.mat``
(:func:`load_mnist_original`).

The IDX format (big-endian): ``0x00 0x00``, a type byte (``0x08`` = uint8), the number
of dimensions, one uint32 per dimension, then the values in C order.
"""

import gzip
import hashlib
import math
import os
import struct
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._io import atomic_write
from ..errors import DatasetError
from ._formats import load_kaggle_csv, load_mnist_original, write_kaggle_submission
from ._images import load_images

__all__ = ["load_mnist", "load_fashion_mnist", "load_mnist_original", "load_kaggle_csv", "write_kaggle_submission",
           "load_images", "read_idx", "MNIST", "FASHION_MNIST"]


@dataclass(frozen=True)
class IdxFile:
    """One canonical file: its name, IDX magic number, shape, checksums of the gzip file, and
    digests of its decompressed content (which check a plain copy, or one gzipped anew)."""

    name: str
    magic: int
    shape: tuple
    md5: str
    sha256: str = ""
    content_sha256: str = ""
    content_md5: str = ""  # as published for the uncompressed file


@dataclass(frozen=True)
class DataSet:
    """A four-file IDX data set: where it lives, where to fetch it, what the files must be."""

    title: str
    folder: str
    mirrors: tuple
    train_images: IdxFile
    train_labels: IdxFile
    test_images: IdxFile
    test_labels: IdxFile
    system_folders: tuple = ()

    @property
    def files(self):
        return (self.train_images, self.train_labels, self.test_images, self.test_labels)


IMAGES, LABELS = 2051, 2049

MNIST = DataSet(
    title="MNIST",
    folder="mnist",
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
    train_images=IdxFile("train-images-idx3-ubyte.gz", IMAGES, (60000, 28, 28), "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                         "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                         "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
    train_labels=IdxFile("train-labels-idx1-ubyte.gz", LABELS, (60000,), "d53e105ee54ea40749a09fcbcd1e9432",
                         "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                         "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
    test_images=IdxFile("t10k-images-idx3-ubyte.gz", IMAGES, (10000, 28, 28), "9fb629c4189551a2d022fa330f9573f3",
                        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
    test_labels=IdxFile("t10k-labels-idx1-ubyte.gz", LABELS, (10000,), "ec29112dd5afa0611ce80d1b7f02629c",
                        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
)

FASHION_MNIST = DataSet(
    title="Fashion-MNIST",
    folder="fashion-mnist",
    mirrors=(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ),
    # Content digests: the MD5s published for the uncompressed files (torchvision lists them too).
    train_images=IdxFile("train-images-idx3-ubyte.gz", IMAGES, (60000, 28, 28), "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                         content_md5="f4a8712d7a061bf5bd6d2ca38dc4d50a"),
    train_labels=IdxFile("train-labels-idx1-ubyte.gz", LABELS, (60000,), "25c81989df183df01b3e8a0aad5dffbe",
                         content_md5="9018921c3c673c538a1fc5bad174d6f9"),
    test_images=IdxFile("t10k-images-idx3-ubyte.gz", IMAGES, (10000, 28, 28), "bef4ecab320f06d8554ea6380940ec79",
                        content_md5="8181f5470baa50b63fa0f6fddb340f0a"),
    test_labels=IdxFile("t10k-labels-idx1-ubyte.gz", LABELS, (10000,), "bb300cfdad3c16e7a12a480ee83cd310",
                        content_md5="15d484375f8d13e6eb1aabb0c3f46965"),
    system_folders=("/usr/share/datasets/fashion-mnist",),
)


# -- parsing ------------------------------------------------------------------------------
def _open(path):
    """A binary reader of ``path``, decompressing it when it starts with the gzip signature."""
    with open(path, "rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


#: The most data read_idx reads when no shape is given (MNIST's largest file holds 47 MB).
MAX_IDX_BYTES = 1 << 28


def read_idx(path, magic=None, shape=None, max_bytes=MAX_IDX_BYTES):
    """Parse an IDX file of uint8 values (gzip or plain) into an array.

    Parameters
    ----------
    path : path-like
    magic : int, optional
        Expected magic number (2051 for images, 2049 for labels).
    shape : tuple, optional
        Expected shape. Checked against the header before any data is read, so a header
        that declares a huge size is refused without allocating it.
    max_bytes : int, default 256 MiB
        The largest size a header may declare.

    Raises
    ------
    DatasetError
        Naming the file: wrong magic, wrong dimensions, truncated data, trailing bytes,
        or a corrupted gzip stream.

    Examples
    --------
    An IDX file is a 4-byte magic (two zero bytes, type 0x08 for uint8, the number of
    dimensions), one big-endian uint32 per dimension, then the values:

    >>> import struct, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "labels-idx1-ubyte"
    >>> _ = path.write_bytes(struct.pack(">II", 2049, 3) + bytes([7, 2, 1]))
    >>> read_idx(path, magic=2049)
    array([7, 2, 1], dtype=uint8)
    """
    path = Path(path)
    try:
        with _open(path) as stream:
            header = stream.read(4)
            if len(header) < 4 or header[:2] != b"\x00\x00" or header[2] != 0x08:
                raise DatasetError(f"{path} is not an IDX file of uint8 values (header {header.hex() or 'empty'}).")
            found_magic, ndim = struct.unpack(">I", header)[0], header[3]
            if magic is not None and found_magic != magic:
                raise DatasetError(f"{path} has IDX magic number {found_magic}; expected {magic}. Wrong file?")
            dims_bytes = stream.read(4 * ndim)
            if len(dims_bytes) < 4 * ndim:
                raise DatasetError(f"{path} is truncated inside its header.")
            dims = struct.unpack(f">{ndim}I", dims_bytes)
            if shape is not None and tuple(dims) != tuple(shape):
                raise DatasetError(f"{path} declares shape {dims}; expected {tuple(shape)}.")
            count = math.prod(dims)
            if count > max_bytes:
                raise DatasetError(
                    f"{path} declares {count:,} values (shape {dims}); read_idx reads at most max_bytes="
                    f"{max_bytes:,}. Pass a larger max_bytes if the file is really that large."
                )
            data = stream.read(count)
            if len(data) < count:
                raise DatasetError(f"{path} is truncated: {len(data)} of {count} values present. Delete it and "
                                   f"download it again.")
            if stream.read(1):
                raise DatasetError(f"{path} has bytes after the {count} values its header declares.")
    except DatasetError:
        raise
    except (OSError, EOFError, zlib.error) as error:
        raise DatasetError(f"{path} could not be read (corrupted or truncated gzip?): {error}") from error
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


# -- finding and fetching -----------------------------------------------------------------
def _cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tinynet"


def _search_folders(dataset, data_dir):
    """The folders that may hold the files, in lookup order."""
    roots = [Path(data_dir)] if data_dir is not None else []
    if os.environ.get("TINYNET_DATA"):
        roots.append(Path(os.environ["TINYNET_DATA"]))
    roots.append(_cache_dir())
    return [root / dataset.folder for root in roots] + [Path(p) for p in dataset.system_folders]


def _find(spec, folders):
    """The first existing copy of ``spec`` (gzipped or plain) in ``folders``, or None."""
    for folder in folders:
        for name in (spec.name, spec.name.removesuffix(".gz")):
            if (folder / name).is_file():
                return folder / name
    return None


def _checksums(path):
    md5, sha256 = hashlib.md5(), hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            md5.update(chunk)
            sha256.update(chunk)
    return md5.hexdigest(), sha256.hexdigest()


def _content_digests(path):
    """``(md5, sha256)`` of the decompressed content of ``path`` (plain files as they are)."""
    md5, sha256 = hashlib.md5(), hashlib.sha256()
    try:
        with _open(path) as stream:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                md5.update(chunk)
                sha256.update(chunk)
    except (OSError, EOFError, zlib.error) as error:
        raise DatasetError(f"{path} could not be read (corrupted or truncated gzip?): {error}") from error
    return md5.hexdigest(), sha256.hexdigest()


def _content_matches(path, spec):
    """True if the decompressed content has the canonical digests; None if none is known."""
    if not (spec.content_sha256 or spec.content_md5):
        return None
    md5, sha256 = _content_digests(path)
    return ((not spec.content_md5 or md5 == spec.content_md5)
            and (not spec.content_sha256 or sha256 == spec.content_sha256))


def _verify(path, spec):
    """Raise DatasetError if a canonical file does not have the canonical checksums.

    A gzipped copy is checked as the published file. A copy gzipped anew (Debian's packages
    recompress the files: other gzip bytes, the same data) or a plain, uncompressed copy is
    checked by the digests of its content, where the data set's content digests are known.
    """
    if path.name != spec.name:
        if _content_matches(path, spec) is False:
            raise DatasetError(
                f"{path} does not match the canonical content checksum (of the decompressed file). "
                f"Delete it so it is downloaded again, or replace it with the original file."
            )
        return
    md5, sha256 = _checksums(path)
    if md5 == spec.md5 and (not spec.sha256 or sha256 == spec.sha256):
        return
    if _content_matches(path, spec):
        return
    raise DatasetError(
        f"{path} does not match the canonical checksum (md5 {md5}, expected {spec.md5}). "
        f"Delete it so it is downloaded again, or replace it with the original file."
    )


def _download(spec, dataset, folder):
    """Fetch ``spec`` from the first mirror that delivers the right bytes; returns the path or the errors."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / spec.name
    errors = []
    for mirror in dataset.mirrors:
        url = mirror + spec.name
        try:
            md5 = hashlib.md5()
            with urllib.request.urlopen(url, timeout=30) as response, atomic_write(target) as out:
                for chunk in iter(lambda: response.read(1 << 16), b""):
                    md5.update(chunk)
                    out.write(chunk)
                if md5.hexdigest() != spec.md5:
                    # Raising inside atomic_write discards the temporary file: nothing bad is cached.
                    raise DatasetError(f"checksum mismatch (md5 {md5.hexdigest()}, expected {spec.md5})")
            return target, errors
        except (OSError, urllib.error.URLError, DatasetError, ValueError) as error:
            errors.append(f"{url}: {error}")
    return None, errors


def _load(dataset, data_dir, download):
    folders = _search_folders(dataset, data_dir)
    arrays, failures = [], []
    for spec in dataset.files:
        path, errors = _find(spec, folders), []
        if path is None and download:
            path, errors = _download(spec, dataset, folders[0])
        if path is None:
            failures.extend(errors or [f"{spec.name}: not found (download=False)"])
            continue
        _verify(path, spec)
        array = read_idx(path, spec.magic, spec.shape)
        if spec.magic == LABELS and array.size and array.max() >= 10:
            raise DatasetError(f"{path} holds label {array.max()}; {dataset.title} labels are 0..9. Replace the file.")
        arrays.append(array)
    if failures:
        looked = "\n  ".join(str(folder) for folder in folders)
        names = ", ".join(spec.name for spec in dataset.files)
        detail = "\n  ".join(failures)
        raise DatasetError(
            f"{dataset.title} files are missing and could not be downloaded.\nLooked in:\n  {looked}\n"
            f"for: {names} (gzipped or plain).\nDownload attempts:\n  {detail}\n"
            f"Fix: put the four files in <folder>/{dataset.folder}/ and set TINYNET_DATA=<folder>, "
            f"or pass data_dir=<folder>."
        )
    train_images, train_labels, test_images, test_labels = arrays
    return (train_images, train_labels), (test_images, test_labels)


def load_mnist(data_dir=None, download=True):
    """The MNIST digits: ``(x_train, y_train), (x_test, y_test)`` as uint8 arrays.

    Shapes ``(60000, 28, 28)``, ``(60000,)``, ``(10000, 28, 28)``, ``(10000,)``; pixel values
    0..255, labels 0..9. Scale images with ``x.astype(np.float32) / 255`` and add the channel
    axis ``x[:, None]`` for a CNN (``Sequential.fit`` also accepts uint8 and scales it).

    Parameters
    ----------
    data_dir : path-like, optional
        Folder holding ``mnist/``; searched first.
    download : bool, default True
        Fetch missing files from the public mirrors into the first folder searched.

    Raises
    ------
    DatasetError
        Naming the file and the fix, if files are missing, corrupted or malformed.

    Examples
    --------
    It needs the four files (or the internet), so this one is not a doctest; the README's
    example, which the tests run with the files, does the same::

        (x_train, y_train), (x_test, y_test) = load_mnist()
        x_train.shape, x_train.dtype, y_test[:5]
        # ((60000, 28, 28), dtype('uint8'), array([7, 2, 1, 0, 4], dtype=uint8))
    """
    return _load(MNIST, data_dir, download)


def load_fashion_mnist(data_dir=None, download=True):
    """Fashion-MNIST (Zalando): the same format and shapes as :func:`load_mnist`, ten clothing classes.

    Looks in ``<dir>/fashion-mnist/`` for the same places as :func:`load_mnist`, then in
    ``/usr/share/datasets/fashion-mnist`` (Debian's ``dataset-fashion-mnist`` package).

    Examples
    --------
    Not a doctest (it needs the files)::

        (x_train, y_train), (x_test, y_test) = load_fashion_mnist()
        x_test.shape   # (10000, 28, 28)
    """
    return _load(FASHION_MNIST, data_dir, download)
