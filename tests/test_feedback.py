"""The feedback store (SQLite, WAL) and its Kaggle-format CSV export."""

from __future__ import annotations

import csv
import io
import multiprocessing
import sqlite3
import threading
from pathlib import Path
from typing import Any

import numpy as np
import platformdirs
import pytest
from PIL import Image, ImageDraw

from digitrec import preprocess
from digitrec.feedback import DB_NAME, FeedbackStore, default_data_dir, export_csv


def drawn(digit_path: list[tuple[int, int]], mode: str = "RGBA") -> Image.Image:
    image = Image.new("RGBA", (280, 280), (0, 0, 0, 0))
    ImageDraw.Draw(image).line(digit_path, fill=(0, 0, 0, 255), width=22)
    return image.convert(mode) if mode != "RGBA" else image


ONE = [(140, 40), (140, 240)]
SEVEN = [(70, 60), (210, 60), (120, 230)]


def test_default_data_dir_is_the_user_data_dir() -> None:
    assert default_data_dir() == Path(platformdirs.user_data_dir("digitrec"))


def test_rows_persist_in_wal_mode(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "new" / "dir")  # created if missing
    first = store.add(drawn(ONE), label=1, predicted=7, model="cnn")
    second = store.add(drawn(SEVEN, "P"), label=7, predicted=None, model="cnn")
    assert (first, second) == (1, 2)
    store.close()

    reopened = FeedbackStore(tmp_path / "new" / "dir")
    rows = list(reopened)
    assert [(r.label, r.predicted, r.model) for r in rows] == [(1, 7, "cnn"), (7, None, "cnn")]
    assert reopened.count() == 2
    decoded = Image.open(io.BytesIO(rows[0].image))
    assert decoded.format == "PNG" and decoded.size == (280, 280)
    assert np.array_equal(np.asarray(decoded), np.asarray(drawn(ONE)))  # lossless
    assert rows[0].created.endswith("+00:00")  # UTC
    with sqlite3.connect(tmp_path / "new" / "dir" / DB_NAME) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


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


def test_export_csv_is_kaggle_format(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path)
    store.add(drawn(ONE), label=1, predicted=7, model="cnn")
    store.add(drawn(SEVEN, "L"), label=7, predicted=1, model="cnn")
    store.add(Image.new("RGBA", (50, 50)), label=3, predicted=None, model="cnn")  # blank
    store.close()

    out = tmp_path / "out" / "feedback.csv"
    assert export_csv(tmp_path, out) == 3
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["label"] + [f"pixel{i}" for i in range(784)]
    assert [r[0] for r in rows[1:]] == ["1", "7", "3"]
    pixels = np.array([[int(v) for v in r[1:]] for r in rows[1:]])
    assert pixels.shape == (3, 784) and pixels.min() >= 0 and pixels.max() <= 255
    # What the model would see: the preprocessed image, scaled to 0..255.
    expected = np.rint(preprocess.preprocess(drawn(ONE)) * 255).ravel()
    assert np.abs(pixels[0] - expected).max() <= 1
    assert pixels[0].max() == 255 and pixels[2].max() == 0  # ink; the blank row is zeros
    assert not list(out.parent.glob(".*tmp"))  # written atomically, nothing left behind


def test_export_of_an_empty_store_is_just_the_header(tmp_path: Path) -> None:
    out = tmp_path / "empty.csv"
    assert export_csv(tmp_path / "never-served", out) == 0
    assert out.read_text().splitlines()[0].startswith("label,pixel0,")
    assert len(out.read_text().splitlines()) == 1


def _open_at_once(directory: Path, barrier: Any, results: Any) -> None:
    barrier.wait()  # both processes open the new store at the same moment
    try:
        FeedbackStore(directory).close()
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
