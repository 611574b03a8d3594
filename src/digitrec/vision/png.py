"""PNG without Pillow, for the two hot spots: a canvas's alpha channel in, a 28x28 out.

`alpha` reads a browser canvas export in a third of the time Pillow takes. A 280x280 RGBA
canvas of ~2-8 KB inflates to 313 KB, almost all of it runs of zeros: Pillow's bundled zlib
inflates those byte by byte (~0.8-1.0 ms here), zlib-ng copies them in blocks (~0.05-0.1 ms).
And the canvas path needs only the alpha channel: PNG's row filters treat each channel on its
own, so the alpha bytes are un-filtered alone, as a one-channel image. Chromium writes every
row of a canvas with the "up" filter: then the alpha channel is a running sum down the
columns, one array operation. Files whose rows mix filters (libpng's and Pillow's per-row
choice) need a pixel-by-pixel loop, which Pillow's C does faster than NumPy can: `alpha`
returns None for those, and for anything else it does not read plainly (16-bit, interlaced,
eXIf, a bad CRC, truncated), and Pillow reads them and words every error.

`size` reads a PNG's width and height from its header, for the server to tell a drawing from
a photo before any decoding. `write` is the small encoder behind every /predict answer's "what
the model saw" image (a third of Pillow's CPU) and the benchmarks' Chromium-style canvases.
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
NONE, SUB, UP = 0, 1, 2  # row filters (PNG spec, 9.2)


def alpha(
    data: bytes | bytearray | memoryview, max_pixels: int, max_short_side: int | None = None
) -> np.ndarray | None:
    """(H, W) uint8: the alpha channel of an 8-bit RGBA or grey + alpha PNG whose rows all have
    one filter (none, sub or up); None when `data` is anything else or not quite right, has
    over `max_pixels` pixels, or its shorter side is over `max_short_side` (checked before
    anything is inflated)."""
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
    each row's filter. Rows all "none": the bytes; all "sub": running sums along each row; all
    "up": down each column. None for a mix, or average / Paeth (see the module's docstring)."""
    if (kinds == UP).all():
        return running_sum(x)
    if (kinds == NONE).all():
        return x.copy()
    if (kinds == SUB).all():
        return np.ascontiguousarray(running_sum(x.T).T)
    return None


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


def write(pixels: np.ndarray, row_filter: int = NONE, level: int = 6) -> bytes:
    """(H, W) grey or (H, W, 4) RGBA uint8 -> PNG bytes, every row with `row_filter` (NONE or
    UP, as Chromium writes a canvas), zlib at `level`."""
    pixels = np.ascontiguousarray(pixels, np.uint8)
    height, width = pixels.shape[:2]
    colour = {2: 0, 3: 6}[pixels.ndim]  # grey, RGBA
    lines = pixels.reshape(height, -1)
    if row_filter == UP:
        lines = np.diff(lines, axis=0, prepend=np.zeros_like(lines[:1]))
    elif row_filter != NONE:
        raise ValueError(f"row filter {row_filter}: only none (0) and up (2) are written")
    rows = np.empty((height, lines.shape[1] + 1), np.uint8)
    rows[:, 0] = row_filter
    rows[:, 1:] = lines
    header = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    return b"".join(
        [
            SIGNATURE,
            _chunk(b"IHDR", header),
            _chunk(b"IDAT", zlib_ng.compress(rows.tobytes(), level)),
            _chunk(b"IEND", b""),
        ]
    )


def _chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib_ng.crc32(body, zlib_ng.crc32(kind))
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def size(data: bytes | bytearray | memoryview) -> tuple[int, int] | None:
    """(width, height) from a PNG's header alone (its first 24 bytes); None when `data` does not
    start as a PNG does."""
    view = memoryview(data)
    if len(view) < 24 or bytes(view[:8]) != SIGNATURE or bytes(view[12:16]) != b"IHDR":
        return None
    width, height = struct.unpack_from(">II", view, 16)
    return width, height
