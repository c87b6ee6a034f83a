"""Your own digits: load_images prepares any picture the MNIST way, and that is what makes a model read it."""

import numpy as np
import pytest

import tinynet
from tinynet.datasets import load_images

Image = pytest.importorskip("PIL.Image", reason="Pillow reads images: pip install pillow")


def _render(digit, rng, size=(150, 120)):
    """A 28x28 MNIST digit drawn large (x3 to x4), dark ink on light paper, off-centre, on a bigger page."""
    scale = rng.uniform(3, 4)
    big = Image.fromarray(255 - digit).resize((round(28 * scale),) * 2, Image.Resampling.BILINEAR)
    page = Image.new("L", size, 255)
    left = rng.integers(0, size[0] - big.width + 1)
    top = rng.integers(0, size[1] - big.height + 1)
    page.paste(big, (int(left), int(top)))
    return page


@pytest.fixture(scope="module")
def trained(mnist_dir_module):
    (x_train, y_train), (x_test, y_test) = tinynet.datasets.load_mnist(mnist_dir_module, download=False)
    model = tinynet.models.basic_mlp(rng=0)
    model.fit(x_train[:, None], y_train, epochs=3, seed=0, verbose=0, optimizer=tinynet.optim.Adam(2e-3))
    return model, x_test[:300], y_test[:300]


@pytest.fixture(scope="module")
def mnist_dir_module():
    import os
    from pathlib import Path

    root = os.environ.get("TINYNET_DATA")
    if not root or not (Path(root) / "mnist" / "train-images-idx3-ubyte.gz").exists():
        pytest.skip("MNIST files not found: set TINYNET_DATA to a folder containing mnist/ to run this test")
    return Path(root)


@pytest.mark.parametrize("suffix", ["png", "jpg"])
def test_preparation_recovers_the_models_accuracy_on_rendered_digits(tmp_path, trained, suffix):
    """Large, dark-on-light, off-centre digits: prepared, accuracy as on MNIST itself; resized naively, poor."""
    model, digits, labels = trained
    rng = np.random.default_rng(0)
    paths = []
    for number, digit in enumerate(digits):
        path = tmp_path / f"{number}.{suffix}"
        _render(digit, rng).convert("RGB").save(path)
        paths.append(path)
    on_mnist = model.evaluate(digits[:, None], labels)["accuracy"]
    prepared = float((model.predict(load_images(paths)).argmax(axis=1) == labels).mean())
    naive = np.stack([np.asarray(Image.open(p).convert("L").resize((28, 28)), np.float32) / 255 for p in paths])
    naive_accuracy = float((model.predict(naive[:, None]).argmax(axis=1) == labels).mean())
    print(f"{suffix}: on MNIST {on_mnist:.1%}, rendered and prepared {prepared:.1%}, "
          f"resized naively {naive_accuracy:.1%}")
    assert prepared > on_mnist - 0.05
    assert naive_accuracy < 0.5


def test_transparency_polarity_and_colour_are_handled(tmp_path):
    """Light ink on dark, dark ink on a transparent layer, colour: all come out light-on-black, centred."""
    base = np.zeros((60, 40), np.uint8)
    base[10:50, 18:24] = 255  # a bar
    light_on_dark = Image.fromarray(base)
    dark_on_transparent = Image.new("RGBA", (40, 60), (0, 0, 0, 0))
    dark_on_transparent.putalpha(Image.fromarray(base))  # ink where the bar is, transparent elsewhere
    coloured = Image.fromarray(np.stack([255 - base, 255 - base // 2, 255 - base], axis=-1))  # green-ish on white
    paths = []
    for name, image in [("a.png", light_on_dark), ("b.png", dark_on_transparent), ("c.jpg", coloured)]:
        image.save(tmp_path / name)
        paths.append(tmp_path / name)
    out = load_images(paths)
    assert out.shape == (3, 1, 28, 28) and out.dtype == np.float32
    for digit in out[:, 0]:
        assert digit.max() == pytest.approx(1.0, abs=0.02) and digit[0].max() == 0  # light ink, black border
        rows = np.flatnonzero(digit.max(axis=1) > 0.5)
        assert rows[-1] - rows[0] + 1 in (19, 20, 21)  # the longer side scaled to 20 pixels


@pytest.mark.parametrize("content, message", [(b"not an image", "not an image Pillow can read"), (None, "no ink")])
def test_bad_images_name_the_file(tmp_path, content, message):
    """Bad images name the file."""
    path = tmp_path / "mine.png"
    if content is None:
        Image.new("L", (30, 30), 255).save(path)  # a blank page
    else:
        path.write_bytes(content)
    with pytest.raises(tinynet.DatasetError, match=message) as caught:
        load_images([path])
    assert "mine.png" in str(caught.value)
    with pytest.raises(tinynet.DatasetError, match="No image at"):
        load_images([tmp_path / "missing.png"])
