"""Inference speed through ONNX Runtime, as served: one image, batches, and the full path from
a 280x280 canvas PNG to an answer. Prints figures; BENCHMARKS.md records them.

    python benchmarks/inference.py [--model NAME ...] [--repeats 2000]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from digitrec import data, registry
from digitrec.machine import canvas_png, describe
from digitrec.predictor import Predictor


def timed(fn, repeats: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    for _ in range(min(50, repeats)):
        fn()  # warm-up: first calls allocate
    out = np.empty(repeats)
    for i in range(repeats):
        t = time.perf_counter()
        fn()
        out[i] = time.perf_counter() - t
    return out * 1000  # ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="model(s); default: every shipped one")
    parser.add_argument("--repeats", type=int, default=2000)
    args = parser.parse_args()
    names = args.model or [c["name"] for c in registry.shipped_cards()]
    test = data.load_mnist("test").images.astype(np.float32) / 255
    png = canvas_png()
    print(f"machine: {describe()}")
    results = {}
    for name in names:
        one = Predictor.load(name, threads=1)
        many = Predictor.load(name, threads=0)
        single = timed(lambda: one.predict_array(test[:1]), args.repeats)  # noqa: B023
        full = timed(lambda: one.predict(png), max(200, args.repeats // 4))  # noqa: B023
        batch = 1000
        t = time.perf_counter()
        for i in range(0, len(test), batch):
            many.predict_array(test[i : i + batch])
        throughput = len(test) / (time.perf_counter() - t)
        results[name] = {
            "one_image_ms_p50": float(np.median(single)),
            "one_image_ms_p99": float(np.percentile(single, 99)),
            "canvas_png_to_answer_ms_p50": float(np.median(full)),
            "canvas_png_to_answer_ms_p99": float(np.percentile(full, 99)),
            "batch_images_per_second": throughput,
        }
        r = results[name]
        print(
            f"{name:>14}: one image {r['one_image_ms_p50']:.3f} ms p50 "
            f"({r['one_image_ms_p99']:.3f} p99) | canvas PNG -> answer "
            f"{r['canvas_png_to_answer_ms_p50']:.2f} ms p50 "
            f"({r['canvas_png_to_answer_ms_p99']:.2f} p99) | batch {throughput:,.0f} images/s"
        )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
