r"""Gradients with respect to the input: what a trained network looks at, and how to fool it.

For an image ``x`` with label ``t`` and the model ``f`` as it predicts, the loss is
``L = -log softmax(f(x))[t]``. Backprop does not stop at the first layer's weights: one more
``backward`` gives ``dL/dx``, one number per pixel, saying how the loss would move if that
pixel grew a little. A step along its sign, ``x + epsilon * sign(dL/dx)``, is the *fast
gradient sign method* (Goodfellow et al., 2014), the change that raises the loss the most
under a max-norm budget, to first order.

A *saliency map* (Simonyan et al., 2013) is the gradient of the class score instead,
``ds_c/dx`` with ``s`` the logits (:func:`class_score_gradient`). The two differ by the
softmax: ``dL/dx = sum_k (p_k - [k = t]) ds_k/dx``, which vanishes as ``p_t -> 1``, so on a
digit the model is sure of ``dL/dx`` is nearly 0 while ``ds_t/dx`` still shows what raises the
score.

Both run every layer's own ``forward`` and ``backward`` (the textbook in
:mod:`tinynet.layers`) inside :meth:`tinynet.Sequential.gradients_at_inference`: BatchNorm with
its running statistics, no dropout, so the gradient is that of the model that made the
prediction.

A model whose last layer is a ``Softmax`` outputs the probabilities ``p`` themselves; its
loss is ``-log p[t]`` (as ``evaluate`` scores it), whose gradient with respect to the
softmax's input is ``p - onehot(t)``, the fused gradient of the model without that last
layer. So the layers before it are backpropagated from there: the same gradient as going
through ``-1/p[t]`` and the softmax's Jacobian, without dividing by a probability that may
have rounded to 0. Its class scores are the logits that Softmax normalises.
"""

import numpy as np

from ._checks import number
from .errors import ArgumentError, ArgumentTypeError
from .losses import SoftmaxCrossEntropy, check_labels
from .model import Sequential
from .training.inputs import as_batch, batches, prepare_inputs
from .training.loop import check_model, ends_in_softmax

__all__ = ["input_gradient", "class_score_gradient"]


def input_gradient(model, x, labels, batch_size=500):
    """``dL_i/dx_i`` for every image: the gradient of its own cross-entropy with respect to its pixels.

    Parameters
    ----------
    model : Sequential
        A classifier that outputs logits, or probabilities from a last ``Softmax`` layer
        (the loss is then ``-log p[label]``, as :meth:`~tinynet.Sequential.evaluate` takes it).
    x : array (N, ...)
        Float images in [0, 1] or uint8 images (scaled by 1/255), as ``predict`` takes them.
    labels : int array (N,)
        The class each image's loss is taken against (its true label, or a target class).
    batch_size : int
        Images per forward and backward pass (a positive int).

    Returns
    -------
    array, the shape of ``x``, in the model's dtype
        Each image's gradient, not divided by the batch size (the loss of image ``i`` alone).

    Examples
    --------
    >>> import numpy as np, tinynet
    >>> model = tinynet.models.basic_mlp(rng=0)
    >>> x = np.random.default_rng(0).random((3, 1, 28, 28), dtype=np.float32)
    >>> input_gradient(model, x, np.array([1, 2, 3])).shape
    (3, 1, 28, 28)
    """
    loss = SoftmaxCrossEntropy()

    def loss_gradient(logits, labels):
        loss.forward(logits, labels)
        # SoftmaxCrossEntropy's gradient is that of the batch's mean; times N, each image's own.
        return loss.backward() * logits.dtype.type(len(logits))

    return _backward_from(model, x, labels, batch_size, loss_gradient, "input_gradient")


def class_score_gradient(model, x, classes, batch_size=500):
    """``ds_c/dx`` for every image: the gradient of one class's score (logit) with respect to its pixels.

    The saliency map of Simonyan et al. (2013). Unlike :func:`input_gradient` it does not fade
    as the model grows sure of ``c``: the softmax is not in it.

    Parameters
    ----------
    model : Sequential
        A classifier that outputs logits, or probabilities from a last ``Softmax`` layer (the
        scores are then that layer's input).
    x : array (N, ...)
        Float images in [0, 1] or uint8 images (scaled by 1/255), as ``predict`` takes them.
    classes : int array (N,)
        The class whose score is differentiated, one per image.
    batch_size : int
        Images per forward and backward pass (a positive int).

    Returns
    -------
    array, the shape of ``x``, in the model's dtype
        Each image's gradient of its own class's score.

    Examples
    --------
    >>> import numpy as np, tinynet
    >>> model = tinynet.models.basic_mlp(rng=0)
    >>> x = np.random.default_rng(0).random((3, 1, 28, 28), dtype=np.float32)
    >>> class_score_gradient(model, x, np.array([1, 2, 3])).shape
    (3, 1, 28, 28)
    """
    def one_hot(logits, classes):
        grad = np.zeros_like(logits)
        grad[np.arange(len(logits)), classes] = 1  # d(s_c)/d(logits)
        return grad

    return _backward_from(model, x, classes, batch_size, one_hot, "class_score_gradient")


def _backward_from(model, x, labels, batch_size, logits_gradient, caller):
    """Batch by batch, at inference: the backward of ``logits_gradient(logits, labels)`` to the pixels."""
    if not isinstance(model, Sequential):
        raise ArgumentTypeError(f"{caller} expects a tinynet.Sequential; received {type(model).__name__}. "
                                f"Wrap layers in one: tinynet.Sequential([...]).")
    check_model(model, caller, backprop=True)
    batch_size = number(batch_size, "batch_size", caller, low=1, integer=True)
    x = prepare_inputs(x, caller)
    classes = model.output_shapes(x.shape[1:])[-1][-1]
    labels = check_labels(labels, len(x), classes, caller)
    logits_model = _without_final_softmax(model, caller)
    grads = np.empty(x.shape, dtype=model.dtype)
    with logits_model.gradients_at_inference():
        for index in batches(len(x), batch_size):
            logits = logits_model.forward(as_batch(x[index], model.dtype))
            grads[index] = logits_model.backward(logits_gradient(logits, labels[index]))
    return grads


def _without_final_softmax(model, caller):
    """``model``, or the model of its layers before a last Softmax over the classes (its outputs are then logits)."""
    if not ends_in_softmax(model):
        return model
    last = model.layers[-1]
    if last.axis not in (-1, 1):
        raise ArgumentError(
            f"{caller} works on the logits over the classes (the last axis), but the model ends in "
            f"{last!r}, which normalises another axis. End the model in Softmax() or in logits.")
    return Sequential(model.layers[:-1])  # no layers (a model that is a Softmax alone): the identity
