"""Training: `train(cfg) -> Run`, one run directory per run (digitrec.runs, docs/ARCHITECTURE.md).

The loop keeps the whole training set as one tensor and works on whole batches: no DataLoader
workers and no per-sample Python, which is what a 2-core CPU needs. Stages, top to bottom:
`setup` (data, model, optimizer, or their state from a checkpoint), then per epoch
`train_one_epoch`, `validate` and `save_checkpoint`, then `finish` (best weights, temperature,
test figures, curves). A checkpoint holds everything the next epoch depends on (weights, EMA,
optimizer moments, step, random generators), so `resume` continues the very same run.
"""

from __future__ import annotations

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

from digitrec import calibrate, data
from digitrec.config import TrainConfig, default_output, from_dict
from digitrec.errors import DigitrecError
from digitrec.files import load_checkpoint, load_weights, save_weights
from digitrec.machine import cpu_name
from digitrec.runs import RunDir
from digitrec.training import augment, distributed, models, pen, strokes, styles
from digitrec.training.optim import EMA, Optimizers, learning_rate, make_optimizer

log = logging.getLogger(__name__)

STROKE_DIGITS = 20_000  # digits drawn once per run for TrainConfig.strokes
PEN_RENDERS = 12  # ways each pen digit is drawn once per run for TrainConfig.pen (~15,000 images
#   from 5 writers)
Progress = Callable[[int, int, dict[str, float]], None]  # (epoch, step in epoch, running stats)


@dataclass
class Run:
    directory: Path
    config: TrainConfig
    history: list[dict[str, float]] = field(default_factory=list)
    metrics: dict[str, object] = field(default_factory=dict)


@dataclass
class Batches:
    """The training data as tensors, and the synthetic copies a batch may draw from."""

    x: torch.Tensor  # (N, 1, 28, 28) float in [0, 1]
    y: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    styled: torch.Tensor | None = None  # x in other styles and captures (styles.py)
    drawn: tuple[torch.Tensor, torch.Tensor] | None = None  # digits drawn from strokes, labels
    pen: tuple[torch.Tensor, torch.Tensor] | None = None  # real writers' pen digits, labels


@dataclass
class State:
    """What the loop carries from epoch to epoch; a checkpoint saves what it cannot rebuild."""

    cfg: TrainConfig
    run: RunDir
    data: Batches
    model: nn.Module
    net: nn.Module  # what the step runs: the model, or DDP around it (training.distributed)
    world: distributed.World
    optimizer: torch.optim.Optimizer | Optimizers
    ema: EMA | None
    generator: torch.Generator
    steps_per_epoch: int
    total_steps: int
    step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    best_val: float = -1.0
    val_logits: torch.Tensor | None = None  # of the best epoch's weights
    started: float = field(default_factory=time.perf_counter)

    @property
    def scored(self) -> nn.Module:
        """The weights validation judges (and the run keeps): the EMA when there is one."""
        return self.ema.module if self.ema is not None else self.model


def train(
    cfg: TrainConfig,
    progress: Progress | None = None,
    test: bool = True,
    command: str = "",
    resume_from: Path | None = None,
) -> Run:
    """Train one model; write the run directory; return the run with its metrics."""
    if test:  # the final report reads the MNIST test split: missing, say so now, not after training
        data.read_checksums()
    s = setup(cfg, command, resume_from)
    for epoch in range(len(s.history), math.ceil(cfg.epochs)):
        if s.step >= s.total_steps:
            break
        t_epoch = time.perf_counter()
        seen, loss, accuracy = train_one_epoch(s, epoch, progress)
        val_accuracy, val_loss, logits = validate(s)
        s.history.append(
            {
                "epoch": epoch + 1,
                "loss": loss,
                "accuracy": accuracy,
                "val_loss": val_loss,
                "val_accuracy": val_accuracy,
                "seconds": time.perf_counter() - t_epoch,
                "images": seen,
                "lr": learning_rate(cfg, s.step - 1, s.total_steps),
            }
        )
        save_checkpoint(s, val_accuracy, logits)
        if progress is not None and s.world.main:
            progress(epoch, -1, s.history[-1])
    return finish(s, test)


def train_processes(cfg: TrainConfig, nproc: int, command: str = "", test: bool = True) -> Run:
    """`train` in `nproc` local processes (DistributedDataParallel, training.distributed); the
    run directory is named before they start, so all of them write to one."""
    cfg = dataclasses.replace(cfg, output=cfg.output or str(default_output(cfg)))
    distributed.launch(_train_one_process, nproc, cfg, command, test)
    run = RunDir(Path(cfg.output))
    return Run(run.path, cfg, run.history, run.metrics)


