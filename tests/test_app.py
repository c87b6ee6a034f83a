"""The draw-a-digit page's server: its answers are the library's, bad requests get a 4xx, it serves many clients."""

import contextlib
import http.client
import json
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image, ImageDraw

import tinynet
from tinynet.app.__main__ import _is_loopback
from tinynet.app.server import MAX_BODY_BYTES, TIMEOUT, make_server
from tinynet.errors import TinynetError
from tinynet.layers import Conv2D, Dense, Flatten, ReLU, Softmax

SIDE = 112
#: Digits drawn as strokes on a SIDE x SIDE pad (coordinates in pixels), as a person draws them.
STROKES = {
    "one": [[(56, 18), (58, 95)]],
    "seven": [[(25, 22), (88, 20)], [(88, 20), (50, 96)]],
    "zero": [[(56, 16), (30, 35), (28, 70), (56, 96), (82, 72), (84, 36), (56, 16)]],
    "four": [[(70, 14), (24, 66), (90, 66)], [(72, 40), (72, 100)]],
}


def drawing(name, width=10):
    """The pad's ink levels (0 paper, 255 ink) for the strokes of ``name``, as the page sends them."""
    pad = Image.new("L", (SIDE, SIDE), 0)
    draw = ImageDraw.Draw(pad)
    for stroke in STROKES[name]:
        draw.line(stroke, fill=255, width=width, joint="curve")
    return {"width": SIDE, "height": SIDE, "pixels": np.asarray(pad).ravel().tolist()}


def serve(model, **options):
    """The page's server for ``model`` on a free port, in a thread; stop it with ``stop(server)``."""
    server = make_server(model, port=0, **options)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def stop(server):
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def page():
    """The page's server with the shipped CNN on a free port, in a thread; its address and the model."""
    model = tinynet.models.pretrained("cnn")
    server = serve(model)
    yield server.server_address[1], model
    stop(server)


def request(port, method, path, body=None, headers=None, connection=None):
    """One request; the status and the decoded JSON (or text) answer."""
    status, answer, _ = request_with_headers(port, method, path, body, headers, connection)
    return status, answer


def request_with_headers(port, method, path, body=None, headers=None, connection=None):
    """One request; the status, the decoded JSON (or text) answer and the response's headers."""
    own = connection is None
    connection = connection or http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    connection.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
    response = connection.getresponse()
    raw = response.read()
    if own:
        connection.close()
    kind = response.getheader("Content-Type", "")
    return response.status, json.loads(raw) if kind.startswith("application/json") and raw else raw.decode(), \
        response


def test_the_answer_is_model_predict_on_the_image_it_shows(page):
    """Probabilities and prediction are model.predict's on the 28x28 image the page shows; one entry per layer."""
    port, model = page
    request(port, "POST", "/api/reset", {})
    for name in STROKES:
        status, answer = request(port, "POST", "/api/explain", drawing(name))
        assert status == 200, answer
        image = np.array(answer["image"], np.float32)
        assert image.shape == (28, 28) and 0 <= image.min() and image.max() == pytest.approx(1)
        expected = model.predict(image[None, None])[0]
        np.testing.assert_allclose(answer["probabilities"], expected, atol=2e-6)
        assert answer["prediction"] == int(expected.argmax()) and answer["label"] == answer["prediction"]
        assert answer["loss"] == pytest.approx(-np.log(max(expected[answer["label"]], 1e-30)), rel=1e-4, abs=1e-6)
        shapes = model.output_shapes((1, 28, 28))
        assert [layer["shape"] for layer in answer["layers"]] == [list(shape) for shape in shapes]
        assert {w["name"] for w in answer["weight_grads"]} == set(tinynet.layers.base.named_arrays(model.layers,
                                                                                                 "params"))


def test_the_drawn_digits_are_read_as_drawn(page):
    """The shipped CNN reads the test's drawings as the digits they are."""
    port, _ = page
    request(port, "POST", "/api/reset", {})
    readings = {name: request(port, "POST", "/api/explain", drawing(name))[1]["prediction"] for name in STROKES}
    assert readings == {"one": 1, "seven": 7, "zero": 0, "four": 4}


