"""Reviewing corrections (`digitrec feedback review`): the ids a person accepts or rejects, and
the contact sheets that show the rows to review, digits (`contact_sheet`) and corrected
numbers (`readings_sheet`), from either store."""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from PIL import Image

from digitrec.errors import DigitrecError
from digitrec.feedback.rows import Feedback, ReadingFeedback, seen_pixels
from digitrec.files import atomic_open


def parse_ids(text: str) -> list[int]:
    """'1,2,5' or '3-7,9' -> ids (a DigitrecError for anything else)."""
    ids: list[int] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        low, sep, high = part.partition("-")
        try:
            ids += range(int(low), int(high) + 1) if sep else [int(part)]
        except ValueError:
            raise DigitrecError(f"not an id or a range of ids: {part!r}") from None
    return ids


def _sheet(n: int, columns: int, cell_w: int, cell_h: int) -> tuple[Image.Image, Any, Any]:
    """A white review sheet for n cells of cell_w x cell_h, `columns` a row: (the sheet, a
    drawing context on it, the 14 px font its captions use)."""
    from PIL import ImageDraw, ImageFont

    rows = -(-n // columns)
    sheet = Image.new("RGB", (cell_w * min(columns, n), cell_h * rows), "white")
    return sheet, ImageDraw.Draw(sheet), ImageFont.load_default(size=14)


def contact_sheet(rows: Iterable[Feedback], out: Path, columns: int = 8) -> int:
    """A PNG of rows to review: each cell the upload (on white), the 28x28 the model saw (x3)
    and a line `#id  label L  (model P)`. Written atomically; returns the number of cells."""
    cell_w, cell_h, side = 220, 136, 112
    items = list(rows)
    if not items:
        return 0
    sheet, draw, font = _sheet(len(items), columns, cell_w, cell_h)
    for k, item in enumerate(items):
        x, y = (k % columns) * cell_w, (k // columns) * cell_h
        upload = Image.open(io.BytesIO(item.image))
        upload.thumbnail((side, side))
        paper = Image.new("RGBA", upload.size, "white")
        paper.alpha_composite(upload.convert("RGBA"))
        sheet.paste(paper.convert("RGB"), (x + 4 + (side - upload.width) // 2, y + 4))
        pixels = seen_pixels(item)
        if pixels is not None:
            seen = Image.fromarray(pixels.reshape(28, 28)).resize(
                (84, 84), Image.Resampling.NEAREST
            )
            sheet.paste(seen.convert("RGB"), (x + side + 12, y + 4))
        guess = "-" if item.predicted is None else str(item.predicted)
        draw.text((x + 4, y + side + 8), f"#{item.id}  label {item.label}  (model {guess})",
                  fill="black", font=font)  # fmt: skip
        draw.rectangle((x, y, x + cell_w - 1, y + cell_h - 1), outline=(200, 200, 200))
    with atomic_open(out) as f:
        sheet.save(f, format="PNG")
    return len(items)


def edit_text(change: dict[str, Any]) -> str:
    """A stored edit in a few characters: "change 1: 7->2", "delete 0: 1", "insert 2: 4",
    "retype 17->1234" (indices are positions in the digits read, from 0)."""
    kind = change["kind"]
    if kind == "retype":
        return f"retype {change['from']}->{change['to']}"
    what = {"change": f"{change.get('from')}->{change.get('to')}", "delete": change.get("from"),
            "insert": change.get("to")}[kind]  # fmt: skip
    return f"{kind} {change['index']}: {what}"


def readings_sheet(rows: Iterable[ReadingFeedback], out: Path, columns: int = 3) -> int:
    """A PNG of corrected numbers to review: each cell the number's image (on white) with the
    boxes of the digits read (red, numbered from 0), a line `#id  read R -> T` and a line of
    the edits. Written atomically; returns the number of cells."""
    from PIL import ImageFont

    cell_w, cell_h, box_w, box_h = 300, 196, 288, 144
    items = list(rows)
    if not items:
        return 0
    sheet, draw, font = _sheet(len(items), columns, cell_w, cell_h)
    small = ImageFont.load_default(size=11)
    for k, item in enumerate(items):
        x, y = (k % columns) * cell_w, (k // columns) * cell_h
        kept = Image.open(io.BytesIO(item.image))
        scale = min(box_w / kept.width, box_h / kept.height)
        number = kept.resize(
            (max(1, round(kept.width * scale)), max(1, round(kept.height * scale))),
            Image.Resampling.LANCZOS,
        )
        paper = Image.new("RGBA", number.size, "white")
        paper.alpha_composite(number.convert("RGBA"))
        left, top = x + 6 + (box_w - number.width) // 2, y + 4
        sheet.paste(paper.convert("RGB"), (left, top))
        for i, (bx, by, bw, bh) in enumerate(item.boxes):
            x0, y0 = left + bx * scale, top + by * scale
            draw.rectangle((x0, y0, x0 + bw * scale, y0 + bh * scale), outline=(220, 0, 0))
            draw.text((x0 + 2, y0 + 1), str(i), fill=(220, 0, 0), font=small)
        draw.text((x + 6, y + box_h + 10), f"#{item.id}  read {item.read} -> {item.text}",
                  fill="black", font=font)  # fmt: skip
        edits = ", ".join(edit_text(c) for c in item.changes)
        if len(edits) > 44:
            edits = edits[:41] + "..."
        draw.text((x + 6, y + box_h + 28), edits, fill=(60, 60, 60), font=font)
        draw.rectangle((x, y, x + cell_w - 1, y + cell_h - 1), outline=(200, 200, 200))
    with atomic_open(out) as f:
        sheet.save(f, format="PNG")
    return len(items)
