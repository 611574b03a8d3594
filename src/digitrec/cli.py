"""The `digitrec` command line: the Typer app and its commands, which live in
`digitrec.commands` (one module per topic). Library code logs; the commands print.

Heavy imports (torch, matplotlib, FastAPI) happen inside the commands that need them, so
`digitrec predict` and `digitrec serve` start fast and never import torch.
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from digitrec.commands import batch, evaluate, feedback, models, predict, serve, train
from digitrec.commands.common import error_line
from digitrec.errors import DigitrecError

app = typer.Typer(
    # --install-completion / --show-completion: bash, zsh, fish, PowerShell
    add_completion=True,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Handwritten digit recognition: train, evaluate, predict, read numbers, serve a web app.",
)
feedback_app = typer.Typer(no_args_is_help=True, help="Corrections stored by the web app.")
app.add_typer(feedback_app, name="feedback")

# In --help order. A command's name is its function's, `_` spelled `-`.
for command in (
    evaluate.explore, train.train, train.ensemble, evaluate.evaluate, models.export,
    models.export_web, models.ship, predict.predict, predict.read, batch.batch, batch.submit,
    serve.serve,
):  # fmt: skip
    app.command(command.__name__.replace("_", "-"))(command)
feedback_app.command("review")(feedback.review)
feedback_app.command("export")(feedback.export)


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
