r"""Losses: ``forward`` returns the mean loss (over the batch; for MSE over every element), ``backward`` its gradient.

Softmax cross-entropy, fused. With logits ``z`` ``(N, K)``, labels ``t`` and
``p = softmax(z)``::

    L = -(1/N) sum_n log p[n, t_n] = (1/N) sum_n (logsumexp(z_n) - z[n, t_n])
    dL/dz = (p - onehot(t)) / N

``logsumexp(z) = m + log sum exp(z - m)`` with ``m = max(z)`` keeps every ``exp`` at most 1,
so logits of +-1e4 give a finite loss and gradient.

Mean squared error over all ``N*K`` elements::

    L = (1/(N*K)) sum (y - t)^2        dL/dy = 2 (y - t) / (N*K)
"""

import numpy as np

from ._checks import expect_rank, float_array, number
from .errors import ArgumentError, ArgumentTypeError, NotTrainedForwardError, ShapeError
from .kernels import softmax_cross_entropy

__all__ = ["Loss", "SoftmaxCrossEntropy", "MeanSquaredError", "check_labels"]


def check_labels(labels, n_samples, n_classes, owner):
    """Labels as an int64 ``(N,)`` array in ``0 .. n_classes-1``, or a clear error.

    Examples
    --------
    >>> check_labels([0, 2, 1], 3, 3, "fit")
    array([0, 2, 1])
    >>> check_labels([0, 3], 2, 3, "fit")
    Traceback (most recent call last):
    ...
    tinynet.errors.ArgumentError: fit expects labels in 0..2 (the model has 3 outputs); received values from 0 to 3.
    """
    labels = np.asarray(labels)
    if labels.dtype == bool or not np.issubdtype(labels.dtype, np.integer):
        raise ArgumentTypeError(
            f"{owner} expects integer class labels; received dtype {labels.dtype}. "
            f"Convert them with labels.astype(np.int64)."
        )
    if labels.shape != (n_samples,):
        raise ShapeError(f"{owner} expects labels of shape ({n_samples},), one per sample; got {tuple(labels.shape)}.")
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ArgumentError(
            f"{owner} expects labels in 0..{n_classes - 1} (the model has {n_classes} outputs); "
            f"received values from {labels.min()} to {labels.max()}."
        )
    return labels.astype(np.int64, copy=False)


class Loss:
    """A loss: ``forward(outputs, targets) -> float`` then ``backward() -> d(loss)/d(outputs)``.

    Examples
    --------
    See :class:`SoftmaxCrossEntropy` and :class:`MeanSquaredError`.
    """

    def _saved_values(self):
        if getattr(self, "_saved", None) is None:
            raise NotTrainedForwardError(f"{type(self).__name__}.backward() needs a forward() first.")
        return self._saved


class SoftmaxCrossEntropy(Loss):
    """Softmax followed by cross-entropy, in one stable step, taking logits.

    Shape
    -----
    - logits: ``(N, K)`` floats; labels: ``(N,)`` ints in ``0 .. K-1``.
    - ``forward`` returns a float (mean over the batch); ``backward`` returns ``(N, K)``.

    Examples
    --------
    >>> import numpy as np
    >>> loss = SoftmaxCrossEntropy()
    >>> round(loss.forward(np.zeros((2, 4)), np.array([0, 3])), 4)   # log(4)
    1.3863
    >>> loss.backward()[0]
    array([-0.375,  0.125,  0.125,  0.125])

    With ``label_smoothing=eps`` the target is ``1 - eps`` on the label and ``eps / K`` spread
    over all ``K`` classes (PyTorch's ``CrossEntropyLoss(label_smoothing=eps)``)::

        loss = (1 - eps) * (-log p[t]) + eps * mean_k(-log p[k])
        dL/dlogits = (p - target) / N,  target = (1 - eps) * onehot(t) + eps / K

    >>> smooth = SoftmaxCrossEntropy(label_smoothing=0.1)
    >>> round(smooth.forward(np.zeros((2, 4)), np.array([0, 3])), 4)   # still log(4): p is uniform
    1.3863
    >>> smooth.backward()[0]
    array([-0.3375,  0.1125,  0.1125,  0.1125])
    """

    def __init__(self, label_smoothing=0.0):
        self.label_smoothing = number(label_smoothing, "label_smoothing", "SoftmaxCrossEntropy", low=0, high=1)

    def forward(self, logits, labels):
        logits = float_array(logits, "SoftmaxCrossEntropy", "logits")
        expect_rank(logits, 2, "SoftmaxCrossEntropy", "(N, classes)")
        n, k = logits.shape
        labels = check_labels(labels, n, k, "SoftmaxCrossEntropy")
        losses, probs, wrong = softmax_cross_entropy(logits, labels, self.label_smoothing)
        self._saved = (probs, labels, wrong)
        return float(losses.mean())

    def backward(self):
        probs, labels, wrong = self._saved_values()
        grad = probs.copy()
        grad[np.arange(len(labels)), labels] = -wrong  # p[t] - 1 = -(sum of the wrong classes' p), not rounded
        eps = self.label_smoothing
        if eps:  # p - ((1 - eps) onehot + eps / K) = (p - onehot) + eps (onehot - 1 / K)
            grad -= eps / grad.shape[1]
            grad[np.arange(len(labels)), labels] += eps
        grad /= len(labels)
        return grad


class MeanSquaredError(Loss):
    """Mean of squared differences over every element.

    ``targets`` has the outputs' shape; integer labels ``(N,)`` with outputs ``(N, K)`` are
    one-hot encoded first, so the loss also fits a classifier.

    Examples
    --------
    >>> import numpy as np
    >>> loss = MeanSquaredError()
    >>> loss.forward(np.array([[1.0, 3.0]]), np.array([[0.0, 1.0]]))
    2.5
    >>> loss.backward()
    array([[1., 2.]])
    """

    def forward(self, outputs, targets):
        outputs = float_array(outputs, "MeanSquaredError", "outputs")
        targets = np.asarray(targets)
        if np.issubdtype(targets.dtype, np.integer) and outputs.ndim == 2 and targets.ndim == 1:
            labels = check_labels(targets, outputs.shape[0], outputs.shape[1], "MeanSquaredError")
            targets = np.eye(outputs.shape[1], dtype=outputs.dtype)[labels]
        if targets.shape != outputs.shape:
            raise ShapeError(
                f"MeanSquaredError expects targets of the outputs' shape {tuple(outputs.shape)}; "
                f"got {tuple(targets.shape)}."
            )
        diff = outputs - targets.astype(outputs.dtype, copy=False)
        self._saved = (diff,)
        return float(np.mean(diff * diff))

    def backward(self):
        (diff,) = self._saved_values()
        return diff * diff.dtype.type(2 / diff.size)
