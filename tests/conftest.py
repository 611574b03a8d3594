"""Shared fixtures: a small trained run (a few hundred steps) reused by the CLI and model tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fast recipe, whole (1.6 epochs, 338 steps, ~6 s on 2 cores): a real run."""
    from digitrec.train import recipe_config, train

    out = tmp_path_factory.mktemp("runs") / "fast"
    train(recipe_config("fast", output=str(out), seed=1))
    return out


def benchmark(name: str) -> ModuleType:
    """A script of benchmarks/, loaded from its file: benchmarks/ on sys.path would hide the
    standard library's `http` behind benchmarks/http.py."""
    path = Path(__file__).parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
