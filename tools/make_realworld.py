"""Generate digitrec's own real-world test set (not MNIST).

    python tools/make_realworld.py --out tests/realworld


Writes image files and labels.csv (file,label,kind,split), deterministic (fixed seeds). Kinds:

    canvas    digits drawn along jittered pen paths, exported as a browser canvas does (RGBA PNG,
              transparent background, black or coloured strokes 6-30 px wide on 280x280)
    font      digits in handwriting-style fonts, dark on light, PNG / WebP / GIF
    photo     dark ink on off-white paper: lighting gradient, paper texture, blur, JPEG
    inverted  light ink on a dark background (chalkboard photos, white-on-black scans, fonts)
    numbers   strips of 2-6 digits (label is the digit string); file names say what is hard in
              each: touching digits, a 4/5/7 whose strokes are separate components, an underline,
              specks
    blank     no digit: empty canvases, empty paper and board photos (label empty)

Each single-digit kind has 120 images, 12 per digit; `split` alternates val/test in blocks of
ten so both halves hold every digit equally.

Fonts come from Debian packages (the CI install script installs them):
    apt-get install -y fonts-dejavu-core fonts-bwht fonts-comic-neue fonts-dancingscript \
        fonts-kaushanscript fonts-breip fonts-dkg-handwriting fonts-humor-sans fonts-kristi \
        fonts-rufscript fonts-sjfonts
"""

# Debian packages needed: fonts-dejavu-core fonts-bwht fonts-comic-neue fonts-dancingscript
#   fonts-kaushanscript fonts-breip fonts-dkg-handwriting fonts-humor-sans fonts-kristi
#   fonts-rufscript fonts-sjfonts

from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from scipy import ndimage as ndi

FONT_DIR = Path("/usr/share/fonts")
FONTS = {  # file under /usr/share/fonts -> Debian package
    "truetype/dejavu/DejaVuSans.ttf": "fonts-dejavu-core",
    "opentype/bwht/BecauseWeBuild-Regular.otf": "fonts-bwht",
    "opentype/bwht/BecauseWeConnect-Regular.otf": "fonts-bwht",
    "opentype/bwht/BecauseWeCreate-Regular.otf": "fonts-bwht",
    "opentype/bwht/BecauseWeLearn-Regular.otf": "fonts-bwht",
    "opentype/bwht/BecauseWeMentor-Regular.otf": "fonts-bwht",
    "opentype/bwht/BecauseWeOrganize-Regular.otf": "fonts-bwht",
    "opentype/comic-neue/ComicNeue-Regular.otf": "fonts-comic-neue",
    "opentype/comic-neue/ComicNeue-Italic.otf": "fonts-comic-neue",
    "opentype/comic-neue/ComicNeue-Bold.otf": "fonts-comic-neue",
    "opentype/dancingscript/DancingScript-Regular.otf": "fonts-dancingscript",
    "opentype/kaushanscript/KaushanScript-Regular.otf": "fonts-kaushanscript",
    "truetype/breip/Breip.ttf": "fonts-breip",
    "truetype/fifthhorseman/dkg.ttf": "fonts-dkg-handwriting",
    "truetype/fifthhorseman/dkgBd.ttf": "fonts-dkg-handwriting",
    "truetype/fifthhorseman/dkgIt.ttf": "fonts-dkg-handwriting",
    "truetype/humor-sans/Humor-Sans.ttf": "fonts-humor-sans",
    "truetype/kristi/Kristi.ttf": "fonts-kristi",
    "truetype/rufscript/Rufscript010.ttf": "fonts-rufscript",
    "truetype/sjfonts/Delphine.ttf": "fonts-sjfonts",
    "truetype/sjfonts/SteveHand.ttf": "fonts-sjfonts",
}
PER_KIND = 120  # single-digit images per kind: 12 per digit, half val, half test
N_NUMBERS = 100
N_BLANK = 120

