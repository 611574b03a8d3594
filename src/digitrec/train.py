"""Training: `train(cfg) -> Run`. One run directory per run (DESIGN.md "Run directory").

The loop keeps the whole training set as one tensor and works on whole batches: no DataLoader
workers and no per-sample Python, which is what a 2-core CPU needs.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch._dynamo  # noqa: F401  (torch.optim imports it on first use: ~1.7 s, before the clock)
import torch.nn.functional as F
from torch import nn

from digitrec import augment, data, models, strokes, styles
from digitrec.checkpoint import load_weights, save_weights, write_json
from digitrec.errors import DigitrecError
from digitrec.machine import cpu_name

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    model: str = "seed"  # a name in models.REGISTRY
    epochs: float = 10  # passes over the training split; a fraction ends part-way through one
    batch_size: int = 50  # images per step
    lr: float = 1e-3  # peak learning rate
    optimizer: str = "adam"  # adam | adamw | sgd (Nesterov, momentum 0.9) | muon (FilterMuon)
    betas: tuple[float, float] = (0.9, 0.999)  # Adam's moment decays
    weight_decay: float = 0.0  # decoupled for adamw, L2 for sgd
    schedule: str = "constant"  # constant | onecycle (linear warm-up, cosine down)
    warmup: float = 0.15  # fraction of steps spent warming up (onecycle)
    label_smoothing: float = 0.0  # cross-entropy target smoothing
    ema: float = 0.0  # weight EMA decay per step; 0 disables
    augment: str = "none"  # none | light | strong (augment.py)
    flag_ones: float = 0.0  # share of '1's given a flag before augmenting (augment.flag_ones)
    styles: float = 0.0  # share of each batch taken from its copies in other styles (styles.py)
    strokes: float = 0.0  # share of each batch replaced by digits drawn from strokes (strokes.py)
    val_fraction: float = 0.2  # validation carved from the 60,000 training images
    seed: int = 5  # controls the split, initial weights, batch order and augmentation
    split_seed: int = -1  # the validation split's seed; -1 = seed (ensemble members share one)
    data: str | None = None  # training data path; None = bundled MNIST
    extra_data: tuple[str, ...] = ()  # more labelled files (e.g. corrections.csv), train split only
    max_steps: int = 0  # stop after this many steps (smoke tests); 0 = no limit
    patience: int = 0  # early stopping: epochs without val improvement; 0 = off
    threads: int = 0  # torch intra-op threads; 0 = all cores
    recipe: str = ""  # the recipe these settings came from, if any
    output: str = ""  # run directory; "" = runs/<time>-<model>


# Recipes: settings chosen on the validation split (see BENCHMARKS.md for the evidence).
RECIPES: dict[str, dict[str, object]] = {
    "tutorial": dict(model="seed", epochs=10, batch_size=50, lr=1e-3, val_fraction=0.2, seed=5),
    # 1.6 passes over the data (validation, mean of 10 seeds: 99.09% vs 99.03% at 1.3 passes);
    # Adam's short memory (betas 0.7, 0.9, as tuomaso's train_mnist_fast found for one-epoch
    # MNIST) beat the defaults by 0.2% on validation here
    "fast": dict(
        model="fast",
        epochs=1.6,
        batch_size=256,
        lr=1e-2,
        optimizer="adamw",
        betas=(0.7, 0.9),
        weight_decay=5e-4,
        schedule="onecycle",
        warmup=0.2,
        label_smoothing=0.1,
        augment="none",
        val_fraction=0.1,
    ),
    # Deotte's CNN with light augmentation (the affine alone) for 24 epochs: validation 99.70 /
    # 99.58 / 99.57% (seeds 7-9) against 99.50 / 99.48 / 99.57% with the strong augmentation
    # (elastic + thickness + a wider affine); the `best` CNN with strong: 99.50-99.53%
    "best": dict(
        model="deotte",
        epochs=24,
        batch_size=128,
        lr=3e-3,
        optimizer="adamw",
        weight_decay=5e-4,
        schedule="onecycle",
        warmup=0.1,
        label_smoothing=0.1,
        ema=0.999,
        augment="light",
        val_fraction=0.1,
    ),
}


def recipe_config(recipe: str | None, **overrides: object) -> TrainConfig:
    base: dict[str, object] = dict(RECIPES[recipe]) if recipe else {}
    if recipe:
        base["recipe"] = recipe
    base.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(**base)  # type: ignore[arg-type]


@dataclass
class Run:
    directory: Path
    config: TrainConfig
    history: list[dict[str, float]] = field(default_factory=list)
    metrics: dict[str, object] = field(default_factory=dict)


def environment() -> dict[str, object]:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "threads": torch.get_num_threads(),
    }


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def to_tensor(images: np.ndarray, dev: torch.device) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float (N, 1, 28, 28) in [0, 1] on dev."""
    return torch.from_numpy(images).to(dev).unsqueeze(1).float().div_(255)


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    model.eval()
    if not len(x):  # no validation split (--val-fraction 0)
        return torch.zeros(0, 10)
    return torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def accuracy_and_loss(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor
) -> tuple[float, float, torch.Tensor | None]:
    """Accuracy, mean cross-entropy and the logits of `model` on (x, y)."""
    if len(x) == 0:
        return float("nan"), float("nan"), None
    logits = predict_logits(model, x)
    return (logits.argmax(1) == y).float().mean().item(), F.cross_entropy(logits, y).item(), logits


