"""The engine: a model's layers turned into a plan of steps by a table of rewrite rules.

Every layer's public ``forward``/``backward`` takes and returns NCHW images, the layout of
DESIGN.md and of saved weights. The plan runs consecutive image layers (convolutions,
pooling, BatchNorm2D and the element-wise layers between them) on channels-last (NHWC)
activations instead: the layout changes once on the way in and once on the way out, not
twice per layer. Which step runs which layers is decided by the rules of :mod:`.rules`,
first match wins; a layer no rule knows runs as written.

:class:`Engine` owns the two plans of a model, the training plan and the inference plan,
each made from its own table and kept until the model's list of layers changes.
:meth:`Sequential.execution_plan` and :meth:`Sequential.inference_plan` list their steps;
each step names the layers it runs. The layer-by-layer plan (``fast=False``,
:meth:`Sequential.layer_by_layer`) runs every layer's own code, and the tests check that
both give the same results.
"""

import numpy as np

from ..kernels import engine_threads, tiles_win
from .parallel import products_on_one_thread
from .rules import INFERENCE_RULES, LEAVE_OUT, NCHW, NHWC, TRAINING_RULES
from .split import PlanInParts, splits
from .steps import LayerStep, ToChannelsFirst, ToChannelsLast, backward_steps, every_step, run_steps

__all__ = ["Engine", "Context", "build_plan", "plan_layers"]


class Context:
    """What a rule's ``build`` may ask about where it is: the layout there, and the plan of inner layers."""

    def __init__(self, rules, layout):
        self.rules, self.layout = rules, layout

    def inner_plan(self, layers):
        """The steps of ``layers`` (a Residual's), by the same rules, taking and giving the layout here."""
        return plan_layers(layers, self.rules, layout=self.layout)


def _change(layout, wanted, layer=None, position=None):
    """The step from ``layout`` to ``wanted``; ``layer`` checks the input on the way into channels last."""
    return ToChannelsLast(layer, position) if wanted == NHWC else ToChannelsFirst()


def plan_layers(layers, rules, layout=NCHW):
    """The steps that run ``layers`` by ``rules``, taking and giving ``layout``.

    Rules that leave layers out (Dropout at inference) are applied first, so the layers
    around them can fuse; then, from each remaining layer, the first rule that matches
    builds the step for the layers it covers, after a layout change if it needs another.
    """
    removed = [rule for rule in rules if rule.build is LEAVE_OUT]
    kept = [(position, layer) for position, layer in enumerate(layers)
            if not any(rule.match([layer], layout) for rule in removed)]
    steps, current, index = [], layout, 0
    while index < len(kept):
        remaining = [layer for _, layer in kept[index:]]
        rule, count = next((rule, count) for rule in rules if rule.build is not LEAVE_OUT
                           for count in (rule.match(remaining, current),) if count)
        positions = tuple(position for position, _ in kept[index:index + count])
        if rule.takes is not None and rule.takes != current:
            steps.append(_change(current, rule.takes, remaining[0], positions[0]))
            current = rule.takes
        step = rule.build(positions, remaining[:count], Context(rules, current))
        if step is not None:
            step.rule = rule
            steps.append(step)
        current = rule.gives if rule.gives is not None else current
        index += count
    if current != layout:
        steps.append(_change(current, layout))
    return steps


def build_plan(layers, fast=True, inference=False):
    """The steps that run ``layers``: the training rules' plan, or with ``inference=True`` the inference
    rules' (see :mod:`.inference`; its steps run only with ``training=False``); with ``fast=False`` each
    layer's own code, one by one."""
    if not fast:
        return [LayerStep(position, layer) for position, layer in enumerate(layers)]
    return plan_layers(layers, INFERENCE_RULES if inference else TRAINING_RULES)


