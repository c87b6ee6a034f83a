"""Training checkpoints: everything ``fit`` needs to continue exactly where it stopped.

A checkpoint is a model file (see :mod:`tinynet.serialization`) with three more kinds of
entries, so ``tinynet.load_model`` reads the model out of a checkpoint too::

    __architecture__      the model's layers (JSON), as in a model file
    <i>.<name>            the parameter <name> of layer i
    __checkpoint__        JSON: epochs completed, history, the state of fit's random generator
                          and of each Dropout layer's, the optimizer's class, settings and step count
    optimizer.<p>.<name>  the optimizer's state array <name> ("m", "v", "velocity") of the p-th
                          parameter, in the order the optimizer visits them

Resuming restores all of it, so an interrupted-and-resumed run ends with the same weights,
bit for bit, as a run that was never interrupted (same seed, same machine and threads).
Files are written atomically (temporary file, fsync, rename): a crash while writing leaves
the previous checkpoint intact. Reading never unpickles, and checks every array.
"""

import json
from dataclasses import dataclass

import numpy as np

from ._io import atomic_write
from .errors import ModelFileError
from .history import History
from .optim import SGD, Adam, Optimizer
from .serialization import model_arrays, model_from_arrays, read_archive

__all__ = ["Checkpoint", "save_checkpoint", "load_checkpoint"]

FORMAT = "tinynet.checkpoint"
VERSION = 1
OPTIMIZERS = {"SGD": SGD, "Adam": Adam}
# The per-parameter state each optimizer keeps once it has taken a step.
STATE_KEYS = {"SGD": ({"velocity"}, set()), "Adam": ({"m", "v"},)}


@dataclass
class Checkpoint:
    """What :func:`load_checkpoint` returns.

    Attributes
    ----------
    model : Sequential
        The model with the weights at the end of epoch ``epoch``.
    optimizer : Optimizer
        The optimizer with its state (moments, velocities, step count) at that point.
    epoch : int
        Number of epochs completed.
    history : History
        The metrics of those epochs.
    rng_state : dict
        State of ``fit``'s random generator (shuffling, augmentation) after them.
    layer_rng_states : dict[int, dict]
        State of the generator of each layer that draws random numbers (Dropout), by position.

    Examples
    --------
    See :func:`load_checkpoint`.
    """

    model: object
    optimizer: Optimizer
    epoch: int
    history: History
    rng_state: dict
    layer_rng_states: dict

    def generator(self):
        """A new ``numpy.random.Generator`` in the saved state of fit's generator."""
        return _generator(self.rng_state, "the checkpoint's random generator")


def save_checkpoint(path, model, optimizer, epoch, history, rng):
    """Write a checkpoint of training after ``epoch`` completed epochs, atomically."""
    arrays = model_arrays(model)
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "epoch": int(epoch),
        "history": history.history,
        "rng": rng.bit_generator.state,
        "layer_rngs": {str(i): layer.rng.bit_generator.state for i, layer in enumerate(model.layers)
                       if isinstance(getattr(layer, "rng", None), np.random.Generator)},
        "optimizer": {"class": type(optimizer).__name__, "config": optimizer.get_config(),
                      "steps": optimizer.steps, "parameters": len(optimizer.state)},
    }
    for position, state in enumerate(optimizer.state):
        for name, array in state.items():
            arrays[f"optimizer.{position}.{name}"] = array
    arrays["__checkpoint__"] = np.array(json.dumps(meta))
    with atomic_write(path) as handle:
        np.savez(handle, **arrays)


