"""BatchNorm1D and BatchNorm2D: the statistics, the running buffers, PyTorch's numbers, clear errors."""

import numpy as np
import pytest

import tinynet
from tests.strategies import layer_by_layer
from tinynet.layers import BatchNorm1D, BatchNorm2D, Conv2D, Dense, Flatten, MaxPool2D, ReLU


def test_training_normalises_with_the_batch_and_updates_the_running_statistics():
    """Zero mean, unit (biased) variance per feature; running = 0.9 running + 0.1 batch (unbiased variance)."""
    x = np.random.default_rng(0).standard_normal((16, 3)) * [1.0, 5.0, 0.1] + [0.0, 3.0, -2.0]
    layer = BatchNorm1D(3).astype(np.float64)
    y = layer.forward(x, training=True)
    np.testing.assert_allclose(y.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=0), x.var(axis=0) / (x.var(axis=0) + 1e-5), rtol=1e-10)
    np.testing.assert_allclose(layer.running_mean, 0.1 * x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(layer.running_var, 0.9 + 0.1 * x.var(axis=0, ddof=1), rtol=1e-12)


def test_inference_uses_the_running_statistics():
    """Inference uses the running statistics."""
    layer = BatchNorm2D(2).astype(np.float64)
    layer.buffers["running_mean"][...] = [1.0, -1.0]
    layer.buffers["running_var"][...] = [4.0, 0.25]
    layer.params["gamma"][...] = [2.0, 1.0]
    layer.params["beta"][...] = [0.5, 0.0]
    x = np.random.default_rng(1).standard_normal((3, 2, 2, 2))
    expected = (x - np.array([1.0, -1.0])[:, None, None]) / np.sqrt(np.array([4.0, 0.25]) + 1e-5)[:, None, None]
    expected = expected * np.array([2.0, 1.0])[:, None, None] + np.array([0.5, 0.0])[:, None, None]
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-12)
    assert np.array_equal(layer.running_mean, [1.0, -1.0])  # inference changes no statistic


@pytest.mark.parametrize("layer, shape", [(BatchNorm1D(4), (6, 4)), (BatchNorm2D(3), (2, 3, 4, 5))])
def test_gradients_pass_gradcheck_with_trained_scale_and_shift(layer, shape):
    """The compact backward against central differences in float64, gamma and beta away from 1 and 0."""
    rng = np.random.default_rng(2)
    layer.params["gamma"][...] = rng.uniform(0.5, 2.0, layer.num_features)
    layer.params["beta"][...] = rng.standard_normal(layer.num_features)
    result = tinynet.gradcheck(layer, rng.standard_normal(shape) * 3 + 1)
    assert result.passed(1e-6), str(result)
    assert set(result.errors) == {"input", "gamma", "beta"}


