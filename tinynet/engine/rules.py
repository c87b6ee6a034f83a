"""The rewrite rules: which layers the engine runs with which step, one small rule each.

A rule names the pattern of consecutive layers it matches (``(Conv2D, ReLU, MaxPool2D)``;
an entry may be optional, or a predicate such as "declares ``elementwise``"), the
condition under which it applies, the layout its step takes and gives, and how to build
the step. :class:`~.plan.Engine` walks a model's layers and, at each one, applies the first
rule of its table that matches; the last rule of every table, :data:`AS_WRITTEN`, matches
any layer and runs it with its own ``forward`` and ``backward``. A new fusion is one rule
and one test (``tests/test_engine_rules.py`` runs each rule against the layers it replaces).

Two tables: :data:`TRAINING_RULES` for ``forward(x, training=True)`` and backward, and
:data:`INFERENCE_RULES` for a model that predicts. The layouts are ``NCHW`` (the user's,
and any layer's own code) and ``NHWC`` (channels last, the engine's for image layers); the
engine inserts the layout changes between steps that need different ones.
"""

from ..layers import (
    GELU,
    LSTM,
    AvgPool2D,
    BatchNorm1D,
    BatchNorm2D,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    LayerNorm,
    MaxPool2D,
    MultiHeadAttention,
    ReLU,
    Residual,
)
from .activations import GELUStep
from .attention import AttentionStep
from .conv import ConvReluMaxPoolStep, ConvStep, OneChannelConvReluMaxPoolStep, in_pooling_windows
from .inference import ConvEpilogueStep, ConvPoolInferenceStep, DenseEpilogueStep, FlattenDenseEpilogueStep, FlattenRows
from .normalization import BatchNormStep, LayerNormStep
from .pool import AvgPoolStep, MaxPoolStep
from .recurrent import LSTMStep
from .steps import DenseReluStep, DenseStep, FlattenChannelsLast, LayerStep, ResidualStep

__all__ = ["Rule", "Optional", "NCHW", "NHWC", "LEAVE_OUT", "AS_WRITTEN", "TRAINING_RULES", "INFERENCE_RULES"]

#: The user's layout (images ``(N, C, H, W)``, or whatever a layer's own code takes).
NCHW = "NCHW"
#: Channels last, ``(N, H, W, C)``: the engine's layout for image layers.
NHWC = "NHWC"


class Optional:
    """A pattern entry that matches one layer of ``kind`` if it is there, and nothing otherwise."""

    def __init__(self, kind):
        self.kind = kind

    def __repr__(self):
        return f"Optional({self.kind.__name__})"


def _fits(entry, layer):
    """Whether ``layer`` is what the pattern entry (a class, exactly, or a predicate) asks for."""
    if isinstance(entry, type):
        return type(layer) is entry
    return bool(entry(layer))


class Rule:
    """Layers matching ``pattern`` (when ``when(layers, layout)`` holds) run as ``build(positions, layers, context)``.

    Parameters
    ----------
    name : str
        What the rewrite does, in words.
    pattern : tuple
        One entry per layer: a layer class (matched exactly, not its subclasses), a
        predicate ``layer -> bool``, or :class:`Optional` of a class.
    build : callable or :data:`LEAVE_OUT`
        ``build(positions, layers, context) -> Step``; ``positions`` are the layers' places in
        the model, ``context`` a :class:`~.plan.Context` (the layout there, inner plans).
        ``LEAVE_OUT`` removes the layers from the plan (Dropout at inference).
    when : callable, optional
        ``when(layers, layout) -> bool``, checked after the pattern matched.
    takes, gives : ``NCHW``, ``NHWC`` or None
        The layout the step takes and gives; None: any, and it gives what it took (element-wise
        layers, Residual).
    """

    def __init__(self, name, pattern, build, when=None, takes=NCHW, gives=None):
        self.name, self.pattern, self.build, self.when = name, tuple(pattern), build, when
        self.takes = takes
        self.gives = gives if gives is not None else takes

    def match(self, layers, layout):
        """How many of ``layers`` (from the first) this rule covers in ``layout``; 0 if it does not apply."""
        count = 0
        for entry in self.pattern:
            layer = layers[count] if count < len(layers) else None
            if isinstance(entry, Optional):
                count += layer is not None and type(layer) is entry.kind
                continue
            if layer is None or not _fits(entry, layer):
                return 0
            count += 1
        if self.when is not None and not self.when(layers[:count], layout):
            return 0
        return count

    def __repr__(self):
        return f"Rule({self.name!r})"


