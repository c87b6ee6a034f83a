"""Sequential.gradients_at_inference: backward through the model as it predicts (running statistics, no dropout)."""

import numpy as np
import pytest
from test_engine import every_step

import tinynet
from tinynet.layers import BatchNorm1D, BatchNorm2D, Dense, Dropout, Flatten, ReLU, Residual


def _numerical_input_gradient(model, x, weights, step=1e-6):
    """d(sum(weights * model.forward(x)))/dx by central differences, one input value at a time."""
    grad = np.zeros_like(x)
    for index in np.ndindex(*x.shape):
        saved = x[index]
        x[index] = saved + step
        up = float((weights * model.forward(x)).sum())
        x[index] = saved - step
        down = float((weights * model.forward(x)).sum())
        x[index] = saved
        grad[index] = (up - down) / (2 * step)
    return grad


def _trained_statistics(model, x):
    """Move every BatchNorm's running statistics away from (0, 1), as a trained model's are."""
    for _ in range(3):
        model.forward(x * 2 + 0.5, training=True)


@pytest.mark.parametrize("build", [tinynet.models.cnn, every_step], ids=["cnn", "every_step"])
def test_the_input_gradient_is_that_of_the_predicting_model(build):
    """One image (BatchNorm1D could not train on it): the gradient matches finite differences of predict's function."""
    rng = np.random.default_rng(0)
    model = build(rng=0).astype(np.float64)
    _trained_statistics(model, rng.random((8, 1, 28, 28)))
    x = rng.random((1, 1, 28, 28))
    before = {name: array.copy() for name, array in model.state_dict().items()}
    with model.gradients_at_inference():
        y = model.forward(x)
        weights = rng.standard_normal(y.shape)
        analytic = model.backward(weights)
    np.testing.assert_allclose(y, model.forward(x), rtol=1e-12)  # inference behaviour: the same outputs
    for name, array in model.state_dict().items():  # no running statistics moved
        np.testing.assert_array_equal(array, before[name], err_msg=name)
    # 784 inputs: check a 6x6 patch in the middle of the digit
    x_patch = x[:, :, 11:17, 11:17]

    class Patch:
        @staticmethod
        def forward(patch):
            whole = x.copy()
            whole[:, :, 11:17, 11:17] = patch
            return model.forward(whole)
    numerical = _numerical_input_gradient(Patch, x_patch.copy(), weights)
    analytic = analytic[:, :, 11:17, 11:17]
    error = np.abs(analytic - numerical).max() / max(np.abs(numerical).max(), 1e-12)
    assert error < 1e-6


def test_parameter_gradients_at_inference_match_finite_differences():
    """BatchNorm's gamma and beta gradients at inference: dgamma = sum(g * x_hat), dbeta = sum(g)."""
    rng = np.random.default_rng(1)
    model = tinynet.Sequential([Dense(4, 3, rng=0), BatchNorm1D(3), ReLU(), Dropout(0.5, rng=0),
                                Residual(Dense(3, 3, rng=1), BatchNorm1D(3)), Dense(3, 2, rng=2)]).astype(np.float64)
    _trained_statistics(model, rng.standard_normal((16, 4)))
    x, weights = rng.standard_normal((2, 4)), rng.standard_normal((2, 2))
    with model.gradients_at_inference():
        model.forward(x)
        model.backward(weights)
    for layer in (model.layers[1], model.layers[4].layers[1]):
        for key, param in layer.params.items():
            numerical = np.zeros_like(param)
            for i in range(param.size):
                saved = param.flat[i]
                param.flat[i] = saved + 1e-6
                up = (weights * model.forward(x)).sum()
                param.flat[i] = saved - 1e-6
                down = (weights * model.forward(x)).sum()
                param.flat[i] = saved
                numerical.flat[i] = (up - down) / 2e-6
            np.testing.assert_allclose(layer.grads[key], numerical, rtol=1e-6, atol=1e-9, err_msg=key)


def test_outside_the_block_backward_needs_a_training_forward_again():
    """The recording ends with the block: an inference forward then keeps nothing, as before."""
    model = tinynet.Sequential([BatchNorm2D(1), Flatten(), Dense(4, 2, rng=0)])
    x = np.ones((1, 1, 2, 2), np.float32)
    attributes = [dict(vars(layer)) for layer in model.layers]
    with model.gradients_at_inference():
        model.backward(np.ones_like(model.forward(x)))
    assert [set(vars(layer)) for layer in model.layers] == [set(before) for before in attributes]
    with model.layer_by_layer(), pytest.raises(tinynet.NotTrainedForwardError):
        model.forward(x)
        model.backward(np.ones((1, 2), np.float32))


def _recorded_backward(model, x):
    """The input gradient of an inference forward and backward; a NotTrainedForwardError if nothing recorded."""
    with model.layer_by_layer():
        return model.backward(np.ones_like(model.forward(x)))


def test_the_block_nests_in_itself_and_records_until_the_outer_one_ends():
    """gradients_at_inference inside gradients_at_inference: both record; after the inner block the outer
    still does; after the outer, nothing does."""
    model = tinynet.Sequential([Dense(3, 4, rng=0), BatchNorm1D(4), ReLU(), Residual(Dense(4, 4, rng=1)),
                                Dense(4, 2, rng=2)])
    x = np.random.default_rng(0).standard_normal((1, 3)).astype(np.float32)
    with model.gradients_at_inference():
        outer = model.backward(np.ones_like(model.forward(x)))
        with model.gradients_at_inference():
            inner = _recorded_backward(model, x)
        after_inner = _recorded_backward(model, x)
    np.testing.assert_array_equal(inner, outer)
    np.testing.assert_array_equal(after_inner, outer)
    with pytest.raises(tinynet.NotTrainedForwardError):
        _recorded_backward(model, x)


