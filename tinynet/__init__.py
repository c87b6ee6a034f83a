"""tinynet: a from-scratch neural-network library on NumPy, with hand-written backprop.

Every layer has a readable ``forward`` and ``backward``; convolutions and pooling run on
numba-compiled kernels that each have a plain-NumPy twin. See the README to start.
"""

from . import augment, datasets, errors, export, init, kernels, layers, losses, models, optim, schedules, trace
from .checkpoint import Checkpoint
from .errors import (
    ArgumentError,
    ArgumentTypeError,
    DatasetError,
    ModelFileError,
    NotTrainedForwardError,
    ShapeError,
    TinynetError,
    TrainingDivergedError,
)
from .gradcheck import GradcheckResult, gradcheck
from .history import History
from .loading import load_checkpoint, load_model
from .model import Sequential

__version__ = "0.1.0"

__all__ = [
    "Sequential",
    "History",
    "load_model",
    "load_checkpoint",
    "Checkpoint",
    "gradcheck",
    "GradcheckResult",
    "layers",
    "losses",
    "optim",
    "schedules",
    "models",
    "datasets",
    "export",
    "augment",
    "init",
    "kernels",
    "trace",
    "errors",
    "TinynetError",
    "ArgumentError",
    "ArgumentTypeError",
    "ShapeError",
    "NotTrainedForwardError",
    "TrainingDivergedError",
    "ModelFileError",
    "DatasetError",
]
