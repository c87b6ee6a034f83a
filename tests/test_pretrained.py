"""The trained models shipped in the package: small, documented, and as accurate as their metadata says."""

from pathlib import Path

import numpy as np
import pytest

import tinynet
from tinynet.models import PRETRAINED, pretrained

#: The largest file a shipped model may take (it travels inside every wheel).
MAX_BYTES = 1.5 * 1024 * 1024
BUILDERS = {"cnn": tinynet.models.cnn, "mlp": tinynet.models.basic_mlp}
#: Another CPU may sum in another order; a prediction that close to a tie may flip. At most this many of 10,000.
FLIPPED_IMAGES = 2


@pytest.mark.parametrize("name", sorted(PRETRAINED))
def test_a_shipped_model_is_small_and_says_where_it_came_from(name):
    """Each file is at most 1.5 MB, is the architecture it names, and carries its recipe, seed, revision, accuracy."""
    path = Path(tinynet.__file__).parent / "pretrained" / PRETRAINED[name]
    assert path.stat().st_size <= MAX_BYTES
    model = pretrained(name)
    expected = BUILDERS[name](rng=0)
    assert [repr(layer) for layer in model] == [repr(layer) for layer in expected]
    meta = model.metadata
    assert meta["made_by"].startswith(f"python examples/mnist_{name}.py")
    assert meta["recipe"]["model"] == f"tinynet.models.{BUILDERS[name].__name__}"
    assert meta["recipe"]["training_images"] == 60_000 and meta["test_images"] == 10_000
    assert isinstance(meta["seed"], int)
    assert len(meta["revision"].split()[0]) == 40 and "uncommitted" not in meta["revision"]
    assert 0.98 < meta["test_accuracy"] <= 1
    assert model.dtype == np.float32


def test_each_call_gives_a_model_of_its_own():
    """Training one loaded model leaves the next load untouched."""
    first = pretrained("mlp")
    first.layers[1].params["W"][...] = 0
    assert np.abs(pretrained("mlp").layers[1].params["W"]).sum() > 0


def test_an_unknown_name_says_which_there_are():
    """pretrained('resnet') names the models it knows."""
    with pytest.raises(tinynet.ArgumentError, match=r"\['cnn', 'mlp'\]"):
        pretrained("resnet")


@pytest.mark.mnist
@pytest.mark.parametrize("name", sorted(PRETRAINED))
def test_the_recorded_test_accuracy_is_the_one_measured(name, mnist_dir):
    """On the MNIST test set each shipped model scores what its metadata records (to two images)."""
    _, (x_test, y_test) = tinynet.datasets.load_mnist(mnist_dir, download=False)
    model = pretrained(name)
    accuracy = model.evaluate(x_test[:, None], y_test)["accuracy"]
    assert abs(accuracy - model.metadata["test_accuracy"]) * len(y_test) <= FLIPPED_IMAGES