def _train_one_process(cfg: TrainConfig, command: str, test: bool) -> None:
    train(cfg, command=command, test=test)


def resume(
    run_dir: Path, progress: Progress | None = None, command: str = "", **overrides: object
) -> Run:
    """Continue a run from its checkpoint with its own settings; only `overrides` that are not
    None (the flags a user passed: more epochs, other threads) change them."""
    run = RunDir(run_dir)
    if not run.checkpoint.exists():
        raise DigitrecError(f"{run_dir}: no checkpoint.safetensors to resume from")
    cfg = from_dict(run.document["train"], **overrides)
    cfg = dataclasses.replace(cfg, output=str(run_dir))
    return train(cfg, progress=progress, command=command, resume_from=run_dir)


def setup(cfg: TrainConfig, command: str, resume_from: Path | None) -> State:
    """Data, model, optimizer and generators; from the checkpoint when resuming."""
    world = distributed.world()
    run = RunDir(world.share(Path(cfg.output) if cfg.output else default_output(cfg)))
    if world.main:
        run.path.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    dev = device()
    if dev.type == "cuda":  # CPU kernels are deterministic for a fixed thread count already
        torch.use_deterministic_algorithms(True, warn_only=True)
        # deterministic mode also NaN-fills every new tensor; results don't need it
        torch.utils.deterministic.fill_uninitialized_memory = False  # type: ignore[attr-defined]

    train_set, val_set = load_training_data(cfg)
    batches = Batches(
        to_tensor(train_set.images, dev),
        torch.from_numpy(train_set.labels).to(dev),
        to_tensor(val_set.images, dev),
        torch.from_numpy(val_set.labels).to(dev),
    )
    if cfg.styles:  # each training image in another style or capture, rendered once (~2 ms each)
        batches.styled = to_tensor(styles.render(train_set.images, cfg.seed), dev)
    if cfg.strokes:  # digits formed as writers outside MNIST form them (~5 ms each)
        images, labels = strokes.render(min(STROKE_DIGITS, len(train_set)), cfg.seed)
        batches.drawn = to_tensor(images, dev), torch.from_numpy(labels).to(dev)
    if cfg.pen:  # real writers' strokes drawn as the page draws them (~3 ms each)
        images, labels = pen.render(pen.load(cfg.pen_writers), PEN_RENDERS, cfg.seed)
        batches.pen = to_tensor(images, dev), torch.from_numpy(labels).to(dev)

    model = models.create(cfg.model).to(dev).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    if cfg.init:  # fine-tuning trained weights
        model.load_state_dict(initial_weights(cfg.init))
    elif hasattr(model, "fit_data"):  # a data-dependent initialisation (models.PatchWhitening)
        model.fit_data(batches.x)
    steps_per_epoch = math.ceil(len(batches.x) / cfg.batch_size)
    s = State(
        cfg,
        run,
        batches,
        model,
        distributed.wrap(model, world),
        world,
        make_optimizer(cfg, model),
        EMA(model, cfg.ema) if cfg.ema else None,
        torch.Generator().manual_seed(cfg.seed),
        steps_per_epoch,
        min(math.ceil(cfg.epochs * steps_per_epoch), cfg.max_steps or math.inf),  # type: ignore[arg-type]
    )
    document = {
        "train": dataclasses.asdict(cfg),
        "command": command,
        "environment": {**environment(), "processes": world.size},
        "data": {
            "train": len(train_set),
            "validation": len(val_set),
            "checksums": data.read_checksums(),
        },
    }
    if resume_from is not None:
        restore_checkpoint(s)
        before = run.document
        document["command"] = before.get("command", "")  # the card's command trains it again
        document["resumed_by"] = [*before.get("resumed_by", []), command]
        log.info("resuming %s at epoch %d", run.path, len(s.history) + 1)
    if world.main:
        run.write_config(document)
    return s


