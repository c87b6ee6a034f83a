"""Answers to the exercises of what_the_network_sees.ipynb. Try them yourself first."""

import numpy as np

import tinynet
from tinynet.losses import SoftmaxCrossEntropy


def saliency(model, x, labels):
    loss = SoftmaxCrossEntropy()
    with model.gradients_at_inference():
        logits = model.forward(x)
        loss.forward(logits, labels)
        # The loss's gradient is that of the mean over the batch: times N, each image's own.
        return model.backward(loss.backward() * logits.dtype.type(len(x)))


def targeted_fgsm(model, x, targets, eps):
    # Minus: we want the loss of the *target* label to go down, so we step against its gradient.
    return np.clip(x - eps * np.sign(tinynet.input_gradient(model, x, targets)), 0, 1)


def fgsm_gain(grad, eps):
    # g . delta over the box |delta| <= eps is largest at delta = eps * sign(g): eps * sum |g|.
    return eps * np.abs(grad).reshape(len(grad), -1).sum(axis=1)
