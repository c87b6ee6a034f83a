"""``.npz`` archives read as hostile data: headers before contents, every size bounded.

Model files and checkpoints are ``numpy.savez`` archives: a zip file of stored (not
compressed) ``.npy`` members. ``numpy.load`` would decompress a member whole before anything
could look at it, and reads the last of several members with the same name, so this module
reads them itself:

- the member list is checked first: only stored ``<name>.npy`` members, no name twice;
- the caller says which names and shapes it expects (from the architecture) before any
  array is read, and each array's ``.npy`` header (dtype, shape) is compared with that and
  with the member's size on disk before its data is read;
- text entries (the JSON descriptions) have a size limit and are parsed without recursion
  errors escaping.

Every failure is a :class:`~tinynet.errors.ModelFileError` naming the file. Writing goes
through :func:`write_archive`, atomically.
"""

import json
import os
import zipfile

import numpy as np

from .._io import atomic_write
from ..errors import ArgumentTypeError, ModelFileError

__all__ = ["Archive", "write_archive", "MAX_TEXT_CHARS"]

#: The longest JSON description read from a file (architecture, checkpoint metadata).
MAX_TEXT_CHARS = 1 << 20
_MAX_NPY_HEADER = 10_000


def write_archive(path, arrays):
    """Write ``{name: array}`` as an uncompressed ``.npz`` file, atomically."""
    with atomic_write(path) as handle:
        np.savez(handle, **arrays)


def _shortened(error, limit=200):
    """An error's text, at most ``limit`` characters: a hostile header can be 10,000 characters of brackets."""
    text = str(error)
    return text if len(text) <= limit else text[:limit] + "..."


