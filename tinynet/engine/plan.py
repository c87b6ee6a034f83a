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

from ..layers import AvgPool2D, BatchNorm1D, BatchNorm2D, Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU, Residual
from .conv import ConvReluMaxPoolStep, ConvStep
from .inference import ConvEpilogueStep, ConvPoolInferenceStep, DenseEpilogueStep, FlattenRows
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


def build_plan(layers, fast=True, inference=False):
    """The steps that run ``layers``; with ``fast=False`` each layer's own code, one by one.

    ``inference=True`` gives the plan of a model that predicts (see :mod:`.inference`): no
    Dropout, BatchNorm, bias and ReLU in the epilogue of the product before them. Its
    steps run only with ``training=False``.
    """
    if not fast:
        return [LayerStep(position, layer) for position, layer in enumerate(layers)]
    # (position in the model, layer): the positions stay the model's when Dropout is left out.
    kept = [(position, layer) for position, layer in enumerate(layers) if not (inference and _is(layer, Dropout))]
    plan, index, count = [], 0, len(kept)

    def at(offset):
        return kept[index + offset][1] if index + offset < count else None

    def take(number):
        """The positions and layers of the next ``number`` layers, and move past them."""
        nonlocal index
        positions, taken = zip(*kept[index:index + number], strict=True)
        index += number
        return positions, taken

    while index < count:
        position, layer = kept[index]
        if inference and _is(layer, Dense):
            norm = at(1) if _is(at(1), BatchNorm1D) else None
            relu = _is(at(1 + (norm is not None)), ReLU)
            positions, taken = take(1 + (norm is not None) + relu)
            plan.append(DenseEpilogueStep(positions, taken, layer, norm, relu))
            continue
        if inference and _is(layer, Flatten):
            plan.append(FlattenRows(position, layer))
            index += 1
            continue
        if type(layer) not in FAST_STEPS:
            plan.append(OWN_STEPS.get(type(layer), LayerStep)(position, layer))
            index += 1
            continue
        plan.append(ToChannelsLast(layer))
        while index < count and (type(at(0)) in FAST_STEPS or at(0).elementwise):
            position = kept[index][0]
            if _is(at(0), Conv2D) and _is(at(1), ReLU) and _is(at(2), MaxPool2D):
                if inference:
                    norm = at(3) if _is(at(3), BatchNorm2D) else None
                    positions, taken = take(3 + (norm is not None))
                    plan.append(ConvPoolInferenceStep(positions, taken, taken[0], taken[2], norm))
                else:
                    positions, taken = take(3)
                    plan.append(ConvReluMaxPoolStep(positions, taken[0], taken[2]))
            elif inference and _is(at(0), Conv2D):
                norm = at(1) if _is(at(1), BatchNorm2D) else None
                relu = _is(at(1 + (norm is not None)), ReLU)
                positions, taken = take(1 + (norm is not None) + relu)
                plan.append(ConvEpilogueStep(positions, taken, taken[0], norm, relu))
            elif _is(at(0), ReLU) and _is(at(1), MaxPool2D):
                plan.append(MaxPoolStep((position, kept[index + 1][0]), at(1), relu=True))
                index += 2
            elif type(at(0)) in FAST_STEPS:
                plan.append(FAST_STEPS[type(at(0))](position, at(0)))
                index += 1
            else:
                plan.append(LayerStep(position, at(0)))
                index += 1
        if _is(at(0), Flatten):
            plan.append(FlattenChannelsLast(kept[index][0], at(0)))
            index += 1
        else:
            plan.append(ToChannelsFirst())
    return plan
