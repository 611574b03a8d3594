"""The tables of both feedback stores, and how an older store is brought up to date.

SQLite (feedback.sqlite): created or migrated on open, its version in `PRAGMA user_version`.
PostgreSQL (feedback.postgres): created or migrated when a store first connects, in one
transaction under an advisory lock, so servers starting together do it once; `feedback_schema`
holds its version. A database with a newer version than this code knows is refused
(unavailable), never written. Both stores keep the same rows at the same version.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import TYPE_CHECKING, Any

from digitrec.feedback.rows import StoreUnavailable

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2  # 1: review (seen, status, reviewed); 2: the readings table

# ---------------------------------------------------------------- SQLite

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


def migrate_sqlite(db: sqlite3.Connection) -> None:
    """Create the tables, or bring a store of an earlier version to SCHEMA_VERSION, in the
    caller's transaction (version 0: its rows become pending)."""
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


# ---------------------------------------------------------------- PostgreSQL

PG_LOCK_ID = 0x6469_6769_7472_6563  # "digitrec": the advisory lock taken to create or migrate
# PG_MIGRATIONS[v] takes the schema from version v to v + 1.
PG_MIGRATIONS: list[list[str]] = [
    [  # 1: the SQLite store's schema version 1
        """
        CREATE TABLE feedback (
            id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            image     BYTEA       NOT NULL,                               -- PNG, <= 256 px
            label     SMALLINT    NOT NULL CHECK (label BETWEEN 0 AND 9),
            predicted SMALLINT    CHECK (predicted BETWEEN 0 AND 9),      -- NULL: none
            model     TEXT        NOT NULL,
            created   TIMESTAMPTZ NOT NULL DEFAULT now(),
            seen      BYTEA,                                              -- PNG 28x28
            status    TEXT        NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'accepted', 'rejected')),
            reviewed  TIMESTAMPTZ
        )
        """,
        "CREATE INDEX feedback_status ON feedback (status, id)",
    ],
    [  # 2: corrected numbers, as the SQLite store's `readings`
        """
        CREATE TABLE readings (
            id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            image     BYTEA       NOT NULL,                               -- PNG, <= 560 px
            read      TEXT        NOT NULL,
            text      TEXT        NOT NULL,
            boxes     TEXT        NOT NULL,                               -- JSON
            changes   TEXT        NOT NULL,                               -- JSON
            drawing   TEXT,
            model     TEXT        NOT NULL,
            created   TIMESTAMPTZ NOT NULL DEFAULT now(),
            status    TEXT        NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'accepted', 'rejected')),
            reviewed  TIMESTAMPTZ
        )
        """,
    ],
]
assert len(PG_MIGRATIONS) == SCHEMA_VERSION


def migrate_postgres(conn: psycopg.Connection[Any]) -> None:
    """Create the schema, or bring it to SCHEMA_VERSION, once whoever else is starting."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (PG_LOCK_ID,))
        conn.execute("CREATE TABLE IF NOT EXISTS feedback_schema (version INTEGER NOT NULL)")
        row = conn.execute("SELECT version FROM feedback_schema").fetchone()
        version = 0 if row is None else int(row[0])
        if version > SCHEMA_VERSION:
            raise StoreUnavailable(
                f"the feedback database has schema version {version}, newer than this "
                f"digitrec's {SCHEMA_VERSION}: upgrade digitrec"
            )
        for statements in PG_MIGRATIONS[version:]:
            for statement in statements:
                conn.execute(statement)
        if row is None:
            conn.execute("INSERT INTO feedback_schema (version) VALUES (%s)", (SCHEMA_VERSION,))
        elif version < SCHEMA_VERSION:
            conn.execute("UPDATE feedback_schema SET version = %s", (SCHEMA_VERSION,))
            log.info("feedback database migrated from version %d to %d", version, SCHEMA_VERSION)
