"""Take a trained model elsewhere: an ONNX graph for any runtime, or a ``torch.nn.Sequential``.

Both cover every layer in :mod:`tinynet.layers` and compute what ``model.forward`` computes
(inference: Dropout is the identity, BatchNorm uses its running statistics). The known
traps, and what is done about each:

- Dense keeps ``W`` as ``(in, out)``; PyTorch's ``Linear`` wants ``(out, in)``: transposed.
  ONNX's ``Gemm`` takes it as is.
- Flatten: tinynet flattens NCHW in ``(c, h, w)`` order, as ``torch.nn.Flatten`` and ONNX
  ``Flatten(axis=1)`` do, so the Dense weights after it keep their meaning.
- Pooling has no padding in tinynet (so no -inf or count_include_pad question arises);
  the exported pools say so explicitly (zero pads, floor mode).
- Softmax along its axis; LeakyReLU's slope; BatchNorm's eps and running statistics.

``onnx`` (and ``onnxruntime`` to run the graph) and ``torch`` are optional: a missing one is
a clear error naming the package (``pip install -e ".[export]"``).
"""

import numpy as np

from .. import layers as L
from .._checks import is_int
from .._io import atomic_write
from ..errors import TinynetError
from ..layers.base import qualified_name

__all__ = ["to_onnx", "to_torch", "ExportError", "OPSET", "IR_VERSION"]

#: The ONNX operator set of exported graphs, and the IR version: pinned so that current and
#: older onnxruntime releases (1.14 and later) load them.
OPSET, IR_VERSION = 17, 8


class ExportError(TinynetError, ValueError):
    """A model cannot be exported: a layer with no mapping, or a missing package.

    Examples
    --------
    >>> issubclass(ExportError, ValueError)
    True
    """


def _require(package, purpose):
    try:
        return __import__(package)
    except ImportError as error:
        raise ExportError(
            f"{purpose} needs the {package} package: pip install {package} (or pip install -e \".[export]\")."
        ) from error


def _layers(model):
    layers = list(getattr(model, "layers", []))
    if not layers:
        raise ExportError("The model has no layers to export.")
    return layers


# -- PyTorch ----------------------------------------------------------------------------------
def to_torch(model):
    """A ``torch.nn.Sequential`` with the same layers and weights; in ``eval()`` mode its output
    equals ``model.forward`` (float32, to rounding).

    Examples
    --------
    Not a doctest (it needs PyTorch)::

        module = tinynet.export.to_torch(tinynet.load_model("mnist_cnn.npz"))
        module(torch.from_numpy(x_test[:5, None] / 255).float())   # logits, as model.forward
    """
    torch = _require("torch", "Exporting to PyTorch")
    nn = torch.nn
    modules = []
    for position, layer in enumerate(_layers(model)):
        modules.append(_torch_module(layer, position, nn, torch))
    module = nn.Sequential(*modules)
    module.eval()
    return module


def _torch_residual(nn):
    """A torch module computing ``x + inner(x)`` (PyTorch has no residual layer of its own)."""

    class Residual(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return x + self.inner(x)

    return Residual


def _tensor(torch, array):
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def _torch_module(layer, position, nn, torch):
    kind = type(layer)
    if kind is L.Residual:
        inner = [_torch_module(part, f"{position}.{i}", nn, torch) for i, part in enumerate(layer.layers)]
        return _torch_residual(nn)(nn.Sequential(*inner))
    if kind is L.Dense:
        module = nn.Linear(layer.in_features, layer.out_features)
        weights = {"weight": layer.params["W"].T, "bias": layer.params["b"]}  # Linear's weight is (out, in)
    elif kind is L.Conv2D:
        module = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.padding)
        weights = {"weight": layer.params["W"], "bias": layer.params["b"]}
    elif kind in (L.BatchNorm1D, L.BatchNorm2D):
        module = (nn.BatchNorm1d if kind is L.BatchNorm1D else nn.BatchNorm2d)(
            layer.num_features, eps=layer.eps, momentum=layer.momentum)
        weights = {"weight": layer.params["gamma"], "bias": layer.params["beta"],
                   "running_mean": layer.buffers["running_mean"], "running_var": layer.buffers["running_var"]}
    else:
        simple = {
            L.MaxPool2D: lambda: nn.MaxPool2d(layer.pool_size, layer.stride),
            L.AvgPool2D: lambda: nn.AvgPool2d(layer.pool_size, layer.stride),
            L.Flatten: nn.Flatten,
            L.ReLU: nn.ReLU,
            L.LeakyReLU: lambda: nn.LeakyReLU(layer.alpha),
            L.Sigmoid: nn.Sigmoid,
            L.Tanh: nn.Tanh,
            L.Softmax: lambda: nn.Softmax(dim=layer.axis),
            L.Dropout: lambda: nn.Dropout(layer.rate),
        }
        if kind not in simple:
            raise ExportError(f"Layer {position} ({kind.__name__}) has no PyTorch mapping.")
        return simple[kind]()
    with torch.no_grad():
        for name, array in weights.items():
            getattr(module, name).copy_(_tensor(torch, array))
    return module


