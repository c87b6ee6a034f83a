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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._checks import is_real, number
from .._io import writable_path
from ..errors import ArgumentError, ArgumentTypeError, ShapeError
from ..files.checkpoint import resume_training, save_checkpoint
from ..history import History
from ..kernels import engine_threads, softmax_rows
from ..layers import Softmax
from ..layers.base import check_layer_tree
from ..losses import Loss, MeanSquaredError, SoftmaxCrossEntropy, check_labels
from ..optim import OPTIMIZER_NAMES, Adam, Optimizer
from ._allocator import keep_freed_memory
from .guards import DivergenceGuard, StopAtBatchEnd
from .inputs import as_batch, batches, prepare_inputs, refuse_non_finite, training_batch_count, training_batches
from .trace import PROBE_SIZE, Tracer

__all__ = ["fit", "train_step", "evaluate", "predict", "check_model", "ends_in_softmax"]


#: The names a Keras user types for ``loss=`` (the optimizers' are optim.OPTIMIZER_NAMES).
LOSS_NAMES = {"sparse_categorical_crossentropy": SoftmaxCrossEntropy, "categorical_crossentropy": SoftmaxCrossEntropy,
              "crossentropy": SoftmaxCrossEntropy, "cross_entropy": SoftmaxCrossEntropy,
              "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError}


def _named(value, names, kind, base, example):
    """``value`` as a ``base`` instance: a name from ``names`` is built, anything else refused clearly."""
    if isinstance(value, str):
        build = names.get(value.lower())
        if build is None:
            raise ArgumentError(f"fit does not know the {kind} {value!r}; known names are {sorted(names)}, "
                             f"or pass an object, e.g. {kind}={example}.")
        return build()
    if not isinstance(value, base):
        raise ArgumentTypeError(f"fit expects {kind} to be a tinynet {base.__name__} (e.g. {kind}={example}) or one of "
                        f"{sorted(names)}; received {value!r} ({type(value).__name__}).")
    return value


def check_model(model, owner, backprop=False):
    """A model with layers; one that is to backpropagate (``backprop``) also with no layer at two places.

    ``Sequential`` refuses a shared layer when it is built; ``model.layers`` is a plain list,
    so a layer appended later is caught here, before a backward pass would mix two places up.
    """
    if not model.layers:
        raise ArgumentError(f"{owner}: the model has no layers. Build it with some, e.g. "
                            f"tinynet.Sequential([Flatten(), Dense(784, 10)]).")
    if backprop:
        check_layer_tree(model.layers, owner)


def _output_classes(model, x, dtype, owner="fit"):
    """Number of outputs per sample, found by one forward pass on a single sample.

    A shape error from a layer names the one-sample batch it saw; the caller's whole input
    shape is added so the user recognises their array.
    """
    try:
        return model.forward(as_batch(x[:1], dtype)).shape[-1]
    except ShapeError as error:
        raise ShapeError(
            f"{owner} received x of shape {tuple(x.shape)}, which the model cannot take: {error}"
        ) from None


def _seed_stochastic_layers(model, rng):
    # Dropout masks are drawn from the fit seed, so a seeded fit is reproducible
    # whatever generator the layers were built with.
    for layer in model.layers:
        layer.reseed(rng)  # a layer that draws random numbers (Dropout) takes a generator of its own


def _progress(verbose, total, epoch, epochs):
    """A tqdm progress bar for one epoch, or None when not verbose."""
    if verbose != 1:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"Epoch {epoch}/{epochs}", unit="batch", leave=True, dynamic_ncols=True)


def fit(
    model, x, y, epochs=1, batch_size=128, optimizer=None, loss=None,
    validation_data=None, shuffle=True, seed=None, verbose=1, augment=None, lr_schedule=None,
    checkpoint=None, resume=False, trace=False,
):
    """Train ``model`` on ``(x, y)``; see :meth:`tinynet.Sequential.fit`."""
    epochs = number(epochs, "epochs", "fit", low=0, integer=True)
    batch_size = number(batch_size, "batch_size", "fit", low=1, integer=True)
    if resume and checkpoint is None:
        raise ArgumentError("fit(resume=True) needs checkpoint=PATH: the file to resume from and to keep writing.")
    if checkpoint is not None:
        writable_path(checkpoint)  # now, not when the first epoch ends
    check_model(model, "fit", backprop=True)
    if optimizer is not None:
        optimizer = _named(optimizer, OPTIMIZER_NAMES, "optimizer", Optimizer, "tinynet.optim.Adam(lr=1e-3)")
    loss = SoftmaxCrossEntropy() if loss is None else _named(loss, LOSS_NAMES, "loss", Loss,
                                                             "tinynet.losses.SoftmaxCrossEntropy()")
    keep_freed_memory()
    dtype = model.dtype
    x = prepare_inputs(x, "fit")
    n = len(x)
    y = check_labels(y, n, _output_classes(model, x, dtype), "fit")
    if validation_data is not None:
        validation_data = _check_validation(validation_data, model, dtype)
    _check_schedule(lr_schedule, epochs, training_batch_count(n, batch_size))
    rng = np.random.default_rng(seed)
    history = History()
    first_epoch = 1
    if resume and Path(checkpoint).exists():
        saved, optimizer = resume_training(model, optimizer, checkpoint)
        rng = saved.generator()
        history = saved.history
        first_epoch = saved.epoch + 1
    elif seed is not None:
        _seed_stochastic_layers(model, rng)
    optimizer = Adam() if optimizer is None else optimizer
    _refuse_softmax_before_logits_loss(model, loss)
    model.loss = loss
    model.history = history

    run = _Run(model, x, y, epochs, batch_size, optimizer, loss, rng, shuffle, augment, lr_schedule,
               validation_data, verbose, history)
    if trace:
        run.tracer = Tracer(model, as_batch(x[:PROBE_SIZE], dtype))
    with StopAtBatchEnd() as interrupt:
        for epoch in range(first_epoch, epochs + 1):
            run.train_epoch(epoch, interrupt)
            if checkpoint is not None:
                save_checkpoint(checkpoint, model, optimizer, epoch, history, rng)
    return history


