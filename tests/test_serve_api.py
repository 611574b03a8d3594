"""The HTTP contract (README), in-process: every route, every error status, the {"error"} shape.

The predictor is a tiny fake swapped in with dependency_overrides; it runs the real
preprocessing, so bad images fail exactly as they would with the real model.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import os
import pickle
import random
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw

from digitrec.errors import ImageError
from digitrec.predictor import Prediction, Predictor, png_data_url
from digitrec.serve import Settings, create_app, routes
from digitrec.serve.balance import Balancer
from digitrec.serve.batch import Batcher
from digitrec.serve.deps import Runner, get_predictor
from digitrec.serve.workers import SUPPORTED as REUSE_PORT
from digitrec.serve.workers import PortPerWorker, bind_reuse_port
from digitrec.vision import preprocess

# ---------------------------------------------------------------- fakes and images


@dataclass
class FakeAnswer:
    body: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return self.body


class FakePredictor:
    """Says 7 to anything with ink; the real preprocessing decides what is an image."""

    name = "fake-net"
    card = {"name": "fake-net", "architecture": "none", "test_accuracy": 0.1}

    def predict(self, source: bytes) -> Prediction:
        image28 = preprocess.preprocess(source)
        if image28 is None:
            return Prediction(None, 0.0, [0.0] * 10, np.zeros((28, 28), np.float32), "empty")
        probabilities = [0.01] * 10
        probabilities[7] = 0.91
        return Prediction(7, 0.91, probabilities, image28, None, [(7, 0.91)])

    def predict_each(self, sources: list[bytes]) -> list[Prediction | Exception]:
        """The server's batch path: one image's error is its own (as the real predictor)."""
        answers: list[Prediction | Exception] = []
        for source in sources:
            try:
                answers.append(self.predict(source))
            except Exception as e:
                answers.append(e)
        return answers

    def read(self, source: bytes) -> FakeAnswer:
        preprocess.load_image(source)
        return FakeAnswer(
            {
                "text": "17",
                "digits": [
                    {"digit": 1, "confidence": 0.9, "box": [10, 10, 20, 60]},
                    {"digit": 7, "confidence": 0.8, "box": [40, 10, 30, 60]},
                ],
            }
        )


class BrokenPredictor(FakePredictor):
    def predict(self, source: bytes) -> Prediction:
        raise RuntimeError("a bug, not the user's fault")


def png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def drawn_seven() -> bytes:
    """Strokes on a transparent 280x280 canvas, as the page sends them."""
    image = Image.new("RGBA", (280, 280), (0, 0, 0, 0))
    ImageDraw.Draw(image).line([(70, 60), (210, 60), (120, 230)], fill=(17, 17, 17, 255), width=20)
    return png(image)


def data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def bomb_png(side: int = 100_000) -> bytes:
    """A tiny PNG whose header claims side x side pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)  # 8-bit greyscale
    idat = zlib.compress(b"\0" * (side + 1) * 4)  # a few rows; the header is what matters
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


SEVEN = drawn_seven()
BLANK = png(Image.new("RGBA", (280, 280), (0, 0, 0, 0)))


# ---------------------------------------------------------------- fixtures


def make_client(tmp_path: Path, predictor: object, **settings: Any) -> TestClient:
    app = create_app(Settings(data_dir=tmp_path, **settings))
    app.dependency_overrides[get_predictor] = lambda: predictor
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture
def client(tmp_path: Path):
    with make_client(tmp_path, FakePredictor()) as c:
        yield c


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


# ---------------------------------------------------------------- batching, the PNG, workers


class CountingPredictor(FakePredictor):
    def __init__(self) -> None:
        self.batches: list[int] = []

    def predict_each(self, sources: list[bytes]) -> list[Prediction | Exception]:
        self.batches.append(len(sources))
        return super().predict_each(sources)


def test_requests_that_arrive_together_share_one_model_call() -> None:
    model, batcher = CountingPredictor(), Batcher(Runner(threads=2))

    async def together() -> list[Any]:
        images = [SEVEN, BLANK, b"not an image", SEVEN]
        calls = [batcher.predict(model, image) for image in images]
        return await asyncio.gather(*calls, return_exceptions=True)

    seven, blank, junk, seven_again = asyncio.run(together())
    assert model.batches == [4]
    assert seven.digit == 7 and seven_again.digit == 7
    assert blank.digit is None and blank.reason == "empty"
    assert isinstance(junk, ImageError) and junk.status == 415  # only its own request fails


