"""Chromium (Debian's, driven by Playwright) against a real `digitrec serve` subprocess with the
real shipped model: the fixtures and drawing helpers of the browser tests (tests/serve/
test_serve_browser.py, test_serve_page.py, test_ondevice_page.py, test_ondevice_parity.py).
Importing it skips the importing test module where Chromium, Playwright or a model is missing."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import ROOT, benchmark, free_port

CHROMIUM = Path("/usr/bin/chromium")

if not CHROMIUM.exists():
    pytest.skip("no /usr/bin/chromium (apt-get install chromium)", allow_module_level=True)
if not list((ROOT / "models").glob("*.onnx")):
    pytest.skip("no shipped model in models/ yet", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")

# Strokes in the canvas's logical pixels (280 x 280), several points each.
ONE = [[(150, 45), (146, 100), (142, 160), (138, 235)]]
SEVEN = [[(65, 60), (140, 58), (215, 60), (180, 120), (150, 180), (125, 240)]]
NUMBER_17 = [
    [(110, 50), (108, 140), (105, 230)],
    [(300, 60), (370, 58), (440, 60), (410, 130), (380, 190), (360, 240)],
]


def wait_healthy(
    url: str, proc: subprocess.Popen[bytes], log: Path, flush: Callable[[], object] = lambda: None
) -> None:
    """Until `url`/healthz answers 200 (30 s at most); a server that exits or never answers
    fails the test with its log."""
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            flush()
            pytest.fail(f"server did not start:\n{log.read_text()}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    data_dir = tmp_path_factory.mktemp("data")
    port = free_port()
    log = (tmp_path_factory.mktemp("log") / "server.log").open("w")
    proc = subprocess.Popen(
        benchmark("serve_load").serve_command(port, 1, str(data_dir)),
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, Path(log.name), log.flush)
        yield url, data_dir
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield b
        b.close()


@pytest.fixture
def page(browser, server):  # type: ignore[no-untyped-def]
    # No service worker (static/sw.js): the tests' page.route answers must reach the page
    # (tests/serve/test_ondevice_page.py tests the worker).
    context = browser.new_context(viewport={"width": 1000, "height": 760}, service_workers="block")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server[0] + "/")
    yield page
    context.close()
    assert not errors, errors  # no JavaScript errors


def to_screen(page, x: float, y: float, logical_width: int = 280):  # type: ignore[no-untyped-def]
    box = page.locator("#canvas").bounding_box()
    return box["x"] + x * box["width"] / logical_width, box["y"] + y * box["height"] / 280


def draw_with_mouse(page, strokes, logical_width: int = 280) -> None:  # type: ignore[no-untyped-def]
    for stroke in strokes:
        page.mouse.move(*to_screen(page, *stroke[0], logical_width))
        page.mouse.down()
        for point in stroke[1:]:
            page.mouse.move(*to_screen(page, *point, logical_width), steps=6)
        page.mouse.up()


def expect_answer(page, text: str, shown: str = "final") -> None:  # type: ignore[no-untyped-def]
    """The answer to the finished drawing (`shown` "final"), not to a request sent halfway
    through it; or, `shown` "live", the provisional one while the pen is still down."""
    result = page.locator("#result")
    sync_api.expect(result).to_have_attribute("aria-busy", "false", timeout=10_000)
    sync_api.expect(result).to_have_attribute("data-answer", shown)
    sync_api.expect(page.locator("#answer")).to_have_text(text)
