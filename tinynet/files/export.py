"""Take a trained model elsewhere: an ONNX graph for any runtime, or a ``torch.nn.Sequential``.

Both cover every layer in :mod:`tinynet.layers` and compute what ``model.forward`` computes
(inference: Dropout is the identity, BatchNorm uses its running statistics). The known
traps, and what is done about each:

- Dense keeps ``W`` as ``(in, out)``; PyTorch's ``Linear`` wants ``(out, in)``: transposed.
  ONNX's ``MatMul`` takes it as is, on ``(N, D)`` or ``(N, ..., D)`` (``Gemm`` is 2-D only).
- Flatten: tinynet flattens NCHW in ``(c, h, w)`` order, as ``torch.nn.Flatten`` and ONNX
  ``Flatten(axis=1)`` do, so the Dense weights after it keep their meaning.
- Pooling has no padding in tinynet (so no -inf or count_include_pad question arises);
  the exported pools say so explicitly (zero pads, floor mode).
- Softmax along its axis; LeakyReLU's slope; BatchNorm's eps and running statistics.
- RNN and LSTM: PyTorch's modules with ``batch_first=True``, ``weight_ih = W_xᵀ``,
  ``weight_hh = W_hᵀ``, ``bias_hh = 0``, wrapped to return the last step unless
  ``return_sequences``. ONNX's ``RNN``/``LSTM`` read time first, so the graph transposes around
  them, and ONNX's LSTM orders its gates ``i, o, f, c`` where tinynet has ``i, f, g, o``: the
  blocks of ``W``, ``R`` and ``B`` are reordered.

Each layer kind has one small exporter function for each target, registered by class in
:data:`TORCH_EXPORTERS` and :data:`ONNX_EXPORTERS` (as ``torch.onnx`` registers its symbolic
functions): ``to_torch`` and ``to_onnx`` only walk the model, so a new layer is exported by
adding its two entries next to the others.

``onnx`` (and ``onnxruntime`` to run the graph) and ``torch`` are optional: a missing one is
a clear error naming the package (``pip install -e ".[export]"``).
"""

import numpy as np

from .. import layers as L
from .._checks import is_int
from .._io import atomic_write
from ..errors import TinynetError
from ..layers.base import qualified_name

__all__ = ["to_onnx", "to_torch", "ExportError", "OPSET", "IR_VERSION", "TORCH_EXPORTERS", "ONNX_EXPORTERS",
           "torch_exporter", "onnx_exporter"]

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


# -- the exporter tables ----------------------------------------------------------------------
# One small function per layer kind, registered by class, as torch.onnx's symbolic functions:
# exporting a new layer is one more entry, and to_torch / to_onnx only walk the model.

#: PyTorch exporters by layer class: ``build(layer, position, builder) -> torch.nn.Module``.
TORCH_EXPORTERS = {}
#: ONNX exporters by layer class: ``emit(layer, position, graph, input_name) -> output_name``.
ONNX_EXPORTERS = {}


def _register(table, kinds):
    def register(function):
        for kind in kinds:
            table[kind] = function
        return function

    return register


def torch_exporter(*kinds):
    """Register the decorated function as the PyTorch exporter of the layer classes ``kinds``.

    The function takes ``(layer, position, builder)`` and returns a ``torch.nn.Module``;
    ``builder`` has ``torch``, ``nn``, ``loaded(module, weights)`` and ``modules(layers)``.

    Examples
    --------
    >>> from tinynet import layers as L
    >>> TORCH_EXPORTERS[L.Tanh].__name__
    '_torch_tanh'

    A new layer's entry reads::

        @torch_exporter(L.Tanh)
        def _torch_tanh(layer, position, builder):
            return builder.nn.Tanh()
    """
    return _register(TORCH_EXPORTERS, kinds)


