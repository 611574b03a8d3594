"""The routes: one router per resource (page, digits, feedback, model)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from digitrec.errors import ImageError
from digitrec.serve import metrics
from digitrec.serve.deps import PredictorDep, RunnerDep, current_predictor
from digitrec.serve.feedback_routes import feedback
from digitrec.serve.many import MAX_IMAGES, answer_each, images_in
from digitrec.serve.schemas import (
    ERRORS,
    SEVEN_PNG,
    Health,
    ModelCard,
    PredictionOut,
    PredictionsOut,
    ReadingOut,
    ReadingsOut,
    Ready,
)

STATIC = Path(__file__).parent / "static"

PREDICT, READ = "/api/v1/predict", "/api/v1/read"


def image_body(several: dict[str, Any]) -> dict[str, Any]:
    """The request body of /predict and /read for /docs: one image or several, in each form
    (FastAPI cannot infer them from one handler)."""
    data_url = {"type": "string", "description": "data URL or base64"}
    # OpenAPI 3.1: a file is any bytes (3.0's format: binary). No "type": on the wire every
    # multipart part is bytes, whatever type a client had in mind.
    binary = {"contentMediaType": "application/octet-stream"}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "description": "`file`: one image; `files`: several (at most "
                        f'{MAX_IMAGES}), answered as {{"answers": [...]}}',
                        "properties": {
                            "file": binary,
                            "files": {
                                "type": "array",
                                "items": binary,
                                "maxItems": MAX_IMAGES,
                            },
                        },
                    }
                },
                "application/json": {
                    "schema": {
                        "oneOf": [
                            {
                                "type": "object",
                                "properties": {"image": {**data_url, "minLength": 1}},
                                "required": ["image"],
                            },
                            {
                                "type": "object",
                                "properties": {
                                    "images": {
                                        "type": "array",
                                        "items": data_url,
                                        "minItems": 1,
                                        "maxItems": MAX_IMAGES,
                                    }
                                },
                                "required": ["images"],
                            },
                        ]
                    },
                    "examples": {"several": {"value": several}},
                },
                "image/*": {"schema": {"type": "string", "format": "binary"}},
            },
        }
    }


PREDICTIONS_EXAMPLE = {"images": [f"data:image/png;base64,{SEVEN_PNG}", SEVEN_PNG]}
READINGS_EXAMPLE = PREDICTIONS_EXAMPLE

# --- the page and liveness -------------------------------------------------------

pages = APIRouter()


@pages.get("/", include_in_schema=False)
async def index() -> FileResponse:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


@pages.get("/healthz", response_model=Health, tags=["service"])
async def healthz(model: PredictorDep) -> Health:
    """Liveness: 200 while the server answers, with the model it serves."""
    return Health(status="ok", model=model.name)


@pages.get(
    "/readyz",
    response_model=Ready,
    tags=["service"],
    responses={503: {"model": Ready, "description": "Not ready: the model is not loaded"}},
)
async def readyz(request: Request) -> JSONResponse:
    """Readiness: 200 once the model is loaded (predictions are served), "ready" when the
    feedback store also takes corrections, else "degraded" with the reason in `store`; 503
    "not ready" until the model is loaded."""
    try:
        model: str | None = (await current_predictor(request)).name
    except AttributeError:  # lifespan has not loaded it
        model = None
    store = getattr(request.app.state, "store", None)
    problem = "no feedback store" if store is None else await run_in_threadpool(store.problem)
    body = Ready(
        status="not ready" if model is None else "degraded" if problem else "ready",
        model=model,
        store=problem or "writable",
        store_writable=problem is None,
    )
    return JSONResponse(body.model_dump(), status_code=503 if model is None else 200)


@pages.get("/metrics", tags=["service"], response_class=Response)
async def get_metrics() -> Response:
    """Prometheus metrics: requests and latency by route and status, batch sizes, refusals by
    reason, the model serving (summed over the workers)."""
    body, content_type = metrics.exposition()
    return Response(body, media_type=content_type)


# /docs: Swagger UI from this server (fastapi-offline ships its files), started by a script
# file rather than the inline one FastAPI writes, so that the Content-Security-Policy can
# forbid inline script (serve/edge.py).
DOCS_ASSETS = Path(fastapi_offline.__file__).parent / "static"
DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>digitrec API</title>
  <link rel="icon" href="data:,">
  <link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/assets/swagger-ui-bundle.js"></script>
  <script src="/docs/init.js"></script>
</body>
</html>
"""
DOCS_INIT = """window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
"""