def test_a_layers_maps_are_on_its_own_scale(page):
    """Each layer's colour scale is its whole output's [min, max]; gradients' scales are centred on 0."""
    port, model = page
    request(port, "POST", "/api/reset", {})
    answer = request(port, "POST", "/api/explain", {**drawing("seven"), "label": 1})[1]
    image = np.array(answer["image"], np.float32)[None, None]
    x = image
    for layer, shown in zip(model.layers, answer["layers"], strict=True):
        x = layer.forward(x)
        assert shown["output"]["low"] == pytest.approx(float(x.min()), rel=1e-5, abs=1e-6)
        assert shown["output"]["high"] == pytest.approx(float(x.max()), rel=1e-5, abs=1e-6)
        assert shown["output"]["channels"] == (x.shape[1] if x.ndim == 4 else 1)
        assert shown["grad"]["low"] == -shown["grad"]["high"]
    assert answer["label"] == 1 and answer["loss"] > 0.1  # a seven taught as a one: a large loss


def torch_gradients(model, image, label):
    """Every layer's output gradient and dL/dx by PyTorch's autograd in float64 on the exported model (eval mode)."""
    torch = pytest.importorskip("torch")
    from tinynet.files.export import to_torch

    network = to_torch(model).double().eval()
    outputs = []
    network.apply(lambda module: module.register_forward_hook(lambda _, __, y: outputs.append(y))
                  if module is not network else None)
    x = torch.tensor(image, dtype=torch.float64)[None, None].requires_grad_()
    scores = network(x)
    for y in outputs:
        y.retain_grad()
    torch.nn.functional.cross_entropy(scores, torch.tensor([label])).backward()
    return [y.grad.numpy() for y in outputs], x.grad.numpy()


def test_a_confident_right_digit_shows_its_tiny_gradients_as_they_are(page):
    """The right label on a digit the model is sure of: a small positive loss and gradient ranges equal to
    PyTorch's float64 gradients to 1e-3, orders of magnitude below those of a wrong label."""
    port, model = page
    ranges = {}
    for which, label in (("right", 1), ("wrong", 7)):
        answer = request(port, "POST", "/api/explain", {**ONE, "label": label})[1]
        p = np.array(answer["probabilities"])
        grads, saliency = torch_gradients(model, np.array(answer["image"]), label)
        assert len(grads) == len(answer["layers"])
        for shown, grad in zip(answer["layers"], grads, strict=True):
            assert shown["grad"]["high"] == pytest.approx(np.abs(grad).max(), rel=1e-3) and \
                shown["grad"]["low"] == -shown["grad"]["high"]
        assert answer["saliency"]["high"] == pytest.approx(np.abs(saliency).max(), rel=1e-3)
        ranges[which] = np.array([shown["grad"]["high"] for shown in answer["layers"]] + [answer["saliency"]["high"]])
        if which == "right":
            wrong_mass = p[np.arange(10) != 1].sum()  # 1 - p[1] without rounding: about the loss of a sure answer
            assert 0 < wrong_mass < 1e-5 and answer["loss"] == pytest.approx(wrong_mass, rel=1e-4)
            assert str(answer["loss"]) != "-0.0" and answer["loss"] > 0
    assert (ranges["wrong"] > 1e4 * ranges["right"]).all(), ranges
    # What the page draws is what it says: the shown float32 values hold the range's extreme.
    from tinynet.app.explain import decode_maps
    grad = request(port, "POST", "/api/explain", {**ONE, "label": 1})[1]["layers"][-1]["grad"]
    assert np.abs(decode_maps(grad)).max() == pytest.approx(grad["high"], rel=1e-6)


def unit_models():
    """Every layer kind of cnn() and basic_mlp() (the shipped ones), and average pooling with Tanh and padding."""
    from tinynet.layers import AvgPool2D, Tanh

    small = tinynet.Sequential([Conv2D(1, 3, 3, padding=1, rng=0), AvgPool2D(2), Tanh(), Flatten(),
                                Dense(3 * 14 * 14, 10, rng=1)])
    return {"cnn": tinynet.models.pretrained("cnn"), "mlp": tinynet.models.pretrained("mlp"), "avgpool": small}


def strongest(maps):
    """The index ([c, h, w] or [f]) of the largest magnitude among a map's shown values, and that value."""
    from tinynet.app.explain import decode_maps

    values = decode_maps(maps)
    where = np.unravel_index(np.abs(values).argmax(), values.shape)
    index = [int(i) for i in where] if maps["height"] > 1 else [int(where[2])]
    return index, float(values[where])


