"""Dataset loaders: the IDX parser, lookup order, checksums, downloads and every error case."""

import gzip
import hashlib
import shutil
import struct
from dataclasses import replace

import numpy as np
import pytest

import tinynet
from tinynet import datasets
from tinynet.datasets import IdxFile, read_idx


def _idx_bytes(array, magic=None):
    """A valid IDX encoding of a uint8 array (magic from its rank unless given)."""
    array = np.asarray(array, dtype=np.uint8)
    magic = magic if magic is not None else 0x0800 + array.ndim
    return struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def _tiny_dataset(tmp_path, images=4, gz=True):
    """A four-file IDX data set of ``images`` 3x3 images in tmp_path/tiny/, and its DataSet spec."""
    folder = tmp_path / "tiny"
    folder.mkdir()
    rng = np.random.default_rng(0)
    specs = {}
    for role, shape, magic in [("train_images", (images, 3, 3), 2051), ("train_labels", (images,), 2049),
                               ("test_images", (2, 3, 3), 2051), ("test_labels", (2,), 2049)]:
        data = _idx_bytes(rng.integers(0, 10, shape), magic)
        name = f"{role}.idx.gz"
        payload = gzip.compress(data) if gz else data
        (folder / (name if gz else name.removesuffix(".gz"))).write_bytes(payload)
        specs[role] = IdxFile(name, magic, shape, hashlib.md5(gzip.compress(data)).hexdigest())
    spec = datasets.DataSet("Tiny", "tiny", mirrors=(), **specs)
    return spec, folder


def test_read_idx_round_trip_gzip_and_plain(tmp_path):
    """A valid IDX file reads back as the array it encodes, gzipped or plain."""
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a.idx").write_bytes(_idx_bytes(array))
    (tmp_path / "a.idx.gz").write_bytes(gzip.compress(_idx_bytes(array)))
    for name in ("a.idx", "a.idx.gz"):
        np.testing.assert_array_equal(read_idx(tmp_path / name, magic=2051, shape=(2, 3, 4)), array)


@pytest.mark.parametrize(
    "payload, message",
    [
        (b"\x00\x00\x08\x03" + struct.pack(">3I", 2, 3, 4) + bytes(10), "truncated: 10 of 24"),
        (b"\x00\x00\x08\x01" + struct.pack(">I", 2) + bytes(3), "bytes after"),
        (b"\x00\x00\x0d\x01" + struct.pack(">I", 2) + bytes(2), "not an IDX file of uint8"),
        (b"\x00\x00\x08\x03" + struct.pack(">2I", 2, 3), "truncated inside its header"),
        (b"", "not an IDX file"),
    ],
)
def test_read_idx_rejects_malformed_files(tmp_path, payload, message):
    """Truncated data, trailing bytes, a wrong type byte or a cut header each name the file."""
    path = tmp_path / "bad.idx"
    path.write_bytes(payload)
    with pytest.raises(tinynet.DatasetError, match=message) as caught:
        read_idx(path)
    assert "bad.idx" in str(caught.value)


def test_read_idx_checks_magic_and_declared_shape(tmp_path):
    """A labels file where images are expected, or a header with wrong counts, is refused."""
    path = tmp_path / "labels.idx"
    path.write_bytes(_idx_bytes(np.zeros(5), magic=2049))
    with pytest.raises(tinynet.DatasetError, match="magic number 2049; expected 2051"):
        read_idx(path, magic=2051)
    with pytest.raises(tinynet.DatasetError, match=r"declares shape \(5,\); expected \(6,\)"):
        read_idx(path, shape=(6,))


def test_huge_declared_size_is_refused_without_allocating(tmp_path):
    """A header that lies about a 4-billion-value image is refused before reading any data."""
    path = tmp_path / "lie.idx"
    path.write_bytes(b"\x00\x00\x08\x03" + struct.pack(">3I", 65535, 65535, 65535) + bytes(16))
    with pytest.raises(tinynet.DatasetError, match="expected"):
        read_idx(path, magic=2051, shape=(60000, 28, 28))


