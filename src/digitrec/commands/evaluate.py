"""`explore` and `evaluate`: reports and figures over a data set, and over a model on one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from digitrec.commands.common import TTA_HELP, ModelOpt, QuietOpt, console, progress_bar, shown


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
    with progress_bar(len(dataset.images), "evaluate", quiet) as bar:
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
