"""The checks of backprop_from_scratch's exercises: the cases that matter, with tinynet's layers as references.

Each ``check_<exercise>(function)`` runs your function on the cases below (copies of every
array, float64 and float32) through :func:`exercise_checks.check_cases` and prints one line.
The cases are chosen so that the plausible wrong answers cannot pass:

- ``relu_backward``: inputs with exact zeros (tinynet's slope at 0 is 0).
- ``cross_entropy_grad``: a row of logits of ±1000 (a naive ``exp`` overflows).
- ``numerical_gradient``: a function whose gradient tinynet computes by backprop (Dense or Conv2D,
  then Tanh), called with ``h = 1e-5`` and a tolerance of 1e-8 of the gradient's scale: a centred
  difference is off by about 1e-10, a one-sided one by about ``h f'' / 2``, 1e-6 or more. ``x`` must
  be unchanged afterwards (a check that forgets to put an entry back moves it by ``h``).
- ``conv_kernel_grad``, ``conv_input_grad``: non-square everywhere (filters != channels, kernel
  height != width, output height != width, stride (2, 1)), so a transposed gradient has the wrong
  shape or the wrong values.
- ``maxpool_backward``: maps with ties, the rule being tinynet's: a window's gradient goes to one
  input, its first maximum in row-major order. Zeros after ReLU (where most windows of a digit's
  background tie) and small integers (ties between positive values); sizes no window fills.
- ``batchnorm_backward``: features on different scales, a gamma other than one.
- ``softmax_backward``: the full Jacobian-vector product; the Jacobian's diagonal alone is rejected.
"""

import numpy as np
from exercise_checks import check_cases

from tinynet.layers import BatchNorm1D, Conv2D, Dense, MaxPool2D, ReLU, Softmax, Tanh
from tinynet.layers.conv import im2col
from tinynet.losses import SoftmaxCrossEntropy

__all__ = ["check_batchnorm_backward", "check_conv_input_grad", "check_conv_kernel_grad",
           "check_cross_entropy_grad", "check_maxpool_backward", "check_numerical_gradient",
           "check_relu_backward", "check_softmax_backward"]

#: The step the gradient-check exercise is called with, and the tolerance it is held to.
GRADIENT_CHECK_STEP, GRADIENT_CHECK_RTOL = 1e-5, 1e-8

#: Convolution geometries: (in_channels, out_channels, kernel, stride, padding, input shape).
CONVOLUTIONS = {
    "3x3 stride 2 padding 1": (2, 3, (3, 3), (2, 2), (1, 1), (2, 2, 7, 6)),
    "2x3 kernel, stride (2, 1), 3 channels to 2 filters": (3, 2, (2, 3), (2, 1), (1, 0), (2, 3, 6, 5)),
}


def _rng():
    return np.random.default_rng(2024)


def check_relu_backward(function):
    """``relu_backward(X, dY)`` against ``ReLU``, on inputs with exact zeros, in float64 and float32."""
    rng, cases = _rng(), []
    for dtype in (np.float64, np.float32):
        X = rng.standard_normal((4, 6)).round(1).astype(dtype)  # rounding makes exact zeros
        X[0, :3] = 0.0
        dY = rng.standard_normal(X.shape).astype(dtype)
        relu = ReLU()
        relu.forward(X, training=True)
        cases.append((f"{np.dtype(dtype)} with zeros", (X, dY), relu.backward(dY)))

    def explain(label, args, answer, reference):
        X = args[0]
        wrong = ~np.isclose(answer, reference)
        if wrong.any() and (X[wrong] == 0).all():
            return "It differs only where X is exactly 0: tinynet takes ReLU's slope there to be 0"
        return None

    return check_cases("relu_backward", function, cases, explain=explain)


def check_cross_entropy_grad(function):
    """``cross_entropy_grad(Z, t)`` against ``SoftmaxCrossEntropy``, with a row of ±1000, float64 and float32."""
    rng, cases = _rng(), []
    for dtype in (np.float64, np.float32):
        Z, t = rng.standard_normal((5, 4)).astype(dtype), np.array([0, 3, 1, 1, 2])
        Z[4] = [1000.0, -1000.0, 0.0, 999.0]  # a naive exp overflows here
        loss = SoftmaxCrossEntropy()
        loss.forward(Z, t)
        cases.append((f"{np.dtype(dtype)}, a row of ±1000", (Z, t), loss.backward()))
    return check_cases("cross_entropy_grad", function, cases)


def check_numerical_gradient(function):
    """``numerical_gradient(f, x, h)`` on functions whose gradient backprop gives; ``x`` must come back unchanged."""
    rng, cases = _rng(), []
    dense, conv = Dense(4, 3, rng=1).astype(np.float64), Conv2D(1, 2, (2, 3), rng=1).astype(np.float64)
    for label, layer, x_shape, G_shape in [("Dense then Tanh, x (2, 4)", dense, (2, 4), (2, 3)),
                                           ("Conv2D then Tanh, x (1, 1, 3, 4)", conv, (1, 1, 3, 4), (1, 2, 2, 2))]:
        x, G = rng.standard_normal(x_shape), rng.standard_normal(G_shape)
        f = _tanh_of(layer, G)
        tanh = Tanh()
        tanh.forward(layer.forward(x, training=True), training=True)
        cases.append((label, (f, x, GRADIENT_CHECK_STEP), layer.backward(tanh.backward(G))))

    def explain(label, args, answer, reference):
        error = np.abs(answer - reference).max() / np.abs(reference).max()
        if error < 1e-2:
            return (f"It is off by {error:.0e} of the gradient's scale, about h = {GRADIENT_CHECK_STEP:g}: the "
                    "one-sided (f(x + h) - f(x)) / h errs by h f''/2, the centred difference by about h² f'''/6")
        return None

    return check_cases("numerical_gradient", function, cases, rtol=GRADIENT_CHECK_RTOL, explain=explain)


