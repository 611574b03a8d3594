"""An image's size from its header alone, before anything is decoded: what the server judges a
request's cost and memory by (serve/batch.py, serve/deps.py)."""

from __future__ import annotations

import io
import struct
import warnings

from PIL import Image

from digitrec.vision import png


def header(image: bytes) -> tuple[int, int, bool] | None:
    """(width, height, has an alpha channel) from the header alone; None: no image header."""
    shape = png.size(image)
    if shape is not None:
        return shape[0], shape[1], image[25] in (4, 6)  # colour type: grey or RGB + alpha
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a decompression bomb's: refused where decoded
            with Image.open(io.BytesIO(image)) as opened:  # reads the header alone
                width, height = opened.size
    except Exception:  # not an image
        return None
    return width, height, False


def image_pixels(image: bytes) -> int:
    """Pixels `image` decodes to, from its header (0: not an image, refused before decoding)."""
    try:
        shape = header(image)
    except (IndexError, struct.error):
        return 0
    return 0 if shape is None else shape[0] * shape[1]
