"""Feedback store: the digits people corrected ("it was a 7"), kept for retraining.

One SQLite file, `feedback.sqlite3` under the data directory, in WAL mode so
readers never block the writer and several server workers can share it. Each
row keeps the uploaded image re-encoded as PNG, so the store does not depend
on what preprocessing looks like today: `export_csv` runs the current
`preprocess.preprocess` over the stored images.

Durability: a row is committed (synchronous=FULL) before `add` returns, so
every 201 the server acknowledged is on disk.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import random
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import platformdirs
from PIL import Image

log = logging.getLogger(__name__)

DB_NAME = "feedback.sqlite3"

SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    id        INTEGER PRIMARY KEY,
    image     BLOB    NOT NULL,                                -- PNG bytes
    label     INTEGER NOT NULL CHECK (label BETWEEN 0 AND 9),  -- what it really is
    predicted INTEGER CHECK (predicted BETWEEN 0 AND 9),       -- the model's answer; NULL: none
    model     TEXT    NOT NULL,                                -- the model that answered
    created   TEXT    NOT NULL                                 -- UTC, ISO 8601
)
"""


def default_data_dir() -> Path:
    """The per-user data directory, e.g. ~/.local/share/digitrec on Linux."""
    return Path(platformdirs.user_data_dir("digitrec"))


@dataclass(frozen=True)
class Feedback:
    id: int
    image: bytes  # PNG
    label: int
    predicted: int | None
    model: str
    created: str


def to_png(image: Image.Image) -> bytes:
    """Re-encode an image as PNG (first frame, any mode PNG can hold)."""
    if image.mode not in ("1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


class FeedbackStore:
    """Thread-safe: each thread gets its own connection; SQLite serialises the writes."""

    def __init__(self, data_dir: Path | None = None):
        self.dir = Path(data_dir) if data_dir is not None else default_data_dir()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / DB_NAME
        self._local = threading.local()
        self._create()

    def _create(self, timeout: float = 10.0) -> None:
        """WAL mode and the table, with other processes doing the same at the same moment (the
        workers of `serve --workers N` starting on a new data directory): switching to WAL takes
        a lock that SQLite does not wait for, so a "database is locked" is tried again, for up
        to `timeout` seconds. (Not retried, one worker in three failed to start when two began
        together, and uvicorn then stops every worker.)"""
        deadline = time.monotonic() + timeout
        while True:
            try:
                db = self._connect()
                if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    db.execute("PRAGMA journal_mode=WAL")
                db.execute(SCHEMA)
                db.commit()
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(random.uniform(0.01, 0.05))

    def _connect(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            # timeout: wait up to 10 s for another writer (thread or worker process).
            db = sqlite3.connect(self.path, timeout=10.0, check_same_thread=False)
            db.execute("PRAGMA synchronous=FULL")
            self._local.db = db
        return db

    def add(self, image: Image.Image, label: int, predicted: int | None, model: str) -> int:
        """Store one correction; returns its id once committed."""
        png = to_png(image)
        created = datetime.now(UTC).isoformat(timespec="milliseconds")
        db = self._connect()
        with db:  # one transaction: committed on exit, rolled back on error
            cur = db.execute(
                "INSERT INTO feedback (image, label, predicted, model, created)"
                " VALUES (?, ?, ?, ?, ?)",
                (png, label, predicted, model, created),
            )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def count(self) -> int:
        return int(self._connect().execute("SELECT COUNT(*) FROM feedback").fetchone()[0])

    def __iter__(self) -> Iterator[Feedback]:
        rows = self._connect().execute(
            "SELECT id, image, label, predicted, model, created FROM feedback ORDER BY id"
        )
        for row in rows:
            yield Feedback(*row)

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None


def export_csv(data_dir: Path | None, out: Path) -> int:
    """Write the store as a Kaggle-format CSV (label,pixel0..pixel783); returns the row count.

    Pixels are the preprocessed 28x28 image the model would see, scaled to 0..255.
    A blank image (nothing to preprocess) is written as all zeros.
    """
    from digitrec.preprocess import preprocess  # the serving-side import chain stays lazy

    directory = Path(data_dir) if data_dir is not None else default_data_dir()
    if not (directory / DB_NAME).exists():
        rows: list[Feedback] = []
    else:
        store = FeedbackStore(directory)
        rows = list(store)
        store.close()

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Atomic: write a temporary file beside `out`, then rename over it.
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["label", *(f"pixel{i}" for i in range(784))])
            for item in rows:
                image28 = preprocess(item.image)  # (28, 28) float32 in [0, 1], or None
                if image28 is None:
                    pixels = np.zeros(784, dtype=np.uint8)
                else:
                    pixels = np.clip(np.rint(image28 * 255), 0, 255).astype(np.uint8).ravel()
                writer.writerow([item.label, *pixels.tolist()])
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    log.info("exported %d feedback rows to %s", len(rows), out)
    return len(rows)
