"""Any image of a digit -> the 28x28 float image the model was trained on, made as MNIST was.

    load_image  bytes / path -> a decoded PIL image (ImageError: 415 not an image, 413 too big)
    ink_map     image -> (H, W) float32 in [0, 1], ink high, background exactly 0, same grid
    is_blank    no meaningful ink (blank canvas, empty paper, faint noise, specks)
    to_mnist    ink map -> (28, 28): crop, stroke width toward MNIST's, fit into 20x20,
                centre of mass at (14, 14)
    preprocess  all of the above; None for a blank image

Pure functions on NumPy arrays (no torch), shared by the CLI, the server, training and tests.
"""

from __future__ import annotations

import io
import os
import re
import warnings

import numpy as np
from PIL import Image, ImageOps
from scipy import ndimage as ndi

from digitrec.errors import ImageError

MAX_PIXELS: int = 25_000_000  # width * height: a 5000x5000 photo is fine, a decompression bomb not
FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF", "PPM")  # never EPS: it runs Ghostscript

MIN_CONTRAST = 0.10  # ink must differ from the paper by 10% of full scale, or it is not ink
WORK = 4  # to_mnist works at 4x the final scale: the digit's longer side is 20 * 4 = 80 px
MNIST_STROKE = 2.25  # median MNIST stroke width at 28x28, px (t10k, by _stroke_width at 4x)


