"""`Dataset`: what every reader in digitrec.data gives (and the feedback store's accepted rows):
uint8 images (N, 28, 28), ink high on 0, and int64 labels (N,) or None."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from digitrec.errors import DataError


@dataclass(frozen=True)
class Dataset:
    images: np.ndarray  # (N, 28, 28) uint8, ink high
    labels: np.ndarray | None  # (N,) int64 in 0..9, or None for unlabelled data (Kaggle test.csv)
    source: str = ""

    def __post_init__(self) -> None:
        if self.images.ndim != 3 or self.images.shape[1:] != (28, 28):
            raise DataError(self.source, f"images must be N x 28 x 28, got {self.images.shape}")
        if self.labels is not None and len(self.labels) != len(self.images):
            raise DataError(self.source, f"{len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index: np.ndarray) -> Dataset:
        labels = None if self.labels is None else self.labels[index]
        return Dataset(self.images[index], labels, self.source)

    def class_counts(self) -> list[int]:
        if self.labels is None:
            return []
        return [int(n) for n in np.bincount(self.labels, minlength=10)]
