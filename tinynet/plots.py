"""Pictures of data, training and mistakes, drawn with matplotlib (imported only when drawing).

Every function takes plain arrays or a History, draws one figure, writes it as PNG to
``path`` and returns the path. Nothing below the model imports this module.
"""

from pathlib import Path

import numpy as np

from .errors import ArgumentError

__all__ = [
    "class_counts",
    "sample_grid",
    "prediction_grid",
    "learning_curves",
    "confusion_matrix",
    "gradient_norms",
    "gradient_norms_by_depth",
    "conv_filters",
    "dense_weights",
    "feature_maps",
    "most_wrong",
    "attention_maps",
    "mnist_report",
]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: works with no display
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path, tight=True):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if tight:
        figure.tight_layout()
    figure.savefig(path, dpi=110)
    _pyplot().close(figure)
    return path


def _images(x):
    """``(N, 28, 28)`` from ``(N, 1, 28, 28)`` or ``(N, 28, 28)`` images."""
    x = np.asarray(x)
    return x[:, 0] if x.ndim == 4 else x


def class_counts(labels, path, title="Training labels per class"):
    """Bar chart of how many samples each class has (counted with pandas).

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> class_counts(np.array([0, 1, 1, 2]), folder / "counts.png").name
    'counts.png'
    """
    import pandas as pd

    plt = _pyplot()
    counts = pd.Series(np.asarray(labels)).value_counts().sort_index()
    figure, axis = plt.subplots(figsize=(6, 3.5))
    counts.plot.bar(ax=axis, color="tab:blue")
    axis.set(title=title, xlabel="class", ylabel="samples")
    for position, value in enumerate(counts):
        axis.text(position, value, f"{value:,}", ha="center", va="bottom", fontsize=7)
    return _save(figure, path)


def sample_grid(images, labels, path, rows=4, columns=8, title="Sample training digits"):
    """The first ``rows * columns`` images with their labels.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> sample_grid(np.zeros((4, 28, 28)), [0, 1, 2, 3], folder / "s.png", rows=1, columns=4).name
    's.png'
    """
    plt = _pyplot()
    images = _images(images)
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 1.1, rows * 1.25))
    for axis, image, label in zip(axes.flat, images, labels, strict=False):
        axis.imshow(image, cmap="gray_r")
        axis.set_title(str(label), fontsize=9)
        axis.axis("off")
    figure.suptitle(title)
    return _save(figure, path)


def prediction_grid(images, labels, predicted, path, rows=4, columns=8, title="Test predictions"):
    """Test digits titled ``true / predicted``; mistakes in red with a red frame.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> prediction_grid(np.zeros((2, 28, 28)), [1, 2], [1, 3], folder / "p.png", rows=1, columns=2).name
    'p.png'
    """
    plt = _pyplot()
    images = _images(images)
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 1.1, rows * 1.3))
    for axis, image, label, guess in zip(axes.flat, images, labels, predicted, strict=False):
        wrong = label != guess
        axis.imshow(image, cmap="gray_r")
        axis.set_title(f"{label} / {guess}", fontsize=9, color="red" if wrong else "black")
        axis.set_xticks([])
        axis.set_yticks([])
        for spine in axis.spines.values():
            spine.set_edgecolor("red" if wrong else "white")
            spine.set_linewidth(2.5 if wrong else 0)
    figure.suptitle(f"{title} (true / predicted; mistakes in red)")
    return _save(figure, path)


def learning_curves(history, path, title="Learning curves"):
    """Loss and accuracy per epoch, training against validation data, and the learning rate.

    The learning rate (``history["lr"]``, each epoch's last) gets a third panel on a log
    axis when the run had more than one, so a schedule is seen over the run.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> from tinynet import History
    >>> learning_curves(History({"loss": [1.0, 0.5], "accuracy": [0.6, 0.8]}), folder / "c.png").name
    'c.png'
    """
    plt = _pyplot()
    frame = history.to_frame()
    scheduled = "lr" in frame and frame["lr"].nunique() > 1
    figure, axes = plt.subplots(1, 3 if scheduled else 2, figsize=(14 if scheduled else 10, 3.8))
    for axis, metric in zip(axes[:2], ("loss", "accuracy"), strict=True):
        axis.plot(frame.index, frame[metric], "o-", label="train")
        if f"val_{metric}" in frame:
            axis.plot(frame.index, frame[f"val_{metric}"], "s-", label="validation")
        axis.set(xlabel="epoch", ylabel=metric, title=metric)
        axis.grid(alpha=0.3)
        axis.legend()
    if scheduled:
        axes[2].plot(frame.index, frame["lr"], "o-", color="tab:green")
        axes[2].set(xlabel="epoch", ylabel="learning rate", title="learning rate (end of each epoch)", yscale="log")
        axes[2].grid(alpha=0.3, which="both")
    figure.suptitle(title)
    return _save(figure, path)


