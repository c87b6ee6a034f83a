"""Training checkpoints: everything ``fit`` needs to continue exactly where it stopped.

A checkpoint is a model file (see :mod:`tinynet.serialization`) with more entries, so
``tinynet.load_model`` reads the model out of a checkpoint too::

    __architecture__             the model's layers (JSON), as in a model file
    <i>.<name>                   the model's state_dict(): parameters and buffers
    __checkpoint__               JSON: epochs completed, history, the state of fit's random
                                 generator and of each Dropout layer's, the optimizer's class,
                                 settings and step count
    optimizer.<i>.<name>.<state> the optimizer's state_dict() arrays, e.g. "optimizer.3.W.exp_avg"

(Version 1 files named the optimizer's arrays by position, ``optimizer.<p>.m``; they still load.)

Resuming restores all of it, so an interrupted-and-resumed run ends with the same weights,
bit for bit, as a run that was never interrupted (same seed, same machine and threads).
Files are written atomically (temporary file, fsync, rename): a crash while writing leaves
the previous checkpoint intact. Reading never unpickles and checks everything before it is
used: array headers before data, every number's range, generator states that numpy would
accept but that would hang or bias training, the epoch count against the history.
"""

import json
import re
from dataclasses import dataclass

import numpy as np

from .._checks import int_in
from ..errors import ModelFileError
from ..history import History
from ..init import generator_from_state
from ..optim import OPTIMIZERS, Optimizer, named_parameters
from ._archive import Archive, write_archive
from .serialization import architecture, model_arrays, read_layers, state_arrays

__all__ = ["Checkpoint", "save_checkpoint", "read_checkpoint", "CHECKPOINT_ENTRIES"]

FORMAT = "tinynet.checkpoint"
VERSION = 2
#: Name prefixes of the entries a checkpoint adds to a model file.
CHECKPOINT_ENTRIES = ("__checkpoint__", "optimizer.")
#: More epochs than any run has; a larger count in a file is refused.
MAX_EPOCHS = 1_000_000
# Version 1 named the optimizer's arrays by the parameter's position in step order.
_VERSION_1_STATE_NAMES = {"m": "exp_avg", "v": "exp_avg_sq", "velocity": "momentum_buffer"}
_LAYER_POSITION = re.compile(r"[0-9]{1,6}")


@dataclass
class Checkpoint:
    """What :func:`tinynet.load_checkpoint` returns.

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
    architecture : list of dict
        Each layer's class and configuration, as saved (resume compares it with the model's).

    Examples
    --------
    See :func:`tinynet.load_checkpoint`.
    """

    model: object
    optimizer: Optimizer
    epoch: int
    history: History
    rng_state: dict
    layer_rng_states: dict
    architecture: list

    def generator(self):
        """A new ``numpy.random.Generator`` in the saved state of fit's generator."""
        return generator_from_state(self.rng_state, "the checkpoint's random generator")


def save_checkpoint(path, model, optimizer, epoch, history, rng):
    """Write a checkpoint of training after ``epoch`` completed epochs, atomically."""
    arrays = model_arrays(model)
    state = optimizer.state_dict()
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "epoch": int(epoch),
        "history": history.history,
        "rng": rng.bit_generator.state,
        "layer_rngs": {str(i): layer.get_extra_state() for i, layer in enumerate(model.layers)
                       if layer.get_extra_state() is not None},
        "optimizer": {"class": type(optimizer).__name__, "config": state["config"], "steps": state["steps"]},
    }
    for name, array in state["state"].items():
        arrays[f"optimizer.{name}"] = array
    arrays["__checkpoint__"] = np.array(json.dumps(meta))
    write_archive(path, arrays)


def read_checkpoint(path, make_model):
    """Read and check a checkpoint; ``make_model(layers)`` turns the saved layers into its ``model``.

    Raises ModelFileError if the file is missing, truncated, corrupted, not a checkpoint,
    or inconsistent.
    """
    with Archive(path, path) as archive:
        if "__checkpoint__" not in archive.names:
            raise ModelFileError(
                f"{path} is not a checkpoint (no __checkpoint__ entry); a plain model file is read by "
                f"tinynet.load_model."
            )
        meta = _meta(archive.read_json("__checkpoint__", "checkpoint"), path)
        layers = read_layers(archive, path, other_entries=CHECKPOINT_ENTRIES)
        optimizer = _optimizer(meta, archive, layers, path)
    layer_rng_states = {}
    # "layer_rngs" holds each layer's extra state (Layer.get_extra_state): a Dropout's generator.
    for key, state in meta["layer_rngs"].items():
        if not (_LAYER_POSITION.fullmatch(key) and int(key) < len(layers)
                and layers[int(key)].get_extra_state() is not None):
            raise ModelFileError(f"{path}: a generator state is saved for layer {key!r}, which draws none.")
        try:
            layers[int(key)].set_extra_state(state)
        except (TypeError, ValueError) as error:
            raise ModelFileError(f"{path}: layer {key}'s random generator: {error}") from None
        layer_rng_states[int(key)] = state
    generator_from_state(meta["rng"], f"{path}: fit's random generator")  # checked now, used on resume
    return Checkpoint(make_model(layers), optimizer, meta["epoch"], History(meta["history"]), meta["rng"],
                      layer_rng_states, architecture(layers)["layers"])


