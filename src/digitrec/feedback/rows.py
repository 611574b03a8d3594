"""What both feedback stores share (sqlite.FeedbackStore, postgres.PostgresStore):
the rows (`Feedback`, `ReadingFeedback`) and what a row keeps of a correction, the `Store`
protocol the server and the CLI use, and the errors a store raises (StoreFull: 507,
StoreUnavailable: 503)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from PIL import Image

from digitrec.errors import DigitrecError, ImageError

IMAGE_SIDE = 256  # px: the kept upload's longer side, at most; a digit needs ~80 (preprocess)
# The largest row: an incompressible 256x256 grey + alpha PNG (2 bytes a pixel, a filter byte a
# line, deflate's and PNG's framing) plus the 28x28 (under 1 KB) and the other columns.
ROW_MAX_BYTES = 256 * (1 + 2 * 256) + 2_048 + 1_024 + 256
STATUSES = ("pending", "accepted", "rejected")
# A readings row no later row of the same drawing supersedes (the page saves after each edit):
# the rows review shows and counts and export writes. The same SQL on SQLite and PostgreSQL.
LATEST = "(drawing IS NULL OR id IN (SELECT MAX(id) FROM readings GROUP BY drawing))"


class StoreError(DigitrecError):
    """The store cannot take a row. `status` is the server's answer; the message names no path."""

    status = 503


class StoreFull(StoreError):
    status = 507


class StoreUnavailable(StoreError):
    status = 503


@dataclass(frozen=True)
class Feedback:
    id: int
    image: bytes  # PNG, the upload reduced
    label: int
    predicted: int | None
    model: str
    created: str
    seen: bytes | None = None  # PNG 28x28, what the model saw
    status: str = "pending"


