"""The Python API: what a notebook or a script calls, re-exported by the package.

    import digitrec
    model = digitrec.load()                      # the best shipped model
    model.predict("seven.png").digit             # 7
    model.read("cheque-amount.jpg").text         # "1907"
    run = digitrec.fit("fast", max_steps=20)     # a run directory, as `digitrec train` writes
    digitrec.load(run).evaluate().accuracy       # on the MNIST test split

A thin layer over predictor.Predictor, train.train and evaluate.evaluate: their results
(Prediction, Reading, Run, Report) come back as they are, and their fields are the CLI's JSON
fields. Predicting and reading need only the serving install (ONNX Runtime, no torch);
`fit`, and loading a run directory not yet exported, need the `train` extra.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from PIL import Image

from digitrec import data as datasets
from digitrec.answers import Prediction, Reading
from digitrec.config import TrainConfig, recipe_config
from digitrec.errors import DigitrecError, ImageError
from digitrec.evaluate import Report
from digitrec.extras import install_hint
from digitrec.predictor import Predictor

if TYPE_CHECKING:
    from digitrec.training.loop import Run

# The public API (re-exported by the package, and the API reference's page: `make docs`).
__all__ = ["Image_", "Ink", "Model", "Prediction", "Reading", "Report", "as_source", "fit", "load"]

Image_ = bytes | str | os.PathLike[str] | Image.Image | np.ndarray
"""What the API takes as an image: a path, the file's bytes, a PIL image or a NumPy array."""

Ink = Literal["auto", "light", "dark"]
"""Which way round the ink is in an image given to the API (`ink=`):

- `"auto"` (the default): an array whose border is black (at most 2% of full scale, as MNIST
  and Kaggle store digits, and a Dataset's `images[i]`) is taken as `"light"`, any other array
  as `"dark"`; files, bytes and PIL images are always judged from the picture.
- `"light"`: light ink on a dark background, the pixel values are the ink (0-255 for uint8,
  [0, 1] for floats): used as they are, with no paper or lighting to remove.
- `"dark"`: a picture, dark ink on light paper as `np.asarray(Image.open(p).convert("L"))`
  gives a photo or a scan: it goes the way an image file goes (paper and uneven lighting
  removed, the polarity checked from the picture), so light ink on a dark board works too.
"""
INKS = ("auto", "light", "dark")
BLACK_BORDER = 0.02  # of full scale: the border median under which an array is an ink map


def as_source(
    image: Image_, ink: Ink = "auto"
) -> bytes | str | os.PathLike[str] | Image.Image | np.ndarray:
    """An image as the predictor takes it: an ink map ((H, W) float in [0, 1], ink high) for
    an array read as `"light"`, a PIL image for one read as `"dark"`, anything else as it is
    (see `Ink`). Either is then brought to 28x28 with its centre of mass at the centre."""
    if ink not in INKS:
        raise DigitrecError(f"ink={ink!r}: choose from {', '.join(map(repr, INKS))}")
    if isinstance(image, np.ndarray):
        return _array_source(image, ink)
    if isinstance(image, bytes | str | os.PathLike | Image.Image):
        if ink == "light":  # the pixel values are the ink: read them as an array
            from digitrec.vision.preprocess import load_image

            picture = image if isinstance(image, Image.Image) else load_image(image)
            return np.asarray(picture.convert("L"), np.float32) / 255
        return image
    raise ImageError(
        f"not an image: {type(image).__name__} (give a path, bytes, a PIL image or an array)",
        status=422,
    )


def _array_source(image: np.ndarray, ink: Ink) -> np.ndarray | Image.Image:
    colour = image.ndim == 3 and image.shape[2] in (3, 4)  # (H, W, 3) RGB or (H, W, 4) RGBA
    if image.ndim != 2 and not colour:
        raise ImageError(
            f"an image array is (H, W), or (H, W, 3|4) in colour, got shape {image.shape}"
            " (for many images, give a list or an (N, H, W) array to predict_many)",
            status=422,
        )
    if image.dtype == np.uint8:
        scaled = image.astype(np.float32) / 255
    elif np.issubdtype(image.dtype, np.floating):
        scaled = np.clip(image.astype(np.float32), 0, 1)
    else:
        raise ImageError(
            f"an image array is uint8 (0-255) or float ([0, 1]), got {image.dtype}", status=422
        )
    if colour and ink == "light":
        scaled = scaled[..., :3].mean(axis=2)
    elif ink == "auto" and not colour:
        frame = np.concatenate([scaled[0], scaled[-1], scaled[:, 0], scaled[:, -1]])
        ink = "light" if float(np.median(frame)) <= BLACK_BORDER else "dark"
    if ink == "light":
        return scaled
    # a picture: the image file's way (Pillow's modes: L, RGB, RGBA)
    return Image.fromarray(np.round(scaled * 255).astype(np.uint8))


