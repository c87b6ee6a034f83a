"""``Sequential``: layers applied in order, trained end to end by backprop.

``forward`` applies the layers first to last; ``backward`` hands the loss gradient to the
last layer and each layer's input gradient to the layer before it (the chain rule)::

    y = f_L(...f_2(f_1(x)))        dL/dx = J_1^T (J_2^T (... J_L^T dL/dy))

How the layers are run is the model's :meth:`~Sequential.execution_plan`, made by the
engine (:mod:`tinynet.engine`): image layers exchange channels-last activations, and a
Conv2D, ReLU and MaxPool2D run as one fused step. Neither changes the results; inside
``with model.layer_by_layer():`` every layer's own ``forward`` and ``backward`` run instead.
"""

import contextlib

import numpy as np

from . import training
from .engine import Engine
from .errors import ArgumentTypeError, ShapeError
from .files.loading import register_model_class
from .files.serialization import check_metadata, save_model
from .layers import Layer
from .layers.base import check_layer_tree, check_state, named_arrays, qualified_name, recording_at_inference

__all__ = ["Sequential"]


@register_model_class  # files/ builds the models it reads through this, without importing the model
class Sequential:
    """A stack of layers, trained with :meth:`fit`.

    Parameters
    ----------
    layers : iterable of Layer

    Notes
    -----
    The first ``fit``, ``evaluate`` or ``predict`` in a process raises glibc's allocation
    thresholds for the whole process, so the tens of megabytes a batch allocates are reused
    by the next batch instead of being returned to the kernel and zeroed again (a third
    faster per small-CNN batch); memory freed later stays with the process. Set the
    environment variable ``TINYNET_KEEP_FREED_MEMORY=0`` before the first call to keep
    the allocator's defaults.

    Examples
    --------
    >>> import numpy as np
    >>> from tinynet.layers import Dense, Flatten, ReLU
    >>> model = Sequential([Flatten(), Dense(4, 8, rng=0), ReLU(), Dense(8, 3, rng=1)])
    >>> model.predict(np.zeros((5, 2, 2), dtype=np.float32)).shape
    (5, 3)
    """

    def __init__(self, layers):
        if isinstance(layers, (str, bytes, Layer)) or not hasattr(layers, "__iter__"):
            raise ArgumentTypeError(
                f"Sequential expects a list of layers; received {type(layers).__name__}. "
                f"Wrap it in a list: Sequential([Dense(784, 10)])."
            )
        layers = list(layers)
        for position, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise ArgumentTypeError(
                    f"Sequential expects tinynet layers; item {position} is {layer!r} "
                    f"({type(layer).__name__}). Build it with tinynet.layers, e.g. Dense(784, 128)"
                    + (": to use a model's layers, unpack it, Sequential([*model, Dense(10, 10)])."
                       if isinstance(layer, Sequential) else ".")
                )
        check_layer_tree(layers, "Sequential")
        self.layers = layers
        self._engine = Engine()  # the training and inference plans of the layers, rebuilt when they change
        self._fast = True  # False inside layer_by_layer()
        self.loss = None  # set by fit; evaluate reports this loss
        self.history = None  # the History of the latest fit, updated after every epoch
        self.metadata = {}

    @property
    def metadata(self):
        """Where the model came from (recipe, seed, revision, test accuracy, ...): a JSON-ready dict.

        ``save`` writes it into the file and :func:`tinynet.load_model` reads it back. Keys are
        text at every depth (JSON's keys are; ``1`` would come back as ``"1"``): a dict that
        JSON would change is refused when assigned, and when saved if it was changed since.
        """
        return self._metadata

    @metadata.setter
    def metadata(self, value):
        self._metadata = check_metadata(value)

    # -- a container of layers ---------------------------------------------------------
    def __iter__(self):
        return iter(self.layers)

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, index):
        return self.layers[index]

    def __repr__(self):
        inner = ",\n    ".join(repr(layer) for layer in self.layers)
        return f"Sequential([\n    {inner},\n])"

    @property
    def dtype(self):
        """dtype of the model's parameters (float32 unless converted with :meth:`astype`)."""
        for layer in self.layers:
            if layer.dtype is not None:
                return layer.dtype
        return np.dtype(np.float32)

    @property
    def params(self):
        """Every trainable array, as ``{"<layer index>.<name>": array}``."""
        return named_arrays(self.layers, "params")

    def state_dict(self):
        """Every layer's state under ``"<layer index>.<name>"``: parameters and buffers (the arrays themselves).

        Examples
        --------
        >>> from tinynet.layers import Dense, ReLU
        >>> sorted(Sequential([Dense(2, 3, rng=0), ReLU(), Dense(3, 1, rng=0)]).state_dict())
        ['0.W', '0.b', '2.W', '2.b']
        """
        return named_arrays(self.layers)

    def load_state_dict(self, state):
        """Copy ``state`` (as :meth:`state_dict` returns it) into the layers, in place.

        Every name must be present with its shape; values are converted to the model's
        dtype. If anything does not fit, a ValueError names it and nothing is changed.
        """
        check_state(self.state_dict(), state, "Sequential")
        for position, layer in enumerate(self.layers):
            layer.load_state_dict({key: state[qualified_name(position, key)] for key in layer.state_dict()})

    def count_params(self):
        """Total number of trainable scalars."""
        return sum(array.size for array in self.params.values())

    # -- backprop ------------------------------------------------------------------------
    def execution_plan(self):
        """The steps :meth:`forward` runs, each naming the layers it covers (see :mod:`tinynet.engine`).

        Examples
        --------
        >>> from tinynet.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU
        >>> model = Sequential([Conv2D(1, 4, 3, rng=0), ReLU(), MaxPool2D(2), Flatten(), Dense(676, 10, rng=0)])
        >>> for step in model.execution_plan():
        ...     print(step.describe())
        NCHW -> NHWC
        0 Conv2D + 1 ReLU + 2 MaxPool2D (fused, NHWC, in the pooling windows)
        3 Flatten (from NHWC)
        4 Dense
        >>> with model.layer_by_layer():
        ...     print([step.describe() for step in model.execution_plan()])
        ['0 Conv2D', '1 ReLU', '2 MaxPool2D', '3 Flatten', '4 Dense']
        """
        if not self._fast:
            return self._engine.layer_by_layer_plan(self.layers)
        return self._engine.training_plan(self.layers)

    def inference_plan(self):
        """The steps ``forward(x, training=False)`` runs: the engine's rewrites for a model that predicts.

        Dropout left out, BatchNorm, bias and ReLU applied in the epilogue of the product
        before them (see :mod:`tinynet.engine.inference`); layer by layer inside
        :meth:`layer_by_layer`, like :meth:`execution_plan`.

        Examples
        --------
        >>> from tinynet.layers import BatchNorm1D, Dense, Dropout, ReLU
        >>> model = Sequential([Dense(4, 8, rng=0), BatchNorm1D(8), ReLU(), Dropout(0.5), Dense(8, 2, rng=0)])
        >>> for step in model.inference_plan():
        ...     print(step.describe())
        0 Dense + 1 BatchNorm1D + 2 ReLU (inference)
        4 Dense (inference)
        """
        if not self._fast:
            return self.execution_plan()
        return self._engine.inference_plan(self.layers)

    @contextlib.contextmanager
    def layer_by_layer(self):
        """Run every layer's own ``forward`` and ``backward``, one by one, inside the ``with`` block.

        What a learner reads in :mod:`tinynet.layers` is then exactly what runs: ``forward``,
        ``backward``, ``fit``, ``evaluate`` and ``predict`` all go layer by layer (slower),
        and each layer keeps what it saved for its backward. The results are those of the
        engine's plan, to rounding.

        Examples
        --------
        >>> import numpy as np
        >>> from tinynet.layers import Conv2D, Flatten, MaxPool2D, ReLU
        >>> model = Sequential([Conv2D(1, 2, 3, rng=0), ReLU(), MaxPool2D(2), Flatten()])
        >>> x = np.random.default_rng(0).random((4, 1, 8, 8), dtype=np.float32)
        >>> with model.layer_by_layer():
        ...     by_layer = model.forward(x)
        >>> bool(np.allclose(by_layer, model.forward(x), atol=1e-6))
        True
        """
        previous, self._fast = self._fast, False
        try:
            yield self
        finally:
            self._fast = previous

    @contextlib.contextmanager
    def gradients_at_inference(self):
        """Backpropagate through the model as it predicts, layer by layer, inside the ``with`` block.

        ``forward(x)`` (``training=False``: BatchNorm's running statistics, no dropout) then
        keeps what each layer's ``backward`` needs, so ``backward`` gives the gradients of
        the predicting model: saliency maps, adversarial examples, the page's "teach it"
        (PyTorch's ``eval()`` mode with autograd). Running statistics are not updated.

        Examples
        --------
        >>> import numpy as np
        >>> from tinynet.layers import BatchNorm1D, Dense
        >>> model = Sequential([Dense(3, 2, rng=0), BatchNorm1D(2)])
        >>> with model.gradients_at_inference():
        ...     y = model.forward(np.ones((1, 3), np.float32))      # one image is enough
        ...     grad_x = model.backward(np.ones_like(y))
        >>> grad_x.shape
        (1, 3)
        """
        # The recording belongs to the block (layers.base.recording_at_inference), not to the
        # layers: blocks nest, and an exception inside leaves every layer as it was.
        with self.layer_by_layer(), recording_at_inference(self.layers):
            yield self

    def _training_threads(self, samples):
        """The thread setting ``fit`` trains under, batches of ``samples``: the engine's for its training plan."""
        return self._engine.training_threads(self.execution_plan(), samples)

    def _inference_threads(self, samples):
        """The thread setting ``predict`` and ``evaluate`` run under, batches of ``samples``: the engine's for its
        inference plan."""
        return self._engine.inference_threads(self.inference_plan(), samples)

    def forward(self, x, training=False):
        """Apply every layer in order. Returns the last layer's output.

        With ``training=False`` the engine runs its inference plan (:meth:`inference_plan`),
        which keeps nothing for a backward pass.
        """
        if training or not self._fast:
            return self._engine.run(self.execution_plan(), x, training=training)
        self._engine.forget()  # what a training forward kept is no longer the model's last forward
        return self._engine.predict(self.inference_plan(), x)

    def backward(self, grad, input_grad=True):
        """Backpropagate ``grad`` (d loss / d output) through every layer; returns d loss / d input.

        With ``input_grad=False`` (what ``fit`` uses) the backward pass stops at the first
        layer that has parameters, which computes only its parameter gradients: nothing
        needs the gradient with respect to the input images. Returns None then.
        """
        return self._engine.backward(self.execution_plan(), grad, input_grad=input_grad)

    # -- training and inference ------------------------------------------------------------
    def fit(self, x, y, epochs=1, batch_size=128, optimizer=None, loss=None,
            validation_data=None, shuffle=True, seed=None, verbose=1, augment=None, lr_schedule=None,
            checkpoint=None, resume=False, trace=False):
        """Train on ``(x, y)`` with mini-batch gradient descent.

        Parameters
        ----------
        x : array ``(N, ...)``
            Float inputs, or uint8 images (scaled to [0, 1] batch by batch).
        y : int array ``(N,)``
            Class indices ``0 .. classes-1``.
        epochs : int, default 1
        batch_size : int, default 128
            Samples per step. A last batch of a single sample joins the batch before it, so
            a BatchNorm always has two or more values to normalise and every sample is seen
            once per epoch.
        optimizer : Optimizer or str, default ``Adam()``
            Or a name as Keras users type it: ``"adam"``, ``"adamw"``, ``"sgd"`` (Keras's
            default settings: Adam lr 1e-3, SGD lr 0.01).
        loss : Loss or str, default ``SoftmaxCrossEntropy()`` (the model outputs logits)
            Or ``"sparse_categorical_crossentropy"`` (the same), ``"mse"``.
        validation_data : ``(x_val, y_val)``, optional
            Evaluated after each epoch into ``val_loss`` and ``val_accuracy``.
        shuffle : bool, default True
            Visit the samples in a new random order each epoch.
        seed : int, optional
            Seeds the shuffling and every Dropout layer's masks: the same seed (and the same
            initial weights) gives the same weights after training.
        verbose : {0, 1, 2}, default 1
            0 silent, 1 a progress bar per epoch, 2 one line per epoch.
        augment : callable, optional
            ``augment(x_batch, rng) -> x_batch`` applied to each training batch, e.g.
            :func:`tinynet.augment.random_shift`; it draws from the fit's seeded generator.
        lr_schedule : callable, optional
            ``lr_schedule(step) -> learning rate`` of the global step (batches counted from 0
            across epochs), set on the optimizer before every step; e.g.
            :class:`tinynet.schedules.OneCycle`. A schedule whose ``total_steps`` is shorter
            than the run is refused before training. (It used to be called once per epoch
            with the epoch; ``ExponentialDecay(lr, rate, steps=batches_per_epoch)`` gives that
            per-epoch decay.) ``history["lr"]`` records each epoch's last rate.
        checkpoint : str or Path, optional
            Write a checkpoint there at the end of every epoch (atomically): weights,
            optimizer state, epochs completed, history and random-generator states.
        resume : bool, default False
            Continue from ``checkpoint`` if that file exists (from scratch if it does not):
            the weights, optimizer state, history and generators are restored and training
            goes on from the next epoch up to ``epochs`` in all. A resumed run ends with the
            same weights, bit for bit, as one that was never interrupted.
        trace : bool, default False
            Record, each epoch, every layer's mean parameter-gradient norm and its activation
            statistics on a probe batch into ``history.trace`` (see :mod:`tinynet.trace`;
            draw them with :func:`tinynet.plots.gradient_norms`). Not kept in checkpoints.

        Returns
        -------
        History
            ``history.history`` maps ``loss``, ``accuracy`` (and ``val_*``), ``seconds`` and
            ``lr`` to per-epoch values. The same object is ``model.history`` while training,
            so it is kept when training stops early.

        Raises
        ------
        TrainingDivergedError
            If the loss or a gradient becomes NaN or inf; the weights are left as they were
            before that batch.
        KeyboardInterrupt
            On Ctrl-C: training stops at the end of the current batch (a second Ctrl-C stops
            at once), the model keeps the weights after that batch and ``model.history`` the
            completed epochs.
        ModelFileError
            If ``resume=True`` and the checkpoint is unreadable or belongs to another model;
            the model is left unchanged.
        """
        return training.fit(self, x, y, epochs=epochs, batch_size=batch_size, optimizer=optimizer, loss=loss,
                            validation_data=validation_data, shuffle=shuffle, seed=seed, verbose=verbose,
                            augment=augment, lr_schedule=lr_schedule, checkpoint=checkpoint, resume=resume,
                            trace=trace)

    def evaluate(self, x, y, batch_size=1000):
        """Mean loss and accuracy on ``(x, y)``: ``{"loss": float, "accuracy": float}``."""
        return training.evaluate(self, x, y, batch_size=batch_size)

    def predict(self, x, batch_size=1000):
        """Class probabilities ``(N, classes)``: the softmax of the outputs (or the outputs
        themselves when the last layer is already a Softmax)."""
        return training.predict(self, x, batch_size=batch_size)

    # -- description and conversion ----------------------------------------------------------
    def output_shapes(self, input_shape):
        """Each layer's output shape for one sample of ``input_shape``, found by a forward pass.

        Raises a ShapeError naming the two layers that do not fit together.
        """
        shape = tuple(input_shape)
        if shape and shape[0] is None:  # accept Keras-style (None, C, H, W)
            shape = shape[1:]
        x = np.zeros((1, *shape), dtype=self.dtype)
        shapes = []
        for position, layer in enumerate(self.layers):
            try:
                x = layer.forward(x)
            except (ValueError, TypeError) as error:
                previous = self.layers[position - 1] if position else None
                before = f"layer {position - 1} ({type(previous).__name__})" if position else "the input"
                raise ShapeError(
                    f"Layer {position} ({type(layer).__name__}) cannot take the output of {before}, "
                    f"of shape {('N', *x.shape[1:])}: {error}"
                ) from error
            shapes.append(x.shape[1:])
        return shapes

    def summary(self, input_shape):
        """A table of layers, output shapes and parameter counts for one sample of ``input_shape``.

        ``input_shape`` excludes the batch axis, e.g. ``(1, 28, 28)`` for MNIST.

        Examples
        --------
        >>> from tinynet.layers import Dense, Flatten
        >>> print(Sequential([Flatten(), Dense(784, 10, rng=0)]).summary((1, 28, 28)))
        Layer           Output shape             Params
        -----------------------------------------------
        0 Flatten       (N, 784)                      0
        1 Dense         (N, 10)                   7,850
        -----------------------------------------------
        Total params: 7,850
        """
        shapes = self.output_shapes(input_shape)
        rows = [("Layer", "Output shape", "Params")]
        for position, (layer, shape) in enumerate(zip(self.layers, shapes, strict=True)):
            count = sum(array.size for array in layer.params.values())
            rows.append((f"{position} {type(layer).__name__}", str(("N", *shape)).replace("'", ""), f"{count:,}"))
        width = max(15, *(len(name) for name, _, _ in rows))  # "2 PositionalEmbedding" keeps the columns
        lines = [f"{name:<{width}} {shape:<20} {count:>10}" for name, shape, count in rows]
        rule = "-" * max(len(line) for line in lines)
        return "\n".join([lines[0], rule, *lines[1:], rule, f"Total params: {self.count_params():,}"])

    def astype(self, dtype):
        """Convert every layer's parameters and buffers to ``dtype`` (e.g. ``np.float64``) in place; returns the model.

        An optimizer that trained the model converts its state to the new dtype at its next step.
        """
        for layer in self.layers:
            layer.astype(dtype)
        return self

    def save(self, path):
        """Write the architecture and state to an ``.npz`` file, atomically (see :func:`tinynet.load_model`).

        Raises a ValueError, writing nothing, for what :func:`tinynet.load_model` would refuse:
        weights of mixed dtypes, NaN or inf.
        """
        save_model(self, path)