class Engine:
    """The training plan and the inference plan of one list of layers, each from its table of rules.

    Each plan is made when first asked for and again when the list of layers (the objects
    in it, in order) has changed.

    Examples
    --------
    >>> from tinynet.layers import Conv2D, Flatten, MaxPool2D, ReLU
    >>> engine = Engine()
    >>> layers = [Conv2D(1, 2, 3, rng=0), ReLU(), MaxPool2D(2), Flatten()]
    >>> [step.describe() for step in engine.training_plan(layers)]
    ['NCHW -> NHWC', '0 Conv2D + 1 ReLU + 2 MaxPool2D (fused, NHWC, in the pooling windows)', '3 Flatten (from NHWC)']
    """

    def __init__(self, training_rules=TRAINING_RULES, inference_rules=INFERENCE_RULES):
        self.training_rules, self.inference_rules = training_rules, inference_rules
        self._plans = {}  # "training" / "inference" -> (ids of the layers, steps)
        self._split = None  # the training plan in parts (tinynet.engine.split), for models it pays for
        self._inference_split = None  # the inference plan in parts, for the same models' large batches
        self._split_decided = {}  # "training" / "inference" -> the steps whose split was decided
        self._flat = {}  # id(steps) -> (steps, every step of them, inner plans' included)

    def _plan(self, kind, layers, make):
        key = tuple(map(id, layers))
        known = self._plans.get(kind)
        if known is None or known[0] != key:
            known = self._plans[kind] = (key, make(layers))
        return known[1]

    def training_plan(self, layers):
        """The steps of a training forward and its backward."""
        steps = self._plan("training", layers, lambda layers: plan_layers(layers, self.training_rules))
        if self._split_decided.get("training") is not steps:  # the plan was (re)made
            self._split = PlanInParts(layers, steps, lambda shadows: plan_layers(shadows, self.training_rules)) \
                if splits(layers) else None
            self._split_decided["training"] = steps
        return steps

    def inference_plan(self, layers):
        """The steps of a forward that predicts: they keep nothing for a backward."""
        steps = self._plan("inference", layers, lambda layers: plan_layers(layers, self.inference_rules))
        if self._split_decided.get("inference") is not steps:
            self._inference_split = PlanInParts(
                layers, steps, lambda shadows: plan_layers(shadows, self.inference_rules)) if splits(layers) else None
            self._split_decided["inference"] = steps
        return steps

    def _facts(self, steps):
        """``(chunk, in_parts, convolves)`` of a plan, read once per plan from every step, inner plans' included
        (walking the nested plans at every call cost a one-image predict of a ViT 40 us): the fewest samples a
        step asks to run at a time at inference (``inference_chunk``, or None), whether a step runs in parts,
        and whether one convolves."""
        known = self._flat.get(id(steps))
        if known is None or known[0] is not steps:
            if len(self._flat) > 8:  # plans of layer lists since replaced
                self._flat.clear()
            flat = list(every_step(steps))
            chunk = min((step.inference_chunk for step in flat if step.inference_chunk), default=None)
            known = self._flat[id(steps)] = (steps, chunk, any(step.in_parts for step in flat),
                                             any(step.convolves for step in flat))
        return known[1:]

    def layer_by_layer_plan(self, layers):
        """One step per layer, each running the layer's own ``forward`` and ``backward``."""
        return self._plan("layer by layer", layers, lambda layers: build_plan(layers, fast=False))

    def forget(self):
        """Drop what the training plan's last forward kept: an inference forward came since."""
        known = self._plans.get("training")
        for step in known[1] if known else ():
            step.forget()
        if self._split is not None:
            self._split.forget()

    def run(self, steps, x, training=False):
        """``x`` through ``steps``; an error names the layer it is about, by position and name. The training
        plan of a model whose layers treat samples on their own runs in parts (:mod:`.split`)."""
        split = self._split if training and self._split is not None and self._split.steps is steps else None
        if split is not None and hasattr(x, "__len__"):
            out = split.forward(x)
            if out is not None:  # None: the batch is one part
                return out
        with self._threads_for(steps, len(x) if hasattr(x, "__len__") else 1, training):
            return run_steps(steps, x, training=training)

    def predict(self, steps, x):
        """``x`` through an inference plan: as :meth:`run`, in chunks of samples when a step asks for them
        (``inference_chunk``). At inference no step mixes samples, so the chunks' outputs are the batch's.
        A batch of more than two chunks, of a model whose training plan runs in parts, runs its chunks in
        parts too (a ViT's 1,000 images in 0.74 of the time; at 128 the parts cost more than they save)."""
        chunk, _, _ = self._facts(steps)
        if chunk is None or not hasattr(x, "__len__") or len(x) <= chunk:
            return self.run(steps, x)
        split = self._inference_split
        if split is not None and split.steps is steps and len(x) > 2 * chunk:
            out = split.forward(x, lambda part_steps, x_part: self._in_chunks(part_steps, x_part, chunk))
            if out is not None:
                return out
        return self._in_chunks(steps, x, chunk)

    def _in_chunks(self, steps, x, chunk):
        keepers = [(step, name) for step in every_step(steps) for name in step.kept_per_sample]
        outputs, kept = [], []
        for start in range(0, len(x), chunk):
            outputs.append(self.run(steps, x[start:start + chunk]))
            kept.append([getattr(step.layer, name) for step, name in keepers])
        for (step, name), values in zip(keepers, zip(*kept, strict=True), strict=True):
            setattr(step.layer, name, np.concatenate(values))  # as one forward of the whole batch keeps it
        return np.concatenate(outputs)

    def backward(self, steps, grad, input_grad=True):
        """Backpropagate ``grad`` through ``steps`` (a training plan after its forward), last step first;
        the gradient with respect to the input, or None with ``input_grad=False``, where the first step
        with parameters computes only their gradients."""
        split = self._split
        if split is not None and split.steps is steps and split.ran_last_forward():
            return split.backward(grad, input_grad)
        with self._threads_for(steps, len(grad), training=True):
            return backward_steps(steps, grad, input_grad)

    def training_threads(self, steps, samples):
        """The thread setting for whole training steps of a plan, the optimizer's step between them included: that
        of the plan's forward and backward (:meth:`run`). The optimizer's compiled step runs on the tiled products'
        threads where it may (:func:`tinynet.kernels.adam_update`); beside a plan in parts those threads would
        spin on while the parts' threads run (numba's OpenMP threads wait busily for some milliseconds after
        their work: lstm_rows' training batch took 24 ms instead of 15), so there it runs on one."""
        return self._threads_for(steps, samples, training=True)

    def inference_threads(self, steps, samples):
        """The thread setting for predictions of an inference plan in batches of ``samples``: that of :meth:`run`
        (``predict`` enters it once for all its batches)."""
        return self._threads_for(steps, samples, training=False)

    def _threads_for(self, steps, samples, training):
        """A plan with a step in parts runs its products on one thread (see
        :func:`.parallel.products_on_one_thread`); any other under :func:`~tinynet.kernels.engine_threads`,
        holding the BLAS where the plan's tiles win (:func:`~tinynet.kernels.tiles_win`)."""
        _, in_parts, convolves = self._facts(steps)
        if in_parts:
            return products_on_one_thread()
        return engine_threads(samples, tiles_win(training, convolves))
