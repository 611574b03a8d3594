"""The feedback store (SQLite, WAL), its review and export, POST /api/v1/feedback's faults, and
corrected numbers (POST /api/v1/feedback/reading)."""

from __future__ import annotations

import base64
import csv
import io
import json
import multiprocessing
import os
import sqlite3
import stat
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import platformdirs
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw

from digitrec import data
from digitrec.errors import DigitrecError, ImageError
from digitrec.feedback import (
    DB_NAME,
    IMAGE_SIDE,
    ROW_MAX_BYTES,
    FeedbackStore,
    StoreFull,
    StoreUnavailable,
    accepted_dataset,
    contact_sheet,
    default_data_dir,
    export_csv,
    parse_ids,
)
from digitrec.predictor import Prediction
from digitrec.serve import Settings, create_app
from digitrec.serve.deps import get_predictor
from digitrec.serve.feedback_routes import RateLimit
from digitrec.vision import preprocess
from tests.helpers.app import drawn, png

ONE = [(140, 40), (140, 240)]
SEVEN = [(70, 60), (210, 60), (120, 230)]
BLANK = Image.new("RGBA", (50, 50))


def test_default_data_dir_is_the_user_data_dir() -> None:
    assert default_data_dir() == Path(platformdirs.user_data_dir("digitrec"))


def test_rows_persist_pending_in_wal_mode_with_what_the_model_saw(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "new" / "dir")  # created if missing
    first = store.add(drawn(ONE), label=1, predicted=7, model="cnn")
    second = store.add(drawn(SEVEN, "LA"), label=7, predicted=None, model="cnn")
    assert (first, second) == (1, 2)
    store.close()

    reopened = FeedbackStore(tmp_path / "new" / "dir")
    rows = list(reopened)
    assert [(r.label, r.predicted, r.model, r.status) for r in rows] == [
        (1, 7, "cnn", "pending"),
        (7, None, "cnn", "pending"),
    ]
    assert reopened.counts() == {"pending": 2, "accepted": 0, "rejected": 0}
    kept = Image.open(io.BytesIO(rows[0].image))
    assert kept.format == "PNG" and kept.size == (256, 256) and kept.mode == "LA"
    assert rows[0].seen is not None
    seen = np.asarray(Image.open(io.BytesIO(rows[0].seen)))
    assert seen.shape == (28, 28) and seen.dtype == np.uint8
    expected = np.rint(preprocess.preprocess(drawn(ONE)) * 255)
    assert np.abs(seen - expected).max() <= 1
    assert rows[0].created.endswith("+00:00")  # UTC
    with sqlite3.connect(tmp_path / "new" / "dir" / DB_NAME) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_store_and_directory_are_private(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "data")
    store.add(drawn(ONE), label=1, predicted=7, model="cnn")
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700
    for name in (DB_NAME, DB_NAME + "-wal", DB_NAME + "-shm"):
        assert stat.S_IMODE((tmp_path / "data" / name).stat().st_mode) == 0o600, name


def test_a_row_is_bounded_whatever_was_uploaded(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path)
    rng = np.random.default_rng(0)
    grain = rng.integers(150, 256, (1500, 2000, 3), dtype=np.uint8)  # paper: incompressible
    photo = Image.fromarray(grain)
    ImageDraw.Draw(photo).line([(700, 200), (1300, 200), (900, 1300)], fill=(0, 0, 0), width=90)
    paper = Image.new("L", (280, 280), 255)
    ImageDraw.Draw(paper).line(SEVEN, fill=0, width=22)
    deep = Image.fromarray(np.asarray(paper, np.uint16) * 257)  # 16-bit greyscale
    for image in (photo, deep):
        store.add(image, label=7, predicted=1, model="cnn")
    rows = list(store)
    sizes = [len(r.image) + len(r.seen or b"") for r in rows]
    assert max(sizes) <= ROW_MAX_BYTES
    assert max(Image.open(io.BytesIO(rows[0].image)).size) == IMAGE_SIDE
    assert Image.open(io.BytesIO(rows[1].image)).mode == "L"  # 16-bit kept as 8-bit grey


