"""The routes: one router per resource (page, digits, feedback, model)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse

from digitrec.serve.deps import (
    ImageBytes,
    PredictorDep,
    RunnerDep,
    current_predictor,
    image_bytes,
)
from digitrec.serve.feedback_routes import feedback
from digitrec.serve.schemas import (
    ERRORS,
    Health,
    ModelCard,
    PredictionOut,
    ReadingOut,
)

STATIC = Path(__file__).parent / "static"

# Both input forms, for /docs: FastAPI cannot infer them from one handler.
IMAGE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "image": {"type": "string", "description": "data URL or base64"}
                    },
                    "required": ["image"],
                }
            },
            "image/*": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}

# --- the page and liveness -------------------------------------------------------

pages = APIRouter()


@pages.get("/", include_in_schema=False)
async def index() -> FileResponse:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


@pages.get("/healthz", response_model=Health, tags=["service"])
async def healthz(model: PredictorDep) -> Health:
    """Liveness: 200 while the server answers, with the model it serves."""
    return Health(status="ok", model=model.name)


# --- digits: predict one, read a number ------------------------------------------

digits = APIRouter(prefix="/api/v1", tags=["digits"])


@digits.post("/predict", response_model=PredictionOut, responses=ERRORS, openapi_extra=IMAGE_BODY)
async def predict(request: Request) -> JSONResponse:
    """Recognise one handwritten digit: the digit (or null), probabilities, what the model saw."""
    # The model, the image and the batcher are read here, not as dependencies: on the busiest
    # route, FastAPI's solving of each costs CPU (~0.2 ms a request less without, A/B on 2
    # workers).
    model = await current_predictor(request)
    image = await image_bytes(request)
    prediction = await request.app.state.batcher.predict(model, image)
    # The predictor already gives the contract's shape; skip re-validating it per request.
    return JSONResponse(prediction.to_dict())


@digits.post("/read", response_model=ReadingOut, responses=ERRORS, openapi_extra=IMAGE_BODY)
async def read(image: ImageBytes, model: PredictorDep, run: RunnerDep) -> JSONResponse:
    """Read a written number: its text and each digit with its box [x, y, w, h]."""
    reading = await run(model.read, image)
    return JSONResponse(reading.to_dict())


# --- feedback: "it was a 7" (serve/feedback_routes.py) ----------------------------

# --- the model -------------------------------------------------------------------

model_card = APIRouter(prefix="/api/v1", tags=["model"])


@model_card.get("/model", response_model=ModelCard)
async def get_model(model: PredictorDep) -> ModelCard:
    """The model card of the model serving: accuracy, calibration, training provenance."""
    return model.card


routers = [pages, digits, feedback, model_card]