def test_equal_to_pytorch_in_float64():
    """Forward, every gradient, running statistics and the eval output, against torch.nn.BatchNorm1d/2d."""
    torch = pytest.importorskip("torch", reason="PyTorch is not installed; it is only an optional comparison")
    rng = np.random.default_rng(3)
    for ours, theirs, shape in [(BatchNorm1D(5, momentum=0.3), torch.nn.BatchNorm1d(5, momentum=0.3), (7, 5)),
                                (BatchNorm2D(3, eps=1e-3), torch.nn.BatchNorm2d(3, eps=1e-3), (4, 3, 5, 6))]:
        ours.astype(np.float64)
        theirs = theirs.double()
        gamma, beta = rng.uniform(0.5, 2, ours.num_features), rng.standard_normal(ours.num_features)
        ours.params["gamma"][...], ours.params["beta"][...] = gamma, beta
        with torch.no_grad():
            theirs.weight.copy_(torch.from_numpy(gamma))
            theirs.bias.copy_(torch.from_numpy(beta))
        for _ in range(2):  # two training steps: the running statistics move twice
            x, grad = rng.standard_normal(shape) * 2 + 1, rng.standard_normal(shape)
            x_torch = torch.from_numpy(x).requires_grad_(True)
            theirs.train()
            out = theirs(x_torch)
            out.backward(torch.from_numpy(grad))
            np.testing.assert_allclose(ours.forward(x, training=True), out.detach().numpy(), rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(ours.backward(grad), x_torch.grad.numpy(), rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(ours.grads["gamma"], theirs.weight.grad.numpy(), rtol=1e-9)
            np.testing.assert_allclose(ours.grads["beta"], theirs.bias.grad.numpy(), rtol=1e-9)
            theirs.weight.grad = theirs.bias.grad = None
            np.testing.assert_allclose(ours.running_mean, theirs.running_mean.numpy(), rtol=1e-12)
            np.testing.assert_allclose(ours.running_var, theirs.running_var.numpy(), rtol=1e-12)
        theirs.eval()
        x = rng.standard_normal(shape)
        with torch.no_grad():
            np.testing.assert_allclose(ours.forward(x), theirs(torch.from_numpy(x)).numpy(), rtol=1e-10)


def test_running_statistics_are_saved_and_loaded(tmp_path):
    """Buffers travel with the model: a loaded model predicts exactly like the trained one."""
    rng = np.random.default_rng(4)
    x, y = rng.random((64, 1, 8, 8), dtype=np.float32), rng.integers(0, 3, 64)
    model = tinynet.Sequential([Conv2D(1, 4, 3, rng=0), BatchNorm2D(4), ReLU(), MaxPool2D(2), Flatten(),
                                Dense(36, 8, rng=1), BatchNorm1D(8), ReLU(), Dense(8, 3, rng=2)])
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, seed=0)
    assert "1.running_mean" in model.state_dict() and "6.running_var" in model.state_dict()
    assert not np.array_equal(model[1].running_mean, np.zeros(4))
    model.save(tmp_path / "bn.npz")
    loaded = tinynet.load_model(tmp_path / "bn.npz")
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    np.testing.assert_array_equal(loaded[6].running_var, model[6].running_var)


def test_the_plan_runs_batchnorm2d_channels_last_with_the_same_results():
    """Inside a model BatchNorm2D sees NHWC activations; outputs and gradients equal the layers one by one."""
    rng = np.random.default_rng(5)
    model = tinynet.Sequential([Conv2D(1, 3, 3, rng=0), BatchNorm2D(3), ReLU(), MaxPool2D(2), Flatten(),
                                Dense(27, 2, rng=1)]).astype(np.float64)
    assert "1 BatchNorm2D (NHWC)" in [step.describe() for step in model.execution_plan()]
    x, grad = rng.random((4, 1, 8, 8)), rng.standard_normal((4, 2))
    out, grad_x = model.forward(x, training=True), model.backward(grad)
    grads = {key: value.copy() for key, value in model[1].grads.items()}
    expected, expected_grad = layer_by_layer(model.layers, x, grad)
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    np.testing.assert_allclose(grad_x, expected_grad, rtol=1e-10, atol=1e-14)
    for key, value in grads.items():
        np.testing.assert_allclose(value, model[1].grads[key], rtol=1e-10)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: BatchNorm1D(4, momentum=0), r"momentum in \(0, 1\].*momentum=0"),
        (lambda: BatchNorm1D(4, momentum=1.5), r"momentum=1\.5"),
        (lambda: BatchNorm2D(4, eps=0), "eps > 0.*eps=0"),
        (lambda: BatchNorm2D(4, eps=-1e-5), "eps > 0"),
        (lambda: BatchNorm2D(0), "num_channels"),
    ],
)
def test_bad_settings_name_the_argument(build, message):
    """Bad settings name the argument."""
    with pytest.raises(ValueError, match=message):
        build()


def test_bad_inputs_are_clear_errors_and_change_nothing():
    """A channel count that does not match, or one value per channel in training: the weights stay as they were."""
    layer = BatchNorm2D(3)
    before = {key: value.copy() for key, value in layer.state_dict().items()}
    with pytest.raises(tinynet.ShapeError, match=r"BatchNorm2D\(3\) expects 3 channels.*BatchNorm2D\(2\)"):
        layer.forward(np.zeros((4, 2, 5, 5), np.float32), training=True)
    with pytest.raises(ValueError, match="more than one value per channel.*got 1"):
        layer.forward(np.zeros((1, 3, 1, 1), np.float32), training=True)
    with pytest.raises(ValueError, match="more than one value per feature.*got 1"):
        BatchNorm1D(3).forward(np.zeros((1, 3), np.float32), training=True)
    assert all(np.array_equal(layer.state_dict()[key], value) for key, value in before.items())
