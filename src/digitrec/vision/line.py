"""A written number as one line for the sequence reader, and the reader's output decoded.

The sequence reader (training/sequence.py) reads a whole line without cutting it into digits:
a CNN slides along the line and gives, for every FRAME_STRIDE columns, the probabilities of
"no digit here" (the CTC blank) and of each digit. This module holds its two torch-free ends:

- `normalise`: an ink map (preprocess.ink_map: ink high on zero, any source) -> the line the
  model reads, (HEIGHT, W) float32: the inked box scaled to INK_HEIGHT px tall, the width by the
  same factor, padded; plus the mapping back to the ink map's columns for the digits' boxes.
- `decode`: (T, 11) frame probabilities -> the digits (best path: the likeliest class per frame,
  repeats merged, blanks dropped), each with its probability (the highest its frames give it),
  its top candidates and the frames it spans.

Training renders its lines straight into `fit` (the same scaling), so what the model learns on
and what it reads at serving time are made by one function.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

HEIGHT = 32  # px: the line the model reads
INK_HEIGHT = 26  # px: the inked box's height inside it (3 px margin above and below)
PAD_X = 8  # px of empty margin left and right
FRAME_STRIDE = 4  # input columns per output frame (two 2x poolings along the width)
MAX_WIDTH = 1024  # px: a longer line is squeezed to this width (~40 digits)
BLANK = 10  # class index of the CTC blank; 0-9 are the digits
INK_FLOOR = 0.15  # ink below this does not count towards the line's box


@dataclass(frozen=True)
class Line:
    image: np.ndarray  # (HEIGHT, W) float32 in [0, 1], ink high
    x0: float  # the ink map's column at the line's column PAD_X
    y0: float  # the ink map's row at the line's row (HEIGHT - INK_HEIGHT) // 2
    scale: float  # line px per ink-map px, vertically
    scale_x: float  # and horizontally (the same unless stretched or squeezed)


def fit(ink: np.ndarray, stretch: float = 1.0) -> tuple[np.ndarray, float, float]:
    """(h, w) ink cropped to its inked box -> ((HEIGHT, W) float32 line, scale_y, scale_x);
    `stretch` widens it (more frames per digit)."""
    h, w = ink.shape
    scale = INK_HEIGHT / h
    width = max(1, round(w * scale * stretch))
    scale_x = width / w
    if width > MAX_WIDTH - 2 * PAD_X:
        width = MAX_WIDTH - 2 * PAD_X
        scale_x = width / w
    # INTER_AREA averages when shrinking (a photo's ink is usually far taller than 26 px)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    small = cv2.resize(ink.astype(np.float32), (width, INK_HEIGHT), interpolation=interp)
    top = (HEIGHT - INK_HEIGHT) // 2
    out = np.zeros((HEIGHT, width + 2 * PAD_X), np.float32)
    out[top : top + INK_HEIGHT, PAD_X : PAD_X + width] = np.clip(small, 0, 1)
    return out, scale, scale_x


def normalise(ink: np.ndarray, stretch: float = 1.0) -> Line | None:
    """An ink map (H, W) float in [0, 1] -> the line the sequence reader reads (`stretch`: its
    width times this); None when no pixel holds ink."""
    rows = np.flatnonzero((ink > INK_FLOOR).any(axis=1))
    cols = np.flatnonzero((ink > INK_FLOOR).any(axis=0))
    if rows.size == 0:
        return None
    crop = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    image, scale, scale_x = fit(crop, stretch)
    return Line(image, float(cols[0]), float(rows[0]), scale, scale_x)


@dataclass(frozen=True)
class Char:
    digit: int
    probability: float  # the highest probability its frames give this digit
    candidates: list[tuple[int, float]]  # top 3 digits at its most confident frame
    frames: tuple[int, int]  # first and last frame (inclusive) where it is the likeliest class


def decode(probs: np.ndarray) -> list[Char]:
    """Best-path CTC decoding of (T, 11) frame probabilities (BLANK last)."""
    best = probs.argmax(axis=1)
    chars: list[Char] = []
    t, n = 0, len(best)
    while t < n:
        c = int(best[t])
        end = t
        while end + 1 < n and best[end + 1] == c:
            end += 1
        if c != BLANK:
            peak = t + int(probs[t : end + 1, c].argmax())
            digits = probs[peak, :BLANK]
            order = np.argsort(-digits)[:3]
            chars.append(
                Char(
                    c,
                    float(probs[t : end + 1, c].max()),
                    [(int(d), float(digits[d])) for d in order],
                    (t, end),
                )  # fmt: skip
            )
        t = end + 1
    return chars


def char_box(line: Line, char: Char, ink: np.ndarray) -> tuple[int, int, int, int]:
    """(x, y, w, h) in the ink map's pixels: the columns the char's frames cover (widened by
    half a frame each side), the rows of the ink within them."""
    first, last = char.frames
    x_line = (first * FRAME_STRIDE - FRAME_STRIDE / 2, (last + 1) * FRAME_STRIDE + FRAME_STRIDE / 2)
    x0 = int(np.clip(line.x0 + (x_line[0] - PAD_X) / line.scale_x, 0, ink.shape[1] - 1))
    x1 = int(np.clip(np.ceil(line.x0 + (x_line[1] - PAD_X) / line.scale_x), x0 + 1, ink.shape[1]))
    rows = np.flatnonzero((ink[:, x0:x1] > INK_FLOOR).any(axis=1))
    if rows.size == 0:
        y0, y1 = int(line.y0), int(line.y0 + INK_HEIGHT / line.scale)
    else:
        y0, y1 = int(rows[0]), int(rows[-1]) + 1
    return (x0, y0, x1 - x0, max(1, min(y1, ink.shape[0]) - y0))


def confidence(probs: np.ndarray, chars: list[Char], reach: int = 2) -> float:
    """How sure the reading of (T, 11) frame probabilities is: the product of its digits'
    probabilities, times one less the most probability any frame gives to a digit that is not
    read there (within `reach` frames of a digit read as that digit). A digit the best path
    drops (one hidden in its neighbour's ink, one of two alike run together) leaves such mass
    behind; the digits' own probabilities do not see it."""
    if not chars:
        return 0.0
    allowed = np.zeros_like(probs, dtype=bool)
    allowed[:, BLANK] = True
    for c in chars:
        allowed[max(0, c.frames[0] - reach) : c.frames[1] + reach + 1, c.digit] = True
    other = float(np.where(allowed, 0.0, probs).sum(axis=1).max())
    return float(np.prod([c.probability for c in chars])) * (1.0 - other)
