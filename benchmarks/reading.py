"""How well `read` splits written numbers into digits, on data made for the purpose.

Two sets, both away from the MNIST test set and from tests/realworld's test half:
  strips   MNIST digits from the validation split of the training set (split seed 0, the
           shipped models' own), one stroke each, drawn 3x as large side by side with gaps of
           0.3-1.2 of their height: every digit is apart, so a right answer is one segment per
           digit. Counted with the classifier (`read`'s path) and by ink alone.
  numbers  written numbers from tools/make_realworld.py's generator with seeds the set does
           not use (plain, touching, broken, underlined, specks; canvas and paper): the text
           read must match exactly.

    python benchmarks/reading.py [--model NAME] [--strips 300] [--numbers 400]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

from digitrec import data
from digitrec.predictor import Predictor
from digitrec.vision.segment import segment

ROOT = Path(__file__).resolve().parents[1]


def mnist_strip(
    digits: list[np.ndarray], gaps: list[float], drops: list[int]
) -> tuple[np.ndarray, list[float]]:
    """MNIST digits 3x as large, side by side, apart by gaps (of the height) and dropped or
    raised a few pixels: (ink map, each digit's centre column)."""
    ink = np.zeros((120, 40 + 120 * len(digits)), np.float32)
    x, centres = 20, []
    for i, digit in enumerate(digits):
        d = np.asarray(Image.fromarray(digit).resize((84, 84)), np.float32) / 255
        rows, cols = np.nonzero(d.max(axis=1) > 0.2)[0], np.nonzero(d.max(axis=0) > 0.2)[0]
        d = d[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        y = 20 + drops[i]
        ink[y : y + d.shape[0], x : x + d.shape[1]] = d
        centres.append(x + d.shape[1] / 2)
        x += d.shape[1] + int(gaps[i] * d.shape[0])
    return ink, centres


def one_stroke(images: np.ndarray) -> list[np.ndarray]:
    """The digits drawn in one connected stroke (others are broken, like a real pen's)."""
    return [d for d in images if ndi.label(d > 50, structure=np.ones((3, 3)))[1] == 1]


def strips(n: int, seed: int) -> list[tuple[np.ndarray, int]]:
    """n strips of 1-6 validation-split digits: (ink map, how many digits)."""
    _, val = data.split_validation(data.load_mnist("train"), 0.1, 0)
    pool, rng = one_stroke(val.images[:3000]), np.random.default_rng(seed)
    out = []
    for _ in range(n):
        k = int(rng.integers(1, 7))
        picks = rng.integers(0, len(pool), k)
        gaps, drops = rng.uniform(0.3, 1.2, k).tolist(), rng.integers(-8, 9, k).tolist()
        out.append((mnist_strip([pool[p] for p in picks], gaps, drops)[0], k))
    return out


def numbers(n: int, seed: int) -> list[tuple[bytes, str, str]]:
    """n generated written numbers: (file bytes, label, what is hard about it)."""
    sys.path.insert(0, str(ROOT / "tools"))
    import make_realworld  # noqa: PLC0415 (a tool script, not a package module)

    out = []
    for i in range(n):
        blob, _, label, hard = make_realworld.make_number(np.random.default_rng(seed + i), i)
        out.append((blob, label, hard))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="shipped model or run dir (default: best)")
    parser.add_argument("--strips", type=int, default=300)
    parser.add_argument("--strip-seed", type=int, default=0)
    parser.add_argument("--numbers", type=int, default=400)
    parser.add_argument("--number-seed", type=int, default=50_000)
    parser.add_argument("--errors", action="store_true", help="list every error")
    args = parser.parse_args()
    predictor = Predictor.load(args.model)

    def confidence(images: np.ndarray) -> np.ndarray:
        return predictor.predict_array(images).max(axis=1)

    t = time.perf_counter()
    made = strips(args.strips, args.strip_seed)
    read = [len(segment(ink, confidence)) for ink, _ in made]
    by_ink = [len(segment(ink)) for ink, _ in made]
    wrong_read = [(i, k, r) for i, ((_, k), r) in enumerate(zip(made, read, strict=True)) if r != k]
    wrong_ink = sum(r != k for (_, k), r in zip(made, by_ink, strict=True))
    written = numbers(args.numbers, args.number_seed)
    errors = [(label, got, hard) for blob, label, hard in written
              if (got := predictor.read(blob).text) != label]  # fmt: skip
    print(f"model {predictor.name}")
    print(f"strips of separate MNIST validation digits (seed {args.strip_seed}):")
    print(f"  segment count wrong, read (classifier): {len(wrong_read):4d} of {len(made)}")
    print(f"  segment count wrong, ink alone:         {wrong_ink:4d} of {len(made)}")
    print(f"generated written numbers (seeds {args.number_seed}+):")
    print(f"  read exactly: {len(written) - len(errors):4d} of {len(written)}")
    print(f"({time.perf_counter() - t:.0f} s)")
    if args.errors:
        for i, k, r in wrong_read:
            print(f"  strip {i}: {k} digits -> {r} segments")
        for label, got, hard in errors:
            print(f"  {hard}: {label!r} -> {got!r}")


if __name__ == "__main__":
    main()
