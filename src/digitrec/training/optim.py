"""Optimizers, the learning-rate schedule and the weight average (EMA) a run trains with."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from digitrec.config import TrainConfig


def learning_rate(cfg: TrainConfig, step: int, total: int) -> float:
    if cfg.schedule == "constant":
        return cfg.lr
    warm = max(1, int(cfg.warmup * total))
    if step < warm:
        return cfg.lr * (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * progress))


def orthogonalise(g: torch.Tensor, steps: int = 5) -> torch.Tensor:
    """The nearest semi-orthogonal matrix to g, roughly: Muon's quintic Newton-Schulz iteration
    (the coefficients of Jordan 2024 and torch.optim.Muon), in float32."""
    a, b, c = 3.4445, -4.7750, 2.0315
    tall = g.size(0) > g.size(1)
    x = g.T if tall else g
    x = x / x.norm().clamp(min=1e-7)  # spectral norm <= 1
    for _ in range(steps):
        gram = x @ x.T
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x.T if tall else x


class FilterMuon(torch.optim.Optimizer):
    """Muon (Jordan 2024, kellerjordan.github.io/posts/muon) for convolution filter banks: the
    Nesterov momentum of the gradient, orthogonalised, is the step.

    torch.optim.Muon takes 2D parameters only and orthogonalises in bfloat16, which this CPU
    emulates (237 ms a step for `deotte`'s six filter banks on one thread, most of a training
    step); here a bank (out, in, k, k) is the matrix (out, in*k*k) and the iteration runs in
    float32 (18 ms a step, momentum included). The learning rate is scaled as torch's
    adjust_lr_fn="match_rms_adamw" (Liu et al. 2025, "Muon is scalable"): lr * 0.2 *
    sqrt(max(rows, cols)), so that AdamW's learning rate and decoupled weight decay carry over."""

    def __init__(
        self, params: list[nn.Parameter], lr: float, weight_decay: float, momentum: float = 0.95
    ):
        super().__init__(params, {"lr": lr, "weight_decay": weight_decay, "momentum": momentum})

    @torch.no_grad()
    def step(self, closure: None = None) -> None:  # type: ignore[override]
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                momentum = self.state[p].setdefault("momentum", torch.zeros_like(p.grad))
                momentum.lerp_(p.grad, 1 - group["momentum"])
                update = p.grad.lerp(momentum, group["momentum"]).reshape(len(p), -1)
                scale = 0.2 * math.sqrt(max(update.shape))
                p.mul_(1 - group["lr"] * group["weight_decay"])
                p.add_(orthogonalise(update).reshape(p.shape), alpha=-group["lr"] * scale)


class Optimizers:
    """Several optimizers over disjoint parameters, driven as one (the loop sets every group's
    learning rate, zeroes and steps)."""

    def __init__(self, *optimizers: torch.optim.Optimizer):
        self.optimizers = optimizers
        self.param_groups = [g for o in optimizers for g in o.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for o in self.optimizers:
            o.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for o in self.optimizers:
            o.step()


def make_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer | Optimizers:
    params = [p for p in model.parameters() if p.requires_grad]

    def adam(
        kind: type[torch.optim.Adam] | type[torch.optim.AdamW], params: list[nn.Parameter]
    ) -> torch.optim.Optimizer:
        # the fused kernel updates all tensors in one pass: ~7% faster steps for small models
        return kind(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay, fused=True)

    if cfg.optimizer == "muon":
        # Muon for the hidden filter banks; AdamW for the rest: the first layer (one input
        # channel), batch-norm scales and shifts, biases and the classifier, as Muon's authors do
        filters = [p for p in params if p.ndim == 4 and p.shape[1] > 1]
        chosen = {id(p) for p in filters}
        rest = [p for p in params if id(p) not in chosen]
        return Optimizers(
            FilterMuon(filters, lr=cfg.lr, weight_decay=cfg.weight_decay),
            adam(torch.optim.AdamW, rest),
        )
    if cfg.optimizer == "adam":
        return adam(torch.optim.Adam, params)
    if cfg.optimizer == "adamw":
        return adam(torch.optim.AdamW, params)
    return torch.optim.SGD(
        params, lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay
    )


class EMA:
    """An exponential moving average of the weights (and BN statistics), with warm-up:
    the decay ramps as (1 + n) / (10 + n) so early averages are not dominated by the init."""

    def __init__(self, model: nn.Module, decay: float):
        self.module = copy.deepcopy(model).eval()
        self.decay, self.updates = decay, 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for mine, theirs in zip(
            self.module.state_dict().values(), model.state_dict().values(), strict=True
        ):
            if mine.dtype.is_floating_point:
                mine.lerp_(theirs, 1 - d)
            else:
                mine.copy_(theirs)