def test_an_image_without_ink_is_refused(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path)
    with pytest.raises(ImageError, match="no ink") as refused:
        store.add(BLANK, label=3, predicted=None, model="cnn")
    assert refused.value.status == 422 and store.count() == 0


def test_label_outside_0_9_is_refused(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path)
    with pytest.raises(sqlite3.IntegrityError):
        store.add(drawn(ONE), label=10, predicted=1, model="cnn")
    assert store.count() == 0


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path)
    image = drawn(ONE)

    def write(n: int) -> None:
        for i in range(n):
            store.add(image, label=i % 10, predicted=1, model="cnn")

    threads = [threading.Thread(target=write, args=(20,)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.count() == 120
    # A second store on the same file (another server worker) sees them all.
    assert FeedbackStore(tmp_path).count() == 120


def test_the_cap_refuses_rows_past_it(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path)
    cap = 64 * 1024
    stored = 0
    with pytest.raises(StoreFull, match="full") as full:
        for _ in range(200):
            store.add(drawn(SEVEN), label=7, predicted=1, model="cnn", max_bytes=cap)
            stored += 1
    assert full.value.status == 507 and 0 < stored == store.count()
    assert (tmp_path / DB_NAME).stat().st_size <= cap


def test_a_store_that_cannot_be_created_does_not_raise_until_written(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    store = FeedbackStore(tmp_path / "a-file" / "data")  # mkdir fails: ENOTDIR
    assert not store.writable() and store.error and "a-file" in store.error
    with pytest.raises(StoreUnavailable) as refused:
        store.add(drawn(ONE), label=1, predicted=7, model="cnn")
    assert refused.value.status == 503 and "a-file" not in str(refused.value)  # no path


def test_a_locked_store_is_unavailable_not_an_error(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path, timeout=0.2)
    with sqlite3.connect(tmp_path / DB_NAME, isolation_level=None) as other:
        other.execute("BEGIN EXCLUSIVE")
        with pytest.raises(StoreUnavailable, match="busy"):
            store.add(drawn(ONE), label=1, predicted=7, model="cnn")
        other.execute("ROLLBACK")
    assert store.add(drawn(ONE), label=1, predicted=7, model="cnn") == 1  # and recovers


def filled(tmp_path: Path) -> FeedbackStore:
    store = FeedbackStore(tmp_path)
    for path, label in [(ONE, 1), (SEVEN, 7), (ONE, 4), (SEVEN, 7)]:
        store.add(drawn(path), label=label, predicted=1, model="cnn")
    return store


def test_review_decides_and_only_accepted_rows_are_exported(tmp_path: Path) -> None:
    store = filled(tmp_path)
    with pytest.raises(DigitrecError, match="ids 9"):
        store.decide(accept=[1, 9])
    assert store.counts()["pending"] == 4  # all or nothing
    store.decide(accept=parse_ids("1-2"), reject=[3])
    assert store.counts() == {"pending": 1, "accepted": 2, "rejected": 1}

    out = tmp_path / "out" / "feedback.csv"
    assert export_csv(tmp_path, out) == 2
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["label"] + [f"pixel{i}" for i in range(784)]
    assert [r[0] for r in rows[1:]] == ["1", "7"]
    pixels = np.array([[int(v) for v in r[1:]] for r in rows[1:]])
    expected = np.rint(preprocess.preprocess(drawn(ONE)) * 255).ravel()
    assert np.abs(pixels[0] - expected).max() <= 1
    assert not list(out.parent.glob(".*tmp"))  # written atomically, nothing left behind
    # The same rows as training data: the export, or the store itself.
    from_csv, from_store = data.load(out), data.load(tmp_path / DB_NAME)
    assert np.array_equal(from_csv.images, from_store.images)
    assert from_store.labels is not None and from_store.labels.tolist() == [1, 7]


def test_a_store_without_accepted_rows_is_no_training_data(tmp_path: Path) -> None:
    filled(tmp_path)
    with pytest.raises(DigitrecError, match="no accepted feedback rows"):
        accepted_dataset(tmp_path / DB_NAME)


def test_contact_sheet_shows_every_pending_row(tmp_path: Path) -> None:
    store = filled(tmp_path)
    out = tmp_path / "sheet.png"
    assert contact_sheet(store.rows("pending", limit=3), out, columns=2) == 3
    sheet = Image.open(out)
    assert sheet.size == (2 * 220, 2 * 136)
    cells = np.asarray(sheet.convert("L"))
    assert (cells[:136, :220] < 128).sum() > 500  # ink of the digit and its caption
    assert (cells[136:, 220:] == 255).all()  # the fourth cell is empty


def test_parse_ids() -> None:
    assert parse_ids("1,2, 5,7-9") == [1, 2, 5, 7, 8, 9]
    with pytest.raises(DigitrecError, match="'x'"):
        parse_ids("1,x")


def test_export_of_an_empty_store_is_just_the_header(tmp_path: Path) -> None:
    out = tmp_path / "empty.csv"
    assert export_csv(tmp_path / "never-served", out) == 0
    assert out.read_text().splitlines()[0].startswith("label,pixel0,")
    assert len(out.read_text().splitlines()) == 1


V0_SCHEMA = """
CREATE TABLE feedback (
    id INTEGER PRIMARY KEY, image BLOB NOT NULL,
    label INTEGER NOT NULL CHECK (label BETWEEN 0 AND 9),
    predicted INTEGER CHECK (predicted BETWEEN 0 AND 9),
    model TEXT NOT NULL, created TEXT NOT NULL
)
"""


def test_a_store_from_before_review_is_migrated_to_pending(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / DB_NAME) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(V0_SCHEMA)
        for image, label in [(drawn(SEVEN), 7), (BLANK, 3)]:  # v0 kept blank uploads too
            db.execute(
                "INSERT INTO feedback (image, label, predicted, model, created) VALUES (?,?,?,?,?)",
                (png(image), label, 1, "old", "2024-01-01T00:00:00.000+00:00"),
            )
    db.close()
    store = FeedbackStore(tmp_path)
    assert store.counts() == {"pending": 2, "accepted": 0, "rejected": 0}
    assert store.add(drawn(ONE), label=1, predicted=7, model="new") == 3
    store.decide(accept=[1, 2, 3])
    out = tmp_path / "all.csv"
    assert export_csv(tmp_path, out) == 2  # the blank v0 row has nothing to learn from
    labels = [line.split(",")[0] for line in out.read_text().splitlines()[1:]]
    assert labels == ["7", "1"]
    with sqlite3.connect(tmp_path / DB_NAME) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (2,)


def _open_at_once(directory: Path, barrier: Any, results: Any) -> None:
    barrier.wait()  # both processes open the new store at the same moment
    try:
        store = FeedbackStore(directory)
        store.count()
        store.close()
        results.put("ok")
    except Exception as e:  # what a worker's startup would have died of
        results.put(f"{type(e).__name__}: {e}")


def test_workers_starting_together_on_a_new_data_dir_both_open_the_store(tmp_path: Path) -> None:
    """`serve --workers 2` on a new data directory: both workers create the store at once.
    Switching to WAL takes a lock SQLite does not wait for; before the retry, a third of such
    openings failed ("database is locked"), and uvicorn then stopped every worker."""
    ctx = multiprocessing.get_context("fork")
    outcomes = []
    for i in range(12):
        barrier, results = ctx.Barrier(2), ctx.Queue()
        procs = [
            ctx.Process(target=_open_at_once, args=(tmp_path / f"d{i}", barrier, results))
            for _ in range(2)
        ]
        for p in procs:
            p.start()
        outcomes += [results.get(timeout=30) for _ in procs]
        for p in procs:
            p.join(timeout=30)
    assert outcomes == ["ok"] * 24
    store = FeedbackStore(tmp_path / "d0")
    store.add(drawn(SEVEN), 7, 1, "best")
    assert store.count() == 1 and sqlite3.connect(tmp_path / "d0" / DB_NAME).execute(
        "PRAGMA journal_mode"
    ).fetchone() == ("wal",)


# ---------------------------------------------------------------- POST /api/v1/feedback


def test_rate_limit_refills_at_its_rate() -> None:
    limit = RateLimit(per_minute=60, burst=3)
    assert [limit.take("a", at=100.0) for _ in range(3)] == [0, 0, 0]
    assert limit.take("a", at=100.0) == pytest.approx(1.0)  # one a second
    assert limit.take("b", at=100.0) == 0  # another client has its own
    assert limit.take("a", at=101.5) == 0
    assert limit.take("a", at=101.5) == pytest.approx(0.5)


class FakePredictor:
    """Says 7 to anything with ink, with the real preprocessing."""

    name = "fake-net"
    card = {"name": "fake-net"}

    def predict_each(self, sources: list[bytes]) -> list[Prediction | Exception]:
        answers: list[Prediction | Exception] = []
        for source in sources:
            image28 = preprocess.preprocess(source)
            p = [0.01] * 10
            p[7] = 0.91
            answers.append(Prediction(7, 0.91, p, image28, None, [(7, 0.91)]))
        return answers


def post(client: TestClient, image: Image.Image, label: int = 7) -> Any:
    url = "data:image/png;base64," + base64.b64encode(png(image)).decode()
    return client.post("/api/v1/feedback", json={"image": url, "label": label, "predicted": 1})


def predict_ok(client: TestClient) -> bool:
    url = "data:image/png;base64," + base64.b64encode(png(drawn(SEVEN))).decode()
    r = client.post("/api/v1/predict", json={"image": url})
    return r.status_code == 200 and r.json()["digit"] == 7


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    clients = []

    def start(data_dir: Path | None = None, **settings: Any) -> TestClient:
        app = create_app(Settings(data_dir=data_dir or tmp_path, **settings))
        app.dependency_overrides[get_predictor] = FakePredictor
        client = TestClient(app, raise_server_exceptions=False).__enter__()
        clients.append(client)
        return client

    yield start
    for client in clients:
        client.__exit__(None, None, None)


def test_feedback_is_stored_pending_and_blank_images_refused(serve: Any, tmp_path: Path) -> None:
    client = serve()
    r = post(client, drawn(SEVEN), label=7)
    assert r.status_code == 201 and r.json() == {
        "id": 1,
        "label": 7,
        "predicted": 1,
        "model": "fake-net",
    }
    blank = post(client, BLANK, label=3)
    assert blank.status_code == 422 and "no ink" in blank.json()["error"]
    assert FeedbackStore(tmp_path).counts() == {"pending": 1, "accepted": 0, "rejected": 0}


def test_a_flood_gets_429_with_retry_after(serve: Any, tmp_path: Path) -> None:
    client = serve(feedback_burst=5, feedback_per_minute=6)
    statuses = [post(client, drawn(SEVEN)).status_code for _ in range(8)]
    assert statuses == [201] * 5 + [429] * 3
    r = post(client, drawn(SEVEN))
    assert r.status_code == 429 and r.json()["error"].startswith("too many corrections")
    assert 1 <= int(r.headers["retry-after"]) <= 10
    assert FeedbackStore(tmp_path).count() == 5
    assert predict_ok(client)  # predictions are not limited


def test_a_full_store_is_507_and_predictions_go_on(serve: Any, tmp_path: Path) -> None:
    client = serve(feedback_max_bytes=48 * 1024)
    statuses = [post(client, drawn(SEVEN)).status_code for _ in range(40)]
    assert 201 in statuses and statuses[-1] == 507
    r = post(client, drawn(SEVEN))
    assert r.status_code == 507 and "full" in r.json()["error"]
    assert predict_ok(client)


def test_the_server_starts_without_a_writable_store(serve: Any, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    client = serve(data_dir=tmp_path / "a-file" / "data")
    assert predict_ok(client)
    r = post(client, drawn(SEVEN))
    assert r.status_code == 503 and "unavailable" in r.json()["error"]
    assert "a-file" not in r.text  # no path in an answer
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")  # predictions go on (200): degraded for corrections
    assert ready.status_code == 200 and ready.json()["status"] == "degraded"
    assert ready.json()["store"] == "the feedback store cannot be opened (Not a directory)"
    assert "a-file" not in ready.text


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MB tmpfs (root only; skipped where mounting is not permitted)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)])
    if done.returncode != 0:
        pytest.skip("mounting a tmpfs is not permitted here")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def read_only_view(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A directory and a read-only bind mount of it (root only; skipped where mounting is
    not permitted): (the directory, its read-only view)."""
    data, view = tmp_path / "data", tmp_path / "view"
    data.mkdir()
    view.mkdir()
    if os.geteuid() != 0:
        pytest.skip("a bind mount needs root")
    if subprocess.run(["mount", "--bind", str(data), str(view)]).returncode != 0:
        pytest.skip("mounting is not permitted here")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], check=True)
        yield data, view
    finally:
        subprocess.run(["umount", "-l", str(view)], check=False)


def test_a_store_on_a_read_only_disk_is_degraded_and_predictions_go_on(
    serve: Any, read_only_view: tuple[Path, Path]
) -> None:
    """/readyz: 200 "degraded" with the reason, and predictions answered, when the store's
    disk is read-only (a store written before, seen through a read-only mount)."""
    data, view = read_only_view
    writer = serve(data_dir=data)
    assert writer.get("/readyz").json()["status"] == "ready"
    assert post(writer, drawn(SEVEN)).status_code == 201
    client = serve(data_dir=view)
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "degraded", ready.text
    assert ready.json()["store_writable"] is False and str(view) not in ready.text
    assert ready.json()["store"].startswith("the feedback store cannot be opened")
    assert post(client, drawn(SEVEN)).status_code == 503
    assert predict_ok(client)


def test_a_full_disk_is_507_and_predictions_go_on(serve: Any, tiny_disk: Path) -> None:
    client = serve(data_dir=tiny_disk / "data")
    rng = np.random.default_rng(1)
    statuses = []
    for _ in range(40):  # a digit on grainy paper: ~50 KB a row, the disk fills in ~20
        photo = Image.fromarray(rng.integers(200, 256, (256, 256), dtype=np.uint8))
        ImageDraw.Draw(photo).line([(60, 50), (200, 50), (110, 220)], fill=0, width=14)
        statuses.append(post(client, photo).status_code)
        if statuses[-1] != 201:
            break
    assert statuses[0] == 201 and statuses[-1] == 507, statuses
    assert predict_ok(client)
    with sqlite3.connect(tiny_disk / "data" / DB_NAME) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("SELECT COUNT(*) FROM feedback").fetchone()[0] == statuses.count(201)


@pytest.mark.parametrize(
    ("mode", "kind"), [("I;16", "PPM"), ("I", "TIFF"), ("F", "TIFF"), ("CMYK", "JPEG")]
)
def test_deep_and_odd_modes_are_kept_as_8_bit_grey(
    serve: Any, tmp_path: Path, mode: str, kind: str
) -> None:
    """16- and 32-bit PPM/TIFF were a 500 on /feedback (and fine on /predict)."""
    paper = Image.new("L", (280, 280), 255)
    ImageDraw.Draw(paper).line(SEVEN, fill=0, width=22)
    grey = np.asarray(paper)
    image = {
        "I;16": lambda: Image.fromarray(grey.astype(np.uint16) * 257),
        "I": lambda: Image.fromarray(grey.astype(np.int32) * 1000),
        "F": lambda: Image.fromarray(grey.astype(np.float32) / 255),
        "CMYK": lambda: paper.convert("CMYK"),
    }[mode]()
    assert image.mode == mode
    buf = io.BytesIO()
    image.save(buf, kind)
    client = serve()
    r = client.post(
        "/api/v1/feedback",
        json={"image": base64.b64encode(buf.getvalue()).decode(), "label": 7},
    )
    assert r.status_code == 201, r.text
    (row,) = FeedbackStore(tmp_path).rows()
    kept = np.asarray(Image.open(io.BytesIO(row.image)))
    assert kept.dtype == np.uint8 and kept.min() < 40 and kept.max() > 215  # ink and paper


def test_feedback_decodes_in_the_apps_bounded_pool(serve: Any) -> None:
    client = serve()
    runner, calls = client.app.state.runner, []

    async def recording(fn: Any, *args: Any) -> Any:
        calls.append(fn.__name__)
        return await runner(fn, *args)

    client.app.state.runner = recording
    assert post(client, drawn(SEVEN)).status_code == 201
    assert calls == ["store_row"]


# ---------------------------------------------------------------- POST /api/v1/feedback/reading


def number_17() -> tuple[str, list[list[int]]]:
    """A drawn "17" on a 560 x 280 canvas as the page sends it, and its two boxes."""
    image = Image.new("RGBA", (560, 280), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.line([(110, 50), (105, 230)], fill=(0, 0, 0, 255), width=20)
    draw.line([(300, 60), (440, 60), (360, 240)], fill=(0, 0, 0, 255), width=20)
    url = "data:image/png;base64," + base64.b64encode(png(image)).decode()
    return url, [[95, 40, 25, 200], [290, 50, 160, 200]]


@pytest.mark.parametrize(
    ("changes", "text", "stored"),
    [
        ([{"kind": "change", "index": 1, "to": "2"}], "12",
         [{"kind": "change", "index": 1, "from": "7", "to": "2"}]),
        ([{"kind": "delete", "index": 0}], "7", [{"kind": "delete", "index": 0, "from": "1"}]),
        ([{"kind": "insert", "index": 2, "to": "4"}], "174",
         [{"kind": "insert", "index": 2, "to": "4"}]),
        ([{"kind": "retype", "to": "1234"}], "1234",
         [{"kind": "retype", "from": "17", "to": "1234"}]),
        ([{"kind": "insert", "index": 0, "to": "9"}, {"kind": "delete", "index": 1}], "91",
         [{"kind": "insert", "index": 0, "to": "9"}, {"kind": "delete", "index": 1, "from": "7"}]),
    ],
)  # fmt: skip
def test_a_corrected_number_is_stored_with_its_boxes_and_edits(
    serve: Any, tmp_path: Path, changes: list[dict[str, Any]], text: str, stored: list[Any]
) -> None:
    client = serve()
    image, boxes = number_17()
    body = {"image": image, "read": "17", "boxes": boxes, "text": text, "changes": changes}
    r = client.post("/api/v1/feedback/reading", json=body | {"drawing": "d-1"})
    assert r.status_code == 201, r.text
    assert r.json() == {"id": 1, "read": "17", "text": text, "changes": stored, "model": "fake-net"}
    (row,) = FeedbackStore(tmp_path).readings()
    assert (row.read, row.text, row.boxes, row.changes) == ("17", text, boxes, stored)
    assert (row.model, row.drawing, row.status) == ("fake-net", "d-1", "pending")
    assert Image.open(io.BytesIO(row.image)).size == (560, 280)
    assert FeedbackStore(tmp_path).count() == 0  # no digit row: the page posts those itself


@pytest.mark.parametrize(
    ("change", "text", "why"),
    [
        ({"kind": "change", "index": 1, "to": "2"}, "17", "turn 17 into 12, not 17"),
        ({"kind": "delete", "index": 2}, "1", "delete at digit 2"),
        ({"kind": "insert", "index": 0, "to": "42"}, "4217", "one digit"),
        ({"kind": "change", "index": 0}, "17", "needs `to`"),
        ({"kind": "merge", "index": 0}, "7", "kind"),
    ],
)
def test_edits_that_do_not_fit_the_number_read_are_a_422(
    serve: Any, tmp_path: Path, change: dict[str, Any], text: str, why: str
) -> None:
    client = serve()
    image, boxes = number_17()
    body = {"image": image, "read": "17", "boxes": boxes, "text": text, "changes": [change]}
    r = client.post("/api/v1/feedback/reading", json=body)
    assert r.status_code == 422 and why in r.json()["error"], r.text
    assert list(FeedbackStore(tmp_path).readings()) == []


@pytest.mark.parametrize(
    ("boxes", "why"), [([[0, 0, 600, 10]] * 2, "not inside"), ([[0, 0, 5, 5]], "1 boxes")]
)
def test_boxes_that_do_not_fit_are_a_422(
    serve: Any, tmp_path: Path, boxes: list[list[int]], why: str
) -> None:
    image, _ = number_17()
    body = {"image": image, "read": "17", "boxes": boxes, "text": "1",
            "changes": [{"kind": "delete", "index": 1}]}  # fmt: skip
    r = serve().post("/api/v1/feedback/reading", json=body)
    assert r.status_code == 422 and why in r.json()["error"], r.text
    assert list(FeedbackStore(tmp_path).readings()) == []


def test_a_big_photo_of_a_number_is_kept_small_with_its_boxes_scaled(
    serve: Any, tmp_path: Path
) -> None:
    photo = Image.new("L", (1120, 560), 230)
    ImageDraw.Draw(photo).line([(220, 100), (210, 460)], fill=20, width=30)
    url = "data:image/png;base64," + base64.b64encode(png(photo)).decode()
    r = serve().post(
        "/api/v1/feedback/reading",
        json={"image": url, "read": "1", "boxes": [[200, 90, 40, 380]], "text": "7",
              "changes": [{"kind": "retype", "to": "7"}]},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    (row,) = FeedbackStore(tmp_path).readings()
    assert Image.open(io.BytesIO(row.image)).size == (560, 280)
    assert row.boxes == [[100, 45, 20, 190]]


def test_corrected_numbers_share_the_rate_limit(serve: Any) -> None:
    client = serve(feedback_burst=2, feedback_per_minute=6)
    image, boxes = number_17()
    body = {"image": image, "read": "17", "boxes": boxes, "text": "1",
            "changes": [{"kind": "delete", "index": 1}]}  # fmt: skip
    assert post(client, drawn(SEVEN)).status_code == 201
    assert client.post("/api/v1/feedback/reading", json=body).status_code == 201
    r = client.post("/api/v1/feedback/reading", json=body)
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1


def corrected_numbers(store: Any) -> Image.Image:
    """Four saves of corrected numbers, the image they were read from: a "17" read "117" (the
    7's bar cut off as a 1: a split error), saved twice by the page (one drawing); a "17" read
    "1" (the 7 missed); a "17" typed over a reading "4"."""
    image = Image.new("RGBA", (560, 280), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.line([(110, 50), (105, 230)], fill=(0, 0, 0, 255), width=20)
    draw.line([(300, 60), (440, 60), (360, 240)], fill=(0, 0, 0, 255), width=20)
    split = [[95, 40, 25, 200], [290, 50, 160, 22], [350, 60, 100, 190]]
    store.add_reading(image, "117", "127", split, [{"kind": "change", "index": 1, "to": "2"}],
                      "cnn", "d-1")  # fmt: skip
    store.add_reading(image, "117", "17", split, [{"kind": "delete", "index": 1}], "cnn", "d-1")
    store.add_reading(image, "1", "17", [[95, 40, 25, 200]],
                      [{"kind": "insert", "index": 1, "to": "7"}], "cnn", "d-2")  # fmt: skip
    store.add_reading(image, "4", "17", [[95, 40, 360, 200]], [{"kind": "retype", "to": "17"}],
                      "cnn")  # fmt: skip
    return image


def test_corrected_numbers_are_reviewed_and_exported_a_drawings_last_save_only(
    tmp_path: Path,
) -> None:
    from digitrec.feedback import export_readings, readings_sheet

    store = FeedbackStore(tmp_path)
    store.add(drawn(SEVEN), 7, 1, "cnn")  # a digit row: ids of its own, untouched below
    image = corrected_numbers(store)
    # The page's first save of drawing d-1 (row 1) is superseded by its second (row 2).
    assert store.counts(readings=True) == {"pending": 3, "accepted": 0, "rejected": 0}
    assert [r.id for r in store.readings("pending", latest=True)] == [2, 3, 4]
    with pytest.raises(DigitrecError, match="no corrected numbers with ids 9"):
        store.decide(accept=[2, 9], readings=True)
    store.decide(accept=[1, 2, 3], reject=[4], readings=True)
    assert store.counts(readings=True) == {"pending": 0, "accepted": 2, "rejected": 1}
    assert store.counts() == {"pending": 1, "accepted": 0, "rejected": 0}

    out = tmp_path / "out" / "readings.jsonl"
    assert export_readings(tmp_path, out) == 2
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["id"], r["read"], r["text"], r["drawing"]) for r in records] == [
        (2, "117", "17", "d-1"), (3, "1", "17", "d-2")]  # fmt: skip
    split = records[0]
    assert split["changes"] == [{"kind": "delete", "index": 1, "from": "1"}]
    assert split["boxes"] == [[95, 40, 25, 200], [290, 50, 160, 22], [350, 60, 100, 190]]
    assert (split["model"], split["width"], split["height"]) == ("cnn", 560, 280)
    assert split["created"].endswith("+00:00")
    # The image is the one read, and the box of the piece deleted holds the 7's bar: what a
    # segmenter learns not to cut off.
    kept = Image.open(io.BytesIO(base64.b64decode(split["image"].split(",", 1)[1])))
    assert np.array_equal(np.asarray(kept.getchannel("A")), np.asarray(image.getchannel("A")))
    x, y, w, h = split["boxes"][1]
    assert (np.asarray(kept.getchannel("A"))[y : y + h, x : x + w] > 128).mean() > 0.5
    assert not list(out.parent.glob(".*tmp"))  # written atomically

    sheet = tmp_path / "sheet.png"
    assert readings_sheet(store.readings(latest=True), sheet, columns=2) == 3
    assert Image.open(sheet).size == (2 * 300, 2 * 196)


def test_export_of_corrected_numbers_from_no_store_is_empty(tmp_path: Path) -> None:
    from digitrec.feedback import export_readings

    assert export_readings(tmp_path / "none", tmp_path / "readings.jsonl") == 0
    assert (tmp_path / "readings.jsonl").read_text() == ""


def test_a_version_1_store_gains_the_readings_table_and_keeps_its_rows(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path)
    store.add(drawn(SEVEN), 7, 1, "old")
    store.close()
    with sqlite3.connect(tmp_path / DB_NAME) as db:  # back to version 1: no readings table
        db.execute("DROP TABLE readings")
        db.execute("PRAGMA user_version = 1")
    db.close()
    store = FeedbackStore(tmp_path)
    assert [(r.label, r.predicted, r.model) for r in store.rows()] == [(7, 1, "old")]
    image = Image.new("L", (560, 280), 255)
    ImageDraw.Draw(image).line([(100, 40), (100, 240)], fill=0, width=20)
    store.add_reading(image, "1", "7", [[90, 40, 20, 200]], [{"kind": "change", "index": 0,
                      "to": "7"}], "new")  # fmt: skip
    assert [r.text for r in store.readings()] == ["7"]
    with sqlite3.connect(tmp_path / DB_NAME) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (2,)
