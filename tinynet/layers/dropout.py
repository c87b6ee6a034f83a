r"""Inverted dropout.

In training each input is kept with probability ``1 - rate`` and scaled by ``1/(1 - rate)``,
so the expected output equals the input and nothing needs rescaling at test time::

    mask = (u >= rate) / (1 - rate),  u ~ U[0, 1)
    Y = X * mask              dX = dY * mask

With ``training=False`` the layer is the identity.
"""


import numpy as np

from .._checks import float_array, is_real
from ..errors import ArgumentError
from ..init import as_generator, generator_from_state
from .base import Layer

__all__ = ["Dropout"]


class Dropout(Layer):
    """Zero each input with probability ``rate`` during training (inverted scaling).

    Parameters
    ----------
    rate : float in [0, 1)
        Probability of dropping an input.
    rng : numpy.random.Generator or int, optional
        Source of the masks. ``Sequential.fit(seed=...)`` replaces it with a stream drawn
        from its own seed, so a seeded fit is reproducible.

    Shape
    -----
    - Input: any shape, e.g. ``(N, F)`` or ``(N, C, H, W)``.
    - Output: the input's shape and dtype.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.ones((2, 4), dtype=np.float32)
    >>> Dropout(0.5).forward(x) is x     # identity outside training
    True
    """

    def __init__(self, rate, *, rng=None):
        super().__init__()
        if not is_real(rate) or not 0 <= rate < 1:
            raise ArgumentError(
                f"Dropout expects rate in [0, 1) (the probability of dropping an input); received rate={rate!r}."
            )
        self.rate = float(rate)
        self.rng = as_generator(rng)

    def forward(self, x, training=False):
        x = float_array(x, "Dropout")
        if not training or self.rate == 0:
            self._save(training, None)
            return x
        keep = self.rng.random(x.shape, dtype=np.float64 if x.dtype == np.float64 else np.float32) >= self.rate
        mask = keep * x.dtype.type(1 / (1 - self.rate))
        self._save(training, mask)
        return x * mask

    def backward(self, grad_out):
        (mask,) = self._saved_values()
        return grad_out if mask is None else grad_out * mask

    def reseed(self, rng):
        """Draw the masks from a new generator seeded by ``rng``: a seeded fit drops the same units."""
        self.rng = np.random.default_rng(rng.integers(2**63))

    def get_extra_state(self):
        """The generator's state, so a checkpoint resumes the same masks."""
        return self.rng.bit_generator.state

    def set_extra_state(self, state):
        """Continue drawing masks from a saved generator state (checked: numpy accepts states that loop)."""
        self.rng = generator_from_state(state, "Dropout's generator state")

    def get_config(self):
        return {"rate": self.rate}
