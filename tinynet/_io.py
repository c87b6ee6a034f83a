"""Atomic file writes: a reader sees the old file or the complete new one, never half of one."""

import contextlib
import os
from pathlib import Path

from .errors import ArgumentError, ArgumentTypeError, FolderNotFoundError

__all__ = ["atomic_write", "writable_path"]


@contextlib.contextmanager
def atomic_write(path):
    """Open a temporary file beside ``path`` for writing; on success, fsync and rename it over ``path``.

    If the block raises (or the process dies), ``path`` is untouched and the temporary
    file is removed (or, after a crash, left under a name starting with ``.``, never
    mistaken for the real file).

    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "hello.txt"
    >>> with atomic_write(target) as f:
    ...     _ = f.write(b"hi")
    >>> target.read_bytes()
    b'hi'
    """
    path = writable_path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)
        raise
    # Make the rename itself durable where the platform allows opening a directory.
    with contextlib.suppress(OSError):
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def writable_path(path):
    """``path`` as a Path if a file can be written there (a path, not a folder, in a folder that exists), else an error.

    :func:`atomic_write` checks it; ``fit(checkpoint=...)`` checks it before the first epoch
    rather than after it.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise ArgumentTypeError(f"Expected a file path (str or pathlib.Path) to write; received {path!r} "
                                f"({type(path).__name__}).")
    path = Path(path)
    if path.is_dir():
        raise ArgumentError(f"Cannot write {path}: it is a folder. Give a file path inside it, e.g. "
                            f"{path / ('file' + (path.suffix or '.npz'))}.")
    if not path.parent.is_dir():  # named here, so the error shows the user's path, not the temporary file's
        raise FolderNotFoundError(
            f"Cannot write {path}: the folder {path.parent} does not exist. Create it first, or choose another path."
        )
    return path
