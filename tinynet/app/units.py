"""How one number on the page was made: a unit's forward sum and its gradient's chain rule, term by term.

Forward, for a layer with weights (Conv2D, Dense), output ``y`` at ``index`` is::

    y = sum_k window[k] * weight[k] + b          terms[k] = window[k] * weight[k]

with the window read by the layer's own :func:`~tinynet.layers.conv.im2col` (Conv2D) or the
whole input row (Dense). For a layer without weights (pooling, an activation, BatchNorm at
inference, Flatten, Dropout) the terms are the inputs the output came from, and the sum is
that layer's own ``forward`` applied to them.

Backward, the gradient that reaches the layer's input at ``index`` is::

    dL/dx = sum over every output y_o that x fed of  dL/dy_o * dy_o/dx       (the chain rule)

where ``dy_o/dx`` is a weight for Conv2D and Dense, and for the other layers the local
derivative that the layer's own ``backward`` gives for a gradient of one at ``y_o``. The
bias is 0. Past the last layer, ``dL/dz_f = p_f - [f = label]`` (softmax cross-entropy).
Nothing here computes a layer's maths again: ``value`` is what the page shows (the layer's
output, or the gradient :func:`tinynet.app.explain.explain` computed), and ``sum`` is the
sum of the terms, equal to it to float precision.
"""

import copy

import numpy as np

from ..errors import ArgumentError
from ..layers import AvgPool2D, Conv2D, Dense, MaxPool2D
from ..layers.base import recording_at_inference
from ..layers.conv import im2col
from ..layers.pooling import pooling_windows
from .explain import ends_in_softmax, explain

__all__ = ["explain_unit"]


def explain_unit(model, image, label, position, index, direction):
    """The terms, bias, sum and value of one number of the page (see the module's docstring) as a JSON document."""
    if ends_in_softmax(model):
        raise ArgumentError("The page explains numbers of models whose last layer gives class scores; this one "
                            "ends in Softmax.")
    explanation = explain(model, image, label)
    layers = model.layers
    inputs = [np.asarray(image, np.float64)[None, None], *explanation.outputs]  # inputs[i] is layer i's input
    input_grads = [explanation.saliency[None, None], *explanation.output_grads]  # dL/d(layer i's input)
    if direction == "backward" and position == len(layers):
        return _loss_unit(explanation, _checked(index, explanation.outputs[-1].shape[1:], "the class scores"))
    layer = layers[position]
    x, y = inputs[position], explanation.outputs[position]
    if direction == "forward":
        index = _checked(index, y.shape[1:], f"layer {position}'s output")
        unit = _forward(layer, x, y, index)
        unit["value"] = float(y[(0, *index)])
    else:
        index = _checked(index, x.shape[1:], f"layer {position}'s input")
        unit = _backward(layer, x, explanation.output_grads[position], index)
        unit["value"] = float(input_grads[position][(0, *index)])
    unit["sum"] = float(np.sum(unit["terms"]) + unit["bias"]) if unit["kind"] != "rule" else unit["sum"]
    return {"layer": position, "name": repr(layer), "direction": direction, "index": list(index), **unit}


def _checked(index, shape, what):
    if len(index) != len(shape) or any(not 0 <= i < n for i, n in zip(index, shape, strict=True)):
        form = "[c, h, w]" if len(shape) == 3 else "[f]"
        raise ArgumentError(f"index must be {form} inside {what} of shape {list(shape)}; received {list(index)}.")
    return tuple(int(i) for i in index)


def _positions(shape, flat):
    """Input positions ``[c, h, w]`` (or ``[f]``) of flat indices; -1 marks zero padding."""
    return [list(map(int, np.unravel_index(i, shape))) if i >= 0 else None for i in flat]


def _input_ids(x):
    """Each input entry's flat index plus one, as an image like ``x`` (0 then marks a window's zero padding)."""
    return np.arange(1, x[0].size + 1, dtype=np.float64).reshape(x.shape)


def _probe(layer, x):
    """A copy of ``layer`` that ran forward on ``x``, keeping what its backward needs (the page's is untouched)."""
    probe = copy.deepcopy(layer)
    with recording_at_inference([probe]):
        return probe, probe.forward(x)


