"""Kaggle "Digit Recognizer" submission: ImageId (from 1), Label."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from digitrec.data import Dataset
from digitrec.files import atomic_write_bytes
from digitrec.predictor import Predictor


def write_submission(
    predictor: Predictor,
    dataset: Dataset,
    output: Path,
    tta: bool = False,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Write the submission; `progress(n)` after each n images answered (a progress bar)."""
    # Kaggle's images are already MNIST-framed: no real-input preprocessing, just /255
    images = dataset.images.astype(np.float32) / 255
    probs = predictor.predict_array(images, tta=tta, progress=progress)
    labels = probs.argmax(1)
    lines = ["ImageId,Label", *(f"{i},{d}" for i, d in enumerate(labels, start=1))]
    atomic_write_bytes(output, ("\n".join(lines) + "\n").encode())
    return labels
