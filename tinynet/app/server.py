"""The page's HTTP server: the standard library's threading server, a JSON API and the static files.

Why the standard library: the page runs on the user's own machine, the work per request is
NumPy's (a few milliseconds), and ``http.server.ThreadingHTTPServer`` needs no dependency to
install. What it adds for a server reachable by any web site the user visits (requests are
checked in :mod:`tinynet.app.parsing`; each visitor's model is in :mod:`tinynet.app.sessions`):

- every answer is JSON, errors ``{"error": message}`` with a 4xx status, also for a method
  the server does not take (405 with ``Allow``) or a request line it cannot read;
- a request must arrive within ``timeout`` seconds of its first byte (a client that sends
  one byte a minute is dropped), and at most ``max_connections`` are served at once;
- requests compute one at a time, each on one core (BLAS and numba on one thread), once their
  body is read: an answer is hundreds of small NumPy calls, and answers computed side by side
  spend their time handing Python's lock to each other; reading, waiting and sending overlap.

API (JSON in, JSON out)::

    GET  /api/model    the model's layers and metadata
    POST /api/explain  {"width": W, "height": H, "pixels": [W*H ink levels 0-255, row by row],
                        "label": optional 0-9}
         -> the 28x28 image, the ten probabilities, the loss, every layer's output and output
            gradient with their exact ranges, the saliency dL/dx, each weight gradient's norm
    POST /api/unit     the same body, "layer", "index" and "direction": how one number was made
    POST /api/step     the same body, "label" and "lr": one SGD step on this visitor's copy
    POST /api/reset    this visitor back to the loaded weights
"""

import json
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources

import numpy as np

from .._checks import is_int, is_real
from ..errors import ArgumentError, ArgumentTypeError
from .explain import ModelDivergedError, encode_maps, explain, page_model, take_step
from .parsing import (
    MAX_BODY_BYTES,
    RequestError,
    body_length,
    check_content_type,
    check_origin,
    learning_rate,
    parse_drawing,
    read_json,
    unit_request,
)
from .sessions import MAX_VISITORS, Sessions
from .units import explain_unit

__all__ = ["make_server", "MAX_BODY_BYTES", "STATIC_FILES", "TIMEOUT", "MAX_CONNECTIONS"]

#: Seconds a request may take to arrive, from its first byte (or from the previous answer on a kept connection).
TIMEOUT = 20.0
#: Connections served at once; more are answered 503 at once (a browser opens about six).
MAX_CONNECTIONS = 64
#: The files the page is made of: URL path -> (file in static/, content type). Nothing else is served.
STATIC_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/app.css": ("app.css", "text/css; charset=utf-8"),
}
_GET_ONLY = "GET, HEAD"


class PageState:
    """What the page computes for a visitor: the model (through :class:`Sessions`) and the JSON it answers."""

    def __init__(self, model, max_visitors=MAX_VISITORS):
        self.sessions = Sessions(page_model(model), max_visitors)

    def describe(self):
        """The model's layers and provenance, for the page's header."""
        loaded = self.sessions.loaded
        shapes = loaded.output_shapes((1, 28, 28))
        return {"layers": [{"name": repr(layer), "shape": list(shape)}
                           for layer, shape in zip(loaded.layers, shapes, strict=True)],
                "metadata": loaded.metadata, "parameters": loaded.count_params()}

    def explain(self, image, label, visitor=None):
        with self.sessions.model(visitor) as own:
            return _explanation_json(explain(own.model, image, label), own.model, own.steps)

    def unit(self, image, label, position, index, direction, visitor=None):
        """How one number was made (:func:`tinynet.app.units.explain_unit`) on this visitor's model."""
        with self.sessions.model(visitor) as own:
            try:
                return explain_unit(own.model, image, label, position, index, direction)
            except ModelDivergedError:
                raise
            except ArgumentError as error:
                raise RequestError(HTTPStatus.BAD_REQUEST, str(error)) from None

    def step(self, image, label, lr, visitor=None):
        with self.sessions.model(visitor, create=True) as own:
            before = explain(own.model, image, label)
            take_step(own.model, lr)
            own.steps += 1
            after = _explanation_json(explain(own.model, image, label), own.model, own.steps)
        return {**after, "before": _floats(before.probabilities), "before_loss": before.loss, "lr": lr}

    def reset(self, visitor=None):
        self.sessions.forget(visitor)
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