# Pen paths: strokes as points in a box 0.6 wide, 1 tall (y down); a smooth curve passes through
# them (a repeated point makes a sharp corner). Several ways people write each digit.
P = list[tuple[float, float]]
# fmt: off
DIGITS: dict[int, list[list[P]]] = {
    0: [[[(0.3, 0.0), (0.06, 0.2), (0.02, 0.55), (0.15, 0.92), (0.35, 1.0), (0.55, 0.8),
          (0.58, 0.4), (0.48, 0.08), (0.3, 0.0), (0.22, 0.05)]]],
    1: [[[(0.3, 0.0), (0.3, 1.0)]],
        [[(0.1, 0.22), (0.35, 0.0), (0.35, 0.0), (0.33, 1.0)]],
        [[(0.12, 0.2), (0.34, 0.0), (0.34, 0.0), (0.34, 1.0)], [(0.1, 1.0), (0.58, 1.0)]]],
    2: [[[(0.04, 0.2), (0.22, 0.02), (0.45, 0.04), (0.55, 0.22), (0.48, 0.45), (0.25, 0.7),
          (0.02, 0.98), (0.02, 0.98), (0.6, 0.97)]],
        [[(0.05, 0.25), (0.25, 0.0), (0.5, 0.1), (0.5, 0.35), (0.05, 0.95), (0.15, 0.85),
          (0.3, 0.95), (0.6, 0.95)]]],
    3: [[[(0.05, 0.12), (0.28, 0.0), (0.5, 0.1), (0.48, 0.3), (0.22, 0.47), (0.5, 0.6),
          (0.55, 0.85), (0.3, 1.0), (0.02, 0.88)]]],
    4: [[[(0.38, 0.0), (0.02, 0.66), (0.02, 0.66), (0.6, 0.66)], [(0.45, 0.32), (0.45, 1.0)]],
        [[(0.45, 1.0), (0.45, 0.0), (0.45, 0.0), (0.0, 0.68), (0.0, 0.68), (0.6, 0.68)]],
        [[(0.06, 0.0), (0.03, 0.55), (0.03, 0.55), (0.58, 0.55)], [(0.46, 0.05), (0.46, 1.0)]]],
    5: [[[(0.14, 0.0), (0.1, 0.42), (0.1, 0.42), (0.3, 0.36), (0.5, 0.45), (0.57, 0.7),
          (0.42, 0.95), (0.18, 1.0), (0.02, 0.88)], [(0.14, 0.0), (0.56, 0.0)]],
        [[(0.56, 0.0), (0.14, 0.0), (0.14, 0.0), (0.1, 0.42), (0.1, 0.42), (0.3, 0.36),
          (0.5, 0.45), (0.57, 0.7), (0.42, 0.95), (0.18, 1.0), (0.02, 0.88)]]],
    6: [[[(0.48, 0.02), (0.22, 0.22), (0.05, 0.58), (0.1, 0.9), (0.32, 1.0), (0.52, 0.88),
          (0.54, 0.66), (0.32, 0.52), (0.1, 0.6), (0.06, 0.72)]]],
    7: [[[(0.02, 0.03), (0.58, 0.03), (0.58, 0.03), (0.32, 0.55), (0.22, 1.0)]],
        [[(0.02, 0.03), (0.58, 0.03), (0.58, 0.03), (0.32, 0.55), (0.22, 1.0)],
         [(0.14, 0.5), (0.52, 0.5)]]],
    8: [[[(0.5, 0.12), (0.3, 0.0), (0.1, 0.1), (0.12, 0.3), (0.3, 0.46), (0.52, 0.64),
          (0.5, 0.9), (0.3, 1.0), (0.08, 0.9), (0.08, 0.66), (0.3, 0.46), (0.48, 0.3),
          (0.5, 0.12)]]],
    9: [[[(0.52, 0.2), (0.35, 0.02), (0.12, 0.05), (0.04, 0.25), (0.15, 0.44), (0.4, 0.42),
          (0.53, 0.22), (0.53, 0.22), (0.5, 0.6), (0.44, 1.0)]],
        [[(0.52, 0.2), (0.35, 0.02), (0.12, 0.05), (0.04, 0.25), (0.15, 0.44), (0.4, 0.42),
          (0.53, 0.22), (0.53, 0.22), (0.52, 0.7), (0.35, 0.98), (0.12, 0.92)]]],
}
# The same digits with strokes that do not touch: the bar of a 5 lifted off, the two strokes of
# a 4 apart, a 7's bar and leg drawn separately. Segmentation must put them back together.
BROKEN: dict[int, list[P]] = {
    4: [[(0.36, 0.0), (0.02, 0.62), (0.02, 0.62), (0.36, 0.62)], [(0.48, 0.05), (0.48, 1.0)]],
    5: [[(0.12, 0.1), (0.1, 0.42), (0.1, 0.42), (0.3, 0.36), (0.5, 0.45), (0.57, 0.7),
         (0.42, 0.95), (0.18, 1.0), (0.02, 0.88)], [(0.24, 0.0), (0.6, -0.02)]],
    7: [[(0.0, 0.03), (0.5, 0.03)], [(0.6, 0.1), (0.34, 0.55), (0.24, 1.0)]],
}
# fmt: on


