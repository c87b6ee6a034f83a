"""Augmentation: the affine warp kernel equals its twin; random_affine is seeded, bounded and checked."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinynet
from tinynet import kernels
from tinynet.augment import random_affine
from tinynet.kernels import affine_warp, reference

jitted = kernels._load_jitted()  # None without numba, or with NUMBA_DISABLE_JIT=1


@st.composite
def warps(draw):
    n, c, h, w = draw(st.integers(1, 3)), draw(st.integers(1, 2)), draw(st.integers(1, 9)), draw(st.integers(1, 9))
    matrices = np.array(draw(st.lists(st.floats(-3, 3), min_size=6 * n, max_size=6 * n))).reshape(n, 2, 3)
    return (n, c, h, w), matrices


@pytest.mark.skipif(jitted is None, reason="numba is not installed or its JIT is off: no compiled warp to compare")
@given(warps(), st.sampled_from([np.float32, np.float64]), st.integers(0, 2**16))
def test_affine_warp_matches_reference(warp, dtype, seed):
    """The numba warp and its NumPy twin sample the same bilinear values (to float rounding)."""
    shape, matrices = warp
    x = np.random.default_rng(seed).random(shape).astype(dtype)
    fast, slow = jitted.affine_warp(x, matrices), reference.affine_warp_reference(x, matrices)
    assert fast.dtype == dtype and fast.shape == x.shape
    np.testing.assert_allclose(fast, slow, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6)


def test_the_identity_and_whole_pixel_moves_are_exact():
    """The identity and whole pixel moves are exact."""
    x = np.random.default_rng(0).random((2, 1, 5, 6), dtype=np.float32)
    identity = np.tile([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], (2, 1, 1))
    np.testing.assert_array_equal(affine_warp(x, identity), x)
    down_one = np.tile([[1.0, 0.0, -1.0], [0.0, 1.0, 0.0]], (2, 1, 1))  # output row r reads input row r - 1
    moved = affine_warp(x, down_one)
    np.testing.assert_array_equal(moved[:, :, 1:], x[:, :, :-1])
    assert not moved[:, :, 0].any()


def test_random_affine_rotates_about_the_centre_and_is_seeded():
    """A quarter turn (rotation fixed at 90 degrees, no zoom or shift) is rot90 of the image."""
    x = np.random.default_rng(1).random((3, 1, 7, 7), dtype=np.float32)
    turn = random_affine(rotation=90, scale=(1, 1), shift=0)

    class Always90:  # a generator stand-in whose angle draw is +90 degrees
        def uniform(self, low, high, size):
            return np.full(size, high) if np.ndim(size) == 0 else np.zeros(size)

    out = turn(x, Always90())
    assert any(np.allclose(out[:, 0], np.rot90(x[:, 0], k, axes=(1, 2)), atol=1e-6) for k in (1, 3))
    still = random_affine(rotation=0, scale=(1, 1), shift=0)(x, np.random.default_rng(2))
    np.testing.assert_allclose(still, x, atol=1e-6)
    augment = random_affine()
    a, b = augment(x, np.random.default_rng(5)), augment(x, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, augment(x, np.random.default_rng(6)))


def test_random_affine_trains_through_fit():
    """Used as fit's augment: a seeded fit gives the same weights twice."""
    rng = np.random.default_rng(3)
    x, y = rng.random((64, 1, 8, 8), dtype=np.float32), rng.integers(0, 2, 64)
    weights = []
    for _ in range(2):
        model = tinynet.Sequential([tinynet.layers.Flatten(), tinynet.layers.Dense(64, 2, rng=0)])
        model.fit(x, y, epochs=2, batch_size=16, seed=0, verbose=0, augment=random_affine(20, (0.8, 1.2), 1))
        weights.append(model.state_dict()["1.W"].copy())
    np.testing.assert_array_equal(*weights)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(rotation=-5), r"rotation.*\[0, 180\].*rotation=-5"),
        (dict(scale=(0, 1.1)), r"scale\[0\].*\[0.001, 1000\]"),
        (dict(scale=(1.2, 1.1)), r"scale\[1\].*\[scale\[0\]=1.2"),
        (dict(scale=1.1), r"scale=\(low, high\)"),
        (dict(shift=float("nan")), "shift"),
    ],
)
def test_bad_ranges_name_the_argument(kwargs, message):
    """Bad ranges name the argument."""
    with pytest.raises(ValueError, match=message):
        random_affine(**kwargs)
