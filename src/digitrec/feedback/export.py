"""What reads either feedback store (feedback.stores opens it): the export of accepted rows as a
Kaggle CSV, of accepted corrected numbers as JSON lines, the accepted rows as a Dataset."""

from __future__ import annotations

import base64
import csv
import io
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from digitrec.dataset import Dataset
from digitrec.errors import DataError
from digitrec.feedback.rows import ReadingFeedback, seen_pixels
from digitrec.feedback.sqlite import DB_NAME
from digitrec.feedback.stores import open_existing
from digitrec.files import atomic_open

log = logging.getLogger(__name__)


def export_csv(data_dir: Path | None, out: Path, database: str | None = None) -> int:
    """Write the accepted rows as a Kaggle-format CSV (label,pixel0..pixel783); returns how
    many. Pixels are the 28x28 the model saw, 0..255. Streams: one row in memory at a time.
    From the SQLite store in `data_dir`, or from PostgreSQL when `database` is a URL."""
    store = open_existing(data_dir, database)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    digits = [str(v) for v in range(256)]
    n = 0
    try:
        with atomic_open(out, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["label", *(f"pixel{i}" for i in range(784))])
            for item in store.rows("accepted") if store else ():
                pixels = seen_pixels(item)
                if pixels is None:  # a v0 row without ink: nothing to learn from
                    continue
                f.write(f"{item.label},{','.join([digits[p] for p in pixels.tolist()])}\r\n")
                n += 1
    finally:
        if store:
            store.close()
    log.info("exported %d accepted feedback rows to %s", n, out)
    return n


def reading_record(item: ReadingFeedback) -> dict[str, Any]:
    """A corrected number as `feedback export --readings` writes it, one JSON object: the kept
    image as a PNG data URL (what POST /api/v1/read takes) and its size, the boxes in its
    pixels, the digits read, the number as the person says it is, the edits as stored."""
    width, height = Image.open(io.BytesIO(item.image)).size  # the PNG's header only
    return {
        "id": item.id,
        "image": "data:image/png;base64," + base64.b64encode(item.image).decode(),
        "width": width,
        "height": height,
        "read": item.read,
        "text": item.text,
        "boxes": item.boxes,
        "changes": item.changes,
        "model": item.model,
        "created": item.created,
        "drawing": item.drawing,
    }


def export_readings(data_dir: Path | None, out: Path, database: str | None = None) -> int:
    """Write the accepted corrected numbers as JSON lines (reading_record), a drawing's last
    row only (LATEST); returns how many. Streams, written atomically. From the SQLite store in
    `data_dir`, or from PostgreSQL when `database` is a URL."""
    store = open_existing(data_dir, database)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    try:
        with atomic_open(out, "w", encoding="utf-8") as f:
            for item in store.readings("accepted", latest=True) if store else ():
                f.write(json.dumps(reading_record(item)) + "\n")
                n += 1
    finally:
        if store:
            store.close()
    log.info("exported %d accepted corrected numbers to %s", n, out)
    return n


def accepted_dataset(path: Path) -> Dataset:
    """The accepted rows of a store (its feedback.sqlite3, or its directory) as a Dataset."""
    path = Path(path)
    directory = path if path.is_dir() else path.parent
    if not (directory / DB_NAME).exists():
        raise DataError(path, "no feedback store here")
    store = open_existing(directory)
    assert store is not None
    images, labels = [], []
    try:
        for item in store.rows("accepted"):
            pixels = seen_pixels(item)
            if pixels is not None:
                images.append(pixels.reshape(28, 28))
                labels.append(item.label)
    finally:
        store.close()
    if not images:
        raise DataError(path, "no accepted feedback rows (see `digitrec feedback review`)")
    return Dataset(np.stack(images), np.array(labels, dtype=np.int64), str(path))
