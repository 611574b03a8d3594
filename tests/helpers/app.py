"""The app in-process with a fake predictor swapped in (dependency_overrides), and the images
the server tests send: tests/serve/test_serve_api.py, _errors, _workers and others."""

from __future__ import annotations

import base64
import io
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw

from digitrec.predictor import Prediction
from digitrec.serve import Settings, create_app
from digitrec.serve.deps import get_predictor
from digitrec.vision import preprocess

# ---------------------------------------------------------------- fakes and images


@dataclass
class FakeAnswer:
    body: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return self.body


class FakePredictor:
    """Says 7 to anything with ink; the real preprocessing decides what is an image."""

    name = "fake-net"
    card = {"name": "fake-net", "architecture": "none", "test_accuracy": 0.1}

    def predict(self, source: bytes) -> Prediction:
        image28 = preprocess.preprocess(source)
        if image28 is None:
            return Prediction(None, 0.0, [0.0] * 10, np.zeros((28, 28), np.float32), "empty")
        probabilities = [0.01] * 10
        probabilities[7] = 0.91
        return Prediction(7, 0.91, probabilities, image28, None, [(7, 0.91)])

    def predict_each(self, sources: list[bytes]) -> list[Prediction | Exception]:
        """The server's batch path: one image's error is its own (as the real predictor)."""
        answers: list[Prediction | Exception] = []
        for source in sources:
            try:
                answers.append(self.predict(source))
            except Exception as e:
                answers.append(e)
        return answers

    def read(self, source: bytes) -> FakeAnswer:
        preprocess.load_image(source)
        return FakeAnswer(
            {
                "text": "17",
                "digits": [
                    {"digit": 1, "confidence": 0.9, "box": [10, 10, 20, 60]},
                    {"digit": 7, "confidence": 0.8, "box": [40, 10, 30, 60]},
                ],
            }
        )


def png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def drawn(digit_path: list[tuple[int, int]], mode: str = "RGBA", side: int = 280) -> Image.Image:
    image = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    scale = side / 280
    points = [(x * scale, y * scale) for x, y in digit_path]
    ImageDraw.Draw(image).line(points, fill=(0, 0, 0, 255), width=int(22 * scale))
    return image.convert(mode) if mode != "RGBA" else image


def drawn_seven() -> bytes:
    """Strokes on a transparent 280x280 canvas, as the page sends them."""
    image = Image.new("RGBA", (280, 280), (0, 0, 0, 0))
    ImageDraw.Draw(image).line([(70, 60), (210, 60), (120, 230)], fill=(17, 17, 17, 255), width=20)
    return png(image)


def data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


SEVEN = drawn_seven()
BLANK = png(Image.new("RGBA", (280, 280), (0, 0, 0, 0)))
RANDOM = random.Random(0).randbytes(2000)


# ---------------------------------------------------------------- fixtures


def make_client(tmp_path: Path, predictor: object, **settings: Any) -> TestClient:
    app = create_app(Settings(data_dir=tmp_path, **settings))
    app.dependency_overrides[get_predictor] = lambda: predictor
    return TestClient(app, raise_server_exceptions=False)
