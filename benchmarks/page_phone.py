"""The page as people use it: real pen strokes drawn through Chromium, timed by the page.

Starts `digitrec serve --workers 1` on 127.0.0.1 and drives Debian's Chromium with Playwright.
Every digit is a real pen trajectory from data/real/pendigits/strokes.jsonl (y flipped, fitted
into the drawing area keeping its aspect), drawn at a person's pace (a point every 10 ms, a
pause between strokes). The page is instrumented from outside (an init script): it records
each pointer-up, each time the result turns final (`#result[data-answer=final]`, not busy),
the requests to /predict and /read in flight, and the canvas's top at every pointer event.

    .venv/bin/python benchmarks/page_phone.py                 # all three parts
    .venv/bin/python benchmarks/page_phone.py --part phone    # or desktop, memory, sizes

Parts (each prints its figures):
- phone: 360x740, device scale 3, touch, number mode: numbers of 3 to 6 digits by one writer;
  pointer-up to final answer (p50, p90, p99) after the last stroke of each number and after
  every stroke, requests in flight at most, image sizes sent, the canvas's top (min, max).
- desktop: 1280x800, mouse, digit mode: pointer-up to the answer shown (p50, p90).
- memory: `--pages` phones drawing numbers at once for `--seconds`; the server's RSS (its
  process and children) sampled every 0.5 s: at start, at the end, the peak, and the growth.
- sizes: the send size: the same real numbers and digits sent straight to /read and /predict,
  drawn by the page at scales 0.5, 0.75, 1 (the logical size) and 3 (a dpr-3 phone's pixels):
  accuracy and the server's time per request.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
STROKES = ROOT / "data" / "real" / "pendigits" / "strokes.jsonl"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
POINT_MS = 10  # a pen point every 10 ms: a digit in ~0.5 s, as the pendigits tablet sampled
STROKE_GAP_MS = 120  # between the strokes of a digit
DIGIT_GAP_MS = 250  # between digits: the hand moves on

Point = tuple[float, float]
Stroke = list[Point]

# ---------------------------------------------------------------- real strokes, laid out


def load_digits(path: Path = STROKES) -> list[dict[str, Any]]:
    """The pendigits trajectories: {"writer", "label", "strokes": [[[x, y], ...], ...]}, on a
    500 x 500 grid with y up."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _fit(strokes: list[list[list[int]]], x0: float, y0: float, w: float, h: float) -> list[Stroke]:
    """A digit's strokes (y up) fitted into the box (x0, y0, w, h), aspect kept, centred."""
    xs = [p[0] for s in strokes for p in s]
    ys = [p[1] for s in strokes for p in s]
    sw, sh = max(max(xs) - min(xs), 1), max(max(ys) - min(ys), 1)
    scale = min(w / sw, h / sh)
    ox = x0 + (w - sw * scale) / 2
    oy = y0 + (h - sh * scale) / 2
    return [
        [(ox + (x - min(xs)) * scale, oy + (max(ys) - y) * scale) for x, y in s] for s in strokes
    ]


def digit_strokes(digit: dict[str, Any], side: float = 280, margin: float = 0.15) -> list[Stroke]:
    """One digit in the 280 x 280 drawing area, with a 15% margin."""
    m = side * margin
    return _fit(digit["strokes"], m, m, side - 2 * m, side - 2 * m)


def number_strokes(
    digits: list[dict[str, Any]], width: float = 560, height: float = 280
) -> list[list[Stroke]]:
    """Digits written left to right in the 560 x 280 area, 160 px high (smaller when they would
    not fit), 18 px apart: one list of strokes per digit."""
    tall, gap = 160.0, 18.0
    aspects = []
    for d in digits:
        xs = [p[0] for s in d["strokes"] for p in s]
        ys = [p[1] for s in d["strokes"] for p in s]
        aspects.append(max(max(xs) - min(xs), 1) / max(max(ys) - min(ys), 1))
    widths = [max(tall * a, 30.0) for a in aspects]
    total = sum(widths) + gap * (len(digits) - 1)
    shrink = min(1.0, (width - 40) / total)
    tall, gap, widths = tall * shrink, gap * shrink, [w * shrink for w in widths]
    x = (width - (sum(widths) + gap * (len(digits) - 1))) / 2
    y = (height - tall) / 2
    out = []
    for d, w in zip(digits, widths, strict=True):
        out.append(_fit(d["strokes"], x, y, w, tall))
        x += w + gap
    return out


