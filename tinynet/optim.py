r"""Optimizers with the update rules of ``torch.optim.SGD``, ``torch.optim.Adam`` and ``torch.optim.AdamW``.

``step(layers)`` updates every ``layer.params[k]`` in place from ``layer.grads[k]``.
With ``g`` the gradient, ``p`` the parameter, ``lr`` the learning rate:

SGD (``weight_decay`` = ``wd``, ``momentum`` = ``mu``)::

    g = g + wd * p
    v = g                       on the first step, else  v = mu * v + g
    g = g + mu * v  if nesterov else  v
    p = p - lr * g

Adam (``t`` counts steps from 1; ``wd`` is L2 decay added to the gradient)::

    g = g + wd * p
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g^2
    p = p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)

AdamW: Adam without the L2 term, the weights decayed directly (decoupled)::

    p = p * (1 - lr * wd)       then Adam's step with wd = 0

Gradient clipping (``clip_norm`` = ``c``, any optimizer), before the rule above, as
``torch.nn.utils.clip_grad_norm_``: with ``‖g‖`` the L2 norm of every parameter's gradient
together (the square root of the sum of all their squares)::

    g = g * min(1, c / (‖g‖ + 1e-6))          for every parameter, by the same factor

so a step never moves along a gradient longer than ``c`` (a recurrent network's gradient can
grow geometrically with the sequence's length), and keeps its direction. The layers'
``grads`` are left as backward wrote them: the scaled copy only feeds the update.

State (velocities, moments) is kept per parameter *name*, ``"<layer position>.<param>"``
as in :meth:`tinynet.Sequential.state_dict`, under PyTorch's names (``momentum_buffer``,
``exp_avg``, ``exp_avg_sq``). Before every step the state is checked against the
parameters it is applied to: an optimizer used on a model it does not fit raises a clear
error instead of updating the wrong arrays, and state follows its parameter's dtype after
``model.astype``.
"""

import math

import numpy as np

from . import kernels
from ._checks import is_int, number
from .errors import ArgumentError, ArgumentTypeError
from .layers.base import qualified_name

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "adam_update", "named_parameters", "OPTIMIZERS",
           "OPTIMIZER_NAMES"]

#: A step count no real run reaches; larger values in a file are refused.
MAX_STEPS = 2**53


def named_parameters(layers):
    """``(name, layer, key)`` for every parameter, named ``"<position>.<key>"``, in step order.

    Examples
    --------
    >>> from tinynet.layers import Dense, ReLU
    >>> [name for name, _, _ in named_parameters([Dense(2, 2, rng=0), ReLU(), Dense(2, 1, rng=0)])]
    ['0.W', '0.b', '2.W', '2.b']
    """
    for position, layer in enumerate(layers):
        for key in sorted(layer.params):
            yield qualified_name(position, key), layer, key


def _parameters_and_gradients(layers):
    """``(name, layer, param, grad)`` for every parameter of :func:`named_parameters`, in its order; ``grad`` is
    None where the layer has none. Each layer's ``params`` and ``grads`` are read once (a Residual builds
    them from its inner layers at every read)."""
    for position, layer in enumerate(layers):
        params, grads = layer.params, layer.grads
        for key in sorted(params):
            yield qualified_name(position, key), layer, params[key], grads.get(key)


