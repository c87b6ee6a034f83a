"""Your own digits: any image file, prepared the way MNIST digits were (re-exported by :mod:`tinynet.datasets`).

MNIST digits are light ink on black, cropped to the ink, scaled so the longer side is 20
pixels (aspect ratio kept), and placed in a 28x28 image so that their centre of mass is
at the centre. A model trained on them expects exactly that; a photo of a digit resized
to 28x28 as it is (dark on white, small, off-centre) is mostly misread. The centring by
centre of mass matters as much as the scaling: the convolutions and dense layers learned
where strokes usually are.
"""

import numpy as np

from ..errors import ArgumentError, DatasetError

__all__ = ["load_images", "prepare_digit"]

_INK = 0.1  # a pixel is ink when it is at least this bright after background removal


def load_images(paths):
    """Read image files and prepare each as an MNIST digit: float32 ``(N, 1, 28, 28)`` in [0, 1].

    Takes any format Pillow reads, any size, colour or grey, dark ink on light paper or the
    reverse, with or without transparency (transparent pixels count as paper). Needs Pillow
    (``pip install pillow``, or ``pip install -e ".[formats]"``).

    Raises
    ------
    DatasetError
        Naming the file: missing, not an image, empty, or without any ink.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> from PIL import Image, ImageDraw
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "one.png"
    >>> picture = Image.new("RGB", (120, 90), "white")
    >>> ImageDraw.Draw(picture).line([(30, 10), (34, 80)], fill="black", width=6)   # a dark "1", off-centre
    >>> picture.save(path)
    >>> x = load_images([path])
    >>> x.shape, x.dtype, round(float(x.max()), 2)
    ((1, 1, 28, 28), dtype('float32'), 1.0)
    """
    try:
        from PIL import Image, ImageOps, UnidentifiedImageError
    except ImportError as error:
        raise DatasetError("Reading images needs Pillow: pip install pillow") from error
    if isinstance(paths, (str, bytes)) or not hasattr(paths, "__iter__"):
        paths = [paths]
    prepared = []
    for path in paths:
        try:
            with Image.open(path) as image:
                image.load()
                # A phone stores a photo as the sensor saw it, with an EXIF tag saying how to
                # turn it upright: without it an upright "1" reads as a bar lying down.
                grey = _on_white(ImageOps.exif_transpose(image), Image)
        except FileNotFoundError:
            raise DatasetError(f"No image at {path}; check the path.") from None
        except Image.DecompressionBombError as error:
            raise DatasetError(f"{path} claims {error}; a digit needs far fewer pixels (refused: it could fill "
                               f"the memory). Scale it down first.") from None
        except (UnidentifiedImageError, OSError, ValueError) as error:
            raise DatasetError(f"{path} is not an image Pillow can read ({error}).") from error
        prepared.append(prepare_digit(grey, name=str(path)))
    return np.stack(prepared)[:, None] if prepared else np.zeros((0, 1, 28, 28), np.float32)


def _on_white(image, Image):
    """Grey levels in [0, 1], transparent parts composited on white paper."""
    if image.width == 0 or image.height == 0:
        raise ArgumentError("the image is empty (0 pixels)")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(paper, rgba)
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        # 16-bit (or 32-bit, float) grey: Pillow's conversion to 8 bits clips at 255 instead of
        # scaling, so ink at 10000 on paper at 60000 would both read as white.
        values = np.asarray(image, dtype=np.float64)
        full_scale = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
        if image.mode == "F" and values.max() <= 1:
            full_scale = 1.0
        return np.clip(values / full_scale, 0, 1).astype(np.float32)
    return np.asarray(image.convert("L"), dtype=np.float32) / 255


def prepare_digit(grey, name="the image"):
    """One grey image ``(H, W)`` in [0, 1] -> an MNIST-style digit ``(28, 28)``, float32.

    1. Light ink on black: the paper is what the border mostly is; if it is light, invert.
    2. Remove the paper's level (the border's median) and scale the ink to a maximum of 1.
    3. Crop to the ink; scale the longer side to 20 pixels, aspect ratio kept.
    4. Place in 28x28 with the ink's centre of mass at the centre.

    Examples
    --------
    >>> digit = np.ones((50, 40), np.float32); digit[10:40, 18:22] = 0.0   # a dark bar on white
    >>> out = prepare_digit(digit)
    >>> weights = out / out.sum()                               # the centre of mass, to within a pixel
    >>> centre = [float((np.arange(28) * weights.sum(axis=1 - axis)).sum()) for axis in (0, 1)]
    >>> out.shape, float(out.max()), all(abs(c - 13.5) <= 0.5 for c in centre)
    ((28, 28), 1.0, True)
    """
    from PIL import Image

    grey = np.asarray(grey, dtype=np.float32)
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    ink = 1 - grey if np.median(border) > 0.5 else grey.copy()
    ink = np.clip(ink - np.median(np.concatenate([ink[0], ink[-1], ink[:, 0], ink[:, -1]])), 0, None)
    if ink.max() < 0.05:
        raise DatasetError(f"{name} has no ink: it is blank (or nearly), so there is no digit to read.")
    ink /= ink.max()
    ink[ink < _INK] = 0
    rows, columns = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    ink = ink[rows[0] : rows[-1] + 1, columns[0] : columns[-1] + 1]
    height, width = ink.shape
    scale = 20 / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = np.asarray(Image.fromarray(ink).resize(size, Image.Resampling.LANCZOS), dtype=np.float32)
    small = np.clip(small, 0, 1)
    canvas = np.zeros((28, 28), np.float32)
    top, left = (28 - small.shape[0]) // 2, (28 - small.shape[1]) // 2
    canvas[top : top + small.shape[0], left : left + small.shape[1]] = small
    # Move the centre of mass to the centre, (13.5, 13.5), by whole pixels, as MNIST did.
    total = canvas.sum()
    centre = np.array([(np.arange(28) * canvas.sum(axis=1)).sum(), (np.arange(28) * canvas.sum(axis=0)).sum()])
    shift = np.round(13.5 - centre / total).astype(int)
    moved = np.zeros_like(canvas)
    dy, dx = shift
    moved[max(0, dy) : 28 + min(0, dy), max(0, dx) : 28 + min(0, dx)] = \
        canvas[max(0, -dy) : 28 + min(0, -dy), max(0, -dx) : 28 + min(0, -dx)]
    return moved