def onnx_exporter(*kinds):
    """Register the decorated function as the ONNX exporter of the layer classes ``kinds``.

    The function takes ``(layer, position, graph, current)``, appends its nodes reading the
    tensor named ``current`` through ``graph.node`` and ``graph.constant``, and returns the name
    of its output.

    Examples
    --------
    >>> from tinynet import layers as L
    >>> ONNX_EXPORTERS[L.Tanh].__name__
    '_onnx_tanh'

    A new layer's entry reads::

        @onnx_exporter(L.Tanh)
        def _onnx_tanh(layer, position, graph, current):
            return graph.node("Tanh", [current], position)
    """
    return _register(ONNX_EXPORTERS, kinds)


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
    builder = _TorchBuilder(_require("torch", "Exporting to PyTorch"))
    module = builder.nn.Sequential(*builder.modules(_layers(model)))
    module.eval()
    return module


class _TorchBuilder:
    """What a PyTorch exporter needs: ``torch``, ``nn``, weights copied in, inner layers built."""

    def __init__(self, torch):
        self.torch, self.nn = torch, torch.nn

    def modules(self, layers, prefix=""):
        """One module per layer, in order (positions ``prefix + i`` name them in errors)."""
        return [self.module(layer, f"{prefix}{position}") for position, layer in enumerate(layers)]

    def module(self, layer, position):
        build = TORCH_EXPORTERS.get(type(layer))
        if build is None:
            raise ExportError(f"Layer {position} ({type(layer).__name__}) has no PyTorch mapping.")
        return build(layer, position, self)

    def loaded(self, module, weights):
        """``module`` with its tensors named in ``weights`` (parameters or buffers) set to those arrays, as float32."""
        with self.torch.no_grad():
            for name, array in weights.items():
                getattr(module, name).copy_(self.torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)))
        return module


@torch_exporter(L.Residual)
def _torch_residual(layer, position, builder):
    """A torch module computing ``x + inner(x)`` (PyTorch has no residual layer of its own)."""

    class Residual(builder.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return x + self.inner(x)

    return Residual(builder.nn.Sequential(*builder.modules(layer.layers, f"{position}.")))


@torch_exporter(L.Dense)
def _torch_dense(layer, position, builder):
    return builder.loaded(builder.nn.Linear(layer.in_features, layer.out_features),
                          {"weight": layer.params["W"].T, "bias": layer.params["b"]})  # Linear's weight is (out, in)


@torch_exporter(L.Conv2D)
def _torch_conv(layer, position, builder):
    module = builder.nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.padding)
    return builder.loaded(module, {"weight": layer.params["W"], "bias": layer.params["b"]})


@torch_exporter(L.BatchNorm1D, L.BatchNorm2D)
def _torch_batchnorm(layer, position, builder):
    kind = builder.nn.BatchNorm1d if isinstance(layer, L.BatchNorm1D) else builder.nn.BatchNorm2d
    return builder.loaded(kind(layer.num_features, eps=layer.eps, momentum=layer.momentum), {
        "weight": layer.params["gamma"], "bias": layer.params["beta"],
        "running_mean": layer.buffers["running_mean"], "running_var": layer.buffers["running_var"]})


@torch_exporter(L.MaxPool2D)
def _torch_maxpool(layer, position, builder):
    return builder.nn.MaxPool2d(layer.pool_size, layer.stride)


@torch_exporter(L.AvgPool2D)
def _torch_avgpool(layer, position, builder):
    return builder.nn.AvgPool2d(layer.pool_size, layer.stride)


@torch_exporter(L.Flatten)
def _torch_flatten(layer, position, builder):
    return builder.nn.Flatten()


@torch_exporter(L.Reshape)
def _torch_reshape(layer, position, builder):
    """A torch module computing ``x.reshape(N, *shape)`` (``nn.Unflatten`` reshapes one axis only)."""

    class Reshape(builder.nn.Module):
        def __init__(self, shape):
            super().__init__()
            self.shape = shape

        def forward(self, x):
            return x.reshape(x.shape[0], *self.shape)

    return Reshape(layer.shape)


@torch_exporter(L.ReLU)
def _torch_relu(layer, position, builder):
    return builder.nn.ReLU()


@torch_exporter(L.LeakyReLU)
def _torch_leaky_relu(layer, position, builder):
    return builder.nn.LeakyReLU(layer.alpha)


