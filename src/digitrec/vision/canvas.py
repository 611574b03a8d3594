"""Pen strokes drawn as the web page's canvas draws them, exported as the page exports them.

The page (serve/static/app.js) draws each stroke as a polyline (`ctx.lineTo` from point to
point), ink `#111`, `lineWidth` = the brush, round caps and joins, on a transparent canvas of
280 x 280 logical pixels (560 x 280 in number mode) whose backing store is scaled by the device
pixel ratio; a one-point stroke is a dot as wide as the brush. `canvas.toDataURL("image/png")`
sends it. `draw` makes the same RGBA array: strokes are rasterised at SUPERSAMPLE times the
device resolution and box-filtered down, which gives the anti-aliased edges Chromium's rasteriser
gives (tests/vision/test_canvas.py holds the two together on real strokes, through preprocess).

Pen trajectories come from `data/real/pendigits` (`load_pen`): real writers' digits on a tablet,
y pointing up. `place` fits one into a box of the canvas as a person would draw it there. Pure
NumPy and Pillow: training renders thousands (training/pen.py), benchmarks and tests a few.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from digitrec.errors import DataError
from digitrec.vision import png

SIDE = 280  # the page's canvas height in logical pixels (digit mode: 280 x 280)
INK = (17, 17, 17)  # "#111", the page's ink
SUPERSAMPLE = 4  # sub-pixels per device pixel along each axis: 17 coverage levels, as smooth
#   as a browser's anti-aliasing to within a grey level on the 28x28 the model sees

Stroke = np.ndarray  # (N, 2) float points, x right and y down, in logical canvas pixels


@dataclass(frozen=True)
class PenDigit:
    writer: int
    label: int
    strokes: tuple[np.ndarray, ...]  # (N, 2) points as recorded: a 500 x 500 grid, y up


def load_pen(path: Path) -> list[PenDigit]:
    """The digits of a pen-strokes file (`strokes.jsonl`: one `{"writer", "label", "strokes"}`
    a line); a malformed line is a DataError naming the file and line."""
    if not path.is_file():
        raise DataError(path, "no such pen-strokes file")
    digits = []
    with open(path) as f:
        for line_no, line in enumerate(f, start=1):
            try:
                row = json.loads(line)
                strokes = tuple(
                    np.asarray(s, dtype=np.float64).reshape(-1, 2) for s in row["strokes"]
                )
                digit = PenDigit(int(row["writer"]), int(row["label"]), strokes)
            except (ValueError, KeyError, TypeError) as e:
                raise DataError(path, f"not a pen-strokes line ({e})", line_no) from None
            if not 0 <= digit.label <= 9 or not strokes or any(len(s) == 0 for s in strokes):
                raise DataError(path, "a label 0-9 and at least one point per stroke", line_no)
            digits.append(digit)
    return digits


def place(
    strokes: Sequence[np.ndarray], box: tuple[float, float, float, float], y_up: bool = True
) -> list[Stroke]:
    """Strokes fitted into `box` (x, y, w, h, logical pixels), aspect ratio kept and centred in
    it, as points on the canvas (y down)."""
    pts = [np.asarray(s, dtype=np.float64) * ((1, -1) if y_up else (1, 1)) for s in strokes]
    every = np.vstack(pts)
    lo, hi = every.min(0), every.max(0)
    extent = np.maximum(hi - lo, 1e-6)
    x, y, w, h = box
    scale = min(w / extent[0], h / extent[1])
    offset = np.array([x + (w - extent[0] * scale) / 2, y + (h - extent[1] * scale) / 2])
    return [(p - lo) * scale + offset for p in pts]


def draw(
    strokes: Sequence[Stroke],
    brush: float,
    size: tuple[int, int] = (SIDE, SIDE),
    dpr: float = 1.0,
    ink: tuple[int, int, int] = INK,
) -> np.ndarray:
    """(H, W, 4) uint8: the canvas backing store (size x dpr device pixels, rounded as the page
    rounds them) with the strokes drawn, transparent elsewhere."""
    alpha = draw_alpha(strokes, brush, size, dpr)
    rgba = np.zeros((*alpha.shape, 4), np.uint8)
    rgba[..., :3][alpha > 0] = ink
    rgba[..., 3] = alpha
    return rgba


def draw_alpha(
    strokes: Sequence[Stroke],
    brush: float,
    size: tuple[int, int] = (SIDE, SIDE),
    dpr: float = 1.0,
) -> np.ndarray:
    """(H, W) uint8 coverage of the strokes on the canvas's backing store (size x dpr device
    pixels, rounded as the page rounds them): what a canvas export's alpha channel holds. Only
    the strokes' box is rasterised."""
    width, height = round(size[0] * dpr), round(size[1] * dpr)
    out = np.zeros((height, width), np.uint8)
    if not strokes:
        return out
    s = SUPERSAMPLE
    scale = dpr * s
    pen = brush * scale  # the line width in sub-pixels
    every = np.vstack(strokes) * dpr
    left = max(0, math.floor(every[:, 0].min() - brush * dpr / 2) - 1)
    top = max(0, math.floor(every[:, 1].min() - brush * dpr / 2) - 1)
    right = min(width, math.ceil(every[:, 0].max() + brush * dpr / 2) + 1)
    bottom = min(height, math.ceil(every[:, 1].max() + brush * dpr / 2) + 1)
    if right <= left or bottom <= top:
        return out
    fine = Image.new("L", ((right - left) * s, (bottom - top) * s), 0)
    pen_draw = ImageDraw.Draw(fine)
    r = pen / 2
    for stroke in strokes:
        # a pixel's centre is at +0.5 in canvas coordinates; in sub-pixels the shift is s/2 - 0.5
        xy = [(float(x), float(y)) for x, y in stroke * scale - (left * s, top * s) - 0.5]
        if len(xy) > 1:
            pen_draw.line(xy, fill=255, width=max(1, round(pen)))
        for x, y in xy:  # round caps and joins: a disc as wide as the pen at every point
            pen_draw.ellipse((x - r, y - r, x + r, y + r), fill=255)
    out[top:bottom, left:right] = np.asarray(fine.reduce(s))
    return out


