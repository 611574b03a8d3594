"""The web page in a real browser: Debian's Chromium driven by Playwright, against a real
`digitrec serve` subprocess with the real shipped model.

Draws digits with the mouse and with touch, uploads a photo, sends a correction and finds it
in the SQLite store; fixes a digit of a number read (the crop the page cuts out reads as that
digit); keeps the answer on a phone's screen while drawing; loads nothing from elsewhere and
runs under a strict Content-Security-Policy. Screenshots go to artifacts/ (git-ignored);
DOCS_SHOT regenerates docs/screenshot.png when DIGITREC_SCREENSHOT=1.
"""

# ruff: noqa: F811  (the fixtures imported from tests.helpers.browser are parameters here)
from __future__ import annotations

import base64
import io
import json
import os
import re
import sqlite3
import urllib.request
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFilter

from tests.helpers import ROOT
from tests.helpers.browser import (  # noqa: F401  (fixtures)
    NUMBER_17,
    ONE,
    SEVEN,
    browser,
    draw_with_mouse,
    expect_answer,
    page,
    server,
    sync_api,
    to_screen,
)

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "artifacts"
DOCS_SHOT = ROOT / "docs" / "screenshot.png"


def shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def test_draw_a_one_and_a_seven(page) -> None:  # type: ignore[no-untyped-def]
    sync_api.expect(page.locator("#answer")).to_have_text("?")
    draw_with_mouse(page, ONE)
    expect_answer(page, "1")
    assert "%" in page.locator("#confidence").inner_text()
    assert page.locator("#probabilities .bar").count() == 10
    assert page.locator("#probabilities .bar.best .bar-digit").inner_text() == "1"
    assert page.locator("#preprocessed").get_attribute("src").startswith("data:image/png")
    shot(page, "draw-1.png")

    page.locator("#clear").click()
    sync_api.expect(page.locator("#answer")).to_have_text("?")
    draw_with_mouse(page, SEVEN)
    expect_answer(page, "7")
    chips = page.locator("#top3 li").all_inner_texts()  # the top three, less any "0%" ones
    assert 1 <= len(chips) <= 3 and chips[0].startswith("7"), chips
    assert not [c for c in chips if c.endswith(" 0%")], chips
    shot(page, "draw-7.png")
    if os.environ.get("DIGITREC_SCREENSHOT"):
        page.screenshot(path=str(DOCS_SHOT))

    page.locator("#undo").click()  # the only stroke: back to the empty state
    sync_api.expect(page.locator("#answer")).to_have_text("?")


