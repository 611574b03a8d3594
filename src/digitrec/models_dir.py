"""The models folder: what `ship` writes and every `--model NAME` reads. As RunDir owns a run
directory, ModelsDir owns models/: it names the files and is their only writer. No torch here
(the weights are written by safetensors only when a model is shipped).

    NAME.onnx          the graph: (N, 1, 28, 28) float [0, 1] -> (N, 10) calibrated probabilities
    NAME.safetensors   the weights as trained (an ensemble's as member0.*, member1.*, ...)
    NAME.json          the model card; "default": true on the one `--model` defaults to
    NAME.md            the card in the common format, rendered from NAME.json (modelcard.py)
    reader.onnx/.json  the sequence reader (training/sequence.py), a card with no NAME.md

A renamed model keeps its old name as an alias for one release: ALIASES.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from digitrec import modelcard
from digitrec.errors import ModelError
from digitrec.files import atomic_write_bytes, save_weights, sha256, write_json

log = logging.getLogger(__name__)

# Old name -> new name. An old name still loads its model, with a deprecation warning, until
# the release named here; a model shipped under the old name again is that model, no alias.
ALIASES = {"best-x2": "mnist-best"}
ALIASES_REMOVED_IN = "0.2.0"


def _default_path() -> Path:
    """DIGITREC_MODELS if set; else the repo's models/ in a source checkout (editable install:
    where `ship` writes); else the copy an installed wheel carries (digitrec/models)."""
    if os.environ.get("DIGITREC_MODELS"):
        return Path(os.environ["DIGITREC_MODELS"])
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").is_file() and (root / "models").is_dir():
        return root / "models"
    return Path(str(resources.files("digitrec") / "models"))


MODELS_DIR = _default_path()


@dataclass(frozen=True)
class ModelsDir:
    path: Path = MODELS_DIR

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    # the files
    def onnx(self, name: str) -> Path:
        return self.path / f"{name}.onnx"

    def weights(self, name: str) -> Path:
        return self.path / f"{name}.safetensors"

    def card_file(self, name: str) -> Path:
        return self.path / f"{name}.json"

    def markdown_file(self, name: str) -> Path:
        return self.path / f"{name}.md"

    # what they hold
    def name(self, name: str) -> str:
        """The current name of a model: an old name (ALIASES) warns once and gives the new one."""
        new = ALIASES.get(name)
        if new is None or self.card_file(name).exists() or not self.card_file(new).exists():
            return name
        message = (
            f"model name {name!r} is deprecated: it is now {new!r} "
            f"(the old name goes in {ALIASES_REMOVED_IN})"
        )
        warnings.warn(message, DeprecationWarning, stacklevel=3)
        log.warning("%s", message)  # the CLI's stderr line; the warning above is for scripts
        return new

    def card(self, name: str) -> dict[str, Any]:
        """NAME.json as written; a missing or unreadable card is a ModelError."""
        path = self.card_file(name)
        try:
            card = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ModelError(f"{path}: unreadable model card ({e})") from None
        if not isinstance(card, dict):
            raise ModelError(f"{path}: unreadable model card (not a JSON object)")
        return card

    def cards(self) -> list[dict[str, Any]]:
        """Every card in the folder, in name order (the sequence reader's too)."""
        return [self.card(p.stem) for p in sorted(self.path.glob("*.json"))]

    # writing
    def write_model(
        self,
        name: str,
        onnx: bytes,
        weights: dict[str, Any] | None = None,
        metadata: dict[str, str] | None = None,
    ) -> dict[str, str]:
        """Write NAME.onnx (and NAME.safetensors, given weights) atomically; returns their
        sha256 by file name, as the card records them."""
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.onnx(name), onnx)
        files = [self.onnx(name)]
        if weights is not None:
            save_weights(self.weights(name), weights, metadata)
            files.append(self.weights(name))
        return {f.name: sha256(f) for f in files}

    def write_card(self, card: dict[str, Any]) -> Path:
        """Write NAME.json and, for a digit classifier, NAME.md rendered from it."""
        path = self.card_file(card["name"])
        write_json(path, card)
        if card.get("kind") != "sequence-reader":
            self.write_markdown(card)
        return path

    def write_markdown(self, card: dict[str, Any]) -> Path:
        """Write NAME.md for a card (atomically), its opset read from NAME.onnx."""
        onnx = self.onnx(card["name"])
        opset = modelcard.onnx_opset(onnx) if onnx.exists() else None
        path = self.markdown_file(card["name"])
        atomic_write_bytes(path, modelcard.markdown(card, opset).encode())
        return path

    def set_default(self, name: str) -> None:
        """Make NAME the default model: its card marked, every other card unmarked."""
        for path in sorted(self.path.glob("*.json")):
            card = self.card(path.stem)
            marked = path.stem == name
            if bool(card.get("default")) != marked and (marked or "default" in card):
                card["default"] = marked
                write_json(path, card)