class Model:
    """A loaded model: `name`, `card` (its model card as a dict) and the ways to ask it."""

    def __init__(self, predictor: Predictor):
        self.predictor = predictor
        self.name: str = predictor.name
        self.card: dict[str, Any] = predictor.card

    def __repr__(self) -> str:
        return f"digitrec.Model({self.name!r})"

    def predict(self, image: Image_, ink: Ink = "auto") -> Prediction:
        """One digit: `digit` (None when blank or uncertain, with `reason`), `confidence`,
        `probabilities` (10), `candidates` (top 3), `preprocessed` (the 28x28 the model saw).
        `ink`: which way round the ink is (`Ink`; by default found from the image)."""
        return self.predictor.predict(as_source(image, ink))

    def predict_many(
        self, images: Iterable[Image_] | np.ndarray, ink: Ink = "auto"
    ) -> list[Prediction]:
        """Many images in one batch, answers in their order; an (N, H, W) array is N images.
        The first image that cannot be used raises its ImageError. `ink`: as for `predict`,
        for each image."""
        return self.predictor.predict_many([as_source(i, ink) for i in images])

    def read(self, image: Image_, ink: Ink = "auto") -> Reading:
        """A written number: `text` (None with `reason` when empty or a digit is uncertain),
        `confidence`, `digits` left to right, each with its `box` (x, y, w, h) in the image.
        `ink`: as for `predict`."""
        return self.predictor.read(as_source(image, ink))

    def evaluate(
        self,
        data: str | os.PathLike[str] | datasets.Dataset | None = None,
        output: str | os.PathLike[str] | None = None,
        tta: bool = False,
    ) -> Report:
        """Score on labelled data (a Dataset or any file `--data` takes; default: the MNIST
        test split): `accuracy`, `errors`, `total`, `ece`, `per_class`, `confusion`, `mistakes`.
        With `output`, also writes report.json and the figures there, as `digitrec evaluate`."""
        from digitrec.evaluate import evaluate

        if data is not None and not isinstance(data, datasets.Dataset):
            data = datasets.load(os.fspath(data), "test")
        try:
            return evaluate(
                self.predictor, data, Path(output) if output is not None else None, tta=tta
            )
        except ModuleNotFoundError as e:  # scikit-learn, matplotlib: the train extra
            hint = install_hint(e, "Model.evaluate")
            if hint is None:
                raise
            raise hint from None

    def submit(
        self,
        data: str | os.PathLike[str] | datasets.Dataset,
        output: str | os.PathLike[str],
        tta: bool = False,
    ) -> np.ndarray:
        """A Kaggle "Digit Recognizer" submission, as `digitrec submit`: the images of `data`
        (Kaggle's test.csv, or a Dataset) answered, and `output` written as `ImageId,Label`
        (ImageId from 1). Returns the labels, (N,) int."""
        from digitrec.submit import write_submission

        if not isinstance(data, datasets.Dataset):
            data = datasets.load(os.fspath(data), "test")
        return write_submission(self.predictor, data, Path(output), tta=tta)


def load(model: str | os.PathLike[str] | Run | None = None, threads: int = 0) -> Model:
    """A shipped model by name ("best", "fast", ...), a run directory (or the Run `fit`
    returned), or None for the best shipped model. `threads`: ONNX Runtime's threads for one
    batch, 0 for every core."""
    if model is not None and not isinstance(model, str | os.PathLike):
        model = model.directory
    return Model(Predictor.load(model, threads=threads))  # ModelError: no such model


def fit(recipe: str | None = "fast", **settings: Any) -> Run:
    """Train with a recipe ("tutorial", "fast", "best"; None: TrainConfig's defaults), any
    setting overridden by name (epochs=3, seed=1, max_steps=20, output="runs/mine", ...), as
    `digitrec train --recipe R` does. Writes the run directory and returns the Run: `directory`,
    `config`, `history` (per epoch), `metrics` (val/test accuracy, parameters, ...). Needs the
    `train` extra (PyTorch)."""
    try:
        from digitrec.training.loop import train
    except ModuleNotFoundError as e:
        hint = install_hint(e, "digitrec.fit")
        if hint is None:
            raise
        raise hint from None
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise DigitrecError(
            f"unknown setting(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})"
        )
    if isinstance(settings.get("output"), os.PathLike):
        settings["output"] = str(settings["output"])
    args = ", ".join([repr(recipe)] + [f"{k}={v!r}" for k, v in settings.items()])
    return train(recipe_config(recipe, **settings), command=f"digitrec.fit({args})")