def test_an_exception_inside_the_block_leaves_the_layers_as_they_were():
    """An error raised inside the block ends the recording and leaves no attribute on any layer, inner ones too."""
    model = tinynet.Sequential([Dense(3, 4, rng=0), BatchNorm1D(4), Residual(Dense(4, 4, rng=1), ReLU())])
    every = [*model.layers, *model.layers[2].layers]
    attributes = [set(vars(layer)) for layer in every]
    x = np.ones((1, 3), np.float32)
    with pytest.raises(KeyError, match="on purpose"), model.gradients_at_inference():
        model.forward(x)
        raise KeyError("on purpose")
    assert [set(vars(layer)) for layer in every] == attributes
    with pytest.raises(tinynet.NotTrainedForwardError):
        _recorded_backward(model, x)


def test_input_gradient_is_each_images_own_loss_gradient():
    """tinynet.input_gradient: batch by batch, each image's dL_i/dx_i, equal to a one-image backward."""
    rng = np.random.default_rng(2)
    model = tinynet.models.cnn(rng=0)
    _trained_statistics(model, rng.random((8, 1, 28, 28), dtype=np.float32))
    x, labels = rng.random((5, 1, 28, 28), dtype=np.float32), np.array([3, 1, 4, 1, 5])
    grads = tinynet.input_gradient(model, x, labels, batch_size=2)
    assert grads.shape == x.shape and grads.dtype == np.float32
    for i in range(len(x)):
        loss = tinynet.losses.SoftmaxCrossEntropy()
        with model.gradients_at_inference():
            loss.forward(model.forward(x[i:i + 1]), labels[i:i + 1])
            alone = model.backward(loss.backward())
        np.testing.assert_allclose(grads[i], alone[0], rtol=1e-4, atol=1e-7)
    with pytest.raises(tinynet.ArgumentError, match="labels in 0..9"):
        tinynet.input_gradient(model, x, np.array([3, 1, 4, 1, 50]))


def test_class_score_gradient_is_the_gradient_of_each_images_own_logit():
    """tinynet.class_score_gradient: d(logit c_i)/dx_i, equal to finite differences of the predicting model's logits."""
    rng = np.random.default_rng(3)
    model = tinynet.models.cnn(rng=0).astype(np.float64)
    _trained_statistics(model, rng.random((8, 1, 28, 28)))
    x, classes = rng.random((2, 1, 28, 28)), np.array([7, 2])
    grads = tinynet.class_score_gradient(model, x, classes, batch_size=1)
    assert grads.shape == x.shape and grads.dtype == np.float64
    weights = np.zeros((2, 10))
    weights[[0, 1], classes] = 1  # the sum of each image's own class score; the images do not interact
    with model.gradients_at_inference():
        numerical = _numerical_input_gradient(model, x.copy(), weights)
    np.testing.assert_allclose(grads, numerical, rtol=1e-6, atol=1e-8)
    with pytest.raises(tinynet.ArgumentError, match="0..9"):
        tinynet.class_score_gradient(model, x, np.array([3, 10]))


def test_the_loss_gradient_is_the_class_score_gradients_weighted_by_the_softmax_error():
    """dL/dx = sum_k (p_k - [k = t]) ds_k/dx: input_gradient and class_score_gradient agree through the softmax."""
    rng = np.random.default_rng(4)
    model = tinynet.models.basic_mlp(rng=0).astype(np.float64)
    x, labels = rng.random((3, 1, 28, 28)), np.array([0, 5, 9])
    error = model.predict(x) - np.eye(10)[labels]
    scores = np.stack([tinynet.class_score_gradient(model, x, np.full(3, k)) for k in range(10)], axis=1)
    combined = np.einsum("nk,nk...->n...", error, scores)
    np.testing.assert_allclose(tinynet.input_gradient(model, x, labels), combined, rtol=1e-9, atol=1e-12)


def test_recording_a_layer_records_its_inner_layers_and_nothing_else():
    """recording_at_inference([residual]): the Residual and its inner layers keep their values; others do not."""
    from tinynet.layers.base import recording_at_inference

    block, other = Residual(Dense(3, 3, rng=0), ReLU()), ReLU()
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    with recording_at_inference([block]):
        block.forward(x)
        other.forward(x)
    assert block.backward(np.ones((2, 3), np.float32)).shape == (2, 3)
    with pytest.raises(tinynet.NotTrainedForwardError):
        other.backward(np.ones((2, 3), np.float32))


def test_no_code_sets_the_old_recording_attribute():
    """Recording is recording_at_inference's alone: a layer attribute named record_at_inference would be ignored,
    so no module of tinynet may set one (code written before the change would silently stop recording)."""
    from pathlib import Path

    root = Path(tinynet.__file__).parent
    setters = [str(path.relative_to(root)) for path in root.rglob("*.py") if ".record_at_inference" in path.read_text()]
    assert not setters, f"{setters} set record_at_inference; use tinynet.layers.base.recording_at_inference"
