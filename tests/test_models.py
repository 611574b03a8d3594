"""The registry, parametrized: every model maps (B, 1, 28, 28) to (B, 10) logits."""

from __future__ import annotations

import pytest
import torch

from digitrec import models


@pytest.mark.parametrize("name", sorted(models.REGISTRY))
def test_shapes_and_gradients(name: str) -> None:
    model = models.create(name)
    x = torch.rand(4, 1, 28, 28, requires_grad=True)
    logits = model(x)
    assert logits.shape == (4, 10)
    logits.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_seed_is_the_tutorials_cnn() -> None:
    # the tutorial's Keras summary: 43,578 trainable parameters
    assert models.count_parameters(models.create("seed")) == 43_578


@pytest.mark.parametrize(("name", "at_most"), [("fast", 60_000), ("best", 1_000_000)])
def test_parameter_budgets(name: str, at_most: int) -> None:
    assert models.count_parameters(models.create(name)) <= at_most


def test_unknown_model_is_named() -> None:
    with pytest.raises(KeyError, match="unknown model 'nope'; choose from best, fast, seed"):
        models.create("nope")
