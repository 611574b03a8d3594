"""Real writers' drawings: accuracy and null share per pen writer, on canvases drawn as the page
exports them (realworld.pen_canvases), for a model never trained on the writers scored.

A model's run directory says which pen writers it trained on (config.json: train.pen_writers
when train.pen > 0); only the others are scored. A shipped model is scored on the writers its
card names as unseen (all seven for a model trained without pen strokes).

    python benchmarks/pen.py [--model NAME_OR_RUN ...] [--per-digit 2] [--writers 1,2] [--numbers N]
    python benchmarks/pen.py --folds RUN... [--into FINAL_RUN] [--numbers N]

With --folds, each writer is scored by the first fold run that never saw it (a recipe's
writer-wise figure); --into writes them to FINAL_RUN/pen_folds.json, which `digitrec ship`
puts on the card (`pen_folds`) and the selection score reads.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import sys
from pathlib import Path

from digitrec import realworld, shipped
from digitrec.machine import cpu_name
from digitrec.predictor import Predictor
from digitrec.runs import RunDir


def unseen_writers(name: str | None) -> tuple[int, ...]:
    """The pen writers a model did not train on: from its run's config, or its card's
    `pen_writers_trained` (none for a card without it)."""
    ref = shipped.resolve(name)
    if ref.run_dir is not None:
        cfg = RunDir(ref.run_dir).config
        trained = set(cfg.pen_writers) if cfg.pen else set()
    else:
        trained = set(ref.card.get("pen_writers_trained", []))
    return tuple(w for w in realworld.PEN_WRITERS if w not in trained)


def score(predictor: Predictor, writers: tuple[int, ...], per_digit: int) -> dict[str, object]:
    rows = {}
    total = right = nulls = 0
    for w in writers:
        s = realworld.score_digits(
            predictor, f"writer {w}", realworld.pen_canvases((w,), per_digit=per_digit, seed=w)
        )
        rows[w] = s
        total, right, nulls = total + s.total, right + s.correct, nulls + s.nulls
    return {
        "rows": rows,
        "total": total,
        "accuracy": right / max(total, 1),
        "null": nulls / max(total, 1),
    }


def folds(runs: list[str], per_digit: int, numbers: int) -> dict[str, object]:
    """Every writer scored by the first of `runs` that never trained on it; numbers of each
    fold's unseen writers read by that fold's model (`numbers` in all, shared by writer)."""
    owner: dict[int, str] = {}
    for run in runs:
        for w in unseen_writers(run):
            owner.setdefault(w, run)
    missing = [w for w in realworld.PEN_WRITERS if w not in owner]
    if missing:
        raise SystemExit(f"writers {missing} were trained on by every fold")
    writers: dict[int, dict[str, float]] = {}
    right = total = nulls = 0
    read = {False: [0, 0], True: [0, 0]}
    for run in dict.fromkeys(owner.values()):
        mine = tuple(w for w, r in owner.items() if r == run)
        predictor = Predictor.load(run, threads=0)
        result = score(predictor, mine, per_digit)
        for w, sc in result["rows"].items():  # type: ignore[union-attr]
            writers[w] = {
                "accuracy": round(sc.accuracy, 4),
                "null": round(sc.null_share, 4),
                "images": sc.total,
            }
            right, total, nulls = right + sc.correct, total + sc.total, nulls + sc.nulls
            print(f"  writer {w} ({run}): {sc.accuracy:.2%}, null {sc.null_share:.1%}", flush=True)
        for low in (False, True) if numbers else ():
            n = round(numbers * len(mine) / len(realworld.PEN_WRITERS))
            sc = realworld.score_numbers(
                predictor,
                "numbers",
                realworld.pen_numbers(mine, n, seed=11 + 100 * low, low_resolution=low),
            )
            read[low][0] += sc.correct
            read[low][1] += sc.total
    return {
        "canvases": round(right / total, 4),
        "null": round(nulls / total, 4),
        "images": total,
        "numbers": round(read[False][0] / max(read[False][1], 1), 4),
        "low_resolution": round(read[True][0] / max(read[True][1], 1), 4),
        "numbers_read": read[False][1],
        "writers": writers,
        "runs": owner,
        "date": dt.date.today().isoformat(),
        "cpu": cpu_name(),
        "command": "python benchmarks/pen.py " + shlex.join(sys.argv[1:]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", nargs="*", default=[None], help="shipped models or run dirs")
    parser.add_argument("--per-digit", type=int, default=2, help="canvases per pen digit")
    parser.add_argument("--writers", default="", help="score these writers only (e.g. 1,2)")
    parser.add_argument("--json", action="store_true", help="one JSON line per model")
    parser.add_argument("--folds", nargs="*", default=None, help="fold run dirs (see above)")
    parser.add_argument("--into", type=Path, default=None, help="write pen_folds.json here")
    parser.add_argument(
        "--numbers",
        type=int,
        default=0,
        help="also read N numbers (3-6 digits) "
        "of unseen writers, canvases and low-resolution captures",
    )
    args = parser.parse_args()
    if args.folds:
        result = folds(args.folds, args.per_digit, args.numbers)
        print(json.dumps({k: v for k, v in result.items() if k != "writers"}))
        if args.into:
            (args.into / "pen_folds.json").write_text(json.dumps(result, indent=1) + "\n")
        return
    for name in args.model:
        predictor = Predictor.load(name, threads=0)
        writers = unseen_writers(name)
        if args.writers:
            writers = tuple(w for w in map(int, args.writers.split(",")) if w in writers)
        result = score(predictor, writers, args.per_digit)
        rows = result["rows"]
        assert isinstance(rows, dict)
        if args.json:
            print(
                json.dumps(
                    {
                        "model": predictor.name,
                        "writers": {w: round(s.accuracy, 4) for w, s in rows.items()},
                        "images": result["total"],
                        "accuracy": round(float(result["accuracy"]), 4),  # type: ignore[arg-type]
                        "null": round(float(result["null"]), 4),  # type: ignore[arg-type]
                    }
                )
            )
            continue
        print(f"model {predictor.name}: pen writers not trained on {writers}")
        for w, s in rows.items():
            top = ", ".join(f"{a}->{b} x{n}" for (a, b), n in s.confusions.most_common(4))
            print(
                f"  writer {w}: {s.total:4d} canvases {s.accuracy:7.2%}",
                f"null {s.null_share:5.1%}  {top}",
            )
        print(
            f"  all: {result['total']} canvases {result['accuracy']:.2%} null {result['null']:.1%}"
        )
        for low in (False, True) if args.numbers else ():
            kind = "low-resolution captures" if low else "canvases"
            s = realworld.score_numbers(
                predictor,
                kind,
                realworld.pen_numbers(writers, args.numbers, seed=11, low_resolution=low),
            )
            top = ", ".join(f"{a}->{b}" for (a, b), n in s.confusions.most_common(6))
            print(
                f"  numbers, {kind}: {s.total} {s.accuracy:7.2%} exact,",
                f"null {s.null_share:5.1%}  {top}",
            )


if __name__ == "__main__":
    main()
