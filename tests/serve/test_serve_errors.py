"""The HTTP contract's errors, in-process: bad input is a JSON 4xx, never a 500; the short lane
answers as the route does; body limits; a bug is a JSON 500 and the server goes on.

The predictor is a tiny fake swapped in with dependency_overrides; it runs the real
preprocessing, so bad images fail exactly as they would with the real model.
"""

from __future__ import annotations

import base64
import random
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from digitrec.predictor import Prediction
from digitrec.serve import routes
from tests.helpers.app import (
    RANDOM,
    SEVEN,
    FakePredictor,
    data_url,
    make_client,
)

# ---------------------------------------------------------------- fakes and images


class BrokenPredictor(FakePredictor):
    def predict(self, source: bytes) -> Prediction:
        raise RuntimeError("a bug, not the user's fault")


def bomb_png(side: int = 100_000) -> bytes:
    """A tiny PNG whose header claims side x side pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)  # 8-bit greyscale
    idat = zlib.compress(b"\0" * (side + 1) * 4)  # a few rows; the header is what matters
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


# ---------------------------------------------------------------- bad input


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
