r"""A residual connection: the input added to what a few layers make of it.

For inner layers ``f = f_k ∘ ... ∘ f_1`` that keep the shape of their input::

    Y = X + f(X)

Backward: ``Y`` depends on ``X`` along two paths, directly and through ``f``; the chain rule
adds them::

    dX = dY + f.backward(dY)           # dY passes through untouched, plus what f makes of it

The first term is the "gradient highway": however small ``f``'s gradient becomes in a deep
stack, ``dY`` reaches the layers below undiminished, which is why networks of a hundred
layers with residual connections still train (He et al., 2016). ``f.backward`` runs the
inner layers' own backward passes in reverse, filling their ``grads``.

The inner layers' arrays are the residual layer's own, named by position: inside a
``Sequential`` at position 3, the first inner layer's weights are ``"3.0.W"``.
"""

import numpy as np

from ..errors import ArgumentError, ArgumentTypeError, ShapeError
from .base import Layer, check_layer_tree, check_state, qualified_name

__all__ = ["Residual", "nesting_depth", "MAX_NESTING", "TOO_DEEP"]

#: Residual layers inside residual layers, at most this deep: a Residual refuses to be built
#: deeper, ``save`` to write deeper (were the inner lists changed after building), and reading
#: a file deeper, so a hostile file cannot make the reader recurse without end and what
#: ``save`` writes ``load_model`` reads.
MAX_NESTING = 8


def nesting_depth(layers):
    """How many Residuals deep ``layers`` nest: 0 for none, 1 for ``[Residual(Dense(...))]``, at most MAX_NESTING + 1.

    The walk keeps its own stack and stops past the limit, so a deep tree cannot exhaust
    Python's stack and a Residual placed inside itself cannot make it run forever.
    """
    deepest = 0
    stack = [(layer, 1) for layer in layers]
    while stack and deepest <= MAX_NESTING:
        layer, level = stack.pop()
        inner = getattr(layer, "layers", ())
        if isinstance(layer, Layer) and inner:
            deepest = max(deepest, level)
            stack.extend((part, level + 1) for part in inner)
    return deepest


#: Why Residuals nested past MAX_NESTING are refused: one text wherever that happens.
TOO_DEEP = (f"Residual layers nest at most {MAX_NESTING} deep (a model file holds no more); these nest deeper. "
            f"Put some blocks one after another instead: Sequential([Residual(...), Residual(...)]).")


