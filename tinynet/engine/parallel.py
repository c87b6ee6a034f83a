"""A batch in parts, one thread each: for a step that is many small products and kernels in a row.

An LSTM's time step is a product ``(N, H) @ (H, 4H)`` and a compiled cell. The product is too
small for a BLAS to share well among its threads (two threads run a 128-row one in 0.12 ms,
one thread a 64-row half in 0.11 ms), and the cell runs on one thread. The samples of a batch
do not meet in the loop over time, so the batch can be cut into as many parts as the BLAS has
threads, each part run on a thread of its own with the BLAS on one thread: every product and
cell then has a core to itself. NumPy and the compiled cells release the GIL while they
compute (the cells are compiled ``nogil``), so the threads run side by side. A vision
transformer's whole training plan runs in parts the same way (:mod:`.split`); its attention
heads alone, cut between the projections, made the epoch slower: those parts are too short.

The number of parts follows the BLAS's thread count at the call: with one BLAS thread (a
server that computes each request on one, or ``OPENBLAS_NUM_THREADS=1``) there is one part,
run on the caller's thread. Every part's result is what the whole batch's rows would be,
to rounding: the parts are the same computation on fewer rows.
"""

import contextlib
import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..kernels.blas import held_to_one_thread, single_thread_products
from ..kernels.blas import threads as _blas_threads

__all__ = ["batch_parts", "run_in_parts", "joined", "products_on_one_thread"]

#: Fewest samples a part gets: below this, a thread's start costs more than its share saves.
MIN_PART = 8

_lock = threading.Lock()
_part_count = contextvars.ContextVar("tinynet_part_count", default=None)  # set by products_on_one_thread
_pool = None
_pool_size = 0


@contextlib.contextmanager
def products_on_one_thread():
    """Every product inside on one thread (the BLAS's and the tiled ones), while :func:`batch_parts` still cuts
    as many parts as the BLAS had threads on entry.

    A plan with a step in parts runs whole inside this. OpenBLAS's threads spin for a while after
    each product they shared, waiting for the next; a product on two threads just before a step in
    parts (the Dense after an LSTM, in the forward of the next batch or in the backward) leaves
    one spinning beside the parts' threads, three busy threads on two cores: an LSTM's forward of
    1,000 rows took 100-110 ms after the Dense's product against 60-70 ms alone. On one thread
    nothing spins, and the parts keep both cores busy.
    """
    count = _blas_threads()
    if count == 1 or _part_count.get() is not None:
        yield
        return
    token = _part_count.set(count)
    try:
        with held_to_one_thread(), single_thread_products():
            yield
    finally:
        _part_count.reset(token)


def joined(arrays):
    """The parts' arrays as one batch (axis 0); a single part's array as it is, without a copy."""
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def batch_parts(n):
    """The slices that cut a batch of ``n`` samples into one part per BLAS thread (each at least
    :data:`MIN_PART` samples; one part, the whole batch, when that leaves fewer than two).

    Examples
    --------
    >>> batch_parts(4)
    [slice(0, 4, None)]
    """
    threads = _part_count.get() or _blas_threads()
    count = max(1, min(threads, n // MIN_PART))
    bounds = [n * k // count for k in range(count + 1)]
    return [slice(start, stop) for start, stop in zip(bounds[:-1], bounds[1:], strict=True)]


def _executor(workers):
    global _pool, _pool_size
    with _lock:
        if _pool is None or _pool_size < workers:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool, _pool_size = ThreadPoolExecutor(workers, thread_name_prefix="tinynet-part"), workers
    return _pool


def run_in_parts(function, parts):
    """``[function(part) for part in parts]``, the first part on the caller's thread and each other on a
    thread of its own, the BLAS on one thread each meanwhile. A part is whatever ``function`` takes
    (a slice of :func:`batch_parts`, or a slice with what an earlier call computed for it).

    Examples
    --------
    >>> run_in_parts(lambda part: part.stop - part.start, [slice(0, 3)])
    [3]
    """
    if len(parts) == 1:
        return [function(parts[0])]

    def on_one_thread(part):
        with single_thread_products():
            return function(part)

    with held_to_one_thread():
        futures = [_executor(len(parts) - 1).submit(on_one_thread, part) for part in parts[1:]]
        first = on_one_thread(parts[0])
        return [first] + [future.result() for future in futures]
