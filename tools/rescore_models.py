"""Measure the selection score of shipped models again and write it into their cards.

For cards shipped before the score existed, or after a change to preprocessing (which every
real image goes through). `ship` writes the score itself; the card's other figures are kept.

    python tools/rescore_models.py [NAME ...]     # default: every shipped model
"""

from __future__ import annotations

import sys

from digitrec import registry
from digitrec.ship import rescore


def main(names: list[str]) -> None:
    for name in names or [c["name"] for c in registry.shipped_cards()]:
        selection = rescore(name)["selection"]
        print(f"{name}: selection score {selection['score']:.4f} {selection['parts']}")
    print(f"default by the score: {registry.default_choice(registry.shipped_cards())}")


if __name__ == "__main__":
    main(sys.argv[1:])