def test_upload_a_photo(page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # A grey-paper "photo" of a 7 in dark ink, slightly blurred, as a JPEG.
    photo = Image.new("RGB", (640, 480), (205, 200, 190))
    ImageDraw.Draw(photo).line([(230, 110), (410, 105), (300, 390)], fill=(40, 40, 60), width=26)
    path = tmp_path / "seven.jpg"
    photo.filter(ImageFilter.GaussianBlur(2)).save(path, quality=85)
    page.locator("#file").set_input_files(str(path))
    expect_answer(page, "7")
    shot(page, "upload-7.png")


def test_keyboard_reaches_the_upload_control_and_shows_focus(page) -> None:  # type: ignore[no-untyped-def]
    for _ in range(12):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "file":
            break
    else:
        pytest.fail("Tab never reached the upload control")
    outline = page.evaluate(
        "getComputedStyle(document.querySelector('label[for=file]')).outlineStyle"
    )
    assert outline == "solid"


def test_drop_an_image_on_the_drawing_area(page) -> None:  # type: ignore[no-untyped-def]
    image = Image.new("L", (200, 200), 255)
    ImageDraw.Draw(image).line([(100, 25), (98, 175)], fill=0, width=16)
    buf = io.BytesIO()
    image.save(buf, "PNG")
    page.evaluate(
        """async (b64) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const data = new DataTransfer();
            data.items.add(new File([bytes], "one.png", { type: "image/png" }));
            document.getElementById("stage").dispatchEvent(
                new DragEvent("drop", { dataTransfer: data, bubbles: true, cancelable: true }));
        }""",
        base64.b64encode(buf.getvalue()).decode(),
    )
    expect_answer(page, "1")


def test_a_file_that_is_not_an_image_is_explained(page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "notes.png"
    path.write_bytes(b"these are not pixels")
    page.locator("#file").set_input_files(str(path))
    sync_api.expect(page.locator("#error")).to_contain_text("not an image", timeout=10_000)
    draw_with_mouse(page, ONE)  # and the page still works
    expect_answer(page, "1")
    sync_api.expect(page.locator("#error")).to_have_text("")


def test_a_413_is_readable_by_fetch(page) -> None:  # type: ignore[no-untyped-def]
    # From the server's own page: same origin, no CORS. 6 MB, over the 5 MB default limit;
    # a reset connection would make fetch throw ("Failed to fetch") instead of answering.
    status, text = page.evaluate(
        """async () => {
            const body = new Uint8Array(6 << 20);
            const answer = await fetch("/api/v1/predict", {
                method: "POST", body, headers: { "Content-Type": "image/png" },
            });
            return [answer.status, await answer.text()];
        }"""
    )
    assert status == 413
    assert "limit" in json.loads(text)["error"]
    again = page.evaluate("async () => (await fetch('/healthz')).status")
    assert again == 200  # and the page's next request is answered


def test_correction_is_stored(page, server) -> None:  # type: ignore[no-untyped-def]
    _, data_dir = server
    draw_with_mouse(page, SEVEN)
    expect_answer(page, "7")
    sync_api.expect(page.locator("#correct-2")).to_be_enabled()
    page.locator("#correct-2").click()
    sync_api.expect(page.locator("#feedback-status")).to_contain_text("Saved as a 2")
    page.wait_for_timeout(500)  # a late answer for the same drawing must not undo it
    sync_api.expect(page.locator("#feedback-status")).to_contain_text("Saved as a 2")
    sync_api.expect(page.locator("#correct-2")).to_have_class(re.compile("chosen"))
    with sqlite3.connect(data_dir / "feedback.sqlite3") as db:
        rows = db.execute("SELECT label, predicted, model, image FROM feedback").fetchall()
    assert [(label, predicted) for label, predicted, _, _ in rows] == [(2, 7)]
    assert rows[0][2]  # the model's name
    width, height = Image.open(io.BytesIO(rows[0][3])).size
    assert width == height >= 256  # the whole (square) canvas as drawn, kept at up to 256 px
    shot(page, "correction.png")


def touch_stroke(page, stroke, lift: bool = True) -> None:  # type: ignore[no-untyped-def]
    """One stroke of real touch input through the DevTools protocol: touchstart, touchmove...,
    and touchend unless `lift` is False (the finger stays on the screen)."""
    cdp = page.context.new_cdp_session(page)
    points = [to_screen(page, *p) for p in stroke]
    cdp.send(
        "Input.dispatchTouchEvent",
        {"type": "touchStart", "touchPoints": [{"x": points[0][0], "y": points[0][1]}]},
    )
    for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
        for k in range(1, 7):
            x, y = x0 + (x1 - x0) * k / 6, y0 + (y1 - y0) * k / 6
            cdp.send(
                "Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]}
            )
    if lift:
        cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


# The answer as the person sees it: #answer with #confidence, or the peek by the mode switch,
# wholly inside the viewport, visible and not covered by anything else.
VISIBLE_ANSWER = """() => {
    const seen = (el) => {
        if (!el || !el.checkVisibility({ visibilityProperty: true, opacityProperty: true })) {
            return false;
        }
        const r = el.getBoundingClientRect();
        if (!r.width || r.top < 0 || r.left < 0) return false;
        if (r.bottom > innerHeight || r.right > innerWidth) return false;
        const top = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
        return el.contains(top);
    };
    const $ = (id) => document.getElementById(id);
    if (seen($("answer")) && seen($("confidence"))) {
        return { answer: $("answer").innerText, confidence: $("confidence").innerText };
    }
    if (seen($("peek-answer")) && seen($("peek-confidence"))) {
        return { answer: $("peek-answer").innerText, confidence: $("peek-confidence").innerText };
    }
    return null;
}"""


@pytest.mark.parametrize(
    ("height", "mode"),
    [
        (740, "digit"),  # a 360 x 740 phone
        (640, "digit"),  # the same phone less the browser's address and navigation bars
        (740, "number"),
    ],
)
def test_phone_answer_in_view_while_drawing(browser, server, height: int, mode: str) -> None:  # type: ignore[no-untyped-def]
    context = browser.new_context(
        viewport={"width": 360, "height": height},
        has_touch=True,
        is_mobile=True,
        device_scale_factor=2,
        color_scheme="dark",  # the other theme gets looked at too
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server[0] + "/")
    if mode == "number":
        page.locator("#mode-number").tap()
        sync_api.expect(page.locator("#mode-number")).to_have_attribute("aria-pressed", "true")
        *first, last = NUMBER_17
        for stroke in first:
            touch_stroke(page, [(x / 2, y) for x, y in stroke])  # to_screen's 280 wide
        touch_stroke(page, [(x / 2, y) for x, y in last], lift=False)
        expected = "17"
    else:
        touch_stroke(page, ONE[0], lift=False)
        expected = "1"
    expect_answer(page, expected, "live")  # answered while the finger is still on the drawing
    seen = page.evaluate(VISIBLE_ANSWER)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"phone-{mode}-{height}-view.png"))
    assert seen is not None, "the answer is off screen while drawing"
    assert seen["answer"] == expected
    assert "%" not in seen["confidence"], seen  # provisional: no "100% sure" of a half digit
    # The announcement for screen readers waits for the final answer (in number mode, the
    # first stroke's "1" was final: the pen lifted).
    assert expected not in page.locator("#announce").inner_text()
    # Nothing wider than the phone (no sideways scrolling), and drawing did not scroll the page.
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    assert page.evaluate("window.scrollY") == 0
    context.close()
    assert not errors, errors


