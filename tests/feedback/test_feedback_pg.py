"""Feedback on PostgreSQL: the store, its schema, the CLI, and two `digitrec serve --database`
replicas under concurrent corrections, through a database restart (a private server per
session: the `postgres` fixture, tests/pg.py; the load: benchmarks/feedback_pg.py)."""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image, ImageDraw

from digitrec.errors import DigitrecError
from digitrec.feedback import FeedbackStore, StoreFull, StoreUnavailable, export_csv
from tests.helpers import benchmark

load = benchmark("feedback_pg")
SEVEN = [(70, 60), (210, 60), (120, 230)]
ONE = [(140, 40), (140, 240)]


def drawn(path: list[tuple[int, int]]) -> Image.Image:
    image = Image.new("RGBA", (280, 280), (0, 0, 0, 0))
    ImageDraw.Draw(image).line(path, fill=(0, 0, 0, 255), width=22)
    return image


def digitrec(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "digitrec", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def test_rows_review_and_export_match_the_sqlite_store(postgres: Any, tmp_path: Path) -> None:
    from digitrec.feedback.postgres import PostgresStore

    url = postgres.database("review")
    pg, lite = PostgresStore(url), FeedbackStore(tmp_path / "lite")
    for store in (pg, lite):
        for path, label in [(ONE, 1), (SEVEN, 7), (ONE, 4), (SEVEN, 7)]:
            store.add(drawn(path), label=label, predicted=1, model="cnn")
        with pytest.raises(DigitrecError, match="ids 9"):
            store.decide(accept=[1, 9])
        assert store.counts() == {"pending": 4, "accepted": 0, "rejected": 0}  # all or none
        store.decide(accept=[1, 2], reject=[3])
    assert pg.counts() == {"pending": 1, "accepted": 2, "rejected": 1}
    rows = list(pg.rows())
    assert [(r.id, r.label, r.predicted, r.model, r.status) for r in rows] == [
        (r.id, r.label, r.predicted, r.model, r.status) for r in lite.rows()
    ]
    assert [r.image for r in rows] == [r.image for r in lite.rows()]  # the same bytes kept
    assert rows[0].created.endswith("+00:00")  # UTC, as in SQLite
    assert [r.id for r in pg.rows("pending", limit=5)] == [4]
    with pytest.raises(StoreFull, match="cap") as full:
        pg.add(drawn(SEVEN), label=7, predicted=1, model="cnn", max_bytes=16 * 1024)
    assert full.value.status == 507 and pg.count() == 4
    pg.close()

    # The CLI reads either store: the URL from --database or from DIGITREC_DATABASE.
    done = digitrec("feedback", "export", "--database", url, "-o", str(tmp_path / "pg.csv"))
    assert done.returncode == 0 and "2 accepted" in done.stdout, done.stderr
    assert export_csv(tmp_path / "lite", tmp_path / "lite.csv") == 2
    assert list(csv.reader((tmp_path / "pg.csv").open())) == list(
        csv.reader((tmp_path / "lite.csv").open())
    )
    sheet = tmp_path / "pending.png"
    done = digitrec("feedback", "review", "--reject", "4", "--sheet", str(sheet),
                    DIGITREC_DATABASE=url)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "rejected 1" in done.stdout and "0 pending, 2 accepted, 2 rejected" in done.stdout


def _open_at_once(url: str, barrier: Any, results: Any) -> None:
    from digitrec.feedback.postgres import PostgresStore

    barrier.wait()
    store = PostgresStore(url, reconnect=False)
    results.put(store.error or store.count())
    store.close()


def test_corrected_numbers_match_the_sqlite_store_and_a_v1_database_gains_them(
    postgres: Any, tmp_path: Path
) -> None:
    from digitrec.feedback.postgres import PostgresStore

    url = postgres.database("readings")
    number = Image.new("RGBA", (560, 280), (0, 0, 0, 0))
    ImageDraw.Draw(number).line([(100, 40), (100, 240)], fill=(0, 0, 0, 255), width=20)
    edits = [{"kind": "insert", "index": 1, "to": "7"}, {"kind": "change", "index": 0, "to": "4"}]
    stores = [PostgresStore(url, reconnect=False), FeedbackStore(tmp_path)]
    for store in stores:
        store.add(drawn(SEVEN), 7, 1, "cnn")  # a digit row beside it
        assert store.add_reading(number, "1", "47", [[90, 40, 20, 200]], edits, "cnn", "d1") == 1
    pg, lite = ([(r.read, r.text, r.boxes, r.changes, r.drawing, r.status)
                 for r in store.readings()] for store in stores)  # fmt: skip
    assert pg == lite == [("1", "47", [[90, 40, 20, 200]],
                           [{"kind": "insert", "index": 1, "to": "7"},
                            {"kind": "change", "index": 0, "from": "1", "to": "4"}],
                           "d1", "pending")]  # fmt: skip
    stores[0].close()

    import psycopg

    with psycopg.connect(url) as conn:  # back to version 1: no readings table
        conn.execute("DROP TABLE readings")
        conn.execute("UPDATE feedback_schema SET version = 1")
    store = PostgresStore(url, reconnect=False)
    assert store.writable() and store.count() == 1
    assert list(store.readings()) == []
    store.add_reading(number, "1", "7", [[90, 40, 20, 200]], [{"kind": "retype", "to": "7"}], "cnn")
    assert [r.text for r in store.readings()] == ["7"]
    store.close()


def test_corrected_numbers_are_reviewed_and_exported_as_from_the_sqlite_store(
    postgres: Any, tmp_path: Path
) -> None:
    from digitrec.feedback import export_readings
    from digitrec.feedback.postgres import PostgresStore

    url = postgres.database("review_readings")
    number = Image.new("RGBA", (560, 280), (0, 0, 0, 0))
    ImageDraw.Draw(number).line([(100, 40), (100, 240)], fill=(0, 0, 0, 255), width=20)
    stores = [PostgresStore(url, reconnect=False), FeedbackStore(tmp_path / "lite")]
    for store in stores:
        for text, drawing in [("7", "d-1"), ("4", "d-1"), ("17", None), ("71", "d-2")]:
            store.add_reading(number, "1", text, [[90, 40, 20, 200]],
                              [{"kind": "retype", "to": text}], "cnn", drawing)  # fmt: skip
        assert store.counts(readings=True) == {"pending": 3, "accepted": 0, "rejected": 0}
        assert [r.id for r in store.readings("pending", limit=2, latest=True)] == [2, 3]
        with pytest.raises(DigitrecError, match="no corrected numbers with ids 9"):
            store.decide(accept=[1, 9], readings=True)
        store.decide(accept=[1, 2, 3], reject=[4], readings=True)
        assert store.counts(readings=True) == {"pending": 0, "accepted": 2, "rejected": 1}
        assert store.counts() == {"pending": 0, "accepted": 0, "rejected": 0}
    stores[0].close()

    done = digitrec("feedback", "export", "--readings", "--database", url,
                    "-o", str(tmp_path / "pg.jsonl"))  # fmt: skip
    assert done.returncode == 0 and "2 accepted corrected numbers" in done.stdout, done.stderr
    assert export_readings(tmp_path / "lite", tmp_path / "lite.jsonl") == 2

    def rows(path: Path) -> list[dict[str, Any]]:
        return [{k: v for k, v in json.loads(line).items() if k != "created"}
                for line in path.read_text().splitlines()]  # fmt: skip

    assert rows(tmp_path / "pg.jsonl") == rows(tmp_path / "lite.jsonl")
    assert [r["text"] for r in rows(tmp_path / "pg.jsonl")] == ["4", "17"]


def test_servers_starting_together_create_the_schema_once(postgres: Any) -> None:
    url = postgres.database("together")
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_open_at_once, args=(url, barrier, results)) for _ in range(4)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert outcomes == [0, 0, 0, 0]
    import psycopg

    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT version FROM feedback_schema").fetchall() == [(2,)]
        # A schema newer than this code knows is left alone: the store is unavailable.
        conn.execute("UPDATE feedback_schema SET version = 3")
    from digitrec.feedback.postgres import PostgresStore

    store = PostgresStore(url, reconnect=False)
    assert not store.writable() and store.error and "newer" in store.error
    with pytest.raises(StoreUnavailable):
        store.add(drawn(SEVEN), 7, 1, "cnn")
    with pytest.raises(DigitrecError, match="schema version 3"):
        export_csv(None, Path(os.devnull), url)