@torch_exporter(L.Sigmoid)
def _torch_sigmoid(layer, position, builder):
    return builder.nn.Sigmoid()


@torch_exporter(L.Tanh)
def _torch_tanh(layer, position, builder):
    return builder.nn.Tanh()


@torch_exporter(L.Softmax)
def _torch_softmax(layer, position, builder):
    return builder.nn.Softmax(dim=layer.axis)


@torch_exporter(L.Dropout)
def _torch_dropout(layer, position, builder):
    return builder.nn.Dropout(layer.rate)


@torch_exporter(L.RNN, L.LSTM)
def _torch_recurrent(layer, position, builder):
    """``nn.RNN`` or ``nn.LSTM`` (batch first) in a module that returns what the layer returns:
    every ``h_t``, or the last one (PyTorch's modules return a tuple whose first item is every ``h_t``)."""
    kind = builder.nn.RNN if isinstance(layer, L.RNN) else builder.nn.LSTM  # the same gate order: i, f, g, o
    recurrent = builder.loaded(kind(layer.input_size, layer.hidden_size, batch_first=True), {
        "weight_ih_l0": layer.params["W_x"].T, "weight_hh_l0": layer.params["W_h"].T,
        "bias_ih_l0": layer.params["b"], "bias_hh_l0": np.zeros_like(layer.params["b"])})  # one bias is enough

    class Recurrent(builder.nn.Module):
        def __init__(self, recurrent, return_sequences):
            super().__init__()
            self.recurrent, self.return_sequences = recurrent, return_sequences

        def forward(self, x):
            sequence = self.recurrent(x)[0]  # (N, T, H)
            return sequence if self.return_sequences else sequence[:, -1]

    return Recurrent(recurrent, layer.return_sequences)


@torch_exporter(L.LayerNorm)
def _torch_layer_norm(layer, position, builder):
    module = builder.nn.LayerNorm(layer.num_features, eps=layer.eps)
    return builder.loaded(module, {"weight": layer.params["gamma"], "bias": layer.params["beta"]})


@torch_exporter(L.GELU)
def _torch_gelu(layer, position, builder):
    return builder.nn.GELU(approximate=layer.approximate)


@torch_exporter(L.MultiHeadAttention)
def _torch_attention(layer, position, builder):
    """``nn.MultiheadAttention(batch_first=True)`` called as ``mha(x, x, x)`` (future masked when causal),
    in a module that returns the output only."""
    p = layer.params
    attention = builder.loaded(builder.nn.MultiheadAttention(layer.embed_dim, layer.num_heads, batch_first=True), {
        "in_proj_weight": np.concatenate([p["W_q"].T, p["W_k"].T, p["W_v"].T]),  # (3E, E): rows by output
        "in_proj_bias": np.concatenate([p["b_q"], p["b_k"], p["b_v"]])})
    builder.loaded(attention.out_proj, {"weight": p["W_o"].T, "bias": p["b_o"]})  # a Linear: (out, in)
    torch = builder.torch

    class SelfAttention(builder.nn.Module):
        def __init__(self, attention, causal):
            super().__init__()
            self.attention, self.causal = attention, causal

        def forward(self, x):
            steps = x.shape[1]
            mask = torch.triu(torch.ones(steps, steps, dtype=torch.bool), diagonal=1) if self.causal else None
            return self.attention(x, x, x, need_weights=False, attn_mask=mask)[0]

    return SelfAttention(attention, layer.causal)


@torch_exporter(L.Patches)
def _torch_patches(layer, position, builder):
    """``F.unfold(x, p, stride=p)`` gives ``(N, C*p*p, patches)`` in tinynet's orders: the patch axis moved second."""
    functional = builder.torch.nn.functional

    class Patches(builder.nn.Module):
        def __init__(self, size):
            super().__init__()
            self.size = size

        def forward(self, x):
            return functional.unfold(x, self.size, stride=self.size).transpose(1, 2)

    return Patches(layer.patch_size)


