"""``load_model`` and ``load_checkpoint``: files back into a model.

The one module that knows both file formats (:mod:`.serialization`, :mod:`.checkpoint`).
The model class sits above ``files/`` (it saves through it), so this module does not import
it: :mod:`tinynet.model` registers ``Sequential`` here with :func:`register_model_class`
when it is imported, and the layers read from a file are built into that class.
"""

from ..errors import ArgumentTypeError
from ._archive import Archive
from .checkpoint import CHECKPOINT_ENTRIES, read_checkpoint
from .serialization import read_layers, read_metadata

__all__ = ["load_model", "load_checkpoint", "register_model_class"]

_model_class = []  # the class registered by tinynet.model, once imported


def register_model_class(cls):
    """Build the models read from files as ``cls(layers)`` (tinynet.model registers ``Sequential``)."""
    if not callable(cls):
        raise ArgumentTypeError(f"register_model_class expects a class; received {type(cls).__name__}.")
    _model_class[:] = [cls]
    return cls


def _make_model(layers):
    return _model_class[0](layers)  # importing tinynet imports tinynet.model, which registers it


def load_model(path):
    """Read a model written by :meth:`tinynet.Sequential.save`.

    A checkpoint written by ``fit(..., checkpoint=path)`` is read as its model.

    Raises
    ------
    ModelFileError
        If the file is missing, truncated, corrupted, names unknown layer types, describes
        more than the limits allow, or holds arrays whose names, shapes, dtypes or values
        (NaN, inf) do not fit its architecture. Nothing is unpickled, and no array is read
        before its header has been checked.

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
    with Archive(path, path) as archive:
        model = _make_model(read_layers(archive, path, other_entries=CHECKPOINT_ENTRIES))
        model.metadata = read_metadata(archive, path)
    return model


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
    return read_checkpoint(path, _make_model)
