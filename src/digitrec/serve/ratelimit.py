"""The corrections' rate limit, shared by every worker (and every replica on one PostgreSQL).

A token bucket per client: `burst` posts at once, refilled at `per_minute`. One SQL statement
takes a token (an upsert that refills, takes and says whether it could), so that workers and
replicas need no lock of their own:
- one worker: in memory (`MemoryLimit`);
- several workers (`digitrec serve --workers N`): a SQLite file in the workers' directory
  (Settings.workers_dir), WAL mode, not synced: a bucket is worth nothing after a restart;
- `--database postgresql://...`: a table in that database, which every replica shares.

The client is `client_id(...)`: the connection's address, an IPv6 address by its /64 (one
subscriber's network: a single host can hold a whole /64), or, only when the connection comes
from an address in Settings.trusted_proxies, the last X-Forwarded-For address that is not one.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import math
import sqlite3
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)

# Refill, take, and say whether a token was there, in one statement (SQLite >= 3.35, PostgreSQL).
TAKE = """
INSERT INTO {table} (client, tokens, at, ok) VALUES (:client, :burst - 1, :now, 1)
ON CONFLICT (client) DO UPDATE SET
  tokens = CASE WHEN min_tokens >= 1 THEN min_tokens - 1 ELSE min_tokens END,
  ok = CASE WHEN min_tokens >= 1 THEN 1 ELSE 0 END,
  at = :now
RETURNING tokens, ok
"""


def _take(table: str, refill: str) -> str:
    return TAKE.format(table=table).replace("min_tokens", refill)


class Limit(Protocol):
    def take(self, client: str, at: float | None = None) -> float: ...


class MemoryLimit:
    """The buckets in this process (one worker): at most `clients` kept, the oldest dropped."""

    def __init__(self, per_minute: float, burst: int, clients: int = 10_000):
        self.rate, self.burst, self.clients = per_minute / 60, burst, clients
        self.buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, when
        self.lock = threading.Lock()

    def take(self, client: str, at: float | None = None) -> float:
        """0 when a post is allowed (a token taken), else the seconds until one will be."""
        if self.rate <= 0:
            return 0.0
        at = time.monotonic() if at is None else at
        with self.lock:
            tokens, then = self.buckets.pop(client, (float(self.burst), at))
            tokens = min(float(self.burst), tokens + (at - then) * self.rate)
            wait = 0.0 if tokens >= 1 else (1 - tokens) / self.rate
            self.buckets[client] = (tokens - 1 if wait == 0 else tokens, at)
            if len(self.buckets) > self.clients:
                self.buckets.popitem(last=False)
        return wait


class SqliteLimit:
    """The buckets in a SQLite file that the workers of one server share."""

    TABLE = "feedback_rate"

    def __init__(self, path: Path, per_minute: float, burst: int):
        self.rate, self.burst = per_minute / 60, burst
        self.db = sqlite3.connect(path, timeout=5, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute(
            f"CREATE TABLE IF NOT EXISTS {self.TABLE} "
            "(client TEXT PRIMARY KEY, tokens REAL NOT NULL, at REAL NOT NULL, ok INTEGER)"
        )
        refill = f"min(:burst, {self.TABLE}.tokens + (:now - {self.TABLE}.at) * :rate)"
        self.sql = _take(self.TABLE, refill)
        self.lock = threading.Lock()
        self.taken = 0

    def take(self, client: str, at: float | None = None) -> float:
        if self.rate <= 0:
            return 0.0
        now = time.time() if at is None else at
        args = {"client": client, "burst": float(self.burst), "now": now, "rate": self.rate}
        with self.lock:
            tokens, ok = self.db.execute(self.sql, args).fetchone()
            self.taken += 1
            if self.taken % 1000 == 0:  # buckets full again are forgotten
                self.db.execute(
                    f"DELETE FROM {self.TABLE} WHERE at < ?", (now - self.burst / self.rate,)
                )
        return 0.0 if ok else (1 - tokens) / self.rate

    def close(self) -> None:
        self.db.close()


class PostgresLimit:
    """The buckets in the PostgreSQL database the feedback store uses: shared by replicas."""

    TABLE = "digitrec_feedback_rate"

    def __init__(self, url: str, per_minute: float, burst: int):
        import psycopg

        self.rate, self.burst = per_minute / 60, burst
        self.db = psycopg.connect(url, autocommit=True)
        self.db.execute(
            f"CREATE TABLE IF NOT EXISTS {self.TABLE} (client TEXT PRIMARY KEY, "
            "tokens DOUBLE PRECISION NOT NULL, at DOUBLE PRECISION NOT NULL, ok INTEGER)"
        )
        refill = f"LEAST(%(burst)s, {self.TABLE}.tokens + (%(now)s - {self.TABLE}.at) * %(rate)s)"
        sql = _take(self.TABLE, refill)
        for name in ("client", "burst", "now"):
            sql = sql.replace(f":{name}", f"%({name})s")
        self.sql = sql
        self.lock = threading.Lock()

    def take(self, client: str, at: float | None = None) -> float:
        if self.rate <= 0:
            return 0.0
        now = time.time() if at is None else at
        args = {"client": client, "burst": float(self.burst), "now": now, "rate": self.rate}
        with self.lock:
            row = self.db.execute(self.sql, args).fetchone()
        assert row is not None
        tokens, ok = row
        return 0.0 if ok else (1 - tokens) / self.rate

    def close(self) -> None:
        self.db.close()


class Shared:
    """A shared limit that falls back to this worker's memory while its database fails (a
    PostgreSQL restart): corrections are still limited, per worker, and never a 500."""

    def __init__(self, make: Any, per_minute: float, burst: int):
        self.make = make
        self.shared: Any = None
        self.memory = MemoryLimit(per_minute, burst)

    def take(self, client: str, at: float | None = None) -> float:
        try:
            if self.shared is None:
                self.shared = self.make()
            return self.shared.take(client)
        except Exception as e:  # the database: logged, and this worker's buckets meanwhile
            log.warning("shared rate limit unavailable (%s); counting per worker", type(e).__name__)
            with contextlib.suppress(Exception):
                self.shared and self.shared.close()
            self.shared = None
            return self.memory.take(client, at)


def make_limit(settings: Any) -> Limit:
    """The limit these settings call for: PostgreSQL, a file the workers share, or memory."""
    rate, burst = settings.feedback_per_minute, settings.feedback_burst
    if settings.database is not None and rate > 0:
        url = settings.database.get_secret_value()
        return Shared(lambda: PostgresLimit(url, rate, burst), rate, burst)
    if settings.workers_dir is not None and rate > 0:
        path = Path(settings.workers_dir) / "feedback-rate.sqlite"
        return Shared(lambda: SqliteLimit(path, rate, burst), rate, burst)
    return MemoryLimit(rate, burst)


def retry_after(wait: float) -> str:
    return str(max(1, math.ceil(wait)))


def client_id(address: str | None, forwarded: str | None, trusted: list[str]) -> str:
    """Who a request counts as, for the limit: see the module's docstring."""
    if address is None:
        return "unknown"
    if forwarded and trusted and _within(address, trusted):
        for hop in reversed([h.strip() for h in forwarded.split(",")]):
            if hop and not _within(hop, trusted):
                address = hop
                break
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def _within(address: str, networks: list[str]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
        return any(ip in ipaddress.ip_network(n, strict=False) for n in networks)
    except ValueError:
        return False