def _tanh_of(layer, G):
    """``f(x) = Σ tanh(layer(x)) · G``, a scalar whose gradient is ``layer.backward(tanh.backward(G))``."""
    tanh = Tanh()

    def f(x):
        return float((tanh.forward(layer.forward(x)) * G).sum())

    return f


def _convolutions(rng):
    """``(label, conv, images, dY)`` for each geometry, in float64 and float32, with the layer's backward run."""
    for label, (channels, filters, kernel, stride, padding, x_shape) in CONVOLUTIONS.items():
        for dtype in (np.float64, np.float32):
            conv = Conv2D(channels, filters, kernel, stride=stride, padding=padding, rng=1).astype(dtype)
            images = rng.standard_normal(x_shape).astype(dtype)
            dY = rng.standard_normal(conv.forward(images, training=True).shape).astype(dtype)
            dX = conv.backward(dY)
            yield f"{label}, {np.dtype(dtype)}", conv, images, dY, dX


def check_conv_kernel_grad(function):
    """``conv_kernel_grad(cols, dY, kernel_shape)`` against ``Conv2D``'s ``dW``, on non-square geometries."""
    cases = []
    for label, conv, images, dY, _ in _convolutions(_rng()):
        cols = im2col(images, kernel_size=conv.kernel_size, stride=conv.stride, padding=conv.padding)
        cases.append((label, (cols, dY, conv.params["W"].shape), conv.grads["W"]))
    return check_cases("conv_kernel_grad", function, cases)


def check_conv_input_grad(function):
    """``conv_input_grad(dY, K, x_shape, stride, padding)`` against ``Conv2D``'s ``dX``, on non-square geometries."""
    cases = [(label, (dY, conv.params["W"], images.shape, conv.stride, conv.padding), dX)
             for label, conv, images, dY, dX in _convolutions(_rng())]
    return check_cases("conv_input_grad", function, cases)


def check_maxpool_backward(function):
    """``maxpool_backward(X, dY, k)`` against ``MaxPool2D``, on maps with ties and sizes no window fills."""
    rng = _rng()
    maps = [("random values, 5x5, k = 2", rng.standard_normal((2, 3, 5, 5)), 2),
            ("zeros after ReLU, k = 2", np.maximum(rng.standard_normal((2, 2, 6, 7)) - 1.0, 0.0), 2),
            ("small integers, k = 3", rng.integers(0, 3, (1, 2, 7, 8)).astype(np.float64), 3)]
    cases = []
    for label, X, k in maps + [(label + ", float32", X.astype(np.float32), k) for label, X, k in maps[1:]]:
        pool = MaxPool2D(k)
        dY = rng.standard_normal(pool.forward(X, training=True).shape).astype(X.dtype)
        cases.append((label, (X, dY, k), pool.backward(dY)))

    def explain(label, args, answer, reference):
        X, dY, k = args
        out_h, out_w = dY.shape[2:]
        if np.any(answer[:, :, out_h * k:]) or np.any(answer[:, :, :, out_w * k:]):
            return "The last rows or columns that no window reads get no gradient"
        inside = answer[:, :, :out_h * k, :out_w * k].reshape(*X.shape[:2], out_h, k, out_w, k)
        receivers = (inside != 0).sum(axis=(3, 5))  # (N, C, out_h, out_w): inputs given a share per window
        if receivers.max() > 1:
            return (f"A window with a tie sent its gradient to {receivers.max()} inputs; tinynet sends it to one, "
                    "the first maximum in row-major order (the one argmax returns)")
        return "On a tie tinynet sends the gradient to the first maximum in row-major order (the one argmax returns)"

    return check_cases("maxpool_backward", function, cases, explain=explain)


def check_batchnorm_backward(function):
    """``batchnorm_backward(x, dy, gamma, eps)`` against ``BatchNorm1D``, float64 and float32."""
    rng, cases = _rng(), []
    for dtype in (np.float64, np.float32):
        x = (rng.standard_normal((6, 3)) * [2, 1, 0.1] + 1).astype(dtype)
        dy = rng.standard_normal((6, 3)).astype(dtype)
        bn = BatchNorm1D(3).astype(dtype)
        bn.params["gamma"][...] = [0.5, 1.0, 2.0]
        bn.forward(x, training=True)
        cases.append((f"{np.dtype(dtype)}, gamma (0.5, 1, 2)", (x, dy, bn.params["gamma"], bn.eps), bn.backward(dy)))
    return check_cases("batchnorm_backward", function, cases)


def check_softmax_backward(function):
    """``softmax_backward(Y, dY)`` against ``Softmax``'s backward (Y its output), float64 and float32."""
    rng, cases = _rng(), []
    for label, scale, dtype in [("logits of size 1", 1.0, np.float64), ("logits of size 10", 10.0, np.float64),
                                ("float32", 3.0, np.float32)]:
        X, dY = (rng.standard_normal((4, 5)) * scale).astype(dtype), rng.standard_normal((4, 5)).astype(dtype)
        layer = Softmax()
        Y = layer.forward(X, training=True)
        cases.append((label, (Y, dY), layer.backward(dY)))

    def explain(label, args, answer, reference):
        Y, dY = args
        diagonal = dY * Y * (1 - Y)
        if np.allclose(answer, diagonal, rtol=1e-4, atol=1e-6):
            return ("That is the Jacobian's diagonal only: every output of a row depends on every input, "
                    "so dX[j] sums dY[i] ∂Y[i]/∂X[j] over all i")
        return None

    return check_cases("softmax_backward", function, cases, explain=explain)