def numbers(
    digits: list[dict[str, Any]], count: int, seed: int = 0, sizes: tuple[int, int] = (3, 5)
) -> list[list[dict[str, Any]]]:
    """`count` numbers of sizes[0]..sizes[1] digits, each by one writer (a person writes a
    number in one hand), the first digit not 0."""
    rng = random.Random(seed)
    by_writer: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for d in digits:
        by_writer[d["writer"]].append(d)
    writers = sorted(by_writer)
    out = []
    while len(out) < count:
        pool = by_writer[rng.choice(writers)]
        n = rng.randint(*sizes)
        chosen = rng.sample(pool, n)
        if chosen[0]["label"] != 0:
            out.append(chosen)
    return out


# ---------------------------------------------------------------- what the page is timed by

INSTRUMENT = """
(() => {
  const m = window.__page = { ups: [], downs: [], finals: [], tops: [], inflight: 0,
                              maxInflight: 0, asked: 0 };
  const now = () => performance.now();
  const fetch0 = window.fetch.bind(window);
  window.fetch = async (url, opts) => {
    const asking = /\\/api\\/v1\\/(read|predict)$/.test(String(url));
    if (asking) { m.inflight++; m.asked++; m.maxInflight = Math.max(m.maxInflight, m.inflight); }
    try { return await fetch0(url, opts); } finally { if (asking) m.inflight--; }
  };
  const top = () => {
    const c = document.getElementById("canvas");
    return c ? c.getBoundingClientRect().top : null;
  };
  addEventListener("pointerdown", () => { m.downs.push(now()); m.tops.push(top()); }, true);
  addEventListener("pointermove", () => { m.tops.push(top()); }, true);
  addEventListener("pointerup", () => { m.ups.push(now()); m.tops.push(top()); }, true);
  addEventListener("DOMContentLoaded", () => {
    const result = document.getElementById("result");
    let was = false;
    new MutationObserver(() => {
      const final = result.dataset.answer === "final"
        && result.getAttribute("aria-busy") === "false";
      if (final && !was) m.finals.push(now());
      was = final;
    }).observe(result, { attributes: true, attributeFilter: ["data-answer", "aria-busy"] });
  });
})();
"""


def latencies(m: dict[str, Any], ups: list[float] | None = None) -> list[float]:
    """For each pointer-up (of `ups`, default all): ms to the next final answer, when it came
    before the next pointer-down (otherwise the person was already drawing on)."""
    out = []
    for u in m["ups"] if ups is None else ups:
        nxt = min([d for d in m["downs"] if d > u], default=float("inf"))
        f = min([f for f in m["finals"] if f >= u], default=float("inf"))
        if f < nxt and f != float("inf"):
            out.append(f - u)
    return out


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of values."""
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


# ---------------------------------------------------------------- drawing through the browser


async def to_screen(page: Any, logical_width: float) -> Any:
    box = await page.locator("#canvas").bounding_box()
    return lambda x, y: (
        box["x"] + x * box["width"] / logical_width,
        box["y"] + y * box["height"] / 280,
    )


async def touch_digit(page: Any, cdp: Any, strokes: list[Stroke], at: Any) -> None:
    """One digit's strokes by touch (CDP touch events), a point every POINT_MS."""
    for k, stroke in enumerate(strokes):
        if k:
            await asyncio.sleep(STROKE_GAP_MS / 1000)
        start = time.perf_counter()
        for i, (x, y) in enumerate(stroke):
            sx, sy = at(x, y)
            kind = "touchStart" if i == 0 else "touchMove"
            await cdp.send(
                "Input.dispatchTouchEvent", {"type": kind, "touchPoints": [{"x": sx, "y": sy}]}
            )
            wait = start + (i + 1) * POINT_MS / 1000 - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
        await cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


