"""What a public server meets: garbage, odd images, huge and slow requests, next to real users.

    python benchmarks/abuse.py --workers 2 --clients 32 --seconds 10

Starts `digitrec serve` on 127.0.0.1 (a free port, a temporary data dir), sends the strip
(below) to the fresh server, each on a new connection, and then runs, for --seconds, 32
keep-alive clients posting a drawn canvas (benchmarks/serve_load.py's load) alone, and again while
one thread per probe class sends its requests, one at a time. Then it prints a table per probe
class: sent, 2xx, 4xx, 5xx, hangs (no answer in --timeout s) and crashes (the connection cut
without an answer where one was due), and answer times (the probe's first, median, slowest);
and the canvas load's req/s, p50, p99 with no probes, and with them. Loopback only; bounded by
--seconds (and, at worst, --timeout per probe). The requests are built before the clock starts.

    python benchmarks/abuse.py --probes strip   # the canvas load beside the strips alone

Probe classes:
  garbage   the seeded corpus of bad requests (`bad_requests`, also tests/test_serve_hardening)
  odd       images in odd modes and depths (LAB TIFF, 16/32-bit PPM and TIFF, CMYK, 1-bit)
  strip     the 48 KB PNG of 1 x 25,000,000 pixels, on /predict and /read
  big-body  6 MB without Expect: 100-continue (over the 5 MB limit): the 413 must be readable
  headers   64 KB of headers, and 200 header fields
  slow-head headers sent a byte every 0.5 s (answered 408 at the server's header timeout)
  slow-body a body that never comes (408 at the body timeout)
  protocol  bytes that are not HTTP
  late-byte 2,200 connections held, each a GET whose body byte comes after the answer (and
            re-opened when closed): the connection limit must not lock real clients out
  idle      2,200 connections held that send nothing
  pipeline  100 canvas posts and then garbage in one packet: every answer, in order, then a 400
  bars      4 clients looping a 3 KB 1000x1000 PNG of thin bars on /predict (no drawing)
  tile      4 clients looping /read of MNIST digits tiled 60x60 (628 KB, 3,584 ink parts)
  webp      16 clients at once, each a 1 KB lossless WebP of 5000x5000, on /predict and /feedback
  close-413 6 MB with "Connection: close" by Python's urllib: the 413 must be readable
  no-host   HTTP/1.1 without Host (400), and a correction from another site's page (403)

    python benchmarks/abuse.py --worst-cases   # no server: /read's worst cases, in-process

prints, for each of WORST_CASES (many ink parts, parts that join last, long thin strokes, a
scribble, noise; --parts each, the server's cap being 300), the image, its ink parts and the
least time of --repeat reads (Predictor.read, as /read runs it, under a request's budget).

Each class runs alone beside the canvas load (--together: all at once, as before), and the
table gives, per class, the canvas req/s and p99 beside it, a fresh connection's /readyz p99
and failures (a new client, which a connection flood would lock out), and each worker's
largest RSS while it ran (sampled every 0.25 s).
"""

# ruff: noqa: E402
from __future__ import annotations

import sys

sys.path[:] = [p for p in sys.path if p != __file__.rpartition("/")[0]]  # `http`: the stdlib's

import argparse
import asyncio
import base64
import functools
import importlib.util
import io
import json
import os
import random
import select
import selectors
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from digitrec.vision import png

ROOT = Path(__file__).resolve().parents[1]
PATHS = ["/api/v1/predict", "/api/v1/read", "/api/v1/feedback"]
PROBES = [
    "garbage",
    "odd",
    "strip",
    "big-body",
    "headers",
    "slow-head",
    "slow-body",
    "protocol",
    "late-byte",
    "idle",
    "pipeline",
    "bars",
    "tile",
    "webp",
    "close-413",
    "no-host",
]
FLOOD = 2200  # connections the late-byte and idle probes hold


# ---------------------------------------------------------------- requests


def http_request(
    path: str,
    body: bytes = b"",
    content_type: str | None = None,
    method: str = "POST",
    **headers: str,
) -> bytes:
    head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    if content_type is not None:
        head.append(f"Content-Type: {content_type}")
    if method == "POST" or body:
        head.append(f"Content-Length: {len(body)}")
    head += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def png_bytes(image: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt)
    return buf.getvalue()


def drawn_seven() -> bytes:
    image = Image.new("RGBA", (280, 280), (0, 0, 0, 0))
    ImageDraw.Draw(image).line([(70, 60), (210, 60), (120, 230)], fill=(17, 17, 17, 255), width=20)
    return png_bytes(image)


@functools.cache
def strip_png() -> bytes:
    """A 48 KB PNG of 1 x 25,000,000 white pixels (within the 25-megapixel limit)."""
    return png.write(np.full((25_000_000, 1), 255, np.uint8), level=9)


