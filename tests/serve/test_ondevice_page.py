"""The page answering on the device, in Chromium against a real `digitrec serve`: digits drawn
with the mouse on the page are answered in the browser (the footer says so) as the server
answers the same drawing; with the server stopped, a reloaded page still draws and answers,
corrections made meanwhile wait in the browser and reach the server once it is back, each
stored once."""

# ruff: noqa: F811  (the fixtures imported from tests.helpers.browser are parameters here)
from __future__ import annotations

import base64
import io
import json
import sqlite3
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers import ROOT, benchmark, free_port
from tests.helpers.browser import (  # noqa: F401  (browser: the fixture, Chromium)
    ONE,
    SEVEN,
    browser,
    sync_api,
    wait_healthy,
)

pytestmark = pytest.mark.browser


class Server:
    """`digitrec serve` on a fixed port, which can be stopped and started again."""

    def __init__(self, port: int, data_dir: Path, log: Path):
        self.port, self.data_dir, self.log = port, data_dir, log
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cmd = benchmark("serve_load").serve_command(self.port, 1, str(self.data_dir))
        self.proc = subprocess.Popen(
            cmd, stdout=self.log.open("a"), stderr=subprocess.STDOUT, cwd=ROOT
        )
        wait_healthy(self.url, self.proc, self.log)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[Server]:
    server = Server(free_port(), tmp_path / "data", tmp_path / "server.log")
    server.start()
    yield server
    server.stop()


def answered(page) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    sync_api.expect(page.locator("#result")).to_have_attribute("aria-busy", "false", timeout=10_000)
    return page.locator("#answer").inner_text(), page.locator("#answered-by").inner_text().strip()


def server_answer(url: str, png: str) -> dict:
    body = json.dumps({"image": png}).encode()
    req = urllib.request.Request(
        f"{url}/api/v1/predict", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def pixels(data_url: str) -> np.ndarray:
    raw = base64.b64decode(data_url.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(raw)).convert("L"), np.int16)


def pen_strokes(n: int) -> list[dict]:
    """`n` pen-stroke digits in the page's logical pixels, with their labels; at most 16
    points a stroke (the mouse moves in straight lines between them)."""
    drawings = benchmark("ondevice").pen_drawings(n, seed=7)
    for d in drawings:
        d["strokes"] = [s[:: max(1, len(s) // 15)] + s[-1:] for s in d["strokes"]]
    return drawings


def draw(page, strokes) -> None:  # type: ignore[no-untyped-def]
    """Strokes drawn with the mouse, a few moves between their points."""
    box = page.locator("#canvas").bounding_box()
    at = lambda x, y: (box["x"] + x * box["width"] / 280, box["y"] + y * box["height"] / 280)  # noqa: E731
    for stroke in strokes:
        page.mouse.move(*at(*stroke[0]))
        page.mouse.down()
        for point in stroke[1:]:
            page.mouse.move(*at(*point), steps=2)
        page.mouse.up()


def test_drawn_digits_are_answered_on_the_device_as_the_server_answers(browser, own_server) -> None:  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1000, "height": 760})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(own_server.url + "/")
    page.wait_for_function(
        "() => document.documentElement.dataset.device === 'ready'", timeout=60_000
    )
    drawings = [ONE, SEVEN] + [d["strokes"] for d in pen_strokes(8)]
    for strokes in drawings:
        if page.locator("#clear").is_enabled():
            page.locator("#clear").click()
        draw(page, strokes)
        digit, side = answered(page)
        assert side == "· answered on this device"
        png = page.evaluate("document.getElementById('canvas').toDataURL('image/png')")
        theirs = server_answer(own_server.url, png)
        assert digit == (str(theirs["digit"]) if theirs["digit"] is not None else "?")
        ours = page.locator("#preprocessed").get_attribute("src")
        assert np.abs(pixels(ours) - pixels(theirs["preprocessed"])).max() <= 1
    context.close()
    assert not errors, errors


def test_offline_the_page_still_answers_and_queues_corrections(browser, own_server) -> None:  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1000, "height": 760})
    page = context.new_page()
    page.goto(own_server.url + "/")
    page.wait_for_function(
        "async () => !!(await navigator.serviceWorker.ready).active", timeout=60_000
    )
    page.reload()  # now under the service worker, which has kept the page, runtime and model
    page.wait_for_function(
        "() => document.documentElement.dataset.device === 'ready'", timeout=60_000
    )

    own_server.stop()
    page.reload()
    page.wait_for_function(
        "() => document.documentElement.dataset.device === 'ready'", timeout=60_000
    )
    drawings = pen_strokes(20)
    right = 0
    for i, d in enumerate(drawings):
        if page.locator("#clear").is_enabled():
            page.locator("#clear").click()
        draw(page, d["strokes"])
        digit, side = answered(page)
        assert side == "· answered on this device"
        right += digit == str(d["label"])
        if i < 5:  # a correction for each of the first five, whatever the answer
            page.locator(f"#correct-{(d['label'] + 1) % 10}").click()
            sync_api.expect(page.locator("#feedback-status")).not_to_have_text(
                "Saving…", timeout=10_000
            )
    assert right >= 15  # real handwriting, answered offline: most of it read right
    page.reload()  # the queue survives a reload
    page.wait_for_function(
        "() => document.documentElement.dataset.device === 'ready'", timeout=60_000
    )

    own_server.start()
    page.reload()  # the page's requests reach the server again: the worker sends the queue
    deadline = time.monotonic() + 20
    db = own_server.data_dir / "feedback.sqlite3"
    count = 0
    while time.monotonic() < deadline:
        if db.exists():
            count = sqlite3.connect(db).execute("SELECT COUNT(*) FROM feedback").fetchone()[0]
            if count >= 5:
                break
        time.sleep(0.3)
    page.reload()  # and once more: nothing is sent twice
    page.wait_for_timeout(1500)
    rows = sqlite3.connect(db).execute("SELECT label FROM feedback").fetchall()
    context.close()
    assert len(rows) == 5
    assert sorted(r[0] for r in rows) == sorted((d["label"] + 1) % 10 for d in drawings[:5])


def test_export_web_answers_from_a_static_host(browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`digitrec export-web DIR`, served by a plain static file server under a sub-path: the
    page loads from it alone and answers a drawing on the device."""
    import functools
    import http.server
    import threading

    from digitrec.webexport import export_web

    export_web(tmp_path / "site" / "digits")
    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "site")
    )
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    origin = f"http://127.0.0.1:{httpd.server_address[1]}"
    context = browser.new_context(viewport={"width": 1000, "height": 760})
    page = context.new_page()
    seen: list[str] = []
    page.on("request", lambda r: seen.append(r.url))
    try:
        page.goto(origin + "/digits/")
        page.wait_for_function(
            "() => document.documentElement.dataset.device === 'ready'", timeout=60_000
        )
        draw(page, SEVEN)
        assert answered(page) == ("7", "· answered on this device")
        assert page.locator("#model-name").inner_text().startswith("model: ")
    finally:
        context.close()
        httpd.shutdown()
    assert seen and all(u.startswith(origin + "/digits/") or u.startswith("data:") for u in seen), (
        seen
    )
