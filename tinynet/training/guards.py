"""Two guards around the training loop: against divergence (NaN or inf) and against a Ctrl-C mid-step."""

import math
import signal
import threading

import numpy as np

from ..errors import TrainingDivergedError
from ..kernels import all_finite

__all__ = ["DivergenceGuard", "StopAtBatchEnd"]


class DivergenceGuard:
    """Stops training at the first non-finite loss, gradient or weight, keeping the state before that batch.

    At the start of each batch it copies the model's state (parameters and buffers) and the
    optimizer's (moments, step count) into arrays allocated once; if the batch produces NaN
    or inf (finite gradients can still overflow), both are put back, so the next attempt (at
    a lower learning rate, say) starts from a consistent state, not from a half-applied step.
    The copies cost one pass over the weights and moments per batch (about 30 us for the
    basic MLP's 100k weights).
    """

    def __init__(self, model, optimizer):
        self.model, self.optimizer = model, optimizer
        self._key, self._watched, self._backups, self.optimizer_steps = None, [], [], 0

    def _arrays(self):
        """``[(is_model_state, name, array)]`` for the model's and the optimizer's state, rebuilt when they change."""
        key = [id(array) for layer in self.model.layers for store in (layer.params, layer.buffers)
               for array in store.values()]
        key += [id(array) for state in self.optimizer.state.values() for array in state.values()]
        if key != self._key:
            self._watched = [(True, name, array) for name, array in self.model.state_dict().items()]
            self._watched += [(False, name, array) for name, array in self.optimizer.state_dict()["state"].items()]
            self._backups = [array.copy() for _, _, array in self._watched]
            self._key = key
        return self._watched

    def save(self):
        for (_, _, array), backup in zip(self._arrays(), self._backups, strict=True):
            np.copyto(backup, array)
        self.optimizer_steps = self.optimizer.steps

    def _restore_and_raise(self, what, epoch, batch):
        model_state, optimizer_state = {}, {}
        for (of_model, name, _), backup in zip(self._watched, self._backups, strict=True):
            (model_state if of_model else optimizer_state)[name] = backup
        self.model.load_state_dict(model_state)
        self.optimizer.load_state_dict({"config": self.optimizer.get_config(), "steps": self.optimizer_steps,
                                        "state": optimizer_state})
        raise TrainingDivergedError(
            f"Training diverged: {what} became NaN or inf at epoch {epoch}, batch {batch}. "
            f"The weights and optimizer state are those before that batch. Try a lower learning rate."
        )

    def check_loss(self, value, epoch, batch):
        if not math.isfinite(value):
            self._restore_and_raise("the loss", epoch, batch)

    def check_step(self, epoch, batch):
        """After the optimizer step: every weight finite, else restore and name the cause.

        A NaN or inf gradient always makes some weight non-finite (every update rule adds a
        multiple of the gradient, or of a moment built from it), so checking the weights
        alone catches both; the gradients are looked at only to say which it was.
        """
        if not all(all_finite(array) for layer in self.model.layers for array in layer.state_dict().values()):
            gradients_finite = all(all_finite(g) for layer in self.model.layers for g in layer.grads.values())
            self._restore_and_raise("a weight" if gradients_finite else "a gradient", epoch, batch)


class StopAtBatchEnd:
    """Turns the first Ctrl-C during ``fit`` into a request to stop after the current batch.

    A KeyboardInterrupt raised in the middle of an optimizer step would leave some
    parameters updated and others not; deferring it to the batch boundary keeps the model
    consistent. A second Ctrl-C raises at once. Signal handlers can only be installed from
    the main thread; elsewhere Ctrl-C behaves as usual. When SIGINT is ignored (a program
    started in the background with ``&`` or ``nohup``), it stays ignored, as Python leaves
    it; on exit the handler found at the start is put back.
    """

    def __init__(self):
        self.requested = False
        self._installed = False
        self._previous = None

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt("second Ctrl-C: fit stopped at once")
        self.requested = True

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            previous = signal.getsignal(signal.SIGINT)
            if previous is not signal.SIG_IGN:
                try:
                    self._previous = signal.signal(signal.SIGINT, self._handler)
                    self._installed = True
                except ValueError:
                    pass
        return self

    def __exit__(self, *exc_info):
        if self._installed:
            signal.signal(signal.SIGINT, self._previous if self._previous is not None else signal.default_int_handler)
        return False
