"""The batch in parts on threads (tinynet.engine.parallel): the parts' results are the whole batch's."""

import threading

import numpy as np
import pytest
from test_engine import _assert_same, _run, backend  # noqa: F401  (backend is a fixture)

import tinynet
from tinynet.engine import parallel
from tinynet.layers import LSTM, Dense


@pytest.fixture
def two_blas_threads(monkeypatch):
    """Two parts whatever this machine's BLAS has (the split is tested, not the machine)."""
    monkeypatch.setattr(parallel, "_blas_threads", lambda: 2)


def test_batch_parts_cover_the_batch_once(two_blas_threads):
    for n in (1, 15, 16, 17, 128, 1001):
        parts = parallel.batch_parts(n)
        covered = np.concatenate([np.arange(n)[part] for part in parts])
        np.testing.assert_array_equal(covered, np.arange(n))
        assert len(parts) == (2 if n >= 2 * parallel.MIN_PART else 1)


def test_one_blas_thread_means_one_part(monkeypatch):
    monkeypatch.setattr(parallel, "_blas_threads", lambda: 1)
    assert parallel.batch_parts(1000) == [slice(0, 1000)]


def test_run_in_parts_runs_every_part_and_passes_errors_on(two_blas_threads):
    threads = set()

    def work(part):
        threads.add(threading.get_ident())
        return part.stop - part.start

    assert parallel.run_in_parts(work, parallel.batch_parts(40)) == [20, 20]
    assert len(threads) == 2

    def fails(part):
        raise ValueError(f"part {part.start}")

    with pytest.raises(ValueError, match="part"):
        parallel.run_in_parts(fails, parallel.batch_parts(40))