def _leave_out(positions, layers, context):
    return None


#: The ``build`` of a rule that removes its layers from the plan.
LEAVE_OUT = _leave_out


def _any_layer(layer):
    return True


def _elementwise(layer):
    return layer.elementwise


def _exact_gelu(layers, layout):
    return layers[0].approximate == "none"


def _in_channels_last(layers, layout):
    return layout == NHWC


def _norm_fits(layers, layout):
    """Whether a BatchNorm in ``layers`` has as many features as the product before it gives (otherwise the
    layers run apart, and the BatchNorm's own check says what is wrong)."""
    product = layers[0]
    outputs = getattr(product, "out_channels", getattr(product, "out_features", None))
    return all(layer.num_features == outputs for layer in layers if type(layer) in (BatchNorm1D, BatchNorm2D))


def _one(step):
    """``build`` for a step of one layer made as ``step(position, layer)``."""
    return lambda positions, layers, context: step(positions[0], layers[0])


def _residual(positions, layers, context):
    layer = layers[0]
    return ResidualStep(positions[0], layer, context.inner_plan(layer.layers), channels_last=context.layout == NHWC)


def _dense_epilogue(positions, layers, context):
    norm = next((layer for layer in layers if type(layer) is BatchNorm1D), None)
    return DenseEpilogueStep(positions, layers, layers[0], norm, relu=type(layers[-1]) is ReLU)


def _conv_epilogue(positions, layers, context):
    norm = next((layer for layer in layers if type(layer) is BatchNorm2D), None)
    return ConvEpilogueStep(positions, layers, layers[0], norm, relu=type(layers[-1]) is ReLU)


def _flatten_dense_epilogue(positions, layers, context):
    norm = next((layer for layer in layers if type(layer) is BatchNorm1D), None)
    return FlattenDenseEpilogueStep(positions, layers, norm, relu=type(layers[-1]) is ReLU)


def _conv_pool_inference(positions, layers, context):
    norm = layers[3] if len(layers) == 4 else None
    return ConvPoolInferenceStep(positions, layers, layers[0], layers[2], norm)


#: Any layer, run with its own ``forward`` and ``backward`` on the user's layout: the last rule of every table.
AS_WRITTEN = Rule("any layer runs as written", (_any_layer,), _one(LayerStep))

_ELEMENTWISE = Rule("an element-wise layer runs as written in any layout", (_elementwise,), _one(LayerStep),
                    takes=None)
_RESIDUAL = Rule("a Residual runs its inner layers as a plan of their own, in the layout around it", (Residual,),
                 _residual, takes=None)
_FLATTEN_CHANNELS_LAST = Rule("Flatten of channels-last activations, in NCHW order", (Flatten,),
                              _one(FlattenChannelsLast), when=_in_channels_last, takes=NHWC, gives=NCHW)
_MAXPOOL = Rule("MaxPool2D, channels last", (MaxPool2D,), lambda positions, layers, context: MaxPoolStep(
    positions, layers[0]), takes=NHWC)
_AVGPOOL = Rule("AvgPool2D, channels last", (AvgPool2D,), lambda positions, layers, context: AvgPoolStep(
    positions, layers[0]), takes=NHWC)
_RELU_MAXPOOL = Rule("ReLU + MaxPool2D in one pass, channels last", (ReLU, MaxPool2D),
                     lambda positions, layers, context: MaxPoolStep(positions, layers[1], relu=True),
                     when=_in_channels_last, takes=NHWC)
