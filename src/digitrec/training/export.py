"""A run's trained model, exported to ONNX (torch side) and checked against ONNX Runtime."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from digitrec import data
from digitrec.errors import ModelError
from digitrec.files import atomic_write_bytes, load_weights
from digitrec.runs import RunDir
from digitrec.training import models

log = logging.getLogger(__name__)


class Calibrated(nn.Module):
    """Members' temperature-scaled softmax, averaged: (N, 1, 28, 28) -> (N, 10) probabilities."""

    def __init__(self, members: list[nn.Module], temperatures: list[float]):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.register_buffer("temperatures", torch.tensor(temperatures, dtype=torch.float32))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        probs = [
            torch.softmax(m(image) / self.temperatures[i], dim=1)  # type: ignore[index]
            for i, m in enumerate(self.members)
        ]
        return torch.stack(probs).mean(0)


def load_run_model(run: RunDir) -> tuple[nn.Module, dict[str, Any]]:
    """The trained model of a run directory (best validation weights) and its metrics."""
    model = models.create(run.config.model)
    model.load_state_dict(load_weights(run.weights))
    model.eval()
    return model, run.metrics


def run_members(run_dir: Path) -> tuple[list[nn.Module], list[float]]:
    """The trained model(s) of a run directory: one, or the members of an ensemble run."""
    members, temps = [], []
    for member in RunDir(run_dir).members:
        model, metrics = load_run_model(member)
        members.append(model)
        temps.append(float(metrics.get("temperature", 1.0)))
    return members, temps


def to_onnx_bytes(module: nn.Module) -> bytes:
    module.eval()
    example = torch.zeros(2, 1, 28, 28)
    f = io.BytesIO()
    torch.onnx.export(
        module,
        (example,),
        f,  # type: ignore[arg-type]
        input_names=["image"],
        output_names=["probabilities"],
        dynamic_axes={"image": {0: "batch"}, "probabilities": {0: "batch"}},
        dynamo=False,
        opset_version=17,
    )
    return f.getvalue()


def probabilities(onnx_bytes: bytes, images: np.ndarray, batch: int = 1000) -> np.ndarray:
    """(N, 28, 28) uint8 -> (N, 10) probabilities of an ONNX graph, on ONNX Runtime."""
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    out = [
        session.run(None, {"image": images[i : i + batch, None].astype(np.float32) / 255})[0]
        for i in range(0, len(images), batch)
    ]
    return np.concatenate(out) if out else np.zeros((0, 10), np.float32)


def max_difference(module: nn.Module, onnx_bytes: bytes, images: np.ndarray) -> float:
    """Largest |torch - ONNX Runtime| probability over `images` (N, 28, 28) uint8."""
    got = probabilities(onnx_bytes, images)
    worst = 0.0
    for i in range(0, len(images), 1000):
        x = images[i : i + 1000, None].astype(np.float32) / 255
        with torch.no_grad():
            expected = module(torch.from_numpy(x)).numpy()
        worst = max(worst, float(np.abs(expected - got[i : i + 1000]).max()))
    return worst


def export_run(run_dir: Path, check: bool = True, tolerance: float = 1e-4) -> Path:
    """Write run_dir/model.onnx; with check, compare with torch on the 10,000 test images."""
    if not RunDir(run_dir).exists():
        raise ModelError(f"{run_dir}: not a run directory (no config.json)")
    members, temps = run_members(run_dir)
    module = Calibrated(members, temps).eval()
    onnx_bytes = to_onnx_bytes(module)
    if check:
        diff = max_difference(module, onnx_bytes, data.load_mnist("test").images)
        log.info("ONNX Runtime vs torch on the test set: max probability difference %.2e", diff)
        if diff >= tolerance:
            raise ModelError(f"ONNX export disagrees with torch: max difference {diff:.2e}")
        info_path = run_dir / "export.json"
        atomic_write_bytes(info_path, json.dumps({"max_difference": diff}).encode())
    out = RunDir(run_dir).onnx
    atomic_write_bytes(out, onnx_bytes)
    return out