def test_concurrent_requests_with_the_real_model(tmp_path: Path) -> None:
    """The shipped fast model behind the batcher: every answer is its own request's."""
    images = [SEVEN, BLANK, RANDOM] * 8
    with make_client(tmp_path, Predictor.load("fast")) as c, ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(
                lambda image: c.post("/api/v1/predict", json={"image": data_url(image)}), images
            )
        )
    for image, r in zip(images, answers, strict=True):
        if image is RANDOM:
            assert r.status_code == 415 and set(r.json()) == {"error"}
            continue
        assert r.status_code == 200, r.text
        body = r.json()
        if image is BLANK:
            assert body["digit"] is None and body["reason"] == "empty"
        else:
            assert body["digit"] == 7 and len(body["probabilities"]) == 10
            seen = Image.open(io.BytesIO(base64.b64decode(body["preprocessed"].split(",")[1])))
            expected = np.round(preprocess.preprocess(SEVEN) * 255).astype(np.uint8)
            assert seen.size == (28, 28) and (np.asarray(seen) == expected).all()


def test_preprocessed_png_has_the_pixels_the_model_saw() -> None:
    rng = np.random.default_rng(0)
    for image in [rng.random((28, 28)), rng.normal(0.5, 1, (28, 28)), np.zeros((28, 28))]:
        url = png_data_url(image)
        assert url.startswith("data:image/png;base64,")
        decoded = Image.open(io.BytesIO(base64.b64decode(url.split(",")[1])))
        assert decoded.mode == "L" and decoded.size == (28, 28)
        assert (np.asarray(decoded) == np.round(np.clip(image, 0, 1) * 255)).all()


@pytest.mark.skipif(not REUSE_PORT, reason="SO_REUSEPORT balancing is Linux-only")
def test_each_worker_gets_its_own_socket_and_connections_are_spread() -> None:
    held = bind_reuse_port(socket.AF_INET, ("127.0.0.1", 0), PortPerWorker)
    # What uvicorn does to hand it to a worker process: each gets a new socket, same address.
    workers = [pickle.loads(pickle.dumps(held)) for _ in range(2)]
    try:
        for w in workers:
            assert w is not held and w.getsockname() == held.getsockname()
            w.listen()
            w.settimeout(5)
        clients = [socket.create_connection(held.getsockname()) for _ in range(64)]
        accepted = [0, 0]
        for i, w in enumerate(workers):
            w.setblocking(False)
            while True:
                try:
                    w.accept()[0].close()
                except BlockingIOError:
                    break
                accepted[i] += 1
        assert sum(accepted) == 64 and min(accepted) > 0  # all 64 on one: odds 2**-63
        for c in clients:
            c.close()
    finally:
        for w in workers:
            w.close()
        held.close()


@contextlib.contextmanager
def serving(tmp_path: Path, workers: int, **env: str) -> Iterator[str]:
    """`digitrec serve --workers N --model fast` on a free port: its URL once it answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "digitrec", "serve", "--workers", str(workers), "--port"]
    cmd += [str(port), "--model", "fast", "--data-dir", str(tmp_path)]
    server = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None and time.monotonic() < deadline, "server did not start"
            try:
                httpx.get(url + "/healthz", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        _, err = server.communicate(timeout=30)
    assert "Traceback" not in err


def test_two_workers_answer(tmp_path: Path) -> None:
    """`serve --workers 2` end to end: the workers' own sockets come up and answer."""
    with serving(tmp_path, 2) as url:
        for _ in range(8):  # new connections: the kernel hands them to either worker
            r = httpx.post(url + "/api/v1/predict", json={"image": data_url(SEVEN)}, timeout=10)
            assert r.status_code == 200 and r.json()["digit"] == 7