@torch_exporter(L.PositionalEmbedding)
def _torch_positional_embedding(layer, position, builder):
    class PositionalEmbedding(builder.nn.Module):
        def __init__(self, length, features):
            super().__init__()
            self.P = builder.nn.Parameter(builder.torch.zeros(length, features))

        def forward(self, x):
            return x + self.P

    return builder.loaded(PositionalEmbedding(layer.length, layer.features), {"P": layer.params["P"]})


@torch_exporter(L.GlobalAvgPool1D)
def _torch_global_avg_pool(layer, position, builder):
    class GlobalAvgPool1D(builder.nn.Module):
        def forward(self, x):
            return x.mean(dim=1)

    return GlobalAvgPool1D()


# -- ONNX -------------------------------------------------------------------------------------
def to_onnx(model, path, input_shape=None):
    """Write an ONNX graph (opset 17, IR version 8) computing ``model.forward``, atomically.

    The batch axis is dynamic (named ``N``). ``input_shape`` is one sample's shape: by
    default ``(in_features,)`` for a model that starts with a Dense, ``(28, input_size)`` (28
    steps, an MNIST image's rows) for one that starts with an RNN or LSTM, an MNIST image
    ``(C, 28, 28)`` otherwise. The graph is checked with ``onnx.checker`` before it is written.

    Examples
    --------
    Not a doctest (it needs onnx and onnxruntime)::

        tinynet.export.to_onnx(model, "model.onnx")
        session = onnxruntime.InferenceSession("model.onnx")
        logits = session.run(None, {"input": x.astype(np.float32)})[0]   # == model.forward(x)
    """
    onnx = _require("onnx", "Exporting to ONNX")
    helper = onnx.helper
    layers = _layers(model)
    graph = _OnnxGraph(onnx)
    current = graph.layers(layers, "input")
    sample = _sample_shape(layers[0], input_shape)
    try:  # the output's shape, by a forward pass on one sample
        out_shape = ["N", *model.output_shapes(sample)[-1]]
    except ValueError as error:
        raise ExportError(
            f"to_onnx could not run the model on one sample of shape {tuple(sample)} ({error}). Pass the shape "
            f"of one input sample: to_onnx(model, path, input_shape=(C, H, W))."
        ) from error
    proto_graph = helper.make_graph(
        graph.nodes, "tinynet", [helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ["N", *sample])],
        [helper.make_tensor_value_info(current, onnx.TensorProto.FLOAT, out_shape)], graph.initializers)
    proto = helper.make_model(proto_graph, producer_name="tinynet", opset_imports=[helper.make_opsetid("", OPSET)])
    proto.ir_version = IR_VERSION
    onnx.checker.check_model(proto)
    with atomic_write(path) as handle:
        handle.write(proto.SerializeToString())


class _OnnxGraph:
    """The nodes and initializers being built, and the helpers an ONNX exporter writes them with."""

    def __init__(self, onnx):
        self.onnx, self.helper = onnx, onnx.helper
        self.nodes, self.initializers = [], []

    def layers(self, layers, current, prefix=""):
        """Append the nodes of ``layers`` reading ``current``; returns the name of their output."""
        for position, layer in enumerate(layers):
            current = self.layer(layer, f"{prefix}{position}", current)
        return current

    def layer(self, layer, position, current):
        emit = ONNX_EXPORTERS.get(type(layer))
        if emit is None:
            raise ExportError(f"Layer {position} ({type(layer).__name__}) has no ONNX mapping.")
        return emit(layer, position, self, current)

    def constant(self, position, key, array, dtype=np.float32):
        """An initializer named ``"<position>.<key>"`` holding ``array``; returns its name."""
        name = qualified_name(position, key)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.ascontiguousarray(array, dtype=dtype), name))
        return name

    def node(self, op, inputs, position, step="", outputs=1, **attributes):
        """Append one ``op`` node; returns its output's name (``"layer<position>"``, then ``".<step>"``
        for the inner steps of a layer made of several nodes), or a list of ``outputs`` names."""
        name = f"layer{position}" + (f".{step}" if step else "")
        names = [name] if outputs == 1 else [f"{name}.{i}" for i in range(outputs)]
        self.nodes.append(self.helper.make_node(op, list(inputs), names, **attributes))
        return names[0] if outputs == 1 else names