@pytest.mark.parametrize("name", sorted(unit_models()))
def test_every_unit_sums_its_terms_to_the_number_the_page_shows(name):
    """/api/unit forward and backward at every layer: the terms plus the bias sum to the value, and the value is the
    page's (the output or gradient /api/explain sends)."""
    from tinynet.app.parsing import parse_drawing
    from tinynet.app.server import PageState

    model = unit_models()[name]
    state = PageState(model)
    image, _, _ = parse_drawing(drawing("seven"))
    page = state.explain(image, 1)
    explained = set()
    for position, layer in enumerate(page["layers"]):
        before = page["layers"][position - 1]["grad"] if position else page["saliency"]
        for direction, maps in (("forward", layer["output"]), ("backward", before)):
            index, shown = strongest(maps)
            if position == 0 and direction == "backward":
                index = [0, *index[1:]] if len(index) == 3 else index
            unit = state.unit(image, 1, position, tuple(index), direction)
            assert unit["value"] == pytest.approx(shown, rel=1e-6, abs=1e-30), (position, direction)
            scale = np.abs(unit["terms"]).sum() + abs(unit["bias"])
            assert abs(unit["sum"] - unit["value"]) <= 1e-9 * max(scale, abs(unit["value"])), (position, direction)
            assert len(unit["terms"]) == len(unit["at"]) and unit["bias"] == 0 or direction == "forward"
            explained.add(type(model.layers[position]).__name__)
    last = state.unit(image, 1, len(model.layers), (1,), "backward")  # dL/dz at the label: p - 1
    assert last["sum"] == pytest.approx(last["value"], abs=1e-12) and last["value"] < 0
    assert explained == {type(layer).__name__ for layer in model.layers}


def test_a_conv_unit_lists_the_window_and_the_filter(page):
    """A Conv2D output's unit: nine terms input × weight over its 3x3 window, the filter's bias; over HTTP."""
    port, model = page
    status, unit = request(port, "POST", "/api/unit", {**ONE, "layer": 0, "index": [2, 10, 12], "direction": "forward"})
    assert status == 200 and len(unit["terms"]) == 9
    assert [at[1:] for at in unit["at"]] == [[10 + i, 12 + j] for i in range(3) for j in range(3)]
    np.testing.assert_allclose(unit["weights"], model.layers[0].params["W"][2].ravel(), rtol=1e-7)
    assert unit["bias"] == pytest.approx(float(model.layers[0].params["b"][2]))
    image = np.array(request(port, "POST", "/api/explain", ONE)[1]["image"])
    np.testing.assert_allclose(unit["inputs"], image[10:13, 12:15].ravel(), rtol=1e-6)


@pytest.mark.parametrize("fields, message", [
    ({"layer": 17, "index": [0], "direction": "forward"}, "layer must be"),
    ({"layer": -1, "index": [0], "direction": "forward"}, "layer must be"),
    ({"layer": "0", "index": [0, 0, 0], "direction": "forward"}, "layer must be"),
    ({"layer": 0, "index": [32, 0, 0], "direction": "forward"}, "inside layer 0's output of shape [32, 26, 26]"),
    ({"layer": 0, "index": [0, 0], "direction": "forward"}, "index must be [c, h, w]"),
    ({"layer": 12, "index": [0, 0, 0], "direction": "backward"}, "index must be [f]"),
    ({"layer": 0, "index": [0, -1, 0], "direction": "forward"}, "index must be"),
    ({"layer": 0, "index": "0,0,0", "direction": "forward"}, "index must be"),
    ({"layer": 0, "index": [0, 0.5, 0], "direction": "forward"}, "index must be"),
    ({"layer": 0, "index": [0, 0, 0], "direction": "sideways"}, "direction must be"),
    ({"layer": 18, "index": [0], "direction": "backward"}, "layer must be"),
])
def test_a_bad_unit_request_gets_a_400_and_the_server_goes_on(page, fields, message):
    """A layer or index that is not one of the model's, or another direction: 400 with a message; then it works."""
    port, _ = page
    status, answer = request(port, "POST", "/api/unit", {**ONE, **fields})
    assert status == 400 and message in answer["error"], answer
    assert request(port, "POST", "/api/unit", {**ONE, "layer": 0, "index": [0, 0, 0]})[0] == 200


def test_a_step_moves_the_probabilities_towards_the_label_and_reset_undoes_it(page):
    """One SGD step with the right label raises its probability on a copy; reset brings back the loaded weights."""
    port, model = page
    request(port, "POST", "/api/reset", {})
    body = {**drawing("seven"), "label": 1, "lr": 0.01}
    status, stepped = request(port, "POST", "/api/step", body)
    assert status == 200, stepped
    assert stepped["loss"] < stepped["before_loss"] and stepped["steps"] == 1
    assert stepped["probabilities"][1] > stepped["before"][1]
    request(port, "POST", "/api/reset", {})
    assert stepped["before"] == pytest.approx(request(port, "POST", "/api/explain", body)[1]["probabilities"])
    loaded = model.predict(np.array(stepped["image"], np.float32)[None, None])[0]
    np.testing.assert_allclose(request(port, "POST", "/api/explain", body)[1]["probabilities"], loaded, atol=2e-6)