def catmull_rom(points: np.ndarray, samples: int = 12) -> np.ndarray:
    """A smooth curve through `points` (N, 2); repeated points give sharp corners."""
    if len(points) < 3:
        return points
    p = np.concatenate([points[:1], points, points[-1:]])
    t = np.linspace(0, 1, samples, endpoint=False)[:, None]
    out = []
    for i in range(1, len(p) - 2):
        p0, p1, p2, p3 = p[i - 1], p[i], p[i + 1], p[i + 2]
        out.append(
            0.5
            * (
                2 * p1
                + (-p0 + p2) * t
                + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
                + (-p0 + 3 * p1 - 3 * p2 + p3) * t**3
            )
        )
    out.append(points[-1:])
    return np.concatenate(out)


def hand(rng: np.random.Generator) -> tuple[float, float]:
    """A writer's slant (x shift per unit height) and aspect (width scale)."""
    return rng.normal(0.12, 0.12), rng.uniform(0.75, 1.3)  # most people lean right


def pen_paths(
    rng: np.random.Generator,
    digit: int,
    broken: bool = False,
    writer: tuple[float, float] | None = None,
) -> list[np.ndarray]:
    """One person's way of writing `digit`: strokes as (N, 2) arrays, box about 0.6 x 1."""
    variants = DIGITS[digit]
    strokes = BROKEN[digit] if broken else variants[rng.integers(len(variants))]
    slant, aspect = writer or hand(rng)
    slant, aspect = slant + rng.normal(0, 0.03), aspect * rng.uniform(0.93, 1.07)
    angle = np.radians(rng.normal(0, 5))
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    out = []
    for stroke in strokes:
        pts = np.array(stroke, float)
        if not broken:
            pts = pts + rng.normal(0, 0.022, pts.shape)  # a hand is not a ruler
        pts[:, 0] = (pts[:, 0] - 0.3) * aspect + slant * (0.5 - pts[:, 1])
        pts[:, 1] -= 0.5
        out.append(catmull_rom(pts @ rot.T))
    return out