def test_number_mode_reads_and_boxes(page) -> None:  # type: ignore[no-untyped-def]
    page.locator("#mode-number").click()
    sync_api.expect(page.locator("#mode-number")).to_have_attribute("aria-pressed", "true")
    draw_with_mouse(page, NUMBER_17, logical_width=560)
    expect_answer(page, "17")
    boxed = page.evaluate(
        """() => {
            const c = document.getElementById("overlay");
            const px = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
            let n = 0;
            for (let i = 3; i < px.length; i += 4) n += px[i] > 0;
            return n;
        }"""
    )
    assert boxed > 500  # the two boxes are drawn over the number
    shot(page, "number-17.png")


# --- what the page loads: nothing from elsewhere, no inline script ------------------------

STATIC = ROOT / "src" / "digitrec" / "serve" / "static"
# As strict as a public deployment's: scripts, styles and requests from the page's own origin.
STRICT_CSP = (
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; "
    "img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'"
)


def test_the_page_loads_nothing_from_third_parties(browser, server) -> None:  # type: ignore[no-untyped-def]
    url = server[0]
    context = browser.new_context(viewport={"width": 1000, "height": 760})
    page = context.new_page()
    seen: list[str] = []
    page.on("request", lambda r: seen.append(r.url))
    page.goto(url + "/")
    draw_with_mouse(page, ONE)
    expect_answer(page, "1")
    page.locator("#clear").click()
    page.locator("#mode-number").click()
    draw_with_mouse(page, NUMBER_17, logical_width=560)
    expect_answer(page, "17")
    page.wait_for_load_state("networkidle")
    context.close()
    paths = {r.removeprefix(url) for r in seen}
    # A drawn digit is answered on the device (ondevice.js); a number by the server.
    assert {"/", "/static/app.js", "/static/style.css", "/api/v1/read"} <= paths, seen
    elsewhere = [r for r in seen if not r.startswith((url + "/", "data:", "blob:"))]
    assert not elsewhere, elsewhere


def test_the_page_has_no_inline_script() -> None:
    html = (STATIC / "index.html").read_text()
    scripts = re.findall(r"<script\b[^>]*>", html, flags=re.I)
    assert scripts and all(re.search(r"\bsrc=", tag) for tag in scripts), scripts
    assert not re.findall(r"<[^>]*\son[a-z]+\s*=", html, flags=re.I)  # onclick=... handlers
    assert "javascript:" not in html.lower()


def test_the_page_works_under_a_strict_content_security_policy(browser, server) -> None:  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1000, "height": 760})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.add_init_script(
        "window.violations = [];"
        "document.addEventListener('securitypolicyviolation',"
        " (e) => window.violations.push(`${e.violatedDirective} ${e.blockedURI}`));"
    )

    def with_csp(route) -> None:  # type: ignore[no-untyped-def]
        response = route.fetch()
        route.fulfill(
            response=response,
            headers={**response.headers, "content-security-policy": STRICT_CSP},
        )

    own = server[0] + "/"
    page.route(lambda u: u.startswith(own) and not u.startswith(own + "api/"), with_csp)
    page.goto(server[0] + "/")
    draw_with_mouse(page, SEVEN)
    expect_answer(page, "7")  # the script ran, drew, asked the server and showed the answer
    sync_api.expect(page.locator("#preprocessed")).to_have_attribute(
        "src", re.compile("^data:image/png")
    )
    assert page.evaluate("window.violations") == []
    context.close()
    assert not errors, errors


