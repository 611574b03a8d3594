"""A written number -> its digits, left to right.

    segment(ink, score=None) -> [Segment(box=(x, y, w, h), ink=(h, w) crop), ...]

Works on an ink map from preprocess.ink_map (ink high, background 0): connected components of
ink, then the rules a person would use.
  1. Specks (tiny next to the digits) and underlines (flat, wide, below the digits) are dropped.
  2. Parts of one digit are merged: the bar of a 5, the two strokes of a 4, a broken 7. A part
     shorter than a digit lies inside a digit's column span, or right beside it off the
     baseline; two full-height parts merge only when one lies almost wholly inside the other.
     What is left much shorter than the digits is a separator (. , - ') and is dropped.
  3. Touching digits are split: a part well wider than the writer's other digits is cut where
     little ink crosses, along the writer's slant, recursively (see _split for the limits).
     Given a classifier (`score`), a part that may hold two digits is instead cut where the
     pieces read best, among many candidate cuts, straight and curved (see _read).
Each Segment's ink holds only its own strokes, ready for preprocess.to_mnist.

Work is bounded: the pairwise steps keep their answers in sorted lists or a matrix (at most
MOST_PARTS parts, else ImageError 422), a part offers at most MOST_PIECES runs of pieces to read
per digit width, and the loops call work.check(): a server's request past its budget, or whose
client went away, stops there.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from digitrec import work
from digitrec.errors import ImageError
from digitrec.vision import imageops as ops
from digitrec.vision.preprocess import to_mnist

INK = 0.2  # a pixel with more ink than this belongs to a stroke (ink maps are 0 on paper)
SEPARATOR = 0.45  # of the digits' height: a part left shorter than this after merging is a
#   separator (dot, comma, dash), dropped; digits people write in one number are not this small
# By ink alone: a part cut in two leaves pieces at least this much of the other digits' height
# (a digit wider than tall, as a flat 4, halves into two short pieces; touching digits do not)
SHORTEST = 0.85
# With a classifier (tuned on the real-world val split, 1,000 more numbers from its generator and
# 300 strips of validation-split MNIST digits):
READ_FROM = 1.1  # digit widths: a part this wide may hold two digits (a '1' and another)
WIDE = 1.5  # digit widths: a piece wider than this is less likely one digit, ...
WIDE_COST = 4.0  # ... by this much log-likelihood per digit width over
# ... where a digit is at least this much of the part's height wide: beside narrow digits (1s,
# 7s), a wide 0 or 2 (up to ~1 height) is one digit, not two that read well
LEAST_DIGIT = 0.65
# A cut between touching digits crosses the one stroke where they touch; a cut through one digit
# often crosses two (the two sides of a 0's loop): each stroke past one costs this much.
CUT_COST = 0.5
MOST_PARTS = 2000  # ink parts (past specks and underlines) an image may hold to be segmented:
#   joining them keeps a matrix of their pairs (a server refuses far fewer, digitrec.work)
# Runs of pieces _read may look at per digit width of a part (the written numbers of
# tests/realworld and the generator, and MNIST strips, offer at most ~75); a part offering more
# (a long wave, a scribble) is cut by ink alone, so that reading stays linear in its width.
MOST_PIECES = 150

Score = Callable[[np.ndarray], np.ndarray]  # (N, 28, 28) digit images -> (N,) confidences


@dataclass(frozen=True)
class Segment:
    box: tuple[int, int, int, int]  # (x, y, w, h) in the input ink map's pixel coordinates
    ink: np.ndarray  # (h, w) float32 crop holding only this digit's strokes


@dataclass(frozen=True, eq=False)
class _Part:
    """Some strokes: `mask` (h, w) bool, its top-left corner at (x0, y0) in the ink map."""

    x0: int
    y0: int
    mask: np.ndarray

    h = property(lambda self: self.mask.shape[0])
    w = property(lambda self: self.mask.shape[1])
    x1 = property(lambda self: self.x0 + self.w)
    y1 = property(lambda self: self.y0 + self.h)
    cx = property(lambda self: self.x0 + self.w / 2)
    cy = property(lambda self: self.y0 + self.h / 2)
    area = property(lambda self: int(self.mask.sum()))


def _tight(x0: int, y0: int, mask: np.ndarray) -> _Part | None:
    """The part cropped to its strokes' box; None when no stroke is left."""
    found = ops.box(mask)
    if found is None:
        return None
    rows, cols = found
    return _Part(x0 + cols.start, y0 + rows.start, mask[found])


