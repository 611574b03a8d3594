"""png: a canvas PNG's alpha channel without Pillow, equal to Pillow's; anything it does not read
plainly goes back to Pillow (None); the canvas path gives what the general one gives; what
png.write writes, Pillow reads back."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from digitrec.vision import png
from digitrec.vision import preprocess as pp
from tests.helpers import ROOT

REALWORLD = ROOT / "tests" / "realworld"
CHROMIUM = ROOT / "benchmarks" / "canvas7.png"  # a 7 drawn and exported in Chromium


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def paeth(a: int, b: int, c: int) -> int:
    pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def encode(pixels: np.ndarray, filters: list[int], extra: bytes = b"", depth: int = 8) -> bytes:
    """A PNG of (H, W, 4 or 2) uint8 pixels with the given filter on each row, written the long
    way (the PNG spec's definitions, byte by byte)."""
    height, width, bpp = pixels.shape
    lines = pixels.reshape(height, width * bpp).astype(int)
    data = bytearray()
    for r, kind in enumerate(filters):
        line, above = lines[r], lines[r - 1] if r else np.zeros_like(lines[0])
        data.append(kind)
        for i in range(width * bpp):
            a, b = (line[i - bpp] if i >= bpp else 0), above[i]
            c = above[i - bpp] if i >= bpp else 0
            data.append((line[i] - [0, a, b, (a + b) // 2, paeth(a, b, c)][kind]) & 255)
    header = struct.pack(">IIBBBBB", width, height, depth, {4: 6, 2: 4}[bpp], 0, 0, 0)
    return (
        png.SIGNATURE
        + chunk(b"IHDR", header)
        + extra
        + chunk(b"IDAT", zlib.compress(bytes(data)))
        + chunk(b"IEND", b"")
    )


def pillow_alpha(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))[..., -1]


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 24),
    st.integers(1, 24),
    st.sampled_from([4, 2]),
    st.integers(0, 2**32 - 1),
    st.floats(0.0, 0.95),
    st.sampled_from([png.NONE, png.SUB, png.UP]),
)
def test_one_filter_files_read_as_pillow_reads_them(
    height: int, width: int, bpp: int, seed: int, clear: float, row_filter: int
) -> None:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (height, width, bpp), dtype=np.uint8)
    pixels[rng.random((height, width)) < clear] = 0  # a canvas is mostly clear
    data = encode(pixels, [row_filter] * height)
    alpha = png.alpha(data, 10**6)
    assert alpha is not None
    np.testing.assert_array_equal(alpha, pillow_alpha(data))


@pytest.mark.parametrize(
    "filters", [[1, 2, 2, 2], [0, 2, 0, 2], [2, 2, 4, 2], [3, 3, 3, 3], [4, 4, 4, 4], [2, 2, 2, 7]]
)
def test_mixed_average_paeth_or_unknown_filters_go_to_pillow(filters: list[int]) -> None:
    """A per-row choice of filters needs a pixel-by-pixel loop: Pillow's C runs it faster."""
    pixels = np.random.default_rng(0).integers(0, 256, (4, 5, 4), dtype=np.uint8)
    if 7 in filters:  # not a PNG filter: written by hand
        header = struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0)
        data = (
            png.SIGNATURE
            + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x07" + bytes(4)))
            + chunk(b"IEND", b"")
        )
    else:
        data = encode(pixels, filters)
        assert pillow_alpha(data).shape == (4, 5)  # a good file, only not ours to read
    assert png.alpha(data, 10**6) is None


def chromium_style(path: Path) -> bytes:
    """A real-world canvas drawing (Pillow wrote it) re-encoded as Chromium writes a canvas."""
    return png.write(np.asarray(Image.open(path).convert("RGBA")), png.UP, level=3)


def test_canvases_read_as_pillow_reads_them() -> None:
    drawings = sorted(REALWORLD.glob("canvas_*.png"))[:40]
    for data in [CHROMIUM.read_bytes(), *(chromium_style(f) for f in drawings)]:
        alpha = png.alpha(data, 10**6)
        assert alpha is not None
        np.testing.assert_array_equal(alpha, pillow_alpha(data))


