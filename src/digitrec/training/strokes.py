"""Digits drawn from pen strokes, in the ways writers outside MNIST form them.

MNIST's writers (US Census staff and students) mostly close their 4s at the top, give their 9s
a straight tail and never cross a 7. Much of the world does otherwise: a 4 whose stem starts at
its bar, or whose diagonal and bar close a small triangle low down; a 9 whose small loop hangs
on a long tail curving left; a crossed 7; a 2 with a loop at its foot; a 1 with a long flag and
a base. `draw` makes such digits from stroke templates: each digit has a few forms, every
control point jitters, the whole digit slants, turns and narrows, and a round pen 4-16% of the
height draws it. The drawing then goes through `styles.capture` (stretch toward a square, a fat
pen, a low-resolution capture) and `preprocess.preprocess`, the path every real input takes.

Training mixes them in (`TrainConfig.strokes`: the share of each batch). Pure NumPy and Pillow,
seeded. The templates are ours; no data set is read here (data/real is for selection only, and
tools/make_realworld.py, which makes our generated test set, is not used).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw

Point = tuple[float, float]
Stroke = tuple[list[Point], bool]  # control points (x right, y down, unit box), smooth?
Form = Callable[[np.random.Generator], list[Stroke]]

SIDE = 112  # the drawing's height in pixels, as styles.capture expects (4x MNIST)


def _arc(
    cx: float, cy: float, rx: float, ry: float, a0: float, a1: float, n: int = 9
) -> list[Point]:
    """Points on an ellipse from angle a0 to a1 (degrees; 0 = right, 90 = down)."""
    return [
        (cx + rx * math.cos(math.radians(a)), cy + ry * math.sin(math.radians(a)))
        for a in np.linspace(a0, a1, n)
    ]


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _zero(rng: np.random.Generator) -> list[Stroke]:
    start = _u(rng, -110, -60)
    return [(_arc(0.5, 0.5, _u(rng, 0.3, 0.45), 0.5, start, start + _u(rng, 340, 390), 14), True)]


def _one(rng: np.random.Generator) -> list[Stroke]:
    x = 0.5
    strokes: list[Stroke] = []
    if rng.random() < 0.7:  # the flag: short and steep to long and flat
        reach = _u(rng, 0.12, 0.4)
        drop = reach * _u(rng, 0.6, 1.3)  # 30-52 degrees below the horizontal: flatter is a 7
        strokes.append(([(x - reach, drop), (x, 0.0), (x, 1.0)], False))
    else:
        strokes.append(([(x, 0.0), (x, 1.0)], False))
    if rng.random() < 0.35:  # a base
        half = _u(rng, 0.15, 0.3)
        strokes.append(([(x - half, 1.0), (x + half, 1.0)], False))
    return strokes


def _two(rng: np.random.Generator) -> list[Stroke]:
    top = _arc(0.5, 0.28, 0.35, 0.28, _u(rng, 170, 200), 340, 8)
    if rng.random() < 0.4:  # a loop at the foot
        foot = [(0.15, 0.97), (0.03, 0.78), (0.22, 0.68), (0.34, 0.95), (0.9, 0.97)]
        return [(top + [(0.55, 0.6), *foot], True)]
    return [(top + [(0.5, 0.62)], True), ([(0.5, 0.62), (0.1, 1.0), (0.9, 1.0)], False)]


def _three(rng: np.random.Generator) -> list[Stroke]:
    mid = (_u(rng, 0.35, 0.5), 0.48)
    lower = [mid, *_arc(0.5, 0.72, 0.38, 0.27, -80, 150, 9)]
    if rng.random() < 0.3:  # a flat top, like a Z
        return [([(0.15, 0.0), (0.85, 0.0), mid], False), (lower, True)]
    upper = _arc(0.5, 0.25, 0.33, 0.24, 200, 430, 9)
    return [(upper + [mid], True), (lower, True)]


def _four(rng: np.random.Generator) -> list[Stroke]:
    bar = _u(rng, 0.55, 0.8)
    stem = _u(rng, 0.55, 0.75)
    form = rng.integers(4)
    if form == 0:  # closed at the top: diagonal, bar, stem from the top
        return [
            ([(stem, 0.0), (0.08, bar), (0.92, bar)], False),
            ([(stem, 0.0), (stem, 1.0)], False),
        ]
    if form == 1:  # open: an L, then a stem from the top
        left = _u(rng, 0.1, 0.3)
        return [
            ([(left, 0.0), (left - 0.05, bar), (0.92, bar)], False),
            ([(stem, 0.0), (stem, 1.0)], False),
        ]
    if form == 2:  # the stem starts at (or just above) the bar
        return [
            ([(_u(rng, 0.45, 0.7), 0.0), (0.08, bar), (0.92, bar)], False),
            ([(stem, bar - _u(rng, 0.0, 0.3)), (stem, 1.0)], False),
        ]
    # a small closed triangle low down: the stem starts on the diagonal
    top_x = _u(rng, 0.35, 0.6)
    t = _u(rng, 0.35, 0.7)
    on_diag = (top_x + t * (0.08 - top_x), t * bar)
    return [([(top_x, 0.0), (0.08, bar), (0.92, bar)], False), ([on_diag, (stem, 1.0)], False)]


def _five(rng: np.random.Generator) -> list[Stroke]:
    knee = (_u(rng, 0.15, 0.3), _u(rng, 0.38, 0.5))
    belly = [knee, *_arc(0.48, 0.68, 0.38, 0.3, -120, 150, 9)]
    return [([(0.85, 0.0), (0.25, 0.0), knee], False), (belly, True)]


def _six(rng: np.random.Generator) -> list[Stroke]:
    r = _u(rng, 0.22, 0.32)
    cy = 1 - r
    path = [(0.75, 0.0), (0.35, 0.25), (0.2, cy), *_arc(0.5, cy, 0.32, r, 180, 540, 12)]
    return [(path, True)]


def _seven(rng: np.random.Generator) -> list[Stroke]:
    foot = (_u(rng, 0.2, 0.5), 1.0)
    strokes: list[Stroke] = [([(0.08, _u(rng, 0.0, 0.15)), (0.92, 0.0), foot], False)]
    if rng.random() < 0.5:  # crossed
        y = _u(rng, 0.4, 0.6)
        x = 0.92 + (foot[0] - 0.92) * y
        strokes.append(([(x - _u(rng, 0.15, 0.3), y), (x + _u(rng, 0.1, 0.25), y)], False))
    return strokes


def _eight(rng: np.random.Generator) -> list[Stroke]:
    waist = _u(rng, 0.4, 0.5)
    up, down = waist / 2, (1 + waist) / 2
    top = _arc(0.5, up, _u(rng, 0.22, 0.32), up, 90, -270, 10)
    bottom = _arc(0.5, down, _u(rng, 0.3, 0.4), 1 - down, -90, 270, 10)
    return [(top, True), (bottom, True)]


def _nine(rng: np.random.Generator) -> list[Stroke]:
    r = _u(rng, 0.15, 0.32)
    # the loop, drawn from its right side anticlockwise; often left open at the lower left
    loop = _arc(0.5, r, _u(rng, 0.2, 0.4), r, 0, -_u(rng, 290, 370), 12)
    start = (loop[0][0], loop[0][1] + _u(rng, -0.05, 0.1))
    x = start[0]
    form = rng.integers(4)
    if form == 0:  # straight tail
        tail = [start, (x - _u(rng, 0.0, 0.2), 1.0)]
    elif form == 1:  # curving left at the foot
        tail = [start, (x, 0.7), (x - 0.2, 0.97), (x - _u(rng, 0.35, 0.6), 0.9)]
    elif form == 2:  # a hook that curls back up toward the loop, like a g
        tail = [start, (x, 0.7), (x - 0.2, 1.0), (x - 0.5, 0.92), (x - _u(rng, 0.45, 0.65), 0.72)]
    else:  # a long S-like tail
        tail = [start, (x + 0.1, 0.55), (x - 0.1, 0.85), (x - _u(rng, 0.3, 0.5), 1.0)]
    return [(loop, True), (tail, True)]


FORMS: tuple[Form, ...] = (_zero, _one, _two, _three, _four, _five, _six, _seven, _eight, _nine)


def _smooth(points: np.ndarray, rounds: int = 3) -> np.ndarray:
    """Chaikin corner cutting: a smooth curve through a polygon's shape, ends kept."""
    for _ in range(rounds):
        a, b = points[:-1], points[1:]
        cut = np.empty((2 * len(a), 2))
        cut[0::2], cut[1::2] = 0.75 * a + 0.25 * b, 0.25 * a + 0.75 * b
        points = np.vstack([points[:1], cut, points[-1:]])
    return points


