"""The feedback store a command or the server opens: SQLite (feedback.sqlite) or, given a
database URL, PostgreSQL (feedback.postgres, psycopg imported only then)."""

from __future__ import annotations

from pathlib import Path

from digitrec.errors import DigitrecError
from digitrec.feedback.rows import Store
from digitrec.feedback.sqlite import DB_NAME, FeedbackStore, default_data_dir


def open_store(data_dir: Path | None = None, database: str | None = None) -> Store:
    """The server's store: PostgreSQL when a database URL is given (psycopg imported only
    then), else the SQLite file in `data_dir`."""
    if database:
        from digitrec.feedback.postgres import PostgresStore

        return PostgresStore(database)
    return FeedbackStore(data_dir)


def open_existing(data_dir: Path | None, database: str | None = None) -> Store | None:
    """The store the CLI reads: the database when a URL is given (connected now, or a
    DigitrecError naming it), else the SQLite file in `data_dir` (None when there is none)."""
    if database:
        return open_database(database)
    directory = Path(data_dir) if data_dir is not None else default_data_dir()
    if not (directory / DB_NAME).exists():
        return None
    store = FeedbackStore(directory)
    store._db()  # a store that cannot be opened is one line naming it
    return store


def open_database(url: str) -> Store:
    """A store for the CLI (`feedback review`/`export`): connected now, or a DigitrecError
    naming the database and what is wrong."""
    from digitrec.feedback.postgres import PostgresStore

    store = PostgresStore(url, reconnect=False)
    if not store.writable():
        raise DigitrecError(f"feedback database {store.where}: {store.error}")
    return store
