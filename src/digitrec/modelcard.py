"""A shipped model's card in the common format: `models/NAME.md`, YAML front matter in the
Hugging Face model-card style (license, datasets, metrics, model-index) and sections for
intended use, limitations, training, the ONNX contract and checksums.

Generated from the JSON card (`models/NAME.json`) alone, plus the ONNX opset read from the
graph when the `onnx` package is installed; never edited by hand. `markdown` renders it
section by section (SECTIONS, one function each, in order) from a `Card`, the JSON card's view;
models_dir.ModelsDir writes it (for `ship`, `ship.rescore` and `tools/rescore_models.py`), and a
test checks every shipped card still matches what `markdown` makes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The selection parts (realworld.selection_score) as the card names them, with their data:
# (key in card["selection"]["parts"], dataset name, dataset type, split, license, short name).
SETS = (
    ("semeion", "Semeion Handwritten Digit (dev half)", "semeion", "dev", "CC BY 4.0", "Semeion"),
    (
        "mfeat",
        "Multiple Features, map numerals (dev half)",
        "mfeat-pix",
        "dev",
        "CC BY 4.0",
        "map numerals",
    ),
    (
        "generated_val",
        "digitrec generated real-world set",
        "digitrec-realworld",
        "val",
        "MIT",
        "generated val",
    ),
)

PEN_PARTS = (  # the selection's real pen-writer parts (realworld.pen_parts), as the card names them
    ("pen_canvases", "real pen writers' canvases, writers not trained on"),
    ("pen_numbers", "real pen writers' numbers (3-6 digits), exact"),
)

# The styles the shipped models still misread most, measured on the real dev halves
# (BENCHMARKS.md, "Real handwriting from writers outside MNIST").
FAILING_STYLES = (
    "closed 4s (the map numerals' style) read as 6",
    "the flagged European 1 read as 7",
    "loopy 9s read as 3 or 8",
    "open 4s read as 6 or 9",
)


def onnx_opset(path: Path) -> int | None:
    """The default-domain opset the graph imports; None when the onnx package is missing."""
    try:
        import onnx
    except ImportError:
        return None
    model = onnx.load(str(path), load_external_data=False)
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def _scalar(value: Any) -> str:
    """A YAML scalar: JSON's forms (strings double-quoted, null, true/false) are valid YAML."""
    if isinstance(value, float):
        return repr(round(value, 6))
    return json.dumps(value)


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else "n/a"


def _pct(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}%}"


def _metric(kind: str, value: float, name: str) -> list[str]:
    return [
        f"      - type: {kind}",
        f"        value: {_scalar(value)}",
        f"        name: {_scalar(name)}",
    ]


def _result(dataset: str, kind: str, split: str, metrics: list[list[str]]) -> list[str]:
    lines = [
        "  - task:",
        "      type: image-classification",
        "      name: Handwritten digit classification",
        "    dataset:",
        f"      name: {_scalar(dataset)}",
        f"      type: {_scalar(kind)}",
        f"      split: {_scalar(split)}",
        "    metrics:",
    ]
    for m in metrics:
        lines += m
    return lines


# The YAML front matter's fixed lines, before and after the precision tag.
YAML_TAGS = """\
---
license: mit
library_name: onnx
pipeline_tag: image-classification
tags:
  - image-classification
  - handwritten-digits
  - mnist
  - onnx""".splitlines()
YAML_DATA = """\
datasets:
  - mnist
dataset_licenses:
  mnist: "CC BY-SA 3.0"
  semeion: "CC BY 4.0"
  mfeat-pix: "CC BY 4.0"
metrics:
  - accuracy
  - expected_calibration_error
  - null_share
model-index:""".splitlines()
SELECTION = "digitrec selection (MNIST val, Semeion, map numerals, generated val)"


def front_matter(card: dict[str, Any]) -> list[str]:
    """YAML in the Hugging Face model-card style: tags, datasets, metrics, the model-index."""
    lines = [*YAML_TAGS, f"  - {card.get('precision', 'float32')}", *YAML_DATA]
    lines += [f"  - name: {_scalar(card['name'])}", "    results:"]
    for result in _model_index(Card(card)):
        lines += ["  " + line for line in result]
    return [*lines, "---"]