def confusion_matrix(labels, predicted, path, classes=10, title="Confusion matrix (test set)"):
    """Counts of (true, predicted) pairs; the diagonal is right, everything else a mistake.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> confusion_matrix([0, 1, 2], [0, 2, 2], folder / "m.png", classes=3).name
    'm.png'
    """
    plt = _pyplot()
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels), np.asarray(predicted)), 1)
    figure, axis = plt.subplots(figsize=(6.5, 5.5))
    shown = axis.imshow(np.log1p(matrix), cmap="Blues")
    for (row, column), count in np.ndenumerate(matrix):
        if count:
            axis.text(column, row, str(count), ha="center", va="center", fontsize=7,
                      color="white" if row == column else "black")
    axis.set(xticks=range(classes), yticks=range(classes), xlabel="predicted", ylabel="true", title=title)
    figure.colorbar(shown, ax=axis, label="log(1 + count)")
    return _save(figure, path)


def gradient_norms(history, path, title="Gradient norm per layer (trace mode)"):
    """Each parametric layer's mean gradient norm per epoch, log scale, from ``fit(..., trace=True)``.

    Layers near the input drawn in dark colours, near the output in light ones: in a deep
    Sigmoid network the dark lines sit orders of magnitude below the light ones (vanishing
    gradients); with ReLU they stay close together.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np, tinynet
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> model = tinynet.Sequential([tinynet.layers.Dense(4, 3, rng=0), tinynet.layers.Dense(3, 2, rng=1)])
    >>> history = model.fit(np.ones((8, 4), np.float32), np.arange(8) % 2, epochs=2, verbose=0, trace=True)
    >>> gradient_norms(history, folder / "norms.png").name
    'norms.png'
    """
    plt = _pyplot()
    frame = history.trace_frame().dropna(subset=["grad_norm"])
    table = frame.pivot(index="epoch", columns="layer", values="grad_norm")
    table = table[sorted(table.columns, key=lambda name: int(name.split()[0]))]
    figure, axis = plt.subplots(figsize=(8.5, 4))
    colours = plt.get_cmap("viridis")(np.linspace(0, 0.9, max(len(table.columns), 1)))
    for colour, layer in zip(colours, table.columns, strict=True):
        axis.plot(table.index, table[layer], "o-", color=colour, label=f"layer {layer}")
    axis.set(yscale="log", xlabel="epoch", ylabel="mean ‖dL/dθ‖ (all the layer's parameters) over the epoch",
             title=title)
    axis.set_xticks(table.index)
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return _save(figure, path)


def gradient_norms_by_depth(histories, path, title="Gradient norm against depth (last epoch, trace mode)",
                            layer_type="Dense"):
    """Each parametric layer's mean gradient norm against its depth, one line per run, one log axis.

    ``histories`` maps a label (e.g. the activation) to the History of a ``fit(...,
    trace=True)``. Only layers of ``layer_type`` are drawn (the weight layers, not the
    BatchNorm layers between them). Depth 1 is the layer nearest the input: a line falling
    towards depth 1 is a vanishing gradient.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np, tinynet
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> model = tinynet.Sequential([tinynet.layers.Dense(4, 3, rng=0), tinynet.layers.Dense(3, 2, rng=1)])
    >>> history = model.fit(np.ones((8, 4), np.float32), np.arange(8) % 2, epochs=1, verbose=0, trace=True)
    >>> gradient_norms_by_depth({"linear": history}, folder / "depth.png").name
    'depth.png'
    """
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7.5, 4))
    for label, history in histories.items():
        frame = history.trace_frame().dropna(subset=["grad_norm"])
        last = frame[(frame.epoch == frame.epoch.max()) & frame.layer.str.endswith(f" {layer_type}")]
        depth = np.arange(1, len(last) + 1)
        axis.plot(depth, last.grad_norm.to_numpy(), "o-", label=label)
    axis.set(yscale="log", xlabel="depth of the layer (1 = nearest the input)",
             ylabel="mean ‖dL/dθ‖ (W and b together) over the epoch", title=title)
    axis.grid(alpha=0.3, which="both")
    axis.legend()
    return _save(figure, path)


