"""Export: ONNX (run by onnxruntime) and PyTorch give model.forward's outputs, for every layer type."""

import numpy as np
import pytest

import tinynet
from tinynet import layers as L
from tinynet.export import ExportError, to_onnx, to_torch


def every_layer_model():
    """A model using every layer type, trained a little so BatchNorm's running statistics are not the defaults."""
    model = tinynet.Sequential([
        L.Conv2D(1, 4, 3, padding=1, rng=0), L.BatchNorm2D(4), L.ReLU(), L.MaxPool2D(2),
        L.Residual(L.Conv2D(4, 4, 3, padding=1, rng=6), L.BatchNorm2D(4), L.ReLU(),
                   L.Residual(L.Conv2D(4, 4, 1, rng=7))),
        L.Conv2D(4, 6, 3, stride=2, rng=1), L.LeakyReLU(0.1), L.AvgPool2D(2, stride=1),
        L.Reshape((6, -1)), L.Dense(4, 4, rng=8),
        L.Flatten(), L.Dropout(0.3, rng=2), L.Dense(24, 16, rng=3), L.BatchNorm1D(16), L.Tanh(),
        L.Dense(16, 10, rng=4), L.Sigmoid(), L.Dense(10, 10, rng=5), L.Softmax(),
    ])
    rng = np.random.default_rng(0)
    x, y = rng.random((64, 1, 16, 16), dtype=np.float32), rng.integers(0, 10, 64)
    model.fit(x, y, epochs=1, batch_size=16, verbose=0, seed=0, loss="mse")
    return model, rng.random((7, 1, 16, 16), dtype=np.float32)


def test_onnx_graph_runs_in_onnxruntime_with_the_same_outputs(tmp_path):
    """Onnx graph runs in onnxruntime with the same outputs."""
    onnx = pytest.importorskip("onnx", reason="onnx is in the export extra: pip install -e '.[export]'")
    onnxruntime = pytest.importorskip("onnxruntime", reason="onnxruntime is in the export extra")
    model, x = every_layer_model()
    path = tmp_path / "model.onnx"
    with pytest.raises(ExportError, match=r"input_shape=\(C, H, W\)"):  # the default, an MNIST image, does not fit
        to_onnx(model, path)
    to_onnx(model, path, input_shape=(1, 16, 16))
    proto = onnx.load(path)
    onnx.checker.check_model(proto)
    assert proto.opset_import[0].version == 17 and proto.ir_version == 8
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (x, x[:1]):  # the batch axis is dynamic
        ours = model.forward(batch)
        theirs = session.run(None, {"input": batch})[0]
        np.testing.assert_allclose(theirs, ours, atol=1e-4)
        print("ONNX max abs error:", float(np.abs(theirs - ours).max()))


def test_torch_module_gives_the_same_outputs():
    """Torch module gives the same outputs."""
    torch = pytest.importorskip("torch", reason="PyTorch is in the export extra: pip install -e '.[export]'")
    model, x = every_layer_model()
    module = to_torch(model)
    assert not module.training
    with torch.no_grad():
        theirs = module(torch.from_numpy(x)).numpy()
    ours = model.forward(x)
    np.testing.assert_allclose(theirs, ours, atol=1e-4)
    print("PyTorch max abs error:", float(np.abs(theirs - ours).max()))


def test_a_layer_without_a_mapping_is_named(tmp_path):
    """A layer without a mapping is named."""
    pytest.importorskip("onnx", reason="onnx is in the export extra")

    class Square(L.Layer):
        def forward(self, x, training=False):
            return x * x

    model = tinynet.Sequential([L.Flatten(), Square()])
    with pytest.raises(ExportError, match="Layer 1 \\(Square\\) has no ONNX mapping"):
        to_onnx(model, tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []  # nothing half-written


@pytest.mark.parametrize("build", [tinynet.models.cnn, tinynet.models.vit], ids=lambda build: build.__name__)
def test_the_mnist_models_export_with_the_default_input_shape(build, tmp_path):
    """cnn() and vit() export for MNIST images as they are, and ONNX Runtime agrees with them."""
    pytest.importorskip("onnx", reason="onnx is in the export extra")
    onnxruntime = pytest.importorskip("onnxruntime", reason="onnxruntime is in the export extra")
    model = build(rng=0)
    to_onnx(model, tmp_path / "model.onnx")
    x = np.random.default_rng(1).random((3, 1, 28, 28), dtype=np.float32)
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"input": x})[0], model.forward(x), rtol=1e-4, atol=1e-4)


