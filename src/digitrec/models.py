"""Models by name. Each takes (B, 1, 28, 28) float in [0, 1], ink high; returns logits (B, 10).

Input normalisation lives inside the model, so every consumer (training, ONNX, the server)
feeds the same [0, 1] images that preprocess.py makes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # over the 60,000 training images, pixels / 255

REGISTRY: dict[str, Callable[[], nn.Module]] = {}
DESCRIPTIONS: dict[str, str] = {}


def register(
    name: str, description: str
) -> Callable[[Callable[[], nn.Module]], Callable[[], nn.Module]]:
    def wrap(builder: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
        REGISTRY[name] = builder
        DESCRIPTIONS[name] = description
        return builder

    return wrap


def create(name: str) -> nn.Module:
    if name not in REGISTRY:
        raise KeyError(f"unknown model {name!r}; choose from {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


class Normalize(nn.Module):
    """[0, 1] pixels -> zero mean, unit variance over MNIST."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - MNIST_MEAN) / MNIST_STD


def conv_bn(
    c_in: int, c_out: int, k: int = 3, stride: int = 1, padding: int | None = None
) -> nn.Sequential:
    padding = k // 2 if padding is None else padding
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, k, stride, padding, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


@register("seed", "the tutorial's Keras CNN, layer for layer (43,578 parameters)")
def seed() -> nn.Module:
    # Keras's Conv2D(padding="same") + MaxPool2D(2) floors 7 -> 3, so Flatten sees 16 * 3 * 3 = 144.
    # max-pool before ReLU computes the same function (both are monotone) on a 4x smaller map.
    # The tutorial's Dense(128) has no activation; we keep that. Softmax is applied by the loss.
    return nn.Sequential(
        nn.Conv2d(1, 64, 3, padding=1),
        nn.MaxPool2d(2),
        nn.ReLU(),  # (B, 64, 14, 14)
        nn.Conv2d(64, 32, 3, padding=1),
        nn.MaxPool2d(2),
        nn.ReLU(),  # (B, 32, 7, 7)
        nn.Conv2d(32, 16, 3, padding=1),
        nn.MaxPool2d(2),
        nn.ReLU(),  # (B, 16, 3, 3)
        nn.Dropout(0.5),
        nn.Flatten(),  # (B, 144)
        nn.Linear(144, 128),
        nn.Dropout(0.5),
        nn.Linear(128, 10),
    )


@register("fast", "a small BN CNN that trains to 99% in seconds on a CPU")
def fast() -> nn.Module:
    # A strided 5x5 stem halves the resolution at once: the 28x28 stage is where a CPU spends
    # its time, so nothing else runs there.
    return nn.Sequential(
        Normalize(),
        conv_bn(1, 16, 5, stride=2),  # (B, 16, 14, 14)
        conv_bn(16, 32),
        nn.MaxPool2d(2),  # (B, 32, 7, 7)
        conv_bn(32, 64),
        nn.AdaptiveMaxPool2d(1),  # (B, 64, 1, 1)
        nn.Flatten(),
        nn.Linear(64, 10),
    )


@register("best", "stacked 3x3 BN conv blocks in the spirit of Deotte's Kaggle CNN")
def best() -> nn.Module:
    # Two 3x3 convs per stage (Deotte 2018; An et al. 2020), max-pool down-sampling, and global
    # average pooling instead of a large dense layer: small, and quick on a CPU.
    return nn.Sequential(
        Normalize(),
        conv_bn(1, 32),
        conv_bn(32, 32),
        nn.MaxPool2d(2),  # (B, 32, 14, 14)
        nn.Dropout(0.1),
        conv_bn(32, 64),
        conv_bn(64, 64),
        nn.MaxPool2d(2),  # (B, 64, 7, 7)
        nn.Dropout(0.1),
        conv_bn(64, 128, 3, padding=0),
        conv_bn(128, 128, 3, padding=0),  # (B, 128, 3, 3)
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(0.2),
        nn.Linear(128, 10),
    )
