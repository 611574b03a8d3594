"""The page answering on the device, in Chromium against `digitrec serve` on this machine:
pointer-up to answer shown, and what loading the page costs, cold and from the cache.

    python benchmarks/ondevice.py [--drawings 100] [--dpr 1 3]

- Pointer-up to answer: real-stroke digits (data/real/pendigits) drawn with the mouse on the
  page; from the pointerup event to the answer's text changing (and to the next animation
  frame, when it is on screen). Percentiles over the drawings, per device pixel ratio.
- First load (cold cache, a new browser profile): bytes on the wire (counted by a TCP relay
  between the browser and the server: headers and bodies, every request, the service worker's
  too) and the time until the page answers on the device; then the same for a reload, served
  by the service worker's copies and the browser's cache.
- The work of one answer alone: preprocess.js, and ONNX Runtime Web's run, in the page.

Prints the figures with the date, the CPU and the command. Needs /usr/bin/chromium and
Playwright (the dev extra).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import importlib.util
import json
import os
import platform
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PENDIGITS = ROOT / "data" / "real" / "pendigits" / "strokes.jsonl"
DPRS = (1, 1.5, 2, 2.625, 3)  # device pixel ratios the drawings are rendered at, in turn


def pen_drawings(n: int, seed: int = 0) -> list[dict]:
    """`n` pen-stroke digits, a deterministic share of every writer's, placed on the 280-px
    canvas as a person draws: 40-85% of its height, anywhere it fits, brush 6-40 px."""
    rows = [json.loads(line) for line in PENDIGITS.read_text().splitlines()]
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(rows), size=min(n, len(rows)), replace=False).tolist())
    drawings = []
    for i in chosen:
        row = rows[i]
        points = np.array([p for s in row["strokes"] for p in s], float)
        lo, hi = points.min(axis=0), points.max(axis=0)
        extent = max(hi[1] - lo[1], (hi[0] - lo[0]) * 0.8, 1.0)
        size = float(rng.uniform(6, 40))
        scale = float(rng.uniform(0.4, 0.85)) * 280 / extent
        w, h = (hi[0] - lo[0]) * scale, (hi[1] - lo[1]) * scale
        room_x, room_y = max(0.0, 280 - w - size), max(0.0, 280 - h - size)
        x0 = size / 2 + float(rng.uniform(0, room_x)) if room_x else (280 - w) / 2
        y0 = size / 2 + float(rng.uniform(0, room_y)) if room_y else (280 - h) / 2
        strokes = [
            [[round(x0 + (x - lo[0]) * scale, 2), round(y0 + (hi[1] - y) * scale, 2)] for x, y in s]
            for s in row["strokes"]
        ]  # y points up in the data, down on a canvas
        drawings.append(
            {
                "strokes": strokes,
                "size": round(size, 1),
                "dpr": DPRS[i % len(DPRS)],
                "label": row["label"],
                "writer": row["writer"],
            }
        )
    return drawings


def serve_command(port: int, data_dir: str, model: str | None) -> list[str]:
    spec = importlib.util.spec_from_file_location(
        "bench_http", ROOT / "benchmarks" / "serve_load.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(module.serve_command(port, 1, data_dir, model))


# Times each answer after a pointerup: to the #answer text changing, and to the frame after.
MEASURE = """
window.__latency = [];
window.addEventListener("pointerup", () => {
  const t0 = performance.now();
  const seen = new MutationObserver(() => {
    seen.disconnect();
    const t1 = performance.now();
    requestAnimationFrame(() => window.__latency.push([t1 - t0, performance.now() - t0]));
  });
  const options = { childList: true, characterData: true, subtree: true };
  seen.observe(document.getElementById("answer"), options);
}, true);
"""

WORK = """
async (n) => {
  const m = await import("/static/ondevice.js");
  const d = await m.load();
  const c = document.createElement("canvas");
  c.width = c.height = Math.round(280 * devicePixelRatio);
  const x = c.getContext("2d");
  x.setTransform(devicePixelRatio, 0, 0, devicePixelRatio, 0, 0);
  x.lineWidth = 20; x.lineCap = x.lineJoin = "round"; x.strokeStyle = "#111";
  x.beginPath(); x.moveTo(80, 60); x.lineTo(200, 60); x.lineTo(120, 230); x.stroke();
  const alpha = d.alpha(c);
  const prep = [], run = [], png = [], pixels = [];
  for (let i = 0; i < 20; i++) {  // warm up: the JIT, and WebAssembly's optimizing tier
    const x28 = d.prep.preprocessCanvas(alpha);
    await d.session.run({ image: new d.ort.Tensor("float32", x28, [1, 1, 28, 28]) });
  }
  for (let i = 0; i < n; i++) {
    let s = performance.now();
    d.alpha(c);
    pixels.push(performance.now() - s);
    s = performance.now();
    c.toDataURL("image/png");
    png.push(performance.now() - s);
    let t = performance.now();
    const image28 = d.prep.preprocessCanvas(alpha);
    prep.push(performance.now() - t);
    t = performance.now();
    await d.session.run({ image: new d.ort.Tensor("float32", image28, [1, 1, 28, 28]) });
    run.push(performance.now() - t);
  }
  return { prep, run, pixels, png };
}
"""


class Relay:
    """A TCP relay from a local port to the server, counting the bytes the server sends."""

    def __init__(self, target: int):
        self.target, self.received = target, 0
        self.loop = asyncio.new_event_loop()
        self.port = 0
        ready = threading.Event()
        threading.Thread(target=self._run, args=(ready,), daemon=True).start()
        ready.wait()

    def _run(self, ready: threading.Event) -> None:
        async def pipe(reader, writer, count: bool) -> None:  # type: ignore[no-untyped-def]
            try:
                while data := await reader.read(65536):
                    if count:
                        self.received += len(data)
                    writer.write(data)
                    await writer.drain()
            except OSError:
                pass
            finally:
                writer.close()

        async def handle(reader, writer) -> None:  # type: ignore[no-untyped-def]
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
            await asyncio.gather(pipe(reader, up_writer, False), pipe(up_reader, writer, True))

        async def main() -> None:
            server = await asyncio.start_server(handle, "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            await server.serve_forever()

        self.loop.run_until_complete(main())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(
            line.split(":", 1)[1].strip() for line in out.splitlines() if "Model name" in line
        )
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))]


def draw(page, strokes) -> None:  # type: ignore[no-untyped-def]
    box = page.locator("#canvas").bounding_box()
    for stroke in strokes:
        pts = stroke[:: max(1, len(stroke) // 15)] + stroke[-1:]
        at = [
            (box["x"] + x * box["width"] / 280, box["y"] + y * box["height"] / 280) for x, y in pts
        ]
        page.mouse.move(*at[0])
        page.mouse.down()
        for p in at[1:]:
            page.mouse.move(*p, steps=2)
        page.mouse.up()


def wait_ready(page) -> float:  # type: ignore[no-untyped-def]
    page.wait_for_function("() => document.documentElement.dataset.device", timeout=120_000)
    if page.evaluate("document.documentElement.dataset.device") != "ready":
        raise SystemExit("the page could not load the model on the device")
    return float(page.evaluate("performance.now()"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--drawings", type=int, default=100, help="digits drawn per ratio (default 100)"
    )
    ap.add_argument(
        "--dpr", type=float, nargs="+", default=[1, 3], help="device pixel ratios (default 1 3)"
    )
    ap.add_argument("--model", default=None, help="the model to serve (default: the default model)")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    data = tempfile.mkdtemp()
    port = free_port()
    server = subprocess.Popen(
        serve_command(port, data, args.model),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    try:
        for _ in range(150):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                    break
            except OSError:
                time.sleep(0.2)
        relay = Relay(port)
        url = f"http://127.0.0.1:{relay.port}/"
        info = json.loads(urllib.request.urlopen(url + "api/v1/model/ondevice").read())
        static = ROOT / "src" / "digitrec" / "serve" / "static"
        sizes = {
            p.name: p.stat().st_size for p in (static / "vendor" / "onnxruntime-web").iterdir()
        }
        print(
            f"# {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, {cpu_name()}, "
            f"{os.cpu_count()} cores; command: python {shlex.join(sys.argv)}"
        )
        print(
            f"model {info['name']} (sha256 {info['sha256'][:12]}), "
            f"preprocess.js {info['preprocess']}"
        )
        print("files: " + ", ".join(f"{k} {v / 1e6:.2f} MB" for k, v in sorted(sizes.items())))
        args_ = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
            # Cold: a new browser profile on disk (its HTTP cache as a person's browser has
            # it). Bytes until it answers on the device, then once the service worker has kept
            # its copies; then reloads.
            context = p.chromium.launch_persistent_context(
                profile,
                executable_path="/usr/bin/chromium",
                args=args_,
                viewport={"width": 1000, "height": 760},
            )
            print(f"Chromium {context.browser.version if context.browser else '?'}")
            page = context.new_page()
            before = relay.received
            page.goto(url)
            ready = wait_ready(page)
            cold = relay.received - before
            page.wait_for_function("async () => !!(await navigator.serviceWorker.ready).active")
            page.wait_for_timeout(1000)
            installed = relay.received - before
            print(
                f"first load, cold cache: answers on the device after {ready:.0f} ms, "
                f"{cold / 1e6:.2f} MB on the wire; {installed / 1e6:.2f} MB once the service "
                "worker has its copies"
            )
            for i in range(3):
                before = relay.received
                page.reload()
                ready = wait_ready(page)
                page.wait_for_timeout(500)
                print(
                    f"reload {i + 1} (service worker, browser cache): answers on the device after "
                    f"{ready:.0f} ms, {(relay.received - before) / 1e3:.1f} kB on the wire"
                )
            context.close()
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=args_)
            drawings = pen_drawings(args.drawings, seed=3)
            for dpr in args.dpr:
                context = browser.new_context(
                    viewport={"width": 1000, "height": 760}, device_scale_factor=dpr
                )
                context.add_init_script(MEASURE)
                page = context.new_page()
                page.goto(url)
                wait_ready(page)
                work = page.evaluate(WORK, 50)
                names = {
                    "pixels": "getImageData",
                    "prep": "preprocess.js",
                    "run": "ONNX Runtime Web run",
                    "png": "toDataURL (kept for a correction)",
                }
                print(
                    f"dpr {dpr:g}, one answer's parts: "
                    + "; ".join(
                        f"{what} p50 {pct(work[k], 50):.2f} ms, p99 {pct(work[k], 99):.2f} ms"
                        for k, what in names.items()
                    )
                )
                for d in drawings:
                    if page.locator("#clear").is_enabled():
                        page.locator("#clear").click()
                    draw(page, d["strokes"])
                    page.wait_for_function(
                        "() => document.getElementById('result').ariaBusy === 'false'"
                    )
                page.wait_for_timeout(300)
                lat = page.evaluate("window.__latency")
                side = page.locator("#answered-by").inner_text().strip()
                context.close()
                text = [a for a, _ in lat]
                frame = [b for _, b in lat]
                print(
                    f"pointer-up to answer, dpr {dpr:g} ({len(lat)} pointer-ups, {side}): "
                    f"text p50 {statistics.median(text):.1f} ms, p99 {pct(text, 99):.1f} ms, "
                    f"max {max(text):.1f} ms; on screen (next frame) p50 "
                    f"{statistics.median(frame):.1f} ms, p99 {pct(frame, 99):.1f} ms"
                )
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