def test_sqlite_stays_the_default_without_psycopg(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = (
        "import sys, digitrec.cli, digitrec.serve.app, digitrec.feedback as f;"
        f"s = f.open_store({str(tmp_path)!r}); s.count(); s.close();"
        "assert 'psycopg' not in sys.modules, 'psycopg imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if not installed
    from digitrec.feedback import open_store

    with pytest.raises(DigitrecError, match=r"pip install 'digitrec\[postgres\]'"):
        open_store(database="postgresql://u@localhost/db")


def test_a_bad_url_or_an_unreachable_database_is_one_line(tmp_path: Path) -> None:
    done = digitrec("serve", "--database", "mysql://root:pw@db/x", "--data-dir", str(tmp_path))
    assert done.returncode == 1
    assert one_line(done.stderr).startswith("error: --database: not a PostgreSQL URL")
    done = digitrec("serve", "--database", "postgresql://u@h:port/x")
    assert done.returncode == 1 and "port" in one_line(done.stderr)

    closed = load.free_port()
    url = f"postgresql://digitrec:hunter2@127.0.0.1:{closed}/feedback"
    done = digitrec("feedback", "export", "--database", url, "-o", str(tmp_path / "x.csv"))
    line = one_line(done.stderr)
    assert done.returncode == 1 and not (tmp_path / "x.csv").exists()
    assert f"postgresql://digitrec@127.0.0.1:{closed}/feedback" in line and "refused" in line
    assert "hunter2" not in done.stdout + done.stderr


def test_serve_starts_without_its_database_and_answers_feedback_503(tmp_path: Path) -> None:
    closed = load.free_port()
    url = f"postgresql://digitrec:hunter2@127.0.0.1:{closed}/feedback"
    port = load.free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "digitrec", "serve", "--port", str(port), "--workers", "1",
         "--model", "fast", "--data-dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "DIGITREC_DATABASE": url},  # the setting from the environment
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None and time.monotonic() < deadline, "did not start"
            try:
                httpx.get(base + "/healthz", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        image = load.upload(7, 1)
        r = httpx.post(base + "/api/v1/predict", json={"image": image}, timeout=10)
        assert r.status_code == 200 and r.json()["digit"] == 7
        r = httpx.post(base + "/api/v1/feedback", json={"image": image, "label": 7}, timeout=10)
        assert r.status_code == 503 and "unavailable" in r.json()["error"]
        assert "hunter2" not in r.text and str(closed) not in r.text  # nothing of the URL
        ready = httpx.get(base + "/readyz", timeout=10)  # predictions go on: degraded, 200
        assert ready.status_code == 200 and ready.json()["status"] == "degraded"
        assert ready.json()["store"] == "the feedback database is unreachable"
        assert ready.json()["store_writable"] is False and "hunter2" not in ready.text
    finally:
        server.terminate()
        _, err = server.communicate(timeout=30)
    assert "Traceback" not in err and "hunter2" not in err
    lines = [line for line in err.splitlines() if "feedback database" in line]
    assert len(lines) == 1 and f"127.0.0.1:{closed}/feedback unreachable" in lines[0], err


def test_two_replicas_store_every_acknowledged_correction_once(postgres: Any) -> None:
    url = postgres.database("replicas")
    with load.replicas(url) as running:
        run = load.Load(running.urls, clients=16).run(320, timeout=120)
        assert "Traceback" not in running.output()
    tally = load.tally(run, url)
    assert tally.statuses == {201: tally.sent}
    assert tally.acknowledged >= 320 and tally.stored == tally.acknowledged
    assert (tally.duplicates, tally.lost, tally.stored_unacknowledged) == (0, 0, 0)
    ids = [a.body["id"] for a in run.answers if a.body]
    assert len(set(ids)) == len(ids)  # each 201 with its own row's id


def test_a_database_restart_mid_run_loses_nothing_acknowledged(postgres: Any) -> None:
    url = postgres.database("restart")
    seen: dict[str, Any] = {"down": [], "after": None}

    def outage(run: Any) -> None:
        run.wait_acked(80, timeout=60)
        postgres.stop()
        try:
            stopped = time.monotonic()
            while time.monotonic() - stopped < 3:  # while it is down, on both replicas
                for k, base in enumerate(run.urls):
                    image = load.upload(3, 0xFFFF0000 + len(seen["down"]))
                    predicted = httpx.post(base + "/api/v1/predict", json={"image": image})
                    feedback = httpx.post(
                        base + "/api/v1/feedback", json={"image": image, "label": 3}
                    )
                    ready = httpx.get(base + "/readyz")
                    seen["down"].append((k, predicted, feedback, ready))
                time.sleep(0.3)
        finally:
            postgres.start()
        restarted = time.monotonic()
        for base in run.urls:  # back by itself, within a few seconds
            while httpx.get(base + "/readyz").json()["status"] != "ready":
                assert time.monotonic() - restarted < 20, "did not reconnect"
                time.sleep(0.1)
        seen["after"] = restarted

    with load.replicas(url) as running:
        run = load.Load(running.urls, clients=16).run(300, outage, timeout=120)
        assert "Traceback" not in running.output()

    assert {k for k, *_ in seen["down"]} == {0, 1}
    for _, predicted, feedback, ready in seen["down"]:
        assert predicted.status_code == 200 and predicted.json()["digit"] == 3
        assert feedback.status_code == 503, feedback.text
        assert feedback.json()["error"].startswith("the feedback store is unavailable")
        assert ready.status_code == 200 and ready.json()["status"] == "degraded"
    statuses = {a.status for a in run.answers}
    assert statuses == {201, 503}  # nothing else: no 500, no dropped connection
    for a in run.answers:
        assert a.status == 201 or sorted(a.body or {}) == ["error"]
    after = [a for a in run.answers if a.at > seen["after"]]
    assert sum(a.status == 201 for a in after) >= 50  # feedback works again

    tally = load.tally(run, url)
    assert (tally.duplicates, tally.lost) == (0, 0)
    # Stored: what was acknowledged, and at most those the 503 said may have been stored
    # (their connection died during COMMIT); nothing refused before writing.
    assert tally.stored == tally.acknowledged + tally.maybe_stored
    assert tally.stored_unacknowledged == tally.maybe_stored <= tally.maybe