# --- number mode: fixing a digit -----------------------------------------------------------


def read_crop(url: str, image: str) -> int | None:
    """What the server's model reads in a crop the page sent (a data URL)."""
    req = urllib.request.Request(
        f"{url}/api/v1/predict",
        data=json.dumps({"image": image}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)["digit"]  # type: ignore[no-any-return]


def crop_size(image: str) -> tuple[int, int]:
    assert image.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(image.split(",", 1)[1]))).size  # type: ignore[no-any-return]


def test_number_mode_fix_a_misread_digit(page, server) -> None:  # type: ignore[no-untyped-def]
    url, _ = server
    page.locator("#mode-number").click()
    draw_with_mouse(page, NUMBER_17, logical_width=560)
    expect_answer(page, "17")
    chips = page.locator("#read-digits .read-digit")
    sync_api.expect(chips).to_have_count(2)
    sync_api.expect(page.locator("#fix-picker")).to_be_hidden()
    chips.nth(1).click()  # "that 7 is wrong"
    sync_api.expect(chips.nth(1)).to_have_attribute("aria-expanded", "true")
    sync_api.expect(page.locator("#picker-label")).to_have_text("Digit 2 was a…")
    body = choose_fix(page, 2)
    assert (body["label"], body["predicted"]) == (2, 7)
    # The 7 alone, cut out of the drawing: under half the 560 px wide canvas, and read as a 7.
    width, _ = crop_size(body["image"])
    assert width < 280
    assert read_crop(url, body["image"]) == 7

    sync_api.expect(page.locator("#answer")).to_have_text("12")
    sync_api.expect(page.locator("#verdict")).to_have_text("You fixed it: 12")
    sync_api.expect(page.locator("#number-status")).to_contain_text("Saved 12")
    sync_api.expect(chips.nth(1)).to_contain_text("2")
    sync_api.expect(chips.nth(1)).to_contain_text("not 7")
    sync_api.expect(page.locator("#fix-picker")).to_be_hidden()
    page.wait_for_timeout(500)  # a late answer for the same drawing must not undo the fix
    sync_api.expect(page.locator("#answer")).to_have_text("12")
    page.evaluate(
        "window.scrollTo(0, 0)"
    )  # a full-page shot of a scrolled page moves the sticky bar
    shot(page, "number-fixed-12.png")

    page.locator("#clear").click()  # a new drawing: nothing left to fix
    sync_api.expect(page.locator("#number-fix")).to_be_hidden()


def choose_fix(page, digit: int) -> dict:  # type: ignore[no-untyped-def]
    """Pick `digit` in the open picker: the correction it stores (201), as the page sent it."""
    with page.expect_response("**/api/v1/feedback") as sent:
        page.locator(f"#fix-{digit}").click()
    assert sent.value.status == 201
    return sent.value.request.post_data_json


