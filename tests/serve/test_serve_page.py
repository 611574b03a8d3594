"""The page as people use it, in Chromium: a phone writing real pen numbers (one request in
flight, images at the logical size, no layout shift, final answers announced), every kind of
correction of a number stored as its row, honest words for uncertain digits, axe-core in every
state at 1280 and 360 px, the keyboard and its focus rings, touch targets and contrast.

The server, the browser and the `page` (1000 x 760) come from tests/helpers/browser.py; the real
strokes and the page's instrumentation from benchmarks/page_phone.py. Timings are not asserted
here (the benchmark prints them), only what a person would notice.
"""

# ruff: noqa: F811  (the fixtures imported from tests.helpers.browser are parameters here)
from __future__ import annotations

import re
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ROOT, benchmark
from tests.helpers.browser import (  # noqa: F401  (fixtures)
    NUMBER_17,
    browser,
    draw_with_mouse,
    expect_answer,
    page,
    server,
    sync_api,
    to_screen,
)

pytestmark = pytest.mark.browser

bench = benchmark("page_phone")
AXE = ROOT / ".venv" / "axe" / "node_modules" / "axe-core" / "axe.min.js"


@pytest.fixture(scope="module")
def real_digits() -> list[dict[str, Any]]:
    if not bench.STROKES.exists():
        pytest.fail(f"no real strokes at {bench.STROKES}")
    return bench.load_digits()  # type: ignore[no-any-return]


def phone(browser, server) -> Any:  # type: ignore[no-untyped-def]
    """A 360 x 740 phone, device scale 3, touch, with the page instrumented."""
    context = browser.new_context(
        viewport={"width": 360, "height": 740}, device_scale_factor=3, is_mobile=True,
        has_touch=True, service_workers="block",  # the page's own requests, seen and routed
    )  # fmt: skip
    page = context.new_page()
    page.add_init_script(bench.INSTRUMENT)
    page.goto(server[0] + "/")
    return context, page


def touch_digit(page, cdp, strokes, logical_width: int = 560) -> None:  # type: ignore[no-untyped-def]
    """A digit's strokes by touch at a person's pace (a point every 10 ms)."""
    box = page.locator("#canvas").bounding_box()
    for k, stroke in enumerate(strokes):
        if k:
            time.sleep(bench.STROKE_GAP_MS / 1000)
        start = time.perf_counter()
        for i, (lx, ly) in enumerate(stroke):
            x = box["x"] + lx * box["width"] / logical_width
            y = box["y"] + ly * box["height"] / 280
            kind = "touchStart" if i == 0 else "touchMove"
            cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [{"x": x, "y": y}]})
            time.sleep(max(0.0, start + (i + 1) * bench.POINT_MS / 1000 - time.perf_counter()))
        cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


# --- a phone writing numbers ------------------------------------------------------------------


def test_phone_number_mode_keeps_up_with_real_pen_numbers(browser, server, real_digits) -> None:  # type: ignore[no-untyped-def]
    context, page = phone(browser, server)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    sent: list[str] = []
    page.on(
        "request",
        lambda r: (
            sent.append(r.post_data_json["image"]) if r.url.endswith("/api/v1/read") else None
        ),
    )
    page.locator("#mode-number").tap()
    page.evaluate(
        """() => {  // what #announce said, for screen readers, and when
            window.__said = [];
            new MutationObserver(() => {
                const text = document.getElementById("announce").textContent;
                if (text) window.__said.push([performance.now(), text]);
            }).observe(document.getElementById("announce"),
                       { childList: true, characterData: true, subtree: true });
        }"""
    )
    cdp = page.context.new_cdp_session(page)
    six = bench.numbers(real_digits, 1, seed=7, sizes=(6, 6))[0]
    four = bench.numbers(real_digits, 1, seed=8, sizes=(4, 4))[0]
    for number in (six, four):
        for k, strokes in enumerate(bench.number_strokes(number)):
            if k:
                time.sleep(bench.DIGIT_GAP_MS / 1000)
            touch_digit(page, cdp, strokes)
        expect_answer(page, re.compile(r"^\d+$"))  # a final answer to the whole number
        sync_api.expect(page.locator("#read-digits .read-digit")).not_to_have_count(0)
        page.locator("#clear").tap()
        sync_api.expect(page.locator("#answer")).to_have_text("?")
    m = page.evaluate("window.__page")
    said = page.evaluate("window.__said")
    context.close()
    assert not errors, errors

    assert m["maxInflight"] == 1, m["maxInflight"]  # one request at a time, always
    assert m["asked"] >= 2 * len(m["ups"]) // 3  # yet answers came while writing
    # Drawn again at the logical size (560 x 280), not at the phone's 1680 x 840 pixels.
    assert {bench_size(image) for image in sent} == {(560, 280)}
    # The drawing area never moved under the finger: its top at every pointer event.
    tops = {round(t, 1) for t in m["tops"]}
    assert len(tops) == 1, tops
    # Screen readers hear final answers only: each announcement came as a final answer did.
    assert said and len(said) <= len(m["finals"])
    finals = m["finals"]
    assert all(min(abs(t - f) for f in finals) < 50 for t, _ in said), (said, finals)


