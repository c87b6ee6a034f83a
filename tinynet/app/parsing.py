"""What the page's server accepts: every request is checked here, before any model work.

A request the page cannot answer raises :class:`RequestError`, a 4xx status with the message
the page shows. The checks are the ones a server on 127.0.0.1 needs against the open web:
any web site the user visits can make their browser send requests to it, so a request must
come from the page itself (``Origin``, ``Host``) as JSON (``Content-Type``), and its body is
bounded in size and in nesting before it is parsed.
"""

import json
import math
from http import HTTPStatus

import numpy as np

from .._checks import int_in, is_real
from ..data._images import prepare_digit
from ..errors import DatasetError

__all__ = ["RequestError", "MAX_BODY_BYTES", "MIN_SIDE", "MAX_SIDE", "MAX_LR", "body_length", "check_content_type",
           "check_origin", "read_json", "parse_drawing", "learning_rate", "unit_request"]

#: The largest request body read (a 512x512 canvas as JSON is about 0.9 MB).
MAX_BODY_BYTES = 1 << 20
#: Canvas sides the API accepts, in pixels.
MIN_SIDE, MAX_SIDE = 8, 512
#: The learning rates "take a step" accepts.
MAX_LR = 10.0
#: The host names under which the page answers its API besides the address it is bound to.
#: Checking ``Host`` stops DNS rebinding (a foreign name pointed at 127.0.0.1 looks same-origin).
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


class RequestError(Exception):
    """A request the page's API cannot answer: the status, the message the page shows, extra headers and fields."""

    def __init__(self, status, message, headers=None, **fields):
        super().__init__(message)
        self.status = status
        self.headers = headers or {}
        self.fields = fields

    def document(self):
        """The JSON answer: ``{"error": message, ...}``."""
        return {"error": str(self), **self.fields}


def body_length(header):
    """The body's size from a ``Content-Length`` header: a whole number of ASCII digits up to the limit."""
    if header is None:
        raise RequestError(HTTPStatus.LENGTH_REQUIRED, "Send the body with a Content-Length header.")
    text = header.strip()
    # str.isdigit() accepts '²' and other Unicode digits that int() refuses: only ASCII 0-9 count.
    if not text or not text.isascii() or not text.isdigit():
        raise RequestError(HTTPStatus.BAD_REQUEST,
                           f"Content-Length must be a whole number of bytes (ASCII digits); received {header!r}.")
    if len(text) > 12 or int(text) > MAX_BODY_BYTES:
        raise RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                           f"The request is {int(text):,} bytes; the page accepts at most {MAX_BODY_BYTES:,}.")
    return int(text)


def check_content_type(header):
    """A POST's body must be declared JSON (a form post from another site cannot declare it without CORS)."""
    kind = (header or "").split(";", 1)[0].strip().lower()
    if kind != "application/json":
        raise RequestError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                           f"The API reads JSON: send Content-Type: application/json; received {header!r}.")


def check_origin(origin, host, bound_host):
    """Refuse a request another web site made the browser send (its ``Origin``) or one through a foreign host name.

    ``origin`` may be absent (a command-line client) or must be the page's own
    ``http://<host>``; ``host`` must name this machine (or the address the server is bound to).
    """
    names = {*LOOPBACK_NAMES, bound_host, f"[{bound_host}]"}
    host = host or ""
    host_name = host[:host.find("]") + 1] if host.startswith("[") else host.rsplit(":", 1)[0]
    if bound_host not in ("", "0.0.0.0", "::") and host_name not in names:
        raise RequestError(HTTPStatus.FORBIDDEN,
                           f"The page answers at 127.0.0.1 or localhost; this request names the host {host!r}.")
    if origin is not None and origin != f"http://{host}":
        raise RequestError(HTTPStatus.FORBIDDEN,
                           f"The page's API answers the page itself only; this request comes from {origin!r}.")


