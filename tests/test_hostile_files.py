"""Files from elsewhere are hostile until checked: each case of the loaders' security review.

Every crafted file must give a ModelFileError quickly and with bounded memory, never a
built-in error, a hang, a huge allocation or a model that silently computes NaN.
"""

import io
import json
import re
import struct
import tracemalloc
import zipfile

import numpy as np
import pytest

import tinynet
from tinynet.layers import Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU


def _cnn():
    return tinynet.Sequential([
        Conv2D(1, 4, 3, rng=0), ReLU(), MaxPool2D(2), Flatten(), Dropout(0.25), Dense(16, 4, rng=1),
    ])


def _data():
    rng = np.random.default_rng(0)
    return rng.random((64, 1, 6, 6), dtype=np.float32), rng.integers(0, 4, 64)


@pytest.fixture(scope="module")
def checkpoint_arrays(tmp_path_factory):
    """The arrays and metadata of a real checkpoint (two epochs of Adam), to edit into hostile ones."""
    path = tmp_path_factory.mktemp("real") / "c.npz"
    _cnn().fit(*_data(), epochs=2, batch_size=16, seed=0, verbose=0, checkpoint=path)
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    meta = json.loads(str(arrays.pop("__checkpoint__")))
    return arrays, meta


def _write(path, arrays):
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path.write_bytes(buffer.getvalue())
    return path


def _checkpoint(tmp_path, checkpoint_arrays, edit_meta=None, edit_arrays=None):
    arrays, meta = checkpoint_arrays
    arrays, meta = {k: v.copy() for k, v in arrays.items()}, json.loads(json.dumps(meta))
    if edit_meta:
        edit_meta(meta)
    if edit_arrays:
        edit_arrays(arrays)
    return _write(tmp_path / "hostile.npz", {**arrays, "__checkpoint__": np.array(json.dumps(meta))})


def _refused(loader, path, match):
    tracemalloc.start()
    try:
        with pytest.raises(tinynet.ModelFileError, match=match):
            loader(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20, f"refusing {path.name} allocated {peak / 2**20:.0f} MiB"


# 1. compressed members that decompress to gigabytes
def test_a_compressed_member_declaring_a_gigabyte_is_refused_unread(tmp_path):
    """A compressed member declaring a gigabyte is refused unread."""
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_BZIP2) as archive, archive.open("x.npy", "w", force_zip64=True) as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (2**28,)})
        for _ in range(4):
            f.write(bytes(2**24))
    _refused(tinynet.load_model, path, "compressed")


def test_a_stored_member_whose_header_lies_about_its_shape_is_refused_before_its_data(tmp_path):
    """A stored member whose header lies about its shape is refused before its data."""
    arrays = tinynet.serialization.model_arrays(_cnn())
    path = _write(tmp_path / "m.npz", {k: v for k, v in arrays.items() if k != "0.W"})
    with zipfile.ZipFile(path, "a") as archive, archive.open("0.W.npy", "w", force_zip64=True) as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (9999, 9999)})
        f.write(arrays["0.W"].tobytes())
    _refused(tinynet.load_model, path, r"0\.W.*shape \(9999, 9999\)")


def test_a_member_shorter_than_its_header_declares_is_refused(tmp_path):
    """A member shorter than its header declares is refused."""
    arrays = tinynet.serialization.model_arrays(_cnn())
    path = _write(tmp_path / "m.npz", {k: v for k, v in arrays.items() if k != "0.W"})
    with zipfile.ZipFile(path, "a") as archive, archive.open("0.W.npy", "w") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (4, 1, 3, 3)})
        f.write(arrays["0.W"].tobytes()[:100])
    _refused(tinynet.load_model, path, "declares 144 bytes of data")


# 2. duplicate names, names that shadow each other, members that are not arrays
@pytest.mark.filterwarnings("ignore:Duplicate name")  # the duplicate is the point of the test
def test_a_duplicate_member_name_is_refused(tmp_path):
    """A duplicate member name is refused."""
    path = _write(tmp_path / "dup.npz", tinynet.serialization.model_arrays(_cnn()))
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("0.W.npy", path.read_bytes()[:10])
    _refused(tinynet.load_model, path, "'0.W' twice")


