"""Feedback under abuse and faults: `digitrec serve` on 127.0.0.1, a temporary data dir each.

    python benchmarks/feedback_abuse.py            # every probe, about a minute on 2 cores
    python benchmarks/feedback_abuse.py --probes flood,export

Probes (each prints a table):
- flood: 2,000 corrections from one client as fast as it can send them: 201s up to the rate
  limit's burst, then 429s; the store's growth per accepted row; a 3 MB photo's row size.
- kill: 16 clients write corrections to `serve --workers 2`; the server's process group is
  killed (SIGKILL) mid-write. Every acknowledged id (a 201) must be in the store, and
  PRAGMA integrity_check must say ok. Rows stored but not acknowledged were in flight.
- disk: the data dir on a 2 MB tmpfs (mount needs root; otherwise the store cap stands in,
  and the table says so): corrections until the disk is full (507), predictions meanwhile;
  then the tmpfs remounted read-only (503), and a server started on a new data dir there.
- export: 10,000 accepted rows (the MNIST test digits as what the model saw, a drawn canvas
  as the upload) exported by `digitrec feedback export` in a child process: seconds and its
  peak RSS (wait4's ru_maxrss).
Loopback only; every request has a timeout (a request that times out is a hang).
"""

# ruff: noqa: E402
from __future__ import annotations

import argparse
import base64
import http.client
import io
import json
import os
import platform
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from digitrec import data
from digitrec.feedback import ROW_MAX_BYTES, FeedbackStore, image_png, now, seen_png

ROOT = Path(__file__).resolve().parents[1]
CANVAS = (ROOT / "benchmarks" / "canvas7.png").read_bytes()  # a 7 drawn in Chromium
DIGITREC = [sys.executable, "-m", "digitrec"]
TIMEOUT = 30.0  # s: a request not answered by then is a hang


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def data_url(data: bytes, kind: str = "png") -> str:
    return f"data:image/{kind};base64," + base64.b64encode(data).decode()


def feedback_body(image: bytes, label: int = 7, kind: str = "png") -> bytes:
    return json.dumps({"image": data_url(image, kind), "label": label, "predicted": 1}).encode()


class Client:
    """One keep-alive connection; reconnects after an error."""

    def __init__(self, port: int):
        self.port, self.conn = port, None

    def post(self, path: str, body: bytes) -> tuple[int, dict[str, Any], dict[str, str]]:
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)
            try:
                self.conn.request("POST", path, body, {"Content-Type": "application/json"})
                r = self.conn.getresponse()
                data = r.read()
                if r.getheader("connection", "").lower() == "close":
                    self.close()
                return r.status, json.loads(data or b"{}"), dict(r.getheaders())
            except (ConnectionError, http.client.HTTPException) as e:
                self.close()
                if attempt == 2 or isinstance(e, ConnectionRefusedError):
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