def bench_size(image: str) -> tuple[int, int]:
    import base64
    import io

    from PIL import Image

    return Image.open(io.BytesIO(base64.b64decode(image.split(",", 1)[1]))).size  # type: ignore[no-any-return]


def test_a_live_answer_is_provisional_and_the_final_one_says_how_sure(page) -> None:  # type: ignore[no-untyped-def]
    box = page.locator("#canvas").bounding_box()
    page.mouse.move(box["x"] + 150 / 280 * box["width"], box["y"] + 45 / 280 * box["height"])
    page.mouse.down()
    for y in (100, 160, 235):
        page.mouse.move(
            box["x"] + 145 / 280 * box["width"], box["y"] + y / 280 * box["height"], steps=6
        )
    expect_answer(page, "1", "live")
    assert "%" not in page.locator(".answer-row").inner_text()  # no "100% sure" of a half digit
    assert "%" not in page.locator("#peek").inner_text()
    sync_api.expect(page.locator("#verdict")).to_have_text("Looks like a 1 so far")
    sync_api.expect(page.locator("#correct-1")).to_be_disabled()
    page.mouse.up()
    expect_answer(page, "1")
    sync_api.expect(page.locator("#verdict")).to_have_text("It's a 1")
    sync_api.expect(page.locator("#confidence")).to_have_text(re.compile(r"\d+(\.\d)?% sure"))
    sync_api.expect(page.locator("#announce")).to_have_text(re.compile(r"It's a 1, \d"))
    sync_api.expect(page.locator("#correct-1")).to_be_enabled()


# --- corrections of a number: each kind stores its row ------------------------------------------


def read_17(page) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Number mode, a 17 drawn with the mouse: the server's final reading of it."""
    page.locator("#mode-number").click()
    answers: list[Any] = []
    page.on("response", lambda r: answers.append(r) if r.url.endswith("/api/v1/read") else None)
    draw_with_mouse(page, NUMBER_17, logical_width=560)
    expect_answer(page, "17")
    reading = answers[-1].json()  # the last one asked: the final answer
    assert [d["digit"] for d in reading["digits"]] == [1, 7]
    return reading  # type: ignore[no-any-return]


def rows(data_dir: Path) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """(feedback rows: label, predicted), (readings rows: read, text, boxes, changes, drawing)."""
    with sqlite3.connect(data_dir / "feedback.sqlite3") as db:
        digits = db.execute("SELECT label, predicted FROM feedback ORDER BY id").fetchall()
        numbers = db.execute(
            "SELECT read, text, boxes, changes, drawing FROM readings ORDER BY id"
        ).fetchall()
    return digits, numbers


