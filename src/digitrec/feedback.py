"""Feedback store: the digits people corrected ("it was a 7"), kept for retraining.

One SQLite file, `feedback.sqlite3` under the data directory, in WAL mode so readers never
block the writer and several server workers can share it. A row keeps what retraining needs,
bounded in size whatever was uploaded:
    seen    the 28x28 the model saw, PNG (~0.3 KB)
    image   the upload reduced to at most 256 px on its longer side, grey (+ alpha), PNG:
            ~3 KB for a drawn canvas, ROW_MAX_BYTES at the very most (incompressible noise)
A number read by the page and corrected by a person is one row of a second table, `readings`:
the number's image (at most NUMBER_SIDE px), the digits read, their boxes, the number as the
person says it is, and the edits that turned one into the other (a digit changed, deleted or
inserted, or the whole number typed): split and merge errors kept as data (`add_reading`).
Rows enter as *pending*. `digitrec feedback review` accepts or rejects them, and only accepted
rows reach `feedback export` and `train --extra-data`; `--readings` does the same for the
corrected numbers, exported as JSON lines (`export_readings`). The page saves a number again
after each edit with the same `drawing` id: only a drawing's last row counts (LATEST). A store
from before review (schema version 0: no `seen`, no `status`) is migrated on open: its rows
become pending (nobody looked at them, and blank or noise uploads were kept then) and their
28x28 is made at export.

Durability: a row is committed (synchronous=FULL) before `add` returns, so every 201 the server
acknowledged is on disk. Faults are StoreError: StoreFull (507: the store's cap, or the disk)
and StoreUnavailable (503: cannot be created or opened, read-only, locked). The store opens on
first use and again after a failure, so a server starts without a writable one. The directory
is created 0700 and the database 0600 (SQLite gives its -wal and -shm files the same mode).

Several servers on several machines share one PostgreSQL database instead: `serve --database
postgresql://...`, the same rows, review and export (digitrec.feedback_pg). What both share
(the rows, the `Store` protocol, the errors) is in digitrec.feedback_rows; digitrec.feedback_stores
opens one or the other.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import random
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import platformdirs
from PIL import Image

from digitrec.errors import DigitrecError
from digitrec.feedback_rows import (  # noqa: F401 (all still importable from here)
    CHANGE_KINDS,
    IMAGE_SIDE,
    LATEST,
    NUMBER_SIDE,
    ROW_MAX_BYTES,
    STATUSES,
    Feedback,
    ReadingFeedback,
    Store,
    StoreError,
    StoreFull,
    StoreUnavailable,
    _ids,
    _rows,
    apply_changes,
    image_png,
    reading_row,
    row_images,
    seen_pixels,
    seen_png,
    stored_changes,
)
from digitrec.files import atomic_open

log = logging.getLogger(__name__)

DB_NAME = "feedback.sqlite3"
SCHEMA_VERSION = 2  # 1: review (seen, status, reviewed); 2: the readings table
WAL_LIMIT = 8 * 1024 * 1024  # bytes: the write-ahead log's size on disk after a checkpoint

SCHEMA = """
CREATE TABLE feedback (
    id        INTEGER PRIMARY KEY,
    image     BLOB    NOT NULL,                                -- PNG: the upload, <= 256 px
    label     INTEGER NOT NULL CHECK (label BETWEEN 0 AND 9),  -- what it really is
    predicted INTEGER CHECK (predicted BETWEEN 0 AND 9),       -- the model's answer; NULL: none
    model     TEXT    NOT NULL,                                -- the model that answered
    created   TEXT    NOT NULL,                                -- UTC, ISO 8601
    seen      BLOB,                                            -- PNG 28x28; NULL: a v0 row
    status    TEXT    NOT NULL DEFAULT 'pending'
              CHECK (status IN ('pending', 'accepted', 'rejected')),
    reviewed  TEXT                                             -- UTC, when accepted or rejected
)
"""
# Schema version 0 -> 1: the columns review added. Old rows become pending.
MIGRATION = [
    "ALTER TABLE feedback ADD COLUMN seen BLOB",
    "ALTER TABLE feedback ADD COLUMN status TEXT NOT NULL DEFAULT 'pending'"
    " CHECK (status IN ('pending', 'accepted', 'rejected'))",
    "ALTER TABLE feedback ADD COLUMN reviewed TEXT",
]
INDEX = "CREATE INDEX IF NOT EXISTS feedback_status ON feedback (status, id)"
# Schema version 2: corrections of a number read. Stores of versions 0 and 1 gain the table.
READINGS = """
CREATE TABLE IF NOT EXISTS readings (
    id        INTEGER PRIMARY KEY,
    image     BLOB    NOT NULL,               -- PNG: the number's image, <= NUMBER_SIDE px
    read      TEXT    NOT NULL,               -- the digits the model read, left to right
    text      TEXT    NOT NULL,               -- the number as the person says it is
    boxes     TEXT    NOT NULL,               -- JSON [[x, y, w, h], ...]: a box per digit read
    changes   TEXT    NOT NULL,               -- JSON [{"kind", "index", "from", "to"}, ...]
    drawing   TEXT,                           -- the page's id for the drawing: a later row
                                              -- with the same id supersedes an earlier one
    model     TEXT    NOT NULL,
    created   TEXT    NOT NULL,               -- UTC, ISO 8601
    status    TEXT    NOT NULL DEFAULT 'pending'
              CHECK (status IN ('pending', 'accepted', 'rejected')),
    reviewed  TEXT
)
"""


def default_data_dir() -> Path:
    """The per-user data directory, e.g. ~/.local/share/digitrec on Linux."""
    return Path(platformdirs.user_data_dir("digitrec"))


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


# ---------------------------------------------------------------- the store


def _code(e: sqlite3.Error) -> int:
    return getattr(e, "sqlite_errorcode", 0) & 0xFF  # the primary result code


def _fault(e: sqlite3.Error) -> StoreError:
    """A SQLite error on writing -> what the server answers."""
    code = _code(e)
    if code == sqlite3.SQLITE_FULL:
        return StoreFull("the feedback store is full (no space left on its disk)")
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return StoreUnavailable("the feedback store is busy (locked); try again later")
    if code == sqlite3.SQLITE_READONLY:
        return StoreUnavailable("the feedback store is read-only")
    return StoreUnavailable("the feedback store is unavailable")


class FeedbackStore:
    """Thread-safe: each thread gets its own connection; SQLite serialises the writes."""

    RETRY_OPEN = 5.0  # s: a store that failed to open is tried again at most this often

    def __init__(self, data_dir: Path | None = None, timeout: float = 10.0):
        self.dir = Path(data_dir) if data_dir is not None else default_data_dir()
        self.path = self.dir / DB_NAME
        self.where = str(self.path)
        self.timeout = timeout  # s: how long a write waits for another writer
        self._local = threading.local()
        self._lock = threading.Lock()
        self._opened = False
        self._tried = 0.0
        self.error: str | None = None  # why the store could not be opened, with the path
        self._open()

    # -- opening ------------------------------------------------------------------------

    def _open(self) -> bool:
        with self._lock:
            if self._opened:
                return True
            self._tried = time.monotonic()
            try:
                self._create_private()
                self._create()
            except (OSError, sqlite3.Error) as e:
                self.error = f"{self.path}: {getattr(e, 'strerror', None) or e}"
                log.warning("feedback store unavailable: %s", self.error)
                self.close()
                return False
            self._opened, self.error = True, None
            return True

    def _create_private(self) -> None:
        """The directory 0700 and the database file 0600, when this creates them."""
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # the mode: this one, not parents
        with contextlib.suppress(FileExistsError):
            os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))

    def _create(self) -> None:
        """WAL mode and the schema (created or migrated), with other processes doing the same
        at the same moment (the workers of `serve --workers N` starting on a new data directory):
        switching to WAL takes a lock that SQLite does not wait for, so a "database is locked"
        is tried again, for up to `timeout` seconds. (Not retried, one worker in three failed
        to start when two began together, and uvicorn then stops every worker.)"""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                db = self._connect()
                if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    db.execute("PRAGMA journal_mode=WAL")
                with _Transaction(db):
                    columns = {row[1] for row in db.execute("PRAGMA table_info(feedback)")}
                    if not columns:
                        db.execute(SCHEMA)
                    elif "status" not in columns:
                        n = db.execute("SELECT COUNT(*) FROM feedback").fetchone()[0]
                        for statement in MIGRATION:
                            db.execute(statement)
                        log.info("feedback store migrated to v1: %d earlier rows pending", n)
                    db.execute(INDEX)
                    db.execute(READINGS)
                    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                return
            except sqlite3.OperationalError as e:
                if _code(e) not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                    raise
                if time.monotonic() > deadline:
                    raise
                time.sleep(random.uniform(0.01, 0.05))

    def _connect(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            # isolation_level=None: transactions are this class's own (BEGIN IMMEDIATE ... COMMIT).
            db = sqlite3.connect(
                self.path, timeout=self.timeout, check_same_thread=False, isolation_level=None
            )
            db.execute("PRAGMA synchronous=FULL")
            # The WAL is cut back to this after a checkpoint (it grows past ~4 MB only while a
            # long read, an export, holds checkpoints off): the disk holds the cap plus this.
            db.execute(f"PRAGMA journal_size_limit={WAL_LIMIT}")
            self._local.db = db
        return db

    def _db(self) -> sqlite3.Connection:
        """This thread's connection to an opened store, or StoreUnavailable."""
        if not self._opened and not self._retry():
            raise StoreUnavailable("the feedback store is unavailable (cannot be opened)")
        return self._connect()

    def _retry(self) -> bool:
        """Open a store that failed to open, at most every RETRY_OPEN seconds."""
        return time.monotonic() - self._tried >= self.RETRY_OPEN and self._open()

    def writable(self) -> bool:
        """For readiness: the store is open and its file and directory can be written."""
        return self.problem() is None

    def problem(self) -> str | None:
        """Why corrections cannot be stored now, in words fit for /readyz (no path); None when
        they can: the store is open and its file and directory can be written."""
        if not self._opened and not self._retry():
            why = (self.error or "").removeprefix(f"{self.path}: ")  # the OS's or SQLite's
            return f"the feedback store cannot be opened ({why or 'unknown reason'})"
        if not os.access(self.path, os.W_OK):
            return "the feedback store's file is read-only"
        if not os.access(self.dir, os.W_OK):
            return "the feedback store's directory is read-only"
        return None

    # -- writing ------------------------------------------------------------------------

    def add(
        self,
        image: Image.Image,
        label: int,
        predicted: int | None,
        model: str,
        seen: np.ndarray | None = None,
        max_bytes: int | None = None,
    ) -> int:
        """Store one correction as pending; returns its id once committed.

        `seen`: the (28, 28) the model saw (made from `image` when not given); an image
        without ink is refused (ImageError, 422). `max_bytes`: the store's cap (StoreFull).
        """
        kept, small = row_images(image, seen)
        return self._insert(
            "INSERT INTO feedback (image, label, predicted, model, created, seen)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (kept, label, predicted, model, now(), small),
            max_bytes,
        )

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
    ) -> int:
        """Store a corrected number as pending (reading_row says what is kept); its id."""
        kept, boxes_json, changes_json = reading_row(image, read, text, boxes, changes)
        return self._insert(
            "INSERT INTO readings (image, read, text, boxes, changes, drawing, model, created)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (kept, read, text, boxes_json, changes_json, drawing, model, now()),
            max_bytes,
        )

    def _insert(self, sql: str, values: tuple[Any, ...], max_bytes: int | None) -> int:
        """One row in, committed, within the store's cap (StoreFull past it)."""
        db = self._db()
        adding = sum(len(v) for v in values if isinstance(v, bytes | str))
        try:
            with _Transaction(db):
                if max_bytes is not None:
                    size = db.execute("PRAGMA page_size").fetchone()[0]
                    pages = db.execute("PRAGMA page_count").fetchone()[0]
                    free = db.execute("PRAGMA freelist_count").fetchone()[0]
                    if (pages - free) * size + adding > max_bytes:
                        raise StoreFull(
                            "the feedback store is full (its cap is "
                            + (
                                f"{max_bytes / 1e6:,.0f} MB)"
                                if max_bytes >= 10**7
                                else f"{max_bytes:,} bytes)"
                            )
                        )
                cur = db.execute(sql, values)
        except sqlite3.OperationalError as e:
            self._reset()  # after a failed commit the connection may be unusable: a new one
            raise _fault(e) from e
        assert cur.lastrowid is not None
        return cur.lastrowid

    def decide(
        self, accept: Iterable[int] = (), reject: Iterable[int] = (), readings: bool = False
    ) -> None:
        """Mark rows accepted or rejected, all or none: an unknown id is a DigitrecError. With
        `readings`, rows of the corrected numbers (their own ids)."""
        accept, reject = sorted(set(accept)), sorted(set(reject))
        both = set(accept) & set(reject)
        if both:
            raise DigitrecError(f"ids both accepted and rejected: {_ids(both)}")
        table = "readings" if readings else "feedback"
        db = self._db()
        with _Transaction(db):
            wanted = accept + reject
            known = {r[0] for r in db.execute(
                f"SELECT id FROM {table} WHERE id IN ({','.join('?' * len(wanted))})", wanted
            )} if wanted else set()  # fmt: skip
            if missing := set(wanted) - known:
                raise DigitrecError(f"no {_rows(readings)} with ids {_ids(missing)}")
            stamp = now()
            for status, ids in (("accepted", accept), ("rejected", reject)):
                db.executemany(
                    f"UPDATE {table} SET status = ?, reviewed = ? WHERE id = ?",
                    [(status, stamp, i) for i in ids],
                )

    # -- reading ------------------------------------------------------------------------

    def count(self, status: str | None = None) -> int:
        where, args = ("WHERE status = ?", (status,)) if status else ("", ())
        return int(self._db().execute(f"SELECT COUNT(*) FROM feedback {where}", args).fetchone()[0])

    def counts(self, readings: bool = False) -> dict[str, int]:
        """Rows by status; with `readings`, the corrected numbers (a drawing's last row)."""
        sql = (
            f"SELECT status, COUNT(*) FROM readings WHERE {LATEST} GROUP BY status"
            if readings
            else "SELECT status, COUNT(*) FROM feedback GROUP BY status"
        )
        found = dict(self._db().execute(sql))
        return {s: int(found.get(s, 0)) for s in STATUSES}

    def rows(self, status: str | None = None, limit: int | None = None) -> Iterator[Feedback]:
        """Rows in id order, one at a time from a cursor (bounded memory for any store)."""
        self._db()  # opened (and migrated) first
        sql = "SELECT id, image, label, predicted, model, created, seen, status FROM feedback"
        args: list[object] = []
        if status is not None:
            sql, args = sql + " WHERE status = ?", [status]
        sql += " ORDER BY id"
        if limit is not None:
            sql, args = sql + " LIMIT ?", [*args, limit]
        # Its own connection: a cursor left half-read holds no transaction of this thread's.
        db = sqlite3.connect(self.path, timeout=self.timeout)
        try:
            for row in db.execute(sql, args):
                yield Feedback(*row)
        finally:
            db.close()

    def readings(
        self, status: str | None = None, limit: int | None = None, latest: bool = False
    ) -> Iterator[ReadingFeedback]:
        """The corrected numbers in id order, one at a time; with `latest`, only a drawing's
        last row (LATEST), whatever the status of the rows after it."""
        self._db()
        sql = (
            "SELECT id, image, read, text, boxes, changes, model, created, drawing, status"
            " FROM readings"
        )
        where = ["status = ?"] if status is not None else []
        args: list[object] = [status] if status is not None else []
        if latest:
            where.append(LATEST)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id"
        if limit is not None:
            sql, args = sql + " LIMIT ?", [*args, limit]
        db = sqlite3.connect(self.path, timeout=self.timeout)
        try:
            for row in db.execute(sql, args):
                yield _reading(row)
        finally:
            db.close()

    def __iter__(self) -> Iterator[Feedback]:
        return self.rows()

    def _reset(self) -> None:
        db = getattr(self._local, "db", None)
        self._local.db = None
        if db is not None:
            with contextlib.suppress(sqlite3.Error):
                db.close()

    def close(self) -> None:
        self._reset()


def _reading(row: tuple[Any, ...]) -> ReadingFeedback:
    """A `readings` row (id, image, read, text, boxes, changes, model, created, drawing,
    status) as a ReadingFeedback."""
    boxes, changes = json.loads(row[4]), json.loads(row[5])
    return ReadingFeedback(row[0], bytes(row[1]), row[2], row[3], boxes, changes, *row[6:])


class _Transaction:
    """BEGIN IMMEDIATE (the write lock up front: no deadlock upgrading a read) ... COMMIT, or
    ROLLBACK on any error."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, kind: object, error: object, tb: object) -> None:
        if kind is None:
            self.db.execute("COMMIT")
        elif self.db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")


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


# ---------------------------------------------------------------- review


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
