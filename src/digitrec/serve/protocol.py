"""uvicorn's HTTP protocol (httptools) with the limits a server on the internet needs.

uvicorn reads headers of any size and count, and gives a client all the time it wants to send
them and its body: `timeout_keep_alive` covers only the idle time between two requests, and any
byte received restarts it (https://github.com/Kludex/uvicorn/issues/157, open since 2018). Tried
on digitrec: 64 MB of headers were read for 5 s, blocking the worker, and a client sending a
byte a second held its connection for ever. uvicorn 0.55 has no setting for any of this (its
limits are `timeout_keep_alive`, `limit_concurrency`, `limit_max_requests` and, for h11 only,
`h11_max_incomplete_event_size`). A proxy in front (nginx: client_header_timeout,
client_body_timeout, send_timeout, lingering_close, keepalive_timeout) bounds the same states,
and is the better place when there is one; `digitrec serve` faces clients itself, so this
subclass of uvicorn's protocol gives every state of a connection a deadline:

- the head (request line and headers) at most `head_bytes`, and at most `headers` fields:
  else 431, as soon as the limit is passed;
- the head sent within `head_seconds` of its first byte (of the connection, for the first
  request), and the body within `body_seconds` of the head: else 408;
- after the answer, idle: uvicorn's `timeout_keep_alive`, armed again when bytes of an answered
  request arrive late (uvicorn cancels it on any byte and re-arms it only when an answer ends);
- an answer the client does not read: the connection is cut `body_seconds` after writing stalls;
- after an answer that did not read the whole body (a 413), up to `discard_bytes` more of it
  are read and dropped, so that the client, still sending, can read the answer; past that the
  connection is closed. With "Connection: close" or HTTP/1.0 too (uvicorn closes at once there,
  and the unread body makes the kernel reset the connection: the client loses the 413);
- a request the parser cannot read gets a JSON 400, after the answers to the requests before it
  on the connection, in order;
- past `limit_concurrency` connections, a new connection closes the one that has waited longest
  without a request in progress (idle, late bytes, a head in progress), as nginx reuses idle
  connections; a request that still finds the worker full gets a JSON 503 with Retry-After.

A refusal is a JSON answer with "Connection: close" and the security headers, counted in
/metrics; then the server stops writing, reads and drops what the client still sends (at most
`discard_bytes`, until LINGER seconds pass without a byte, and at most `body_seconds`) and
closes. Closing at once, with the client's bytes unread, would make the kernel reset the
connection and the client could lose the answer.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import OrderedDict
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from digitrec.serve import metrics
from digitrec.serve.edge import PAGE_HEADERS, route_of
from digitrec.serve.settings import Limits, Settings

LINGER = 2.0  # s without a byte after which a refused connection is closed


STATUS = {
    400: "Bad Request",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}
BUSY = "this server is at its connection limit; try again shortly"


def refusal(status: int, what: str, extra: list[tuple[bytes, bytes]] = []) -> bytes:  # noqa: B006
    """A whole JSON answer with "Connection: close" and the security headers, as bytes."""
    body = json.dumps({"error": what}).encode()
    head = [
        b"HTTP/1.1 %d %s" % (status, STATUS[status].encode()),
        b"content-type: application/json",
        b"content-length: %d" % len(body),
        b"connection: close",
        b"x-request-id: " + os.urandom(8).hex().encode(),
        *(name + b": " + value for name, value in [*PAGE_HEADERS, *extra]),
    ]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


async def busy(scope: Any, receive: Any, send: Any) -> None:
    """uvicorn's answer past `limit_concurrency` (plain text, uncounted), as one of ours."""
    head, _, body = refusal(503, BUSY, [(b"retry-after", b"1")]).partition(b"\r\n\r\n")
    headers = [tuple(line.split(b": ", 1)) for line in head.split(b"\r\n")[1:]]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})
    metrics.observe(route_of(scope["path"]), 503, 0.0)
    metrics.reject("busy")


class LimitedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits above; uvicorn takes it as `http=`."""

    # Set by the app's settings (run_server) before the server starts; each worker process
    # builds them from the environment, as every setting.
    configured: ClassVar[Limits | None] = None

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if LimitedHttpTools.configured is None:
            LimitedHttpTools.configured = Settings().limits()
        self.limits: Limits = LimitedHttpTools.configured
        self.server_app = self.app
        self.in_head = True  # waiting for, or reading, a request's head
        self.head_size = 0  # bytes received since the last request ended: its head so far
        self.field_size = 0  # bytes of the request line and fields, as the parser gives them
        self.field_count = 0
        self.current = False  # self.cycle is this request's (its head was read)
        self.message_done = True  # the last request's body has arrived in full
        self.discarded = 0  # body bytes dropped after the answer
        self.deadline: asyncio.TimerHandle | None = None
        self.write_deadline: asyncio.TimerHandle | None = None
        self.refused = False  # answered for the last time: reading and dropping, then closing
        self.pending: tuple[int, str, str] | None = None  # a 400 due after the earlier answers
        self.linger: asyncio.TimerHandle | None = None
        self.linger_until = 0.0
        # This server's connections, the one whose last request started longest ago first.
        table = getattr(self.server_state, "digitrec_connections", None)
        if table is None:
            table = self.server_state.digitrec_connections = OrderedDict()  # type: ignore[attr-defined]
        self.table: OrderedDict[LimitedHttpTools, None] = table

    # -- timers

    def _arm(self, seconds: float, status: int, what: str) -> None:
        self._disarm()
        self.deadline = self.loop.call_later(seconds, self.refuse, status, what, "too_slow")

    def _disarm(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def _answering(self) -> bool:
        """A request of this connection is with the app, or waits for its turn (pipelined)."""
        return bool(self.pipeline) or (self.cycle is not None and not self.cycle.response_complete)

    def _watch_idle(self) -> None:
        """Every state has a deadline: none armed and no request with the app is the idle
        state after an answer, whose timer uvicorn cancels on any byte (late body bytes)."""
        if (
            self.deadline is None
            and self.timeout_keep_alive_task is None
            and not self._answering()
            and not self.transport.is_closing()
        ):
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

    # -- the connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.table[self] = None
        self._arm(self.limits.head_seconds, 408, "request headers not sent in time")
        self._make_room()

    def _make_room(self) -> None:
        """Past the limit, close the connections that waited longest with no request in progress,
        so that this one's request is served (uvicorn answers 503 from `limit_concurrency`)."""
        if self.limit_concurrency is None or len(self.connections) < self.limit_concurrency:
            return
        for other in list(self.table):
            if len(self.connections) < self.limit_concurrency:
                return
            if other is not self and not other._answering() and not other.refused:
                if other.head_size:  # a head in progress: it hears why
                    other.refuse(503, BUSY, "evicted")
                else:
                    metrics.reject("evicted")
                    other.transport.abort()  # idle: as a keep-alive timeout, without the wait
                    other.connections.discard(other)
                    other.table.pop(other, None)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.cycle is not None and not self.cycle.response_complete:
            extensions: dict[str, Any] = self.cycle.scope.get("extensions") or {}
            budget = extensions.get("digitrec.budget")
            if budget is not None:
                budget.cancel()  # the client went away: its work stops (digitrec.work)
        self._disarm()
        for timer in (self.write_deadline, self.linger):
            if timer is not None:
                timer.cancel()
        self.table.pop(self, None)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.refused:  # lingering: read and dropped
            self.discarded += len(data)
            if self.discarded > self.limits.discard_bytes:
                self.transport.close()
            else:
                self._linger()
            return
        if self.pending is not None:  # bytes after a bad request: dropped, the 400 is due
            return
        if self.in_head:
            self.head_size += len(data)
        super().data_received(data)
        if self.refused or self.pending is not None or self.transport.is_closing():
            return
        if self.in_head and self.head_size > self.limits.head_bytes:
            self.refuse(431, "request headers are too large", "headers_too_large")
            return
        self._watch_idle()

    def eof_received(self) -> None:
        if self.refused:
            self.transport.close()
        super().eof_received()

    def send_400_response(self, msg: str) -> None:
        what = "not an HTTP request this server can read"
        if (self.current and not self.message_done) or not self._answering():
            self.refuse(400, what, "bad_request")  # this request's own bytes, or nothing due
        else:  # bad bytes after complete requests: those are answered first, in order
            self.pending = (400, what, "bad_request")
            self._disarm()

    def pause_writing(self) -> None:
        super().pause_writing()
        if self.write_deadline is None:  # an answer the client does not read
            self.write_deadline = self.loop.call_later(
                self.limits.body_seconds, self.transport.abort
            )

    def resume_writing(self) -> None:
        if self.write_deadline is not None:
            self.write_deadline.cancel()
            self.write_deadline = None
        super().resume_writing()

    # -- the parser's callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.field_size, self.field_count, self.discarded, self.current = 0, 0, 0, False
        self.message_done = False
        if self.deadline is None:  # a keep-alive connection's next request
            self._arm(self.limits.head_seconds, 408, "request headers not sent in time")

    def on_url(self, url: bytes) -> None:
        self.field_size += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.field_count += 1
        self.field_size += len(name) + len(value) + 4  # ": " and CRLF
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self.in_head = False
        if self.field_count > self.limits.headers:
            self.refuse(431, f"over {self.limits.headers} request headers", "headers_too_large")
            return
        if self.field_size > self.limits.head_bytes:
            self.refuse(431, "request headers are too large", "headers_too_large")
            return
        self._arm(self.limits.body_seconds, 408, "request body not sent in time")
        # Past the limit: our JSON 503 instead of uvicorn's plain text (same test as uvicorn's).
        limit, before = self.limit_concurrency, self.cycle
        if limit is not None and (len(self.connections) >= limit or len(self.tasks) >= limit):
            self.app = busy
        extensions: Any = {"digitrec.pipelined": self.pipelined}
        self.scope["extensions"] = extensions
        self.limit_concurrency = None
        try:
            super().on_headers_complete()
        finally:
            self.app, self.limit_concurrency = self.server_app, limit
        if self.cycle is not before:
            self.current = True
            self.cycle.transport = Graceful(self)  # type: ignore[assignment]
            self.table.move_to_end(self)

    def pipelined(self) -> bool:
        """More requests (or bytes of one) follow the one being answered on this connection:
        closing it now would drop them (serve/lane.py asks before evening out workers)."""
        return bool(self.pipeline) or self.head_size > 0 or not self.message_done

    def on_body(self, body: bytes) -> None:
        if self.refused:
            return
        if self.cycle is not None and self.cycle.response_complete:  # answered: dropped
            self.discarded += len(body)
            if self.discarded > self.limits.discard_bytes:
                self.refuse(0, "", "too_large")
            return
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._disarm()
        self.in_head, self.head_size, self.message_done = True, 0, True
        if not self.refused:
            super().on_message_complete()

    def on_response_complete(self) -> None:
        if self.refused:
            return
        super().on_response_complete()
        if self.pending is not None and not self._answering():
            self.refuse(*self.pending)

    # -- refusing

    def refuse(self, status: int, what: str, reason: str) -> None:
        """Answer `status` with {"error": what} when no answer has started (status 0: none),
        stop reading the request, and close gracefully (see the module's docstring)."""
        if self.refused or self.transport.is_closing():
            return
        cycle = self.cycle
        answer = status and (cycle is None or cycle.response_complete or not cycle.response_started)
        if answer:
            retry = [(b"retry-after", b"1")] if status == 503 else []
            self.transport.write(refusal(status, what, retry))
            path = self.scope.get("path", "") if self.current and self.scope else ""
            metrics.observe(route_of(path) if path else "other", status, 0.0)  # 4xx: a reject too
            if reason and not 400 <= status < 500:
                metrics.reject(reason)
        elif reason:
            metrics.reject(reason)
        self.close_gracefully()

    def close_gracefully(self) -> None:
        """No more answers: the end of the stream is sent, and what the client still sends is
        read and dropped until it stops (LINGER s without a byte) or stops reading, then closed."""
        if self.refused or self.transport.is_closing():
            return
        self.refused = True
        self.connections.discard(self)  # lingering: no longer one of the limit's connections
        self.table.pop(self, None)
        self._disarm()
        self._unset_keepalive_if_required()
        for cycle in (self.cycle, *(c for c, _ in self.pipeline)):
            if cycle is not None and not cycle.response_complete:
                cycle.disconnected = True  # the app hears a disconnect; it writes nothing more
                cycle.message_event.set()
        self.pipeline.clear()
        self.flow.resume_reading()  # paused for a large body: keep reading, to drop it
        if self.transport.can_write_eof():
            self.transport.write_eof()  # the answer goes out; the client sees the end of it
        self.linger_until = self.loop.time() + self.limits.body_seconds
        self._linger()

    def _linger(self) -> None:
        if self.linger is not None:
            self.linger.cancel()
        delay = max(0.0, min(LINGER, self.linger_until - self.loop.time()))
        self.linger = self.loop.call_later(delay, self.transport.close)


class Graceful:
    """The transport as a request's cycle sees it: closing it ("Connection: close", HTTP/1.0)
    while the request's body is still coming lingers (see above) instead of resetting."""

    def __init__(self, protocol: LimitedHttpTools):
        self.protocol = protocol
        self.transport = protocol.transport
        self.write, self.is_closing = self.transport.write, self.transport.is_closing  # hot

    def close(self) -> None:
        if self.protocol.message_done and not self.protocol.head_size:
            self.transport.close()
        else:
            self.protocol.close_gracefully()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)
