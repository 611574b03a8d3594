"""Calibration: temperature scaling fit on the validation split (Guo et al. 2017), and ECE."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def ece(logits: torch.Tensor, labels: torch.Tensor, bins: int = 15) -> float:
    """Expected calibration error: |accuracy - confidence| averaged over confidence bins."""
    probs = F.softmax(logits.float(), dim=1)
    confidence, predicted = probs.max(1)
    correct = (predicted == labels).float()
    edges = torch.linspace(0, 1, bins + 1)
    total = torch.zeros(())
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        in_bin = (confidence > lo) & (confidence <= hi)
        if in_bin.any():
            total += (
                in_bin.float().mean() * (correct[in_bin].mean() - confidence[in_bin].mean()).abs()
            )
    return float(total)


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The T > 0 minimising validation NLL of softmax(logits / T); a 1-D search, no gradients."""
    logits = logits.float()
    candidates = torch.exp(torch.linspace(-1.5, 1.5, 301))  # T from 0.22 to 4.5
    nll = torch.stack([F.cross_entropy(logits / t, labels) for t in candidates])
    return float(candidates[int(nll.argmin())])
