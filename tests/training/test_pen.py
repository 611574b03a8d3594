"""Training on real writers' pen strokes (training.pen, train --pen / --pen-writers / --init),
scored only on writers a model never saw (benchmarks/pen.py), and what the card says of it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from digitrec import data, realworld
from digitrec.config import recipe_config
from digitrec.errors import DigitrecError
from digitrec.training import pen
from digitrec.training.loop import train
from tests.helpers import benchmark


def test_renders_are_mnist_framed_reproducible_and_from_the_chosen_writers() -> None:
    digits = pen.load((3,))
    assert digits and {d.writer for d in digits} == {3}
    images, labels = pen.render(digits[:30], per_digit=2, seed=1)
    again, _ = pen.render(digits[:30], per_digit=2, seed=1)
    assert images.dtype == np.uint8 and images.shape[1:] == (28, 28)
    assert (images == again).all() and len(images) >= 55  # a render read blank is dropped
    assert sorted(set(labels.tolist())) == sorted({d.label for d in digits[:30]})
    mass = images.astype(np.float64).sum(axis=(1, 2))
    cy = (images.sum(axis=2) @ np.arange(28)) / mass
    assert np.abs(cy - 14).max() < 2  # centre of mass near the middle, as MNIST's


def test_writers_out_of_range_are_refused() -> None:
    with pytest.raises(DigitrecError, match="pen_writers"):
        recipe_config("fast", pen=0.2, pen_writers=(1, 9))


def test_fine_tuning_on_some_writers_is_scored_on_the_others(
    trained_run: Path, tmp_path: Path
) -> None:
    """A run fine-tuned from another with --pen on writers 3-7 records them; the benchmark
    scores it on writers 1 and 2 only, and ship writes both the writers and the start."""
    from digitrec.training.ship import ship

    images = data.load_mnist("train")
    small = data.Dataset(images.images[:1500], images.labels[:1500], "mnist[:1500]")
    data.write_csv(small, tmp_path / "train.csv")
    cfg = recipe_config(
        "fast", data=str(tmp_path / "train.csv"), max_steps=6, val_fraction=0.2, pen=0.5,
        pen_writers=(3, 4, 5, 6, 7), init=str(trained_run), output=str(tmp_path / "run"),
    )  # fmt: skip
    run = train(cfg)  # scored on the test set too: ship reports it
    saved = json.loads((run.directory / "config.json").read_text())["train"]
    assert saved["pen"] == 0.5 and saved["pen_writers"] == [3, 4, 5, 6, 7]
    assert saved["init"] == str(trained_run)
    assert benchmark("pen").unseen_writers(str(run.directory)) == (1, 2)
    card = ship(run.directory, "tuned", directory=tmp_path / "models")
    assert card["pen_writers_trained"] == [3, 4, 5, 6, 7]
    assert card["init_from"][0]["init"] == str(trained_run)
    assert set(card["selection"]["parts"]) >= {"pen_canvases", "pen_numbers"}
    text = (tmp_path / "models" / "tuned.md").read_text()
    assert "Real pen writers trained on (data/real/pendigits): 3, 4, 5, 6, 7." in text


def test_realistic_canvases_are_transparent_pngs_of_every_writer() -> None:
    drawn = realworld.pen_canvases(per_digit=1, seed=2)
    assert {s.writer for s in drawn} == set(realworld.PEN_WRITERS)
    assert len(drawn) == 1749 and all(s.data and s.data[:4] == b"\x89PNG" for s in drawn[:20])
    assert len(realworld.realistic_canvases(64)) == 64
