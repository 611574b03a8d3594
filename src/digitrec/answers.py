"""What the predictor answers: `Prediction` (one digit) and `Reading` (a written number, its
`ReadDigit`s), plain dataclasses whose `to_dict` is the JSON the CLI and the server give.

Both readers build them (predictor.Predictor, reader.combine); digitrec.predictor re-exports
them, where users import them from.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from digitrec.vision import png


def png_data_url(image28: np.ndarray) -> str:
    """(H, W) float [0, 1] -> a PNG data URL (8-bit grey, white ink on black, as the model saw
    it), written by png.write: the same pixels as Pillow writes for a third of the CPU (50 us
    instead of 150 us), and every /predict answer carries one."""
    grey = np.round(np.clip(image28, 0, 1) * 255).astype(np.uint8)
    return "data:image/png;base64," + base64.b64encode(png.write(grey)).decode()


@dataclass
class Prediction:
    digit: int | None  # None when it is not a digit
    confidence: float
    probabilities: list[float]
    preprocessed: np.ndarray  # (28, 28) float [0, 1]: what the model saw (zeros when blank)
    reason: str | None = None  # "empty" | "uncertain" | None
    candidates: list[tuple[int, float]] = field(default_factory=list)  # top 3

    def to_dict(self, with_image: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "digit": self.digit,
            "confidence": round(self.confidence, 6),
            "probabilities": [round(p, 6) for p in self.probabilities],
        }
        if with_image:
            out["preprocessed"] = png_data_url(self.preprocessed)
        if self.reason is not None:
            out["reason"] = self.reason
        out["candidates"] = [{"digit": d, "probability": round(p, 6)} for d, p in self.candidates]
        return out

    def to_cli_dict(self) -> dict[str, Any]:
        """The fields of `digitrec predict --format json` (and `digitrec batch`), but `file`:
        no image, and the top three `candidates` only when the answer is null for being
        uncertain."""
        out = self.to_dict(with_image=False)
        if self.reason != "uncertain":
            del out["candidates"]
        return out


@dataclass
class ReadDigit:
    digit: int
    confidence: float
    box: tuple[int, int, int, int]  # (x, y, w, h) in the input image's pixels
    candidates: list[tuple[int, float]] = field(default_factory=list)  # top 3


@dataclass
class Reading:
    text: str | None  # None when there is no number ("empty") or a digit is "uncertain"
    digits: list[ReadDigit]  # left to right; listed (with candidates) even when uncertain
    confidence: float = 0.0  # that every digit is right: the product of their confidences
    reason: str | None = None  # "empty" | "uncertain" | None

    @property
    def guess(self) -> str:
        """The most likely digits, uncertain ones included ("" when there are none)."""
        return "".join(str(d.digit) for d in self.digits)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "text": self.text,
            "confidence": round(self.confidence, 6),
            "digits": [
                {
                    "digit": d.digit,
                    "confidence": round(d.confidence, 6),
                    "box": list(d.box),
                    "candidates": [
                        {"digit": c, "probability": round(q, 6)} for c, q in d.candidates
                    ],
                }
                for d in self.digits
            ],
        }
        if self.reason is not None:
            out["reason"] = self.reason
        return out
