"""Backprop by hand: one digit through a tiny CNN, forward and backward, layer by layer.

    python examples/backprop_by_hand.py [--digit-index 0] [--plots DIR]

The network is as small as a CNN can be and still be one::

    Conv2D 1->2 3x3 -> ReLU -> MaxPool 2 -> Flatten -> Dense 338->10 -> softmax cross-entropy

The weights are random (the network is untrained: what matters here is how the numbers
flow, not whether the answer is right). The script runs the forward pass one layer at a
time and prints what each layer hands on, then the backward pass from the loss to the
first layer: the gradient each layer hands back and the gradients of its weights, with a
few entries worked out by hand from the formulas so you can check them (softmax minus
one-hot, one Dense weight gradient, where one max-pool window sent its gradient, ReLU's
mask). Finally it checks every layer's analytic gradients against finite differences with
``tinynet.gradcheck``. With ``--plots DIR`` it draws the computation as a figure
(``backprop_by_hand.png``): the forward activations along the top, the backward gradients
underneath, channel 0 of each image-shaped array, each panel with its colour scale.

Nothing here is hidden inside ``fit``: these few lines are all that training does per batch.
"""

import argparse
from pathlib import Path

import numpy as np
from cli import data_folder, output_folder, whole_number

import tinynet
from tinynet.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU
from tinynet.losses import SoftmaxCrossEntropy


def tiny_cnn(seed=0):
    return tinynet.Sequential([
        Conv2D(1, 2, 3, rng=seed), ReLU(), MaxPool2D(2), Flatten(), Dense(2 * 13 * 13, 10, rng=seed + 1),
    ])


def describe(array):
    """Shape, range and how much of it is non-zero, for printing."""
    array = np.asarray(array)
    return (f"shape {str(array.shape):<16} min {array.min():+.4f}  max {array.max():+.4f}  "
            f"non-zero {np.count_nonzero(array) / array.size:4.0%}")


def walk_through(model, image, label):
    """Forward then backward by hand; returns the activations and gradients, layer by layer.

    ``activations[i]`` is the input of layer ``i`` (``activations[0]`` the image) and
    ``gradients[i]`` is dL/d(activations[i]), the gradient layer ``i``'s backward hands back.
    """
    loss = SoftmaxCrossEntropy()
    x = image[None, None].astype(np.float32) / 255  # (28, 28) uint8 -> (1, 1, 28, 28) in [0, 1]

    print(f"An untrained tiny CNN (random weights), one test digit labelled {label}.\n")
    print("Forward: each layer's output")
    print(f"  input               {describe(x)}")
    activations = [x]
    for position, layer in enumerate(model.layers):
        activations.append(layer.forward(activations[-1], training=True))
        print(f"  {position} {type(layer).__name__:<17} {describe(activations[-1])}")
    logits = activations[-1][0]
    value = loss.forward(activations[-1], np.array([label]))
    probabilities = np.exp(logits - logits.max())
    probabilities /= probabilities.sum()
    print(f"  logits              {np.array2string(logits, precision=3, suppress_small=True)}")
    print(f"  softmax p           {np.array2string(probabilities, precision=3, suppress_small=True)}")
    print(f"  loss = -log p[{label}] = -log {probabilities[label]:.4f} = {value:.4f}")

    print("\nBackward: from the loss to the first layer")
    grad = loss.backward()  # softmax(logits) - one_hot(label), divided by the batch size (1 here)
    print(f"  dL/dlogits          {np.array2string(grad[0], precision=3, suppress_small=True)}")
    print(f"                      = p - one-hot: p[{label}] - 1 = {probabilities[label] - 1:+.4f}, "
          f"the others equal p")
    gradients = [grad]
    for position in reversed(range(len(model.layers))):
        layer = model.layers[position]
        grad = layer.backward(grad)
        gradients.insert(0, grad)
        below = f"output of {position - 1} {type(model.layers[position - 1]).__name__}" if position else "image"
        print(f"  {position} {type(layer).__name__:<17} dL/d(its input = {below}): {describe(grad)}")
        for name, array in layer.grads.items():
            print(f"  {'':<19} dL/d{name:<5} {describe(array)}")
    _worked_examples(model, activations, gradients, label)
    return activations, gradients


def _worked_examples(model, activations, gradients, label):
    """A few gradient entries recomputed from the formulas, to check by hand."""
    print("\nBy hand:")
    dense, flat, dlogits = model.layers[4], activations[4][0], gradients[5][0]
    i = int(np.argmax(flat))
    print(f"  Dense: dL/dW[{i}, {label}] = x[{i}] * dL/dlogits[{label}] = {flat[i]:.4f} * {dlogits[label]:+.4f} "
          f"= {flat[i] * dlogits[label]:+.5f}  (backward wrote {dense.grads['W'][i, label]:+.5f})")
    weights = dense.params["W"][i]  # row i: how x[i] feeds each of the ten logits
    by_hand = float(np.dot(dlogits, weights))  # dL/dx[i] = sum over k of dL/dlogits[k] * W[i, k]
    print(f"         dL/db = dL/dlogits; dL/dx[{i}] = sum_k dL/dlogits[k] * W[{i}, k] = {by_hand:+.5f}  "
          f"(backward wrote {gradients[4][0, i]:+.5f})")
    relu_out, pooled_grad, relu_grad = activations[2][0, 0], gradients[3][0, 0], gradients[2][0, 0]
    window = np.unravel_index(int(np.argmax(np.abs(pooled_grad))), pooled_grad.shape)
    top, left = 2 * window[0], 2 * window[1]
    values = relu_out[top:top + 2, left:left + 2]
    routed = relu_grad[top:top + 2, left:left + 2]
    print(f"  MaxPool window at rows {top}-{top + 1}, columns {left}-{left + 1} of channel 0 "
          f"(its ReLU output):\n{_indent(values)}\n    its output gradient {pooled_grad[window]:+.5f} went to the "
          f"maximum only:\n{_indent(routed)}")
    conv_out, conv_grad = activations[1][0, 0], gradients[1][0, 0]
    negative = int(np.sum(conv_out <= 0))
    print(f"  ReLU: dL/dx = dL/dy where x > 0, else 0: {negative} of {conv_out.size} conv outputs of channel 0 "
          f"are <= 0, and their gradient is {np.abs(conv_grad[conv_out <= 0]).max(initial=0.0):.1f}")


