"""The server's side of answering on the device, in-process: the files the page loads (ONNX
Runtime Web as the lockfile says, with the MIME types a browser insists on), the model and
preprocessing named as one pair, the service worker at the root, and corrections sent twice
with one Idempotency-Key stored once (a restart in between included)."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from digitrec.feedback import FeedbackStore
from digitrec.serve.app import create_app
from digitrec.serve.settings import Settings
from tests.helpers import ROOT
from tests.helpers.app import drawn, png

STATIC = ROOT / "src" / "digitrec" / "serve" / "static"
LOCK = json.loads((ROOT / "tools" / "onnxruntime-web.lock.json").read_text())
SEVEN = [(70, 60), (210, 60), (120, 230)]  # a 7's strokes, as tests/feedback draws them


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(data_dir=tmp_path))) as c:  # the real default model
        yield c


def test_vendored_runtime_is_what_the_lockfile_says() -> None:
    folder = STATIC / "vendor" / "onnxruntime-web"
    assert sorted(p.name for p in folder.iterdir()) == sorted(LOCK["files"])
    for name, entry in LOCK["files"].items():
        data = (folder / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], name
    assert LOCK["tarball"].startswith("https://registry.npmjs.org/onnxruntime-web/-/")
    assert LOCK["version"] in LOCK["tarball"] and LOCK["integrity"].startswith("sha512-")
    assert "MIT License" in (folder / "LICENSE").read_text()


def test_page_files_are_served_with_their_types(client: TestClient) -> None:
    types = {
        "/static/vendor/onnxruntime-web/ort-wasm-simd-threaded.wasm": "application/wasm",
        "/static/vendor/onnxruntime-web/ort.wasm.bundle.min.mjs": "text/javascript",
        "/static/ondevice.js": "text/javascript",
        "/static/preprocess.js": "text/javascript",
        "/static/manifest.webmanifest": "application/manifest+json",
        "/static/icon-192.png": "image/png",
        "/sw.js": "text/javascript",
    }
    for path, kind in types.items():
        r = client.get(path)
        assert r.status_code == 200, path
        got = r.headers["content-type"].split(";")[0]
        assert got == kind or (kind, got) == ("text/javascript", "application/javascript"), path
    script = client.get("/").headers["content-security-policy"].split(";")[1]
    assert script.strip() == "script-src 'self' 'wasm-unsafe-eval'"


def test_the_model_and_its_preprocessing_come_as_a_pair(client: TestClient) -> None:
    info = client.get("/api/v1/model/ondevice").json()
    card = client.get("/api/v1/model").json()
    onnx_sha = next(v for k, v in card["sha256"].items() if k.endswith(".onnx"))
    assert info["name"] == card["name"] and info["sha256"] == onnx_sha
    assert info["uncertain_below"] == card.get("uncertain_below", 0.5)
    js = (STATIC / "preprocess.js").read_bytes()
    assert info["preprocess"] == hashlib.sha256(js).hexdigest()[:12]
    graph = client.get("/" + info["onnx"])
    assert graph.status_code == 200 and hashlib.sha256(graph.content).hexdigest() == onnx_sha
    assert "immutable" in graph.headers["cache-control"]
    assert client.get("/api/v1/model/onnx?sha256=" + "0" * 64).status_code == 404
    assert info["sha256"].startswith(client.get("/").headers["x-digitrec-model"].split("=")[1])


def feedback(client: TestClient, key: str | None, label: int = 7) -> Any:
    url = "data:image/png;base64," + base64.b64encode(png(drawn(SEVEN))).decode()
    headers = {"Idempotency-Key": key} if key else {}
    return client.post(
        "/api/v1/feedback", json={"image": url, "label": label, "predicted": 1}, headers=headers
    )


def test_a_correction_sent_again_with_its_key_is_stored_once(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(data_dir=tmp_path))) as c:
        first = feedback(c, "k-1")
        again = feedback(c, "k-1")
        other = feedback(c, "k-2")
        plain = [feedback(c, None), feedback(c, None)]  # no key: each is a new correction
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"] != other.json()["id"]
    assert all(r.status_code == 201 for r in plain)
    with TestClient(create_app(Settings(data_dir=tmp_path))) as c:  # the server restarted
        assert feedback(c, "k-1").json()["id"] == first.json()["id"]
    assert FeedbackStore(tmp_path).count() == 4
