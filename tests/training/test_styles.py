"""styles: training copies of MNIST in the styles and captures of other collections."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from digitrec import data
from digitrec.config import recipe_config
from digitrec.training import styles
from digitrec.training.loop import train
from digitrec.vision import imageops as ops


def test_rendered_copies_are_mnist_framed_and_reproducible() -> None:
    images = data.load_mnist("train").images[:60]
    a, b = styles.render(images, seed=3), styles.render(images, seed=3)
    assert a.shape == images.shape and a.dtype == np.uint8
    assert (a == b).all()  # the seed fixes every style drawn
    assert (a != styles.render(images, seed=4)).any()
    for digit in a:
        box = ops.box(digit > 0)
        assert box is not None  # a digit stays a digit
        h, w = (s.stop - s.start for s in box)
        assert max(h, w) <= 22  # fit into 20x20 as MNIST was (a pixel of rim either side)
        mass = digit.astype(np.float64)
        cy = (mass.sum(1) @ np.arange(28)) / mass.sum()
        cx = (mass.sum(0) @ np.arange(28)) / mass.sum()
        assert abs(cy - 14) < 1.5 and abs(cx - 14) < 1.5


def test_a_one_becomes_a_wide_bar_as_other_collections_stretch_it() -> None:
    """Semeion and the map numerals stretched each digit's box to a square: their '1's are
    wide. The copies of MNIST's narrow '1's are wider on the whole."""
    train_set = data.load_mnist("train")
    ones = train_set.images[train_set.labels == 1][:40]

    def width(batch: np.ndarray) -> float:
        return float(np.mean([(lambda b: b[1].stop - b[1].start)(ops.box(d > 0)) for d in batch]))

    assert width(styles.render(ones, seed=0)) > 1.5 * width(ones)


@pytest.mark.parametrize("share", ["styles", "strokes"])
def test_training_with_synthetic_copies_records_the_share(tmp_path: Path, share: str) -> None:
    """--styles (MNIST in other styles) and --strokes (digits drawn from strokes) train, and
    the run's config.json keeps the share."""
    images = data.load_mnist("train")
    small = data.Dataset(images.images[:1500], images.labels[:1500], "mnist[:1500]")
    data.write_csv(small, tmp_path / "train.csv")
    cfg = recipe_config(
        "fast", data=str(tmp_path / "train.csv"), max_steps=8, val_fraction=0.2,
        output=str(tmp_path / "run"), **{share: 0.4},
    )  # fmt: skip
    run = train(cfg, test=False)
    saved = json.loads((run.directory / "config.json").read_text())
    assert saved["train"][share] == 0.4
    assert run.history and 0 < run.history[-1]["val_accuracy"] <= 1
