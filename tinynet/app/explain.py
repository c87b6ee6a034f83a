"""What the page shows for one drawn digit, computed by the layers themselves, one by one.

For a 28x28 image ``x`` and a label ``t`` (the digit the user says it is; the prediction
when they have not said)::

    a_0 = x,  a_i = layer_i.forward(a_{i-1})          every layer's output, as it predicts
    p = softmax(a_n),  L = -log p[t]                   the probabilities and the loss
    g_n = dL/da_n = p - onehot(t)                      SoftmaxCrossEntropy.backward
    g_{i-1} = layer_i.backward(g_i)                    each layer's output gradient; g_0 is the saliency
                                                       dL/dx, and each layer's grads hold dL/dW

Nothing here computes a layer's maths again: it calls ``forward`` and ``backward`` of the
layers a learner reads in :mod:`tinynet.layers`, inside
:meth:`tinynet.Sequential.gradients_at_inference` (BatchNorm with its running statistics,
no dropout: the gradients of the model that made the prediction).
"""

import base64
import copy
from dataclasses import dataclass, field

import numpy as np

from ..errors import ArgumentError, ArgumentTypeError, ShapeError
from ..layers.base import qualified_name
from ..layers.softmax import Softmax, softmax
from ..losses import SoftmaxCrossEntropy
from ..optim import SGD

__all__ = ["Explanation", "explain", "take_step", "encode_maps", "decode_maps", "page_model", "ModelDivergedError",
           "MAPS_SHOWN"]

#: The most channels of one layer the page draws ("8 of 32").
MAPS_SHOWN = 8
#: What the page reads and answers: one 28x28 grey image in, ten class scores out.
IMAGE_SHAPE, CLASSES = (1, 28, 28), 10


class ModelDivergedError(ArgumentError):
    """The model's numbers are no longer finite (steps at too large a learning rate): only a reset helps."""


def ends_in_softmax(model):
    """True for a model whose last layer turns its scores into probabilities (the loss then reads its input)."""
    return isinstance(model.layers[-1], Softmax)


def page_model(model):
    """A float64 copy of ``model`` for the page, or a clear error if it cannot read a digit or give ten classes.

    float64 because the page shows how small gradients get: for a digit the model is sure of,
    ``1 - p`` is about 1e-8, which float32 rounds to 0 (a loss of "-0.0", gradients of 0).
    """
    from ..model import Sequential

    if not isinstance(model, Sequential) or not model.layers:
        raise ArgumentTypeError(f"The page shows a tinynet Sequential with layers; received {type(model).__name__}"
                                f"{'' if getattr(model, 'layers', None) is None else ' without layers'}.")
    try:
        shapes = model.output_shapes(IMAGE_SHAPE)
    except (ValueError, TypeError) as error:
        raise ShapeError(f"The page needs a model that reads 28x28 one-channel images (N, 1, 28, 28); this one "
                         f"cannot: {error}") from None
    if tuple(shapes[-1]) != (CLASSES,):
        raise ShapeError(f"The page needs a model with ten class scores per image (MNIST digits); this one gives "
                         f"{tuple(shapes[-1])} per image. Load a model trained on 28x28 digits.")
    return copy.deepcopy(model).astype(np.float64)


@dataclass
class Explanation:
    """One image through the model and back: every array the page draws."""

    image: np.ndarray  # (28, 28), as the model sees it
    probabilities: np.ndarray  # (10,)
    label: int  # the label the loss was taken against
    loss: float
    outputs: list = field(default_factory=list)  # a_i, each (1, ...) as the layer returned it
    output_grads: list = field(default_factory=list)  # g_i = dL/da_i, the same shapes
    saliency: np.ndarray = None  # dL/dx, (28, 28)
    weight_grad_norms: dict = field(default_factory=dict)  # "3.W" -> ||dL/dW||


