"""The page's preprocessing and model in Chromium (static/preprocess.js, static/ondevice.js on
ONNX Runtime Web) against the server's (vision/preprocess.py, Predictor on ONNX Runtime), live:
both sides run now, on the same drawings, so a change to one side alone fails here.

The drawings: 1,000 digits of real pen strokes (data/real/pendigits, every writer) rendered in
the browser as the page draws them (round caps and joins, #111 ink on a transparent canvas,
brush 6-40 px on the 280-px canvas, device pixel ratios 1 to 3), the generated canvases of
tests/realworld, and digits drawn with the mouse on the page itself. The browser exports each
canvas as the page sends it (canvas.toDataURL PNG) and answers it on the device; Python answers
the PNG as the server does (Predictor.predict_each: preprocess_views on the bytes).

What a user would notice: the same answer (digit, "uncertain" or "empty") on >= 99.5% of the
drawings; the 28x28 the model reads within 1/255 on average, and on >= 99% of the drawings
within 1/255 at every pixel (the "what the model saw" image is the same picture).
"""

# ruff: noqa: F811  (the fixtures imported from tests.helpers.browser are parameters here)
from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest

from digitrec.predictor import Predictor
from tests.helpers import ROOT, benchmark
from tests.helpers.browser import browser, server  # noqa: F401  (fixtures: Chromium, `digitrec serve`)

pytestmark = pytest.mark.browser

REALWORLD = ROOT / "tests" / "realworld"
N_PEN = 1000  # pen-stroke digits rendered (of 1,749), every writer's
pen_drawings = benchmark("ondevice").pen_drawings  # placed on the canvas as a person draws

# Renders strokes as app.js's drawStroke does, on a canvas of 280 * dpr px scaled by dpr, and
# answers each on the device; returns the PNG the page would send and the device's answer.
RUN_BATCH = """
async ({drawings, pngs}) => {
  const m = await import("/static/ondevice.js");
  const device = await m.load(location.origin + "/");
  const b64 = (a) => {
    const bytes = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    let s = "";
    for (let i = 0; i < bytes.length; i += 8192) {
      s += String.fromCharCode(...bytes.subarray(i, i + 8192));
    }
    return btoa(s);
  };
  const out = [];
  const answer = async (canvas, box) => {
    const a = await device.predict(canvas);
    // As the page asks: only the strokes' box read from the canvas. The same image.
    const boxed = await device.predict(canvas, box);
    out.push({png: canvas.toDataURL("image/png"), digit: a.digit, reason: a.reason ?? null,
              probabilities: a.probabilities, image28: b64(a.image28),
              boxed: b64(boxed.image28) === b64(a.image28)});
  };
  for (const d of drawings) {
    const canvas = document.createElement("canvas");
    canvas.width = Math.round(280 * d.dpr);
    canvas.height = Math.round(280 * d.dpr);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(d.dpr, 0, 0, d.dpr, 0, 0);
    ctx.strokeStyle = "#111";
    ctx.fillStyle = "#111";
    ctx.lineWidth = d.size;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    for (const pts of d.strokes) {
      ctx.beginPath();
      if (pts.length === 1) {
        ctx.arc(pts[0][0], pts[0][1], d.size / 2, 0, Math.PI * 2);
        ctx.fill();
        continue;
      }
      ctx.moveTo(pts[0][0], pts[0][1]);
      for (let i = 1; i < pts.length; i++) ctx.lineTo(pts[i][0], pts[i][1]);
      ctx.stroke();
    }
    const pts = d.strokes.flat();
    const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]), m = d.size / 2 + 2;
    const x0 = Math.min(...xs) - m, y0 = Math.min(...ys) - m;
    const x1 = Math.max(...xs) + m, y1 = Math.max(...ys) + m;
    const r = d.dpr;
    await answer(canvas, {x: x0 * r, y: y0 * r, w: (x1 - x0) * r, h: (y1 - y0) * r});
  }
  for (const url of pngs) {
    const bytes = Uint8Array.from(atob(url.split(",")[1]), (c) => c.charCodeAt(0));
    const bitmap = await createImageBitmap(new Blob([bytes], {type: "image/png"}),
      {premultiplyAlpha: "none", colorSpaceConversion: "none"});
    const canvas = document.createElement("canvas");
    canvas.width = bitmap.width;
    canvas.height = bitmap.height;
    canvas.getContext("2d").drawImage(bitmap, 0, 0);
    const a = await device.predictAlpha(device.alpha(canvas));
    out.push({png: url, digit: a.digit, reason: a.reason ?? null,
              probabilities: a.probabilities, image28: b64(a.image28)});
  }
  return {answers: out, model: device.info};
}
"""


