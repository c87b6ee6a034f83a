"""The numba kernels against their readable reference twins, at the MNIST models' shapes.

Each case first checks that both implementations give the same arrays, then times one of
them; the results table shows the two times side by side and the speed-up.
"""

import numpy as np
import pytest

from tinynet import kernels
from tinynet.kernels import reference

BATCH = 128
# (name, NHWC input shape, as the kernels take it): the first and second convolution, and the
# two pooling layers (with the ReLU and bias fused, as models run them), of cnn().
CONV_INPUTS = {"conv1": (BATCH, 28, 28, 1), "conv2": (BATCH, 13, 13, 32)}
POOL_INPUTS = {"pool1": (BATCH, 26, 26, 32), "pool2": (BATCH, 11, 11, 64)}
K, STRIDE, PAD, POOL = 3, 1, 0, 2
WINDOW = (POOL, POOL, POOL, POOL)


def _array(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)


def _cases():
    """Per kernel and shape: (fast call, reference call) on the same prepared inputs."""
    cases = {}
    for layer, shape in CONV_INPUTS.items():
        x = _array(shape)
        cols = kernels.im2col(x, K, K, STRIDE, STRIDE, PAD, PAD)
        grad_cols = _array(cols.shape, seed=1)
        cases[("im2col", layer, shape)] = (
            lambda x=x: kernels.im2col(x, K, K, STRIDE, STRIDE, PAD, PAD),
            lambda x=x: reference.im2col_reference(x, K, K, STRIDE, STRIDE, PAD, PAD),
        )
        cases[("col2im", layer, shape)] = (
            lambda g=grad_cols, s=shape: kernels.col2im(g, s, K, K, STRIDE, STRIDE, PAD, PAD),
            lambda g=grad_cols, s=shape: reference.col2im_reference(g, s, K, K, STRIDE, STRIDE, PAD, PAD),
        )
    for layer, shape in POOL_INPUTS.items():
        x, bias = _array(shape), _array(shape[3], seed=2)
        out, argmax = kernels.maxpool_forward(x, *WINDOW, relu=True, bias=bias)
        grad_out = _array(out.shape, seed=1)
        cases[("maxpool_forward", layer, shape)] = (
            lambda x=x, b=bias: kernels.maxpool_forward(x, *WINDOW, relu=True, bias=b),
            lambda x=x, b=bias: reference.maxpool_forward_reference(x, *WINDOW, relu=True, bias=b),
        )
        cases[("maxpool_backward", layer, shape)] = (
            lambda g=grad_out, a=argmax, s=shape: kernels.maxpool_backward(g, a, s, *WINDOW),
            lambda g=grad_out, a=argmax, s=shape: reference.maxpool_backward_reference(g, a, s, *WINDOW),
        )
    return cases


CASES = _cases()


def _assert_same(fast, slow):
    if isinstance(fast, tuple):
        for a, b in zip(fast, slow, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    else:
        np.testing.assert_allclose(fast, slow, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("implementation", ["numba", "reference"])
@pytest.mark.parametrize("case", list(CASES), ids=lambda case: f"{case[0]}-{case[1]}")
def test_kernel(benchmark, results, case, implementation):
    kernel, layer, shape = case
    fast, slow = CASES[case]
    _assert_same(fast(), slow())  # what is timed is correct (and compiled before timing)
    benchmark.group = f"kernel {kernel} {layer}"
    benchmark(fast if implementation == "numba" else slow)
    if benchmark.stats is not None:
        results.record("kernels", f"{kernel} ({layer})", f"{implementation}_ms",
                       benchmark.stats.stats.median * 1e3, "ms", detail="x".join(map(str, shape)))
