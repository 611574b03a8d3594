"""Several images in one request, the answers /metrics counts, HEAD: on the real app with the
shipped default model (serve/many.py, serve/routes.py, serve/metrics.py)."""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from digitrec.serve.app import create_app
from digitrec.serve.many import MAX_IMAGES
from digitrec.serve.settings import Settings
from tests.helpers import ROOT

SEVEN = (ROOT / "benchmarks" / "canvas7.png").read_bytes()  # a 7 drawn in Chromium
NUMBER = (ROOT / "tests" / "realworld" / "numbers_000_canvas_plain.png").read_bytes()  # "526"


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


BLANK = png(Image.new("L", (64, 64), 255))  # white paper, no ink
# A written number sent as one digit: the default model is unsure of it (0.38, 2026-12-06).


def unsure_image() -> bytes:
    """A written number the serving model will not take for one digit: uncertain (which of
    the generated numbers that is depends on the model, so the model is asked)."""
    from digitrec.predictor import Predictor

    predictor = Predictor.load()
    numbers = sorted((ROOT / "tests" / "realworld").glob("numbers_*_canvas_*.png"))
    return next(p.read_bytes() for p in numbers if predictor.predict(p).reason == "uncertain")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    app = create_app(Settings(data_dir=tmp_path_factory.mktemp("store")))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def test_several_images_by_multipart_or_json_answer_in_order_each_with_its_error(
    client: TestClient,
) -> None:
    single = client.post("/api/v1/predict", files={"file": ("7.png", SEVEN, "image/png")}).json()
    uploads = [
        ("files", ("a.png", SEVEN, "image/png")),
        ("files", ("b.txt", b"not an image", "text/plain")),
        ("files", ("c.png", BLANK, "image/png")),
    ]
    r = client.post("/api/v1/predict", files=uploads)
    assert r.status_code == 200
    first, second, third = r.json()["answers"]
    assert first == single  # the one-image answer, unchanged
    assert second["status"] == 415 and "not an image" in second["error"]
    assert third["digit"] is None and third["reason"] == "empty"
    # `file` sent twice is several images too (curl -F file=@a -F file=@b)
    twice = [("file", ("a.png", SEVEN, "image/png")), ("file", ("b.png", BLANK, "image/png"))]
    r = client.post("/api/v1/predict", files=twice)
    assert [a["digit"] for a in r.json()["answers"]] == [7, None]
    # JSON: a data URL, bare base64, and an item that is no base64
    body = {"images": [f"data:image/png;base64,{b64(SEVEN)}", b64(BLANK), "@@"]}
    answers = client.post("/api/v1/predict", json=body).json()["answers"]
    assert answers[0] == single and answers[1]["reason"] == "empty"
    assert answers[2] == {"error": "image: not valid base64", "status": 422}


def test_read_takes_several_images_too(client: TestClient) -> None:
    one = client.post("/api/v1/read", json={"image": b64(NUMBER)}).json()
    assert one["text"] == "526"
    r = client.post("/api/v1/read", json={"images": [b64(NUMBER), b64(BLANK), b64(b"GIF8")]})
    assert r.status_code == 200
    number, blank, broken = r.json()["answers"]
    assert number == one and blank["text"] is None and blank["reason"] == "empty"
    assert broken["status"] == 415
    files = [("files", ("n.png", NUMBER, "image/png")), ("files", ("n2.png", NUMBER, "image/png"))]
    assert [a["text"] for a in client.post("/api/v1/read", files=files).json()["answers"]] == [
        "526",
        "526",
    ]


def test_the_count_and_the_form_of_several_images_are_bounded(client: TestClient) -> None:
    too_many = {"images": [b64(SEVEN)] * (MAX_IMAGES + 1)}
    r = client.post("/api/v1/predict", json=too_many)
    message = f"{MAX_IMAGES + 1} images in one request: at most {MAX_IMAGES}"
    assert (r.status_code, r.json()) == (422, {"error": message})
    files = [("files", (f"{i}.png", BLANK, "image/png")) for i in range(MAX_IMAGES + 1)]
    assert client.post("/api/v1/read", files=files).status_code == 422
    for bad in ({"images": []}, {"images": "abc"}):
        r = client.post("/api/v1/predict", json=bad)
        assert r.status_code == 422 and "list" in r.json()["error"]
    r = client.post("/api/v1/predict", files={"upload": ("7.png", SEVEN, "image/png")})
    assert r.status_code == 422 and "'files'" in r.json()["error"]
    r = client.post("/api/v1/read", files={"files": (None, "not a file")})  # a text part
    assert (r.status_code, r.json()) == (
        422,
        {"error": "multipart field 'files' takes image files, not text"},
    )
    for path in ("/api/v1/predict", "/api/v1/feedback"):  # JSON that is not even UTF-8
        r = client.post(path, content=b"\xff\xfe{", headers={"content-type": "application/json"})
        assert (r.status_code, r.json()) == (422, {"error": "body is not valid JSON"}), path
    # The total size is the body limit's: one request over it is a 413 as always.
    small = create_app(Settings(data_dir=client.app.state.settings.data_dir, max_body_bytes=4096))
    with TestClient(small) as c:
        r = c.post("/api/v1/predict", json={"images": [b64(SEVEN)] * 3})
        assert r.status_code == 413