def read_json(body):
    """The body as a JSON object, or a 400 for text that is not JSON, too deeply nested or not an object."""
    try:
        request = json.loads(body)
    except RecursionError:  # '[[[[...' deeper than Python's stack: refused, not a dropped connection
        raise RequestError(HTTPStatus.BAD_REQUEST, "The request is nested too deeply to be a drawing.") from None
    except (UnicodeDecodeError, ValueError):
        raise RequestError(HTTPStatus.BAD_REQUEST, "The request is not JSON: send {\"width\", \"height\", "
                                                   "\"pixels\"}.") from None
    if not isinstance(request, dict):
        raise RequestError(HTTPStatus.BAD_REQUEST, "The request must be a JSON object with width, height and pixels.")
    return request


def parse_drawing(body):
    """The request's canvas as a prepared 28x28 digit, its label (None when not given) and the whole request.

    ``body`` is the raw body (bytes) or the request already read by :func:`read_json`.
    """
    request = body if isinstance(body, dict) else read_json(body)
    width, height, pixels = request.get("width"), request.get("height"), request.get("pixels")
    for name, side in (("width", width), ("height", height)):
        if not int_in(side, MIN_SIDE, MAX_SIDE + 1):
            raise RequestError(HTTPStatus.BAD_REQUEST,
                               f"{name} must be a whole number from {MIN_SIDE} to {MAX_SIDE}; received {side!r}.")
    if not isinstance(pixels, list) or len(pixels) != width * height:
        count = len(pixels) if isinstance(pixels, list) else type(pixels).__name__
        raise RequestError(HTTPStatus.BAD_REQUEST,
                           f"pixels must be a list of width x height = {width * height:,} ink levels; "
                           f"received {count}.")
    # Only JSON numbers: NumPy would read "12" as 12.0 and True as 1.0.
    strange = next((value for value in pixels if type(value) not in (int, float)), None)
    levels = np.array(pixels, dtype=np.float64) if strange is None else None
    if levels is None or not np.isfinite(levels).all() or levels.min() < 0 or levels.max() > 255:
        found = repr(strange) if strange is not None else "NaN, infinite or out of range"
        raise RequestError(HTTPStatus.BAD_REQUEST, f"pixels must be numbers from 0 (paper) to 255 (ink); "
                                                   f"found one that is not: {found[:40]}.")
    ink = (levels / 255).astype(np.float32).reshape(height, width)
    try:
        image = prepare_digit(ink, name="The canvas")  # as load_images prepares a photographed digit
    except DatasetError as error:
        raise RequestError(HTTPStatus.UNPROCESSABLE_ENTITY, f"{error} Draw a digit first.") from None
    label = request.get("label")
    if label is not None and not int_in(label, 0, 10):
        raise RequestError(HTTPStatus.BAD_REQUEST, f"label must be a digit 0-9 (or left out); received {label!r}.")
    return image, label, request


def learning_rate(request):
    """The step's learning rate: a JSON number in ``(0, MAX_LR]`` (0.01 when not given)."""
    lr = request.get("lr", 0.01)
    if not is_real(lr) or not math.isfinite(lr) or not 0 < lr <= MAX_LR:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"lr must be a number in (0, {MAX_LR}]; received {lr!r}.")
    return float(lr)


def unit_request(request, layer_count):
    """``/api/unit``'s layer position, index and direction, checked against the model's layer count.

    The index is checked against the layer's shape by :func:`tinynet.app.units.explain_unit`.
    """
    layer, index, direction = request.get("layer"), request.get("index"), request.get("direction", "forward")
    if direction not in ("forward", "backward"):
        raise RequestError(HTTPStatus.BAD_REQUEST, f"direction must be \"forward\" or \"backward\"; "
                                                   f"received {direction!r}.")
    # Backward at position layer_count is the loss's own gradient dL/d(scores).
    last = layer_count if direction == "backward" else layer_count - 1
    if not int_in(layer, 0, last + 1):
        raise RequestError(HTTPStatus.BAD_REQUEST, f"layer must be a layer's position from 0 to {last}; "
                                                   f"received {layer!r}.")
    if not isinstance(index, list) or not 1 <= len(index) <= 3 or not all(int_in(i, 0, 1 << 31) for i in index):
        raise RequestError(HTTPStatus.BAD_REQUEST, f"index must be [c, h, w] or [f], whole numbers from 0; "
                                                   f"received {str(index)[:60]}.")
    return layer, tuple(index), direction
