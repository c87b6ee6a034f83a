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
import numbers

__all__ = ["Schedule", "OneCycle", "CosineDecay", "ExponentialDecay"]


def _positive(value, name, owner, integer=False):
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind) or not value > 0 or not math.isfinite(value):
        what = "a positive int" if integer else "a positive number"
        raise ValueError(f"{owner} expects {name} to be {what}; received {name}={value!r}.")
    return int(value) if integer else float(value)


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
        if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
            raise ValueError(f"{type(self).__name__} takes a step count >= 0; received {step!r}.")
        if self.total_steps is not None and step >= self.total_steps:
            raise ValueError(
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
        self.max_lr = _positive(max_lr, "max_lr", "OneCycle")
        self.total_steps = _positive(total_steps, "total_steps", "OneCycle", integer=True)
        if isinstance(pct_start, bool) or not isinstance(pct_start, numbers.Real) or not 0 < pct_start < 1:
            raise ValueError(f"OneCycle expects pct_start in (0, 1); received pct_start={pct_start!r}.")
        self.pct_start = float(pct_start)
        self.div_factor = _positive(div_factor, "div_factor", "OneCycle")
        self.final_div_factor = _positive(final_div_factor, "final_div_factor", "OneCycle")

    def _lr_at(self, step):
        initial = self.max_lr / self.div_factor
        phases = [(float(self.pct_start * self.total_steps) - 1, initial, self.max_lr),
                  (self.total_steps - 1, self.max_lr, initial / self.final_div_factor)]
        start_step = 0.0
        for number, (end_step, start_lr, end_lr) in enumerate(phases):
            if step <= end_step or number == len(phases) - 1:
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
        self.lr = _positive(lr, "lr", "CosineDecay")
        self.total_steps = _positive(total_steps, "total_steps", "CosineDecay", integer=True)
        if isinstance(final_lr, bool) or not isinstance(final_lr, numbers.Real) or not 0 <= final_lr <= self.lr:
            raise ValueError(f"CosineDecay expects 0 <= final_lr <= lr; received final_lr={final_lr!r}.")
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
        self.lr = _positive(lr, "lr", "ExponentialDecay")
        self.rate = _positive(rate, "rate", "ExponentialDecay")
        self.steps = _positive(steps, "steps", "ExponentialDecay", integer=True)

    def _lr_at(self, step):
        return self.lr * self.rate ** (step // self.steps)