class Archive:
    """An ``.npz`` file opened for checked reading; use as a context manager.

    Examples
    --------
    >>> import io, numpy as np
    >>> buffer = io.BytesIO(); np.savez(buffer, w=np.ones(3, np.float32)); _ = buffer.seek(0)
    >>> with Archive(buffer, "weights.npz") as archive:
    ...     archive.names, archive.read_array("w", (3,), {"float32"})
    ({'w'}, array([1., 1., 1.], dtype=float32))
    """

    def __init__(self, file, path):
        self.path = path
        if not isinstance(file, (str, os.PathLike)) and not hasattr(file, "read"):
            raise ArgumentTypeError(f"Expected the path of a model or checkpoint file (str or pathlib.Path); "
                                    f"received {file!r} ({type(file).__name__}).")
        try:
            self._zip = zipfile.ZipFile(file)
        except FileNotFoundError:
            raise ModelFileError(
                f"No model file at {path}; check the path (models are written by model.save(path), "
                f"checkpoints by fit(..., checkpoint=path))."
            ) from None
        except (OSError, zipfile.BadZipFile, ValueError, EOFError, NotImplementedError, OverflowError) as error:
            raise ModelFileError(
                f"{path} is not a tinynet model or checkpoint file (not an .npz archive: {error}). "
                f"tinynet never loads pickles."
            ) from error
        try:
            self._members = self._check_members()
        except BaseException:
            self._zip.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self._zip.close()
        return False

    def _check_members(self):
        members = {}
        for info in self._zip.infolist():
            name = info.filename
            if not name.endswith(".npy"):
                raise ModelFileError(f"{self.path} holds a member {name!r} that is not an .npy array.")
            key = name[: -len(".npy")]
            if key in members:
                raise ModelFileError(
                    f"{self.path} holds the array {key!r} twice; other tools would see other weights than "
                    f"tinynet. The file was not written by tinynet."
                )
            if info.compress_type != zipfile.ZIP_STORED:
                raise ModelFileError(
                    f"{self.path}: array {key!r} is compressed; tinynet writes (and reads) only stored members."
                )
            members[key] = info
        return members

    @property
    def names(self):
        """The names of the arrays in the archive (without ``.npy``)."""
        return set(self._members)

    def refuse_unexpected(self, expected, what):
        """Raise unless every array name is in ``expected`` (a set), naming the first strangers."""
        unexpected = sorted(self.names - set(expected))
        if unexpected:
            shown = ", ".join(repr(name) for name in unexpected[:5])
            raise ModelFileError(f"{self.path}: unexpected arrays {shown} for {what}.")

    def _open(self, name):
        info = self._members.get(name)
        if info is None:
            raise ModelFileError(f"{self.path} has no {name!r} entry.")
        return info, self._zip.open(info)

    def _damaged(self, name, problem):
        """The error for array ``name`` of a damaged file: what is wrong, and what to do about it."""
        return ModelFileError(
            f"{self.path}: array {name!r} {problem}. The file is damaged (truncated or edited) or was not written "
            f"by tinynet: write it again with model.save(path) (or fit(..., checkpoint=path)), or copy it again "
            f"from where it came from."
        )

    def _header(self, stream, name):
        """``(shape, fortran_order, dtype)`` from the ``.npy`` header of ``stream``, or a ModelFileError."""
        try:
            version = np.lib.format.read_magic(stream)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                           (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if read_header is None:
                raise self._damaged(name, f"has .npy format version {version}; tinynet reads versions 1.0 and 2.0")
            shape, fortran_order, dtype = read_header(stream, max_header_size=_MAX_NPY_HEADER)
        except ModelFileError:
            raise
        except Exception as error:
            # NumPy parses the header's text with Python's tokenizer and ast.literal_eval, whose
            # errors on hostile text are of many kinds (TokenError is not even a ValueError); all
            # of them mean the same here, so all are caught where the text is read, and only there.
            problem = f"{type(error).__name__}: {_shortened(error)}"
            raise self._damaged(name, f"has a damaged .npy header ({problem})") from None
        if dtype.hasobject:
            raise ModelFileError(
                f"{self.path}: array {name!r} holds Python objects; tinynet files hold only numbers and text, "
                f"and tinynet never unpickles."
            )
        return shape, fortran_order, dtype

    def _read(self, name, check):
        """Read array ``name`` after ``check(shape, dtype)`` accepted its header."""
        try:
            info, stream = self._open(name)
            with stream:
                shape, fortran_order, dtype = self._header(stream, name)
                check(shape, dtype)
                nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
                if info.file_size != stream.tell() + nbytes:
                    raise self._damaged(name, f"declares {nbytes} bytes of data, but its member holds "
                                              f"{info.file_size - stream.tell()}")
                data = stream.read(nbytes)
                if len(data) != nbytes:
                    raise self._damaged(name, "is truncated")
        except ModelFileError:
            raise
        except (OSError, EOFError, ValueError, zipfile.BadZipFile, OverflowError, RuntimeError,
                NotImplementedError, UnicodeDecodeError, SyntaxError) as error:
            raise self._damaged(name, f"could not be read ({type(error).__name__}: {_shortened(error)})") from error
        order = "F" if fortran_order else "C"
        return np.frombuffer(data, dtype=dtype).reshape(shape, order=order).copy(order="C")

    def read_array(self, name, shape, dtypes):
        """Array ``name``, which must have ``shape`` and a dtype named in ``dtypes``."""

        def check(found_shape, dtype):
            if dtype.name not in dtypes:
                raise self._damaged(name, f"is {dtype}, where tinynet writes {' or '.join(sorted(dtypes))}")
            if tuple(found_shape) != tuple(shape):
                raise self._damaged(name, f"has shape {tuple(found_shape)}, where the architecture needs {shape}")

        return self._read(name, check)

    def read_json(self, name, what):
        """The JSON document stored as the 0-d text array ``name`` (at most MAX_TEXT_CHARS)."""

        def check(shape, dtype):
            if dtype.kind != "U" or shape != ():
                raise ModelFileError(f"{self.path}: the {what} entry {name!r} is not text.")
            if dtype.itemsize // 4 > MAX_TEXT_CHARS:
                raise ModelFileError(
                    f"{self.path}: the {what} entry is {dtype.itemsize // 4:,} characters long; "
                    f"tinynet reads at most {MAX_TEXT_CHARS:,}."
                )

        text = str(self._read(name, check)[()])
        try:
            return json.loads(text)
        except (ValueError, RecursionError) as error:
            raise ModelFileError(f"{self.path}: the {what} entry is not valid JSON ({error}).") from None
