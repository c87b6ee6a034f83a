r"""Numerical gradient checking: does a layer's backward agree with finite differences?

For a fixed random ``G`` shaped like the output, take the scalar ``f = sum(layer(x) * G)``.
Its gradient with respect to the input is exactly what ``backward(G)`` returns, and with
respect to each parameter what ``backward`` writes into ``grads``. Each is compared with
central differences, one element at a time::

    df/dv_i ~ (f(v + eps e_i) - f(v - eps e_i)) / (2 eps)      error O(eps^2)

in float64, and summarised per array by the relative error::

    rel = ||analytic - numeric|| / max(||analytic||, ||numeric||)

A correct backward gives about 1e-9 or less; a wrong one gives 1e-3 or more.

Some gradients are exactly zero: the bias of a layer followed by BatchNorm (in training
the batch mean subtracts any constant added before it). A relative error of two zeros is
rounding noise over rounding noise, so both are first compared with what rounding
alone can make of a central difference, ``2**-52 * sum|y * G| / eps`` per entry (float64
rounding of the objective's terms, divided by the step): when both gradients are within 10
times that bound of zero, ``rel`` is 0. The same bound serves when a gradient is small but not
zero (a causal attention head of one feature, whose query gradient is a small difference of
large terms: 7.6e-5 where the objective is 9.4): a difference within it is what the central
differences cannot resolve, not a wrong backward, and ``rel`` is 0 too.
"""

import copy
from dataclasses import dataclass, field

import numpy as np

from ._checks import number
from .errors import ArgumentTypeError
from .layers.base import named_arrays

__all__ = ["gradcheck", "GradcheckResult", "relative_error"]


def relative_error(analytic, numeric, atol=0.0):
    """``||a - n|| / max(||a||, ||n||)``; 0 when both norms are ``<= atol`` (both zero up to rounding) or
    ``||a - n|| <= atol`` (they differ by no more than rounding can make of the numeric one).

    Examples
    --------
    >>> relative_error([1.0, 2.0], [1.0, 2.0 + 1e-9]) < 1e-9
    True
    >>> round(relative_error([1e-17], [3e-11]), 6), relative_error([1e-17], [3e-11], atol=1e-9)
    (1.0, 0.0)
    >>> round(relative_error([1e-4], [1e-4 + 3e-10]), 7), relative_error([1e-4], [1e-4 + 3e-10], atol=1e-9)
    (3e-06, 0.0)
    """
    scale = max(np.linalg.norm(analytic), np.linalg.norm(numeric))
    difference = np.linalg.norm(np.subtract(analytic, numeric))
    if scale <= atol or difference <= atol:
        return 0.0
    return float(difference / scale)


@dataclass
class GradcheckResult:
    """Relative error of the analytic gradient of each array: ``"input"`` and every parameter.

    Examples
    --------
    >>> result = GradcheckResult({"input": 2e-10, "W": 5e-9})
    >>> result.worst, result.passed(1e-6)
    (5e-09, True)
    """

    errors: dict = field(default_factory=dict)

    @property
    def worst(self):
        """The largest relative error over the input and every parameter."""
        return max(self.errors.values(), default=0.0)

    def passed(self, tolerance=1e-6):
        """True when every relative error is below ``tolerance``."""
        return self.worst < tolerance

    def __str__(self):
        rows = [f"  {name:<6} relative error {error:.2e}" for name, error in self.errors.items()]
        return "\n".join([f"gradcheck: worst relative error {self.worst:.2e}", *rows])


def _numeric_gradient(objective, values, eps, indices=None):
    """Central differences of ``objective()`` in the elements ``indices`` of ``values`` (all by
    default; changed in place, then restored), flat, in the order of ``indices``."""
    flat = values.reshape(-1)
    indices = range(flat.size) if indices is None else indices
    flat_grad = np.zeros(len(indices))
    for position, i in enumerate(indices):
        original = flat[i]
        flat[i] = original + eps
        plus = objective()
        flat[i] = original - eps
        minus = objective()
        flat[i] = original
        flat_grad[position] = (plus - minus) / (2 * eps)
    return flat_grad