@pytest.mark.parametrize("junk_name", ["0.W", "evil.txt"])
def test_members_that_are_not_npy_arrays_are_refused(tmp_path, junk_name):
    """Members that are not npy arrays are refused."""
    path = _write(tmp_path / "junk.npz", tinynet.serialization.model_arrays(_cnn()))
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(junk_name, b"not an array")
    _refused(tinynet.load_model, path, "not an .npy array")


def test_object_arrays_are_refused_as_objects():
    """Object arrays are refused as objects."""
    buffer = io.BytesIO()
    np.savez(buffer, __architecture__=np.array([{"format": "tinynet.model"}], dtype=object))
    with pytest.raises(tinynet.ModelFileError, match="Python objects.*never unpickles"):
        tinynet.load_model(io.BytesIO(buffer.getvalue()))


# 3. generator states that hang or bias training
@pytest.mark.parametrize(
    "state",
    [
        {"state": 0, "inc": 0},  # even inc: the generator yields zeros, integers() never returns
        {"state": 1.5, "inc": 3},
        {"state": 1, "inc": 2**130 + 1},
        {"state": True, "inc": 3},
    ],
)
@pytest.mark.parametrize("where", ["rng", "layer_rngs"])
def test_generator_states_numpy_would_accept_blindly_are_refused(tmp_path, checkpoint_arrays, state, where):
    """Generator states numpy would accept blindly are refused."""
    def edit(meta):
        target = meta["rng"] if where == "rng" else meta["layer_rngs"]["4"]
        target["state"] = state

    path = _checkpoint(tmp_path, checkpoint_arrays, edit_meta=edit)
    _refused(tinynet.load_checkpoint, path, "invalid saved state")
    model = _cnn()
    with pytest.raises(tinynet.ModelFileError, match="invalid saved state"):
        model.fit(*_data(), epochs=3, batch_size=16, verbose=0, checkpoint=path, resume=True,
                  augment=tinynet.augment.random_shift(1))


@pytest.mark.parametrize("field, value", [("has_uint32", 7), ("uinteger", 2**40), ("bit_generator", "MT19937")])
def test_other_generator_fields_are_checked(tmp_path, checkpoint_arrays, field, value):
    """Other generator fields are checked."""
    path = _checkpoint(tmp_path, checkpoint_arrays, edit_meta=lambda meta: meta["rng"].update({field: value}))
    _refused(tinynet.load_checkpoint, path, "invalid saved state")


# 4. and 5. descriptions that would build huge models
@pytest.mark.parametrize("count, message", [(1_000_000, "characters long"), (1_001, "1,001 layers.*at most 1,000")])
def test_a_million_layers_are_refused_before_they_are_built(tmp_path, count, message):
    """A million layers are refused before they are built."""
    architecture = {"format": "tinynet.model", "version": 1, "layers": [{"class": "ReLU"}] * count}
    path = _write(tmp_path / "deep.npz", {"__architecture__": np.array(json.dumps(architecture))})
    _refused(tinynet.load_model, path, message)


def test_an_architecture_longer_than_the_text_limit_is_refused_unread(tmp_path):
    """An architecture longer than the text limit is refused unread."""
    path = _write(tmp_path / "long.npz", {"__architecture__": np.array(" " * (2**20 + 1))})
    _refused(tinynet.load_model, path, "characters long")


def test_conv2d_padding_beyond_the_kernel_is_refused(tmp_path):
    """Conv2d padding beyond the kernel is refused."""
    model = tinynet.Sequential([Conv2D(1, 2, 3, rng=0)])
    arrays = tinynet.serialization.model_arrays(model)
    arrays["__architecture__"] = np.array(str(arrays["__architecture__"]).replace('"padding": [0, 0]',
                                                                                 '"padding": [4000, 4000]'))
    _refused(tinynet.load_model, _write(tmp_path / "pad.npz", arrays), "invalid configuration.*padding")


# 6. values that load but compute nonsense
def test_nan_or_inf_weights_are_refused(tmp_path):
    """Nan or inf weights are refused."""
    for value in (np.nan, np.inf):
        arrays = tinynet.serialization.model_arrays(_cnn())
        arrays["5.W"] = arrays["5.W"].copy()
        arrays["5.W"][1, 2] = value
        _refused(tinynet.load_model, _write(tmp_path / "nan.npz", arrays), "5.W holds NaN or inf")


