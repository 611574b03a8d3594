"""What a training run is told: `TrainConfig`, the recipes, and their checks. No torch here: the
run directory (digitrec.runs) and the CLI read configs without loading a model.

Recipes are settings chosen on the validation split (BENCHMARKS.md, "MNIST accuracy" and "Real
handwriting", holds the evidence). `recipe_config(name, **flags)` starts from a recipe and lets
the flags the user gave (not None) override it.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any

from digitrec.errors import DigitrecError


class Optimizer(StrEnum):
    adam = "adam"
    adamw = "adamw"
    sgd = "sgd"  # Nesterov, momentum 0.9
    muon = "muon"  # FilterMuon for the hidden filter banks, AdamW for the rest (training.optim)


class Schedule(StrEnum):
    constant = "constant"
    onecycle = "onecycle"  # linear warm-up, cosine down


class Augment(StrEnum):
    none = "none"
    light = "light"  # a small affine
    strong = "strong"  # thickness, elastic and a wider affine


class Recipe(StrEnum):
    tutorial = "tutorial"
    fast = "fast"
    best = "best"


@dataclass(frozen=True)
class TrainConfig:
    model: str = "seed"  # an architecture in training.models.ARCHITECTURES
    epochs: float = 10  # passes over the training split; a fraction ends part-way through one
    batch_size: int = 50  # images per step
    lr: float = 1e-3  # peak learning rate
    optimizer: str = "adam"  # an Optimizer
    betas: tuple[float, float] = (0.9, 0.999)  # Adam's moment decays
    weight_decay: float = 0.0  # decoupled for adamw, L2 for sgd
    schedule: str = "constant"  # a Schedule
    warmup: float = 0.15  # fraction of steps spent warming up (onecycle)
    label_smoothing: float = 0.0  # cross-entropy target smoothing
    ema: float = 0.0  # weight EMA decay per step; 0 disables
    augment: str = "none"  # an Augment (training.augment)
    flag_ones: float = 0.0  # share of '1's given a flag before augmenting (augment.flag_ones)
    styles: float = 0.0  # share of each batch taken from its copies in other styles (styles.py)
    strokes: float = 0.0  # share of each batch replaced by digits drawn from strokes (strokes.py)
    pen: float = 0.0  # share of each batch replaced by real writers' pen digits drawn as the
    #   page draws them (pen.py: data/real/pendigits)
    pen_writers: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7)  # the pen writers trained on; the
    #   others are for scoring (benchmarks/pen.py rotates them)
    init: str = ""  # start from trained weights: a run directory, or a shipped model's member
    #   as NAME:K (best:0); "" = fresh weights
    val_fraction: float = 0.2  # validation carved from the 60,000 training images
    seed: int = 5  # controls the split, initial weights, batch order and augmentation
    split_seed: int = -1  # the validation split's seed; -1 = seed (ensemble members share one)
    data: str | None = None  # training data path; None = bundled MNIST
    extra_data: tuple[str, ...] = ()  # more labelled files (e.g. corrections.csv), train split only
    max_steps: int = 0  # stop after this many steps (smoke tests); 0 = no limit
    threads: int = 0  # torch intra-op threads; 0 = all cores
    recipe: str = ""  # the recipe these settings came from, if any
    output: str = ""  # run directory; "" = runs/<time>-<model>-s<seed>

    def __post_init__(self) -> None:
        for name, kind in (("optimizer", Optimizer), ("schedule", Schedule), ("augment", Augment)):
            _choice(name, getattr(self, name), kind)
        if not 0 <= self.val_fraction < 1:
            raise DigitrecError(f"val_fraction {self.val_fraction}: must be in [0, 1)")
        if not (self.epochs > 0 and math.isfinite(self.epochs)):
            raise DigitrecError(f"epochs {self.epochs}: must be a positive number")
        if self.batch_size < 1:
            raise DigitrecError(f"batch_size {self.batch_size}: must be at least 1")
        if any(not 1 <= w <= 7 for w in self.pen_writers):
            raise DigitrecError(f"pen_writers {self.pen_writers}: writers are 1-7")
        for name in ("flag_ones", "styles", "strokes", "pen"):
            if not 0 <= getattr(self, name) <= 1:
                raise DigitrecError(f"{name} {getattr(self, name)}: a share, must be in [0, 1]")

    @property
    def split(self) -> int:
        """The validation split's seed: split_seed, or the run's own seed when it is -1."""
        return self.seed if self.split_seed < 0 else self.split_seed

    @property
    def split_key(self) -> tuple[object, ...]:
        """Runs with equal keys hold out the very same validation images."""
        return (
            self.data,
            self.extra_data,
            self.val_fraction,
            self.split if self.val_fraction else None,
        )


def _choice(name: str, value: str, kind: type[Enum]) -> None:
    known = [k.value for k in kind]
    if value not in known:
        raise DigitrecError(f"unknown {name} {value!r}; choose from {', '.join(known)}")


RECIPES: dict[str, dict[str, object]] = {
    "tutorial": dict(model="seed", epochs=10, batch_size=50, lr=1e-3, val_fraction=0.2, seed=5),
    # 1.6 passes over the data; Adam's short memory (betas 0.7, 0.9, as tuomaso's
    # train_mnist_fast found for one-epoch MNIST) beat the defaults on validation here
    "fast": dict(
        model="whitened",
        epochs=1.6,
        batch_size=256,
        lr=1e-2,
        optimizer="adamw",
        betas=(0.7, 0.9),
        weight_decay=5e-4,
        schedule="onecycle",
        warmup=0.2,
        label_smoothing=0.1,
        augment="none",
        val_fraction=0.1,
    ),
    # Deotte's CNN with light augmentation (the affine alone): better on validation than the
    # strong augmentation for this architecture
    "best": dict(
        model="deotte",
        epochs=24,
        batch_size=128,
        lr=3e-3,
        optimizer="adamw",
        weight_decay=5e-4,
        schedule="onecycle",
        warmup=0.1,
        label_smoothing=0.1,
        ema=0.999,
        augment="light",
        val_fraction=0.1,
    ),
}


def recipe_config(recipe: str | None, **overrides: object) -> TrainConfig:
    """A recipe's settings (or TrainConfig's defaults), with every override that is not None."""
    base: dict[str, object] = {}
    if recipe:
        _choice("recipe", recipe, Recipe)
        base = {**RECIPES[recipe], "recipe": recipe}
    base.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(**base)  # type: ignore[arg-type]


def from_dict(saved: dict[str, Any], **overrides: object) -> TrainConfig:
    """A TrainConfig from config.json's "train" (older runs lack some fields, ignored fields
    are dropped), with every override that is not None."""
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    settings: dict[str, Any] = {
        k: tuple(v) if isinstance(v, list) else v for k, v in saved.items() if k in names
    }
    settings.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(**settings)


def default_output(cfg: TrainConfig, suffix: str = "") -> Path:
    return Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg.model}-s{cfg.seed}{suffix}"
