"""What a training run is told: `TrainConfig`, the recipes, and their checks. No torch here: the
run directory (digitrec.runs) and the CLI read configs without loading a model.

A field that is also a `digitrec train` flag is declared with `flag(default, help, choices=)`:
the CLI builds the flag from the field (commands/train.py), and the choices are checked here.

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


class Architecture(StrEnum):
    """What `train --model` builds (training.models.REGISTRY: one entry each, tested)."""

    seed = "seed"  # the tutorial's Keras CNN
    whitened = "whitened"
    maxpool_bn = "maxpool_bn"
    deotte = "deotte"


class Recipe(StrEnum):
    tutorial = "tutorial"
    fast = "fast"
    best = "best"


def flag(default: Any, help: str, *, choices: type[Enum] | None = None, short: str = "") -> Any:
    """A setting that is also a `digitrec train` flag: its help (`{default}` becomes the
    default) and its choices, declared once, here; the CLI builds the flag from them."""
    return dataclasses.field(
        default=default, metadata={"help": help, "choices": choices, "short": short}
    )


@dataclass(frozen=True)
class TrainConfig:
    model: str = flag(
        "seed",
        "Architecture: seed (the tutorial's CNN), whitened, maxpool_bn, deotte. "
        "Default: the recipe's, else {default}.",
        choices=Architecture,
    )
    # passes over the training split; a fraction ends part-way through one
    epochs: float = flag(
        10,
        "Passes over the data (1.5: one and a half). Default: the recipe's, else {default:g}; "
        "with --resume, the run's own.",
    )
    batch_size: int = flag(50, "Default: {default}.")  # images per step
    lr: float = flag(1e-3, "Peak learning rate. Default: {default:g}.")
    optimizer: str = flag(
        "adam",
        "muon: Muon for the hidden filters, AdamW for the rest. "
        "Default: the recipe's, else {default}.",
        choices=Optimizer,
    )
    betas: tuple[float, float] = (0.9, 0.999)  # Adam's moment decays
    weight_decay: float = 0.0  # decoupled for adamw, L2 for sgd
    schedule: str = flag("constant", "Default: the recipe's, else {default}.", choices=Schedule)
    warmup: float = 0.15  # fraction of steps spent warming up (onecycle)
    label_smoothing: float = 0.0  # cross-entropy target smoothing
    ema: float = 0.0  # weight EMA decay per step; 0 disables
    # training.augment
    augment: str = flag("none", "Default: the recipe's, else {default}.", choices=Augment)
    # share of '1's given a flag before augmenting (augment.flag_ones)
    flag_ones: float = flag(
        0.0,
        "Share of the '1's drawn with a flag, as most of Europe writes them. Default: {default:g}.",
    )
    styles: float = flag(  # share of each batch taken from its copies in other styles
        0.0,
        "Share of each batch taken from copies in other styles and captures (box stretched to "
        "a square, fat pen, low resolution; training.styles). Default: {default:g}.",
    )
    strokes: float = flag(  # share of each batch replaced by digits drawn from strokes
        0.0,
        "Share of each batch replaced by digits drawn from pen strokes in forms MNIST lacks "
        "(open and low-closed 4s, crossed 7s, curved-tail 9s; training.strokes). "
        "Default: {default:g}.",
    )
    pen: float = flag(  # share of each batch replaced by real writers' pen digits
        0.0,
        "Share of each batch replaced by real writers' pen digits (data/real/pendigits) drawn "
        "as the page draws them, many ways (training.pen). Default: {default:g}.",
    )
    # the pen writers trained on; the others are for scoring (benchmarks/pen.py rotates them)
    pen_writers: tuple[int, ...] = flag(
        (1, 2, 3, 4, 5, 6, 7),
        "The pen writers to train on, e.g. 3,4,5,6,7 (the rest stay unseen for scoring). "
        "Default: all seven.",
    )
    init: str = flag(  # "" = fresh weights
        "",
        "Start from trained weights: a run directory, or a shipped model's member as NAME:K "
        "(best:0). Default: fresh weights.",
    )
    # validation carved from the 60,000 training images
    val_fraction: float = flag(0.2, "Validation carved from the training set. Default: {default}.")
    # controls the split, initial weights, batch order and augmentation
    seed: int = flag(5, "Random seed. Default: {default}.")
    split_seed: int = flag(  # -1 = seed (ensemble members share one)
        -1,
        "Seed of the validation split. Default: the seed (an ensemble's: the first). "
        "Give a shipped ensemble's to train one more member it can be judged with.",
    )
    data: str | None = flag(None, "Training data. Default: bundled MNIST.")  # None = MNIST
    extra_data: tuple[str, ...] = flag(  # train split only
        (), "More labelled data (e.g. corrections.csv), added to the training split."
    )
    max_steps: int = flag(0, "Stop after N steps (smoke runs).")  # 0 = no limit
    threads: int = flag(0, "CPU threads. Default: all cores.")  # torch intra-op; 0 = all
    recipe: str = ""  # the recipe these settings came from, if any
    output: str = flag(  # "" = runs/<time>-<model>-s<seed>
        "", "Run directory. Default: runs/<time>-<model>-s<seed>.", short="-o"
    )

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # optimizer, schedule, augment
            if f.metadata.get("choices"):
                _choice(f.name, getattr(self, f.name), f.metadata["choices"])
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
