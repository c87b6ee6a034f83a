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


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW"])
def test_clip_norm_matches_torch_clip_grad_norm(name):
    """With clip_norm, every step equals torch.nn.utils.clip_grad_norm_ then the torch optimizer's step,
    on gradients whose global norm is above the bound at some steps and below it at others."""
    torch = pytest.importorskip("torch", reason="PyTorch is not installed; it is only an optional comparison")
    ours = {"SGD": lambda: SGD(0.1, momentum=0.9, clip_norm=1.0), "Adam": lambda: Adam(0.01, clip_norm=1.0),
            "AdamW": lambda: AdamW(0.01, clip_norm=1.0)}[name]()
    layers = [Dense(3, 2, rng=0).astype(np.float64), Dense(2, 4, rng=1).astype(np.float64)]
    places = [(layer, key) for layer in layers for key in layer.params]  # every parameter, two layers' worth
    tensors = [torch.tensor(layer.params[key].copy(), requires_grad=True) for layer, key in places]
    theirs = {"SGD": lambda: torch.optim.SGD(tensors, lr=0.1, momentum=0.9),
              "Adam": lambda: torch.optim.Adam(tensors, lr=0.01),
              "AdamW": lambda: torch.optim.AdamW(tensors, lr=0.01)}[name]()
    rng = np.random.default_rng(0)
    clipped = 0
    for size in (5.0, 0.01, 30.0, 0.2):  # global norms of about 20, 0.04, 120 and 0.8
        grads = [size * rng.standard_normal(layer.params[key].shape) for layer, key in places]
        for (layer, key), grad, tensor in zip(places, grads, tensors, strict=True):
            layer.grads[key] = grad.copy()
            tensor.grad = torch.tensor(grad)
        ours.step(layers)
        clipped += float(torch.nn.utils.clip_grad_norm_(tensors, 1.0)) > 1.0
        theirs.step()
        for (layer, key), grad, tensor in zip(places, grads, tensors, strict=True):
            np.testing.assert_array_equal(layer.grads[key], grad)  # the layers' gradients are left as they were
            np.testing.assert_allclose(layer.params[key], tensor.detach().numpy(), rtol=1e-10, atol=1e-12)
    assert 0 < clipped < 4  # both branches were taken


def test_clip_scale_shrinks_only_long_gradients():
    """The factor is 1 within the bound and bound/norm beyond it (the norm of all gradients together)."""
    optimizer = SGD(lr=0.1, clip_norm=2.0)
    assert optimizer.clip_scale([np.array([1.0, 0.0]), np.array([[1.0]])]) == 1.0  # norm sqrt(2) < 2
    assert optimizer.clip_scale([np.array([6.0, 0.0]), np.array([[8.0]])]) == pytest.approx(2.0 / 10.0)
    assert SGD(lr=0.1).clip_scale([np.array([1e9])]) == 1.0  # no clip_norm: no clipping


@pytest.mark.parametrize("clip_norm", [0, -1.0, float("inf"), "1"])
def test_bad_clip_norm_is_rejected(clip_norm):
    """clip_norm must be a positive finite number (or None)."""
    with pytest.raises((ValueError, TypeError), match="clip_norm"):
        Adam(clip_norm=clip_norm)


def test_clip_norm_survives_the_optimizer_state_dict():
    """clip_norm is part of the config that state_dict saves and load_state_dict restores."""
    restored = SGD(lr=0.5)
    restored.load_state_dict(SGD(lr=0.1, clip_norm=3.0).state_dict())
    assert restored.clip_norm == 3.0 and restored.lr == 0.1