class _Handler(BaseHTTPRequestHandler):
    server_version = "tinynet-page"
    protocol_version = "HTTP/1.1"
    # Headers and body leave in two writes: with Nagle's algorithm the body would wait for the
    # client's delayed acknowledgement of the headers, 40 ms on Linux, longer than the answer.
    disable_nagle_algorithm = True

    def setup(self):
        self.timeout = self.server.request_timeout  # every read and write on the socket, at most
        super().setup()
        _one_kernel_thread()

    def handle_one_request(self):
        # The whole request, not each read, must arrive within the timeout: the watchdog closes
        # the socket of a request that has not been answered by then.
        self.server.watchdog.watch(self.connection)
        try:
            super().handle_one_request()
        finally:
            self.server.watchdog.forget(self.connection)

    def finish(self):
        super().finish()
        if self.close_connection and self._unread_body:
            _drain(self.connection)

    _unread_body = False

    # -- answers ----------------------------------------------------------------------------
    def _send(self, status, body, content_type, headers=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, status, document, headers=None):
        self._send(status, _json(document), "application/json", headers)

    def send_error(self, code, message=None, explain=None):
        """The standard library's errors (a request line it cannot read, an unknown method) as JSON."""
        if code == HTTPStatus.NOT_IMPLEMENTED:  # a method no handler takes
            path = self._path_or_root()
            code, message = HTTPStatus.METHOD_NOT_ALLOWED, (f"The page does not take {self.command}: {path} takes "
                                                            f"{self._allowed(path)}.")
        self.close_connection = self._unread_body = True
        # A request line too garbled to name its HTTP version would get a bare HTTP/0.9 body: answer in 1.1.
        self.request_version = self.protocol_version
        headers = {"Connection": "close"}
        if code == HTTPStatus.METHOD_NOT_ALLOWED:
            headers["Allow"] = self._allowed(getattr(self, "path", "/"))
        try:
            self._send_json(code, {"error": message or HTTPStatus(code).phrase}, headers)
        except OSError:
            pass  # the client is gone

    def log_message(self, format, *args):  # noqa: A002 (the standard library's name)
        if self.server.verbose:
            super().log_message(format, *args)

    # -- requests ---------------------------------------------------------------------------
    def do_GET(self):  # noqa: N802 (the standard library's name)
        self._answer(self._get)

    do_HEAD = do_GET  # noqa: N815 (the same headers, no body: _send leaves it out)

    def do_POST(self):  # noqa: N802
        self._answer(self._post)

    def _not_allowed(self):
        self.send_error(HTTPStatus.METHOD_NOT_ALLOWED, f"{self._path_or_root()} takes "
                                                       f"{self._allowed(self._path_or_root())}, not {self.command}.")

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _not_allowed  # noqa: N815

    def _answer(self, answer):
        """Run ``answer`` and send what it returns; every failure becomes a JSON error and the server goes on."""
        visitor, new = Sessions.visitor(self.headers.get("Cookie"))
        cookie = {"Set-Cookie": Sessions.cookie(visitor)} if new else {}
        try:
            status, document, content_type = answer(visitor)
        except _ClientGone:
            self.close_connection = True
            return
        except RequestError as error:
            self._send_json(error.status, error.document(), {**error.headers, **cookie})
        except ModelDivergedError as error:
            self._send_json(HTTPStatus.CONFLICT, {"error": str(error), "diverged": True}, cookie)
        except Exception as error:  # a bug must not cost the visitor the connection or the server
            self.close_connection = True
            self._send_json(HTTPStatus.INTERNAL_SERVER_ERROR,
                            {"error": f"The server failed on this request ({type(error).__name__}: {error})."},
                            {"Connection": "close"})
            if self.server.verbose:
                raise
        else:
            self._send(status, document, content_type, cookie)

    def _get(self, visitor):
        path = self._path()
        if path.startswith("/api/"):
            self._check_origin()
            if path == "/api/model":
                return HTTPStatus.OK, _json(self.server.state.describe()), "application/json"
            raise RequestError(HTTPStatus.METHOD_NOT_ALLOWED, f"{path} takes {self._allowed(path)}.",
                               {"Allow": self._allowed(path)})
        if path not in STATIC_FILES:
            raise RequestError(HTTPStatus.NOT_FOUND, f"No page at {path}; the page is at /.")
        name, content_type = STATIC_FILES[path]
        return HTTPStatus.OK, (resources.files(__package__) / "static" / name).read_bytes(), content_type

    def _post(self, visitor):
        body = self._body()  # read first: a connection whose body stays unread cannot take the next request
        path = self._path()
        self._check_origin()
        if path not in ("/api/explain", "/api/unit", "/api/step", "/api/reset"):
            if path == "/api/model" or not path.startswith("/api/"):
                raise RequestError(HTTPStatus.METHOD_NOT_ALLOWED, f"{path} takes {self._allowed(path)}.",
                                   {"Allow": self._allowed(path)})
            raise RequestError(HTTPStatus.NOT_FOUND, f"No API at {path}; there are /api/model, /api/explain, "
                                                     f"/api/unit, /api/step and /api/reset.")
        check_content_type(self.headers.get("Content-Type"))
        with self.server.computing:  # the body is read: a slow client never holds the turn
            status, document, content_type = self._compute(read_json(body), path, visitor)
            # Encoded in the turn too: a thread encoding beside one computing would take Python's lock from it.
            return status, _json(document), content_type

    def _compute(self, request, path, visitor):
        state = self.server.state
        if path == "/api/reset":
            return HTTPStatus.OK, state.reset(visitor), "application/json"
        image, label, _ = parse_drawing(request)
        if path == "/api/explain":
            return HTTPStatus.OK, state.explain(image, label, visitor), "application/json"
        if path == "/api/unit":
            position, index, direction = unit_request(request, len(state.sessions.loaded.layers))
            return HTTPStatus.OK, state.unit(image, label, position, index, direction, visitor), "application/json"
        if label is None:
            raise RequestError(HTTPStatus.BAD_REQUEST, "Taking a step needs the right label: pick a digit.")
        return HTTPStatus.OK, state.step(image, label, learning_rate(request), visitor), "application/json"

    @staticmethod
    def _allowed(path):
        path = path.split("?", 1)[0]
        return "POST" if path.startswith("/api/") and path != "/api/model" else _GET_ONLY

    def _path_or_root(self):
        return getattr(self, "path", "/").split("?", 1)[0]

    def _path(self):
        path = self._path_or_root()
        if ".." in path.split("/") or "%2e%2e" in path.lower() or "\\" in path:
            raise RequestError(HTTPStatus.BAD_REQUEST, "A path may not contain '..' or '\\'.")
        return path

    def _check_origin(self):
        check_origin(self.headers.get("Origin"), self.headers.get("Host"), self.server.server_address[0])

    def _body(self):
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = self._unread_body = True
            raise RequestError(HTTPStatus.LENGTH_REQUIRED, "Send the body with a Content-Length header, "
                                                           "not in chunks.")
        try:
            length = body_length(self.headers.get("Content-Length"))
        except RequestError:
            self.close_connection = self._unread_body = True  # this connection cannot be reused
            raise
        body = self.rfile.read(length)
        if len(body) < length:  # the client stopped sending (or the watchdog closed its socket)
            raise _ClientGone
        return body