@pytest.mark.parametrize("row_filter", [png.NONE, png.UP])
def test_written_pngs_read_back_the_same_in_pillow(row_filter: int) -> None:
    rng = np.random.default_rng(row_filter)
    for shape in [(28, 28), (7, 13, 4)]:
        pixels = rng.integers(0, 256, shape, dtype=np.uint8)
        image = Image.open(io.BytesIO(png.write(pixels, row_filter)))
        assert image.mode == ("L" if len(shape) == 2 else "RGBA")
        np.testing.assert_array_equal(np.asarray(image), pixels)


def test_running_sum_is_cumsum_mod_256_past_a_16_bit_lane() -> None:
    x = np.full((600, 7), 255, np.uint8)  # 600 x 255 overflows 16 bits: the blocks must not
    x[::7] = np.arange(7, dtype=np.uint8) * 37
    np.testing.assert_array_equal(png.running_sum(x), np.cumsum(x, axis=0, dtype=np.uint8))


def plain() -> bytes:
    pixels = np.zeros((8, 8, 4), np.uint8)
    pixels[2:6, 3:5] = 255
    return encode(pixels, [png.UP] * 8)


@pytest.mark.parametrize(
    "case",
    [
        "not a png",
        "truncated",
        "bad crc",
        "no IEND",
        "16 bit",
        "exif",
        "animated",
        "too many pixels",
        "too short",
    ],
)
def test_what_it_does_not_read_plainly_goes_to_pillow(case: str) -> None:
    data = plain()
    assert png.alpha(data, 10**6) is not None
    if case == "not a png":
        data = b"GIF89a" + data[6:]
    elif case == "truncated":
        data = data[: len(data) - 20]
    elif case == "bad crc":
        data = data[:-20] + bytes([data[-20] ^ 1]) + data[-19:]
    elif case == "no IEND":
        data = data[:-12]
    elif case == "16 bit":
        data = encode(np.zeros((4, 2, 4), np.uint8), [0] * 4, depth=16)
    elif case == "exif":  # the orientation tag may turn it: Pillow's job
        data = encode(np.zeros((4, 4, 4), np.uint8), [0] * 4, extra=chunk(b"eXIf", b"MM\0*"))
    elif case == "animated":
        data = encode(np.zeros((4, 4, 4), np.uint8), [0] * 4, extra=chunk(b"acTL", bytes(8)))
    elif case == "too many pixels":
        assert png.alpha(data, 63) is None
        assert png.alpha(data, 10**6, max_short_side=7) is None  # shrunk first: Pillow's way
        assert png.alpha(data, 10**6, max_short_side=8) is not None
        return
    elif case == "too short":  # the image data inflates to less than its rows
        header = struct.pack(">IIBBBBB", 8, 8, 8, 6, 0, 0, 0)
        data = (
            png.SIGNATURE
            + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\0" * 100))
            + chunk(b"IEND", b"")
        )
    assert png.alpha(data, 10**6) is None


def test_rgb_and_opaque_pngs_take_the_general_way() -> None:
    for image in (Image.new("RGB", (40, 40), "white"), Image.new("RGBA", (40, 40), "white")):
        buf = io.BytesIO()
        image.save(buf, "PNG")
        assert pp.canvas_alpha(buf.getvalue()) is None


def test_the_canvas_way_gives_the_general_way_s_image() -> None:
    """The same 28x28 whether a canvas goes the short way (bytes) or through Pillow (an Image)."""
    files = sorted(REALWORLD.glob("canvas_*.png"))[::3]
    for name, data in [("canvas7", CHROMIUM.read_bytes())] + [
        (f.name, chromium_style(f)) for f in files
    ]:
        assert pp.canvas_alpha(data) is not None, name
        general = pp.preprocess(Image.open(io.BytesIO(data)))
        short = pp.preprocess(data)
        assert (short is None) == (general is None), name
        if short is not None:
            np.testing.assert_array_equal(short, general)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=4), st.integers(0, 400)
)
def test_broken_pngs_are_none_or_what_pillow_reads(edits: list[tuple[int, int]], cut: int) -> None:
    """Flipped bytes and cut-off files never raise: png.alpha gives None (Pillow then words the
    error) or the very pixels Pillow reads from the same bytes."""
    data = bytearray(CHROMIUM.read_bytes())
    for position, value in edits:
        data[position % len(data)] = value
    data = data[: len(data) - cut]
    alpha = png.alpha(bytes(data), 10**6)
    if alpha is not None:
        np.testing.assert_array_equal(alpha, pillow_alpha(bytes(data)))
