r"""Learning-rate schedules: the learning rate as a function of the global optimizer step.

A schedule is a callable ``schedule(step) -> lr``, ``step`` counting optimizer steps from 0
across epochs. ``fit(..., lr_schedule=schedule)`` sets the optimizer's ``lr`` from it before
every step (and a resumed run continues at the saved step, so its rates are the same).
Any function of the step works; these three are the usual ones, each equal to its PyTorch
counterpart:

- :class:`OneCycle` (``torch.optim.lr_scheduler.OneCycleLR``, cosine annealing): warm up from
  ``max_lr / div_factor`` to ``max_lr`` over the first ``pct_start`` of the run, then anneal to
  ``max_lr / div_factor / final_div_factor``::

      lr = end + (start - end) * (1 + cos(pi * t)) / 2,    t = position within the phase, 0..1

- :class:`CosineDecay` (``CosineAnnealingLR(T_max=total_steps, eta_min=final_lr)``)::

      lr = final_lr + (lr0 - final_lr) * (1 + cos(pi * step / total_steps)) / 2

- :class:`ExponentialDecay`: ``lr0 * rate ** (step // steps)``; with ``steps`` the number of
  batches per epoch it is the classic per-epoch decay.
"""

import math

from ._checks import is_int, is_real, number
from .errors import ArgumentError

__all__ = ["Schedule", "OneCycle", "CosineDecay", "ExponentialDecay"]


class Schedule:
    """Base class: ``schedule(step)`` checks the step and calls ``_lr_at(step)``.

    ``total_steps`` is the number of steps the schedule is defined for (None: any number);
    ``fit`` refuses a run longer than that before it starts.

    Examples
    --------
    See :class:`OneCycle`, :class:`CosineDecay` and :class:`ExponentialDecay`.
    """

    total_steps = None

    def __call__(self, step):
        if not is_int(step) or step < 0:
            raise ArgumentError(f"{type(self).__name__} takes a step count >= 0; received {step!r}.")
        if self.total_steps is not None and step >= self.total_steps:
            raise ArgumentError(
                f"{type(self).__name__} was built for total_steps={self.total_steps}; step {step} is past its end. "
                f"Build it with total_steps = epochs * batches per epoch."
            )
        return self._lr_at(int(step))

    def _lr_at(self, step):
        raise NotImplementedError

    def __repr__(self):
        settings = ", ".join(f"{key}={value!r}" for key, value in vars(self).items())
        return f"{type(self).__name__}({settings})"


class OneCycle(Schedule):
    """The one-cycle policy of ``torch.optim.lr_scheduler.OneCycleLR`` (cosine, no momentum cycling).

    Parameters
    ----------
    max_lr : float
        The peak learning rate.
    total_steps : int
        Optimizer steps in the whole run (epochs x batches per epoch).
    pct_start : float in (0, 1), default 0.3
        Fraction of the run spent warming up.
    div_factor : float, default 25
        The first rate is ``max_lr / div_factor``.
    final_div_factor : float, default 1e4
        The last rate is ``max_lr / div_factor / final_div_factor``.

    Examples
    --------
    >>> schedule = OneCycle(0.01, total_steps=100)
    >>> round(schedule(0), 6), round(schedule(29), 6), round(schedule(99), 10)
    (0.0004, 0.01, 4e-08)
    """

    def __init__(self, max_lr, total_steps, pct_start=0.3, div_factor=25.0, final_div_factor=1e4):
        self.max_lr = number(max_lr, "max_lr", "OneCycle", low=0, low_open=True)
        self.total_steps = number(total_steps, "total_steps", "OneCycle", low=0, low_open=True, integer=True)
        if not is_real(pct_start) or not 0 < pct_start < 1:
            raise ArgumentError(f"OneCycle expects pct_start in (0, 1); received pct_start={pct_start!r}.")
        self.pct_start = float(pct_start)
        self.div_factor = number(div_factor, "div_factor", "OneCycle", low=0, low_open=True)
        self.final_div_factor = number(final_div_factor, "final_div_factor", "OneCycle", low=0, low_open=True)

    def _lr_at(self, step):
        initial = self.max_lr / self.div_factor
        phases = [(float(self.pct_start * self.total_steps) - 1, initial, self.max_lr),
                  (self.total_steps - 1, self.max_lr, initial / self.final_div_factor)]
        start_step = 0.0
        for phase, (end_step, start_lr, end_lr) in enumerate(phases):
            if step <= end_step or phase == len(phases) - 1:
                span = end_step - start_step
                fraction = (step - start_step) / span if span else 1.0
                return end_lr + (start_lr - end_lr) * (1 + math.cos(math.pi * fraction)) / 2
            start_step = end_step
        raise AssertionError("unreachable: the last phase always returns")


class CosineDecay(Schedule):
    """Cosine annealing from ``lr`` to ``final_lr`` over ``total_steps`` steps (``CosineAnnealingLR``).

    Examples
    --------
    >>> schedule = CosineDecay(0.1, total_steps=10)
    >>> schedule(0), round(schedule(5), 6), round(schedule(9), 6)
    (0.1, 0.05, 0.002447)
    """

    def __init__(self, lr, total_steps, final_lr=0.0):
        self.lr = number(lr, "lr", "CosineDecay", low=0, low_open=True)
        self.total_steps = number(total_steps, "total_steps", "CosineDecay", low=0, low_open=True, integer=True)
        if not is_real(final_lr) or not 0 <= final_lr <= self.lr:
            raise ArgumentError(f"CosineDecay expects 0 <= final_lr <= lr; received final_lr={final_lr!r}.")
        self.final_lr = float(final_lr)

    def _lr_at(self, step):
        return self.final_lr + (self.lr - self.final_lr) * (1 + math.cos(math.pi * step / self.total_steps)) / 2


class ExponentialDecay(Schedule):
    """``lr * rate ** (step // steps)``: a step decay every ``steps`` optimizer steps.

    Examples
    --------
    >>> schedule = ExponentialDecay(0.1, rate=0.5, steps=100)     # halve every 100 steps
    >>> schedule(0), schedule(99), schedule(100), schedule(250)
    (0.1, 0.1, 0.05, 0.025)
    """

    def __init__(self, lr, rate, steps=1):
        self.lr = number(lr, "lr", "ExponentialDecay", low=0, low_open=True)
        self.rate = number(rate, "rate", "ExponentialDecay", low=0, low_open=True)
        self.steps = number(steps, "steps", "ExponentialDecay", low=0, low_open=True, integer=True)

    def _lr_at(self, step):
        try:
            rate = self.lr * self.rate ** (step // self.steps)
        except OverflowError:
            rate = math.inf
        if not math.isfinite(rate):
            raise ArgumentError(
                f"ExponentialDecay({self.lr}, rate={self.rate}, steps={self.steps}) overflows at step {step}: "
                f"rate ** {step // self.steps} is beyond float range. A decay uses a rate <= 1.")
        return rate