def draw_paths(
    paths: list[np.ndarray],
    size: tuple[int, int],
    box: tuple[float, float, float],
    width: float,
    ss: int = 2,
) -> np.ndarray:
    """Coverage in [0, 1] of round-pen strokes; `box` = (centre x, centre y, digit height) in px.

    Drawn at `ss`x and reduced, so edges are anti-aliased like a browser canvas's.
    """
    W, H = size
    img = Image.new("L", (W * ss, H * ss), 0)
    d = ImageDraw.Draw(img)
    cx, cy, h = box
    r = width * ss / 2
    for path in paths:
        pts = [((cx + x * h) * ss, (cy + y * h) * ss) for x, y in path]
        d.line(pts, fill=255, width=max(1, round(2 * r)), joint="curve")
        for x, y in pts[:: max(1, len(pts) // 40)] + [pts[-1]]:  # round caps and joins
            d.ellipse([x - r, y - r, x + r, y + r], fill=255)
    img = img.resize((W, H), Image.Resampling.BOX)
    return np.asarray(img, np.float32) / 255


def extent(paths: list[np.ndarray]) -> tuple[float, float, float, float]:
    allp = np.concatenate(paths)
    return allp[:, 0].min(), allp[:, 0].max(), allp[:, 1].min(), allp[:, 1].max()


def place(
    rng: np.random.Generator,
    paths: list[np.ndarray],
    W: int,
    H: int,
    height: float,
    width: float,
    centred: bool,
) -> tuple[float, float, float]:
    """Where to draw: centred with a little wobble, or anywhere it fits."""
    x0, x1, y0, y1 = extent(paths)
    pad = width / 2 + 1
    wpx, hpx = (x1 - x0) * height, (y1 - y0) * height
    lo_x, hi_x = pad - x0 * height, W - pad - x1 * height
    lo_y, hi_y = pad - y0 * height, H - pad - y1 * height
    if centred:
        cx = np.clip(
            W / 2 - (x0 + x1) / 2 * height + rng.normal(0, 0.04 * W), lo_x, max(lo_x, hi_x)
        )
        cy = np.clip(
            H / 2 - (y0 + y1) / 2 * height + rng.normal(0, 0.04 * H), lo_y, max(lo_y, hi_y)
        )
    else:
        cx = rng.uniform(lo_x, max(lo_x, hi_x)) if wpx < W else W / 2
        cy = rng.uniform(lo_y, max(lo_y, hi_y)) if hpx < H else H / 2
    return cx, cy, height


def fit_height(paths: list[np.ndarray], W: int, H: int, fraction: float, width: float) -> float:
    """Digit height in px so its drawing spans `fraction` of the canvas (both ways)."""
    x0, x1, y0, y1 = extent(paths)
    return min(fraction * H / (y1 - y0), (W - width - 4) / (x1 - x0), (H - width - 4) / (y1 - y0))


# ---------------------------------------------------------------- paper, light and camera


def paper(
    rng: np.random.Generator, W: int, H: int, colour: np.ndarray, dark: bool = False
) -> np.ndarray:
    """(H, W, 3) float: a sheet (or board) with uneven light and texture."""
    yy, xx = np.mgrid[0:H, 0:W] / max(W, H)
    theta = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(theta) * xx + np.sin(theta) * yy
    ramp = (ramp - ramp.min()) / max(np.ptp(ramp), 1e-6)
    light = 1 - rng.uniform(0.1, 0.4) * ramp  # one side in shadow
    light *= 1 - rng.uniform(0, 0.25) * ((xx - 0.5) ** 2 + (yy - 0.5) ** 2)  # vignette
    fibres = ndi.gaussian_filter(rng.normal(0, 1, (H, W)), rng.uniform(0.8, 2.5))
    texture = rng.uniform(0.015, 0.04) * fibres / max(fibres.std(), 1e-6)
    grain = rng.normal(0, rng.uniform(0.005, 0.02), (H, W))
    base = colour[None, None, :] * light[..., None]
    return np.clip(base + (texture + grain)[..., None] * (0.5 if dark else 1.0), 0, 1)


def ink_on(
    sheet: np.ndarray,
    cover: np.ndarray,
    ink: np.ndarray,
    rng: np.random.Generator,
    patchy: float = 0.0,
) -> np.ndarray:
    """Lay ink of colour `ink` with coverage `cover` on `sheet`; `patchy` fades it in places."""
    if patchy:
        blotch = ndi.gaussian_filter(rng.uniform(0, 1, cover.shape), 1.5)
        blotch = (blotch - blotch.min()) / max(np.ptp(blotch), 1e-6)
        cover = cover * (1 - patchy * blotch)
    cover = cover[..., None] * rng.uniform(0.8, 1.0)
    return sheet * (1 - cover) + ink[None, None, :] * cover


def camera(rgb: np.ndarray, rng: np.random.Generator, quality: tuple[int, int]) -> bytes:
    """Slight blur and JPEG compression, as a phone photo."""
    img = Image.fromarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8), "RGB")
    img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0)))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=int(rng.integers(*quality)))
    return buf.getvalue()


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=True)
    return buf.getvalue()


