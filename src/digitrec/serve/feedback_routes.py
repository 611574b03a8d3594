"""POST /api/v1/feedback: "it was a 7", kept for retraining (digitrec.feedback); and
POST /api/v1/feedback/reading: "it reads 21667, not 216674" for a number, with its boxes and
the edits (a digit changed, deleted, inserted, or the number typed), so that split and merge
errors become data too.

Worth keeping, and cheap to refuse: each client (serve/ratelimit.py: its address, by /64 for
IPv6) may post `feedback_burst` corrections of either kind at once, refilled at
`feedback_per_minute` (429 with Retry-After past it), counted over all workers; an image
without ink is a 422; the store is capped (`feedback_max_bytes`, 507 when full) and a store that
cannot write answers 503 while predictions go on. The image is decoded in the same bounded pool
as /predict and /read (the app's Runner), never in Starlette's 40-thread one.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from digitrec.feedback.rows import Store, StoreError, stored_changes
from digitrec.serve import idempotency
from digitrec.serve.deps import PredictorDep, RunnerDep, StoreDep, decode_image_text
from digitrec.serve.ratelimit import Limit, client_id, make_limit
from digitrec.serve.ratelimit import MemoryLimit as RateLimit  # noqa: F401 (its old name)
from digitrec.serve.schemas import (
    ERRORS,
    FEEDBACK_ERRORS,
    FeedbackIn,
    FeedbackOut,
    ReadingFeedbackIn,
    ReadingFeedbackOut,
)
from digitrec.vision.preprocess import MIN_SIDE, load_image, preprocess


def rate_limit(app: Any) -> Limit:
    """The app's limiter, made from its settings on first use (shared by the workers and, on
    PostgreSQL, the replicas: serve/ratelimit.py)."""
    limiter = getattr(app.state, "feedback_limit", None)
    if limiter is None:
        limiter = app.state.feedback_limit = make_limit(app.state.settings)
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
    client = client_id(
        request.client.host if request.client else None,
        request.headers.get("x-forwarded-for"),
        request.app.state.settings.trusted_proxies,
    )
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
