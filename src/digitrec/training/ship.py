"""Ship a run into models/: NAME.onnx, NAME.safetensors, NAME.json (the model card) and NAME.md
(the card in the common format, generated from the JSON card: modelcard.py). The graph and its
figures come from `shipped_graph`, the JSON card from `model_card`; models_dir.ModelsDir writes
every file."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from digitrec import data, realworld, shipped
from digitrec.errors import ModelError
from digitrec.files import load_weights, sha256
from digitrec.models_dir import ModelsDir
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
    models = ModelsDir(directory)
    name, _, member = spec.rpartition(":")
    name = models.name(name) if name and member.isdigit() else ""
    if name and models.card_file(name).exists():
        card = models.card(name)
        weights = models.weights(name)
        return {
            "init": spec,
            "sha256": {weights.name: card.get("sha256", {}).get(weights.name, sha256(weights))},
            "command": card.get("command", ""),
            "date": card.get("date", ""),
        }
    return {"init": spec, "sha256": {"model.safetensors": sha256(RunDir(Path(spec)).weights)}}


@dataclass(frozen=True)
class Shipping:
    """How a run is shipped (`digitrec ship`'s options), as its card records them."""

    name: str
    default: bool = False
    int8: bool = False
    twin: Path | None = None

    def command(self, run_dir: Path) -> str:
        return (
            f"digitrec ship --model {run_dir} --name {self.name}"
            + (" --default" if self.default else "")
            + (" --int8" if self.int8 else "")
            + (f" --twin {self.twin}" if self.twin is not None else "")
        )


@dataclass(frozen=True)
class Graph:
    """The graph to ship and its figures: `figures` as the card reports them (val_accuracy,
    test_accuracy, test_ece), `float32` the float graph's own when the graph is int8."""

    onnx: bytes
    figures: dict[str, Any]
    float32: dict[str, Any] | None = None


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
    run, how, models = RunDir(run_dir), Shipping(name, default, int8, twin), ModelsDir(directory)
    if not run.metrics:
        raise ModelError(f"{run_dir}: no metrics.json (did training finish?)")
    if twin is None and run.config.val_fraction == 0:
        raise ModelError(
            f"{run_dir}: trained without a validation split; give --twin RUN, the same settings "
            "trained with the split held out, to vouch for it"
        )
    twin_metrics = adopt_twin(run_dir, twin) if twin is not None else None
    # fine-tuned: what it started from, read before any file is replaced
    started_from = [init_source(m.config.init, directory) for m in run.members if m.config.init]
    graph = shipped_graph(run, how, twin_metrics)
    files = models.write_model(
        name, graph.onnx, member_weights(run), {"members": str(len(run.members))}
    )
    card = model_card(run, how, graph, files, started_from)
    # the declared selection score (realworld.py): what the default is chosen on
    card["selection"] = realworld.card_selection(name, models.onnx(name), card)
    models.write_card(card)
    if default:
        models.set_default(name)
    return card


def shipped_graph(run: RunDir, how: Shipping, twin_metrics: dict[str, Any] | None) -> Graph:
    """The run's graph, exported and checked, in int8 if asked, with the figures its card gives."""
    metrics = run.metrics
    onnx_bytes = export_run(run.path, check=True).read_bytes()
    figures = {
        "val_accuracy": metrics["val_accuracy"],
        "test_accuracy": metrics["test_accuracy"],
        "test_ece": metrics.get("test_ece_calibrated"),
    }
    if twin_metrics is not None:  # the run's metrics were scored without the twin's temperature
        figures = {"val_accuracy": twin_metrics["val_accuracy"], **scored_on_test(onnx_bytes)}
    if not how.int8:
        return Graph(onnx_bytes, figures)
    train_split, check = load_training_data(run.config)
    float_accuracy = metrics["val_accuracy"]
    if how.twin is not None:
        # The twin's validation images are training images of this run: they check only
        # that the int8 graph keeps the float graph's answers, never what the card reports.
        check = load_training_data(RunDir(how.twin).config)[1]
        float_accuracy = accuracy_on(onnx_bytes, check)
    int8_bytes, int8_figures = int8_graph(onnx_bytes, train_split.images, check, float_accuracy)
    if twin_metrics is not None:
        int8_figures["val_accuracy"] = twin_metrics["val_accuracy"]
    return Graph(int8_bytes, int8_figures, figures)


def member_weights(run: RunDir) -> dict[str, Any]:
    """Every member's weights in one file, as member0.*, member1.*, ... (a single run: member0)."""
    weights: dict[str, Any] = {}
    for i, member in enumerate(run.members):
        weights.update({f"member{i}.{k}": v for k, v in load_weights(member.weights).items()})
    return weights


def model_card(
    run: RunDir,
    how: Shipping,
    graph: Graph,
    files: dict[str, str],
    started_from: list[dict[str, Any]],
) -> dict[str, Any]:
    """The JSON card (DESIGN.md, "Model card") of a run shipped `how`, from the run's config and
    metrics, its graph's figures and its files' sha256; the selection score is added by `ship`."""
    config, metrics, members = run.document, run.metrics, run.members
    train_cfg, figures = config["train"], graph.figures
    card = {
        "name": how.name,
        "default": how.default,
        "architecture": metrics.get("model", train_cfg["model"]),  # an ensemble: "best+deotte"
        "members": len(members),
        "parameters": metrics["parameters"],
        "command": config.get("command", ""),
        "ship_command": how.command(run.path),
        "recipe": train_cfg.get("recipe", ""),
        "data": {
            "train": config["data"]["train"],
            "validation": config["data"]["validation"],
            "sha256": config["data"]["checksums"],
        },
        "precision": "int8" if how.int8 else "float32",
        **({"validation_from": twin_card(how.twin)} if how.twin is not None else {}),
        "val_accuracy": figures["val_accuracy"],
        "test_accuracy": figures["test_accuracy"],
        "calibration": calibration(metrics, figures, len(members), how.twin is not None),
        "uncertain_below": UNCERTAIN_BELOW,
        "train_seconds": metrics["train_seconds"],
        "hardware": config["environment"],
        "sha256": files,
        "date": dt.date.today().isoformat(),
        "input": "(N, 1, 28, 28) float32 in [0, 1], white ink on black, MNIST framing",
        "output": "(N, 10) calibrated probabilities",
    }
    return {**card, **provenance(run, graph, started_from)}


def provenance(run: RunDir, graph: Graph, started_from: list[dict[str, Any]]) -> dict[str, Any]:
    """The card's last fields: what a fine-tuned run started from, the real pen writers it
    trained on and its recipe's writer-wise figures, and an int8 graph's float figures."""
    card: dict[str, Any] = {"init_from": started_from} if started_from else {}
    card["pen_writers_trained"] = sorted(
        {w for m in run.members for w in (m.config.pen_writers if m.config.pen else ())}
    )
    if (run.path / PEN_FOLDS).exists():  # the recipe's writer-wise figures (benchmarks/pen.py)
        card["pen_folds"] = json.loads((run.path / PEN_FOLDS).read_text())
    if graph.float32 is not None:
        from digitrec.quantize import DESCRIPTION

        card["float32"] = graph.float32  # the trained weights' own graph, before quantization
        card["quantization"] = DESCRIPTION
    return card


def calibration(
    metrics: dict[str, Any], figures: dict[str, Any], members: int, twin: bool
) -> dict[str, Any]:
    return {
        "method": "temperature scaling fit on the validation split"
        + (" (of the twin)" if twin else ""),
        "temperature": metrics.get("temperature"),
        # an ensemble averages members calibrated one by one: there is no raw figure
        "test_ece_uncalibrated": metrics.get("test_ece") if members == 1 else None,
        "test_ece": figures["test_ece"],
    }


def rescore(name: str, directory: Path = shipped.MODELS_DIR) -> dict[str, Any]:
    """Measure a shipped model's selection score again (after a preprocessing change, or for
    a card shipped before the score existed) and write it into its card, and NAME.md anew."""
    ref = shipped.resolve(name, directory)
    card = dict(ref.card)
    card["selection"] = realworld.card_selection(ref.name, ref.onnx, card)
    ModelsDir(directory).write_card(card)
    return card