def _model_index(c: Card) -> list[list[str]]:
    card, calibration = c.card, c.calibration
    test = [_metric("accuracy", card["test_accuracy"], "MNIST test accuracy")]
    if calibration.get("test_ece") is not None:
        ece = calibration["test_ece"]
        test.append(_metric("expected_calibration_error", ece, "MNIST test ECE"))
    results = [_result("MNIST", "mnist", "test", test)]
    if card.get("val_accuracy") is not None:
        val = _metric("accuracy", card["val_accuracy"], "MNIST validation accuracy" + c.twin)
        results.append(_result("MNIST", "mnist", "validation", [val]))
    for key, dataset, kind, split, _, _ in SETS:
        if key in c.parts:
            metrics = [_metric("accuracy", c.parts[key], f"{dataset} accuracy")]
            if key in c.null_share:
                metrics.append(_metric("null_share", c.null_share[key], f"{dataset} null share"))
            results.append(_result(dataset, kind, split, metrics))
    if "score" in c.selection:
        score = _metric("selection_score", c.selection["score"], "selection score (mean)")
        results.append(_result(SELECTION, "digitrec-selection", "val", [score]))
    return results


@dataclass(frozen=True)
class Card:
    """What the sections read: a JSON card, its optional parts filled in, and the opset."""

    card: dict[str, Any]
    opset: int | None = None

    @property
    def selection(self) -> dict[str, Any]:
        return dict(self.card.get("selection") or {})

    @property
    def parts(self) -> dict[str, float]:
        return dict(self.selection.get("parts", {}))

    @property
    def null_share(self) -> dict[str, float]:
        return dict(self.selection.get("null_share", {}))

    @property
    def calibration(self) -> dict[str, Any]:
        return dict(self.card.get("calibration", {}))

    @property
    def test(self) -> str:
        return _pct(self.card["test_accuracy"])

    @property
    def twin(self) -> str:
        return " (of the twin)" if "validation_from" in self.card else ""


def markdown(card: dict[str, Any], opset: int | None = None) -> str:
    """The Markdown card of a JSON model card; `opset` as `onnx_opset` reads it from the graph."""
    view = Card(card, opset)
    out = front_matter(card)
    for section in SECTIONS:
        out += section(view)
    return "\n".join(out)


def _title(c: Card) -> list[str]:
    card, name = c.card, c.card["name"]
    members = card.get("members", 1)
    shape = f"an ensemble of {members} `{card['architecture']}` networks (probabilities averaged)"
    if members == 1:
        shape = f"a `{card['architecture']}` network"
    return [
        "",
        f"# digitrec `{name}`",
        "",
        "<!-- Generated from "
        f"{name}.json by digitrec.modelcard (`python tools/rescore_models.py --cards`): "
        "do not edit by hand. -->",
        "",
        f"Handwritten digit recognition: {shape}, {card['parameters']:,} parameters, "
        f"{card.get('precision', 'float32')} ONNX graph, trained on MNIST with the "
        f"`{card.get('recipe') or card['architecture']}` recipe. "
        f"MNIST test accuracy {c.test}, selection score "
        f"{c.selection.get('score', 'n/a')}. Card date {card.get('date', 'n/a')}.",
    ]


def _intended_use(c: Card) -> list[str]:
    return [
        "",
        "## Intended use",
        "",
        "- Reading one handwritten digit per image (`digitrec predict`, `POST /api/v1/predict`) "
        "or a written number, its digits side by side (`digitrec read`, `POST /api/v1/read`): "
        "digits drawn on a canvas or a phone, scanned or photographed forms, MNIST-style data "
        "(Kaggle's Digit Recognizer).",
        "- Teaching and experiments: the card, the training command and the data checksums "
        "below retrain it.",
        f"- An answer under {c.card.get('uncertain_below', 0.5)} confidence is given as "
        "`digit: null` (uncertain), and an image with no ink as `digit: null` (empty): "
        "never a guess.",
        "- Not for letters, symbols or other scripts' numerals, and not for decisions about "
        "people without a person checking the answer.",
    ]


