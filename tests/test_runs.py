"""The run directory (runs.py, its only reader and writer): each file RunDir owns written and
read back in a temporary directory, and a missing or damaged file a clear ModelError naming it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from digitrec.config import recipe_config
from digitrec.errors import ModelError
from digitrec.runs import RunDir


def written(path: Path) -> RunDir:
    """A finished run's files, as `train` writes them (the weights: any bytes)."""
    run = RunDir(path)
    path.mkdir()
    cfg = recipe_config("fast", seed=3)
    run.write_config({"train": dataclasses.asdict(cfg), "command": "digitrec train --seed 3"})
    run.write_history([{"epoch": 1, "val_accuracy": 0.98}, {"epoch": 2, "val_accuracy": 0.99}])
    run.weights.write_bytes(b"weights")
    run.write_metrics({"test_accuracy": 0.9912, "temperature": 1.1})
    return run


def test_what_is_written_is_read_back(tmp_path: Path) -> None:
    run = written(tmp_path / "fast-s3")
    assert run.exists() and run.is_finished and run.name == "fast-s3"
    assert run.config == recipe_config("fast", seed=3)
    assert run.split_key == recipe_config("fast", seed=3).split_key
    assert run.command == "digitrec train --seed 3"
    assert run.document["command"] == "digitrec train --seed 3"
    assert [e["val_accuracy"] for e in run.history] == [0.98, 0.99]
    assert run.metrics == {"test_accuracy": 0.9912, "temperature": 1.1}
    assert run.members == [run]  # a single run is its own only member
    assert {p.name for p in tmp_path.joinpath("fast-s3").iterdir()} == {
        "config.json",
        "history.json",
        "metrics.json",
        "model.safetensors",
    }
    assert (run.checkpoint.name, run.onnx.name, run.curves.name) == (
        "checkpoint.safetensors",
        "model.onnx",
        "curves.png",
    )


def test_an_unfinished_run_has_no_metrics_and_is_not_finished(tmp_path: Path) -> None:
    run = written(tmp_path / "run")
    (run.path / "metrics.json").unlink()
    (run.path / "history.json").unlink()
    assert run.exists() and not run.is_finished
    assert run.metrics == {} and run.history == []


def test_an_ensemble_names_its_members(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "ensemble")
    run.path.mkdir()
    members = [written(run.path / f"member-{k}") for k in range(2)]
    assert run.members == members  # unfinished: the member-* folders found
    run.write_config({"train": {}, "members": ["member-0", "member-1"]})
    run.write_metrics({"test_accuracy": 0.995})
    assert run.members == members and run.is_finished  # no model.safetensors of its own


def test_a_folder_without_config_json_is_not_a_run(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    assert not run.exists()
    with pytest.raises(ModelError, match=r"not a run directory \(no config.json\)") as e:
        run.config  # noqa: B018
    assert str(tmp_path) in str(e.value)


@pytest.mark.parametrize("name", ["config.json", "history.json", "metrics.json"])
def test_a_damaged_file_is_a_model_error_naming_it(tmp_path: Path, name: str) -> None:
    run = written(tmp_path / "run")
    (run.path / name).write_text('{"train": {"epochs": 1')  # cut short
    with pytest.raises(ModelError, match="not valid JSON") as e:
        _ = run.config, run.history, run.metrics
    assert str(run.path / name) in str(e.value)