async def mouse_digit(page: Any, strokes: list[Stroke], at: Any) -> None:
    for k, stroke in enumerate(strokes):
        if k:
            await asyncio.sleep(STROKE_GAP_MS / 1000)
        start = time.perf_counter()
        await page.mouse.move(*at(*stroke[0]))
        await page.mouse.down()
        for i, (x, y) in enumerate(stroke[1:]):
            await page.mouse.move(*at(x, y))
            wait = start + (i + 1) * POINT_MS / 1000 - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
        await page.mouse.up()


async def phone_page(browser: Any, url: str) -> tuple[Any, Any, Any]:
    """A 360 x 740 phone (dpr 3, touch) on the page in number mode: (context, page, cdp)."""
    context = await browser.new_context(
        viewport={"width": 360, "height": 740},
        device_scale_factor=3,
        is_mobile=True,
        has_touch=True,
        bypass_csp=True,  # the server's policy forbids eval, which wait_for_function polls with
        service_workers="block",
    )
    page = await context.new_page()
    await page.add_init_script(INSTRUMENT)
    await page.goto(url + "/")
    await page.locator("#mode-number").tap()
    cdp = await context.new_cdp_session(page)
    return context, page, cdp


async def write_number(page: Any, cdp: Any, number: list[dict[str, Any]]) -> float:
    """Write a number digit by digit, wait for its final answer (up to 20 s), clear it.
    Returns the pointer-up time (page clock) of its last stroke."""
    at = await to_screen(page, 560)
    for k, strokes in enumerate(number_strokes(number)):
        if k:
            await asyncio.sleep(DIGIT_GAP_MS / 1000)
        await touch_digit(page, cdp, strokes, at)
    last_up = (await page.evaluate("window.__page.ups"))[-1]
    await page.wait_for_function(
        "(u) => window.__page.finals.some((f) => f >= u)", arg=last_up, timeout=20_000
    )
    return float(last_up)


async def clear(page: Any) -> None:
    await page.locator("#clear").tap()
    await page.wait_for_function("document.getElementById('answer').textContent === '?'")


