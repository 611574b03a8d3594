"""`train` and `ensemble`. `train`'s flags are TrainConfig's fields: their help and choices are
declared there (`config.flag`), and `flags()` builds the Typer options from them."""

from __future__ import annotations

import dataclasses
import inspect
import math
import os
import shlex
import sys
import typing
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from digitrec.commands.common import console, shown
from digitrec.config import Recipe, TrainConfig
from digitrec.errors import DigitrecError

# `train`'s flags in --help order: TrainConfig's fields and, among them, the command's own
# options (recipe, resume, ensemble, jobs, nproc: no setting of a run, parameters of train()).
ORDER = (
    "model", "recipe", "epochs", "batch_size", "lr", "optimizer", "schedule", "val_fraction",
    "seed", "split_seed", "augment", "flag_ones", "styles", "strokes", "pen", "pen_writers",
    "init", "data", "extra_data", "output", "resume", "ensemble", "jobs", "nproc", "max_steps",
    "threads",
)  # fmt: skip


def _writers(text: str | None) -> tuple[int, ...] | None:
    """--pen-writers 3,4,5 -> (3, 4, 5)."""
    if text is None:
        return None
    try:
        return tuple(int(w) for w in text.split(",") if w.strip())
    except ValueError:
        raise DigitrecError(
            f"--pen-writers {text!r}: writer numbers with commas, e.g. 3,4,5"
        ) from None


PARSERS = {"pen_writers": _writers}  # a flag's text -> the setting (default: as typed)


def _setting(field: dataclasses.Field[Any], hint: Any) -> inspect.Parameter:
    """The flag of a TrainConfig field: None (not given: the recipe's, or the default) or a
    value of the field's type: one of its choices, text for a tuple of numbers (3,4,5), a
    repeatable flag for a tuple of names."""
    meta = field.metadata
    kind = meta["choices"] or {tuple[int, ...]: str, tuple[str, ...]: list[str]}.get(hint, hint)
    names = [f"--{field.name.replace('_', '-')}", meta["short"]] if meta["short"] else []
    option = typer.Option(
        *names,
        help=meta["help"].format(default=field.default),
        show_default=False,
    )
    annotation = Annotated[kind | None, option]  # type: ignore[valid-type]
    keyword = inspect.Parameter.KEYWORD_ONLY
    return inspect.Parameter(field.name, keyword, default=None, annotation=annotation)


def flags(command: Any) -> inspect.Signature:
    """`command`'s signature for Typer: its own parameters and one option per TrainConfig field
    declared with `config.flag`, in ORDER."""
    hints = typing.get_type_hints(TrainConfig)
    fields = [f for f in dataclasses.fields(TrainConfig) if "help" in f.metadata]
    settings = {f.name: _setting(f, hints[f.name]) for f in fields}
    own = inspect.signature(command, eval_str=True).parameters
    params = {**settings, **{n: p for n, p in own.items() if p.kind is p.KEYWORD_ONLY}}
    if set(params) != set(ORDER):  # a flag added or gone: ORDER places each in --help
        raise RuntimeError(f"train: ORDER and the flags differ in {set(params) ^ set(ORDER)}")
    return inspect.Signature([params[name] for name in ORDER], return_annotation=None)


RecipeOpt = Annotated[
    Recipe | None,
    typer.Option(show_default=False, help="Settings bundle (the flags below override it)."),
]
ResumeOpt = Annotated[
    Path | None,
    typer.Option(
        help="Continue a run from its checkpoint, with its own settings; flags given "
        "here (e.g. --epochs, --threads) override them."
    ),
]
EnsembleOpt = Annotated[int, typer.Option(min=1, help="Train N members with seeds seed..seed+N-1.")]
JobsOpt = Annotated[int, typer.Option(min=1, help="Ensemble members trained at once (processes).")]
NprocOpt = Annotated[
    int,
    typer.Option(
        min=1,
        help="Train one model in N processes (DistributedDataParallel; gloo on CPUs, NCCL "
        "on GPUs), each on its share of every batch. Or launch `digitrec train` with "
        "torchrun, on one machine or several.",
    ),
]


def train(
    *,
    recipe: RecipeOpt = None,
    resume: ResumeOpt = None,
    ensemble: EnsembleOpt = 1,
    jobs: JobsOpt = 1,
    nproc: NprocOpt = 1,
    **settings: Any,  # TrainConfig's flags (see flags())
) -> None:
    """Train a model and write its run directory (config, history, metrics, curves, weights)."""
    # torch first: without the [train] extra, naming it is the answer, before any flag check
    from digitrec.training import loop

    given = _given(settings)
    command = "digitrec " + shlex.join(sys.argv[1:])
    with _progress() as show:
        if resume is None:
            run = _new_run(recipe, ensemble, jobs, nproc, given, show, command)
        else:
            if recipe is not None or ensemble > 1:
                raise DigitrecError(
                    "--resume continues one run with its own settings: no --recipe or --ensemble"
                )
            if nproc > 1:
                raise DigitrecError("--resume in several processes: launch it with torchrun")
            print(f"resuming {shown(resume)}")
            run = loop.resume(resume, progress=show, command=command, **given)
    _report(run)