@dataclass(frozen=True)
class ReadingFeedback:
    """A number read and corrected: what `readings` keeps (boxes in the kept image's pixels)."""

    id: int
    image: bytes  # PNG, the number's image reduced
    read: str
    text: str
    boxes: list[list[int]]
    changes: list[dict[str, Any]]
    model: str
    created: str
    drawing: str | None = None
    status: str = "pending"


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def image_png(image: Image.Image, side: int = IMAGE_SIDE) -> bytes:
    """The upload as kept: grey (+ alpha when it has transparency), longer side <= `side`."""
    try:
        if image.mode in ("I", "F") or image.mode.startswith("I;16"):  # 16/32-bit, float
            grey = np.nan_to_num(np.asarray(image, dtype=np.float64))
            low, high = float(grey.min()), float(grey.max())
            scale = 1.0 if image.mode == "F" and high <= 1 else 255.0 if high <= 255 else high
            grey = (grey - min(low, 0.0)) / max(scale - min(low, 0.0), 1e-9) * 255
            kept = Image.fromarray(np.clip(grey, 0, 255).astype(np.uint8))
        elif image.mode in ("LA", "PA", "RGBA", "RGBa", "La") or "transparency" in image.info:
            rgba = image.convert("RGBA")
            kept = Image.merge("LA", (rgba.convert("L"), rgba.getchannel("A")))
        else:
            kept = image.convert("RGB").convert("L") if image.mode != "L" else image.copy()
    except (ValueError, OSError):  # a mode Pillow cannot convert (LAB, ...)
        raise ImageError(f"cannot keep an image in colour mode {image.mode}") from None
    kept.thumbnail((side, side), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return _png(kept)


def seen_png(image28: np.ndarray) -> bytes:
    """(28, 28) float in [0, 1] -> an 8-bit greyscale PNG, ink high as the model sees it."""
    return _png(Image.fromarray(np.clip(np.rint(image28 * 255), 0, 255).astype(np.uint8)))


def row_images(image: Image.Image, seen: np.ndarray | None) -> tuple[bytes, bytes]:
    """What a row keeps of a correction: (image_png, seen_png). `seen`: the (28, 28) the model
    saw, made from `image` when not given; an image without ink is an ImageError (422)."""
    if seen is None:
        from digitrec.vision.preprocess import preprocess

        seen = preprocess(image)
    if seen is None:
        raise ImageError("no digit in the image (no ink): nothing to learn from", status=422)
    return image_png(image), seen_png(seen)


NUMBER_SIDE = 560  # px: a number's kept image, longer side at most (the page sends 560 x 280)
CHANGE_KINDS = ("change", "delete", "insert", "retype")


def apply_changes(read: str, changes: list[dict[str, Any]]) -> str:
    """The number that `changes` make of the digits `read`; a DigitrecError (422) for edits
    that do not fit. Indices are positions in `read`: "change" and "delete" name a digit read,
    "insert" puts `to` before digit `index` (len(read): at the end); "retype" replaces it all."""
    out = list(read)
    before: list[list[str]] = [[] for _ in range(len(read) + 1)]
    typed = None
    for c in changes:
        kind, index, to = c.get("kind"), c.get("index"), str(c.get("to") or "")
        if kind not in CHANGE_KINDS:
            raise DigitrecError(
                f"not a kind of change: {kind!r} (one of {', '.join(CHANGE_KINDS)})"
            )
        if kind != "delete" and not to.isdigit():
            raise DigitrecError(f"a {kind} needs `to`: the digit{'s' if kind == 'retype' else ''}")
        if kind in ("change", "insert") and len(to) != 1:
            raise DigitrecError(f"a {kind} puts one digit, not {to!r}")
        if kind == "retype":
            typed = to
            continue
        limit = len(read) if kind == "insert" else len(read) - 1
        if not isinstance(index, int) or not 0 <= index <= limit:
            raise DigitrecError(f"a {kind} at digit {index}: the number read has {len(read)}")
        if kind == "change":
            out[index] = str(to)
        elif kind == "delete":
            out[index] = ""
        elif kind == "insert":
            before[index].append(str(to))
    if typed is not None:
        return str(typed)
    return "".join(
        "".join(before[i]) + (out[i] if i < len(out) else "") for i in range(len(read) + 1)
    )


def reading_row(
    image: Image.Image, read: str, text: str, boxes: list[list[int]], changes: list[dict[str, Any]]
) -> tuple[bytes, str, str]:
    """What a `readings` row keeps of a corrected number: (image PNG, boxes JSON, changes JSON),
    the image reduced to NUMBER_SIDE and the boxes with it. The edits must turn `read` into
    `text` and the boxes lie in the image: else a DigitrecError (422)."""
    if len(boxes) != len(read):
        raise DigitrecError(f"{len(boxes)} boxes for the {len(read)} digits read")
    width, height = image.size
    for x, y, w, h in boxes:
        if x < 0 or y < 0 or w < 1 or h < 1 or x + w > width + 1 or y + h > height + 1:
            raise DigitrecError(f"the box {[x, y, w, h]} is not inside the {width}x{height} image")
    if apply_changes(read, changes) != text:
        raise DigitrecError(
            f"the changes turn {read} into {apply_changes(read, changes)}, not {text}"
        )
    kept = image_png(image, NUMBER_SIDE)
    scale = min(1.0, NUMBER_SIDE / max(width, height))
    scaled = [[round(v * scale) for v in box] for box in boxes]
    return kept, json.dumps(scaled), json.dumps(stored_changes(read, changes))


def stored_changes(read: str, changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The edits as a row keeps them: {"kind", "index", "from", "to"}, "from" what was read
    there (the whole number for a retype), no "index" for a retype, no "from" for an insert,
    no "to" for a delete. `changes` must fit `read` (apply_changes)."""
    stored = []
    for c in changes:
        kind = c["kind"]
        row: dict[str, Any] = {"kind": kind}
        if kind != "retype":
            row["index"] = c["index"]
        if kind != "insert":
            row["from"] = read if kind == "retype" else read[c["index"]]
        if kind != "delete":
            row["to"] = str(c.get("to"))
        stored.append(row)
    return stored


def seen_pixels(item: Feedback) -> np.ndarray | None:
    """(784,) uint8: the row's 28x28; for a v0 row, today's preprocessing of its image."""
    if item.seen is not None:
        return np.asarray(Image.open(io.BytesIO(item.seen)).convert("L"), np.uint8).ravel()
    from digitrec.vision.preprocess import preprocess  # the serving-side import chain stays lazy

    image28 = preprocess(item.image)
    if image28 is None:
        return None
    return np.clip(np.rint(image28 * 255), 0, 255).astype(np.uint8).ravel()


class Store(Protocol):
    """What the server and the CLI need of a store: FeedbackStore (SQLite, the default) or
    postgres.PostgresStore (`serve --database postgresql://...`)."""

    where: str  # the file or the database (without its password), for logs and messages
    error: str | None

    def writable(self) -> bool: ...

    def problem(self) -> str | None: ...  # why it is not writable, for /readyz; None: it is

    def add(
        self,
        image: Image.Image,
        label: int,
        predicted: int | None,
        model: str,
        seen: np.ndarray | None = None,
        max_bytes: int | None = None,
    ) -> int: ...

    def add_reading(
        self,
        image: Image.Image,
        read: str,
        text: str,
        boxes: list[list[int]],
        changes: list[dict[str, Any]],
        model: str,
        drawing: str | None = None,
        max_bytes: int | None = None,
    ) -> int: ...

    def readings(
        self, status: str | None = None, limit: int | None = None, latest: bool = False
    ) -> Iterator[ReadingFeedback]: ...

    def decide(
        self, accept: Iterable[int] = (), reject: Iterable[int] = (), readings: bool = False
    ) -> None: ...

    def count(self, status: str | None = None) -> int: ...

    def counts(self, readings: bool = False) -> dict[str, int]: ...

    def rows(self, status: str | None = None, limit: int | None = None) -> Iterator[Feedback]: ...

    def close(self) -> None: ...


def _ids(ids: Iterable[int]) -> str:
    return ", ".join(str(i) for i in sorted(ids))


def _rows(readings: bool) -> str:
    """What a review's ids name, in messages."""
    return "corrected numbers" if readings else "feedback rows"
