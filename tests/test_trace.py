"""Trace mode: per-layer gradient norms and activation statistics, and the vanishing gradients they reveal."""

import numpy as np
import pytest

import tinynet
from tinynet.layers import Dense, ReLU, Sigmoid


def _data(n=512, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 16)).astype(np.float32)
    y = (x[:, :4].sum(axis=1) > 0).astype(np.int64) + 2 * (x[:, 4] > 0)
    return x, y


def _deep(activation, depth=6, width=32, seed=0):
    layers, features = [], 16
    for position in range(depth):
        layers += [Dense(features, width, init="glorot_uniform", rng=seed + position), activation()]
        features = width
    return tinynet.Sequential([*layers, Dense(width, 4, rng=seed + depth)])


def _first_to_last_ratio(history):
    frame = history.trace_frame().dropna(subset=["grad_norm"])
    last_epoch = frame[frame.epoch == frame.epoch.max()]
    norms = last_epoch.grad_norm.to_numpy()
    return norms[0] / norms[-1]


def test_trace_records_every_layer_every_epoch():
    """One record per layer and epoch, gradient norms for parametric layers only, zeros of ReLU counted."""
    model = tinynet.Sequential([Dense(16, 8, rng=0), ReLU(), Dense(8, 4, rng=1)])
    history = model.fit(*_data(), epochs=3, verbose=0, seed=0, trace=True)
    frame = history.trace_frame()
    assert len(frame) == 3 * 3
    assert list(frame[frame.epoch == 1].layer) == ["0 Dense", "1 ReLU", "2 Dense"]
    assert frame[frame.layer == "1 ReLU"].grad_norm.isna().all()
    assert (frame[frame.layer != "1 ReLU"].grad_norm > 0).all()
    relu = frame[frame.layer == "1 ReLU"]
    assert ((relu.zero_fraction > 0) & (relu.zero_fraction < 1)).all()


def test_trace_shows_vanishing_gradients_with_sigmoid_not_relu():
    """A 6-layer Sigmoid stack: first-layer gradients far below the last layer's; ReLU keeps them close."""
    sigmoid = _deep(Sigmoid).fit(*_data(), epochs=2, verbose=0, seed=0, trace=True)
    relu = _deep(ReLU).fit(*_data(), epochs=2, verbose=0, seed=0, trace=True)
    assert _first_to_last_ratio(sigmoid) < 0.05
    assert _first_to_last_ratio(relu) > 5 * _first_to_last_ratio(sigmoid)
    frame = sigmoid.trace_frame()
    is_sigmoid = frame.layer.str.endswith("Sigmoid")
    assert frame[is_sigmoid].saturated_fraction.between(0, 1).all()
    assert frame[~is_sigmoid].saturated_fraction.isna().all()


def test_no_trace_is_a_clear_error_and_tracing_changes_no_weight():
    """trace_frame without trace=True says how to get one; tracing does not change what is learned."""
    plain, traced = _deep(ReLU, depth=2), _deep(ReLU, depth=2)
    history = plain.fit(*_data(), epochs=2, verbose=0, seed=0)
    traced.fit(*_data(), epochs=2, verbose=0, seed=0, trace=True)
    with pytest.raises(ValueError, match="trace=True"):
        history.trace_frame()
    for key, value in plain.params.items():
        np.testing.assert_array_equal(traced.params[key], value)


def test_gradient_norm_plot_is_written(tmp_path):
    """Gradient norm plot is written."""
    history = _deep(Sigmoid, depth=3).fit(*_data(), epochs=2, verbose=0, seed=0, trace=True)
    from tinynet import plots

    path = plots.gradient_norms(history, tmp_path / "norms.png")
    assert path.stat().st_size > 5000
