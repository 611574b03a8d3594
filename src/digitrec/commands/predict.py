"""`predict` (one digit per image) and `read` (a written number per image): one loop over the
images for both, printing a JSON line or a table row per image and a line on stderr per bad one."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from digitrec.commands.common import (
    Format,
    FormatOpt,
    ModelOpt,
    QuietOpt,
    cell,
    console,
    error_line,
    progress_bar,
)
from digitrec.commands.inputs import STDIN, expand, source
from digitrec.files import not_a_file


@dataclass(frozen=True)
class Task:
    """What `predict` and `read` do differently in their common loop."""

    name: str  # the progress bar's label
    columns: tuple[str, ...]  # the table's, `file` first
    chunk: int  # images per call of `answers`
    # (predictor, files) -> each file's answer (a Prediction, a Reading), or the message
    # saying why it has none
    answers: Callable[[Any, list[Path]], list[tuple[Path, Any]]]
    fields: Callable[[Any], dict[str, Any]]  # an answer's JSON fields, but `file`
    row: Callable[[Any], list[str]]  # an answer's table cells, but `file`


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
    answer_all(PREDICT, images, model, format, quiet)


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
    answer_all(READ, images, model, format, quiet)


def answer_all(
    task: Task, images: list[str], model: str | None, format: Format, quiet: bool
) -> None:
    """Answer the images `task.chunk` at a time: a JSON line each (`file`, then the answer's
    fields), or a table row with the table printed at the end; a bad file is a line on stderr
    and makes the exit status 1."""
    from digitrec.predictor import Predictor

    predictor = Predictor.load(model, threads=0)  # every core: one image's latency, or a batch
    files = expand(images)
    table = Table(*task.columns, title=f"model {predictor.name}")
    failed = 0
    with progress_bar(len(files), task.name, quiet) as bar:
        counted = bar.add_task("", total=len(files))
        for start in range(0, len(files), task.chunk):
            part = files[start : start + task.chunk]
            for f, answer in task.answers(predictor, part):
                if isinstance(answer, str):
                    failed += 1
                    error_line(f"{f}: {answer}")  # escaped there
                elif format is Format.json:
                    print(json.dumps({"file": str(f), **task.fields(answer)}))
                else:
                    table.add_row(cell(f), *task.row(answer))
            bar.advance(counted, len(part))
    if format is not Format.json:
        console.print(table)
    if failed:
        raise typer.Exit(1)


def _predictions(predictor: Any, files: list[Path]) -> list[tuple[Path, Any]]:
    """The images of `files` answered in one batch; a file that cannot be read, its message."""
    from digitrec.errors import ImageError
    from digitrec.vision.preprocess import load_image

    sources, errors = [], {}
    for f in files:
        if f != STDIN and (problem := not_a_file(f)):
            errors[f] = problem
            continue
        try:
            sources.append(load_image(source(f)))
        except ImageError as e:
            errors[f] = str(e)
    results = iter(predictor.predict_many(sources))
    return [(f, errors[f] if f in errors else next(results)) for f in files]


def _readings(predictor: Any, files: list[Path]) -> list[tuple[Path, Any]]:
    """Each of `files` read as a number; a file that cannot be read, its message."""
    from digitrec.errors import ImageError

    done: list[tuple[Path, Any]] = []
    for f in files:
        try:
            if f != STDIN and (problem := not_a_file(f)):
                raise ImageError(problem)
            done.append((f, predictor.read(source(f))))
        except ImageError as e:
            done.append((f, str(e)))
    return done


def _digit_row(p: Any) -> list[str]:
    digit = "-" if p.digit is None else str(p.digit)
    note = f" ({p.reason})" if p.reason else ""
    top = "  ".join(f"{d}:{q:.3f}" for d, q in p.candidates)
    return [digit + note, f"{p.confidence:.4f}", top]


def _number_row(reading: Any) -> list[str]:
    if reading.text is not None:
        text = reading.text
    elif reading.reason == "empty":
        text = "(no digits)"
    else:  # a digit too uncertain to vouch for the number: the guess, marked
        text = f"uncertain: {reading.guess}?"
    digits = "  ".join(f"{d.digit}({d.confidence:.2f})" for d in reading.digits)
    return [text, f"{reading.confidence:.2f}", digits]


PREDICT = Task(
    "predict",
    ("file", "digit", "confidence", "top 3"),
    256,  # batched: one ONNX call per chunk
    _predictions,
    lambda p: p.to_cli_dict(),
    _digit_row,
)
READ = Task(
    "read",
    ("file", "text", "confidence", "digits (confidence)"),
    1,
    _readings,
    lambda reading: reading.to_dict(),
    _number_row,
)