train.__signature__ = flags(train)  # type: ignore[attr-defined]


def _given(settings: dict[str, Any]) -> dict[str, Any]:
    """The flags' values as TrainConfig's fields take them (None: not given)."""
    given = {}
    for name, value in settings.items():
        if name in PARSERS:
            value = PARSERS[name](value)
        elif isinstance(value, list):  # a repeatable flag
            value = tuple(value) or None
        elif isinstance(value, Enum):
            value = value.value
        given[name] = value
    return given


def _new_run(
    recipe: Recipe | None,
    ensemble: int,
    jobs: int,
    nproc: int,
    given: dict[str, Any],
    show: Any,
    command: str,
) -> Any:
    """Train a run (an ensemble's members, or one model in `nproc` processes) from a recipe
    and the flags given."""
    from digitrec.config import recipe_config
    from digitrec.training import ensemble as ensembles
    from digitrec.training import loop

    cfg = recipe_config(recipe.value if recipe else None, **given)
    if os.environ.get("RANK", "0") == "0":  # under torchrun: once, not per process
        print(
            f"training {cfg.model} ({cfg.recipe or 'custom'}): "
            + ", ".join(f"{k}={v}" for k, v in cfg.__dict__.items() if v not in ("", (), None))
        )
    if nproc > 1:
        if ensemble > 1:
            raise DigitrecError("--nproc trains one model: no --ensemble with it")
        return loop.train_processes(cfg, nproc, command=command)
    if ensemble > 1:
        return ensembles.train_ensemble(cfg, ensemble, progress=show, command=command, jobs=jobs)
    return loop.train(cfg, progress=show, command=command)


def _report(run: Any) -> None:
    """The run's directory and figures (printed by rank 0 only under torchrun)."""
    m = run.metrics
    if not m:  # another process of a torchrun job: rank 0 reports
        return
    print(f"run directory: {run.directory}")
    accuracy = float(m["val_accuracy"])
    val = "none (every image trained on)" if math.isnan(accuracy) else f"{accuracy:.4f}"
    print(
        f"parameters {m['parameters']:,}  val_accuracy {val}  "
        f"test_accuracy {m.get('test_accuracy', float('nan')):.4f}  "
        f"train_seconds {m['train_seconds']:.1f}"
    )


def ensemble(
    runs: Annotated[list[Path], typer.Argument(help="Finished runs with one validation split.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The ensemble's run directory.")],
) -> None:
    """Average runs trained apart (same validation split) into an ensemble run directory."""
    from digitrec.training.ensemble import combine

    run = combine(runs, output, command="digitrec " + shlex.join(sys.argv[1:]))
    m = run.metrics
    print(
        f"{m['members']} members: val_accuracy {m['val_accuracy']:.4f} "
        f"(members {', '.join(f'{v:.4f}' for v in m['member_val_accuracy'])}), "  # type: ignore[attr-defined]
        f"test_accuracy {m['test_accuracy']:.4f}, test_ece {m['test_ece']:.4f}"
    )
    print(f"run directory: {run.directory}")


def _progress() -> Any:
    """A rich progress bar per epoch showing loss, accuracy and validation accuracy."""
    from contextlib import contextmanager

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    @contextmanager
    def bar() -> Any:
        columns = (
            TextColumn("epoch {task.fields[epoch]}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[stats]}"),
        )
        with Progress(*columns, console=console, transient=False) as progress:
            tasks: dict[tuple[int, int], Any] = {}
            member = [0]

            def show(epoch: int, step: int, stats: dict[str, float]) -> None:
                if epoch == 0 and step == 1 and (member[0], 0) in tasks:
                    member[0] += 1  # a new ensemble member starts again at epoch 1
                key = (member[0], epoch)
                if step == -1:  # epoch finished: validation figures
                    progress.stop_task(tasks[key])
                    progress.update(
                        tasks[key],
                        stats=(
                            f"loss {stats['loss']:.4f} acc {stats['accuracy']:.4f} "
                            f"val_acc {stats['val_accuracy']:.4f} ({stats['seconds']:.1f}s)"
                        ),
                    )
                    return
                if key not in tasks:
                    tasks[key] = progress.add_task(
                        "", total=stats["steps"], epoch=epoch + 1, stats=""
                    )
                if step % 20 == 0 or step == stats["steps"]:
                    progress.update(
                        tasks[key],
                        completed=step,
                        stats=(f"loss {stats['loss']:.4f} acc {stats['accuracy']:.4f}"),
                    )

            yield show

    return bar()
