"""Real handwriting: accuracy, null share and top confusions per set, the worst mistakes as a
picture, and the selection score (digitrec.realworld).

Sets: data/real's dev halves (Semeion, the Dutch map numerals: writers outside MNIST) and our
generated set (tests/realworld) by kind, its `val` split by default (`--split test` to report).
None of them is ever trained on.

    python benchmarks/real.py [--model NAME_OR_RUN] [--split val|test] [--mistakes DIR]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from digitrec import realworld
from digitrec.plots import image_grid
from digitrec.predictor import Predictor


def worst_picture(scores: list[realworld.SetScore], path: Path, per_set: int = 10) -> None:
    """The most confident wrong answers of each set (what the model saw), titled
    `label->answer`."""
    images, titles = [], []
    for score in scores:
        worst = sorted(
            (m for m in score.mistakes if m.preprocessed is not None),
            key=lambda m: -m.confidence,
        )[:per_set]
        for m in worst:
            images.append(m.preprocessed)
            titles.append(f"{score.name[:7]} {m.sample.label}->{m.answer.split(':')[-1]}")
    if images:
        image_grid(np.stack(images), titles, path, columns=per_set, suptitle="worst mistakes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="shipped model or run dir (default: best)")
    parser.add_argument("--split", default="val", choices=["val", "test"], help="generated set")
    parser.add_argument("--mistakes", type=Path, default=Path("evaluation"), help="PNG folder")
    parser.add_argument("--errors", action="store_true", help="list every mistake")
    args = parser.parse_args()
    predictor = Predictor.load(args.model, threads=0)
    scores = [
        realworld.score_digits(predictor, n, realworld.load_real(n)) for n in realworld.REAL_SETS
    ]
    scores += list(realworld.score_generated(predictor, args.split).values())
    print(f"model {predictor.name}")
    print(f"{'set':28} {'images':>6} {'accuracy':>9} {'null':>6}  top confusions (label->answer)")
    for s in scores:
        top = ", ".join(f"{a}->{b} x{n}" for (a, b), n in s.confusions.most_common(4))
        print(f"{s.name:28} {s.total:6d} {s.accuracy:9.2%} {s.null_share:6.1%}  {top}")
        if args.errors:
            for m in s.mistakes:
                print(f"    {m.sample.path.name}: {m.sample.label!r} -> {m.answer!r}")
    path = args.mistakes / f"real-mistakes-{predictor.name}.png"
    args.mistakes.mkdir(parents=True, exist_ok=True)
    worst_picture(scores[: len(realworld.REAL_SETS)], path)
    print(f"worst mistakes: {path}")
    if args.split == "val":
        selection = realworld.selection_score(scores, predictor.card.get("val_accuracy"))
        print(f"selection score {selection['score']:.4f}  {json.dumps(selection['parts'])}")
    print(json.dumps([s.to_dict() for s in scores]))


if __name__ == "__main__":
    main()