def test_the_openapi_schema_says_several_images_and_their_answers(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    for path in ("/api/v1/predict", "/api/v1/read"):
        post = schema["paths"][path]["post"]
        content = post["requestBody"]["content"]
        files = content["multipart/form-data"]["schema"]["properties"]["files"]
        assert files["maxItems"] == MAX_IMAGES
        forms = content["application/json"]["schema"]["oneOf"]
        assert [sorted(f["required"]) for f in forms] == [["image"], ["images"]]
        answer = post["responses"]["200"]["content"]["application/json"]["schema"]
        refs = {a["$ref"].rsplit("/", 1)[1] for a in answer["anyOf"]}
        assert refs in ({"PredictionOut", "PredictionsOut"}, {"ReadingOut", "ReadingsOut"})
    several = schema["components"]["schemas"]["PredictionsOut"]["properties"]["answers"]
    assert {i["$ref"].rsplit("/", 1)[1] for i in several["items"]["anyOf"]} == {
        "PredictionOut",
        "ImageErrorOut",
    }


def sample(metrics: str, name: str, **labels: str) -> float:
    """A sample's value in Prometheus text (0 when absent)."""
    for line in metrics.splitlines():
        if line.startswith(name + "{"):
            found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
            if all(found.get(k) == v for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_answers_by_outcome_digit_and_model(client: TestClient) -> None:
    model = client.head("/healthz").headers["x-digitrec-model"].split("sha256=")[1]
    route = "/api/v1/predict"

    def counts() -> dict[str, float]:
        text = client.get("/metrics").text
        out = {
            o: sample(text, "digitrec_answers_total", route=route, outcome=o, model=model)
            for o in ("digit", "uncertain", "empty", "refused")
        }
        out["7"] = sample(text, "digitrec_digits_total", route=route, digit="7", model=model)
        out["confident"] = sample(
            text, "digitrec_confidence_bucket", route=route, model=model, le="0.5"
        )
        out["answers with ink"] = sample(
            text, "digitrec_confidence_count", route=route, model=model
        )
        return out

    before = counts()
    images = [b64(SEVEN), b64(SEVEN), b64(BLANK), b64(unsure_image()), b64(b"not an image"), "@@"]
    answers = client.post(route, json={"images": images}).json()["answers"]
    client.post(route, json={"image": b64(SEVEN)})  # the one-image lane counts the same
    after = counts()
    outcomes = [a.get("reason") or ("refused" if "error" in a else "digit") for a in answers]
    outcomes.append("digit")
    assert outcomes.count("uncertain") >= 1 and outcomes.count("refused") == 2
    for outcome in ("digit", "uncertain", "empty", "refused"):
        assert after[outcome] - before[outcome] == outcomes.count(outcome), outcome
    sevens = sum(a.get("digit") == 7 for a in answers) + 1
    assert after["7"] - before["7"] == sevens >= 3
    inked = outcomes.count("digit") + outcomes.count("uncertain")
    assert after["answers with ink"] - before["answers with ink"] == inked  # not the empty one
    # at or under 0.5: the uncertain ones only (the 7s are sure)
    assert after["confident"] - before["confident"] == outcomes.count("uncertain")
    read = client.post("/api/v1/read", json={"image": b64(NUMBER)})
    assert read.json()["text"] == "526"
    text = client.get("/metrics").text
    assert sample(text, "digitrec_digits_total", route="/api/v1/read", digit="5", model=model) >= 1


@pytest.mark.parametrize("path", ["/", "/healthz", "/readyz", "/metrics", "/docs", "/api/v1/model"])
def test_head_is_answered_wherever_get_is(client: TestClient, path: str) -> None:
    get, head = client.get(path), client.head(path)
    assert head.status_code == get.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]
    assert "head" not in client.get("/openapi.json").json()["paths"].get(path, {})