def load_image(source: bytes | str | os.PathLike) -> Image.Image:
    """Decode PNG, JPEG, WebP, BMP, GIF (first frame), TIFF or PPM, any mode; EXIF-rotated."""
    if isinstance(source, bytes | bytearray | memoryview):
        if len(source) == 0:
            raise ImageError("empty file: no image data")
        fp: io.BytesIO | str = io.BytesIO(bytes(source))
    else:
        fp = str(os.fspath(source))
        if not os.path.isfile(fp):
            raise ImageError(f"{fp}: no such file")
        if os.path.getsize(fp) == 0:
            raise ImageError(f"{fp}: empty file, no image data")
    try:
        with warnings.catch_warnings():
            # Image.open reads only the header: the size check below runs before any decoding.
            warnings.simplefilter("ignore")  # a broken file's complaints: the error says it all
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image: Image.Image = Image.open(fp, formats=FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        # Pillow's own limit (far above ours) stops it first; its message holds the pixel count.
        count = re.search(r"\((\d+) pixels\)", str(e))
        size = f"{int(count.group(1)):,} pixels, " if count else ""
        raise ImageError(
            f"image too large: {size}the limit is {MAX_PIXELS:,}", status=413
        ) from None
    except Exception:  # decoders raise many types on untrusted bytes (OSError, SyntaxError, ...)
        raise ImageError(
            "not an image, or not a supported format (PNG, JPEG, WebP, BMP, GIF, TIFF)"
        ) from None
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise ImageError(
            f"image too large: {width}x{height} = {width * height:,} pixels, "
            f"the limit is {MAX_PIXELS:,}",
            status=413,
        )
    if width == 0 or height == 0:
        raise ImageError(f"image has no pixels ({width}x{height})")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image.load()  # decode now, so a truncated or corrupt file fails here and not later
    except Exception as e:
        kind = image.format or "image"
        raise ImageError(f"{kind} data is truncated or corrupt ({e})") from None
    try:
        return ImageOps.exif_transpose(image)  # phones store photos sideways + a rotation tag
    except Exception:  # a broken EXIF block: the pixels are still good
        return image


def ink_map(image: Image.Image) -> np.ndarray:
    """(H, W) float32 in [0, 1]: how much ink each pixel holds, 1 in stroke centres, 0 elsewhere."""
    alpha = _alpha(image)
    if alpha is not None and _border_median(alpha) < 0.5:
        # A transparent background (a browser canvas export): alpha carries the strokes, whatever
        # the colour (the RGB of a canvas is often all black, strokes and background alike).
        return _clean(alpha, paper=0.0, noise=0.0)
    grey = _grey(image, alpha)
    x = grey if _light_ink(grey) else 1.0 - grey  # ink high from here on
    # Uneven lighting and paper shade: a grey opening removes everything its window cannot fit
    # into (the strokes) and keeps the slowly varying background, which we subtract. The window
    # must be well wider than the strokes, or where fat strokes meet the blob is taken for
    # background: a first pass measures the stroke width.
    small = ndi.uniform_filter(_shrink(x, 64), size=3)  # (h, w), shorter side 64; noise averaged
    window = int(0.3 * min(small.shape))
    first = small - ndi.grey_opening(small, size=window)
    width = _stroke_width(first > _otsu(first))
    window = min(max(window, int(3 * width) + 3), max(small.shape))
    background = ndi.uniform_filter(ndi.grey_opening(small, size=window), size=3)
    x = x - _resize(background, *x.shape)
    # Paper noise (texture, JPEG grain): median and MAD of the pixels that are not ink.
    paper = x[x <= _otsu(x)]
    median = float(np.median(paper)) if paper.size else 0.0
    sigma = 1.4826 * float(np.median(np.abs(paper - median))) if paper.size else 0.0
    return _clean(x, paper=median, noise=sigma)


def _light_ink(grey: np.ndarray) -> bool:
    """Polarity: light ink on a dark board, or dark ink on light paper?"""
    small = _shrink(grey, 64)
    # The frame is mostly background, and ink sits at the far end of the grey levels from it.
    low, high = np.percentile(small, [1, 99])
    border = _border_median(small)
    light, dark = high - border, border - low
    if abs(light - dark) > 0.25 * (high - low):
        return bool(light > dark)
    # Undecided (say a dark desk around the paper): around the local background level (a
    # median filter), dark ink leaves a long dark tail, light ink a long bright one.
    residual = small - ndi.median_filter(small, size=max(3, min(small.shape) // 4))
    return bool(np.percentile(residual, 99.5) > -np.percentile(residual, 0.5))


def _otsu(a: np.ndarray) -> float:
    """Otsu's threshold: the grey level that best splits `a` into two classes (ink, paper)."""
    hist, edges = np.histogram(a, bins=64)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres) / np.maximum(w0, 1)
    m1 = (np.sum(hist * centres) - np.cumsum(hist * centres)) / np.maximum(w1, 1)
    return float(centres[np.argmax(w0 * w1 * (m0 - m1) ** 2)])


def _alpha(image: Image.Image) -> np.ndarray | None:
    """The alpha channel in [0, 1], or None when the image has no transparency at all."""
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode not in ("LA", "RGBA", "PA", "La", "RGBa"):
        return None
    alpha = np.asarray(image.getchannel("A"), dtype=np.float32) / 255.0
    return alpha if alpha.min() < 0.98 else None


def _grey(image: Image.Image, alpha: np.ndarray | None) -> np.ndarray:
    """Luminance in [0, 1] for any mode; transparent parts composited onto white paper."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        grey = np.nan_to_num(np.asarray(image, dtype=np.float32), posinf=0.0, neginf=0.0)
        top = grey.max()
        # Float images usually span 0..1, 8-bit data stored as I or F 0..255, 16-bit greyscale
        # 0..65535; anything else, its own range.
        if image.mode == "F" and top <= 1.0:
            scale = 1.0
        else:
            scale = 255.0 if top <= 255 else 65535.0 if top <= 65535 else float(top)
        low = min(0.0, float(grey.min()))
        grey = ((grey - low) / max(scale - low, 1e-6)).astype(np.float32)
    else:
        grey = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    if alpha is not None:
        grey = (alpha * grey + (1.0 - alpha)).astype(np.float32)
    return np.clip(grey, 0.0, 1.0)


def _border_median(a: np.ndarray) -> float:
    """Median of the outer ~3% frame: the background, even when the digit fills the middle."""
    k = max(1, min(a.shape) // 32)
    frame = np.concatenate([a[:k].ravel(), a[-k:].ravel(), a[:, :k].ravel(), a[:, -k:].ravel()])
    return float(np.median(frame))


def _shrink(a: np.ndarray, side: int) -> np.ndarray:
    """Area-averaged copy, shorter side at most `side` px (background estimates are smooth)."""
    f = side / min(a.shape)
    if f >= 1:
        return a.astype(np.float32)
    size = (max(1, round(a.shape[1] * f)), max(1, round(a.shape[0] * f)))
    return np.asarray(Image.fromarray(a.astype(np.float32)).resize(size, Image.Resampling.BOX))


def _clean(x: np.ndarray, paper: float, noise: float) -> np.ndarray:
    """Scale so stroke centres are ~1, zero the paper, drop faint blobs and specks.

    `paper` and `noise` are the level and spread (sigma) of the background in `x`.
    """
    x = x.astype(np.float32)
    floor = paper + 3 * noise  # above this, a pixel holds some ink
    level = _ink_level(x, floor)
    if level - floor < MIN_CONTRAST or level - paper < 6 * noise:
        return np.zeros(x.shape, np.float32)  # nothing stands out from the paper
    ink = np.clip((x - floor) / (level - floor), 0.0, 1.0)
    # Hysteresis: a blob is ink if it reaches 0.6 somewhere; it keeps its soft edges down to 0.2.
    labels, n = ndi.label(ink > 0.2, structure=np.ones((3, 3)))
    if n == 0:
        return np.zeros(x.shape, np.float32)
    areas = np.bincount(labels.ravel(), minlength=n + 1)
    areas[0] = 0
    strong = np.zeros(n + 1, bool)
    strong[labels[ink >= 0.6]] = True
    # A speck is tiny next to the largest stroke (2%); a digit's smallest separate part, the bar
    # of a 5, is about 10%.
    keep = strong & (areas >= 0.02 * areas.max())
    keep[0] = False
    mask = ndi.binary_dilation(keep[labels], iterations=1)  # and the anti-aliased rim below 0.2
    # The ink level again from the strokes alone, so specks and blobs do not sway it.
    level = _ink_level(np.where(mask, x, floor), floor)
    ink = np.clip((x - floor) / max(level - floor, 1e-6), 0.0, 1.0)
    return np.where(mask, ink, 0.0).astype(np.float32)


def _ink_level(x: np.ndarray, floor: float) -> float:
    """The value of `x` in stroke centres: the median of the pixels in the upper half of the
    range above `floor` (the peak is the 99.99th percentile: one hot pixel is not the ink)."""
    peak = float(np.percentile(x, 99.99))
    strong = x[x > floor + 0.5 * (peak - floor)]
    return float(np.median(strong)) if strong.size else peak


def is_blank(ink: np.ndarray) -> bool:
    """True when there is no digit: no strong ink, or only dots (specks, a tap of the brush)."""
    strong = ink > 0.5
    if strong.sum() < 8:
        return True
    labels, n = ndi.label(strong, structure=np.ones((3, 3)))
    biggest = 1 + int(np.argmax(np.bincount(labels.ravel())[1:]))
    box = ndi.find_objects(labels, max_label=biggest)[biggest - 1]
    if box is None:
        return True
    largest = np.pad(labels[box] == biggest, 1)  # its own box, edges included
    extent = max(largest.shape) - 2
    thickness = 2 * float(ndi.distance_transform_edt(largest).max())
    # A stroke is longer than it is thick; a dot is not. Tiny against the image is a speck too.
    return bool(extent < max(0.04 * max(ink.shape), 2 * thickness))


def _stroke_width(binary: np.ndarray) -> float:
    """Typical stroke width in px: twice the distance to the edge along the strokes' ridges."""
    dist = ndi.distance_transform_edt(binary)
    ridge = binary & (dist >= ndi.maximum_filter(dist, size=3))
    return 2.0 * float(np.median(dist[ridge])) - 1.0 if ridge.any() else 0.0


def _disk(radius: int) -> np.ndarray:
    r = np.arange(-radius, radius + 1)
    return (r[:, None] ** 2 + r[None, :] ** 2) <= radius * radius + radius  # a round pen tip


def _bbox(a: np.ndarray, threshold: float = 0.05) -> tuple[slice, slice] | None:
    ys, xs = np.nonzero(a > threshold)
    if ys.size == 0:
        return None
    return slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1)


def _resize(a: np.ndarray, height: int, width: int) -> np.ndarray:
    """Anti-aliased resize of a float image (area average going down, bilinear going up)."""
    down = height < a.shape[0] or width < a.shape[1]
    resample = Image.Resampling.BOX if down else Image.Resampling.BILINEAR
    return np.asarray(Image.fromarray(a.astype(np.float32)).resize((width, height), resample))


def _fit(a: np.ndarray, side: int) -> np.ndarray:
    """Resize so the longer side is `side` px, keeping the aspect ratio."""
    h, w = a.shape
    f = side / max(h, w)
    return _resize(a, max(1, round(h * f)), max(1, round(w * f)))


def to_mnist(ink: np.ndarray) -> np.ndarray:
    """(28, 28) float32 in [0, 1]: as MNIST was made. All zeros for blank input."""
    out = np.zeros((28, 28), np.float32)
    box = _bbox(ink)
    if box is None:
        return out
    crop = ink[box].astype(np.float32)
    # 1. To the working scale (longer side 80 px). Going down, a hair-thin line would fade to
    #    grey and vanish, so first widen every line to at least one working pixel (max-pool
    #    big crops, then a max filter as wide as what is left of the reduction); step 2 sets
    #    the final width anyway.
    work_side = 20 * WORK
    pool = int(max(crop.shape) / work_side / 2)
    if pool > 1:  # (h, w) -> (h / pool, w / pool), each pixel the max of its block
        h, w = -(-crop.shape[0] // pool) * pool, -(-crop.shape[1] // pool) * pool
        crop = np.pad(crop, ((0, h - crop.shape[0]), (0, w - crop.shape[1])))
        crop = crop.reshape(h // pool, pool, w // pool, pool).max(axis=(1, 3))
    factor = max(crop.shape) / work_side
    if factor > 1.5:
        crop = ndi.maximum_filter(crop, size=int(np.ceil(factor)))
    work = _fit(crop, work_side)
    # 2. Stroke width toward MNIST's: a fat marker or canvas brush is eroded, a hairline dilated
    #    (grey morphology keeps the soft edges). The width is measured on the digit's own scale,
    #    so a small and a large drawing of the same digit end the same.
    max_radius = 4 * WORK  # px; a larger change would erase a digit or fill it in
    work = np.pad(work, max_radius)  # room to dilate
    target = MNIST_STROKE * WORK
    width = _stroke_width(work > 0.5)
    if width > 0:
        radius = min(abs(width - target) / 2, max_radius)  # px off each side of every stroke
        morph = ndi.grey_erosion if width > target else ndi.grey_dilation
        # Morphology goes in whole pixels: blend the two nearest radii, so the width changes
        # smoothly with the drawing's size rather than in steps.
        inner = int(radius)
        near = morph(work, footprint=_disk(inner)) if inner else work
        work = (1 - (radius - inner)) * near + (radius - inner) * morph(
            work, footprint=_disk(inner + 1)
        )
    box = _bbox(work)
    if box is None:
        return out
    # 3. Fit into 20x20 keeping the aspect ratio (anti-aliased), ink peak back to 1.
    digit = np.clip(_fit(work[box], 20), 0.0, 1.0)
    digit = digit / max(float(digit.max()), 1e-6)
    h, w = digit.shape
    # 4. Paste into 28x28 so the centre of mass lands on (14, 14): a whole-pixel shift, as MNIST
    #    did (no interpolation blur). Clamped so the digit stays inside the frame.
    cy, cx = ndi.center_of_mass(digit)
    top = int(np.clip(round(14 - cy), 0, 28 - h))
    left = int(np.clip(round(14 - cx), 0, 28 - w))
    out[top : top + h, left : left + w] = digit
    return out


def preprocess(
    source: bytes | str | os.PathLike | Image.Image | np.ndarray,
) -> np.ndarray | None:
    """Any digit image -> (28, 28) float32 in [0, 1] for the model, or None when it holds no ink.

    An np.ndarray source is taken as an ink map already: (H, W) floats in [0, 1], ink high.
    """
    if isinstance(source, np.ndarray):
        ink = np.clip(np.asarray(source, dtype=np.float32), 0.0, 1.0)
        if ink.ndim != 2:
            raise ImageError(f"an ink map is (H, W), got shape {ink.shape}", status=422)
    else:
        image = source if isinstance(source, Image.Image) else load_image(source)
        ink = ink_map(image)
    if is_blank(ink):
        return None
    return to_mnist(ink)
