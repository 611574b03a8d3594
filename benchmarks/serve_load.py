"""HTTP throughput of `digitrec serve`: N keep-alive clients POST a drawn canvas for T seconds
(benchmarks/canvas7.png: a 7 drawn on a 280x280 canvas in Chromium, exported as the page does).

    python benchmarks/serve_load.py --workers 1 --clients 32 --seconds 10

Starts the server on 127.0.0.1 (a free port, a temporary data dir), waits for /healthz,
warms up for a second, then runs the clients until the time is up and prints requests/s,
p50/p99 latency, errors and the server's memory (RSS per process, from /proc). Also the
server's CPU time per request and each worker's share of a core (from /proc/PID/stat), and
the machine's load average: on a shared machine requests/s follow the CPU the server gets,
while CPU ms per request does not.

The clients are one asyncio process writing pre-built HTTP/1.1 requests on raw sockets,
so the client costs as little CPU as possible: on a small machine it shares the cores
with the server, and the figures are for both together. Targets on 2 cores:
>= 1,000 req/s, p99 <= 50 ms, RSS <= 200 MB per worker.
"""

# ruff: noqa: E402
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from digitrec import realworld

ROOT = Path(__file__).resolve().parents[1]
CANVAS = ROOT / "benchmarks" / "canvas7.png"  # a 7 drawn and exported in Chromium