def odd_images() -> dict[str, bytes]:
    """A drawn 7 in modes and depths the decoders treat each their own way."""
    base = Image.new("L", (120, 120), 255)
    ImageDraw.Draw(base).line([(30, 20), (90, 20), (50, 100)], fill=0, width=9)
    deep = np.asarray(base).astype(np.uint16) * 257
    grey = Image.new("L", base.size, 128)  # a and b of LAB: no colour
    out = {
        "LAB TIFF": png_bytes(Image.merge("LAB", [base, grey, grey]), "TIFF"),
        "CMYK TIFF": png_bytes(base.convert("CMYK"), "TIFF"),
        "1-bit PNG": png_bytes(base.convert("1")),
        "16-bit PNG": png_bytes(Image.fromarray(deep)),
        "16-bit PGM": b"P5\n120 120\n65535\n" + deep.astype(">u2").tobytes(),
        "16-bit PPM": b"P6\n120 120\n65535\n"
        + np.repeat(deep[..., None], 3, 2).astype(">u2").tobytes(),
        "32-bit int TIFF": png_bytes(Image.fromarray(deep.astype(np.int32)), "TIFF"),
        "32-bit float TIFF": png_bytes(Image.fromarray(deep.astype(np.float32) / 65535), "TIFF"),
        "PPM maxval 2^32-1": b"P5\n120 120\n4294967295\n" + deep.astype(">u4").tobytes(),
    }
    return out


def bad_requests(seed: int = 0, n: int = 1000) -> list[tuple[str, bytes]]:
    """`n` requests (name, the raw HTTP/1.1 bytes), well-formed HTTP with bad content: each must
    be answered with a 4xx JSON error on a connection that stays open. Seeded: the same list
    for the same seed."""
    rng = random.Random(seed)
    seven = drawn_seven()

    def image_json(text: object, **extra: object) -> bytes:
        return json.dumps({"image": text, **extra}).encode()

    def junk(limit: int = 3000) -> bytes:
        return rng.randbytes(rng.randrange(1, limit))

    kinds = [
        ("random image/png", lambda p: http_request(p, junk(), "image/png")),
        ("random octet-stream", lambda p: http_request(p, junk(), "application/octet-stream")),
        (
            "random base64",
            lambda p: http_request(
                p, image_json(base64.b64encode(junk()).decode(), label=3), "application/json"
            ),
        ),
        (
            "truncated PNG",
            lambda p: http_request(
                p,
                image_json(
                    "data:image/png;base64,"
                    + base64.b64encode(seven[: rng.randrange(1, 300)]).decode(),
                    label=1,
                ),
                "application/json",
            ),
        ),
        ("random JSON bytes", lambda p: http_request(p, junk(), "application/json")),
        (
            "deep JSON",
            lambda p: http_request(p, b"[" * rng.randrange(1000, 100_000), "application/json"),
        ),
        (
            "deep JSON object",
            lambda p: http_request(
                p,
                b'{"image": ' + b'{"a": ' * rng.randrange(1000, 20_000) + b"1",
                "application/json",
            ),
        ),
        (
            "huge number",
            lambda p: http_request(
                p,
                b'{"image": ' + b"9" * rng.randrange(4301, 20_000) + b', "label": 1}',
                "application/json",
            ),
        ),
        (
            "huge label",
            lambda p: http_request(
                p, b'{"image": "", "label": ' + b"7" * 5000 + b"}", "application/json"
            ),
        ),
        (
            "wrong types",
            lambda p: http_request(
                p,
                json.dumps(
                    {
                        "image": rng.choice(
                            [None, 1, [], {}, True, 1.5, "data:,", "data:image/png;base64,"]
                        ),
                        "label": rng.choice([None, "x", 1.5, True, -1, 10, [], 1e308]),
                    }
                ).encode(),
                "application/json",
            ),
        ),
        (
            "bad base64",
            lambda p: http_request(
                p,
                image_json("data:image/png;base64," + "@#!" * rng.randrange(1, 50)),
                "application/json",
            ),
        ),
        (
            "invalid UTF-8 JSON",
            lambda p: http_request(p, b'{"image": "\xff\xfe\xfd"}', "application/json"),
        ),
        ("multipart junk", lambda p: http_request(p, junk(), "multipart/form-data; boundary=abc")),
        ("multipart no boundary", lambda p: http_request(p, junk(), "multipart/form-data")),
        (
            "multipart no file",
            lambda p: http_request(
                p,
                b'--b\r\nContent-Disposition: form-data; name="x"\r\n\r\n1\r\n--b--\r\n',
                "multipart/form-data; boundary=b",
            ),
        ),
        (
            "wrong content type",
            lambda p: http_request(
                p, junk(), rng.choice(["text/plain", "application/xml", "text/html", "x/y"])
            ),
        ),
        ("no content type", lambda p: http_request(p, b"", None)),
        ("bomb header", lambda p: http_request(p, BOMB, "image/png")),
        ("strip", lambda p: http_request(p, strip_png(), "image/png")),
        (
            "method",
            lambda p: http_request(
                p, b"", None, method=rng.choice(["GET", "PUT", "DELETE", "PATCH"])
            ),
        ),
        (
            "unknown path",
            lambda p: http_request(p + "/" + rng.randbytes(4).hex(), b"{}", "application/json"),
        ),
        (
            "feedback bad label",
            lambda p: http_request(
                "/api/v1/feedback",
                image_json(
                    "data:image/png;base64," + base64.b64encode(seven).decode(),
                    label=rng.choice([-1, 10, "7", None, 3.5]),
                ),
                "application/json",
            ),
        ),
    ]
    out = []
    for i in range(n):
        name, make = kinds[i % len(kinds)]
        out.append((name, make(rng.choice(PATHS))))
    return out


