"""strokes: digits drawn from pen strokes in forms MNIST's writers seldom use."""

from __future__ import annotations

import numpy as np

from digitrec.predictor import Predictor
from digitrec.training import strokes
from digitrec.vision import imageops as ops


def test_drawn_digits_are_balanced_framed_and_reproducible() -> None:
    a, labels = strokes.render(100, seed=2)
    b, _ = strokes.render(100, seed=2)
    assert a.shape == (100, 28, 28) and a.dtype == np.uint8
    assert (np.bincount(labels, minlength=10) == 10).all()  # ten of each digit
    assert (a == b).all() and (a != strokes.render(100, seed=3)[0]).any()
    for digit in a:
        box = ops.box(digit > 0)
        assert box is not None
        assert max(s.stop - s.start for s in box) <= 22  # MNIST's 20x20 fit, a pixel of rim


def test_a_model_trained_on_mnist_reads_most_drawn_digits_as_their_label() -> None:
    """The templates draw the digit they are labelled with: the shipped models, which never saw
    them, read most of them right (a broken template would read as another digit)."""
    images, labels = strokes.render(300, seed=0)
    predictor = Predictor.load("fast")
    probs = predictor.predict_array(images.astype(np.float32) / 255)
    answers = probs.argmax(1)
    per_digit = [(answers[labels == d] == d).mean() for d in range(10)]
    assert (answers == labels).mean() >= 0.85, per_digit
    assert min(per_digit) >= 0.6, per_digit