def build_request(form: str, port: int, endpoint: str, png: bytes = b"") -> bytes:
    if endpoint == "healthz":  # the HTTP stack alone: no image, no model
        return f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    png = png or CANVAS.read_bytes()
    if form == "json":
        body = json.dumps({"image": "data:image/png;base64," + base64.b64encode(png).decode()})
        content_type, data = "application/json", body.encode()
    elif form == "png":
        content_type, data = "image/png", png
    else:
        boundary = "digitrecbench"
        data = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="canvas.png"\r\nContent-Type: image/png\r\n\r\n'
        ).encode()
        data += png + f"\r\n--{boundary}--\r\n".encode()
        content_type = f"multipart/form-data; boundary={boundary}"
    head = (
        f"POST /api/v1/predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


async def client(
    port: int,
    requests: list[bytes],
    until: float,
    record: float,
    latencies: list[float],
    errors: list[str],
    reconnects: list[int],
) -> None:
    """One keep-alive connection's requests, one at a time, until `until`. When an answer says
    "Connection: close" (the server evening out its workers' connections, serve/balance.py),
    the next request goes on a new connection, as any HTTP/1.1 client does; counted."""
    writer = None
    turn = 0
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while (start := time.perf_counter()) < until:
            writer.write(requests[turn % len(requests)])
            turn += 1
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length, close = 0, False
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection":
                    close = value.strip().lower() == b"close"
            await reader.readexactly(length)
            if start >= record:
                latencies.append(time.perf_counter() - start)
                if status != 200:
                    errors.append(f"HTTP {status}")
            if close:
                writer.close()
                reconnects.append(1)
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except (OSError, asyncio.IncompleteReadError) as e:  # refused, reset, cut short: errors
        errors.append(type(e).__name__)
    finally:
        if writer is not None:
            writer.close()


async def load(port: int, requests: list[bytes], clients: int, warmup: float, seconds: float):
    latencies: list[float] = []
    errors: list[str] = []
    reconnects: list[int] = []
    record = time.perf_counter() + warmup
    until = record + seconds
    await asyncio.gather(
        *(
            client(
                port,
                requests[k % len(requests) :] + requests,
                until,
                record,
                latencies,
                errors,
                reconnects,
            )
            for k in range(clients)
        )
    )
    return latencies, errors, len(reconnects)


def rss_mb(pid: int) -> dict[int, float]:
    """RSS of a process and its descendants, in MB, from /proc."""
    out: dict[int, float] = {}
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    out[p] = int(line.split()[1]) / 1024
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User + system CPU time of each of these processes so far (from /proc/PID/stat)."""
    out = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime+stime
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"server exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    sys.exit("server did not become healthy")


def serve_command(port: int, workers: int, data_dir: str, model: str | None = None) -> list[str]:
    """`digitrec serve` on 127.0.0.1:port with its own data directory (benchmarks and tests)."""
    cmd = [sys.executable, "-m", "digitrec", "serve", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--workers", str(workers), "--data-dir", str(data_dir)]
    return cmd + (["--model", model] if model else [])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=1, help="server worker processes (default 1)")
    ap.add_argument("--clients", type=int, default=32, help="concurrent connections (default 32)")
    ap.add_argument("--seconds", type=float, default=10, help="measured duration (default 10)")
    ap.add_argument("--warmup", type=float, default=1, help="unmeasured warm-up, s (default 1)")
    ap.add_argument(
        "--form",
        choices=["json", "multipart", "png"],
        default="json",
        help="body: a JSON data URL as the page sends it, multipart, or a raw image/png body "
        "(default json)",
    )
    ap.add_argument(
        "--endpoint",
        choices=["predict", "healthz"],
        default="predict",
        help="POST /api/v1/predict, or GET /healthz for the HTTP stack's ceiling (default predict)",
    )
    ap.add_argument(
        "--inline",
        action="store_true",
        help="run inference on the event loop instead of the server's threadpool (default off)",
    )
    ap.add_argument("--model", default=None, help="model to serve (default: best shipped)")
    ap.add_argument(
        "--canvases",
        choices=["canvas7", "realistic"],
        default="canvas7",
        help="what is posted: benchmarks/canvas7.png, or 64 real writers' pen digits drawn as "
        "the page exports them, in turn (default canvas7)",
    )
    args = ap.parse_args()

    port = free_port()
    env = dict(os.environ, DIGITREC_INLINE_INFERENCE=str(args.inline).lower())
    with tempfile.TemporaryDirectory() as data_dir:
        cmd = serve_command(port, args.workers, data_dir, args.model)
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            wait_healthy(f"http://127.0.0.1:{port}", proc)
            time.sleep(0.5 * args.workers)  # let every worker finish starting
            images = realworld.realistic_canvases() if args.canvases == "realistic" else [b""]
            requests = [build_request(args.form, port, args.endpoint, png) for png in images]
            try:
                import uvloop  # the client is cheaper on uvloop too

                run = uvloop.run
            except ImportError:
                run = asyncio.run
            # Server CPU time per request: a figure the other programs on the machine
            # do not distort, unlike requests/s. Sampled over the measured window only.
            pids = list(rss_mb(proc.pid))

            async def measured() -> tuple[list[float], list[str], int, dict[int, float], float]:
                task = asyncio.ensure_future(
                    load(port, requests, args.clients, args.warmup, args.seconds)
                )
                await asyncio.sleep(args.warmup)
                cpu0, own0 = cpu_seconds(pids), time.process_time()
                await asyncio.sleep(args.seconds)
                cpu1, own1 = cpu_seconds(pids), time.process_time()
                latencies, errors, reconnects = await task
                cpu = {pid: cpu1[pid] - cpu0[pid] for pid in cpu1 if pid in cpu0}
                return latencies, errors, reconnects, cpu, own1 - own0

            load_before = os.getloadavg()[0]
            latencies, errors, reconnects, server_cpu, client_cpu = run(measured())
            memory = rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=15)

    latencies.sort()
    n = len(latencies)
    pct = (lambda q: latencies[min(n - 1, int(q * n))] * 1000) if n else (lambda q: float("nan"))
    main_mb = memory.pop(proc.pid, float("nan"))
    if args.workers == 1:
        rss = f"{main_mb:.0f} MB (the one worker)"
    else:  # uvicorn's supervisor, its workers, and multiprocessing's resource tracker
        rss = f"supervisor {main_mb:.0f} MB; children " + ", ".join(
            f"{mb:.0f} MB" for mb in sorted(memory.values())
        )
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}"
    )
    inference = "inline" if args.inline else "threadpool"
    print(
        f"server: --workers {args.workers}, inference {inference}, "
        f"{'GET /healthz' if args.endpoint == 'healthz' else f'body {args.form}'} "
        f"({sorted(map(len, requests))[len(requests) // 2]:,} bytes per request, median of "
        f"{len(requests)}: {args.canvases})"
    )
    print(
        f"load: {args.clients} clients for {args.seconds:g} s (after {args.warmup:g} s warm-up); "
        f"machine load average {load_before:.2f} before"
    )
    print(f"requests: {n:,}   throughput: {n / args.seconds:,.0f} req/s")
    print(f"latency: p50 {pct(0.50):.1f} ms   p99 {pct(0.99):.1f} ms   max {pct(1.0):.1f} ms")
    if n:
        per_request = sum(server_cpu.values()) / n * 1000
        # How evenly the connections spread: a worker with few of them leaves a core idle.
        busy = sorted(
            (s / args.seconds for s in server_cpu.values() if s / args.seconds > 0.05),
            reverse=True,
        )
        print(
            f"server CPU: {per_request:.2f} ms per request "
            f"(so at most {1000 / per_request * args.workers:,.0f} req/s "
            f"on {args.workers} free core{'s' if args.workers > 1 else ''}); "
            f"workers busy {', '.join(f'{b:.0%}' for b in busy) or '-'}; "
            f"client CPU {client_cpu / n * 1000:.2f} ms per request"
        )
    print(f"errors: {len(errors)}" + (f" ({', '.join(sorted(set(errors)))})" if errors else ""))
    print(f"reconnects (the server evening out its workers' connections): {reconnects}")
    print(f"server RSS: {rss}")


if __name__ == "__main__":
    main()
