"""Calibration: temperature scaling fit on the validation split (Guo et al. 2017), and ECE.

The ECE itself is NumPy (evaluation runs on ONNX Runtime, without torch); torch is imported
only by the training-side helpers that take logits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


def confidence_bins(
    confidence: np.ndarray, correct: np.ndarray, bins: int = 15
) -> list[tuple[float, float, float]]:
    """Equal-width confidence bins (lo, hi]: (share of the answers, mean confidence, accuracy)
    of each bin that holds any. The ECE and the reliability figure both read these."""
    edges = np.linspace(0, 1, bins + 1)
    out = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = (confidence > lo) & (confidence <= hi)
        if sel.any():
            out.append(
                (float(sel.mean()), float(confidence[sel].mean()), float(correct[sel].mean()))
            )
    return out


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """|accuracy - confidence| averaged over confidence bins, weighted by the bins' sizes."""
    correct = (probs.argmax(1) == labels).astype(np.float64)
    return float(
        sum(w * abs(acc - conf) for w, conf, acc in confidence_bins(probs.max(1), correct, bins))
    )


def ece(logits: torch.Tensor, labels: torch.Tensor, bins: int = 15) -> float:
    """The ECE of softmax(logits) (N, 10) against labels (N,)."""
    probs = logits.float().softmax(1).cpu().numpy()
    return expected_calibration_error(probs, labels.cpu().numpy(), bins)


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The T > 0 minimising validation NLL of softmax(logits / T); a 1-D search, no gradients."""
    import torch
    import torch.nn.functional as F

    logits = logits.float()
    candidates = torch.exp(torch.linspace(-1.5, 1.5, 301))  # T from 0.22 to 4.5
    nll = torch.stack([F.cross_entropy(logits / t, labels) for t in candidates])
    return float(candidates[int(nll.argmin())])
