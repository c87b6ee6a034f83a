"""Let the C allocator keep freed memory for the next batch instead of handing it back (glibc).

A training step allocates tens of megabytes of short-lived arrays: im2col columns,
activations, masks, gradients. glibc serves each block above its mmap threshold with fresh
pages from the kernel and unmaps it again on free, so every batch pays for the kernel to
find and zero those pages anew. Raising the thresholds makes freed blocks stay in the heap
and be reused by the next batch: measured on a 2-core machine, a small-CNN training batch
went from 18.1 ms to 13.9 ms, and the Keras-convnet batch from 27.4 ms to 24.7 ms.

The cost: memory freed after training stays with the process (its peak does not grow).
Set ``TINYNET_KEEP_FREED_MEMORY=0`` to leave the allocator alone. Elsewhere than Linux with
glibc this does nothing.
"""

import ctypes
import os
import sys

__all__ = ["keep_freed_memory"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest allowed value on 64-bit systems
_TRIM_THRESHOLD = 1 << 30

_done = False


def keep_freed_memory():
    """Raise glibc's mmap and trim thresholds once per process; True if they were set."""
    global _done
    if _done:
        return True
    if os.environ.get("TINYNET_KEEP_FREED_MEMORY", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    _done = bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
    return _done
