"""Keep-alive connections spread evenly over the worker processes.

The kernel hashes each new connection to one worker's socket (workers.py). 32 keep-alive
clients on two workers split 16/16 only by chance (18/14 or worse in 6 runs of 10), and for as
long as they stay connected the worker with more of them answers each more slowly: the p99
latency is the busier worker's. So a worker that serves more than its share of the connections
in use closes one after its answer ("Connection: close", which HTTP/1.1 lets a server send with
any response, RFC 9112 section 9.6): the client opens a new connection, and the kernel hashes it
afresh, to the other worker half the time (with two). A few reconnects after a burst of new
clients, then none while the split holds.

"In use": the client addresses a worker answered in the last WINDOW seconds. Every REFRESH
seconds each worker, busy or idle, writes its count to its own small file in a directory the
supervisor made (Settings.workers_dir) and reads the others'.
"""

from __future__ import annotations

import asyncio
import math
import os
import struct
import time
from pathlib import Path
from typing import Any

WINDOW = 1.0  # s: a connection that sent nothing for this long is not counted
REFRESH = 0.2  # s between two looks at the other workers' counts
RECORD = struct.Struct("<id")  # connections in use, and when that was counted (time.time())


class Balancer:
    """One per worker process: `close_after(client)` for each answer on the busy route."""

    def __init__(self, directory: Path, name: str | None = None):
        self.directory = directory
        self.path = directory / f"worker-{name or os.getpid()}"
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        self.seen: dict[Any, float] = {}  # client address -> when it was last answered
        self.excess = 0  # connections over this worker's share: to close, one per answer
        self.looking: asyncio.Task[None] | None = None

    def start(self) -> Balancer:
        """Look every REFRESH seconds from now on, until close() (on the running event loop)."""
        self.looking = asyncio.create_task(self.run())
        return self

    def close_after(self, client: Any) -> bool:
        """Note an answer to `client` ((host, port) of the connection); True when that answer
        should close the connection (this worker has more than its share)."""
        self.seen[client] = time.monotonic()
        if self.excess <= 0:
            return False
        self.excess -= 1
        del self.seen[client]
        return True

    async def run(self) -> None:
        """Look every REFRESH seconds, for the worker's life (a task; cancelled at shutdown)."""
        while True:
            try:
                self.look()
            except OSError:  # the directory gone (the supervisor stopping): nothing to even out
                self.excess = 0
            await asyncio.sleep(REFRESH)

    def look(self) -> None:
        """Count this worker's connections in use, publish the count, and compare with the
        other workers' (those counted in the last 2 WINDOWs: a stopped worker drops out)."""
        cutoff = time.monotonic() - WINDOW
        self.seen = {c: t for c, t in self.seen.items() if t >= cutoff}
        mine, wall = len(self.seen), time.time()
        os.pwrite(self.fd, RECORD.pack(mine, wall), 0)
        counts = []
        for entry in os.scandir(self.directory):
            try:
                with open(entry.path, "rb") as f:
                    count, when = RECORD.unpack(f.read(RECORD.size))
            except (OSError, struct.error):  # a worker starting or gone: not counted
                continue
            if wall - when <= 2 * WINDOW:
                counts.append(count)
        share = math.ceil(sum(counts) / len(counts)) if counts else mine
        self.excess = mine - share

    def close(self) -> None:
        if self.looking is not None:
            self.looking.cancel()
        os.close(self.fd)
        self.path.unlink(missing_ok=True)