class Optimizer:
    """Base class: walks the parameters of a list of layers and keeps per-parameter state.

    A subclass names its per-parameter arrays in ``STATE_NAMES``, implements
    ``_update(param, grad, state)`` (in place) and ``get_config()``.

    Examples
    --------
    See :class:`SGD` and :class:`Adam`.
    """

    #: The arrays kept per parameter once a step has been taken.
    STATE_NAMES = ()

    def __init__(self, lr, clip_norm=None):
        self.lr = number(lr, "lr", type(self).__name__, low=0)
        self.clip_norm = None if clip_norm is None else number(clip_norm, "clip_norm", type(self).__name__,
                                                                low=0, low_open=True)
        self.state = {}  # parameter name -> {state name: array}
        self.steps = 0

    def step(self, layers):
        """Update every parameter of ``layers`` in place from its gradient."""
        entries = list(_parameters_and_gradients(layers))
        self._check_fits(entries)
        self.steps += 1
        scale = self.clip_scale([grad for _, _, _, grad in entries])
        for name, _, param, grad in entries:
            if scale != 1:  # a scaled copy: the layer's gradient stays as backward left it
                grad = grad * grad.dtype.type(scale)
            self._update(param, grad, self.state.setdefault(name, {}))

    def clip_scale(self, grads):
        """The factor every gradient is multiplied by before the update: ``min(1, clip_norm / (‖g‖ + 1e-6))``,
        ``‖g‖`` the L2 norm of all of ``grads`` together (1 without ``clip_norm``).

        Examples
        --------
        >>> import numpy as np
        >>> grads = [np.array([3.0]), np.array([[4.0]])]          # together a vector of length 5
        >>> round(SGD(lr=0.1, clip_norm=1.0).clip_scale(grads), 6), SGD(lr=0.1).clip_scale(grads)
        (0.2, 1.0)
        """
        if self.clip_norm is None:
            return 1.0
        # In float64: a float32 sum of squares over a million weights loses digits.
        total = math.sqrt(sum(float(np.dot(g.ravel().astype(np.float64), g.ravel().astype(np.float64)))
                              for g in grads))
        return min(1.0, self.clip_norm / (total + 1e-6))  # the 1e-6 is PyTorch's, against dividing by 0

    def _check_fits(self, entries):
        """Refuse, before anything changes, state or gradients that do not fit the parameters."""
        owner = type(self).__name__
        if self.state and set(self.state) != {name for name, _, _, _ in entries}:
            raise ArgumentError(
                f"{owner} holds state for the parameters {sorted(self.state)[:6]}, not for this model's "
                f"{[name for name, _, _, _ in entries][:6]}: it was used with another model. Build a new "
                f"{owner} for this model, or call optimizer.reset()."
            )
        for name, layer, param, grad in entries:
            if grad is None:
                raise ArgumentError(
                    f"{type(layer).__name__} has no gradient for {name.split('.', 1)[1]!r}; call backward() "
                    f"before step().")
            if grad.shape != param.shape:
                raise ArgumentError(
                    f"The gradient of parameter {name} has shape {grad.shape}; the parameter has {param.shape}."
                )
            state = self.state.get(name, {})
            for state_name, array in state.items():
                if array.shape != param.shape:
                    raise ArgumentError(
                        f"{owner}'s {state_name} for parameter {name} has shape {array.shape}, the parameter "
                        f"{param.shape}: the optimizer was used with another model. Build a new {owner} for "
                        f"this model, or call optimizer.reset()."
                    )
                if array.dtype != param.dtype:  # the model was converted with astype: follow it
                    state[state_name] = array.astype(param.dtype)

    def reset(self):
        """Forget every parameter's state and the step count, as a new optimizer."""
        self.state = {}
        self.steps = 0

    def _update(self, param, grad, state):
        raise NotImplementedError

    def get_config(self):
        """The constructor arguments: ``type(opt)(**opt.get_config())`` is a fresh copy."""
        raise NotImplementedError

    def state_dict(self):
        """The optimizer's state: ``{"config": ..., "steps": int, "state": {"3.W.exp_avg": array, ...}}``.

        Examples
        --------
        >>> import numpy as np
        >>> from tinynet.layers import Dense
        >>> layer = Dense(2, 1, rng=0)
        >>> layer.grads = {"W": np.ones((2, 1), np.float32), "b": np.ones(1, np.float32)}
        >>> optimizer = Adam(); optimizer.step([layer])
        >>> sorted(optimizer.state_dict()["state"])
        ['0.W.exp_avg', '0.W.exp_avg_sq', '0.b.exp_avg', '0.b.exp_avg_sq']
        """
        arrays = {f"{name}.{state_name}": array
                  for name, state in self.state.items() for state_name, array in state.items()}
        return {"config": self.get_config(), "steps": self.steps, "state": arrays}

    def load_state_dict(self, data):
        """Restore what :meth:`state_dict` returned (settings, step count and arrays, copied).

        Each parameter has all of ``STATE_NAMES`` or none; moments must be finite (and
        ``exp_avg_sq`` non-negative). Nothing changes unless all of it fits.
        """
        owner = type(self).__name__
        expected = 'the dict that state_dict() returns: {"config": dict, "steps": int, "state": dict of arrays}'
        if not isinstance(data, dict):
            raise ArgumentError(f"{owner}.load_state_dict expects {expected}; received {type(data).__name__}.")
        missing = sorted(map(repr, {"config", "steps", "state"} - set(data)))
        unexpected = sorted(repr(key) for key in data if key not in {"config", "steps", "state"})
        if missing or unexpected:
            raise ArgumentError(f"{owner}.load_state_dict expects {expected}; the keys do not match (missing "
                                f"{', '.join(missing) or 'none'}, unexpected {', '.join(unexpected) or 'none'}).")
        if not isinstance(data["config"], dict) or not isinstance(data["state"], dict):
            raise ArgumentError(f"{owner}.load_state_dict expects {expected}; received config "
                                f"{type(data['config']).__name__} and state {type(data['state']).__name__}.")
        try:
            fresh = type(self)(**data["config"])  # validates the settings
        except TypeError as error:  # an unknown or missing keyword
            raise ArgumentError(f"{owner}.load_state_dict: the config does not fit {owner}: {error}.") from None
        steps = data["steps"]
        if not is_int(steps) or not 0 <= steps < MAX_STEPS:
            raise ArgumentError(f"{owner}.load_state_dict: steps must be an int in [0, 2**53); received {steps!r}.")
        state = {}
        for entry, array in data["state"].items():
            if not isinstance(entry, str):
                raise ArgumentTypeError(
                    f"{owner}.load_state_dict: the state's arrays are named by text, '<parameter>.<state name>' "
                    f"(e.g. '0.W.{(fresh.STATE_NAMES or ('momentum_buffer',))[0]}'); received the name {entry!r} "
                    f"({type(entry).__name__}).")
            name, _, state_name = entry.rpartition(".")
            if state_name not in fresh.STATE_NAMES or not name:  # the loaded settings say which there are
                raise ArgumentError(f"{owner}.load_state_dict: unexpected state array {entry!r}; with these settings "
                                    f"each parameter has {list(fresh.STATE_NAMES)}.")
            if not isinstance(array, np.ndarray) or array.dtype.kind != "f" or not np.isfinite(array).all():
                raise ArgumentError(f"{owner}.load_state_dict: {entry} must be a finite float array.")
            if state_name == "exp_avg_sq" and (array < 0).any():
                raise ArgumentError(f"{owner}.load_state_dict: {entry} holds negative values; it is a mean of squares.")
            state.setdefault(name, {})[state_name] = np.array(array)
        for name, arrays in state.items():
            if set(arrays) != set(fresh.STATE_NAMES):
                raise ArgumentError(
                    f"{owner}.load_state_dict: every parameter needs all of {fresh.STATE_NAMES} or none; "
                    f"{name} has {sorted(arrays)}.")
            shapes = {array.shape for array in arrays.values()}
            if len(shapes) > 1:
                raise ArgumentError(f"{owner}.load_state_dict: the state arrays of {name} have different shapes "
                                    f"{sorted(shapes)}; each has its parameter's shape.")
        self.__dict__.update(fresh.__dict__)
        self.steps, self.state = int(steps), state


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

    def __init__(self, lr, momentum=0.0, nesterov=False, weight_decay=0.0, clip_norm=None):
        super().__init__(lr, clip_norm)
        self.momentum = number(momentum, "momentum", "SGD", low=0)
        self.weight_decay = number(weight_decay, "weight_decay", "SGD", low=0)
        if nesterov and self.momentum == 0:
            raise ArgumentError("SGD with nesterov=True needs momentum > 0; received momentum=0.")
        self.nesterov = bool(nesterov)
        self.STATE_NAMES = ("momentum_buffer",) if self.momentum else ()

    def get_config(self):
        return {"lr": self.lr, "momentum": self.momentum, "nesterov": self.nesterov,
                "weight_decay": self.weight_decay, "clip_norm": self.clip_norm}

    def _update(self, param, grad, state):
        if self.weight_decay:
            grad = grad + param.dtype.type(self.weight_decay) * param
        if self.momentum:
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = grad.astype(param.dtype, copy=True)
            else:
                velocity = state["momentum_buffer"]
                velocity *= param.dtype.type(self.momentum)
                velocity += grad
            velocity = state["momentum_buffer"]
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

    STATE_NAMES = ("exp_avg", "exp_avg_sq")

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, clip_norm=None):
        super().__init__(lr, clip_norm)
        owner = type(self).__name__
        self.beta1 = number(beta1, "beta1", owner, low=0, high=1)
        self.beta2 = number(beta2, "beta2", owner, low=0, high=1)
        self.eps = number(eps, "eps", owner, low=0)
        self.weight_decay = number(weight_decay, "weight_decay", owner, low=0)

    def get_config(self):
        return {"lr": self.lr, "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps,
                "weight_decay": self.weight_decay, "clip_norm": self.clip_norm}

    def _decay(self):
        """``(l2, decay)``: Adam adds ``wd * p`` to the gradient and decays nothing directly."""
        return self.weight_decay, 1.0

    def _update(self, param, grad, state):
        if "exp_avg" not in state:
            state["exp_avg"] = np.zeros_like(param)
            state["exp_avg_sq"] = np.zeros_like(param)
        l2, decay = self._decay()
        settings = dict(lr=self.lr, beta1=self.beta1, beta2=self.beta2, eps=self.eps, step=self.steps, l2=l2,
                        decay=decay)
        # The rule below as one numba loop over the weights (5x faster than NumPy's ten passes);
        # the tests check that both give the same weights.
        if kernels.BACKEND == "numba" and param.flags.c_contiguous:
            kernels.adam_update(param, grad, state["exp_avg"], state["exp_avg_sq"], **settings)
        else:
            adam_update(param, grad, state["exp_avg"], state["exp_avg_sq"], **settings)


