"""Ensembles: members trained with seeds seed, seed+1, ... on one validation split
(`train_ensemble`), or runs trained apart and put together (`combine`); their calibrated
probabilities averaged (`average`)."""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from digitrec import calibrate, data
from digitrec.config import TrainConfig, default_output
from digitrec.errors import DigitrecError
from digitrec.runs import RunDir
from digitrec.training.export import export_run, load_run_model
from digitrec.training.loop import (
    Progress,
    Run,
    device,
    load_training_data,
    predict_logits,
    to_tensor,
    train,
)


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
    out = Path(cfg.output) if cfg.output else default_output(cfg, f"-x{members}")
    # every member has its own seed (weights, batch order, augmentation) but one shared
    # validation split, so the ensemble's validation figure is honest
    configs = [
        dataclasses.replace(
            cfg, seed=cfg.seed + k, split_seed=cfg.split, output=str(out / f"member-{k}")
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
    return average(RunDir(out), [RunDir(r.directory) for r in runs], cfg.model)


def combine(run_dirs: list[Path], out: Path, command: str = "") -> Run:
    """An ensemble of runs trained apart: copies them into OUT/member-k and averages them as
    train_ensemble does. They must share one validation split (data, fraction and seed), or
    the ensemble's validation figure would count images some member trained on."""
    if len(run_dirs) < 2:
        raise DigitrecError("an ensemble needs at least two runs")
    runs = [RunDir(d) for d in run_dirs]
    for r in runs:
        if not r.exists() or not r.is_finished or not r.weights.exists():
            raise DigitrecError(f"{r.path}: not a finished single run (no metrics.json or weights)")
    splits = {r.split_key for r in runs}
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
    for k, r in enumerate(runs):
        shutil.copytree(r.path, out / f"member-{k}")
        members.append(RunDir(out / f"member-{k}"))
    # How to make it again: each member's training (once per run), then this command.
    again = " && ".join(dict.fromkeys(c for c in [*(m.command for m in members), command] if c))
    architectures = "+".join(sorted({m.config.model for m in members}))
    return average(RunDir(out), members, architectures, command=again)


def average(out: RunDir, members: list[RunDir], model_name: str, command: str = "") -> Run:
    """Write OUT/metrics.json and config.json of the ensemble of the runs in `members`: their
    calibrated probabilities averaged, on their shared validation split and the test set.
    `command`: how to make it again (default: member 0's, which trained them all)."""
    cfg = members[0].config
    dev = device()
    _, val_set = load_training_data(cfg)
    test_set = data.load_mnist("test")

    # each member loaded once, with the temperature it was calibrated with
    loaded = [load_run_model(m) for m in members]

    def averaged(images: np.ndarray) -> torch.Tensor:
        x = to_tensor(images, dev)
        probs = torch.zeros(len(x), 10)
        for model, metrics in loaded:
            t = float(metrics["temperature"])
            probs += torch.softmax(predict_logits(model.to(dev), x) / t, 1).cpu() / len(loaded)
        return probs

    val_probs, test_probs = averaged(val_set.images), averaged(test_set.images)
    y_val, y_test = torch.from_numpy(val_set.labels), torch.from_numpy(test_set.labels)
    member_metrics: list[dict[str, Any]] = [m for _, m in loaded]
    metrics: dict[str, object] = {
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
    metrics["test_ece"] = metrics["test_ece_calibrated"]
    out.write_metrics(metrics)
    document = {**members[0].document, "members": [m.name for m in members]}
    if command:
        document["command"] = command
    out.write_config(document)
    export_run(out.path, check=False)
    return Run(out.path, cfg, members[0].history, metrics)
