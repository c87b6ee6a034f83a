"""The training and inference loops behind ``Sequential.fit``, ``evaluate`` and ``predict``.

One training step is the whole of backprop::

    logits = model.forward(x_batch, training=True)
    loss_value = loss.forward(logits, y_batch)
    model.backward(loss.backward())        # every layer fills its grads
    optimizer.step(model.layers)           # every parameter moves

Inputs may be float arrays or uint8 images; uint8 is scaled to [0, 1] (divided by 255)
batch by batch, so a 60,000-image uint8 data set is never copied whole as floats.
"""

import math
import numbers
import time

import numpy as np

from .errors import ShapeError, TrainingDivergedError
from .history import History
from .layers import Softmax
from .layers.softmax import softmax
from .losses import SoftmaxCrossEntropy, check_labels
from .optim import Adam

__all__ = ["fit", "evaluate", "predict", "prepare_inputs", "batches"]


def prepare_inputs(x, owner):
    """Check ``x`` once at the edge: a non-empty array of floats (finite) or uint8 images."""
    x = np.asarray(x)
    if x.dtype != np.uint8 and not np.issubdtype(x.dtype, np.floating):
        raise TypeError(
            f"{owner} expects float images (scaled to [0, 1]) or uint8 images (scaled here by 1/255); "
            f"received dtype {x.dtype}. Convert with x.astype(np.float32) / 255 or pass uint8."
        )
    if x.ndim < 2 or x.shape[0] == 0:
        raise ShapeError(f"{owner} expects a non-empty batch of samples (N, ...); got shape {tuple(x.shape)}.")
    if x.dtype != np.uint8 and not np.isfinite(x).all():
        raise ValueError(f"{owner} received inputs containing NaN or inf; clean or drop those samples first.")
    return x


def as_batch(x, dtype):
    """A batch in the model's dtype; uint8 images are scaled to [0, 1]."""
    if x.dtype == np.uint8:
        return x.astype(dtype) * dtype.type(1 / 255)
    return x.astype(dtype, copy=False)


def _positive_int(value, name, owner, allow_zero=False):
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{owner} expects {name} to be an int >= {low}; received {name}={value!r}.")
    return int(value)


def batches(n, batch_size, order=None):
    """Index slices (or index arrays, given an ``order``) of consecutive batches of ``n`` samples."""
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        yield slice(start, stop) if order is None else order[start:stop]


def _output_classes(model, x, dtype):
    """Number of outputs per sample, found by one forward pass on a single sample."""
    return model.forward(as_batch(x[:1], dtype)).shape[-1]


def _seed_stochastic_layers(model, rng):
    # Dropout masks are drawn from the fit seed, so a seeded fit is reproducible
    # whatever generator the layers were built with.
    for layer in model.layers:
        if hasattr(layer, "rng"):
            layer.rng = np.random.default_rng(rng.integers(2**63))


class _DivergenceGuard:
    """Stops training at the first non-finite loss, gradient or weight, keeping the last finite weights.

    Before each optimizer step it copies the weights into buffers allocated once; if the
    step produces NaN or inf (finite gradients can still overflow), the copy is put back.
    """

    def __init__(self, model):
        self.model = model
        self.backup = {key: array.copy() for key, array in model.params.items()}

    def _diverged(self, what, epoch, batch):
        return TrainingDivergedError(
            f"Training diverged: {what} became NaN or inf at epoch {epoch}, batch {batch}. "
            f"The weights are those before that batch. Try a lower learning rate."
        )

    def check_gradients(self, value, epoch, batch):
        if not math.isfinite(value):
            raise self._diverged("the loss", epoch, batch)
        if not all(np.isfinite(g).all() for layer in self.model.layers for g in layer.grads.values()):
            raise self._diverged("a gradient", epoch, batch)

    def step(self, optimizer, epoch, batch):
        params = self.model.params
        for key, array in params.items():
            np.copyto(self.backup[key], array)
        optimizer.step(self.model.layers)
        if not all(np.isfinite(array).all() for array in params.values()):
            for key, array in params.items():
                np.copyto(array, self.backup[key])
            raise self._diverged("a weight", epoch, batch)


def _progress(verbose, total, epoch, epochs):
    """A tqdm progress bar for one epoch, or None when not verbose."""
    if verbose != 1:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"Epoch {epoch}/{epochs}", unit="batch", leave=True, dynamic_ncols=True)