def test_number_mode_fix_a_digit_of_a_photo(page, server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url, _ = server
    # A grey-paper photo of "17" in dark ink, as a JPEG.
    photo = Image.new("RGB", (640, 320), (205, 200, 190))
    draw = ImageDraw.Draw(photo)
    draw.line([(170, 60), (165, 260)], fill=(40, 40, 60), width=22)
    draw.line([(340, 70), (480, 65), (390, 265)], fill=(40, 40, 60), width=22)
    path = tmp_path / "seventeen.jpg"
    photo.filter(ImageFilter.GaussianBlur(1.5)).save(path, quality=88)
    page.locator("#mode-number").click()
    page.locator("#file").set_input_files(str(path))
    expect_answer(page, "17")
    page.locator("#read-digits .read-digit").nth(0).click()
    body = choose_fix(page, 4)
    assert (body["label"], body["predicted"]) == (4, 1)
    # The 1 cut out of the photo with some paper round it, short of the 7.
    width, height = crop_size(body["image"])
    assert width < 170 and height < 320
    assert read_crop(url, body["image"]) == 1
    sync_api.expect(page.locator("#answer")).to_have_text("47")


def make_uncertain(route) -> None:  # type: ignore[no-untyped-def]
    """The server's reading with its second digit made uncertain, as the API gives one."""
    response = route.fetch()
    reading = response.json()
    if len(reading["digits"]) < 2:  # asked halfway through the drawing
        route.fulfill(response=response)
        return
    reading.update(text=None, reason="uncertain", confidence=0.41)
    reading["digits"][1].update(
        confidence=0.45,
        candidates=[
            {"digit": 7, "probability": 0.45},
            {"digit": 1, "probability": 0.38},
            {"digit": 2, "probability": 0.09},
        ],
    )
    route.fulfill(response=response, json=reading)


def draw_an_uncertain_17(page) -> None:  # type: ignore[no-untyped-def]
    """Number mode, a 17 drawn, and the server's answer made uncertain about its 7."""
    page.route("**/api/v1/read", make_uncertain)
    page.locator("#mode-number").click()
    draw_with_mouse(page, NUMBER_17, logical_width=560)
    expect_answer(page, "1?")


def test_number_mode_uncertain_digit_shows_candidates_and_asks(page) -> None:  # type: ignore[no-untyped-def]
    draw_an_uncertain_17(page)
    sync_api.expect(page.locator("#verdict")).to_have_text("Not sure: is it 17?")
    chip = page.locator("#read-digits .read-digit").nth(1)
    sync_api.expect(chip).to_contain_text("7 or 1 or 2?")
    sync_api.expect(page.locator("#confirm-number")).to_have_text("Yes, it's 17")
    shot(page, "number-uncertain.png")

    chip.click()
    for likely in (7, 1, 2):
        sync_api.expect(page.locator(f"#fix-{likely}")).to_have_class(re.compile("likely"))
    sync_api.expect(page.locator("#fix-5")).not_to_have_class(re.compile("likely"))
    with page.expect_response("**/api/v1/feedback") as sent:
        page.locator("#fix-1").click()  # "it was a 1": the number is 11
    body = sent.value.request.post_data_json
    assert (body["label"], body["predicted"]) == (1, None)  # the model gave no answer for it
    sync_api.expect(page.locator("#answer")).to_have_text("11")
    sync_api.expect(page.locator("#number-status")).to_contain_text("Saved 11")
    sync_api.expect(page.locator("#confirm-number")).to_be_hidden()


def test_number_mode_confirm_an_uncertain_reading(page) -> None:  # type: ignore[no-untyped-def]
    draw_an_uncertain_17(page)
    with page.expect_response("**/api/v1/feedback") as sent:
        page.locator("#confirm-number").click()
    assert sent.value.status == 201
    body = sent.value.request.post_data_json
    assert (body["label"], body["predicted"]) == (7, None)  # only the uncertain digit
    sync_api.expect(page.locator("#answer")).to_have_text("17")
    sync_api.expect(page.locator("#verdict")).to_have_text("You confirmed it: 17")
    sync_api.expect(page.locator("#confirm-number")).to_be_hidden()
    sync_api.expect(page.locator("#number-status")).to_contain_text("Saved 17")


# --- corrections the server does not keep --------------------------------------------------


def test_a_rate_limited_correction_is_explained(page) -> None:  # type: ignore[no-untyped-def]
    page.route(
        "**/api/v1/feedback",
        lambda route: route.fulfill(
            status=429,
            headers={"Retry-After": "30"},
            json={"error": "too many corrections from this address"},
        ),
    )
    draw_with_mouse(page, SEVEN)
    expect_answer(page, "7")
    page.locator("#correct-2").click()
    status = page.locator("#feedback-status")
    sync_api.expect(status).to_contain_text("too many corrections from this address")
    sync_api.expect(status).to_contain_text("try again in 30 s")
    sync_api.expect(status).to_have_class(re.compile("problem"))
    sync_api.expect(page.locator("#correct-2")).not_to_have_class(re.compile("chosen"))


def test_a_full_store_is_explained_in_number_mode(page) -> None:  # type: ignore[no-untyped-def]
    page.route(
        "**/api/v1/feedback",
        lambda route: route.fulfill(status=507, json={"error": "the feedback store is full"}),
    )
    page.locator("#mode-number").click()
    draw_with_mouse(page, NUMBER_17, logical_width=560)
    expect_answer(page, "17")
    page.locator("#read-digits .read-digit").nth(1).click()
    page.locator("#fix-2").click()
    status = page.locator("#number-status")
    sync_api.expect(status).to_contain_text("Not saved: the feedback store is full")
    sync_api.expect(status).to_contain_text("please try saving again later")
    sync_api.expect(status).to_have_class(re.compile("problem"))

    page.unroute("**/api/v1/feedback")  # the store has room again: choosing the digit retries
    page.locator("#read-digits .read-digit").nth(1).click()
    with page.expect_response("**/api/v1/feedback") as sent:
        page.locator("#fix-2").click()
    assert sent.value.status == 201
    sync_api.expect(status).to_contain_text("Saved 12")
    sync_api.expect(status).not_to_have_class(re.compile("problem"))
