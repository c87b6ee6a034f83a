"""tinynet: a from-scratch neural-network library on NumPy, with hand-written backprop.

The package, room by room:

- the textbook: ``layers/`` (one file per layer, its forward and backward), ``losses``,
  ``optim``, ``schedules``, ``init``, ``gradcheck``;
- the engine: ``engine/`` (how a model runs fast) and ``kernels/`` (numba loops, each with a
  plain-NumPy twin);
- the model: ``model`` (``Sequential``), ``models`` (the reference architectures and the shipped,
  trained ones), ``history``, ``saliency`` (gradients with respect to the input);
- the page: ``app/`` (``python -m tinynet.app``: draw a digit, watch backprop);
- training: ``training/`` (the loop, its guards, inputs, trace);
- input and output: ``files/`` (save, load, checkpoints, export);
- data: ``data/`` (data sets, file formats, your own images, augmentation);
- pictures: ``plots``.

Imports go one way, downwards: model -> engine -> kernels -> layers (the kernels' readable twins
are the layers' own functions; a layer imports neither kernels nor engine). See the README to start.
"""

import sys

from . import errors, init, kernels, layers, losses, models, optim, schedules
from .data import augment, datasets
from .errors import (
    ArgumentError,
    ArgumentTypeError,
    DatasetError,
    FolderNotFoundError,
    ModelFileError,
    NotTrainedForwardError,
    ShapeError,
    TinynetError,
    TrainingDivergedError,
)
from .files import checkpoint, export, loading, serialization
from .files.checkpoint import Checkpoint
from .files.loading import load_checkpoint, load_model
from .gradcheck import GradcheckResult, gradcheck
from .history import History
from .model import Sequential
from .saliency import class_score_gradient, input_gradient
from .training import trace

# The modules' public paths from before the package was grouped into rooms (data/, files/,
# training/): `import tinynet.datasets` and `from tinynet.export import to_onnx` keep working,
# and name the very module objects of the new layout, not copies.
for _name, _module in {"datasets": datasets, "augment": augment, "export": export, "checkpoint": checkpoint,
                       "serialization": serialization, "loading": loading, "trace": trace}.items():
    sys.modules[f"{__name__}.{_name}"] = _module
del _name, _module

__version__ = "0.1.0"

__all__ = [
    "Sequential",
    "History",
    "load_model",
    "load_checkpoint",
    "Checkpoint",
    "gradcheck",
    "GradcheckResult",
    "input_gradient",
    "class_score_gradient",
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
    "FolderNotFoundError",
]
