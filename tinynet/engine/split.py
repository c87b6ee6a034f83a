"""A plan in parts: the batch cut in two, each half through a plan of its own, side by side.

A vision transformer's step is many small operations on every position: products of 2,048
rows, LayerNorm, GELU and softmax passes, attention's 16 x 16 products per head. The
compiled passes and NumPy's stacked products run on one thread, and the products of 2,048
rows are too small for two BLAS threads to share well. None of its layers mixes samples in
training (no BatchNorm, no Dropout), so the batch can be cut into one part per BLAS thread
(:func:`.parallel.batch_parts`), each part run forward and backward by a plan of its own on a
thread of its own, with the BLAS on one thread (:func:`.parallel.run_in_parts`): every pass
then has a core to itself.

Each extra part's plan runs *shadows* of the model's layers: shallow copies that share the
layers' ``params`` and ``buffers`` (synchronised at every call, so a weight set by hand or
by ``astype`` shows) and have ``grads`` of their own. After the backward the parts' weight
gradients are added into the layers' ``grads``, and what a step keeps for every sample
(attention's weights) is joined, as one plan of the whole batch would leave them. The engine
runs an inference plan's large batches in parts the same way (:meth:`.plan.Engine.predict`).
"""

import copy

from ..layers import (
    GELU,
    Dense,
    Flatten,
    GlobalAvgPool1D,
    LayerNorm,
    MultiHeadAttention,
    Patches,
    PositionalEmbedding,
    Reshape,
    Residual,
)
from ..layers.base import with_inner_layers
from .parallel import batch_parts, joined, run_in_parts
from .steps import backward_steps, every_step, run_steps

__all__ = ["PlanInParts", "splits"]

# Layers whose training forward and backward treat every sample on its own (their weight
# gradients are sums over samples, which parts add up). BatchNorm mixes samples in training,
# Dropout draws from one generator in batch order, the recurrent layers run in parts already,
# and the image layers have their own chunking: none of them is here.
_PER_SAMPLE = (Dense, LayerNorm, GELU, MultiHeadAttention, Patches, PositionalEmbedding, GlobalAvgPool1D, Reshape,
               Flatten, Residual)


def splits(layers):
    """Whether the training plan of ``layers`` runs in parts: every layer treats samples on their own (or is
    element-wise), and one of them is attention, whose plan is many short passes."""
    every = list(with_inner_layers(layers))
    return (any(type(layer) is MultiHeadAttention for layer in every)
            and all(type(layer) in _PER_SAMPLE or layer.elementwise for layer in every))


def _shadow(layer):
    """A shallow copy of ``layer`` (a Residual's inner layers shadowed too) with ``grads`` of its own."""
    twin = copy.copy(layer)
    if type(layer) is Residual:
        twin.layers = [_shadow(inner) for inner in layer.layers]
    else:
        twin.grads = {}
    return twin


def _leaves(originals, twins):
    """``(layer, its shadow)`` for every layer that holds its own arrays (a Residual's are its inner layers')."""
    for layer, twin in zip(originals, twins, strict=True):
        if type(layer) is Residual:
            yield from _leaves(layer.layers, twin.layers)
        else:
            yield layer, twin


class PlanInParts:
    """The plan ``steps`` of ``layers`` (a training plan, or an inference plan) and, made when first needed,
    one plan per extra part over shadows of the layers (built by ``make_plan``, with the same rules)."""

    def __init__(self, layers, steps, make_plan):
        self.layers, self.steps, self._make_plan = list(layers), steps, make_plan
        self._twins = []  # (shadow layers, their plan) per extra part
        self._last = None  # the plans and parts of the last forward in parts

    def _plans(self, count):
        while len(self._twins) < count - 1:
            shadows = [_shadow(layer) for layer in self.layers]
            self._twins.append((shadows, self._make_plan(shadows)))
        for shadows, _ in self._twins[:count - 1]:
            for layer, twin in _leaves(self.layers, shadows):  # the weights as they are now
                twin.params, twin.buffers = layer.params, layer.buffers
        return [self.steps] + [plan for _, plan in self._twins[:count - 1]]

    def forward(self, x, run_part=None):
        """The forward of ``x`` in parts, each by ``run_part(steps, x_part)`` (default: a training forward);
        None when the batch makes one part (the caller runs it)."""
        self._last = None
        parts = batch_parts(len(x))
        if len(parts) == 1:
            return None
        if run_part is None:
            def run_part(steps, x_part):
                return run_steps(steps, x_part, training=True)
        plans = self._plans(len(parts))
        outputs = run_in_parts(lambda item: run_part(item[0], x[item[1]]), list(zip(plans, parts, strict=True)))
        self._last = plans, parts
        self._join_kept(plans)
        return joined(outputs)

    def backward(self, grad, input_grad=True):
        """The backward of the last forward in parts: the parts' weight gradients added into the layers'."""
        plans, parts = self._last
        results = run_in_parts(lambda item: backward_steps(item[0], grad[item[1]], input_grad),
                               list(zip(plans, parts, strict=True)))
        for shadows, _ in self._twins[:len(parts) - 1]:
            for layer, twin in _leaves(self.layers, shadows):
                if layer.params:
                    layer.grads = {key: layer.grads[key] + twin.grads[key] for key in layer.params}
        return joined(results) if input_grad else None

    def forget(self):
        """Drop what the last forward kept, in every part's plan."""
        self._last = None
        for _, plan in self._twins:
            for step in plan:
                step.forget()

    def ran_last_forward(self):
        """Whether the last training forward ran in parts (so its backward must)."""
        return self._last is not None

    @staticmethod
    def _join_kept(plans):
        """What the first plan's steps keep for every sample, joined with the other parts' (as the whole batch's)."""
        for steps in zip(*(every_step(plan) for plan in plans), strict=True):
            for name in steps[0].kept_per_sample:
                setattr(steps[0].layer, name, joined([getattr(step.layer, name) for step in steps]))
