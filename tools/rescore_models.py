"""Measure the selection score of shipped models again and write it into their cards.

For cards shipped before the score existed, or after a change to preprocessing (which every
real image goes through). `ship` writes the score itself; the card's other figures are kept.
Each model's NAME.md (modelcard.py; models_dir.ModelsDir writes it) is written anew from its
JSON card; with `--cards`, only that, nothing measured.

    python tools/rescore_models.py [NAME ...]           # default: every shipped model
    python tools/rescore_models.py --cards [NAME ...]   # only regenerate NAME.md
"""

from __future__ import annotations

import sys

from digitrec import shipped
from digitrec.models_dir import ModelsDir
from digitrec.training.ship import rescore


def main(args: list[str]) -> None:
    cards_only = "--cards" in args
    names = [a for a in args if a != "--cards"]
    for name in names or [c["name"] for c in shipped.shipped_cards()]:
        if cards_only:
            ref = shipped.resolve(name)
            print(ModelsDir(ref.onnx.parent).write_markdown(ref.card))
            continue
        selection = rescore(name)["selection"]
        print(f"{name}: selection score {selection['score']:.4f} {selection['parts']}")
    if not cards_only:
        print(f"default by the score: {shipped.default_choice(shipped.shipped_cards())}")


if __name__ == "__main__":
    main(sys.argv[1:])
