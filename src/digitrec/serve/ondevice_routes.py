"""What the page needs to answer on the device: the model's graph, the name of the
preprocessing that goes with it, and the service worker that keeps both for offline use.

    GET /api/v1/model/ondevice   {"name", "sha256", "onnx", "preprocess", "uncertain_below"}:
                                 the graph's URL carries its sha256, the preprocessing's its
                                 version (a hash of static/preprocess.js), so a page loads the
                                 two as one pair and never mixes a new model with old code
    GET /api/v1/model/onnx       the serving model's ONNX graph; with ?sha256= one that is not
                                 the serving model's is a 404 (cached for a year otherwise)
    GET /sw.js                   the service worker, from the root so that it controls the page

The graph is read once, from the file the model resolves to (shipped.resolve), and checked
against the card's sha256 when the card has one.
"""

from __future__ import annotations

import hashlib
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from digitrec import shipped
from digitrec.serve.routes import STATIC

router = APIRouter(tags=["on the device"])

NO_CACHE = {"Cache-Control": "no-cache"}


def preprocess_version() -> str:
    """The first 12 hex digits of static/preprocess.js's sha256."""
    return hashlib.sha256((STATIC / "preprocess.js").read_bytes()).hexdigest()[:12]


def _load(model: str | None, card: dict[str, Any]) -> tuple[str, bytes]:
    data = shipped.resolve(model).onnx.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    sums = card.get("sha256") if isinstance(card, dict) else None
    expected = (
        [v for k, v in sums.items() if str(k).endswith(".onnx")] if isinstance(sums, dict) else []
    )
    if expected and expected[0] != sha:
        raise RuntimeError("the model's ONNX file changed since the server started")
    return sha, data


async def graph(request: Request) -> tuple[str, bytes]:
    """(sha256, bytes) of the serving model's graph, read on first use."""
    state = request.app.state
    found: tuple[str, bytes] | None = getattr(state, "ondevice_graph", None)
    if found is None:
        found = await run_in_threadpool(_load, state.settings.model, state.predictor.card)
        state.ondevice_graph = found
    return found


@router.get("/api/v1/model/ondevice")
async def ondevice(request: Request) -> JSONResponse:
    """The model and the preprocessing a page runs on the device, as one pair."""
    sha, _ = await graph(request)
    predictor = request.app.state.predictor
    return JSONResponse(
        {
            "name": predictor.name,
            "sha256": sha,
            "onnx": f"api/v1/model/onnx?sha256={sha}",
            "preprocess": preprocess_version(),
            "uncertain_below": getattr(predictor, "threshold", 0.5),
        },
        headers=NO_CACHE,
    )


@router.get(
    "/api/v1/model/onnx",
    response_class=Response,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "the ONNX graph"},
        404: {"content": {"application/json": {}}, "description": "not the model serving"},
    },
)
async def onnx(request: Request, sha256: str | None = None) -> Response:
    """The serving model's ONNX graph (input "image" (N, 1, 28, 28), output "probabilities")."""
    sha, data = await graph(request)
    if sha256 is not None and sha256 != sha:
        return JSONResponse({"error": "no such model: the server now serves another"}, 404)
    cache = "public, max-age=31536000, immutable" if sha256 else "no-cache"
    return Response(
        data,
        media_type="application/octet-stream",
        headers={"Cache-Control": cache, "ETag": f'"{sha}"'},
    )


@router.get("/sw.js", include_in_schema=False)
async def service_worker() -> FileResponse:
    return FileResponse(STATIC / "sw.js", media_type="text/javascript", headers=NO_CACHE)
