"""A page where you draw a digit and watch it go forward through the model and backprop come back.

    python -m tinynet.app [--port N] [--model PATH] [--host ADDRESS]

serves the page on http://127.0.0.1:8000/ with the shipped CNN (``tinynet.models.pretrained``)
or the model file you name. It shows the 28x28 image as the model sees it (prepared by the
code of ``tinynet.datasets.load_images``), the ten probabilities, every layer's output, and
for the label you pick ("teach it"): the loss, dL/d(input) as a saliency map, every layer's
output gradient and every weight gradient's norm; "take a step" applies one SGD step to a
copy of the model. Everything is computed by the layers' own ``forward`` and ``backward``
(:mod:`tinynet.app.explain`); the page works offline (no file comes from elsewhere).
"""

from .explain import explain
from .server import make_server

__all__ = ["explain", "make_server", "main"]


def main(argv=None):
    """The command line; see ``python -m tinynet.app --help``."""
    from .__main__ import main as run

    return run(argv)
