"""Accuracy on our own real-world set (tests/realworld, made by tools/make_realworld.py).

Per kind: canvas drawings, handwriting fonts, paper photos, inverted, blank, written numbers.
The `val` split is for choosing augmentation and preprocessing; `test` is for reporting.

    python benchmarks/realworld.py [--model NAME_OR_RUN] [--split test]
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
from pathlib import Path

from digitrec.predictor import Predictor

ROOT = Path(__file__).resolve().parents[1] / "tests" / "realworld"


def score(predictor: Predictor, split: str = "test", root: Path = ROOT) -> dict[str, dict]:
    """{kind: {"correct": n, "total": n, "accuracy": f, "errors": [...]}}."""
    with open(root / "labels.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == split]
    out: dict[str, dict] = defaultdict(lambda: {"correct": 0, "total": 0, "errors": []})
    for row in rows:
        kind, path, label = row["kind"], root / row["file"], row["label"]
        if kind == "numbers":
            got = predictor.read(path).text
        else:
            p = predictor.predict(path)
            got = "" if p.digit is None else str(p.digit)
            if kind != "blank" and p.reason == "uncertain":
                got = f"uncertain:{p.candidates[0][0]}"
        entry = out[kind]
        entry["total"] += 1
        if got == label:
            entry["correct"] += 1
        else:
            entry["errors"].append(f"{row['file']}: {label!r} -> {got!r}")
    for entry in out.values():
        entry["accuracy"] = entry["correct"] / entry["total"]
    return dict(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="shipped model or run dir (default: best)")
    parser.add_argument("--split", default="test", choices=["val", "test"])
    parser.add_argument("--errors", action="store_true", help="list every error")
    args = parser.parse_args()
    predictor = Predictor.load(args.model)
    results = score(predictor, args.split)
    print(f"model {predictor.name}, real-world {args.split} split")
    print(f"{'kind':10} {'correct':>8} {'total':>6} {'accuracy':>9}")
    for kind, r in sorted(results.items()):
        print(f"{kind:10} {r['correct']:8d} {r['total']:6d} {r['accuracy']:9.2%}")
        if args.errors:
            for e in r["errors"]:
                print("    ", e)
    print(json.dumps({k: round(v["accuracy"], 4) for k, v in results.items()}))


if __name__ == "__main__":
    main()
