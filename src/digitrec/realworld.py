"""Real handwriting for evaluation and model selection, and the selection score.

Two kinds of set, never trained on:

- data/real/<set>/: digits by writers outside MNIST (Semeion, the Dutch map numerals; their
  README gives sources and licenses). `labels.csv` holds `file,label`.
- tests/realworld/: our own generated set (canvas drawings, handwriting fonts, paper photos,
  inverted, blank, written numbers; tools/make_realworld.py), with a `val` and a `test` split.

The selection score (`selection_score`) is what recipes, models, augmentation and thresholds
are chosen on: the mean of four accuracies, each on data kept from training and from the final
report: MNIST validation, each real dev set, and our generated set's `val` split. A null answer
("empty" or "uncertain") counts as wrong everywhere except on blank images, where it is right.
"""

from __future__ import annotations

import csv
import io
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from digitrec.errors import DataError

ROOT = Path(__file__).resolve().parents[2]
REAL_DIR = Path(os.environ.get("DIGITREC_REAL", ROOT / "data" / "real"))
GENERATED_DIR = ROOT / "tests" / "realworld"
REAL_SETS = ("semeion", "mfeat")
PEN_FILE = REAL_DIR / "pendigits" / "strokes.jsonl"
PEN_WRITERS = (1, 2, 3, 4, 5, 6, 7)  # the writers of PEN_FILE
PEN_BRUSHES = (10, 22)  # px on the 280-px canvas: the page's brush as people leave it set


@dataclass(frozen=True)
class Sample:
    path: Path  # the file, or a name for an image made in memory (`data`)
    label: str  # a digit, a written number, or "" for a blank image
    data: bytes | None = None  # the image itself when it is not a file (a rendered canvas)
    writer: int = 0  # who wrote it, where known (pen strokes)

    @property
    def source(self) -> Path | bytes:
        return self.path if self.data is None else self.data


def load_real(name: str, directory: Path = REAL_DIR) -> list[Sample]:
    """The labelled images of one real set (data/real/<name>/labels.csv: file,label)."""
    labels = directory / name / "labels.csv"
    if not labels.is_file():
        known = ", ".join(p.parent.name for p in sorted(directory.glob("*/labels.csv"))) or "none"
        raise DataError(labels, f"no such real set {name!r} (found: {known})")
    samples = []
    with open(labels, newline="") as f:
        for row_no, row in enumerate(csv.DictReader(f), start=2):
            label = (row.get("label") or "").strip()
            if not row.get("file") or len(label) != 1 or not label.isdigit():
                raise DataError(
                    labels, f"expected file,label with a digit label, got {row}", row_no
                )
            samples.append(Sample(directory / name / row["file"], label))
    return samples


def load_generated(split: str = "val", directory: Path = GENERATED_DIR) -> dict[str, list[Sample]]:
    """Our generated set by kind: {kind: samples} for one split (val | test)."""
    out: dict[str, list[Sample]] = {}
    with open(directory / "labels.csv", newline="") as f:
        for row in csv.DictReader(f):
            if row["split"] == split:
                out.setdefault(row["kind"], []).append(
                    Sample(directory / row["file"], row["label"])
                )
    return out


def pen_canvases(
    writers: tuple[int, ...] = PEN_WRITERS, per_digit: int = 1, seed: int = 0
) -> list[Sample]:
    """Real writers' pen digits drawn as the page's canvas exports them (PNG, transparent, a
    round brush of PEN_BRUSHES px, black or white ink, device pixel ratio 1-3, the digit 45-85%
    of the canvas's height somewhere on it): the realistic drawings models are scored on,
    never on writers they trained on."""
    from digitrec.vision import canvas

    rng = np.random.default_rng(seed)
    out: list[Sample] = []
    for d in canvas.load_pen(PEN_FILE):
        if d.writer not in writers:
            continue
        for k in range(per_digit):
            dpr = float(rng.choice((1.0, 2.0, 3.0)))
            h = canvas.SIDE * rng.uniform(0.45, 0.85)
            w = h * rng.uniform(0.7, 1.0)
            box = (rng.uniform(0, canvas.SIDE - w), rng.uniform(0, canvas.SIDE - h), w, h)
            ink = canvas.INK if rng.random() < 0.5 else (255, 255, 255)
            rgba = canvas.draw(
                canvas.place(d.strokes, box), float(rng.uniform(*PEN_BRUSHES)), dpr=dpr, ink=ink
            )
            name = Path(f"pendigits/w{d.writer}/{len(out):04d}-{k}.png")
            out.append(Sample(name, str(d.label), canvas.to_png(rgba), d.writer))
    return out