def saved(
    page, data_dir: Path, before: tuple[list[Any], list[Any]], text: str
) -> tuple[list[Any], Any]:  # type: ignore[no-untyped-def]
    """Wait for "Saved TEXT"; the digit rows added and the one readings row added."""
    sync_api.expect(page.locator("#number-status")).to_contain_text(f"Saved {text}")
    digits, numbers = rows(data_dir)
    assert len(numbers) == len(before[1]) + 1
    return digits[len(before[0]) :], numbers[-1]


def test_change_a_digit_of_a_number(page, server) -> None:  # type: ignore[no-untyped-def]
    data_dir = server[1]
    reading = read_17(page)
    before = rows(data_dir) if (data_dir / "feedback.sqlite3").exists() else ([], [])
    page.locator("#read-digits .read-digit").nth(1).click()
    page.locator("#fix-2").click()
    new_digits, row = saved(page, data_dir, before, "12")
    assert new_digits == [(2, 7)]  # the 7, cut out, saved as a 2
    import json

    assert row[:2] == ("17", "12")
    assert json.loads(row[2]) == [d["box"] for d in reading["digits"]]
    assert json.loads(row[3]) == [{"kind": "change", "index": 1, "from": "7", "to": "2"}]
    assert row[4]  # the page's id for this drawing


def test_delete_a_digit_that_is_not_one(page, server) -> None:  # type: ignore[no-untyped-def]
    import json

    data_dir = server[1]
    reading = read_17(page)
    before = rows(data_dir) if (data_dir / "feedback.sqlite3").exists() else ([], [])
    page.locator("#read-digits .read-digit").nth(0).click()
    page.locator("#fix-delete").click()
    sync_api.expect(page.locator("#answer")).to_have_text("7")
    sync_api.expect(page.locator("#verdict")).to_have_text("You fixed it: 7")
    new_digits, row = saved(page, data_dir, before, "7")
    assert new_digits == []  # no digit to learn from: the number keeps it
    assert row[:2] == ("17", "7")
    assert json.loads(row[2]) == [d["box"] for d in reading["digits"]]
    assert json.loads(row[3]) == [{"kind": "delete", "index": 0, "from": "1"}]
    chip = page.locator("#read-digits .read-digit").nth(0)
    sync_api.expect(chip).to_contain_text("removed")
    sync_api.expect(chip).to_be_focused()


def test_insert_a_missed_digit(page, server) -> None:  # type: ignore[no-untyped-def]
    import json

    data_dir = server[1]
    read_17(page)
    before = rows(data_dir) if (data_dir / "feedback.sqlite3").exists() else ([], [])
    page.locator("#read-digits .read-digit").nth(1).click()
    page.locator("#fix-insert-after").click()
    sync_api.expect(page.locator("#picker-label")).to_have_text("The new digit 3 is a…")
    sync_api.expect(page.locator("#fix-0")).to_be_focused()
    page.locator("#fix-4").click()
    sync_api.expect(page.locator("#answer")).to_have_text("174")
    new_digits, row = saved(page, data_dir, before, "174")
    assert new_digits == []
    assert row[:2] == ("17", "174")
    assert json.loads(row[3]) == [{"kind": "insert", "index": 2, "to": "4"}]
    sync_api.expect(page.locator("#read-digits .read-digit")).to_have_count(3)


def test_retype_the_whole_number(page, server) -> None:  # type: ignore[no-untyped-def]
    import json

    data_dir = server[1]
    read_17(page)
    before = rows(data_dir) if (data_dir / "feedback.sqlite3").exists() else ([], [])
    page.locator("#retype-open").click()
    sync_api.expect(page.locator("#retype")).to_be_focused()
    sync_api.expect(page.locator("#retype")).to_have_value("17")
    page.locator("#retype").fill("2x1")
    page.keyboard.press("Enter")
    sync_api.expect(page.locator("#retype-error")).to_contain_text("digits 0 to 9")
    page.locator("#retype").fill("21")
    page.keyboard.press("Enter")
    sync_api.expect(page.locator("#answer")).to_have_text("21")
    sync_api.expect(page.locator("#verdict")).to_have_text("You typed it: 21")
    new_digits, row = saved(page, data_dir, before, "21")
    assert new_digits == []
    assert row[:2] == ("17", "21")
    assert json.loads(row[3]) == [{"kind": "retype", "from": "17", "to": "21"}]
    sync_api.expect(page.locator("#retype-open")).to_be_focused()