@pages.get("/docs", include_in_schema=False)
async def docs() -> HTMLResponse:
    return HTMLResponse(DOCS_PAGE)


@pages.get("/docs/init.js", include_in_schema=False)
async def docs_init() -> Response:
    return Response(DOCS_INIT, media_type="text/javascript")


# --- digits: predict one, read a number ------------------------------------------

digits = APIRouter(prefix="/api/v1", tags=["digits"])


@digits.post(
    "/predict",
    response_model=PredictionOut | PredictionsOut,
    responses=ERRORS,
    openapi_extra=image_body(PREDICTIONS_EXAMPLE),
)
async def predict(request: Request) -> JSONResponse:
    """Recognise one handwritten digit: the digit (or null), probabilities, what the model saw.
    Several images in one request (multipart `files`, or JSON `{"images": [...]}`, at most
    64): `{"answers": [...]}`, one per image in order, each an answer or its own error."""
    # The model, the image and the batcher are read here, not as dependencies: on the busiest
    # route, FastAPI's solving of each costs CPU (BENCHMARKS.md, "Web server").
    model = await current_predictor(request)
    images = await images_in(request)
    batcher = request.app.state.batcher
    if isinstance(images, list):  # several: they join one batch, as concurrent requests do
        answers = await answer_each(
            images,
            lambda image: batcher.predict(model, image),
            lambda: metrics.refused(PREDICT, model),
        )
        return JSONResponse({"answers": answers})
    prediction = await batcher.predict(model, images)
    # The predictor already gives the contract's shape; skip re-validating it per request.
    return JSONResponse(prediction.to_dict())


@digits.post(
    "/read",
    response_model=ReadingOut | ReadingsOut,
    responses=ERRORS,
    openapi_extra=image_body(READINGS_EXAMPLE),
)
async def read(request: Request, model: PredictorDep, run: RunnerDep) -> JSONResponse:
    """Read a written number: its text and each digit with its box [x, y, w, h]. Several
    images in one request, as for /predict: `{"answers": [...]}`."""

    async def one(image: bytes) -> Any:
        try:
            reading = await run(model.read, image)
        except ImageError:
            metrics.refused(READ, model)
            raise
        metrics.answered(READ, model, reading)
        return reading

    images = await images_in(request)
    if isinstance(images, list):
        answers = await answer_each(images, one, lambda: metrics.refused(READ, model))
        return JSONResponse({"answers": answers})
    return JSONResponse((await one(images)).to_dict())


# --- feedback: "it was a 7" (serve/feedback_routes.py) ----------------------------

# --- the model -------------------------------------------------------------------

model_card = APIRouter(prefix="/api/v1", tags=["model"])


@model_card.get("/model", response_model=ModelCard)
async def get_model(model: PredictorDep) -> ModelCard:
    """The model card of the model serving: accuracy, calibration, training provenance."""
    return model.card


routers = [pages, digits, feedback, model_card]


def answer_head(router: APIRouter) -> None:
    """HEAD wherever GET is (monitors and `curl -I` use it): FastAPI's routes, unlike
    Starlette's, take only the methods they name. A twin route per GET route, left out of the
    OpenAPI schema (it would repeat the GET's operation); the server sends the GET's status and
    headers without the body."""
    for route in list(router.routes):
        if not isinstance(route, APIRoute):
            continue
        methods = route.methods or set()
        if "GET" in methods and "HEAD" not in methods:
            router.add_api_route(
                route.path.removeprefix(router.prefix),  # add_api_route puts it back
                route.endpoint,
                methods=["HEAD"],
                include_in_schema=False,
                response_class=route.response_class,
                name=f"{route.name}_head",
            )


for _router in routers:
    answer_head(_router)
