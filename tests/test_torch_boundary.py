"""The torch boundary: serving, the image code and model resolution never import torch (the core
install has none), and never `digitrec.training`, where every torch import lives."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "digitrec"
TORCH_FREE = [
    *sorted((PACKAGE / "vision").glob("*.py")),
    *sorted((PACKAGE / "serve").glob("*.py")),
    *(PACKAGE / name for name in ("predictor.py", "answers.py", "shipped.py", "errors.py")),
    *(PACKAGE / name for name in ("runs.py", "config.py")),  # a run directory, read without torch
]


def imported(path: Path) -> set[str]:
    """Every module a file imports, at its top or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


@pytest.mark.parametrize("path", TORCH_FREE, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_torch_free_modules_import_neither_torch_nor_training(path: Path) -> None:
    crossing = sorted(
        n
        for n in imported(path)
        if n.split(".")[0] == "torch" or n.split(".")[:2] == ["digitrec", "training"]
    )
    assert not crossing, f"{path.name} imports {crossing}"


def test_the_real_app_and_a_run_directory_answer_without_torch(tmp_path: Path) -> None:
    """In a fresh interpreter: the app with its lifespan (settings, model load, batcher), one
    real POST /api/v1/predict of a drawn 7, one real /api/v1/read, and a run directory
    resolved as a model. Then torch, and any training module, must be absent."""
    run = tmp_path / "run"
    run.mkdir()
    models = PACKAGE.parents[1] / "models"
    shutil.copy(models / "fast.onnx", run / "model.onnx")
    (run / "config.json").write_text(json.dumps({"train": {"model": "whitened"}}))
    (run / "metrics.json").write_text(json.dumps({"val_accuracy": 0.99, "temperature": 1.0}))
    code = f"""
import io, json, sys
from PIL import Image, ImageDraw
from fastapi.testclient import TestClient
from digitrec.serve import Settings, create_app
from digitrec.predictor import Predictor

image = Image.new("L", (280, 280), 255)
ImageDraw.Draw(image).line([(70, 60), (210, 60), (120, 230)], fill=0, width=22)
png = io.BytesIO()
image.save(png, "PNG")
settings = Settings(data_dir={str(tmp_path / "data")!r}, model="fast")
with TestClient(create_app(settings)) as client:
    answer = client.post("/api/v1/predict", content=png.getvalue(),
                         headers={{"content-type": "image/png"}})
    read = client.post("/api/v1/read", files={{"file": ("n.png", png.getvalue(), "image/png")}})
from_run = Predictor.load({str(run)!r}).predict(image)
crossed = sorted(m for m in sys.modules if m.split(".")[0] == "torch"
                 or m.split(".")[:2] == ["digitrec", "training"])
print(json.dumps({{"status": answer.status_code, "digit": answer.json().get("digit"),
                  "read": read.status_code, "run_digit": from_run.digit, "crossed": crossed}}))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == 200 and result["digit"] == 7, result
    assert result["read"] == 200 and result["run_digit"] == 7, result
    assert result["crossed"] == [], result
