"""Ship a run into models/: NAME.onnx, NAME.safetensors, NAME.json (the model card) and NAME.md
(the card in the common format, generated from the JSON card: modelcard.py)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np

from digitrec import data, modelcard, realworld, shipped
from digitrec.errors import ModelError
from digitrec.files import atomic_write_bytes, load_weights, save_weights, sha256, write_json
from digitrec.predictor import UNCERTAIN_BELOW
from digitrec.runs import RunDir
from digitrec.training.export import export_run, probabilities
from digitrec.training.loop import load_training_data

# An int8 graph may lose at most this much validation accuracy against its float model (6 of
# the 5,999 images of the usual split): more, and it is not shipped.
INT8_TOLERANCE = 0.001
PEN_FOLDS = "pen_folds.json"  # in a run directory: its recipe scored on pen writers it never saw


def int8_graph(
    onnx_bytes: bytes, train_images: np.ndarray, check: data.Dataset, float_accuracy: float
) -> tuple[bytes, dict]:
    """The run's graph in int8 (quantize.py), calibrated on images of its own training split.
    Kept only if its accuracy on `check` (the validation split) is within INT8_TOLERANCE of the
    float graph's; then the test set is scored, to report. Returns the graph, its accuracy on
    `check` and its test accuracy and ECE."""
    from digitrec.quantize import CALIBRATION_IMAGES, quantize_int8

    pick = np.random.default_rng(0).choice(len(train_images), CALIBRATION_IMAGES, replace=False)
    int8 = quantize_int8(onnx_bytes, train_images[np.sort(pick)])
    accuracy = accuracy_on(int8, check)
    if float_accuracy - accuracy > INT8_TOLERANCE:
        raise ModelError(
            f"the int8 graph loses {float_accuracy - accuracy:.2%} of validation accuracy "
            f"(more than {INT8_TOLERANCE:.1%}): not shipped"
        )
    return int8, {"val_accuracy": accuracy, **scored_on_test(int8)}


def accuracy_on(onnx_bytes: bytes, dataset: data.Dataset) -> float:
    return float((probabilities(onnx_bytes, dataset.images).argmax(1) == dataset.labels).mean())


def scored_on_test(onnx_bytes: bytes) -> dict[str, float]:
    """A graph's accuracy and calibration (ECE) on the test set: for the report only."""
    from digitrec.calibrate import expected_calibration_error

    test = data.load_mnist("test")
    assert test.labels is not None
    probs = probabilities(onnx_bytes, test.images)
    return {
        "test_accuracy": float((probs.argmax(1) == test.labels).mean()),
        "test_ece": expected_calibration_error(probs, test.labels),
    }


# A twin may differ from the run it vouches for only in these settings.
TWIN_MAY_DIFFER = ("val_fraction", "split_seed", "threads", "output")


def adopt_twin(run_dir: Path, twin_dir: Path) -> dict[str, Any]:
    """A run trained on all the training images (`--val-fraction 0`, as Deotte trained his
    final models) has no validation split to be calibrated or judged on. Its twin, the same
    settings and seed trained with the split held out, lends both: its temperature is written
    into the run's metrics.json, and its metrics are returned for the card. An ensemble's twin
    is an ensemble whose members are twins of its members, in order."""
    if not RunDir(twin_dir).metrics:
        raise ModelError(f"{twin_dir}: no metrics.json (not a finished run)")
    ours, twins = RunDir(run_dir).members, RunDir(twin_dir).members
    if len(ours) != len(twins):
        raise ModelError(
            f"{twin_dir}: not a twin of {run_dir}: {len(twins)} members (not {len(ours)})"
        )
    pairs = list(zip(ours, twins, strict=True))
    for mine, theirs in pairs:
        own, other = (dataclasses.asdict(d.config) for d in (mine, theirs))
        if own["val_fraction"] != 0:
            raise ModelError(f"{mine.path}: has its own validation split; ship it without --twin")
        if other["val_fraction"] == 0:
            raise ModelError(f"{theirs.path}: no validation split either (a twin holds it out)")
        differ = [f"{k} {other[k]} (not {own[k]})" for k in own
                  if k not in TWIN_MAY_DIFFER and own[k] != other[k]]  # fmt: skip
        if differ:
            raise ModelError(f"{theirs.path}: not a twin of {mine.path}: {', '.join(differ)}")
    for mine, theirs in pairs:
        metrics = mine.metrics
        metrics.update(temperature=theirs.metrics["temperature"], temperature_from=str(theirs.path))
        mine.write_metrics(metrics)
    return RunDir(twin_dir).metrics


def twin_card(twin_dir: Path) -> dict[str, Any]:
    """What the card says of the twin that lent the validation figure: how to retrain it."""
    config = RunDir(twin_dir).document
    return {"run": str(twin_dir), "command": config.get("command", ""), **config["data"]}


def init_source(spec: str, directory: Path) -> dict[str, Any]:
    """What a fine-tuned run started from (TrainConfig.init): the shipped model's weights file
    (its sha256, its card's command and date) or the run directory's weights."""
    name, _, member = spec.rpartition(":")
    card_file = directory / f"{name}.json"
    if name and member.isdigit() and card_file.exists():
        card = json.loads(card_file.read_text())
        weights = f"{name}.safetensors"
        return {
            "init": spec,
            "sha256": {weights: card.get("sha256", {}).get(weights, sha256(directory / weights))},
            "command": card.get("command", ""),
            "date": card.get("date", ""),
        }
    return {"init": spec, "sha256": {"model.safetensors": sha256(RunDir(Path(spec)).weights)}}