def test_two_workers_even_out_keep_alive_connections(tmp_path: Path) -> None:
    """24 keep-alive clients drawing at once: the kernel splits their connections between the
    two workers at random (12/12 one time in six), and a worker with more than its share closes
    the extra ones after an answer, until each worker has 12 (serve/balance.py)."""
    stop = threading.Event()
    statuses: list[int] = []
    closed = []

    def draw() -> None:
        with httpx.Client(base_url=url, timeout=10) as c:  # reconnects after a close
            while not stop.is_set():
                r = c.post("/api/v1/predict", json={"image": data_url(SEVEN)})
                statuses.append(r.status_code)
                closed.append(r.headers.get("connection") == "close")

    tmp = tmp_path / "tmp"  # where the supervisor makes the workers' directory
    tmp.mkdir()
    with serving(tmp_path, 2, TMPDIR=str(tmp)) as url, ThreadPoolExecutor(24) as pool:
        for _ in range(24):
            pool.submit(draw)
        time.sleep(4)
        (workers_dir,) = tmp.glob("digitrec-workers-*")
        counts = sorted(
            struct.unpack("<id", f.read_bytes())[0] for f in workers_dir.glob("worker-*")
        )
        stop.set()
    assert statuses and set(statuses) == {200}
    assert counts == [12, 12], counts
    assert sum(closed) < 0.05 * len(closed)  # a few reconnects, not a connection per answer
    assert not list(tmp.glob("digitrec-workers-*"))  # the supervisor removed it when it stopped


def test_a_worker_over_its_share_closes_the_extra_connections(tmp_path: Path) -> None:
    a, b = Balancer(tmp_path, "a"), Balancer(tmp_path, "b")
    gone = tmp_path / "worker-gone"  # a worker stopped 10 s ago: no longer counted
    gone.write_bytes(struct.pack("<id", 100, time.time() - 10))
    assert not any(a.close_after(("10.0.0.1", i)) for i in range(20))  # nothing known yet
    assert not any(b.close_after(("10.0.0.2", i)) for i in range(12))
    a.look(), b.look(), a.look()  # 20 and 12 connections in use: 16 each is the share
    closes_a = [a.close_after(("10.0.0.1", i)) for i in range(20)]
    closes_b = [b.close_after(("10.0.0.2", i)) for i in range(12)]
    assert sum(closes_a) == 4 and not any(closes_b)
    a.look()  # the 4 closed are no longer a's: 16 against b's 12 -> 14 each
    assert sum(a.close_after(("10.0.0.1", i)) for i in range(4, 20)) == 2
    a.close()
    assert not (tmp_path / "worker-a").exists() and (tmp_path / "worker-b").exists()


def test_a_balancer_keeps_running_when_its_directory_goes(tmp_path: Path) -> None:
    workers = tmp_path / "workers"
    workers.mkdir()
    balancer = Balancer(workers, "a")
    for i in range(5):
        balancer.close_after(("10.0.0.1", i))
    (workers / "worker-a").unlink()
    workers.rmdir()  # the supervisor stopping first

    async def a_while() -> bool:
        task = asyncio.create_task(balancer.run())
        await asyncio.sleep(0.5)  # a few looks
        alive = not task.done()
        task.cancel()
        return alive

    assert asyncio.run(a_while())
    assert not any(balancer.close_after(("10.0.0.1", i)) for i in range(5))
    balancer.close()


def test_workers_on_a_port_in_use_is_one_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "digitrec",
                "serve",
                "--workers",
                "2",
                "--port",
                str(port),
                "--model",
                "fast",
                "--data-dir",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert r.returncode != 0
    assert "address already in use" in r.stderr.lower() and "Traceback" not in r.stderr


# ---------------------------------------------------------------- bad input


RANDOM = random.Random(0).randbytes(2000)

