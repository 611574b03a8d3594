"""Micro-batching: /predict requests that arrive while the model is busy go together.

A worker answers one batch at a time: while a batch runs (in a thread, off the event loop),
the requests that come in wait in a queue, and the next batch takes all of them. Under load
that is one thread hop and one ONNX Runtime call for many requests instead of one each (a hop
per request cost ~0.15 ms of CPU, and a batch of 16 runs the models in about 60% (fast) and 80%
(two `best` members) of the time of 16 single runs); with one request at a time it is a batch
of one and adds no wait. One batch at a time because a worker has a core at most: a second thread
would only contend for the GIL.

Only what costs like a drawing joins a batch: everything in a batch waits for all of it. The
cost is estimated from the image's header by a model measured on the `fast` model: a PNG with
an alpha channel (what a canvas exports), if its background is transparent, is read from its
alpha channel alone, about ALPHA_NS a pixel (png.alpha's path for Chromium's canvases is
faster still); anything else goes through the ink map, up to SLOW_NS a pixel (a 3 KB 1000x1000
PNG of thin bars: 96-133 ms). An image whose estimate is over MAX_BATCHED_MS runs in the photo
pool (deps.Runner) instead. The header cannot tell a transparent background from an opaque
one, so a PNG with alpha that would be too slow the ink map's way is checked in the batch
thread, before it is preprocessed (canvas_alpha, else its alpha channel decoded), and sent to
the pool when its background is opaque.
"""

from __future__ import annotations

import asyncio
import contextvars
import io
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from digitrec.errors import ImageError
from digitrec.serve import metrics
from digitrec.vision.header import header

if TYPE_CHECKING:
    from digitrec.predictor import Prediction
    from digitrec.serve.deps import Model, Runner

# A batch is preprocessed image by image in one thread call; this bounds how long the requests
# at its end wait (32 drawn canvases: a few tens of ms).
MAX_BATCHED = 32
# The cost model (ms of one core, 2-core AMD EPYC, `fast` model, one thread; see above).
MAX_BATCHED_MS = 8.0  # what joins a batch: ~5 drawn canvases' worth at most
FIXED_MS = 0.5  # decode set-up, the model's share, the answer
ALPHA_NS = 20.0  # a transparent canvas through Pillow: 1.6 ms for 280x280
SLOW_NS = 150.0  # the ink map's path, worst measured: thin bars, 1000x1000, 96-133 ms
MAX_BATCHED_BYTES = 256 * 1024  # a body this big is no drawing, whatever it holds
ROUTE = "/api/v1/predict"  # what the answers are counted under (metrics.answered)


def estimate_ms(image: bytes) -> float:
    """The cost model: ms of CPU to preprocess `image`, from its header (a PNG with alpha is
    taken for a transparent canvas; opaque_canvas() checks that in the batch)."""
    if len(image) > MAX_BATCHED_BYTES:
        return float("inf")
    shape = header(image)
    if shape is None:  # not an image: fails as fast in the batch as anywhere
        return FIXED_MS
    width, height, alpha = shape
    return FIXED_MS + width * height * (ALPHA_NS if alpha else SLOW_NS) / 1e6


def batched(image: bytes) -> bool:
    """True for a drawing, which joins a batch; False for anything that may take longer."""
    return estimate_ms(image) <= MAX_BATCHED_MS


def opaque_canvas(image: bytes) -> bool:
    """A batched PNG with alpha whose background is not transparent, and too big for the ink
    map's path to cost like a drawing: it is answered from the pool (in the batch thread)."""
    shape = header(image)
    if shape is None or not shape[2]:
        return False
    if FIXED_MS + shape[0] * shape[1] * SLOW_NS / 1e6 <= MAX_BATCHED_MS:
        return False
    from digitrec.vision import preprocess

    if preprocess.canvas_alpha(image) is not None:  # png.alpha: Chromium's canvases, ~0.1 ms
        return False
    try:
        with Image.open(io.BytesIO(image)) as opened:
            alpha = np.asarray(opened.getchannel("A"))
    except Exception:  # a broken file: it fails as fast in the batch
        return False
    return not preprocess._transparent(alpha)


class Rerouted(Exception):
    """Taken out of a batch (opaque_canvas): answered from the photo pool instead."""


class Batcher:
    """`await batcher.predict(model, image)`: one request's Prediction, or its own error raised."""

    def __init__(self, runner: Runner, max_batch: int = MAX_BATCHED):
        self.runner, self.max_batch = runner, max_batch
        self.queue: list[tuple[Model, bytes, asyncio.Future[Any]]] = []
        self.worker: asyncio.Task[None] | None = None  # drains the queue; None when it is empty

    async def predict(self, model: Model, image: bytes) -> Prediction:
        try:
            answer = await self._predict(model, image)
        except ImageError:
            metrics.refused(ROUTE, model)
            raise
        metrics.answered(ROUTE, model, answer)
        return answer

    async def _predict(self, model: Model, image: bytes) -> Prediction:
        if not batched(image):
            metrics.BATCH_ROUTE.labels("pool").inc()
            return await self.runner(model.predict, image)
        future = asyncio.get_running_loop().create_future()
        self.queue.append((model, image, future))
        if self.worker is None:
            # Its own context: not the first request's (its work budget, digitrec.work).
            self.worker = asyncio.create_task(self._drain(), context=contextvars.Context())
        answer = await future
        if isinstance(answer, Rerouted):
            metrics.BATCH_ROUTE.labels("rerouted").inc()
            return await self.runner(model.predict, image)
        if isinstance(answer, Exception):
            raise answer  # this request's own error: the handlers in app.py answer it
        metrics.BATCH_ROUTE.labels("batch").inc()
        return answer

    async def _drain(self) -> None:
        try:
            while self.queue:
                # One model per app, but a test may swap it: a batch never mixes two.
                model, n = self.queue[0][0], 1
                while n < min(len(self.queue), self.max_batch) and self.queue[n][0] is model:
                    n += 1
                batch, self.queue = self.queue[:n], self.queue[n:]
                metrics.BATCH_SIZE.observe(n)
                try:
                    answers = await self.runner.batch(run_batch, model, [q[1] for q in batch])
                    if len(answers) != len(batch):
                        raise RuntimeError(f"{len(answers)} answers to {len(batch)} images")
                except Exception as e:  # a bug in the batch call itself: each request a 500
                    answers = [e] * len(batch)
                for (_, _, future), answer in zip(batch, answers, strict=True):
                    if not future.done():  # a request cancelled while it waited
                        future.set_result(answer)
        finally:
            self.worker = None


def run_batch(model: Model, images: list[bytes]) -> list[Any]:
    """model.predict_each on the images that are on the fast path; Rerouted for the others."""
    out: list[Any] = [Rerouted() if opaque_canvas(image) else None for image in images]
    kept = [image for image, o in zip(images, out, strict=True) if o is None]
    answers = iter(model.predict_each(kept) if kept else [])
    return [o if o is not None else next(answers) for o in out]
