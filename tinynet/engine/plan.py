"""The plan: which steps run a model's layers, in which layout, fused how.

Every layer's public ``forward``/``backward`` takes and returns NCHW images, the layout of
DESIGN.md and of saved weights. The plan runs consecutive image layers (convolutions,
pooling, BatchNorm2D and the element-wise layers between them) on channels-last (NHWC)
activations instead: the layout changes once on the way in and once on the way out, not
twice per layer.

Two fusions change nothing but the time: a ReLU followed by a MaxPool2D runs as one pass
(:mod:`.pool`), and a Conv2D before that pair runs with them on a chunk of images at a time
(:mod:`.conv`).

The engine knows which layers it has a faster step for from one table, ``FAST_STEPS``; any
layer that declares ``elementwise = True`` may sit inside a channels-last run, since it
gives the same values on any layout; every other layer runs as written. Dropout is
element-wise in its maths but not declared so: it draws its mask in the layout it is
given, and a channels-last mask would differ from the layer-by-layer run's.

:meth:`Sequential.execution_plan` lists the steps; each names the layers it runs. The
layer-by-layer plan (``fast=False``, :meth:`Sequential.layer_by_layer`) runs every layer's
own code, and the tests check that both give the same results.
"""

from ..layers import AvgPool2D, BatchNorm2D, Conv2D, Dense, Flatten, MaxPool2D, ReLU, Residual
from .conv import ConvReluMaxPoolStep, ConvStep
from .normalization import BatchNormStep
from .pool import AvgPoolStep, MaxPoolStep
from .steps import DenseStep, FlattenChannelsLast, LayerStep, Step, ToChannelsFirst, ToChannelsLast

__all__ = ["build_plan", "FAST_STEPS", "OWN_STEPS", "ResidualStep"]

#: The layers the engine runs on channels-last activations, and the step that runs each.
FAST_STEPS = {
    Conv2D: ConvStep,
    MaxPool2D: lambda position, layer: MaxPoolStep((position,), layer),
    AvgPool2D: lambda position, layer: AvgPoolStep((position,), layer),
    BatchNorm2D: BatchNormStep,
}


class ResidualStep(Step):
    """A Residual layer whose inner layers run as a plan of their own: ``x + plan(x)``, NCHW at both ends."""

    def __init__(self, position, layer):
        super().__init__()
        self.positions, self.layer = (position,), layer
        self.inner = build_plan(layer.layers)
        self.trainable = bool(layer.params)

    def forward(self, x, training=False):
        self._saved = None
        out = x
        for step in self.inner:
            out = step.forward(out, training=training)
        self.layer.check_output(x.shape, out.shape)
        self._saved = True if training else None
        return x + out

    def backward(self, grad, input_grad=True):
        self._saved_values()
        inner_grad = grad
        for step in reversed(self.inner):  # fills the inner layers' grads
            inner_grad = step.backward(inner_grad)
        return grad + inner_grad if input_grad else None  # dX = dY + f.backward(dY)

    def describe(self):
        inner = "; ".join(step.describe() for step in self.inner)
        return f"{self.positions[0]} Residual [{inner}]"


#: Layers the engine runs in their own layout (NCHW, or rows) with a step of its own.
OWN_STEPS = {Dense: DenseStep, Residual: ResidualStep}


def _is(layer, kind):
    return type(layer) is kind


def build_plan(layers, fast=True):
    """The steps that run ``layers``; with ``fast=False`` each layer's own code, one by one."""
    if not fast:
        return [LayerStep(position, layer) for position, layer in enumerate(layers)]
    plan, position, count = [], 0, len(layers)

    def at(offset):
        return layers[position + offset] if position + offset < count else None

    while position < count:
        layer = layers[position]
        if type(layer) not in FAST_STEPS:
            plan.append(OWN_STEPS.get(type(layer), LayerStep)(position, layer))
            position += 1
            continue
        plan.append(ToChannelsLast(layer))
        while position < count and (type(at(0)) in FAST_STEPS or at(0).elementwise):
            if _is(at(0), Conv2D) and _is(at(1), ReLU) and _is(at(2), MaxPool2D):
                plan.append(ConvReluMaxPoolStep((position, position + 1, position + 2), at(0), at(2)))
                position += 3
            elif _is(at(0), ReLU) and _is(at(1), MaxPool2D):
                plan.append(MaxPoolStep((position, position + 1), at(1), relu=True))
                position += 2
            elif type(at(0)) in FAST_STEPS:
                plan.append(FAST_STEPS[type(at(0))](position, at(0)))
                position += 1
            else:
                plan.append(LayerStep(position, at(0)))
                position += 1
        if _is(at(0), Flatten):
            plan.append(FlattenChannelsLast(position, at(0)))
            position += 1
        else:
            plan.append(ToChannelsFirst())
    return plan
