"""Trace mode for learners: what each layer's activations and gradients do while a model trains.

``model.fit(..., trace=True)`` records, once per epoch and for every layer:

- the gradient norm of its parameters (the Euclidean norm of all of them together, ``W``
  and ``b``), averaged over the epoch's batches (layers with parameters only). In a deep
  stack of Sigmoid layers these norms shrink layer by layer towards the input, because
  every Sigmoid multiplies the backward signal by ``σ'(z)``, about 1/4 near ``z = 0``, while
  Glorot-scaled weights keep a typical vector's length: the vanishing-gradient problem. ReLU passes it through unchanged
  where the unit is active, so the norms stay comparable.
- statistics of its output on a fixed probe batch (the first 256 training samples, in
  inference mode): mean, standard deviation, the fraction of exact zeros (dead ReLU units)
  and the fraction of saturated values (``y < 0.01`` or ``y > 0.99`` after Sigmoid,
  ``|y| > 0.99`` after Tanh, where the derivative is almost zero).

The records land in ``history.trace`` (a list of dicts) and ``history.trace_frame()`` (a
pandas DataFrame); :func:`tinynet.plots.gradient_norms` draws them.

Examples
--------
>>> import numpy as np, tinynet
>>> from tinynet.layers import Dense, Sigmoid
>>> x, y = np.random.default_rng(0).random((64, 4), dtype=np.float32), np.arange(64) % 2
>>> model = tinynet.Sequential([Dense(4, 8, rng=0), Sigmoid(), Dense(8, 2, rng=1)])
>>> history = model.fit(x, y, epochs=2, verbose=0, seed=0, trace=True)
>>> frame = history.trace_frame()
>>> sorted(frame.layer.unique()), int(frame.epoch.max())
(['0 Dense', '1 Sigmoid', '2 Dense'], 2)
"""

import numpy as np

from ..layers import Sigmoid, Tanh

__all__ = ["Tracer", "PROBE_SIZE"]

PROBE_SIZE = 256


def _layer_names(model):
    return [f"{position} {type(layer).__name__}" for position, layer in enumerate(model.layers)]


class Tracer:
    """Collects the per-layer statistics of one ``fit`` call; see the module docstring.

    Examples
    --------
    ``fit(..., trace=True)`` makes one; the module docstring shows its records.
    """

    def __init__(self, model, probe):
        self.model = model
        self.probe = probe  # a batch in the model's dtype
        self.names = _layer_names(model)
        self._norm_sums = np.zeros(len(model.layers))
        self._batches = 0

    def after_backward(self):
        """Add this batch's parameter-gradient norms (called between backward and the step)."""
        for position, layer in enumerate(self.model.layers):
            if layer.grads:
                squares = sum(float(np.vdot(g, g)) for g in layer.grads.values())
                self._norm_sums[position] += np.sqrt(squares)
        self._batches += 1

    def end_epoch(self, epoch):
        """The epoch's records: mean gradient norms and activation statistics on the probe batch."""
        records = []
        out = self.probe
        for position, layer in enumerate(self.model.layers):
            out = layer.forward(out)
            values = out.astype(np.float64, copy=False)
            # Saturated: within 0.01 of the output's bounds, where the derivative is almost 0.
            if isinstance(layer, Sigmoid):
                saturated = float((np.abs(values - 0.5) > 0.49).mean())
            elif isinstance(layer, Tanh):
                saturated = float((np.abs(values) > 0.99).mean())
            else:
                saturated = np.nan
            records.append({
                "epoch": epoch,
                "layer": self.names[position],
                "grad_norm": self._norm_sums[position] / max(self._batches, 1) if layer.params else np.nan,
                "activation_mean": float(values.mean()),
                "activation_std": float(values.std()),
                "zero_fraction": float((values == 0).mean()),
                "saturated_fraction": saturated,
            })
        self._norm_sums[:] = 0
        self._batches = 0
        return records
