"""Inference speed through ONNX Runtime, as served: one image, batches, and the full path from
a 280x280 canvas PNG to an answer. Prints figures; BENCHMARKS.md records them.

    python benchmarks/inference.py [--model NAME ...] [--repeats 2000]
    python benchmarks/inference.py --stages [--model NAME ...] [--repeats 2000] [--threads 0]

--stages splits the canvas path into its parts (p50 and p90, ms): PNG decode (the alpha
channel, preprocess.canvas_alpha), preprocessing of it, the model on the 28x28, and
predict(PNG bytes) as a whole, for fast and best (the default) unless --model says. Inputs,
in turn: the benchmark canvas (benchmarks/canvas7.png, a 7 drawn and exported in Chromium)
and the 120 canvas drawings in tests/realworld, re-encoded as Chromium encodes a canvas (see
chromium_png: Pillow, which wrote them, picks a filter per row, and those go to Pillow).
Wall-clock on a shared machine is noisy: pin it and compare back to back, e.g.
`OMP_NUM_THREADS=1 taskset -c 1 python benchmarks/inference.py --stages --repeats 1000`.
"""

from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path

import numpy as np

from digitrec import data, realworld, shipped
from digitrec.machine import describe
from digitrec.predictor import Predictor, one_thread
from digitrec.vision import png, preprocess

REALWORLD = Path(__file__).resolve().parents[1] / "tests" / "realworld"
CANVAS = Path(__file__).resolve().parent / "canvas7.png"  # benchmarks/chromium_canvas.py


def chromium_png(data: bytes) -> bytes:
    """The same pixels as Chromium writes a canvas export: 8-bit RGBA, every row filtered
    "up" (each byte minus the one above), zlib level 3 (canvas7.png's size, 4,257 bytes, is
    that of levels 1-3)."""
    from PIL import Image

    rgba = np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))
    return png.write(rgba, png.UP, level=3)


def timed(fn, repeats: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    for _ in range(min(50, repeats)):
        fn()  # warm-up: first calls allocate
    out = np.empty(repeats)
    for i in range(repeats):
        t = time.perf_counter()
        fn()
        out[i] = time.perf_counter() - t
    return out * 1000  # ms


def stages(
    names: list[str], repeats: int, threads: int = 1, canvases: str = "generated"
) -> dict[str, dict[str, float]]:
    """p50 / p90 (ms) of each part of the canvas PNG -> answer path, per model: each call times
    decode, preprocess and model one after another, then predict(PNG) as a whole, on the same
    input, so that all four see the same machine (the other core may be busy). `canvases`:
    canvas7.png alone, with tests/realworld's drawings ("generated"), or real writers' pen
    digits as the page exports them ("realistic", realworld.realistic_canvases)."""
    if canvases == "realistic":
        pngs = realworld.realistic_canvases()
    elif canvases == "canvas7":
        pngs = [CANVAS.read_bytes()]
    else:
        drawings = sorted(REALWORLD.glob("canvas_*.png"))
        pngs = [CANVAS.read_bytes()] + [chromium_png(p.read_bytes()) for p in drawings]
    results = {}
    for name in names:
        one = Predictor.load(name, threads=threads)
        times = np.zeros((repeats, 4))
        for i in range(-min(50, repeats), repeats):  # the first calls warm up
            canvas = pngs[i % len(pngs)]
            t0 = time.perf_counter()
            with one_thread():  # as predict runs it
                alpha = preprocess.canvas_alpha(canvas)
                t1 = time.perf_counter()
                assert alpha is not None, "every input is a canvas export"
                x = preprocess.preprocess_canvas(alpha)
            t2 = time.perf_counter()
            if x is not None:
                one.predict_array(x[None])
            t3 = time.perf_counter()
            one.predict(canvas)
            if i >= 0:
                times[i] = t1 - t0, t2 - t1, t3 - t2, time.perf_counter() - t3
        times *= 1000  # ms
        parts = dict(zip(("decode", "preprocess", "model", "total"), times.T, strict=True))
        results[name] = {
            f"{k}_ms_p{q}": float(np.percentile(v, q)) for k, v in parts.items() for q in (50, 90)
        }
        print(
            f"{name:>14}: "
            + " | ".join(
                f"{k} {np.percentile(v, 50):.3f} ({np.percentile(v, 90):.3f})"
                for k, v in parts.items()
            )
            + "  ms p50 (p90)"
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="model(s); default: every shipped one")
    parser.add_argument("--repeats", type=int, default=2000)
    parser.add_argument(
        "--stages",
        action="store_true",
        help="time decode / preprocess / model / total of the canvas path (default: off); "
        "models default to fast and best",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="--stages: ONNX Runtime threads for the model (default 1; 0: every core, as the "
        "CLI runs one image); preprocessing runs on one either way",
    )
    parser.add_argument(
        "--canvases",
        choices=["generated", "canvas7", "realistic"],
        default="generated",
        help="--stages inputs: canvas7.png with tests/realworld's drawings, canvas7.png alone, "
        "or 64 real writers' pen digits as the page exports them (default generated)",
    )
    args = parser.parse_args()
    if args.stages:
        print(f"machine: {describe()}, model threads {args.threads}, canvases {args.canvases}")
        names = args.model or ["fast", "best"]
        print(json.dumps(stages(names, args.repeats, args.threads, args.canvases)))
        return
    names = args.model or [c["name"] for c in shipped.shipped_cards()]
    test = data.load_mnist("test").images.astype(np.float32) / 255
    canvas = CANVAS.read_bytes()
    print(f"machine: {describe()}")
    results = {}
    for name in names:
        one = Predictor.load(name, threads=1)
        many = Predictor.load(name, threads=0)
        single = timed(lambda: one.predict_array(test[:1]), args.repeats)  # noqa: B023
        single_all = timed(lambda: many.predict_array(test[:1]), args.repeats)  # noqa: B023
        full = timed(lambda: one.predict(canvas), max(200, args.repeats // 4))  # noqa: B023
        batch = 1000
        t = time.perf_counter()
        for i in range(0, len(test), batch):
            many.predict_array(test[i : i + batch])
        throughput = len(test) / (time.perf_counter() - t)
        results[name] = {
            "one_image_ms_p50": float(np.median(single)),
            "one_image_ms_p99": float(np.percentile(single, 99)),
            "one_image_all_cores_ms_p50": float(np.median(single_all)),
            "one_image_all_cores_ms_p99": float(np.percentile(single_all, 99)),
            "canvas_png_to_answer_ms_p50": float(np.median(full)),
            "canvas_png_to_answer_ms_p99": float(np.percentile(full, 99)),
            "batch_images_per_second": throughput,
        }
        r = results[name]
        print(
            f"{name:>14}: one image {r['one_image_ms_p50']:.3f} ms p50 "
            f"({r['one_image_ms_p99']:.3f} p99), every core {r['one_image_all_cores_ms_p50']:.3f} "
            f"({r['one_image_all_cores_ms_p99']:.3f}) | canvas PNG -> answer "
            f"{r['canvas_png_to_answer_ms_p50']:.2f} ms p50 "
            f"({r['canvas_png_to_answer_ms_p99']:.2f} p99) | batch {throughput:,.0f} images/s"
        )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
