"""Micro-batching: /predict requests that arrive while the model is busy go together.

A worker answers one batch at a time: while a batch runs (in a thread, off the event loop),
the requests that come in wait in a queue, and the next batch takes all of them. Under load
that is one thread hop and one ONNX Runtime call for many requests instead of one each (a hop
per request cost ~0.15 ms of CPU, and a batch of 16 runs the models in about 60% (fast) and 80%
(two `best` members) of the time of 16 single runs); with one request at a time it is a batch
of one and adds no wait. One batch at a time because a worker has a core at most: a second thread
would only contend for the GIL.
"""

from __future__ import annotations

import asyncio
import io
import warnings
from typing import TYPE_CHECKING, Any

from PIL import Image

from digitrec.errors import ImageError
from digitrec.serve import metrics
from digitrec.vision import png

if TYPE_CHECKING:
    from digitrec.predictor import Prediction
    from digitrec.serve.deps import Model, Runner

# A batch is preprocessed image by image in one thread call; this bounds how long the requests
# at its end wait (32 drawn canvases: a few tens of ms).
MAX_BATCHED = 32
# What joins a batch: a drawing. Anything bigger (a photo, a huge canvas, a strip) takes up to
# a second to decode and preprocess: it runs in the pool beside the batches (deps.Runner), so
# the drawings never wait behind it. Judged from the header, before any decoding, as the size
# of a body says little (a 48 KB PNG can hold 25 megapixels).
MAX_BATCHED_BYTES = 256 * 1024
MAX_BATCHED_PIXELS = 1_200_000  # a PNG canvas: a 360-px canvas at a phone's 3x is 1,080^2
MAX_BATCHED_PHOTO = 300_000  # any other format (goes the long way, not png.alpha's): 550^2
ROUTE = "/api/v1/predict"  # what the answers are counted under (metrics.answered)


def batched(image: bytes) -> bool:
    """True for a drawing, which joins a batch; False for anything that may take longer."""
    if len(image) > MAX_BATCHED_BYTES:
        return False
    shape = png.size(image)
    if shape is not None:
        return shape[0] * shape[1] <= MAX_BATCHED_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a decompression bomb's: refused where decoded
            with Image.open(io.BytesIO(image)) as header:  # reads the header alone
                width, height = header.size
    except Exception:  # not an image: fails as fast in the batch as anywhere
        return True
    return width * height <= MAX_BATCHED_PHOTO


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
            return await self.runner(model.predict, image)
        future = asyncio.get_running_loop().create_future()
        self.queue.append((model, image, future))
        if self.worker is None:
            self.worker = asyncio.create_task(self._drain())
        answer = await future
        if isinstance(answer, Exception):
            raise answer  # this request's own error: the handlers in app.py answer it
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
                    answers = await self.runner.batch(model.predict_each, [q[1] for q in batch])
                    if len(answers) != len(batch):
                        raise RuntimeError(f"{len(answers)} answers to {len(batch)} images")
                except Exception as e:  # a bug in the batch call itself: each request a 500
                    answers = [e] * len(batch)
                for (_, _, future), answer in zip(batch, answers, strict=True):
                    if not future.done():  # a request cancelled while it waited
                        future.set_result(answer)
        finally:
            self.worker = None
