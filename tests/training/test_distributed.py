"""Training in several processes (DistributedDataParallel on gloo): two local processes take the
steps one process takes, and one run directory comes out."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

from digitrec import data
from digitrec.files import load_weights


def train(tmp_path: Path, name: str, *extra: str) -> Path:
    out = tmp_path / name
    done = subprocess.run(
        [sys.executable, "-m", "digitrec", "train", "--recipe", "fast",
         "--data", str(tmp_path / "train.csv"), "--val-fraction", "0.2", "--epochs", "2",
         "--seed", "2", "-o", str(out), *extra],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"run directory: {out}" in done.stdout
    return out


def test_two_processes_train_the_model_one_process_trains(tmp_path: Path) -> None:
    images = data.load_mnist("train")
    data.write_csv(
        data.Dataset(images.images[:2000], images.labels[:2000], "mnist[:2000]"),
        tmp_path / "train.csv",
    )
    one = train(tmp_path, "one", "--threads", "1")
    two = train(tmp_path, "two", "--nproc", "2")
    config = json.loads((two / "config.json").read_text())
    assert config["environment"]["processes"] == 2
    for name in ("config.json", "history.json", "metrics.json", "model.safetensors", "model.onnx"):
        assert (two / name).is_file(), name
    assert not list(two.glob("*.tmp*"))  # one writer: no leftovers of a second
    # the whitened CNN has no batch norm: each process's half-batch gradient, averaged, is the
    # whole batch's, so the two runs differ only by the order of float sums
    a, b = load_weights(one / "model.safetensors"), load_weights(two / "model.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-4) for k in a)
    history = [json.loads((r / "history.json").read_text()) for r in (one, two)]
    assert [h["images"] for h in history[1]] == [h["images"] for h in history[0]] == [1600, 1600]
    metrics = [json.loads((r / "metrics.json").read_text()) for r in (one, two)]
    assert abs(metrics[0]["val_accuracy"] - metrics[1]["val_accuracy"]) <= 1 / 400
