"""The layer contract every tinynet layer follows.

A layer maps ``x -> y`` in ``forward`` and, after a training forward, maps the gradient
of a scalar loss with respect to ``y`` to the gradient with respect to ``x`` in
``backward``, writing the gradients of its own parameters into ``grads``::

    y = layer.forward(x, training=True)
    grad_x = layer.backward(grad_y)      # fills layer.grads (same keys as layer.params)

``backward`` overwrites ``grads``, never updates ``params`` and never modifies its
argument; updating the parameters is the optimizer's job.

Everything a layer holds is its *state*: ``params`` (trained) and ``buffers`` (not trained,
such as running statistics). ``state_dict()`` names both in one dictionary and
``load_state_dict()`` copies such a dictionary back in; saving, loading, checkpoints, the
divergence guard and ``astype`` all go through that pair, so a new kind of state is saved,
restored and converted everywhere once it is in ``params`` or ``buffers``.
"""

import contextlib
import contextvars

import numpy as np

from ..errors import ArgumentError, ArgumentTypeError, NotTrainedForwardError

__all__ = ["Layer", "check_state", "qualified_name", "named_arrays", "check_layer_tree", "with_inner_layers",
           "recording_at_inference"]

# The layers (by id) whose inference forwards keep what backward needs, in the current
# context: set by recording_at_inference, never as an attribute of a layer.
_recording = contextvars.ContextVar("tinynet_recording_at_inference", default=frozenset())


def with_inner_layers(layers):
    """``layers`` and, depth first, the inner layers of each (a Residual's)."""
    for layer in layers:
        yield layer
        yield from with_inner_layers(getattr(layer, "layers", ()))


@contextlib.contextmanager
def recording_at_inference(layers):
    """Inside the ``with`` block, the inference forwards of ``layers`` (and of their inner layers) keep what
    their backward needs.

    ``forward(x, training=False)`` still behaves as at inference (running statistics, no
    dropout); it only keeps its values, so ``backward`` then gives the gradients of the
    model as it predicts (saliency maps, the page's "teach it"; PyTorch's ``eval()`` mode
    with autograd). :meth:`tinynet.Sequential.gradients_at_inference` uses it. Nothing is
    written into the layers: the set of recording layers belongs to the context, so blocks
    nest, and an exception inside the block leaves nothing behind.

    Examples
    --------
    >>> from tinynet.layers import ReLU
    >>> relu = ReLU()
    >>> with recording_at_inference([relu]):
    ...     _ = relu.forward(np.array([1.0, -1.0]))
    >>> relu.backward(np.ones(2))
    array([1., 0.])
    """
    token = _recording.set(_recording.get() | {id(layer) for layer in with_inner_layers(layers)})
    try:
        yield
    finally:
        _recording.reset(token)


def qualified_name(position, key):
    """The name of a layer's array inside a model: ``"<position>.<key>"``, e.g. ``"3.W"`` (as PyTorch's)."""
    return f"{position}.{key}"


def named_arrays(layers, kind="state"):
    """Every layer's ``params``, ``grads`` or ``state`` (params and buffers) under its qualified name.

    Examples
    --------
    >>> from tinynet.layers import Dense, ReLU
    >>> sorted(named_arrays([Dense(2, 3, rng=0), ReLU(), Dense(3, 1, rng=0)], "params"))
    ['0.W', '0.b', '2.W', '2.b']
    """
    def arrays(layer):
        return layer.state_dict() if kind == "state" else getattr(layer, kind)

    return {qualified_name(position, key): array for position, layer in enumerate(layers)
            for key, array in arrays(layer).items()}


def check_layer_tree(layers, owner):
    """An error unless ``layers``, inside them included, are Layer objects each at one place only.

    A layer keeps the values of its last training forward on itself for its backward, and
    overwrites its ``grads``: one object at two places would backpropagate the second
    place's values through the first and keep only one place's weight gradient. Places are
    named as the state is (``"1.0"``: inner layer 0 of the Residual at 1). The walk keeps its
    own stack, so a deep nesting cannot exhaust Python's, and stops at the first repeat, so
    a layer placed inside itself cannot make it run forever. ``Sequential`` and ``Residual``
    check their layers when built; ``fit``, ``input_gradient`` and ``save`` check again, as
    the lists of layers can be changed afterwards.
    """
    first_place = {}
    stack = [(str(position), layer) for position, layer in reversed(list(enumerate(layers)))]
    while stack:
        place, layer = stack.pop()
        if not isinstance(layer, Layer):
            raise ArgumentTypeError(
                f"{owner}: position {place} holds {type(layer).__name__} {layer!r:.60}, not a tinynet layer. "
                f"Put layers there, e.g. Dense(784, 128).")
        earlier = first_place.setdefault(id(layer), place)
        if earlier != place:
            name = type(layer).__name__
            raise ArgumentError(
                f"{owner} holds the same {name} object at positions {earlier} and {place}. A layer keeps its "
                f"last forward's values for its backward, so one object at two places gets its gradients wrong "
                f"(tinynet has no weight tying). Give each position its own layer: a new {name}(...), or "
                f"copy.deepcopy(layer) for a separate layer that starts from the same weights."
            )
        inner = getattr(layer, "layers", ())
        stack.extend((f"{place}.{position}", part) for position, part in reversed(list(enumerate(inner))))


