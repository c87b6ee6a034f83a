"""Learning-rate schedules: PyTorch's rates, step by step, and clear refusals."""

import math

import numpy as np
import pytest

from tinynet.schedules import CosineDecay, ExponentialDecay, OneCycle


def _torch_rates(make_scheduler, lr, steps):
    """The learning rate PyTorch's scheduler sets before each of ``steps`` optimizer steps (the test is skipped
    without PyTorch: there is then nothing to compare with)."""
    torch = pytest.importorskip("torch", reason="PyTorch is not installed: no reference schedules to compare")
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=lr)
    scheduler = make_scheduler(optimizer, torch.optim.lr_scheduler)
    rates = []
    for _ in range(steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return np.array(rates)


@pytest.mark.parametrize("pct_start, div_factor, final_div_factor", [(0.3, 25.0, 1e4), (0.1, 10.0, 100.0)])
def test_one_cycle_gives_the_rates_of_torch_one_cycle_lr(pct_start, div_factor, final_div_factor):
    """OneCycle's rate at every step equals torch's OneCycleLR (cosine annealing, no momentum cycling)."""
    total = 97
    ours = [OneCycle(0.01, total, pct_start=pct_start, div_factor=div_factor,
                     final_div_factor=final_div_factor)(step) for step in range(total)]
    theirs = _torch_rates(lambda opt, schedulers: schedulers.OneCycleLR(
        opt, max_lr=0.01, total_steps=total, pct_start=pct_start, div_factor=div_factor,
        final_div_factor=final_div_factor, anneal_strategy="cos", cycle_momentum=False), 0.01, total)
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("final_lr", [0.0, 1e-4])
def test_cosine_decay_gives_the_rates_of_torch_cosine_annealing_lr(final_lr):
    """CosineDecay's rate at every step equals torch's CosineAnnealingLR(T_max=total_steps, eta_min=final_lr)."""
    total = 50
    ours = [CosineDecay(0.1, total, final_lr=final_lr)(step) for step in range(total)]
    theirs = _torch_rates(lambda opt, schedulers: schedulers.CosineAnnealingLR(
        opt, T_max=total, eta_min=final_lr), 0.1, total)
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-15)


def test_exponential_decay_steps_down_every_few_steps():
    """ExponentialDecay(lr, rate, steps) is lr * rate ** (step // steps), as torch's StepLR with gamma=rate."""
    schedule = ExponentialDecay(0.1, 0.5, steps=3)
    theirs = _torch_rates(lambda opt, schedulers: schedulers.StepLR(opt, step_size=3, gamma=0.5), 0.1, 12)
    np.testing.assert_allclose([schedule(step) for step in range(12)], theirs, rtol=1e-12)
    assert math.isclose(schedule(7), 0.1 * 0.25)


def test_a_step_past_the_schedule_is_refused():
    """A step at or beyond total_steps is an error that names the schedule, not an extrapolated rate."""
    with pytest.raises(ValueError, match="OneCycle"):
        OneCycle(0.01, 10)(10)
