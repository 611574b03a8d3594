"""What the routes depend on: the predictor, the feedback store, the image in a request.

`PredictorDep` and `StoreDep` are typed dependency aliases; tests swap in a tiny
predictor with `app.dependency_overrides[get_predictor]`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import contextvars
import inspect
import json
import math
import os
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Annotated, Any, Protocol, TypeVar

import anyio
from fastapi import Depends, Request
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from digitrec.feedback.rows import Store
from digitrec.vision.header import image_pixels

if TYPE_CHECKING:
    from digitrec.predictor import Prediction  # imports ONNX Runtime: not at import time

T = TypeVar("T")


class Answer(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


class Model(Protocol):
    """What the server needs of digitrec.predictor.Predictor (tests pass a fake)."""

    name: str
    card: dict[str, Any]

    def predict(self, source: bytes) -> Prediction: ...

    def predict_each(self, sources: Sequence[bytes]) -> list[Prediction | Exception]: ...

    def read(self, source: bytes) -> Answer: ...


# async: FastAPI runs a plain `def` dependency in the threadpool, a hop per request.
async def get_predictor(request: Request) -> Model:
    return request.app.state.predictor


async def current_predictor(request: Request) -> Model:
    """get_predictor for the busiest route without FastAPI's dependency solving (~0.05 ms a
    request for one dependency); an override in app.dependency_overrides still applies."""
    return await model_of(request.app)


async def model_of(app: Any) -> Model:
    """The app's predictor, or what a test put in its place (app.dependency_overrides)."""
    override = app.dependency_overrides.get(get_predictor)
    if override is None:
        return app.state.predictor
    model = override()
    return await model if inspect.isawaitable(model) else model


async def get_store(request: Request) -> Store:
    return request.app.state.store


class Runner:
    """Runs inference and decoding off the event loop, in one bounded pool.

    Preprocessing a drawn canvas takes milliseconds, a 12-megapixel photo up to a second:
    inline, one photo would stall every other request (and /healthz). Two lanes, so that a
    photo never holds up the drawings:
    - `await runner.batch(fn, ...)`: the batches of drawings (serve/batch.py), one at a time;
    - `await runner(fn, ...)`: everything else that decodes an image (a photo on /predict,
      /read, /feedback), at most `threads` at once, in threads of the lowest CPU priority
      (POOL_NICE): where both want the core, the drawings get it.

    Memory: an image holds ~15 bytes per pixel while it is decoded and preprocessed (a
    25-megapixel WebP: ~370 MB). `pixels` bounds the pixels in the pool at once, judged from
    each image's header: past it an image waits, and past `wait` seconds of waiting it is
    refused 503 with Retry-After. One image over the budget runs alone.
    """

    def __init__(
        self, threads: int, inline: bool = False, pixels: int = 25_000_000, wait: float = 10.0
    ):
        self.pool = ThreadPoolExecutor(threads, "digitrec-pool", initializer=_lower_priority)
        self.batch_limiter = anyio.CapacityLimiter(1)
        self.inline = inline
        self.budget = PixelBudget(pixels, wait)

    async def __call__(self, fn: Callable[..., T], *args: Any) -> T:
        if self.inline:
            return fn(*args)
        async with self.budget.hold(pixels_in(args)):
            context = contextvars.copy_context()  # the request's work budget (digitrec.work)
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self.pool, context.run, fn, *args)

    async def batch(self, fn: Callable[..., T], *args: Any) -> T:
        if self.inline:
            return fn(*args)
        return await anyio.to_thread.run_sync(fn, *args, limiter=self.batch_limiter)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


# The pool's threads run at the lowest CPU priority (weight 15 against the batch thread's 1024):
# where both want a core the drawings get it. At nice 10 (weight 110) four clients looping a
# costly image cut the drawings' throughput to 66-79% of its figure alone; at 19, 83-98%
# (BENCHMARKS.md, "Hostile clients").
POOL_NICE = 19


def _lower_priority() -> None:
    with contextlib.suppress(OSError, AttributeError):  # Linux: a thread's own nice value
        thread = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, thread, os.getpriority(os.PRIO_PROCESS, thread) + POOL_NICE)


