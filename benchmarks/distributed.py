"""One process against `--nproc N` (DistributedDataParallel on gloo) on the same recipe: wall time
and accuracy per seed, and their medians.

    python benchmarks/distributed.py [--recipe fast] [--nproc 2] [--seeds 1 2 3]

One process uses every core (`--threads` = cores); N processes share them (cores / N threads
each). Both train the same steps on the same batches (training.distributed), so accuracy should
fall within the seed spread of one process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from digitrec.machine import describe


def run(recipe: str, seed: int, out: Path, extra: list[str]) -> dict[str, float]:
    cmd = [sys.executable, "-m", "digitrec", "train", "--recipe", recipe, "--seed", str(seed),
           "-o", str(out), *extra]  # fmt: skip
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    metrics = json.loads((out / "metrics.json").read_text())
    return {"wall": wall, "val": metrics["val_accuracy"], "test": metrics["test_accuracy"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", default="fast")
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    setups = {
        f"1 process, {cores} threads": ["--threads", str(cores)],
        f"{args.nproc} processes (DDP, gloo)": ["--nproc", str(args.nproc)],
    }
    print(f"machine  {describe()}")
    print(f"date     {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"command  python benchmarks/distributed.py --recipe {args.recipe} --nproc {args.nproc}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, extra in setups.items():
            results = [
                run(args.recipe, s, Path(tmp) / f"{len(extra)}-{s}-{name[:1]}", extra)
                for s in args.seeds
            ]
            walls = ", ".join(f"{r['wall']:.1f}" for r in results)
            tests = ", ".join(f"{r['test']:.2%}" for r in results)
            print(
                f"{name:28} wall median {statistics.median(r['wall'] for r in results):6.1f} s "
                f"({walls})  test {tests}  val median "
                f"{statistics.median(r['val'] for r in results):.2%}"
            )


if __name__ == "__main__":
    main()
