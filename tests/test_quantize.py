"""int8 graphs: `digitrec ship --int8` quantizes, scores and refuses what loses accuracy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from digitrec import data, shipped
from digitrec.errors import ModelError
from digitrec.predictor import Predictor
from digitrec.quantize import quantize_int8, single_channel_convs
from digitrec.training import ship
from digitrec.training.export import export_run, probabilities

CANVAS7 = Path(__file__).resolve().parents[1] / "benchmarks" / "canvas7.png"


def test_int8_ship_keeps_accuracy_and_records_both(tmp_path: Path, trained_run: Path) -> None:
    models = tmp_path / "models"
    card = ship.ship(trained_run, "fast8", directory=models, int8=True)
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert card["precision"] == "int8" and card["ship_command"].endswith("--name fast8 --int8")
    assert card["float32"]["val_accuracy"] == metrics["val_accuracy"]
    assert abs(card["val_accuracy"] - metrics["val_accuracy"]) <= ship.INT8_TOLERANCE
    assert card["test_accuracy"] >= 0.985 and card["calibration"]["test_ece"] < 0.02
    graph = onnx.load(str(models / "fast8.onnx"))
    nodes = list(graph.graph.node)
    ops = [n.op_type for n in nodes]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    # The whitening conv reads the image: it stays float (no DequantizeLinear feeds its weight).
    (first,) = single_channel_convs(graph)
    made_by = {o: n.op_type for n in nodes for o in n.output}
    assert made_by.get(next(n for n in nodes if n.name == first).input[1]) is None
    assert sum(op == "Conv" for op in ops) == 2  # and the other conv is quantized (QDQ)
    assert any(made_by.get(n.input[1]) == "DequantizeLinear" for n in nodes if n.op_type == "Conv")
    float_size = (trained_run / "model.onnx").stat().st_size  # ship exported it there
    assert (models / "fast8.onnx").stat().st_size < 0.5 * float_size
    # The card's test figure is what the shipped graph scores now, and it reads a drawn 7.
    model = Predictor(shipped.resolve("fast8", models))
    test = data.load_mnist("test")
    accuracy = (model.predict_array(test.images / np.float32(255)).argmax(1) == test.labels).mean()
    assert accuracy == pytest.approx(card["test_accuracy"], abs=2e-4)
    assert model.predict(CANVAS7.read_bytes()).digit == 7


def test_int8_graph_that_loses_accuracy_is_not_shipped(
    tmp_path: Path, trained_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = tmp_path / "models"
    ship.ship(trained_run, "fast8", directory=models)  # shipped before, in float
    before = {p.name: p.read_bytes() for p in models.iterdir()}
    monkeypatch.setattr(ship, "INT8_TOLERANCE", -0.5)  # any int8 graph "loses" too much
    with pytest.raises(ModelError, match="the int8 graph loses .* validation accuracy"):
        ship.ship(trained_run, "fast8", directory=models, int8=True)
    assert {p.name: p.read_bytes() for p in models.iterdir()} == before  # nothing lost
    assert json.loads((models / "fast8.json").read_text())["precision"] == "float32"


def test_quantized_graph_agrees_with_the_float_one(trained_run: Path) -> None:
    float_graph = export_run(trained_run, check=False).read_bytes()
    images = data.load_mnist("test").images[:2000]
    int8 = quantize_int8(float_graph, data.load_mnist("train").images[:256])
    a, b = probabilities(float_graph, images), probabilities(int8, images)
    assert (a.argmax(1) == b.argmax(1)).mean() >= 0.995
    assert np.allclose(b.sum(1), 1, atol=1e-5)  # the softmax stays float: still probabilities
    with pytest.raises(ModelError, match="calibration images must be N x 28 x 28"):
        quantize_int8(float_graph, images[:, :14])