_BATCHNORM2D = Rule("BatchNorm2D over channels-last rows", (BatchNorm2D,), _one(BatchNormStep), takes=NHWC)
# The same steps at inference, where they keep nothing for backward.
_LSTM = Rule("LSTM: each step's gates and cell state in one compiled pass", (LSTM,), _one(LSTMStep))
_LAYER_NORM = Rule("LayerNorm: each row's statistics in one compiled visit", (LayerNorm,), _one(LayerNormStep))
_ATTENTION = Rule("MultiHeadAttention: Q | K | V in one product, the softmax compiled", (MultiHeadAttention,),
                  _one(AttentionStep))
_GELU = Rule("GELU: its value and slope in one compiled pass", (GELU,), _one(GELUStep), when=_exact_gelu, takes=None)

#: The rules of a training forward and backward, first match wins.
TRAINING_RULES = (
    Rule("Conv2D 3x3 of one channel + ReLU + MaxPool2D 2x2 in the pooling windows", (Conv2D, ReLU, MaxPool2D),
         lambda positions, layers, context: OneChannelConvReluMaxPoolStep(positions, layers[0], layers[2]),
         when=lambda layers, layout: in_pooling_windows(layers[0], layers[2]), takes=NHWC),
    Rule("Conv2D + ReLU + MaxPool2D on a chunk of images at a time", (Conv2D, ReLU, MaxPool2D),
         lambda positions, layers, context: ConvReluMaxPoolStep(positions, layers[0], layers[2]), takes=NHWC),
    Rule("Conv2D, channels last, chunked", (Conv2D,), _one(ConvStep), takes=NHWC),
    _RELU_MAXPOOL,
    _MAXPOOL,
    _AVGPOOL,
    _BATCHNORM2D,
    _FLATTEN_CHANNELS_LAST,
    Rule("Dense + ReLU: the bias and the ReLU in the product's epilogue", (Dense, ReLU),
         lambda positions, layers, context: DenseReluStep(positions, layers[0])),
    Rule("Dense that can skip its input gradient", (Dense,), _one(DenseStep)),
    _LSTM,
    _LAYER_NORM,
    _ATTENTION,
    _GELU,
    _RESIDUAL,
    _ELEMENTWISE,
    AS_WRITTEN,
)

#: The rules of a model that predicts (``forward(x, training=False)``); the steps keep nothing for backward.
INFERENCE_RULES = (
    Rule("Dropout is the identity at inference", (Dropout,), LEAVE_OUT, takes=None),
    Rule("Conv2D + ReLU + MaxPool2D (+ BatchNorm2D) pooled as computed", (Conv2D, ReLU, MaxPool2D,
                                                                          Optional(BatchNorm2D)),
         _conv_pool_inference, when=_norm_fits, takes=NHWC),
    Rule("Conv2D (+ BatchNorm2D) (+ ReLU) in the product's epilogue", (Conv2D, Optional(BatchNorm2D),
                                                                       Optional(ReLU)),
         _conv_epilogue, when=_norm_fits, takes=NHWC),
    _RELU_MAXPOOL,
    _MAXPOOL,
    _AVGPOOL,
    _BATCHNORM2D,
    Rule("Flatten + Dense (+ BatchNorm1D) (+ ReLU) from channels-last: the weights' rows in the activations' order",
         (Flatten, Dense, Optional(BatchNorm1D), Optional(ReLU)), _flatten_dense_epilogue,
         when=lambda layers, layout: layout == NHWC and _norm_fits(layers[1:], layout), takes=NHWC, gives=NCHW),
    _FLATTEN_CHANNELS_LAST,
    Rule("Flatten as a reshape", (Flatten,), _one(FlattenRows)),
    Rule("Dense (+ BatchNorm1D) (+ ReLU) in the product's epilogue", (Dense, Optional(BatchNorm1D), Optional(ReLU)),
         _dense_epilogue, when=_norm_fits),
    _LSTM,
    _LAYER_NORM,
    _ATTENTION,
    _GELU,
    _RESIDUAL,
    _ELEMENTWISE,
    AS_WRITTEN,
)