def _forward(layer, x, y, index):
    if isinstance(layer, Conv2D):
        f, r, q = index
        out_w = y.shape[3]
        row = r * out_w + q
        window = im2col(x, layer.kernel_size, layer.stride, layer.padding)[row]  # (C*kh*kw,), the layer's order
        where = im2col(_input_ids(x), layer.kernel_size, layer.stride, layer.padding)[row].astype(int) - 1
        weights = layer.params["W"].reshape(layer.out_channels, -1)[f]
        return {"kind": "weighted", "rule": "sum of window × filter, plus bias", "inputs": window.tolist(),
                "weights": weights.astype(np.float64).tolist(), "terms": (window * weights).tolist(),
                "bias": float(layer.params["b"][f]), "at": _positions(x.shape[1:], where),
                "window": [len(x[0]), *layer.kernel_size]}
    if isinstance(layer, Dense):
        (f,) = index
        row, weights = x[0], layer.params["W"][:, f]
        return {"kind": "weighted", "rule": "sum of input × weight column, plus bias", "inputs": row.tolist(),
                "weights": weights.astype(np.float64).tolist(), "terms": (row * weights).tolist(),
                "bias": float(layer.params["b"][f]), "at": [[d] for d in range(len(row))]}
    if isinstance(layer, (MaxPool2D, AvgPool2D)):
        c, r, q = index
        window = pooling_windows(x, layer.pool_size, layer.stride)[0, c, r, q]
        where = pooling_windows(_input_ids(x), layer.pool_size, layer.stride)[0, c, r, q].astype(int) - 1
        _, pooled = _probe(layer, window.reshape(1, 1, *layer.pool_size))  # the layer's own rule on this window
        rule = "the largest of the window" if isinstance(layer, MaxPool2D) else "the mean of the window"
        return {"kind": "rule", "rule": rule, "inputs": window.tolist(), "terms": window.tolist(), "bias": 0.0,
                "sum": float(pooled.ravel()[0]), "at": _positions(x.shape[1:], where),
                "window": [1, *layer.pool_size]}
    flat = _one_to_one(layer, x, y, index, y)
    _, out = _probe(layer, x)
    value = x.reshape(-1)[flat]
    return {"kind": "rule", "rule": f"{type(layer).__name__} of the input at the same place", "inputs": [float(value)],
            "terms": [float(value)], "bias": 0.0, "sum": float(out[(0, *index)]),
            "at": _positions(x.shape[1:], [flat])}


def _one_to_one(layer, x, y, index, of):
    """The flat position of ``index`` (in ``of``, ``x`` or ``y``) for a layer element by element (or Flatten):
    output and input entries pair up in the same row-major order."""
    if y.size != x.size:
        raise ArgumentError(f"The page cannot explain the numbers of {type(layer).__name__} yet.")
    return int(np.ravel_multi_index(index, of.shape[1:]))


def _backward(layer, x, grad_out, index):
    flat = int(np.ravel_multi_index(index, x.shape[1:]))
    if isinstance(layer, Conv2D):
        ids = im2col(_input_ids(x), layer.kernel_size, layer.stride, layer.padding).astype(int) - 1
        rows, columns = np.nonzero(ids == flat)  # the windows that read this input, and where in each
        out_h, out_w = grad_out.shape[2:]
        weights_matrix = layer.params["W"].reshape(layer.out_channels, -1)
        at, grads, weights = [], [], []
        for row, column in zip(rows, columns, strict=True):
            r, q = divmod(int(row), out_w)
            for f in range(layer.out_channels):
                at.append([f, r, q])
                grads.append(float(grad_out[0, f, r, q]))
                weights.append(float(weights_matrix[f, column]))
        rule = "sum over the outputs whose window read this input of dL/dy × filter weight"
    elif isinstance(layer, Dense):
        grads, weights = grad_out[0].tolist(), layer.params["W"][flat].astype(np.float64).tolist()
        at = [[m] for m in range(len(grads))]
        rule = "sum over every output of dL/dy × weight"
    elif isinstance(layer, (MaxPool2D, AvgPool2D)):
        ids = pooling_windows(_input_ids(x), layer.pool_size, layer.stride)[0].astype(int) - 1  # (C, oh, ow, k)
        at, grads, weights = [], [], []
        for c, r, q, k in zip(*np.nonzero(ids == flat), strict=True):
            window = pooling_windows(x, layer.pool_size, layer.stride)[0, c, r, q].reshape(1, 1, *layer.pool_size)
            probe, _ = _probe(layer, window)
            local = probe.backward(np.ones((1, 1, 1, 1)))  # dy/d(window): the layer's own backward
            at.append([int(c), int(r), int(q)])
            grads.append(float(grad_out[0, c, r, q]))
            weights.append(float(local.ravel()[k]))
        rule = ("dL/dy of each window whose largest value this input was" if isinstance(layer, MaxPool2D)
                else "dL/dy of each window it is in × 1/(window size)")
    else:
        probe, y = _probe(layer, x)
        out_index = np.unravel_index(_one_to_one(layer, x, y, index, x), y.shape[1:])
        one = np.zeros_like(y)
        one[(0, *out_index)] = 1
        local = probe.backward(one)  # dy/dx at this place, by the layer's own backward
        at = [list(map(int, out_index))]
        grads, weights = [float(grad_out[(0, *out_index)])], [float(local[(0, *index)])]
        rule = f"dL/dy × the derivative of {type(layer).__name__} at this input"
    terms = [g * w for g, w in zip(grads, weights, strict=True)]
    return {"kind": "chain", "rule": rule, "inputs": grads, "weights": weights, "terms": terms, "bias": 0.0, "at": at}


def _loss_unit(explanation, index):
    (f,) = index
    p = float(explanation.probabilities[f])
    target = 1.0 if f == explanation.label else 0.0
    return {"layer": len(explanation.outputs), "name": "SoftmaxCrossEntropy", "direction": "backward",
            "index": [f], "kind": "chain", "rule": f"dL/dz = p - [class = label {explanation.label}]",
            "inputs": [p, -target], "weights": [1.0, 1.0], "terms": [p, -target], "bias": 0.0,
            "sum": p - target, "value": float(explanation.output_grads[-1][0, f]), "at": [[f]]}
