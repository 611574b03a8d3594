"""Where models live: shipped models in models/ (NAME.onnx + NAME.safetensors + NAME.json card;
the folder's owner is models_dir.ModelsDir) and run directories made by `train`. No torch here:
serving resolves models too."""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from digitrec.errors import ModelError
from digitrec.models_dir import MODELS_DIR, ModelsDir


@dataclass(frozen=True)
class ModelRef:
    name: str
    onnx: Path  # the ONNX graph: (N, 1, 28, 28) float [0, 1] -> (N, 10) calibrated probabilities
    card: dict[str, Any]
    run_dir: Path | None = None  # set when the model is a training run


def shipped_cards(directory: Path = MODELS_DIR) -> list[dict[str, Any]]:
    # the sequence reader's card (reader.py) sits beside the digit classifiers' cards
    cards = ModelsDir(directory).cards()
    return [c for c in cards if "name" in c and c.get("kind") != "sequence-reader"]


def default_choice(cards: list[dict[str, Any]]) -> str:
    """Which shipped model should be the default: the one with the fewest parameters among
    those whose score is within one standard error of the best's. A smaller gap is noise, and
    a model with a third of the parameters answers in a third of the time. Ties: the higher
    score.

    The score is the declared selection score (realworld.selection_score: MNIST validation,
    the real dev sets and our generated validation half) when every card has one, its standard
    error that of a mean of binomial proportions; else validation accuracy alone (the binomial
    sqrt(p (1 - p) / n): ~5 images of 6,000 at 99.5%)."""
    if all("selection" in c for c in cards):
        scores = {c["name"]: float(c["selection"]["score"]) for c in cards}
        top = max(cards, key=lambda c: scores[c["name"]])
        parts, images = top["selection"]["parts"], top["selection"].get("images", {})
        variance = sum(
            p * (1 - p) / int(images.get(k) or _validation_images(top)) for k, p in parts.items()
        )
        margin = math.sqrt(variance) / len(parts)
    else:
        scores = {c["name"]: float(c["val_accuracy"]) for c in cards}
        top = max(cards, key=lambda c: scores[c["name"]])
        p = scores[top["name"]]
        margin = math.sqrt(p * (1 - p) / _validation_images(top))
    best = scores[top["name"]]
    near = [c for c in cards if scores[c["name"]] >= best - margin]
    return str(min(near, key=lambda c: (c["parameters"], -scores[c["name"]]))["name"])


def _validation_images(card: dict[str, Any]) -> int:
    """The size of the MNIST validation split a card's figure comes from (a model trained on
    every image is judged by its twin's split: ship.adopt_twin)."""
    seen = card.get("validation_from") or card.get("data", {})
    return int(seen.get("validation") or 6000)


def default_name(directory: Path = MODELS_DIR) -> str:
    """The best shipped model: the card marked default, else default_choice."""
    cards = shipped_cards(directory)
    if not cards:
        raise ModelError(f"no shipped models in {directory}; train one and pass --model RUN_DIR")
    marked = [c for c in cards if c.get("default")]
    return str(marked[0]["name"]) if marked else default_choice(cards)


def verify(card: dict[str, Any], directory: Path) -> None:
    """Check every weight file named in the card against its sha256."""
    for filename, expected in card.get("sha256", {}).items():
        path = directory / filename
        if not path.exists():
            raise ModelError(f"{path}: file missing (named in the model card)")
        if hashlib.sha256(path.read_bytes()).hexdigest() != expected:
            raise ModelError(f"{path}: sha256 mismatch with the model card (corrupt or truncated)")


def resolve(model: str | os.PathLike[str] | None = None, directory: Path = MODELS_DIR) -> ModelRef:
    """A shipped model name (or None for the best one), or a run directory. A renamed model's
    old name (models_dir.ALIASES) still resolves, with a DeprecationWarning."""
    if model is None or str(model) == "":
        model = default_name(directory)
    path = Path(model)
    if path.is_dir() and (path / "config.json").exists():
        return _run_ref(path)
    if len(path.parts) > 1 or path.is_dir():  # a path, not a name: never a shipped model's
        raise ModelError(f"{model}: not a run directory (no config.json there), nor a model name")
    models = ModelsDir(directory)
    name = models.name(path.name.removesuffix(".json").removesuffix(".onnx"))
    if not models.card_file(name).exists():
        known = ", ".join(c["name"] for c in shipped_cards(directory)) or "none"
        raise ModelError(f"{model}: no such model (shipped: {known}; or give a run directory)")
    card = models.card(name)
    verify(card, directory)
    return ModelRef(name, models.onnx(name), card)


def _run_ref(run_dir: Path) -> ModelRef:
    """A run directory as a model: its exported graph (training writes model.onnx; an older run
    needs `digitrec export`). Resolving never imports torch."""
    from digitrec.runs import RunDir

    run = RunDir(run_dir)
    if not run.onnx.exists():
        if not run.weights.exists():
            raise ModelError(f"{run_dir}: no model.safetensors (did training finish?)")
        raise ModelError(f"{run_dir}: no model.onnx; run `digitrec export --model {run_dir}`")
    card: dict[str, Any] = run.metrics
    card.setdefault("name", run.name)
    return ModelRef(run.name, run.onnx, card, run_dir)
