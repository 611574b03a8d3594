"""What every answer passes through, the outermost of the app's middleware (so the short lane
for /predict, serve/lane.py, too): the Host allowlist, the browser-hardening headers, the
model's name and version, a request id, the metrics and the optional JSON access log.

A plain ASGI middleware, not Starlette's BaseHTTPMiddleware: it adds headers to the response's
start message and times the answer, a few microseconds a request.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import re
import time
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from digitrec import work
from digitrec.serve import metrics

access = logging.getLogger("digitrec.access")

# The page's own script and style files, its images (the 28x28 the model saw) as data: URLs,
# its requests to this server; nothing inline, nothing from elsewhere, never in a frame.
# 'wasm-unsafe-eval' lets it compile WebAssembly (ONNX Runtime Web, the model on the device)
# and nothing else: no eval, no inline script.
PAGE_POLICY = (
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; "
    "img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# /docs: Swagger UI from this server (routes.py); its components set style attributes.
DOCS_POLICY = PAGE_POLICY.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")


def _headers(policy: str) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-security-policy", policy.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"no-referrer"),
    ]


PAGE_HEADERS, DOCS_HEADERS = _headers(PAGE_POLICY), _headers(DOCS_POLICY)

# Metrics by route: these paths by name, the rest in a few groups (a label per path sent by
# clients would let them grow the metrics without bound).
ROUTES = {
    p: p
    for p in [
        "/",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/api/v1/predict",
        "/api/v1/read",
        "/api/v1/feedback",
        "/api/v1/model",
    ]
}
FEEDBACK = "/api/v1/feedback"
READ = "/api/v1/read"
SAFE = ("GET", "HEAD", "OPTIONS")
REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")  # a caller's X-Request-ID kept as it is


def route_of(path: str) -> str:
    route = ROUTES.get(path)
    if route is not None:
        return route
    for prefix in ("/static/", "/docs", "/api/v1/feedback/"):
        if path.startswith(prefix):
            return prefix.rstrip("/")
    return "other"


def host_allowed(host: bytes, allowed: list[str]) -> bool:
    """The Host header's name (without its port) is in `allowed`; "*.example.org" takes any
    subdomain of example.org."""
    name = host.decode("latin-1").strip().lower()
    name = name.rsplit(":", 1)[0] if not name.endswith("]") else name  # [::1] keeps its colons
    for pattern in allowed:
        if pattern == "*" or name == pattern:
            return True
        if pattern.startswith("*.") and name.endswith(pattern[1:]):
            return True
    return False


def same_origin(headers: list[tuple[bytes, bytes]], host: bytes) -> bool:
    """A browser's request from a page of this very site, or no browser's at all.

    Browsers send Origin with every POST and Sec-Fetch-Site with every request (Chrome 76,
    Firefox 90, Safari 16.4); a script or curl sends neither. Checked: Sec-Fetch-Site is
    "same-origin" or "none" (typed by the user), else Origin's host[:port] is the Host header.
    """
    origin = site = None
    for name, value in headers:
        if name == b"origin":
            origin = value
        elif name == b"sec-fetch-site":
            site = value
    if site is not None:
        return site in (b"same-origin", b"none")
    if origin is None:
        return True
    return origin.partition(b"://")[2].lower() == host.lower()


class Edge:
    def __init__(
        self,
        app: ASGIApp,
        fastapi: Any,
        allowed_hosts: list[str],
        access_log: bool = False,
        feedback_key: str | None = None,
        read_budget: tuple[float, int] = (10.0, 300),
    ):
        # `fastapi`: the app this wraps; its state holds the model's header (set in lifespan)
        self.app, self.fastapi = app, fastapi
        self.allowed_hosts = [h.lower() for h in allowed_hosts]
        self.access_log = access_log
        self.feedback_key = feedback_key.encode() if feedback_key else None
        self.read_budget = read_budget  # seconds, ink parts (digitrec.work)

    def refusal(self, scope: Scope, host: bytes) -> tuple[int, str] | None:
        """(status, why) for a request refused before the app, else None."""
        if not host and scope.get("http_version") == "1.1":
            return 400, "an HTTP/1.1 request must name its Host (RFC 9112, section 3.2)"
        if self.allowed_hosts and not host_allowed(host, self.allowed_hosts):
            return 400, "the Host header names no site this server serves"
        if scope["path"].startswith(FEEDBACK) and scope["method"] not in SAFE:
            headers = scope["headers"]
            if self.feedback_key is not None:
                key = next((v for n, v in headers if n == b"x-api-key"), b"")
                if not hmac.compare_digest(key, self.feedback_key):
                    return 403, "corrections need this server's API key (X-API-Key)"
            elif not same_origin(headers, host):
                return 403, "corrections are taken from this server's own page only"
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        path: str = scope["path"]
        request_id = b""
        host = b""
        for name, value in scope["headers"]:
            if name == b"x-request-id" and REQUEST_ID.fullmatch(value):
                request_id = value
            elif name == b"host":
                host = value
        if not request_id:
            request_id = os.urandom(8).hex().encode()
        extra = list(DOCS_HEADERS if path.startswith("/docs") else PAGE_HEADERS)
        extra.append((b"x-request-id", request_id))
        model = getattr(self.fastapi.state, "model_header", None)
        if model:
            extra.append((b"x-digitrec-model", model))
        status = 500  # unless an answer starts: an exception escaped (ServerErrorMiddleware's)
        done = False

        def record() -> None:
            nonlocal done
            done = True
            seconds = time.perf_counter() - start
            metrics.observe(route_of(path), status, seconds)
            if self.access_log:
                client = scope.get("client")
                access.info(
                    json.dumps(
                        {
                            "request_id": request_id.decode(),
                            "method": scope["method"],
                            "path": path,
                            "status": status,
                            "ms": round(seconds * 1000, 2),
                            "client": client[0] if client else None,
                        }
                    )
                )

        async def edge_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), *extra]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                await send(message)
                record()
                return
            await send(message)

        refused = self.refusal(scope, host)
        if refused is not None:
            status, what = refused
            response = JSONResponse(
                {"error": what}, status_code=status, headers={"connection": "close"}
            )
            return await response(scope, receive, edge_send)
        if path == READ:  # its work is bounded, and stops when the client goes (protocol.py)
            budget = work.Budget(*self.read_budget)
            scope.setdefault("extensions", {})["digitrec.budget"] = budget
            work.current.set(budget)  # this request's task and the threads it runs work in
        try:
            await self.app(scope, receive, edge_send)
        finally:
            if not done:
                record()
