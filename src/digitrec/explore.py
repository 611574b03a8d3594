"""Exploration: summary.json and the figures a practitioner looks at first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from digitrec import data, plots
from digitrec.files import write_json


def summarize(splits: dict[str, data.Dataset]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, ds in splits.items():
        x = ds.images
        out[name] = {
            "images": len(ds),
            "shape": list(x.shape[1:]),
            "labelled": ds.labels is not None,
            "per_class": ds.class_counts(),
            "missing_values": 0,  # every reader rejects missing cells; counted for the record
            "pixel_mean": float(x.mean()),
            "pixel_std": float(x.std()),
            "pixel_min": int(x.min()),
            "pixel_max": int(x.max()),
            "fraction_zero_pixels": float((x == 0).mean()),
            "ink_pixels_per_image": float((x > 0).sum((1, 2)).mean()),
        }
    return out


def explore(path: str | None, output: Path, seed: int = 0) -> dict[str, Any]:
    """Write summary.json and PNG figures for a dataset (default: the bundled MNIST)."""
    if path is None:
        splits = {"train": data.load_mnist("train"), "test": data.load_mnist("test")}
    else:
        splits = {"data": data.load(path)}
    output.mkdir(parents=True, exist_ok=True)
    summary = summarize(splits)
    write_json(output / "summary.json", summary)
    first_name, first = next(iter(splits.items()))
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(first), size=min(50, len(first)), replace=False)
    titles = [str(first.labels[i]) if first.labels is not None else "?" for i in pick]
    plots.image_grid(
        first.images[pick],
        titles,
        output / "samples.png",
        suptitle=f"{first_name}: random samples with labels",
    )
    files = ["summary.json", "samples.png", "pixel_histogram.png"]
    if first.labels is not None:
        means = np.stack(
            [
                first.images[first.labels == d].mean(0)
                if (first.labels == d).any()
                else np.zeros((28, 28))
                for d in range(10)
            ]
        )
        plots.image_grid(
            means,
            [str(d) for d in range(10)],
            output / "mean_digits.png",
            suptitle="mean image per class",
        )
        plots.bar(
            first.class_counts(),
            output / "class_histogram.png",
            f"{first_name}: images per class",
            "digit",
            "images",
        )
        files += ["mean_digits.png", "class_histogram.png"]
    plots.histogram(
        first.images.ravel(),
        output / "pixel_histogram.png",
        "pixel intensities (log scale)",
        "value 0..255",
    )
    summary["files"] = [str(output / f) for f in files]
    return summary