BAD_REQUESTS: list[tuple[str, str, dict[str, Any], int, str]] = [
    # (name, path, httpx kwargs, status, words in the error)
    (
        "random bytes upload",
        "/api/v1/predict",
        {"files": {"file": ("x.png", RANDOM, "image/png")}},
        415,
        "not an image",
    ),
    (
        "random bytes base64",
        "/api/v1/predict",
        {"json": {"image": base64.b64encode(RANDOM).decode()}},
        415,
        "not an image",
    ),
    (
        "text file",
        "/api/v1/read",
        {"files": {"file": ("a.txt", b"hello", "text/plain")}},
        415,
        "not an image",
    ),
    (
        "bomb",
        "/api/v1/predict",
        {"files": {"file": ("b.png", bomb_png(), "image/png")}},
        413,
        "too large",
    ),
    ("bomb via JSON", "/api/v1/read", {"json": {"image": data_url(bomb_png())}}, 413, "too large"),
    (
        "bad JSON",
        "/api/v1/predict",
        {"content": b'{"image": ', "headers": {"content-type": "application/json"}},
        422,
        "JSON",
    ),
    ("JSON not an object", "/api/v1/predict", {"json": [1, 2]}, 422, "image"),
    ("missing image field", "/api/v1/predict", {"json": {"picture": "abc"}}, 422, "image"),
    ("image not a string", "/api/v1/predict", {"json": {"image": 5}}, 422, "string"),
    (
        "bad base64",
        "/api/v1/predict",
        {"json": {"image": "data:image/png;base64,@@@"}},
        422,
        "base64",
    ),
    (
        "data URL not base64",
        "/api/v1/predict",
        {"json": {"image": "data:text/plain,hello"}},
        422,
        "base64",
    ),
    ("empty image", "/api/v1/predict", {"json": {"image": ""}}, 422, "empty"),
    (
        "missing multipart field",
        "/api/v1/predict",
        {"files": {"photo": ("a.png", SEVEN)}},
        422,
        "file",
    ),
    (
        "empty upload",
        "/api/v1/predict",
        {"files": {"file": ("a.png", b"", "image/png")}},
        422,
        "empty",
    ),
    ("no body", "/api/v1/predict", {}, 422, "no image"),
    (
        "wrong content type",
        "/api/v1/predict",
        {"content": b"hi", "headers": {"content-type": "text/plain"}},
        415,
        "content type",
    ),
    (
        "broken multipart",
        "/api/v1/predict",
        {"content": b"--x\r\nbroken", "headers": {"content-type": "multipart/form-data"}},
        422,
        "multipart",
    ),
    (
        "label too big",
        "/api/v1/feedback",
        {"json": {"image": data_url(SEVEN), "label": 10}},
        422,
        "label",
    ),
    (
        "label a string",
        "/api/v1/feedback",
        {"json": {"image": data_url(SEVEN), "label": "7"}},
        422,
        "label",
    ),
    ("label missing", "/api/v1/feedback", {"json": {"image": data_url(SEVEN)}}, 422, "label"),
    (
        "predicted out of range",
        "/api/v1/feedback",
        {"json": {"image": data_url(SEVEN), "label": 1, "predicted": -1}},
        422,
        "predicted",
    ),
    (
        "feedback not an image",
        "/api/v1/feedback",
        {"json": {"image": base64.b64encode(RANDOM).decode(), "label": 1}},
        415,
        "not an image",
    ),
    (
        "feedback bad JSON",
        "/api/v1/feedback",
        {"content": b"{", "headers": {"content-type": "application/json"}},
        422,
        "JSON",
    ),
]


@pytest.mark.parametrize(
    ("name", "path", "kwargs", "status", "words"), BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS]
)
def test_bad_input_is_a_json_4xx(
    client: TestClient, name: str, path: str, kwargs: dict[str, Any], status: int, words: str
) -> None:
    r = client.post(path, **kwargs)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert set(body) == {"error"} and words.lower() in body["error"].lower()


def test_the_short_lane_answers_as_the_route_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """POST /predict with a JSON or image body skips FastAPI's routing (serve/lane.py): its
    answers and its errors are those of the route, which still takes everything else."""
    routed: list[str] = []
    images_in = routes.images_in

    async def counted(request: Any) -> Any:
        routed.append(request.headers.get("content-type", "").split(";")[0])
        return await images_in(request)

    monkeypatch.setattr(routes, "images_in", counted)
    broken = SEVEN[:200]  # a PNG cut short: 415 from the image decoder
    with make_client(tmp_path, FakePredictor()) as c:
        by_route = c.post("/api/v1/predict", files={"file": ("7.png", SEVEN, "image/png")})
        by_lane = [
            c.post("/api/v1/predict", json={"image": data_url(SEVEN)}),
            c.post("/api/v1/predict", content=SEVEN, headers={"content-type": "image/png"}),
        ]
        assert routed == ["multipart/form-data"]  # only the upload took the route
        assert by_route.status_code == 200 and by_route.json()["digit"] == 7
        assert all(r.status_code == 200 and r.json() == by_route.json() for r in by_lane)
        route_error = c.post("/api/v1/predict", files={"file": ("7.png", broken, "image/png")})
        lane_errors = [
            c.post("/api/v1/predict", json={"image": data_url(broken)}),
            c.post("/api/v1/predict", content=broken, headers={"content-type": "image/png"}),
        ]
        assert route_error.status_code == 415
        for r in lane_errors:
            assert (r.status_code, r.json()) == (415, route_error.json())
            assert r.headers["content-type"] == "application/json"
        # A body the lane cannot read goes to the route as it came: the route's own message.
        r = c.post("/api/v1/predict", content=b"{", headers={"content-type": "application/json"})
        assert r.status_code == 422 and r.json() == {"error": "body is not valid JSON"}
        assert routed[-1] == "application/json"
        assert c.get("/healthz").status_code == 200