def _meta(meta, path):
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not a tinynet checkpoint.")
    if meta.get("version") not in (1, VERSION):
        raise ModelFileError(f"{path} is checkpoint version {meta.get('version')!r}; this tinynet reads 1 and 2.")
    epoch, history = meta.get("epoch"), meta.get("history")
    if not int_in(epoch, 0, MAX_EPOCHS):
        raise ModelFileError(f"{path}: the number of completed epochs must be an int in [0, {MAX_EPOCHS}); "
                             f"found {str(epoch)[:40]}.")
    if not isinstance(history, dict) or not all(
        isinstance(name, str) and isinstance(values, list) and len(values) == epoch
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        for name, values in history.items()
    ):
        raise ModelFileError(
            f"{path}: the history must map metric names to lists of {epoch} numbers, one per completed epoch."
        )
    if not isinstance(meta.get("optimizer"), dict):
        raise ModelFileError(f"{path}: the optimizer is not described.")
    if not isinstance(meta.setdefault("layer_rngs", {}), dict):
        raise ModelFileError(f"{path}: layer_rngs must map layer positions to generator states.")
    return meta


def _optimizer(meta, archive, layers, path):
    """The saved optimizer, its arrays checked against the parameters before they are read."""
    description = meta["optimizer"]
    name, config, steps = description.get("class"), description.get("config"), description.get("steps")
    if not isinstance(name, str) or name not in OPTIMIZERS or not isinstance(config, dict):
        raise ModelFileError(f"{path}: unknown optimizer {name!r}; known optimizers are {sorted(OPTIMIZERS)}.")
    try:
        optimizer = OPTIMIZERS[name](**config)
    except (TypeError, ValueError) as error:
        raise ModelFileError(f"{path}: the {name} settings are invalid: {error}") from error
    parameters = {param_name: layer.params[key] for param_name, layer, key in named_parameters(layers)}
    if meta["version"] == 1:
        positions = dict(enumerate(parameters))
        renamed = {f"optimizer.{p}.{old}": f"{positions[p]}.{new}"
                   for p in positions for old, new in _VERSION_1_STATE_NAMES.items()}
    else:
        renamed = {f"optimizer.{param_name}.{state_name}": f"{param_name}.{state_name}"
                   for param_name in parameters for state_name in optimizer.STATE_NAMES}
    present = {entry for entry in archive.names if entry.startswith("optimizer.")}
    archive.refuse_unexpected((archive.names - present) | set(renamed), f"a {name} optimizer of this model")
    dtype = {array.dtype.name for array in parameters.values()} or {"float32"}
    state = {}
    for entry in sorted(present):
        param_name = renamed[entry].rpartition(".")[0]
        state[renamed[entry]] = archive.read_array(entry, parameters[param_name].shape, dtype)
    try:
        optimizer.load_state_dict({"config": config, "steps": steps, "state": state})
    except (TypeError, ValueError) as error:
        raise ModelFileError(f"{path}: the optimizer's state is invalid: {error}") from error
    return optimizer




def resume_training(model, optimizer, path):
    """The saved training state, checked against ``model`` before anything of it is changed."""
    saved = read_checkpoint(path, make_model=list)
    mine, theirs = architecture(model.layers)["layers"], saved.architecture
    saved_dtype = next((a.dtype for a in state_arrays(saved.model).values()), model.dtype)
    if mine != theirs or saved_dtype != model.dtype:
        raise ModelFileError(
            f"{path} is a checkpoint of a different model or configuration: {differences(theirs, mine)}"
            f"{f'; saved in {saved_dtype}, this model is {model.dtype}' if saved_dtype != model.dtype else ''}. "
            f"Resuming needs the same layers with the same settings. Use another checkpoint path or resume=False."
        )
    if optimizer is not None and type(optimizer) is not type(saved.optimizer):
        raise ModelFileError(
            f"{path} holds {type(saved.optimizer).__name__} state; fit was given {type(optimizer).__name__}. "
            f"Pass the same optimizer type (or none, to use the saved one)."
        )
    model.load_state_dict(state_arrays(saved.model))
    for position, state in saved.layer_rng_states.items():  # each Dropout's generator, where it stopped
        model.layers[position].set_extra_state(state)
    if optimizer is None:
        optimizer = saved.optimizer
    else:
        optimizer.load_state_dict(saved.optimizer.state_dict())
    return saved, optimizer


def differences(saved, mine):
    """Where two architectures differ, e.g. ``layer 4 is Dropout(rate=0.5) there, Dropout(rate=0.1) here``."""

    def describe(entry):
        return f"{entry['class']}({', '.join(f'{k}={v!r}' for k, v in entry['config'].items())})"

    if len(saved) != len(mine):
        return (f"it has {len(saved)} layers ({', '.join(e['class'] for e in saved)}), this model "
                f"{len(mine)} ({', '.join(e['class'] for e in mine)})")
    return "; ".join(f"layer {i} is {describe(a)} there, {describe(b)} here"
                     for i, (a, b) in enumerate(zip(saved, mine, strict=True)) if a != b) or "same layers"
