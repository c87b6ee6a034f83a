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
from dataclasses import dataclass, field

import numpy as np

from ..errors import ArgumentError
from ..layers.base import qualified_name
from ..layers.softmax import softmax
from ..losses import SoftmaxCrossEntropy
from ..optim import SGD

__all__ = ["Explanation", "explain", "take_step", "encode_maps", "MAPS_SHOWN"]

#: The most channels of one layer the page draws ("8 of 32").
MAPS_SHOWN = 8


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
    gradient then says what would make the model surer of its own answer).
    """
    layers = model.layers
    x = np.asarray(image, dtype=model.dtype)[None, None]  # (1, 1, 28, 28)
    with model.gradients_at_inference():
        outputs = []
        for layer in layers:
            x = layer.forward(x)
            outputs.append(x)
        logits = outputs[-1]
        if logits.shape != (1, 10):
            raise ArgumentError(f"The page needs a model with ten class scores per image; this one gives "
                                f"{logits.shape[1:]}.")
        probabilities = softmax(logits[0].astype(np.float64))
        label = int(probabilities.argmax()) if label is None else label
        loss = SoftmaxCrossEntropy()
        value = loss.forward(logits, np.array([label]))
        grad = loss.backward()  # dL/d(logits), (1, 10)
        output_grads = [None] * len(layers)
        for position in reversed(range(len(layers))):
            output_grads[position] = grad
            grad = layers[position].backward(grad)
    norms = {}
    for position, layer in enumerate(layers):
        for key, array in layer.grads.items():
            norms[qualified_name(position, key)] = float(np.linalg.norm(array))
    return Explanation(image=np.asarray(image, np.float32), probabilities=probabilities, label=label,
                       loss=float(value), outputs=outputs, output_grads=output_grads, saliency=grad[0, 0],
                       weight_grad_norms=norms)


def take_step(model, lr):
    """One SGD step, ``W -= lr * dL/dW``, with the gradients :func:`explain` just left in ``model``'s layers."""
    SGD(lr=lr).step(model.layers)


def encode_maps(array, centred=False):
    """One layer's output (or gradient) for the page: its scale and its first maps as bytes.

    ``array`` is ``(1, C, H, W)`` or ``(1, F)``. The colour scale is the whole layer's
    ``[min, max]`` (``[-m, m]`` with ``m = max |value|`` when ``centred``, for gradients), and
    each shown value is sent as one byte on that scale (256 levels: what a colour map draws).
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
    span = high - low
    levels = np.zeros(shown.shape) if span == 0 else (shown - low) / span
    pixels = np.round(np.clip(levels, 0, 1) * 255).astype(np.uint8)
    return {"low": low, "high": high, "channels": channels, "shown": int(shown.shape[0]),
            "height": int(height), "width": int(width), "data": base64.b64encode(pixels.tobytes()).decode("ascii")}
