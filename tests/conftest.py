"""Shared fixtures: a small trained run (a few hundred steps) reused by the CLI and model tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fast recipe, whole (1.6 epochs, 338 steps, ~6 s on 2 cores): a real run."""
    from digitrec.train import recipe_config, train

    out = tmp_path_factory.mktemp("runs") / "fast"
    train(recipe_config("fast", output=str(out), seed=1))
    return out
