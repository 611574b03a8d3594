"""The `digitrec` commands, one module per topic, each a plain function that `digitrec.cli`
registers on the Typer app. Nothing here imports `digitrec.cli`."""
