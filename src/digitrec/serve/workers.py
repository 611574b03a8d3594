"""Several worker processes, each with its own listening socket (SO_REUSEPORT, Linux).

uvicorn's `--workers` shares one listening socket among the workers: whichever wakes first
accepts, and a burst of connections can all go to one of them (32 keep-alive clients, two
workers: 32 to 0 in one try of 12, 27 to 5 in another), leaving a core idle for as long as
they stay open. With a socket per worker in one SO_REUSEPORT group, the kernel spreads
connections over the workers by a hash of their addresses (12 tries: 11 to 21 at worst).
The approach of https://github.com/Kludex/uvicorn/pull/2472 (not in uvicorn yet); uvicorn's
own supervisor still starts, restarts and signals the workers here.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
from typing import Any

from digitrec.errors import DigitrecError

# On macOS and BSD the option exists but gives every connection to one of the sockets.
SUPPORTED = sys.platform == "linux" and hasattr(socket, "SO_REUSEPORT")


def cores() -> int:
    """The cores this process may run on: its CPU affinity where the OS keeps one (a
    container's cpuset, `taskset`), else every core the machine has. `serve`'s default count
    of workers: one per core."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def bind_reuse_port(
    family: int, address: tuple[Any, ...], kind: type[socket.socket] = socket.socket
) -> socket.socket:
    sock = kind(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    return sock


class PortPerWorker(socket.socket):
    """The address bound in the supervisor, to hold it and report a clash once; it never listens.

    uvicorn hands its sockets to each worker it starts (or restarts) by pickling them: this one
    arrives as a new socket bound to the same address, the worker's own.
    """

    def __reduce__(self) -> tuple[Any, ...]:
        return (bind_reuse_port, (self.family, self.getsockname()[:2]))


def serve_workers(config: Any) -> None:
    """Run `config.workers` uvicorn workers, each accepting on its own socket, until stopped."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    address = (config.host, config.port)
    try:
        # A port in use fails here, as with one shared socket. SO_REUSEPORT alone would let a
        # second server on the port (of the same user) share it silently.
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
            address = probe.getsockname()[:2]  # port 0: the one the system chose
        held = bind_reuse_port(family, address, PortPerWorker)
    except OSError as e:
        raise DigitrecError(f"cannot listen on {config.host}:{config.port}: {e.strerror}") from None
    # Where the workers publish their connection counts to even them out (serve/balance.py):
    # they read it from the environment, as every setting.
    os.environ["DIGITREC_WORKERS_DIR"] = tempfile.mkdtemp(prefix="digitrec-workers-")
    try:
        try:
            supervisor = Multiprocess(config, sockets=[held])
        except TypeError:  # older uvicorn also takes the function each worker runs
            run = uvicorn.Server(config).run
            supervisor = Multiprocess(config, target=run, sockets=[held])  # type: ignore[call-arg]
        supervisor.run()
    finally:
        held.close()
        shutil.rmtree(os.environ.pop("DIGITREC_WORKERS_DIR"), ignore_errors=True)
