"""Inference on ONNX Runtime: an image in, a digit (or an honest "not a digit") out.

No torch on this path: the server and the CLI's predict/read import only NumPy, Pillow,
SciPy, OpenCV and ONNX Runtime.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort
from PIL import Image

from digitrec import shipped, work
from digitrec.answers import Prediction as Prediction
from digitrec.answers import ReadDigit as ReadDigit
from digitrec.answers import Reading as Reading
from digitrec.answers import png_data_url as png_data_url
from digitrec.errors import ModelError
from digitrec.vision import preprocess

UNCERTAIN_BELOW = 0.5  # calibrated confidence under which the answer is "uncertain"
# Test-time augmentation (evaluate / submit --tta): the probabilities of each image and of
# copies zoomed by these factors about the centre, averaged. Chosen with mnist-best on its
# validation split (seed 0, which best and the ensembles share; BENCHMARKS.md): 1-pixel shifts
# lowered it, +-8 degree turns and zooms raised it.
TTA_ZOOMS = (0.93, 1.07)
PROGRESS_CHUNK = 1000  # images per ONNX Runtime call when a progress bar is shown
# Images per ONNX Runtime call while reading a number. Segmentation scores anywhere from 2 to a
# few hundred candidate crops at once, and ONNX Runtime's CPU arena keeps the memory of the
# largest call it has served (and a memory plan per batch size, allocated the next time that
# size comes): in one call, 100 page-sized numbers read three times over took a process from
# 166 to 310, 401, 403 MB; in calls of 32, to 214, 218, 218 MB, for the same CPU per read
# (BENCHMARKS.md, "The page on a phone"; benchmarks/read_memory.py).
READ_BATCH = 32

Source = bytes | str | os.PathLike[str] | Image.Image | np.ndarray


_BLAS: tuple[int, tuple[Any, ...]] = (-1, ())  # (len(sys.modules) when found, controllers)


def _blas() -> tuple[Any, ...]:
    """threadpoolctl's controllers of the BLAS libraries loaded (NumPy's, SciPy's, torch's...),
    found again (~ms) only when modules were imported since: a library loaded after the first
    call (SciPy imported later, say) is pinned too."""
    global _BLAS
    if _BLAS[0] != len(sys.modules):
        from threadpoolctl import ThreadpoolController

        found = tuple(ThreadpoolController().select(user_api="blas").lib_controllers)
        _BLAS = (len(sys.modules), found)
    return _BLAS[1]


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """A context in which NumPy's BLAS and OpenCV run on one thread. Preprocessing's matrix
    products and filters are small; OpenBLAS splits those over ~250k multiply-adds across
    cores, and its helper threads then spin on cores that ONNX Runtime or the server's other
    worker need (with 2 workers: 2.6 -> 13 ms of CPU per canvas). OpenCV's pool would do the
    same for its labelling and morphology.

    It reads and sets each library's thread count itself (~10 us in and out; threadpoolctl's
    `limit` re-reads every library's version and config, ~45 us), and sets only those not at
    one already: a server worker enters this once for its life (app.py), and then each batch's
    call costs a few reads."""
    cv_threads = cv2.getNumThreads()
    changed = [(lib, n) for lib in _blas() if (n := lib.num_threads) != 1]
    if cv_threads != 1:
        cv2.setNumThreads(1)
    for lib, _ in changed:
        lib.set_num_threads(1)
    try:
        yield
    finally:
        for lib, n in changed:
            lib.set_num_threads(n)
        if cv_threads != 1:
            cv2.setNumThreads(cv_threads)


def zoom(images: np.ndarray, factor: float) -> np.ndarray:
    """(..., H, W) images enlarged (factor > 1) or shrunk about their centre, bilinear, zeros
    outside: two small matrix products per image."""
    rows, cols = _zoom_matrix(images.shape[-2], factor), _zoom_matrix(images.shape[-1], factor)
    zoomed: np.ndarray = (rows @ images @ cols.T).astype(np.float32)
    return zoomed


@functools.lru_cache(maxsize=16)
def _zoom_matrix(n: int, factor: float) -> np.ndarray:
    """(n, n): output pixel i reads the input at (i - c) / factor + c, c the centre."""
    centre = (n - 1) / 2
    source = (np.arange(n) - centre) / factor + centre
    low = np.floor(source).astype(int)
    frac = (source - low).astype(np.float32)
    m = np.zeros((n, n), np.float32)
    for k, weight in ((low, 1 - frac), (low + 1, frac)):
        inside = (k >= 0) & (k < n)
        m[np.flatnonzero(inside), k[inside]] += weight[inside]
    m.setflags(write=False)
    return m


class Predictor:
    def __init__(self, ref: shipped.ModelRef, threads: int = 1, sequence: bool = True):
        self.name = ref.name
        self.card = ref.card
        self.threshold = float(ref.card.get("uncertain_below", UNCERTAIN_BELOW))
        options = ort.SessionOptions()
        # threads: 1 where processes already fill the cores (the server's workers, one each);
        # 0 (every core) for one caller alone, which answers one image faster (BENCHMARKS.md,
        # "One thread or every core")
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(
                str(ref.onnx), options, providers=["CPUExecutionProvider"]
            )
        except Exception as e:  # ONNX Runtime raises its own types for truncated graphs
            raise ModelError(f"{ref.onnx}: cannot load the ONNX model ({e})") from None
        # The sequence reader `read` combines with segmentation (reader.py), when one is shipped
        from digitrec.reader import SequenceReader

        self.sequence = SequenceReader.load(threads=threads) if sequence else None

    @classmethod
    def load(
        cls, model: str | os.PathLike[str] | None = None, threads: int = 1, sequence: bool = True
    ) -> Predictor:
        """`sequence`: read numbers with the shipped sequence reader beside segmentation."""
        return cls(shipped.resolve(model), threads, sequence)

    def predict_array(
        self,
        images28: np.ndarray,
        tta: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """(N, 28, 28) float [0, 1] -> (N, 10) calibrated probabilities; with `tta`, averaged
        with those of the images zoomed by TTA_ZOOMS (three times the work). With `progress`,
        in chunks of PROGRESS_CHUNK images (the same probabilities), `progress(n)` after each."""
        x = np.ascontiguousarray(images28, dtype=np.float32).reshape(-1, 1, 28, 28)
        if len(x) == 0:
            return np.zeros((0, 10), np.float32)
        if progress is not None and len(x) > PROGRESS_CHUNK:
            parts = []
            for start in range(0, len(x), PROGRESS_CHUNK):
                parts.append(self.predict_array(x[start : start + PROGRESS_CHUNK], tta))
                progress(len(parts[-1]))
            return np.concatenate(parts)
        probs: np.ndarray = self.session.run(None, {"image": x})[0]
        if tta:
            for f in TTA_ZOOMS:
                probs = probs + self.session.run(None, {"image": zoom(x, f)})[0]
            probs /= 1 + len(TTA_ZOOMS)
        return probs

    def _answer(self, image28: np.ndarray | None, probs: np.ndarray | None) -> Prediction:
        if image28 is None or probs is None:
            return Prediction(None, 0.0, [0.0] * 10, np.zeros((28, 28), np.float32), "empty")
        p = probs.tolist()  # Python floats at once (one by one: a microsecond each)
        top = _top3(probs)
        digit: int | None = top[0][0]
        confidence, reason = top[0][1], None
        if confidence < self.threshold:
            digit, reason = None, "uncertain"
        return Prediction(digit, confidence, p, image28, reason, top)

    def predict(self, source: Source) -> Prediction:
        return self.predict_many([source])[0]

    def predict_many(self, sources: Sequence[Source]) -> list[Prediction]:
        """Batched: preprocess each, one ONNX Runtime call for all that have ink. The first
        source that fails raises its error."""
        answers = self.predict_each(sources)
        for answer in answers:
            if isinstance(answer, Exception):
                raise answer
        return answers  # type: ignore[return-value]

    def predict_each(self, sources: Sequence[Source]) -> list[Prediction | Exception]:
        """predict_many for unrelated requests (the server's batches): a source that fails
        gives its exception in its place, and the others are still answered.

        A digit stretched to fill its image gets more than one view (preprocess_views): the
        answer is the mean of the calibrated probabilities of its views, and `preprocessed`
        the first view."""
        views: list[list[np.ndarray] | None | Exception] = []
        with one_thread():
            for source in sources:
                try:
                    views.append(preprocess.preprocess_views(source))
                except Exception as e:  # an ImageError, or a bug: only this request's answer
                    views.append(e)
        inked = [i for i, v in enumerate(views) if isinstance(v, list)]
        by_index: dict[int, np.ndarray] = {}
        if inked:
            stack = [x for i in inked for x in views[i]]  # type: ignore[union-attr]
            probs = self.predict_array(np.stack(stack))
            start = 0
            for i in inked:
                n = len(views[i])  # type: ignore[arg-type]
                by_index[i] = probs[start] if n == 1 else probs[start : start + n].mean(axis=0)
                start += n
        return [
            v if isinstance(v, Exception) else self._answer(v[0] if v else None, by_index.get(i))
            for i, v in enumerate(views)
        ]

    def read(self, source: Source) -> Reading:
        """A written number: its digits left to right, each with its box in the input's pixels."""
        with one_thread():
            return self._read(source)

    def _read(self, source: Source) -> Reading:
        ink, full = self._ink(source)
        if preprocess.is_blank(ink):
            return Reading(None, [], 0.0, "empty")
        segments = self._segments(ink, full)
        if self.sequence is None:
            return segments
        from digitrec import reader

        return reader.combine(segments, self._sequence(ink, full, segments), self.sequence)

    def _ink(self, source: Source) -> tuple[np.ndarray, tuple[int, int]]:
        """The ink map `read` works on, and the input image's size (w, h) it maps to."""
        if isinstance(source, np.ndarray):
            return source, (source.shape[1], source.shape[0])
        # A big photo is read reduced (its shorter side still >= MIN_SIDE px); the boxes
        # are scaled back to the input image's pixels.
        if isinstance(source, Image.Image):
            image = preprocess.shrink(source, preprocess.MIN_SIDE)
        else:
            image = preprocess.load_image(source, preprocess.MIN_SIDE)
        work.check()  # a server's budget per request (digitrec.work): no-op elsewhere
        return preprocess.ink_map(image), image.info.get("full_size", image.size)

    def _segments(self, ink: np.ndarray, full: tuple[int, int]) -> Reading:
        """The segmentation reader: the ink cut into digits, each read by the classifier."""
        from digitrec.vision.segment import INK, segment

        work.check_parts(ink, INK)  # segmentation's cost grows with the parts: capped first
        parts = segment(ink, score=lambda images: self._read_probabilities(images).max(axis=1))
        work.check()
        if not parts:
            return Reading(None, [], 0.0, "empty")
        probs = self._read_probabilities(np.stack([preprocess.to_mnist(p.ink) for p in parts]))
        digits = []
        for p, part in zip(probs, parts, strict=True):
            top = _top3(p)
            box = _full_box(part.box, ink.shape, full)
            digits.append(ReadDigit(top[0][0], top[0][1], box, top))
        # A number is as sure as all its digits together (each calibrated; read as independent).
        confidence = math.prod(d.confidence for d in digits)
        if any(d.confidence < self.threshold for d in digits):
            return Reading(None, digits, confidence, "uncertain")
        return Reading("".join(str(d.digit) for d in digits), digits, confidence)

    def _sequence(
        self, ink: np.ndarray, full: tuple[int, int], segments: Reading | None = None
    ) -> Reading:
        """The sequence reader (reader.py): the line read whole, no cutting. Where the
        segmentation reader found digits, only the ink around them (paper texture, specks and
        lines it dropped elsewhere would make the line too tall). Its answer is "uncertain"
        under its card's threshold."""
        assert self.sequence is not None
        y0, x0, whole = 0, 0, ink.shape
        if segments is not None and segments.digits:
            sx, sy = full[0] / ink.shape[1], full[1] / ink.shape[0]
            boxes = np.array([d.box for d in segments.digits], np.float64)
            left, top = boxes[:, 0].min() / sx, boxes[:, 1].min() / sy
            right = (boxes[:, 0] + boxes[:, 2]).max() / sx
            bottom = (boxes[:, 1] + boxes[:, 3]).max() / sy
            margin = 0.1 * (bottom - top)
            y0, x0 = max(0, int(top - margin)), max(0, int(left - margin))
            ink = ink[y0 : int(np.ceil(bottom + margin)), x0 : int(np.ceil(right + margin))]
        chars, confidence = self.sequence.read_ink(ink)
        if not chars:
            return Reading(None, [], 0.0, "empty")
        digits = [
            ReadDigit(
                c.digit, c.probability, _full_box((x + x0, y + y0, w, h), whole, full), c.candidates
            )
            for c, (x, y, w, h) in chars
        ]
        if confidence < self.sequence.uncertain_below:
            return Reading(None, digits, confidence, "uncertain")
        return Reading("".join(str(d.digit) for d in digits), digits, confidence)

    def _read_probabilities(self, images28: np.ndarray) -> np.ndarray:
        """predict_array in calls of at most READ_BATCH images: what a reading process keeps
        of ONNX Runtime's memory stays that of one such call."""
        if len(images28) <= READ_BATCH:
            return self.predict_array(images28)
        return np.concatenate(
            [
                self.predict_array(images28[start : start + READ_BATCH])
                for start in range(0, len(images28), READ_BATCH)
            ]
        )


def _top3(probs: np.ndarray) -> list[tuple[int, float]]:
    """The three likeliest digits of (10,) probabilities, with their probabilities."""
    return [(d, float(probs[d])) for d in np.argsort(-probs)[:3].tolist()]


def _full_box(
    box: tuple[int, int, int, int], shape: tuple[int, ...], full: tuple[int, int]
) -> tuple[int, int, int, int]:
    """(x, y, w, h) on an ink map of `shape` (h, w) -> the box covering it in the input image
    of size `full` (w, h), which the map may be a reduced copy of."""
    sx, sy = full[0] / shape[1], full[1] / shape[0]
    if sx == sy == 1:
        return box
    x, y, w, h = box
    x0, y0 = int(x * sx), int(y * sy)
    x1, y1 = min(full[0], math.ceil((x + w) * sx)), min(full[1], math.ceil((y + h) * sy))
    return (x0, y0, x1 - x0, y1 - y0)