def canvas_rgba(cover: np.ndarray, colour: tuple[int, int, int]) -> Image.Image:
    """What canvas.toDataURL() gives: transparent black background, colour only under strokes."""
    alpha = (cover * 255).round().astype(np.uint8)
    rgb = np.where(alpha[..., None] > 0, np.array(colour, np.uint8), 0).astype(np.uint8)
    return Image.fromarray(np.dstack([rgb, alpha]), "RGBA")


STROKE_COLOURS = [
    (0, 0, 0),
    (0, 0, 0),
    (0, 0, 0),
    (33, 99, 235),
    (220, 38, 38),
    (22, 163, 74),
    (255, 255, 255),
    (124, 58, 237),
]


# ---------------------------------------------------------------- the kinds


def make_canvas(rng: np.random.Generator, digit: int) -> tuple[bytes, str]:
    paths = pen_paths(rng, digit)
    size = rng.choice(["normal", "normal", "normal", "small", "big"])
    fraction = {
        "normal": rng.uniform(0.4, 0.8),
        "small": rng.uniform(0.12, 0.22),
        "big": rng.uniform(0.85, 0.97),
    }[size]
    height_px = fraction * 280
    width = rng.uniform(6, min(30, max(7, height_px / 4)))
    height = fit_height(paths, 280, 280, fraction, width)
    box = place(rng, paths, 280, 280, height, width, centred=rng.uniform() < 0.5)
    cover = draw_paths(paths, (280, 280), box, width)
    colour = STROKE_COLOURS[rng.integers(len(STROKE_COLOURS))]
    return png(canvas_rgba(cover, colour)), "png"


def load_fonts() -> list[ImageFont.FreeTypeFont]:
    missing = sorted({pkg for f, pkg in FONTS.items() if not (FONT_DIR / f).is_file()})
    if missing:
        sys.exit(
            "make_realworld: fonts missing; install them with\n"
            f"    apt-get install -y {' '.join(missing)}"
        )
    return [ImageFont.truetype(str(FONT_DIR / f), 96) for f in FONTS]


def font_digit(font: ImageFont.FreeTypeFont, digit: int, rng: np.random.Generator) -> np.ndarray:
    """Coverage (h, w) of one glyph, tightly cropped, slightly rotated."""
    img = Image.new("L", (200, 200), 0)
    ImageDraw.Draw(img).text((50, 30), str(digit), font=font, fill=255)
    img = img.rotate(rng.normal(0, 4), resample=Image.Resampling.BILINEAR)
    return np.asarray(img.crop(img.getbbox()), np.float32) / 255


def make_font(rng: np.random.Generator, digit: int, fonts: list) -> tuple[bytes, str]:
    glyph = font_digit(fonts[rng.integers(len(fonts))], digit, rng)
    H = int(rng.integers(40, 129))
    W = int(H * rng.uniform(0.8, 1.3))
    f = rng.uniform(0.45, 0.85) * min(H / glyph.shape[0], W / glyph.shape[1])
    g = Image.fromarray((glyph * 255).astype(np.uint8)).resize(
        (max(1, round(glyph.shape[1] * f)), max(1, round(glyph.shape[0] * f))),
        Image.Resampling.LANCZOS,
    )
    cover = np.zeros((H, W), np.float32)
    y = int(rng.integers(0, H - g.height + 1))
    x = int(rng.integers(0, W - g.width + 1))
    cover[y : y + g.height, x : x + g.width] = np.asarray(g, np.float32) / 255
    paper_level = rng.uniform(0.85, 1.0)
    ink_level = rng.uniform(0.0, 0.3)
    grey = paper_level + (ink_level - paper_level) * cover
    img = Image.fromarray((grey * 255).round().astype(np.uint8), "L")
    fmt = rng.choice(["png", "png", "png", "webp", "gif"])
    buf = io.BytesIO()
    if fmt == "webp":
        img.convert("RGB").save(buf, "WEBP", quality=90)
    elif fmt == "gif":
        img.convert("P", palette=Image.Palette.ADAPTIVE, colors=16).save(buf, "GIF")
    else:
        return png(img if rng.uniform() < 0.5 else img.convert("RGB")), "png"
    return buf.getvalue(), str(fmt)


