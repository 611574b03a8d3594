"""The `digitrec` command line. Library code logs; this module prints.

Heavy imports (torch, matplotlib, FastAPI) happen inside the commands that need them, so
`digitrec predict` and `digitrec serve` start fast and never import torch.
"""

from __future__ import annotations

import glob
import json
import logging
import math
import os
import shlex
import sys
from enum import Enum, StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from digitrec.config import Augment, Optimizer, Recipe, Schedule, TrainConfig
from digitrec.errors import DigitrecError
from digitrec.files import not_a_file

app = typer.Typer(
    # --install-completion / --show-completion: bash, zsh, fish, PowerShell
    add_completion=True,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Handwritten digit recognition: train, evaluate, predict, read numbers, serve a web app.",
)
feedback_app = typer.Typer(no_args_is_help=True, help="Corrections stored by the web app.")
app.add_typer(feedback_app, name="feedback")
console = Console()


def error_line(message: str) -> None:
    """One line on stderr, never wrapped: scripts and our tests read it as one line."""
    print(shown(message.replace("\n", " ")), file=sys.stderr)


def shown(name: object) -> str:
    """A name (a file name: any bytes but / and NUL) safe to print: control characters, and
    any other the terminal would act on or hide (escape codes, bidi overrides), escaped."""
    text = str(name)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def cell(name: object) -> str:
    """shown() for a rich table, where [brackets] would be markup."""
    from rich.markup import escape

    return escape(shown(name))


ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="A run directory or a shipped model name. Default: the best shipped model.",
    ),
]


class Format(StrEnum):
    table = "table"
    json = "json"  # one object per line


FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="json: one object per line.")]
QuietOpt = Annotated[
    bool,
    typer.Option(
        "--quiet", "-q", help="No progress bar (there is none either when stderr is no terminal)."
    ),
]


