"""The run directory: what `train` writes and `export`, `ship`, `ensemble` and `--model RUN_DIR`
read. Its format is documented in docs/ARCHITECTURE.md ("Run directory"); this is its only
reader and writer. No torch here.

    config.json             {"train": TrainConfig, "command", "resumed_by", "environment", "data"}
                            (an ensemble adds "members": ["member-0", ...])
    history.json            one object per finished epoch
    checkpoint.safetensors  the last epoch's state, for --resume (model, EMA, optimizer, step)
    model.safetensors       the best weights on validation
    metrics.json            final figures (validation, temperature, test); written last
    curves.png, model.onnx  the learning curves; the exported graph (`digitrec export`)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from digitrec.config import TrainConfig, from_dict
from digitrec.errors import ModelError
from digitrec.files import write_json


def read_json(path: Path) -> Any:
    """A run's JSON file; one that is not JSON (cut short, edited by hand) is a ModelError
    naming it, not a traceback."""
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ModelError(f"{path}: not valid JSON ({e}); rerun or restore the file") from e


@dataclass(frozen=True)
class RunDir:
    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    # the files
    @property
    def config_file(self) -> Path:
        return self.path / "config.json"

    @property
    def weights(self) -> Path:
        return self.path / "model.safetensors"

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoint.safetensors"

    @property
    def onnx(self) -> Path:
        return self.path / "model.onnx"

    @property
    def curves(self) -> Path:
        return self.path / "curves.png"

    @property
    def name(self) -> str:
        return self.path.name

    # what they hold
    def exists(self) -> bool:
        return self.config_file.is_file()

    @property
    def document(self) -> dict[str, Any]:
        """config.json as written (the settings, the command, the environment, the data)."""
        if not self.exists():
            raise ModelError(f"{self.path}: not a run directory (no config.json)")
        return dict(read_json(self.config_file))

    @property
    def config(self) -> TrainConfig:
        return from_dict(self.document["train"])

    @property
    def command(self) -> str:
        return str(self.document.get("command", ""))

    @property
    def history(self) -> list[dict[str, float]]:
        path = self.path / "history.json"
        return list(read_json(path)) if path.exists() else []

    @property
    def metrics(self) -> dict[str, Any]:
        """metrics.json, or {} for a run that has not finished."""
        path = self.path / "metrics.json"
        return dict(read_json(path)) if path.exists() else {}

    @property
    def is_finished(self) -> bool:
        return (self.path / "metrics.json").exists() and (
            self.weights.exists() or bool(self.document.get("members"))
        )

    @property
    def members(self) -> list[RunDir]:
        """An ensemble's member runs (config.json "members"), or [self] for a single run."""
        names = self.document.get("members") if self.exists() else None
        if names:
            return [RunDir(self.path / n) for n in names]
        found = sorted(p for p in self.path.glob("member-*") if p.is_dir())  # unfinished ensembles
        return [RunDir(p) for p in found] or [self]

    @property
    def split_key(self) -> tuple[object, ...]:
        return self.config.split_key

    # writing
    def write_config(self, document: dict[str, Any]) -> None:
        write_json(self.config_file, document)

    def write_history(self, history: list[dict[str, float]]) -> None:
        write_json(self.path / "history.json", history)

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        write_json(self.path / "metrics.json", metrics)
