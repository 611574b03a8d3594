"""Prometheus metrics, shown by GET /metrics: requests and latency by route and status, batch
sizes, refusals by reason, the model serving, and what the model answered (answers by outcome
and by digit, their confidence): the figures that show drift.

With several worker processes (`digitrec serve --workers N`), each worker writes its figures to
files in the directory PROMETHEUS_MULTIPROC_DIR names (run_server makes one before the workers
start) and /metrics, whichever worker answers it, adds up those of all of them
(prometheus_client's multiprocess mode): the counts are the server's, not one worker's.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)

disable_created_metrics()  # no *_created series: each would double the lines /metrics shows

# Decided when prometheus_client is first imported: the workers inherit the variable.
MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

REQUESTS = Counter(
    "digitrec_requests", "HTTP requests answered, by route and status", ["route", "status"]
)
LATENCY = Histogram(
    "digitrec_request_seconds",
    "Time from a request's head to the end of its answer, by route",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
BATCH_SIZE = Histogram(
    "digitrec_batch_size",
    "Drawings preprocessed and answered together in one model call",
    buckets=(1, 2, 4, 8, 16, 32),
)
BATCH_ROUTE = Counter(
    "digitrec_predict_route",
    "Images on /predict by where they ran: the shared batch, the photo pool, or taken out of a "
    "batch for the pool (the cost model's guess of a canvas was wrong)",
    ["where"],
)
REJECTS = Counter(
    "digitrec_rejects",
    "Requests refused (4xx, or cut off by the server's HTTP limits), by reason",
    ["reason"],
)
MODEL = Gauge(
    "digitrec_model_info",
    "The model serving: its name and the sha256 of its ONNX graph (value 1)",
    ["name", "sha256"],
    multiprocess_mode="max",
)

# What the model answered, per image (a batch request counts each of its images), by the model's
# hash: the share of "uncertain" and "empty" answers, the digits and the confidence are what
# move when the images sent change (a new camera, a new form) or a new model behaves otherwise.
ANSWERS = Counter(
    "digitrec_answers",
    "Images answered, by route, outcome (digit, uncertain, empty, refused) and model (the "
    "first 12 hex digits of its ONNX graph's sha256)",
    ["route", "outcome", "model"],
)
DIGITS = Counter(
    "digitrec_digits",
    "Digits answered, by route, digit and model: /predict's answers that are a digit, and "
    "each digit of the numbers /read reads",
    ["route", "digit", "model"],
)
CONFIDENCE = Histogram(
    "digitrec_confidence",
    "Confidence of the answers with ink (a digit or uncertain), by route and model: the top "
    "probability; for /read, that of the whole number",
    ["route", "model"],
    buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 1.0),
)

# Why a request was refused, from its status (the {"error"} body says it in words).
REASONS = {
    400: "bad_request",  # HTTP the parser cannot read, or a Host not served (or none)
    403: "cross_site",  # a correction from another site's page, or without the API key
    404: "not_found",
    405: "method_not_allowed",
    408: "too_slow",  # headers or body not sent in time
    413: "too_large",  # body, image or pixel count
    415: "not_an_image",
    422: "malformed",  # JSON, base64, fields, an image that is no digit's shape
    429: "rate_limited",
    431: "headers_too_large",
}

_requests: dict[tuple[str, int], tuple[object, object]] = {}  # (route, status) -> children


def observe(route: str, status: int, seconds: float) -> None:
    """One answered request. The labelled children are kept: .labels() costs a microsecond."""
    children = _requests.get((route, status))
    if children is None:
        children = (REQUESTS.labels(route, str(status)), LATENCY.labels(route))
        _requests[(route, status)] = children
    children[0].inc()  # type: ignore[attr-defined]
    children[1].observe(seconds)  # type: ignore[attr-defined]
    if 400 <= status < 500:
        REJECTS.labels(REASONS.get(status, str(status))).inc()


def reject(reason: str) -> None:
    """A request refused below the app (serve/protocol.py): never reaches observe()."""
    REJECTS.labels(reason).inc()


def model_hash(model: object) -> str:
    """The first 12 hex digits of the model's ONNX graph's sha256 (from its card), as the
    X-Digitrec-Model header shows them; "unknown" when the card has none."""
    card = getattr(model, "card", None)
    sums = card.get("sha256") if isinstance(card, dict) else None
    if isinstance(sums, dict):
        for file, digest in sums.items():
            if str(file).endswith(".onnx"):
                return str(digest)[:12]
    return "unknown"


def answered(route: str, model: object, answer: object) -> None:
    """One image answered on `route`: a Prediction (`digit`, `confidence`, `reason`) or a
    Reading (`text`, `digits`, `confidence`, `reason`)."""
    sha = model_hash(model)
    reason = getattr(answer, "reason", None)
    outcome = reason if reason in ("empty", "uncertain") else "digit"
    ANSWERS.labels(route, outcome, sha).inc()
    if reason == "empty":
        return
    CONFIDENCE.labels(route, sha).observe(float(getattr(answer, "confidence", 0.0)))
    if hasattr(answer, "digits"):  # a number read: each of its digits
        if reason is None:
            for d in answer.digits:
                DIGITS.labels(route, str(d.digit), sha).inc()
    elif reason is None:
        DIGITS.labels(route, str(getattr(answer, "digit", "")), sha).inc()


def refused(route: str, model: object) -> None:
    """One image the model could not be asked about (not an image, too large, a strip)."""
    ANSWERS.labels(route, "refused", model_hash(model)).inc()


def model_serving(name: str, sha256: str) -> None:
    MODEL.labels(name, sha256).set(1)


def exposition() -> tuple[bytes, str]:
    """(body, content type) of GET /metrics."""
    if MULTIPROCESS:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