def _bar(total: int, what: str, quiet: bool) -> Any:
    """A rich progress bar on stderr over `total` items; off with --quiet, when stderr is not a
    terminal (a pipe, a file, CI) and for a handful of items. Advance it with
    `bar.advance(task)`; a context manager."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    errors = Console(stderr=True)
    return Progress(
        TextColumn(what),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=errors,
        transient=True,  # gone once done: the answers stay on the screen, not the bar
        disable=quiet or not errors.is_terminal or total < 2,
    )


def _version(value: bool) -> None:
    if value:
        from digitrec import __version__

        print(f"digitrec {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


# ---------------------------------------------------------------- data


@app.command()
def explore(
    data: Annotated[
        str | None, typer.Option(help="CSV, NPZ, IDX or image folder. Default: the bundled MNIST.")
    ] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Output directory.")] = Path(
        "explore"
    ),
) -> None:
    """Write summary.json and figures (samples, mean digits, class and pixel histograms)."""
    from digitrec.explore import explore as run_explore

    summary = run_explore(data, output)
    for name, s in summary.items():
        if name != "files":
            print(
                f"{name}: {s['images']:,} images, per class {s['per_class']}, "
                f"pixel mean {s['pixel_mean']:.1f}"
            )
    for f in summary["files"]:
        print(f"wrote {shown(f)}")


# ---------------------------------------------------------------- train


def _architecture(name: str | None) -> str | None:
    """--model for `train`: an architecture (training.models), checked before any data loads."""
    if name is not None:
        from digitrec.training.models import REGISTRY

        if name not in REGISTRY:
            raise DigitrecError(f"unknown model {name!r}; choose from {', '.join(REGISTRY)}")
    return name


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


@app.command()
def train(
    model: Annotated[
        str | None,
        typer.Option(
            callback=_architecture,
            show_default=False,
            help="Architecture: seed (the tutorial's CNN), whitened, maxpool_bn, deotte. "
            "Default: the recipe's, else seed.",
        ),
    ] = None,
    recipe: Annotated[
        Recipe | None,
        typer.Option(show_default=False, help="Settings bundle (the flags below override it)."),
    ] = None,
    epochs: Annotated[
        float | None,
        typer.Option(
            show_default=False,
            help="Passes over the data (1.5: one and a half). Default: the recipe's, else "
            f"{TrainConfig.epochs:g}; with --resume, the run's own.",
        ),
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option(show_default=False, help=f"Default: {TrainConfig.batch_size}.")
    ] = None,
    lr: Annotated[
        float | None,
        typer.Option(show_default=False, help=f"Peak learning rate. Default: {TrainConfig.lr:g}."),
    ] = None,
    optimizer: Annotated[
        Optimizer | None,
        typer.Option(
            show_default=False,
            help="muon: Muon for the hidden filters, AdamW for the rest. "
            f"Default: the recipe's, else {TrainConfig.optimizer}.",
        ),
    ] = None,
    schedule: Annotated[
        Schedule | None,
        typer.Option(
            show_default=False, help=f"Default: the recipe's, else {TrainConfig.schedule}."
        ),
    ] = None,
    val_fraction: Annotated[
        float | None,
        typer.Option(
            show_default=False,
            help=f"Validation carved from the training set. Default: {TrainConfig.val_fraction}.",
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(show_default=False, help=f"Random seed. Default: {TrainConfig.seed}."),
    ] = None,
    split_seed: Annotated[
        int | None,
        typer.Option(
            show_default=False,
            help="Seed of the validation split. Default: the seed (an ensemble's: the first). "
            "Give a shipped ensemble's to train one more member it can be judged with.",
        ),
    ] = None,
    augment: Annotated[
        Augment | None,
        typer.Option(
            show_default=False, help=f"Default: the recipe's, else {TrainConfig.augment}."
        ),
    ] = None,
    flag_ones: Annotated[
        float | None,
        typer.Option(
            show_default=False,
            help="Share of the '1's drawn with a flag, as most of Europe writes them. Default: 0.",
        ),
    ] = None,
    styles: Annotated[
        float | None,
        typer.Option(
            show_default=False,
            help="Share of each batch taken from copies in other styles and captures (box "
            "stretched to a square, fat pen, low resolution; training.styles). Default: 0.",
        ),
    ] = None,
    strokes: Annotated[
        float | None,
        typer.Option(
            show_default=False,
            help="Share of each batch replaced by digits drawn from pen strokes in forms MNIST "
            "lacks (open and low-closed 4s, crossed 7s, curved-tail 9s; training.strokes). "
            "Default: 0.",
        ),
    ] = None,
    pen: Annotated[
        float | None,
        typer.Option(
            show_default=False,
            help="Share of each batch replaced by real writers' pen digits (data/real/pendigits) "
            "drawn as the page draws them, many ways (training.pen). Default: 0.",
        ),
    ] = None,
    pen_writers: Annotated[
        str | None,
        typer.Option(
            show_default=False,
            help="The pen writers to train on, e.g. 3,4,5,6,7 (the rest stay unseen for "
            "scoring). Default: all seven.",
        ),
    ] = None,
    init: Annotated[
        str | None,
        typer.Option(
            show_default=False,
            help="Start from trained weights: a run directory, or a shipped model's member "
            "as NAME:K (best:0). Default: fresh weights.",
        ),
    ] = None,
    data: Annotated[str | None, typer.Option(help="Training data. Default: bundled MNIST.")] = None,
    extra_data: Annotated[
        list[str] | None,
        typer.Option(
            help="More labelled data (e.g. corrections.csv), added to the training split."
        ),
    ] = None,
    output: Annotated[
        str | None,
        typer.Option("--output", "-o", help="Run directory. Default: runs/<time>-<model>-s<seed>."),
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option(
            help="Continue a run from its checkpoint, with its own settings; flags given "
            "here (e.g. --epochs, --threads) override them."
        ),
    ] = None,
    ensemble: Annotated[
        int, typer.Option(min=1, help="Train N members with seeds seed..seed+N-1.")
    ] = 1,
    jobs: Annotated[
        int, typer.Option(min=1, help="Ensemble members trained at once (processes).")
    ] = 1,
    nproc: Annotated[
        int,
        typer.Option(
            min=1,
            help="Train one model in N processes (DistributedDataParallel; gloo on CPUs, NCCL "
            "on GPUs), each on its share of every batch. Or launch `digitrec train` with "
            "torchrun, on one machine or several.",
        ),
    ] = 1,
    max_steps: Annotated[int | None, typer.Option(help="Stop after N steps (smoke runs).")] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads. Default: all cores.")] = None,
) -> None:
    """Train a model and write its run directory (config, history, metrics, curves, weights)."""
    from digitrec.config import recipe_config
    from digitrec.training import ensemble as ensembles
    from digitrec.training import loop

    flags = {
        "model": model, "epochs": epochs, "batch_size": batch_size, "lr": lr,
        "optimizer": optimizer, "schedule": schedule, "val_fraction": val_fraction,
        "seed": seed, "split_seed": split_seed, "augment": augment, "flag_ones": flag_ones,
        "styles": styles, "strokes": strokes, "pen": pen, "init": init, "data": data,
        "pen_writers": _writers(pen_writers),
        "extra_data": tuple(extra_data) if extra_data else None, "output": output,
        "max_steps": max_steps, "threads": threads,
    }  # fmt: skip
    flags = {k: v.value if isinstance(v, Enum) else v for k, v in flags.items()}
    command = "digitrec " + shlex.join(sys.argv[1:])
    with _progress() as show:
        if resume is not None:
            if recipe is not None or ensemble > 1:
                raise DigitrecError(
                    "--resume continues one run with its own settings: no --recipe or --ensemble"
                )
            if nproc > 1:
                raise DigitrecError("--resume in several processes: launch it with torchrun")
            print(f"resuming {shown(resume)}")
            run = loop.resume(resume, progress=show, command=command, **flags)
        else:
            cfg = recipe_config(recipe.value if recipe else None, **flags)
            if os.environ.get("RANK", "0") == "0":  # under torchrun: once, not per process
                print(
                    f"training {cfg.model} ({cfg.recipe or 'custom'}): "
                    + ", ".join(
                        f"{k}={v}" for k, v in cfg.__dict__.items() if v not in ("", (), None)
                    )
                )
            if nproc > 1:
                if ensemble > 1:
                    raise DigitrecError("--nproc trains one model: no --ensemble with it")
                run = loop.train_processes(cfg, nproc, command=command)
            elif ensemble > 1:
                run = ensembles.train_ensemble(
                    cfg, ensemble, progress=show, command=command, jobs=jobs
                )
            else:
                run = loop.train(cfg, progress=show, command=command)
    m = run.metrics
    if not m:  # another process of a torchrun job: rank 0 reports
        return
    print(f"run directory: {run.directory}")
    accuracy = float(m["val_accuracy"])  # type: ignore[arg-type]
    val = "none (every image trained on)" if math.isnan(accuracy) else f"{accuracy:.4f}"
    print(
        f"parameters {m['parameters']:,}  val_accuracy {val}  "
        f"test_accuracy {m.get('test_accuracy', float('nan')):.4f}  "
        f"train_seconds {m['train_seconds']:.1f}"
    )


@app.command()
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


# ---------------------------------------------------------------- evaluate / export / ship

TTA_HELP = "Test-time augmentation: average each image with zoomed copies (3x the work)."


@app.command()
def evaluate(
    model: ModelOpt = None,
    data: Annotated[
        str | None, typer.Option(help="Labelled data. Default: MNIST test split.")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Where figures go. Default: the run directory, or evaluation/NAME.",
        ),
    ] = None,
    tta: Annotated[bool, typer.Option(help=TTA_HELP)] = False,
    quiet: QuietOpt = False,
) -> None:
    """Test accuracy, per-class figures, confusion matrix, worst mistakes, calibration."""
    from digitrec import data as datasets
    from digitrec.evaluate import evaluate as run_evaluate
    from digitrec.predictor import Predictor
    from digitrec.shipped import resolve

    ref = resolve(model)
    predictor = Predictor(ref, threads=0)
    out = output or ref.run_dir or Path("evaluation") / ref.name
    dataset = datasets.load(data, "test") if data else datasets.load_mnist("test")
    with _bar(len(dataset.images), "evaluate", quiet) as bar:
        task = bar.add_task("", total=len(dataset.images))
        report = run_evaluate(
            predictor, dataset, out, tta=tta, progress=lambda n: bar.advance(task, n)
        )
    table = Table("digit", "precision", "recall", "F1", "support", title=f"{ref.name}")
    for d, row in report.per_class.items():
        table.add_row(
            d,
            f"{row['precision']:.4f}",
            f"{row['recall']:.4f}",
            f"{row['f1']:.4f}",
            str(row["support"]),
        )
    console.print(table)
    print(
        f"test_accuracy {report.accuracy:.4f} ({report.errors} errors in {report.total:,})  "
        f"ECE {report.ece:.4f}" + ("  (test-time augmentation)" if tta else "")
    )
    for f in report.files:
        print(f"wrote {shown(f)}")


@app.command()
def export(model: Annotated[Path, typer.Option("--model", "-m", help="A run directory.")]) -> None:
    """Write RUN_DIR/model.onnx and check ONNX Runtime against torch on the test set."""
    from digitrec.training.export import export_run

    path = export_run(model, check=True)
    diff = json.loads((model / "export.json").read_text())["max_difference"]
    print(f"wrote {path} (ONNX Runtime vs torch on 10,000 test images: max difference {diff:.1e})")


@app.command("export-web")
def export_web(
    out: Annotated[Path, typer.Argument(help="The folder to write the page into.")],
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Default: the default model.")
    ] = None,
    server: Annotated[
        str | None,
        typer.Option(help="A server for numbers, photos and corrections (default: none)."),
    ] = None,
) -> None:
    """Write the web page as static files that answer on the device (webexport.py)."""
    from digitrec.webexport import export_web as write

    print(f"wrote {len(write(out, model, server))} files to {out}")


@app.command()
def ship(
    model: Annotated[Path, typer.Option("--model", "-m", help="A run directory.")],
    name: Annotated[str, typer.Option(help="Name under models/.")],
    default: Annotated[bool, typer.Option(help="Make it the default model.")] = False,
    int8: Annotated[
        bool,
        typer.Option(
            help="Ship the graph quantized to 8-bit integers (~1.5x faster; refused if it loses "
            "over 0.1% validation accuracy)."
        ),
    ] = False,
    twin: Annotated[
        Path | None,
        typer.Option(
            help="For a run trained on all the images (--val-fraction 0): the same settings "
            "trained with the validation split held out. Its temperature calibrates the model "
            "and its validation accuracy goes on the card."
        ),
    ] = None,
) -> None:
    """Copy a run into models/ as ONNX + safetensors + model card."""
    from digitrec.training.ship import ship as run_ship

    card = run_ship(model, name, default=default, int8=int8, twin=twin)
    print(
        f"shipped {name}: test_accuracy {card['test_accuracy']:.4f}, "
        f"ECE {card['calibration']['test_ece']:.4f}"
    )


# ---------------------------------------------------------------- predict / read / submit


STDIN = Path("-")  # an image read from standard input


def _stdin_items() -> list[str]:
    """`-`: standard input holds one image (its bytes), or file names, one per line (what
    `find` or `ls` print)."""
    data = sys.stdin.buffer.read()
    try:  # an image is binary: NUL bytes, or bytes that are no UTF-8 (PNG's, JPEG's first)
        text = None if b"\0" in data else data.decode()
    except UnicodeDecodeError:
        text = None
    if text is None:
        _stdin_image[0] = data  # the image loader says if it is none it can read
        return ["-"]
    names = [line for line in text.splitlines() if line.strip()]
    if not names:
        raise DigitrecError("-: no image and no file names on standard input")
    return names


_stdin_image: list[bytes | None] = [None]  # the image `-` read, if it was one


def _source(path: Path) -> bytes | Path:
    """What to load for a listed path: the bytes read from stdin for `-`, else the path."""
    if path == STDIN and _stdin_image[0] is not None:
        return _stdin_image[0]
    return path


def _expand(inputs: list[str]) -> list[Path]:
    from digitrec.data import IMAGE_SUFFIXES

    if "-" in inputs:  # read once, where it stands among the other inputs
        at = inputs.index("-")
        inputs = [*inputs[:at], *_stdin_items(), *[i for i in inputs[at + 1 :] if i != "-"]]
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if item == "-" and _stdin_image[0] is not None:
            files.append(STDIN)
            continue
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.exists():  # a name with [ or * in it is a file first, a pattern only if not
            files.append(p)
        elif any(c in item for c in "*?["):
            matches = sorted(Path(m) for m in glob.glob(item, recursive=True))
            if not matches:
                raise DigitrecError(f"{item}: no files match")
            files += matches
        else:
            files.append(p)  # a missing file is reported by the image loader, naming it
    return files


@app.command()
def predict(
    images: Annotated[
        list[str],
        typer.Argument(
            help="Image files, directories or globs; `-`: an image, or file names one per "
            "line, from standard input."
        ),
    ],
    model: ModelOpt = None,
    format: FormatOpt = Format.table,
    quiet: QuietOpt = False,
) -> None:
    """Recognise one digit per image: the digit, its confidence and all ten probabilities."""
    from digitrec.predictor import Predictor

    predictor = Predictor.load(model, threads=0)  # every core: one image's latency, or a batch
    files = _expand(images)
    table = Table("file", "digit", "confidence", "top 3", title=f"model {predictor.name}")
    failed = 0
    with _bar(len(files), "predict", quiet) as bar:
        task = bar.add_task("", total=len(files))
        for start in range(0, len(files), 256):  # batched, one ONNX call per chunk
            chunk = files[start : start + 256]
            failed += _predict_chunk(predictor, chunk, format, table)
            bar.advance(task, len(chunk))
    if format is not Format.json:
        console.print(table)
    if failed:
        raise typer.Exit(1)


def _predict_chunk(predictor: Any, chunk: list[Path], format: Format, table: Table) -> int:
    """Answer the images of `chunk` in one batch, printing a JSON line or adding a table row
    each; a bad file is a line on stderr. Returns how many failed."""
    from digitrec.errors import ImageError
    from digitrec.vision.preprocess import load_image

    sources, errors = [], {}
    failed = 0
    for f in chunk:
        if f != STDIN and (problem := not_a_file(f)):
            errors[f] = problem
            continue
        try:
            sources.append(load_image(_source(f)))
        except ImageError as e:
            errors[f] = str(e)
    results = iter(predictor.predict_many(sources))
    for f in chunk:
        if f in errors:
            failed += 1
            error_line(f"{f}: {errors[f]}")  # escaped there
            continue
        p = next(results)
        row = {"file": str(f), **p.to_cli_dict()}
        if format is Format.json:
            print(json.dumps(row))
        else:
            digit = "-" if p.digit is None else str(p.digit)
            note = f" ({p.reason})" if p.reason else ""
            table.add_row(
                cell(f),
                digit + note,
                f"{p.confidence:.4f}",
                "  ".join(f"{d}:{q:.3f}" for d, q in p.candidates),
            )
    return failed


@app.command()
def read(
    images: Annotated[
        list[str],
        typer.Argument(
            help="Images of written numbers: files, directories or globs; `-`: an image, or "
            "file names one per line, from standard input."
        ),
    ],
    model: ModelOpt = None,
    format: FormatOpt = Format.table,
    quiet: QuietOpt = False,
) -> None:
    """Read a whole written number: its digits left to right, with boxes."""
    from digitrec.predictor import Predictor

    predictor = Predictor.load(model, threads=0)
    table = Table(
        "file", "text", "confidence", "digits (confidence)", title=f"model {predictor.name}"
    )
    failed = 0
    files = _expand(images)
    with _bar(len(files), "read", quiet) as bar:
        task = bar.add_task("", total=len(files))
        for f in files:
            failed += _read_one(predictor, f, format, table)
            bar.advance(task)
    if format is not Format.json:
        console.print(table)
    if failed:
        raise typer.Exit(1)


def _read_one(predictor: Any, f: Path, format: Format, table: Table) -> int:
    """Read `f`, printing a JSON line or adding a table row; a bad file is a line on stderr.
    Returns 1 if it failed, else 0."""
    from digitrec.errors import ImageError

    try:
        if f != STDIN and (problem := not_a_file(f)):
            raise ImageError(problem)
        reading = predictor.read(_source(f))
    except ImageError as e:
        error_line(f"{f}: {e}")
        return 1
    if format is Format.json:
        print(json.dumps({"file": str(f), **reading.to_dict()}))
    else:
        if reading.text is not None:
            text = reading.text
        elif reading.reason == "empty":
            text = "(no digits)"
        else:  # a digit too uncertain to vouch for the number: the guess, marked
            text = f"uncertain: {reading.guess}?"
        table.add_row(
            cell(f),
            text,
            f"{reading.confidence:.2f}",
            "  ".join(f"{d.digit}({d.confidence:.2f})" for d in reading.digits),
        )
    return 0


@app.command()
def batch(
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="Image folders, globs, image files, or a .parquet/.csv listing of paths "
            "(its `path` or `file` column, or its only one)."
        ),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="out.parquet or out.jsonl: a row per image.")
    ],
    mode: Annotated[
        str, typer.Option(help="predict (one digit per image) or read (a written number).")
    ] = "predict",
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray",
            help="Join the Ray cluster at this address (auto, or host:port). "
            "Default: start a local Ray.",
            show_default=False,
        ),
    ] = None,
    cpus: Annotated[
        int | None, typer.Option(min=1, help="CPUs of the local Ray. Default: all cores.")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="Actors, each holding the model. Default: one per CPU."),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per call of an actor.")] = 256,
    model: ModelOpt = None,
) -> None:
    """Answer many images on Ray Data (pip install 'digitrec\\[ray]'): a row per image with the
    fields of predict/read --format json plus `path` and `error`; a failed image is a row."""
    from digitrec import batch as batching

    batching.output_format(output)  # a wrong suffix fails before any listing
    files: list[str | Path] = []
    for item in inputs:
        files += batching.read_listing(Path(item)) if batching.is_listing(item) else _expand([item])
    summary = batching.run(
        files, output, mode=mode, model=model, address=ray_address, cpus=cpus,
        workers=workers, batch_size=batch_size,
    )  # fmt: skip
    print(
        f"wrote {shown(output)}: {summary.rows:,} rows, {summary.errors:,} failed "
        f"({summary.per_second:,.0f} images/s on {summary.workers} workers)"
    )
    if summary.errors:
        error_line(f"{summary.errors:,} images failed: their reasons are in the error column")


@app.command()
def submit(
    test_csv: Annotated[Path, typer.Argument(help="Kaggle test.csv (pixel0..pixel783).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Submission file.")] = Path(
        "submission.csv"
    ),
    model: ModelOpt = None,
    tta: Annotated[bool, typer.Option(help=TTA_HELP)] = False,
    quiet: QuietOpt = False,
) -> None:
    """Write a Kaggle "Digit Recognizer" submission: ImageId,Label."""
    from digitrec.data import load_csv
    from digitrec.predictor import Predictor
    from digitrec.submit import write_submission

    dataset = load_csv(test_csv)
    predictor = Predictor.load(model, threads=0)
    with _bar(len(dataset.images), "submit", quiet) as bar:
        task = bar.add_task("", total=len(dataset.images))
        progress = lambda n: bar.advance(task, n)  # noqa: E731
        labels = write_submission(predictor, dataset, output, tta=tta, progress=progress)
    print(f"wrote {shown(output)}: {len(labels):,} predictions (model {predictor.name})")


# ---------------------------------------------------------------- serve / feedback

DatabaseOpt = Annotated[
    str | None,
    typer.Option(
        envvar="DIGITREC_DATABASE",
        show_default=False,
        help="Keep corrections in PostgreSQL, postgresql://USER:PASSWORD@HOST:PORT/DB, one "
        "database several servers share (pip install 'digitrec\\[postgres]'), instead of the "
        "SQLite file in --data-dir.",
    ),
]


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            show_default=False,
            help="Worker processes. Default: one per core this process may use "
            "(its CPU affinity, e.g. a container's cpuset).",
        ),
    ] = None,
    model: ModelOpt = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Where corrections are stored. Default: the user's data directory."),
    ] = None,
    database: DatabaseOpt = None,
) -> None:
    """Serve the web page and the REST API."""
    from digitrec.serve import run_server

    run_server(
        host=host, port=port, workers=workers, model=model, data_dir=data_dir, database=database
    )


DataDirOpt = Annotated[
    Path | None,
    typer.Option(help="The server's --data-dir. Default: the user's data directory."),
]


@feedback_app.command("review")
def feedback_review(
    accept: Annotated[
        str | None, typer.Option(help="Ids to accept: 1,2,5 or ranges, 3-7. Default: none.")
    ] = None,
    reject: Annotated[str | None, typer.Option(help="Ids to reject, as --accept.")] = None,
    readings: Annotated[
        bool,
        typer.Option(
            "--readings",
            help="The corrected numbers (their own ids) instead of the corrected digits.",
        ),
    ] = False,
    sheet: Annotated[
        Path | None,
        typer.Option(
            show_default=False,
            help="Contact sheet of the rows still pending (PNG). "
            "Default: pending.png (pending-readings.png with --readings).",
        ),
    ] = None,
    limit: Annotated[int, typer.Option(help="Most rows on the sheet, lowest ids first.")] = 200,
    data_dir: DataDirOpt = None,
    database: DatabaseOpt = None,
) -> None:
    """Review corrections: accept or reject them by id, then a contact sheet of those pending.

    Each cell of the sheet shows the upload, the 28x28 the model saw and `#id label L (model P)`;
    with --readings, the number with the boxes of the digits read, `#id read R -> T` and the
    edits (a drawing's last save only: the page saves a number again after each edit).
    Only accepted rows reach `feedback export` (and so `train --extra-data`).
    """
    from digitrec.feedback import contact_sheet, default_data_dir, parse_ids, readings_sheet
    from digitrec.feedback.stores import open_existing

    store = open_existing(data_dir, database)
    if store is None:
        raise DigitrecError(f"{data_dir or default_data_dir()}: no feedback store here")
    sheet = sheet or Path("pending-readings.png" if readings else "pending.png")
    try:
        if accept or reject:
            accepted, rejected = parse_ids(accept or ""), parse_ids(reject or "")
            store.decide(accepted, rejected, readings=readings)
            print(f"accepted {len(set(accepted))}, rejected {len(set(rejected))}")
        if readings:
            numbers = list(store.readings("pending", limit, latest=True))
            ids = [r.id for r in numbers]
            drawn = readings_sheet(numbers, sheet)
        else:
            rows = list(store.rows("pending", limit))
            ids = [r.id for r in rows]
            drawn = contact_sheet(rows, sheet)
        counts = store.counts(readings=readings)
        if drawn:
            print(
                f"wrote {shown(sheet)}: {drawn} of {counts['pending']} pending "
                f"(ids {ids[0]}..{ids[-1]})"
            )
        print(", ".join(f"{n} {status}" for status, n in counts.items()))
    finally:
        store.close()


@feedback_app.command("export")
def feedback_export(
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            show_default=False,
            help="Kaggle-format CSV; with --readings, JSON lines. "
            "Default: corrections.csv (readings.jsonl with --readings).",
        ),
    ] = None,
    readings: Annotated[
        bool,
        typer.Option(
            "--readings",
            help="The accepted corrected numbers, one JSON object a line: the image (PNG data "
            "URL), its width and height, the boxes of the digits read, read, text, changes.",
        ),
    ] = False,
    data_dir: DataDirOpt = None,
    database: DatabaseOpt = None,
) -> None:
    """Export accepted corrections as Kaggle-format CSV (label, pixel0..783) for
    `train --extra-data`, or with --readings the corrected numbers as JSON lines (streamed:
    any number of rows in bounded memory)."""
    from digitrec.feedback.export import export_csv, export_readings

    if readings:
        output = output or Path("readings.jsonl")
        n = export_readings(data_dir, output, database)
        print(f"wrote {shown(output)}: {n} accepted corrected numbers")
        return
    output = output or Path("corrections.csv")
    n = export_csv(data_dir, output, database)
    print(f"wrote {shown(output)}: {n} accepted corrections")


def _invoked(argv: list[str]) -> str:
    """The command a command line runs ("train", "feedback export"), from its words: the root
    options take no values, so the first word that is not an option is the command."""
    words = [a for a in argv if not a.startswith("-")]
    groups = {"feedback"}
    return " ".join(words[:2] if words and words[0] in groups else words[:1])


def main() -> None:
    from typer.exceptions import TyperException

    try:
        code = app(standalone_mode=False)
    except TyperException as e:  # a bad flag or value (--format jsn): one line, as ours are
        message = e.format_message().replace("Value error, ", "")
        if message:  # (no command at all: the help was the answer)
            error_line(f"error: {message}")
        sys.exit(getattr(e, "exit_code", 2))
    except typer.Abort:
        error_line("interrupted")
        sys.exit(130)
    except DigitrecError as e:
        error_line(f"error: {e}")
        sys.exit(1)
    except ModuleNotFoundError as e:  # a library of an extra not installed: say which extra
        from digitrec.extras import install_hint

        hint = install_hint(e, f"'digitrec {_invoked(sys.argv[1:])}'")
        if hint is None:  # not an extra's: a bug, shown as one
            raise
        error_line(f"error: {hint}")
        sys.exit(1)
    except KeyboardInterrupt:
        error_line("interrupted")
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)  # typer.Exit(n) comes back as n
