"""The app factory: routes, the page, body limit, JSON errors; the model loads in lifespan.

Every error is `{"error": "<what is wrong>"}`: 413 too large, 415 not an image,
422 malformed, 404/405 for wrong paths. Anything unexpected is logged and
answered as a JSON 500 without a traceback; the server keeps serving.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from PIL import Image
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import digitrec
from digitrec.errors import DigitrecError, ImageError
from digitrec.feedback.stores import open_store
from digitrec.serve import metrics
from digitrec.serve.balance import Balancer
from digitrec.serve.batch import Batcher
from digitrec.serve.deps import Runner, get_predictor, model_of
from digitrec.serve.edge import Edge
from digitrec.serve.lane import PredictLane
from digitrec.serve.ondevice_routes import router as ondevice_router
from digitrec.serve.protocol import LimitedHttpTools
from digitrec.serve.routes import DOCS_ASSETS, STATIC, routers
from digitrec.serve.settings import Settings, loopback_hosts
from digitrec.serve.workers import SUPPORTED as REUSE_PORT
from digitrec.serve.workers import cores, serve_workers

log = logging.getLogger(__name__)


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int):
        super().__init__(413, f"request body is larger than the {limit:,} byte limit")


class BodyLimit:
    """Answer 413 to a body over `limit` bytes: from Content-Length up front, else while it streams.

    An HTTPException, so FastAPI's body parsing passes it through instead of a 400.
    """

    def __init__(self, app: ASGIApp, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                return await error_response(413, BodyTooLarge(self.limit).detail)(
                    scope, receive, send
                )

        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except BodyTooLarge as e:  # raised where no handler caught it
            if started:
                raise
            await error_response(413, e.detail)(scope, receive, send)


def error_response(status: int, what: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": what}, status_code=status, headers=headers)


def describe(error: RequestValidationError) -> str:
    """Pydantic's errors as one line: 'label: Input should be less than or equal to 9'."""
    parts = []
    for e in error.errors():
        loc = [str(x) for x in e.get("loc", ()) if x != "body"]
        msg = e.get("msg", "invalid")
        if e.get("type") == "json_invalid":
            loc, msg = [], "body is not valid JSON"
        parts.append(f"{'.'.join(loc)}: {msg}" if loc else msg)
    return "; ".join(parts) or "malformed request"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ImageError)
    async def image_error(request: Request, e: ImageError) -> JSONResponse:
        return error_response(e.status, str(e))

    @app.exception_handler(DigitrecError)
    async def user_error(request: Request, e: DigitrecError) -> JSONResponse:
        return error_response(422, str(e))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, e: RequestValidationError) -> JSONResponse:
        return error_response(422, describe(e))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, e: HTTPException) -> JSONResponse:
        if e.status_code == 400 and e.detail == "There was an error parsing the body":
            # FastAPI's answer to a JSON body that is not UTF-8: malformed, as on every route
            return error_response(422, "body is not valid JSON")
        return error_response(e.status_code, str(e.detail), getattr(e, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, e: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, "internal error: the server could not answer this request")


def load_predictor(model: str | None) -> object:
    from digitrec.predictor import Predictor  # ONNX Runtime; imported when serving starts

    return Predictor.load(model)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Tests that override the predictor dependency do not load the real one.
        if get_predictor not in app.dependency_overrides:
            app.state.predictor = await run_in_threadpool(load_predictor, settings.model)
            log.info("serving model %s", app.state.predictor.name)
        Image.init()  # Pillow's format plugins, imported now, not by the first photo (~0.3 s)
        model = await model_of(app)
        sha = model_sha(model.card, model.name)
        app.state.model_header = f"{model.name}; sha256={sha[:12]}".encode()
        metrics.model_serving(model.name, sha)
        app.state.runner = Runner(
            settings.inference_threads,
            settings.inline_inference,
            settings.decode_pixels,
            settings.decode_wait,
        )
        app.state.batcher = Batcher(app.state.runner)
        database = settings.database.get_secret_value() if settings.database else None
        app.state.store = await run_in_threadpool(open_store, settings.data_dir, database)
        log.info("feedback store: %s", app.state.store.where)
        # Everything loaded so far (the libraries, the model) lives as long as the server: out
        # of the collector's sight, the full collections under load stop walking it each time
        # (halves the slowest request under load: BENCHMARKS.md, "Web server").
        gc.collect()
        gc.freeze()
        # NumPy's BLAS and OpenCV on one thread for the server's life (preprocessing's small
        # products and filters; see predictor.one_thread), not set and reset for each batch.
        from digitrec.predictor import one_thread  # ONNX Runtime: imported when serving starts

        # Several workers even out their connections (serve/balance.py).
        app.state.balancer = None
        if settings.workers_dir is not None:
            app.state.balancer = Balancer(settings.workers_dir).start()
        try:
            with one_thread():
                yield
        finally:
            if app.state.balancer is not None:
                app.state.balancer.close()
            gc.unfreeze()
            close = getattr(app.state.runner, "close", None)  # a test may swap the runner
            if close is not None:
                close()
            app.state.store.close()

    app = FastAPI(
        title="digitrec",
        version=digitrec.__version__,
        description="Handwritten digit recognition: draw, photograph, read, correct.",
        lifespan=lifespan,
        docs_url=None,  # routes.py serves /docs from this server's files, not a CDN's
        redoc_url=None,
    )
    app.state.model_header = None
    app.state.settings = settings
    install_error_handlers(app)
    for router in routers:
        app.include_router(router)
    app.include_router(ondevice_router)  # the model on the device (ondevice_routes.py)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.mount("/docs/assets", StaticFiles(directory=DOCS_ASSETS), name="docs-assets")
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    # Added after the body limit, so it wraps it: the busiest requests skip the layers below.
    app.add_middleware(PredictLane, fastapi=app, limit=settings.max_body_bytes)
    # Outermost: every answer, the lane's too, gets the headers and is counted.
    app.add_middleware(
        Edge,
        fastapi=app,
        allowed_hosts=settings.allowed_hosts,
        access_log=settings.access_log,
        read_budget=(settings.read_seconds, settings.read_parts),
        feedback_key=(
            settings.feedback_api_key.get_secret_value() if settings.feedback_api_key else None
        ),
    )
    access = logging.getLogger("digitrec.access")
    if settings.access_log and not access.handlers:
        access.addHandler(logging.StreamHandler())  # the JSON line alone, on stderr
        access.setLevel(logging.INFO)
        access.propagate = False  # once: not again through the CLI's root handler
    return app


def model_sha(card: dict[str, Any], name: str) -> str:
    """The sha256 of the model's ONNX graph, from its card; "unknown" when it has none."""
    sums = card.get("sha256") if isinstance(card, dict) else None
    if isinstance(sums, dict):
        for file, digest in sums.items():
            if str(file).endswith(".onnx"):
                return str(digest)
    return "unknown"


def run_server(
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int | None = None,
    model: str | None = None,
    data_dir: Path | None = None,
    database: str | None = None,
) -> None:
    """Serve until interrupted, with `workers` processes (default: one per core this process
    may use). Settings reach every worker process through the environment."""
    import uvicorn

    if workers is None:
        workers = cores()
    if model is not None:
        os.environ["DIGITREC_MODEL"] = str(model)
    if data_dir is not None:
        os.environ["DIGITREC_DATA_DIR"] = str(Path(data_dir).resolve())
    if database is not None:
        os.environ["DIGITREC_DATABASE"] = database
    # A missing or corrupt model is one ModelError here, not a crash in every worker. Only the
    # card and checksums are checked: the supervisor process need not hold an ONNX session.
    from digitrec.shipped import resolve

    resolve(model)
    settings = Settings()
    if settings.database:  # a bad URL (or no driver) is one line here
        from digitrec.feedback.database import shown_url

        shown_url(settings.database.get_secret_value())
    shown = f"[{host}]" if ":" in host else host
    print(  # noqa: T201
        f"digitrec: serving on http://{shown}:{port}/  "
        f"({workers} worker{'s' if workers > 1 else ''}; Ctrl+C to stop)",
        flush=True,
    )
    # uvloop and httptools when installed (uvicorn[standard]): uvicorn's "auto" picks them.
    options: dict[str, Any] = dict(
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,  # uvicorn's; ours is Settings.access_log (JSON, with request ids)
        # The connection's own address in scope["client"], never one from X-Forwarded-For: the
        # workers count connections by it (serve/balance.py), and nothing else reads it.
        proxy_headers=False,
        log_level="info",
        # Limits on headers, slow clients and refused bodies (serve/protocol.py), on top of
        # uvicorn's httptools protocol.
        http=LimitedHttpTools,
        timeout_keep_alive=settings.keep_alive,
        limit_concurrency=settings.max_connections,
        server_header=False,  # no software version to the world
    )
    # Metrics summed over the workers: each writes its own files here (serve/metrics.py).
    metrics_dir = None
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        metrics_dir = tempfile.mkdtemp(prefix="digitrec-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    # Loopback: the localhost names only, so that no other site reaches it (DNS rebinding);
    # set for the workers, and taken back when the server stops.
    local_hosts = "DIGITREC_ALLOWED_HOSTS" not in os.environ and bool(loopback_hosts(host))
    if local_hosts:
        os.environ["DIGITREC_ALLOWED_HOSTS"] = json.dumps(loopback_hosts(host))
    try:
        if workers > 1 and REUSE_PORT:
            serve_workers(uvicorn.Config("digitrec.serve.app:create_app", **options))
        else:
            uvicorn.run("digitrec.serve.app:create_app", **options)
    finally:
        if local_hosts:
            os.environ.pop("DIGITREC_ALLOWED_HOSTS", None)
        if metrics_dir is not None:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
            shutil.rmtree(metrics_dir, ignore_errors=True)