def _json(document):
    """An answer's body: ``document`` as JSON bytes (NaN and inf refused: the page could not read them)."""
    return json.dumps(document, allow_nan=False).encode()


class _ClientGone(Exception):
    """The client closed the connection before its request arrived: there is no one to answer."""


def _drain(connection):
    """Read what the client still sends before closing: closing with unread bytes resets the connection,
    and the client may lose the answer it was sent."""
    try:
        connection.shutdown(socket.SHUT_WR)
        connection.settimeout(1.0)
        for _ in range(MAX_BODY_BYTES // 65536 + 1):
            if not connection.recv(65536):
                break
    except OSError:
        pass


def _one_kernel_thread():
    """This request's numba kernels run on its own thread only (numba's thread count is per thread)."""
    try:
        import numba
    except ImportError:
        return
    numba.set_num_threads(1)


class _Watchdog:
    """Closes the socket of every request that has not arrived and been answered within the timeout."""

    def __init__(self, timeout):
        self.timeout = timeout
        self._deadlines = {}  # socket -> time by which its request must be answered
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        threading.Thread(target=self._run, name="tinynet-page-watchdog", daemon=True).start()

    def watch(self, connection):
        with self._lock:
            self._deadlines[connection] = time.monotonic() + self.timeout

    def forget(self, connection):
        with self._lock:
            self._deadlines.pop(connection, None)

    def stop(self):
        self._stopped.set()

    def _run(self):
        while not self._stopped.wait(min(1.0, self.timeout / 4)):
            now = time.monotonic()
            with self._lock:
                late = [connection for connection, deadline in self._deadlines.items() if deadline < now]
                for connection in late:
                    del self._deadlines[connection]
            for connection in late:
                try:
                    connection.shutdown(socket.SHUT_RDWR)  # the handler's read returns; its thread ends
                except OSError:
                    pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # 32 clients connecting at once must all be queued, not refused (the default backlog is 5).
    request_queue_size = 128

    def __init__(self, address, state, *, timeout, max_connections, verbose):
        self.state = state
        self.verbose = verbose
        self.request_timeout = timeout
        self.watchdog = _Watchdog(timeout)
        self._slots = threading.BoundedSemaphore(max_connections)
        # One request computes at a time; the others wait here without Python's lock. An answer is
        # hundreds of small NumPy calls, each taking and giving back that lock, so requests
        # computing side by side spend their time handing it around: 32 visitors at once were
        # served at half the rate of one visitor's requests in a row.
        self.computing = threading.Lock()
        self._blas_limits = _one_blas_thread()
        try:
            super().__init__(address, _Handler)
        except BaseException:
            self.server_close()
            raise

    def process_request(self, request, client_address):
        if not self._slots.acquire(blocking=False):
            body = json.dumps({"error": "The page is serving as many visitors as it can; try again."}).encode()
            try:
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                                b"Connection: close\r\nRetry-After: 1\r\nContent-Length: %d\r\n\r\n%s"
                                % (len(body), body))
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request, client_address):
        # What reaches here is a client gone mid-answer (a reset or closed socket); not news unless asked.
        if self.verbose:
            super().handle_error(request, client_address)

    def server_close(self):
        super().server_close()
        self.watchdog.stop()
        if self._blas_limits is not None:
            self._blas_limits.restore_original_limits()
            self._blas_limits = None