def train_one_epoch(s: State, epoch: int, progress: Progress | None) -> tuple[int, float, float]:
    """One pass over the training split in batches; returns (images, mean loss, accuracy)."""
    cfg, d, dev = s.cfg, s.data, s.data.x.device
    s.model.train()
    order = torch.randperm(len(d.x), generator=s.generator).to(dev)
    seen, loss_sum, correct = 0, 0.0, 0
    steps_now = min(s.steps_per_epoch, s.total_steps - s.step)  # a fractional last epoch: fewer
    for i in range(steps_now):
        for group in s.optimizer.param_groups:
            group["lr"] = learning_rate(cfg, s.step, s.total_steps)
        # the batch, mixed and augmented as a whole: (B, 1, 28, 28)
        index = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
        xb, yb = d.x[index], d.y[index]
        if d.styled is not None:
            styled = torch.rand(len(index), generator=s.generator).to(dev) < cfg.styles
            xb = torch.where(styled.view(-1, 1, 1, 1), d.styled[index], xb)
        for pool, share in ((d.drawn, cfg.strokes), (d.pen, cfg.pen)):
            if pool is not None:  # a share of the batch replaced by images from the pool
                taken = torch.rand(len(index), generator=s.generator).to(dev) < share
                pick = torch.randint(len(pool[0]), (len(index),), generator=s.generator).to(dev)
                xb = torch.where(taken.view(-1, 1, 1, 1), pool[0][pick], xb)
                yb = torch.where(taken, pool[1][pick], yb)
        if cfg.flag_ones:
            xb = augment.flag_ones(xb, yb, s.generator, cfg.flag_ones)
        xb = augment.apply(xb, cfg.augment, s.generator).contiguous(
            memory_format=torch.channels_last
        )
        xb, yb = s.world.shard(xb), s.world.shard(yb)  # this process's share of the batch
        # forward, backward, step
        logits = s.net(xb)
        loss = F.cross_entropy(logits, yb, label_smoothing=cfg.label_smoothing)
        s.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        s.optimizer.step()
        if s.ema is not None:
            s.ema.update(s.model)
        s.step += 1
        seen += len(yb)
        loss_sum += loss.item() * len(yb)
        correct += int((logits.argmax(1) == yb).sum())
        if progress is not None and s.world.main:
            progress(
                epoch,
                i + 1,
                {"loss": loss_sum / seen, "accuracy": correct / seen, "steps": steps_now},
            )
    images, loss_total, right = s.world.sum(seen, loss_sum, correct)  # over the processes
    return int(images), loss_total / max(images, 1), right / max(images, 1)


def validate(s: State) -> tuple[float, float, torch.Tensor | None]:
    """Accuracy, mean cross-entropy and logits of the scored weights on the validation split."""
    return accuracy_and_loss(s.scored, s.data.x_val, s.data.y_val)


def save_checkpoint(s: State, val_accuracy: float, logits: torch.Tensor | None) -> None:
    """The epoch's state for --resume; the weights themselves when validation improved."""
    improved = val_accuracy > s.best_val or math.isnan(val_accuracy)
    if improved:
        s.best_val, s.val_logits = val_accuracy, logits
    if not s.world.main:  # every process holds the same weights; one writes them
        return
    if improved:
        save_weights(s.run.weights, s.scored.state_dict(), {"model": s.cfg.model})
    tensors = {f"model.{k}": v for k, v in s.model.state_dict().items()}
    if s.ema is not None:
        tensors.update({f"ema.{k}": v for k, v in s.ema.module.state_dict().items()})
    tensors["rng.generator"] = s.generator.get_state()
    tensors["rng.torch"] = torch.get_rng_state()
    optimizer_tensors, optimizer_rest = _optimizer_state(s.optimizer)
    tensors.update(optimizer_tensors)
    resume_doc = {
        "step": s.step,
        "ema_updates": s.ema.updates if s.ema is not None else 0,
        "best_val": s.best_val,
        "optimizer": optimizer_rest,
    }
    save_weights(
        s.run.checkpoint, tensors, {"model": s.cfg.model, "resume": json.dumps(resume_doc)}
    )
    s.run.write_history(s.history)


def restore_checkpoint(s: State) -> None:
    """The state `save_checkpoint` wrote at the end of the last finished epoch."""
    tensors, meta = load_checkpoint(s.run.checkpoint)
    if "resume" not in meta:
        raise DigitrecError(
            f"{s.run.checkpoint}: written by an older digitrec without the optimizer state; "
            "it cannot be resumed exactly (train again)"
        )
    doc = json.loads(meta["resume"])
    s.model.load_state_dict(_prefixed(tensors, "model."))
    if s.ema is not None:
        s.ema.module.load_state_dict(_prefixed(tensors, "ema."))
        s.ema.updates = int(doc["ema_updates"])
    s.generator.set_state(tensors["rng.generator"])
    torch.set_rng_state(tensors["rng.torch"])
    _load_optimizer_state(s.optimizer, tensors, doc["optimizer"])
    s.step, s.best_val = int(doc["step"]), float(doc["best_val"])
    s.history = s.run.history


