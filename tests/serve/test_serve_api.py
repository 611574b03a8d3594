"""The HTTP contract (README), in-process: every route, every error status, the {"error"} shape.

The predictor is a tiny fake swapped in with dependency_overrides; it runs the real
preprocessing, so bad images fail exactly as they would with the real model.
"""

from __future__ import annotations

import base64
import io
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from digitrec.predictor import Prediction
from tests.helpers.app import (
    BLANK,
    SEVEN,
    FakePredictor,
    data_url,
    make_client,
)


def stored_rows(tmp_path: Path) -> list[tuple]:
    with sqlite3.connect(tmp_path / "feedback.sqlite3") as db:
        return db.execute("SELECT image, label, predicted, model, created FROM feedback").fetchall()


# ---------------------------------------------------------------- routes


def test_page_docs_and_static(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for element in [
        'id="canvas"',
        'id="answer"',
        'id="probabilities"',
        'id="preprocessed"',
        'id="mode-number"',
        'id="correct-7"',
        'id="feedback-status"',
        'capture="environment"',
        "/static/app.js",
        "/static/style.css",
    ]:
        assert element in page.text
    assert "http://" not in page.text and "https://" not in page.text  # no CDN: works offline
    assert client.get("/static/app.js").status_code == 200
    assert "touch-action: none" in client.get("/static/style.css").text
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {
        "/healthz",
        "/api/v1/predict",
        "/api/v1/read",
        "/api/v1/feedback",
        "/api/v1/model",
    } <= set(paths)
    body = paths["/api/v1/predict"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/json"} <= set(body)


def test_healthz_and_model_card(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "model": "fake-net"}
    assert client.get("/api/v1/model").json() == FakePredictor.card


@pytest.mark.parametrize("how", ["multipart", "data-url", "base64", "raw"])
def test_predict_takes_every_input_form(client: TestClient, how: str) -> None:
    if how == "multipart":
        r = client.post("/api/v1/predict", files={"file": ("seven.png", SEVEN, "image/png")})
    elif how == "data-url":
        r = client.post("/api/v1/predict", json={"image": data_url(SEVEN)})
    elif how == "base64":
        r = client.post("/api/v1/predict", json={"image": base64.b64encode(SEVEN).decode()})
    else:
        r = client.post("/api/v1/predict", content=SEVEN, headers={"content-type": "image/png"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["digit"] == 7 and len(body["probabilities"]) == 10
    assert body["preprocessed"].startswith("data:image/png;base64,")
    assert "reason" not in body


def test_blank_canvas_is_not_a_digit(client: TestClient) -> None:
    body = client.post("/api/v1/predict", json={"image": data_url(BLANK)}).json()
    assert body["digit"] is None and body["reason"] == "empty"


def test_read(client: TestClient) -> None:
    r = client.post("/api/v1/read", files={"file": ("n.png", SEVEN, "image/png")})
    assert r.status_code == 200
    assert r.json()["text"] == "17" and r.json()["digits"][1]["box"] == [40, 10, 30, 60]


class BlockingPredictor(FakePredictor):
    """Holds predict() until released: a large photo that takes seconds to preprocess."""

    def __init__(self) -> None:
        self.started, self.release = threading.Event(), threading.Event()

    def predict(self, source: bytes) -> Prediction:
        self.started.set()
        self.release.wait(10)
        return super().predict(source)


def test_a_slow_image_does_not_stall_other_requests(tmp_path: Path) -> None:
    slow = BlockingPredictor()
    with make_client(tmp_path, slow) as c, ThreadPoolExecutor(1) as pool:
        pending = pool.submit(c.post, "/api/v1/predict", json={"image": data_url(SEVEN)})
        assert slow.started.wait(10)
        assert c.get("/healthz").status_code == 200  # answered while predict still runs
        assert not pending.done()
        slow.release.set()
        assert pending.result().json()["digit"] == 7


def test_inline_inference_gives_the_same_answer(tmp_path: Path) -> None:
    with make_client(tmp_path, FakePredictor(), inline_inference=True) as c:
        assert c.post("/api/v1/predict", json={"image": data_url(SEVEN)}).json()["digit"] == 7


# ---------------------------------------------------------------- feedback


def test_feedback_is_stored(client: TestClient, tmp_path: Path) -> None:
    r = client.post("/api/v1/feedback", json={"image": data_url(SEVEN), "label": 1, "predicted": 7})
    assert r.status_code == 201
    assert r.json() == {"id": 1, "label": 1, "predicted": 7, "model": "fake-net"}
    r = client.post(
        "/api/v1/feedback", json={"image": data_url(SEVEN), "label": 4, "predicted": None}
    )
    assert r.status_code == 201
    rows = stored_rows(tmp_path)
    assert [(label, predicted, model) for _, label, predicted, model, _ in rows] == [
        (1, 7, "fake-net"),
        (4, None, "fake-net"),
    ]
    image, *_, created = rows[0]
    assert Image.open(io.BytesIO(image)).format == "PNG"
    assert created.endswith("+00:00")


def test_concurrent_feedback_every_201_is_a_row(client: TestClient, tmp_path: Path) -> None:
    def send(i: int) -> int:
        return client.post(
            "/api/v1/feedback", json={"image": data_url(SEVEN), "label": i % 10, "predicted": 7}
        ).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(send, range(80)))
    assert statuses.count(201) == 80
    assert len(stored_rows(tmp_path)) == 80