def check_state(mine, theirs, owner):
    """Raise a ValueError unless ``theirs`` has exactly the names and shapes of ``mine``, in floats."""
    if not isinstance(theirs, dict):
        raise ArgumentTypeError(f"{owner}.load_state_dict expects a dict of arrays; received {type(theirs).__name__}.")
    missing, unexpected = sorted(set(mine) - set(theirs)), sorted(set(theirs) - set(mine))
    if missing or unexpected:
        raise ArgumentError(
            f"{owner}.load_state_dict: the names do not match (missing {missing}, unexpected {unexpected})."
        )
    for key, array in mine.items():
        value = theirs[key]
        if not isinstance(value, np.ndarray) or value.shape != array.shape or value.dtype.kind != "f":
            found = f"{value.dtype}{value.shape}" if isinstance(value, np.ndarray) else type(value).__name__
            raise ArgumentError(
                f"{owner}.load_state_dict: {key!r} must be a float array of shape {array.shape}; received {found}."
            )


class Layer:
    """Base class: holds ``params``, ``grads`` and what ``forward`` saved for ``backward``.

    Attributes
    ----------
    params : dict[str, np.ndarray]
        Trainable arrays; the layer computes with these very arrays, so writing into them
        in place changes what it does.
    grads : dict[str, np.ndarray]
        Gradients of the loss with respect to ``params``, same keys and shapes, written by
        ``backward``.
    buffers : dict[str, np.ndarray]
        State that is not trained (e.g. running statistics); saved and converted with ``params``.

    Shape
    -----
    Each subclass documents its own; the output keeps the input's dtype.

    Examples
    --------
    A new layer is a forward and a backward; this one doubles its input:

    >>> import numpy as np
    >>> class Double(Layer):
    ...     def forward(self, x, training=False):
    ...         self._save(training)
    ...         return 2 * x
    ...     def backward(self, grad_out):
    ...         self._saved_values()          # a clear error if there was no training forward
    ...         return 2 * grad_out           # dX = dY * ∂Y/∂X
    >>> layer = Double()
    >>> layer.forward(np.ones(2), training=True), layer.backward(np.ones(2))
    (array([2., 2.]), array([2., 2.]))
    """

    #: True when each output value depends on the input value at the same place only (``y = f(x)``
    #: element by element): such a layer gives the same result on any memory layout, so the
    #: engine may run it on channels-last activations.
    elementwise = False

    def __init__(self):
        self.params = {}
        self.grads = {}
        self.buffers = {}
        self._saved = None

    # -- the contract -------------------------------------------------------------
    def forward(self, x, training=False):
        """Compute the layer's output; with ``training=True`` also keep what backward needs."""
        raise NotImplementedError

    def backward(self, grad_out):
        """Gradient with respect to the input of the last training forward; fills ``grads``."""
        raise NotImplementedError

    # -- helpers for subclasses ---------------------------------------------------
    def _keeps(self, training):
        """Whether this forward must keep values for backward: in training, or when an inference
        forward is recorded (:func:`recording_at_inference`)."""
        return bool(training) or id(self) in _recording.get()

    def _save(self, training, *values):
        """Keep ``values`` for backward after a training forward (or when recording at inference)."""
        self._saved = values if self._keeps(training) else None

    def _saved_values(self):
        """What the last training forward saved, or a clear error if there was none."""
        if self._saved is None:
            raise NotTrainedForwardError(
                f"{type(self).__name__}.backward() needs the values saved by a training forward; "
                f"call forward(x, training=True) first."
            )
        return self._saved

    @property
    def dtype(self):
        """dtype of the parameters (the layer computes in it), or None for a layer without any."""
        for array in self.params.values():
            return array.dtype
        return None

    # -- state: params and buffers under one set of names ---------------------------------
    def state_dict(self):
        """Every array the layer holds, by name: ``{**params, **buffers}`` (the arrays themselves).

        Examples
        --------
        >>> from tinynet.layers import Dense
        >>> sorted(Dense(3, 2, rng=0).state_dict())
        ['W', 'b']
        """
        return {**self.params, **self.buffers}

    def load_state_dict(self, state):
        """Copy ``state`` (as :meth:`state_dict` returns it) into the layer's arrays, in place.

        Every name must be present with the same shape; values are converted to the
        layer's dtype. Nothing is changed unless every entry fits.
        """
        check_state(self.state_dict(), state, type(self).__name__)
        for key, array in self.state_dict().items():
            np.copyto(array, state[key], casting="same_kind")

    def get_extra_state(self):
        """State that is not an array (a Dropout's random generator), JSON-serialisable; None for most layers.

        Checkpoints save it and ``fit(seed=...)`` reseeds through :meth:`set_extra_state`, so
        a resumed or seeded run draws the same numbers (PyTorch's ``get_extra_state``).
        """
        return None

    def set_extra_state(self, state):
        """Restore what :meth:`get_extra_state` returned."""
        if state is not None:
            raise ArgumentError(f"{type(self).__name__} keeps no extra state; received {type(state).__name__}.")

    def reseed(self, rng):
        """Draw this layer's random numbers from a new generator seeded by ``rng`` (``fit(seed=...)``);
        nothing for a layer that draws none."""

    def astype(self, dtype):
        """Convert every parameter and buffer to ``dtype`` in place and return the layer."""
        dtype = np.dtype(dtype)
        for store in (self.params, self.buffers):
            for key, array in store.items():
                store[key] = array.astype(dtype)
        self.grads = {}
        self._saved = None
        return self

    def get_config(self):
        """The constructor arguments that rebuild this layer (JSON-serialisable)."""
        return {}

    def __repr__(self):
        arguments = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({arguments})"

