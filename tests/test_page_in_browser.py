"""The draw-a-digit page in a real browser (Debian's Chromium, driven by Playwright): draw, read, teach, fail loudly.

Screenshots go to ``$TINYNET_SCREENSHOTS`` when it is set (the README's picture comes from
there), else to the test's temporary folder.
"""

import os
import shutil
import threading
from functools import partial
from pathlib import Path

import numpy as np
import pytest

import tinynet
from tinynet.app.server import make_server

CHROMIUM = os.environ.get("TINYNET_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def _browser_or_skip():
    """Playwright and a Chromium executable; in CI (CI=true) their absence fails instead of skipping."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    missing = "Playwright (pip install -e '.[dev]')" if sync_playwright is None else \
        "Chromium (apt-get install chromium)" if CHROMIUM is None else None
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{missing} is missing; .ci/run installs it")
        pytest.skip(f"needs {missing} to drive a real browser")
    return sync_playwright


#: Digits as mouse strokes on the 280x280 pad: lists of points (x, y).
STROKES = {
    "seven": [[(70, 60), (210, 55)], [(210, 55), (170, 140), (130, 235)]],
    "zero": [[(140, 40), (85, 80), (75, 160), (140, 240), (200, 170), (205, 85), (140, 40)]],
}


@pytest.fixture(scope="module")
def browser_page(tmp_path_factory):
    sync_playwright = _browser_or_skip()
    model = tinynet.models.pretrained("cnn")
    server = make_server(model, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    shots = Path(os.environ.get("TINYNET_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"http://127.0.0.1:{server.server_address[1]}/")
        page.tinynet_browser = browser  # for tests that need visitors of their own
        yield page, model, shots
        browser.close()
    server.shutdown()
    server.server_close()


def settled(page, action, error=False, timeout=30_000):
    """Do ``action`` (it asks the server something) and wait until every request the page queued has finished.
    The page must then show no error, or one with ``error=True``; a timeout says what the page had done."""
    queued = page.evaluate("window.tinynet.queued")
    action()
    try:
        page.wait_for_function(f"window.tinynet.queued > {queued} && window.tinynet.done === window.tinynet.queued",
                               timeout=timeout)
    except Exception as timed_out:
        state = page.evaluate("({queued: tinynet.queued, done: tinynet.done, requests: tinynet.requests,"
                              " answers: tinynet.answers, error: document.getElementById('error').textContent})")
        raise AssertionError(f"the page's requests did not all finish within {timeout / 1000:g} s: {state}") \
            from timed_out
    assert page.is_visible("#error") == error, page.inner_text("#error")


def draw(page, strokes):
    """Draw ``strokes`` with the mouse and wait for the answers to them."""
    def strokes_on_the_pad():
        for stroke in strokes:
            box = page.locator("#pad").bounding_box()  # again for each stroke: an answer may move the page
            page.mouse.move(box["x"] + stroke[0][0], box["y"] + stroke[0][1])
            page.mouse.down()
            for (x0, y0), (x1, y1) in zip(stroke, stroke[1:], strict=False):
                for t in np.linspace(0, 1, 12)[1:]:
                    page.mouse.move(box["x"] + x0 + t * (x1 - x0), box["y"] + y0 + t * (y1 - y0))
            page.mouse.up()

    answers = page.evaluate("window.tinynet.answers")
    settled(page, strokes_on_the_pad)
    assert page.evaluate("window.tinynet.answers") == answers + len(strokes)  # one answer a stroke


def shown_probabilities(page):
    return [float(text) for text in page.locator("#probabilities .value").all_inner_texts()]


def layer_pixels(page):
    """Every layer map's pixels as the page painted them (data URLs)."""
    return page.evaluate("[...document.querySelectorAll('#layers canvas')].map(c => c.toDataURL())")


def test_the_page_shows_what_model_predict_says(browser_page):
    """Mouse-drawn digits: prediction and probabilities (3 decimals) are model.predict's on the page's 28x28 image."""
    page, model, shots = browser_page
    seen = {}
    for name, strokes in STROKES.items():
        page.click("#clear")
        draw(page, strokes)
        image = np.array(page.evaluate("window.tinynet.last.image"), np.float32)
        expected = model.predict(image[None, None])[0]
        assert shown_probabilities(page) == [round(float(p), 3) for p in expected]
        assert page.inner_text("#prediction").startswith(f"It reads {expected.argmax()}")
        assert page.locator("#layers .layer").count() == len(model.layers)
        assert "first 8 of 32 channels" in page.inner_text("#layers")
        seen[name] = (int(expected.argmax()), layer_pixels(page))
        page.screenshot(path=str(shots / f"page_{name}.png"), full_page=True)
    assert seen["seven"][0] == 7 and seen["zero"][0] == 0
    assert seen["seven"][1] != seen["zero"][1]  # the layer maps were painted again for the new digit


def test_teach_it_shows_the_gradients_and_a_step_moves_the_probabilities(browser_page):
    """Pick a label: the loss and saliency change; a step shows before/after bars; reset restores the answer."""
    page, model, shots = browser_page
    page.click("#clear")
    draw(page, STROKES["seven"])
    before_pixels = layer_pixels(page)
    loss_own = page.inner_text("#loss")
    settled(page, lambda: page.click("#labels button[data-digit='1']"))
    assert "label 1" in page.inner_text("#loss") and page.inner_text("#loss") != loss_own
    assert layer_pixels(page) != before_pixels  # the gradient maps are those of the new loss
    assert page.locator("#weight-grads .row").count() == len(tinynet.layers.base.named_arrays(model.layers,
                                                                                          "params"))
    probability_of_one = shown_probabilities(page)[1]
    page.select_option("#lr", "0.01")
    settled(page, lambda: page.click("#step"))
    assert page.locator("#step-result .row").count() == 10
    assert "→" in page.inner_text("#step-result") and shown_probabilities(page)[1] > probability_of_one
    chart = page.evaluate("""[...document.querySelectorAll('#step-result .row')].map(row => {
        const box = e => e.getBoundingClientRect();
        const [track, before, after] = [row.querySelector('.track'), row.querySelector('.before'),
                                        row.querySelector('.after')];
        const value = row.querySelector('.value');
        return {track: box(track).toJSON(), before: box(before).toJSON(), after: box(after).toJSON(),
                colour: getComputedStyle(after).backgroundColor, clipped: value.scrollWidth > value.clientWidth};
    })""")
    for row in chart:  # the after-bar lies inside its own track, below the before-bar, green; no text is clipped
        track, before, after = row["track"], row["before"], row["after"]
        assert track["top"] <= before["top"] < after["top"] and after["bottom"] <= track["bottom"] + 0.5
        assert track["left"] <= after["left"] and after["right"] <= track["right"] + 0.5
        assert row["colour"] == "rgb(46, 125, 79)" and not row["clipped"]
    page.screenshot(path=str(shots / "page_teach_it.png"), full_page=True)
    page.screenshot(path=str(shots / "page_teach_it_top.png"), full_page=True,  # the README's picture
                    clip={"x": 0, "y": 0, "width": 1280, "height": 1240})
    settled(page, lambda: page.click("#reset"))
    assert shown_probabilities(page)[1] == probability_of_one


def test_every_map_is_labelled_with_its_exact_range_and_the_scale_is_shared(browser_page):
    """Each map's legend prints the layer's exact low and high; on the logarithmic scale a right label's gradients
    are painted paler than a wrong label's; Clear forgets the label."""
    page, _, _ = browser_page
    page.click("#clear")
    draw(page, STROKES["seven"])
    layers = page.evaluate("window.tinynet.last.layers")
    ranges = page.evaluate("[...document.querySelectorAll('#layers .range')].map(r => [+r.dataset.low, +r.dataset.high,"
                           " r.textContent])")
    assert len(ranges) == 2 * len(layers)
    for layer, (output, grad) in zip(layers, zip(ranges[::2], ranges[1::2], strict=True), strict=True):
        assert output[:2] == [layer["output"]["low"], layer["output"]["high"]]
        assert grad[:2] == [layer["grad"]["low"], layer["grad"]["high"]]
        assert "values from" in grad[2] and ("e-" in grad[2] or "e+" in grad[2] or "." in grad[2])

    def strongest_pixel():  # how far the saliency map's strongest pixel is from white (full colour: about 430-500)
        return page.evaluate("""(() => { const c = document.getElementById('saliency');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let ink = 0;
            for (let i = 0; i < d.length; i += 4) ink = Math.max(ink, 3 * 247 - d[i] - d[i + 1] - d[i + 2]);
            return ink; })()""")

    strength = {}
    for label in (7, 2):  # the right label (the model is sure it is a 7), then a wrong one
        settled(page, partial(page.click, f"#labels button[data-digit='{label}']"))
        strength[label] = strongest_pixel()
    assert strength[7] < 200 < 350 < strength[2], strength  # pale (about 1e-7) against strong (about 1)
    settled(page, lambda: page.click("#labels button[data-digit='7']"))
    page.select_option("#scale", "layer")  # each layer its own range: the tiny gradients are painted at full strength
    assert strongest_pixel() > 350
    page.select_option("#scale", "log")
    page.click("#clear")
    assert page.locator("#labels button.chosen").count() == 0


def test_an_error_from_the_server_is_shown(browser_page):
    """A step the server refuses (a learning rate out of range) puts the server's message on the page."""
    page, _, _ = browser_page
    page.click("#clear")
    draw(page, STROKES["zero"])
    settled(page, lambda: page.click("#labels button[data-digit='0']"))
    page.evaluate("document.getElementById('lr').add(new Option('1000', '1000', true, true))")
    settled(page, lambda: page.click("#step"), error=True)
    assert "lr must be a number in (0, 10.0]" in page.inner_text("#error")
    page.click("#clear")  # a new digit: the message about the last one's step goes
    assert not page.is_visible("#error")
    page.evaluate("document.getElementById('lr').remove(document.getElementById('lr').selectedIndex)")


def test_an_answer_on_its_way_when_the_pad_is_cleared_is_not_shown(browser_page):
    """Clear while the server is still answering: the page stays empty instead of painting the cleared digit's
    answer (the request is held in the browser until Clear was pressed)."""
    page, _, _ = browser_page
    page.click("#clear")
    held = []
    page.route("**/api/explain", lambda route: held.append(route))
    try:
        box = page.locator("#pad").bounding_box()
        page.mouse.move(box["x"] + 140, box["y"] + 40)
        page.mouse.down()
        page.mouse.move(box["x"] + 140, box["y"] + 240, steps=10)
        page.mouse.up()
        for _ in range(200):  # the route's handler runs while Playwright waits
            if held:
                break
            page.wait_for_timeout(50)
        assert len(held) == 1 and page.evaluate("window.tinynet.done < window.tinynet.queued")
        page.click("#clear")
        held[0].continue_()
        page.wait_for_function("window.tinynet.done === window.tinynet.queued", timeout=30_000)
    finally:
        page.unroute("**/api/explain")
    assert page.evaluate("window.tinynet.last") is None
    assert page.inner_text("#prediction").startswith("Draw a digit")
    assert page.locator("#probabilities .row").count() == 0 and page.locator("#layers .layer").count() == 0


def test_two_visitors_never_see_each_others_steps(browser_page):
    """Two browser contexts (two visitors, two cookie jars): steps in one leave the other's answer as loaded."""
    page, model, _ = browser_page
    visitors = [page.tinynet_browser.new_context(viewport={"width": 1280, "height": 900}) for _ in range(2)]
    try:
        tabs = [context.new_page() for context in visitors]
        for tab in tabs:
            tab.goto(page.url)
            draw(tab, STROKES["seven"])
        untaught = shown_probabilities(tabs[1])
        assert shown_probabilities(tabs[0]) == untaught
        settled(tabs[0], lambda: tabs[0].click("#labels button[data-digit='1']"))
        tabs[0].select_option("#lr", "0.03")
        for _ in range(2):
            settled(tabs[0], lambda: tabs[0].click("#step"))
        assert shown_probabilities(tabs[0])[1] > untaught[1]
        tabs[1].click("#clear")
        draw(tabs[1], STROKES["seven"])  # asks the server again
        assert shown_probabilities(tabs[1]) == untaught
        cookies = [context.cookies() for context in visitors]
        assert cookies[0][0]["value"] != cookies[1][0]["value"]
        assert all(c[0]["httpOnly"] and c[0]["sameSite"] == "Strict" for c in cookies)
    finally:
        for context in visitors:
            context.close()


def test_a_clicked_number_is_explained_next_to_the_maps(browser_page):
    """Click a pixel of the first convolution's output: the panel shows its nine window × filter terms and their sum,
    which is the number /api/unit computed, and the window is marked on the 28x28 image."""
    page, _, shots = browser_page
    page.click("#clear")
    draw(page, STROKES["seven"])
    settled(page, lambda: page.click("#labels button[data-digit='7']"))
    canvas = page.locator("#layers .layer[data-position='0'] [data-kind=output] canvas").first
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    page.evaluate("window.tinynet.unit = null")
    settled(page, lambda: page.mouse.click(box["x"] + box["width"] * 12.5 / 26,  # pixel (8, 12)
                                           box["y"] + box["height"] * 8.5 / 26))
    unit = page.evaluate("window.tinynet.unit")
    assert unit["index"] == [0, 8, 12] and unit["direction"] == "forward" and len(unit["terms"]) == 9
    assert unit["sum"] == pytest.approx(unit["value"], rel=1e-9, abs=1e-12)
    assert page.is_visible("#unit") and page.locator("#unit .term").count() == 9
    assert "Σ 9 terms + bias" in page.inner_text("#unit .sum")
    marked = page.evaluate("""(() => { const d = document.getElementById('seen').getContext('2d')
        .getImageData(0, 0, 28, 28).data; let n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i] > d[i + 1] + 40) n++; return n; })()""")
    assert marked == 9  # the 3x3 window, in orange
    top = page.evaluate("document.getElementById('layers-panel').getBoundingClientRect().top + window.scrollY")
    page.screenshot(path=str(shots / "page_unit.png"), full_page=True,  # the README's picture
                    clip={"x": 0, "y": top, "width": 1280, "height": 520})
    # A gradient's unit: backward through the last Dense, the chain rule over its ten outputs.
    vector = page.locator("#layers .layer[data-position='15'] [data-kind=grad] canvas").first
    vector.scroll_into_view_if_needed()
    box = vector.bounding_box()
    page.evaluate("window.tinynet.unit = null")
    settled(page, lambda: page.mouse.click(box["x"] + 4, box["y"] + 4))
    unit = page.evaluate("window.tinynet.unit")
    assert unit["layer"] == 16 and unit["direction"] == "backward" and len(unit["terms"]) == 10
    assert unit["sum"] == pytest.approx(unit["value"], rel=1e-9, abs=1e-15)


def test_the_page_can_be_used_without_a_mouse_and_read(browser_page):
    """aria-live prediction, aria-pressed labels, drawing by keyboard, targets of 24x24 px at least, text contrast
    of 4.5:1 at least (measured in Chromium on what it renders)."""
    page, _, _ = browser_page
    page.click("#clear")
    assert page.get_attribute("#prediction", "aria-live") == "polite"
    page.focus("#pad")

    def a_one():  # a vertical stroke
        for key in ["ArrowUp"] * 6 + ["Space"] + ["ArrowDown"] * 12 + ["Space"]:
            page.keyboard.press(key)

    settled(page, a_one)
    assert page.evaluate("window.tinynet.last.prediction") == 1
    assert max(page.evaluate("window.tinynet.last.image").__iter__().__next__()) == 0  # the ring is not ink
    page.click("#labels button[data-digit='1']")
    pressed = [page.get_attribute(f"#labels button[data-digit='{d}']", "aria-pressed") for d in range(10)]
    assert pressed == ["false"] + ["true"] + ["false"] * 8
    sizes = page.evaluate("""[...document.querySelectorAll('button, select, input')].filter(e => e.offsetParent)
        .map(e => { const b = e.getBoundingClientRect(); return [e.id || e.textContent, b.width, b.height]; })""")
    small = [size for size in sizes if size[1] < 24 or size[2] < 24]
    assert len(sizes) >= 15 and small == []
    low = page.evaluate("""(() => {
        const rgb = c => c.match(/[\\d.]+/g).map(Number);
        const luminance = ([r, g, b]) => [r, g, b].map(v => { v /= 255;
            return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
            .reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
        const background = e => { for (; e; e = e.parentElement) { const c = rgb(getComputedStyle(e).backgroundColor);
            if (c.length < 4 || c[3] > 0) return c.slice(0, 3); } return [255, 255, 255]; };
        const low = [];
        for (const e of document.querySelectorAll('body *')) {
            const text = [...e.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
            if (!text || !e.offsetParent || e.disabled) continue;
            const [a, b] = [luminance(rgb(getComputedStyle(e).color)), luminance(background(e))];
            const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
            if (ratio < 4.5) low.push([e.tagName, e.textContent.slice(0, 30), ratio]);
        }
        return low; })()""")
    assert low == []