def learning_rate(cfg: TrainConfig, step: int, total: int) -> float:
    if cfg.schedule == "constant":
        return cfg.lr
    warm = max(1, int(cfg.warmup * total))
    if step < warm:
        return cfg.lr * (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * progress))


OPTIMIZERS = ("adam", "adamw", "sgd", "muon")
STROKE_DIGITS = 20_000  # digits drawn once per run for TrainConfig.strokes


def check_optimizer(name: str) -> None:
    if name not in OPTIMIZERS:
        raise DigitrecError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")


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
    check_optimizer(cfg.optimizer)
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


def saved_config(run_dir: Path) -> TrainConfig:
    """The settings a run directory was trained with (its config.json), as a TrainConfig."""
    saved = json.loads((run_dir / "config.json").read_text())["train"]
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    settings: dict[str, Any] = {
        k: tuple(v) if isinstance(v, list) else v
        for k, v in saved.items()
        if k in fields  # older runs lack some
    }
    return TrainConfig(**settings)


def default_output(cfg: TrainConfig) -> Path:
    return Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg.model}-s{cfg.seed}"


def load_training_data(cfg: TrainConfig) -> tuple[data.Dataset, data.Dataset]:
    full = data.load(cfg.data, "train")
    split_seed = cfg.seed if cfg.split_seed < 0 else cfg.split_seed
    train_set, val_set = data.split_validation(full, cfg.val_fraction, split_seed)
    for extra in cfg.extra_data:
        more = data.load(extra, "train")
        if more.labels is None:
            raise DigitrecError(f"{extra}: extra training data needs labels")
        train_set = data.Dataset(
            np.concatenate([train_set.images, more.images]),
            np.concatenate([train_set.labels, more.labels]),
            train_set.source,
        )
    return train_set, val_set


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


Progress = Callable[[int, int, dict[str, float]], None]  # (epoch, step in epoch, running stats)


