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

Several servers on several machines share one PostgreSQL database instead (feedback.postgres).
The tables and their migrations are in feedback.schema.
"""

from __future__ import annotations

import contextlib
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
from digitrec.feedback.rows import (
    LATEST,
    STATUSES,
    Feedback,
    ReadingFeedback,
    StoreError,
    StoreFull,
    StoreUnavailable,
    _ids,
    _rows,
    reading_row,
    row_images,
)
from digitrec.feedback.schema import migrate_sqlite

log = logging.getLogger(__name__)

DB_NAME = "feedback.sqlite3"
WAL_LIMIT = 8 * 1024 * 1024  # bytes: the write-ahead log's size on disk after a checkpoint


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
                    migrate_sqlite(db)
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
