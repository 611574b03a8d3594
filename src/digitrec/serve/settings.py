"""Server settings, validated by pydantic-settings.

Every field can be set from the environment with the DIGITREC_ prefix
(DIGITREC_MODEL, DIGITREC_DATA_DIR, ...). `run_server` passes the CLI's
options that way, so each uvicorn worker process builds the same app.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


@dataclass(frozen=True)
class Limits:
    """The HTTP limits serve/protocol.py holds every connection to (Settings.limits)."""

    head_bytes: int = 32 * 1024  # request line and headers
    headers: int = 100  # header fields
    head_seconds: float = 10.0  # from the head's first byte to its end
    body_seconds: float = 60.0  # from the head's end to the body's (5 MB at ~0.7 Mbit/s)
    discard_bytes: int = 64 * 1024 * 1024  # a body read and dropped after its answer


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DIGITREC_", frozen=True)

    # None = the best shipped model; else a name in models/ or a run directory.
    model: str | None = None
    # Where the feedback store lives; None = platformdirs' user data dir.
    data_dir: Path | None = None
    # Keep feedback in PostgreSQL instead (postgresql://USER:PASSWORD@HOST:PORT/DATABASE), one
    # database that several servers share (feedback/postgres.py); None: the SQLite file in data_dir.
    # Secret: its password never shows in a repr or a log.
    database: SecretStr | None = None
    # Largest request body accepted, in bytes (5 MB); bigger is a 413.
    max_body_bytes: int = Field(default=5 * 1024 * 1024, gt=0)
    # Threads one worker preprocesses in at once, off the event loop: each runs a batch of
    # drawings (serve/batch.py) or one photo. Bounds memory.
    inference_threads: int = Field(default=2, ge=1)
    # Pixels one worker decodes at once in that pool (judged from each image's header): an
    # image holds ~15 bytes a pixel while decoded (a 25-megapixel WebP: ~370 MB), so this
    # bounds a worker's memory to its ~250 MB at rest plus ~15 bytes x this. Past it an image
    # waits up to decode_wait seconds, then is refused 503 with Retry-After.
    decode_pixels: int = Field(default=25_000_000, ge=1_000_000)
    decode_wait: float = Field(default=10.0, gt=0)
    # /read: the work on one image stops past read_seconds, or before segmentation when its
    # ink has over read_parts separate marks: 422 with the reason (digitrec.work).
    read_seconds: float = Field(default=10.0, gt=0)
    read_parts: int = Field(default=300, ge=10)
    # Run inference on the event loop instead: no faster since requests are batched (one
    # thread hop per batch), and one large photo (seconds of preprocessing) then stalls every
    # request. For benchmarks.
    inline_inference: bool = False
    # Set by `digitrec serve --workers N` (N > 1) for its workers: where each publishes how many
    # connections it serves, so that they even out (serve/balance.py). None: one worker.
    workers_dir: Path | None = None
    # Feedback (serve/feedback_routes.py): corrections one client address may post at once,
    # refilled at feedback_per_minute (0: no limit); past it a 429 with Retry-After. A person
    # at the page corrects a digit every few seconds at most; the burst lets a class behind one
    # address (NAT) through.
    feedback_per_minute: float = Field(default=20.0, ge=0)
    # Counted per client over all workers (a SQLite file they share) and, with `database`, over
    # every replica on it (serve/ratelimit.py). A client is its connection's address (IPv6: its
    # /64); X-Forwarded-For is believed only from these proxies' addresses or networks
    # (DIGITREC_TRUSTED_PROXIES='["10.0.0.0/8"]'); empty (the default): never.
    trusted_proxies: list[str] = []
    feedback_burst: int = Field(default=100, ge=1)
    # The feedback store's cap, bytes (1 GiB: ~200,000 drawn canvases at ~5 KB a row, at least
    # ~7,500 rows of the largest, feedback.ROW_MAX_BYTES); full: 507.
    feedback_max_bytes: int = Field(default=1024**3, gt=0)

    # Host names this server answers to (the Host header, without its port), "*.example.org"
    # for any subdomain; any other is a 400. Empty: every name. `digitrec serve` on a loopback
    # address sets the localhost names (loopback_hosts) unless this is set: a page elsewhere
    # cannot reach it by DNS rebinding. From the environment as JSON:
    # DIGITREC_ALLOWED_HOSTS='["digits.example.org"]'.
    allowed_hosts: list[str] = []
    # Corrections (POST /api/v1/feedback) are taken from this server's own page (a browser's
    # Origin or Sec-Fetch-Site says so) or from clients that are no browser, else 403. With a
    # key, only requests carrying it in X-API-Key are taken (scripts; the page then cannot).
    feedback_api_key: SecretStr | None = None
    # One JSON line per request on the "digitrec.access" logger: request id, method, path,
    # status, milliseconds, client address. Off: a line per request costs more than a drawing.
    access_log: bool = False
    # HTTP limits (serve/protocol.py): the request line and headers at most this many bytes,
    # and at most this many header fields (else 431) ...
    max_head_bytes: int = Field(default=32 * 1024, ge=1024)
    max_headers: int = Field(default=100, ge=8)
    # ... sent within this many seconds of their first byte, and the body within this many
    # seconds of the headers (else 408) ...
    head_timeout: float = Field(default=10.0, gt=0)
    body_timeout: float = Field(default=60.0, gt=0)
    # ... and a body refused (413) is read and dropped up to this many bytes, so the client
    # can read the answer; past that its connection is closed.
    discard_bytes: int = Field(default=64 * 1024 * 1024, ge=0)
    # Seconds an idle keep-alive connection stays open (uvicorn's timeout_keep_alive).
    keep_alive: int = Field(default=5, ge=1)
    # Connections and requests in progress, per worker, past which uvicorn answers 503
    # (uvicorn's limit_concurrency): bounds the memory a flood of connections can take.
    max_connections: int = Field(default=1000, ge=1)

    def limits(self) -> Limits:
        return Limits(
            head_bytes=self.max_head_bytes,
            headers=self.max_headers,
            head_seconds=self.head_timeout,
            body_seconds=self.body_timeout,
            discard_bytes=self.discard_bytes,
        )


LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


def loopback_hosts(host: str) -> list[str]:
    """The Host names a server bound to `host` answers by default: the localhost names when
    it listens on a loopback address, else none set (every name: the operator names the site)."""
    name = host.strip("[]").lower()
    if name in ("localhost", "::1") or name.startswith("127."):
        return ["localhost", "127.0.0.1", "[::1]", "::1", *([name] if name not in LOOPBACK else [])]
    return []
