"""Atomic file writes: a reader sees the old file or the complete new one, never half of one."""

import contextlib
import os
from pathlib import Path

from .errors import FolderNotFoundError

__all__ = ["atomic_write"]


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
    path = Path(path)
    if not path.parent.is_dir():  # named here, so the error shows the user's path, not the temporary file's
        raise FolderNotFoundError(
            f"Cannot write {path}: the folder {path.parent} does not exist. Create it first, or choose another path."
        )
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