ONE = drawing("one")
NESTED = b"[" * 100_000 + b"]" * 100_000
BAD_REQUESTS = [
    # (method, path, body, extra headers, status, part of the message)
    ("POST", "/api/explain", b"not json", {}, 400, "not JSON"),
    ("POST", "/api/explain", b"[1, 2]", {}, 400, "JSON object"),
    ("POST", "/api/explain", NESTED, {}, 400, "nested too deeply"),
    ("POST", "/api/explain", b'{"a":' * 50_000 + b"1" + b"}" * 50_000, {}, 400, "nested too deeply"),
    ("POST", "/api/explain", {"width": SIDE, "height": SIDE, "pixels": [0] * 10}, {}, 400, "12,544 ink levels"),
    ("POST", "/api/explain", {"width": 0, "height": SIDE, "pixels": []}, {}, 400, "width must be"),
    ("POST", "/api/explain", {"width": 5000, "height": 5000, "pixels": []}, {}, 400, "width must be"),
    ("POST", "/api/explain", {"width": "112", "height": SIDE, "pixels": []}, {}, 400, "width must be"),
    ("POST", "/api/explain", b'{"width": 8, "height": 8, "pixels": [NaN' + b", 0" * 63 + b"]}", {}, 400, "NaN"),
    ("POST", "/api/explain", {"width": 8, "height": 8, "pixels": ["ink"] * 64}, {}, 400, "numbers from 0"),
    ("POST", "/api/explain", {**ONE, "pixels": ["255" if p else "0" for p in ONE["pixels"]]}, {}, 400,
     "found one that is not: '0'"),
    ("POST", "/api/explain", {**ONE, "pixels": [bool(p) for p in ONE["pixels"]]}, {}, 400, "not: False"),
    ("POST", "/api/explain", {**ONE, "pixels": [[p] for p in ONE["pixels"]]}, {}, 400, "not: [0]"),
    ("POST", "/api/explain", {"width": 8, "height": 8, "pixels": [300] * 64}, {}, 400, "numbers from 0"),
    ("POST", "/api/explain", {"width": SIDE, "height": SIDE, "pixels": [0] * SIDE**2}, {}, 422, "blank"),
    ("POST", "/api/explain", {**ONE, "label": 12}, {}, 400, "label must be a digit"),
    ("POST", "/api/explain", {**ONE, "label": "3"}, {}, 400, "label must be a digit"),
    ("POST", "/api/explain", {**ONE, "label": 3.0}, {}, 400, "label must be a digit"),
    ("POST", "/api/explain", {**ONE, "label": True}, {}, 400, "label must be a digit"),
    ("POST", "/api/step", ONE, {}, 400, "needs the right label"),
    ("POST", "/api/step", {**ONE, "label": 1, "lr": "fast"}, {}, 400, "lr must be"),
    ("POST", "/api/step", {**ONE, "label": 1, "lr": "0.1"}, {}, 400, "lr must be"),
    ("POST", "/api/step", {**ONE, "label": 1, "lr": True}, {}, 400, "lr must be"),
    ("POST", "/api/step", {**ONE, "label": 1, "lr": 0}, {}, 400, "lr must be"),
    ("POST", "/api/step", {**ONE, "label": 1, "lr": 11}, {}, 400, "lr must be"),
    ("POST", "/api/step", json.dumps({**ONE, "label": 1}).encode()[:-1] + b', "lr": Infinity}', {}, 400,
     "lr must be"),
    ("POST", "/api/explain", ONE, {"Content-Type": "text/plain"}, 415, "Content-Type: application/json"),
    ("POST", "/api/step", {**ONE, "label": 1}, {"Content-Type": "application/x-www-form-urlencoded"}, 415,
     "application/json"),
    ("POST", "/api/reset", {}, {"Content-Type": ""}, 415, "application/json"),
    ("POST", "/api/step", {**ONE, "label": 1}, {"Origin": "http://evil.example"}, 403, "evil.example"),
    ("POST", "/api/reset", {}, {"Origin": "null"}, 403, "comes from 'null'"),
    ("GET", "/api/model", None, {"Origin": "http://127.0.0.1.evil.example"}, 403, "comes from"),
    ("POST", "/api/reset", {}, {"Host": "evil.example:8000"}, 403, "names the host"),
    ("POST", "/api/explain", ONE, {"Content-Length": "\u00b2"}, 400, "ASCII digits"),
    ("POST", "/api/explain", ONE, {"Content-Length": "\u0661\u0662"}, 400, "ASCII digits"),
    ("POST", "/api/explain", ONE, {"Content-Length": "-1"}, 400, "Content-Length must be"),
    ("POST", "/api/explain", ONE, {"Content-Length": "1e3"}, 400, "Content-Length must be"),
    ("POST", "/api/explain", ONE, {"Content-Length": "9" * 40}, 413, "at most 1,048,576"),
    ("POST", "/api/unknown", {}, {}, 404, "No API at /api/unknown"),
    ("POST", "/api/model", {}, {}, 405, "takes GET, HEAD"),
    ("GET", "/api/explain", None, {}, 405, "takes POST"),
    ("GET", "/no-such-page.html", None, {}, 404, "No page at"),
    ("GET", "/../../etc/passwd", None, {}, 400, "'..'"),
    ("GET", "/static/%2e%2e/server.py", None, {}, 400, "'..'"),
    ("PUT", "/api/step", {}, {}, 405, "takes POST, not PUT"),
    ("DELETE", "/", None, {}, 405, "takes GET, HEAD, not DELETE"),
    ("OPTIONS", "/api/explain", None, {}, 405, "not OPTIONS"),
    ("PATCH", "/api/reset", {}, {}, 405, "not PATCH"),
    ("BREW", "/", None, {}, 405, "does not take BREW"),
]


