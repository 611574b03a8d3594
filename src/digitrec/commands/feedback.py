"""`feedback review` and `feedback export`: the corrections the web app stored."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from digitrec.commands.common import DatabaseOpt, DataDirOpt, shown
from digitrec.errors import DigitrecError

SheetOpt = Annotated[
    Path | None,
    typer.Option(
        show_default=False,
        help="Contact sheet of the rows still pending (PNG). "
        "Default: pending.png (pending-readings.png with --readings).",
    ),
]


def review(
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
    sheet: SheetOpt = None,
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
    from digitrec.feedback import default_data_dir, parse_ids
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
        drawn, ids = _pending_sheet(store, readings, limit, sheet)
        counts = store.counts(readings=readings)
        if drawn:
            print(
                f"wrote {shown(sheet)}: {drawn} of {counts['pending']} pending "
                f"(ids {ids[0]}..{ids[-1]})"
            )
        print(", ".join(f"{n} {status}" for status, n in counts.items()))
    finally:
        store.close()


def _pending_sheet(store: Any, readings: bool, limit: int, sheet: Path) -> tuple[int, list[int]]:
    """Draw the contact sheet of the first `limit` pending rows (corrected numbers with
    `readings`): how many it shows (0: no sheet written), and the ids of the rows."""
    from digitrec.feedback import contact_sheet, readings_sheet

    if readings:
        numbers = list(store.readings("pending", limit, latest=True))
        return readings_sheet(numbers, sheet), [r.id for r in numbers]
    rows = list(store.rows("pending", limit))
    return contact_sheet(rows, sheet), [r.id for r in rows]


def export(
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