def ends_in_softmax(model):
    """Whether the model's last layer is a Softmax: its outputs are probabilities, not logits."""
    return bool(model.layers) and isinstance(model.layers[-1], Softmax)


def _refuse_softmax_before_logits_loss(model, loss):
    # SoftmaxCrossEntropy applies the softmax itself: after a Softmax layer it would train
    # on softmax(softmax(x)), whose gradients are tiny and whose loss means nothing.
    if isinstance(loss, SoftmaxCrossEntropy) and ends_in_softmax(model):
        raise ArgumentError(
            "The model ends in a Softmax layer, but SoftmaxCrossEntropy takes logits and applies the softmax "
            "itself. Remove the final Softmax (predict() returns probabilities anyway), or pass another loss."
        )


def train_step(model, loss, optimizer, guard, x_batch, y_batch, epoch=1, batch=1, tracer=None):
    """One step of backprop on one batch, guarded; returns ``(logits, loss value)``."""
    guard.save()
    # Overflow is caught by the guard and reported as one clear error, not as warnings.
    with np.errstate(over="ignore", invalid="ignore"):
        logits = model.forward(x_batch, training=True)
        value = loss.forward(logits, y_batch)
        guard.check_loss(value, epoch, batch)
        model.backward(loss.backward(), input_grad=False)
        if tracer is not None:
            tracer.after_backward()
        optimizer.step(model.layers)
        guard.check_step(epoch, batch)
    return logits, value


def _check_schedule(lr_schedule, epochs, steps_per_epoch):
    """A callable, defined for every step of the run: checked before any weight moves."""
    if lr_schedule is None:
        return
    if isinstance(lr_schedule, (str, numbers.Number)) or not callable(lr_schedule):
        raise ArgumentTypeError(
            f"fit expects lr_schedule to be a function of the step, e.g. tinynet.schedules.OneCycle(1e-2, "
            f"total_steps); received {lr_schedule!r}. For a constant rate, set the optimizer's lr instead."
        )
    total = getattr(lr_schedule, "total_steps", None)
    if total is not None and total < epochs * steps_per_epoch:
        raise ArgumentError(
            f"lr_schedule has total_steps={total}, shorter than the run: {epochs} epochs x {steps_per_epoch} "
            f"batches = {epochs * steps_per_epoch} steps. Build it with total_steps={epochs * steps_per_epoch}."
        )


def _scheduled_rate(lr_schedule, step):
    rate = lr_schedule(step)
    if not is_real(rate) or not math.isfinite(rate) or rate < 0:
        raise ArgumentError(f"lr_schedule({step}) returned {rate!r}; a learning rate is a finite number >= 0.")
    return float(rate)


def _check_validation(validation_data, model, dtype):
    """``(x_val, y_val)`` checked before training starts, not after the first epoch."""
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
        raise ArgumentTypeError("fit expects validation_data=(x_val, y_val); "
                        f"received {type(validation_data).__name__}.")
    x_val = prepare_inputs(validation_data[0], "fit(validation_data)")
    classes = _output_classes(model, x_val, dtype, "fit(validation_data)")
    y_val = check_labels(validation_data[1], len(x_val), classes, "fit(validation_data)")
    return x_val, y_val


