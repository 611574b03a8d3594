"""The feedback store on PostgreSQL: `serve --database postgresql://...` (or DIGITREC_DATABASE).

The same rows, review and export as the SQLite store (feedback.sqlite), in a database that
several servers share. psycopg 3, imported only when a database URL is given (the `postgres`
extra: `pip install 'digitrec[postgres]'`); parameterised SQL only.

Schema: created or migrated when a store first connects (feedback.schema.migrate_postgres).

Connections: a few per process, one per thread writing at once, each checked with an empty
query (a round trip, ~0.1 ms) before use, so one that a database restart broke is replaced
instead of failing a request. When the database cannot be reached the store is *down*:
`writable()` is False, so the server answers 503 at once without waiting on the network, and a
background thread tries to connect again every RETRY seconds until the database is back. (Not
psycopg_pool: after each failed attempt its reconnection waits twice as long, 1, 2, 4, ... s,
so after a 30 s outage the next try may be half a minute away.)

Durability: `add` returns after COMMIT (synchronous_commit as the server has it, on by
default). A connection lost while committing is the one case where the row may or may not have
been stored; the 503 says so.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from digitrec.errors import DigitrecError
from digitrec.feedback.database import _psycopg, _reason, shown_url
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
)
from digitrec.feedback.rows import row_images as _row_images
from digitrec.feedback.schema import migrate_postgres

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

COLUMNS = "id, image, label, predicted, model, created, seen, status"
UNAVAILABLE = "the feedback store is unavailable"


class PostgresStore:
    """Thread-safe: a connection is used by one thread at a time (checked out, checked in)."""

    RETRY = 1.0  # s: how often a store that is down tries to connect again

    def __init__(
        self, url: str, reconnect: bool = True, connect_timeout: int = 3, idle: int = 4
    ) -> None:
        self.url = url
        self.where = shown_url(url)  # raises on a bad URL
        self.connect_timeout = connect_timeout  # s
        self.keep_idle = idle  # connections kept open between writes
        self.reconnect = reconnect
        self.error: str | None = None  # why the database cannot be reached, one line
        self._pg = _psycopg()
        self._idle: list[psycopg.Connection[Any]] = []
        self._lock = threading.Lock()
        self._up = False
        self._closed = threading.Event()
        self._retrying: threading.Thread | None = None
        if not self._open() and reconnect:
            log.warning(
                "feedback database %s unreachable: %s; feedback answers 503 until it is back",
                self.where,
                self.error,
            )
            self._retry()

    # -- connecting ---------------------------------------------------------------------

    def _connect(self, autocommit: bool = True) -> psycopg.Connection[Any]:
        return self._pg.connect(
            self.url,
            autocommit=autocommit,
            connect_timeout=self.connect_timeout,
            application_name="digitrec",
        )

    def _open(self) -> bool:
        """Connect and create or migrate the schema; True when the store is up."""
        try:
            conn = self._connect()
            try:
                migrate_postgres(conn)
            except BaseException:
                conn.close()
                raise
        except (self._pg.Error, StoreError) as e:
            self.error = _reason(e)
            return False
        with self._lock:
            self._idle.append(conn)
            self._up, self.error = True, None
        return True

    def _down(self, why: str) -> None:
        """The database is gone: drop the idle connections, answer 503, reconnect meanwhile."""
        with self._lock:
            was_up, self._up, self.error = self._up, False, why
            idle, self._idle = self._idle, []
        for conn in idle:
            with contextlib.suppress(Exception):
                conn.close()
        if was_up:
            log.warning(
                "feedback database %s lost: %s; feedback answers 503 until it is back",
                self.where,
                why,
            )
        self._retry()

    def _retry(self) -> None:
        if not self.reconnect or self._closed.is_set():
            return
        with self._lock:
            if self._retrying is not None:
                return
            thread = self._retrying = threading.Thread(
                target=self._reconnecting, name="feedback-reconnect", daemon=True
            )
        thread.start()

    def _reconnecting(self) -> None:
        wait = 0.0  # the first try at once: a lost connection may be just that one
        while not self._closed.wait(wait):
            if self._open():
                log.warning("feedback database %s is back", self.where)
            with self._lock:  # done only while up: a _down() meanwhile finds this still here
                if self._up:
                    self._retrying = None
                    return
            wait = self.RETRY
        with self._lock:
            self._retrying = None

    def writable(self) -> bool:
        """For readiness and before each correction: the database answered last time. No I/O,
        so the server calls it on its event loop."""
        return self._up

    def problem(self) -> str | None:
        """Why corrections cannot be stored now, for /readyz (no address: `error` has it)."""
        return None if self._up else "the feedback database is unreachable"

    def _checkout(self) -> psycopg.Connection[Any]:
        """A live connection, or StoreUnavailable (and then nothing was sent)."""
        if not self._up:
            raise StoreUnavailable(UNAVAILABLE)
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                break
            try:
                conn.execute("")  # a connection that a restart broke fails here, harmlessly
                return conn
            except self._pg.Error:
                with contextlib.suppress(Exception):
                    conn.close()
        try:
            return self._connect()
        except self._pg.Error as e:
            self._down(_reason(e))
            raise StoreUnavailable(UNAVAILABLE) from None

    def _checkin(self, conn: psycopg.Connection[Any]) -> None:
        idle = self._pg.pq.TransactionStatus.IDLE
        keep = not conn.closed and not conn.broken and conn.info.transaction_status == idle
        with self._lock:
            if keep and self._up and len(self._idle) < self.keep_idle:
                self._idle.append(conn)
                return
        with contextlib.suppress(Exception):
            conn.close()

    def _fault(self, conn: psycopg.Connection[Any], e: Exception, committing: bool) -> StoreError:
        """A psycopg error on writing -> what the server answers."""
        errors = self._pg.errors
        if isinstance(e, errors.DiskFull):
            return StoreFull("the feedback store is full (no space left on its disk)")
        if isinstance(e, errors.ReadOnlySqlTransaction):
            return StoreUnavailable("the feedback store is read-only")
        if isinstance(e, errors.TooManyConnections | errors.LockNotAvailable):
            return StoreUnavailable("the feedback store is busy; try again later")
        if conn.broken or isinstance(e, self._pg.OperationalError):
            self._down(_reason(e))
            if committing:
                return StoreUnavailable(
                    "the connection to the feedback store was lost while committing: "
                    "the correction may or may not have been stored"
                )
            return StoreUnavailable(UNAVAILABLE)
        log.error("feedback database %s refused a row: %s", self.where, _reason(e))
        return StoreUnavailable("the feedback store refused the row")

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
        """As FeedbackStore.add: one correction stored as pending; its id once committed."""
        kept, small = _row_images(image, seen)
        return self._insert(
            "INSERT INTO feedback (image, label, predicted, model, seen)"
            " VALUES (%s, %s, %s, %s, %s) RETURNING id",
            (kept, label, predicted, model, small),
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
        """As FeedbackStore.add_reading: a corrected number stored as pending; its id."""
        kept, boxes_json, changes_json = reading_row(image, read, text, boxes, changes)
        return self._insert(
            "INSERT INTO readings (image, read, text, boxes, changes, drawing, model)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (kept, read, text, boxes_json, changes_json, drawing, model),
            max_bytes,
        )

    def _insert(self, sql: str, values: tuple[Any, ...], max_bytes: int | None) -> int:
        """One row in, committed, within the store's cap (StoreFull past it)."""
        adding = sum(len(v) for v in values if isinstance(v, bytes | str))
        conn = self._checkout()
        committing = False
        try:
            with conn.transaction():
                if max_bytes is not None:
                    used = conn.execute(
                        "SELECT pg_total_relation_size('feedback')"
                        " + pg_total_relation_size('readings')"
                    ).fetchone()
                    if used is not None and used[0] + adding > max_bytes:
                        raise StoreFull(
                            f"the feedback store is full (its cap is {max_bytes / 1e6:,.0f} MB)"
                        )
                row = conn.execute(sql, values).fetchone()
                committing = True  # what fails past here is the COMMIT
        except self._pg.Error as e:
            raise self._fault(conn, e, committing) from e
        finally:
            self._checkin(conn)
        assert row is not None
        return int(row[0])

    def decide(
        self, accept: Iterable[int] = (), reject: Iterable[int] = (), readings: bool = False
    ) -> None:
        """Mark rows accepted or rejected, all or none: an unknown id is a DigitrecError. With
        `readings`, rows of the corrected numbers (their own ids)."""
        accept, reject = sorted(set(accept)), sorted(set(reject))
        if both := set(accept) & set(reject):
            raise DigitrecError(f"ids both accepted and rejected: {_ids(both)}")
        table = "readings" if readings else "feedback"
        with self._session() as conn, conn.transaction():
            wanted = accept + reject
            known = {
                r[0] for r in conn.execute(f"SELECT id FROM {table} WHERE id = ANY(%s)", (wanted,))
            }
            if missing := set(wanted) - known:
                raise DigitrecError(f"no {_rows(readings)} with ids {_ids(missing)}")
            for status, ids in (("accepted", accept), ("rejected", reject)):
                if ids:
                    conn.execute(
                        f"UPDATE {table} SET status = %s, reviewed = now() WHERE id = ANY(%s)",
                        (status, ids),
                    )

    # -- reading ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _session(self) -> Iterator[psycopg.Connection[Any]]:
        conn = self._checkout()
        try:
            yield conn
        except self._pg.Error as e:
            raise self._fault(conn, e, committing=False) from e
        finally:
            self._checkin(conn)

    def count(self, status: str | None = None) -> int:
        with self._session() as conn:
            if status is None:
                row = conn.execute("SELECT COUNT(*) FROM feedback").fetchone()
            else:
                row = conn.execute(
                    "SELECT COUNT(*) FROM feedback WHERE status = %s", (status,)
                ).fetchone()
        assert row is not None
        return int(row[0])

    def counts(self, readings: bool = False) -> dict[str, int]:
        """Rows by status; with `readings`, the corrected numbers (a drawing's last row)."""
        sql = (
            f"SELECT status, COUNT(*) FROM readings WHERE {LATEST} GROUP BY status"
            if readings
            else "SELECT status, COUNT(*) FROM feedback GROUP BY status"
        )
        with self._session() as conn:
            found = dict(conn.execute(sql).fetchall())
        return {s: int(found.get(s, 0)) for s in STATUSES}

    def rows(self, status: str | None = None, limit: int | None = None) -> Iterator[Feedback]:
        """Rows in id order, streamed from a server-side cursor (bounded memory)."""
        args: list[object]
        if status is None:
            sql, args = f"SELECT {COLUMNS} FROM feedback ORDER BY id LIMIT %s", [limit]
        else:
            sql = f"SELECT {COLUMNS} FROM feedback WHERE status = %s ORDER BY id LIMIT %s"
            args = [status, limit]  # LIMIT NULL: all of them
        for row in self._stream("digitrec_feedback_rows", sql, args):
            created = row[5].astimezone(UTC).isoformat(timespec="milliseconds")
            yield Feedback(
                row[0], bytes(row[1]), row[2], row[3], row[4], created,
                None if row[6] is None else bytes(row[6]), row[7],
            )  # fmt: skip

    def readings(
        self, status: str | None = None, limit: int | None = None, latest: bool = False
    ) -> Iterator[ReadingFeedback]:
        """As FeedbackStore.readings, streamed from a server-side cursor (bounded memory)."""
        sql = (
            "SELECT id, image, read, text, boxes, changes, model, created, drawing, status"
            " FROM readings WHERE (%s::text IS NULL OR status = %s)"
            + (f" AND {LATEST}" if latest else "")
            + " ORDER BY id LIMIT %s"  # LIMIT NULL: all of them
        )
        for row in self._stream("digitrec_feedback_readings", sql, [status, status, limit]):
            created = row[7].astimezone(UTC).isoformat(timespec="milliseconds")
            yield ReadingFeedback(
                row[0], bytes(row[1]), row[2], row[3], json.loads(row[4]),
                json.loads(row[5]), row[6], created, row[8], row[9],
            )  # fmt: skip

    def _stream(self, name: str, sql: str, args: list[object]) -> Iterator[tuple[Any, ...]]:
        """The rows of a query from a server-side cursor `name`, 64 at a time (bounded
        memory); a database fault is StoreUnavailable."""
        try:
            conn = self._connect(autocommit=False)  # a server-side cursor lives in a transaction
        except self._pg.Error as e:
            raise StoreUnavailable(f"{UNAVAILABLE}: {_reason(e)}") from None
        try:
            with conn, conn.cursor(name=name) as cur:
                cur.itersize = 64
                cur.execute(sql, args)
                yield from cur
        except self._pg.Error as e:
            raise StoreUnavailable(f"{UNAVAILABLE}: {_reason(e)}") from None
        finally:
            conn.close()

    def __iter__(self) -> Iterator[Feedback]:
        return self.rows()

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            self._up = False
            idle, self._idle = self._idle, []
        for conn in idle:
            with contextlib.suppress(Exception):
                conn.close()
