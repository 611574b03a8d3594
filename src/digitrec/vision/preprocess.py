"""Any image of a digit -> the 28x28 float image the model was trained on, made as MNIST was.

    load_image  bytes / path -> a decoded PIL image (ImageError: 415 not an image, 413 too big);
                with min_side, a big photo comes back reduced (JPEG decoded at 1/2 to 1/8 scale)
    shrink      a big decoded image -> reduced by a whole factor, its full size in info
    ink_map     image -> (H, W) float32 in [0, 1], ink high, background exactly 0, same grid
    is_blank    no meaningful ink (blank canvas, empty paper, faint noise, specks)
    to_mnist    ink map -> (28, 28): crop, stroke width toward MNIST's, fit into 20x20,
                centre of mass at (14, 14)
    preprocess  all of the above; None for a blank image
    preprocess_views
                the same, plus copies squeezed sideways for a digit stretched to fill its
                box (the predictor averages the model's answers on them)
    canvas_alpha / preprocess_canvas
                the same for a canvas export (PNG bytes, transparent background) the short
                way: its alpha channel read without Pillow (png.alpha), then straight to the
                strokes

Pure functions on NumPy arrays (no torch), shared by the CLI, the server, training and tests;
the array helpers they are made of (boxes, resizing, distances, morphology) are in imageops.
A canvas (strokes on a transparent background, what the web page sends) takes a short way
(canvas_alpha, _canvas_ink): the same ink for a fraction of the work.
"""

from __future__ import annotations

import io
import math
import os
import re
import warnings
from collections.abc import Callable

import numpy as np
from PIL import ExifTags, Image, ImageOps

from digitrec.errors import ImageError
from digitrec.vision import imageops as ops
from digitrec.vision import png

MAX_PIXELS: int = 25_000_000  # width * height: a 5000x5000 photo is fine, a decompression bomb not
FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF", "PPM")  # never EPS: it runs Ghostscript

MIN_CONTRAST = 0.10  # ink must differ from the paper by 10% of full scale, or it is not ink
WORK = 4  # to_mnist works at 4x the final scale: the digit's longer side is 20 * 4 = 80 px
MNIST_STROKE = 2.56  # median MNIST stroke width at 28x28, px, by imageops.mean_width at 4x
#   (the first 3,000 training images, enlarged bilinearly)
MIN_SIDE = 512  # px: preprocess and read reduce a bigger image until its shorter side nears this
#   (a digit needs ~80 px; one a sixth of a 12 MP photo's height keeps ~85)
WORK_PIXELS = 2_000_000  # width * height: and one with more, a long strip (4000x1000), until it
#   is under this, its shorter side kept at least MIN_SIDE / 4 (a number's digits keep ~100 px)
CANVAS_SIDE = 140  # px: a canvas is read reduced by a whole factor (block means) to about
#   this size: a 280-px canvas halved, a 840-px one (3x the page's, a phone's pixel ratio) by 6
ANALYSIS = 64  # px: is_blank finds blobs and their thickness on a max-pooled copy of the
#   strong ink, its shorter side at least this (exact below twice this)


MAX_ASPECT = 40  # a longer side over 40 times the shorter (and over 2 * MIN_SIDE px) is refused:
#   a 30-digit number on one line fits, a 1-px strip does not
ODD_MODES = {"LAB": "L", "HSV": "V"}  # mode -> the band that is the image's lightness