def train(
    cfg: TrainConfig,
    resume: Path | None = None,
    progress: Progress | None = None,
    test: bool = True,
    command: str = "",
) -> Run:
    """Train one model; write the run directory; return the run with its metrics."""
    t_start = time.perf_counter()
    if resume is not None:
        saved = saved_config(resume)
        cfg = dataclasses.replace(saved, epochs=cfg.epochs if cfg.epochs else saved.epochs)
    if test:  # the final report reads the MNIST test split: missing, say so now, not after training
        data.read_checksums()
    out = Path(cfg.output) if cfg.output else (resume or default_output(cfg))
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    dev = device()
    if dev.type == "cuda":  # CPU kernels are deterministic for a fixed thread count already
        torch.use_deterministic_algorithms(True, warn_only=True)
        # deterministic mode also NaN-fills every new tensor; results don't need it
        torch.utils.deterministic.fill_uninitialized_memory = False  # type: ignore[attr-defined]

    # data: uint8 -> one float tensor (N, 1, 28, 28) in [0, 1]
    train_set, val_set = load_training_data(cfg)
    x_train, y_train = to_tensor(train_set.images, dev), torch.from_numpy(train_set.labels).to(dev)
    x_val = to_tensor(val_set.images, dev)
    # each training image in another writing style or capture, rendered once (NumPy, ~2 ms each)
    x_styled = to_tensor(styles.render(train_set.images, cfg.seed), dev) if cfg.styles else None
    y_val = torch.from_numpy(val_set.labels).to(dev)
    if cfg.strokes:  # digits formed as writers outside MNIST form them (~5 ms each)
        drawn_images, drawn_labels = strokes.render(min(STROKE_DIGITS, len(train_set)), cfg.seed)
        x_drawn, y_drawn = to_tensor(drawn_images, dev), torch.from_numpy(drawn_labels).to(dev)

    model = models.create(cfg.model).to(dev).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    if hasattr(model, "fit_data"):  # a data-dependent initialisation (models.PatchWhitening)
        model.fit_data(x_train)
    optimizer = make_optimizer(cfg, model)
    ema = EMA(model, cfg.ema) if cfg.ema else None
    steps_per_epoch = math.ceil(len(x_train) / cfg.batch_size)
    total_steps = math.ceil(cfg.epochs * steps_per_epoch)
    if cfg.max_steps:
        total_steps = min(total_steps, cfg.max_steps)

    run = Run(out, cfg)
    start_epoch, best_val, stale = 0, -1.0, 0
    val_logits: torch.Tensor | None = None  # of the best epoch's weights
    if resume is not None and (resume / "checkpoint.safetensors").exists():
        state = load_weights(resume / "checkpoint.safetensors")
        model.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("model.")})
        if ema is not None:
            ema.module.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("ema.")})
        run.history = json.loads((resume / "history.json").read_text())
        start_epoch = len(run.history)
        best_val = max((h["val_accuracy"] for h in run.history), default=-1.0)
        log.info("resuming %s at epoch %d", resume, start_epoch + 1)
    config_doc = {
        "train": dataclasses.asdict(cfg),
        "command": command,
        "environment": environment(),
        "data": {
            "train": len(train_set),
            "validation": len(val_set),
            "checksums": data.read_checksums(),
        },
    }
    write_json(out / "config.json", config_doc)

    generator = torch.Generator().manual_seed(cfg.seed)
    for _ in range(start_epoch):  # replay the batch orders of finished epochs (exact resume)
        torch.randperm(len(x_train), generator=generator)
    step = start_epoch * steps_per_epoch
    for epoch in range(start_epoch, math.ceil(cfg.epochs)):
        if step >= total_steps:
            break
        t_epoch = time.perf_counter()
        model.train()
        order = torch.randperm(len(x_train), generator=generator).to(dev)
        seen, loss_sum, correct = 0, 0.0, 0
        steps_now = min(steps_per_epoch, total_steps - step)  # a fractional last epoch: fewer
        for i in range(steps_now):
            # learning rate for this step
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(cfg, step, total_steps)
            # batch, augmented on the whole batch at once: (B, 1, 28, 28)
            index = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            xb, yb = x_train[index], y_train[index]
            if x_styled is not None:
                styled = torch.rand(len(index), generator=generator).to(dev) < cfg.styles
                xb = torch.where(styled.view(-1, 1, 1, 1), x_styled[index], xb)
            if cfg.strokes:
                drawn = torch.rand(len(index), generator=generator).to(dev) < cfg.strokes
                pick = torch.randint(len(x_drawn), (len(index),), generator=generator).to(dev)
                xb = torch.where(drawn.view(-1, 1, 1, 1), x_drawn[pick], xb)
                yb = torch.where(drawn, y_drawn[pick], yb)
            if cfg.flag_ones:
                xb = augment.flag_ones(xb, yb, generator, cfg.flag_ones)
            xb = augment.apply(xb, cfg.augment, generator).contiguous(
                memory_format=torch.channels_last
            )
            # forward, backward, step
            logits = model(xb)
            loss = F.cross_entropy(logits, yb, label_smoothing=cfg.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if ema is not None:
                ema.update(model)
            step += 1
            seen += len(yb)
            loss_sum += loss.item() * len(yb)
            correct += int((logits.argmax(1) == yb).sum())
            if progress is not None:
                progress(
                    epoch,
                    i + 1,
                    {"loss": loss_sum / seen, "accuracy": correct / seen, "steps": steps_now},
                )
        train_seconds_epoch = time.perf_counter() - t_epoch
        # evaluate on the validation split (the EMA weights when there are any)
        scored = ema.module if ema is not None else model
        val_acc, val_loss, logits = accuracy_and_loss(scored, x_val, y_val)
        run.history.append(
            {
                "epoch": epoch + 1,
                "loss": loss_sum / max(seen, 1),
                "accuracy": correct / max(seen, 1),
                "val_loss": val_loss,
                "val_accuracy": val_acc,
                "seconds": train_seconds_epoch,
                "images": seen,
                "lr": learning_rate(cfg, step - 1, total_steps),
            }
        )
        if progress is not None:
            progress(epoch, -1, run.history[-1])
        # checkpoint: the last epoch's state (for --resume), and the best weights by validation
        state = {f"model.{k}": v for k, v in model.state_dict().items()}
        if ema is not None:
            state.update({f"ema.{k}": v for k, v in ema.module.state_dict().items()})
        save_weights(out / "checkpoint.safetensors", state, {"model": cfg.model})
        improved = val_acc > best_val or math.isnan(val_acc)
        if improved:
            best_val, stale, val_logits = val_acc, 0, logits
            save_weights(out / "model.safetensors", scored.state_dict(), {"model": cfg.model})
        else:
            stale += 1
        write_json(out / "history.json", run.history)
        if cfg.patience and stale >= cfg.patience:
            log.info("early stop: no validation improvement for %d epochs", stale)
            break
    train_seconds = time.perf_counter() - t_start

    # final weights = best on validation; report on the test split
    model.load_state_dict(load_weights(out / "model.safetensors"))
    metrics: dict[str, object] = {
        "model": cfg.model,
        "parameters": models.count_parameters(model),
        "epochs": len(run.history),
        "steps": step,
        "val_accuracy": best_val,
        "train_seconds": train_seconds,
        "images_per_second": sum(h["images"] for h in run.history)
        / max(1e-9, sum(h["seconds"] for h in run.history)),
    }
    from digitrec import calibrate

    if val_logits is None and len(x_val):  # resumed with no better epoch since
        val_logits = predict_logits(model, x_val)
    temperature = calibrate.fit_temperature(val_logits, y_val) if val_logits is not None else 1.0
    metrics["temperature"] = temperature
    if val_logits is not None:
        metrics["val_ece"] = calibrate.ece(val_logits, y_val)
        metrics["val_ece_calibrated"] = calibrate.ece(val_logits / temperature, y_val)
    if test:
        test_set = data.load_mnist("test")
        x_test, y_test = to_tensor(test_set.images, dev), torch.from_numpy(test_set.labels)
        test_logits = predict_logits(model, x_test)
        metrics["test_accuracy"] = (test_logits.argmax(1) == y_test).float().mean().item()
        metrics["test_ece"] = calibrate.ece(test_logits, y_test)
        metrics["test_ece_calibrated"] = calibrate.ece(test_logits / temperature, y_test)
    run.metrics = metrics
    write_json(out / "metrics.json", metrics)
    from digitrec.plots import plot_curves

    plot_curves(run.history, out / "curves.png")
    return run


def load_run_model(directory: Path) -> tuple[nn.Module, dict[str, object]]:
    """The trained model of a run directory (best validation weights) and its metrics."""
    cfg = json.loads((directory / "config.json").read_text())["train"]
    model = models.create(cfg["model"])
    model.load_state_dict(load_weights(directory / "model.safetensors"))
    model.eval()
    metrics_path = directory / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    return model, metrics


def _train_member(cfg: TrainConfig, command: str) -> Run:
    return train(cfg, command=command)


def train_ensemble(
    cfg: TrainConfig,
    members: int,
    progress: Progress | None = None,
    command: str = "",
    jobs: int = 1,
) -> Run:
    """Train `members` models with seeds seed, seed+1, ... into OUT/member-k; average them."""
    out = (
        Path(cfg.output)
        if cfg.output
        else default_output(cfg).with_name(default_output(cfg).name + f"-x{members}")
    )
    # every member has its own seed (weights, batch order, augmentation) but one shared
    # validation split, so the ensemble's validation figure is honest
    split_seed = cfg.seed if cfg.split_seed < 0 else cfg.split_seed
    configs = [
        dataclasses.replace(
            cfg, seed=cfg.seed + k, split_seed=split_seed, output=str(out / f"member-{k}")
        )
        for k in range(members)
    ]
    if jobs > 1:
        # members in parallel processes, one thread each: small convolutions scale better
        # across processes than across threads on a 2-core CPU
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        threads = max(1, (os.cpu_count() or 1) // jobs)
        with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as pool:
            futures = [
                pool.submit(_train_member, dataclasses.replace(c, threads=threads), command)
                for c in configs
            ]
            runs = [f.result() for f in futures]
    else:
        runs = [train(c, progress=progress, command=command) for c in configs]
    return _average(out, [r.directory for r in runs], cfg.model)


def combine(run_dirs: list[Path], out: Path, command: str = "") -> Run:
    """An ensemble of runs trained apart: copies them into OUT/member-k and averages them as
    train_ensemble does. They must share one validation split (data, fraction and seed), or
    the ensemble's validation figure would count images some member trained on."""
    import shutil

    if len(run_dirs) < 2:
        raise DigitrecError("an ensemble needs at least two runs")
    splits, archs = set(), set()
    for d in run_dirs:
        if not (d / "metrics.json").exists() or not (d / "model.safetensors").exists():
            raise DigitrecError(f"{d}: not a finished single run (no metrics.json or weights)")
        c = json.loads((d / "config.json").read_text())["train"]
        split = c["seed"] if c.get("split_seed", -1) < 0 else c["split_seed"]
        split = split if c["val_fraction"] else None  # every image trained on: no split
        splits.add((c.get("data"), tuple(c.get("extra_data", ())), c["val_fraction"], split))
        archs.add(c["model"])
    if len(splits) > 1:
        raise DigitrecError(
            "the runs have different validation splits (data, fraction, split seed): "
            + "; ".join(map(str, sorted(splits, key=str)))
            + ". Train more members with --split-seed."
        )
    if out.exists() and any(out.iterdir()):
        raise DigitrecError(f"{out}: exists and is not empty")
    out.mkdir(parents=True, exist_ok=True)
    members = []
    for k, d in enumerate(run_dirs):
        shutil.copytree(d, out / f"member-{k}")
        members.append(out / f"member-{k}")
    # How to make it again: each member's training (once per run), then this command.
    commands = [json.loads((d / "config.json").read_text()).get("command", "") for d in members]
    again = " && ".join(dict.fromkeys(c for c in [*commands, command] if c))
    return _average(out, members, "+".join(sorted(archs)), command=again)


def _average(out: Path, members: list[Path], model_name: str, command: str = "") -> Run:
    """Write OUT/metrics.json and config.json of the ensemble of the runs in `members`: their
    calibrated probabilities averaged, on their shared validation split and the test set.
    `command`: how to make it again (default: member 0's, which trained them all)."""
    from digitrec import calibrate

    first = json.loads((members[0] / "config.json").read_text())
    cfg = saved_config(members[0])
    dev = device()
    _, val_set = load_training_data(cfg)
    test_set = data.load_mnist("test")

    # each member loaded once, with the temperature it was calibrated with
    loaded = [load_run_model(d) for d in members]

    def averaged(images: np.ndarray) -> torch.Tensor:
        x = to_tensor(images, dev)
        probs = torch.zeros(len(x), 10)
        for model, metrics in loaded:
            t = float(metrics["temperature"])  # type: ignore[arg-type]
            probs += torch.softmax(predict_logits(model.to(dev), x) / t, 1).cpu() / len(loaded)
        return probs

    val_probs, test_probs = averaged(val_set.images), averaged(test_set.images)
    y_val, y_test = torch.from_numpy(val_set.labels), torch.from_numpy(test_set.labels)
    member_metrics: list[dict[str, Any]] = [m for _, m in loaded]
    metrics_out: dict[str, object] = {
        "model": model_name,
        "members": len(members),
        "parameters": sum(int(m["parameters"]) for m in member_metrics),
        "val_accuracy": (val_probs.argmax(1) == y_val).float().mean().item(),
        "member_val_accuracy": [m["val_accuracy"] for m in member_metrics],
        "member_test_accuracy": [m["test_accuracy"] for m in member_metrics],
        "test_accuracy": (test_probs.argmax(1) == y_test).float().mean().item(),
        "test_ece_calibrated": calibrate.ece(test_probs.clamp_min(1e-12).log(), y_test),
        "train_seconds": sum(float(m["train_seconds"]) for m in member_metrics),
        "temperature": 1.0,
    }
    metrics_out["test_ece"] = metrics_out["test_ece_calibrated"]
    write_json(out / "metrics.json", metrics_out)
    config = {**first, "members": [d.name for d in members]}
    if command:
        config["command"] = command
    write_json(out / "config.json", config)
    history = json.loads((members[0] / "history.json").read_text())
    return Run(out, cfg, history, metrics_out)