def raw_request(port, method, path, body, headers):
    """Send a request exactly as given (headers the client library would refuse or fix); status, JSON, headers."""
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    fields = {"Host": f"127.0.0.1:{port}", "Content-Type": "application/json",
              **({"Content-Length": str(len(data))} if data is not None else {}), **headers}
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items() if v != "") + "\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=60) as connection:
        connection.sendall(head.encode("utf-8") + (data or b""))
        with contextlib.suppress(OSError):  # the server may have answered and closed already
            connection.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, content = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = dict(line.split(": ", 1) for line in lines[1:])
    assert fields["Content-Type"] == "application/json" and int(fields["Content-Length"]) == len(content)
    return int(lines[0].split()[1]), json.loads(content), fields


@pytest.mark.parametrize("method, path, body, headers, status, message", BAD_REQUESTS,
                         ids=[f"{case[4]}-{case[5]}" for case in BAD_REQUESTS])
def test_a_bad_request_gets_a_json_4xx_and_the_server_goes_on(page, method, path, body, headers, status, message):
    """Each bad request is answered with its status and a JSON message the page shows; a good one then still works."""
    port, _ = page
    answer_status, answer, fields = raw_request(port, method, path, body, headers)
    assert answer_status == status and message in answer["error"], answer
    if status == 405:
        assert fields["Allow"] in ("POST", "GET, HEAD") and f"takes {fields['Allow']}" in answer["error"]
    assert request(port, "POST", "/api/explain", ONE)[0] == 200


def test_a_request_line_the_server_cannot_read_gets_json(page):
    """A garbled request line or an HTTP version it does not speak: a JSON 4xx/5xx, then the next request works."""
    port, _ = page
    for line in (b"GARBAGE\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", port), timeout=60) as connection:
            connection.sendall(line)
            answer = connection.makefile("rb").read()
        head, _, content = answer.partition(b"\r\n\r\n")
        assert b"application/json" in head and "error" in json.loads(content), answer[:200]
    assert request(port, "POST", "/api/explain", ONE)[0] == 200


def test_the_pages_own_origin_is_allowed(page):
    """A request from the page itself (Origin http://127.0.0.1:port, or localhost) is answered."""
    port, _ = page
    for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
        status, answer, _ = raw_request(port, "POST", "/api/explain", ONE, {"Host": host, "Origin": f"http://{host}"})
        assert status == 200 and answer["prediction"] == 1


def test_head_is_answered_like_get_without_a_body(page):
    """HEAD / and HEAD /api/model: GET's status and headers (its Content-Length), no body."""
    port, _ = page
    for path in ("/", "/app.js", "/api/model"):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        connection.request("GET", path)
        got = connection.getresponse()
        body = got.read()
        connection.request("HEAD", path)  # on the same connection: a body sent for HEAD would garble what follows
        head = connection.getresponse()
        assert head.status == got.status == 200 and head.read() == b""
        assert head.getheader("Content-Length") == str(len(body)) == got.getheader("Content-Length")
        assert head.getheader("Content-Type") == got.getheader("Content-Type")
        connection.request("GET", path)
        assert connection.getresponse().read() == body
        connection.close()