@onnx_exporter(L.Residual)
def _onnx_residual(layer, position, graph, current):  # x + f(x): the inner layers' nodes, then one Add
    inner = graph.layers(layer.layers, current, f"{position}.")
    return graph.node("Add", [current, inner], position)


@onnx_exporter(L.Dense)
def _onnx_dense(layer, position, graph, current):
    # MatMul then Add, not Gemm: Gemm takes 2-D input only, and a Dense may see (N, T, D).
    # ONNX Runtime fuses the pair back into one Gemm for 2-D input.
    weights = graph.constant(position, "W", layer.params["W"])  # MatMul takes (in, out) as it is
    product = graph.node("MatMul", [current, weights], position, "product")
    return graph.node("Add", [product, graph.constant(position, "b", layer.params["b"])], position)


@onnx_exporter(L.Conv2D)
def _onnx_conv(layer, position, graph, current):
    (ph, pw), (kh, kw) = layer.padding, layer.kernel_size
    weights, bias = graph.constant(position, "W", layer.params["W"]), graph.constant(position, "b", layer.params["b"])
    return graph.node("Conv", [current, weights, bias], position,
                      kernel_shape=[kh, kw], strides=list(layer.stride), pads=[ph, pw, ph, pw])


@onnx_exporter(L.MaxPool2D, L.AvgPool2D)
def _onnx_pool(layer, position, graph, current):
    op = "MaxPool" if isinstance(layer, L.MaxPool2D) else "AveragePool"
    return graph.node(op, [current], position, kernel_shape=list(layer.pool_size), strides=list(layer.stride),
                      pads=[0, 0, 0, 0], ceil_mode=0)


@onnx_exporter(L.BatchNorm1D, L.BatchNorm2D)
def _onnx_batchnorm(layer, position, graph, current):
    names = [graph.constant(position, key, layer.state_dict()[key])
             for key in ("gamma", "beta", "running_mean", "running_var")]
    return graph.node("BatchNormalization", [current, *names], position, epsilon=layer.eps)


@onnx_exporter(L.Flatten)
def _onnx_flatten(layer, position, graph, current):
    return graph.node("Flatten", [current], position, axis=1)


@onnx_exporter(L.Reshape)
def _onnx_reshape(layer, position, graph, current):  # a 0 in ONNX's target shape keeps that axis: the batch
    target = graph.constant(position, "shape", [0, *layer.shape], dtype=np.int64)
    return graph.node("Reshape", [current, target], position)


@onnx_exporter(L.ReLU)
def _onnx_relu(layer, position, graph, current):
    return graph.node("Relu", [current], position)


@onnx_exporter(L.LeakyReLU)
def _onnx_leaky_relu(layer, position, graph, current):
    return graph.node("LeakyRelu", [current], position, alpha=layer.alpha)


@onnx_exporter(L.Sigmoid)
def _onnx_sigmoid(layer, position, graph, current):
    return graph.node("Sigmoid", [current], position)


@onnx_exporter(L.Tanh)
def _onnx_tanh(layer, position, graph, current):
    return graph.node("Tanh", [current], position)


@onnx_exporter(L.Softmax)
def _onnx_softmax(layer, position, graph, current):
    return graph.node("Softmax", [current], position, axis=layer.axis)


@onnx_exporter(L.Dropout)
def _onnx_dropout(layer, position, graph, current):  # inference: the identity
    return graph.node("Identity", [current], position)


#: ONNX's LSTM takes its gates' blocks in the order i, o, f, c (c is tinynet's and PyTorch's g);
#: tinynet's are i, f, g, o: the blocks to take, in ONNX's order.
_ONNX_GATE_ORDER = (0, 3, 1, 2)


