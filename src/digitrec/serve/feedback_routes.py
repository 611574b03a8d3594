"""POST /api/v1/feedback: "it was a 7", kept for retraining (digitrec.feedback); and
POST /api/v1/feedback/reading: "it reads 21667, not 216674" for a number, with its boxes and
the edits (a digit changed, deleted, inserted, or the number typed), so that split and merge
errors become data too.

Worth keeping, and cheap to refuse: each client (connection address) may post `feedback_burst`
corrections of either kind at once, refilled at `feedback_per_minute` (429 with Retry-After past
it); an image without ink is a 422; the store is capped (`feedback_max_bytes`, 507 when full)
and a store that cannot write answers 503 while predictions go on. The image is decoded in the
same bounded pool as /predict and /read (the app's Runner), never in Starlette's 40-thread one.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from digitrec.feedback import Store, StoreError, stored_changes
from digitrec.serve import idempotency
from digitrec.serve.deps import PredictorDep, RunnerDep, StoreDep, decode_image_text
from digitrec.serve.schemas import (
    ERRORS,
    FEEDBACK_ERRORS,
    FeedbackIn,
    FeedbackOut,
    ReadingFeedbackIn,
    ReadingFeedbackOut,
)
from digitrec.vision.preprocess import MIN_SIDE, load_image, preprocess


class RateLimit:
    """A token bucket per client: `burst` posts at once, refilled at `per_minute`.

    In memory, per worker process (with `--workers N` a client spread over N workers gets up
    to N times the rate; the store's cap bounds the total whatever the rate). At most `clients`
    buckets are kept, the least recently seen forgotten first. `per_minute` 0: no limit.
    """

    def __init__(self, per_minute: float, burst: int, clients: int = 10_000):
        self.rate, self.burst, self.clients = per_minute / 60, burst, clients
        self.buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, when
        self.lock = threading.Lock()

    def take(self, client: str, at: float | None = None) -> float:
        """0 when a post is allowed (a token taken), else the seconds until one will be."""
        if self.rate <= 0:
            return 0.0
        at = time.monotonic() if at is None else at
        with self.lock:
            tokens, then = self.buckets.pop(client, (float(self.burst), at))
            tokens = min(float(self.burst), tokens + (at - then) * self.rate)
            wait = 0.0 if tokens >= 1 else (1 - tokens) / self.rate
            self.buckets[client] = (tokens - 1 if wait == 0 else tokens, at)
            if len(self.buckets) > self.clients:
                self.buckets.popitem(last=False)
        return wait


def rate_limit(app: Any) -> RateLimit:
    """The app's limiter, made from its settings on first use."""
    limiter = getattr(app.state, "feedback_limit", None)
    if limiter is None:
        settings = app.state.settings
        limiter = app.state.feedback_limit = RateLimit(
            settings.feedback_per_minute, settings.feedback_burst
        )
    return limiter


def error(status: int, what: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": what}, status_code=status, headers=headers)


def store_row(store: Store, body: FeedbackIn, model: str, max_bytes: int | None) -> int:
    """Decode, preprocess (ImageError: 413 / 415, 422 without ink) and store; in the pool."""
    image = load_image(decode_image_text(body.image), MIN_SIDE)  # a big photo decoded small
    return store.add(image, body.label, body.predicted, model, preprocess(image), max_bytes)


feedback = APIRouter(prefix="/api/v1", tags=["feedback"])


def refused(request: Request, store: Store) -> JSONResponse | None:
    """The 429 of a client past its rate, or the 503 of a store that cannot write: before the
    image is decoded."""
    client = request.client.host if request.client else "unknown"
    wait = rate_limit(request.app).take(client)
    if wait:
        return error(
            429,
            "too many corrections from this address; try again later",
            {"Retry-After": str(max(1, math.ceil(wait)))},
        )
    if not store.writable():
        return error(503, "the feedback store is unavailable; predictions still work")
    return None


@feedback.post(
    "/feedback", status_code=201, response_model=FeedbackOut, responses=ERRORS | FEEDBACK_ERRORS
)
async def post_feedback(
    request: Request, body: FeedbackIn, model: PredictorDep, store: StoreDep, run: RunnerDep
) -> Any:
    """Store a correction durably, as pending review: the 201 comes after the commit."""
    if (no := refused(request, store)) is not None:
        return no
    # A correction sent again with its Idempotency-Key is answered as before, not stored twice.
    key = idempotency.key_of(request.headers)
    keys = idempotency.keys_of(request.app) if key else None
    stored = await run(keys.claim, key) if keys and key else None
    if stored == idempotency.IN_FLIGHT:
        return error(409, "this correction is being stored; send it again in a moment")
    if stored is not None:
        return FeedbackOut(id=stored, label=body.label, predicted=body.predicted, model=model.name)
    try:
        row_id = await run(
            store_row, store, body, model.name, request.app.state.settings.feedback_max_bytes
        )
    except BaseException as e:
        if keys and key:
            await run(keys.release, key)
        if isinstance(e, StoreError):
            return error(e.status, f"{e}; predictions still work")
        raise
    if keys and key:
        await run(keys.done, key, row_id)
    return FeedbackOut(id=row_id, label=body.label, predicted=body.predicted, model=model.name)


def store_reading(store: Store, body: ReadingFeedbackIn, model: str, max_bytes: int | None) -> int:
    """Decode (the image at its own size: the boxes are in its pixels) and store; in the pool."""
    image = load_image(decode_image_text(body.image))
    changes = [c.model_dump(exclude_none=True) for c in body.changes]
    return store.add_reading(
        image, body.read, body.text, body.boxes, changes, model, body.drawing, max_bytes
    )


@feedback.post(
    "/feedback/reading",
    status_code=201,
    response_model=ReadingFeedbackOut,
    responses=ERRORS | FEEDBACK_ERRORS,
)
async def post_reading_feedback(
    request: Request, body: ReadingFeedbackIn, model: PredictorDep, store: StoreDep, run: RunnerDep
) -> Any:
    """Store a corrected number durably, as pending review: the image read, the boxes, the
    digits read, the number as the person says it is and the edits between them."""
    if (no := refused(request, store)) is not None:
        return no
    settings = request.app.state.settings
    try:
        row_id = await run(store_reading, store, body, model.name, settings.feedback_max_bytes)
    except StoreError as e:
        return error(e.status, f"{e}; predictions still work")
    changes = stored_changes(body.read, [c.model_dump() for c in body.changes])
    return ReadingFeedbackOut(
        id=row_id, read=body.read, text=body.text, changes=changes, model=model.name
    )