def load_checkpoint(path):
    """Read a checkpoint written by ``fit(..., checkpoint=path)``.

    Returns
    -------
    Checkpoint
        The model, optimizer, epochs completed, history and random-generator states.

    Raises
    ------
    ModelFileError
        If the file is missing, truncated, corrupted, not a checkpoint, or inconsistent.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np, tinynet
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "run.npz"
    >>> x, y = np.random.default_rng(0).random((64, 4), dtype=np.float32), np.arange(64) % 2
    >>> model = tinynet.Sequential([tinynet.layers.Dense(4, 2, rng=0)])
    >>> _ = model.fit(x, y, epochs=2, seed=0, verbose=0, checkpoint=path)
    >>> saved = tinynet.load_checkpoint(path)
    >>> saved.epoch, saved.optimizer.steps
    (2, 2)
    """
    arrays = read_archive(path)
    if "__checkpoint__" not in arrays:
        raise ModelFileError(
            f"{path} is not a checkpoint (no __checkpoint__ entry); a plain model file is read by tinynet.load_model."
        )
    meta = _meta(arrays.pop("__checkpoint__"), path)
    optimizer_arrays = {name: arrays.pop(name) for name in list(arrays) if name.startswith("optimizer.")}
    model = model_from_arrays(arrays, path)
    optimizer = _optimizer(meta["optimizer"], optimizer_arrays, model, path)
    layer_rngs = meta.get("layer_rngs", {})
    if not isinstance(layer_rngs, dict):
        raise ModelFileError(f"{path}: layer_rngs must map layer positions to generator states.")
    layer_rng_states = {}
    for key, state in layer_rngs.items():
        if not (isinstance(key, str) and key.isdigit() and int(key) < len(model.layers)
                and hasattr(model.layers[int(key)], "rng")):
            raise ModelFileError(f"{path}: a generator state is saved for layer {key!r}, which draws none.")
        # The model was just rebuilt from the file: nothing of the caller's changes if a later entry fails.
        model.layers[int(key)].rng = _generator(state, f"{path}: layer {key}'s random generator")
        layer_rng_states[int(key)] = state
    checkpoint = Checkpoint(model, optimizer, meta["epoch"], History(meta["history"]), meta["rng"], layer_rng_states)
    _generator(checkpoint.rng_state, f"{path}: fit's random generator")
    return checkpoint


def _meta(text, path):
    try:
        meta = json.loads(str(text[()]))
    except (ValueError, TypeError, IndexError) as error:
        raise ModelFileError(f"{path}: the checkpoint entry is not valid JSON ({error}).") from error
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not a tinynet checkpoint.")
    if meta.get("version") != VERSION:
        raise ModelFileError(f"{path} is checkpoint version {meta.get('version')!r}; this tinynet reads {VERSION}.")
    epoch, history = meta.get("epoch"), meta.get("history")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise ModelFileError(f"{path}: the number of completed epochs must be an int >= 0; found {epoch!r}.")
    if not isinstance(history, dict) or not all(
        isinstance(values, list) and all(isinstance(v, (int, float)) for v in values) for values in history.values()
    ):
        raise ModelFileError(f"{path}: the history must map metric names to lists of numbers.")
    if not isinstance(meta.get("optimizer"), dict):
        raise ModelFileError(f"{path}: the optimizer is not described.")
    return meta


def _optimizer(description, arrays, model, path):
    name, config = description.get("class"), description.get("config")
    if not isinstance(name, str) or name not in OPTIMIZERS or not isinstance(config, dict):
        raise ModelFileError(f"{path}: unknown optimizer {name!r}; known optimizers are {sorted(OPTIMIZERS)}.")
    try:
        optimizer = OPTIMIZERS[name](**config)
    except (TypeError, ValueError) as error:
        raise ModelFileError(f"{path}: the {name} settings are invalid: {error}") from error
    steps, count = description.get("steps"), description.get("parameters")
    parameters = [layer.params[key] for layer, key in Optimizer._parameters(model.layers)]
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0 or count not in (0, len(parameters)):
        raise ModelFileError(f"{path}: the optimizer's step count or parameter count does not fit the model.")
    state = [{} for _ in range(count)]
    for entry, array in arrays.items():
        _, position, key = (entry.split(".", 2) + ["", ""])[:3]
        if not position.isdigit() or int(position) >= count or not key:
            raise ModelFileError(f"{path}: unexpected optimizer array {entry!r}.")
        parameter = parameters[int(position)]
        if array.shape != parameter.shape or array.dtype != parameter.dtype:
            raise ModelFileError(
                f"{path}: optimizer array {entry} is {array.dtype}{array.shape}; its parameter is "
                f"{parameter.dtype}{parameter.shape}."
            )
        state[int(position)][key] = np.ascontiguousarray(array)
    if any(set(entry) not in STATE_KEYS[name] for entry in state):
        raise ModelFileError(f"{path}: the {name} state arrays are incomplete.")
    optimizer.load_state_dict({"steps": steps, "state": state})
    return optimizer


def _generator(state, what):
    generator = np.random.default_rng()
    try:
        generator.bit_generator.state = state
    except (TypeError, ValueError, KeyError, OverflowError) as error:
        raise ModelFileError(f"{what} has an invalid saved state: {error}") from error
    return generator
