"""preprocess: any image in, an MNIST-like 28x28 out; bad files refused with a clear ImageError."""

from __future__ import annotations

import csv
import functools
import gzip
import io
import os
import struct
import time
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw
from scipy import ndimage as ndi

from digitrec.errors import ImageError
from digitrec.vision import imageops as ops
from digitrec.vision import png
from digitrec.vision import preprocess as pp
from digitrec.vision.preprocess import (
    MAX_PIXELS,
    MIN_SIDE,
    ink_map,
    is_blank,
    load_image,
    preprocess,
    shrink,
    to_mnist,
)
from tests.helpers import ROOT

REALWORLD = ROOT / "tests" / "realworld"
FAST = settings(
    max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES", 25)),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


# ---------------------------------------------------------------- fixtures


@functools.cache
def mnist(n: int = 60) -> np.ndarray:
    """The first n t10k digits, (n, 28, 28) uint8, ink high."""
    with gzip.open(ROOT / "data" / "mnist" / "t10k-images-idx3-ubyte.gz") as f:
        raw = f.read(16 + n * 784)
    return np.frombuffer(raw, np.uint8, offset=16).reshape(n, 28, 28)


def ink_canvas(digit: np.ndarray, scale: float, x: int, y: int, size: int = 280) -> np.ndarray:
    """An MNIST digit enlarged `scale` times, placed at (x, y) on a size x size ink map."""
    side = round(28 * scale)
    big = Image.fromarray(digit).resize((side, side), Image.Resampling.BICUBIC)
    ink = np.zeros((size, size), np.float32)
    ink[y : y + side, x : x + side] = np.asarray(big, np.float32) / 255
    return np.clip(ink, 0, 1)


def paper(ink: np.ndarray) -> Image.Image:
    """Dark ink on white paper, greyscale."""
    return Image.fromarray(((1 - ink) * 255).round().astype(np.uint8), "L")


def encode(image: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kw)
    return buf.getvalue()


def near(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference, allowing a shift of one pixel (centring rounds to whole pixels).

    Two different MNIST digits are >= 0.09 apart by this measure.
    """
    return min(
        float(np.abs(np.roll(a, (dy, dx), axis=(0, 1)) - b).mean())
        for dy in (-1, 0, 1)
        for dx in (-1, 0, 1)
    )


@functools.cache
def reference() -> np.ndarray:
    """MNIST digit 0 (a 7) drawn 4x on 112x112 paper, preprocessed: what every encoding gives."""
    out = preprocess(paper(ink_canvas(mnist()[0], 4, 0, 0, size=112)))
    assert out is not None
    return out


# ---------------------------------------------------------------- decoding


def digit_in_mode(mode: str) -> Image.Image:
    """The reference digit as an image of `mode` (dark ink on light, or strokes on transparent)."""
    ink = ink_canvas(mnist()[0], 4, 0, 0, size=112)
    grey = paper(ink)
    if mode == "1":  # a bilevel scan: thresholded, not dithered
        return grey.convert("1", dither=Image.Dither.NONE)
    if mode in ("L", "RGB", "P"):
        return grey.convert(mode)
    if mode == "LA":  # transparent background, black strokes: alpha is the drawing
        return Image.merge(
            "LA", [Image.new("L", grey.size, 0), Image.fromarray((ink * 255).astype(np.uint8))]
        )
    if mode == "RGBA":  # what a browser canvas exports: RGB all black, alpha carries the strokes
        alpha = Image.fromarray((ink * 255).round().astype(np.uint8))
        return Image.merge("RGBA", [Image.new("L", grey.size, 0)] * 3 + [alpha])
    if mode == "PT":  # palette with a transparent background index (a GIF / PNG-8 drawing)
        p = Image.fromarray(np.where(ink > 0.5, 1, 0).astype(np.uint8), "P")
        p.putpalette([255, 255, 255, 0, 0, 0])
        p.info["transparency"] = 0
        return p
    if mode == "I;16":
        return Image.fromarray(((1 - ink) * 65535).astype(np.uint16))
    if mode == "I":
        return Image.fromarray(((1 - ink) * 65535).astype(np.int32))
    if mode == "F":  # floats in 0..1
        return Image.fromarray((1 - ink).astype(np.float32))
    raise AssertionError(mode)


CASES = (
    [("PNG", m) for m in ("1", "L", "LA", "RGB", "RGBA", "P", "PT", "I;16")]
    + [("JPEG", m) for m in ("L", "RGB")]
    + [("WEBP", m) for m in ("RGB", "RGBA")]
    + [("BMP", m) for m in ("1", "L", "P", "RGB")]
    + [("GIF", m) for m in ("L", "P", "PT")]
    + [("TIFF", m) for m in ("1", "L", "LA", "RGB", "RGBA", "P", "I;16", "I", "F")]
)


@pytest.mark.parametrize(("fmt", "mode"), CASES, ids=[f"{f}-{m}" for f, m in CASES])
def test_every_format_and_mode_gives_the_same_digit(fmt, mode):
    image = digit_in_mode(mode)
    kw = {"transparency": 0} if mode == "PT" and fmt in ("PNG", "GIF") else {}
    if fmt == "WEBP":
        kw = {"lossless": True}
    data = encode(image, fmt, **kw)
    loaded = load_image(data)
    assert loaded.size == (112, 112)
    out = preprocess(data)
    assert out is not None, f"{fmt} {mode}: the digit was taken for a blank"
    assert near(out, reference()) < 0.05, f"{fmt} {mode} ({loaded.mode}) differs from the PNG"


def test_paths_bytes_and_pathlike_all_load(tmp_path):
    data = encode(digit_in_mode("L"), "PNG")
    (tmp_path / "d.png").write_bytes(data)
    for source in (data, bytearray(data), str(tmp_path / "d.png"), tmp_path / "d.png"):
        assert load_image(source).size == (112, 112)


def test_exif_rotation_is_applied():
    image = digit_in_mode("RGB").crop((0, 0, 112, 60))  # wider than tall
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    loaded = load_image(encode(image, "JPEG", exif=exif))
    assert loaded.size == (60, 112)


def test_gif_first_frame_is_used():
    first = digit_in_mode("L").convert("P")
    blank = Image.new("P", first.size, 255)
    buf = io.BytesIO()
    first.save(buf, "GIF", save_all=True, append_images=[blank], duration=100)
    out = preprocess(buf.getvalue())
    assert out is not None and near(out, reference()) < 0.05


# ---------------------------------------------------------------- big photos


@functools.cache
def big_sheet() -> Image.Image:
    """The reference 7 drawn 60x (1680 px tall) on a 2000x2000 sheet: a phone photo's scale."""
    return paper(ink_canvas(mnist()[0], 60, 160, 100, size=2000))


def test_a_big_jpeg_is_decoded_small_and_gives_the_same_digit():
    data = encode(big_sheet().convert("RGB"), "JPEG", quality=90)
    assert load_image(data).size == (2000, 2000)  # as it is, unless asked
    image = load_image(data, min_side=MIN_SIDE)
    assert image.size == (1000, 1000) and image.info["full_size"] == (2000, 2000)
    assert near(preprocess(data), reference()) < 0.05


def test_a_big_png_or_decoded_image_is_reduced_the_same_way():
    image = shrink(big_sheet(), MIN_SIDE)  # by a whole factor, down to at least 512 px
    assert image.size == (667, 667) and image.info["full_size"] == (2000, 2000)
    assert shrink(digit_in_mode("L"), MIN_SIDE).size == (112, 112)  # small: untouched
    for source in (encode(big_sheet(), "PNG"), big_sheet()):
        assert near(preprocess(source), reference()) < 0.05


def test_a_big_sideways_photo_keeps_its_full_size_upright():
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    data = encode(big_sheet().crop((0, 0, 2000, 1200)).convert("RGB"), "JPEG", exif=exif)
    image = load_image(data, min_side=MIN_SIDE)
    assert image.size == (600, 1000) and image.info["full_size"] == (1200, 2000)


@FAST
@given(
    seed=st.integers(0, 2**32 - 1),
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    radius=st.integers(1, 16),
    size=st.integers(1, 9),
)
def test_fast_morphology_gives_scipys_answers(seed, h, w, radius, size):
    """The stroke width, disk erosion and dilation, max filters: exactly as scipy computes them."""
    rng = np.random.default_rng(seed)
    a = rng.uniform(0, 1, (h, w)).astype(np.float32)
    padded, disk = np.pad(a, 16), ops.disk(radius)  # room to dilate, as to_mnist leaves
    assert (ops.morph(padded, radius, True) == ndi.grey_erosion(padded, footprint=disk)).all()
    assert (ops.morph(padded, radius, False) == ndi.grey_dilation(padded, footprint=disk)).all()
    for axis in (0, 1):
        assert (ops.slide(a, size, axis, True) == ndi.minimum_filter1d(a, size, axis=axis)).all()
        assert (ops.slide(a, size, axis, False) == ndi.maximum_filter1d(a, size, axis=axis)).all()
    strokes = np.pad(ndi.binary_opening(a < rng.uniform(0.3, 1)), 1)
    assert (ops.edt2(strokes) == np.round(ndi.distance_transform_edt(strokes) ** 2)).all()


@FAST
@given(
    seed=st.integers(0, 2**32 - 1),
    h=st.integers(1, 60),
    w=st.integers(1, 60),
    height=st.integers(1, 80),
    width=st.integers(1, 80),
)
@example(seed=0, h=278, w=172, height=80, width=49)  # a canvas digit to the working scale
@example(seed=0, h=64, w=96, height=280, width=420)  # a background estimate, back to full size
def test_resize_gives_pillows_answers(seed, h, w, height, width):
    """Area average going down, bilinear going up: as Pillow resizes a mode "F" image."""
    a = np.random.default_rng(seed).uniform(0, 1, (h, w)).astype(np.float32)
    down = height < h or width < w
    resample = Image.Resampling.BOX if down else Image.Resampling.BILINEAR
    expected = np.asarray(Image.fromarray(a).resize((width, height), resample))
    got = ops.resize(a, height, width)
    assert got.shape == (height, width) and got.dtype == np.float32
    assert np.abs(got - expected).max() < 1e-6


@FAST
@given(seed=st.integers(0, 2**32 - 1), h=st.integers(1, 80), w=st.integers(1, 80))
def test_the_box_holds_every_inked_pixel_and_no_empty_edge(seed, h, w):
    rng = np.random.default_rng(seed)
    alpha = (rng.uniform(0, 1, (h, w)) < rng.uniform(0, 0.05)) * rng.integers(1, 256, (h, w))
    for image in (alpha.astype(np.uint8), alpha > 0):
        found = ops.box(image)
        if not alpha.any():
            assert found is None
            continue
        ys, xs = np.nonzero(alpha)
        assert found == (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))


@FAST
@given(seed=st.integers(0, 2**32 - 1), h=st.integers(1, 60), w=st.integers(1, 60))
def test_blobs_are_labelled_as_scipy_labels_them(seed, h, w):
    """Same blobs, same numbering (row by row), 8-connected: a diagonal step joins two pixels."""
    rng = np.random.default_rng(seed)
    mask = rng.uniform(0, 1, (h, w)) < rng.uniform(0.05, 0.9)
    labels, count = ops.label(mask)
    expected, expected_count = ndi.label(mask, structure=np.ones((3, 3)))
    assert count == expected_count and (labels == expected).all()


@FAST
@given(seed=st.integers(0, 2**32 - 1), h=st.integers(1, 30), w=st.integers(1, 30))
def test_line_distances_and_the_thin_check_are_exact(seed, h, w):
    rng = np.random.default_rng(seed)
    strokes = np.pad(rng.uniform(0, 1, (h, w)) < rng.uniform(0.2, 1), 1)  # a paper rim
    near = []
    for axis in (0, 1):
        # The distance to the nearest paper pixel along `axis`, one pixel at a time.
        expected = np.zeros(strokes.shape, np.int32)
        dy, dx = (1, 0) if axis == 0 else (0, 1)
        for y, x in np.argwhere(strokes):
            d = 1
            while strokes[y + d * dy, x + d * dx] and strokes[y - d * dy, x - d * dx]:
                d += 1
            expected[y, x] = d
        assert (ops.line_distance(strokes, axis) == expected).all()
        near.append(expected)
    deepest = np.minimum(*near)  # how far each pixel lies from the paper, both ways
    for r in range(int(deepest.max()) + 2):
        assert ops.deeper_than(strokes, r) == (deepest > r).any()


def random_canvas(rng: np.random.Generator) -> Image.Image:
    """Strokes drawn on a transparent 280x280 canvas, anti-aliased; sometimes faint, sometimes
    with specks far from them (the general path), sometimes over the 64 px of the pooled one."""
    from PIL import ImageDraw

    big = Image.new("L", (560, 560), 0)  # drawn at 2x, then halved: soft edges
    draw = ImageDraw.Draw(big)
    opacity = int(rng.choice([255, 255, 255, 200, 120]))
    for _ in range(int(rng.integers(1, 4))):
        points = [tuple(int(v) for v in rng.integers(100, 460, 2)) for _ in range(3)]
        draw.line(points, fill=opacity, width=int(rng.integers(2, 50)), joint="curve")
    if rng.uniform() < 0.3:
        for _ in range(3):
            x, y = (int(v) for v in rng.integers(0, 40, 2))
            draw.ellipse((x, y, x + 6, y + 6), fill=255)
    alpha = big.resize((280, 280), Image.Resampling.BOX)
    return Image.merge("RGBA", [Image.new("L", alpha.size, 17)] * 3 + [alpha])


@FAST
@given(seed=st.integers(0, 2**32 - 1))
def test_the_canvas_path_gives_the_general_paths_ink(seed):
    """An alpha canvas is cleaned from its histogram and a pooled copy: the same ink."""
    alpha = np.asarray(random_canvas(np.random.default_rng(seed)).getchannel("A"))
    box = ops.box(alpha > 0)
    fast = pp._clean_alpha(alpha[box], alpha.size)
    general = pp._clean(alpha[box] / np.float32(255), 0.0, 0.0, alpha.size)
    assert (fast is None) == (general is None)
    if fast is not None and general is not None:
        assert fast[1] == general[1] and (fast[0] == general[0]).all()


def drawn_canvas(scale: int) -> bytes:
    """A 4 drawn with the page's pen on a transparent canvas of 280 * scale px (a phone's
    canvas has 2-3 pixels per CSS pixel), as the PNG bytes a browser sends."""
    image = Image.new("RGBA", (280 * scale, 280 * scale), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    for stroke in ([(170, 40), (60, 180), (220, 180)], [(170, 40), (170, 250)]):
        points = [(x * scale, y * scale) for x, y in stroke]
        draw.line(points, fill=(17, 17, 17, 255), width=18 * scale, joint="curve")
    return png.write(np.asarray(image), png.UP)  # as Chromium exports a canvas


def test_a_canvas_reads_the_same_at_any_pixel_ratio():
    """Canvases are read at ~CANVAS_SIDE px: the 1x, 2x and 3x exports of one drawing agree."""
    assert pp.canvas_alpha(drawn_canvas(1)) is not None  # the short way, not Pillow's
    one, two, three = (preprocess(drawn_canvas(s)) for s in (1, 2, 3))
    for out in (one, two, three):
        check_mnist_like(out)
    assert near(one, two) < 0.03 and near(one, three) < 0.03


@FAST
@given(st.integers(0, 2**32 - 1), st.integers(1, 40), st.integers(1, 40), st.integers(1, 5))
def test_mean_pool_is_the_rounded_block_mean(seed, h, w, k):
    a = np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)
    padded = np.zeros((-(-h // k) * k, -(-w // k) * k))
    padded[:h, :w] = a
    blocks = padded.reshape(padded.shape[0] // k, k, padded.shape[1] // k, k)
    expected = np.floor(blocks.mean(axis=(1, 3)) + 0.5)
    np.testing.assert_array_equal(ops.mean_pool(a, k), expected)


@pytest.mark.parametrize("width", [3, 6, 12])
@pytest.mark.parametrize("angle", [0, 30, 45, 80])
def test_mean_width_measures_a_stroke(width, angle):
    image = Image.new("L", (300, 300))
    t = np.radians(angle)
    ends = [
        (150 - 100 * np.cos(t), 150 - 100 * np.sin(t)),
        (150 + 100 * np.cos(t), 150 + 100 * np.sin(t)),
    ]
    ImageDraw.Draw(image).line(ends, fill=255, width=width)
    measured = ops.mean_width(np.asarray(image) / 255)
    assert measured == pytest.approx(width, rel=0.3), measured


def test_a_long_strip_is_reduced_before_the_heavy_work():
    strip = Image.new("L", (4000, 1000), 255)  # a written number, 4 MP, its shorter side small
    strip.paste(big_sheet().resize((1000, 1000)), (1500, 0))
    small = shrink(strip, MIN_SIDE)
    assert small.size == (2000, 500) and small.info["full_size"] == (4000, 1000)
    assert shrink(Image.new("L", (1000, 1000)), MIN_SIDE).size == (1000, 1000)  # 1 MP: as it is
    assert near(preprocess(strip), reference()) < 0.05


# ---------------------------------------------------------------- broken files


def png_header(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height, with one tiny IDAT: a few dozen bytes on disk."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def noisy(fmt: str) -> bytes:
    """A real, incompressible image file (noise), large enough that half of it is clearly cut."""
    rng = np.random.default_rng(0)
    return encode(Image.fromarray(rng.integers(0, 256, (160, 160, 3), dtype=np.uint8)), fmt)


def refused(source, status: int) -> str:
    start = time.perf_counter()
    with pytest.raises(ImageError) as info:
        load_image(source)
    assert time.perf_counter() - start < 1.0, "took over a second to refuse"
    assert info.value.status == status
    return str(info.value)


def test_empty_file_is_refused():
    assert "empty" in refused(b"", 415)


def test_truncated_png_is_refused():
    data = noisy("PNG")
    assert "truncated" in refused(data[: len(data) // 2], 415)


def test_truncated_jpeg_is_refused():
    data = noisy("JPEG")
    message = refused(data[: len(data) // 3], 415)
    assert "truncated" in message and "JPEG" in message


def test_random_bytes_are_refused():
    data = np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    assert "not an image" in refused(data, 415)


def test_text_with_a_png_name_is_refused(tmp_path):
    path = tmp_path / "digit.png"
    path.write_text("this is not a picture of a seven\n")
    assert "not an image" in refused(path, 415)


def test_missing_file_is_refused(tmp_path):
    assert "no such file" in refused(tmp_path / "nope.png", 415)


def test_a_png_claiming_30000x30000_is_refused_before_decoding():
    data = png_header(30000, 30000)
    assert len(data) < 100  # tiny on disk: only the header is huge
    message = refused(data, 413)
    assert "900,000,000 pixels" in message and f"{MAX_PIXELS:,}" in message


def test_the_pixel_limit_is_width_times_height():
    message = refused(png_header(MAX_PIXELS + 1, 1), 413)  # not a pixel too many
    assert f"{MAX_PIXELS + 1}x1" in message
    with pytest.raises(ImageError) as info:  # at the limit: allowed, then the data is short
        load_image(png_header(5000, 5000))
    assert info.value.status == 415


VALID = [encode(digit_in_mode("L"), f) for f in ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")]


@FAST
@given(
    base=st.sampled_from(VALID),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=8),
    cut=st.integers(0, 10_000),
)
def test_fuzzed_files_load_or_fail_cleanly(base, edits, cut):
    data = bytearray(base[: max(1, cut % (len(base) + 1))])
    for at, value in edits:
        data[at % len(data)] = value
    start = time.perf_counter()
    try:
        image = load_image(bytes(data))
    except ImageError as e:
        assert e.status in (413, 415) and str(e)
    else:
        out = preprocess(image)
        assert out is None or out.shape == (28, 28)
    assert time.perf_counter() - start < 1.0


@FAST
@given(st.binary(max_size=2048))
def test_random_bytes_never_crash(data):
    with pytest.raises(ImageError):
        load_image(data)


# ---------------------------------------------------------------- ink and polarity


@FAST
@given(
    st.integers(16, 120),
    st.integers(16, 120),
    st.sampled_from([0, 0, 64, 127, 128, 200, 255]),
    st.integers(0, 2**32 - 1),
)
def test_transparent_background_is_the_frames_median_alpha_under_half(h, w, level, seed):
    """A canvas is told by its frame: over half of it under 128 alpha. The quick count (and
    its quicker all-clear case) answers as the median of the frame does, ties included."""
    rng = np.random.default_rng(seed)
    alpha = np.full((h, w), level, np.uint8)
    spots = rng.random((h, w)) < rng.random()  # some pixels anywhere, frame included
    alpha[spots] = rng.integers(0, 256, int(spots.sum()), dtype=np.uint8)
    assert pp._transparent(alpha) == (ops.border_median(alpha) < 127.5)


def test_transparent_canvas_gives_the_same_as_the_opaque_drawing():
    ink = ink_canvas(mnist()[3], 7, 60, 50)
    alpha = Image.fromarray((ink * 255).round().astype(np.uint8))
    for colour in ((0, 0, 0), (33, 99, 235), (255, 255, 255)):
        rgb = [Image.new("L", alpha.size, c) for c in colour]
        canvas = Image.merge("RGBA", [*rgb, alpha])
        opaque = Image.new("RGBA", alpha.size, (255, 255, 255, 255))
        if colour == (255, 255, 255):  # white strokes show on a dark page
            opaque = Image.new("RGBA", alpha.size, (0, 0, 0, 255))
        opaque.alpha_composite(canvas)
        a, b = preprocess(encode(canvas, "PNG")), preprocess(encode(opaque.convert("RGB"), "PNG"))
        assert a is not None and b is not None
        assert np.abs(a - b).mean() < 0.02, colour


def test_ink_map_is_high_on_strokes_and_zero_on_paper():
    ink = ink_canvas(mnist()[1], 6, 40, 40)
    found = ink_map(paper(ink))
    assert found.shape == ink.shape and found.dtype == np.float32
    assert found.min() >= 0 and found.max() <= 1
    assert found[ink > 0.9].mean() > 0.9
    assert (found[ndi.binary_dilation(ink > 0.05, iterations=3) == 0] == 0).all()


def test_uneven_light_and_paper_texture_are_removed():
    rng = np.random.default_rng(2)
    ink = ink_canvas(mnist()[2], 6, 40, 40)
    yy, xx = np.mgrid[0:280, 0:280] / 280
    light = 0.55 + 0.4 * xx * (1 - 0.3 * yy)  # a shadow over the left side
    texture = ndi.gaussian_filter(rng.normal(0, 0.03, (280, 280)), 1.5) + rng.normal(
        0, 0.01, (280, 280)
    )
    photo = np.clip(light * (1 - 0.8 * ink) + texture, 0, 1)
    found = ink_map(Image.fromarray((photo * 255).astype(np.uint8)))
    assert (found[ndi.binary_dilation(ink > 0.05, iterations=4) == 0] > 0).mean() < 0.001
    out = to_mnist(found)
    assert near(out, preprocess(paper(ink))) < 0.06


def test_specks_are_removed():
    ink = ink_canvas(mnist()[4], 6, 60, 60)
    dirty = ink.copy()
    for y, x in ((10, 10), (250, 30), (20, 260), (265, 265)):
        dirty[y : y + 3, x : x + 3] = 1
    assert np.abs(preprocess(paper(dirty)) - preprocess(paper(ink))).max() < 0.02


# ---------------------------------------------------------------- invariants


DIGITS = st.integers(0, 59)


@FAST
@given(i=DIGITS, x=st.integers(0, 112), y=st.integers(0, 112))
def test_moving_the_digit_changes_nothing(i, x, y):
    here = preprocess(paper(ink_canvas(mnist()[i], 6, x, y)))
    there = preprocess(paper(ink_canvas(mnist()[i], 6, 56, 56)))
    assert here is not None and there is not None
    assert np.abs(here - there).max() < 1e-5


@FAST
@given(i=DIGITS, scale=st.floats(2.0, 9.5))
@example(i=8, scale=9.0)  # a bold 8: its loops must not be filled in when judging a dot
def test_scaling_the_digit_gives_the_same_28x28(i, scale):
    small = preprocess(paper(ink_canvas(mnist()[i], scale, 5, 5)))
    usual = preprocess(paper(ink_canvas(mnist()[i], 6, 50, 50)))
    assert small is not None and usual is not None
    assert near(small, usual) < 0.06


@FAST
@given(i=DIGITS)
def test_light_ink_on_dark_gives_the_same_as_dark_on_light(i):
    ink = ink_canvas(mnist()[i], 5, 50, 60)
    board = Image.fromarray((ink * 255).round().astype(np.uint8), "L")
    assert np.abs(preprocess(board) - preprocess(paper(ink))).max() < 1e-5


@FAST
@given(
    colour=st.tuples(*[st.integers(0, 255)] * 3),
    noise=st.floats(0, 0.03),
    gradient=st.floats(0, 0.3),
    size=st.tuples(st.integers(16, 300), st.integers(16, 300)),  # tinier: see the canvases test
)
def test_blank_images_are_not_digits(colour, noise, gradient, size):
    w, h = size
    rng = np.random.default_rng(0)
    shade = 1 - gradient * np.linspace(0, 1, w)[None, :, None]
    pixels = np.array(colour, np.float32)[None, None] / 255 * shade
    pixels = pixels + rng.normal(0, noise, (h, w, 1))
    image = Image.fromarray((np.clip(pixels, 0, 1) * 255).astype(np.uint8))
    assert preprocess(encode(image, "PNG")) is None


def test_blank_canvases_are_not_digits():
    for image in (
        Image.new("RGBA", (280, 280), (0, 0, 0, 0)),
        Image.new("RGBA", (280, 280), (255, 255, 255, 0)),
        Image.new("RGB", (280, 280), "white"),
        Image.new("L", (28, 28), 0),
        Image.new("I;16", (64, 64), 40000),
        Image.new("RGB", (1, 1), "red"),
        Image.new("L", (2, 8), 100),
    ):
        assert preprocess(image) is None, image.mode
    zeros = np.zeros((50, 40), np.float32)
    assert is_blank(zeros) and preprocess(zeros) is None
    assert (to_mnist(zeros) == 0).all() and to_mnist(zeros).shape == (28, 28)


def test_a_dot_is_not_a_digit():
    ink = np.zeros((280, 280), np.float32)
    ink[100:112, 150:162] = 1  # a tap of a fat brush
    assert is_blank(ink)


def test_bold_digits_are_not_dots():
    # A fat marker leaves small loops; judged at too coarse a scale they fill in, and a bold 8
    # is as thick as it is tall.
    for digit in mnist()[:20]:
        ink = ndi.grey_dilation(ink_canvas(digit, 7, 30, 30), size=5)  # strokes ~25 px wide
        assert not is_blank(ink)
        assert preprocess(paper(ink)) is not None


def test_an_ink_map_of_the_wrong_shape_is_refused():
    with pytest.raises(ImageError) as info:
        preprocess(np.zeros((28, 28, 3)))
    assert info.value.status == 422


# ---------------------------------------------------------------- like MNIST


def check_mnist_like(out: np.ndarray) -> None:
    assert out.shape == (28, 28) and out.dtype == np.float32
    assert out.min() >= 0 and out.max() == pytest.approx(1.0)
    cy, cx = ndi.center_of_mass(out)
    assert abs(cy - 14) <= 1 and abs(cx - 14) <= 1, (cy, cx)
    rows, cols = np.nonzero(out.any(axis=1))[0], np.nonzero(out.any(axis=0))[0]
    h, w = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
    assert h <= 20 and w <= 20 and max(h, w) >= 19, (h, w)  # fit into 20x20, longer side 20


def test_an_mnist_digit_enlarged_10x_comes_back_close_to_itself():
    digits = mnist()[:40]
    gaps = []
    for x in digits:
        big = Image.fromarray(x).resize((280, 280), Image.Resampling.BICUBIC)
        out = preprocess(big)
        check_mnist_like(out)
        gaps.append(near(out, x / 255))
    # Typical digits come back nearly unchanged; bold ones are thinned toward the median stroke.
    assert np.median(gaps) < 0.03 and max(gaps) < 0.15
    # And the strokes are as heavy as MNIST's (mean ink 0.13 there).
    mean = np.mean([preprocess(Image.fromarray(x).resize((280, 280))).mean() for x in digits])
    assert 0.10 < mean < 0.17


def test_fat_and_thin_strokes_end_close_to_mnist_width():
    skeleton = np.zeros((280, 280), np.float32)
    skeleton[40, 80:200] = 1  # a 7: bar and leg
    for t in np.linspace(0, 1, 400):
        skeleton[int(40 + 200 * t), int(199 - 90 * t)] = 1
    thin = preprocess(ndi.binary_dilation(skeleton, iterations=1).astype(np.float32))
    fat = preprocess(ndi.binary_dilation(skeleton, iterations=14).astype(np.float32))
    assert thin is not None and fat is not None
    for out in (thin, fat):
        assert 0.06 < out.mean() < 0.14  # a 7 is light; a blob or a hairline would not be
    assert near(thin, fat) < 0.05


def realworld(kind: str) -> list[str]:
    with open(REALWORLD / "labels.csv") as f:
        return [r["file"] for r in csv.DictReader(f) if r["kind"] == kind]


@pytest.mark.parametrize("kind", ["canvas", "font", "photo", "inverted"])
def test_realworld_digits_come_out_like_mnist(kind):
    files = realworld(kind)[::3]  # a third of each kind keeps this to a second or two
    for name in files:
        out = preprocess(REALWORLD / name)
        assert out is not None, f"{name} taken for blank"
        check_mnist_like(out)


def test_realworld_blanks_are_all_blank():
    for name in realworld("blank"):
        assert preprocess(REALWORLD / name) is None, name


# ---------------------------------------------------------------- framing real people's digits


def stretched_to_box(digit: np.ndarray, side: int, pen: int) -> np.ndarray:
    """An MNIST digit as Semeion and the Dutch map numerals were made: its box stretched to fill
    a side x side image (no margin: the strokes touch the border), drawn with a pen `pen` px
    wide (a grey dilation)."""
    crop = digit[ops.box(digit > 60)]
    big = np.asarray(Image.fromarray(crop).resize((side, side), Image.Resampling.BILINEAR))
    ink = np.asarray(big, np.float32) / 255
    return ndi.grey_dilation(ink, footprint=ops.disk(pen)) if pen else ink


@FAST
@given(i=DIGITS, pen=st.integers(0, 8))  # ink up to ~80% of the image (the map numerals: 70%)
@example(i=2, pen=8)  # a '1' that fills its box: a wide slanted bar, not a dot
@example(i=3, pen=8)  # a '0' whose ring covers most of the frame: dark ink all the same
def test_ink_that_touches_the_border_is_read(i, pen):
    """A tight crop or a form box: the digit fills the image and its ink covers the border.
    It is still ink (not paper, not a blank), and it reads as the same digit with a margin."""
    ink = stretched_to_box(mnist()[i], 96, pen)
    tight = preprocess(paper(ink))
    margin = preprocess(paper(ops.pad(ink, (40, 40, 40, 40))))
    assert tight is not None and margin is not None
    assert near(tight, margin) < 0.06


@FAST
@given(
    i=DIGITS,
    stroke=st.sampled_from([(255, 255, 255), (230, 230, 210), (180, 200, 255)]),
    opacity=st.floats(0.35, 1.0),
    background=st.sampled_from([(0, 0, 0), (255, 255, 255), (30, 30, 40)]),
)
def test_light_strokes_on_a_transparent_canvas_are_a_digit(i, stroke, opacity, background):
    """A dark-themed drawing app: white or light strokes (any opacity) on a clear canvas."""
    ink = ink_canvas(mnist()[i], 8, 30, 30)
    rgba = np.zeros((280, 280, 4), np.uint8)
    rgba[..., :3] = np.where(ink[..., None] > 0, stroke, background)
    rgba[..., 3] = np.round(ink * 255 * opacity)
    out = preprocess(encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert out is not None
    assert near(out, preprocess(paper(ink))) < 0.06


@FAST
@given(i=DIGITS, radius=st.integers(12, 24))
@example(i=18, radius=24)  # a '3' from a brush a sixth of the canvas wide: a blob, not a dot
def test_a_very_thick_brush_is_not_a_blank(i, radius):
    """Strokes 25-50 px wide on a 280 px canvas (a finger with the largest brush)."""
    ink = ndi.grey_dilation(ink_canvas(mnist()[i], 7, 40, 40), footprint=ops.disk(radius))
    rgba = np.zeros((280, 280, 4), np.uint8)
    rgba[..., 3] = np.round(ink * 255)
    assert preprocess(encode(Image.fromarray(rgba, "RGBA"), "PNG")) is not None
    assert preprocess(paper(ink)) is not None


def test_a_faint_stain_joined_to_a_stroke_is_not_ink():
    """Paper texture or a stain touching a stroke (photos have them) is cut away at the
    stroke's rim: it would otherwise read as more digits."""
    rng = np.random.default_rng(0)
    ink = ink_canvas(mnist()[0], 3, 100, 100, size=300)
    stain = ndi.gaussian_filter(rng.normal(0, 1, ink.shape), 3)
    stain = 0.35 * (stain > 0.05) * (np.hypot(*np.mgrid[-150:150, -150:150]) < 70)
    grey = np.clip(0.9 - 0.8 * np.maximum(ink, stain), 0, 1)
    found = ink_map(Image.fromarray((grey * 255).astype(np.uint8), "L"))
    strokes = ink_map(paper(ink))
    assert np.count_nonzero(found) < 1.3 * np.count_nonzero(strokes)


@FAST
@given(i=DIGITS, pen=st.integers(0, 6))
def test_a_digit_stretched_to_fill_its_box_is_also_seen_squeezed(i, pen):
    """Semeion's and the map numerals' way (the box stretched to a square, touching all four
    borders; scanned in 1 bit) gets squeezed views beside the usual one; the same digit with
    paper round it, or drawn on a canvas, gets the usual one alone, as preprocess gives."""
    ink = (stretched_to_box(mnist()[i], 96, pen) > 0.2).astype(np.float32)  # a 1-bit scan
    views = pp.preprocess_views(paper(ink))
    assert views is not None and len(views) == 1 + len(pp.SQUEEZE)
    assert np.array_equal(views[0], preprocess(paper(ink)))
    widths = [(lambda b: b[1].stop - b[1].start)(ops.box(v > 0.1)) for v in views]
    assert widths[0] > widths[1] > widths[2]  # squeezed sideways, in SQUEEZE's order
    margin = paper(ops.pad(ink, (30, 30, 30, 30)))
    assert [v.tobytes() for v in pp.preprocess_views(margin)] == [preprocess(margin).tobytes()]
    rgba = np.zeros((280, 280, 4), np.uint8)
    rgba[..., 3] = np.round(ink_canvas(mnist()[i], 8, 20, 20) * 255)  # a drawing: one view
    assert len(pp.preprocess_views(encode(Image.fromarray(rgba, "RGBA"), "PNG"))) == 1