def adam_update(param, grad, exp_avg, exp_avg_sq, lr, beta1, beta2, eps, step, l2=0.0, decay=1.0):
    """One Adam step on one parameter, in place: ``param``, ``exp_avg`` and ``exp_avg_sq`` are updated.

    ``step`` counts from 1. ``l2`` is Adam's weight decay (added to the gradient),
    ``decay = 1 - lr * weight_decay`` AdamW's (applied to the weights; 1 for Adam). Computed
    in the parameter's dtype.

    Examples
    --------
    >>> p, g = np.ones(2, np.float32), np.array([0.5, -0.5], np.float32)
    >>> m, v = np.zeros(2, np.float32), np.zeros(2, np.float32)
    >>> adam_update(p, g, m, v, lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8, step=1)
    >>> p.round(6)                                     # the first step moves each weight by lr
    array([0.9, 1.1], dtype=float32)
    """
    dtype = param.dtype.type
    if l2:
        grad = grad + dtype(l2) * param                      # L2 decay: part of the gradient
    exp_avg *= dtype(beta1)                                  # m = b1 * m + (1 - b1) * g
    exp_avg += dtype(1 - beta1) * grad
    exp_avg_sq *= dtype(beta2)                               # v = b2 * v + (1 - b2) * g^2
    exp_avg_sq += dtype(1 - beta2) * grad * grad
    # Bias corrections: m and v start at 0, so early averages are too small by (1 - b^t).
    step_size = dtype(lr / (1 - beta1**step))
    denominator = np.sqrt(exp_avg_sq) / dtype(math.sqrt(1 - beta2**step)) + dtype(eps)
    if decay != 1:
        param *= dtype(decay)                                # AdamW: the weights decay directly
    param -= step_size * exp_avg / denominator               # p = p - lr_t * m / (sqrt(v_t) + eps)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019), as ``torch.optim.AdamW``.

    The weights shrink by ``lr * weight_decay`` of themselves every step, apart from the
    gradient's moments (default ``weight_decay=0.01``, PyTorch's).

    Examples
    --------
    >>> import numpy as np
    >>> from tinynet.layers import Dense
    >>> layer = Dense(1, 1, rng=0); layer.params["W"][...] = 1.0
    >>> layer.grads = {"W": np.zeros((1, 1), np.float32), "b": np.zeros(1, np.float32)}
    >>> AdamW(lr=0.1, weight_decay=0.5).step([layer]); round(float(layer.params["W"][0, 0]), 6)
    0.95
    """

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01, clip_norm=None):
        super().__init__(lr, beta1, beta2, eps, weight_decay, clip_norm)

    def _decay(self):
        return 0.0, 1.0 - self.lr * self.weight_decay


#: Every optimizer by its class name (how checkpoints name them).
OPTIMIZERS = {cls.__name__: cls for cls in (SGD, Adam, AdamW)}
#: The names a Keras user types for ``fit(optimizer=...)``, with Keras's default settings.
OPTIMIZER_NAMES = {"adam": Adam, "adamw": AdamW, "sgd": lambda: SGD(lr=0.01)}
