"""Shared test setup: a Hypothesis profile that tolerates numba's first-call compilation."""

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "tinynet",
    deadline=None,  # numba compiles on the first call of each signature
    max_examples=int(os.environ.get("TINYNET_HYPOTHESIS_EXAMPLES", "30")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("tinynet")


@pytest.fixture
def mnist_dir():
    """The folder holding ``mnist/`` (from ``TINYNET_DATA``), or a skip that says how to provide it."""
    root = os.environ.get("TINYNET_DATA")
    if not root or not (Path(root) / "mnist" / "train-images-idx3-ubyte.gz").exists():
        pytest.skip("MNIST files not found: set TINYNET_DATA to a folder containing mnist/ to run this test")
    return Path(root)
