"""Feedback on PostgreSQL under load, through a database restart.

A private PostgreSQL (tests/pg.py), two `digitrec serve --database ...` replicas on 127.0.0.1,
16 clients posting corrections to them at once (half to each); a third of the way in the
database is stopped (fast shutdown: connections cut) and started again a few seconds later.
Each upload carries a client-side key in its corner pixels (light grey, kept exactly: a
256 px grey PNG is stored as sent), so every stored row is traced to the post that made it:

    sent            posts made
    acknowledged    201 answers
    stored          rows in the database afterwards
    duplicates      keys stored more than once (must be 0)
    lost            acknowledged keys not stored (must be 0)
    unacknowledged but stored   posts answered 503 "may or may not have been stored" (the
                    connection died during COMMIT) whose row is there
    503s            answers while the database was down

    python benchmarks/feedback_pg.py [--corrections 3000] [--clients 16] [--down 3]

tests/feedback/test_feedback_pg.py runs the same load, smaller.
"""

# ruff: noqa: E402
from __future__ import annotations

import argparse
import base64
import contextlib
import importlib.util
import io
import os
import platform
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import httpx
import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
SIDE = 256  # px: at most feedback.IMAGE_SIDE, so the upload is kept pixel for pixel
KEY_PIXELS = 8  # the key: 8 hex digits in the bottom row's last pixels, 240 + digit
PATHS = {  # a stroke per digit, on a 280 px canvas
    0: [(140, 40), (80, 80), (70, 160), (100, 230), (170, 235), (205, 160), (195, 80), (140, 40)],
    1: [(140, 40), (140, 240)],
    2: [(80, 80), (140, 40), (200, 80), (90, 230), (210, 230)],
    3: [(80, 50), (200, 60), (130, 130), (210, 180), (150, 235), (80, 215)],
    4: [(170, 240), (170, 40), (70, 170), (220, 170)],
    5: [(200, 50), (90, 50), (85, 130), (190, 140), (180, 225), (80, 225)],
    6: [(190, 45), (95, 120), (80, 210), (150, 240), (200, 190), (150, 140), (90, 170)],
    7: [(70, 60), (210, 60), (120, 230)],
    8: [(140, 140), (90, 90), (140, 40), (190, 90), (90, 190), (140, 240), (190, 190), (140, 140)],
    9: [(195, 100), (140, 50), (90, 100), (140, 145), (195, 100), (180, 240)],
}


def load_pg() -> ModuleType:
    """tests/pg.py, the private PostgreSQL the tests start."""
    spec = importlib.util.spec_from_file_location("digitrec_tests_pg", ROOT / "tests" / "pg.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def canvas(label: int) -> np.ndarray:
    paper = Image.new("L", (SIDE, SIDE), 255)
    scale = SIDE / 280
    points = [(x * scale, y * scale) for x, y in PATHS[label]]
    ImageDraw.Draw(paper).line(points, fill=0, width=20, joint="curve")
    return np.asarray(paper).copy()


CANVASES = {label: canvas(label) for label in PATHS}


def upload(label: int, key: int) -> str:
    """A drawn `label` with `key` (< 2**32) in its corner: a data URL."""
    pixels = CANVASES[label].copy()
    pixels[-1, -KEY_PIXELS:] = [240 + int(d, 16) for d in f"{key:08x}"]
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def key_of(png: bytes) -> int | None:
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("L"))
    digits = pixels[-1, -KEY_PIXELS:].astype(int) - 240
    if pixels.shape != (SIDE, SIDE) or digits.min() < 0:
        return None
    return int("".join(f"{d:x}" for d in digits), 16)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Replicas:
    urls: list[str]
    logs: list[Path]

    def output(self) -> str:
        return "".join(log.read_text(errors="replace") for log in self.logs)


@contextlib.contextmanager
def replicas(
    database: str, n: int = 2, workers: int = 1, model: str = "fast"
) -> Iterator[Replicas]:
    """`n` `digitrec serve --database` processes on 127.0.0.1, each on its own port, without
    the per-address rate limit (every client here is 127.0.0.1)."""
    tmp = Path(tempfile.mkdtemp(prefix="digitrec-replicas-"))
    env = {**os.environ, "DIGITREC_FEEDBACK_PER_MINUTE": "0"}
    procs, urls, logs = [], [], []
    try:
        for i in range(n):
            port = free_port()
            logs.append(tmp / f"serve{i}.log")
            cmd = [sys.executable, "-m", "digitrec", "serve", "--port", str(port),
                   "--workers", str(workers), "--model", model, "--data-dir", str(tmp / "data"),
                   "--database", database]  # fmt: skip
            with logs[-1].open("w") as out:
                procs.append(subprocess.Popen(
                    cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT
                ))  # fmt: skip
            urls.append(f"http://127.0.0.1:{port}")
        for proc, url, log in zip(procs, urls, logs, strict=True):
            deadline = time.monotonic() + 60
            while True:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{url} did not start:\n{log.read_text()}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(url + "/readyz", timeout=2).json()["status"] == "ready":
                        break
                time.sleep(0.2)
        yield Replicas(urls, logs)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class Answer:
    key: int
    label: int
    status: int  # 0: no answer (connection refused or dropped)
    body: dict[str, object] | None
    at: float