def draw(digit: int, rng: np.random.Generator) -> np.ndarray:
    """One digit as ink in [0, 1] on a (SIDE, ~SIDE) canvas cropped to the digit."""
    strokes = FORMS[digit](rng)
    jitter = _u(rng, 0.01, 0.04)
    # slant, turn and narrow the unit box: x' = a x + b y, y' = c x + d y
    shear = _u(rng, -0.35, 0.35) if digit != 1 else _u(rng, -0.1, 0.35)  # a 1 leans right
    turn = math.radians(_u(rng, -10, 10))
    width = _u(rng, 0.55, 1.1) if digit != 1 else _u(rng, 0.4, 1.0)
    m = np.array([[math.cos(turn), -math.sin(turn)], [math.sin(turn), math.cos(turn)]]) @ np.array(
        [[width, shear], [0.0, 1.0]]
    )
    paths = []
    for points, smooth in strokes:
        p = np.array(points) + rng.normal(0, jitter, (len(points), 2))
        paths.append((_smooth(p) if smooth else p) @ m.T)
    every = np.vstack(paths)
    lo, hi = every.min(0), every.max(0)
    scale = (SIDE - 1) / max(hi[1] - lo[1], 1e-3)
    pen = max(1, round(_u(rng, 0.04, 0.16) * SIDE))
    margin = pen
    size = (int((hi[0] - lo[0]) * scale) + 2 * margin + 1, SIDE + 2 * margin)
    canvas = Image.new("L", size, 0)
    pen_draw = ImageDraw.Draw(canvas)
    for path in paths:
        xy = [(float(x), float(y)) for x, y in (path - lo) * scale + margin]
        pen_draw.line(xy, fill=255, width=pen, joint="curve")
        for x, y in (xy[0], xy[-1]):  # round ends
            pen_draw.ellipse((x - pen / 2, y - pen / 2, x + pen / 2, y + pen / 2), fill=255)
    return np.asarray(canvas, dtype=np.float32) / 255


def render(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` digits (balanced, seeded) -> ((N, 28, 28) uint8 as preprocess sees them, labels)."""
    from digitrec.predictor import one_thread
    from digitrec.training.styles import capture

    rng = np.random.default_rng(seed)
    images, labels = [], []
    with one_thread():
        for i in range(count):
            digit = i % 10
            ink = draw(digit, rng)
            seen = capture(ink, rng, rng.random() < 0.5)
            if seen is not None:
                images.append(seen)
                labels.append(digit)
    return np.stack(images), np.array(labels, dtype=np.int64)
