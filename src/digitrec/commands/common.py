"""What the commands share: printing (stdout, one-line errors, escaped names, progress bars) and
the options several commands take."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

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
TTA_HELP = "Test-time augmentation: average each image with zoomed copies (3x the work)."
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
DataDirOpt = Annotated[
    Path | None,
    typer.Option(help="The server's --data-dir. Default: the user's data directory."),
]


def progress_bar(total: int, what: str, quiet: bool) -> Any:
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
