"""The checks of capstone.ipynb: your network's pieces against tinynet's layers, your loop against a learning target.

A network here is a list of layers' parameters, ``params[i] = {"W": (D_in, D_out), "b": (D_out,)}``,
with ReLU between the Dense layers and none after the last; tinynet's ``Sequential`` of ``Dense``
and ``ReLU`` with the same weights is the reference. Each check prints one line (see
exercise_checks) and returns None when something is wrong:

- ``check_mlp_forward``: the logits, in float32 and float64, for two and three layers.
- ``check_mlp_backward``: every ``dW`` and ``db``, from your own forward's cache.
- ``check_softmax_cross_entropy``: the loss and ``dlogits``, with a row of ±1000.
- ``check_sgd_momentum_step``: two steps in place, against ``tinynet.optim.SGD(lr, momentum)``.
- ``check_train``: your loop trains a fresh 784-64-10 network on 2048 images for 4 epochs; it
  passes when the loss it reports falls and the network gets at least 90% of those images right.
"""

import copy

import numpy as np
from exercise_checks import check_cases

import tinynet
from tinynet.layers import Dense, ReLU
from tinynet.losses import SoftmaxCrossEntropy

__all__ = ["accuracy", "check_mlp_backward", "check_mlp_forward", "check_sgd_momentum_step",
           "check_softmax_cross_entropy", "check_train", "init_mlp"]

#: What check_train asks of a training loop: a fresh network, a few epochs on a small subset.
TRAIN_CHECK = {"sizes": (784, 64, 10), "images": 2048, "epochs": 4, "batch_size": 64, "lr": 0.05,
               "momentum": 0.9, "accuracy": 0.90}


def init_mlp(sizes, rng, dtype=np.float32):
    """He-initialised Dense layers for ``sizes = (inputs, hidden..., classes)``: W ~ N(0, 2/fan_in), b = 0."""
    return [{"W": (rng.standard_normal((fan_in, fan_out)) * np.sqrt(2 / fan_in)).astype(dtype),
             "b": np.zeros(fan_out, dtype)} for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True)]


def accuracy(mlp_forward, params, x, labels, batch_size=1000):
    """The fraction of ``x`` that ``mlp_forward`` with ``params`` classifies as ``labels``, a batch at a time."""
    right = sum(int((mlp_forward(params, x[i:i + batch_size])[0].argmax(axis=1) == labels[i:i + batch_size]).sum())
                for i in range(0, len(x), batch_size))
    return right / len(x)


def _reference(params):
    """tinynet's Sequential of Dense and ReLU holding copies of ``params``."""
    layers = []
    for index, layer in enumerate(params):
        dense = Dense(*layer["W"].shape, rng=0, dtype=layer["W"].dtype)
        dense.params["W"][...], dense.params["b"][...] = layer["W"], layer["b"]
        layers += [dense] if index == len(params) - 1 else [dense, ReLU()]
    return tinynet.Sequential(layers)


def _networks():
    """``(label, params, x)``: two and three layers, float32 and float64."""
    rng = np.random.default_rng(7)
    for sizes in [(12, 7, 3), (12, 9, 6, 4)]:
        for dtype in (np.float32, np.float64):
            params = init_mlp(sizes, rng, dtype)
            for layer in params:
                layer["b"][...] = rng.standard_normal(layer["b"].shape) * 0.1
            yield f"sizes {sizes}, {np.dtype(dtype)}", params, rng.standard_normal((5, sizes[0])).astype(dtype)


def _pair(name, result):
    if not isinstance(result, tuple) or len(result) != 2:
        raise TypeError(f"{name} should return a pair, got {type(result).__name__}")
    return result


def check_mlp_forward(function):
    """``mlp_forward(params, X) -> (logits, cache)``: the logits against tinynet's Sequential."""
    cases = [(label, (params, x), _reference(params).forward(x)) for label, params, x in _networks()]
    return check_cases("mlp_forward", lambda params, x: _pair("mlp_forward", function(params, x))[0], cases)


def check_mlp_backward(function, mlp_forward):
    """``mlp_backward(params, cache, dlogits) -> grads``, ``cache`` from your ``mlp_forward``, every dW and db."""
    cases = []
    for label, params, x in _networks():
        model = _reference(params)
        dlogits = np.random.default_rng(3).standard_normal(model.forward(x, training=True).shape).astype(x.dtype)
        model.backward(dlogits)
        try:
            cache = _pair("mlp_forward", mlp_forward(params, x))[1]
        except Exception as error:  # its own check says what is wrong with it
            print(f"mlp_backward: not done yet (it needs a working mlp_forward: {type(error).__name__})")
            return None
        dense = [layer for layer in model.layers if isinstance(layer, Dense)]
        cases += [(f"{label}, d{key} of layer {index}", (params, cache, dlogits, index, key), layer.grads[key])
                  for index, layer in enumerate(dense) for key in ("W", "b")]

    def one_gradient(params, cache, dlogits, index, key):
        return function(params, cache, dlogits)[index][key]

    return check_cases("mlp_backward", one_gradient, cases)