@onnx_exporter(L.RNN, L.LSTM)
def _onnx_recurrent(layer, position, graph, current):
    """ONNX ``RNN`` or ``LSTM`` (one direction), between transposes: ONNX's default layout is
    time first, ``(T, N, D)`` (its ``layout=1`` is not implemented by every runtime)."""
    hidden = layer.hidden_size
    weights = {key: layer.params[key] for key in ("W_x", "W_h", "b")}
    if isinstance(layer, L.LSTM):  # reorder the gates' blocks of columns
        weights = {key: np.concatenate([array[..., k * hidden:(k + 1) * hidden] for k in _ONNX_GATE_ORDER], axis=-1)
                   for key, array in weights.items()}
    op = "RNN" if isinstance(layer, L.RNN) else "LSTM"
    inputs = [
        graph.node("Transpose", [current], position, "time_first", perm=[1, 0, 2]),  # (T, N, D)
        graph.constant(position, "W", weights["W_x"].T[None]),  # (1, gates*H, D): one direction, rows by unit
        graph.constant(position, "R", weights["W_h"].T[None]),  # (1, gates*H, H)
        graph.constant(position, "B", np.concatenate([weights["b"], np.zeros_like(weights["b"])])[None]),  # Wb, Rb
    ]
    outputs = graph.node(op, inputs, position, op.lower(), outputs=3 if op == "LSTM" else 2, hidden_size=hidden)
    sequence, last = outputs[0], outputs[1]  # Y (T, 1, N, H), Y_h (1, N, H)
    if not layer.return_sequences:
        return graph.node("Squeeze", [last, graph.constant(position, "axes", [0], dtype=np.int64)], position)
    steps = graph.node("Squeeze", [sequence, graph.constant(position, "axes", [1], dtype=np.int64)],
                       position, "steps")  # (T, N, H)
    return graph.node("Transpose", [steps], position, perm=[1, 0, 2])  # (N, T, H)


@onnx_exporter(L.LayerNorm)
def _onnx_layer_norm(layer, position, graph, current):
    gamma, beta = graph.constant(position, "gamma", layer.params["gamma"]), graph.constant(position, "beta",
                                                                                            layer.params["beta"])
    return graph.node("LayerNormalization", [current, gamma, beta], position, axis=-1, epsilon=layer.eps)


@onnx_exporter(L.GELU)
def _onnx_gelu(layer, position, graph, current):
    """Opset 17 has no Gelu (opset 20 does): ``x * (1 + erf(x / sqrt 2)) / 2``, or the tanh form, from its ops."""
    def scalar(key, value):
        return graph.constant(position, key, np.array(value))

    if layer.approximate == "tanh":  # x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))
        cube = graph.node("Mul", [graph.node("Mul", [current, current], position, "square"), current], position,
                          "cube")
        inner = graph.node("Add", [current, graph.node("Mul", [cube, scalar("c", 0.044715)], position, "c_cube")],
                           position, "inner")
        argument = graph.node("Mul", [inner, scalar("k", np.sqrt(2 / np.pi))], position, "argument")
        squashed = graph.node("Tanh", [argument], position, "tanh")
    else:  # x/2 * (1 + erf(x / sqrt 2))
        squashed = graph.node("Erf", [graph.node("Mul", [current, scalar("k", 1 / np.sqrt(2))], position, "scaled")],
                              position, "erf")
    one_plus = graph.node("Add", [squashed, scalar("one", 1.0)], position, "one_plus")
    half_x = graph.node("Mul", [current, scalar("half", 0.5)], position, "half_x")
    return graph.node("Mul", [half_x, one_plus], position)