def segment(ink: np.ndarray, score: Score | None = None) -> list[Segment]:
    """The digits of a written number, left to right; [] for a blank ink map.

    `score`: a classifier's confidence in each of a batch of digit images (as to_mnist makes
    them). With it, a part that may hold touching digits is cut where the pieces read best.
    """
    ink = np.asarray(ink, dtype=np.float32)
    strokes = ink > INK
    labels, boxes = ops.blobs(strokes)  # 8-connected, as a pen moves
    if not boxes:
        return []
    parts = [_Part(s[1].start, s[0].start, labels[s] == i + 1) for i, s in enumerate(boxes)]
    work.check()
    parts = _drop_specks(parts)
    parts = _drop_underlines(parts)
    if len(parts) > MOST_PARTS:
        raise ImageError(
            f"the image holds {len(parts):,} separate marks; at most {MOST_PARTS:,} are read "
            "(a written number has a few per digit)",
            status=422,
        )
    parts = _drop_separators(_merge(parts))
    work.check()
    slant = _slant(_strokes_of(parts, strokes.shape))  # the digits' own: no speck or dash
    work.check()
    widths = _digit_widths(parts, slant)
    if score is None:
        parts = [p for q, width in zip(parts, widths, strict=True) for p in _split(q, width, slant)]
    else:
        parts = [
            p
            for q, width in zip(parts, widths, strict=True)
            for p in _read(ink, q, width, slant, score)
        ]
    return [_crop(ink, p) for p in sorted(parts, key=lambda p: p.cx)]


def _drop_specks(parts: list[_Part]) -> list[_Part]:
    """A speck is tiny in area next to the biggest part, or small both ways next to the tallest."""
    biggest = max(p.area for p in parts)
    tallest = max(p.h for p in parts)
    return [p for p in parts if p.area >= 0.02 * biggest and max(p.w, p.h) >= 0.2 * tallest]


def _drop_underlines(parts: list[_Part]) -> list[_Part]:
    """An underline is flat and thin, lies below the digits, and runs under more than one.

    "The others" are all the parts but the one judged: their medians and the centres under a
    part come from sorted lists, one part taken out (n log n, not n^2)."""
    if len(parts) < 2:
        return parts
    tallest = max(p.h for p in parts)
    bottoms = np.sort(np.array([p.y1 for p in parts]))
    widths = np.sort(np.array([p.w for p in parts]))
    centres = np.sort(np.array([p.cx for p in parts]))
    keep = []
    for p in parts:
        if not (p.w >= 3 * p.h and p.h < 0.3 * tallest):  # not flat and thin: no underline
            keep.append(p)
            continue
        below = p.cy > _median_without(bottoms, p.y1) - 0.1 * tallest
        # Centres in [x0, x1], less its own (a part's centre lies over itself).
        under = int(np.searchsorted(centres, p.x1, "right") - np.searchsorted(centres, p.x0)) - 1
        wide = under >= 2 or p.w > 1.5 * _median_without(widths, p.w)
        if not (below and wide):
            keep.append(p)
    return keep


