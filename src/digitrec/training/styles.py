"""Writing styles and captures MNIST lacks, rendered through the path real input takes.

MNIST's digits were fit into 20x20 keeping their aspect ratio, from clean scans at 8 bits. Other
collections were made otherwise, and so are many real inputs: Semeion and the Dutch map
numerals (data/real) stretched each digit's box to fill a square, then stored it at 15-16 px in
1 bit or a few grey levels; a form box or a tight crop does much the same; a fat marker blots
loops. `render` makes such a copy of each training image at 4x scale, puts it on paper and
reads it back with `preprocess.preprocess`, the very function every real input goes through
(ink level, stroke width, 20x20 fit, centre of mass), so the model learns what those inputs
look like *after* preprocessing.

Training mixes the copies in (`TrainConfig.styles`: the share of each batch taken from them).
Pure NumPy, seeded; no real data set is read here: data/real is for selection only.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

from digitrec.vision import imageops as ops
from digitrec.vision.preprocess import preprocess

SCALE = 4  # render at 112 px: room to stretch, thicken and lower the resolution


def render_one(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(28, 28) uint8 MNIST digit -> (28, 28) uint8: one random style, through preprocess."""
    x = ops.resize(image.astype(np.float32) / 255, 28 * SCALE, 28 * SCALE)
    found = ops.box(x > 0.2)
    if found is None:
        return image
    seen = capture(x[found], rng, restyle=True)
    return image if seen is None else seen


def capture(crop: np.ndarray, rng: np.random.Generator, restyle: bool) -> np.ndarray | None:
    """Ink in [0, 1], cropped to the digit at ~4x MNIST scale -> (28, 28) uint8 as preprocess
    reads it back from paper (None if it finds no digit). `restyle`: first stretch it, fatten
    its pen or lower its resolution, at random."""
    if restyle:
        crop = _restyle(crop, rng)
    # On paper, and read back as any photo or scan is (ink level, paper, specks, to_mnist).
    paper = Image.fromarray(
        np.round(255 * (1 - np.clip(ops.pad(crop, (8,) * 4), 0, 1))).astype(np.uint8)
    )
    digit = preprocess(paper)
    if digit is None:
        return None
    return np.round(digit * 255).astype(np.uint8)


def _restyle(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = crop.shape
    # 1. The box stretched toward a square: all the way (as Semeion and the map numerals were
    #    normalised) half the time, else part-way. A '1' becomes a wide slanted bar.
    t = 1.0 if rng.random() < 0.5 else rng.uniform(0.2, 1.0)
    side = max(h, w)
    crop = ops.resize(crop, round(h + t * (side - h)), round(w + t * (side - w)))
    # 2. A fat pen or marker on a third (before any reduction, as the ink hit the paper).
    if rng.random() < 0.33:
        radius = int(rng.integers(2, 9))
        crop = ndi.grey_dilation(ops.pad(crop, (radius,) * 4), footprint=ops.disk(radius))
    # 3. A low-resolution capture on two thirds: reduced to 12-20 px on its longer side, then
    #    1 bit, a few grey levels or left as it is, and enlarged again (bilinear).
    if rng.random() < 0.67:
        small_side = int(rng.integers(12, 21))
        f = small_side / max(crop.shape)
        small = ops.resize(crop, max(2, round(crop.shape[0] * f)), max(2, round(crop.shape[1] * f)))
        u = rng.random()
        if u < 0.4:
            small = (small > rng.uniform(0.3, 0.6)).astype(np.float32)
        elif u < 0.7:
            small = np.round(small * 6) / 6
        crop = np.clip(ops.resize(small, crop.shape[0], crop.shape[1]), 0, 1)
    return crop


def render(images: np.ndarray, seed: int) -> np.ndarray:
    """(N, 28, 28) uint8 -> (N, 28, 28) uint8, image i rendered in a random style (seeded)."""
    from digitrec.predictor import one_thread  # BLAS and OpenCV on one thread: 4x faster here

    rng = np.random.default_rng(seed)
    with one_thread():
        return np.stack([render_one(image, rng) for image in images])