def pixels_in(args: Sequence[Any]) -> int:
    """The pixels the image among a pool call's arguments decodes to (its header's count): the
    image's bytes, or a request body whose `image` is a data URL or base64 (/feedback)."""
    for arg in args:
        if isinstance(arg, bytes | bytearray):
            return image_pixels(bytes(arg))
        text = getattr(arg, "image", None)
        if isinstance(text, str):
            try:
                return image_pixels(decode_image_text(text))
            except HTTPException:  # refused where it is decoded, with its own message
                return 0
    return 0


class Busy(HTTPException):
    def __init__(self, retry: int):
        super().__init__(
            503,
            "this server is decoding as many pixels as its memory budget allows; try again shortly",
            headers={"Retry-After": str(retry)},
        )


class PixelBudget:
    """At most `total` pixels decoded at once in this worker; `hold(n)` waits for room."""

    def __init__(self, total: int, wait: float):
        self.total, self.free, self.wait = total, total, wait
        self.changed = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def hold(self, pixels: int) -> AsyncIterator[None]:
        n = min(pixels, self.total)  # one image over the budget runs alone
        if n:
            async with self.changed:
                try:
                    await asyncio.wait_for(self.changed.wait_for(lambda: n <= self.free), self.wait)
                except TimeoutError:
                    raise Busy(max(1, math.ceil(self.wait / 4))) from None
                self.free -= n
        try:
            yield
        finally:
            if n:
                async with self.changed:
                    self.free += n
                    self.changed.notify_all()


async def get_runner(request: Request) -> Runner:
    return request.app.state.runner


PredictorDep = Annotated[Model, Depends(get_predictor)]
StoreDep = Annotated[Store, Depends(get_store)]
RunnerDep = Annotated[Runner, Depends(get_runner)]


def malformed(what: str) -> HTTPException:
    """A 422: the request is not what the API takes (the JSON error body comes from app.py)."""
    return HTTPException(status_code=422, detail=what)


def decode_image_text(text: object) -> bytes:
    """A data URL ("data:image/png;base64,...") or bare base64 -> the image's bytes."""
    if not isinstance(text, str):
        raise malformed("image: expected a string (a data URL or base64)")
    if text.startswith("data:"):
        header, sep, text = text.partition(",")
        if not sep or not header.endswith(";base64"):
            raise malformed("image: a data URL must be base64-encoded (data:...;base64,...)")
    text = "".join(text.split())  # base64 may be wrapped over lines
    if not text:
        raise malformed("image: empty")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise malformed("image: not valid base64") from None


def parse_json(body: bytes) -> Any:
    """The request's JSON, or a 422: not JSON (ValueError: also a number of over 4,300 digits,
    which Python will not turn into an int) or nested too deep (RecursionError)."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise malformed("body is not valid JSON") from None


async def image_bytes(request: Request) -> bytes:
    """The image in a request: multipart field `file`, JSON {"image": ...}, or a raw image body."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        try:
            form = await request.form(max_files=1, max_fields=8)
        except HTTPException as e:  # Starlette answers a broken multipart body with a 400
            raise malformed(f"multipart body: {e.detail}") from None
        field = form.get("file")
        if isinstance(field, UploadFile):
            data = await field.read()
        elif isinstance(field, str):  # a data URL sent as a text field
            data = decode_image_text(field)
        else:
            raise malformed("multipart field 'file' is missing")
    elif content_type == "application/json" or content_type.endswith("+json"):
        body = parse_json(await request.body())
        if not isinstance(body, dict) or "image" not in body:
            raise malformed('JSON body must be an object with an "image" field')
        data = decode_image_text(body["image"])
    elif content_type.startswith("image/") or content_type == "application/octet-stream":
        data = await request.body()
    elif not content_type and not await request.body():
        raise malformed('no image: send multipart field "file" or JSON {"image": ...}')
    else:
        raise HTTPException(
            status_code=415,
            detail=f"unsupported content type {content_type or '(none)'}: send multipart "
            'field "file", JSON {"image": "<data URL or base64>"}, or an image body',
        )
    if not data:
        raise malformed("image: empty")
    return data


ImageBytes = Annotated[bytes, Depends(image_bytes)]
