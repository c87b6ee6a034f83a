"""The BLAS beside the kernels: how many threads it runs, and holding it to one while the engine's products run.

OpenBLAS's worker threads, like those of numba's threading layer (OpenMP's where it is
installed), keep spinning for a while after each product they shared, waiting for the next. On
a CPU where the engine multiplies in its own register tiles (:mod:`.gemm`, on numba's threads),
a BLAS product with two threads just before a tiled one, or just after, leaves three busy
threads on two cores: a one-image prediction of the MNIST CNN took 13-15 ms instead of 0.16-0.21.
So while the engine runs a batch (a plan, ``predict``, a training epoch) it holds the BLAS to one
thread (:func:`held_to_one_thread`): the products still left to the BLAS (a Dense layer's
input gradient, an LSTM's steps, the bias sums) run on the caller's thread, and the tiled
products take the threads the BLAS had (:func:`product_threads`; numba's own thread count caps
them, :func:`tinynet.kernels.set_num_threads` does not: it sets the memory-bound kernels').
"""

import contextlib
import threading

__all__ = ["controller", "threads", "held_to_one_thread", "tiles_allowed", "in_hold", "product_threads",
           "single_thread_products"]

_lock = threading.Lock()  # guards taking and giving back the hold
_controller_lock = threading.Lock()
_controller = None  # threadpoolctl's view of the BLAS libraries, made on first use (it costs milliseconds)
_owner = None  # the id of the thread holding the BLAS to one thread, or None
_held_from = None  # the BLAS's thread count before that hold (the smallest, if several libraries)
_counts_before = ()  # each library's own count before it, put back on leaving
_local = threading.local()  # .single: this thread's products on one thread (a part of a batch in parts)
_libraries = None  # the BLAS libraries' controllers, read once


def controller():
    """threadpoolctl's controller of the BLAS libraries NumPy and SciPy loaded."""
    global _controller
    with _controller_lock:
        if _controller is None:
            from threadpoolctl import ThreadpoolController

            _controller = ThreadpoolController().select(user_api="blas")
    return _controller


def _blas_libraries():
    global _libraries
    if _libraries is None:
        _libraries = tuple(controller().lib_controllers)
    return _libraries


def _current():
    return min((lib.num_threads for lib in _blas_libraries()), default=1)


def _set(counts):
    for lib, count in zip(_blas_libraries(), counts, strict=True):
        if lib.num_threads != count:
            lib.set_num_threads(count)  # a call into the library, under a microsecond; threadpoolctl's limit() takes 6


def threads():
    """The BLAS's thread count (the smallest, if several BLAS libraries are loaded), as it was before any
    :func:`held_to_one_thread` now running; about 1 us."""
    held_from = _held_from
    return held_from if held_from is not None else _current()


class held_to_one_thread:  # noqa: N801 (used as a function: ``with held_to_one_thread():``)
    """The BLAS on one thread inside, and the threads it had for the tiled products; back as it was on leaving.

    One thread holds it at a time, and gives it back itself: OpenBLAS does not let another thread raise
    a count the main thread lowered (measured with OpenBLAS 0.3.31), so a hold handed from thread to
    thread could leave the BLAS on one thread for good. A thread that finds it held by another (two
    predictions at once, from a server's threads) runs without tiles, its BLAS products on one
    thread too (the count is the process's), sharing the cores with the other. A hold inside a hold
    of the same thread (a plan's, inside ``predict``'s) changes nothing. Each BLAS library gets its
    own count back. A class rather than a generator: entered at every ``predict`` of a batch, where
    a generator's context costs a microsecond more.
    """

    __slots__ = ("owns",)

    def __enter__(self):
        global _owner, _held_from, _counts_before
        self.owns = False
        if _owner is None:
            with _lock:
                if _owner is None:
                    _counts_before = tuple(lib.num_threads for lib in _blas_libraries())
                    _held_from = min(_counts_before, default=1)
                    _set((1,) * len(_counts_before))
                    _owner, self.owns = threading.get_ident(), True
        return self

    def __exit__(self, *exc_info):
        global _owner, _held_from
        if self.owns:
            with _lock:
                _set(_counts_before)
                _owner, _held_from = None, None
        return False


def tiles_allowed():
    """Whether this thread may multiply in register tiles: inside a hold (the BLAS's threads idle) or in a part
    of a batch in parts (one thread each). Elsewhere a tiled product's threads would spin beside the BLAS's."""
    return _owner == threading.get_ident() or getattr(_local, "single", False)


def in_hold():
    """Whether this thread holds the BLAS for the engine (:class:`held_to_one_thread`), outside a part of a batch
    in parts."""
    return _owner == threading.get_ident() and not getattr(_local, "single", False)


def product_threads():
    """Threads for a tiled product: one in a part of a batch in parts, otherwise the BLAS's count (:func:`threads`)."""
    return 1 if getattr(_local, "single", False) else threads()


@contextlib.contextmanager
def single_thread_products():
    """This thread's tiled products on one thread inside (the parts of a batch each have a core already)."""
    before = getattr(_local, "single", False)
    _local.single = True
    try:
        yield
    finally:
        _local.single = before