def _one_blas_thread():
    """BLAS on one thread while the server runs (OpenBLAS's setting is the process's): the limits to restore."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    return threadpool_limits(limits=1, user_api="blas")


def make_server(model, host="127.0.0.1", port=8000, verbose=False, *, timeout=TIMEOUT,
                max_connections=MAX_CONNECTIONS, max_visitors=MAX_VISITORS):
    """A server for the page with ``model``, bound and ready to ``serve_forever()``.

    ``model`` must read ``(N, 1, 28, 28)`` images and give ten class scores (a last ``Softmax``
    is fine); the page computes with a float64 copy. ``timeout`` (seconds) bounds how long a
    request may take to arrive, ``max_connections`` how many are served at once,
    ``max_visitors`` how many visitors' copies of the model are kept.
    """
    if not is_int(port):
        raise ArgumentTypeError(f"make_server expects port to be an int from 0 to 65535 (0: any free one); "
                                f"received {port!r}.")
    if not 0 <= port <= 65535:
        raise ArgumentError(f"make_server expects a port from 0 to 65535 (0: any free one); received {port}.")
    if not isinstance(host, str):
        raise ArgumentTypeError(f"make_server expects host to be an address as a string; received {host!r}.")
    for name, value, low in (("timeout", timeout, 0), ("max_connections", max_connections, 1),
                             ("max_visitors", max_visitors, 1)):
        if not is_real(value) or not value > low or (name != "timeout" and not is_int(value)):
            raise ArgumentError(f"make_server expects {name} to be a positive "
                                f"{'number of seconds' if name == 'timeout' else 'int'}; received {value!r}.")
    state = PageState(model, max_visitors)
    return _Server((host, port), state, timeout=float(timeout), max_connections=max_connections, verbose=verbose)