# ---------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`digitrec serve --workers 1` on 127.0.0.1 with a throwaway data directory."""

    def __init__(self) -> None:
        self.dir = tempfile.TemporaryDirectory()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "digitrec", "serve", "--host", "127.0.0.1",
               "--port", str(self.port), "--workers", "1", "--data-dir", self.dir.name]  # fmt: skip
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise SystemExit("the server did not start") from None
                time.sleep(0.2)

    def rss_mb(self) -> float:
        """The RSS of the server process and its children, MB."""
        pids = [self.proc.pid]
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
            pids += [int(p) for p in children.split()]
        except OSError:
            pass
        total = 0
        for pid in pids:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except OSError:
                pass
        return total / 1024

    def post(self, path: str, body: dict[str, Any]) -> tuple[dict[str, Any], float]:
        req = urllib.request.Request(
            self.url + path, json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        t = time.perf_counter()
        with urllib.request.urlopen(req, timeout=30) as r:
            data = json.load(r)
        return data, (time.perf_counter() - t) * 1000

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.dir.cleanup()


# ---------------------------------------------------------------- the parts


async def part_phone(browser: Any, server: Server, count: int) -> dict[str, Any]:
    context, page, cdp = await phone_page(browser, server.url)
    sent: list[tuple[int, int]] = []

    def record(request: Any) -> None:
        if request.url.endswith(("/api/v1/read", "/api/v1/predict")):
            from PIL import Image

            image = json.loads(request.post_data)["image"]
            sent.append(Image.open(io.BytesIO(base64.b64decode(image.split(",", 1)[1]))).size)

    page.on("request", record)
    digits = load_digits()
    last_ups, right = [], 0
    for number in numbers(digits, count, sizes=(3, 6)):
        last_ups.append(await write_number(page, cdp, number))
        right += await page.locator("#answer").inner_text() == "".join(
            str(d["label"]) for d in number
        )
        await clear(page)
    m = await page.evaluate("window.__page")
    await context.close()
    last, every = latencies(m, last_ups), latencies(m)
    tops = [t for t in m["tops"] if t is not None]
    return {
        "numbers": count,
        "read right": right,
        "pointer-up to final, last stroke (ms)": summary(last),
        "pointer-up to final, every stroke answered before the next (ms)": summary(every),
        "strokes": len(m["ups"]),
        "requests": m["asked"],
        "in flight at most": m["maxInflight"],
        "image sizes sent": sorted(set(sent)),
        "canvas top (min, max)": (min(tops), max(tops)),
    }


async def part_desktop(browser: Any, server: Server, count: int) -> dict[str, Any]:
    context = await browser.new_context(
        viewport={"width": 1280, "height": 800}, bypass_csp=True, service_workers="block"
    )
    page = await context.new_page()
    await page.add_init_script(INSTRUMENT)
    await page.goto(server.url + "/")
    rng = random.Random(1)
    digits = load_digits()
    ups, right = [], 0
    for digit in rng.sample(digits, count):
        at = await to_screen(page, 280)
        await mouse_digit(page, digit_strokes(digit), at)
        up = (await page.evaluate("window.__page.ups"))[-1]
        await page.wait_for_function("(u) => window.__page.finals.some((f) => f >= u)", arg=up)
        ups.append(up)
        right += await page.locator("#answer").inner_text() == str(digit["label"])
        await page.locator("#clear").click()
        await page.wait_for_function("document.getElementById('answer').textContent === '?'")
    m = await page.evaluate("window.__page")
    await context.close()
    return {
        "digits": count,
        "right": right,
        "pointer-up to answer shown, last stroke (ms)": summary(latencies(m, ups)),
        "in flight at most": m["maxInflight"],
    }


async def part_memory(browser: Any, server: Server, pages: int, seconds: float) -> dict[str, Any]:
    digits = load_digits()
    phones = [await phone_page(browser, server.url) for _ in range(pages)]
    await asyncio.sleep(1)
    fresh = server.rss_mb()
    # Warm-up: each page writes one number, one page after the other (the server's first
    # answers allocate what every later one reuses: the model's buffers, threads' arenas).
    for k, (_, page, cdp) in enumerate(phones):
        await write_number(page, cdp, numbers(digits, 1, seed=50 + k)[0])
        await clear(page)
    start = server.rss_mb()
    samples = [start]
    stop = time.monotonic() + seconds
    written = [0] * pages

    async def draw(k: int) -> None:
        _, page, cdp = phones[k]
        for number in numbers(digits, 10_000, seed=100 + k, sizes=(3, 6)):
            if time.monotonic() > stop:
                return
            await write_number(page, cdp, number)
            written[k] += 1
            await clear(page)

    async def sample() -> None:
        while time.monotonic() < stop + 1:
            await asyncio.sleep(0.5)
            samples.append(server.rss_mb())

    await asyncio.gather(sample(), *(draw(k) for k in range(pages)))
    inflight = [await p.evaluate("window.__page.maxInflight") for _, p, _ in phones]
    for context, _, _ in phones:
        await context.close()
    return {
        "pages": pages,
        "seconds": seconds,
        "numbers written": sum(written),
        "server RSS MB fresh, after warm-up": (round(fresh), round(start)),
        "server RSS MB (start, end, peak)": (round(start), round(samples[-1]), round(max(samples))),
        "server RSS MB every 10 s": [round(v) for v in samples[::20]],
        "growth MB (end - start)": round(samples[-1] - start, 1),
        "growth MB (peak - start)": round(max(samples) - start, 1),
        "in flight at most, per page": inflight,
    }


RENDER = """([strokes, width, scale]) => {
  const c = document.createElement("canvas");
  c.width = Math.round(width * scale); c.height = Math.round(280 * scale);
  const g = c.getContext("2d");
  g.setTransform(scale, 0, 0, scale, 0, 0);
  for (const points of strokes) drawStroke(g, { size: 20, points });
  return c.toDataURL("image/png");
}"""


async def part_sizes(
    browser: Any, server: Server, count: int, scales: list[float]
) -> dict[str, Any]:
    """Accuracy and server time of /read and /predict for the page's drawings at each scale."""
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    await page.goto(server.url + "/")  # drawStroke: the page's own brush
    digits = load_digits()
    rng = random.Random(2)
    singles = rng.sample(digits, count)
    nums = numbers(digits, count, seed=3, sizes=(3, 6))
    out = {}
    for scale in scales:
        right_d, right_n, t_d, t_n = 0, 0, [], []
        for d in singles:
            image = await page.evaluate(RENDER, [digit_strokes(d), 280, scale])
            answer, ms = server.post("/api/v1/predict", {"image": image})
            right_d += answer["digit"] == d["label"]
            t_d.append(ms)
        for n in nums:
            strokes = [s for digit in number_strokes(n) for s in digit]
            image = await page.evaluate(RENDER, [strokes, 560, scale])
            answer, ms = server.post("/api/v1/read", {"image": image})
            read = "".join(str(x["digit"]) for x in answer["digits"])
            right_n += read == "".join(str(x["label"]) for x in n)
            t_n.append(ms)
        out[f"scale {scale}"] = {
            "digits right": f"{right_d}/{count}",
            "predict ms (median)": round(statistics.median(t_d), 1),
            "numbers right": f"{right_n}/{count}",
            "read ms (median)": round(statistics.median(t_n), 1),
        }
    await context.close()
    return out


def summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50": round(pct(values, 50)),
        "p90": round(pct(values, 90)),
        "p99": round(pct(values, 99)),
        "max": round(max(values)),
    }