def test_unknown_path_and_method_are_json(client: TestClient) -> None:
    assert client.get("/nope").json() == {"error": "Not Found"}
    r = client.get("/api/v1/predict")
    assert r.status_code == 405 and set(r.json()) == {"error"}


def test_oversized_body_is_413_by_header_and_by_stream(client: TestClient) -> None:
    big = b"x" * (5 * 1024 * 1024 + 1)
    r = client.post("/api/v1/predict", content=big, headers={"content-type": "image/png"})
    assert r.status_code == 413 and "limit" in r.json()["error"]
    # No Content-Length (chunked): caught while streaming, before parsing.
    chunks = iter([b"x" * 1024 * 1024] * 6)
    r = client.post(
        "/api/v1/feedback", content=chunks, headers={"content-type": "application/json"}
    )
    assert r.status_code == 413 and "limit" in r.json()["error"]
    assert client.get("/healthz").status_code == 200


def test_body_limit_is_a_setting(tmp_path: Path) -> None:
    with make_client(tmp_path, FakePredictor(), max_body_bytes=1000) as c:
        r = c.post("/api/v1/predict", files={"file": ("seven.png", SEVEN, "image/png")})
        assert r.status_code == 413


def test_a_bug_is_a_json_500_and_the_server_keeps_serving(tmp_path: Path) -> None:
    with make_client(tmp_path, BrokenPredictor()) as c:
        r = c.post("/api/v1/predict", json={"image": data_url(SEVEN)})
        assert r.status_code == 500
        assert set(r.json()) == {"error"} and "Traceback" not in r.text
        assert c.get("/healthz").status_code == 200


def test_a_thousand_malformed_requests(client: TestClient) -> None:
    rng = random.Random(1)
    paths = ["/api/v1/predict", "/api/v1/read", "/api/v1/feedback"]
    statuses = []
    for i in range(1000):
        path, kind = rng.choice(paths), i % 8
        junk = rng.randbytes(rng.randrange(0, 3000))
        if kind == 0:
            r = client.post(path, files={"file": ("j.png", junk, "image/png")})
        elif kind == 1:
            r = client.post(path, json={"image": base64.b64encode(junk).decode(), "label": 3})
        elif kind == 2:
            r = client.post(path, content=junk, headers={"content-type": "application/json"})
        elif kind == 3:  # a real PNG cut short
            r = client.post(
                path, json={"image": data_url(SEVEN[: rng.randrange(1, len(SEVEN))]), "label": 1}
            )
        elif kind == 4:
            r = client.post(path, json={"image": junk.hex(), "label": rng.randrange(-5, 15)})
        elif kind == 5:
            r = client.post(
                path, content=junk, headers={"content-type": "multipart/form-data; boundary=abc"}
            )
        elif kind == 6:
            r = client.post(
                path,
                content=junk,
                headers={
                    "content-type": rng.choice(["image/png", "text/plain", "application/xml", ""])
                },
            )
        else:
            r = client.post(
                path,
                json={
                    "image": rng.choice([None, 1, [], {}, "data:,"]),
                    "label": rng.choice([None, "x", 1.5, True]),
                },
            )
        statuses.append(r.status_code)
        assert set(r.json()) <= {
            "error",
            "digit",
            "confidence",
            "probabilities",
            "preprocessed",
            "reason",
            "text",
            "digits",
            "id",
            "label",
            "predicted",
            "model",
        }
    assert max(statuses) < 500, sorted(set(statuses))
    assert min(statuses) >= 200
    assert client.get("/healthz").status_code == 200


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


# ---------------------------------------------------------------- no torch when serving


def test_serving_never_imports_torch(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from digitrec.serve import create_app, Settings\n"
        "import digitrec.feedback, digitrec.vision.preprocess\n"
        "try:\n"
        "    import digitrec.predictor\n"
        "except ImportError:\n"
        "    pass\n"
        f"create_app(Settings(data_dir={str(tmp_path)!r}))\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
