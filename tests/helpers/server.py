"""A real uvicorn server on 127.0.0.1 (a thread, the project's HTTP protocol, short timeouts),
talked to over raw sockets with benchmarks/abuse.py's tools: the server tests' harness
(tests/serve/test_serve_hardening.py, _budgets, _hostile, _ratelimit)."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import uvicorn

from digitrec.serve import Settings, create_app
from digitrec.serve.protocol import LimitedHttpTools
from digitrec.serve.settings import Limits
from tests.helpers import ROOT, load_script

abuse = load_script(ROOT / "benchmarks" / "abuse.py")  # the seeded bad requests, raw sockets

SEVEN = abuse.drawn_seven()
LIMITS = Limits(head_seconds=1.0, body_seconds=1.0, discard_bytes=8 * 1024 * 1024)


class Server:
    def __init__(
        self,
        tmp: Path,
        limits: Limits = LIMITS,
        uvicorn_options: dict | None = None,
        **settings: object,
    ):
        LimitedHttpTools.configured = limits
        self.app = create_app(Settings(data_dir=tmp, model="fast", **settings))  # type: ignore[arg-type]
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            http=LimitedHttpTools,
            log_level="warning",
            lifespan="on",
            **(uvicorn_options or {}),
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]})

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "server did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()
        LimitedHttpTools.configured = None

    def connect(self) -> socket.socket:
        return abuse.connect(self.port, timeout=10)

    def ask(self, sock: socket.socket, request: bytes) -> tuple[int, dict[str, str], bytes]:
        sock.sendall(request)
        return abuse.read_answer(sock)


def is_json_error(body: bytes) -> bool:
    parsed = json.loads(body)
    return set(parsed) == {"error"} and isinstance(parsed["error"], str) and parsed["error"]


def metric(text: str, line_start: str) -> float:
    return sum(float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines() if ln.startswith(line_start))