def _data(c: Card) -> list[str]:
    card, data = c.card, c.card.get("data", {})
    out = [
        "",
        "## Data",
        "",
        "| data | use | images | license |",
        "|---|---|---|---|",
        f"| MNIST training images | training | {_count(data.get('train'))} | CC BY-SA 3.0 |",
    ]
    if data.get("validation"):
        out.append(
            f"| MNIST validation split (carved from the training images) | selection, "
            f"calibration | {_count(data['validation'])} | CC BY-SA 3.0 |"
        )
    elif "validation_from" in card:
        twin = card["validation_from"]
        out.append(
            f"| MNIST validation split of the twin run (`{twin['run']}`) | selection, "
            f"calibration | {_count(twin.get('validation'))} | CC BY-SA 3.0 |"
        )
    out.append("| MNIST test images | the final report only | 10,000 | CC BY-SA 3.0 |")
    images = c.selection.get("images", {})
    for key, dataset, _, split, license_, _ in SETS:
        if key in c.parts:
            out.append(
                f"| {dataset} | selection ({split}), never training | "
                f"{_count(images.get(key))} | {license_} |"
            )
    return [
        *out,
        "",
        "The real dev sets are written by people outside MNIST (data/real/README.md); the "
        "generated set is the project's own (canvas drawings, handwriting fonts, paper photos, "
        "inverted images, written numbers).",
    ]


def _results(c: Card) -> list[str]:
    card, calibration, parts = c.card, c.calibration, c.parts
    out = ["", "## Results", "", "| measure | value |", "|---|---|"]
    out.append(f"| MNIST test accuracy (report only) | {c.test} |")
    if card.get("val_accuracy") is not None:
        out.append(f"| MNIST validation accuracy{c.twin} | {_pct(card['val_accuracy'])} |")
    if calibration.get("test_ece") is not None:
        out.append(f"| MNIST test ECE, calibrated | {calibration['test_ece']:.4f} |")
    if calibration.get("test_ece_uncalibrated") is not None:
        out.append(f"| MNIST test ECE, uncalibrated | {calibration['test_ece_uncalibrated']:.4f} |")
    for key, _, _, _, _, short in SETS:
        if key in parts:
            share = f", null share {_pct(c.null_share[key], 1)}" if key in c.null_share else ""
            out.append(f"| {short} accuracy | {_pct(parts[key], 1)}{share} |")
    out += [f"| {short} | {_pct(parts[key], 1)} |" for key, short in PEN_PARTS if key in parts]
    if "score" in c.selection:
        complete = "" if c.selection.get("complete", True) else " (incomplete: a part is missing)"
        pen = ", real pen writers' canvases and numbers" if "pen_canvases" in parts else ""
        out.append(
            f"| selection score: mean of MNIST validation, Semeion, map numerals, generated "
            f"val{pen} | {c.selection['score']}{complete} |"
        )
    if "float32" in card:
        out.append(
            f"| float32 graph before quantization: MNIST test accuracy | "
            f"{_pct(card['float32'].get('test_accuracy'))} |"
        )
    return [
        *out,
        "",
        "A null share is the fraction of images holding a digit that the model answered "
        "`empty` or `uncertain`; they count as wrong.",
    ]


def _limitations(c: Card) -> list[str]:
    card = c.card
    styles = "--styles" in card.get("command", "")
    trained = (
        "- Trained on MNIST alone"
        + (" (and copies of its digits rendered in other styles and captures, `--styles`)"
           if styles else "")
        + (" and real pen writers' digits drawn as canvases (`--pen`)"
           if card.get("pen_writers_trained") else "")
        + ": digits written by American census staff and students, centred in a 20x20 box. "
        "Other people's handwriting reads worse: "
    )  # fmt: skip
    real = [f"{short} {_pct(c.parts[k], 1)}" for k, _, _, _, _, short in SETS[:2] if k in c.parts]
    if real:
        trained += ", ".join(real) + " on the real dev sets, against MNIST's " + c.test + "."
    else:
        trained += "the real dev sets were not scored for this card."
    out = [
        "",
        "## Limitations",
        "",
        trained,
        '- Styles that still fail most on the real dev sets (BENCHMARKS.md, "Real handwriting '
        'from writers outside MNIST"): ' + "; ".join(FAILING_STYLES) + ".",
        "- One digit per image for `predict`; `read` splits a number at gaps between digits, "
        "so digits that touch or overlap may be read as one.",
        "- Input goes through digitrec's preprocessing (`digitrec.vision.preprocess`): feeding the "
        "graph raw pixels that are not MNIST-framed gives worse answers.",
    ]
    if card.get("precision") == "int8":
        out.append(f"- Quantized: {card.get('quantization', 'int8')}.")
    return out