def load_image(source: bytes | str | os.PathLike, min_side: int | None = None) -> Image.Image:
    """Decode PNG, JPEG, WebP, BMP, GIF (first frame), TIFF or PPM, any mode; EXIF-rotated.

    With `min_side`, an image over twice that on its shorter side comes back smaller (see
    `shrink`); a JPEG is decoded small to begin with (libjpeg scales by 1/2, 1/4 or 1/8 as it
    decodes: a 12 MP photo in a tenth of the time).
    """
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
    long, short = max(width, height), min(width, height)
    if long > MAX_ASPECT * short and long > 2 * MIN_SIDE:
        # Refused from the header, before decoding: a 1 x 25,000,000 strip (48 KB as a PNG)
        # took seconds to decode and to look for ink in, and no shrinking helps a 1-px side.
        raise ImageError(
            f"image is a {width}x{height} strip, over {MAX_ASPECT} times longer than it is "
            "wide: not a digit or a written number",
            status=422,
        )
    if min_side and image.format == "JPEG" and min(width, height) >= 2 * min_side:
        image.draft(image.mode, (min_side, min_side))  # the shorter side stays >= min_side
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image.load()  # decode now, so a truncated or corrupt file fails here and not later
    except Exception as e:
        kind = image.format or "image"
        raise ImageError(f"{kind} data is truncated or corrupt ({e})") from None
    if image.mode in ODD_MODES:  # Pillow converts these to nothing else: their lightness
        image = image.getchannel(ODD_MODES[image.mode])
    decoded = image.size
    try:
        if image.getexif().get(ExifTags.Base.Orientation, 1) != 1:
            image = ImageOps.exif_transpose(image)  # phones store photos sideways + a tag
    except Exception:  # a broken EXIF block: the pixels are still good
        pass
    if getattr(image, "is_animated", False):
        image = image.copy()  # the first frame alone, apart from the (still open) file
    if image.size != decoded:  # turned a quarter: so is the full size
        width, height = height, width
    if min_side is None:
        return image
    if image.size != (width, height):
        image.info["full_size"] = (width, height)
    return shrink(image, min_side)


