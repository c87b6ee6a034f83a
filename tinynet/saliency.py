r"""Gradients with respect to the input: what a trained network looks at, and how to fool it.

For an image ``x`` with label ``t`` and the model ``f`` as it predicts, the loss is
``L = -log softmax(f(x))[t]``. Backprop does not stop at the first layer's weights: one more
``backward`` gives ``dL/dx``, one number per pixel, saying how the loss would move if that
pixel grew a little. Drawn as a picture it is a *saliency map* (Simonyan et al., 2013); a
step along its sign, ``x + epsilon * sign(dL/dx)``, is the *fast gradient sign method*
(Goodfellow et al., 2014), the smallest-looking change that raises the loss the most under
a max-norm budget.

:func:`input_gradient` runs every layer's own ``forward`` and ``backward`` (the textbook in
:mod:`tinynet.layers`) inside :meth:`tinynet.Sequential.gradients_at_inference`: BatchNorm with
its running statistics, no dropout, so the gradient is that of the model that made the
prediction.
"""

import numpy as np

from .losses import SoftmaxCrossEntropy, check_labels
from .training.inputs import as_batch, batches, prepare_inputs

__all__ = ["input_gradient"]


def input_gradient(model, x, labels, batch_size=500):
    """``dL_i/dx_i`` for every image: the gradient of its own cross-entropy with respect to its pixels.

    Parameters
    ----------
    model : Sequential
        A classifier that outputs logits.
    x : array (N, ...)
        Float images in [0, 1] or uint8 images (scaled by 1/255), as ``predict`` takes them.
    labels : int array (N,)
        The class each image's loss is taken against (its true label, or a target class).
    batch_size : int
        Images per forward and backward pass.

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
    x = prepare_inputs(x, "input_gradient")
    classes = model.output_shapes(x.shape[1:])[-1][-1]
    labels = check_labels(labels, len(x), classes, "input_gradient")
    grads = np.empty(x.shape, dtype=model.dtype)
    loss = SoftmaxCrossEntropy()
    with model.gradients_at_inference():
        for index in batches(len(x), batch_size):
            logits = model.forward(as_batch(x[index], model.dtype))
            loss.forward(logits, labels[index])
            # SoftmaxCrossEntropy's gradient is that of the batch's mean; times N, each image's own.
            grads[index] = model.backward(loss.backward() * logits.dtype.type(len(logits)))
    return grads
