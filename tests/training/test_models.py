"""The registry, parametrized: every model maps (B, 1, 28, 28) to (B, 10) logits."""

from __future__ import annotations

import re

import pytest
import torch

from digitrec.errors import DigitrecError
from digitrec.training import models
from tests.helpers import ROOT


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


# The README's table of architectures: | `name` | parameters (multiply-adds per image) | what |
README_ARCHITECTURES = {
    name: (int(parameters.replace(",", "")), macs)
    for name, parameters, macs in re.findall(
        r"^\| `(\w+)` \| ([\d,]+)(?: \(([\d.]+)M multiply-adds)?",
        (ROOT / "README.md").read_text(),
        re.M,
    )
}


@pytest.mark.parametrize("name", sorted(models.REGISTRY))
def test_parameters_and_multiply_adds_are_those_the_readme_states(name: str) -> None:
    assert name in README_ARCHITECTURES, f"README's table of architectures has no `{name}`"
    parameters, macs = README_ARCHITECTURES[name]
    model = models.create(name)
    assert models.count_parameters(model) == parameters
    if macs:  # as stated: millions, to the decimals the README gives
        decimals = len(macs.split(".")[1]) if "." in macs else 0
        assert round(models.count_macs(model) / 1e6, decimals) == float(macs)


def test_whitened_is_cheaper_than_the_tutorials_cnn() -> None:
    # what a CPU pays per image is multiply-adds, not parameters
    whitened, seed = (models.count_macs(models.create(n)) for n in ("whitened", "seed"))
    assert whitened <= 1_000_000
    assert whitened < seed


def test_deotte_is_cheaper_per_image_than_maxpool_bn() -> None:
    # the second architecture is there for ensembles and must not cost more to run
    deotte, maxpool_bn = (models.count_macs(models.create(n)) for n in ("deotte", "maxpool_bn"))
    assert deotte < 0.8 * maxpool_bn


def test_patch_whitening_whitens_the_patches_it_was_fit_to() -> None:
    torch.manual_seed(0)
    x = torch.nn.functional.avg_pool2d(torch.rand(500, 1, 24, 24), 3, 1, 1)  # correlated pixels
    layer = models.PatchWhitening(5, 6, eps=0.0)
    layer.fit(x)
    out = layer(x)[:, :6].permute(0, 2, 3, 1).reshape(-1, 6)  # the + half of each pair
    cov = torch.cov(out.T)
    assert torch.allclose(cov, torch.eye(6), atol=0.05)
    assert torch.equal(layer.weight[6:], -layer.weight[:6])


def test_fit_data_sets_the_whitening_of_the_whitened_model() -> None:
    model = models.create("whitened")
    before = model.state_dict()["2.weight"].clone()
    model.fit_data(torch.rand(64, 1, 28, 28))
    assert not torch.equal(model.state_dict()["2.weight"], before)
    assert "2.weight" not in dict(model.named_parameters())  # a buffer: never trained


def test_train_lists_every_architecture_there_is() -> None:
    """`train --model`'s choices (config.Architecture, torch-free) are the registry's."""
    from digitrec.config import Architecture

    assert [a.value for a in Architecture] == list(models.REGISTRY)


def test_unknown_model_is_named() -> None:
    with pytest.raises(
        DigitrecError, match="unknown model 'nope'; choose from seed, whitened, maxpool_bn, deotte"
    ):
        models.create("nope")