@onnx_exporter(L.MultiHeadAttention)
def _onnx_attention(layer, position, graph, current):
    """Self-attention as MatMul, Softmax and the reshapes between (ONNX's Attention op is opset 23)."""
    heads, head_dim = layer.num_heads, layer.head_dim

    def projection(name):  # x @ W + b: (N, T, E)
        product = graph.node("MatMul", [current, graph.constant(position, f"W_{name}", layer.params[f"W_{name}"])],
                             position, f"{name}_product")
        return graph.node("Add", [product, graph.constant(position, f"b_{name}", layer.params[f"b_{name}"])],
                          position, name)

    split = graph.constant(position, "split_heads", [0, 0, heads, head_dim], dtype=np.int64)  # 0: keep N and T

    def heads_of(name, perm):  # (N, T, E) -> (N, T, h, d) -> perm
        shaped = graph.node("Reshape", [projection(name), split], position, f"{name}_heads")
        return graph.node("Transpose", [shaped], position, f"{name}_transposed", perm=perm)

    q, k_t, v = heads_of("q", [0, 2, 1, 3]), heads_of("k", [0, 2, 3, 1]), heads_of("v", [0, 2, 1, 3])
    scores = graph.node("Mul", [graph.node("MatMul", [q, k_t], position, "q_kt"),
                                graph.constant(position, "scale", np.array(1 / np.sqrt(head_dim)))],
                        position, "scores")  # (N, h, T, T)
    if layer.causal:  # -inf above the diagonal, whatever T is: Trilu of a tensor of ones shaped like the scores
        ones = graph.node("ConstantOfShape", [graph.node("Shape", [scores], position, "scores_shape")], position,
                          "ones", value=graph.helper.make_tensor("one", graph.onnx.TensorProto.FLOAT, [1], [1.0]))
        above = graph.node("Trilu", [ones, graph.constant(position, "k", np.array(1), dtype=np.int64)], position,
                           "above", upper=1)
        future = graph.node("Cast", [above], position, "future", to=graph.onnx.TensorProto.BOOL)
        scores = graph.node("Where", [future, graph.constant(position, "minus_inf", np.array(-np.inf)), scores],
                            position, "masked")
    attention = graph.node("Softmax", [scores], position, "attention", axis=-1)
    mixed = graph.node("Transpose", [graph.node("MatMul", [attention, v], position, "mixed")], position,
                       "mixed_transposed", perm=[0, 2, 1, 3])  # (N, h, T, d) -> (N, T, h, d)
    joined = graph.node("Reshape", [mixed, graph.constant(position, "join_heads", [0, 0, layer.embed_dim],
                                                          dtype=np.int64)], position, "joined")
    product = graph.node("MatMul", [joined, graph.constant(position, "W_o", layer.params["W_o"])], position,
                         "o_product")
    return graph.node("Add", [product, graph.constant(position, "b_o", layer.params["b_o"])], position)


@onnx_exporter(L.Patches)
def _onnx_patches(layer, position, graph, current):
    """(N, C, H, W) -> (N, C, H/p, p, W/p, p) -> (N, H/p, W/p, C, p, p) -> (N, patches, C*p*p); the sizes
    H/p and W/p are read from the input's shape in the graph, so any image size multiple of p exports."""
    p = graph.constant(position, "p", [layer.patch_size], dtype=np.int64)

    def count(axis, name):  # [H/p] or [W/p], int64
        size = graph.node("Shape", [current], position, f"{name}_size", start=axis, end=axis + 1)
        return graph.node("Div", [size, p], position, name)

    rows, columns = count(2, "rows"), count(3, "columns")
    keep_n_c = graph.constant(position, "keep_n_c", [0, 0], dtype=np.int64)  # Reshape's 0: keep that axis
    grid_shape = graph.node("Concat", [keep_n_c, rows, p, columns, p], position, "grid_shape", axis=0)
    grid = graph.node("Reshape", [current, grid_shape], position, "grid")
    patches = graph.node("Transpose", [grid], position, "patches", perm=[0, 2, 4, 1, 3, 5])
    out_shape = graph.node("Concat", [graph.constant(position, "keep_n", [0], dtype=np.int64),
                                      graph.node("Mul", [rows, columns], position, "count"),
                                      graph.constant(position, "rest", [-1], dtype=np.int64)], position, "out_shape",
                           axis=0)
    return graph.node("Reshape", [patches, out_shape], position)


@onnx_exporter(L.PositionalEmbedding)
def _onnx_positional_embedding(layer, position, graph, current):
    return graph.node("Add", [current, graph.constant(position, "P", layer.params["P"])], position)


@onnx_exporter(L.GlobalAvgPool1D)
def _onnx_global_avg_pool(layer, position, graph, current):
    return graph.node("ReduceMean", [current], position, axes=[1], keepdims=0)


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
    if isinstance(first, (L.RNN, L.LSTM)):  # an MNIST image read row by row
        return [28, first.input_size]
    return [getattr(first, "in_channels", getattr(first, "num_features", 1)), 28, 28]
