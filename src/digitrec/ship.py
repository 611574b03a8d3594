"""Ship a run into models/: NAME.onnx, NAME.safetensors and NAME.json (the model card)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from digitrec import registry
from digitrec.checkpoint import atomic_write_bytes, load_weights, save_weights, sha256, write_json
from digitrec.errors import ModelError
from digitrec.export import export_run


def ship(
    run_dir: Path, name: str, default: bool = False, directory: Path = registry.MODELS_DIR
) -> dict[str, Any]:
    if not (run_dir / "metrics.json").exists():
        raise ModelError(f"{run_dir}: no metrics.json (did training finish?)")
    config = json.loads((run_dir / "config.json").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    onnx = export_run(run_dir, check=True)
    member_dirs = sorted(p for p in run_dir.glob("member-*") if p.is_dir()) or [run_dir]
    weights: dict[str, Any] = {}
    for i, d in enumerate(member_dirs):
        weights.update(
            {f"member{i}.{k}": v for k, v in load_weights(d / "model.safetensors").items()}
        )
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(directory / f"{name}.onnx", onnx.read_bytes())
    save_weights(directory / f"{name}.safetensors", weights, {"members": str(len(member_dirs))})
    train_cfg = config["train"]
    card = {
        "name": name,
        "default": default,
        "architecture": metrics.get("model", train_cfg["model"]),  # an ensemble: "best+deotte"
        "members": len(member_dirs),
        "parameters": metrics["parameters"],
        "command": config.get("command", ""),
        "recipe": train_cfg.get("recipe", ""),
        "data": {
            "train": config["data"]["train"],
            "validation": config["data"]["validation"],
            "sha256": config["data"]["checksums"],
        },
        "val_accuracy": metrics["val_accuracy"],
        "test_accuracy": metrics["test_accuracy"],
        "calibration": {
            "method": "temperature scaling fit on the validation split",
            "temperature": metrics.get("temperature"),
            "test_ece_uncalibrated": metrics.get("test_ece"),
            "test_ece": metrics.get("test_ece_calibrated"),
        },
        "uncertain_below": 0.5,
        "train_seconds": metrics["train_seconds"],
        "hardware": config["environment"],
        "sha256": {
            f"{name}.onnx": sha256(directory / f"{name}.onnx"),
            f"{name}.safetensors": sha256(directory / f"{name}.safetensors"),
        },
        "date": dt.date.today().isoformat(),
        "input": "(N, 1, 28, 28) float32 in [0, 1], white ink on black, MNIST framing",
        "output": "(N, 10) calibrated probabilities",
    }
    if default:
        for other in directory.glob("*.json"):
            other_card = json.loads(other.read_text())
            if other_card.get("default") and other_card.get("name") != name:
                other_card["default"] = False
                write_json(other, other_card)
    write_json(directory / f"{name}.json", card)
    return card
