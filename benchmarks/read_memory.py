"""A process reading numbers: its RSS after each pass and the CPU time of a read.

Real pen numbers (realworld.pen_numbers, 3-6 digits) drawn as the page sends them (its logical
size, 560x280), read by one `Predictor` (one thread, as a server worker) pass after pass.

    python benchmarks/read_memory.py [--numbers 100] [--passes 3] [--fresh] [--read-batch N]

--fresh: other numbers in every pass (default: the same numbers again). --read-batch: images
per ONNX Runtime call while reading (predictor.READ_BATCH; 0: all the candidates of a number
in one call, as before it was capped). Prints one line per pass: RSS (MB) after it, and the
median and mean CPU ms of one read (`time.process_time`, less swayed than the wall clock by
other jobs on the cores).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time

from PIL import Image

from digitrec import predictor as predictor_module
from digitrec import realworld
from digitrec.machine import cpu_name
from digitrec.predictor import Predictor


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS"))


def page_numbers(count: int, seed: int) -> list[bytes]:
    """`count` pen numbers as 560x280 PNGs, the page's send size."""
    out = []
    for sample in realworld.pen_numbers(count=count, seed=seed):
        assert sample.data is not None
        drawn = Image.open(io.BytesIO(sample.data)).resize((560, 280), Image.Resampling.BOX)
        buf = io.BytesIO()
        drawn.save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--numbers", type=int, default=100, help="numbers per pass (default 100)")
    parser.add_argument("--passes", type=int, default=3, help="passes (default 3)")
    parser.add_argument("--fresh", action="store_true", help="other numbers in every pass")
    batch = predictor_module.READ_BATCH
    parser.add_argument(
        "--read-batch",
        type=int,
        default=batch,
        help=f"images per model call while reading; 0: unbounded (default {batch})",
    )
    parser.add_argument("--model", default=None, help="model (default: the default model)")
    args = parser.parse_args()
    predictor_module.READ_BATCH = args.read_batch or sys.maxsize

    pages = page_numbers(args.numbers * (args.passes if args.fresh else 1), seed=0)
    predictor = Predictor.load(args.model, threads=1)
    print(f"{cpu_name()}; read batch {args.read_batch or 'unbounded'}; "
          f"{args.numbers} numbers a pass{', fresh' if args.fresh else ''}")  # fmt: skip
    print(f"start: RSS {rss_mb():.0f} MB")
    for k in range(args.passes):
        batch = pages[k * args.numbers : (k + 1) * args.numbers] if args.fresh else pages
        seconds = []
        for page in batch:
            start = time.process_time()
            predictor.read(page)
            seconds.append(time.process_time() - start)
        median, mean = 1000 * statistics.median(seconds), 1000 * statistics.mean(seconds)
        print(f"pass {k + 1}: RSS {rss_mb():.0f} MB; a read {median:.1f} ms median, "
              f"{mean:.1f} ms mean (CPU)")  # fmt: skip


if __name__ == "__main__":
    main()
