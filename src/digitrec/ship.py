"""Ship a run into models/: NAME.onnx, NAME.safetensors and NAME.json (the model card)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np

from digitrec import data, registry
from digitrec.checkpoint import atomic_write_bytes, load_weights, save_weights, sha256, write_json
from digitrec.errors import ModelError
from digitrec.export import export_run, probabilities
from digitrec.train import load_training_data, saved_config

# An int8 graph may lose at most this much validation accuracy against its float model (6 of
# the 5,999 images of the usual split): more, and it is not shipped.
INT8_TOLERANCE = 0.001


def int8_graph(onnx_bytes: bytes, run_dir: Path, float_val: float) -> tuple[bytes, dict]:
    """The run's graph in int8 (quantize.py), calibrated on images of its own training split.
    Kept only if its validation accuracy is within INT8_TOLERANCE of the float graph's; then the
    test set is scored, to report. Returns the graph and its val/test accuracy and test ECE."""
    from digitrec.calibrate import expected_calibration_error
    from digitrec.quantize import CALIBRATION_IMAGES, quantize_int8

    train, val = load_training_data(saved_config(run_dir))
    pick = np.random.default_rng(0).choice(len(train), CALIBRATION_IMAGES, replace=False)
    int8 = quantize_int8(onnx_bytes, train.images[np.sort(pick)])
    val_accuracy = float((probabilities(int8, val.images).argmax(1) == val.labels).mean())
    if float_val - val_accuracy > INT8_TOLERANCE:
        raise ModelError(
            f"the int8 graph loses {float_val - val_accuracy:.2%} of validation accuracy "
            f"(more than {INT8_TOLERANCE:.1%}): not shipped"
        )
    test = data.load_mnist("test")
    test_probs = probabilities(int8, test.images)
    assert test.labels is not None
    return int8, {
        "val_accuracy": val_accuracy,
        "test_accuracy": float((test_probs.argmax(1) == test.labels).mean()),
        "test_ece": expected_calibration_error(test_probs, test.labels),
    }


def ship(
    run_dir: Path,
    name: str,
    default: bool = False,
    directory: Path = registry.MODELS_DIR,
    int8: bool = False,
) -> dict[str, Any]:
    """Copy a run into `directory`; with `int8`, its graph quantized (the weights file stays the
    float weights it was trained to, the card gives both graphs' figures)."""
    if not (run_dir / "metrics.json").exists():
        raise ModelError(f"{run_dir}: no metrics.json (did training finish?)")
    config = json.loads((run_dir / "config.json").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    onnx_bytes = export_run(run_dir, check=True).read_bytes()
    figures = {
        "val_accuracy": metrics["val_accuracy"],
        "test_accuracy": metrics["test_accuracy"],
        "test_ece": metrics.get("test_ece_calibrated"),
    }
    float_figures = figures
    if int8:
        onnx_bytes, figures = int8_graph(onnx_bytes, run_dir, metrics["val_accuracy"])
    member_dirs = sorted(p for p in run_dir.glob("member-*") if p.is_dir()) or [run_dir]
    weights: dict[str, Any] = {}
    for i, d in enumerate(member_dirs):
        weights.update(
            {f"member{i}.{k}": v for k, v in load_weights(d / "model.safetensors").items()}
        )
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(directory / f"{name}.onnx", onnx_bytes)
    save_weights(directory / f"{name}.safetensors", weights, {"members": str(len(member_dirs))})
    train_cfg = config["train"]
    card = {
        "name": name,
        "default": default,
        "architecture": metrics.get("model", train_cfg["model"]),  # an ensemble: "best+deotte"
        "members": len(member_dirs),
        "parameters": metrics["parameters"],
        "command": config.get("command", ""),
        "ship_command": f"digitrec ship --model {run_dir} --name {name}"
        + (" --default" if default else "")
        + (" --int8" if int8 else ""),
        "recipe": train_cfg.get("recipe", ""),
        "data": {
            "train": config["data"]["train"],
            "validation": config["data"]["validation"],
            "sha256": config["data"]["checksums"],
        },
        "precision": "int8" if int8 else "float32",
        "val_accuracy": figures["val_accuracy"],
        "test_accuracy": figures["test_accuracy"],
        "calibration": {
            "method": "temperature scaling fit on the validation split",
            "temperature": metrics.get("temperature"),
            "test_ece_uncalibrated": metrics.get("test_ece"),
            "test_ece": figures["test_ece"],
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
    if int8:
        from digitrec.quantize import DESCRIPTION

        card["float32"] = float_figures  # the trained weights' own graph, before quantization
        card["quantization"] = DESCRIPTION
    if default:
        for other in directory.glob("*.json"):
            other_card = json.loads(other.read_text())
            if other_card.get("default") and other_card.get("name") != name:
                other_card["default"] = False
                write_json(other, other_card)
    write_json(directory / f"{name}.json", card)
    return card
