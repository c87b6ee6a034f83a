"""Shared set-up for ``pytest benchmarks``: thread counts, the MNIST data, and the results table.

Thread counts are fixed before anything is timed and reported with the results:
NumPy's BLAS gets ``TINYNET_BENCH_THREADS`` threads (default 2), tinynet's numba kernels
keep their own setting (``TINYNET_KERNEL_THREADS``, default 1), and PyTorch and TensorFlow
get the same intra-op count as BLAS. At the end of the session the results are printed and
written to ``benchmarks/results/`` (CSV, Markdown and a PNG chart).
"""

import time

import frameworks
import numpy as np
import pytest
from frameworks import THREADS, blas_threads, framework
from results import Results, code_revision, load_average, machine_description
from threadpoolctl import threadpool_limits

import tinynet

# Held for the whole session: threadpoolctl restores the old limits when this is released.
_BLAS_LIMITS = threadpool_limits(limits=THREADS, user_api="blas")

RESULTS = Results()


#: Markers of the benchmarks a plain ``pytest benchmarks`` leaves out (they take tens of minutes).
LONG_MARKERS = ("accuracy", "slow")


def pytest_addoption(parser):
    parser.addoption("--long", action="store_true",
                     help="also run the long benchmarks: accuracy over seeds, time to accuracy, the speedrun, "
                          "start-up with a cold cache (tens of minutes); -m accuracy or -m slow picks one kind")


def pytest_collection_modifyitems(config, items):
    """Leave the long benchmarks out of a plain run, saying how to run them; -m or --long brings them in."""
    if config.getoption("--long") or config.option.markexpr:
        return
    skip = pytest.mark.skip(reason="long benchmark, left out of the plain run: pytest benchmarks --long "
                                   "(or -m accuracy / -m slow)")
    for item in items:
        if any(marker in item.keywords for marker in LONG_MARKERS):
            item.add_marker(skip)


def pytest_report_header(config):
    """What runs the arithmetic, at the top of the run, and a warning when a variable forces an older kernel."""
    lines = [f"BLAS: {frameworks.blas_description()}; {frameworks.numba_target()}",
             f"tinynet's products: {frameworks.products_description()}"]
    if frameworks.kernel_warning():
        lines.append(f"WARNING: {frameworks.kernel_warning()}")
    return lines


def pytest_configure(config):
    RESULTS.context.update({
        "machine": machine_description(),
        "blas": frameworks.blas_description(),
        "numba": frameworks.numba_target(),
        "tinynet's products": frameworks.products_description(),
        "threads": f"tinynet: {framework('tinynet').threads()}; frameworks: {THREADS} intra-op, 1 inter-op; "
                   f"each (framework, model) in a process of its own",
        "tinynet": f"{tinynet.__version__}, kernels: {tinynet.kernels.BACKEND}, revision {code_revision()}",
        "numpy": np.__version__,
        "load average at start": load_average(),
    })
    if frameworks.kernel_warning():
        RESULTS.context["WARNING"] = frameworks.kernel_warning()


@pytest.fixture(scope="session")
def results():
    return RESULTS


@pytest.fixture(scope="session")
def mnist():
    """MNIST as float32 NCHW in [0, 1]: ``(x_train, y_train), (x_test, y_test)``."""
    try:
        (x_train, y_train), (x_test, y_test) = tinynet.datasets.load_mnist(download=False)
    except tinynet.errors.DatasetError as error:
        pytest.skip(f"MNIST files not found; set TINYNET_DATA to the folder holding mnist/ ({error})")
    scale = np.float32(1 / 255)
    return (x_train[:, None] * scale, y_train), (x_test[:, None] * scale, y_test)


@pytest.fixture(scope="session")
def gemm_rate():
    """The machine's float32 matrix-product rate in FLOP/s through NumPy (best of 5, 2048^3)."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((2048, 2048), dtype=np.float32) for _ in range(2))
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(5))
    rate = 2 * 2048**3 / best
    RESULTS.context["float32 GEMM rate"] = (
        f"{rate / 1e9:.0f} GFLOP/s (NumPy, 2048x2048 @ 2048x2048, BLAS {blas_threads()} threads)")
    return rate


def _timed(function):
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def pytest_terminal_summary(terminalreporter):
    if not RESULTS.rows:
        return
    RESULTS.context["load average at end"] = load_average()
    terminalreporter.write_line(RESULTS.text())
    written = RESULTS.write()
    terminalreporter.write_line("\nResults written to " + ", ".join(str(path) for path in written))