def explain(model, image, label=None):
    """Forward and backward of ``image`` ((28, 28), float in [0, 1]) through ``model``, layer by layer.

    ``label`` is the class the loss is taken against; None takes the predicted class (the
    gradient then says what would make the model surer of its own answer). The loss is taken
    on the class scores: the last layer's output, or the input of a last ``Softmax`` (whose
    output gradient is then ``dL/dp = -1/p[label]`` at the label, 0 elsewhere). Raises
    :class:`ModelDivergedError` when a number is no longer finite.
    """
    layers = model.layers
    x = np.asarray(image, dtype=model.dtype)[None, None]  # (1, 1, 28, 28)
    scores_at = len(layers) - 1 - ends_in_softmax(model)  # the layer whose output are the class scores
    with model.gradients_at_inference(), np.errstate(all="ignore"):  # a diverged model is reported below
        outputs = []
        for layer in layers:
            x = layer.forward(x)
            outputs.append(x)
        logits = outputs[scores_at].astype(np.float64)
        _check_finite(logits, "class scores")
        probabilities = softmax(logits[0])
        label = int(probabilities.argmax()) if label is None else label
        loss = SoftmaxCrossEntropy()
        value = loss.forward(logits, np.array([label])) + 0.0  # + 0.0: -0.0 (a certain answer) reads as 0
        grad = loss.backward()  # dL/d(scores) = p - onehot(label), (1, 10)
        output_grads = [None] * len(layers)
        if scores_at < len(layers) - 1:
            # Softmax's own backward of dL/dp would divide by p[label] and lose the digits of p - onehot.
            output_grads[-1] = np.where(np.arange(CLASSES) == label, -1 / max(probabilities[label], 1e-300), 0)[None]
        for position in reversed(range(scores_at + 1)):
            output_grads[position] = grad
            grad = layers[position].backward(grad)
        for name, arrays in (("outputs", outputs), ("gradients", output_grads + [grad])):
            for array in arrays:
                _check_finite(array, name)
    norms = {}
    for position, layer in enumerate(layers):
        for key, array in layer.grads.items():
            norms[qualified_name(position, key)] = float(np.linalg.norm(array))
    _check_finite(np.array(list(norms.values())), "weight gradients")
    return Explanation(image=np.asarray(image, np.float32), probabilities=probabilities, label=label,
                       loss=float(value), outputs=outputs, output_grads=output_grads, saliency=grad[0, 0],
                       weight_grad_norms=norms)


def _check_finite(array, what):
    if not np.isfinite(array).all():
        raise ModelDivergedError(f"The model's {what} are no longer finite numbers (NaN or infinite): its weights "
                                 f"diverged after steps at too large a learning rate. Press Reset.")


def take_step(model, lr):
    """One SGD step, ``W -= lr * dL/dW``, with the gradients :func:`explain` just left in ``model``'s layers."""
    SGD(lr=lr).step(model.layers)


def encode_maps(array, centred=False):
    """One layer's output (or gradient) for the page: its exact range and its first maps' values.

    ``array`` is ``(1, C, H, W)`` or ``(1, F)``. ``low`` and ``high`` are the whole layer's
    minimum and maximum in float64 (``-m`` and ``m``, ``m = max |value|``, when ``centred``,
    for gradients); the first :data:`MAPS_SHOWN` channels' values are sent as float32 (base64,
    little-endian, row-major): the page colours them on the scale the learner picks (this
    layer's range, or one logarithmic scale for every layer and every answer), and a clicked
    number is the number the API explains.
    """
    values = np.asarray(array, dtype=np.float64)[0]
    if centred:
        high = float(np.abs(values).max())
        low = -high
    else:
        low, high = float(values.min()), float(values.max())
    if values.ndim == 3:
        channels = values.shape[0]
        shown = values[:MAPS_SHOWN]
        height, width = shown.shape[1:]
    else:
        channels, shown = 1, values.reshape(1, -1)
        height, width = 1, shown.shape[1]
    largest = float(np.finfo(np.float32).max)  # a model on its way to diverging may exceed float32; low/high do not
    data = np.ascontiguousarray(np.clip(shown, -largest, largest), dtype="<f4").tobytes()
    return {"low": low, "high": high, "channels": channels, "shown": int(shown.shape[0]),
            "height": int(height), "width": int(width), "values": base64.b64encode(data).decode("ascii")}


def decode_maps(maps):
    """The shown values of :func:`encode_maps`'s answer as a float32 array ``(shown, height, width)``."""
    data = np.frombuffer(base64.b64decode(maps["values"]), dtype="<f4")
    return data.reshape(maps["shown"], maps["height"], maps["width"])