def gradcheck(layer, x, grad_out=None, *, eps=1e-6, seed=0, training=True, entries=None):
    """Compare the analytic gradients of a layer, or a whole model, with central differences, in float64.

    The layer (or model) itself is not changed: the check runs on a float64 copy. Layers
    that draw random numbers in training (Dropout) get the same draws for every evaluation,
    because each evaluation starts from a copy of the same state.

    Parameters
    ----------
    layer : Layer or Sequential
        A whole ``Sequential`` is checked end to end: its ``backward`` against differences
        of ``f = sum(model(x) * G)`` in the input and the weights (named ``"3.W"``).
    x : array
        Input to check at.
    grad_out : array, optional
        The ``G`` of ``f = sum(layer(x) * G)``; standard normal from ``seed`` by default.
    eps : float, default 1e-6
        Finite-difference step.
    seed : int, default 0
    training : bool, default True
        Passed to ``forward``.
    entries : int, optional
        Check only this many entries of each array, chosen at random from ``seed`` (every
        entry by default for a layer; 20 for a ``Sequential``, whose weights are too many to
        difference one by one).

    Returns
    -------
    GradcheckResult
        ``.errors`` per array, ``.worst``, ``.passed(tolerance)``.

    Examples
    --------
    >>> import numpy as np
    >>> from tinynet.layers import Dense, ReLU
    >>> result = gradcheck(Dense(3, 2, rng=0), np.random.default_rng(0).standard_normal((4, 3)))
    >>> result.passed(1e-6)
    True
    >>> sorted(result.errors)
    ['W', 'b', 'input']

    A whole model, its backprop through every layer at once:

    >>> import tinynet
    >>> model = tinynet.Sequential([Dense(3, 4, rng=0), ReLU(), Dense(4, 2, rng=1)])
    >>> result = gradcheck(model, np.random.default_rng(0).standard_normal((5, 3)))
    >>> sorted(result.errors), result.passed(1e-6)
    (['0.W', '0.b', '2.W', '2.b', 'input'], True)
    """
    whole_model = hasattr(layer, "layers")
    if not (whole_model or hasattr(layer, "backward")) or not hasattr(layer, "astype"):
        raise ArgumentTypeError(f"gradcheck expects a tinynet layer or Sequential; received {type(layer).__name__}.")
    eps = number(eps, "eps", "gradcheck", low=0, low_open=True)
    if entries is not None:
        entries = number(entries, "entries", "gradcheck", low=1, integer=True)
    if whole_model and entries is None:
        entries = 20
    try:
        x = np.array(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise ArgumentTypeError(f"gradcheck expects x as an array of numbers; received {type(x).__name__}.") from None
    start = copy.deepcopy(layer).astype(np.float64)

    probe = copy.deepcopy(start)
    y = probe.forward(x, training=training)
    if grad_out is None:
        grad_out = np.random.default_rng(seed).standard_normal(y.shape)
    grad_out = np.asarray(grad_out, dtype=np.float64)
    grad_x = probe.backward(grad_out)
    # What rounding alone can put into one central difference (module docstring), times 10.
    rounding = 10 * np.finfo(np.float64).eps * float(np.sum(np.abs(y * grad_out))) / eps
    if whole_model:
        grads = named_arrays(probe.layers, "grads")
    else:
        grads = probe.grads
    analytic = {"input": grad_x, **grads}

    # One fresh copy of the starting layer per evaluation: same parameters, same RNG state.
    def objective():
        fresh = copy.deepcopy(start)
        return float(np.sum(fresh.forward(x, training=training) * grad_out))

    chooser = np.random.default_rng(seed)
    result = GradcheckResult()
    for name, values in {"input": x, **start.params}.items():
        size = values.size
        indices = None if entries is None or entries >= size else np.sort(chooser.choice(size, entries, replace=False))
        numeric = _numeric_gradient(objective, values, eps, indices)
        chosen = analytic[name].reshape(-1) if indices is None else analytic[name].reshape(-1)[indices]
        result.errors[name] = relative_error(chosen, numeric, atol=rounding * np.sqrt(numeric.size))
    return result
