"""Idempotency keys for POST /api/v1/feedback: a correction sent twice is stored once.

The page's service worker (static/sw.js) gives each correction an `Idempotency-Key` header and
sends it again until the server has answered, so a correction queued offline, or one whose
answer was lost, may arrive more than once. The first post with a key claims it and stores
the row; any later post with the key gets the same answer (the row's id) and stores nothing.

Keys live in their own SQLite file beside the corrections (`idempotency.sqlite` in the data
directory), shared by the server's workers: a key is claimed by one INSERT, atomic across
processes. A claim whose row could not be stored is released, so a retry stores it.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from pathlib import Path
from typing import Any

from digitrec.feedback.sqlite import default_data_dir

KEY = re.compile(r"[A-Za-z0-9._:-]{1,128}")
IN_FLIGHT = -1  # claim() for a key whose first post is still being stored


class Keys:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, timeout=10.0, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS feedback_keys (key TEXT PRIMARY KEY, row_id INTEGER)"
        )
        self.lock = threading.Lock()

    def claim(self, key: str) -> int | None:
        """None when this post claimed `key` (store the row, then done() or release()); else
        the row id stored for it, or IN_FLIGHT while its first post is being stored."""
        with self.lock:
            cur = self.db.execute(
                "INSERT OR IGNORE INTO feedback_keys (key, row_id) VALUES (?, NULL)", (key,)
            )
            if cur.rowcount == 1:
                return None
            row = self.db.execute(
                "SELECT row_id FROM feedback_keys WHERE key = ?", (key,)
            ).fetchone()
        return IN_FLIGHT if row is None or row[0] is None else int(row[0])

    def done(self, key: str, row_id: int) -> None:
        with self.lock:
            self.db.execute("UPDATE feedback_keys SET row_id = ? WHERE key = ?", (row_id, key))

    def release(self, key: str) -> None:
        with self.lock:
            self.db.execute("DELETE FROM feedback_keys WHERE key = ? AND row_id IS NULL", (key,))

    def close(self) -> None:
        self.db.close()


def keys_of(app: Any) -> Keys:
    """The app's keys, opened beside its corrections on first use."""
    keys = getattr(app.state, "feedback_keys", None)
    if keys is None:
        data_dir = app.state.settings.data_dir or default_data_dir()
        keys = app.state.feedback_keys = Keys(Path(data_dir) / "idempotency.sqlite")
    return keys


def key_of(headers: Any) -> str | None:
    """The request's Idempotency-Key when it is a usable one (else it is ignored)."""
    key = headers.get("idempotency-key")
    return key if key is not None and KEY.fullmatch(key) else None
