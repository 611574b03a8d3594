"""Real writers' pen strokes, drawn as people draw on the page, for training.

`data/real/pendigits` holds digits written on a tablet by real writers (not MNIST's); they are
split by writer, so a model may train on some writers and be scored on the others
(`TrainConfig.pen_writers`; benchmarks/pen.py rotates the folds). `render` draws each digit many
ways on the page's canvas (vision/canvas.py: the page's brush, caps, joins and export), the
ways people do: brush 4-40 px, dpr 1-3, small or large, anywhere on a digit or number-mode
canvas, slanted, turned, narrowed, the points jittered (a finger) or thinned (slow pointer
events); a share on an opaque background of any colour (exports by other code than ours) or
captured at low resolution and enlarged (blocky or smooth). Each goes through the same
preprocessing a request takes (`preprocess_canvas` for a transparent canvas, `preprocess`
otherwise) and comes back as the (28, 28) the model sees.

Pure NumPy and Pillow, seeded; ~3 ms a digit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from digitrec.realworld import PEN_FILE, PEN_WRITERS
from digitrec.vision import canvas
from digitrec.vision import imageops as ops
from digitrec.vision.preprocess import preprocess, preprocess_canvas

DPRS = (1.0, 1.0, 1.5, 2.0, 2.625, 3.0)  # device pixel ratios of common screens


def load(writers: Sequence[int] = PEN_WRITERS, path: Path = PEN_FILE) -> list[canvas.PenDigit]:
    """The pen digits of these writers."""
    chosen = set(writers)
    return [d for d in canvas.load_pen(path) if d.writer in chosen]


def vary(strokes: Sequence[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """A digit's strokes (y up) as another person might have drawn it: slanted, turned,
    narrowed or widened, its points jittered or thinned. Still y up, same units."""
    every = np.vstack(strokes)
    size = float(np.ptp(every, axis=0).max()) or 1.0
    shear = rng.uniform(-0.3, 0.3)
    turn = math.radians(rng.uniform(-12, 12))
    width = rng.uniform(0.75, 1.25)
    m = np.array([[math.cos(turn), -math.sin(turn)], [math.sin(turn), math.cos(turn)]]) @ np.array(
        [[width, shear], [0.0, 1.0]]
    )
    jitter = size * (rng.uniform(0.0, 0.015) if rng.random() < 0.5 else 0.0)
    step = int(rng.choice((1, 1, 2, 3)))  # thinned: fewer pointer events on a slow device
    out = []
    for s in strokes:
        if step > 1 and len(s) > 2:
            s = np.vstack([s[:-1:step], s[-1:]])
        out.append((s + rng.normal(0, jitter, s.shape)) @ m.T if jitter else s @ m.T)
    return out


def render_one(digit: canvas.PenDigit, rng: np.random.Generator) -> np.ndarray | None:
    """One digit drawn one way -> (28, 28) uint8 as preprocessing gives it (None: read blank)."""
    strokes = vary(digit.strokes, rng)
    number_mode = rng.random() < 0.3
    size = (2 * canvas.SIDE if number_mode else canvas.SIDE, canvas.SIDE)
    dpr = float(rng.choice(DPRS))
    height = canvas.SIDE * rng.uniform(0.25, 0.9)  # the digit's box: small to filling the canvas
    width = height * rng.uniform(0.6, 1.0)
    x = rng.uniform(0, size[0] - width)
    y = rng.uniform(0, size[1] - height)
    brush = float(np.exp(rng.uniform(math.log(4), math.log(40))))
    points = canvas.place(strokes, (x, y, width, height))
    alpha = canvas.draw_alpha(points, brush, size, dpr)
    u = rng.random()
    if u < 0.7:  # the page's export: a transparent canvas, its alpha read the short way
        digit28 = preprocess_canvas(alpha)
    else:  # another app's export (ink on an opaque background), or a low-resolution capture
        if u < 0.85:
            alpha = _low_resolution(alpha, rng)
        digit28 = preprocess(_opaque(alpha, rng))
    return None if digit28 is None else np.round(digit28 * 255).astype(np.uint8)


def _opaque(alpha: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """The coverage as ink of one colour on paper of another (dark on light or light on dark)."""
    a = alpha.astype(np.float32)[..., None] / 255
    light, dark = rng.uniform(180, 255, 3), rng.uniform(0, 90, 3)
    paper, ink = (light, dark) if rng.random() < 0.75 else (dark, light)
    rgb = paper * (1 - a) + ink * a
    return Image.fromarray(np.round(rgb).astype(np.uint8), "RGB")


def _low_resolution(alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The drawing captured with the digit 8-32 px tall and enlarged to 40-100 px: blocky
    (nearest) or smooth (bilinear)."""
    box = ops.box(alpha > 0)
    if box is None:
        return alpha
    crop = alpha[box].astype(np.float32) / 255
    h, w = crop.shape
    f = rng.uniform(8, 32) / h
    small = ops.resize(crop, max(2, round(h * f)), max(2, round(w * f)))
    g = rng.uniform(40, 100) / small.shape[0]
    big_size = (max(2, round(small.shape[1] * g)), max(2, round(small.shape[0] * g)))
    resample = Image.Resampling.NEAREST if rng.random() < 0.5 else Image.Resampling.BILINEAR
    big = Image.fromarray(np.round(small * 255).astype(np.uint8)).resize(big_size, resample)
    return np.asarray(ops.pad(np.asarray(big, np.float32), (8,) * 4)).astype(np.uint8)


def render(
    digits: Sequence[canvas.PenDigit], per_digit: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each digit drawn `per_digit` ways -> ((N, 28, 28) uint8, labels)."""
    from digitrec.predictor import one_thread

    rng = np.random.default_rng(seed)
    images, labels = [], []
    with one_thread():
        for _ in range(per_digit):
            for d in digits:
                seen = render_one(d, rng)
                if seen is not None:
                    images.append(seen)
                    labels.append(d.label)
    return np.stack(images), np.array(labels, dtype=np.int64)
