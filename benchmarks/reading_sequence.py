"""Reading numbers whole: the sequence reader against the segmentation reader, and combined.

Every string is read by both (Predictor._segments and the sequence reader on the same ink
map); the answers of each way of combining them are then scored on the same readings:

  segment         the segmentation reader alone (`read` before the sequence reader)
  sequence        the sequence reader alone: its text when its confidence >= T
  combined        reader.combine: both agree and confidence >= A, or confidence >= T alone

Sets (never trained on): real pen-stroke writers' numbers (realworld.pen_numbers, 3-6 digits,
`--writers`, as canvases and as low-resolution captures) and our generated number photos
(tests/realworld kind "numbers", `--split`). Figures: exact (the text read is the label), wrong
(a wrong text given with no doubt flagged), answered (share with a text), per length; ms per
string p50 on one thread.

    python benchmarks/reading_sequence.py --writers 7 --split test --choose-writers 6 [--errors]

`--choose-writers` first reads those writers' numbers and the val split and picks the
thresholds that keep wrong answers under `--max-wrong` (3%) of the strings of each set (each
writer's canvases and low-resolution captures, the val numbers) while reading the most
exactly, then scores the sets named by --writers and --split with them. The shipped thresholds
are chosen on writers 6 and 7; choosing on one and scoring the other shows how well they carry
to a writer they were not chosen on.
"""

from __future__ import annotations

import argparse
import itertools
import platform
import subprocess
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from digitrec import realworld
from digitrec.predictor import Predictor, Reading, one_thread
from digitrec.reader import SequenceReader, combine


@dataclass
class Row:
    label: str
    segments: Reading
    sequence: Reading
    ms_segment: float  # ink map + segmentation reader
    ms_sequence: float  # ink map + sequence reader


def read_all(predictor: Predictor, samples: list[realworld.Sample]) -> list[Row]:
    rows = []
    with one_thread():
        for s in samples:
            t0 = time.perf_counter()
            ink, full = predictor._ink(s.source)
            t1 = time.perf_counter()
            seg = predictor._segments(ink, full)
            t2 = time.perf_counter()
            seq = predictor._sequence(ink, full, seg)
            t3 = time.perf_counter()
            rows.append(Row(s.label, seg, seq, 1000 * (t2 - t0), 1000 * (t1 - t0 + t3 - t2)))
    return rows


def answer(row: Row, policy: str, predictor: Predictor) -> str | None:
    if policy == "segment":
        return row.segments.text
    if policy == "sequence":
        assert predictor.sequence is not None
        sure = row.sequence.digits and row.sequence.confidence >= predictor.sequence.uncertain_below
        return row.sequence.guess if sure else None
    assert predictor.sequence is not None
    return combine(row.segments, row.sequence, predictor.sequence).text


def score(rows: list[Row], policy: str, predictor: Predictor) -> dict[str, float]:
    got = [answer(r, policy, predictor) for r in rows]
    n = max(len(rows), 1)
    exact = sum(g == r.label for g, r in zip(got, rows, strict=True))
    given = sum(g is not None for g in got)
    return {"exact": exact / n, "wrong": (given - exact) / n, "answered": given / n,
            "right_of_given": exact / max(given, 1)}  # fmt: skip


def by_length(rows: list[Row], policy: str, predictor: Predictor) -> str:
    groups: dict[int, list[Row]] = defaultdict(list)
    for r in rows:
        groups[len(r.label)].append(r)
    return "  ".join(
        f"{k}:{score(g, policy, predictor)['exact']:.0%}({len(g)})"
        for k, g in sorted(groups.items())
    )


def choose(sets: dict[str, list[Row]], predictor: Predictor, max_wrong: float) -> None:
    """Thresholds (T, A, S, per digit, near) keeping wrong answers under `max_wrong` of
    the strings of every set, reading the most exactly (mean over the sets)."""
    assert predictor.sequence is not None
    card = predictor.sequence.card
    best = None
    for t in np.arange(0.3, 1.0, 0.02):
        for a in np.arange(0.0, t + 1e-9, 0.05):
            for s, per_digit, same in itertools.product(
                (2.0, 0.999, 0.998, 0.995, 0.99, 0.98, 0.95), (False, True), (False, True)
            ):
                card.update(
                    uncertain_below=float(t), agree_below=float(a), segment_below=s,
                    segment_per_digit=per_digit, segment_near_sequence=same,
                )  # fmt: skip
                predictor.sequence.uncertain_below = float(t)
                scores = [score(rows, "combined", predictor) for rows in sets.values()]
                if max(x["wrong"] for x in scores) < max_wrong:
                    exact = float(np.mean([x["exact"] for x in scores]))
                    if best is None or exact > best[0]:
                        best = (exact, round(float(t), 2), round(float(a), 2), s, per_digit,
                                same)  # fmt: skip
    print(
        f"chosen: {best}  (mean exact, uncertain_below T, agree_below A, segment_below S, "
        "segment_per_digit, segment_near_sequence)"
    )
    if best is not None:
        card.update(
            uncertain_below=best[1], agree_below=best[2], segment_below=best[3],
            segment_per_digit=best[4], segment_near_sequence=best[5],
        )  # fmt: skip
        predictor.sequence.uncertain_below = best[1]