def test_read_idx_without_a_shape_bounds_the_declared_size(tmp_path):
    """No expected shape: a header declaring gigabytes, or a product past int64, is a DatasetError."""
    path = tmp_path / "big.idx"
    path.write_bytes(b"\x00\x00\x08\x03" + struct.pack(">3I", 2048, 2048, 800) + bytes(16))
    with pytest.raises(tinynet.DatasetError, match="max_bytes"):
        read_idx(path)
    with pytest.raises(tinynet.DatasetError, match="truncated"):  # within a raised limit, the data is checked
        read_idx(path, max_bytes=2**32)
    path.write_bytes(b"\x00\x00\x08\x04" + struct.pack(">4I", *[2**32 - 1] * 4) + bytes(16))
    with pytest.raises(tinynet.DatasetError, match="declares"):
        read_idx(path)


def test_plain_copies_are_checked_by_their_content_digest(tmp_path):
    """An uncompressed file is hashed as decompressed content: one changed label is refused."""
    spec, folder = _tiny_dataset(tmp_path, gz=False)
    content = (folder / "train_labels.idx").read_bytes()
    digest = hashlib.sha256(content).hexdigest()
    spec = replace(spec, train_labels=replace(spec.train_labels, content_sha256=digest))
    assert datasets._load(spec, tmp_path, download=False)[0][1].shape == (4,)
    (folder / "train_labels.idx").write_bytes(content[:-1] + bytes([(content[-1] + 1) % 10]))
    with pytest.raises(tinynet.DatasetError, match="train_labels.idx does not match the canonical content"):
        datasets._load(spec, tmp_path, download=False)


def test_labels_outside_0_to_9_are_refused(tmp_path):
    """A labels file of 255s (with no digest to catch it) is refused by its values."""
    spec, folder = _tiny_dataset(tmp_path, gz=False)
    (folder / "test_labels.idx").write_bytes(_idx_bytes(np.full(2, 255), 2049))
    with pytest.raises(tinynet.DatasetError, match="label 255"):
        datasets._load(spec, tmp_path, download=False)


def test_the_canonical_content_digests_match_the_real_files(mnist_dir):
    """The content digests of MNIST are those of the decompressed canonical files."""
    for spec in datasets.MNIST.files:
        assert datasets._content_digests(mnist_dir / "mnist" / spec.name)[1] == spec.content_sha256


def test_truncated_gzip_is_a_clear_error(tmp_path):
    """A gzip file cut in the middle raises DatasetError naming it."""
    path = tmp_path / "cut.idx.gz"
    path.write_bytes(gzip.compress(_idx_bytes(np.arange(1000) % 256))[:200])
    with pytest.raises(tinynet.DatasetError, match="cut.idx.gz"):
        read_idx(path)


def test_lookup_order_and_plain_files(tmp_path, monkeypatch):
    """data_dir is searched before TINYNET_DATA; plain (uncompressed) copies are found too."""
    spec, folder = _tiny_dataset(tmp_path, gz=False)
    monkeypatch.setenv("TINYNET_DATA", str(tmp_path / "elsewhere"))
    (train_x, train_y), (test_x, test_y) = datasets._load(spec, tmp_path, download=False)
    assert train_x.shape == (4, 3, 3) and test_y.shape == (2,)
    monkeypatch.setenv("TINYNET_DATA", str(tmp_path))
    assert datasets._load(spec, None, download=False)[0][0].shape == (4, 3, 3)


def test_checksum_mismatch_names_the_file(tmp_path):
    """A gzipped file with the wrong checksum is refused with the fix (delete and re-download)."""
    spec, folder = _tiny_dataset(tmp_path)
    spec = replace(spec, train_labels=replace(spec.train_labels, md5="0" * 32))
    with pytest.raises(tinynet.DatasetError, match="train_labels.idx.gz does not match the canonical checksum.*Delete"):
        datasets._load(spec, tmp_path, download=False)


def test_a_copy_gzipped_anew_is_checked_by_its_content(tmp_path):
    """Debian's packages recompress the files: other gzip bytes, the same data, accepted by the content's MD5."""
    spec, folder = _tiny_dataset(tmp_path)
    path = folder / "train_labels.idx.gz"
    content = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(content, compresslevel=1, mtime=12345))  # new gzip bytes
    spec = replace(spec, train_labels=replace(spec.train_labels, content_md5=hashlib.md5(content).hexdigest()))
    assert hashlib.md5(path.read_bytes()).hexdigest() != spec.train_labels.md5
    assert datasets._load(spec, tmp_path, download=False)[0][1].shape == (4,)
    path.write_bytes(gzip.compress(content[:-1] + bytes([(content[-1] + 1) % 10])))  # and one label changed
    with pytest.raises(tinynet.DatasetError, match="train_labels.idx.gz does not match the canonical checksum"):
        datasets._load(spec, tmp_path, download=False)


