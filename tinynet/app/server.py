"""The page's HTTP server: the standard library's threading server, a JSON API and the static files.

Why the standard library: the page is one user on their own machine, the work per request is
NumPy's (a few milliseconds), and ``http.server.ThreadingHTTPServer`` needs no dependency to
install, so ``pip install -e .`` is enough. One lock serialises the model: a layer keeps what
its forward saved for its backward, so two requests must not interleave inside one model.

API (JSON in, JSON out; every error is a 4xx with ``{"error": message}``)::

    POST /api/explain  {"width": W, "height": H, "pixels": [W*H ink levels 0-255, row by row],
                        "label": optional 0-9}
         -> the 28x28 image, the ten probabilities, every layer's output and output gradient,
            the saliency dL/dx, each weight gradient's norm (see explain.py)
    POST /api/step     the same body and "lr": one SGD step on the page's copy of the model,
                       then the probabilities before and after
    POST /api/reset    the copy back to the loaded weights
    GET  /api/model    the model's layers and metadata
"""

import copy
import json
import math
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources

import numpy as np

from .._checks import int_in, is_real
from ..data._images import prepare_digit
from ..errors import DatasetError
from .explain import encode_maps, explain, take_step

__all__ = ["PageState", "make_server", "MAX_BODY_BYTES", "STATIC_FILES"]

#: The largest request body read (a 512x512 canvas as JSON is about 0.9 MB).
MAX_BODY_BYTES = 1 << 20
#: Canvas sides the API accepts, in pixels.
MIN_SIDE, MAX_SIDE = 8, 512
#: The learning rates "take a step" accepts.
MAX_LR = 10.0
#: The files the page is made of: URL path -> (file in static/, content type). Nothing else is served.
STATIC_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/app.css": ("app.css", "text/css; charset=utf-8"),
}


class RequestError(Exception):
    """A request the page's API cannot answer: the status and the message the page shows."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class PageState:
    """The model the page loaded, the copy "take a step" changes, and the lock around both."""

    def __init__(self, model):
        self.loaded = model
        self.taught = copy.deepcopy(model)
        self.steps = 0
        self.lock = threading.Lock()

    def describe(self):
        """The model's layers and provenance, for the page's header."""
        shapes = self.loaded.output_shapes((1, 28, 28))
        return {"layers": [{"name": repr(layer), "shape": list(shape)} for layer, shape in zip(self.loaded.layers,
                                                                                             shapes, strict=True)],
                "metadata": self.loaded.metadata, "parameters": self.loaded.count_params()}

    def explain(self, image, label):
        with self.lock:
            return _explanation_json(explain(self.taught, image, label), self.taught, self.steps)

    def step(self, image, label, lr):
        with self.lock:
            before = explain(self.taught, image, label)
            take_step(self.taught, lr)
            self.steps += 1
            after = _explanation_json(explain(self.taught, image, label), self.taught, self.steps)
        return {**after, "before": _floats(before.probabilities), "before_loss": before.loss, "lr": lr}

    def reset(self):
        with self.lock:
            self.taught, self.steps = copy.deepcopy(self.loaded), 0
        return {"steps": 0}


def _floats(values):
    return [float(v) for v in np.ravel(values)]


def _explanation_json(explanation, model, steps):
    layers = []
    for position, (layer, output, grad) in enumerate(zip(model.layers, explanation.outputs,
                                                         explanation.output_grads, strict=True)):
        layers.append({"position": position, "name": repr(layer), "shape": list(output.shape[1:]),
                       "output": encode_maps(output), "grad": encode_maps(grad, centred=True)})
    return {
        "image": [_floats(row) for row in explanation.image],
        "probabilities": _floats(explanation.probabilities),
        "prediction": int(np.argmax(explanation.probabilities)),
        "label": explanation.label,
        "loss": explanation.loss,
        "layers": layers,
        "saliency": encode_maps(explanation.saliency[None, None], centred=True),
        "weight_grads": [{"name": name, "norm": norm} for name, norm in explanation.weight_grad_norms.items()],
        "steps": steps,
    }


def parse_drawing(body):
    """The request's canvas as a prepared 28x28 digit, and its label (None when not given)."""
    try:
        request = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise RequestError(HTTPStatus.BAD_REQUEST, "The request is not JSON: send {\"width\", \"height\", "
                                                   "\"pixels\"}.") from None
    if not isinstance(request, dict):
        raise RequestError(HTTPStatus.BAD_REQUEST, "The request must be a JSON object with width, height and pixels.")
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
    try:
        levels = np.array(pixels, dtype=np.float64)
    except (TypeError, ValueError):
        levels = None
    if levels is None or levels.ndim != 1 or not np.isfinite(levels).all() or levels.min() < 0 or levels.max() > 255:
        raise RequestError(HTTPStatus.BAD_REQUEST, "pixels must be numbers from 0 (paper) to 255 (ink); "
                                                   "found one that is not (NaN, infinite, negative, text or a list).")
    ink = (levels / 255).astype(np.float32).reshape(height, width)
    try:
        image = prepare_digit(ink, name="The canvas")  # as load_images prepares a photographed digit
    except DatasetError as error:
        raise RequestError(HTTPStatus.UNPROCESSABLE_ENTITY, f"{error} Draw a digit first.") from None
    label = request.get("label")
    if label is not None and not int_in(label, 0, 10):
        raise RequestError(HTTPStatus.BAD_REQUEST, f"label must be a digit 0-9 (or left out); received {label!r}.")
    return image, label, request