def to_png(rgba: np.ndarray) -> bytes:
    """PNG bytes of an (H, W, 4) canvas as Chromium's `canvas.toDataURL("image/png")` writes
    them: every row with the "up" filter."""
    return png.write(rgba, png.UP)


def compose(
    digits: Sequence[Sequence[np.ndarray]],
    rng: np.random.Generator,
    size: tuple[int, int] = (2 * SIDE, SIDE),
) -> list[list[Stroke]]:
    """Several digits' strokes (y up, each as recorded) written side by side as one number on a
    `size` canvas, the way people write them: one height with a little variation, gaps between
    boxes mostly 10-60% of the height, a fifth close (0-10%: strokes touch once the brush is
    wide), a tenth overlapping by up to 8%, the baseline drifting, a shared slant. Returns each
    digit's strokes on the canvas (y down), left to right."""
    height = 1.0
    shear = rng.uniform(-0.25, 0.25)
    placed, x = [], 0.0
    for strokes in digits:
        pts = [np.asarray(s, np.float64) * (1, -1) for s in strokes]  # y down
        every = np.vstack(pts)
        lo, hi = every.min(0), every.max(0)
        h = height * rng.uniform(0.85, 1.1)
        scale = h / max(hi[1] - lo[1], 1e-6)
        w = (hi[0] - lo[0]) * scale
        top = rng.uniform(-0.08, 0.08) + (height - h)  # on a drifting baseline
        digit = [(p - lo) * scale + (x, top) for p in pts]
        placed.append(digit)
        u = rng.random()
        gap = (
            rng.uniform(0.1, 0.6)
            if u < 0.7
            else rng.uniform(0, 0.1)
            if u < 0.9
            else rng.uniform(-0.08, 0)
        )
        x += w + gap * height
    every = np.vstack([p for d in placed for p in d])
    for d in placed:
        for p in d:
            p[:, 0] += shear * (every[:, 1].max() - p[:, 1])  # slant: the top leans right
    every = np.vstack([p for d in placed for p in d])
    lo, hi = every.min(0), every.max(0)
    extent = np.maximum(hi - lo, 1e-6)
    fill = rng.uniform(0.6, 0.9)  # of the canvas the number spans (the tighter of its two sides)
    scale = fill * min(size[0] / extent[0], size[1] / extent[1])
    offset = (np.array(size) - extent * scale) * rng.uniform(0.2, 0.8, 2)
    return [[(p - lo) * scale + offset for p in d] for d in placed]
