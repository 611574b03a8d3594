"""Write benchmarks/canvas7.png: the benchmarks' input, a 7 drawn on a 280x280 canvas in
Chromium and exported by canvas.toDataURL("image/png"), as the web page sends a drawing.

A browser's export is what the server sees, and it differs from what Pillow writes: anti-aliased
stroke edges, and Chromium filters every row with PNG's "up" filter (Pillow picks a filter per
row). The stroke is the page's: ink #111, round caps and joins, 20 px wide.

    python benchmarks/chromium_canvas.py   # needs Playwright and Debian's chromium
"""

from __future__ import annotations

import base64
from pathlib import Path

from playwright.sync_api import sync_playwright

OUT = Path(__file__).resolve().parent / "canvas7.png"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
DRAW = """() => {
  const canvas = document.createElement("canvas");
  canvas.width = 280;
  canvas.height = 280;
  const ctx = canvas.getContext("2d");
  Object.assign(ctx, {strokeStyle: "#111", lineWidth: 20, lineCap: "round", lineJoin: "round"});
  ctx.beginPath();
  ctx.moveTo(65, 60);
  ctx.lineTo(215, 60);
  ctx.lineTo(125, 240);
  ctx.stroke();
  return canvas.toDataURL("image/png");
}"""


def main() -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
        url = browser.new_page().evaluate(DRAW)
        browser.close()
    OUT.write_bytes(base64.b64decode(url.split(",", 1)[1]))
    print(f"wrote {OUT} ({OUT.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
