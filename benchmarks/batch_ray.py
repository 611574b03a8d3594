"""Batch answers: `digitrec predict` in one process against `digitrec batch` on a local Ray.

Writes the 10,000 MNIST test images as PNG files to a temporary folder, then times, back to
back, each command as a user runs it (wall clock of the whole command: interpreter start,
model load and, for batch, Ray's start included):

  (a) digitrec predict FOLDER --format json            (one process, every core)
  (b) digitrec batch FOLDER -o out.parquet --cpus 2    (a local Ray, one actor per CPU)

and, to show what Ray's start costs, (c) digitrec.batch.run on a Ray this script started
beforehand (the actors' start and model load still counted),

and prints images/s for each (median of the runs), whether the two agree (the digit and the
reason of every image: the count of mismatches, and the largest probability difference), the
CPU, the date and the commands. Needs the `ray` extra.

    python benchmarks/batch_ray.py [--runs 3] [--images 10000] [--cpus 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from digitrec import data
from digitrec.machine import cpu_name, describe


def write_pngs(folder: Path, count: int) -> None:
    from PIL import Image

    test = data.load_mnist("test")
    for i in range(count):
        Image.fromarray(test.images[i]).save(folder / f"{i:05d}.png")


def timed(command: list[str], stdout: Path | None = None) -> float:
    """Seconds the command took; it must succeed."""
    start = time.perf_counter()
    with open(stdout or os.devnull, "w") as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{shlex.join(command)} failed:\n{done.stderr[-2000:]}")
    return seconds


def warm_batch(folder: Path, output: Path, cpus: int, runs: int) -> list[float]:
    """Seconds of digitrec.batch.run in this process on a Ray started once beforehand: the
    command's time less interpreter and Ray start (the actors' start and model load stay in)."""
    import logging

    import ray

    from digitrec import batch

    files = sorted(str(f) for f in folder.glob("*.png"))
    ray.init(num_cpus=cpus, include_dashboard=False, logging_level=logging.WARNING)
    try:
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            batch.run(files, output, progress=False)
            times.append(time.perf_counter() - start)
        return times
    finally:
        ray.shutdown()


def compare(predict_jsonl: Path, batch_parquet: Path) -> tuple[int, int, float]:
    """(images compared, mismatches in digit or reason, largest probability difference)."""
    import pyarrow.parquet as pq

    single = {r["file"]: r for r in map(json.loads, predict_jsonl.read_text().splitlines())}
    rows = pq.read_table(batch_parquet).to_pylist()
    mismatches, diff = abs(len(rows) - len(single)), 0.0
    for row in rows:
        want = single.get(row["file"])
        if want is None or row["error"] is not None:
            mismatches += 1
            continue
        if (row["digit"], row["reason"]) != (want["digit"], want.get("reason")):
            mismatches += 1
        diff = max(
            diff,
            *(abs(a - b) for a, b in zip(row["probabilities"], want["probabilities"], strict=True)),
        )
    return len(rows), mismatches, diff


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each command (median)")
    parser.add_argument("--images", type=int, default=10_000, help="MNIST test images, 1-10000")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray")
    args = parser.parse_args()
    digitrec = [sys.executable, "-m", "digitrec"]
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    with tempfile.TemporaryDirectory(prefix="digitrec-batch-") as tmp:
        root = Path(tmp)
        folder = root / "mnist-test"
        folder.mkdir()
        write_pngs(folder, args.images)
        single_out, batch_out = root / "predict.jsonl", root / "batch.parquet"
        predict_cmd = [*digitrec, "predict", str(folder), "--format", "json"]
        batch_cmd = [
            *digitrec,
            "batch",
            str(folder),
            "-o",
            str(batch_out),
            "--cpus",
            str(args.cpus),
        ]
        times: dict[str, list[float]] = {"predict": [], "batch": []}
        for _ in range(args.runs):  # alternated, so that both see the same machine
            times["predict"].append(timed(predict_cmd, single_out))
            times["batch"].append(timed(batch_cmd))
        compared, mismatches, diff = compare(single_out, batch_out)
        times["batch, Ray up"] = warm_batch(folder, batch_out, args.cpus, args.runs)
    print(f"batch answers, {args.images:,} MNIST test images as PNG files")
    print(f"machine  {describe()}")
    print(f"cpu      {cpu_name()}")
    print(f"date     {time.strftime('%Y-%m-%d %H:%M %Z')}")
    print(f"command  python benchmarks/batch_ray.py {shlex.join(sys.argv[1:])}".rstrip())
    commands = {
        "predict": shlex.join(["digitrec", *predict_cmd[3:]]),
        "batch": shlex.join(["digitrec", *batch_cmd[3:]]),
        "batch, Ray up": f"digitrec.batch.run(FILES, ...) in one process, after ray.init("
        f"num_cpus={args.cpus}): the command less Python's and Ray's start",
    }
    for name, shown in commands.items():
        median = statistics.median(times[name])
        runs = ", ".join(f"{t:.1f}" for t in times[name])
        print(
            f"{name:13} {args.images / median:7,.0f} images/s  median of {len(times[name])} "
            f"runs ({runs} s)  {shown.replace(str(Path(tmp)), '$TMP')}"
        )
    print(
        f"equal    {compared:,} images compared: {mismatches} mismatches in digit or reason, "
        f"largest probability difference {diff:.1e}"
    )


if __name__ == "__main__":
    main()
