"""Kaggle "Digit Recognizer" submission: ImageId (from 1), Label."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from digitrec.data import Dataset
from digitrec.files import atomic_write_bytes
from digitrec.predictor import Predictor


def write_submission(
    predictor: Predictor, dataset: Dataset, output: Path, tta: bool = False
) -> np.ndarray:
    # Kaggle's images are already MNIST-framed: no real-input preprocessing, just /255
    probs = predictor.predict_array(dataset.images.astype(np.float32) / 255, tta=tta)
    labels = probs.argmax(1)
    lines = ["ImageId,Label", *(f"{i},{d}" for i, d in enumerate(labels, start=1))]
    atomic_write_bytes(output, ("\n".join(lines) + "\n").encode())
    return labels
