"""Training: the loop behind ``Sequential.fit``, ``evaluate`` and ``predict``, and what guards it.

- :mod:`.loop`: ``fit`` (epochs of batches), ``train_step`` (one step of backprop), ``evaluate``, ``predict``;
- :mod:`.inputs`: inputs checked once at the edge, uint8 scaled batch by batch;
- :mod:`.guards`: the divergence guard (NaN or inf puts the weights back) and Ctrl-C at a batch's end;
- :mod:`.trace`: per-layer gradient norms and activation statistics for learners.
"""

from .guards import DivergenceGuard, StopAtBatchEnd
from .inputs import batches, prepare_inputs
from .loop import evaluate, fit, predict, train_step

__all__ = ["fit", "train_step", "evaluate", "predict", "prepare_inputs", "batches", "DivergenceGuard",
           "StopAtBatchEnd"]