@pytest.mark.parametrize("dtype, tolerance", [(np.float64, 1e-10), (np.float32, 1e-5)])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_the_lstm_step_in_parts_computes_the_layers_values(two_blas_threads, backend, dtype, tolerance,  # noqa: F811
                                                           return_sequences):
    """A batch of 37 in two parts: output, input gradient, every gradient and the state gradients are the layer's."""
    rng = np.random.default_rng(3)
    layers = [LSTM(5, 7, return_sequences, rng=1)] + ([] if return_sequences else [Dense(7, 3, rng=2)])
    model = tinynet.Sequential(layers).astype(dtype)
    x = rng.standard_normal((37, 6, 5)).astype(dtype)
    assert len(parallel.batch_parts(len(x))) == 2
    grad = rng.standard_normal(model.forward(x).shape).astype(dtype)
    engine = _run(model, x, grad, by_layer=False)
    engine_hidden = model.layers[0].hidden_grads
    by_layer = _run(model, x, grad, by_layer=True)
    _assert_same(engine, by_layer, rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(engine_hidden, model.layers[0].hidden_grads, rtol=tolerance, atol=tolerance)
    with model.layer_by_layer():
        expected = model.forward(x)  # inference: the layers' own code
    np.testing.assert_allclose(model.forward(x), expected, rtol=tolerance, atol=tolerance)  # inference, in parts



@pytest.fixture
def two_real_blas_threads():
    """The BLAS on two threads for the test (where it can have two: one core gives one, and nothing to test)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(2, user_api="blas"):
        if parallel._blas_threads() < 2:
            pytest.skip("this BLAS runs on one thread here (one core): no second thread to keep idle")
        yield


def _running_blas_threads():
    """The thread count the BLAS runs on at this moment (``parallel._blas_threads`` says what it had before a hold)."""
    from threadpoolctl import threadpool_info

    return min(info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas")


def test_inside_products_on_one_thread_the_blas_has_one_and_the_parts_are_as_before(two_real_blas_threads):
    with parallel.products_on_one_thread():
        inside = _running_blas_threads(), parallel._blas_threads(), len(parallel.batch_parts(64))
        with parallel.products_on_one_thread():  # nested: the same
            nested = _running_blas_threads(), parallel._blas_threads(), len(parallel.batch_parts(64))
    assert inside == nested == (1, 2, 2)
    assert _running_blas_threads() == parallel._blas_threads() == 2 and len(parallel.batch_parts(64)) == 2


def _blas_threads_seen_by_dense(monkeypatch, model, x):
    """The BLAS thread counts during the Dense steps' products of a training forward and backward."""
    from tinynet.engine import steps

    seen = []
    for name in ("affine", "dense_grads"):
        original = getattr(steps, name)
        monkeypatch.setattr(steps, name, lambda *args, original=original: seen.append(_running_blas_threads())
                            or original(*args))
    y = model.forward(x, training=True)
    model.backward(np.ones_like(y))
    return seen


def test_a_plan_with_a_step_in_parts_runs_every_product_on_one_blas_thread(two_real_blas_threads, monkeypatch):
    """An LSTM's plan: the Dense after it multiplies on one BLAS thread, forward and backward, so no BLAS
    thread is left spinning beside the LSTM's parts. A plan without parts holds the BLAS to one thread
    where the engine's products run in register tiles (their threads would spin beside the BLAS's), and
    leaves it as it is elsewhere and for batches too small to tile."""
    x = np.random.default_rng(0).standard_normal((40, 5, 3)).astype(np.float32)
    recurrent = tinynet.Sequential([LSTM(3, 4, rng=0), Dense(4, 2, rng=0)])
    assert _blas_threads_seen_by_dense(monkeypatch, recurrent, x) == [1, 1]
    feed_forward = tinynet.Sequential([Dense(3, 4, rng=0), Dense(4, 2, rng=0)])
    held = 1 if tinynet.kernels.TILES_WIN_EVERYWHERE else 2  # with AVX2 training keeps the BLAS's products
    assert _blas_threads_seen_by_dense(monkeypatch, feed_forward, x[:, 0]) == [held] * 4
    small = tinynet.kernels.MIN_TILED_BATCH - 1
    assert _blas_threads_seen_by_dense(monkeypatch, feed_forward, x[:small, 0]) == [2] * 4
    assert _running_blas_threads() == parallel._blas_threads() == 2


def test_a_prediction_holds_the_blas_where_the_tiles_win_on_its_plan(two_real_blas_threads, monkeypatch):
    """With AVX-512 the tiles win on every product, with AVX2 on a prediction's convolutions only
    (``kernels.tiles_win``): a convnet's prediction holds the BLAS to one thread wherever the tiles run (as its
    Dense step multiplies), an MLP's only where they win everywhere, and a batch too small to tile never."""
    from tinynet.engine import inference
    from tinynet.layers import Conv2D, Flatten, ReLU

    seen = []
    monkeypatch.setattr(inference, "matmul", lambda *args, original=inference.matmul, **kwargs:
                        seen.append(_running_blas_threads()) or original(*args, **kwargs))
    x = np.random.default_rng(0).random((tinynet.kernels.MIN_TILED_BATCH, 1, 6, 6), dtype=np.float32)
    convnet = tinynet.Sequential([Conv2D(1, 4, 3, rng=0), ReLU(), Flatten(), Dense(64, 3, rng=0)])
    mlp = tinynet.Sequential([Flatten(), Dense(36, 8, rng=0), ReLU(), Dense(8, 3, rng=0)])
    kernels = tinynet.kernels
    for model, held in ((convnet, kernels.TILED_PRODUCTS), (mlp, kernels.TILES_WIN_EVERYWHERE)):
        for batch, threads in ((x, 1 if held else 2), (x[:-1], 2)):
            seen.clear()
            model.predict(batch)
            assert seen and set(seen) == {threads}, (model.layers, len(batch), seen)
    with kernels.blas.held_to_one_thread(), kernels.blas.single_thread_products():  # as in a part of a batch
        assert kernels._convolution_threads(1) == (1 if kernels.TILES_WIN_EVERYWHERE else 0)  # AVX2: the BLAS's
    assert kernels.tiles_win(training=False, convolves=True) == kernels.TILED_PRODUCTS
    assert kernels.tiles_win(training=True, convolves=True) == kernels.tiles_win(False, False) == \
        kernels.TILES_WIN_EVERYWHERE
    assert _running_blas_threads() == 2


def _small_transformer(causal=False):
    """A vision transformer in miniature, float64: every kind of layer a split plan runs."""
    from tinynet.layers import (
        GELU,
        GlobalAvgPool1D,
        LayerNorm,
        MultiHeadAttention,
        Patches,
        PositionalEmbedding,
        Residual,
    )

    return tinynet.Sequential([
        Patches(7), Dense(49, 8, rng=0), PositionalEmbedding(16, 8, rng=1),
        Residual(LayerNorm(8), MultiHeadAttention(8, 2, causal, rng=2)),
        Residual(LayerNorm(8), Dense(8, 12, rng=3), GELU(), Dense(12, 8, rng=4)),
        LayerNorm(8), GlobalAvgPool1D(), Dense(8, 3, rng=5)]).astype(np.float64)


def _every_grad(model):
    return {(position, key): value.copy() for position, layer in enumerate(model.layers)
            for key, value in layer.grads.items()}


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("batch", [17, 40])
def test_a_transformers_training_plan_in_parts_computes_what_its_layers_compute(two_blas_threads, batch, causal):
    """Two parts, each through a plan of its own (shadows of the layers sharing their weights): the output,
    every weight gradient (the parts' sums added), the input gradient and the attention weights of every
    sample are the layers' own, in float64."""
    model = _small_transformer(causal)
    x = np.random.default_rng(0).random((batch, 1, 28, 28))
    grad = np.random.default_rng(1).standard_normal((batch, 3))
    y = model.forward(x, training=True)
    assert model._engine._split.ran_last_forward()
    grad_x = model.backward(grad)
    grads, weights = _every_grad(model), model.layers[3].layers[1].attention.copy()
    with model.layer_by_layer():
        expected_y = model.forward(x, training=True)
        expected_grad_x = model.backward(grad)
    np.testing.assert_allclose(y, expected_y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grad_x, expected_grad_x, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(weights, model.layers[3].layers[1].attention, rtol=1e-12, atol=1e-12)
    expected = _every_grad(model)
    assert grads.keys() == expected.keys()
    for key, value in expected.items():
        np.testing.assert_allclose(grads[key], value, rtol=1e-10, atol=1e-12, err_msg=str(key))
    model.forward(x, training=True)
    assert model.backward(grad, input_grad=False) is None  # the first Dense skips dX, in both parts
    for key, value in expected.items():
        np.testing.assert_allclose(model.layers[key[0]].grads[key[1]], value, rtol=1e-10, atol=1e-12)


def test_the_parts_see_weights_changed_by_hand_and_a_small_batch_runs_whole(two_blas_threads):
    model = _small_transformer()
    x = np.random.default_rng(0).random((20, 1, 28, 28))
    model.forward(x, training=True)
    head = model.layers[-1]
    head.params["W"] = head.params["W"] * 2  # a new array, not the one the parts' shadows held
    head.params["b"][...] = 1.0
    y = model.forward(x, training=True)
    with model.layer_by_layer():
        np.testing.assert_allclose(y, model.forward(x, training=True), rtol=1e-12, atol=1e-12)
    model.forward(x[:5], training=True)  # fewer than two parts' worth: one plan, as written
    assert not model._engine._split.ran_last_forward()
    assert model.backward(np.ones((5, 3))).shape == (5, 1, 28, 28)


def test_a_backward_after_a_prediction_refuses_in_parts_too(two_blas_threads):
    model = _small_transformer()
    x = np.random.default_rng(0).random((20, 1, 28, 28))
    model.forward(x, training=True)
    model.forward(x)  # a prediction: the training forward is no longer the model's last
    with pytest.raises(tinynet.errors.NotTrainedForwardError, match="no values from a training forward"):
        model.backward(np.ones((20, 3)))


def test_only_models_whose_layers_keep_samples_apart_and_have_attention_split():
    from tinynet.engine.split import splits
    from tinynet.layers import BatchNorm1D, Dropout

    assert splits(_small_transformer().layers) and splits(tinynet.models.vit(rng=0).layers)
    for name in ("basic_mlp", "small_cnn", "cnn", "lstm_rows"):
        assert not splits(getattr(tinynet.models, name)(rng=0).layers), name
    layers = list(_small_transformer().layers)
    assert not splits(layers[:-1] + [BatchNorm1D(8)])  # mixes samples in training
    assert not splits(layers[:-1] + [Dropout(0.1)])  # one generator, in batch order
    assert not splits([Dense(3, 3, rng=0)])  # no attention: one plan does as well


def test_a_large_batch_predicted_in_parts_of_chunks_is_the_layers_prediction(two_blas_threads, monkeypatch):
    """More than two chunks of a transformer's batch at inference: the parts (each in chunks) give the layers'
    outputs and every sample's attention weights, in order."""
    from tinynet.engine.attention import AttentionStep

    monkeypatch.setattr(AttentionStep, "inference_chunk", 4)
    model = _small_transformer(causal=True)
    x = np.random.default_rng(0).random((21, 1, 28, 28))
    y = model.forward(x)
    assert model._engine._inference_split._last is not None  # it ran in parts
    weights = model.layers[3].layers[1].attention.copy()
    with model.layer_by_layer():
        np.testing.assert_allclose(y, model.forward(x), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(weights, model.layers[3].layers[1].attention, rtol=1e-12, atol=1e-12)
    from tinynet.engine.split import PlanInParts

    calls, original = [], PlanInParts.forward
    monkeypatch.setattr(PlanInParts, "forward", lambda self, x, *rest: calls.append(len(x)) or original(self, x, *rest))
    model.forward(x[:8])  # two chunks or fewer: no parts
    model.forward(x)
    assert calls == [21]
