"""Models by name. Each takes (B, 1, 28, 28) float in [0, 1], ink high; returns logits (B, 10).

Input normalisation lives inside the model, so every consumer (training, ONNX, the server)
feeds the same [0, 1] images that preprocess.py makes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from digitrec.errors import DigitrecError

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # over the 60,000 training images, pixels / 255

REGISTRY: dict[str, Callable[[], nn.Module]] = {}


def register(name: str) -> Callable[[Callable[[], nn.Module]], Callable[[], nn.Module]]:
    def wrap(builder: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
        REGISTRY[name] = builder
        return builder

    return wrap


def create(name: str) -> nn.Module:
    if name not in REGISTRY:
        raise DigitrecError(f"unknown model {name!r}; choose from {', '.join(REGISTRY)}")
    return REGISTRY[name]()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module) -> int:
    """Multiply-adds of one forward pass on one 28x28 image (convolutions and dense layers)."""
    total = 0

    def hook(module: nn.Module, _: object, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d | PatchWhitening):
            weight: torch.Tensor = module.weight
            total += out.numel() * int(weight[0].numel())
        elif isinstance(module, nn.Linear):
            total += module.in_features * module.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 1, 28, 28))
    model.train(was_training)
    for h in handles:
        h.remove()
    return total


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


@register("seed")
def seed() -> nn.Module:
    """The tutorial's Keras CNN, layer for layer (43,578 parameters)."""
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


class Crop(nn.Module):
    """Drop `border` pixels on each side. MNIST's framing (a 20x20 box, centre of mass at the
    centre of 28x28) leaves 0.24% of the training set's ink outside the central 24x24, and
    preprocess.py frames real input the same way, so a 2-pixel crop costs nothing but time."""

    def __init__(self, border: int):
        super().__init__()
        self.border = border

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.border
        return x[:, :, b : x.shape[2] - b, b : x.shape[3] - b]


class PatchWhitening(nn.Module):
    """A frozen k x k convolution whose 2n filters whiten image patches: the top n principal
    directions of the training patches, scaled to unit variance, each as a +/- pair so that a
    ReLU after it loses nothing. `fit` sets it from data before training. Not trained, so it
    has no backward pass: the idea of the frozen whitening layer of Keller Jordan's airbench
    (CIFAR-10 speed runs, 2024), here on MNIST digits."""

    def __init__(self, k: int, n: int, stride: int = 1, eps: float = 1e-2):
        super().__init__()
        self.k, self.n, self.stride, self.eps = k, n, stride, eps
        # random until fit, so an unfit model still passes its input on
        self.weight: torch.Tensor
        self.register_buffer("weight", torch.randn(2 * n, 1, k, k) / k)

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> None:
        """x: (N, 1, H, W) as this layer sees it."""
        patches = F.unfold(x, self.k).transpose(1, 2).reshape(-1, self.k * self.k)
        patches = patches - patches.mean(0)
        eigenvalues, vectors = torch.linalg.eigh(patches.T @ patches / len(patches))
        eigenvalues, vectors = eigenvalues.flip(0)[: self.n], vectors.flip(1)[:, : self.n]
        w = (vectors / (eigenvalues + self.eps).sqrt()).T.reshape(self.n, 1, self.k, self.k)
        self.weight.copy_(torch.cat([w, -w]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, stride=self.stride)


class FitSequential(nn.Sequential):
    """nn.Sequential whose PatchWhitening layers are fit to data: train.py calls fit_data."""

    @torch.no_grad()
    def fit_data(self, x: torch.Tensor, n: int = 1000) -> None:
        h = x[:n]
        for layer in self:
            if isinstance(layer, PatchWhitening):
                layer.fit(h)
            h = layer(h)


@register("whitened")
def whitened() -> nn.Module:
    """A CNN with a frozen whitening layer: 99% after 1.6 passes on a CPU."""
    # The recipe trains for 1.6 epochs, so every choice is about images per second on a CPU:
    # a 2-pixel crop (26% fewer pixels), a strided first layer that is fit, not trained (no
    # backward pass), max-pool before ReLU, no batch norm, and the width in a dense layer (a
    # cheap GEMM) rather than in convolutions. 0.64M multiply-adds per image.
    return FitSequential(
        Crop(2),  # (B, 1, 24, 24)
        Normalize(),
        PatchWhitening(5, 12, stride=2),  # (B, 24, 10, 10)
        nn.ReLU(),
        nn.Conv2d(24, 32, 3),  # (B, 32, 8, 8)
        nn.MaxPool2d(2),
        nn.ReLU(),  # (B, 32, 4, 4)
        nn.Flatten(),
        nn.Linear(512, 256),
        nn.ReLU(),
        nn.Linear(256, 10),
    )


@register("maxpool_bn")
def maxpool_bn() -> nn.Module:
    """Stacked 3x3 BN conv blocks, max-pool down-sampling, global pooling."""
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


@register("deotte")
def deotte() -> nn.Module:
    """Deotte's Kaggle CNN: 3x3 pairs and strided 5x5 convs, a second architecture."""
    # The single CNN of Chris Deotte's "How to choose CNN Architecture MNIST" (Kaggle, 2018; 15 of
    # them averaged reached 99.75%), with batch norm after every conv: learned 5x5 stride-2
    # down-sampling instead of max-pooling, valid padding, and a 4x4 conv to one pixel in place
    # of global pooling. It makes other mistakes than `maxpool_bn` (an ensemble needs that), in
    # ~70% of its multiply-adds.
    return nn.Sequential(
        Normalize(),
        conv_bn(1, 32, 3, padding=0),  # (B, 32, 26, 26)
        conv_bn(32, 32, 3, padding=0),  # (B, 32, 24, 24)
        conv_bn(32, 32, 5, stride=2, padding=2),  # (B, 32, 12, 12)
        nn.Dropout(0.4),
        conv_bn(32, 64, 3, padding=0),  # (B, 64, 10, 10)
        conv_bn(64, 64, 3, padding=0),  # (B, 64, 8, 8)
        conv_bn(64, 64, 5, stride=2, padding=2),  # (B, 64, 4, 4)
        nn.Dropout(0.4),
        conv_bn(64, 128, 4, padding=0),  # (B, 128, 1, 1)
        nn.Flatten(),
        nn.Dropout(0.4),
        nn.Linear(128, 10),
    )