def conv_filters(model, path, initial=None, title="First convolution layer: 3x3 filters"):
    """The weights of the model's first Conv2D layer, one small image per filter (input channel 0).

    ``initial``, the same layer's weights before training (``W``, ``(F, C, kh, kw)``), adds a
    row of them above, on the same colour scale, and says how far training moved them (their
    correlation with the start): a few epochs change 3x3 filters less than one would think.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np, tinynet
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> model = tinynet.models.cnn(rng=0)
    >>> conv_filters(model, folder / "filters.png", initial=model[0].params["W"] * 0.5).name
    'filters.png'
    """
    plt = _pyplot()
    conv = next((layer for layer in model.layers if type(layer).__name__ == "Conv2D"), None)
    if conv is None:
        raise ArgumentError("conv_filters needs a model with a Conv2D layer.")
    sets = [("after training", conv.params["W"][:, 0])]  # (F, kh, kw)
    if initial is not None:
        sets.insert(0, ("before training", np.asarray(initial)[:, 0]))
    columns = 8
    rows_each = int(np.ceil(len(sets[-1][1]) / columns))
    limit = float(max(np.abs(weights).max() for _, weights in sets))
    figure, axes = plt.subplots(rows_each * len(sets), columns,
                                figsize=(columns * 1.0, rows_each * len(sets) * 1.1), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for block, (label, weights) in enumerate(sets):
        cells = axes[block * rows_each : (block + 1) * rows_each].flat
        for number, (axis, kernel) in enumerate(zip(cells, weights, strict=False)):
            axis.imshow(kernel, cmap="RdBu_r", vmin=-limit, vmax=limit)
            axis.set_title(f"{label}: {number}" if number == 0 else str(number), fontsize=7)
    subtitle = "red: positive weight, blue: negative"
    if initial is not None:
        moved = np.corrcoef(sets[0][1].ravel(), sets[1][1].ravel())[0, 1]
        subtitle += f"; correlation of the trained filters with their start: {moved:.2f}"
    figure.suptitle(f"{title}\n({subtitle})", fontsize=9)
    return _save(figure, path)


def dense_weights(model, path, count=16, title="First Dense layer: what each unit looks for"):
    """The first Dense layer on 28x28 images: each unit's weights drawn as a 28x28 image.

    A unit's weights are the pattern its input is compared with (a dot product), so after
    training they show strokes and blobs of digits.

    Examples
    --------
    >>> import tempfile, pathlib, tinynet
    >>> dense_weights(tinynet.models.basic_mlp(rng=0), pathlib.Path(tempfile.mkdtemp()) / "w.png").name
    'w.png'
    """
    plt = _pyplot()
    dense = next((layer for layer in model.layers if type(layer).__name__ == "Dense"), None)
    if dense is None or dense.params["W"].shape[0] != 784:
        raise ArgumentError("dense_weights needs a model whose first Dense layer takes 784 = 28x28 inputs.")
    weights = dense.params["W"][:, :count].T.reshape(-1, 28, 28)
    columns = 8
    rows = int(np.ceil(len(weights) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 1.1, rows * 1.2), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for number, (axis, image) in enumerate(zip(axes.flat, weights, strict=False)):
        limit = float(np.abs(image).max()) or 1.0
        axis.imshow(image, cmap="RdBu_r", vmin=-limit, vmax=limit)
        axis.set_title(f"unit {number}", fontsize=7)
    figure.suptitle(f"{title}\n(red: a bright pixel there raises the unit, blue: lowers it)", fontsize=9)
    return _save(figure, path)


def feature_maps(model, image, path, channels=8, title="One digit through the network"):
    """The output of every layer for one image: the first ``channels`` maps per layer, a sequence
    ``(T, F)`` as one picture with a row a step, vectors as bars.

    Every map of a layer shares one colour scale, with its colour bar, so layers that rescale
    their input (BatchNorm) look different from the layer before them: a signed output is
    drawn on a scale centred on 0 (white is 0), a non-negative one from 0 up. Each row says
    how many of the layer's channels it shows. The model runs in inference mode (Dropout
    passes its input through unchanged).

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np, tinynet
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> feature_maps(tinynet.models.cnn(rng=0), np.zeros((28, 28), np.uint8), folder / "maps.png").name
    'maps.png'
    """
    plt = _pyplot()
    x = np.asarray(image, dtype=model.dtype or np.float32)
    if x.dtype == np.uint8 or x.max() > 1.5:
        x = x.astype(np.float32) / 255
    x = x.reshape(1, 1, *x.shape[-2:]).astype(model.dtype or np.float32)
    outputs = [("input", x[0])]
    out = x
    for position, layer in enumerate(model.layers):
        out = layer.forward(out)
        name = f"{position} {type(layer).__name__}" + (" (inference: identity)" if type(layer).__name__ == "Dropout"
                                                        else "")
        outputs.append((name, out[0]))
    figure, axes = plt.subplots(len(outputs), channels + 1, figsize=(channels * 1.15 + 0.8, len(outputs) * 1.25),
                                squeeze=False, gridspec_kw={"width_ratios": [1] * channels + [0.12]})
    for row, (name, value) in zip(axes, outputs, strict=True):
        for axis in row:
            axis.axis("off")
        sequence = value.ndim == 2  # (T, F): one picture, a row per step
        if sequence:
            value = value[None]
        if value.ndim == 3:
            shown = value[:channels]
            if value.min() < 0:  # signed: centred on 0, white is 0
                limit = float(np.abs(shown).max()) or 1.0
                scale = {"cmap": "RdBu_r", "vmin": -limit, "vmax": limit}
            else:
                scale = {"cmap": "viridis", "vmin": 0.0, "vmax": float(shown.max()) or 1.0}
            for axis, plane in zip(row, shown, strict=False):
                image_drawn = axis.imshow(plane, **scale)
            row[-1].axis("on")
            figure.colorbar(image_drawn, cax=row[-1])
            row[-1].tick_params(labelsize=6)
            count = f"first {len(shown)} of {len(value)} channels" if len(value) > len(shown) else \
                f"{len(value)} channel{'s' if len(value) > 1 else ''}"
            if sequence:
                row[0].set_title(f"{name}: {value.shape[1]} steps of {value.shape[2]} (a row a step)",
                                 fontsize=8, loc="left")
            else:
                row[0].set_title(f"{name}: {count}, {tuple(value.shape)}, one colour scale", fontsize=8, loc="left")
        else:
            wide = row[0].get_gridspec()[row[0].get_subplotspec().rowspan.start, :]
            for axis in row:
                axis.remove()
            axis = figure.add_subplot(wide)
            axis.bar(np.arange(len(value)), value, color=np.where(value < 0, "tab:blue", "tab:red"), width=0.9)
            axis.axhline(0, color="black", linewidth=0.5)
            if len(value) <= 10:  # the classifier's outputs: one bar a class
                axis.set_xticks(np.arange(len(value)))
                axis.set_xlabel("class", fontsize=7, labelpad=1)
            else:
                axis.set_xticks([])
            axis.tick_params(labelsize=6)
            last = value is outputs[-1][1]
            kind = (" (probabilities)" if type(model.layers[-1]).__name__ == "Softmax" else " (logits)") if last else ""
            axis.set_title(f"{name} {tuple(value.shape)}{kind}", fontsize=8, loc="left")
    figure.suptitle(title)
    figure.subplots_adjust(left=0.03, right=0.93, top=1 - 0.6 / figure.get_figheight(), bottom=0.03,
                           hspace=0.45, wspace=0.08)
    return _save(figure, path, tight=False)  # placed above: tight_layout cannot place the colour bars


def most_wrong(model, images, labels, path, count=16, title="The test digits the model gets most wrong",
               probabilities=None):
    """The ``count`` images with the lowest predicted probability for their true class.

    ``probabilities``, when given, are ``model.predict(images)`` computed already (saves a
    pass over the images).

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np, tinynet
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> images = np.random.default_rng(0).random((20, 1, 28, 28), dtype=np.float32)
    >>> most_wrong(tinynet.models.basic_mlp(rng=0), images, np.arange(20) % 10, folder / "w.png", count=8).name
    'w.png'
    """
    plt = _pyplot()
    probabilities = model.predict(images) if probabilities is None else np.asarray(probabilities)
    labels = np.asarray(labels)
    true_probability = probabilities[np.arange(len(labels)), labels]
    order = np.argsort(true_probability)[:count]
    columns = 8
    rows = int(np.ceil(count / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 1.2, rows * 1.7), squeeze=False)
    pictures = _images(images)
    for axis in axes.flat:
        axis.axis("off")
    for axis, index in zip(axes.flat, order, strict=False):
        guess = int(probabilities[index].argmax())
        axis.imshow(pictures[index], cmap="gray_r")
        axis.set_title(f"true {labels[index]}: {true_probability[index]:.0%}\nsaid {guess}: "
                       f"{probabilities[index, guess]:.0%}", fontsize=7, color="red")
    figure.suptitle(title)
    return _save(figure, path)


def _attention_layers(layers, prefix=""):
    """``(name, layer)`` of every MultiHeadAttention in ``layers``, Residuals' inner layers included."""
    found = []
    for position, layer in enumerate(layers):
        if type(layer).__name__ == "MultiHeadAttention":
            found.append((f"{prefix}{position}", layer))
        found += _attention_layers(getattr(layer, "layers", ()), f"{prefix}{position}.")
    return found


def attention_maps(model, image, path, title="Where each patch looks"):
    """For one digit, every attention head's weights: which patches attend to which.

    For each attention layer (a row of the figure) and head: the ``T x T`` matrix of weights
    (row ``t``: how much patch ``t`` takes from each patch ``s``, each row summing to 1), and
    below it the digit with each patch tinted by the attention it receives, averaged over the
    ``T`` patches that look. All matrices share one colour scale, and all tints another, each
    with its colour bar, so heads and layers compare. Needs a model with ``Patches`` and at
    least one ``MultiHeadAttention`` (e.g. :func:`tinynet.models.vit`); runs it in inference mode.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np, tinynet
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> attention_maps(tinynet.models.vit(rng=0), np.zeros((28, 28), np.uint8), folder / "attention.png").name
    'attention.png'
    """
    plt = _pyplot()
    patches = next((layer for layer in model.layers if type(layer).__name__ == "Patches"), None)
    attention_layers = _attention_layers(model.layers)
    if patches is None or not attention_layers:
        raise ArgumentError("attention_maps needs a model with a Patches layer and a MultiHeadAttention "
                            "(e.g. tinynet.models.vit()).")
    x = np.asarray(image)
    x = x.astype(np.float32) / 255 if x.dtype == np.uint8 or x.max() > 1.5 else x.astype(np.float32)
    x = x.reshape(1, 1, *x.shape[-2:]).astype(model.dtype or np.float32)
    model.forward(x)  # inference; each attention layer keeps its weights in .attention
    weights = [(name, layer.attention[0]) for name, layer in attention_layers]  # (heads, T, T) each
    heads = max(w.shape[0] for _, w in weights)
    side, size = x.shape[2] // patches.patch_size, patches.patch_size
    matrix_max = max(float(w.max()) for _, w in weights)
    received = [(name, w.mean(axis=1)) for name, w in weights]  # (heads, T): attention each patch receives
    received_max = max(float(r.max()) for _, r in received)
    figure, axes = plt.subplots(2 * len(weights), heads + 1, figsize=(2.0 * heads + 0.6, 4.0 * len(weights)),
                                squeeze=False, gridspec_kw={"width_ratios": [1] * heads + [0.08]})
    for index, ((name, matrices), (_, tints)) in enumerate(zip(weights, received, strict=True)):
        matrix_row, tint_row = axes[2 * index], axes[2 * index + 1]
        for head in range(heads):
            for axis in (matrix_row[head], tint_row[head]):
                axis.set_xticks([])
                axis.set_yticks([])
            if head >= len(matrices):
                matrix_row[head].axis("off")
                tint_row[head].axis("off")
                continue
            shown = matrix_row[head].imshow(matrices[head], cmap="magma", vmin=0, vmax=matrix_max)
            matrix_row[head].set_title(f"layer {name}, head {head}", fontsize=8)
            if head == 0:
                matrix_row[head].set_ylabel("patch that looks", fontsize=7)
                tint_row[head].set_ylabel("attention received", fontsize=7)
            matrix_row[head].set_xlabel("patch looked at", fontsize=7)
            tint_row[head].imshow(x[0, 0], cmap="gray_r")
            grid = np.kron(tints[head].reshape(side, side), np.ones((size, size)))  # each patch's value on its pixels
            tinted = tint_row[head].imshow(grid, cmap="viridis", alpha=0.55, vmin=0, vmax=received_max)
        figure.colorbar(shown, cax=matrix_row[-1])
        figure.colorbar(tinted, cax=tint_row[-1])
        for axis in (matrix_row[-1], tint_row[-1]):
            axis.tick_params(labelsize=6)
    figure.suptitle(title)
    return _save(figure, path)


def mnist_report(model, history, train, test, folder, initial=None):
    """All the pictures of an MNIST run in ``folder``; returns their paths.

    Written by ``examples/mnist_cnn.py --plots DIR``: class counts, sample digits, test
    predictions, learning curves, the confusion matrix, one digit's feature maps, the
    most-wrong test digits and, for a CNN, the first layer's filters (before and after
    training when ``initial``, the model's ``state_dict()`` copied before ``fit``, is given);
    for an MLP, its first layer's weights as images; for a vision transformer, its attention.

    Examples
    --------
    >>> import tempfile, numpy as np, tinynet
    >>> rng = np.random.default_rng(0)
    >>> data = (rng.integers(0, 256, (40, 1, 28, 28), dtype=np.uint8), np.arange(40) % 10)
    >>> model = tinynet.models.cnn(rng=0)
    >>> history = model.fit(*data, epochs=1, verbose=0, validation_data=data)
    >>> sorted(path.name for path in mnist_report(model, history, data, data, tempfile.mkdtemp()))[:3]
    ['class_counts.png', 'confusion_matrix.png', 'conv_filters.png']
    """
    folder = Path(folder)
    (x_train, y_train), (x_test, y_test) = train, test
    probabilities = model.predict(x_test)
    predicted = probabilities.argmax(axis=1)
    # Half the grid for mistakes (the interesting part), the rest for correct answers.
    wrong = np.flatnonzero(predicted != y_test)[:16]
    order = np.concatenate([wrong, np.flatnonzero(predicted == y_test)[: 32 - len(wrong)]])
    written = [
        class_counts(y_train, folder / "class_counts.png"),
        sample_grid(x_train, y_train, folder / "samples.png"),
        prediction_grid(x_test[order], y_test[order], predicted[order], folder / "predictions.png"),
        learning_curves(history, folder / "learning_curves.png"),
        confusion_matrix(y_test, predicted, folder / "confusion_matrix.png"),
        feature_maps(model, x_test[0], folder / "feature_maps.png",
                     title=f"One test digit (a {y_test[0]}) through every layer"),
        most_wrong(model, x_test, y_test, folder / "most_wrong.png", probabilities=probabilities),
    ]
    first_conv = next((i for i, layer in enumerate(model.layers) if type(layer).__name__ == "Conv2D"), None)
    if first_conv is not None:
        start = None if initial is None else initial.get(f"{first_conv}.W")
        written.append(conv_filters(model, folder / "conv_filters.png", initial=start))
    elif any(type(layer).__name__ == "Dense" and layer.params["W"].shape[0] == 784 for layer in model.layers):
        written.append(dense_weights(model, folder / "dense_weights.png"))
    if _attention_layers(model.layers) and any(type(layer).__name__ == "Patches" for layer in model.layers):
        written.append(attention_maps(model, x_test[0], folder / "attention_maps.png",
                                      title=f"Where each patch looks (one test digit, a {y_test[0]})"))
    return written
