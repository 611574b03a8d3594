"""Errors a user can act on. The CLI prints them as one line, the server as {"error": ...}."""

from __future__ import annotations


class DigitrecError(Exception):
    """A user error: bad file, bad argument, missing model. Never a bug."""


class DataError(DigitrecError):
    """A data file that cannot be read: names the file, and the row/column when it has them."""

    def __init__(self, path: object, what: str, row: int | None = None, column: str | None = None):
        where = str(path)
        if row is not None:
            where += f", row {row}"
        if column is not None:
            where += f", column {column}"
        super().__init__(f"{where}: {what}")
        self.path, self.what, self.row, self.column = str(path), what, row, column


class ImageError(DigitrecError):
    """An image that cannot be used. `status` is the HTTP status the server answers with."""

    def __init__(self, what: str, status: int = 415):
        super().__init__(what)
        self.status = status


class ModelError(DigitrecError):
    """A model that cannot be found or loaded (missing, truncated, checksum mismatch)."""