def make_photo(rng: np.random.Generator, digit: int) -> tuple[bytes, str]:
    W, H = int(rng.integers(96, 161)), int(rng.integers(96, 161))
    paths = pen_paths(rng, digit)
    width = rng.uniform(0.025, 0.07) * min(W, H)
    height = fit_height(paths, W, H, rng.uniform(0.45, 0.8), width)
    cover = draw_paths(paths, (W, H), place(rng, paths, W, H, height, width, centred=True), width)
    colour = np.array([rng.uniform(0.9, 0.98), rng.uniform(0.88, 0.96), rng.uniform(0.78, 0.92)])
    inks = [np.array([0.08, 0.08, 0.1]), np.array([0.1, 0.15, 0.45]), np.array([0.35, 0.35, 0.38])]
    rgb = ink_on(
        paper(rng, W, H, colour), cover, inks[rng.integers(3)], rng, patchy=rng.uniform(0, 0.4)
    )
    return camera(rgb, rng, (55, 86)), "jpg"


def make_inverted(rng: np.random.Generator, digit: int, fonts: list) -> tuple[bytes, str]:
    style = rng.choice(["board", "board", "scan", "font"])
    if style == "font":
        glyph = font_digit(fonts[rng.integers(len(fonts))], digit, rng)
        S = int(rng.integers(40, 113))
        f = rng.uniform(0.5, 0.8) * S / max(glyph.shape)
        g = (
            np.asarray(
                Image.fromarray((glyph * 255).astype(np.uint8)).resize(
                    (max(1, round(glyph.shape[1] * f)), max(1, round(glyph.shape[0] * f))),
                    Image.Resampling.LANCZOS,
                ),
                np.float32,
            )
            / 255
        )
        cover = np.zeros((S, S), np.float32)
        y, x = (S - g.shape[0]) // 2, (S - g.shape[1]) // 2
        cover[y : y + g.shape[0], x : x + g.shape[1]] = g
        bg, fg = np.array([0.05, 0.1, 0.25]), np.array([0.95, 0.9, 0.5])
        rgb = bg[None, None] * (1 - cover[..., None]) + fg[None, None] * cover[..., None]
        return png(Image.fromarray((rgb * 255).round().astype(np.uint8), "RGB")), "png"
    paths = pen_paths(rng, digit)
    if style == "scan":  # white on black, clean, small: like MNIST but ours
        S = int(rng.integers(28, 113))
        width = rng.uniform(0.06, 0.14) * S
        height = fit_height(paths, S, S, rng.uniform(0.55, 0.8), width)
        cover = draw_paths(paths, (S, S), place(rng, paths, S, S, height, width, True), width, ss=4)
        return png(Image.fromarray((cover * 255).round().astype(np.uint8), "L")), "png"
    W, H = int(rng.integers(96, 161)), int(rng.integers(96, 161))
    width = rng.uniform(0.04, 0.09) * min(W, H)
    height = fit_height(paths, W, H, rng.uniform(0.45, 0.8), width)
    cover = draw_paths(paths, (W, H), place(rng, paths, W, H, height, width, centred=True), width)
    boards = [
        np.array([0.12, 0.2, 0.16]),
        np.array([0.15, 0.15, 0.17]),
        np.array([0.05, 0.05, 0.07]),
    ]
    sheet = paper(rng, W, H, boards[rng.integers(3)], dark=True)
    rgb = ink_on(sheet, cover, np.array([0.92, 0.92, 0.88]), rng, patchy=rng.uniform(0.2, 0.6))
    return camera(rgb, rng, (60, 86)), "jpg"


