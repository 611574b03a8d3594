"""The corrections' rate limit, shared by the workers of a server (a SQLite file) and by the
replicas on one PostgreSQL; who a client is (its address, an IPv6 /64, a trusted proxy's
X-Forwarded-For)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from digitrec.serve.ratelimit import PostgresLimit, Shared, SqliteLimit, client_id
from tests.helpers.server import SEVEN, Server, abuse


def test_two_workers_share_one_bucket_per_client(tmp_path: Path) -> None:
    """Each worker opens the file itself: a client spread over both gets the burst once."""
    a = SqliteLimit(tmp_path / "rate.sqlite", per_minute=60, burst=5)
    b = SqliteLimit(tmp_path / "rate.sqlite", per_minute=60, burst=5)
    now = 1000.0
    taken = [(a if i % 2 else b).take("10.0.0.1", now) for i in range(8)]
    assert taken[:5] == [0.0] * 5 and all(w > 0 for w in taken[5:])
    assert a.take("10.0.0.2", now) == 0.0  # another client: its own bucket
    assert b.take("10.0.0.1", now + 1.0) == 0.0  # refilled at one a second
    assert a.take("10.0.0.1", now + 1.0) > 0


def test_a_client_is_its_address_its_ipv6_64_or_a_trusted_proxys_forwarded_address() -> None:
    assert client_id("127.0.1.7", None, []) == "127.0.1.7"
    assert client_id("2001:db8::1", None, []) == client_id("2001:db8::ffff:2", None, [])
    assert client_id("2001:db8::1", None, []) != client_id("2001:db8:0:1::1", None, [])
    assert client_id("::ffff:10.1.2.3", None, []) == "10.1.2.3"
    # X-Forwarded-For: believed from a trusted proxy only, its last untrusted hop
    assert client_id("10.0.0.5", "6.6.6.6", []) == "10.0.0.5"
    assert client_id("10.0.0.5", "6.6.6.6, 10.0.0.9", ["10.0.0.0/8"]) == "6.6.6.6"
    assert client_id("192.0.2.1", "6.6.6.6", ["10.0.0.0/8"]) == "192.0.2.1"


def test_a_failing_shared_limit_falls_back_to_the_worker_and_never_fails_a_request() -> None:
    def broken() -> Any:
        raise OSError("database down")

    limit = Shared(broken, per_minute=60, burst=2)
    assert [limit.take("a") for _ in range(2)] == [0.0, 0.0]
    assert limit.take("a") > 0


def correction() -> bytes:
    image = "data:image/png;base64," + base64.b64encode(SEVEN).decode()
    body = json.dumps({"image": image, "label": 7}).encode()
    return abuse.http_request("/api/v1/feedback", body, "application/json")


def test_a_server_with_a_workers_directory_limits_through_the_shared_file(
    tmp_path: Path,
) -> None:
    (tmp_path / "workers").mkdir()
    settings = {"feedback_per_minute": 1, "feedback_burst": 3, "workers_dir": tmp_path / "workers"}
    with Server(tmp_path, **settings) as server:  # type: ignore[arg-type]
        statuses = []
        for _ in range(5):
            with server.connect() as sock:
                status, headers, _ = server.ask(sock, correction())
                statuses.append(status)
        assert statuses == [201, 201, 201, 429, 429] and int(headers["retry-after"]) >= 1
    assert (tmp_path / "workers" / "feedback-rate.sqlite").exists()


def test_replicas_on_one_postgresql_share_the_limit(postgres: Any) -> None:
    url = postgres.database("ratelimit")
    a = PostgresLimit(url, per_minute=60, burst=4)
    b = PostgresLimit(url, per_minute=60, burst=4)
    try:
        taken = [(a if i % 2 else b).take("203.0.113.9", 500.0) for i in range(6)]
        assert taken[:4] == [0.0] * 4 and all(w > 0 for w in taken[4:])
    finally:
        a.close()
        b.close()
