"""Model files: one ``.npz`` holding the layers' state and a JSON description of the layers.

Layout of the archive (``numpy.savez``, stored members)::

    __architecture__   0-d unicode array: JSON {"format", "version", "layers": [...]}
    <i>.<name>         entry <name> of layer i's state_dict(), e.g. "1.W" or "3.running_mean"

The description may hold ``"metadata"``: the model's ``metadata`` dict (JSON: where the
model came from, e.g. the recipe, seed, revision and test accuracy of a shipped model).

Loading never unpickles, builds layers only from the classes listed in
:data:`LAYER_CLASSES`, bounds the description (at most :data:`MAX_LAYERS` layers and
:data:`MAX_SCALARS` numbers), refuses every array the rebuilt layers do not name before
reading any, and checks each array's header (shape, dtype) before its data, then its values
(finite). A model file is data, never code. :meth:`Sequential.save` runs the same checks
on what it is about to write, so what ``save`` writes ``load_model`` reads.

This module works on lists of layers; :mod:`tinynet.loading` wraps them in a ``Sequential``.
"""

import json

import numpy as np

from .. import layers as layer_module
from ..errors import ArgumentError, ArgumentTypeError, ModelFileError
from ..init import weights_to_be_overwritten
from ..layers.base import check_layer_tree, named_arrays, qualified_name
from ..layers.residual import MAX_NESTING, TOO_DEEP, nesting_depth
from ._archive import write_archive

__all__ = ["save_model", "model_arrays", "read_layers", "read_metadata", "architecture", "check_metadata",
           "state_arrays", "check_state_values",
           "LAYER_CLASSES", "MAX_LAYERS", "MAX_SCALARS"]

FORMAT = "tinynet.model"
VERSION = 1
#: The most layers a model file may describe.
MAX_LAYERS = 1_000
#: The most characters a model's metadata may take as JSON.
MAX_METADATA_CHARS = 65_536
#: The most numbers (parameters and buffers) a model file may hold: 1 GiB of float32.
MAX_SCALARS = 1 << 28
FLOAT_DTYPES = frozenset({"float32", "float64"})

#: The layer types a model file may name.
LAYER_CLASSES = {name: getattr(layer_module, name) for name in layer_module.__all__ if name != "Layer"}


def architecture(layers, metadata=None):
    """The JSON-ready description of ``layers``: format, version, each layer's class and config, metadata."""
    # Both are refused when a model is built; inner lists changed since would not load as they were.
    check_layer_tree(layers, "save()")
    if nesting_depth(layers) > MAX_NESTING:
        raise ArgumentError(f"save(): {TOO_DEEP}")
    description = []
    for position, layer in enumerate(layers):
        _check_own(layer, position)
        description.append({"class": type(layer).__name__, "config": layer.get_config()})
    document = {"format": FORMAT, "version": VERSION, "layers": description}
    if metadata:
        document["metadata"] = check_metadata(metadata)
    return document