@dataclass
class Load:
    """`clients` threads posting corrections to the replicas (client k to urls[k % n]) until
    `target` have been acknowledged; `during(load)` runs meanwhile, on the calling thread."""

    urls: list[str]
    clients: int = 16
    answers: list[Answer] = field(default_factory=list)
    acked: int = 0
    started: float = 0.0
    wall: float = 0.0

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.done = threading.Event()

    def _client(self, k: int) -> None:
        rng = random.Random(k)
        with httpx.Client(base_url=self.urls[k % len(self.urls)], timeout=30) as http:
            for seq in range(1_000_000):
                if self.done.is_set():
                    return
                key, label = k * 1_000_000 + seq, rng.randrange(10)
                body = {"image": upload(label, key), "label": label, "predicted": (label + 1) % 10}
                try:
                    r = http.post("/api/v1/feedback", json=body)
                    status, answer = r.status_code, r.json()
                except (httpx.HTTPError, ValueError):
                    status, answer = 0, None
                with self.lock:
                    self.answers.append(Answer(key, label, status, answer, time.monotonic()))
                    self.acked += status == 201
                    if self.acked >= self.target:
                        self.done.set()
                if status != 201:
                    time.sleep(0.1)  # a polite client waits a little after a refusal

    def run(
        self, target: int, during: Callable[[Load], None] | None = None, timeout: float = 600
    ) -> Load:
        self.target = target
        threads = [threading.Thread(target=self._client, args=(k,)) for k in range(self.clients)]
        self.started = time.monotonic()
        for t in threads:
            t.start()
        try:
            if during is not None:
                during(self)
            if not self.done.wait(timeout):
                raise TimeoutError(f"{self.acked} of {target} acknowledged in {timeout} s")
        finally:
            self.done.set()
            for t in threads:
                t.join()
        self.wall = time.monotonic() - self.started
        return self

    def wait_acked(self, n: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.acked < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.acked} of {n} acknowledged in {timeout} s")
            time.sleep(0.05)


def stored_keys(database: str) -> tuple[Counter[int | None], int]:
    """How many times each key is stored, and the number of rows."""
    import psycopg

    keys: Counter[int | None] = Counter()
    with psycopg.connect(database) as conn:
        for (image,) in conn.execute("SELECT image FROM feedback"):
            keys[key_of(bytes(image))] += 1
    return keys, sum(keys.values())


@dataclass
class Tally:
    sent: int
    acknowledged: int
    stored: int
    duplicates: int  # keys stored more than once
    lost: int  # acknowledged keys not stored
    maybe: int  # 503 "may or may not have been stored"
    maybe_stored: int  # of those, stored
    stored_unacknowledged: int  # stored keys whose post was not acknowledged
    refused: int  # 503s
    statuses: Counter[int]


def tally(load: Load, database: str) -> Tally:
    keys, rows = stored_keys(database)
    acked = {a.key for a in load.answers if a.status == 201}
    maybe = {
        a.key for a in load.answers
        if a.status == 503 and "may or may not" in str((a.body or {}).get("error", ""))
    }  # fmt: skip
    return Tally(
        sent=len(load.answers),
        acknowledged=len(acked),
        stored=rows,
        duplicates=sum(1 for n in keys.values() if n > 1),
        lost=sum(1 for k in acked if keys[k] == 0),
        maybe=len(maybe),
        maybe_stored=sum(1 for k in maybe if keys[k]),
        stored_unacknowledged=sum(n for k, n in keys.items() if k not in acked),
        refused=sum(1 for a in load.answers if a.status == 503),
        statuses=Counter(a.status for a in load.answers),
    )


def cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corrections", type=int, default=3000, help="to acknowledge")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--down", type=float, default=3.0, help="seconds the database is down")
    parser.add_argument("--workers", type=int, default=1, help="worker processes per replica")
    args = parser.parse_args()

    pg = load_pg()
    outage: dict[str, float] = {}
    with pg.postgres() as server:
        database = server.database("bench")
        with replicas(database, workers=args.workers) as running:

            def restart(load: Load) -> None:
                load.wait_acked(args.corrections // 3, timeout=600)
                began = time.monotonic()
                server.stop()
                outage["stopped"] = time.monotonic() - load.started
                time.sleep(args.down)
                server.start()
                outage["down"] = time.monotonic() - began

            load = Load(running.urls, args.clients).run(args.corrections, restart)
            result = tally(load, database)
            tracebacks = running.output().count("Traceback")
    rate = result.acknowledged / load.wall
    print(f"corrections sent         {result.sent:,}")
    print(f"acknowledged (201)       {result.acknowledged:,}")
    print(f"stored                   {result.stored:,}")
    print(f"duplicates               {result.duplicates}")
    print(f"lost (acked, not stored) {result.lost}")
    print(f"stored, not acknowledged {result.stored_unacknowledged} ({result.maybe} answered "
          f"'may or may not have been stored', {result.maybe_stored} of them stored)")  # fmt: skip
    print(f"503s                     {result.refused:,}")
    print(f"answers by status        {dict(sorted(result.statuses.items()))}")
    print(f"corrections/s            {rate:,.0f} (acknowledged / wall time, outage included)")
    print(f"wall time                {load.wall:.1f} s (database stopped at "
          f"{outage['stopped']:.1f} s, down {outage['down']:.1f} s)")  # fmt: skip
    print(f"clients, replicas        {args.clients}, 2 x {args.workers} worker(s)")
    print(f"tracebacks in logs       {tracebacks}")
    print(f"CPU                      {cpu_name()} ({os.cpu_count()} cores)")
    print(f"date                     {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")


if __name__ == "__main__":
    main()