def shrink(image: Image.Image, min_side: int = MIN_SIDE) -> Image.Image:
    """A copy reduced by a whole factor (the mean of each block), its shorter side still at
    least `min_side`, or its pixels under WORK_PIXELS (its shorter side at least min_side / 4);
    the image itself when neither needs a factor of 2. info["full_size"] holds the size before
    any reduction, so boxes can be scaled back to the input's pixels."""
    short = min(image.size)
    factor = short // min_side
    over = image.width * image.height / WORK_PIXELS
    if over > 1:  # a long strip: heavy work on every pixel, though its shorter side is small
        factor = max(factor, min(math.ceil(math.sqrt(over)), short // max(1, min_side // 4)))
    if factor < 2:
        return image
    full = image.info.get("full_size", image.size)
    try:
        if image.mode not in ("L", "LA", "RGB", "RGBA", "I", "F"):  # Image.reduce's modes
            if "transparency" in image.info or image.mode in ("PA", "La", "RGBa"):
                image = image.convert("RGBA")
            elif image.mode.startswith("I;16"):
                image = image.convert("I")
            else:
                image = image.convert("L" if image.mode == "1" else "RGB")
        small = image.reduce(factor)
    except (ValueError, OSError):  # a mode Pillow cannot convert (LAB): read it full size
        return image
    small.info["full_size"] = full
    return small


def ink_map(image: Image.Image) -> np.ndarray:
    """(H, W) float32 in [0, 1]: how much ink each pixel holds, 1 in stroke centres, 0 elsewhere."""
    out = np.zeros((image.height, image.width), np.float32)
    found = _ink(image, _alpha(image))
    if found is not None:
        ink, box = found
        out[box] = ink
    return out


def _ink(image: Image.Image, alpha: np.ndarray | None) -> tuple[np.ndarray, ops.Box] | None:
    """The ink map's inked part: (the ink within `box`, box); None when there is no ink.
    `alpha`: the image's _alpha."""
    if alpha is not None and _transparent(alpha):
        return _canvas_ink(alpha)
    grey = _grey(image, alpha)
    x = grey if _light_ink(grey) else 1.0 - grey  # ink high from here on
    # Uneven lighting and paper shade: a grey opening removes everything its window cannot fit
    # into (the strokes) and keeps the slowly varying background, which we subtract. The window
    # must be well wider than the strokes, or where fat strokes meet the blob is taken for
    # background: a first pass measures the stroke width.
    small = ops.mean3(ops.area_shrink(x, 64))  # shorter side 64; noise averaged
    window = int(0.3 * min(small.shape))
    first = small - ops.opening(small, window)
    width = ops.stroke_width(first > ops.otsu(first))
    window = min(max(window, int(3 * width) + 3), max(small.shape))
    background = ops.mean3(ops.opening(small, window))
    # An opening takes any ink wider than its window for paper: a fat marker, a digit that
    # fills its box and touches the border (a tight crop, a form box). The paper cannot be
    # darker than the frame says it is, lit as the frame is lit: cap the estimate there.
    background = np.minimum(background, _frame_paper(small))
    x = x - ops.resize(background, *x.shape)
    # Paper noise (texture, JPEG grain): median and MAD of the pixels that are not ink, from
    # every pixel of a small image and an even grid of ~65,000 of a large one.
    step = max(1, int(np.sqrt(x.size / 65536)))
    sample = x[::step, ::step]
    # Paper well away from the strokes: next to them, their blurred rims (an upscaled scan's
    # are several pixels wide) would pass for noise, and where ink covers half the image they
    # are much of the paper. Any paper left over if there is no such paper.
    inked = sample > ops.otsu(sample)
    rim = max(1, min(sample.shape) // 16)
    paper = sample[~ops.square_dilation(inked, 2 * rim + 1)]
    if paper.size < 0.05 * sample.size:
        paper = sample[~inked]
    median = ops.median(paper) if paper.size else 0.0
    sigma = 1.4826 * ops.median(np.abs(paper - median)) if paper.size else 0.0
    found = _clean(x, paper=median, noise=sigma)
    if found is None:
        return None
    # A stroke's soft rim is a few pixels wide. A faint region joined to a stroke reaches
    # farther (paper texture, a stain, a shadow's edge: photos have them, canvases do not),
    # and segment would read it as more digits.
    ink, box = found
    strong = (ink >= 0.6).astype(np.float32)
    rim = 2 + round(0.5 * ops.stroke_width(strong > 0))
    ink[ops.morph(strong, rim, erode=False) == 0] = 0.0
    return ink, box


def _frame_paper(small: np.ndarray) -> np.ndarray:
    """The highest the paper can be (ink high) at each pixel of `small`, judged from the frame
    alone: a plane fit to the frame's paper pixels (under its Otsu level, and then the lower
    half: ink that touches the border is left out), plus three times their spread around it
    and a margin for shading the frame does not see (0.1 of full scale)."""
    h, w = small.shape
    k = max(1, min(h, w) // 32)
    frame = np.zeros((h, w), bool)
    frame[:k], frame[-k:], frame[:, :k], frame[:, -k:] = True, True, True, True
    values = small[frame]
    paper = values <= ops.otsu(values) if np.ptp(values) > 0 else np.ones(values.size, bool)
    rows, cols = np.nonzero(frame)
    design = np.column_stack([np.ones(rows.size), rows / h, cols / w])
    # Fit, then fit again to the lower half of the pixels (twice): the blurred rims of ink
    # that touches the border lie under the Otsu level too, always above the paper.
    for _ in range(3):
        coef, *_ = np.linalg.lstsq(design[paper], values[paper], rcond=None)
        residual = values - design @ coef
        paper &= residual <= ops.median(residual[paper])
    spread = 1.4826 * ops.median(np.abs(residual[paper]))
    plane = coef[0] + coef[1] * (np.arange(h)[:, None] / h) + coef[2] * (np.arange(w) / w)
    return (plane + 3 * spread + 0.1).astype(np.float32)


def _transparent(alpha: np.ndarray) -> bool:
    """A transparent background (a browser canvas export): alpha carries the strokes, whatever
    the colour (the RGB of a canvas is often all black, strokes and background alike).

    The frame's median alpha under half (ops.border_median < 127.5), read from a count of the
    frame's pixels under 128 where that settles it (it does unless exactly half are)."""
    frame = ops.border(alpha)
    if not any(np.count_nonzero(part) for part in frame):
        return True  # all clear, the usual drawing: counted without comparing (a third of it)
    n = sum(part.size for part in frame)
    clear = sum(np.count_nonzero(part < 128) for part in frame)
    if 2 * clear != n:
        return bool(2 * clear > n)  # over half under 128: the middle values are, and the median
    return bool(ops.border_median(alpha) < 0.5 * 255)


def _canvas_ink(alpha: np.ndarray, k: int = 1) -> tuple[np.ndarray, ops.Box] | None:
    """_ink for a canvas, from its alpha channel (uint8): only the strokes' box needs looking
    at, the rest is clear paper. With k > 1, the box is reduced k times (block means) first,
    and the result is on the reduced grid (the whole reduced by k)."""
    box = ops.box(alpha)  # of the non-zero pixels (no boolean copy of the whole canvas)
    if box is None:
        return None
    crop = ops.mean_pool(alpha[box], k)
    if k > 1:
        rows, cols = box
        box = (slice(rows.start // k, rows.start // k + crop.shape[0]),
               slice(cols.start // k, cols.start // k + crop.shape[1]))  # fmt: skip
    found = _clean_alpha(crop, pixels=-(-alpha.shape[0] // k) * -(-alpha.shape[1] // k))
    if found is None:
        return None
    (rows, cols), (r, c) = box, found[1]
    return found[0], (
        slice(rows.start + r.start, rows.start + r.stop),
        slice(cols.start + c.start, cols.start + c.stop),
    )


def _light_ink(grey: np.ndarray) -> bool:
    """Polarity: light ink on a dark board, or dark ink on light paper?"""
    small = ops.area_shrink(grey, 64)
    # The frame is mostly background, and ink sits at the far end of the grey levels from it.
    low, high = np.percentile(small, [1, 99])
    # Light ink needs a dark frame: three quarters of it darker than the middle grey. Dark
    # strokes that fill their box (a tight crop, a form box) cover up to half of the frame and
    # 70% of the image, and dark ink on light paper is by far the commoner.
    frame = np.concatenate([part.ravel() for part in ops.border(small)])
    if np.count_nonzero(frame < (low + high) / 2) < 0.75 * frame.size:
        return False
    border = ops.median(frame)
    light, dark = high - border, border - low
    if abs(light - dark) > 0.25 * (high - low):
        return bool(light > dark)
    # Undecided (say a dark desk around the paper): around the local background level (a
    # median filter), dark ink leaves a long dark tail, light ink a long bright one.
    residual = small - ops.median_filter(small, max(3, min(small.shape) // 4))
    return bool(np.percentile(residual, 99.5) > -np.percentile(residual, 0.5))


def _alpha(image: Image.Image) -> np.ndarray | None:
    """The alpha channel, uint8 0..255, or None when the image has no transparency at all."""
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode == "RGBA":  # a canvas: its alpha bytes alone (half the time of getchannel)
        alpha = np.frombuffer(image.tobytes("raw", "A"), np.uint8).reshape(image.height, -1)
    elif image.mode in ("LA", "PA", "La", "RGBa"):
        alpha = np.asarray(image.getchannel("A"))
    else:
        return None
    return alpha if alpha.min() < 250 else None  # under 98% opaque somewhere


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
        opacity = alpha / np.float32(255)
        grey = (opacity * grey + (1.0 - opacity)).astype(np.float32)
    return np.clip(grey, 0.0, 1.0)


def _clean(
    x: np.ndarray, paper: float, noise: float, pixels: int | None = None
) -> tuple[np.ndarray, ops.Box] | None:
    """Scale so stroke centres are ~1, zero the paper, drop faint blobs and specks.

    `paper` and `noise` are the level and spread (sigma) of the background in `x`. `pixels`:
    when `x` is a crop, the whole image's pixel count (the rest at the floor, paper + 3 sigma).
    Returns the ink within `box` (the rest of the map is 0), or None when there is none.
    """
    x = np.asarray(x, np.float32)
    n = x.size if pixels is None else pixels
    floor = paper + 3 * noise  # above this, a pixel holds some ink
    above = x > floor
    level = _ink_level(x[above], floor, n, lambda: x)
    box = ops.box(above)
    if box is None or level - floor < MIN_CONTRAST or level - paper < 6 * noise:
        return None  # nothing stands out from the paper
    # Only the box around the pixels over the floor can hold ink (a canvas digit fills a third).
    x, above = x[box], above[box]
    ink = _scale(x, floor, level)
    mask = _strokes(ink)
    if mask is None:
        return None
    # The ink level again from the strokes alone, so specks and blobs do not sway it (the rest
    # of the image counts as paper at the floor); the same when nothing was dropped.
    inked = mask & above
    if np.count_nonzero(inked) < np.count_nonzero(above):
        level = _ink_level(x[inked], floor, n, lambda: np.where(mask, x, floor))
        ink = _scale(x, floor, max(level, floor + 1e-6))
    ink[~mask] = 0.0
    return ink, box


def _strokes(ink: np.ndarray) -> np.ndarray | None:
    """The mask of the strokes in a scaled ink crop, their anti-aliased rim included; faint
    blobs and specks left out. None when no blob reaches the ink level."""
    strokes = ink > 0.2
    # Hysteresis: a blob is ink if it reaches 0.6 somewhere; it keeps its soft edges down to 0.2.
    labels, count = ops.label(strokes)
    if count == 0 or (count == 1 and not (ink >= 0.6).any()):
        return None
    if count > 1:
        areas = np.bincount(labels[strokes], minlength=count + 1)
        areas[0] = 0
        strong = np.zeros(count + 1, bool)
        strong[labels[ink >= 0.6]] = True
        # A speck is tiny next to the largest stroke (2%); a digit's smallest separate part, the
        # bar of a 5, is about 10%.
        keep = strong & (areas >= 0.02 * areas.max())
        keep[0] = False
        if not keep[1:].all():
            strokes &= keep[labels]
    return ops.grow(strokes)  # and the anti-aliased rim below 0.2


def _clean_alpha(alpha: np.ndarray, pixels: int) -> tuple[np.ndarray, ops.Box] | None:
    """_clean(alpha / 255, 0, 0, pixels) for a canvas's alpha channel (uint8) cut to the box of
    its non-zero pixels, sooner. A canvas's strokes are mostly opaque: then the ink level is
    exactly 1 (255), the ink is the opacity as it is, and only the blobs need looking at (the
    same blobs as _clean's: on a pooled copy a speck near a stroke would join it and stay).
    Anything else (faint strokes, specks dropped, next to no ink) goes the general way.
    """
    x = alpha / np.float32(255)
    opaque = int(np.count_nonzero(alpha == 255))
    # _ink_level's peak is 1 when the `top` largest values are, and the median of the values
    # over half the peak (alpha >= 128) is 1 when over half of them are.
    top = pixels - int(0.9999 * (pixels - 1))
    if opaque < max(top, int(np.count_nonzero(alpha >= 128)) // 2 + 1):
        return _clean(x, 0.0, 0.0, pixels)
    mask = _strokes(x)
    if mask is None:
        return None
    if np.logical_and(alpha, ~mask).any():  # ink left out: the level is read again without it
        return _clean(x, 0.0, 0.0, pixels)
    return x, (slice(0, alpha.shape[0]), slice(0, alpha.shape[1]))  # no ink off the mask


def _scale(x: np.ndarray, floor: float, level: float) -> np.ndarray:
    """(x - floor) / (level - floor), clipped to [0, 1]: ink 0 at the floor, 1 at the level."""
    ink = x - np.float32(floor)
    ink *= np.float32(1 / (level - floor))
    np.minimum(ink, 1.0, out=ink)
    return np.maximum(ink, 0.0, out=ink)


def _ink_level(
    above: np.ndarray, floor: float, n: int, everything: Callable[[], np.ndarray]
) -> float:
    """The value in stroke centres: the median of the pixels in the upper half of the range
    above `floor` (the peak is the 99.99th percentile: one hot pixel is not the ink).

    `above`: the pixels over `floor`, of `n` in all. The peak is read from them alone, unless
    under 1 in 10,000 pixels are over the floor: then from `everything()` (padded to `n` with
    the floor).
    """
    pos = 0.9999 * (n - 1)  # where np.percentile reads, in the sorted values
    top = n - int(pos)  # how many of the largest values that reaches
    if above.size >= top:
        largest = np.sort(np.partition(above, above.size - top)[above.size - top :])
        peak = float(largest[0] + (pos - int(pos)) * (largest[min(1, top - 1)] - largest[0]))
        strong = above[above > floor + 0.5 * (peak - floor)]
    else:
        x = everything().ravel()
        x = np.concatenate([x, np.full(n - x.size, floor, np.float32)])
        peak = float(np.percentile(x, 99.99))
        strong = x[x > floor + 0.5 * (peak - floor)]
    return ops.median(strong) if strong.size else peak


def is_blank(ink: np.ndarray) -> bool:
    """True when there is no digit: no strong ink, or only dots (specks, a tap of the brush)."""
    return _blank(ink, max(ink.shape))


def _blank(ink: np.ndarray, side: int) -> bool:
    """is_blank for `ink` cut from a map whose longer side is `side` px."""
    strong = ink > 0.5
    if np.count_nonzero(strong) < 8:
        return True
    box = ops.box(strong)
    assert box is not None
    # The largest blob (in pixels), found on a max-pooled copy (k x k blocks) when the ink is
    # large, and its thickness, the widest disk inside. (Pooled any coarser, the loops of bold
    # digits fill in, and they are taken for dots.)
    strong = strong[box]
    k = max(1, min(strong.shape) // ANALYSIS)
    pooled = ops.max_pool(strong, k)
    labels, count = ops.label(pooled)
    if count == 1:  # one blob: the whole (pooled) box, which it spans
        largest = ops.pad(pooled, (1, 1, 1, 1))
    else:
        pixels = labels  # each pixel's blob, to count them
        if k > 1:
            pixels = np.repeat(np.repeat(labels, k, 0), k, 1)[: strong.shape[0], : strong.shape[1]]
        biggest = 1 + int(np.argmax(np.bincount(pixels[strong])[1:]))
        blob = ops.box(labels == biggest)
        if blob is None:
            return True
        largest = ops.pad(labels[blob] == biggest, (1, 1, 1, 1))
    extent = k * (max(largest.shape) - 2)
    # A stroke is longer than it is thick; a dot is not. Tiny against the image is a speck too.
    if extent < 0.04 * side:
        return True
    # No pixel is farther from the paper than along its row or its column: when that already
    # makes the blob thin (under a quarter of its extent: thickness < extent / 2), the distance
    # transform (the costly part) is not needed.
    if not ops.deeper_than(largest, extent // (4 * k)):
        return False
    thickness = 2 * k * np.sqrt(float(ops.edt2(largest).max()))
    if extent >= 2 * thickness:
        return False
    # Thick and short: a dot is about one disk, while a fat stroke (a marker's 1, a digit
    # stretched to fill its box) covers over 1.5 times the widest disk that fits inside it.
    area = k * k * np.count_nonzero(largest)
    return bool(area < 1.5 * math.pi * (thickness / 2) ** 2)


def to_mnist(ink: np.ndarray) -> np.ndarray:
    """(28, 28) float32 in [0, 1]: as MNIST was made. All zeros for blank input."""
    out = np.zeros((28, 28), np.float32)
    box = ops.box(ink > 0.05)
    if box is None:
        return out
    crop = np.asarray(ink[box], np.float32)
    # 1. To the working scale (longer side 80 px). Going down, a hair-thin line would fade to
    #    grey and vanish, so first widen every line to at least one working pixel (max-pool
    #    big crops, then a max filter as wide as what is left of the reduction); step 2 sets
    #    the final width anyway.
    work_side = 20 * WORK
    pool = int(max(crop.shape) / work_side / 2)
    if pool > 1:  # (h, w) -> (h / pool, w / pool), each pixel the max of its block
        crop = ops.max_pool(crop, pool)
    factor = max(crop.shape) / work_side
    if factor > 1.5:
        size = int(np.ceil(factor))
        crop = ops.slide(ops.slide(crop, size, 0, erode=False), size, 1, erode=False)
    work = ops.fit(crop, work_side)
    # 2. Stroke width toward MNIST's: a fat marker or canvas brush is eroded, a hairline dilated
    #    (grey morphology keeps the soft edges). The width is measured on the digit's own scale,
    #    so a small and a large drawing of the same digit end the same.
    max_radius = 4 * WORK  # px; a larger change would erase a digit or fill it in
    target = MNIST_STROKE * WORK
    width = ops.mean_width(work)
    if width > 0:
        radius = min(abs(width - target) / 2, max_radius)  # px off each side of every stroke
        erode = width > target
        # Morphology goes in whole pixels: blend the two nearest radii, so the width changes
        # smoothly with the drawing's size rather than in steps.
        inner = int(radius)
        work = ops.pad(work, (math.ceil(radius),) * 4)  # room to dilate (and paper to erode to)
        near = ops.morph(work, inner, erode) if inner else work
        if radius > inner:
            far = ops.morph(work, inner + 1, erode)
            work = (1 - (radius - inner)) * near + (radius - inner) * far
        else:
            work = near
    box = ops.box(work > 0.05)
    if box is None:
        return out
    # 3. Fit into 20x20 keeping the aspect ratio (anti-aliased), ink peak back to 1.
    digit = np.minimum(np.maximum(ops.fit(work[box], 20), 0.0), 1.0)
    digit /= max(float(digit.max()), 1e-6)
    h, w = digit.shape
    # 4. Paste into 28x28 so the centre of mass lands on (14, 14): a whole-pixel shift, as MNIST
    #    did (no interpolation blur). Clamped so the digit stays inside the frame.
    rows, cols = digit.sum(axis=1), digit.sum(axis=0)
    mass = float(rows.sum())
    cy, cx = float(rows @ np.arange(h)) / mass, float(cols @ np.arange(w)) / mass
    top = min(max(round(14 - cy), 0), 28 - h)
    left = min(max(round(14 - cx), 0), 28 - w)
    out[top : top + h, left : left + w] = digit
    return out


def canvas_alpha(source: object) -> np.ndarray | None:
    """The alpha channel (uint8) of PNG bytes with a transparent background that needs no
    shrinking (a canvas export), read without Pillow (png.alpha); None for anything else."""
    if not isinstance(source, bytes | bytearray | memoryview):
        return None
    alpha = png.alpha(source, WORK_PIXELS, max_short_side=2 * MIN_SIDE - 1)  # shrink: none
    if alpha is None or not _transparent(alpha):
        return None
    return alpha


def preprocess_canvas(alpha: np.ndarray) -> np.ndarray | None:
    """preprocess() for a canvas, from its alpha channel (canvas_alpha, or _alpha of a decoded
    image with a transparent background). It is read reduced to about CANVAS_SIDE px: a
    quarter of the pixels for every step, and on MNIST validation digits drawn as canvases
    (benchmarks/canvas_mnist.py) a little more accurate than at full size."""
    k = max(1, round(min(alpha.shape) / CANVAS_SIDE))
    found = _canvas_ink(alpha, k)
    if found is None or _blank(found[0], -(-max(alpha.shape) // k)):
        return None
    return to_mnist(found[0])


def preprocess(
    source: bytes | str | os.PathLike | Image.Image | np.ndarray,
) -> np.ndarray | None:
    """Any digit image -> (28, 28) float32 in [0, 1] for the model, or None when it holds no ink.

    An np.ndarray source is taken as an ink map already: (H, W) floats in [0, 1], ink high.
    """
    views = _views(source, squeezed=False)
    return None if views is None else views[0]


def preprocess_views(
    source: bytes | str | os.PathLike | Image.Image | np.ndarray,
) -> list[np.ndarray] | None:
    """preprocess(), plus, for a digit stretched to fill its box, copies squeezed sideways.

    Some collections and scanners stretch each digit's box to fill a square (Semeion, the
    Dutch map numerals: their '1's are wide bars): such a digit fills its image, touching all
    four borders, and is about as wide as tall. For it the list also holds the digit squeezed to
    SQUEEZE of its width, and the model's answers on all of them are averaged (Predictor). A
    drawing or a photo with paper round the digit has the one view; so has a canvas.
    """
    return _views(source, squeezed=True)


SQUEEZE = (0.7, 0.5)  # widths of the squeezed views (chosen on the real dev sets, BENCHMARKS.md)
FILLED_ASPECT = 0.9  # a digit at least this wide for its height, filling its image, was stretched


def _views(
    source: bytes | str | os.PathLike | Image.Image | np.ndarray, squeezed: bool
) -> list[np.ndarray] | None:
    if isinstance(source, np.ndarray):
        ink = np.clip(np.asarray(source, dtype=np.float32), 0.0, 1.0)
        if ink.ndim != 2:
            raise ImageError(f"an ink map is (H, W), got shape {ink.shape}", status=422)
        side, stretched = max(ink.shape), False
    else:
        alpha = canvas_alpha(source)
        if alpha is not None:  # the web page's drawing: a short way, the same result
            return _one(preprocess_canvas(alpha))
        # A big photo is reduced first: the digit needs ~80 px, not 3000.
        if isinstance(source, Image.Image):
            image = shrink(source, MIN_SIDE)
        else:
            image = load_image(source, MIN_SIDE)
        alpha = _alpha(image)
        if alpha is not None and _transparent(alpha):  # a canvas that came the long way
            return _one(preprocess_canvas(alpha))
        found, side = _ink(image, alpha), max(image.size)
        if found is None:
            return None
        ink = found[0]  # the inked part of the map; the rest is 0
        stretched = squeezed and _fills_its_image(ink, found[1], (image.height, image.width))
    if _blank(ink, side):
        return None
    views = [to_mnist(ink)]
    if stretched:
        crop = ink[ops.box(ink > 0.05)]
        h, w = crop.shape
        views += [to_mnist(ops.resize(crop, h, max(2, round(w * f)))) for f in SQUEEZE]
    return views


def _one(image28: np.ndarray | None) -> list[np.ndarray] | None:
    return None if image28 is None else [image28]


def _fills_its_image(ink: np.ndarray, box: ops.Box, shape: tuple[int, int]) -> bool:
    """Strong ink (`ink`, cut at `box` from a map of `shape`) reaches all four borders (to a
    pixel), and its extent is at least FILLED_ASPECT as wide as tall."""
    strong = ops.box(ink > 0.5)
    if strong is None:
        return False
    rows, cols = strong
    top, left = box[0].start + rows.start, box[1].start + cols.start
    bottom, right = box[0].start + rows.stop, box[1].start + cols.stop
    touches = top <= 1 and left <= 1 and bottom >= shape[0] - 1 and right >= shape[1] - 1
    return touches and (right - left) >= FILLED_ASPECT * (bottom - top)
