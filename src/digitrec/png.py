"""The alpha channel of a canvas PNG, read in a fifth of the time Pillow takes.

A browser canvas export is a 280x280 RGBA PNG of ~2 KB that inflates to ~310 KB, almost all
of it long runs of zeros. Pillow's bundled zlib inflates those byte by byte (~0.8 ms here);
zlib-ng copies them in blocks (~0.05 ms). And the canvas path needs only the alpha channel:
PNG's row filters treat each channel on its own, so the alpha bytes are un-filtered alone,
as a one-channel image, with a few whole-array NumPy operations.

`alpha` reads only the plain case (8-bit RGBA or grey + alpha, not interlaced, nothing but
ancillary chunks that do not change the pixels) and returns None for anything else, broken
files included: those go to Pillow, which reads every kind and words every error.
"""

from __future__ import annotations

import struct

import numpy as np
from zlib_ng import zlib_ng

SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Ancillary chunks that leave the pixels as they are (colour-space hints, text, time, ...).
# Anything else (eXIf may turn the image, acTL makes it an animation, an unknown critical
# chunk) sends the file to Pillow.
HARMLESS = {b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"pHYs", b"tEXt", b"zTXt", b"iTXt", b"tIME",
            b"bKGD", b"sBIT", b"sPLT", b"hIST", b"cICP", b"mDCv", b"cLLi"}  # fmt: skip
CHANNELS = {6: 4, 4: 2}  # colour type -> bytes per pixel at 8 bits: RGBA, grey + alpha


