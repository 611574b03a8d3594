"""Requests that arrive together share one model call; the PNG of what the model saw; several
workers (`serve --workers`): their sockets, their balance of keep-alive connections."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import os
import pickle
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from digitrec.errors import ImageError
from digitrec.predictor import Prediction, Predictor, png_data_url
from digitrec.serve.balance import Balancer
from digitrec.serve.batch import Batcher
from digitrec.serve.deps import Runner
from digitrec.serve.workers import SUPPORTED as REUSE_PORT
from digitrec.serve.workers import PortPerWorker, bind_reuse_port
from digitrec.vision import preprocess
from tests.helpers.app import (
    BLANK,
    RANDOM,
    SEVEN,
    FakePredictor,
    data_url,
    make_client,
)

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
