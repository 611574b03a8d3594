"""vision.canvas: real pen strokes drawn as the page draws them.

The renderer must give what the page sends: the same strokes drawn by the page's own code
(serve/static/app.js: state.strokes, resize, drawStroke) in Chromium at device pixel ratios 1-3
and exported with canvas.toDataURL, compared pixel by pixel and through preprocessing.
"""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest

from digitrec import realworld
from digitrec.errors import DataError
from digitrec.predictor import Predictor
from digitrec.vision import canvas, preprocess
from tests.helpers import ROOT

STATIC = ROOT / "src" / "digitrec" / "serve" / "static"
CHROMIUM = Path("/usr/bin/chromium")
TYPES = {"html": "text/html", "js": "text/javascript", "css": "text/css"}


def test_a_malformed_pen_file_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "strokes.jsonl"
    path.write_text('{"writer": 1, "label": 3, "strokes": [[[1, 2], [3, 4]]]}\n{"writer": 1}\n')
    with pytest.raises(DataError, match=r"strokes\.jsonl, row 2: .*strokes"):
        canvas.load_pen(path)
    path.write_text('{"writer": 1, "label": 12, "strokes": [[[1, 2]]]}\n')
    with pytest.raises(DataError, match="label 0-9"):
        canvas.load_pen(path)


def test_place_keeps_the_aspect_and_turns_y_up_into_y_down() -> None:
    tall = [np.array([[0.0, 0.0], [10.0, 100.0]])]  # y up: the second point is the top
    (points,) = canvas.place(tall, (0, 0, 280, 280))
    assert points[:, 1].min() == pytest.approx(0) and points[:, 1].max() == pytest.approx(280)
    assert np.ptp(points[:, 0]) == pytest.approx(28)  # 10:100, centred in the box
    assert points[1, 1] < points[0, 1]  # the top point is drawn on top


def test_numbers_compose_left_to_right_inside_the_canvas() -> None:
    digits = canvas.load_pen(realworld.PEN_FILE)[:5]
    rng = np.random.default_rng(3)
    placed = canvas.compose([d.strokes for d in digits], rng)
    lefts = [min(p[:, 0].min() for p in d) for d in placed]
    assert lefts == sorted(lefts)
    every = np.vstack([p for d in placed for p in d])
    assert every.min() >= 0 and every[:, 0].max() <= 560 and every[:, 1].max() <= 280


@pytest.mark.browser
def test_strokes_render_as_the_page_draws_them_in_chromium() -> None:
    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    pen = canvas.load_pen(realworld.PEN_FILE)
    rng = np.random.default_rng(0)
    cases = []
    for i, dpr in zip(rng.choice(len(pen), 18, replace=False), (1, 2, 3) * 6, strict=True):
        h = rng.uniform(120, 250)
        box = (rng.uniform(0, 280 - 0.8 * h), rng.uniform(0, 280 - h), 0.8 * h, h)
        cases.append((canvas.place(pen[i].strokes, box), float(rng.choice([6, 10, 20, 40])), dpr))

    def serve_static(route) -> None:  # type: ignore[no-untyped-def]
        name = (
            route.request.url.split("/static/")[-1]
            if "/static/" in route.request.url
            else "index.html"
        )
        route.fulfill(status=200, body=(STATIC / name).read_bytes(),
                      headers={"content-type": TYPES[name.rsplit(".", 1)[1]]})  # fmt: skip

    exported = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        for dpr in (1, 2, 3):
            page = browser.new_page(device_scale_factor=dpr)
            page.route("http://digitrec.test/**", serve_static)
            page.goto("http://digitrec.test/")
            for points, brush, d in cases:
                if d == dpr:  # the page's own drawing code, then the export it sends
                    url = page.evaluate(
                        "(s) => { state.strokes = s; resize(); "
                        "return canvas.toDataURL('image/png'); }",
                        [{"size": brush, "points": q.tolist()} for q in points],
                    )
                    exported.append((base64.b64decode(url.split(",", 1)[1]), points, brush, d))
            page.close()
        browser.close()

    predictor = Predictor.load(None)
    pixel_diffs, image_diffs, same = [], [], 0
    for chrome, points, brush, dpr in exported:
        ours = canvas.to_png(canvas.draw(points, brush, dpr=dpr))
        a, b = preprocess.canvas_alpha(chrome), preprocess.canvas_alpha(ours)
        assert a is not None and b is not None and a.shape == b.shape
        inked = (a > 0) | (b > 0)
        pixel_diffs.append(np.abs(a.astype(int) - b)[inked].mean())
        x, y = preprocess.preprocess(chrome), preprocess.preprocess(ours)
        assert x is not None and y is not None
        image_diffs.append(np.abs(x - y).mean() * 255)
        same += predictor.predict(chrome).digit == predictor.predict(ours).digit
    # on the pixels either one inked: within a few grey levels (anti-aliasing of the rims)
    assert np.median(pixel_diffs) <= 6, pixel_diffs
    # what the model sees: typically within a grey level; the answer the same every time
    assert np.median(image_diffs) <= 1.0, image_diffs
    assert same == len(exported)
