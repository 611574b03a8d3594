"""uvicorn's HTTP protocol (httptools) with the limits a server on the internet needs.

uvicorn reads headers of any size and count, and gives a client all the time it wants to send
them and its body: `timeout_keep_alive` covers only the idle time between two requests, and any
byte received restarts it (https://github.com/Kludex/uvicorn/issues/157, open since 2018). Tried
on digitrec: 64 MB of headers were read for 5 s, blocking the worker, and a client sending a
byte a second held its connection for ever. This subclass of uvicorn's protocol adds:

- the head (request line and headers) at most `head_bytes`, and at most `headers` fields:
  else 431, as soon as the limit is passed;
- the head sent within `head_seconds` of its first byte (of the connection, for the first
  request), and the body within `body_seconds` of the head: else 408;
- after an answer that did not read the whole body (a 413), up to `discard_bytes` more of it
  are read and dropped, so that the client, still sending, can read the answer; past that the
  connection is closed;
- a request the parser cannot read gets uvicorn's 400 as JSON, like every other error.

A refusal is a JSON answer with "Connection: close"; then the server stops writing, reads and
drops what the client still sends for `LINGER` seconds and closes. Closing at once, with the
client's bytes unread, would make the kernel reset the connection and the client could lose
the answer.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from digitrec.serve import metrics

LINGER = 2.0  # s: how long a refused connection is read (and dropped) before it is closed


@dataclass(frozen=True)
class Limits:
    head_bytes: int = 32 * 1024  # request line and headers
    headers: int = 100  # header fields
    head_seconds: float = 10.0  # from the head's first byte to its end
    body_seconds: float = 60.0  # from the head's end to the body's (5 MB at ~0.7 Mbit/s)
    discard_bytes: int = 64 * 1024 * 1024  # a body read and dropped after its answer


STATUS = {400: "Bad Request", 408: "Request Timeout", 431: "Request Header Fields Too Large"}


class LimitedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits above; uvicorn takes it as `http=`."""

    # Set by the app's settings (run_server) before the server starts; each worker process
    # builds them from the environment, as every setting.
    configured: ClassVar[Limits | None] = None

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if LimitedHttpTools.configured is None:
            from digitrec.serve.settings import Settings

            LimitedHttpTools.configured = Settings().limits()
        self.limits: Limits = LimitedHttpTools.configured
        self.in_head = True  # waiting for, or reading, a request's head
        self.head_size = 0  # bytes received since the last request ended: its head so far
        self.field_size = 0  # bytes of the request line and fields, as the parser gives them
        self.field_count = 0
        self.current = False  # self.cycle is this request's (its head was read)
        self.discarded = 0  # body bytes dropped after the answer
        self.deadline: asyncio.TimerHandle | None = None
        self.refused = False

    # -- timers

    def _arm(self, seconds: float, status: int, what: str) -> None:
        self._disarm()
        self.deadline = self.loop.call_later(seconds, self.refuse, status, what, "too_slow")

    def _disarm(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    # -- the connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.limits.head_seconds, 408, "request headers not sent in time")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return  # lingering: read and dropped
        if self.in_head:
            self.head_size += len(data)
        super().data_received(data)
        if self.in_head and not self.refused and self.head_size > self.limits.head_bytes:
            self.refuse(431, "request headers are too large", "headers_too_large")

    def send_400_response(self, msg: str) -> None:
        self.refuse(400, "not an HTTP request this server can read", "bad_request")

    # -- the parser's callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.field_size, self.field_count, self.discarded, self.current = 0, 0, 0, False
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
        super().on_headers_complete()
        self.current = True

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
        self.in_head, self.head_size = True, 0
        if not self.refused:
            super().on_message_complete()

    # -- refusing

    def refuse(self, status: int, what: str, reason: str) -> None:
        """Answer `status` with {"error": what} when no answer has started (status 0: none),
        stop reading the request, and close gracefully (see the module's docstring)."""
        if self.refused or self.transport.is_closing():
            return
        self.refused = True
        self._disarm()
        self._unset_keepalive_if_required()
        metrics.reject(reason)
        cycle = self.cycle if self.current else None  # else the last request's, answered
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the app, if it waits for the body, hears a disconnect
            cycle.message_event.set()
        if status and (cycle is None or not cycle.response_started):
            body = json.dumps({"error": what}).encode()
            head = (
                b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                b"x-content-type-options: nosniff\r\nconnection: close\r\n\r\n"
            )
            self.transport.write(head % (status, STATUS[status].encode(), len(body)) + body)
        self.pipeline.clear()
        self.flow.resume_reading()  # paused for a large body: keep reading, to drop it
        if self.transport.can_write_eof():
            self.transport.write_eof()  # the answer goes out; the client sees the end of it
        self.loop.call_later(LINGER, self.transport.close)
