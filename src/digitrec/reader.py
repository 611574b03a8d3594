"""The sequence reader at serving time: a written number read whole, on ONNX Runtime (no torch).

models/reader.onnx (training/sequence.py) reads the ink map's line (vision/line.py) and gives
per-frame probabilities; best-path decoding gives the digits, each with the frames it spans
(its box) and its probability. The number's confidence (line.confidence) is the product of
its digits', lowered by any probability left on digits the path does not read; a number
under the card's `uncertain_below` is "uncertain". `combine` joins its answer with the
segmentation reader's (predictor.Predictor).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from digitrec import shipped
from digitrec.answers import Reading
from digitrec.errors import ModelError
from digitrec.models_dir import ModelsDir
from digitrec.vision import line as L

NAME = "reader"  # models/reader.onnx + reader.json


class SequenceReader:
    def __init__(self, onnx: Path, card: dict[str, Any], threads: int = 1):
        self.card = card
        self.uncertain_below = float(card.get("uncertain_below", 0.5))
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        try:
            self.session = ort.InferenceSession(
                str(onnx), options, providers=["CPUExecutionProvider"]
            )
        except Exception as e:  # ONNX Runtime raises its own types for truncated graphs
            raise ModelError(f"{onnx}: cannot load the ONNX model ({e})") from None

    @classmethod
    def load(cls, directory: Path | None = None, threads: int = 1) -> SequenceReader | None:
        """The shipped reader, its sha256 checked; None when none is shipped."""
        models = ModelsDir(shipped.MODELS_DIR if directory is None else directory)
        if not models.card_file(NAME).exists():
            return None
        card = models.card(NAME)
        shipped.verify(card, models.path)
        return cls(models.onnx(NAME), card, threads)

    def frames(self, line: L.Line) -> np.ndarray:
        """(T, 11) frame probabilities of one normalised line."""
        return self.session.run(None, {"line": line.image[None, None]})[0][0]

    def read_ink(
        self, ink: np.ndarray
    ) -> tuple[list[tuple[L.Char, tuple[int, int, int, int]]], float]:
        """An ink map -> ([(char, box on the ink map)], the number's confidence).

        The line is read at each of the card's `stretches` (widths; [1.0] unless the card says
        otherwise); the most confident reading is the answer, its confidence scaled by the share
        of readings that agree with it (a number read differently at another width is in doubt).
        """
        readings = []
        for stretch in self.card.get("stretches", [1.0]):
            line = L.normalise(ink, stretch)
            if line is None:
                return [], 0.0
            probs = self.frames(line)
            chars = L.decode(probs)
            confidence = L.confidence(probs, chars)
            readings.append((line, chars, confidence, "".join(str(c.digit) for c in chars)))
        line, chars, confidence, text = max(readings, key=lambda r: r[2])
        confidence *= sum(r[3] == text for r in readings) / len(readings)
        return [(c, L.char_box(line, c, ink)) for c in chars], confidence


def combine(segments: Reading, sequence: Reading, reader: SequenceReader) -> Reading:
    """One answer from the two readers (thresholds from the reader's card, chosen on data kept
    from training: BENCHMARKS.md, "Reading numbers whole").

    Where both read the same digits and the sequence reader's confidence is at least
    `agree_below`, that is the answer, with the segmentation reader's boxes (cut around each
    digit's ink). Else an answer only one of them is sure of: the sequence reader's with a
    confidence of at least `uncertain_below`, the segmentation reader's with at least
    `segment_below` (over 1: never alone; of each digit where the card says
    `segment_per_digit`) and, where the card says `segment_near_sequence`, of as many digits as
    the sequence reader reads, differing in one digit at most. Both sure of different numbers
    (unless the card's `both_sure` is "likelier": then the more confident), or neither sure:
    "uncertain", listing the sequence reader's digits and candidates."""
    agree_below = float(reader.card.get("agree_below", reader.uncertain_below))
    segment_below = float(reader.card.get("segment_below", 2.0))
    per_digit = bool(reader.card.get("segment_per_digit"))
    confidence = sequence.confidence
    if sequence.digits and sequence.guess == segments.guess and confidence >= agree_below:
        digits = [
            dataclasses.replace(seg, confidence=max(seg.confidence, seq.confidence))
            for seg, seq in zip(segments.digits, sequence.digits, strict=True)
        ]
        return Reading(sequence.guess, digits, max(confidence, segments.confidence))
    sure = [r for r, t in ((sequence, reader.uncertain_below), (segments, segment_below))
            if r.digits and _sure(r, t, per_digit=r is segments and per_digit)]  # fmt: skip
    if len(sure) == 2 and reader.card.get("both_sure") != "likelier":
        # both sure, of different numbers (a digit lost beside a comma by one, a mark read as
        # a digit by the other): neither answers
        return Reading(None, sequence.digits, confidence, "uncertain")
    if reader.card.get("segment_near_sequence") and sequence.digits:
        # a digit more or fewer than the sequence reader sees (a separator read as a digit, two
        # digits merged into one), or two digits differing: the segmentation reader's answer
        # alone is in doubt
        sure = [r for r in sure if r is sequence or _near(r.guess, sequence.guess)]
    if len(sure) == 2 and reader.card.get("both_sure") == "likelier":
        sure = [max(sure, key=lambda r: r.confidence)]
    if len(sure) == 1:
        return Reading(sure[0].guess, sure[0].digits, sure[0].confidence)
    if not sequence.digits:
        return (
            segments if segments.text is None else Reading(None, segments.digits, 0.0, "uncertain")
        )
    return Reading(None, sequence.digits, confidence, "uncertain")


def _sure(reading: Reading, threshold: float, per_digit: bool) -> bool:
    """The reading's confidence at least `threshold`; with `per_digit`, each digit's."""
    if per_digit:
        return reading.text is not None and min(d.confidence for d in reading.digits) >= threshold
    return reading.confidence >= threshold


def _near(a: str | None, b: str | None) -> bool:
    """Two readings of one length that differ in one digit at most."""
    if a is None or b is None or len(a) != len(b):
        return False
    return sum(x != y for x, y in zip(a, b, strict=True)) <= 1
