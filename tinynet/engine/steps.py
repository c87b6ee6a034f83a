"""The steps a plan is made of: the contract, a layer run as written, the layout changes, Dense, Flatten, Residual.

A step runs one layer, or a few fused ones, forward and backward. It keeps what its
backward needs on itself (never in a layer), and it fills the ``grads`` of the layers it
runs, as their own backward would, so an optimizer cannot tell the difference. A step that
computes what a layer computes calls the layer's own function for it (:func:`~tinynet.layers.dense.affine`,
:func:`~tinynet.layers.reshape.flatten`, ...): a formula lives in the layer's file only.
"""

import numpy as np

from ..errors import NotTrainedForwardError
from ..kernels import matmul
from ..layers.dense import affine, dense_grads, dense_input_grad
from ..layers.reshape import flatten

__all__ = ["Step", "LayerStep", "DenseStep", "DenseReluStep", "ToChannelsLast", "ToChannelsFirst",
           "FlattenChannelsLast", "ResidualStep", "to_channels_last", "to_channels_first", "checked_channels_last",
           "run_steps", "located"]


def to_channels_last(x):
    """``(N, C, H, W) -> (N, H, W, C)``, contiguous."""
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def to_channels_first(x):
    """``(N, H, W, C) -> (N, C, H, W)``, contiguous."""
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def checked_channels_last(layer, x):
    """NHWC activations ``x`` checked by ``layer.check_input`` as the NCHW images they are, contiguous in
    the layer's dtype: a wrong input gets the layer's own error, with the shapes the user knows (NCHW)."""
    if x.ndim != 4:
        return layer.check_input(x)  # not images at all: the layer says so
    return np.ascontiguousarray(layer.check_input(x.transpose(0, 3, 1, 2)).transpose(0, 2, 3, 1))


def every_step(steps):
    """``steps`` and, after each Residual step, the steps of its inner plan (depth first)."""
    for step in steps:
        yield step
        yield from every_step(getattr(step, "inner", ()))


def backward_steps(steps, grad, input_grad=True):
    """Backpropagate ``grad`` through ``steps`` (a training plan after its forward), last step first: the gradient
    with respect to the input, or None with ``input_grad=False``, where the first step with parameters computes
    only their gradients."""
    first_trainable = next((step for step in steps if step.trainable), None)
    for step in reversed(steps):
        if not input_grad and step is first_trainable:
            return step.backward(grad, input_grad=False)
        grad = step.backward(grad)
    return grad


def run_steps(steps, x, training=False):
    """``x`` through ``steps`` in order; an error of a step names the layer it is about, by position and name."""
    for step in steps:
        try:
            x = step.forward(x, training=training)
        except (ValueError, TypeError) as error:
            if getattr(error, "located_by", None) is step:  # the step named the layer itself
                raise
            where = step.where()
            if where is None:
                raise
            raise located(error, step, *where) from error
    return x


def located(error, step, position, name):
    """``error`` (same type) with ``"Layer <position> (<name>): "`` in front of its message, as raised by ``step``.

    A fused step whose error is about another of its layers than the first (a pooling too
    large for the convolution's output) raises this itself.
    """
    if len(error.args) != 1 or not isinstance(error.args[0], str):
        return error
    try:
        new = type(error)(f"Layer {position} ({name}): {error.args[0]}")
    except TypeError:  # an exception type that takes other arguments: as it was
        return error
    new.located_by = step
    return new