def _bomb() -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 400_004))
        + chunk(b"IEND", b"")
    )


BOMB = _bomb()


# ---------------------------------------------------------------- a blocking HTTP/1.1 client


class Cut(Exception):
    """The connection ended before a whole answer came."""


def read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 answer (Content-Length framed, as every answer of the server's) from `sock`."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise Cut("closed before an answer")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise Cut("closed within an answer")
        body += chunk
    return int(lines[0].split()[1]), headers, body[:length]


def connect(port: int, timeout: float) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


# ---------------------------------------------------------------- probes


@dataclass
class Tally:
    sent: int = 0
    statuses: Counter = field(default_factory=Counter)
    hangs: int = 0
    crashes: int = 0
    slowest: float = 0.0
    notes: Counter = field(default_factory=Counter)
    times: list[float] = field(default_factory=list)  # s, each answer's, in the order sent

    def row(self, name: str) -> str:
        by = lambda lo: sum(n for s, n in self.statuses.items() if lo <= s < lo + 100)  # noqa: E731
        ms = [t * 1000 for t in self.times] or [float("nan")]
        return (
            f"{name:<10} {self.sent:>6} {by(200):>6} {by(400):>6} {by(500):>6} {self.hangs:>6} "
            f"{self.crashes:>7}   {ms[0]:>8.1f} {float(np.median(ms)):>8.1f} "
            f"{self.slowest * 1000:>8.1f}"
        )


def send_one(
    port: int,
    request: bytes,
    tally: Tally,
    timeout: float,
    sock: socket.socket | None,
    closes: bool = False,
) -> socket.socket | None:
    """Send one request (on `sock`, or a new connection) and read its answer into `tally`.
    Returns the connection when the server keeps it open."""
    tally.sent += 1
    start = time.perf_counter()
    try:
        sock = sock or connect(port, timeout)
        sock.sendall(request)
        status, headers, body = read_answer(sock)
    except TimeoutError:
        tally.hangs += 1
        sock and sock.close()
        return None
    except (OSError, Cut) as e:
        tally.crashes += 1
        tally.notes[type(e).__name__] += 1
        sock and sock.close()
        return None
    tally.times.append(time.perf_counter() - start)
    tally.slowest = max(tally.slowest, tally.times[-1])
    tally.statuses[status] += 1
    if status >= 400 and not body.startswith(b'{"error"'):
        tally.notes["not a JSON error"] += 1
    if status == 503:  # a refusal by design (connection limit, pixel budget), not a fault
        tally.notes["503 " + headers.get("retry-after", "no Retry-After")] += 1
    if headers.get("connection") == "close" or closes:
        sock.close()
        return None
    return sock


@functools.cache
def bars_png() -> bytes:
    """The 3 KB 1000x1000 PNG of thin bars that cost ~70 canvases in the shared batch."""
    image = Image.new("L", (1000, 1000), 255)
    draw = ImageDraw.Draw(image)
    for y in range(0, 970, 24):
        for x in range(0, 996, 12):
            draw.rectangle((x, y, x + 3, y + 29), fill=0)
    return png_bytes(image)


@functools.cache
def tile_png(n: int = 60) -> bytes:
    """MNIST test digits tiled n x n (36 px apart), dark on white: n^2 ink parts to segment."""
    from digitrec import data

    digits = data.load_mnist("test").images
    tile = np.zeros((n * 36, n * 36), np.uint8)
    for k in range(n * n):
        r, c = divmod(k, n)
        tile[r * 36 : r * 36 + 28, c * 36 : c * 36 + 28] = digits[k]
    return png_bytes(Image.fromarray(255 - tile))


# ---------------------------------------------------------------- /read's worst cases

# What makes segmentation work hardest, each with `parts` separate ink parts (at most the
# server's 300) at the size /read works at (a shorter side under 1024 px: not reduced).
WORST_CASES = {
    "digits": "MNIST digits tiled on a grid: every part a digit to cut and read",
    "dots": "a number among dots on a grid (parts of one digit, stacked in columns)",
    "late-joins": "a row of marks that join nothing, then a column of marks that join: the "
    "joins come last in a pairwise search",
    "lines": "long thin strokes, each under the one above (underlines; one tall part)",
    "wave": "one long wavy stroke, a period per part (40 px, less past 100): many candidate cuts",
    "noise": "a number in salt noise of `parts` specks (6 px: paper noise removal keeps them)",
}


def _mnist(k: int) -> np.ndarray:
    from digitrec import data

    images = data.load_mnist("test").images
    return images[k % len(images)]


def _number(ink: np.ndarray, x: int, y: int, scale: int = 3, digits: int = 3) -> None:
    """MNIST digits `scale` times as large, side by side, top-left at (x, y), into `ink`."""
    for k in range(digits):
        big = np.kron(_mnist(k), np.ones((scale, scale), np.uint8))
        h, w = big.shape
        window = ink[y : y + h, x + k * w : x + (k + 1) * w]
        np.maximum(window, big[: window.shape[0], : window.shape[1]], out=window)


def worst_case(kind: str, parts: int, seed: int = 0) -> bytes:
    """A PNG of one of WORST_CASES, dark ink on white, with about `parts` ink parts."""
    rng = np.random.default_rng(seed)
    n = max(1, parts)
    side = int(np.ceil(np.sqrt(n)))
    if kind == "digits":
        ink = np.zeros((side * 36, side * 36), np.uint8)
        for k in range(n):
            r, c = divmod(k, side)
            ink[r * 36 : r * 36 + 28, c * 36 : c * 36 + 28] = _mnist(k)
    elif kind == "dots":  # dots 18 px (0.2 of the digits' 84 px: not specks), 40 px apart
        ink = np.zeros((100 + side * 40, max(300, side * 40)), np.uint8)
        _number(ink, 0, 0)
        for k in range(n):
            r, c = divmod(k, side)
            ink[100 + r * 40 : 118 + r * 40, c * 40 : c * 40 + 18] = 255
    elif kind == "late-joins":  # dots 5 px: a row 8 px apart, a column 6 px apart
        half = (n + 1) // 2
        ink = np.zeros((30 + 6 * (n - half), 20 + 8 * half), np.uint8)
        for k in range(half):
            ink[2:7, 8 * k : 8 * k + 5] = 255
        for k in range(n - half):
            ink[20 + 6 * k : 25 + 6 * k, 8 * half + 10 : 8 * half + 15] = 255
    elif kind == "lines":  # 2 px strokes, 1 px apart, under a number
        ink = np.zeros((100 + 3 * n, 1500), np.uint8)
        _number(ink, 0, 0)
        for k in range(n):
            x0, x1 = sorted(rng.integers(0, 1500, 2))
            ink[100 + 3 * k : 102 + 3 * k, min(x0, 700) : max(x1, 800)] = 255
    elif kind == "wave":  # 3 px thick, at most 4,000 px long (a strip under 40:1)
        period = min(40.0, 4000 / n)
        image = Image.new("L", (round(period * n) + 20, 120), 0)
        x = np.arange(10, round(period * n) + 10)
        y = 60 + 50 * np.sin(2 * np.pi * x / period)
        ImageDraw.Draw(image).line(
            list(zip(x.tolist(), y.tolist(), strict=True)), fill=255, width=3
        )
        ink = np.asarray(image)
    elif kind == "noise":  # specks 6 px (smaller ones, ink_map takes for paper)
        ink = np.zeros((400, 400), np.uint8)
        _number(ink, 50, 150)
        for y, x in rng.integers(0, 394, (n, 2)):
            ink[y : y + 6, x : x + 6] = 255
    else:
        raise ValueError(f"unknown worst case {kind!r}; known: {', '.join(WORST_CASES)}")
    return png_bytes(Image.fromarray(255 - ink))


def read_seconds(image: bytes, predictor: object, repeat: int = 3) -> float:
    """The least time `predictor.read` takes on `image`, a 422 (a budget) counted as an answer."""
    from digitrec.errors import ImageError

    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        try:
            predictor.read(image)  # type: ignore[attr-defined]
        except ImageError as e:
            if e.status != 422:
                raise
        best = min(best, time.perf_counter() - start)
    return best


@functools.cache
def big_webp() -> bytes:
    """A lossless WebP of 5000x5000 white pixels: ~1 KB that decodes to 25 megapixels."""
    return png_bytes(Image.new("RGB", (5000, 5000), "white"), "WEBP")


def data_url(image: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(image).decode()


def flood(port: int, tally: Tally, until: float, late: bool) -> None:
    """Hold FLOOD connections until `until`: late-byte GETs (answered, then a body byte) or
    idle ones; a connection the server closes is counted (a close, not a crash) and re-opened."""
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1\r\n\r\n"
    held: dict[socket.socket, float] = {}
    watch = selectors.DefaultSelector()  # epoll: select() stops at fd 1024

    def opened() -> None:
        try:
            sock = connect(port, 5)
        except OSError:
            tally.notes["connect failed"] += 1
            return
        tally.sent += 1
        if late:
            try:
                sock.sendall(request)
                status, _, _ = read_answer(sock)
                tally.statuses[status] += 1
                sock.sendall(b"x")
            except (OSError, Cut, TimeoutError):
                tally.notes["closed before its answer"] += 1
                sock.close()
                return
        sock.setblocking(False)
        held[sock] = time.perf_counter()
        watch.register(sock, selectors.EVENT_READ)

    while len(held) < FLOOD and time.perf_counter() < until:
        opened()
    while time.perf_counter() < until:
        for key, _ in watch.select(0.2):
            sock = key.fileobj
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                tally.notes["closed by the server"] += 1
                tally.times.append(time.perf_counter() - held.pop(sock))
                watch.unregister(sock)
                sock.close()
                opened()
    for sock in held:
        sock.close()
    watch.close()
    tally.slowest = max(tally.times, default=0.0)


def pipeline(port: int, tally: Tally, timeout: float) -> None:
    """100 canvas posts then garbage, in one packet: 100 answers in order, then a JSON 400."""
    requests = b"".join(
        http_request("/api/v1/predict", drawn_seven(), "image/png", X_Request_ID=f"p{i}")
        for i in range(100)
    )
    start = time.perf_counter()
    tally.sent += 101
    try:
        with connect(port, timeout) as sock:
            sock.sendall(requests + b"GARBAGE\r\n\r\n")
            stream = sock.makefile("rb")
            for i in range(101):
                line = stream.readline()
                if not line:
                    tally.crashes += 101 - i  # unanswered
                    tally.notes["unanswered"] += 101 - i
                    break
                headers = {}
                while (field_ := stream.readline()) not in (b"\r\n", b""):
                    name, _, value = field_.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                stream.read(int(headers.get("content-length", "0")))
                status = int(line.split()[1])
                tally.statuses[status] += 1
                if i < 100 and headers.get("x-request-id") != f"p{i}":
                    tally.notes["out of order"] += 1
    except TimeoutError:
        tally.hangs += 1
    except OSError as e:
        tally.crashes += 1
        tally.notes[type(e).__name__] += 1
    tally.times.append(time.perf_counter() - start)
    tally.slowest = max(tally.slowest, tally.times[-1])


def urllib_413(port: int, tally: Tally, timeout: float) -> None:
    import urllib.error
    import urllib.request

    tally.sent += 1
    start = time.perf_counter()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/predict", b"\0" * (6 << 20), {"Content-Type": "image/png"}
    )
    try:
        urllib.request.urlopen(request, timeout=timeout).read()
        tally.statuses[200] += 1
    except urllib.error.HTTPError as e:
        tally.statuses[e.code] += 1
        if not e.read().startswith(b'{"error"'):
            tally.notes["not a JSON error"] += 1
    except TimeoutError:
        tally.hangs += 1
    except OSError as e:
        tally.crashes += 1
        tally.notes[getattr(e, "reason", e).__class__.__name__] += 1
    tally.times.append(time.perf_counter() - start)
    tally.slowest = max(tally.slowest, tally.times[-1])


def clients(n: int, name: str, port: int, until: float, timeout: float) -> Tally:
    """`n` clients of one probe at once (bars, tile, webp), their tallies summed."""
    parts = [Tally() for _ in range(n)]

    def one(k: int) -> None:
        tally, sock, i = parts[k], None, 0
        if name == "webp":  # all at once, twice: the memory peak
            feedback = json.dumps({"image": data_url(big_webp()), "label": 1}).encode()
            for request in (
                http_request("/api/v1/predict", big_webp(), "image/webp"),
                http_request("/api/v1/feedback", feedback, "application/json"),
            ):
                send_one(port, request, tally, timeout, None, closes=True)
            return
        request = (
            http_request("/api/v1/predict", bars_png(), "image/png")
            if name == "bars"
            else http_request("/api/v1/read", tile_png(), "image/png")
        )
        while time.perf_counter() < until:
            sock = send_one(port, request, tally, timeout, sock)
            i += 1
        if sock:
            sock.close()

    threads = [threading.Thread(target=one, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = Tally()
    for t in parts:
        total.sent += t.sent
        total.statuses.update(t.statuses)
        total.hangs += t.hangs
        total.crashes += t.crashes
        total.notes.update(t.notes)
        total.times += t.times
        total.slowest = max(total.slowest, t.slowest)
    return total


def probe(name: str, port: int, until: float, timeout: float) -> Tally:
    if name in ("bars", "tile"):
        return clients(4, name, port, until, timeout)
    if name == "webp":
        return clients(16, name, port, until, timeout)
    tally = Tally()
    if name in ("late-byte", "idle"):
        flood(port, tally, until, late=name == "late-byte")
        return tally
    rng = random.Random(name)
    # Built before the first is sent, and only for the probe that sends them.
    odd = list(odd_images().values()) if name == "odd" else []
    corpus = bad_requests(seed=1, n=2000) if name == "garbage" else []
    strips = [http_request(path, strip_png(), "image/png") for path in PATHS[:2]]
    big_body = http_request("/api/v1/predict", b"\0" * (6 * 1024 * 1024), "image/png")
    sock = None
    i = 0
    while time.perf_counter() < until:
        if name == "garbage":
            sock = send_one(port, corpus[i % len(corpus)][1], tally, timeout, sock)
        elif name == "odd":
            data = odd[i % len(odd)]
            sock = send_one(
                port,
                http_request(PATHS[i % 2], data, "application/octet-stream"),
                tally,
                timeout,
                sock,
            )
        elif name == "strip":
            sock = send_one(port, strips[i % 2], tally, timeout, sock)
        elif name == "big-body":
            sock = send_one(port, big_body, tally, timeout, sock)
        elif name == "headers":
            if i % 2:
                request = http_request("/healthz", method="GET", X_Big="a" * 65536)
            else:
                request = (
                    "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    + "".join(f"X-{k}: 1\r\n" for k in range(200))
                    + "\r\n"
                ).encode()
            send_one(port, request, tally, timeout, None, closes=True)
        elif name in ("slow-head", "slow-body"):
            slow(port, tally, timeout, body=name == "slow-body")
        elif name == "pipeline":
            pipeline(port, tally, timeout)
            time.sleep(0.2)
        elif name == "close-413":
            urllib_413(port, tally, timeout)
            time.sleep(0.2)
        elif name == "no-host":
            if i % 2:
                request = b"GET /healthz HTTP/1.1\r\n\r\n"
            else:
                body = json.dumps({"image": data_url(drawn_seven()), "label": 7}).encode()
                request = http_request(
                    "/api/v1/feedback", body, "application/json", Origin="https://evil.example"
                )
            send_one(port, request, tally, timeout, None, closes=True)
            time.sleep(0.05)
        elif name == "protocol":
            send_one(
                port,
                rng.randbytes(rng.randrange(20, 2000)) + b"\r\n\r\n",
                tally,
                timeout,
                None,
                closes=True,
            )
        i += 1
        if name in ("strip", "big-body", "odd"):
            time.sleep(0.05)  # a few a second, next to the drawings
    if sock:
        sock.close()
    return tally


def slow(port: int, tally: Tally, timeout: float, body: bool) -> None:
    """A client that sends its headers a byte every 0.5 s, or its body never: the server should
    answer 408 and close within its timeouts."""
    tally.sent += 1
    start = time.perf_counter()
    try:
        with connect(port, timeout) as sock:
            if body:
                sock.sendall(
                    http_request("/api/v1/predict", b"", "image/png").replace(
                        b"Content-Length: 0", b"Content-Length: 5000"
                    )
                    + b"abc"
                )
            else:
                for byte in b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 200:
                    if select.select([sock], [], [], 0.5)[0]:
                        break  # answered (408): read it, stop sending
                    sock.sendall(bytes([byte]))
                    if time.perf_counter() - start > timeout:
                        raise TimeoutError
            status, _, _ = read_answer(sock)
            tally.statuses[status] += 1
    except TimeoutError:
        tally.hangs += 1
    except (OSError, Cut) as e:
        tally.crashes += 1
        tally.notes[type(e).__name__] += 1
    tally.times.append(time.perf_counter() - start)
    tally.slowest = max(tally.slowest, tally.times[-1])


# ---------------------------------------------------------------- the run


def load_http_benchmark():
    spec = importlib.util.spec_from_file_location(
        "bench_http", ROOT / "benchmarks" / "serve_load.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def canvas_load(
    bench, port: int, clients: int, seconds: float
) -> tuple[float, float, int, list[str]]:
    request = bench.build_request("json", port, "predict")
    latencies, errors, _ = asyncio.run(bench.load(port, [request], clients, 0.5, seconds))
    latencies.sort()
    n = len(latencies)
    pct = lambda q: latencies[min(n - 1, int(q * n))] * 1000 if n else float("nan")  # noqa: E731
    return pct(0.5), pct(0.99), n, errors


class Watch:
    """Beside a phase: a new client's GET /readyz on a fresh connection every 0.1 s (its
    latency and failures), and each worker's RSS every 0.25 s (the largest kept)."""

    def __init__(self, bench, port: int, pid: int, until: float):
        self.latencies: list[float] = []
        self.failures: Counter = Counter()
        self.rss: dict[int, float] = {}
        self.thread = threading.Thread(target=self.run, args=(bench, port, pid, until))
        self.thread.start()

    def run(self, bench, port: int, pid: int, until: float) -> None:
        next_rss = 0.0
        while time.perf_counter() < until:
            if time.perf_counter() >= next_rss:
                for p, mb in bench.rss_mb(pid).items():
                    self.rss[p] = max(self.rss.get(p, 0.0), mb)
                next_rss = time.perf_counter() + 0.25
            start = time.perf_counter()
            try:
                with connect(port, 5) as sock:
                    sock.sendall(http_request("/readyz", method="GET"))
                    status, _, _ = read_answer(sock)
                if status == 200:
                    self.latencies.append(time.perf_counter() - start)
                else:
                    self.failures[status] += 1
            except (OSError, Cut) as e:
                self.failures[type(e).__name__] += 1
            time.sleep(0.1)

    def summary(self, pid: int) -> str:
        self.thread.join()
        ms = sorted(self.latencies) or [float("nan")]
        p99 = ms[min(len(ms) - 1, int(0.99 * len(ms)))] * 1000
        workers = sorted(mb for p, mb in self.rss.items() if p != pid)
        fails = sum(self.failures.values())
        return (
            f"readyz p99 {p99:6.1f} ms, {fails} failed"
            + (f" {dict(self.failures)}" if fails else "")
            + "; worker RSS peak "
            + ", ".join(f"{mb:.0f}" for mb in workers)
            + " MB"
        )


def machine() -> str:
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        "?",
    )
    return (
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; machine: {cpu}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}"
    )


def worst_cases(parts: int, repeat: int, model: str) -> None:
    """Each of WORST_CASES read in this process, as /read reads it under its budget."""
    from digitrec import work
    from digitrec.predictor import Predictor
    from digitrec.vision.imageops import label
    from digitrec.vision.preprocess import MIN_SIDE, ink_map, load_image
    from digitrec.vision.segment import INK

    predictor = Predictor.load(model)
    predictor.read(drawn_seven())  # loaded and warm
    images = {kind: worst_case(kind, parts) for kind in WORST_CASES}
    print(f"{machine()} at the start")
    print(f"model {predictor.name}; --parts {parts}, least of {repeat} reads each")
    print(f"{'worst case':<11} {'image':>10} {'KB':>5} {'ink parts':>9} {'read ms':>8}  answer")
    slowest = 0.0
    for kind, image in images.items():
        decoded = load_image(image, MIN_SIDE)
        count = label(ink_map(decoded) > INK)[1]
        token = work.current.set(work.Budget())
        try:
            seconds = read_seconds(image, predictor, repeat)
            try:
                answer = predictor.read(image)
                said = answer.text or answer.reason
            except Exception as e:  # a 422 of the budget: what /read would answer
                said = f"422 {e}"
        finally:
            work.current.reset(token)
        slowest = max(slowest, seconds)
        size = f"{decoded.width}x{decoded.height}"
        print(
            f"{kind:<11} {size:>10} {len(image) / 1024:>5.0f} {count:>9,} "
            f"{seconds * 1000:>8.0f}  {said}"
        )
    print(f"slowest: {slowest * 1000:.0f} ms an image; {machine()} at the end")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=2, help="server worker processes (default 2)")
    ap.add_argument("--clients", type=int, default=32, help="canvas clients (default 32)")
    ap.add_argument("--seconds", type=float, default=10, help="each phase, s (default 10)")
    ap.add_argument(
        "--timeout",
        type=float,
        default=15,
        help="a probe with no answer by then hangs (default 15 s)",
    )
    ap.add_argument(
        "--probes",
        default=",".join(PROBES),
        help="probe classes, comma-separated (default all: %(default)s)",
    )
    ap.add_argument(
        "--together", action="store_true", help="all probe classes at once, in one phase"
    )
    ap.add_argument(
        "--worst-cases", action="store_true", help="no server: time /read's worst cases"
    )
    ap.add_argument("--parts", type=int, default=290, help="ink parts a worst case (default 290)")
    ap.add_argument("--repeat", type=int, default=3, help="reads of each, the least counts (3)")
    ap.add_argument("--model", default="best", help="with --worst-cases (default best)")
    args = ap.parse_args()
    if args.worst_cases:
        worst_cases(args.parts, args.repeat, args.model)
        return
    bench = load_http_benchmark()
    port = bench.free_port()
    names = args.probes.split(",")
    unknown = set(names) - set(PROBES)
    if unknown:
        ap.error(f"unknown probe class {', '.join(sorted(unknown))}; known: {', '.join(PROBES)}")
    # The strip requests, built now: compressing 25,000,000 pixels takes 0.2-0.5 s, which is
    # the client's time, not the server's answer (built inside the clock, it was counted so).
    strips = [(path, http_request(path, strip_png(), "image/png")) for path in PATHS[:2] * 3]
    for name, build in (("bars", bars_png), ("tile", tile_png), ("webp", big_webp)):
        if name in names:
            build()
    env = dict(
        os.environ,
        DIGITREC_HEAD_TIMEOUT="5",
        DIGITREC_BODY_TIMEOUT="5",
        DIGITREC_FEEDBACK_PER_MINUTE="0",
    )
    phases = [names] if args.together else [[n] for n in names]
    results: list[tuple[str, dict[str, Tally], tuple, str]] = []
    with tempfile.TemporaryDirectory() as data_dir:
        cmd = bench.serve_command(port, args.workers, data_dir)
        log = open(Path(data_dir) / "server.log", "w+b")  # noqa: SIM115 (a pipe would fill)
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)
        try:
            bench.wait_healthy(f"http://127.0.0.1:{port}", proc)
            time.sleep(0.5 * args.workers)
            # The strip on the fresh, idle server (before any image): its answer time alone.
            strip_ms = []
            for path, request in strips:
                with connect(port, 10) as sock:
                    start = time.perf_counter()
                    sock.sendall(request)
                    status, _, body = read_answer(sock)
                    strip_ms.append(((time.perf_counter() - start) * 1000, path, status))
            watch = Watch(bench, port, proc.pid, time.perf_counter() + args.seconds + 1)
            calm = canvas_load(bench, port, args.clients, args.seconds)
            results.append(("canvas alone", {}, calm, watch.summary(proc.pid)))
            for phase in phases:
                until = time.perf_counter() + 0.5 + args.seconds
                watch = Watch(bench, port, proc.pid, until)
                tallies: dict[str, Tally] = {}
                threads = [
                    threading.Thread(
                        target=lambda n=n, t=tallies, u=until: t.__setitem__(
                            n, probe(n, port, u, args.timeout)
                        )
                    )
                    for n in phase
                ]
                for t in threads:
                    t.start()
                stormy = canvas_load(bench, port, args.clients, args.seconds)
                for t in threads:
                    t.join()
                label = "canvas + " + ("probes" if len(phase) > 1 else phase[0])
                results.append((label, tallies, stormy, watch.summary(proc.pid)))
                time.sleep(1)  # what the probe left (closing connections) settles
            alive = proc.poll() is None
            memory = bench.rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            log.seek(0)
            tracebacks = log.read().decode(errors="replace").count("Traceback")
            log.close()
    print(f"{machine()} at the end")
    print(
        f"server: --workers {args.workers}; "
        f"canvas load: {args.clients} clients, {args.seconds:g} s a phase"
    )
    print("1 x 25,000,000 PNG (48 KB) on the fresh server, each on a new connection:")
    for ms, path, status in strip_ms:
        print(f"  {path}: {status} in {ms:.1f} ms")
    print(
        f"\n{'probe':<10} {'sent':>6} {'2xx':>6} {'4xx':>6} {'5xx':>6} {'hangs':>6} "
        f"{'crashes':>7}   {'first ms':>8} {'median':>8} {'slowest':>8}"
    )
    for _, tallies, _, _ in results:
        for name, tally in tallies.items():
            print(tally.row(name) + ("   " + repr(dict(tally.notes)) if tally.notes else ""))
    print()
    for label, _, (p50, p99, n, errors), watched in results:
        print(
            f"{label:<20} {n / args.seconds:>7,.0f} req/s  p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  "
            f"errors {len(errors)}{' ' + str(Counter(errors)) if errors else ''}; {watched}"
        )
    print(
        f"server alive after: {alive}; tracebacks logged: {tracebacks}; RSS at the end: "
        + ", ".join(f"{mb:.0f} MB" for mb in sorted(memory.values()))
    )


if __name__ == "__main__":
    main()
