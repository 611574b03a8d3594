"""`export`, `export-web` and `ship`: a trained run turned into what serves it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def export(model: Annotated[Path, typer.Option("--model", "-m", help="A run directory.")]) -> None:
    """Write RUN_DIR/model.onnx and check ONNX Runtime against torch on the test set."""
    from digitrec.training.export import export_run

    path = export_run(model, check=True)
    diff = json.loads((model / "export.json").read_text())["max_difference"]
    print(f"wrote {path} (ONNX Runtime vs torch on 10,000 test images: max difference {diff:.1e})")


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