def fit(
    model, x, y, epochs=1, batch_size=128, optimizer=None, loss=None,
    validation_data=None, shuffle=True, seed=None, verbose=1, augment=None, lr_schedule=None,
):
    """Train ``model`` on ``(x, y)``; see :meth:`tinynet.Sequential.fit`."""
    epochs = _positive_int(epochs, "epochs", "fit", allow_zero=True)
    batch_size = _positive_int(batch_size, "batch_size", "fit")
    dtype = model.dtype
    x = prepare_inputs(x, "fit")
    n = len(x)
    y = check_labels(y, n, _output_classes(model, x, dtype), "fit")
    optimizer = Adam() if optimizer is None else optimizer
    loss = SoftmaxCrossEntropy() if loss is None else loss
    model.loss = loss
    rng = np.random.default_rng(seed)
    if seed is not None:
        _seed_stochastic_layers(model, rng)

    guard = _DivergenceGuard(model)
    history = History()
    n_batches = math.ceil(n / batch_size)
    for epoch in range(1, epochs + 1):
        if lr_schedule is not None:
            optimizer.lr = float(lr_schedule(epoch - 1))
        order = rng.permutation(n) if shuffle else None
        bar = _progress(verbose, n_batches, epoch, epochs)
        started = time.perf_counter()
        loss_sum, correct, seen = 0.0, 0, 0
        for batch, index in enumerate(batches(n, batch_size, order), start=1):
            x_batch, y_batch = as_batch(x[index], dtype), y[index]
            if augment is not None:
                x_batch = augment(x_batch, rng)
            # Overflow is caught by the guard and reported as one clear error, not as warnings.
            with np.errstate(over="ignore", invalid="ignore"):
                logits = model.forward(x_batch, training=True)
                value = loss.forward(logits, y_batch)
                model.backward(loss.backward())
                guard.check_gradients(value, epoch, batch)
                guard.step(optimizer, epoch, batch)

            loss_sum += value * len(y_batch)
            correct += int((logits.argmax(axis=1) == y_batch).sum())
            seen += len(y_batch)
            if bar is not None:
                elapsed = time.perf_counter() - started
                bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}",
                                img_s=f"{seen / max(elapsed, 1e-9):.0f}", refresh=False)
                bar.update(1)
        metrics = {"loss": loss_sum / seen, "accuracy": correct / seen, "seconds": time.perf_counter() - started,
                   "lr": optimizer.lr}
        if validation_data is not None:
            scores = evaluate(model, *validation_data, batch_size=max(batch_size, 1000))
            metrics.update(val_loss=scores["loss"], val_accuracy=scores["accuracy"])
        history.append(**metrics)
        if bar is not None:
            bar.set_postfix({k: f"{v:.4f}" for k, v in metrics.items() if k not in ("seconds", "lr")}, refresh=True)
            bar.close()
        elif verbose == 2:
            shown = "  ".join(f"{k}={v:.4f}" for k, v in metrics.items())
            print(f"Epoch {epoch}/{epochs}  {shown}", flush=True)
    return history


def predict_logits(model, x, batch_size, owner):
    """The model's raw outputs for every sample, computed batch by batch."""
    batch_size = _positive_int(batch_size, "batch_size", owner)
    dtype = model.dtype
    x = prepare_inputs(x, owner)
    outputs = [model.forward(as_batch(x[index], dtype)) for index in batches(len(x), batch_size)]
    return np.concatenate(outputs)


def evaluate(model, x, y, batch_size=1000):
    """Mean loss and accuracy of ``model`` on ``(x, y)``; see :meth:`tinynet.Sequential.evaluate`."""
    outputs = predict_logits(model, x, batch_size, "evaluate")
    y = check_labels(y, len(outputs), outputs.shape[-1], "evaluate")
    loss = getattr(model, "loss", None) or SoftmaxCrossEntropy()
    return {"loss": loss.forward(outputs, y), "accuracy": float((outputs.argmax(axis=1) == y).mean())}


def predict(model, x, batch_size=1000):
    """Class probabilities ``(N, classes)``; see :meth:`tinynet.Sequential.predict`."""
    outputs = predict_logits(model, x, batch_size, "predict")
    ends_in_softmax = bool(model.layers) and isinstance(model.layers[-1], Softmax)
    return outputs if ends_in_softmax else softmax(outputs, axis=-1)
