"""The draw-a-digit page's server: its answers are the library's, bad requests get a 4xx, it serves many clients."""

import http.client
import json
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image, ImageDraw

import tinynet
from tinynet.app.__main__ import _is_loopback
from tinynet.app.server import MAX_BODY_BYTES, make_server

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


@pytest.fixture(scope="module")
def page():
    """The page's server with the shipped CNN on a free port, in a thread; its address and the model."""
    model = tinynet.models.pretrained("cnn")
    server = make_server(model, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], model
    server.shutdown()
    server.server_close()


def request(port, method, path, body=None, headers=None, connection=None):
    """One request; the status and the decoded JSON (or text) answer."""
    own = connection is None
    connection = connection or http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    connection.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
    response = connection.getresponse()
    raw = response.read()
    if own:
        connection.close()
    kind = response.getheader("Content-Type", "")
    return response.status, json.loads(raw) if kind.startswith("application/json") else raw.decode()


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


BAD_REQUESTS = [
    ("POST", "/api/explain", b"not json", 400, "not JSON"),
    ("POST", "/api/explain", b"[1, 2]", 400, "JSON object"),
    ("POST", "/api/explain", {"width": SIDE, "height": SIDE, "pixels": [0] * 10}, 400, "12,544 ink levels"),
    ("POST", "/api/explain", {"width": 0, "height": SIDE, "pixels": []}, 400, "width must be"),
    ("POST", "/api/explain", {"width": 5000, "height": 5000, "pixels": []}, 400, "width must be"),
    ("POST", "/api/explain", b'{"width": 8, "height": 8, "pixels": [NaN' + b", 0" * 63 + b"]}", 400, "NaN"),
    ("POST", "/api/explain", {"width": 8, "height": 8, "pixels": ["ink"] * 64}, 400, "numbers from 0"),
    ("POST", "/api/explain", {"width": 8, "height": 8, "pixels": [300] * 64}, 400, "numbers from 0"),
    ("POST", "/api/explain", {"width": SIDE, "height": SIDE, "pixels": [0] * SIDE**2}, 422, "blank"),
    ("POST", "/api/explain", {**drawing("one"), "label": 12}, 400, "label must be a digit"),
    ("POST", "/api/step", drawing("one"), 400, "needs the right label"),
    ("POST", "/api/step", {**drawing("one"), "label": 1, "lr": "fast"}, 400, "lr must be"),
    ("POST", "/api/unknown", {}, 404, "No API at /api/unknown"),
    ("GET", "/api/explain", None, 405, "takes POST"),
    ("GET", "/no-such-page.html", None, 404, "No page at"),
    ("GET", "/../../etc/passwd", None, 400, "'..'"),
    ("GET", "/static/%2e%2e/server.py", None, 400, "'..'"),
]


@pytest.mark.parametrize("method, path, body, status, message", BAD_REQUESTS,
                         ids=[f"{case[3]}-{case[4]}" for case in BAD_REQUESTS])
def test_a_bad_request_gets_a_4xx_with_a_message_and_the_server_goes_on(page, method, path, body, status, message):
    """Each bad request is answered with its status and a message the page shows; a good one then still works."""
    port, _ = page
    answer_status, answer = request(port, method, path, body)
    assert answer_status == status and message in answer["error"]
    assert request(port, "POST", "/api/explain", drawing("one"))[0] == 200


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


def test_32_clients_of_50_requests_each_all_get_the_right_answer(page):
    """32 concurrent clients, 50 requests each over their own connection: every answer is the serial one."""
    port, _ = page
    request(port, "POST", "/api/reset", {})
    names = sorted(STROKES)
    bodies = {name: {**drawing(name), "label": position} for position, name in enumerate(names)}
    expected = {name: request(port, "POST", "/api/explain", body)[1] for name, body in bodies.items()}

    def client(number):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        wrong = []
        for index in range(50):
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
