r"""Optimizers with the update rules of ``torch.optim.SGD`` and ``torch.optim.Adam``.

``step(layers)`` updates every ``layer.params[k]`` in place from ``layer.grads[k]``.
With ``g`` the gradient, ``p`` the parameter, ``lr`` the learning rate:

SGD (``weight_decay`` = ``wd``, ``momentum`` = ``mu``)::

    g = g + wd * p
    v = g                       on the first step, else  v = mu * v + g
    g = g + mu * v  if nesterov else  v
    p = p - lr * g

Adam (``t`` counts steps from 1)::

    g = g + wd * p
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g^2
    p = p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)

State (velocities, moments) is kept per parameter, in the order ``step`` visits them.
"""

import math
import numbers

import numpy as np

from .kernels import adam_update

__all__ = ["Optimizer", "SGD", "Adam"]


def _non_negative(value, name, owner, upper=math.inf):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < upper:
        bound = f"in [0, {upper})" if upper != math.inf else "a finite number >= 0"
        raise ValueError(f"{owner} expects {name} {bound}; received {name}={value!r}.")
    return float(value)


class Optimizer:
    """Base class: walks the parameters of a list of layers and keeps per-parameter state.

    A subclass implements ``_update(param, grad, state)`` (in place) and ``get_config()``.

    Examples
    --------
    See :class:`SGD` and :class:`Adam`.
    """

    def __init__(self, lr):
        self.lr = _non_negative(lr, "lr", type(self).__name__)
        self.state = []  # one dict of arrays per parameter, in visiting order
        self.steps = 0

    @staticmethod
    def _parameters(layers):
        for layer in layers:
            for key in sorted(layer.params):
                yield layer, key

    def step(self, layers):
        """Update every parameter of ``layers`` in place from its gradient."""
        pairs = list(self._parameters(layers))
        if not self.state:
            self.state = [{} for _ in pairs]
        elif len(self.state) != len(pairs):
            raise ValueError(
                f"{type(self).__name__} holds state for {len(self.state)} parameters but was given "
                f"{len(pairs)}; use a new optimizer for a different model."
            )
        self.steps += 1
        for (layer, key), state in zip(pairs, self.state, strict=True):
            if key not in layer.grads:
                raise ValueError(
                    f"{type(layer).__name__} has no gradient for {key!r}; call backward() before step()."
                )
            self._update(layer.params[key], layer.grads[key], state)

    def _update(self, param, grad, state):
        raise NotImplementedError

    def get_config(self):
        """The constructor arguments: ``type(opt)(**opt.get_config())`` is a fresh copy."""
        raise NotImplementedError

    def state_dict(self):
        """The optimizer's state as plain data: hyper-parameters, step count and arrays."""
        return {"steps": self.steps, "state": [dict(s) for s in self.state]}

    def load_state_dict(self, data):
        """Restore what :meth:`state_dict` returned."""
        self.steps = int(data["steps"])
        self.state = [dict(s) for s in data["state"]]


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum and L2 weight decay.

    Examples
    --------
    >>> import numpy as np
    >>> from tinynet.layers import Dense
    >>> layer = Dense(1, 1, rng=0); layer.params["W"][...] = 1.0
    >>> layer.grads = {"W": np.full((1, 1), 0.5, np.float32), "b": np.zeros(1, np.float32)}
    >>> SGD(lr=0.1).step([layer]); layer.params["W"]
    array([[0.95]], dtype=float32)
    """

    def __init__(self, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
        super().__init__(lr)
        self.momentum = _non_negative(momentum, "momentum", "SGD")
        self.weight_decay = _non_negative(weight_decay, "weight_decay", "SGD")
        if nesterov and self.momentum == 0:
            raise ValueError("SGD with nesterov=True needs momentum > 0; received momentum=0.")
        self.nesterov = bool(nesterov)

    def get_config(self):
        return {"lr": self.lr, "momentum": self.momentum, "nesterov": self.nesterov,
                "weight_decay": self.weight_decay}

    def _update(self, param, grad, state):
        if self.weight_decay:
            grad = grad + param.dtype.type(self.weight_decay) * param
        if self.momentum:
            if "velocity" not in state:
                state["velocity"] = grad.copy()
            else:
                velocity = state["velocity"]
                velocity *= param.dtype.type(self.momentum)
                velocity += grad
            velocity = state["velocity"]
            grad = grad + param.dtype.type(self.momentum) * velocity if self.nesterov else velocity
        param -= param.dtype.type(self.lr) * grad


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with bias correction and L2 weight decay, as ``torch.optim.Adam``.

    Examples
    --------
    >>> import numpy as np
    >>> from tinynet.layers import Dense
    >>> layer = Dense(1, 1, rng=0); layer.params["W"][...] = 1.0
    >>> layer.grads = {"W": np.full((1, 1), 0.5, np.float32), "b": np.zeros(1, np.float32)}
    >>> Adam(lr=0.1).step([layer]); round(float(layer.params["W"][0, 0]), 6)   # first step moves by lr
    0.9
    """

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
        super().__init__(lr)
        self.beta1 = _non_negative(beta1, "beta1", "Adam", upper=1)
        self.beta2 = _non_negative(beta2, "beta2", "Adam", upper=1)
        self.eps = _non_negative(eps, "eps", "Adam")
        self.weight_decay = _non_negative(weight_decay, "weight_decay", "Adam")

    def get_config(self):
        return {"lr": self.lr, "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps,
                "weight_decay": self.weight_decay}

    def _update(self, param, grad, state):
        if "m" not in state:
            state["m"] = np.zeros_like(param)
            state["v"] = np.zeros_like(param)
        # The update rule (module docstring) as one pass: a numba loop, or its NumPy twin
        # kernels.reference.adam_update_reference when numba is off.
        adam_update(param, grad, state["m"], state["v"], self.lr, self.beta1, self.beta2, self.eps,
                    self.weight_decay, self.steps)
