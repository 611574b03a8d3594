"""The sequence reader: numbers read whole (reader.py, vision/line.py), and `read` combining it
with segmentation. Pen strokes here are writer 7's, whom the shipped reader never trained on."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from digitrec import realworld
from digitrec.predictor import Predictor, ReadDigit, Reading
from digitrec.reader import SequenceReader, combine
from digitrec.vision import canvas
from digitrec.vision import line as L

UNSEEN = (7,)  # a pen writer the shipped reader did not train on (models/reader.json)


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor.load()


def test_the_reader_is_shipped_and_not_a_digit_classifier() -> None:
    from digitrec import shipped

    reader = SequenceReader.load()
    assert reader is not None and reader.card["kind"] == "sequence-reader"
    assert UNSEEN[0] not in reader.card["training"]["pen_writers"]
    assert "reader" not in {c["name"] for c in shipped.shipped_cards()}


def test_serving_the_reader_imports_no_torch() -> None:
    code = (
        "import sys; from digitrec.predictor import Predictor; p = Predictor.load(); "
        "assert p.sequence is not None; import numpy as np; "
        "p.read(np.pad(np.ones((30, 4), np.float32), 20)); "
        "assert not [m for m in sys.modules if m == 'torch' or m.startswith('digitrec.training')]"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_normalise_scales_the_inked_box_to_the_line_height() -> None:
    ink = np.zeros((300, 500), np.float32)
    ink[100:200, 50:450] = 1.0  # 100 x 400 of ink
    line = L.normalise(ink)
    assert line is not None and line.image.shape == (L.HEIGHT, 4 * L.INK_HEIGHT + 2 * L.PAD_X)
    rows = np.flatnonzero(line.image.max(axis=1) > 0.5)
    assert rows[-1] - rows[0] + 1 == L.INK_HEIGHT
    assert L.normalise(np.zeros((50, 50), np.float32)) is None


def test_decode_merges_repeats_and_keeps_doubled_digits_apart_by_a_blank() -> None:
    frames = [L.BLANK, 3, 3, L.BLANK, 0, L.BLANK, 0, 0, L.BLANK, L.BLANK, 7]
    probs = np.full((len(frames), L.BLANK + 1), 0.01, np.float32)
    probs[np.arange(len(frames)), frames] = 0.9
    chars = L.decode(probs)
    assert [c.digit for c in chars] == [3, 0, 0, 7]
    assert [c.frames for c in chars] == [(1, 2), (4, 4), (6, 7), (10, 10)]
    assert chars[0].candidates[0] == (3, pytest.approx(0.9))


def test_unseen_writers_numbers_are_read(predictor: Predictor) -> None:
    """Real pen strokes of a writer the reader never saw, 3-6 digits joined as people join
    them: most read exactly, and a wrong number is rarely given without doubt."""
    samples = realworld.pen_numbers(UNSEEN, count=40, seed=3)
    answers = [predictor.read(s.source) for s in samples]
    exact = sum(a.text == s.label for a, s in zip(answers, samples, strict=True))
    wrong = sum(
        a.text is not None and a.text != s.label for a, s in zip(answers, samples, strict=True)
    )
    assert exact >= 27 and wrong <= 3, (exact, wrong)


def test_boxes_are_inside_the_image_left_to_right(predictor: Predictor) -> None:
    for s in realworld.pen_numbers(UNSEEN, count=5, seed=4):
        import io

        from PIL import Image

        size = Image.open(io.BytesIO(s.data or b"")).size
        reading = predictor.read(s.source)
        xs = [d.box[0] for d in reading.digits]
        assert xs == sorted(xs)
        for d in reading.digits:
            x, y, w, h = d.box
            assert x >= 0 and y >= 0 and w > 0 and h > 0 and x + w <= size[0] and y + h <= size[1]


def _with_mark(kind: str, seed: int, mark: bool = True) -> tuple[bytes, str]:
    """A number in writer 7's pen strokes on the page's canvas, with a mark people write
    around amounts: a thousands dot or comma inside, or a dash, equals or slash after."""
    rng = np.random.default_rng(seed)
    pool = [d for d in canvas.load_pen(realworld.PEN_FILE) if d.writer in UNSEEN]
    chosen = [pool[int(i)] for i in rng.choice(len(pool), 4)]
    digits = canvas.compose([d.strokes for d in chosen], rng)
    every = np.vstack([p for d in digits for p in d])
    (_, top), (right, bottom) = every.min(0), every.max(0)
    h = bottom - top
    if kind in (".", ","):  # room after the first digit for the thousands mark
        shift = np.vstack(digits[0]).max(0)[0] + 0.3 * h - np.vstack(digits[1]).min(0)[0]
        digits = [digits[0]] + [[p + (shift, 0) for p in d] for d in digits[1:]]
        right = np.vstack([p for d in digits for p in d]).max(0)[0]
    mid_gap = np.vstack(digits[0]).max(0)[0] + 0.15 * h
    end = right + 0.25 * h
    marks = {
        ".": [np.array([[mid_gap, bottom - 0.02 * h]])],
        ",": [np.array([[mid_gap + 0.04 * h, bottom - 0.05 * h],
                        [mid_gap - 0.04 * h, bottom + 0.15 * h]])],
        "-": [np.array([[end, top + 0.5 * h], [end + 0.35 * h, top + 0.5 * h]])],
        "=": [np.array([[end, top + 0.35 * h], [end + 0.35 * h, top + 0.35 * h]]),
              np.array([[end, top + 0.6 * h], [end + 0.35 * h, top + 0.6 * h]])],
        "/": [np.array([[end + 0.45 * h, top + 0.1 * h], [end, bottom]])],
    }[kind]  # fmt: skip
    flat = [s for d in digits for s in d] + (marks if mark else [])
    every = np.vstack(flat + marks)  # the same scale with and without the mark
    scale = min(1.0, 0.95 * 2 * canvas.SIDE / (every[:, 0].max() + 10))
    flat = [s * scale for s in flat]
    label = "".join(str(d.label) for d in chosen)
    return canvas.to_png(canvas.draw(flat, 14.0, (2 * canvas.SIDE, canvas.SIDE))), label


@pytest.mark.parametrize("kind", [".", ",", "-", "=", "/"])
def test_a_separator_is_never_read_as_a_digit(predictor: Predictor, kind: str) -> None:
    """The mark is never read: each number with it reads as it does without it, as the number
    written, or "uncertain"; never with a digit more, never another number; most read the
    same."""
    same = 0
    for seed in range(8):
        with_mark, label = _with_mark(kind, seed)
        without, _ = _with_mark(kind, seed, mark=False)
        text, plain = predictor.read(with_mark).text, predictor.read(without).text
        assert text is None or len(text) <= len(label), (text, label)
        assert text in (plain, label, None), (text, plain, label)
        same += text == plain
    assert same >= 4  # a comma often leaves the reader in doubt (BENCHMARKS.md)


def _reading(text: str, confidence: float, x0: int = 0) -> Reading:
    digits = [ReadDigit(int(c), confidence, (x0 + 20 * i, 0, 18, 30)) for i, c in enumerate(text)]
    return Reading(text, digits, confidence)


def test_combine_answers_uncertain_when_the_readers_disagree_without_confidence() -> None:
    reader = SequenceReader.load()
    assert reader is not None
    low = min(reader.uncertain_below, float(reader.card["agree_below"])) / 2
    unsure_segments = float(reader.card["segment_below"]) / 2
    seq = _reading("123", low)
    seq.text, seq.reason = None, "uncertain"
    out = combine(_reading("128", unsure_segments), seq, reader)
    assert out.text is None and out.reason == "uncertain" and out.guess == "123"
    # both sure of different numbers: uncertain too
    out = combine(_reading("128", 1.0), _reading("123", 1.0), reader)
    assert out.text is None and out.reason == "uncertain"
    # ... also when they differ in length (a digit lost beside a comma, "4471," read "447")
    out = combine(_reading("4471", 1.0), _reading("447", 1.0), reader)
    assert out.text is None and out.reason == "uncertain"
    # both read the same digits: the answer, with the segmentation reader's boxes
    agree_at = float(reader.card["agree_below"])
    seq = _reading("128", max(agree_at, 0.01), x0=3)
    seq.text = None if seq.confidence < reader.uncertain_below else "128"
    out = combine(_reading("128", 0.99), seq, reader)
    assert out.text == "128" and out.digits[0].box == (0, 0, 18, 30)
