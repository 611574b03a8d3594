"""Accuracy and training time of a recipe over seeds: `digitrec train --recipe R --seed S`.

    python benchmarks/recipes.py --recipe fast --seeds 0 1 2 3 4 [--out runs/bench]

Each seed runs as its own `digitrec train` process, one after the other, so every run pays the
same start-up. Prints one row per seed (validation and test accuracy, `train_seconds` from the
run's metrics.json, and the whole command's wall time, which adds interpreter start, imports
and the test evaluation), the medians, the machine and the load, and the fast recipe's targets
(issue 3: every seed >= 99.0% test, median train_seconds <= 6 s).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from digitrec.machine import describe

ROOT = Path(__file__).resolve().parents[1]


def run_seed(recipe: str, seed: int, out: Path, extra: list[str]) -> dict[str, float]:
    directory = out / f"{recipe}-s{seed}"
    cmd = [sys.executable, "-m", "digitrec", "train", "--recipe", recipe, "--seed", str(seed)]
    cmd += ["-o", str(directory), *extra]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    wall = time.perf_counter() - t
    metrics = json.loads((directory / "metrics.json").read_text())
    return {
        "seed": seed,
        "val": metrics["val_accuracy"],
        "test": metrics["test_accuracy"],
        "train_seconds": metrics["train_seconds"],
        "wall_seconds": wall,
        "images_per_second": metrics["images_per_second"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="fast")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench")
    parser.add_argument("extra", nargs="*", help="more `digitrec train` flags, after --")
    args = parser.parse_args()

    load_before = os.getloadavg()
    rows = [run_seed(args.recipe, s, args.out, args.extra) for s in args.seeds]
    print(f"# recipe {args.recipe}, {describe()}, {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"{'seed':>4} {'val':>8} {'test':>8} {'train_s':>8} {'wall_s':>8} {'img/s':>8}")
    for r in rows:
        print(
            f"{r['seed']:>4} {r['val']:>8.2%} {r['test']:>8.2%} {r['train_seconds']:>8.2f}"
            f" {r['wall_seconds']:>8.2f} {r['images_per_second']:>8.0f}"
        )
    tests = [r["test"] for r in rows]
    median_train = statistics.median(r["train_seconds"] for r in rows)
    print(
        f"median: test {statistics.median(tests):.2%} (min {min(tests):.2%}, mean "
        f"{statistics.mean(tests):.2%}), train_seconds {median_train:.2f}, wall "
        f"{statistics.median(r['wall_seconds'] for r in rows):.2f} s"
    )
    print(f"load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}")
    if args.recipe == "fast":
        acc_ok, time_ok = min(tests) >= 0.99, median_train <= 6.0
        print(
            f"targets: every seed >= 99.0% test: {'MET' if acc_ok else 'NOT MET'}; "
            f"median train_seconds <= 6 s: {'MET' if time_ok else 'NOT MET'}"
        )


if __name__ == "__main__":
    main()
