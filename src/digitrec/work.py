"""A budget for the work one request does: a deadline, a cancel flag, a cap on ink parts.

The server (serve/edge.py) gives each /read request a `Budget`; it reaches the thread that does
the work through a context variable (anyio's and the Runner's threads run in the request's
context). `Predictor.read` calls `check()` between its stages and `check_parts(ink)` before
segmentation, whose cost grows with the number of ink parts; vision/segment.py calls `check()`
within its loops. Past the budget the request is answered 422 with the reason, and when the
client has gone (serve/protocol.py cancels the budget) the work stops at the next check.
Without a budget (the CLI, the Python API) every check is a no-op.
"""

from __future__ import annotations

import threading
import time
from contextvars import ContextVar
from dataclasses import dataclass, field

import numpy as np

from digitrec.errors import ImageError


@dataclass
class Budget:
    seconds: float = 10.0  # from the budget's start to the last check that passes
    parts: int = 300  # separate ink parts (8-connected) an image may hold to be segmented
    start: float = field(default_factory=time.monotonic)
    cancelled: threading.Event = field(default_factory=threading.Event)

    def cancel(self) -> None:
        """The client went away: the work stops at its next check."""
        self.cancelled.set()

    def check(self) -> None:
        if self.cancelled.is_set():
            raise ImageError("the client closed the connection; the work was stopped", status=422)
        if time.monotonic() - self.start > self.seconds:
            raise ImageError(
                f"reading this image took over {self.seconds:g} s, this server's budget per "
                "image; send a smaller or simpler image",
                status=422,
            )

    def check_parts(self, ink: np.ndarray, threshold: float) -> None:
        """Refuse an ink map of more than `parts` separate marks before it is segmented."""
        self.check()
        from digitrec.vision.imageops import label  # OpenCV: linear in the pixels

        _, count = label(np.asarray(ink) > threshold)
        if count > self.parts:
            raise ImageError(
                f"the image holds {count:,} separate marks; at most {self.parts:,} are read "
                "(a written number has a few per digit)",
                status=422,
            )


current: ContextVar[Budget | None] = ContextVar("digitrec_budget", default=None)


def check() -> None:
    """The current request's budget checked; nothing without one."""
    budget = current.get()
    if budget is not None:
        budget.check()


def check_parts(ink: np.ndarray, threshold: float) -> None:
    budget = current.get()
    if budget is not None:
        budget.check_parts(ink, threshold)
