"""What ``fit`` returns: per-epoch metrics, as a dict of lists and as a DataFrame."""

from .errors import ArgumentError

__all__ = ["History"]


class History:
    """Metrics recorded once per epoch by :meth:`tinynet.Sequential.fit`.

    Attributes
    ----------
    history : dict[str, list[float]]
        ``"loss"`` and ``"accuracy"`` on the training batches (means over the epoch),
        ``"val_loss"`` and ``"val_accuracy"`` when validation data was given, and
        ``"seconds"``, the wall time of each epoch's training.

    Examples
    --------
    >>> h = History()
    >>> h.append(loss=0.5, accuracy=0.9)
    >>> h.history
    {'loss': [0.5], 'accuracy': [0.9]}
    """

    def __init__(self, history=None):
        self.history = {key: list(values) for key, values in (history or {}).items()}
        self.trace = []  # per-epoch, per-layer records of fit(..., trace=True); see tinynet.trace

    @property
    def epochs(self):
        """Number of epochs recorded."""
        return max((len(values) for values in self.history.values()), default=0)

    def append(self, **metrics):
        """Record one epoch's metrics."""
        for key, value in metrics.items():
            self.history.setdefault(key, []).append(float(value))

    def to_frame(self):
        """The history as a pandas DataFrame: one row per epoch, index ``epoch`` from 1."""
        import pandas as pd

        frame = pd.DataFrame(self.history)
        frame.index = pd.RangeIndex(1, len(frame) + 1, name="epoch")
        return frame

    def trace_frame(self):
        """The records of ``fit(..., trace=True)`` as a DataFrame: one row per epoch and layer."""
        import pandas as pd

        if not self.trace:
            raise ArgumentError("This history has no trace; train with fit(..., trace=True) to record one.")
        return pd.DataFrame(self.trace)

    def __repr__(self):
        return f"History(epochs={self.epochs}, metrics={list(self.history)})"
