"""Augmentation as pure batched tensor functions: (B, 1, 28, 28) in [0, 1] -> same shape.

Random affine (rotation, scale, shift, shear), elastic distortion (Simard et al. 2003), stroke
thickness change (people draw with thick and thin pens) and the flag of a '1' (flag_ones, which
needs the labels). Each takes a torch.Generator so a run is reproducible from its seed.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from digitrec.errors import DigitrecError


def _uniform(n: int, lo: float, hi: float, g: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=g) * (hi - lo) + lo


def affine(
    x: torch.Tensor,
    g: torch.Generator,
    degrees: float = 10.0,
    scale: float = 0.1,
    shift: float = 0.1,
    shear: float = 0.15,
) -> torch.Tensor:
    """Rotate by up to `degrees`, scale by 1 +- `scale`, shift by up to `shift` of the width,
    shear by up to `shear` (radians-ish, as a matrix entry)."""
    b = x.shape[0]
    angle = _uniform(b, -degrees, degrees, g) * math.pi / 180
    s = _uniform(b, 1 - scale, 1 + scale, g)
    sh = _uniform(b, -shear, shear, g)
    tx, ty = _uniform(b, -shift, shift, g) * 2, _uniform(b, -shift, shift, g) * 2  # grid units
    cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
    # theta maps output coordinates to input coordinates: (B, 2, 3)
    theta = torch.stack(
        [
            torch.stack([cos, -sin + sh * cos, tx], 1),
            torch.stack([sin, cos + sh * sin, ty], 1),
        ],
        1,
    ).to(x.device, x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _gaussian_kernel(sigma: float, device: torch.device) -> torch.Tensor:
    radius = int(3 * sigma)
    t = torch.arange(-radius, radius + 1, dtype=torch.float32, device=device)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    return k / k.sum()


def elastic(
    x: torch.Tensor, g: torch.Generator, alpha: float = 34.0, sigma: float = 4.0
) -> torch.Tensor:
    """Smooth random displacement fields: `alpha` px of strength, `sigma` px of smoothing."""
    b, _, h, w = x.shape
    field = (torch.rand(b, 2, h, w, generator=g) * 2 - 1).to(x.device)
    k = _gaussian_kernel(sigma, x.device)
    pad = len(k) // 2
    field = F.conv2d(
        F.pad(field, (pad, pad, 0, 0), mode="reflect"),
        k.view(1, 1, 1, -1).expand(2, 1, 1, -1),
        groups=2,
    )
    field = F.conv2d(
        F.pad(field, (0, 0, pad, pad), mode="reflect"),
        k.view(1, 1, -1, 1).expand(2, 1, -1, 1),
        groups=2,
    )
    field = field * (alpha / (h / 2))  # pixels -> grid units ([-1, 1] spans h pixels)
    base = F.affine_grid(
        torch.eye(2, 3, device=x.device).expand(b, 2, 3), list(x.shape), align_corners=False
    )
    grid = base + field.permute(0, 2, 3, 1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def thickness(x: torch.Tensor, g: torch.Generator, p: float = 0.3) -> torch.Tensor:
    """With probability p each, thicken (grey dilation) or thin (grey erosion) the strokes."""
    b = x.shape[0]
    u = torch.rand(b, generator=g).to(x.device).view(b, 1, 1, 1)
    thick = F.max_pool2d(x, 3, stride=1, padding=1)
    thin = -F.max_pool2d(-x, 3, stride=1, padding=1)
    # blend half-way so a thickened stroke grows ~1 px, not 2, and a thin one is not erased
    thick = 0.5 * (x + thick)
    thin = 0.5 * (x + thin)
    return torch.where(u < p, thick, torch.where(u < 2 * p, thin, x))


def flag_ones(
    x: torch.Tensor, labels: torch.Tensor, g: torch.Generator, p: float = 0.3
) -> torch.Tensor:
    """Give a share `p` of the '1's the flag many writers start a '1' with (most of Europe):
    a stroke from the top of the stem down to the left, 20-40% of the digit's height long,
    25-60 degrees below the horizontal (flatter and longer, it would be a '7'). MNIST's '1's
    are nearly all one upright stroke, so a model trained on them alone reads a flagged '1' as
    a '7'."""
    b, _, h, w = x.shape
    chosen = (labels == 1) & (torch.rand(b, generator=g).to(x.device) < p)
    length, angle, width = (torch.rand(b, generator=g).to(x.device) for _ in range(3))
    if not bool(chosen.any()):
        return x
    ink = x[:, 0] > 0.5
    rows = ink.any(dim=2)  # (B, h)
    top = rows.float().argmax(dim=1)  # the first row with ink (0 for a blank image)
    bottom = h - 1 - rows.flip(1).float().argmax(dim=1)
    at_top = ink[torch.arange(b), top].float()  # (B, w): the stem's pixels on its top row
    tx = (at_top * torch.arange(w, device=x.device)).sum(1) / at_top.sum(1).clamp(min=1)
    ty = top.float()
    reach = (0.2 + 0.2 * length) * (bottom - top + 1).float()
    a = (25 + 35 * angle) * math.pi / 180
    dx, dy = (-reach * torch.cos(a)).view(b, 1, 1), (reach * torch.sin(a)).view(b, 1, 1)
    # Distance from every pixel to the segment (tx, ty) -> (tx + dx, ty + dy), then ink for a
    # round pen 1.6-2.6 px wide with a 1 px soft edge.
    ys, xs = torch.meshgrid(
        torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij"
    )
    px, py = xs - tx.view(b, 1, 1), ys - ty.view(b, 1, 1)
    t = ((px * dx + py * dy) / (dx * dx + dy * dy).clamp(min=1e-6)).clamp(0, 1)
    distance = torch.sqrt((px - t * dx) ** 2 + (py - t * dy) ** 2)
    radius = (0.8 + 0.5 * width).view(b, 1, 1)
    stroke = (radius + 0.5 - distance).clamp(0, 1).to(x.dtype)
    flagged = torch.maximum(x, stroke.unsqueeze(1))
    return torch.where(chosen.view(b, 1, 1, 1), flagged, x)


def apply(x: torch.Tensor, level: str, g: torch.Generator) -> torch.Tensor:
    """The named augmentation: none | light | strong."""
    if level == "none":
        return x
    if level == "light":
        return affine(x, g, degrees=8, scale=0.08, shift=0.08, shear=0.1)
    if level == "strong":
        b = x.shape[0]
        x = thickness(x, g)
        use_elastic = (torch.rand(b, generator=g) < 0.5).to(x.device).view(b, 1, 1, 1)
        x = torch.where(use_elastic, elastic(x, g, alpha=30.0, sigma=4.0), x)
        return affine(x, g, degrees=12, scale=0.12, shift=0.1, shear=0.2).clamp_(0, 1)
    raise DigitrecError(f"unknown augmentation {level!r} (none, light, strong)")