def _learning_rate(request):
    lr = request.get("lr", 0.01)
    if not is_real(lr) or not math.isfinite(lr) or not 0 < lr <= MAX_LR:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"lr must be a number in (0, {MAX_LR}]; received {lr!r}.")
    return float(lr)


class _Handler(BaseHTTPRequestHandler):
    server_version = "tinynet-page"
    protocol_version = "HTTP/1.1"
    # Headers and body leave in two writes: with Nagle's algorithm the body would wait for the
    # client's delayed acknowledgement of the headers, 40 ms on Linux, longer than the answer.
    disable_nagle_algorithm = True

    # -- answers ----------------------------------------------------------------------------
    def _send(self, status, body, content_type):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(body)

    def _send_json(self, status, document):
        self._send(status, json.dumps(document, allow_nan=False).encode(), "application/json")

    def _send_error(self, error):
        self._send_json(error.status, {"error": str(error)})

    def log_message(self, format, *args):  # noqa: A002 (the standard library's name)
        if self.server.verbose:
            super().log_message(format, *args)

    # -- requests ---------------------------------------------------------------------------
    def do_GET(self):  # noqa: N802 (the standard library's name)
        try:
            path = self._path()
            if path == "/api/model":
                return self._send_json(HTTPStatus.OK, self.server.state.describe())
            if path.startswith("/api/"):
                raise RequestError(HTTPStatus.METHOD_NOT_ALLOWED, f"{path} takes POST, or does not exist.")
            if path not in STATIC_FILES:
                raise RequestError(HTTPStatus.NOT_FOUND, f"No page at {path}; the page is at /.")
            name, content_type = STATIC_FILES[path]
            self._send(HTTPStatus.OK, (resources.files(__package__) / "static" / name).read_bytes(), content_type)
        except RequestError as error:
            self._send_error(error)

    def do_POST(self):  # noqa: N802
        try:
            path = self._path()
            body = self._body()
            state = self.server.state
            if path == "/api/explain":
                image, label, _ = parse_drawing(body)
                return self._send_json(HTTPStatus.OK, state.explain(image, label))
            if path == "/api/step":
                image, label, request = parse_drawing(body)
                if label is None:
                    raise RequestError(HTTPStatus.BAD_REQUEST, "Taking a step needs the right label: pick a digit.")
                return self._send_json(HTTPStatus.OK, state.step(image, label, _learning_rate(request)))
            if path == "/api/reset":
                return self._send_json(HTTPStatus.OK, state.reset())
            raise RequestError(HTTPStatus.NOT_FOUND, f"No API at {path}; there are /api/explain, /api/step and "
                                                     f"/api/reset.")
        except RequestError as error:
            self._send_error(error)

    def _path(self):
        path = self.path.split("?", 1)[0]
        if ".." in path.split("/") or "%2e%2e" in path.lower() or "\\" in path:
            raise RequestError(HTTPStatus.BAD_REQUEST, "A path may not contain '..' or '\\'.")
        return path

    def _body(self):
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self.close_connection = True
            raise RequestError(HTTPStatus.LENGTH_REQUIRED, "Send the body with a Content-Length header.")
        if int(length) > MAX_BODY_BYTES:
            self.close_connection = True  # the body stays unread: this connection cannot be reused
            raise RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                               f"The request is {int(length):,} bytes; the page accepts at most {MAX_BODY_BYTES:,}.")
        return self.rfile.read(int(length))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # 32 clients connecting at once must all be queued, not refused (the default backlog is 5).
    request_queue_size = 128


def make_server(model, host="127.0.0.1", port=8000, verbose=False):
    """A server for the page with ``model``, bound and ready to ``serve_forever()``."""
    server = _Server((host, port), _Handler)
    server.state = PageState(model)
    server.verbose = verbose
    return server