def test_a_body_over_the_limit_is_refused_unread(page):
    """A Content-Length over 1 MB gets 413 before the body is read; a missing one gets 411."""
    port, _ = page
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.putrequest("POST", "/api/explain")
    connection.putheader("Content-Length", str(MAX_BODY_BYTES + 1))
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 413 and "at most 1,048,576" in json.loads(response.read())["error"]
    connection.close()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.putrequest("POST", "/api/explain")
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 411 and "Content-Length" in json.loads(response.read())["error"]
    connection.close()
    assert request(port, "POST", "/api/explain", drawing("one"))[0] == 200


def test_the_page_and_its_files_are_served_from_the_package(page):
    """/, app.js and app.css come from the server itself: nothing from another host."""
    port, _ = page
    status, html = request(port, "GET", "/")
    assert status == 200 and "<canvas id=\"pad\"" in html
    for name in ("app.js", "app.css"):
        status, text = request(port, "GET", f"/{name}")
        assert status == 200 and len(text) > 1000
    assert "http" not in html.replace("http-equiv", "") and "//" not in request(port, "GET", "/app.css")[1]


def test_32_clients_of_8_requests_each_all_get_the_right_answer(page):
    """32 concurrent clients, 8 requests each over their own connection: every answer is the serial one."""
    port, _ = page
    names = sorted(STROKES)
    bodies = {name: {**drawing(name), "label": position} for position, name in enumerate(names)}
    expected = {name: request(port, "POST", "/api/explain", body)[1] for name, body in bodies.items()}

    def client(number):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        wrong = []
        for index in range(8):
            name = names[(number + index) % len(names)]
            status, answer = request(port, "POST", "/api/explain", bodies[name], connection=connection)
            if status != 200 or answer["probabilities"] != expected[name]["probabilities"] or \
                    answer["weight_grads"] != expected[name]["weight_grads"]:
                wrong.append((number, index, status))
        connection.close()
        return wrong

    with ThreadPoolExecutor(32) as pool:
        wrong = [problem for problems in pool.map(client, range(32)) for problem in problems]
    assert wrong == []


def test_a_stalled_client_is_dropped_and_others_are_served():
    """A client sending one byte at a time, too slowly, loses its connection after the timeout; others are served."""
    assert TIMEOUT <= 30
    server = serve(tinynet.models.pretrained("mlp"), timeout=0.5)
    port = server.server_address[1]
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as stalled:
            dropped = False
            for byte in b"POST /api/explain HTTP/1.1\r\nContent-Length: 100\r\n":
                try:
                    stalled.sendall(bytes([byte]))
                    time.sleep(0.1)
                except OSError:
                    dropped = True
                    break
                stalled.settimeout(0.001)
                try:
                    dropped = stalled.recv(1) == b""  # the server closed this connection
                except TimeoutError:
                    pass
                except OSError:
                    dropped = True
                if dropped:
                    break
            assert dropped, "the server still waits for a client that took ~5 s for 50 bytes (timeout 0.5 s)"
        assert request(port, "POST", "/api/explain", ONE)[0] == 200
    finally:
        stop(server)


def test_more_connections_than_the_bound_get_a_503_and_the_rest_are_served():
    """With max_connections=2, a third open connection is answered 503 in JSON; once one closes, requests work."""
    server = serve(tinynet.models.pretrained("mlp"), max_connections=2, timeout=5)
    port = server.server_address[1]
    try:
        held = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(2)]
        time.sleep(0.2)  # both accepted and waiting for their requests
        status, answer = request(port, "GET", "/api/model")
        assert status == 503 and "as many visitors" in answer["error"]
        for connection in held:
            connection.close()
        for _ in range(50):  # the two handler threads notice the closed connections
            status, _ = request(port, "GET", "/api/model")
            if status == 200:
                break
            time.sleep(0.1)
        assert status == 200
    finally:
        stop(server)


@pytest.mark.parametrize("port, kind", [(-1, "ArgumentError"), (65536, "ArgumentError"), ("8000", "ArgumentTypeError"),
                                        (8000.0, "ArgumentTypeError"), (True, "ArgumentTypeError"),
                                        (None, "ArgumentTypeError")])
def test_make_server_refuses_a_port_that_is_not_one(port, kind):
    """A port outside 0-65535 or not an int: a TinynetError naming what was received, nothing bound."""
    with pytest.raises(TinynetError, match="port") as caught:
        make_server(tinynet.models.pretrained("mlp"), port=port)
    assert type(caught.value).__name__ == kind and repr(port) in str(caught.value)