def ship(
    run_dir: Path,
    name: str,
    default: bool = False,
    directory: Path = shipped.MODELS_DIR,
    int8: bool = False,
    twin: Path | None = None,
) -> dict[str, Any]:
    """Copy a run into `directory`; with `int8`, its graph quantized (the weights file stays the
    float weights it was trained to, the card gives both graphs' figures). A run trained without
    a validation split needs its `twin` (adopt_twin): the card's validation figure is the twin's."""
    run = RunDir(run_dir)
    if not run.metrics:
        raise ModelError(f"{run_dir}: no metrics.json (did training finish?)")
    if twin is None and run.config.val_fraction == 0:
        raise ModelError(
            f"{run_dir}: trained without a validation split; give --twin RUN, the same settings "
            "trained with the split held out, to vouch for it"
        )
    twin_metrics = adopt_twin(run_dir, twin) if twin is not None else None
    config, metrics = run.document, run.metrics
    started_from = [init_source(m.config.init, directory) for m in run.members if m.config.init]
    onnx_bytes = export_run(run_dir, check=True).read_bytes()
    figures = {
        "val_accuracy": metrics["val_accuracy"],
        "test_accuracy": metrics["test_accuracy"],
        "test_ece": metrics.get("test_ece_calibrated"),
    }
    if twin_metrics is not None:  # the run's metrics were scored without the twin's temperature
        figures = {"val_accuracy": twin_metrics["val_accuracy"], **scored_on_test(onnx_bytes)}
    float_figures = figures
    if int8:
        train_split, check = load_training_data(run.config)
        float_accuracy = metrics["val_accuracy"]
        if twin is not None:
            # The twin's validation images are training images of this run: they check only
            # that the int8 graph keeps the float graph's answers, never what the card reports.
            check = load_training_data(RunDir(twin).config)[1]
            float_accuracy = accuracy_on(onnx_bytes, check)
        onnx_bytes, figures = int8_graph(onnx_bytes, train_split.images, check, float_accuracy)
        if twin_metrics is not None:
            figures["val_accuracy"] = twin_metrics["val_accuracy"]
    members = run.members
    weights: dict[str, Any] = {}
    for i, member in enumerate(members):
        weights.update({f"member{i}.{k}": v for k, v in load_weights(member.weights).items()})
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(directory / f"{name}.onnx", onnx_bytes)
    save_weights(directory / f"{name}.safetensors", weights, {"members": str(len(members))})
    train_cfg = config["train"]
    card = {
        "name": name,
        "default": default,
        "architecture": metrics.get("model", train_cfg["model"]),  # an ensemble: "best+deotte"
        "members": len(members),
        "parameters": metrics["parameters"],
        "command": config.get("command", ""),
        "ship_command": f"digitrec ship --model {run_dir} --name {name}"
        + (" --default" if default else "")
        + (" --int8" if int8 else "")
        + (f" --twin {twin}" if twin is not None else ""),
        "recipe": train_cfg.get("recipe", ""),
        "data": {
            "train": config["data"]["train"],
            "validation": config["data"]["validation"],
            "sha256": config["data"]["checksums"],
        },
        "precision": "int8" if int8 else "float32",
        **({"validation_from": twin_card(twin)} if twin is not None else {}),
        "val_accuracy": figures["val_accuracy"],
        "test_accuracy": figures["test_accuracy"],
        "calibration": {
            "method": "temperature scaling fit on the validation split"
            + (" (of the twin)" if twin is not None else ""),
            "temperature": metrics.get("temperature"),
            # an ensemble averages members calibrated one by one: there is no raw figure
            "test_ece_uncalibrated": metrics.get("test_ece") if len(members) == 1 else None,
            "test_ece": figures["test_ece"],
        },
        "uncertain_below": UNCERTAIN_BELOW,
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
    if started_from:  # fine-tuned: what it started from (read before any file is replaced)
        card["init_from"] = started_from
    card["pen_writers_trained"] = sorted(
        {w for m in members for w in (m.config.pen_writers if m.config.pen else ())}
    )
    if (run.path / PEN_FOLDS).exists():  # the recipe's writer-wise figures (benchmarks/pen.py)
        card["pen_folds"] = json.loads((run.path / PEN_FOLDS).read_text())
    if int8:
        from digitrec.quantize import DESCRIPTION

        card["float32"] = float_figures  # the trained weights' own graph, before quantization
        card["quantization"] = DESCRIPTION
    # the declared selection score (realworld.py): what the default is chosen on
    card["selection"] = realworld.card_selection(name, directory / f"{name}.onnx", card)
    if default:
        for other in directory.glob("*.json"):
            other_card = json.loads(other.read_text())
            if other_card.get("default") and other_card.get("name") != name:
                other_card["default"] = False
                write_json(other, other_card)
    write_json(directory / f"{name}.json", card)
    modelcard.write(directory, card)
    return card


def rescore(name: str, directory: Path = shipped.MODELS_DIR) -> dict[str, Any]:
    """Measure a shipped model's selection score again (after a preprocessing change, or for
    a card shipped before the score existed) and write it into its card, and NAME.md anew."""
    ref = shipped.resolve(name, directory)
    card = dict(ref.card)
    card["selection"] = realworld.card_selection(ref.name, ref.onnx, card)
    write_json(directory / f"{ref.name}.json", card)
    modelcard.write(directory, card)
    return card
