"""Optimizers: update rules checked against values computed by hand from torch's formulas."""

import math

import numpy as np
import pytest

from tinynet.layers import Dense
from tinynet.optim import SGD, Adam, AdamW


def _layer_with(weight, grad):
    """A 1x1 Dense layer whose W and gradient are set by hand (bias and its gradient zero)."""
    layer = Dense(1, 1, rng=0).astype(np.float64)
    layer.params["W"][...] = weight
    layer.grads = {"W": np.full((1, 1), grad), "b": np.zeros(1)}
    return layer


def _run(optimizer, grads, weight=1.0):
    layer = _layer_with(weight, grads[0])
    for g in grads:
        layer.grads["W"][...] = g
        optimizer.step([layer])
    return float(layer.params["W"][0, 0])


def test_sgd_plain():
    """p <- p - lr g."""
    assert _run(SGD(lr=0.1), [0.5, 0.5]) == pytest.approx(1 - 0.05 - 0.05)


def test_sgd_momentum():
    """v1 = g1, v2 = mu v1 + g2, p <- p - lr v."""
    expected = 1.0 - 0.1 * 0.5 - 0.1 * (0.9 * 0.5 + 0.25)
    assert _run(SGD(lr=0.1, momentum=0.9), [0.5, 0.25]) == pytest.approx(expected)


def test_sgd_nesterov():
    """With Nesterov the step uses g + mu v."""
    v1 = 0.5
    p1 = 1.0 - 0.1 * (0.5 + 0.9 * v1)
    v2 = 0.9 * v1 + 0.25
    expected = p1 - 0.1 * (0.25 + 0.9 * v2)
    assert _run(SGD(lr=0.1, momentum=0.9, nesterov=True), [0.5, 0.25]) == pytest.approx(expected)


def test_sgd_weight_decay():
    """Weight decay adds wd p to the gradient (L2, as torch)."""
    assert _run(SGD(lr=0.1, weight_decay=0.1), [0.5], weight=2.0) == pytest.approx(2.0 - 0.1 * (0.5 + 0.2))


def test_adam_two_steps():
    """Adam's moments and bias correction over two steps, computed by hand."""
    b1, b2, lr, eps = 0.9, 0.999, 0.01, 1e-8
    p, m, v = 1.0, 0.0, 0.0
    for t, g in enumerate([0.5, -0.2], start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p -= lr / (1 - b1**t) * m / (math.sqrt(v) / math.sqrt(1 - b2**t) + eps)
    assert _run(Adam(lr=lr), [0.5, -0.2]) == pytest.approx(p, rel=1e-12)


def test_adam_first_step_moves_by_lr():
    """Bias correction makes Adam's first step exactly lr * sign(g) (up to eps)."""
    assert _run(Adam(lr=0.1), [123.0]) == pytest.approx(0.9, rel=1e-9)


def test_adamw_decays_the_weights_apart_from_the_moments():
    """AdamW: p <- p (1 - lr wd), then Adam's step without the decay in the gradient, computed by hand."""
    b1, b2, lr, eps, wd = 0.9, 0.999, 0.01, 1e-8, 0.5
    p, m, v = 2.0, 0.0, 0.0
    for t, g in enumerate([0.5, -0.2], start=1):
        p *= 1 - lr * wd
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p -= lr / (1 - b1**t) * m / (math.sqrt(v) / math.sqrt(1 - b2**t) + eps)
    assert _run(AdamW(lr=lr, weight_decay=wd), [0.5, -0.2], weight=2.0) == pytest.approx(p, rel=1e-12)
    assert AdamW().weight_decay == 0.01  # PyTorch's default


def test_optimizers_match_torch_when_installed():
    """SGD (Nesterov, weight decay), Adam (weight decay) and AdamW track torch.optim over 5 steps."""
    torch = pytest.importorskip("torch", reason="PyTorch is not installed; it is only an optional comparison")
    rng = np.random.default_rng(0)
    w0, grads = rng.standard_normal((3, 2)), rng.standard_normal((5, 3, 2))
    cases = [
        (SGD(0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
         lambda p: torch.optim.SGD([p], lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
        (Adam(0.01, weight_decay=0.01), lambda p: torch.optim.Adam([p], lr=0.01, weight_decay=0.01)),
        (AdamW(0.01, weight_decay=0.1), lambda p: torch.optim.AdamW([p], lr=0.01, weight_decay=0.1)),
        (AdamW(0.01), lambda p: torch.optim.AdamW([p], lr=0.01)),
    ]
    for ours, make_theirs in cases:
        layer = Dense(3, 2, rng=0).astype(np.float64)
        layer.params["W"][...] = w0
        param = torch.tensor(w0.copy(), requires_grad=True)
        theirs = make_theirs(param)
        for g in grads:
            layer.grads = {"W": g.copy(), "b": np.zeros(2)}
            ours.step([layer])
            param.grad = torch.tensor(g.copy())
            theirs.step()
        np.testing.assert_allclose(layer.params["W"], param.detach().numpy(), rtol=1e-10)


@pytest.mark.parametrize("build", [lambda: SGD(lr=-1), lambda: Adam(beta1=1.0), lambda: SGD(0.1, nesterov=True)])
def test_bad_hyper_parameters_are_rejected(build):
    """Negative rates, betas outside [0, 1) and Nesterov without momentum are errors."""
    with pytest.raises(ValueError):
        build()
