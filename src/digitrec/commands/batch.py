"""`batch` (many images on Ray Data) and `submit` (a Kaggle submission): answers in bulk, to a
file."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from digitrec.commands.common import (
    TTA_HELP,
    ModelOpt,
    QuietOpt,
    error_line,
    progress_bar,
    shown,
)
from digitrec.commands.inputs import expand


class Mode(StrEnum):
    predict = "predict"  # one digit per image
    read = "read"  # a written number per image


ModeOpt = Annotated[
    Mode, typer.Option(help="predict (one digit per image) or read (a written number).")
]


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
    mode: ModeOpt = Mode.predict,
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
        files += batching.read_listing(Path(item)) if batching.is_listing(item) else expand([item])
    summary = batching.run(
        files, output, mode=mode.value, model=model, address=ray_address, cpus=cpus,
        workers=workers, batch_size=batch_size,
    )  # fmt: skip
    print(
        f"wrote {shown(output)}: {summary.rows:,} rows, {summary.errors:,} failed "
        f"({summary.per_second:,.0f} images/s on {summary.workers} workers)"
    )
    if summary.errors:
        error_line(f"{summary.errors:,} images failed: their reasons are in the error column")


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
    with progress_bar(len(dataset.images), "submit", quiet) as bar:
        task = bar.add_task("", total=len(dataset.images))
        progress = lambda n: bar.advance(task, n)  # noqa: E731
        labels = write_submission(predictor, dataset, output, tta=tta, progress=progress)
    print(f"wrote {shown(output)}: {len(labels):,} predictions (model {predictor.name})")
