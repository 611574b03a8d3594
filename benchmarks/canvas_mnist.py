"""How well canvas preprocessing brings drawings back to MNIST's form: MNIST validation digits
drawn as canvases (enlarged 4-9x, pen width changed, placed anywhere on 280x280), through
preprocess_canvas and a model. Accuracy here drops only by what preprocessing loses, so it
tells two ways of preprocessing apart on thousands of drawings (the real-world set has 60
canvases per split). Validation images only (the split of best and mix-x3: seed 0, 10%),
never the test set.

    python benchmarks/canvas_mnist.py [--n 2000] [--model best fast]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from PIL import Image

from digitrec import data
from digitrec.machine import describe
from digitrec.predictor import Predictor
from digitrec.vision import imageops, preprocess


def mnist_canvases(n: int = 2000, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """n alpha channels (280x280 uint8) of validation digits drawn as canvases, and labels."""
    full = data.load_mnist("train")
    _, val = data.split_validation(full, 0.1, 0)
    rng = np.random.default_rng(seed)
    alphas = []
    for image in val.images[:n]:
        scale = rng.uniform(4, 9)
        side = round(28 * scale)
        big = np.asarray(
            Image.fromarray(image).resize((side, side), Image.Resampling.BILINEAR), np.float32
        )
        # A pen thinner or fatter than MNIST's: grey erosion or dilation by a disk.
        radius = int(rng.integers(-1, 4) * scale / 4)
        if radius:
            big = imageops.morph(big, abs(radius), erode=radius < 0)
        alpha = np.clip(big * 1.4, 0, 255).astype(np.uint8)  # a pen's core is fully opaque
        box = imageops.box(alpha > 0)
        if box is None:
            alphas.append(np.zeros((280, 280), np.uint8))
            continue
        alpha = alpha[box][:280, :280]
        h, w = alpha.shape
        canvas = np.zeros((280, 280), np.uint8)
        top, left = int(rng.integers(0, 281 - h)), int(rng.integers(0, 281 - w))
        canvas[top : top + h, left : left + w] = alpha
        alphas.append(canvas)
    return alphas, val.labels[:n]


def accuracy(predictor: Predictor, alphas: list[np.ndarray], labels: np.ndarray) -> float:
    images = [preprocess.preprocess_canvas(a) for a in alphas]
    x = np.stack([np.zeros((28, 28), np.float32) if i is None else i for i in images])
    probs = predictor.predict_array(x)
    return float(np.mean(probs.argmax(axis=1) == labels))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--model", nargs="+", default=["best", "fast"])
    args = parser.parse_args()
    print(f"machine: {describe()}")
    alphas, labels = mnist_canvases(args.n)
    for name in args.model:
        t = time.perf_counter()
        acc = accuracy(Predictor.load(name), alphas, labels)
        print(f"{name:>10}: {acc:.2%} of {len(labels)} ({time.perf_counter() - t:.1f} s)")


if __name__ == "__main__":
    main()
