"""Weight initialisers and the one way tinynet turns a seed into a random generator.

He (Kaiming) normal keeps the variance of activations constant through ReLU layers:
``W ~ N(0, 2 / fan_in)``. Glorot (Xavier) uniform does the same for symmetric
activations such as tanh: ``W ~ U(-a, a)`` with ``a = sqrt(6 / (fan_in + fan_out))``.
"""

import contextlib
import contextvars

import numpy as np

from ._checks import int_in, is_int
from .errors import ArgumentError, ArgumentTypeError, ModelFileError

__all__ = ["as_generator", "generator_from_state", "he_normal", "glorot_uniform", "recurrent_uniform", "INITIALIZERS"]


def as_generator(rng):
    """A ``numpy.random.Generator`` from a Generator, an int seed, or None (fresh entropy).

    Examples
    --------
    >>> bool(as_generator(0).integers(10) == as_generator(0).integers(10))
    True
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or is_int(rng):
        return np.random.default_rng(rng)
    raise ArgumentTypeError(f"Expected a numpy.random.Generator, an int seed or None; received {rng!r}.")


def he_normal(shape, fan_in, fan_out, rng, dtype=np.float32):
    """Samples of ``N(0, 2 / fan_in)``: He et al. (2015), for layers followed by ReLU.

    Examples
    --------
    >>> w = he_normal((784, 128), 784, 128, np.random.default_rng(0))
    >>> w.dtype, round(float(w.std() ** 2 * 784), 1)    # variance 2 / fan_in
    (dtype('float32'), 2.0)
    """
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)


def glorot_uniform(shape, fan_in, fan_out, rng, dtype=np.float32):
    """Samples of ``U(-a, a)``, ``a = sqrt(6 / (fan_in + fan_out))``: Glorot & Bengio (2010).

    Examples
    --------
    >>> w = glorot_uniform((300, 100), 300, 100, np.random.default_rng(0))
    >>> bool(np.abs(w).max() <= np.sqrt(6 / 400))
    True
    """
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


#: Initialisers by the name the layers accept in their ``init`` argument.
INITIALIZERS = {"he_normal": he_normal, "glorot_uniform": glorot_uniform}


_skip_drawing = contextvars.ContextVar("skip_drawing", default=False)


@contextlib.contextmanager
def weights_to_be_overwritten():
    """Within this block, layers get uninitialised weight arrays instead of random draws.

    Loading a model file uses it: the file's arrays replace the weights at once, so drawing
    them is wasted work, and a file that describes an absurdly large layer costs only
    address space (``np.empty`` touches no memory) until its shapes are checked and refused.
    """
    token = _skip_drawing.set(True)
    try:
        yield
    finally:
        _skip_drawing.reset(token)


def initial_weights(init, shape, fan_in, fan_out, rng, dtype, owner):
    """Draw weights with the initialiser named ``init``, or a ValueError listing the names."""
    if init not in INITIALIZERS:
        raise ArgumentError(f"{owner} received init={init!r}; expected one of {sorted(INITIALIZERS)}.")
    if _skip_drawing.get():
        return np.empty(shape, dtype=dtype)
    return INITIALIZERS[init](shape, fan_in, fan_out, as_generator(rng), dtype)


def recurrent_uniform(shape, hidden_size, rng, dtype=np.float32):
    """Samples of ``U(-k, k)``, ``k = 1 / sqrt(hidden_size)``: how PyTorch initialises every weight
    and bias of ``nn.RNN`` and ``nn.LSTM``.

    Examples
    --------
    >>> w = recurrent_uniform((28, 512), 128, 0)
    >>> w.dtype, bool(np.abs(w).max() <= 1 / np.sqrt(128))
    (dtype('float32'), True)
    """
    if _skip_drawing.get():
        return np.empty(shape, dtype=dtype)
    limit = 1.0 / np.sqrt(hidden_size)
    return as_generator(rng).uniform(-limit, limit, size=shape).astype(dtype)


def initial_normal(shape, std, rng, dtype):
    """Samples of ``N(0, std^2)`` (PositionalEmbedding's 0.02), or placeholders while a model file is read.

    Examples
    --------
    >>> p = initial_normal((200, 100), 0.02, 0, np.float32)
    >>> p.dtype, round(float(p.std()), 3)
    (dtype('float32'), 0.02)
    """
    if _skip_drawing.get():
        return np.empty(shape, dtype=dtype)
    return (as_generator(rng).standard_normal(shape) * std).astype(dtype)


def generator_from_state(state, what):
    """A PCG64 ``Generator`` in ``state``, after checking every field numpy would accept blindly.

    numpy takes any ints for PCG64's state; an even ``inc`` gives a generator that yields
    zeros, on which ``Generator.integers`` loops forever in C (deaf to Ctrl-C), and Dropout
    drops every unit. So: ints only, ``state`` and ``inc`` in ``[0, 2**128)``, ``inc`` odd,
    ``has_uint32`` 0 or 1, ``uinteger`` in ``[0, 2**32)``.

    Examples
    --------
    >>> state = np.random.default_rng(0).bit_generator.state
    >>> int(generator_from_state(state, "a state").integers(100)) == int(np.random.default_rng(0).integers(100))
    True
    >>> state["state"]["inc"] = 2          # even: a generator that yields zeros forever
    >>> generator_from_state(state, "a state")
    Traceback (most recent call last):
    ...
    tinynet.errors.ModelFileError: a state has an invalid saved state (not one a PCG64 generator can be in).
    """
    inner = state.get("state") if isinstance(state, dict) else None
    valid = (
        isinstance(state, dict) and set(state) == {"bit_generator", "state", "has_uint32", "uinteger"}
        and state["bit_generator"] == "PCG64" and isinstance(inner, dict) and set(inner) == {"state", "inc"}
        and int_in(inner["state"], 0, 2**128) and int_in(inner["inc"], 0, 2**128) and inner["inc"] % 2 == 1
        and int_in(state["has_uint32"], 0, 2) and int_in(state["uinteger"], 0, 2**32)
    )
    if not valid:
        raise ModelFileError(f"{what} has an invalid saved state (not one a PCG64 generator can be in).")
    generator = np.random.default_rng()
    generator.bit_generator.state = state
    return generator
