"""The checks of scalar_prelude.ipynb: a graph of numbers, checked against tinynet's Dense and Tanh layers.

- ``check_mul_local_grads``: ``∂(a·b)/∂a`` and ``∂(a·b)/∂b`` are what a 1x1 Dense layer's backward gives
  (``y = x w`` is a product).
- ``check_tanh_local_grads``: ``∂tanh(x)/∂x`` is Tanh's backward of a gradient of 1.
- ``check_topological_order``: every node once, each after the nodes it was computed from, the
  output last, on a graph that uses one number twice.
- ``check_neuron``: ``tanh(w·x + b)`` built from your ``Value`` and backpropagated: every gradient
  of ``w``, ``x`` and ``b`` against ``Dense(3, 1)`` then ``Tanh``.
"""

import numpy as np
from exercise_checks import check_cases

from tinynet.layers import Dense, Tanh

__all__ = ["check_mul_local_grads", "check_neuron", "check_tanh_local_grads", "check_topological_order"]

PAIRS = [(3.0, -2.0), (0.5, 4.0), (-1.5, -0.25)]


def _dense(inputs, weights, bias=0.0):
    """A float64 ``Dense`` holding ``weights`` (D,) and ``bias``, forward run on ``inputs`` (D,)."""
    layer = Dense(len(weights), 1, rng=0).astype(np.float64)
    layer.params["W"][:, 0], layer.params["b"][0] = weights, bias
    return layer, layer.forward(np.asarray(inputs, dtype=np.float64)[None], training=True)


def check_mul_local_grads(function):
    """``mul_local_grads(a, b) -> (∂(ab)/∂a, ∂(ab)/∂b)``, from a 1x1 Dense layer's backward."""
    cases = []
    for a, b in PAIRS:
        layer, _ = _dense([a], [b])
        dx = layer.backward(np.ones((1, 1)))
        cases.append((f"a = {a}, b = {b}", (a, b), np.array([dx[0, 0], layer.grads["W"][0, 0]])))
    return check_cases("mul_local_grads", lambda a, b: np.asarray(function(a, b), dtype=np.float64), cases)


def check_tanh_local_grads(function):
    """``tanh_local_grads(x) -> (∂tanh(x)/∂x,)``, from Tanh's backward."""
    cases = []
    for x in (-2.0, 0.0, 0.7):
        tanh = Tanh()
        tanh.forward(np.array([x]), training=True)
        cases.append((f"x = {x}", (x,), tanh.backward(np.ones(1))))
    return check_cases("tanh_local_grads", lambda x: np.asarray(function(x), dtype=np.float64), cases)


def check_topological_order(function, Value):
    """``topological_order(root)``: each node once, after its parents, ``root`` last (one input used twice)."""
    # tanh(x·w + x), built node by node (the order does not read the local derivatives: 0 stands in)
    x, w = Value(2.0), Value(-3.0)
    product = Value(x.data * w.data, (x, w), (0.0, 0.0))
    total = Value(product.data + x.data, (product, x), (0.0, 0.0))  # x reaches the output along two paths
    root = Value(np.tanh(total.data), (total,), (0.0,))
    reachable, stack = set(), [root]
    while stack:
        node = stack.pop()
        if id(node) not in reachable:
            reachable.add(id(node))
            stack.extend(node.parents)
    try:
        order = list(function(root))
    except NotImplementedError:
        print("topological_order: not done yet (fill in the function above, then run this cell again)")
        return None
    except Exception as error:  # a learner's bug: say it, and let the notebook go on
        print(f"topological_order: your function raised {type(error).__name__}: {error}")
        return None
    ids = [id(node) for node in order]
    position = {node_id: index for index, node_id in enumerate(ids)}
    wrong = None
    if len(ids) != len(set(ids)):
        wrong = "a node appears twice (x is used twice: visit each node once, or its gradient is counted twice)"
    elif set(ids) != reachable:
        wrong = f"{len(set(ids))} nodes listed; the output is computed from {len(reachable)} (each exactly once)"
    elif ids[-1] != id(root):
        wrong = "the output is not last"
    elif any(position[id(parent)] > position[id(node)] for node in order for parent in node.parents):
        wrong = "a node comes before a node it was computed from"
    if wrong:
        print(f"topological_order: WRONG ORDER: {wrong}")
        return None
    print(f"topological_order: ok ({len(ids)} nodes, each after its parents)")
    return order


def check_neuron(Value):
    """Your ``Value`` graph of ``tanh(w·x + b)``, backpropagated, against ``Dense(3, 1)`` then ``Tanh``."""
    x_values, w_values, b_value = [1.0, -2.0, 0.5], [0.3, 0.1, -0.8], 0.2
    layer, z = _dense(x_values, w_values, b_value)
    tanh = Tanh()
    tanh.forward(z, training=True)
    dx = layer.backward(tanh.backward(np.ones((1, 1))))
    reference = np.concatenate([layer.grads["W"][:, 0], dx[0], layer.grads["b"]])

    def gradients():
        xs, ws, b = [Value(v) for v in x_values], [Value(v) for v in w_values], Value(b_value)
        out = sum((wi * xi for wi, xi in zip(ws, xs, strict=True)), b).tanh()
        out.backward()
        return np.array([node.grad for node in ws + xs + [b]])

    return check_cases("neuron", gradients, [("tanh(w·x + b), gradients of w, x, b", (), reference)])