# --- honest words ---------------------------------------------------------------------------------


def server_answers(page) -> None:  # type: ignore[no-untyped-def]
    """The page reloaded without the model in the browser (static/ondevice.js not served): a
    digit is answered by the server, whose answers page.route can change."""
    page.route("**/static/ondevice.js", lambda route: route.abort())
    page.reload()
    sync_api.expect(page.locator("html")).to_have_attribute("data-device", "off")


def make_digit_uncertain(route) -> None:  # type: ignore[no-untyped-def]
    response = route.fetch()
    p = response.json()
    p.update(digit=None, reason="uncertain", confidence=0.45)
    p["candidates"] = [
        {"digit": 3, "probability": 0.45},
        {"digit": 8, "probability": 0.40},
        {"digit": 5, "probability": 0.001},
    ]
    route.fulfill(response=response, json=p)


def test_an_uncertain_digit_is_not_sure_not_not_a_digit(page, server) -> None:  # type: ignore[no-untyped-def]
    server_answers(page)
    page.route("**/api/v1/predict", make_digit_uncertain)
    draw_with_mouse(page, [[(150, 45), (146, 100), (142, 160), (138, 235)]])
    expect_answer(page, "?")
    sync_api.expect(page.locator("#verdict")).to_have_text("Not sure: a 3 or an 8?")
    sync_api.expect(page.locator("#confidence")).to_contain_text("Best guess 3, only 45.0% sure")
    assert "not a digit" not in page.locator("#result").inner_text().lower()
    assert page.locator("#top3 li").all_inner_texts() == ["3 45.0%", "8 40.0%"]  # no "0%" one
    with page.expect_response("**/api/v1/feedback") as sent:
        page.locator("#correct-8").click()
    body = sent.value.request.post_data_json
    assert (body["label"], body["predicted"]) == (8, None)  # the model gave no digit