@pytest.mark.parametrize("value, message", [(np.nan, "finite"), (-1.0, "negative")])
def test_nan_or_negative_adam_moments_are_refused(tmp_path, checkpoint_arrays, value, message):
    """Nan or negative adam moments are refused."""
    def edit(arrays):
        arrays["optimizer.5.W.exp_avg_sq"][0, 0] = value

    _refused(tinynet.load_checkpoint, _checkpoint(tmp_path, checkpoint_arrays, edit_arrays=edit), message)


# 8. built-in errors instead of tinynet's
@pytest.mark.parametrize("entry", ["__architecture__", "__checkpoint__"])
def test_deeply_nested_json_is_a_model_file_error(tmp_path, checkpoint_arrays, entry):
    """Deeply nested json is a model file error."""
    arrays, meta = checkpoint_arrays
    arrays = {**arrays, "__checkpoint__": np.array(json.dumps(meta)), entry: np.array("[" * 100_000)}
    _refused(tinynet.load_checkpoint, _write(tmp_path / "nested.npz", arrays), "not valid JSON")


def test_unicode_digits_in_names_are_refused(tmp_path, checkpoint_arrays):
    """Unicode digits in names are refused."""
    def rename_rng(meta):
        meta["layer_rngs"]["\u00b9"] = meta["layer_rngs"].pop("4")

    _refused(tinynet.load_checkpoint, _checkpoint(tmp_path, checkpoint_arrays, edit_meta=rename_rng), "layer '¹'")

    def rename_array(arrays):
        arrays["optimizer.\u00b9.W.exp_avg"] = arrays.pop("optimizer.0.W.exp_avg")

    _refused(tinynet.load_checkpoint, _checkpoint(tmp_path, checkpoint_arrays, edit_arrays=rename_array),
             "unexpected arrays")


@pytest.mark.parametrize("steps", [10**1000, -1, 2.5, True])
def test_impossible_step_counts_are_refused(tmp_path, checkpoint_arrays, steps):
    """Impossible step counts are refused."""
    path = _checkpoint(tmp_path, checkpoint_arrays, edit_meta=lambda meta: meta["optimizer"].update(steps=steps))
    _refused(tinynet.load_checkpoint, path, "steps")


# 9. epoch counts that do not match the history
@pytest.mark.parametrize("epoch", [10**100, 1, 3])
def test_an_epoch_count_that_does_not_fit_the_history_is_refused(tmp_path, checkpoint_arrays, epoch):
    """An epoch count that does not fit the history is refused."""
    path = _checkpoint(tmp_path, checkpoint_arrays, edit_meta=lambda meta: meta.update(epoch=epoch))
    _refused(tinynet.load_checkpoint, path, "epoch")
    model = _cnn()
    with pytest.raises(tinynet.ModelFileError):
        model.fit(*_data(), epochs=5, verbose=0, checkpoint=path, resume=True)


def test_a_history_longer_than_the_epochs_is_refused(tmp_path, checkpoint_arrays):
    """A history longer than the epochs is refused."""
    def pad(meta):
        meta["history"]["loss"] = meta["history"]["loss"] * 500

    _refused(tinynet.load_checkpoint, _checkpoint(tmp_path, checkpoint_arrays, edit_meta=pad), "one per completed")


def test_an_untouched_checkpoint_still_loads(tmp_path, checkpoint_arrays):
    """The edits above are what is refused: the same file unedited loads and resumes."""
    path = _checkpoint(tmp_path, checkpoint_arrays)
    assert tinynet.load_checkpoint(path).epoch == 2
    assert _cnn().fit(*_data(), epochs=3, batch_size=16, verbose=0, checkpoint=path, resume=True).epochs == 3


def test_a_zip_that_claims_a_newer_format_is_a_model_file_error(tmp_path):
    """A zip asking for format version 6.4 (Python reads none such) is a ModelFileError, not NotImplementedError."""
    data = bytearray(_write(tmp_path / "m.npz", tinynet.serialization.model_arrays(_cnn())).read_bytes())
    directory = data.rfind(b"PK\x01\x02")  # the last central-directory entry
    data[directory + 6] = 64  # "version needed to extract": 6.4
    (tmp_path / "m.npz").write_bytes(bytes(data))
    _refused(tinynet.load_model, tmp_path / "m.npz", "not an .npz archive|could not be read")


# 12. damaged .npy headers: each a ModelFileError naming the file, the array and what to do
_GOOD_HEADER = "{'descr': '<f4', 'fortran_order': False, 'shape': (16, 4), }"