def machine() -> str:
    cpu = platform.processor()
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name"):
                cpu = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}"


async def main_async(args: argparse.Namespace) -> None:
    from playwright.async_api import async_playwright

    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {machine()}")
    server = Server()
    try:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            parts = {
                "sizes": lambda: part_sizes(browser, server, args.sizes, args.scales),
                "phone": lambda: part_phone(browser, server, args.numbers),
                "desktop": lambda: part_desktop(browser, server, args.digits),
                "memory": lambda: part_memory(browser, server, args.pages, args.seconds),
            }
            for name in parts if args.part == "all" else [args.part]:
                figures = await parts[name]()
                print(json.dumps({"part": name, **figures}, default=str), flush=True)
            await browser.close()
    finally:
        server.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", choices=["all", "sizes", "phone", "desktop", "memory"], default="all")
    ap.add_argument("--numbers", type=int, default=12, help="phone: numbers written (default 12)")
    ap.add_argument("--digits", type=int, default=30, help="desktop: digits drawn (default 30)")
    ap.add_argument("--pages", type=int, default=5, help="memory: phones at once (default 5)")
    ap.add_argument("--seconds", type=float, default=60, help="memory: drawing time (default 60)")
    ap.add_argument(
        "--sizes", type=int, default=100, help="sizes: digits and numbers (default 100)"
    )
    ap.add_argument(
        "--scales",
        type=float,
        nargs="+",
        default=[0.5, 0.75, 1, 1.5, 2, 3],
        help="sizes: the scales of the logical size tried (default 0.5 0.75 1 1.5 2 3)",
    )
    asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    main()