@contextmanager
def server(data_dir: Path, workers: int = 1, **settings: Any):
    port = free_port()
    env = dict(os.environ, **{f"DIGITREC_{k.upper()}": str(v) for k, v in settings.items()})
    proc = subprocess.Popen(
        [*DIGITREC, "serve", "--port", str(port), "--workers", str(workers)]
        + ["--data-dir", str(data_dir)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: kill -9 reaches every worker
    )
    deadline = time.monotonic() + 90
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"server did not start: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        time.sleep(0.2)
    try:
        yield proc, port
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def store_bytes(db_path: Path) -> int:
    with sqlite3.connect(db_path) as db:
        page = db.execute("PRAGMA page_size").fetchone()[0]
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        free = db.execute("PRAGMA freelist_count").fetchone()[0]
    return int((pages - free) * page)


def table(title: str, rows: list[tuple[str, object]]) -> None:
    print(f"\n{title}\n")
    print("| | |\n|---|---|")
    for k, v in rows:
        print(f"| {k} | {v} |")


def grainy_photo(seed: int, size: tuple[int, int] = (256, 256)) -> Image.Image:
    """A 7 on grainy paper: noise PNG cannot compress, the worst case for a row's size."""
    rng = np.random.default_rng(seed)
    photo = Image.fromarray(rng.integers(200, 256, (size[1], size[0]), dtype=np.uint8))
    w, h = size
    ImageDraw.Draw(photo).line(
        [(w * 0.23, h * 0.2), (w * 0.78, h * 0.2), (w * 0.43, h * 0.86)], fill=0, width=w // 18
    )
    return photo


def png_bytes(image: Image.Image, kind: str = "PNG", **options: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, kind, **options)
    return buf.getvalue()


# ---------------------------------------------------------------- probes


def flood(posts: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, server(Path(tmp)) as (_, port):
        db = Path(tmp) / "feedback.sqlite3"
        client, statuses, hangs = Client(port), Counter[int](), 0
        body = feedback_body(CANVAS)
        start = time.perf_counter()
        retry_after: set[str] = set()
        for _ in range(posts):
            try:
                status, answer, headers = client.post("/api/v1/feedback", body)
            except TimeoutError:
                hangs += 1
                continue
            statuses[status] += 1
            if status == 429:
                retry_after.add(headers.get("retry-after", "(none)"))
                assert "error" in answer
        seconds = time.perf_counter() - start
        accepted = statuses[201]
        grown = store_bytes(db)
        with sqlite3.connect(db) as con:
            row = con.execute("SELECT AVG(LENGTH(image) + LENGTH(seen)) FROM feedback").fetchone()
    # One large photo (a 3 MB JPEG, the most a 5 MB JSON body holds after base64), on a server
    # of its own (this client is past its rate on the first).
    photo = grainy_photo(1, (2400, 1800)).convert("RGB")
    jpeg = png_bytes(photo, "JPEG", quality=97)
    with tempfile.TemporaryDirectory() as tmp, server(Path(tmp)) as (_, port):
        before = store_bytes(Path(tmp) / "feedback.sqlite3")
        status, *_ = Client(port).post("/api/v1/feedback", feedback_body(jpeg, kind="jpeg"))
        photo_row = store_bytes(Path(tmp) / "feedback.sqlite3") - before
    other = sum(n for s, n in statuses.items() if s not in (201, 429))
    table(
        f"flood: {posts:,} corrections from one client, default settings (burst 100, 20/min)",
        [
            ("sent", f"{posts:,}"),
            ("201 stored", accepted),
            (
                "429 refused (Retry-After, s)",
                f"{statuses[429]:,} ({', '.join(sorted(retry_after))})",
            ),
            ("other 4xx / 5xx", f"{other} / {sum(n for s, n in statuses.items() if s >= 500)}"),
            ("hangs", hangs),
            ("seconds (posts/s)", f"{seconds:.1f} ({posts / seconds:,.0f}/s)"),
            ("store growth per accepted row", f"{grown / max(accepted, 1) / 1024:.1f} KB"),
            ("row blobs (upload + 28x28), mean", f"{row[0] / 1024:.1f} KB"),
            (f"a {len(jpeg) / 1e6:.1f} MB JPEG photo ({status})", f"{photo_row / 1024:.0f} KB"),
            ("largest possible row (ROW_MAX_BYTES)", f"{ROW_MAX_BYTES / 1024:.0f} KB"),
            ("total bound", "feedback_max_bytes (1 GiB) + the WAL (cut to 8 MB)"),
        ],
    )


class Writers:
    """N clients posting corrections until stopped; the ids of the 201s, the errors."""

    def __init__(self, port: int, clients: int):
        self.acked: list[int] = []
        self.errors: Counter[str] = Counter()
        self.lock, self.stop = threading.Lock(), threading.Event()
        self.threads = [threading.Thread(target=self.write, args=(port, k)) for k in range(clients)]
        for t in self.threads:
            t.start()

    def write(self, port: int, k: int) -> None:
        client, body = Client(port), feedback_body(CANVAS, label=k % 10)
        while not self.stop.is_set():
            try:
                status, answer, _ = client.post("/api/v1/feedback", body)
            except (OSError, http.client.HTTPException) as e:
                with self.lock:
                    self.errors[type(e).__name__] += 1
                time.sleep(0.05)
                continue
            with self.lock:
                if status == 201:
                    self.acked.append(answer["id"])
                else:
                    self.errors[str(status)] += 1

    def join(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(TIMEOUT)


def kill(clients: int, seconds: float, runs: int) -> None:
    print(f"\nkill -9 of `serve --workers 2` during {clients}-client feedback writes\n")
    print(
        "| run | 201s at the kill | acknowledged | stored | acknowledged, lost "
        "| stored, in flight (not acknowledged) | integrity_check | client errors |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for run in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            with server(Path(tmp), workers=2, feedback_per_minute=0) as (proc, port):
                writers = Writers(port, clients)
                time.sleep(seconds)
                with writers.lock:
                    at_kill = len(writers.acked)
                os.killpg(proc.pid, signal.SIGKILL)  # the supervisor and both workers
                proc.wait()
                writers.join()
            with sqlite3.connect(Path(tmp) / "feedback.sqlite3") as db:
                integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
                stored = {r[0] for r in db.execute("SELECT id FROM feedback")}
        acked = set(writers.acked)
        row = [run + 1, at_kill, len(acked), len(stored), len(acked - stored)]
        row += [len(stored - acked), integrity, dict(writers.errors)]
        print("| " + " | ".join(str(v) for v in row) + " |")


def disk() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        mount = Path(tmp) / "disk"
        mount.mkdir()
        mounted = os.geteuid() == 0 and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", str(mount)],
            capture_output=True,
        ).returncode == 0  # fmt: skip
        settings = {} if mounted else {"feedback_max_bytes": 2 * 1024 * 1024}
        how = "a 2 MB tmpfs" if mounted else "SIMULATED: no tmpfs mount here, a 2 MB store cap"
        results: list[tuple[str, object]] = []
        predict_body = json.dumps({"image": data_url(CANVAS)}).encode()
        try:
            with server(mount / "data", **settings, feedback_per_minute=0) as (_, port):
                fb, pr = Client(port), Client(port)
                statuses, predicted, first_full, answer = Counter[int](), Counter[int](), 0, {}
                for k in range(200):
                    body = feedback_body(png_bytes(grainy_photo(k)))
                    status, answer, _ = fb.post("/api/v1/feedback", body)
                    statuses[status] += 1
                    p_status, *_ = pr.post("/api/v1/predict", predict_body)
                    predicted[p_status] += 1
                    if status == 507 and not first_full:
                        first_full = k + 1
                    if statuses[507] >= 5:
                        break
                results += [
                    ("corrections sent", sum(statuses.values())),
                    (
                        "201 stored / 507 full",
                        f"{statuses[201]} / {statuses[507]} (first at #{first_full})",
                    ),
                    ("other statuses", {s: n for s, n in statuses.items() if s not in (201, 507)}),
                    ("507 body", json.dumps(answer)),
                    (
                        "/predict meanwhile: 200 of",
                        f"{predicted[200]} of {sum(predicted.values())}",
                    ),
                ]
            db_path = mount / "data" / "feedback.sqlite3"
            with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
                integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
                rows = db.execute("SELECT COUNT(*) FROM feedback").fetchone()[0]
            db.close()  # (the with block commits, it does not close)
            results.append(("stored rows == 201s; integrity_check", f"{rows}; {integrity}"))
            if mounted:  # read-only: the store above, and a new data dir, both still serve
                subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
                for name, where in [("the full store", "data"), ("a new data dir", "new")]:
                    with server(mount / where) as (_, port):
                        client = Client(port)
                        status, answer, _ = client.post("/api/v1/feedback", feedback_body(CANVAS))
                        p_status, *_ = client.post("/api/v1/predict", predict_body)
                        client.close()
                        ready = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
                        ready.request("GET", "/readyz")
                        answered = ready.getresponse()
                        readyz = f"{answered.status} {json.loads(answered.read())['status']}"
                    results += [
                        (f"read-only fs, {name}: server", "started"),
                        ("  /feedback", f"{status} {json.dumps(answer)}"),
                        ("  /predict, /readyz", f"{p_status}, {readyz}"),
                    ]
        finally:
            if mounted:
                subprocess.run(["umount", "-l", str(mount)], check=False)
    table(f"full disk: {how}", results)


def export(rows: int) -> None:
    digits = data.load_mnist("test")
    upload = image_png(Image.open(io.BytesIO(CANVAS)))
    with tempfile.TemporaryDirectory() as tmp:
        FeedbackStore(tmp).close()
        with sqlite3.connect(Path(tmp) / "feedback.sqlite3") as db:
            db.executemany(
                "INSERT INTO feedback (image, label, predicted, model, created, seen, status)"
                " VALUES (?, ?, NULL, 'bench', ?, ?, 'accepted')",
                (
                    (upload, int(digits.labels[i % 10_000]), now(),  # type: ignore[index]
                     seen_png(digits.images[i % 10_000] / 255))
                    for i in range(rows)
                ),
            )  # fmt: skip
        size = (Path(tmp) / "feedback.sqlite3").stat().st_size
        out = Path(tmp) / "out.csv"
        start = time.perf_counter()
        command = [*DIGITREC, "feedback", "export", "--data-dir", tmp, "-o", str(out)]
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
        lines = sum(1 for _ in out.open()) - 1 if status == 0 else 0
        csv_mb = out.stat().st_size / 1e6 if status == 0 else 0
    table(
        f"export: {rows:,} accepted rows, `digitrec feedback export` in a child process",
        [
            ("store", f"{size / 1e6:.1f} MB"),
            ("exit status", os.waitstatus_to_exitcode(status)),
            ("rows written", f"{lines:,}"),
            ("CSV", f"{csv_mb:.1f} MB"),
            ("seconds (interpreter start included)", f"{seconds:.1f}"),
            ("peak RSS", f"{usage.ru_maxrss / 1024:.0f} MB"),
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", default="flood,kill,disk,export", help="Default: all four.")
    parser.add_argument("--posts", type=int, default=2000, help="Flood posts (default 2000).")
    parser.add_argument("--clients", type=int, default=16, help="Kill probe writers (16).")
    parser.add_argument("--seconds", type=float, default=3.0, help="Writes before the kill (3).")
    parser.add_argument("--runs", type=int, default=2, help="Kill probe runs (default 2).")
    parser.add_argument("--rows", type=int, default=10_000, help="Export rows (default 10000).")
    args = parser.parse_args()
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    names = [line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")]
    cpu = names[0] if names else platform.processor()
    print(f"machine: {cpu}, {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}; "
          f"{time.strftime('%Y-%m-%d')}; python {platform.python_version()}")  # fmt: skip
    probes = args.probes.split(",")
    if "flood" in probes:
        flood(args.posts)
    if "kill" in probes:
        kill(args.clients, args.seconds, args.runs)
    if "disk" in probes:
        disk()
    if "export" in probes:
        export(args.rows)


if __name__ == "__main__":
    main()
