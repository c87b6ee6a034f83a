"""Model files: one ``.npz`` holding the weights and a JSON description of the layers.

Layout of the archive (``numpy.savez``)::

    __architecture__   0-d unicode array: JSON {"format", "version", "layers": [...]}
    <i>.<name>         the parameter <name> of layer i, e.g. "1.W"

Loading never unpickles (``allow_pickle=False``), builds layers only from the classes
listed in :data:`LAYER_CLASSES`, and checks every array's name, shape and dtype against
the rebuilt layers before using it. A model file is data, never code.
"""

import json
import zipfile

import numpy as np

from . import layers as layer_module
from ._io import atomic_write
from .errors import ModelFileError
from .init import weights_to_be_overwritten

__all__ = ["save_model", "load_model", "model_arrays", "model_from_arrays", "read_archive", "LAYER_CLASSES"]

FORMAT = "tinynet.model"
VERSION = 1

#: The layer types a model file may name.
LAYER_CLASSES = {name: getattr(layer_module, name) for name in layer_module.__all__ if name != "Layer"}

_FLOAT_DTYPES = {"float32", "float64"}


def save_model(model, path):
    """Write ``model`` to ``path`` atomically: the old file stays intact until the new one is complete."""
    arrays = model_arrays(model)
    with atomic_write(path) as handle:
        np.savez(handle, **arrays)


def model_arrays(model):
    """The arrays of a model file: ``__architecture__`` (JSON) and ``<i>.<name>`` per parameter."""
    description = []
    arrays = {}
    for position, layer in enumerate(model.layers):
        name = type(layer).__name__
        if LAYER_CLASSES.get(name) is not type(layer):
            raise TypeError(f"save() can store only tinynet's own layers; layer {position} is {name}.")
        description.append({"class": name, "config": layer.get_config()})
        for key, array in layer.params.items():
            arrays[f"{position}.{key}"] = array
    architecture = {"format": FORMAT, "version": VERSION, "layers": description}
    arrays["__architecture__"] = np.array(json.dumps(architecture))
    return arrays


def read_archive(path):
    """Every array in an ``.npz`` file, read without unpickling; any failure becomes a ModelFileError."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise ModelFileError(f"{path} is a single .npy array, not a tinynet model file (.npz).")
            return {name: archive[name] for name in archive.files}
    except FileNotFoundError:
        raise ModelFileError(
            f"No model file at {path}; check the path (models are saved with model.save(path))."
        ) from None
    except ModelFileError:
        raise
    except MemoryError as error:
        raise ModelFileError(
            f"{path} declares arrays too large to load ({error}); the file is corrupted or not a tinynet model."
        ) from error
    except ValueError as error:
        if "pickle" in str(error):  # NumPy's message would suggest unpickling it: never for a model file
            raise ModelFileError(
                f"{path} is not a tinynet model file: it is not an .npz archive, and tinynet never loads pickles."
            ) from error
        raise ModelFileError(
            f"{path} is not a readable tinynet model file (truncated or corrupted?): {error}"
        ) from error
    except (OSError, EOFError, KeyError, zipfile.BadZipFile, RuntimeError, NotImplementedError,
            OverflowError, UnicodeDecodeError) as error:
        raise ModelFileError(
            f"{path} is not a readable tinynet model file (truncated or corrupted?): {error}"
        ) from error


def _architecture(arrays, path):
    if "__architecture__" not in arrays:
        raise ModelFileError(f"{path} has no __architecture__ entry; it was not written by tinynet's model.save().")
    text = arrays.pop("__architecture__")
    try:
        architecture = json.loads(str(text[()]))
    except (ValueError, TypeError, IndexError) as error:
        raise ModelFileError(f"{path}: the architecture entry is not valid JSON ({error}).") from error
    if not isinstance(architecture, dict) or architecture.get("format") != FORMAT:
        found = architecture.get("format") if isinstance(architecture, dict) else type(architecture).__name__
        raise ModelFileError(f"{path} is not a tinynet model file (format {found!r}).")
    if architecture.get("version") != VERSION:
        raise ModelFileError(
            f"{path} is model format version {architecture.get('version')!r}; this tinynet reads version {VERSION}."
        )
    if not isinstance(architecture.get("layers"), list):
        raise ModelFileError(f"{path}: the architecture has no list of layers.")
    return architecture["layers"]


def _build_layer(entry, position, path):
    if not isinstance(entry, dict) or not isinstance(entry.get("config", {}), dict):
        raise ModelFileError(f"{path}: layer {position} is not described as {{'class': ..., 'config': {{...}}}}.")
    name = entry.get("class")
    if not isinstance(name, str) or name not in LAYER_CLASSES:
        raise ModelFileError(
            f"{path}: layer {position} has unknown type {name!r}; known types are {sorted(LAYER_CLASSES)}."
        )
    try:
        with weights_to_be_overwritten():
            return LAYER_CLASSES[name](**entry.get("config", {}))
    except MemoryError as error:
        raise ModelFileError(f"{path}: layer {position} ({name}) is too large to build: {error}") from error
    except (TypeError, ValueError, OverflowError) as error:
        raise ModelFileError(
            f"{path}: layer {position} ({name}) has an invalid configuration: {error}"
        ) from error


def load_model(path):
    """Read a model written by :meth:`tinynet.Sequential.save`.

    Raises
    ------
    ModelFileError
        If the file is missing, truncated, corrupted, names unknown layer types, or holds
        arrays whose names, shapes or dtypes do not match its architecture.

    A checkpoint written by ``fit(..., checkpoint=path)`` is read as its model.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np, tinynet
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "mlp.npz"
    >>> model = tinynet.models.basic_mlp(rng=0)
    >>> model.save(path)
    >>> x = np.zeros((2, 1, 28, 28), np.float32)
    >>> bool(np.array_equal(tinynet.load_model(path).predict(x), model.predict(x)))
    True
    """
    arrays = read_archive(path)
    if "__checkpoint__" in arrays:  # a checkpoint is a model file plus training state: read the model
        arrays = {name: array for name, array in arrays.items()
                  if name != "__checkpoint__" and not name.startswith("optimizer.")}
    return model_from_arrays(arrays, path)


def model_from_arrays(arrays, path):
    """Rebuild a model from :func:`model_arrays`' layout, checking every array; ``path`` names errors."""
    from .model import Sequential

    arrays = dict(arrays)
    entries = _architecture(arrays, path)
    built = [_build_layer(entry, position, path) for position, entry in enumerate(entries)]
    expected = {f"{i}.{key}": (layer, key) for i, layer in enumerate(built) for key in layer.params}
    missing, unexpected = sorted(set(expected) - set(arrays)), sorted(set(arrays) - set(expected))
    if missing or unexpected:
        raise ModelFileError(
            f"{path}: arrays do not match the architecture (missing {missing}, unexpected {unexpected})."
        )
    dtypes = {str(array.dtype) for array in arrays.values()}
    if not dtypes <= _FLOAT_DTYPES or len(dtypes) > 1:
        raise ModelFileError(f"{path}: parameters must all be float32 or all float64; found {sorted(dtypes)}.")
    for name, (layer, key) in expected.items():
        array = arrays[name]
        if array.shape != layer.params[key].shape:
            raise ModelFileError(
                f"{path}: array {name} has shape {array.shape}; its layer "
                f"{type(layer).__name__} needs {layer.params[key].shape}."
            )
        layer.params[key] = np.ascontiguousarray(array)
    return Sequential(built)
