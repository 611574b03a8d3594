"""The server as the internet meets it: bounded work per request, HTTP limits, zero 5xx on bad
input, hardening headers, readiness and metrics.

Most tests talk to a real uvicorn server on 127.0.0.1 (a thread, the project's HTTP protocol,
short timeouts) over raw sockets, so that what they see is what a client sees: the status, the
JSON error, and whether the connection is still open after it. The bad requests come from the
seeded generator that benchmarks/abuse.py also uses.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from digitrec.errors import ImageError
from digitrec.serve import Settings, create_app
from digitrec.serve.batch import batched
from digitrec.vision import preprocess
from tests.helpers.server import SEVEN, Server, abuse, is_json_error, metric


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with Server(tmp_path_factory.mktemp("server"), feedback_per_minute=0) as s:
        yield s


def still_open(server: Server, sock: socket.socket) -> bool:
    status, headers, _ = server.ask(sock, abuse.http_request("/healthz", method="GET"))
    return status == 200 and headers.get("connection") != "close"


# ---------------------------------------------------------------- bounded work per request


def test_a_thin_strip_is_refused_from_its_header_before_decoding(server: Server) -> None:
    strip = abuse.strip_png()
    assert len(strip) < 64 * 1024
    with pytest.raises(ImageError, match="strip") as e:
        preprocess.load_image(strip, preprocess.MIN_SIDE)
    assert e.value.status == 422
    with server.connect() as sock:
        for path in ("/api/v1/predict", "/api/v1/read"):
            status, _, body = server.ask(sock, abuse.http_request(path, strip, "image/png"))
            assert status == 422 and "strip" in json.loads(body)["error"]
        assert still_open(server, sock)
    # Not every long image: a number written on a strip 30 times longer than high is read.
    assert preprocess.load_image(abuse.png_bytes(Image.new("L", (3000, 100), 255))).size == (
        3000,
        100,
    )


def test_only_drawings_join_the_shared_batch() -> None:
    """A request that may run long (a photo, a big canvas, a strip of few bytes) is answered
    beside the batches of drawings, never inside one: judged from the header."""
    assert batched(SEVEN)
    assert not batched(abuse.strip_png())  # 48 KB, 25 megapixels
    big_canvas = abuse.png_bytes(Image.new("RGBA", (2000, 2000), (0, 0, 0, 0)))
    assert len(big_canvas) < 256 * 1024 and not batched(big_canvas)
    photo = abuse.png_bytes(Image.new("RGB", (1000, 800), "white"), "JPEG")
    assert not batched(photo)
    assert batched(abuse.png_bytes(Image.new("L", (200, 200), 255), "JPEG"))


# ---------------------------------------------------------------- zero 5xx on client input


@pytest.mark.parametrize("name", list(abuse.odd_images()))
def test_odd_image_modes_are_answered_never_a_500(server: Server, name: str) -> None:
    data = abuse.odd_images()[name]
    with server.connect() as sock:
        for path in ("/api/v1/predict", "/api/v1/read"):
            status, _, body = server.ask(sock, abuse.http_request(path, data, "image/tiff"))
            assert status in (200, 415, 422), (path, status, body)
            if status != 200:
                assert is_json_error(body)
        assert still_open(server, sock)


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000,
        b'{"image": ' + b'{"a": ' * 5000 + b"1",
        b'{"image": ' + b"9" * 5000 + b"}",
        b'{"image": "", "label": ' + b"7" * 5000 + b"}",
    ],
    ids=["deep list", "deep object", "5000-digit image", "5000-digit label"],
)
def test_deep_json_and_huge_numbers_are_422(server: Server, body: bytes) -> None:
    with server.connect() as sock:
        for path in abuse.PATHS:
            status, _, answer = server.ask(sock, abuse.http_request(path, body, "application/json"))
            assert 400 <= status < 500 and is_json_error(answer), (path, status, answer)
        assert still_open(server, sock)


def test_a_generated_corpus_of_bad_requests_is_all_4xx_on_open_connections(
    server: Server,
) -> None:
    corpus = abuse.bad_requests(seed=20, n=1200)
    assert len({name for name, _ in corpus}) >= 20  # many kinds, not one repeated
    statuses: dict[int, int] = {}
    failures = []
    with server.connect() as sock:
        for name, request in corpus:
            status, headers, body = server.ask(sock, request)
            statuses[status] = statuses.get(status, 0) + 1
            if not (400 <= status < 500 and is_json_error(body)):
                failures.append((name, status, body[:100]))
            assert headers.get("connection") != "close", (name, status, body)
        assert still_open(server, sock)  # one connection carried all 1,200
    assert not failures, failures[:5]
    assert set(statuses) >= {404, 405, 413, 415, 422}


# ---------------------------------------------------------------- HTTP limits


def test_headers_too_large_or_too_many_are_431_and_the_worker_goes_on(server: Server) -> None:
    huge = abuse.http_request("/healthz", method="GET", X_Big="a" * (64 * 1024 * 1024))
    many = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-A: 1\r\n" * 200 + b"\r\n"
    for request in (huge, many):
        with server.connect() as sock:
            with contextlib.suppress(OSError):  # the server stopped reading: its answer is there
                sock.sendall(request)
            status, headers, body = abuse.read_answer(sock)
            assert status == 431 and headers["connection"] == "close" and is_json_error(body)
    with server.connect() as sock:
        assert still_open(server, sock)


def test_slow_headers_and_slow_bodies_time_out_with_408(server: Server) -> None:
    requests = [
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaa",  # headers never finished
        abuse.http_request("/api/v1/predict", b"", "image/png").replace(
            b"Content-Length: 0", b"Content-Length: 5000"
        ),  # a body that never comes
    ]
    for request in requests:
        with server.connect() as sock:
            start = time.monotonic()
            sock.sendall(request)
            status, headers, body = abuse.read_answer(sock)
            assert status == 408 and is_json_error(body)
            assert time.monotonic() - start < 5  # LIMITS: 1 s
    with server.connect() as sock:  # a connection that sends nothing is closed too
        start = time.monotonic()
        status, _, _ = abuse.read_answer(sock)
        assert status == 408 and time.monotonic() - start < 5


def test_a_body_over_the_limit_gets_a_readable_413_without_expect_continue(
    server: Server,
) -> None:
    big = abuse.http_request("/api/v1/predict", b"\0" * (6 * 1024 * 1024), "image/png")
    with server.connect() as sock:
        status, headers, body = server.ask(sock, big)  # all sent before the answer is read
        assert status == 413 and "limit" in json.loads(body)["error"]
        assert still_open(server, sock)  # the rest of the body was read and dropped
    # Past the discard bound (LIMITS: 8 MB) the connection is closed, after the answer.
    bigger = abuse.http_request("/api/v1/predict", b"\0" * (20 * 1024 * 1024), "image/png")
    with server.connect() as sock:
        with contextlib.suppress(OSError):
            sock.sendall(bigger)
        status, _, body = abuse.read_answer(sock)
        assert status == 413 and is_json_error(body)


def test_bytes_that_are_not_http_get_a_json_400(server: Server) -> None:
    with server.connect() as sock:
        status, headers, body = server.ask(sock, b"\x16\x03\x01 hello\r\n\r\n")
        assert status == 400 and headers["connection"] == "close" and is_json_error(body)


# ---------------------------------------------------------------- headers, docs, host


def test_hardening_headers_on_the_page_the_api_and_the_fast_lane(tmp_path: Path) -> None:
    with client(tmp_path) as c:
        answers = [
            c.get("/"),
            c.get("/healthz"),
            c.post("/api/v1/predict", content=SEVEN, headers={"content-type": "image/png"}),
            c.post("/api/v1/read", files={"file": ("7.png", SEVEN, "image/png")}),
            c.post("/api/v1/predict", json={"image": 5}),
        ]
        for r in answers:
            policy = r.headers["content-security-policy"]
            script = next(p for p in policy.split(";") if p.strip().startswith("script-src"))
            assert "'unsafe-inline'" not in script and "'unsafe-eval'" not in script
            assert "frame-ancestors 'none'" in policy
            assert r.headers["x-content-type-options"] == "nosniff"
            assert r.headers["x-frame-options"] == "DENY"
            assert r.headers["referrer-policy"] == "no-referrer"
            assert r.headers["x-digitrec-model"].startswith("fake-net")
            assert r.headers["x-request-id"]
        assert c.get("/", headers={"x-request-id": "abc-123"}).headers["x-request-id"] == "abc-123"
        # The page has no inline script or style that the policy would block.
        page = answers[0].text
        assert "<script>" not in page and "<style" not in page and " style=" not in page


def test_docs_are_served_from_this_server(tmp_path: Path) -> None:
    with client(tmp_path) as c:
        page = c.get("/docs")
        assert page.status_code == 200
        assert "http://" not in page.text and "https://" not in page.text
        scripts = page.text.split("<script")[1:]
        assert scripts and all(s.lstrip().startswith("src=") for s in scripts)  # none inline
        for asset in ("/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css"):
            assert c.get(asset).status_code == 200
        init = c.get("/docs/init.js")
        assert init.status_code == 200 and "/openapi.json" in init.text
        assert c.get("/openapi.json").json()["paths"]


def test_the_host_allowlist_is_off_by_default_and_a_setting(tmp_path: Path) -> None:
    with client(tmp_path) as c:
        assert c.get("/healthz", headers={"host": "anything.example"}).status_code == 200
    with client(tmp_path, allowed_hosts=["digits.example.org", "*.digits.example.org"]) as c:
        r = c.get("/healthz", headers={"host": "evil.example"})
        assert r.status_code == 400 and "Host" in r.json()["error"]
        assert c.get("/healthz", headers={"host": "digits.example.org:443"}).status_code == 200
        assert c.get("/healthz", headers={"host": "a.digits.example.org"}).status_code == 200


# ---------------------------------------------------------------- readiness, metrics, log


def test_readyz_says_whether_the_model_and_the_store_are_ready(tmp_path: Path) -> None:
    """Ready for predictions (200, a load balancer keeps routing), degraded for corrections
    when the store cannot take them, with the reason; not ready (503) without a model."""
    with client(tmp_path) as c:
        r = c.get("/readyz")
        assert r.status_code == 200
        assert r.json() == {
            "status": "ready",
            "model": "fake-net",
            "store": "writable",
            "store_writable": True,
        }
        store = c.app.state.store  # type: ignore[attr-defined]
        store.problem = lambda: "the feedback database is unreachable"
        r = c.get("/readyz")
        assert r.status_code == 200 and r.json() == {
            "status": "degraded",
            "model": "fake-net",
            "store": "the feedback database is unreachable",
            "store_writable": False,
        }
        assert c.get("/healthz").status_code == 200  # alive all the same
    app = create_app(Settings(data_dir=tmp_path / "later"))
    r = TestClient(app).get("/readyz")  # the lifespan has not run: no model, no store yet
    assert r.status_code == 503
    assert r.json() == {
        "status": "not ready",
        "model": None,
        "store": "no feedback store",
        "store_writable": False,
    }


def test_metrics_count_requests_by_route_and_status_the_lane_included(tmp_path: Path) -> None:
    with client(tmp_path) as c:
        before = c.get("/metrics").text
        for _ in range(3):  # the lane (a raw PNG body)
            assert (
                c.post(
                    "/api/v1/predict", content=SEVEN, headers={"content-type": "image/png"}
                ).status_code
                == 200
            )
        assert c.post("/api/v1/predict", json={"image": "@@"}).status_code == 422
        assert c.post("/api/v1/read", files={"file": ("7.png", SEVEN, "image/png")}).is_success
        r = c.get("/metrics")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        after = r.text
    ok = 'digitrec_requests_total{route="/api/v1/predict",status="200"}'
    assert metric(after, ok) - metric(before, ok) == 3
    bad = 'digitrec_rejects_total{reason="malformed"}'
    assert metric(after, bad) - metric(before, bad) == 1
    read = 'digitrec_request_seconds_count{route="/api/v1/read"}'
    assert metric(after, read) - metric(before, read) == 1
    assert (
        metric(after, "digitrec_batch_size_count") - metric(before, "digitrec_batch_size_count")
        >= 1
    )
    assert 'digitrec_model_info{name="fake-net"' in after


def test_the_access_log_is_json_with_the_request_id(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    access = logging.getLogger("digitrec.access")
    with client(tmp_path, access_log=True) as c, caplog.at_level(logging.INFO, "digitrec.access"):
        access.addHandler(caplog.handler)  # it does not propagate: one line per request
        try:
            r = c.get("/healthz", headers={"x-request-id": "req-42"})
        finally:
            access.removeHandler(caplog.handler)
    assert not access.propagate
    lines = [
        json.loads(rec.getMessage()) for rec in caplog.records if rec.name == "digitrec.access"
    ]
    assert lines and lines[-1]["request_id"] == "req-42" == r.headers["x-request-id"]
    assert lines[-1]["path"] == "/healthz" and lines[-1]["status"] == 200


def client(tmp_path: Path, **settings: object) -> TestClient:
    from digitrec.serve.deps import get_predictor
    from tests.helpers.app import FakePredictor

    app = create_app(Settings(data_dir=tmp_path, **settings))  # type: ignore[arg-type]
    predictor = FakePredictor()
    app.dependency_overrides[get_predictor] = lambda: predictor
    return TestClient(app, raise_server_exceptions=False)


def test_png_size_reads_the_header_alone() -> None:
    from digitrec.vision import png

    assert png.size(SEVEN) == (280, 280)
    assert png.size(abuse.strip_png()) == (1, 25_000_000)
    assert png.size(b"GIF89a" + b"\0" * 30) is None
    assert png.size(io.BytesIO(SEVEN).read(20)) is None