def check_metadata(metadata, where="model.metadata", error=ArgumentError):
    """``metadata`` if it is a dict that JSON holds as it is (text keys, no NaN) in MAX_METADATA_CHARS, else ``error``.

    JSON keys are text: ``json.dumps`` would write the key ``1`` as ``"1"``, and of ``{1: a, "1": b}``
    reading would keep one value. So a key that is not text, at any depth, is refused.
    """
    if not isinstance(metadata, dict):
        raise error(f"{where} must be a dict with text keys; received {type(metadata).__name__}.")
    try:
        text = json.dumps(metadata, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as problem:
        raise error(f"{where} must hold only JSON values (text, numbers, lists, dicts): {problem}.") from None
    if len(text) > MAX_METADATA_CHARS:
        raise error(f"{where} takes {len(text):,} characters as JSON; a model file holds at most "
                    f"{MAX_METADATA_CHARS:,}.")
    found = _key_not_text(metadata, where)
    if found:
        place, key = found
        written = next(iter(json.loads(json.dumps({key: 0}))))  # the text JSON makes of the key
        raise error(f"{place} has the key {key!r} ({type(key).__name__}); JSON keys are text: the file would "
                    f"hold it as {written!r} and, were {written!r} a key too, keep only one of the two values. "
                    f"Use text keys, e.g. {written!r}.")
    return metadata


def _key_not_text(value, where):
    """``(place, key)`` of the first dict key in ``value`` that is not a str, or None (JSON wrote it: no cycles)."""
    stack = [(value, where)]
    while stack:
        value, where = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    return where, key
                stack.append((item, f"{where}[{key!r}]"))
        elif isinstance(value, (list, tuple)):
            stack.extend((item, f"{where}[{position}]") for position, item in enumerate(value))
    return None


def _check_own(layer, position):
    """Only tinynet's own layers (inner layers of a Residual too) can be rebuilt from a file."""
    name = type(layer).__name__
    if LAYER_CLASSES.get(name) is not type(layer):
        raise ArgumentTypeError(f"save() can store only tinynet's own layers; layer {position} is {name}.")
    for inner, part in enumerate(getattr(layer, "layers", ())):
        _check_own(part, f"{position}.{inner}")


def state_arrays(layers):
    """Every layer's ``state_dict()`` under ``"<position>.<name>"`` (the arrays themselves)."""
    return named_arrays(layers)


def check_state_values(arrays, where):
    """The one float dtype of ``arrays`` (all float32 or all float64, every value finite), else a ModelFileError."""
    dtypes = sorted({array.dtype.name for array in arrays.values()})
    if not set(dtypes) <= FLOAT_DTYPES or len(dtypes) > 1:
        raise ModelFileError(
            f"{where}: the weights must be all float32 or all float64; found {dtypes}. "
            f"Convert the model with model.astype(np.float32) first."
        )
    for name, array in arrays.items():
        if not np.isfinite(array).all():
            raise ModelFileError(
                f"{where}: array {name} holds NaN or inf; the model diverged or the file is corrupted."
            )
    return np.dtype(dtypes[0]) if dtypes else np.dtype(np.float32)


def model_arrays(model):
    """The arrays of a model file, checked as :func:`read_layers` will check them."""
    description = architecture(model.layers, model.metadata)  # first: it refuses trees the arrays cannot name
    arrays = dict(state_arrays(model.layers))
    check_state_values(arrays, "save()")
    arrays["__architecture__"] = np.array(json.dumps(description))
    return arrays


def save_model(model, path):
    """Write ``model`` to ``path`` atomically: the old file stays intact until the new one is complete."""
    write_archive(path, model_arrays(model))


def _document(archive, path):
    document = archive.read_json("__architecture__", "architecture")
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        found = document.get("format") if isinstance(document, dict) else type(document).__name__
        raise ModelFileError(f"{path} is not a tinynet model file (format {found!r}).")
    if document.get("version") != VERSION:
        raise ModelFileError(
            f"{path} is model format version {document.get('version')!r}; this tinynet reads version {VERSION}."
        )
    return document


def read_metadata(archive, path):
    """The model's metadata dict ({} when the file has none), checked as save checks it."""
    metadata = _document(archive, path).get("metadata", {})
    return dict(check_metadata(metadata, f"{path}: the metadata", ModelFileError))


def _layer_entries(archive, path):
    entries = _document(archive, path).get("layers")
    if not isinstance(entries, list):
        raise ModelFileError(f"{path}: the architecture has no list of layers.")
    if len(entries) > MAX_LAYERS:
        raise ModelFileError(f"{path} describes {len(entries):,} layers; tinynet reads at most {MAX_LAYERS:,}.")
    return entries


def _build_layer(entry, position, path, depth=0):
    if not isinstance(entry, dict) or not isinstance(entry.get("config", {}), dict):
        raise ModelFileError(f"{path}: layer {position} is not described as {{'class': ..., 'config': {{...}}}}.")
    name = entry.get("class")
    if not isinstance(name, str) or name not in LAYER_CLASSES:
        raise ModelFileError(
            f"{path}: layer {position} has unknown type {name!r}; known types are {sorted(LAYER_CLASSES)}."
        )
    try:
        kind, config = LAYER_CLASSES[name], entry.get("config", {})
        if hasattr(kind, "from_config"):  # a layer of layers (Residual): each inner one built the same way
            return kind.from_config(
                config, lambda inner, place, level: _build_layer(inner, f"{position}.{place}", path, level), depth)
        with weights_to_be_overwritten():
            return kind(**config)
    except ModelFileError:  # an inner layer's, which names its own place
        raise
    except MemoryError as error:
        raise ModelFileError(f"{path}: layer {position} ({name}) is too large to build: {error}") from error
    except (TypeError, ValueError, OverflowError) as error:
        raise ModelFileError(
            f"{path}: layer {position} ({name}) has an invalid configuration: {error}"
        ) from error


def read_layers(archive, path, other_entries=()):
    """The layers described by ``archive``, their state read and checked; ``path`` names errors.

    ``other_entries`` are name prefixes the caller reads itself (a checkpoint's); any other
    array the layers do not name is refused before anything is read.
    """
    entries = _layer_entries(archive, path)
    expected = {}
    total = 0
    for position, entry in enumerate(entries):
        layer = _build_layer(entry, position, path)
        for key, array in layer.state_dict().items():
            expected[qualified_name(position, key)] = array.shape
            total += array.size
        if total > MAX_SCALARS:
            raise ModelFileError(
                f"{path}: the layers describe more than {MAX_SCALARS:,} weights; the file is not a model tinynet reads."
            )
        entries[position] = layer
    strangers = {name for name in archive.names if name.startswith(tuple(other_entries))}
    archive.refuse_unexpected(set(expected) | {"__architecture__"} | strangers, "the model's architecture")
    missing = sorted(set(expected) - archive.names)
    if missing:
        raise ModelFileError(f"{path}: arrays do not match the architecture (missing {missing[:5]}).")
    arrays = {name: archive.read_array(name, shape, FLOAT_DTYPES) for name, shape in expected.items()}
    dtype = check_state_values(arrays, str(path))
    with np.errstate(invalid="ignore"):  # the placeholder weights are uninitialised memory, overwritten next
        layers = [layer.astype(dtype) for layer in entries]
    for position, layer in enumerate(layers):
        layer.load_state_dict({key: arrays[qualified_name(position, key)] for key in layer.state_dict()})
    return layers

