"""The Markdown model card (modelcard.py): what `ship` writes beside the JSON card, and the
shipped ones kept equal to what the generator makes from their JSON cards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from digitrec import modelcard, shipped


def front_matter(text: str) -> dict:
    head, sep, _ = text.removeprefix("---\n").partition("\n---\n")
    assert text.startswith("---\n") and sep, "no YAML front matter"
    return dict(yaml.safe_load(head))


def test_ship_writes_a_card_in_the_common_format(trained_run: Path, tmp_path: Path) -> None:
    from digitrec.training.ship import ship

    models = tmp_path / "models"
    card = ship(trained_run, "tiny", directory=models)
    text = (models / "tiny.md").read_text()
    assert text == modelcard.markdown(card, modelcard.onnx_opset(models / "tiny.onnx"))
    meta = front_matter(text)
    assert meta["license"] == "mit" and meta["datasets"] == ["mnist"]
    (entry,) = meta["model-index"]
    assert entry["name"] == "tiny"
    results = {
        (r["dataset"]["type"], r["dataset"]["split"]): r["metrics"] for r in entry["results"]
    }
    test = {m["type"]: m["value"] for m in results[("mnist", "test")]}
    assert test["accuracy"] == pytest.approx(card["test_accuracy"], abs=1e-6)
    val = {m["type"]: m["value"] for m in results[("mnist", "validation")]}
    assert val["accuracy"] == pytest.approx(card["val_accuracy"], abs=1e-6)
    semeion = {m["type"]: m["value"] for m in results[("semeion", "dev")]}
    assert semeion["accuracy"] == card["selection"]["parts"]["semeion"]
    assert semeion["null_share"] == card["selection"]["null_share"]["semeion"]
    for section in ("## Intended use", "## Limitations", "## Training", "## ONNX graph"):
        assert f"\n{section}" in text, section
    assert card["command"] in text and card["sha256"]["tiny.onnx"] in text
    assert "ONNX opset " in text  # the onnx package comes with the training extra
    assert not list(models.glob(".*tmp"))  # written atomically, nothing left behind


@pytest.mark.parametrize(
    "json_card",
    # the digit classifiers' cards (the sequence reader's, reader.json, has its own fields)
    [p for p in sorted(shipped.MODELS_DIR.glob("*.json")) if p.stem != "reader"],
    ids=lambda p: p.stem,
)
def test_shipped_cards_match_the_generator(json_card: Path) -> None:
    """Every shipped NAME.md is what modelcard.markdown makes of NAME.json now: regenerate
    with `python tools/rescore_models.py --cards`, never edit by hand."""
    card = json.loads(json_card.read_text())
    md = json_card.with_suffix(".md")
    assert md.exists(), f"{md.name} missing: python tools/rescore_models.py --cards"
    opset = modelcard.onnx_opset(json_card.with_suffix(".onnx"))
    assert md.read_text() == modelcard.markdown(card, opset), (
        f"{md.name} differs from its JSON card: python tools/rescore_models.py --cards"
    )
    meta = front_matter(md.read_text())
    assert meta["model-index"][0]["name"] == card["name"]
