"""The models folder's owner (models_dir.ModelsDir): a model's files, its JSON and Markdown
cards, the default mark; and a renamed model's old name, which still loads it with a warning."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from digitrec import modelcard, shipped
from digitrec.models_dir import ALIASES, ModelsDir
from digitrec.predictor import Predictor


def a_card(name: str, files: dict[str, str], default: bool = False) -> dict[str, Any]:
    """The shipped `fast` card, renamed, its checksums those of the files just written."""
    card = json.loads((shipped.MODELS_DIR / "fast.json").read_text())
    return {**card, "name": name, "default": default, "sha256": files}


def test_a_model_its_cards_and_the_default_are_written_through_the_owner(tmp_path: Path) -> None:
    import torch

    models = ModelsDir(tmp_path / "models")
    graph = (shipped.MODELS_DIR / "fast.onnx").read_bytes()
    files = models.write_model("one", graph, {"member0.w": torch.ones(3)}, {"members": "1"})
    assert set(files) == {"one.onnx", "one.safetensors"}
    assert models.onnx("one").read_bytes() == graph
    models.write_card(a_card("one", files, default=True))
    assert models.card("one")["sha256"] == files
    md = models.markdown_file("one").read_text()
    assert md == modelcard.markdown(models.card("one"), modelcard.onnx_opset(models.onnx("one")))
    assert "# digitrec `one`" in md and files["one.onnx"] in md
    assert shipped.resolve("one", models.path).onnx == models.onnx("one")  # the sha256 checks

    models.write_card(a_card("two", models.write_model("two", graph)))
    assert shipped.default_name(models.path) == "one"
    models.set_default("two")
    assert shipped.default_name(models.path) == "two"
    assert models.card("one")["default"] is False and models.card("two")["default"] is True
    assert not list(models.path.glob(".*tmp"))  # written atomically, nothing left behind


def test_the_reader_card_gets_no_markdown_card_and_keeps_no_default(tmp_path: Path) -> None:
    models = ModelsDir(tmp_path)
    files = models.write_model("reader", (shipped.MODELS_DIR / "reader.onnx").read_bytes())
    models.write_card({"name": "reader", "kind": "sequence-reader", "sha256": files})
    graph = (shipped.MODELS_DIR / "fast.onnx").read_bytes()
    models.write_card(a_card("one", models.write_model("one", graph)))
    models.set_default("one")
    assert "default" not in models.card("reader")  # a card with no default mark is left alone
    assert not models.markdown_file("reader").exists()
    assert shipped.shipped_cards(models.path) == [models.card("one")]


def test_the_card_is_rendered_section_by_section_in_order() -> None:
    card = a_card("one", {"one.onnx": "ab" * 32})
    del card["selection"]
    text = modelcard.markdown(card, opset=17)
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings == [
        "## Intended use",
        "## Data",
        "## Results",
        "## Limitations",
        "## Training",
        "## ONNX graph: input and output",
        "## Checksums (sha256)",
        "## License",
    ]
    assert "the real dev sets were not scored for this card." in text  # no selection parts
    assert "`one.onnx` (float32), ONNX opset 17." in text
    assert text.endswith("UCI Machine Learning Repository).\n")
    for section in modelcard.SECTIONS:  # each section starts a paragraph of its own
        assert section(modelcard.Card(card, 17))[0] == ""


def test_the_mnist_best_ensemble_keeps_its_old_name_for_a_release() -> None:
    new = ALIASES["best-x2"]
    assert new == "mnist-best" and not (shipped.MODELS_DIR / "best-x2.json").exists()
    with pytest.warns(DeprecationWarning, match="'best-x2' is deprecated: it is now 'mnist-best'"):
        old = shipped.resolve("best-x2")
    assert old.name == new and old.onnx == shipped.resolve(new).onnx and old.card["name"] == new
    with pytest.warns(DeprecationWarning):
        by_old = Predictor.load("best-x2")
    images = np.random.default_rng(0).random((4, 28, 28), dtype=np.float32)
    expected = Predictor.load(new).predict_array(images)
    assert np.array_equal(by_old.predict_array(images), expected)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new name: no warning
        shipped.resolve(new)


def test_the_cli_says_on_stderr_that_the_old_name_is_deprecated(tmp_path: Path) -> None:
    image = tmp_path / "blank.png"
    from PIL import Image

    Image.new("L", (28, 28), 255).save(image)
    done = subprocess.run(
        [sys.executable, "-m", "digitrec", "predict", str(image), "--model", "best-x2"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if "deprecated" in line]
    assert len(lines) == 1 and "'best-x2'" in lines[0] and "'mnist-best'" in lines[0], done.stderr


def test_a_model_shipped_under_an_old_name_is_that_model(tmp_path: Path) -> None:
    models, graph = ModelsDir(tmp_path), (shipped.MODELS_DIR / "fast.onnx").read_bytes()
    for name in ("best-x2", "mnist-best"):
        models.write_card(a_card(name, models.write_model(name, graph)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert shipped.resolve("best-x2", tmp_path).name == "best-x2"
