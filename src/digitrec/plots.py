"""Figures written as PNG files (matplotlib, no display)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

# Agg: figures go to files, no display needed. A notebook's inline backend is kept: training
# from a notebook (digitrec.fit) must not turn off the notebook's own figures.
if "inline" not in str(matplotlib.rcParams["backend"]).lower():
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from digitrec.files import atomic_write_bytes  # noqa: E402


def _save(fig: plt.Figure, path: Path) -> None:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def plot_curves(history: Sequence[dict[str, float]], path: Path) -> None:
    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(epochs, [h["loss"] for h in history], "o-", label="train")
    ax1.plot(epochs, [h["val_loss"] for h in history], "o-", label="validation")
    ax1.set(title="loss", xlabel="epoch")
    ax2.plot(epochs, [h["accuracy"] for h in history], "o-", label="train")
    ax2.plot(epochs, [h["val_accuracy"] for h in history], "o-", label="validation")
    ax2.set(title="accuracy", xlabel="epoch")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend()
    _save(fig, path)


def image_grid(
    images: np.ndarray, titles: Sequence[str], path: Path, columns: int = 10, suptitle: str = ""
) -> None:
    """A grid of 28x28 images with a title under each."""
    n = len(images)
    rows = max(1, -(-n // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 1.1, rows * 1.3))
    for ax in np.atleast_1d(axes).ravel():
        ax.axis("off")
    for ax, img, title in zip(np.atleast_1d(axes).ravel(), images, titles, strict=False):
        ax.imshow(img, cmap="gray_r" if img.max() > 0 else "gray", interpolation="nearest")
        ax.set_title(title, fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    _save(fig, path)


def bar(values: Sequence[float], path: Path, title: str, xlabel: str, ylabel: str) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(range(len(values)), values, color="#3566a8")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel, xticks=range(len(values)))
    for i, v in enumerate(values):
        ax.text(
            i,
            v,
            f"{v:,}" if isinstance(v, int) else f"{v:.3f}",
            ha="center",
            va="bottom",
            fontsize=7,
        )
    _save(fig, path)


def histogram(values: np.ndarray, path: Path, title: str, xlabel: str, log: bool = True) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(values, bins=64, color="#3566a8", log=log)
    ax.set(title=title, xlabel=xlabel, ylabel="count")
    _save(fig, path)


def confusion(matrix: np.ndarray, path: Path, title: str = "confusion matrix") -> None:
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    shown = np.log1p(matrix)
    ax.imshow(shown, cmap="Blues")
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            color = "white" if shown[i, j] > shown.max() * 0.6 else "black"
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7, color=color)
    ax.set(title=title, xlabel="predicted", ylabel="true", xticks=range(10), yticks=range(10))
    _save(fig, path)


def reliability(confidence: np.ndarray, correct: np.ndarray, path: Path, bins: int = 15) -> None:
    from digitrec.calibrate import confidence_bins

    found = confidence_bins(confidence, correct, bins)
    mids, accs = [conf for _, conf, _ in found], [acc for _, _, acc in found]
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], "--", color="grey")
    ax.plot(mids, accs, "o-")
    ax.set(title="reliability", xlabel="confidence", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1))
    _save(fig, path)