def test_offline_with_no_files_says_where_it_looked_and_how_to_fix(tmp_path, monkeypatch):
    """No files and no reachable mirror: one error listing the folders, the file names and both fixes."""
    monkeypatch.setenv("TINYNET_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    offline = replace(datasets.MNIST, mirrors=("http://127.0.0.1:9/",))  # port 9 refuses at once
    with pytest.raises(tinynet.DatasetError) as caught:
        datasets._load(offline, tmp_path / "given", download=True)
    message = str(caught.value)
    for expected in ["given", "env", "cache", "train-images-idx3-ubyte.gz", "TINYNET_DATA", "data_dir"]:
        assert expected in message
    assert not list((tmp_path / "given").rglob("*.gz")), "a failed download left a file behind"


def _isolate(monkeypatch, tmp_path):
    """Search only the folders a test names: no TINYNET_DATA, a private user cache."""
    monkeypatch.delenv("TINYNET_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))


def test_download_verifies_and_writes_atomically(tmp_path, mnist_dir, monkeypatch):
    """Files fetched from a mirror are checked against the canonical MD5 and cached whole."""
    _isolate(monkeypatch, tmp_path)
    mirror = (mnist_dir / "mnist").as_uri() + "/"
    spec = replace(datasets.MNIST, mirrors=("http://127.0.0.1:9/", mirror))  # first mirror fails, next is used
    (x_train, y_train), (x_test, y_test) = datasets._load(spec, tmp_path, download=True)
    assert x_train.shape == (60000, 28, 28) and y_test.shape == (10000,)
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == sorted(f.name for f in spec.files)
    assert x_train[0].sum() > 0


def test_corrupted_download_is_not_cached(tmp_path, mnist_dir, monkeypatch):
    """A mirror serving a corrupted file: checksum error reported, nothing written."""
    _isolate(monkeypatch, tmp_path)
    bad_mirror = tmp_path / "bad"
    bad_mirror.mkdir()
    for spec in datasets.MNIST.files:
        shutil.copy(mnist_dir / "mnist" / spec.name, bad_mirror / spec.name)
    with open(bad_mirror / "t10k-labels-idx1-ubyte.gz", "r+b") as handle:
        handle.seek(100)
        handle.write(b"corrupt")
    spec = replace(datasets.MNIST, mirrors=(bad_mirror.as_uri() + "/",))
    with pytest.raises(tinynet.DatasetError, match="t10k-labels-idx1-ubyte.gz.*checksum mismatch"):
        datasets._load(spec, tmp_path / "cache", download=True)
    assert not (tmp_path / "cache" / "mnist" / "t10k-labels-idx1-ubyte.gz").exists()
    assert not list((tmp_path / "cache" / "mnist").glob(".*")), "a temporary download file was left behind"


def test_load_mnist_reads_the_real_files(mnist_dir):
    """The canonical MNIST files load with the documented shapes, dtypes and label range."""
    (x_train, y_train), (x_test, y_test) = tinynet.datasets.load_mnist(download=False)
    assert x_train.shape == (60000, 28, 28) and x_train.dtype == np.uint8
    assert y_train.shape == (60000,) and x_test.shape == (10000, 28, 28) and y_test.shape == (10000,)
    assert set(np.unique(y_test)) == set(range(10))
    assert y_train[:5].tolist() == [5, 0, 4, 1, 9]  # the well-known first training labels


def test_fashion_mnist_looks_in_its_own_folder_and_the_system_one(tmp_path, monkeypatch):
    """Fashion-MNIST is searched in <dir>/fashion-mnist/ and in Debian's package folder, with its own error."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("TINYNET_DATA", raising=False)
    folders = datasets._search_folders(datasets.FASHION_MNIST, tmp_path)
    assert folders[0] == tmp_path / "fashion-mnist"
    assert folders[-1].as_posix() == "/usr/share/datasets/fashion-mnist"
    if not any((folder / "train-images-idx3-ubyte.gz").exists() for folder in folders):
        with pytest.raises(tinynet.DatasetError, match="Fashion-MNIST"):
            tinynet.datasets.load_fashion_mnist(tmp_path, download=False)