def finish(s: State, test: bool) -> Run:
    """Best weights back; temperature on validation; test figures; metrics.json; curves."""
    from digitrec.plots import plot_curves
    from digitrec.training.export import export_run

    s.world.barrier()  # the last checkpoint is written
    if not s.world.main:
        return Run(s.run.path, s.cfg, s.history, {})
    s.model.load_state_dict(load_weights(s.run.weights))
    d = s.data
    if s.val_logits is None and len(d.x_val):  # resumed with no better epoch since
        s.val_logits = predict_logits(s.model, d.x_val)
    metrics: dict[str, object] = {
        "model": s.cfg.model,
        "parameters": models.count_parameters(s.model),
        "epochs": len(s.history),
        "steps": s.step,
        "val_accuracy": s.best_val,
        "train_seconds": time.perf_counter() - s.started,
        "images_per_second": sum(h["images"] for h in s.history)
        / max(1e-9, sum(h["seconds"] for h in s.history)),
    }
    temperature = 1.0
    if s.val_logits is not None:
        temperature = calibrate.fit_temperature(s.val_logits, d.y_val)
        metrics["val_ece"] = calibrate.ece(s.val_logits, d.y_val)
        metrics["val_ece_calibrated"] = calibrate.ece(s.val_logits / temperature, d.y_val)
    metrics["temperature"] = temperature
    if test:
        test_set = data.load_mnist("test")
        x_test, y_test = to_tensor(test_set.images, d.x.device), torch.from_numpy(test_set.labels)
        test_logits = predict_logits(s.model, x_test)
        metrics["test_accuracy"] = (test_logits.argmax(1) == y_test).float().mean().item()
        metrics["test_ece"] = calibrate.ece(test_logits, y_test)
        metrics["test_ece_calibrated"] = calibrate.ece(test_logits / temperature, y_test)
    s.run.write_metrics(metrics)
    plot_curves(s.history, s.run.curves)
    export_run(s.run.path, check=False)  # model.onnx: `--model RUN_DIR` serves it without torch
    return Run(s.run.path, s.cfg, s.history, metrics)


# ---------------------------------------------------------------- helpers


def _prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def _optimizers(optimizer: torch.optim.Optimizer | Optimizers) -> tuple[torch.optim.Optimizer, ...]:
    return optimizer.optimizers if isinstance(optimizer, Optimizers) else (optimizer,)


def _optimizer_state(
    optimizer: torch.optim.Optimizer | Optimizers,
) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """An optimizer's state_dict as safetensors can hold it: its tensors by name, and the rest
    (parameter groups, plain numbers) as JSON."""
    tensors: dict[str, torch.Tensor] = {}
    rest = []
    for n, o in enumerate(_optimizers(optimizer)):
        sd = o.state_dict()
        numbers: dict[str, dict[str, Any]] = {}
        for pid, entries in sd["state"].items():
            for key, value in entries.items():
                if torch.is_tensor(value):
                    tensors[f"optim.{n}.{pid}.{key}"] = value
                else:
                    numbers.setdefault(str(pid), {})[key] = value
        rest.append({"param_groups": sd["param_groups"], "numbers": numbers})
    return tensors, rest


def _load_optimizer_state(
    optimizer: torch.optim.Optimizer | Optimizers,
    tensors: dict[str, torch.Tensor],
    rest: list[dict[str, Any]],
) -> None:
    for n, (o, saved) in enumerate(zip(_optimizers(optimizer), rest, strict=True)):
        state: dict[int, dict[str, Any]] = {}
        for name, value in _prefixed(tensors, f"optim.{n}.").items():
            pid, key = name.split(".", 1)
            state.setdefault(int(pid), {})[key] = value
        for pid, entries in saved["numbers"].items():
            state.setdefault(int(pid), {}).update(entries)
        o.load_state_dict({"state": state, "param_groups": saved["param_groups"]})
        for param, entries in o.state.items():  # moments in their parameter's memory layout
            for key, value in entries.items():  # (channels_last): the fused kernels assume it
                if torch.is_tensor(value) and value.shape == param.shape:
                    entries[key] = torch.empty_like(param).copy_(value)


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


def load_training_data(cfg: TrainConfig) -> tuple[data.Dataset, data.Dataset]:
    """The training and validation splits (cfg.split seeds the split), extra data appended."""
    full = data.load(cfg.data, "train")
    train_set, val_set = data.split_validation(full, cfg.val_fraction, cfg.split)
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


def initial_weights(spec: str) -> dict[str, Any]:
    """TrainConfig.init's weights: a run directory's best, or a shipped model's member (NAME:K)."""
    name, _, member = spec.rpartition(":")
    if name and member.isdigit() and not Path(spec).exists():
        from digitrec.models_dir import ModelsDir

        models, prefix = ModelsDir(), f"member{member}."
        found = {
            k[len(prefix) :]: v
            for k, v in load_weights(models.weights(models.name(name))).items()
            if k.startswith(prefix)
        }
        if not found:
            raise DigitrecError(f"init {spec!r}: shipped model {name!r} has no member {member}")
        return found
    return load_weights(RunDir(Path(spec)).weights)