def test_a_refused_file_says_so_and_the_page_goes_on(page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "notes.png"
    path.write_bytes(b"these are not pixels")
    page.locator("#file").set_input_files(str(path))
    sync_api.expect(page.locator("#result")).to_have_attribute("data-answer", "error")
    sync_api.expect(page.locator("#verdict")).to_have_text("Cannot read this")
    sync_api.expect(page.locator("#error")).to_contain_text("not an image")
    sync_api.expect(page.locator("#correct-1")).to_be_disabled()


# --- accessibility: axe in every state, at 1280 and 360 px ----------------------------------------


def axe(page) -> list[str]:  # type: ignore[no-untyped-def]
    """axe-core's violations on the page as it is: 'rule (impact): target' lines."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    found = page.evaluate(
        """async () => (await axe.run(document)).violations.flatMap((v) =>
            v.nodes.map((n) => `${v.id} (${v.impact}): ${n.target.join(" ")}`))"""
    )
    return list(found)


def make_read_uncertain(route) -> None:  # type: ignore[no-untyped-def]
    response = route.fetch()
    reading = response.json()
    if len(reading.get("digits", [])) == 2:  # not the refused file
        reading.update(text=None, reason="uncertain", confidence=0.41)
        reading["digits"][1].update(
            confidence=0.45,
            candidates=[{"digit": 7, "probability": 0.45}, {"digit": 1, "probability": 0.38}],
        )
    route.fulfill(response=response, json=reading)


@pytest.mark.parametrize("width", [1280, 360])
def test_axe_finds_nothing_in_any_state(browser, server, width: int, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    if not AXE.exists():
        why = f"no axe-core at {AXE} (make test installs it)"
        pytest.fail(why) if __import__("os").environ.get("CI") else pytest.skip(why)
    phone_like = width < 500
    context = browser.new_context(
        viewport={"width": width, "height": 740 if phone_like else 800},
        device_scale_factor=3 if phone_like else 1, is_mobile=phone_like, has_touch=phone_like,
        bypass_csp=True,  # the server's policy allows no inline script: axe is one
        service_workers="block",  # page.route must see the page's requests
    )  # fmt: skip
    page = context.new_page()
    page.goto(server[0] + "/")
    server_answers(page)
    found: dict[str, list[str]] = {}
    found["start"] = axe(page)
    draw_with_mouse(page, [[(65, 60), (140, 58), (215, 60), (180, 120), (150, 180), (125, 240)]])
    expect_answer(page, "7")
    found["digit answered"] = axe(page)
    page.locator("#clear").click()
    page.route("**/api/v1/predict", make_digit_uncertain)
    draw_with_mouse(page, [[(150, 45), (146, 100), (142, 160), (138, 235)]])
    expect_answer(page, "?")
    found["digit uncertain"] = axe(page)
    page.unroute("**/api/v1/predict")
    page.locator("#clear").click()
    page.locator("#mode-number").click()
    draw_with_mouse(page, NUMBER_17, logical_width=560)
    expect_answer(page, "17")
    found["number answered"] = axe(page)
    page.locator("#read-digits .read-digit").nth(1).click()
    found["picker open"] = axe(page)
    page.keyboard.press("Escape")
    page.locator("#retype-open").click()
    found["typing the number"] = axe(page)
    page.keyboard.press("Escape")
    page.locator("#clear").click()
    page.route("**/api/v1/read", make_read_uncertain)
    page.evaluate("window.scrollTo(0, 0)")  # the drawing area back in view
    draw_with_mouse(page, NUMBER_17, logical_width=560)
    expect_answer(page, "1?")
    found["number uncertain"] = axe(page)
    path = tmp_path / "notes.png"
    path.write_bytes(b"these are not pixels")
    page.locator("#file").set_input_files(str(path))
    sync_api.expect(page.locator("#result")).to_have_attribute("data-answer", "error")
    found["error"] = axe(page)
    for scheme in ("dark",):
        page.emulate_media(color_scheme=scheme)
        found[f"error, {scheme}"] = axe(page)
    context.close()
    assert {state: v for state, v in found.items() if v} == {}


# --- keyboard -------------------------------------------------------------------------------------

RING = """() => {  // the focus ring the person sees on the focused control
    let el = document.activeElement;
    if (el.id === "canvas") el = document.getElementById("stage");
    if (el.type === "file") el = document.querySelector(`label[for=${el.id}]`);
    const s = getComputedStyle(el);
    return { id: document.activeElement.id || document.activeElement.textContent.trim(),
             style: s.outlineStyle, width: parseFloat(s.outlineWidth) };
}"""


def focused(page) -> str:  # type: ignore[no-untyped-def]
    return page.evaluate("document.activeElement.id")  # type: ignore[no-any-return]


def test_the_keyboard_reaches_and_operates_every_control_with_a_ring(page) -> None:  # type: ignore[no-untyped-def]
    # Tab through the page: every stop shows a solid ring of 2 px or more.
    seen: list[str] = []
    while "API" not in seen and len(seen) < 20:
        page.keyboard.press("Tab")
        ring = page.evaluate(RING)
        assert ring["style"] == "solid" and ring["width"] >= 2, ring
        seen.append(ring["id"])
    for control in ("mode-digit", "mode-number", "canvas", "brush", "file", "camera", "API"):
        assert control in seen, seen

    # The brush by arrows; the modes by Space.
    page.locator("#brush").focus()
    page.keyboard.press("ArrowRight")
    assert page.locator("#brush").input_value() == "21"
    page.locator("#mode-number").focus()
    page.keyboard.press("Space")
    sync_api.expect(page.locator("#mode-number")).to_have_attribute("aria-pressed", "true")

    # Clear, then Ctrl+Z brings the drawing back; the focus goes to Undo, not the page top.
    draw_with_mouse(page, NUMBER_17, logical_width=560)
    expect_answer(page, "17")
    page.locator("#clear").focus()
    page.keyboard.press("Enter")
    sync_api.expect(page.locator("#answer")).to_have_text("?")
    assert focused(page) == "undo"
    page.keyboard.press("Control+z")
    expect_answer(page, "17")
    # Escape clears too, and is undone the same way.
    page.locator("#canvas").focus()
    page.keyboard.press("Escape")
    sync_api.expect(page.locator("#answer")).to_have_text("?")
    page.keyboard.press("Control+z")
    expect_answer(page, "17")

    # A digit read: Enter opens the picker on the digit it shows; focus unlike "likely".
    chip = page.locator("#read-digits .read-digit").nth(1)
    chip.focus()
    page.keyboard.press("Enter")
    assert focused(page) == "fix-7"
    assert page.evaluate(RING)["style"] == "solid"
    likely = page.evaluate(
        """() => [...document.querySelectorAll("#fix-picker .digit-btn.likely")]
            .filter((b) => b !== document.activeElement)
            .map((b) => [getComputedStyle(b).borderStyle, getComputedStyle(b).outlineStyle])"""
    )
    assert all(border == "dashed" and outline == "none" for border, outline in likely), likely
    page.keyboard.press("Escape")  # closes the picker, back on the digit; the drawing stays
    sync_api.expect(page.locator("#fix-picker")).to_be_hidden()
    sync_api.expect(chip).to_be_focused()
    sync_api.expect(page.locator("#answer")).to_have_text("17")
    page.keyboard.press("Enter")
    for _ in range(5):  # from 7 back to 2
        page.keyboard.press("Shift+Tab")
    assert focused(page) == "fix-2"
    page.keyboard.press("Enter")
    sync_api.expect(page.locator("#answer")).to_have_text("12")
    sync_api.expect(chip).to_be_focused()

    # Type the number, by keyboard only.
    page.locator("#retype-open").focus()
    page.keyboard.press("Enter")
    sync_api.expect(page.locator("#retype")).to_be_focused()
    page.keyboard.press("Control+a")
    page.keyboard.type("19")
    page.keyboard.press("Enter")
    sync_api.expect(page.locator("#answer")).to_have_text("19")


# --- a phone: the finger's targets and the hint's contrast ---------------------------------------


def luminance(rgb: str) -> float:
    r, g, b = (int(v) / 255 for v in re.findall(r"\d+", rgb)[:3])
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in (r, g, b)]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


SMALL_TARGETS = """() => [...document.querySelectorAll("button, label.source, input")]
    .filter((el) => el.checkVisibility() && !el.classList.contains("visually-hidden"))
    .map((el) => [el.id || el.textContent.trim(), el.getBoundingClientRect()])
    .filter(([, r]) => r.height < 44 || r.width < 44)
    .map(([name, r]) => `${name}: ${Math.round(r.width)}x${Math.round(r.height)}`)"""


def test_touch_targets_and_the_hint_on_a_phone(browser, server) -> None:  # type: ignore[no-untyped-def]
    context, page = phone(browser, server)
    small = {"start": page.evaluate(SMALL_TARGETS)}
    page.locator("#mode-number").tap()
    cdp = page.context.new_cdp_session(page)
    for stroke in NUMBER_17:
        touch_digit(page, cdp, [stroke])
    expect_answer(page, "17")
    page.locator("#read-digits .read-digit").nth(1).tap()
    small["picker open"] = page.evaluate(SMALL_TARGETS)
    page.locator("#fix-insert-after").tap()
    page.locator("#fix-delete").tap()  # "Don't add"
    page.locator("#retype-open").tap()
    small["typing the number"] = page.evaluate(SMALL_TARGETS)
    assert {state: v for state, v in small.items() if v} == {}
    colours = page.evaluate(
        """() => [getComputedStyle(document.getElementById("hint")).color,
                  getComputedStyle(document.getElementById("stage")).backgroundColor]"""
    )
    ink, paper = (luminance(c) for c in colours)
    assert (max(ink, paper) + 0.05) / (min(ink, paper) + 0.05) >= 4.5, colours
    context.close()