class Residual(Layer):
    """``y = x + f(x)``, with ``f`` the given layers applied in order.

    Parameters
    ----------
    *layers : Layer
        The inner layers; together they must keep the shape of their input.

    Shape
    -----
    - Input: any shape the first inner layer takes, e.g. ``(N, C, H, W)``.
    - Output: the input's shape and dtype.

    Attributes
    ----------
    params, grads, buffers : dict
        The inner layers', named ``"<inner position>.<name>"`` (``"0.W"``): the very arrays
        the inner layers compute with.
    layers : list of Layer

    Examples
    --------
    >>> import numpy as np
    >>> from tinynet.layers import Conv2D, ReLU
    >>> block = Residual(Conv2D(4, 4, 3, padding=1, rng=0), ReLU(), Conv2D(4, 4, 3, padding=1, rng=1))
    >>> x = np.random.default_rng(0).standard_normal((2, 4, 6, 6)).astype(np.float32)
    >>> block.forward(x).shape, sorted(block.params)
    ((2, 4, 6, 6), ['0.W', '0.b', '2.W', '2.b'])
    """

    def __init__(self, *layers):
        super().__init__()
        if not layers:
            raise ArgumentError("Residual needs at least one inner layer, e.g. Residual(Conv2D(8, 8, 3, padding=1)).")
        for position, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise ArgumentTypeError(
                    f"Residual expects tinynet layers; inner item {position} is {type(layer).__name__}. Pass the "
                    f"layers themselves, e.g. Residual(Dense(8, 8), ReLU()), not a list or a model (unpack "
                    f"those: Residual(*model)).")
        check_layer_tree(layers, "Residual")
        if nesting_depth(layers) >= MAX_NESTING:
            raise ArgumentError(TOO_DEEP)
        self.layers = list(layers)

    # The inner layers own the arrays; params, grads and buffers are views that name them by
    # position. Layer.__init__ sets each to {}, which is accepted; anything else is refused.
    def _inner(kind):
        def read(self):
            return {qualified_name(i, key): array for i, layer in enumerate(self.layers)
                    for key, array in getattr(layer, kind).items()}

        def write(self, value):
            if value:
                raise ArgumentError(f"Residual's {kind} are its inner layers'; set them on those layers.")

        return property(read, write, doc=f"The inner layers' {kind}, named ``\"<inner position>.<name>\"``.")

    params, grads, buffers = _inner("params"), _inner("grads"), _inner("buffers")
    del _inner

    def forward(self, x, training=False):
        """``x + f(x)``; a ShapeError when the inner layers change the shape."""
        out = x
        for layer in self.layers:
            out = layer.forward(out, training=training)
        self.check_output(np.shape(x), out.shape)
        self._save(training, True)
        return x + out

    @staticmethod
    def check_output(input_shape, output_shape):
        """A ShapeError unless the inner layers kept the shape: ``x + f(x)`` needs them equal."""
        if tuple(output_shape) != tuple(input_shape):
            raise ShapeError(
                f"Residual adds its input to its inner layers' output, so they must keep the shape; "
                f"{tuple(input_shape)} became {tuple(output_shape)}. Use padding=kernel_size // 2 and as many "
                f"output channels as input channels.")

    def backward(self, grad_out):
        """``dX = dY + f.backward(dY)``: the direct path and the path through the inner layers."""
        self._saved_values()
        grad = grad_out
        for layer in reversed(self.layers):
            grad = layer.backward(grad)
        return grad_out + grad

    def load_state_dict(self, state):
        """Each inner layer loads its part (its own checks apply); nothing changes unless every name fits."""
        check_state(self.state_dict(), state, "Residual")
        for i, layer in enumerate(self.layers):
            prefix = f"{i}."
            layer.load_state_dict({key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)})

    def astype(self, dtype):
        for layer in self.layers:
            layer.astype(dtype)
        self._saved = None
        return self

    def reseed(self, rng):
        for layer in self.layers:
            layer.reseed(rng)

    def get_extra_state(self):
        states = {str(i): layer.get_extra_state() for i, layer in enumerate(self.layers)}
        states = {key: value for key, value in states.items() if value is not None}
        return states or None

    def set_extra_state(self, state):
        if not isinstance(state, dict):
            raise ArgumentError(f"Residual's extra state is a dict by inner position; received {type(state).__name__}.")
        for key, value in state.items():
            if not (isinstance(key, str) and key.isdigit() and int(key) < len(self.layers)):
                raise ArgumentError(f"Residual has no inner layer {key!r} to give extra state to.")
            self.layers[int(key)].set_extra_state(value)

    def get_config(self):
        return {"layers": [{"class": type(layer).__name__, "config": layer.get_config()} for layer in self.layers]}

    @classmethod
    def from_config(cls, config, build, depth=0):
        """Rebuild from :meth:`get_config`; ``build(entry, position, depth)`` makes inner layer ``position``.

        ``depth`` counts the Residuals around this one: past MAX_NESTING the file is refused
        before the next level is read.
        """
        entries = config.get("layers") if isinstance(config, dict) else None
        if set(config) != {"layers"} or not isinstance(entries, list) or not entries:
            raise ArgumentError("Residual's configuration is {'layers': [{'class': ..., 'config': {...}}, ...]}.")
        if depth >= MAX_NESTING:
            raise ArgumentError(TOO_DEEP)
        return cls(*(build(entry, position, depth + 1) for position, entry in enumerate(entries)))

    def __repr__(self):
        return f"Residual({', '.join(repr(layer) for layer in self.layers)})"