def sets_of(
    writers: tuple[int, ...], split: str, args: argparse.Namespace
) -> dict[str, list[realworld.Sample]]:
    w = ",".join(map(str, writers))
    return {
        f"pen canvases w{w}": realworld.pen_numbers(writers, args.count, args.seed),
        f"pen low-res w{w}": realworld.pen_numbers(
            writers, args.count, args.seed, low_resolution=True
        ),
        f"generated numbers {split}": realworld.load_generated(split)["numbers"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", default=None, help="digit classifier (default: the shipped default)"
    )
    parser.add_argument(
        "--reader",
        default=None,
        help="a folder holding reader.onnx and its card (default: the shipped reader)",
    )
    parser.add_argument("--writers", default="6,7", help="pen writers to read (default: 6,7)")
    parser.add_argument("--count", type=int, default=300, help="numbers per pen set (default: 300)")
    parser.add_argument("--seed", type=int, default=11, help="pen_numbers seed (default: 11)")
    parser.add_argument("--split", default="val", help="tests/realworld split (default: val)")
    parser.add_argument(
        "--stretches", default=None, help="widths to read at, e.g. 0.8,1,1.25 (default: the card's)"
    )
    parser.add_argument(
        "--both-sure", default=None, help="uncertain | likelier (default: the card's)"
    )
    parser.add_argument(
        "--choose-writers",
        default="",
        help="first choose the thresholds (T, A, S) on these writers' numbers and the val split, "
        "then score the sets above with them (default: the card's thresholds)",
    )
    parser.add_argument(
        "--max-wrong",
        type=float,
        default=0.03,
        help="with --choose-writers: wrong answers allowed per set (default: 0.03)",
    )
    parser.add_argument("--errors", action="store_true", help="list the sequence reader's errors")
    args = parser.parse_args()
    writers = tuple(int(w) for w in args.writers.split(","))
    predictor = Predictor.load(args.model)
    if args.reader:
        predictor.sequence = SequenceReader.load(Path(args.reader))
    if predictor.sequence is None:
        raise SystemExit("no sequence reader shipped (models/reader.onnx)")
    if args.both_sure:
        predictor.sequence.card["both_sure"] = args.both_sure
    if args.stretches:
        predictor.sequence.card["stretches"] = [float(x) for x in args.stretches.split(",")]
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model_name = next(
        (ln.split(":", 1)[1].strip() for ln in cpu.splitlines() if "Model name" in ln),
        platform.processor(),
    )
    card = predictor.sequence.card
    print(
        f"{time.strftime('%Y-%m-%d')}  {model_name}  one thread  classifier {predictor.name}  "
        f"reader: T={card.get('uncertain_below')} A={card.get('agree_below')} "
        f"S={card.get('segment_below')} per digit {card.get('segment_per_digit', False)} "
        f"near {card.get('segment_near_sequence', False)} "
        f"stretches {card.get('stretches', [1.0])}"
    )
    read: dict[str, list[Row]] = {}  # set name -> its readings, read once
    if args.choose_writers:
        chosen = tuple(int(w) for w in args.choose_writers.split(","))
        if set(chosen) & set(writers):
            print("scored on writers the thresholds were chosen on: figures in sample")
        # each writer its own set: wrong answers kept under --max-wrong for every writer
        for w in chosen:
            for name, samples in sets_of((w,), "val", args).items():
                if name not in read:
                    read[name] = read_all(predictor, samples)
        choose(read, predictor, args.max_wrong)
    sets = {
        name: read[name] if name in read else read_all(predictor, samples)
        for name, samples in sets_of(writers, args.split, args).items()
    }
    for name, rows in sets.items():
        print(f"{name} ({len(rows)} strings)")
        for policy in ("segment", "sequence", "combined"):
            s = score(rows, policy, predictor)
            print(
                f"  {policy:9s} exact {s['exact']:6.1%}  wrong {s['wrong']:5.1%}  answered "
                f"{s['answered']:6.1%}  right of given {s['right_of_given']:6.1%}  | "
                + by_length(rows, policy, predictor)
            )
        seg_ms, seq_ms = (
            np.median([r.ms_segment for r in rows]),
            np.median([r.ms_sequence for r in rows]),
        )
        print(f"  ms p50: segmentation {seg_ms:.1f}, sequence {seq_ms:.1f} (each with the ink map)")
        if args.errors:
            for r in rows:
                if r.sequence.guess != r.label:
                    print(
                        f"    {r.label!r} -> sequence {r.sequence.guess!r} "
                        f"({r.sequence.confidence:.2f}), segment {r.segments.guess!r}"
                    )


if __name__ == "__main__":
    main()