# -- ONNX -------------------------------------------------------------------------------------
def to_onnx(model, path, input_shape=None):
    """Write an ONNX graph (opset 17, IR version 8) computing ``model.forward``, atomically.

    The batch axis is dynamic (named ``N``). ``input_shape`` is one sample's shape: by
    default ``(in_features,)`` for a model that starts with a Dense, an MNIST image
    ``(C, 28, 28)`` otherwise. The graph is checked with ``onnx.checker`` before it is written.

    Examples
    --------
    Not a doctest (it needs onnx and onnxruntime)::

        tinynet.export.to_onnx(model, "model.onnx")
        session = onnxruntime.InferenceSession("model.onnx")
        logits = session.run(None, {"input": x.astype(np.float32)})[0]   # == model.forward(x)
    """
    onnx = _require("onnx", "Exporting to ONNX")
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    layers = _layers(model)
    nodes, initializers = [], []
    current = "input"

    def constant(name, array):
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(array, dtype=np.float32), name))
        return name

    def emit(layers, current, prefix=""):
        """Append the nodes of ``layers`` reading ``current``; returns the name of their output."""
        for position, layer in enumerate(layers):
            current = emit_layer(layer, f"{prefix}{position}", current)
        return current

    def emit_layer(layer, position, current):
        output = f"layer{position}"
        kind = type(layer)
        if kind is L.Residual:  # x + f(x): the inner layers' nodes, then one Add
            inner = emit(layer.layers, current, f"{position}.")
            nodes.append(helper.make_node("Add", [current, inner], [output]))
        elif kind is L.Dense:
            weights = constant(qualified_name(position, "W"), layer.params["W"])
            bias = constant(qualified_name(position, "b"), layer.params["b"])
            nodes.append(helper.make_node("Gemm", [current, weights, bias], [output]))
        elif kind is L.Conv2D:
            (ph, pw), (kh, kw) = layer.padding, layer.kernel_size
            nodes.append(helper.make_node(
                "Conv", [current, constant(qualified_name(position, "W"), layer.params["W"]),
                         constant(qualified_name(position, "b"), layer.params["b"])], [output],
                kernel_shape=[kh, kw], strides=list(layer.stride), pads=[ph, pw, ph, pw]))
        elif kind in (L.MaxPool2D, L.AvgPool2D):
            nodes.append(helper.make_node(
                "MaxPool" if kind is L.MaxPool2D else "AveragePool", [current], [output],
                kernel_shape=list(layer.pool_size), strides=list(layer.stride), pads=[0, 0, 0, 0], ceil_mode=0))
        elif kind in (L.BatchNorm1D, L.BatchNorm2D):
            names = [constant(qualified_name(position, key), value) for key, value in (
                ("gamma", layer.params["gamma"]), ("beta", layer.params["beta"]),
                ("running_mean", layer.buffers["running_mean"]), ("running_var", layer.buffers["running_var"]))]
            nodes.append(helper.make_node("BatchNormalization", [current, *names], [output], epsilon=layer.eps))
        else:
            simple = {L.Flatten: ("Flatten", {"axis": 1}), L.ReLU: ("Relu", {}), L.Sigmoid: ("Sigmoid", {}),
                      L.Tanh: ("Tanh", {}), L.Dropout: ("Identity", {}),
                      L.LeakyReLU: ("LeakyRelu", {"alpha": getattr(layer, "alpha", 0.0)}),
                      L.Softmax: ("Softmax", {"axis": getattr(layer, "axis", -1)})}
            if kind not in simple:
                raise ExportError(f"Layer {position} ({kind.__name__}) has no ONNX mapping.")
            op, attributes = simple[kind]
            nodes.append(helper.make_node(op, [current], [output], **attributes))
        return output

    current = emit(layers, current)
    sample = _sample_shape(layers[0], input_shape)
    try:  # the output's shape, by a forward pass on one sample
        out_shape = ["N", *model.output_shapes(sample)[-1]]
    except ValueError as error:
        raise ExportError(
            f"to_onnx could not run the model on one sample of shape {tuple(sample)} ({error}). Pass the shape "
            f"of one input sample: to_onnx(model, path, input_shape=(C, H, W))."
        ) from error
    graph = helper.make_graph(
        nodes, "tinynet", [helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ["N", *sample])],
        [helper.make_tensor_value_info(current, onnx.TensorProto.FLOAT, out_shape)], initializers)
    proto = helper.make_model(graph, producer_name="tinynet", opset_imports=[helper.make_opsetid("", OPSET)])
    proto.ir_version = IR_VERSION
    onnx.checker.check_model(proto)
    with atomic_write(path) as handle:
        handle.write(proto.SerializeToString())


def _sample_shape(first, input_shape):
    """One sample's shape as a list of positive ints: an int, a tuple, or Keras's ``(None, C, H, W)``."""
    if input_shape is not None:
        shape = [input_shape] if is_int(input_shape) else input_shape
        if isinstance(shape, (tuple, list)) and shape and shape[0] is None:  # Keras spells the batch axis None
            shape = shape[1:]
        if not isinstance(shape, (tuple, list)) or not shape or not all(is_int(v) and v > 0 for v in shape):
            raise ExportError(f"to_onnx expects input_shape to be one sample's shape, e.g. (1, 28, 28) or 784, "
                              f"without the batch axis; received input_shape={input_shape!r}.")
        return [int(v) for v in shape]
    if isinstance(first, L.Dense):
        return [first.in_features]
    return [getattr(first, "in_channels", getattr(first, "num_features", 1)), 28, 28]