def _median_without(ordered: np.ndarray, value: float) -> float:
    """np.median of the sorted values `ordered` with one `value` taken out (it is among them)."""
    n = len(ordered) - 1
    k = int(np.searchsorted(ordered, value))  # one copy of `value` is ordered[k]
    middle = [m if m < k else m + 1 for m in sorted({(n - 1) // 2, n // 2})]
    return float(np.median(ordered[middle]))


def _strokes_of(parts: list[_Part], shape: tuple[int, ...]) -> np.ndarray:
    """The parts' strokes on a mask of `shape`."""
    mask = np.zeros(shape, bool)
    for p in parts:
        mask[p.y0 : p.y1, p.x0 : p.x1] |= p.mask
    return mask


def _drop_separators(parts: list[_Part]) -> list[_Part]:
    """A part well under the digits' height that no digit took in is a separator people
    write in numbers (a dot, a comma, a dash, an apostrophe), not a digit."""
    if len(parts) < 2:
        return parts
    tallest = max(p.h for p in parts)
    height = float(np.median([p.h for p in parts if p.h >= 0.6 * tallest]))
    return [p for p in parts if p.h >= SEPARATOR * height]


def _merge(parts: list[_Part]) -> list[_Part]:
    """Join the parts of one digit, until nothing more joins.

    The first pair in list order that _one_digit joins becomes one part at the list's end, and
    the search starts again. _one_digit looks only at boxes, so the pairs' answers are kept in
    a matrix, each part a row and a column in list order (a joined part takes the next free
    one): a join works out the new part's column only, and all pairs again only when the
    tallest part grows. The joined strokes are drawn once, at the end.
    """
    n = len(parts)
    if n < 2:
        return parts
    size = 2 * n - 1  # the parts, then one per join
    boxes = np.zeros((size, 4), np.int64)  # (x0, y0, x1, y1)
    boxes[:n] = [(p.x0, p.y0, p.x1, p.y1) for p in parts]
    groups = [[p] for p in parts]  # the parts each row holds
    alive = np.zeros(size, bool)
    alive[:n] = True
    joins = np.zeros((size, size), bool)  # [i, j]: i before j in the list, and they join
    tallest = -1
    while len(groups) < size:
        work.check()
        live = np.flatnonzero(alive)
        top = int((boxes[live, 3] - boxes[live, 1]).max())
        if top != tallest:
            tallest = top
            step = max(1, 2**16 // len(live))  # rows at a time: bounded memory
            for k in range(0, len(live), step):
                rows = live[k : k + step]
                answers = _one_digit(boxes[rows, None], boxes[None, live], tallest)
                joins[rows[:, None], live] = answers & (rows[:, None] < live)
        i, j = divmod(int(joins.argmax()), size)  # row by row: the first pair in list order
        if not joins[i, j]:
            break
        new = len(groups)
        boxes[new, :2], boxes[new, 2:] = (
            boxes[[i, j], :2].min(axis=0),
            boxes[[i, j], 2:].max(axis=0),
        )
        groups.append(groups[i] + groups[j])
        alive[[i, j]] = False
        joins[[i, j]] = joins[:, [i, j]] = False
        live = np.flatnonzero(alive)
        joins[live, new] = _one_digit(boxes[live], boxes[new], tallest)  # all before it
        alive[new] = True
    return [
        groups[k][0] if len(groups[k]) == 1 else _joined(groups[k]) for k in np.flatnonzero(alive)
    ]


def _joined(group: list[_Part]) -> _Part:
    """The parts as one, on their common box."""
    x0, y0 = min(p.x0 for p in group), min(p.y0 for p in group)
    mask = np.zeros((max(p.y1 for p in group) - y0, max(p.x1 for p in group) - x0), bool)
    for p in group:
        mask[p.y0 - y0 : p.y1 - y0, p.x0 - x0 : p.x1 - x0] |= p.mask
    return _Part(x0, y0, mask)


def _one_digit(a: np.ndarray, b: np.ndarray, tallest: int) -> np.ndarray:
    """Are these two pieces of one digit? `a`, `b`: boxes (..., 4) as (x0, y0, x1, y1), any
    shapes that broadcast; the answer has their broadcast shape."""
    ax0, ay0, ax1, ay1 = np.moveaxis(a, -1, 0)
    bx0, by0, bx1, by1 = np.moveaxis(b, -1, 0)
    ah, bh, aw, bw = ay1 - ay0, by1 - by0, ax1 - ax0, bx1 - bx0
    overlap = np.minimum(ax1, bx1) - np.maximum(ax0, bx0)  # columns; negative: the gap
    a_short = ah <= bh  # as sorted() by height: of two as tall, `a` is the short one
    short_h, tall_h = np.where(a_short, ah, bh), np.where(a_short, bh, ah)
    short_w = np.where(a_short, aw, bw)
    short_y0, short_y1 = np.where(a_short, ay0, by0), np.where(a_short, ay1, by1)
    tall_y0, tall_y1 = np.where(a_short, by0, ay0), np.where(a_short, by1, ay1)
    # Two digits side by side (a slanted 1 reaches under its neighbour): only when one lies
    # almost wholly inside the other's columns.
    side_by_side = (tall_h < 0.8 * tallest) | (short_h >= 0.8 * tallest)
    within = overlap >= 0.8 * np.minimum(aw, bw)
    # A piece shorter than a digit: inside the digit's column span (the bar of a 5, the bar of
    # a 7 over its leg), or right beside it and off the baseline (the 'L' of a 4 drawn apart
    # from its stem). A small digit sits on the baseline and stays apart.
    # Beside a digit, a much shorter mark is a separator (a dash, an apostrophe), unless it is
    # a bar across the digit's top (a 7's or a 5's, drawn apart).
    inside = overlap >= 0.5 * short_w
    beside = (overlap > -0.2 * tallest) & (short_y1 < tall_y1 - 0.2 * tall_h)
    bar = (short_w >= short_h) & (short_y0 <= tall_y0 + 0.15 * tall_h)
    piece = inside | (beside & ((short_h >= SEPARATOR * tall_h) | bar))
    return np.where(side_by_side, within, piece)


def _slant(strokes: np.ndarray) -> float:
    """The writer's slant, x shift per px upward: the shear that makes strokes most upright.

    Upright strokes pile up in few columns, so the column histogram is peakiest (largest sum
    of squares) at the right shear.
    """
    if not strokes.any():
        return 0.0
    shears = np.linspace(-0.2, 0.5, 15)  # handwriting leans up to ~27 degrees, mostly right
    scores = []
    for s in shears:  # each shear goes over every stroke pixel: the budget is checked between
        work.check()
        scores.append(float(np.square(_profile(_columns(strokes, s))).sum()))
    return float(shears[int(np.argmax(scores))])


def _columns(mask: np.ndarray, slant: float) -> np.ndarray:
    """Each stroke pixel's x once the slant is undone: (N,) floats from 0, bottom row fixed."""
    ys, xs = np.nonzero(mask)
    x = xs + slant * (ys - mask.shape[0] + 1)
    return x - x.min()


def _profile(x: np.ndarray) -> np.ndarray:
    """Stroke pixels per column, each pixel shared between its two nearest columns (linear
    binning: no shear is favoured by how its rounding falls)."""
    i = np.floor(x).astype(int)
    f = x - i
    return np.bincount(i, 1 - f, i.max() + 2) + np.bincount(i + 1, f, i.max() + 2)


class Width(NamedTuple):
    """How wide one digit of this writer is (upright px; None: nothing to judge from), how
    many such widths a part must span before _split cuts it, and how tall the writer's other
    digits are (their median, px; 0: no others)."""

    px: float | None
    least: float
    height: float = 0.0


def _digit_widths(parts: list[_Part], slant: float) -> list[Width]:
    """How wide one digit of this writer is, for each part: judged from the other parts, not
    '1's (each part's width is measured once; the medians leave the part itself out).

    Alone, nothing to judge from: cut only past 2.1 times 0.7 of its height. Beside other
    digits: past 1.4 times their median width. Beside '1's only, the width is a guess, 0.6 of
    the digits' height (the '1's give it; the part's own may be a short digit's): cut past 1.75
    of it, so a wide '4' beside a tall '1' (1.67) stays whole while the touching zeros of a
    "100" (1.89) are cut.
    """
    if len(parts) < 2:
        return [Width(None, 2.1) for _ in parts]
    sizes = [(float(_columns(q.mask, slant).max()) + 1, q.h) for q in parts]
    digits = np.sort(np.array([w for w, h in sizes if w >= 0.45 * h]))  # not '1's
    heights = np.sort(np.array([h for _, h in sizes]))
    judged = []
    for p, (w, h) in zip(parts, sizes, strict=True):
        height = _median_without(heights, h)
        digit = w >= 0.45 * h
        if len(digits) > int(digit):  # another part is a digit, not a '1'
            px = _median_without(digits, w) if digit else float(np.median(digits))
            judged.append(Width(px, 1.4, height))
        else:
            judged.append(Width(0.6 * max(p.h, height), 1.75))
    return judged


def _split(p: _Part, judged: Width, slant: float) -> list[_Part]:
    """Cut a part wider than one digit where two digits touch, recursively.

    Columns are taken along the writer's slant, so leaning digits part cleanly. The cut is a
    column where little ink crosses, in a valley between more ink on both sides (the two
    digits), near where the first digit should end, leaving two tall pieces; the wider the
    part, the more strokes it may cross (digits leaning into each other). Under 1.5 digits
    wide, a part is cut only into a '1' and another digit (a narrow piece, both pieces nearly
    as tall as the part); under 1.4, never: MNIST's own digits vary that much in width. Both
    pieces must be nearly as tall as the writer's other digits: the halves of one digit wider
    than tall (a flat 4) are short. A part with no other digit to judge from is cut only when
    wider than 1.5 times its height:
    two touching digits alone cannot be told from one wide digit without reading them.
    The thresholds were set on tests/realworld's numbers and on strips of MNIST digits.
    """
    work.check()
    width = 0.7 * p.h if judged.px is None else judged.px
    x = _columns(p.mask, slant)
    profile = _profile(x)  # stroke pixels per upright column
    span = float(x.max()) + 1
    # The slant is guessed from all the ink; the box width guards against a bad guess (a lone
    # 2's diagonal taken for the slant).
    ratio = min(span, p.w) / width  # in digits
    if ratio < judged.least:
        return [p]
    allowed = min(2.5, 1.3 + 2 * (ratio - 1.2))  # strokes the cut may cross
    guess = span / max(2, round(ratio))  # where the first digit should end
    stroke = max(ops.stroke_width(p.mask), 1.0)
    reach = max(2, int(0.4 * width))  # how far to look for the digits either side of a cut
    # The stroke pixels by upright column: those left of a cut are a prefix, and the rows
    # they span are running minima and maxima (each cut costs O(1), not O(pixels)).
    order = np.argsort(x, kind="stable")
    by_x, ys = x[order], np.nonzero(p.mask)[0][order]
    top_left, bottom_left = np.minimum.accumulate(ys), np.maximum.accumulate(ys)
    top_right = np.minimum.accumulate(ys[::-1])[::-1]
    bottom_right = np.maximum.accumulate(ys[::-1])[::-1]
    best, best_score = None, 2.5  # a cut scoring worse is not convincing: no split
    for cut in range(max(int(0.1 * span), 1), min(int(1.6 * guess), int(0.9 * span)) + 1):
        k = int(np.searchsorted(by_x, cut))  # stroke pixels left of the cut
        if k in (0, len(by_x)):
            continue
        # The pieces' heights as a fraction of the part's; the smaller piece's share of ink.
        shorter = min(  # the shorter piece's height, px
            bottom_left[k - 1] - top_left[k - 1] + 1, bottom_right[k] - top_right[k] + 1
        )
        tall = shorter / p.h
        share = min(k / len(by_x), 1 - k / len(by_x))
        crossed = profile[cut] / stroke
        sides = min(
            profile[max(0, cut - reach) : cut].max(), profile[cut + 1 : cut + 1 + reach].max()
        )
        ok = crossed <= allowed and sides >= profile[cut] + stroke  # a valley
        ok = ok and tall >= 0.5 and share >= 0.15  # not a stroke's tip
        ok = ok and shorter >= SHORTEST * judged.height  # halves of one digit: short ones
        if ratio < 1.5:
            ok = ok and min(cut, span - cut) < 0.5 * width and tall >= 0.75
        # Few strokes crossed, near where the first digit should end, two tall pieces.
        score = crossed + abs(cut - guess) / guess + 4 * (1 - tall)
        if ok and score < best_score:
            best, best_score = cut, score
    if best is None:
        return [p]
    on_left = np.zeros_like(p.mask)
    on_left[np.nonzero(p.mask)] = x < best
    left, right = _tight(p.x0, p.y0, on_left), _tight(p.x0, p.y0, p.mask & ~on_left)
    if left is None or right is None:
        return [p]
    return _split(left, judged, slant) + _split(right, judged, slant)


def _read(ink: np.ndarray, p: _Part, judged: Width, slant: float, score: Score) -> list[_Part]:
    """Cut a part that may hold touching digits where its pieces read best.

    Candidate cuts: straight ones along the slant (the cuts _split makes by ink alone, and the
    columns crossing less ink or fewer strokes than nearby) and curved ones (the paths from
    top to bottom through the least ink, which wind between digits leaning into each other).
    Every run of pieces between candidates is read, and the run whose pieces are likeliest
    digits wins: the sum of the log confidences, less a cost for a piece wider than a digit
    and for a cut through more than one stroke ('no cut' is a run of one piece).
    A part alone is read only when as wide as _split would cut it: with nothing to judge a
    digit's width from, one wide digit reads well in two halves too often.
    """
    digit = 0.7 * p.h if judged.px is None else judged.px  # px, one digit's width
    x = _columns(p.mask, slant)  # upright column of each stroke pixel, (N,) from 0
    span = float(x.max()) + 1
    if min(span, p.w) / digit < (judged.least if judged.px is None else READ_FROM):
        return [p]
    ys, xs = np.nonzero(p.mask)
    # Cuts as (h,) arrays: per row, the upright column where the right-hand side begins.
    ref = p.y1 - 1  # the row _columns measures the slant from
    by_ink = _split(p, judged, slant)
    work.check()
    edges = sorted(_left_edge(q, slant, ref) for q in by_ink)
    upright = np.zeros((p.h + 1, int(span) + 1))  # the strokes, sheared upright; a blank row 0
    upright[ys + 1, np.floor(x).astype(int)] = 1.0
    crossed = (upright[1:] > upright[:-1]).sum(axis=0)  # strokes crossed, per upright column
    straight = {round(e - edges[0], 3) for e in edges[1:]}  # cuts by ink alone
    straight |= set(_valleys(_profile(x), span, digit))  # little ink (pixels) crossed
    straight |= set(_valleys(crossed.astype(float), span, digit))  # few strokes (where two meet)
    cuts = [np.full(p.h, c) for c in straight] + _paths(upright[1:], span, digit)
    work.check()
    cuts.sort(key=lambda c: float(c.mean()))
    for k in range(1, len(cuts)):  # kept in order: where two cross, the right one gives way
        cuts[k] = np.maximum(cuts[k], cuts[k - 1])
    bounds = [np.full(p.h, -1.0), *cuts, np.full(p.h, span)]
    means = [float(b.mean()) for b in bounds]  # in order: each cut lies right of the one before
    # The runs between two bounds no wider than 2.5 digits, and the whole part.
    last = len(bounds) - 1
    runs = []
    for i in range(last):
        j = i + 1
        while j <= last and means[j] - means[i] <= 2.5 * digit:
            runs.append((i, j))
            j += 1
        if i == 0 and j <= last:
            runs.append((0, last))
    if len(runs) > MOST_PIECES * max(1.0, span / digit):
        return by_ink  # a scribble, not a number: cut by ink alone
    strokes = [0, *(_strokes_crossed(upright, c) for c in cuts), 0]
    order = np.argsort(x, kind="stable")  # stroke pixels by upright column: a run's are a slice
    by_x, ys, xs = x[order], ys[order], xs[order]
    pieces: dict[tuple[int, int], _Part] = {}
    images = []  # each piece as to_mnist makes it
    for i, j in runs:
        work.check()
        near = slice(np.searchsorted(by_x, bounds[i].min()), np.searchsorted(by_x, bounds[j].max()))
        inside = (by_x[near] >= bounds[i][ys[near]]) & (by_x[near] < bounds[j][ys[near]])
        piece = _piece(p, ys[near][inside], xs[near][inside])
        if piece is not None and ((i, j) == (0, last) or piece.h >= 0.75 * p.h):
            pieces[i, j] = piece  # digits side by side: each nearly as tall as the part
            images.append(to_mnist(_crop(ink, piece).ink))
    runs = list(pieces)
    confidence = score(np.stack(images))
    logp = {}
    for (i, j), c in zip(runs, confidence, strict=True):
        across = min(span, means[j]) - max(0.0, means[i])
        wide = min(across, pieces[i, j].w) / max(digit, LEAST_DIGIT * p.h) - WIDE
        logp[i, j] = math.log(max(float(c), 1e-9)) - WIDE_COST * max(0.0, wide)
        logp[i, j] -= CUT_COST * max(0, strokes[j] - 1)
    # The likeliest run from the left end to each candidate, by dynamic programming.
    ending: dict[int, list[int]] = {}  # j -> each i of a run (i, j), in order
    for i, j in logp:
        ending.setdefault(j, []).append(i)
    best: dict[int, tuple[float, list[tuple[int, int]]]] = {0: (0.0, [])}
    for j in range(1, len(bounds)):
        options = [
            (best[i][0] + logp[i, j], [*best[i][1], (i, j)]) for i in ending.get(j, []) if i in best
        ]
        if options:
            best[j] = max(options, key=lambda o: o[0])
    return [pieces[r] for r in best[last][1]]


def _piece(p: _Part, ys: np.ndarray, xs: np.ndarray) -> _Part | None:
    """The part's stroke pixels at rows `ys`, columns `xs` (its mask's) as a part of their own,
    cropped to them (as _tight would); None for no pixels."""
    if len(ys) == 0:
        return None
    top, left = int(ys.min()), int(xs.min())
    mask = np.zeros((int(ys.max()) - top + 1, int(xs.max()) - left + 1), bool)
    mask[ys - top, xs - left] = True
    return _Part(p.x0 + left, p.y0 + top, mask)


def _strokes_crossed(upright: np.ndarray, cut: np.ndarray) -> int:
    """How many strokes a cut crosses: the runs of ink along it. `upright`: the strokes
    (h + 1, w) with a blank row 0; `cut`: (h,) its column per row."""
    columns = np.clip(cut.astype(int), 0, upright.shape[1] - 1)
    along = upright[np.arange(1, len(cut) + 1), columns]
    return int((np.diff(along, prepend=0) > 0).sum())


def _paths(ink: np.ndarray, span: float, width: float) -> list[np.ndarray]:
    """Paths from the top row to the bottom through the least ink (h, w), one per valley of
    the ink crossed as a function of where the path ends: (h,) columns each."""
    h = ink.shape[0]
    # Row by row, the least ink on a path to each column: one column left or right per row,
    # at a small cost (a path that wanders is a worse cut than a straight one).
    cost, step = ink[0].copy(), np.zeros(ink.shape, int)
    for y in range(1, h):
        options = np.stack([np.r_[np.inf, cost[:-1]] + 0.3, cost, np.r_[cost[1:], np.inf] + 0.3])
        step[y] = options.argmin(axis=0) - 1
        cost = options[step[y] + 1, np.arange(cost.size)] + ink[y]
    paths = []
    for end in _valleys(cost, span, width):
        path, column = np.zeros(h), int(end)
        for y in range(h - 1, -1, -1):
            path[y] = column
            column += step[y, column]
        paths.append(path)
    return paths


def _left_edge(p: _Part, slant: float, ref: int) -> float:
    """The part's leftmost upright column (as _columns measures, from row `ref`)."""
    ys, xs = np.nonzero(p.mask)
    return float((p.x0 + xs + slant * (p.y0 + ys - ref)).min())


def _valleys(profile: np.ndarray, span: float, width: float) -> list[float]:
    """Upright columns where fewer strokes cross than nearby (within 15% of a digit's width):
    where two digits may touch. A flat stretch counts once, at its middle."""
    smooth = np.convolve(profile, np.ones(3) / 3, mode="same")
    reach = max(2, int(0.15 * width))
    runs: list[list[int]] = []
    for c in range(2, int(span) - 1):
        near = smooth[max(0, c - reach) : c + reach + 1]
        if smooth[c] <= near.min() and smooth[c] < near.max():
            if runs and runs[-1][-1] == c - 1 and smooth[c] == smooth[c - 1]:
                runs[-1].append(c)
            else:
                runs.append([c])
    return [float(r[len(r) // 2]) for r in runs]


def _crop(ink: np.ndarray, p: _Part) -> Segment:
    """The part's box and its own strokes only (another digit's overhang is blanked)."""
    window = ink[p.y0 : p.y1, p.x0 : p.x1]
    # Keep the soft rim below INK too (one pixel around the strokes), but no other strokes.
    rim = ops.grow(p.mask) & (window <= INK)
    crop = np.where(p.mask | rim, window, 0.0).astype(np.float32)
    return Segment(box=(int(p.x0), int(p.y0), p.w, p.h), ink=crop)
