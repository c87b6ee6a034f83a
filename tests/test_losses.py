"""Losses: values, numerically checked gradients, and stability on extreme logits."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinynet.errors import TinynetError
from tinynet.gradcheck import relative_error
from tinynet.losses import MeanSquaredError, SoftmaxCrossEntropy


def _numeric_grad(f, z, eps=1e-5):
    grad = np.zeros_like(z)
    for i in np.ndindex(z.shape):
        original = z[i]
        z[i] = original + eps
        plus = f(z)
        z[i] = original - eps
        minus = f(z)
        z[i] = original
        grad[i] = (plus - minus) / (2 * eps)
    return grad


@given(st.integers(1, 6), st.integers(2, 7), st.integers(0, 2**16))
def test_softmax_cross_entropy_gradient(n, k, seed):
    """The fused gradient (p - onehot)/N matches central differences (relative error < 1e-6)."""
    rng = np.random.default_rng(seed)
    # Unsaturated logits: with p near 0 or 1 the gradient falls below finite-difference precision.
    logits, labels = rng.standard_normal((n, k)), rng.integers(0, k, n)
    loss = SoftmaxCrossEntropy()
    loss.forward(logits, labels)
    analytic = loss.backward()
    numeric = _numeric_grad(lambda z: SoftmaxCrossEntropy().forward(z, labels), logits.copy())
    assert relative_error(analytic, numeric) < 1e-6


@given(st.integers(1, 6), st.integers(2, 7), st.floats(0.0, 0.9), st.integers(0, 2**16))
def test_label_smoothing_gradient(n, k, eps, seed):
    """With label smoothing the gradient (p - target)/N matches central differences (relative error < 1e-6)."""
    rng = np.random.default_rng(seed)
    logits, labels = rng.standard_normal((n, k)), rng.integers(0, k, n)
    loss = SoftmaxCrossEntropy(label_smoothing=eps)
    loss.forward(logits, labels)
    numeric = _numeric_grad(lambda z: SoftmaxCrossEntropy(label_smoothing=eps).forward(z, labels), logits.copy())
    assert relative_error(loss.backward(), numeric) < 1e-6


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.5])
def test_label_smoothing_matches_pytorch(eps):
    """Value and gradient agree with PyTorch's cross_entropy(label_smoothing=eps) in float64."""
    torch = pytest.importorskip("torch", reason="PyTorch is in the export extra: pip install -e '.[export]'")
    rng = np.random.default_rng(1)
    logits, labels = 4 * rng.standard_normal((9, 10)), rng.integers(0, 10, 9)
    loss = SoftmaxCrossEntropy(label_smoothing=eps)
    value = loss.forward(logits, labels)
    z = torch.tensor(logits, requires_grad=True)
    expected = torch.nn.functional.cross_entropy(z, torch.from_numpy(labels), label_smoothing=eps)
    expected.backward()
    assert abs(value - expected.item()) < 1e-12
    np.testing.assert_allclose(loss.backward(), z.grad.numpy(), rtol=0, atol=1e-14)


@pytest.mark.parametrize("eps", [-0.1, 1.0, float("nan"), "0.1"])
def test_label_smoothing_out_of_range_is_named(eps):
    """A smoothing outside [0, 1) is refused, naming the argument and its range."""
    with pytest.raises(TinynetError, match=r"expects label_smoothing to be in \[0, 1\); received"):
        SoftmaxCrossEntropy(label_smoothing=eps)


@given(st.integers(1, 6), st.integers(1, 5), st.integers(0, 2**16))
def test_mean_squared_error_gradient(n, k, seed):
    """The MSE gradient 2(y - t)/(N K) matches central differences (relative error < 1e-6)."""
    rng = np.random.default_rng(seed)
    outputs, targets = rng.standard_normal((n, k)), rng.standard_normal((n, k))
    loss = MeanSquaredError()
    loss.forward(outputs, targets)
    numeric = _numeric_grad(lambda y: MeanSquaredError().forward(y, targets), outputs.copy())
    assert relative_error(loss.backward(), numeric) < 1e-6


def test_softmax_cross_entropy_value():
    """Uniform logits over K classes cost log K; a confident right answer costs about 0."""
    loss = SoftmaxCrossEntropy()
    assert loss.forward(np.zeros((3, 10)), np.array([1, 2, 3])) == pytest.approx(np.log(10))
    assert loss.forward(np.array([[50.0, 0.0]]), np.array([0])) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_cross_entropy_is_stable_for_huge_logits(dtype):
    """Logits of +-1e4 give a finite loss and gradient (no overflow to inf or NaN)."""
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]], dtype=dtype)
    loss = SoftmaxCrossEntropy()
    value = loss.forward(logits, np.array([1, 0]))
    grad = loss.backward()
    assert np.isfinite(value) and value == pytest.approx(2e4 / 2 + (2e4 + np.log(2)) / 2, rel=1e-6)
    assert np.isfinite(grad).all() and grad.dtype == dtype


def test_mse_accepts_integer_labels_as_one_hot():
    """Integer labels (N,) against outputs (N, K) are one-hot encoded."""
    loss = MeanSquaredError()
    assert loss.forward(np.array([[0.0, 1.0]]), np.array([1])) == 0.0


@pytest.mark.parametrize(
    "labels, message",
    [(np.array([0, 5]), "labels in 0..2"), (np.array([0.0, 1.0]), "integer class labels"), (np.array([0]), r"\(2,\)")],
)
def test_bad_labels_are_named(labels, message):
    """Out-of-range, non-integer or wrongly shaped labels get a clear error."""
    with pytest.raises((ValueError, TypeError), match=message):
        SoftmaxCrossEntropy().forward(np.zeros((2, 3)), labels)