def realworld_canvases() -> list[Path]:
    return sorted(REALWORLD.glob("canvas_*.png"))


def data_url(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def png_bytes(url: str) -> bytes:
    return base64.b64decode(url.split(",", 1)[1])


def answer_of(digit: int | None, reason: str | None) -> str:
    return str(digit) if digit is not None else str(reason)


def compare(device: list[dict], predictor: Predictor) -> dict:
    """Both sides' answers on the same PNGs: agreement, 28x28 differences, probabilities."""
    served = predictor.predict_many([png_bytes(a["png"]) for a in device])
    same, diffs, exact, prob = [], [], [], []
    for a, s in zip(device, served, strict=True):
        ours = np.frombuffer(base64.b64decode(a["image28"]), np.float32).reshape(28, 28)
        theirs = np.asarray(s.preprocessed, np.float32)
        same.append(answer_of(a["digit"], a["reason"]) == answer_of(s.digit, s.reason))
        d = np.abs(ours - theirs)
        diffs.append(float(d.mean()))
        exact.append(bool(d.max() <= 1 / 255))
        prob.append(float(np.abs(np.array(a["probabilities"]) - np.array(s.probabilities)).max()))
    return {
        "images": len(device),
        "same_answer": float(np.mean(same)),
        "mean_abs_28x28": float(np.mean(diffs)),
        "within_1_255_everywhere": float(np.mean(exact)),
        "max_prob_difference": float(np.max(prob)),
        "answers_server": [answer_of(s.digit, s.reason) for s in served],
    }


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor.load(None)  # the default model, which `digitrec serve` serves


@pytest.fixture(scope="module")
def device_answers(browser, server) -> dict:  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1000, "height": 760})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server[0] + "/")
    drawings = pen_drawings(N_PEN)
    found = page.evaluate(
        RUN_BATCH, {"drawings": drawings, "pngs": [data_url(p) for p in realworld_canvases()]}
    )
    context.close()
    assert not errors, errors
    return {"drawings": drawings, **found}


def report(name: str, figures: dict) -> None:
    shown = {k: v for k, v in figures.items() if not k.startswith("answers")}
    print(f"\nparity {name}: {json.dumps(shown)}")


def test_the_device_serves_the_server_model(device_answers, predictor) -> None:  # type: ignore[no-untyped-def]
    sums = predictor.card.get("sha256", {})
    onnx = [v for k, v in sums.items() if k.endswith(".onnx")]
    assert device_answers["model"]["name"] == predictor.name
    assert device_answers["model"]["sha256"] == onnx[0]


def test_pen_strokes_answer_alike_on_the_device_and_the_server(device_answers, predictor) -> None:  # type: ignore[no-untyped-def]
    n = len(device_answers["drawings"])
    assert n >= 1000
    figures = compare(device_answers["answers"][:n], predictor)
    assert all(a["boxed"] for a in device_answers["answers"][:n])  # the page's partial read
    labels = [str(d["label"]) for d in device_answers["drawings"]]
    figures["server_accuracy"] = float(
        np.mean([a == t for a, t in zip(figures["answers_server"], labels, strict=True)])
    )
    report("pendigits", figures)
    assert figures["same_answer"] >= 0.995
    assert figures["mean_abs_28x28"] <= 1 / 255
    assert figures["within_1_255_everywhere"] >= 0.99
    # The drawings are digits, and the model reads most of them: the parity is about answers.
    assert figures["server_accuracy"] >= 0.8


def test_generated_canvases_answer_alike(device_answers, predictor) -> None:  # type: ignore[no-untyped-def]
    n = len(device_answers["drawings"])
    answers = device_answers["answers"][n:]
    assert len(answers) == len(realworld_canvases()) >= 100
    figures = compare(answers, predictor)
    report("tests/realworld canvases", figures)
    assert figures["same_answer"] >= 0.995
    assert figures["mean_abs_28x28"] <= 1 / 255
    assert figures["within_1_255_everywhere"] >= 0.99