def recurrent_model(kind):
    """Two recurrent layers, returning every step and then the last one, and a Dense; with an input."""
    model = tinynet.Sequential([kind(12, 5, return_sequences=True, rng=0), kind(5, 6, rng=1), L.Dense(6, 3, rng=2)])
    for layer in model.layers[:2]:  # biases larger than the initial ones, so a gate mixed up shows
        layer.params["b"][...] = np.random.default_rng(3).uniform(-1, 1, layer.params["b"].shape)
    return model, np.random.default_rng(4).standard_normal((5, 9, 12)).astype(np.float32)


@pytest.mark.parametrize("kind", [L.RNN, L.LSTM])
def test_recurrent_layers_run_in_onnxruntime_with_the_same_outputs(kind, tmp_path):
    """RNN and LSTM (gates reordered to ONNX's i, o, f, c; time-first transposes) give model.forward's outputs."""
    pytest.importorskip("onnx", reason="onnx is in the export extra")
    onnxruntime = pytest.importorskip("onnxruntime", reason="onnxruntime is in the export extra")
    model, x = recurrent_model(kind)
    to_onnx(model, tmp_path / "recurrent.onnx", input_shape=(9, 12))
    session = onnxruntime.InferenceSession(str(tmp_path / "recurrent.onnx"), providers=["CPUExecutionProvider"])
    for batch in (x, x[:1]):
        np.testing.assert_allclose(session.run(None, {"input": batch})[0], model.forward(batch), atol=1e-5)


@pytest.mark.parametrize("kind", [L.RNN, L.LSTM])
def test_recurrent_layers_give_the_same_outputs_in_torch(kind):
    """RNN and LSTM as nn.RNN/nn.LSTM(batch_first=True), the last step taken unless return_sequences."""
    torch = pytest.importorskip("torch", reason="PyTorch is in the export extra: pip install -e '.[export]'")
    model, x = recurrent_model(kind)
    with torch.no_grad():
        np.testing.assert_allclose(to_torch(model)(torch.from_numpy(x)).numpy(), model.forward(x), atol=1e-5)


def transformer_model():
    """Every layer of the transformer family: patches, embedding, plain and causal attention, both GELUs."""
    model = tinynet.Sequential([
        L.Patches(4), L.Dense(16, 8, rng=0), L.PositionalEmbedding(9, 8, rng=1),
        L.Residual(L.LayerNorm(8), L.MultiHeadAttention(8, 2, rng=2)),
        L.Residual(L.LayerNorm(8), L.Dense(8, 12, rng=3), L.GELU(), L.Dense(12, 8, rng=4)),
        L.Residual(L.LayerNorm(8, eps=1e-3), L.MultiHeadAttention(8, 4, causal=True, rng=5)),
        L.GELU("tanh"), L.LayerNorm(8), L.GlobalAvgPool1D(), L.Dense(8, 5, rng=6),
    ])
    rng = np.random.default_rng(0)
    for layer in (model[3].layers[0], model[7]):  # LayerNorm's gamma and beta away from ones and zeros
        layer.params["gamma"][...] = rng.uniform(0.5, 1.5, 8)
        layer.params["beta"][...] = rng.standard_normal(8)
    for name in "qkvo":
        model[3].layers[1].params[f"b_{name}"][...] = rng.standard_normal(8) * 0.3
    return model, rng.random((6, 1, 12, 12), dtype=np.float32)


def test_transformer_layers_export_to_onnx_and_torch(tmp_path):
    """LayerNorm, GELU (both forms), attention (plain and causal), Patches, PositionalEmbedding, GlobalAvgPool1D
    and Dense on sequences: ONNX Runtime and PyTorch give model.forward's outputs to float32 precision."""
    onnxruntime = pytest.importorskip("onnxruntime", reason="onnxruntime is in the export extra")
    pytest.importorskip("onnx", reason="onnx is in the export extra")
    torch = pytest.importorskip("torch", reason="PyTorch is in the export extra")
    model, x = transformer_model()
    ours = model.forward(x)
    to_onnx(model, tmp_path / "t.onnx", input_shape=(1, 12, 12))
    session = onnxruntime.InferenceSession(str(tmp_path / "t.onnx"), providers=["CPUExecutionProvider"])
    for batch, expected in ((x, ours), (x[:1], ours[:1])):
        np.testing.assert_allclose(session.run(None, {"input": batch})[0], expected, rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        theirs = to_torch(model)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(theirs, ours, rtol=1e-4, atol=1e-5)