def check_softmax_cross_entropy(function):
    """``softmax_cross_entropy(logits, labels) -> (loss, dlogits)`` against ``SoftmaxCrossEntropy``."""
    rng, cases = np.random.default_rng(5), []
    for dtype in (np.float32, np.float64):
        logits, labels = rng.standard_normal((6, 10)).astype(dtype) * 3, rng.integers(0, 10, 6)
        logits[5, :3] = [1000.0, -1000.0, 999.0]  # a naive exp overflows here
        loss = SoftmaxCrossEntropy()
        value = loss.forward(logits, labels)
        cases += [(f"{np.dtype(dtype)}, the loss", (logits, labels, 0), np.float64(value)),
                  (f"{np.dtype(dtype)}, dlogits", (logits, labels, 1), loss.backward())]

    def part(logits, labels, index):
        result = _pair("softmax_cross_entropy", function(logits, labels))[index]
        return np.float64(result) if index == 0 and np.ndim(result) == 0 else result

    return check_cases("softmax_cross_entropy", part, cases, rtol=1e-5)


def check_sgd_momentum_step(function):
    """``sgd_momentum_step(params, grads, velocities, lr, momentum)``, in place, two steps against tinynet's SGD."""
    cases = []
    for label, params, _ in _networks():
        rng = np.random.default_rng(11)
        grads = [[{key: rng.standard_normal(value.shape).astype(value.dtype) for key, value in layer.items()}
                  for layer in params] for _ in range(2)]
        model, optimizer = _reference(params), tinynet.optim.SGD(lr=0.1, momentum=0.9)
        dense = [layer for layer in model.layers if isinstance(layer, Dense)]
        for step in grads:
            for layer, grad in zip(dense, step, strict=True):
                layer.grads.update({key: value.copy() for key, value in grad.items()})
            optimizer.step(dense)
        cases += [(f"{label}, {key} of layer {index} after two steps", (params, grads, index, key),
                   layer.params[key]) for index, layer in enumerate(dense) for key in ("W", "b")]

    def after_two_steps(params, grads, index, key):
        params = copy.deepcopy(params)
        velocities = [{key: np.zeros_like(value) for key, value in layer.items()} for layer in params]
        for step in grads:
            function(params, copy.deepcopy(step), velocities, 0.1, 0.9)
        return params[index][key]

    return check_cases("sgd_momentum_step", after_two_steps, cases)


def check_train(function, x, labels):
    """``train(params, x, labels, epochs, batch_size, lr, momentum, rng) -> losses``: does it learn?

    A fresh network is trained on the first images of ``x`` by your loop; the check reads the
    losses it reports and the accuracy of the trained weights on those images (with tinynet's
    layers, so a wrong forward of yours cannot flatter it).
    """
    settings = TRAIN_CHECK
    x, labels = x[:settings["images"]], labels[:settings["images"]]
    params = init_mlp(settings["sizes"], np.random.default_rng(0))
    try:
        losses = function(params, x.copy(), labels.copy(), settings["epochs"], settings["batch_size"],
                          settings["lr"], settings["momentum"], np.random.default_rng(1))
    except NotImplementedError:
        print("train: not done yet (fill in the function above, then run this cell again)")
        return None
    except Exception as error:  # a learner's bug: say it, and let the notebook go on
        print(f"train: your function raised {type(error).__name__}: {error}")
        return None
    losses = np.asarray(losses, dtype=np.float64) if isinstance(losses, (list, tuple, np.ndarray)) else None
    if losses is None or losses.shape != (settings["epochs"],) or not np.isfinite(losses).all():
        print(f"train: WRONG TYPE: return the mean training loss of each of the {settings['epochs']} epochs "
              f"(finite numbers), got {losses}")
        return None
    right = float((_reference(params).forward(x).argmax(axis=1) == labels).mean())
    summary = (f"mean loss per epoch {' -> '.join(f'{loss:.3f}' for loss in losses)}; "
               f"{right:.1%} of the {len(x)} training images right")
    if not losses[-1] < losses[0] or right < settings["accuracy"]:
        print(f"train: NOT LEARNING ({summary}; a working loop gets at least {settings['accuracy']:.0%} here, "
              "with the loss falling)")
        return None
    print(f"train: ok ({summary})")
    return losses