def _indent(array):
    return "\n".join("    " + line for line in np.array2string(array, precision=4).splitlines())


def check_every_layer(model, image, seed=0):
    """tinynet.gradcheck on each layer at (nearly) the input it saw, in float64; prints the worst errors.

    ReLU has a kink at 0 and max-pool one wherever two inputs of a window tie; there the
    derivative does not exist and central differences straddle the kink. A digit is mostly
    background, so the Conv2D output is full of exact zeros and ties. Each layer is therefore
    checked at its input plus a little noise (standard deviation 0.01), far larger than the
    finite-difference step (1e-6): the kinks are avoided, the point is essentially the same.
    """
    print("\nGradient check (central differences, float64): worst relative error per layer")
    rng = np.random.default_rng(seed)
    x = image[None, None].astype(np.float64) / 255
    results = []
    for position, layer in enumerate(model.layers):
        nudged = x + 0.01 * rng.standard_normal(x.shape)
        result = tinynet.gradcheck(layer, nudged)
        results.append(result)
        verdict = "ok" if result.passed() else "WRONG"
        print(f"  {position} {type(layer).__name__:<17} {result.worst:.1e}  {verdict}")
        x = layer.forward(x.astype(layer.dtype or x.dtype)).astype(np.float64)
    return results


def draw(activations, gradients, model, label, path):
    """The computation as a figure: forward activations on top, backward gradients below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Column c shows activations[c] (the image, then each layer's output) on top and, below,
    # gradients[c] = dL/d(activations[c]), the gradient the next layer's backward hands back.
    names = ["input"] + [f"output of layer {i} ({type(layer).__name__})" for i, layer in enumerate(model.layers)]
    channels = [array.shape[1] if array.ndim == 4 else None for array in activations]
    figure, axes = plt.subplots(2, len(names), figsize=(2.3 * len(names), 5.2))
    for column, name in enumerate(names):
        for row, (arrays, title) in enumerate([(activations, name), (gradients, f"dL/d({name})")]):
            axis = axes[row, column]
            value = arrays[column][0]
            if value.ndim == 3 and row == 0:
                image = axis.imshow(value[0], cmap="viridis")
            elif value.ndim == 3:
                limit = float(np.abs(value[0]).max()) or 1.0
                image = axis.imshow(value[0], cmap="RdBu_r", vmin=-limit, vmax=limit)
            else:
                image = None
                axis.bar(np.arange(value.size), value, width=0.9 if value.size <= 10 else 1.0,
                         color=np.where(value < 0, "tab:blue", "tab:red"))
                axis.axhline(0, color="black", linewidth=0.5)
                axis.tick_params(labelsize=6)
                if value.size <= 10:  # logits and their gradient: one bar a class, the true class marked
                    axis.set_xticks(range(value.size))
                    axis.set_xlabel(f"class (true: {label})", fontsize=7)
                    axis.get_xticklabels()[label].set_fontweight("bold")
                else:
                    axis.set_xlabel("feature", fontsize=7)
            if image is not None:
                figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04).ax.tick_params(labelsize=6)
                axis.set_xticks([])
                axis.set_yticks([])
            shown = f", channel 0 of {channels[column]}" if channels[column] else ""
            axis.set_title(f"{title}\n{tuple(arrays[column].shape)}{shown}", fontsize=7)
    for column in range(len(names) - 1):
        beside = 1.55 if channels[column] else 1.12  # past the colour bar, where there is one
        for row, arrow in ((0, "→"), (1, "←")):
            axes[row, column].annotate(arrow, xy=(beside, 0.5), xycoords="axes fraction", fontsize=16,
                                       ha="center", va="center")
    figure.suptitle("Backprop by hand: activations flow right (top), gradients flow left (bottom)")
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digit-index", type=whole_number(0), default=0,
                        help="which test digit to use (0 to 9,999)")
    parser.add_argument("--data-dir", type=data_folder, default=None)
    parser.add_argument("--plots", type=output_folder, default=None, metavar="DIR")
    args = parser.parse_args(argv)
    if args.digit_index >= 10_000:
        parser.error(f"--digit-index picks one of the 10,000 test digits (0 to 9,999), got {args.digit_index:,}")

    _, (x_test, y_test) = tinynet.datasets.load_mnist(args.data_dir)
    image, label = x_test[args.digit_index], int(y_test[args.digit_index])
    model = tiny_cnn()
    activations, gradients = walk_through(model, image, label)
    results = check_every_layer(model, image)
    if args.plots:
        path = draw(activations, gradients, model, label, Path(args.plots) / "backprop_by_hand.png")
        print(f"\nPicture: {path}")
    return results


if __name__ == "__main__":
    from cli import run

    run(main)