def realistic_canvases(count: int = 64) -> list[bytes]:
    """What speed is measured on besides benchmarks/canvas7.png: `count` real writers' pen
    digits from every writer, drawn as the page exports them (pen_canvases: brush 10-22 px,
    black or white ink, dpr 1-3, the digit anywhere), as PNG bytes."""
    drawn = pen_canvases(per_digit=1, seed=2024)
    step = max(1, len(drawn) // count)
    return [s.data for s in drawn[::step][:count] if s.data is not None]


def pen_numbers(
    writers: tuple[int, ...] = PEN_WRITERS,
    count: int = 200,
    seed: int = 0,
    digits: tuple[int, int] = (3, 6),
    low_resolution: bool = False,
) -> list[Sample]:
    """Numbers written with real writers' pen digits (one writer per number, `digits` long),
    as the page's number-mode canvas exports them (canvas.compose: gaps from wide to touching
    and overlapping, a drifting baseline, slant; brush PEN_BRUSHES, dpr 1-3). With
    `low_resolution`, each is instead a small capture (digits 8-32 px tall) enlarged to 40-100
    px, blocky or smooth, dark ink on light paper, as a PNG."""
    from PIL import Image

    from digitrec.vision import canvas

    rng = np.random.default_rng(seed)
    by_writer: dict[int, list[Any]] = {}
    for d in canvas.load_pen(PEN_FILE):
        if d.writer in writers:
            by_writer.setdefault(d.writer, []).append(d)
    out = []
    for k in range(count):
        pool = by_writer[int(rng.choice(sorted(by_writer)))]
        chosen = [
            pool[int(i)] for i in rng.choice(len(pool), int(rng.integers(digits[0], digits[1] + 1)))
        ]
        strokes = canvas.compose([d.strokes for d in chosen], rng)
        brush = float(rng.uniform(*PEN_BRUSHES))
        dpr = float(rng.choice((1.0, 2.0, 3.0)))
        size = (2 * canvas.SIDE, canvas.SIDE)
        flat = [s for d in strokes for s in d]
        label = "".join(str(d.label) for d in chosen)
        name = Path(f"pennumbers/w{chosen[0].writer}/{k:04d}-{label}.png")
        if not low_resolution:
            data = canvas.to_png(canvas.draw(flat, brush, size, dpr))
        else:
            alpha = canvas.draw_alpha(flat, brush, size, dpr)
            ys, xs = np.nonzero(alpha)
            pad = int(brush * dpr)
            crop = alpha[
                max(0, ys.min() - pad) : ys.max() + pad, max(0, xs.min() - pad) : xs.max() + pad
            ]
            f = rng.uniform(8, 32) / (crop.shape[0] - 2 * pad)
            small = Image.fromarray(255 - crop).resize(
                (max(2, round(crop.shape[1] * f)), max(2, round(crop.shape[0] * f))),
                Image.Resampling.BOX,
            )
            g = rng.uniform(40, 100) / (small.height * (crop.shape[0] - 2 * pad) / crop.shape[0])
            resample = Image.Resampling.NEAREST if rng.random() < 0.5 else Image.Resampling.BILINEAR
            big = small.resize((round(small.width * g), round(small.height * g)), resample)
            buf = io.BytesIO()
            big.save(buf, format="PNG")
            data = buf.getvalue()
        out.append(Sample(name, label, data, chosen[0].writer))
    return out


@dataclass
class Mistake:
    sample: Sample
    answer: str  # what was read: a digit, "uncertain:7", "empty", or a number
    confidence: float
    preprocessed: np.ndarray | None  # (28, 28), what the model saw (single digits only)


@dataclass
class SetScore:
    name: str
    total: int = 0
    correct: int = 0
    nulls: int = 0  # answers without a digit, on images that hold one
    confusions: Counter[tuple[str, str]] = field(default_factory=Counter)  # (label, answer)
    mistakes: list[Mistake] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return self.correct / max(self.total, 1)

    @property
    def null_share(self) -> float:
        return self.nulls / max(self.total, 1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "set": self.name,
            "images": self.total,
            "accuracy": round(self.accuracy, 4),
            "null_share": round(self.null_share, 4),
            "top_confusions": [
                {"label": a, "answer": b, "count": n}
                for (a, b), n in self.confusions.most_common(5)
            ],
        }


def score_digits(predictor: Any, name: str, samples: list[Sample]) -> SetScore:
    """Single digits (or blanks, label ""): one `predict` each."""
    score = SetScore(name)
    answers = predictor.predict_many([s.source for s in samples])
    for sample, p in zip(samples, answers, strict=True):
        score.total += 1
        if p.digit is None:
            answer = "empty" if p.reason == "empty" else f"uncertain:{p.candidates[0][0]}"
        else:
            answer = str(p.digit)
        right = (p.digit is None) if sample.label == "" else (answer == sample.label)
        if right:
            score.correct += 1
            continue
        if p.digit is None:
            score.nulls += 1
        score.confusions[(sample.label or "blank", answer)] += 1
        score.mistakes.append(Mistake(sample, answer, p.confidence, p.preprocessed))
    return score


def score_numbers(predictor: Any, name: str, samples: list[Sample]) -> SetScore:
    """Written numbers: `read` each, right when the text is exactly the label."""
    score = SetScore(name)
    for sample in samples:
        reading = predictor.read(sample.source)
        score.total += 1
        if reading.text == sample.label:
            score.correct += 1
            continue
        if reading.text is None:
            score.nulls += 1
        answer = reading.text if reading.text is not None else f"{reading.reason}:{reading.guess}"
        score.confusions[(sample.label, answer)] += 1
        score.mistakes.append(Mistake(sample, answer, reading.confidence, None))
    return score


def score_generated(predictor: Any, split: str = "val") -> dict[str, SetScore]:
    """Our generated set, kind by kind."""
    out = {}
    for kind, samples in load_generated(split).items():
        scorer = score_numbers if kind == "numbers" else score_digits
        out[kind] = scorer(predictor, f"generated {split}: {kind}", samples)
    return out


def score_all(predictor: Any, split: str = "val") -> list[SetScore]:
    """Every real dev set, then our generated set's `split` kind by kind."""
    scores = [score_digits(predictor, name, load_real(name)) for name in REAL_SETS]
    return scores + list(score_generated(predictor, split).values())


def selection_score(
    scores: list[SetScore], mnist_val: float | None, pen: dict[str, float] | None = None
) -> dict[str, Any]:
    """The declared selection score, from `score_all(predictor, "val")`: the mean of MNIST
    validation accuracy, each real dev set's accuracy, our generated set's `val` accuracy
    (its kinds pooled) and, given `pen` (pen_parts), real writers' canvases and numbers by
    writers the model never trained on. `mnist_val` is the model's (its card's or its run's);
    None leaves it out of the mean (`complete` then says so)."""
    real = [s for s in scores if s.name in REAL_SETS]
    generated = [s for s in scores if s.name not in REAL_SETS]
    parts: dict[str, float] = {} if mnist_val is None else {"mnist_val": float(mnist_val)}
    parts.update({s.name: s.accuracy for s in real})
    parts["generated_val"] = sum(s.correct for s in generated) / sum(s.total for s in generated)
    parts.update(pen or {})
    images = {s.name: s.total for s in real}
    images["generated_val"] = sum(s.total for s in generated)
    return {
        "score": round(sum(parts.values()) / len(parts), 4),
        "parts": {k: round(v, 4) for k, v in parts.items()},
        "images": images,  # how many each part was measured on (MNIST's: the card's split)
        "null_share": {s.name: round(s.null_share, 4) for s in real},
        "complete": mnist_val is not None,
    }


def card_selection(name: str, onnx: Path, card: dict[str, Any]) -> dict[str, Any]:
    """The selection score of a shipped graph, for its card (ship writes it there)."""
    from digitrec.predictor import Predictor
    from digitrec.shipped import ModelRef

    predictor = Predictor(ModelRef(name, onnx, card), threads=0)
    return selection_score(
        score_all(predictor, "val"), card.get("val_accuracy"), pen_parts(predictor, card)
    )


PEN_SELECTION = {"per_digit": 1, "numbers": 100, "seed": 5}  # what pen_parts draws and reads


def pen_parts(predictor: Any, card: dict[str, Any]) -> dict[str, float]:
    """The selection score's real-writer parts: accuracy on canvases and exact numbers by pen
    writers the model never trained on. A model trained on every pen writer brings them from
    its writer-wise folds (the card's `pen_folds`, from `benchmarks/pen.py --folds`)."""
    folds = card.get("pen_folds")
    if folds:
        return {"pen_canvases": float(folds["canvases"]), "pen_numbers": float(folds["numbers"])}
    unseen = tuple(w for w in PEN_WRITERS if w not in set(card.get("pen_writers_trained", [])))
    if not unseen:
        return {}
    canvases = pen_canvases(unseen, PEN_SELECTION["per_digit"], PEN_SELECTION["seed"])
    numbers = pen_numbers(unseen, PEN_SELECTION["numbers"], PEN_SELECTION["seed"])
    return {
        "pen_canvases": score_digits(predictor, "pen canvases", canvases).accuracy,
        "pen_numbers": score_numbers(predictor, "pen numbers", numbers).accuracy,
    }