class Step:
    """One step of a plan: a layer (or a fused group) in a given layout, or a layout change."""

    #: Positions in the model of the layers this step runs.
    positions = ()
    #: Whether the step runs a layer with parameters (backward fills its ``grads``).
    trainable = False
    #: The rule that built the step (None for a layout change, or a step made by hand).
    rule = None
    #: Whether the step cuts the batch into parts on threads (:mod:`.parallel`): a plan with one
    #: runs its products on one BLAS thread throughout.
    in_parts = False
    #: At inference, the most samples the plan around this step should take at once (None: any), so
    #: that the arrays between its steps stay in cache; larger batches go through in chunks.
    inference_chunk = None
    #: Whether the step convolves images: with AVX2 the register tiles beat the BLAS only on a prediction's
    #: convolutions, so only a plan with such a step runs its prediction in them (:func:`~tinynet.kernels.tiles_win`).
    convolves = False
    #: Names of what the step writes on its layer for every sample (as the layer's forward keeps
    #: it, e.g. attention's weights): a batch predicted in chunks gets the chunks' values joined.
    kept_per_sample = ()

    def __init__(self):
        self._saved = None

    def forward(self, x, training=False):
        raise NotImplementedError

    def backward(self, grad, input_grad=True):
        """The gradient with respect to the step's input (None with ``input_grad=False``, which
        only fills the layers' ``grads``: the first trainable step of a training backward)."""
        raise NotImplementedError

    def describe(self):
        raise NotImplementedError

    def where(self):
        """``(position, class name)`` of the layer an error of this step is about (None: no layer)."""
        layer = getattr(self, "layer", None)
        return None if layer is None or not self.positions else (self.positions[0], type(layer).__name__)

    def forget(self):
        """Drop what the last training forward kept: a backward after this one refuses."""
        self._saved = None

    def _saved_values(self):
        if self._saved is None:
            raise NotTrainedForwardError(
                f"The step '{self.describe()}' has no values from a training forward; call "
                f"model.forward(x, training=True) before model.backward(grad)."
            )
        return self._saved


class LayerStep(Step):
    """A layer run as written: its own ``forward`` and ``backward`` (NCHW, or element-wise on any layout).

    Every layer the rules do not know runs this way, so a new layer works in a model as
    soon as its ``forward`` and ``backward`` do.
    """

    def __init__(self, position, layer):
        super().__init__()
        self.positions, self.layer = (position,), layer
        self.trainable = bool(layer.params)

    def forward(self, x, training=False):
        return self.layer.forward(x, training=training)

    def backward(self, grad, input_grad=True):
        grad_x = self.layer.backward(grad)
        return grad_x if input_grad else None

    def describe(self):
        return f"{self.positions[0]} {type(self.layer).__name__}"


class DenseStep(LayerStep):
    """A Dense layer whose backward can skip the input gradient (``dX = dY Wᵀ``) when nothing needs it.

    The first layer of an MLP is the first trainable step: its input gradient, a
    ``(N, 784)`` product, would only be thrown away. The arithmetic is the layer's
    :func:`~tinynet.layers.dense.affine` and its backward.
    """

    def forward(self, x, training=False):
        x = self.layer.check_input(x)
        self._saved = x if training else None
        return affine(x, self.layer.params["W"], self.layer.params["b"], matmul)  # (N,...,D) @ (D,M) -> (N,...,M)

    def backward(self, grad, input_grad=True):
        x = self._saved_values()
        return self._gradients(x, grad.astype(x.dtype, copy=False), input_grad)

    def _gradients(self, x, grad, input_grad):
        grad_w, grad_b = dense_grads(x, grad, matmul)  # (D,M), (M,): Dense's own formula
        self.layer.grads = {"W": grad_w, "b": grad_b}
        return dense_input_grad(grad, self.layer.params["W"], matmul) if input_grad else None  # (N,...,M) -> (N,...,D)


