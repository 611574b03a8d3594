"""The busiest request, answered the short way: POST /api/v1/predict with a JSON or image body.

The page posts every stroke's canvas here, and a drawing is ~2 ms of CPU in all, so the layers
FastAPI puts around a route (its middleware, routing, the endpoint's wrappers and our body
limit's wrappers of `receive` and `send`) are a noticeable share. This ASGI middleware, the
outermost of ours, reads such a request's body itself, hands the image to the batcher and
writes the JSON answer.

It is a lane, not a second implementation: the route in routes.py stays what OpenAPI documents
and what answers everything else (multipart uploads, no Content-Length, a body over the limit).
A body the lane cannot read (bad JSON, bad base64, no "image") goes to the app as it came, body
included, and an image that fails is answered by the app's own exception handlers: errors are
the route's, the same status and the same message.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from digitrec.serve.deps import decode_image_text, model_of

PATH = "/api/v1/predict"


class PredictLane:
    def __init__(self, app: ASGIApp, fastapi: Any, limit: int):
        # `fastapi`: the app this wraps (its state holds the model and the batcher), `limit`: its
        # body limit (a bigger body goes the long way, to be refused there)
        self.app, self.fastapi, self.limit = app, fastapi, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        kind, length = self._kind(scope["headers"])
        if kind is None or length is None or not 0 < length <= self.limit:
            return await self.app(scope, receive, send)
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: nothing to answer
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        try:
            image = decode_image_text(json.loads(body)["image"]) if kind == "json" else body
        except Exception:  # not what the route takes: it answers, with its own message
            return await self.app(scope, replay(body, receive), send)
        try:
            model = await model_of(self.fastapi)
            prediction = await self.fastapi.state.batcher.predict(model, image)
            response: Response = JSONResponse(prediction.to_dict())
        except Exception as e:  # this image's error (a 415, a 413...): the app's own answer
            response = await self.error(scope, e)
        else:
            balancer = self.fastapi.state.balancer  # several workers: even out connections
            if (
                balancer is not None
                and scope.get("client")
                and not pipelined(scope)  # closing would drop the requests sent behind this one
                and balancer.close_after(scope["client"])
            ):
                response.headers["connection"] = "close"
        await response(scope, receive, send)

    async def error(self, scope: Scope, e: Exception) -> Response:
        """The app's exception handler's answer to `e`, as the route would have given it."""
        handlers = self.fastapi.exception_handlers
        handler = next(h for c in type(e).__mro__ if (h := handlers.get(c)) is not None)
        return await handler(Request(scope), e)

    @staticmethod
    def _kind(headers: list[tuple[bytes, bytes]]) -> tuple[str | None, int | None]:
        """("json" | "image" | None, Content-Length or None) from the request's headers."""
        kind, length = None, None
        for name, value in headers:
            if name == b"content-type":
                media = value.split(b";")[0].strip().lower()
                if media == b"application/json":
                    kind = "json"
                elif media.startswith(b"image/") or media == b"application/octet-stream":
                    kind = "image"
            elif name == b"content-length":
                length = int(value) if value.isdigit() else None
        return kind, length


def pipelined(scope: Scope) -> bool:
    """More requests follow this one on its connection (serve/protocol.py tells; False under a
    server that does not)."""
    more = scope.get("extensions", {}).get("digitrec.pipelined")
    return bool(more is not None and more())


def replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives the body already read, then whatever the connection says next."""
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again
