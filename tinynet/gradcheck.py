r"""Numerical gradient checking: does a layer's backward agree with finite differences?

For a fixed random ``G`` shaped like the output, take the scalar ``f = sum(layer(x) * G)``.
Its gradient with respect to the input is exactly what ``backward(G)`` returns, and with
respect to each parameter what ``backward`` writes into ``grads``. Each is compared with
central differences, one element at a time::

    df/dv_i ~ (f(v + eps e_i) - f(v - eps e_i)) / (2 eps)      error O(eps^2)

in float64, and summarised per array by the relative error::

    rel = ||analytic - numeric|| / max(||analytic||, ||numeric||)     (0 when both are 0)

A correct backward gives about 1e-9 or less; a wrong one gives 1e-3 or more.
"""

import copy
from dataclasses import dataclass, field

import numpy as np

__all__ = ["gradcheck", "GradcheckResult", "relative_error"]


def relative_error(analytic, numeric):
    """``||a - n|| / max(||a||, ||n||)``, 0 when both are zero."""
    scale = max(np.linalg.norm(analytic), np.linalg.norm(numeric))
    return 0.0 if scale == 0 else float(np.linalg.norm(analytic - numeric) / scale)


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


def _numeric_gradient(objective, values, eps):
    """Central differences of ``objective()`` in every element of ``values`` (changed in place, then restored)."""
    grad = np.zeros_like(values)
    flat, flat_grad = values.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        original = flat[i]
        flat[i] = original + eps
        plus = objective()
        flat[i] = original - eps
        minus = objective()
        flat[i] = original
        flat_grad[i] = (plus - minus) / (2 * eps)
    return grad


def gradcheck(layer, x, grad_out=None, *, eps=1e-6, seed=0, training=True):
    """Compare ``layer``'s analytic gradients with central differences, in float64.

    The layer itself is not changed: the check runs on a float64 copy. Layers that draw
    random numbers in training (Dropout) get the same draws for every evaluation, because
    each evaluation starts from a copy of the same state.

    Parameters
    ----------
    layer : Layer
    x : array
        Input to check at.
    grad_out : array, optional
        The ``G`` of ``f = sum(layer(x) * G)``; standard normal from ``seed`` by default.
    eps : float, default 1e-6
        Finite-difference step.
    seed : int, default 0
    training : bool, default True
        Passed to ``forward``.

    Returns
    -------
    GradcheckResult
        ``.errors`` per array, ``.worst``, ``.passed(tolerance)``.

    Examples
    --------
    >>> import numpy as np
    >>> from tinynet.layers import Dense
    >>> result = gradcheck(Dense(3, 2, rng=0), np.random.default_rng(0).standard_normal((4, 3)))
    >>> result.passed(1e-6)
    True
    >>> sorted(result.errors)
    ['W', 'b', 'input']
    """
    start = copy.deepcopy(layer).astype(np.float64)
    x = np.array(x, dtype=np.float64)

    probe = copy.deepcopy(start)
    y = probe.forward(x, training=training)
    if grad_out is None:
        grad_out = np.random.default_rng(seed).standard_normal(y.shape)
    grad_out = np.asarray(grad_out, dtype=np.float64)
    analytic = {"input": probe.backward(grad_out), **probe.grads}

    # One fresh copy of the starting layer per evaluation: same parameters, same RNG state.
    def objective():
        fresh = copy.deepcopy(start)
        return float(np.sum(fresh.forward(x, training=training) * grad_out))

    result = GradcheckResult()
    result.errors["input"] = relative_error(analytic["input"], _numeric_gradient(objective, x, eps))
    for key in start.params:
        numeric = _numeric_gradient(objective, start.params[key], eps)
        result.errors[key] = relative_error(analytic[key], numeric)
    return result