def _npy(header, data=b"\0" * 256, magic=b"\x93NUMPY", version=b"\x01\x00"):
    """The bytes of an .npy member with this header text, padded as NumPy pads it."""
    text = header.encode("latin1")
    text += b" " * (-(10 + len(text) + 1) % 64) + b"\n"
    return magic + version + struct.pack("<H" if version[0] == 1 else "<I", len(text)) + text + data


@pytest.mark.parametrize("member, problem", [
    (_npy(_GOOD_HEADER[:-5] + " 'x"), "damaged .npy header .TokenError"),  # NumPy's tokenizer gives up mid-string
    (_npy(_GOOD_HEADER.replace(", }", " 3}")), "damaged .npy header .ValueError: Cannot parse"),
    (_npy(_GOOD_HEADER)[:30], "damaged .npy header .ValueError: EOF"),
    (_npy(_GOOD_HEADER)[:8], "damaged .npy header .ValueError: EOF"),
    (b"", "damaged .npy header"),
    (_npy(_GOOD_HEADER, magic=b"\x93NUMPX"), "damaged .npy header .ValueError: the magic string"),
    (_npy(_GOOD_HEADER, version=b"\x03\x00"), r"version \(3, 0\); tinynet reads versions 1.0 and 2.0"),
    (_npy("{'descr': '<f4', 'shape': (16, 4), }"), "damaged .npy header.*correct keys"),
    (_npy(_GOOD_HEADER.replace(", }", ", 'x': 1}")), "damaged .npy header.*correct keys"),
    (_npy(_GOOD_HEADER.replace("(16, 4)", "(-16, -4)")), r"has shape \(-16, -4\), where the architecture needs"),
    (_npy(_GOOD_HEADER.replace("(16, 4)", f"({2**62}, {2**62})")), r"has shape \(4611686018427387904"),
    (_npy(_GOOD_HEADER.replace("(16, 4)", "(2**40, 4)")), "damaged .npy header.*malformed node"),
    (_npy(_GOOD_HEADER.replace("(16, 4)", "'ab'")), "damaged .npy header.*shape is not valid"),
    (_npy(_GOOD_HEADER.replace("(16, 4)", "(" * 3000 + ")" * 3000)), r"damaged .npy header.*\(\(\(\.\.\."),
    (_npy(_GOOD_HEADER.replace("<f4", "<f99")), "damaged .npy header.*not a valid dtype"),
    (_npy(_GOOD_HEADER.replace("<f4", "<f2")), "is float16, where tinynet writes float32 or float64"),
    (_npy(_GOOD_HEADER.replace("'<f4'", "[('a', '<f4')]")), "where tinynet writes float32"),
    (_npy(_GOOD_HEADER.replace("False", "'no'")), "damaged .npy header.*fortran_order"),
    (_npy("[1, 2]"), "damaged .npy header.*not a dictionary"),
    (_npy(_GOOD_HEADER, data=b"\0" * 8), "declares 256 bytes of data, but its member holds 8"),
], ids=["tokenizer error", "syntax error", "truncated header", "truncated length", "empty member", "wrong magic",
        "version 3.0", "missing keys", "extra key", "negative shape", "huge shape", "expression shape", "text shape",
        "nested brackets", "unknown dtype", "float16", "structured dtype", "fortran_order text", "header a list",
        "short data"])
def test_a_damaged_array_header_names_the_file_the_array_and_the_fix(tmp_path, member, problem):
    """Every way the .npy header of a weight can be damaged: a ModelFileError, never NumPy's own exception."""
    arrays = tinynet.serialization.model_arrays(_cnn())
    path = tmp_path / "damaged.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.save(buffer, array)
            archive.writestr(f"{name}.npy", member if name == "5.W" else buffer.getvalue())
    _refused(tinynet.load_model, path, rf"^{re.escape(str(path))}: array '5.W' .*{problem}.*write it again with "
                                       rf"model.save\(path\)")


def test_a_damaged_architecture_header_is_a_model_file_error(tmp_path):
    """The header of the JSON entry damaged the same way: the same kind of error."""
    path = tmp_path / "damaged.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("__architecture__.npy", _npy("{'descr': '<U10', 'fortran_order': False, 'shape': (), 'x"))
    _refused(tinynet.load_model, path, "array '__architecture__' has a damaged .npy header .TokenError")