@dataclass
class _Run:
    """The settings of one ``fit`` call, and its loop over the batches of an epoch."""

    model: object
    x: np.ndarray
    y: np.ndarray
    epochs: int
    batch_size: int
    optimizer: object
    loss: object
    rng: np.random.Generator
    shuffle: bool
    augment: object
    lr_schedule: object
    validation_data: object
    verbose: int
    history: History

    def __post_init__(self):
        self.guard = DivergenceGuard(self.model, self.optimizer)
        self.tracer = None
        self.n_batches = training_batch_count(len(self.x), self.batch_size)

    def train_epoch(self, epoch, interrupt):
        """One pass over the data; appends the epoch's metrics to the history."""
        model, optimizer, loss, rng, dtype = self.model, self.optimizer, self.loss, self.rng, self.model.dtype
        order = rng.permutation(len(self.x)) if self.shuffle else None
        bar = _progress(self.verbose, self.n_batches, epoch, self.epochs)
        started = time.perf_counter()
        loss_sum, correct, seen = 0.0, 0, 0
        try:
            with model._training_threads(self.batch_size):  # the engine's threads, the optimizer's step included
                for batch, index in enumerate(training_batches(len(self.x), self.batch_size, order), start=1):
                    if self.lr_schedule is not None:
                        optimizer.lr = _scheduled_rate(self.lr_schedule, (epoch - 1) * self.n_batches + batch - 1)
                    x_batch, y_batch = as_batch(self.x[index], dtype), self.y[index]
                    if self.augment is not None:
                        x_batch = self.augment(x_batch, rng)
                    logits, value = train_step(model, loss, optimizer, self.guard, x_batch, y_batch, epoch, batch,
                                               self.tracer)

                    loss_sum += value * len(y_batch)
                    correct += int((logits.argmax(axis=1) == y_batch).sum())
                    seen += len(y_batch)
                    if bar is not None:
                        elapsed = time.perf_counter() - started
                        bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}",
                                        img_s=f"{seen / max(elapsed, 1e-9):.0f}", refresh=False)
                        bar.update(1)
                    if interrupt.requested:
                        raise KeyboardInterrupt(
                            f"fit stopped by Ctrl-C after epoch {epoch}, batch {batch} of {self.n_batches}: the model "
                            f"holds the weights after that batch; model.history holds the {self.history.epochs} "
                            f"completed epochs."
                        )
        except BaseException:
            if bar is not None:
                bar.close()
            raise
        metrics = {"loss": loss_sum / seen, "accuracy": correct / seen, "seconds": time.perf_counter() - started,
                   "lr": optimizer.lr}
        if self.validation_data is not None:
            scores = evaluate(model, *self.validation_data, batch_size=max(self.batch_size, 1000))
            metrics.update(val_loss=scores["loss"], val_accuracy=scores["accuracy"])
        self.history.append(**metrics)
        if self.tracer is not None:
            self.history.trace.extend(self.tracer.end_epoch(epoch))
        if bar is not None:
            bar.set_postfix({k: f"{v:.4f}" for k, v in metrics.items() if k not in ("seconds", "lr")}, refresh=True)
            bar.close()
        elif self.verbose == 2:
            shown = "  ".join(f"{k}={v:.4f}" for k, v in metrics.items())
            print(f"Epoch {epoch}/{self.epochs}  {shown}", flush=True)


def predict_logits(model, x, batch_size, owner):
    """The model's raw outputs for every sample, computed batch by batch."""
    batch_size = number(batch_size, "batch_size", owner, low=1, integer=True)
    check_model(model, owner)
    keep_freed_memory()
    dtype = model.dtype
    x = prepare_inputs(x, owner, check_finite=False)
    threads = getattr(model, "_inference_threads", engine_threads)
    with threads(min(len(x), batch_size)):  # one hold for every batch (the plan's own inside it changes nothing)
        if len(x) <= batch_size:  # one batch (one image, say): nothing to split or join
            refuse_non_finite(x, owner)
            return model.forward(as_batch(x, dtype))
        outputs = []
        for index in batches(len(x), batch_size):
            batch = x[index]
            # Checked batch by batch: the forward pass then reads the batch from cache, so the
            # check costs no extra pass over the whole data set. Inference changes nothing, so
            # stopping part-way is safe.
            refuse_non_finite(batch, owner)
            outputs.append(model.forward(as_batch(batch, dtype)))
    return np.concatenate(outputs)


def evaluate(model, x, y, batch_size=1000):
    """Mean loss and accuracy of ``model`` on ``(x, y)``; see :meth:`tinynet.Sequential.evaluate`."""
    outputs = predict_logits(model, x, batch_size, "evaluate")
    y = check_labels(y, len(outputs), outputs.shape[-1], "evaluate")
    loss = getattr(model, "loss", None) or SoftmaxCrossEntropy()
    if isinstance(loss, SoftmaxCrossEntropy) and ends_in_softmax(model):
        # The outputs are probabilities already: their cross-entropy is -log p[label].
        picked = outputs[np.arange(len(y)), y].astype(np.float64)
        value = float(-np.log(np.maximum(picked, np.finfo(outputs.dtype).tiny)).mean())
    else:
        value = loss.forward(outputs, y)
    return {"loss": value, "accuracy": float((outputs.argmax(axis=1) == y).mean())}


def predict(model, x, batch_size=1000):
    """Class probabilities ``(N, classes)``; see :meth:`tinynet.Sequential.predict`."""
    outputs = predict_logits(model, x, batch_size, "predict")
    return outputs if ends_in_softmax(model) else softmax_rows(outputs)  # the layer's softmax, compiled for rows
