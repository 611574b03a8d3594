"""Shared fixtures: a small trained run (a few hundred steps) reused by the CLI and model tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fast model trained for 300 steps (about 15 s on 2 cores): a real, if short, run."""
    from digitrec.train import recipe_config, train

    out = tmp_path_factory.mktemp("runs") / "fast-300"
    train(recipe_config("fast", max_steps=300, output=str(out), seed=1))
    return out