@pytest.mark.parametrize("options", [{"timeout": 0}, {"timeout": "5"}, {"max_connections": 0},
                                     {"max_visitors": 1.5}, {"host": 127}])
def test_make_server_refuses_bad_limits(options):
    """Timeouts and bounds that are not positive numbers: a TinynetError."""
    with pytest.raises(TinynetError, match=next(iter(options))):
        make_server(tinynet.models.pretrained("mlp"), port=0, **options)


def other_models():
    """Models the page cannot show, each with the words its refusal must contain."""
    return {
        "five classes": (tinynet.Sequential([Flatten(), Dense(784, 5, rng=0)]), "ten class scores"),
        "other input": (tinynet.Sequential([Dense(100, 10, rng=0)]), "28x28"),
        "three channels": (tinynet.Sequential([Conv2D(3, 4, 3, rng=0), Flatten(), Dense(2704, 10, rng=0)]),
                           "28x28"),
    }


@pytest.mark.parametrize("name", sorted(other_models()))
def test_a_model_the_page_cannot_show_is_refused_clearly(name):
    """make_server refuses a model with other than ten classes or another input shape, with a TinynetError."""
    model, words = other_models()[name]
    with pytest.raises(TinynetError, match=words):
        make_server(model, port=0)


def test_the_command_line_refuses_a_model_with_five_classes_without_a_traceback(tmp_path):
    """python -m tinynet.app --model five.npz: one line saying why, exit status 2, nothing served."""
    path = tmp_path / "five.npz"
    other_models()["five classes"][0].save(path)
    result = subprocess.run([sys.executable, "-m", "tinynet.app", "--model", str(path), "--port", "0"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "ten class scores" in result.stderr and "(5,)" in result.stderr and result.stdout == ""


def test_a_model_ending_in_softmax_is_taught_with_the_loss_of_its_scores(page):
    """A model whose last layer is Softmax: loss -log p[label], and the same gradients as the model without it."""
    port, _ = page
    scores = tinynet.Sequential([Flatten(), Dense(784, 32, rng=1), ReLU(), Dense(32, 10, rng=2)])
    probabilities = tinynet.Sequential([*scores.layers, Softmax()])
    answers = {}
    for name, model in (("scores", scores), ("probabilities", probabilities)):
        server = serve(model)
        try:
            answers[name] = request(server.server_address[1], "POST", "/api/explain", {**ONE, "label": 3})[1]
        finally:
            stop(server)
    with_softmax, without = answers["probabilities"], answers["scores"]
    assert with_softmax["probabilities"] == pytest.approx(without["probabilities"], rel=1e-12)
    assert with_softmax["loss"] == pytest.approx(-np.log(with_softmax["probabilities"][3]), rel=1e-12)
    assert with_softmax["saliency"] == without["saliency"]
    assert [layer["grad"] for layer in with_softmax["layers"][:-1]] == [layer["grad"] for layer in without["layers"]]
    p3 = with_softmax["probabilities"][3]
    assert with_softmax["layers"][-1]["grad"]["low"] == pytest.approx(-1 / p3)  # dL/dp = -1/p[label] at the label


def test_a_diverged_model_says_so_and_reset_brings_it_back(page):
    """Steps at the largest lr until the numbers overflow: every answer is JSON (200 or 409 "diverged"), reset works."""
    port, _ = page
    cookie = {"Cookie": "tinynet_visitor=" + "d" * 22}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    statuses = []
    for label in [3, 8] * 15:  # alternating labels at lr 10 drive the weights to overflow
        status, answer = request(port, "POST", "/api/step", {**drawing("seven"), "label": label, "lr": 10.0},
                                 cookie, connection)
        statuses.append(status)
        if status == 409:
            assert answer["diverged"] is True and "Reset" in answer["error"]
            break
        assert status == 200, answer
    assert statuses[-1] == 409, statuses
    assert request(port, "POST", "/api/explain", ONE, cookie, connection)[0] == 409  # stays diverged until reset
    assert request(port, "POST", "/api/reset", {}, cookie, connection)[0] == 200
    assert request(port, "POST", "/api/explain", ONE, cookie, connection)[1]["prediction"] == 1
    connection.close()


class Visitor:
    """A client with its own cookie jar: it keeps the cookie the server gives it, as a browser does."""

    def __init__(self, port):
        self.port, self.cookie, self.set_cookies = port, None, []

    def post(self, path, body):
        headers = {"Cookie": self.cookie} if self.cookie else {}
        status, answer, response = request_with_headers(self.port, "POST", path, body, headers)
        if response.getheader("Set-Cookie"):
            self.set_cookies.append(response.getheader("Set-Cookie"))
            self.cookie = self.set_cookies[-1].split(";", 1)[0]
        assert status == 200, answer
        return answer


def test_each_visitor_steps_and_resets_their_own_copy(page):
    """Two cookie jars: one visitor's steps and reset never change what the other sees."""
    port, model = page
    first, second = Visitor(port), Visitor(port)
    body = {**drawing("seven"), "label": 1, "lr": 0.05}
    untaught = first.post("/api/explain", body)["probabilities"]
    assert second.post("/api/explain", body)["probabilities"] == untaught
    for _ in range(3):
        stepped = first.post("/api/step", body)
    assert stepped["steps"] == 3 and stepped["probabilities"][1] > untaught[1] + 0.01
    assert first.post("/api/explain", body)["probabilities"] == stepped["probabilities"]
    assert second.post("/api/explain", body)["probabilities"] == untaught  # the second sees the loaded model
    second_step = second.post("/api/step", body)
    assert second_step["steps"] == 1 and second_step["before"] == untaught
    second.post("/api/reset", {})
    assert first.post("/api/explain", body)["probabilities"] == stepped["probabilities"]  # untouched by that reset
    assert second.post("/api/explain", body)["probabilities"] == untaught
    first.post("/api/reset", {})
    assert first.post("/api/explain", body)["probabilities"] == untaught
    for visitor in (first, second):  # one cookie each, given once, that scripts cannot read
        assert len(visitor.set_cookies) == 1
        attributes = {part.strip() for part in visitor.set_cookies[0].split(";")[1:]}
        assert attributes == {"HttpOnly", "SameSite=Strict", "Path=/"}
    assert first.cookie != second.cookie


def test_the_server_keeps_a_bounded_number_of_copies_least_recently_used_first():
    """With max_visitors=2, a third visitor's step forgets the least recently used visitor's copy."""
    server = serve(tinynet.models.pretrained("mlp"), max_visitors=2)
    port = server.server_address[1]
    try:
        visitors = [Visitor(port) for _ in range(3)]
        body = {**drawing("seven"), "label": 1, "lr": 0.05}
        untaught = visitors[0].post("/api/explain", body)["probabilities"]
        for visitor in visitors:
            assert visitor.post("/api/step", body)["steps"] == 1
        assert server.state.sessions.visitors() == 2
        assert visitors[0].post("/api/explain", body)["probabilities"] == untaught  # forgotten: the loaded model
        assert visitors[2].post("/api/explain", body)["steps"] == 1
    finally:
        stop(server)


@pytest.mark.parametrize("port", ["-1", "abc", "\u00b2", "\u0661\u0662", "70000", "1e3", "80.0", ""])
def test_the_command_line_refuses_a_port_that_is_not_one(capsys, port):
    """A port must be ASCII digits from 0 to 65535: anything else is one usage error naming the range."""
    from tinynet.app.__main__ import parse_args

    with pytest.raises(SystemExit) as stopped:
        parse_args(["--port", port])
    assert stopped.value.code == 2
    assert "argument --port: a port is a whole number from 0 to 65535" in capsys.readouterr().err


@pytest.mark.parametrize("host", ["999.1.1.1", "no such host"])
def test_the_command_line_refuses_an_address_it_cannot_serve_on_without_a_traceback(host):
    result = subprocess.run([sys.executable, "-m", "tinynet.app", "--host", host, "--port", "0"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"cannot serve on {host}:0" in result.stderr and "--host ADDRESS" in result.stderr


def test_the_command_line_refuses_a_missing_model_without_a_traceback(tmp_path):
    """python -m tinynet.app --model missing.npz: one line naming the file, exit status 2."""
    result = subprocess.run([sys.executable, "-m", "tinynet.app", "--model", str(tmp_path / "missing.npz")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr and "missing.npz" in result.stderr


def test_the_command_line_prints_its_address_and_serves(tmp_path):
    """python -m tinynet.app --port 0 prints a 127.0.0.1 address that serves the page."""
    process = subprocess.Popen([sys.executable, "-m", "tinynet.app", "--port", "0"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert "http://127.0.0.1:" in line
        port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
        assert request(port, "GET", "/")[0] == 200
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                            ("0.0.0.0", False), ("192.168.1.5", False)])
def test_only_loopback_addresses_count_as_this_machine_only(host, loopback):
    """The note about other machines is printed for every address but the loopback ones."""
    assert _is_loopback(host) is loopback
