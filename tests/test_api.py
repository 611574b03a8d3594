"""The Python API (digitrec.load / fit, Model): the README's examples run as written, and what
a user of it notices: the types, the CLI's JSON fields, clear errors, no torch to predict."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import digitrec
from digitrec import data
from digitrec.errors import DigitrecError, ImageError, ModelError
from digitrec.evaluate import Report
from digitrec.predictor import Prediction, Reading

ROOT = Path(__file__).resolve().parents[1]
CANVAS7 = ROOT / "benchmarks" / "canvas7.png"
HAS_TORCH = importlib.util.find_spec("torch") is not None


def readme_examples() -> list[str]:
    """The ```python blocks of the README's "Python API" section."""
    text = (ROOT / "README.md").read_text()
    section = text.split("### Python API", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_the_readme_has_python_examples() -> None:
    blocks = readme_examples()
    assert len(blocks) >= 2
    assert any("digitrec.fit(" in b for b in blocks)
    assert any("model.read(" in b for b in blocks)


@pytest.mark.parametrize("index", range(len(readme_examples())))
def test_readme_example_runs(index: int, tmp_path: Path) -> None:
    """Each block as a script of its own, from a directory that has the repo's example files
    (the relative paths in the README) and nothing else, so a run writes only under tmp_path."""
    code = readme_examples()[index]
    if "digitrec.fit(" in code and not HAS_TORCH:
        pytest.skip("training needs the [train] extra")
    for name in ("benchmarks", "data", "tests"):
        (tmp_path / name).symlink_to(ROOT / name)
    script = tmp_path / f"example{index}.py"
    script.write_text(code)
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def model() -> digitrec.Model:
    return digitrec.load("fast")


def test_import_is_light_and_predicting_needs_no_torch() -> None:
    code = (
        "import sys, digitrec\n"
        "assert 'onnxruntime' not in sys.modules and 'torch' not in sys.modules\n"
        f"p = digitrec.load().predict({str(CANVAS7)!r})\n"
        "assert p.digit == 7, p\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_kind_of_image_gives_the_same_answer(model: digitrec.Model) -> None:
    raw = CANVAS7.read_bytes()
    image = Image.open(CANVAS7)
    answers = [
        model.predict(CANVAS7),
        model.predict(str(CANVAS7)),
        model.predict(raw),
        model.predict(image),
    ]
    assert all(isinstance(a, Prediction) for a in answers)
    assert {a.digit for a in answers} == {7}
    assert np.allclose([a.probabilities for a in answers], answers[0].probabilities, atol=1e-6)


def test_arrays_uint8_as_mnist_and_float_ink_maps_agree(model: digitrec.Model) -> None:
    mnist = data.load_mnist("test")
    for image, label in zip(mnist.images[:20], mnist.labels[:20], strict=True):
        as_uint8 = model.predict(image)
        as_float = model.predict(image.astype(np.float32) / 255)
        assert as_uint8.digit == as_float.digit == label
        assert np.allclose(as_uint8.probabilities, as_float.probabilities, atol=1e-5)
    batch = model.predict_many(mnist.images[:20])  # an (N, 28, 28) array is N images
    assert [b.digit for b in batch] == mnist.labels[:20].tolist()
    assert [b.digit for b in model.predict_many(list(mnist.images[:20]))] == [
        b.digit for b in batch
    ]


REALWORLD = ROOT / "tests" / "realworld"


def test_a_photo_as_an_array_is_answered_as_its_file_is(model: digitrec.Model) -> None:
    """np.asarray(Image.open(p).convert("L")): dark ink on paper, found by ink="auto"; the
    answers are the file's. ink="light" takes the values as the ink, as before ink= existed."""
    photos = sorted(REALWORLD.glob("photo_*.jpg"))[:12] + sorted(REALWORLD.glob("font_*.png"))[:6]
    arrays = [np.asarray(Image.open(p).convert("L")) for p in photos]
    labels = [int(p.stem.rsplit("_", 1)[1]) for p in photos]
    files = model.predict_many(photos)
    right = sum(a.digit == label for a, label in zip(files, labels, strict=True))
    assert right >= len(labels) - 2
    for ink in ("auto", "dark"):
        answers = model.predict_many(arrays, ink=ink)
        assert [a.digit for a in answers] == [f.digit for f in files], ink
        assert np.allclose([a.probabilities for a in answers], [f.probabilities for f in files])
    light = model.predict_many(arrays, ink="light")  # the paper read as ink: not the digits
    assert sum(a.digit == label for a, label in zip(light, labels, strict=True)) < len(labels) / 2
    colour = np.asarray(Image.open(photos[0]).convert("RGB"))  # (H, W, 3)
    assert model.predict(colour).digit == files[0].digit
    # MNIST's arrays (black border) are ink maps under "auto", as before
    mnist = data.load_mnist("test").images[:10]
    auto, light = model.predict_many(mnist), model.predict_many(mnist, ink="light")
    assert [a.probabilities for a in auto] == [b.probabilities for b in light]
    number = np.hstack(mnist[:4])
    assert model.read(255 - number).text == model.read(number).text == "7210"
    with pytest.raises(DigitrecError, match="ink='white': choose from 'auto', 'light', 'dark'"):
        model.predict(number, ink="white")  # type: ignore[arg-type]


def _cli_json(command: str, image: Path) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-m", "digitrec", command, str(image), "--model", "fast"]
        + ["--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    row: dict[str, object] = json.loads(done.stdout.strip().splitlines()[0])
    return row


def test_fields_are_the_cli_json_fields(model: digitrec.Model, tmp_path: Path) -> None:
    cli = _cli_json("predict", CANVAS7)
    mine = model.predict(CANVAS7).to_dict(with_image=False)
    assert cli.pop("file") == str(CANVAS7)
    mine.pop("candidates")  # the CLI lists them only for an uncertain answer
    assert mine == cli
    for key in cli:
        assert hasattr(model.predict(CANVAS7), key)

    mnist = data.load_mnist("test")
    number = tmp_path / "number.png"
    Image.fromarray(255 - np.hstack(mnist.images[:4])).save(number)  # dark ink on paper
    cli = _cli_json("read", number)
    reading = model.read(number)
    assert isinstance(reading, Reading)
    assert cli.pop("file") == str(number)
    assert reading.to_dict() == cli
    assert reading.text == "7210"
    assert model.read(np.hstack(mnist.images[:4])).text == "7210"


def test_bad_images_are_image_errors_with_a_clear_message(
    model: digitrec.Model, tmp_path: Path
) -> None:
    with pytest.raises(ImageError, match="not an image"):
        model.predict(b"this is not a picture")
    with pytest.raises(ImageError, match="no such file"):
        model.predict(tmp_path / "missing.png")
    with pytest.raises(ImageError, match=r"\(H, W\)"):
        model.predict(np.zeros((2, 28, 28), np.float32))
    with pytest.raises(ImageError, match="uint8"):
        model.predict(np.zeros((28, 28), np.int64))
    with pytest.raises(ImageError, match="not an image: int"):
        model.predict(7)  # type: ignore[arg-type]
    with pytest.raises(ImageError, match="not an image"):  # the first bad one of a batch
        model.predict_many([CANVAS7, b"junk"])
    blank = model.predict(np.zeros((40, 30), np.uint8))
    assert (blank.digit, blank.reason) == (None, "empty")


def test_load_by_name_default_and_errors() -> None:
    default = digitrec.load()
    assert isinstance(default, digitrec.Model)
    assert default.name == default.card["name"]
    assert digitrec.load("fast").card["name"] == "fast"
    with pytest.raises(ModelError, match="no such model"):
        digitrec.load("no-such-model")


def test_fit_refuses_unknown_recipes_and_settings() -> None:
    if not HAS_TORCH:
        pytest.skip("training needs the [train] extra")
    with pytest.raises(DigitrecError, match="unknown recipe .fastest.; choose from tutorial"):
        digitrec.fit("fastest")
    with pytest.raises(DigitrecError, match="unknown setting.*max_step"):
        digitrec.fit("fast", max_step=20)


@pytest.mark.skipif(not HAS_TORCH, reason="training needs the [train] extra")
def test_fit_load_evaluate_a_run(tmp_path: Path) -> None:
    run = digitrec.fit("fast", max_steps=20, val_fraction=0.02, output=tmp_path / "run")
    assert run.directory == tmp_path / "run"
    assert (run.directory / "model.safetensors").exists()
    assert run.config.recipe == "fast" and run.config.max_steps == 20
    model = digitrec.load(run)
    assert model.name == "run"
    few = data.load_mnist("test").subset(np.arange(200))
    report = model.evaluate(few, output=tmp_path / "eval")
    assert isinstance(report, Report)
    assert report.total == 200 and 0 <= report.accuracy <= 1
    saved = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert saved["accuracy"] == report.accuracy and saved["total"] == 200
    assert digitrec.load(str(run.directory)).name == "run"
    assert digitrec.load(os.fspath(run.directory)).card.get("val_accuracy") is not None