def make_number(rng: np.random.Generator, i: int) -> tuple[bytes, str, str, str]:
    """A written number: (file bytes, extension, the digits, what is hard about it)."""
    hard = ["plain", "touching", "broken", "underline", "specks"][i % 5]
    # Two touching digits alone cannot be told from one wide digit without reading them, so a
    # number with touching digits has at least three (the others show how wide a digit is).
    n = int(rng.integers(3 if hard == "touching" else 2, 7))
    digits = [int(d) for d in rng.integers(0, 10, n)]
    if hard == "broken":  # at least one 4, 5 or 7 whose strokes are separate components
        digits[int(rng.integers(n))] = int(rng.choice([4, 5, 7]))
    style = "canvas" if (i // 5) % 2 == 0 else "paper"
    writer = hand(rng)  # one writer per number: the same slant and width throughout
    h = rng.uniform(40, 56)  # digit height, px
    width = rng.uniform(0.07, 0.14) * h if style == "canvas" else rng.uniform(0.05, 0.09) * h
    touch = int(rng.integers(n - 1)) if hard == "touching" else -1
    H = int(h * (1.8 if hard == "underline" else 1.5))
    W = int(h * (0.8 + 1.3 * n))  # cropped to the digits below
    cover, x, right = np.zeros((H, W), np.float32), h * 0.4, 0.0
    for k, d in enumerate(digits):
        paths = pen_paths(rng, d, broken=hard == "broken" and d in BROKEN, writer=writer)
        x0, x1, y0, y1 = extent(paths)
        scale = h / (y1 - y0) * rng.uniform(0.9, 1.05)
        cy = h * 0.7 - (y0 + y1) / 2 * scale + rng.normal(0, 0.04 * h)
        cx = x - x0 * scale
        digit = draw_paths(paths, (W, H), (cx, cy, scale), width)
        if k == touch + 1 and touch >= 0:
            digit = touching(paths, digit, cover, (W, H), (cx, cy, scale), width, x - right)
        cover = np.maximum(cover, digit)
        right = max(right, float(np.nonzero(digit.max(axis=0) > 0.1)[0].max()))
        x = right + rng.uniform(0.25, 0.5) * h  # where the next digit starts
    W = int(right + h * 0.4)
    cover = cover[:, :W]
    if hard == "underline":
        line = Image.new("L", (W, H), 0)
        y = np.nonzero(cover.max(axis=1) > 0.1)[0].max() + width + 0.08 * h
        ImageDraw.Draw(line).line(
            [(h * 0.3, y), (W - h * 0.3, y + rng.normal(0, 1.5))],
            fill=255,
            width=max(2, round(width)),
        )
        cover = np.maximum(cover, np.asarray(line, np.float32) / 255)
    if hard == "specks":
        dots = Image.new("L", (W, H), 0)
        for _ in range(int(rng.integers(3, 8))):
            sx, sy, r = rng.uniform(0, W), rng.uniform(0, H), rng.uniform(0.5, 1.5)
            ImageDraw.Draw(dots).ellipse([sx - r, sy - r, sx + r, sy + r], fill=255)
        cover = np.maximum(cover, np.asarray(dots, np.float32) / 255)
    label = "".join(map(str, digits))
    if style == "canvas":
        colour = STROKE_COLOURS[rng.integers(len(STROKE_COLOURS))]
        return png(canvas_rgba(cover, colour)), "png", label, f"{style}_{hard}"
    shade = np.array([rng.uniform(0.9, 0.98), rng.uniform(0.88, 0.96), rng.uniform(0.8, 0.92)])
    rgb = ink_on(paper(rng, W, H, shade), cover, np.array([0.1, 0.12, 0.35]), rng)
    return camera(rgb, rng, (70, 90)), "jpg", label, f"{style}_{hard}"


def touching(
    paths: list[np.ndarray],
    digit: np.ndarray,
    before: np.ndarray,
    size: tuple[int, int],
    box: tuple[float, float, float],
    width: float,
    gap: float,
) -> np.ndarray:
    """Slide `digit` left until it touches the ink `before` it; if its box would sink into the
    other digit first, join the two with a short pen drag instead (as a hurried hand does)."""
    cx, cy, scale = box
    for _ in range(int(gap)):
        if (digit * before > 0.25).any():
            return digit
        cx -= 1
        digit = draw_paths(paths, size, (cx, cy, scale), width)
    if (digit * before > 0.25).any():
        return digit
    # The row where the two are closest: the last ink of the one, the first of the other.
    rows = np.nonzero((before > 0.5).any(axis=1) & (digit > 0.5).any(axis=1))[0]
    if rows.size == 0:
        return digit
    ends = np.array([np.nonzero(before[r] > 0.5)[0].max() for r in rows])
    starts = np.array([np.nonzero(digit[r] > 0.5)[0].min() for r in rows])
    r = int(np.argmin(starts - ends))
    line = Image.new("L", size, 0)
    ImageDraw.Draw(line).line(
        [(ends[r], rows[r]), (starts[r], rows[r])], fill=255, width=max(2, round(width))
    )
    return np.maximum(digit, np.asarray(line, np.float32) / 255)


def make_blank(rng: np.random.Generator, i: int) -> tuple[bytes, str, str]:
    style = ["transparent", "white", "paper", "paper", "board", "specks"][i % 6]
    if style == "transparent":
        return png(Image.new("RGBA", (280, 280), (0, 0, 0, 0))), "png", style
    if style == "white":
        return png(Image.new("RGB", (280, 280), (255, 255, 255))), "png", style
    W, H = int(rng.integers(96, 161)), int(rng.integers(96, 161))
    if style == "specks":  # a canvas with a few stray dots, no digit
        dots = Image.new("L", (280, 280), 0)
        for _ in range(int(rng.integers(1, 4))):
            sx, sy, r = rng.uniform(10, 270), rng.uniform(10, 270), rng.uniform(1, 3)
            ImageDraw.Draw(dots).ellipse([sx - r, sy - r, sx + r, sy + r], fill=255)
        return png(canvas_rgba(np.asarray(dots, np.float32) / 255, (0, 0, 0))), "png", style
    if style == "board":
        sheet = paper(rng, W, H, np.array([0.12, 0.2, 0.16]), dark=True)
    else:
        sheet = paper(rng, W, H, np.array([rng.uniform(0.9, 0.98), rng.uniform(0.88, 0.96), 0.85]))
    return camera(sheet, rng, (55, 86)), "jpg", style


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--out",
        type=Path,
        default=Path("tests/realworld"),
        help="output folder (default: tests/realworld)",
    )
    args = ap.parse_args(argv)
    fonts = load_fonts()
    args.out.mkdir(parents=True, exist_ok=True)
    for old in args.out.iterdir():  # a rerun replaces the set, never mixes two
        if old.suffix in (".png", ".jpg", ".webp", ".gif", ".csv"):
            old.unlink()
    rows = []

    def write(name: str, data: bytes, label: str, kind: str, split: str) -> None:
        (args.out / name).write_bytes(data)
        rows.append((name, label, kind, split))

    makers = {
        "canvas": lambda rng, d: make_canvas(rng, d),
        "font": lambda rng, d: make_font(rng, d, fonts),
        "photo": lambda rng, d: make_photo(rng, d),
        "inverted": lambda rng, d: make_inverted(rng, d, fonts),
    }
    for seed, (kind, make) in enumerate(makers.items()):
        rng = np.random.default_rng(1000 + seed)
        for i in range(PER_KIND):
            digit = i % 10
            data, ext = make(rng, digit)
            write(
                f"{kind}_{i:03d}_{digit}.{ext}",
                data,
                str(digit),
                kind,
                "val" if (i // 10) % 2 == 0 else "test",
            )
    rng = np.random.default_rng(2000)
    for i in range(N_NUMBERS):
        data, ext, label, what = make_number(rng, i)
        write(
            f"numbers_{i:03d}_{what}.{ext}",
            data,
            label,
            "numbers",
            "val" if (i // 10) % 2 == 0 else "test",
        )
    rng = np.random.default_rng(3000)
    for i in range(N_BLANK):
        data, ext, what = make_blank(rng, i)
        write(
            f"blank_{i:03d}_{what}.{ext}", data, "", "blank", "val" if (i // 6) % 2 == 0 else "test"
        )
    with open(args.out / "labels.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["file", "label", "kind", "split"])
        w.writerows(rows)
    total = sum(p.stat().st_size for p in args.out.iterdir())
    print(f"wrote {len(rows)} images and labels.csv to {args.out} ({total / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