def _training(c: Card) -> list[str]:
    card, calibration = c.card, c.calibration
    out = ["", "## Training", "", "```", card.get("command", ""), "```", ""]
    if card.get("ship_command"):
        out += ["Shipped with:", "", "```", card["ship_command"], "```", ""]
    out += _pen_section(card)
    if "validation_from" in card:
        out += [
            "Trained on every training image; its validation figure and temperature come from "
            "its twin, the same settings with the validation split held out:",
            "",
            "```",
            card["validation_from"].get("command", ""),
            "```",
            "",
        ]
    hw = ", ".join(f"{k} {v}" for k, v in card.get("hardware", {}).items() if v is not None)
    temperature = calibration.get("temperature")
    return [
        *out,
        f"Training time {card.get('train_seconds', 0):,.0f} s on: {hw}.",
        "",
        f"Calibration: {calibration.get('method', 'n/a')}"
        + (f", temperature {temperature:.4f}." if temperature is not None else "."),
    ]


def _onnx_graph(c: Card) -> list[str]:
    card, name = c.card, c.card["name"]
    return [
        "",
        "## ONNX graph: input and output",
        "",
        f"- File: `{name}.onnx` ({card.get('precision', 'float32')})"
        + (f", ONNX opset {c.opset}." if c.opset is not None else "."),
        f"- Input: {card.get('input', 'n/a')}.",
        f"- Output: {card.get('output', 'n/a')}.",
        f"- Weights as trained: `{name}.safetensors`.",
    ]


def _checksums(c: Card) -> list[str]:
    return [
        "",
        "## Checksums (sha256)",
        "",
        "| file | sha256 |",
        "|---|---|",
        *(f"| `{f}` | `{h}` |" for f, h in c.card.get("sha256", {}).items()),
        *(f"| MNIST `{f}` | `{h}` |" for f, h in c.card.get("data", {}).get("sha256", {}).items()),
        "",
        "Loading checks the model files' sha256 against the JSON card.",
    ]


def _license(c: Card) -> list[str]:
    return [
        "",
        "## License",
        "",
        "The model and digitrec's code: MIT. Trained on MNIST (CC BY-SA 3.0); selected on "
        "Semeion and the map numerals (CC BY 4.0, UCI Machine Learning Repository).",
        "",
    ]


# The card below its front matter, section by section, in order.
SECTIONS: tuple[Callable[[Card], list[str]], ...] = (
    _title,
    _intended_use,
    _data,
    _results,
    _limitations,
    _training,
    _onnx_graph,
    _checksums,
    _license,
)


def _pen_section(card: dict[str, Any]) -> list[str]:
    """Real pen writers: which it trained on, what it started from, its writer-wise folds."""
    out = []
    for source in card.get("init_from", []):
        sha = ", ".join(f"{k} {v[:12]}" for k, v in source.get("sha256", {}).items())
        out += [f"Fine-tuned from `{source['init']}` ({sha}; dated {source.get('date', 'n/a')}), "
                "trained by:", "", "```", source.get("command", ""), "```", ""]  # fmt: skip
    if card.get("pen_writers_trained"):
        writers = ", ".join(map(str, card["pen_writers_trained"]))
        out += [f"Real pen writers trained on (data/real/pendigits): {writers}.", ""]
    folds = card.get("pen_folds")
    if folds:
        per = ", ".join(
            f"{w}: {_pct(v['accuracy'], 1)}" for w, v in sorted(folds["writers"].items())
        )
        out += [
            "Its recipe scored writer by writer, each writer by a fold model that never saw it "
            f"({folds['date']}, {folds['cpu']}, `{folds['command']}`): canvases "
            f"{_pct(folds['canvases'], 2)} ({folds['images']:,} drawings; null "
            f"{_pct(folds['null'], 1)}; per writer {per}); numbers of 3-6 digits "
            f"{_pct(folds['numbers'], 1)} exact, low-resolution captures "
            f"{_pct(folds['low_resolution'], 1)}.",
            "",
        ]
    return out
