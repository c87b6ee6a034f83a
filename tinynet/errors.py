"""Exceptions raised by tinynet.

Every error tinynet raises on purpose derives from :class:`TinynetError`, and also from
the built-in type a NumPy user would expect (``ValueError``, ``TypeError``, ...), so
``except ValueError`` keeps working. Messages say what was received, what was expected
and how to fix it.
"""

__all__ = [
    "TinynetError",
    "ArgumentError",
    "ArgumentTypeError",
    "ShapeError",
    "NotTrainedForwardError",
    "TrainingDivergedError",
    "ModelFileError",
    "DatasetError",
    "FolderNotFoundError",
]


class TinynetError(Exception):
    """Base class of every error tinynet raises on purpose."""


class ArgumentError(TinynetError, ValueError):
    """An argument has a value the call cannot use (``stride=0``, ``lr=-1``, an unknown name)."""


class ArgumentTypeError(TinynetError, TypeError):
    """An argument has a type the call cannot use (a string for a number, ints for float images)."""


class ShapeError(TinynetError, ValueError):
    """An array has the wrong rank or shape for the layer or call it was given to."""


class NotTrainedForwardError(TinynetError, RuntimeError):
    """``backward`` was called without a preceding ``forward(x, training=True)``."""


class TrainingDivergedError(TinynetError, FloatingPointError):
    """The loss or a gradient became NaN or infinite during ``fit``."""


class ModelFileError(TinynetError, ValueError):
    """A model or checkpoint file is missing, truncated, corrupted or inconsistent."""


class DatasetError(TinynetError, OSError):
    """A data set file could not be found, downloaded, verified or parsed."""


class FolderNotFoundError(TinynetError, FileNotFoundError):
    """A file was to be written into a folder that does not exist (nothing is written)."""