class DenseReluStep(DenseStep):
    """A Dense layer and the ReLU after it, in training: the bias and the ReLU in the product's epilogue
    (:func:`~tinynet.kernels.matmul`'s ``shift`` and ``relu``, as at inference), the ReLU's backward mask read
    from the output (``y > 0`` exactly where ``x W + b > 0``, NaN included). The same bits as the two layers
    run one after the other (the tiles add the bias rounded once, as ``+=`` does), without the passes of its
    own the bias, the ReLU and its mask took.
    """

    def __init__(self, positions, dense):
        super().__init__(positions[0], dense)
        self.positions = positions  # the Dense's and the ReLU's

    def forward(self, x, training=False):
        x = self.layer.check_input(x)
        weights = self.layer.params["W"]
        y = matmul(x.reshape(-1, x.shape[-1]), weights, shift=self.layer.params["b"], relu=True)  # max(xW + b, 0)
        y = y.reshape(*x.shape[:-1], weights.shape[1])
        self._saved = (x, y) if training else None
        return y

    def backward(self, grad, input_grad=True):
        x, y = self._saved_values()
        grad = grad.astype(x.dtype, copy=False) * (y > 0)  # the ReLU's dX = dY * (x > 0), its x being xW + b
        return self._gradients(x, grad, input_grad)

    def describe(self):
        return f"{self.positions[0]} Dense + {self.positions[1]} ReLU (bias and ReLU in the product's epilogue)"


class ToChannelsLast(Step):
    """NCHW -> NHWC on the way into a run of image layers (free for one channel)."""

    def __init__(self, first_layer=None, position=None):
        super().__init__()
        self.first_layer, self.position = first_layer, position

    def forward(self, x, training=False):
        if self.first_layer is not None:
            x = self.first_layer.check_input(x)  # the layer's own errors, in NCHW terms
        return to_channels_last(x)

    def backward(self, grad, input_grad=True):
        return to_channels_first(grad) if input_grad else None

    def where(self):  # its errors are the first layer's, about that layer's input
        return None if self.first_layer is None else (self.position, type(self.first_layer).__name__)

    def describe(self):
        return "NCHW -> NHWC"


class ToChannelsFirst(Step):
    """NHWC -> NCHW on the way out of a run, for a layer that needs NCHW."""

    def forward(self, x, training=False):
        return to_channels_first(x)

    def backward(self, grad, input_grad=True):
        return to_channels_last(grad) if input_grad else None

    def describe(self):
        return "NHWC -> NCHW"


class FlattenChannelsLast(Step):
    """Flatten of NHWC activations into NCHW order ``(c, h, w)``, so Dense weights keep their meaning."""

    def __init__(self, position, layer):
        super().__init__()
        self.positions, self.layer = (position,), layer

    def forward(self, x, training=False):
        self._saved = x.shape if training else None
        return flatten(to_channels_first(x))

    def backward(self, grad, input_grad=True):
        n, h, w, c = self._saved_values()
        return to_channels_last(grad.reshape(n, c, h, w)) if input_grad else None

    def describe(self):
        return f"{self.positions[0]} Flatten (from NHWC)"


class ResidualStep(Step):
    """A Residual layer, ``x + plan(x)``, its inner layers run by a plan of their own (in the layout around it).

    ``inner`` comes from the same rules as the plan around it: fused, channels-last,
    rewritten for inference, as the outer layers are.
    """

    def __init__(self, position, layer, inner, channels_last=False):
        super().__init__()
        self.positions, self.layer, self.inner = (position,), layer, inner
        self.channels_last = channels_last
        self.trainable = bool(layer.params)

    def forward(self, x, training=False):
        self._saved = None
        out = run_steps(self.inner, x, training=training)
        if out.shape != x.shape:  # the layer's own error, in the user's NCHW shapes
            user = (lambda shape: (shape[0], shape[3], *shape[1:3])) if self.channels_last and x.ndim == 4 else tuple
            self.layer.check_output(user(x.shape), user(out.shape))
        self._saved = True if training else None
        return x + out

    def backward(self, grad, input_grad=True):
        self._saved_values()
        inner_grad = grad
        for step in reversed(self.inner):  # fills the inner layers' grads
            inner_grad = step.backward(inner_grad)
        return grad + inner_grad if input_grad else None  # dX = dY + f.backward(dY)

    def forget(self):
        super().forget()
        for step in self.inner:
            step.forget()

    def describe(self):
        inner = "; ".join(step.describe() for step in self.inner)
        return f"{self.positions[0]} Residual [{inner}]"
