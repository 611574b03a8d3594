"""Answers of two versions of the serving code, compared: `predict` and `read` on every image
of the real sets (data/real: Semeion, the Dutch map numerals) and of our generated set
(tests/realworld, both splits), as the CLI's JSON prints them (the preprocessed 28x28 PNG
included), one line per image and command.

Dump the answers of each version, then count the lines that are byte-identical, set by set:

    PYTHONPATH=/path/to/old/src python benchmarks/lean_core.py dump old.jsonl
    PYTHONPATH=src python benchmarks/lean_core.py dump new.jsonl
    python benchmarks/lean_core.py compare old.jsonl new.jsonl

`dump` also says whether the serving path imported SciPy.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from digitrec import realworld
from digitrec.predictor import Predictor


def sets() -> dict[str, list[realworld.Sample]]:
    """{set name: samples}: the real sets, then the generated set's splits."""
    out = {name: realworld.load_real(name) for name in realworld.REAL_SETS}
    for split in ("val", "test"):
        samples = realworld.load_generated(split)
        out[f"generated {split}"] = [s for kind in sorted(samples) for s in samples[kind]]
    return out


def dump(output: Path, model: str | None) -> None:
    predictor = Predictor.load(model, threads=1)
    with open(output, "w") as f:
        for name, samples in sets().items():
            files = [str(s.path.relative_to(realworld.ROOT)) for s in samples]
            answers = predictor.predict_many([s.source for s in samples])
            for file, p in zip(files, answers, strict=True):
                row = {"set": name, "command": "predict", "file": file, **p.to_dict()}
                f.write(json.dumps(row) + "\n")
            for file, s in zip(files, samples, strict=True):
                reading = predictor.read(s.source).to_dict()
                row = {"set": name, "command": "read", "file": file, **reading}
                f.write(json.dumps(row) + "\n")
            print(f"{name}: {len(samples)} images")
    print(f"model {predictor.name}; scipy imported: {'scipy' in sys.modules}")


def compare(old: Path, new: Path) -> None:
    a, b = old.read_text().splitlines(), new.read_text().splitlines()
    assert len(a) == len(b), f"{len(a)} lines against {len(b)}"
    same: Counter[tuple[str, str]] = Counter()
    total: Counter[tuple[str, str]] = Counter()
    for x, y in zip(a, b, strict=True):
        row = json.loads(x)
        key = (row["set"], row["command"])
        assert (row["file"], row["command"]) == (json.loads(y)["file"], json.loads(y)["command"])
        total[key] += 1
        if x == y:
            same[key] += 1
        else:
            print(f"differs: {row['command']} {row['file']}")
    print(f"{'set':16} {'command':8} {'identical':>9} {'of':>5}")
    for key in total:
        print(f"{key[0]:16} {key[1]:8} {same[key]:9d} {total[key]:5d}")
    print(f"{'all':16} {'':8} {sum(same.values()):9d} {sum(total.values()):5d}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    d = commands.add_parser("dump", help="write this version's answers, one JSON line each")
    d.add_argument("output", type=Path)
    d.add_argument("--model", default=None, help="shipped model or run dir (default: best)")
    c = commands.add_parser("compare", help="count the byte-identical lines of two dumps")
    c.add_argument("old", type=Path)
    c.add_argument("new", type=Path)
    args = parser.parse_args()
    if args.command == "dump":
        dump(args.output, args.model)
    else:
        compare(args.old, args.new)


if __name__ == "__main__":
    main()