def alpha(
    data: bytes | bytearray | memoryview, max_pixels: int, max_short_side: int | None = None
) -> np.ndarray | None:
    """(H, W) uint8: the alpha channel of an 8-bit RGBA or grey + alpha PNG; None when `data`
    is any other file, is not quite right, has over `max_pixels` pixels, or its shorter side
    is over `max_short_side` (checked before anything is inflated)."""
    view = memoryview(data)
    if bytes(view[:8]) != SIGNATURE:
        return None
    pos, size, idat = 8, None, []
    while pos + 12 <= len(view):
        length, kind = struct.unpack_from(">I4s", view, pos)
        end = pos + 12 + length
        if end > len(view):
            return None  # truncated
        body = view[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack_from(">I", view, pos + 8 + length)
        if zlib_ng.crc32(body, zlib_ng.crc32(kind)) != crc:
            return None
        if kind == b"IHDR":
            if length != 13 or size is not None:
                return None
            width, height, depth, colour, method, filters, interlace = struct.unpack(
                ">IIBBBBB", body
            )
            if depth != 8 or colour not in CHANNELS or (method, filters, interlace) != (0, 0, 0):
                return None
            size = (height, width)
        elif kind == b"IDAT":
            if size is None:
                return None
            idat.append(body)
        elif kind == b"IEND":
            break
        elif kind not in HARMLESS:
            return None
        pos = end
    else:
        return None  # no IEND
    if size is None or not idat:
        return None
    (height, width), bpp = size, CHANNELS[colour]
    if not 0 < height * width <= max_pixels:
        return None
    if max_short_side is not None and min(height, width) > max_short_side:
        return None
    stride = 1 + width * bpp
    inflater = zlib_ng.decompressobj()
    try:
        raw = inflater.decompress(b"".join(idat), height * stride + 1)
    except Exception:  # zlib_ng.error (its stubs do not say it is an exception): corrupt
        return None
    if len(raw) != height * stride or not inflater.eof:
        return None
    rows = np.frombuffer(raw, np.uint8).reshape(height, stride)
    return unfilter(rows[:, 0], rows[:, bpp::bpp])


def unfilter(kinds: np.ndarray, x: np.ndarray) -> np.ndarray | None:
    """Undo PNG's row filters on one channel: `x` (H, W) uint8 the filtered bytes, `kinds` (H,)
    each row's filter (0 none, 1 sub, 2 up, 3 average, 4 Paeth). None for an unknown filter.

    None and sub rows need no other row; runs of up rows are cumulative sums down the columns
    from the row above the run; average and Paeth rows go pixel by pixel, over the part of the
    row where anything is not zero (a canvas's rows are mostly clear).
    """
    if kinds.size and int(kinds.max()) > 4:
        return None
    if (kinds == 2).all():  # Chromium's canvas export: every row 'up'
        return running_sum(x)
    out = x.copy()
    sub = kinds == 1
    if sub.any():
        out[sub] = running_sum(x[sub].T).T
    slow = np.flatnonzero(kinds >= 3).tolist()
    start = 0
    for stop in [*slow, len(kinds)]:
        _up_runs(kinds, x, out, start, stop)
        if stop < len(kinds):
            above = out[stop - 1] if stop else np.zeros_like(out[0])
            out[stop] = (_average if kinds[stop] == 3 else _paeth)(x[stop], above)
        start = stop + 1
    return out


def _up_runs(kinds: np.ndarray, x: np.ndarray, out: np.ndarray, start: int, stop: int) -> None:
    """Rows start..stop-1 (no average or Paeth among them): each up row is the row above plus
    its bytes. Over rows `start - 1` (done; zeros above the image) to stop - 1, with z = the
    final row for every other row and the filtered bytes for up rows, an up row r in a run
    after row b is total[r] - total[b] + out[b], total the running sum of z."""
    up = kinds[start:stop] == 2
    if not up.any():
        return
    z = np.concatenate([out[start - 1 : start] if start else np.zeros_like(out[:1]),
                        out[start:stop]])  # fmt: skip
    z[1:][up] = x[start:stop][up]
    total = running_sum(z)
    index = np.arange(len(z))
    index[1:][up] = 0
    base = np.maximum.accumulate(index)  # each row's last row that is not up
    rows = np.flatnonzero(up) + 1
    out[start:stop][up] = total[rows] - total[base[rows]] + z[base[rows]]


def running_sum(x: np.ndarray) -> np.ndarray:
    """(H, W) uint8 -> the running sums down each column, mod 256.

    NumPy's cumsum over uint8 goes a byte at a time; here four columns share each 64-bit
    word, 16 bits apiece, so one cumsum adds four. A 16-bit lane holds 257 rows of 255, so
    the rows go in blocks of 256, each starting from the last row's value mod 256.
    """
    height, width = x.shape
    wide = np.empty((height, -(-width // 4) * 4), np.uint16)
    wide[:, width:] = 0
    wide[:, :width] = x
    lanes = wide.view(np.uint64)
    for start in range(0, height, 256):
        block = lanes[start : start + 256]
        if start:
            block[0] += lanes[start - 1] & np.uint64(0x00FF00FF00FF00FF)
        np.cumsum(block, axis=0, out=block)
    return wide[:, :width].astype(np.uint8)


def _span(*rows: np.ndarray) -> tuple[int, int]:
    """First and one past the last index where any of `rows` is not zero; (0, 0) if none."""
    nonzero = np.flatnonzero(np.logical_or.reduce(rows))
    return (int(nonzero[0]), int(nonzero[-1]) + 1) if nonzero.size else (0, 0)


def _average(x: np.ndarray, above: np.ndarray) -> np.ndarray:
    """An average row: out[i] = x[i] + (out[i - 1] + above[i]) // 2."""
    out = np.zeros_like(x)
    first, last = _span(x, above)
    # Before `first` everything is 0; after `last` the left neighbour halves each step.
    last = min(len(x), last + 8)
    xs, bs, a = x[first:last].tolist(), above[first:last].tolist(), 0
    values = []
    for xi, b in zip(xs, bs, strict=True):
        a = (xi + ((a + b) >> 1)) & 255
        values.append(a)
    out[first:last] = values
    return out


def _paeth(x: np.ndarray, above: np.ndarray) -> np.ndarray:
    """A Paeth row: out[i] = x[i] + whichever of left, above and upper-left is nearest to
    left + above - upper-left (ties in that order).

    Where above == upper-left the left neighbour always wins, so the row is a running sum of
    x there; only where the row above changes (a stroke's edges) is there a choice to make.
    Those few pixels go one by one, and the runs between them are read off the running sum.
    """
    b = above.astype(np.int32)
    c = np.concatenate([[0], b[:-1]])
    total = np.cumsum(x, dtype=np.uint8).astype(np.int32)  # out = total[i] - total[d] + out[d]
    choices = np.flatnonzero(b != c)
    if not choices.size:
        return total.astype(np.uint8)
    xs, bs, cs, ts = (v[choices].tolist() for v in (x.astype(np.int32), b, c, total))
    before = total[choices - 1].tolist() if choices[0] else [0, *total[choices[1:] - 1].tolist()]
    values = []
    last, out_last, total_last = -1, 0, 0  # out and total at the last choice (none: 0, 0)
    for i, d in enumerate(choices.tolist()):
        # the left neighbour: a choice itself, or in the run after the last one
        a = out_last if d - 1 == last else (before[i] - total_last + out_last) & 255
        bi, ci = bs[i], cs[i]
        pa, pb, pc = abs(bi - ci), abs(a - ci), abs(a + bi - 2 * ci)
        out_last = (xs[i] + (a if pa <= pb and pa <= pc else bi if pb <= pc else ci)) & 255
        last, total_last = d, ts[i]
        values.append(out_last)
    # every pixel from its last choice on (before the first: from out = total)
    index = np.zeros(len(x), np.intp)
    index[choices] = np.arange(1, len(choices) + 1)
    index = np.maximum.accumulate(index)  # 0 before the first choice, else 1 + which
    base_out = np.array([0, *values], np.int32)[index]
    base_total = np.concatenate([[0], total[choices]])[index]
    return ((total - base_total + base_out) & 255).astype(np.uint8)
