"""Evaluation on the official 10,000 test images: accuracy, per-class figures, confusion matrix,
the most confident mistakes, calibration. Runs through ONNX Runtime, exactly as served."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from digitrec import data
from digitrec.calibrate import expected_calibration_error
from digitrec.errors import DataError
from digitrec.files import write_json
from digitrec.predictor import Predictor


@dataclass
class Report:
    model: str
    accuracy: float
    errors: int
    total: int
    ece: float
    per_class: dict[str, dict[str, float]]
    confusion: list[list[int]]
    mistakes: list[dict[str, Any]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    tta: bool = False  # test-time augmentation (predictor.TTA_ZOOMS)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "files"}


def evaluate(
    predictor: Predictor,
    dataset: data.Dataset | None = None,
    output: Path | None = None,
    gallery: int = 40,
    tta: bool = False,
    progress: Callable[[int], None] | None = None,
) -> Report:
    """Score `predictor` on `dataset` (default: the MNIST test split); write figures to `output`.
    With `tta`, each image's probabilities are averaged with those of zoomed copies.
    `progress(n)` after each n images answered (a progress bar)."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    dataset = dataset or data.load_mnist("test")
    if dataset.labels is None:
        raise DataError(dataset.source, "evaluation needs labels (this data has none)")
    labels = dataset.labels
    images = dataset.images.astype(np.float32) / 255
    probs = predictor.predict_array(images, tta=tta, progress=progress)
    predicted = probs.argmax(1)
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predicted, labels=list(range(10)), zero_division=0
    )
    matrix = confusion_matrix(labels, predicted, labels=list(range(10)))
    wrong = np.flatnonzero(predicted != labels)
    wrong = wrong[np.argsort(-probs[wrong].max(1))][:gallery]  # most confident mistakes first
    report = Report(
        tta=tta,
        model=predictor.name,
        accuracy=float((predicted == labels).mean()),
        errors=int((predicted != labels).sum()),
        total=len(labels),
        ece=expected_calibration_error(probs, labels),
        per_class={
            str(d): {
                "precision": float(precision[d]),
                "recall": float(recall[d]),
                "f1": float(f1[d]),
                "support": int(support[d]),
            }
            for d in range(10)
        },
        confusion=matrix.tolist(),
        mistakes=[
            {
                "index": int(i),
                "label": int(labels[i]),
                "predicted": int(predicted[i]),
                "confidence": float(probs[i].max()),
            }
            for i in wrong
        ],
    )
    if output is not None:
        from digitrec import plots

        output.mkdir(parents=True, exist_ok=True)
        plots.confusion(
            matrix,
            output / "confusion.png",
            f"{predictor.name}: {report.accuracy:.2%} on {report.total:,} images",
        )
        plots.image_grid(
            dataset.images[wrong],
            [f"{labels[i]}→{predicted[i]} {probs[i].max():.0%}" for i in wrong],
            output / "mistakes.png",
            suptitle="most confident mistakes (true→predicted)",
        )
        plots.bar(
            [float(f1[d]) for d in range(10)],
            output / "per_class.png",
            "F1 per class",
            "digit",
            "F1",
        )
        plots.reliability(probs.max(1), predicted == labels, output / "reliability.png")
        write_json(output / "report.json", report.to_dict())
        report.files = [
            str(output / n)
            for n in (
                "report.json",
                "confusion.png",
                "mistakes.png",
                "per_class.png",
                "reliability.png",
            )
        ]
    return report
