"""The training loop: batches of an epoch, what fit refuses, and how it ends."""

import numpy as np
import pytest

import tinynet
from tinynet.layers import BatchNorm1D, BatchNorm2D, Conv2D, Dense, Flatten, ReLU
from tinynet.training.inputs import training_batch_count, training_batches


@pytest.mark.parametrize("n, batch_size", [(129, 128), (257, 128), (130, 128), (128, 128), (1, 4), (5, 1), (3, 2)])
def test_an_epochs_batches_cover_every_sample_once_and_never_leave_one_alone(n, batch_size):
    """Every sample is in exactly one batch; a batch of one happens only when it is all there is."""
    order = np.random.default_rng(0).permutation(n)
    parts = [order[index] for index in training_batches(n, batch_size, order)]
    assert sorted(np.concatenate(parts)) == list(range(n))
    assert len(parts) == training_batch_count(n, batch_size)
    assert all(len(part) <= batch_size + 1 for part in parts)
    if batch_size > 1 and n > 1:
        assert min(len(part) for part in parts) > 1


@pytest.mark.parametrize("build", [
    lambda: tinynet.Sequential([Flatten(), Dense(16, 8, rng=0), BatchNorm1D(8), ReLU(), Dense(8, 3, rng=1)]),
    lambda: tinynet.Sequential([Conv2D(1, 2, 4, rng=0), BatchNorm2D(2), ReLU(), Flatten(), Dense(2, 3, rng=1)]),
], ids=["BatchNorm1D", "BatchNorm2D of 1x1 maps"])
def test_a_batchnorm_model_trains_through_a_last_batch_of_one(build):
    """129 samples in batches of 128: both epochs complete with a schedule sized for the run, the loss finite."""
    rng = np.random.default_rng(0)
    x, y = rng.random((129, 1, 4, 4), dtype=np.float32), rng.integers(0, 3, 129)
    model = build()
    steps = 2 * training_batch_count(len(x), 128)
    history = model.fit(x, y, epochs=2, batch_size=128, verbose=0, seed=0,
                        lr_schedule=tinynet.schedules.OneCycle(1e-2, steps))
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["loss"]).all()


def test_a_model_that_cannot_train_on_one_sample_says_so_before_any_weight_moves():
    """A data set of one sample cannot train a BatchNorm: a clear error, and the weights are as they were."""
    model = tinynet.Sequential([Dense(3, 4, rng=0), BatchNorm1D(4), Dense(4, 2, rng=1)])
    before = {name: array.copy() for name, array in model.state_dict().items()}
    with pytest.raises(ValueError, match="more than one value"):
        model.fit(np.ones((1, 3), np.float32), np.zeros(1, int), verbose=0)
    for name, array in model.state_dict().items():
        np.testing.assert_array_equal(array, before[name])
